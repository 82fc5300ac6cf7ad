"""The signalling envelope (DESIGN.md, "Signalling contract"): a pure, strict codec.

One JSON object per message, ``{"type": ..., "session_id": ..., ...}``, the same on the browser
WebSocket ``/ws/signal`` and on a device's ``webrtc/in`` / ``webrtc/out`` topics.

========== ============== =================================================================
type       sent by        fields besides ``type`` and ``session_id``
========== ============== =================================================================
request    client         ``device_id``, ``purpose`` (view|call|probe); or ``extend`` (reason)
granted    server         ``device_id``, ``purpose``, ``ice_servers``, ``deadline`` (Unix s),
                          ``cap_s``, ``ring_timeout_s`` (calls)
denied     server         ``reason`` (stable code)
offer      client, server ``sdp``; ``ice_servers`` when the server forwards it to a device
answer     device, server ``sdp``
candidate  all            ``candidate`` (``""`` = end of candidates), ``sdp_mid``,
                          ``sdp_mline_index``
bye        all            ``reason``: timeout|withdrawn|declined|operator|device_lost|no_answer
error      server, device ``code``, ``message``; ``session_id`` may be null
drive      client         ``linear``, ``angular`` in [-1, 1] (video phone during a call)
video      client         ``frames``: frames the caller has decoded so far (staleness)
ack        server         ``of``: the type acknowledged (``drive``)
========== ============== =================================================================

Decoding refuses anything else with :class:`EnvelopeError` (a ``PayloadError``) carrying a stable
``reason`` and, when it could be read, the ``session_id``. SDP is at most
:data:`MAX_SDP_BYTES` and must look like SDP; it is never part of an error text or ``repr``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from devices.errors import PayloadError

MAX_SDP_BYTES = 64 * 1024
MAX_MESSAGE_BYTES = 160 * 1024  # an SDP of 64 KiB grows when JSON escapes its line ends
MAX_CANDIDATE_CHARS = 1024
SESSION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_DEVICE_ID_RE = re.compile(r"^[a-z0-9-]{1,64}$")
_SDP_LINE_RE = re.compile(r"^[a-z]=[^\x00-\x08\x0a-\x1f\x7f]*$")
_E = TypeVar("_E", bound=StrEnum)


class MessageType(StrEnum):
    REQUEST = "request"
    GRANTED = "granted"
    DENIED = "denied"
    OFFER = "offer"
    ANSWER = "answer"
    CANDIDATE = "candidate"
    BYE = "bye"
    ERROR = "error"
    DRIVE = "drive"
    VIDEO = "video"
    ACK = "ack"


#: Types a browser, probe or ``homecare view`` may send.
CLIENT_TYPES = frozenset(
    {
        MessageType.REQUEST,
        MessageType.OFFER,
        MessageType.CANDIDATE,
        MessageType.BYE,
        MessageType.DRIVE,
        MessageType.VIDEO,
    }
)
#: Types a device may send on ``webrtc/out`` (``error``: it refused a message of a session).
DEVICE_TYPES = frozenset(
    {MessageType.ANSWER, MessageType.CANDIDATE, MessageType.BYE, MessageType.ERROR}
)


class Purpose(StrEnum):
    VIEW = "view"  # an operator looks through a camera
    CALL = "call"  # a two-way video call to a video phone
    PROBE = "probe"  # the backend's motion probe (receive-only, system only)


class ByeReason(StrEnum):
    TIMEOUT = "timeout"
    WITHDRAWN = "withdrawn"
    DECLINED = "declined"
    OPERATOR = "operator"
    DEVICE_LOST = "device_lost"
    NO_ANSWER = "no_answer"


class ExtendReason(StrEnum):
    """Why an operator needs more than the care plan's view cap (audited)."""

    UNCLEAR_IMAGE = "unclear_image"
    AWAITING_MOVEMENT = "awaiting_movement"
    POSSIBLE_DISTRESS = "possible_distress"
    ASSISTING_BY_CALL = "assisting_by_call"


class EnvelopeError(PayloadError):
    """A signalling message breaks the contract. ``session_id`` is set when it could be read."""

    def __init__(self, reason: str, detail: str, session_id: str | None = None) -> None:
        super().__init__(reason, detail)
        self.session_id = session_id


# ---------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class IceServer:
    """One ``RTCIceServer``: ``urls`` are ``stun:``/``turn:``/``turns:`` URLs."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = field(default=None, repr=False)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"urls": list(self.urls)}
        if self.username is not None:
            out["username"] = self.username
        if self.credential is not None:
            out["credential"] = self.credential
        return out


@dataclass(frozen=True, slots=True)
class Request:
    session_id: str
    device_id: str | None = None
    purpose: Purpose | None = None
    extend: ExtendReason | None = None
    type: MessageType = field(default=MessageType.REQUEST, init=False)

    def __post_init__(self) -> None:
        if self.extend is None and (self.device_id is None or self.purpose is None):
            raise ValueError("a request needs device_id and purpose unless it extends")


@dataclass(frozen=True, slots=True)
class Granted:
    session_id: str
    device_id: str
    purpose: Purpose
    deadline: float
    cap_s: float
    ice_servers: tuple[IceServer, ...] = ()
    ring_timeout_s: float | None = None
    type: MessageType = field(default=MessageType.GRANTED, init=False)


@dataclass(frozen=True, slots=True)
class Denied:
    session_id: str
    reason: str
    type: MessageType = field(default=MessageType.DENIED, init=False)


@dataclass(frozen=True, slots=True)
class Offer:
    session_id: str
    sdp: str = field(repr=False)
    ice_servers: tuple[IceServer, ...] = ()
    type: MessageType = field(default=MessageType.OFFER, init=False)


@dataclass(frozen=True, slots=True)
class Answer:
    session_id: str
    sdp: str = field(repr=False)
    type: MessageType = field(default=MessageType.ANSWER, init=False)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A trickled ICE candidate; ``candidate == ""`` marks the end of candidates."""

    session_id: str
    candidate: str = field(repr=False)
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None
    type: MessageType = field(default=MessageType.CANDIDATE, init=False)

    @property
    def is_end(self) -> bool:
        return self.candidate == ""


@dataclass(frozen=True, slots=True)
class Bye:
    session_id: str
    reason: ByeReason
    type: MessageType = field(default=MessageType.BYE, init=False)


@dataclass(frozen=True, slots=True)
class Error:
    code: str
    message: str
    session_id: str | None = None
    type: MessageType = field(default=MessageType.ERROR, init=False)


@dataclass(frozen=True, slots=True)
class Drive:
    """Move a video phone: ``linear`` forward/back and ``angular`` turn, each in [-1, 1]."""

    session_id: str
    linear: float
    angular: float
    type: MessageType = field(default=MessageType.DRIVE, init=False)


@dataclass(frozen=True, slots=True)
class Video:
    """The caller's client reports how many frames it has decoded so far (monotonic count)."""

    session_id: str
    frames: int
    type: MessageType = field(default=MessageType.VIDEO, init=False)


@dataclass(frozen=True, slots=True)
class Ack:
    session_id: str
    of: MessageType
    type: MessageType = field(default=MessageType.ACK, init=False)


Envelope = (
    Request | Granted | Denied | Offer | Answer | Candidate | Bye | Error | Drive | Video | Ack
)


# ---------------------------------------------------------------- encoding


def as_json(env: Envelope) -> dict[str, Any]:
    """The JSON object of an envelope (``None`` fields left out)."""
    out: dict[str, Any] = {"type": env.type.value}
    if isinstance(env, Error):
        out["session_id"] = env.session_id
        out.update(code=env.code, message=env.message)
        return out
    out["session_id"] = env.session_id
    match env:
        case Request():
            out.update(device_id=env.device_id, purpose=env.purpose, extend=env.extend)
        case Granted():
            out.update(
                device_id=env.device_id,
                purpose=env.purpose.value,
                ice_servers=[s.as_json() for s in env.ice_servers],
                deadline=env.deadline,
                cap_s=env.cap_s,
                ring_timeout_s=env.ring_timeout_s,
            )
        case Denied():
            out["reason"] = env.reason
        case Offer():
            out["sdp"] = env.sdp
            if env.ice_servers:
                out["ice_servers"] = [s.as_json() for s in env.ice_servers]
        case Answer():
            out["sdp"] = env.sdp
        case Candidate():
            out.update(
                candidate=env.candidate, sdp_mid=env.sdp_mid, sdp_mline_index=env.sdp_mline_index
            )
        case Bye():
            out["reason"] = env.reason.value
        case Drive():
            out.update(linear=env.linear, angular=env.angular)
        case Video():
            out["frames"] = env.frames
        case Ack():
            out["of"] = env.of.value
    return {
        k: (v.value if isinstance(v, StrEnum) else v)
        for k, v in out.items()
        if v is not None or k == "session_id"
    }


def encode(env: Envelope) -> str:
    """Compact JSON text of an envelope."""
    return json.dumps(as_json(env), separators=(",", ":"), ensure_ascii=False)


def encode_bytes(env: Envelope) -> bytes:
    return encode(env).encode("utf-8")


# ---------------------------------------------------------------- decoding

_FIELDS: dict[MessageType, tuple[frozenset[str], frozenset[str]]] = {
    # type: (allowed fields besides type/session_id, required ones)
    MessageType.REQUEST: (frozenset({"device_id", "purpose", "extend"}), frozenset()),
    MessageType.GRANTED: (
        frozenset({"device_id", "purpose", "ice_servers", "deadline", "cap_s", "ring_timeout_s"}),
        frozenset({"device_id", "purpose", "deadline", "cap_s"}),
    ),
    MessageType.DENIED: (frozenset({"reason"}), frozenset({"reason"})),
    MessageType.OFFER: (frozenset({"sdp", "ice_servers"}), frozenset({"sdp"})),
    MessageType.ANSWER: (frozenset({"sdp"}), frozenset({"sdp"})),
    MessageType.CANDIDATE: (
        frozenset({"candidate", "sdp_mid", "sdp_mline_index"}),
        frozenset({"candidate"}),
    ),
    MessageType.BYE: (frozenset({"reason"}), frozenset({"reason"})),
    MessageType.ERROR: (frozenset({"code", "message"}), frozenset({"code", "message"})),
    MessageType.DRIVE: (frozenset({"linear", "angular"}), frozenset({"linear", "angular"})),
    MessageType.VIDEO: (frozenset({"frames"}), frozenset({"frames"})),
    MessageType.ACK: (frozenset({"of"}), frozenset({"of"})),
}


def decode(data: bytes | str, *, allowed: frozenset[MessageType] | None = None) -> Envelope:
    """Parse and validate one envelope; ``allowed`` limits the types the sender may use.

    Raises :class:`EnvelopeError` with one of the reasons ``too_large``, ``bad_encoding``,
    ``bad_json``, ``unknown_type``, ``unexpected_type``, ``missing_field``, ``unknown_field``,
    ``wrong_type``, ``bad_value``, ``out_of_range``, ``bad_session_id``, ``sdp_too_large``,
    ``bad_sdp``, ``bad_candidate``.
    """
    size = len(data.encode("utf-8", "surrogatepass")) if isinstance(data, str) else len(data)
    if size > MAX_MESSAGE_BYTES:
        raise EnvelopeError("too_large", f"message is {size} bytes, limit {MAX_MESSAGE_BYTES}")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        obj = json.loads(text, parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise EnvelopeError("bad_encoding", "message is not UTF-8") from None
    except (ValueError, RecursionError):
        raise EnvelopeError("bad_json", "message is not valid JSON") from None
    if not isinstance(obj, dict):
        raise EnvelopeError("bad_json", "message must be a JSON object")
    return decode_object(obj, allowed=allowed)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_object(
    obj: dict[str, Any], *, allowed: frozenset[MessageType] | None = None
) -> Envelope:
    """Validate an already parsed JSON object (see :func:`decode`)."""
    sid = _session_id(obj)
    raw_type = obj.get("type")
    if "type" not in obj:
        raise EnvelopeError("missing_field", "missing field 'type'", sid)
    try:
        mtype = MessageType(raw_type) if isinstance(raw_type, str) else None
    except ValueError:
        mtype = None
    if mtype is None:
        raise EnvelopeError("unknown_type", "type is not a known signalling message", sid)
    if allowed is not None and mtype not in allowed:
        raise EnvelopeError("unexpected_type", f"{mtype.value} may not be sent here", sid)
    fields, required = _FIELDS[mtype]
    extra = set(obj) - fields - {"type", "session_id"}
    if extra:
        raise EnvelopeError("unknown_field", f"unknown field {_short(sorted(extra)[0])!r}", sid)
    missing = (required | ({"session_id"} if mtype is not MessageType.ERROR else set())) - set(obj)
    if missing:
        raise EnvelopeError("missing_field", f"missing field {sorted(missing)[0]!r}", sid)
    if mtype is not MessageType.ERROR and sid is None:
        raise EnvelopeError("bad_session_id", "session_id must be 8-64 of A-Z a-z 0-9 _ -", None)
    try:
        return _build(mtype, obj, sid)
    except EnvelopeError as e:
        e.session_id = sid
        raise


def _build(mtype: MessageType, obj: dict[str, Any], sid: str | None) -> Envelope:
    s = sid or ""
    match mtype:
        case MessageType.REQUEST:
            extend = _opt_enum(obj, "extend", ExtendReason)
            device_id = _opt_device_id(obj)
            purpose = _opt_enum(obj, "purpose", Purpose)
            if extend is None and (device_id is None or purpose is None):
                raise EnvelopeError("missing_field", "a request needs device_id and purpose")
            return Request(s, device_id=device_id, purpose=purpose, extend=extend)
        case MessageType.GRANTED:
            device_id = _opt_device_id(obj)
            purpose = _opt_enum(obj, "purpose", Purpose)
            assert device_id is not None
            assert purpose is not None
            return Granted(
                s,
                device_id=device_id,
                purpose=purpose,
                deadline=_num(obj, "deadline", 0, 1e11),
                cap_s=_num(obj, "cap_s", 0, 86400),
                ice_servers=_ice_servers(obj),
                ring_timeout_s=_opt_num(obj, "ring_timeout_s", 0, 3600),
            )
        case MessageType.DENIED:
            return Denied(s, reason=_code(obj, "reason"))
        case MessageType.OFFER:
            return Offer(s, sdp=_sdp(obj), ice_servers=_ice_servers(obj))
        case MessageType.ANSWER:
            return Answer(s, sdp=_sdp(obj))
        case MessageType.CANDIDATE:
            return _candidate(obj, s)
        case MessageType.BYE:
            return Bye(s, reason=_enum(obj, "reason", ByeReason))
        case MessageType.ERROR:
            message = obj.get("message")
            if not isinstance(message, str) or len(message) > 512:
                raise EnvelopeError("wrong_type", "message must be a string of at most 512")
            return Error(code=_code(obj, "code"), message=message, session_id=sid)
        case MessageType.DRIVE:
            return Drive(s, linear=_num(obj, "linear", -1, 1), angular=_num(obj, "angular", -1, 1))
        case MessageType.VIDEO:
            return Video(s, frames=_int(obj, "frames", 0, 2**53))
        case MessageType.ACK:
            return Ack(s, of=_enum(obj, "of", MessageType))
    raise AssertionError(mtype)  # pragma: no cover - every type is handled above


# ---------------------------------------------------------------- field checks


def _short(value: str) -> str:
    return value[:32]


def _session_id(obj: dict[str, Any]) -> str | None:
    value = obj.get("session_id")
    if isinstance(value, str) and SESSION_ID_RE.fullmatch(value):
        return value
    return None


def is_session_id(value: object) -> bool:
    return isinstance(value, str) and SESSION_ID_RE.fullmatch(value) is not None


def _opt_device_id(obj: dict[str, Any]) -> str | None:
    value = obj.get("device_id")
    if value is None:
        return None
    if not isinstance(value, str) or not _DEVICE_ID_RE.fullmatch(value):
        raise EnvelopeError("bad_value", "device_id must be 1-64 of a-z, 0-9 and -")
    return value


def _enum(obj: dict[str, Any], key: str, enum: type[_E]) -> _E:
    value = obj.get(key)
    if isinstance(value, str):
        try:
            return enum(value)
        except ValueError:
            pass
    raise EnvelopeError("bad_value", f"{key} must be one of {', '.join(enum)}")


def _opt_enum(obj: dict[str, Any], key: str, enum: type[_E]) -> _E | None:
    return None if obj.get(key) is None else _enum(obj, key, enum)


def _code(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not CODE_RE.fullmatch(value):
        raise EnvelopeError("bad_value", f"{key} must be a lowercase code")
    return value


def _num(obj: dict[str, Any], key: str, lo: float, hi: float) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EnvelopeError("wrong_type", f"{key} must be a number")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise EnvelopeError("out_of_range", f"{key} must be between {lo} and {hi}")
    return float(value)


def _opt_num(obj: dict[str, Any], key: str, lo: float, hi: float) -> float | None:
    return None if obj.get(key) is None else _num(obj, key, lo, hi)


def _int(obj: dict[str, Any], key: str, lo: int, hi: int) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise EnvelopeError("wrong_type", f"{key} must be a whole number")
    if not lo <= value <= hi:
        raise EnvelopeError("out_of_range", f"{key} must be between {lo} and {hi}")
    return value


def check_sdp(sdp: object) -> str:
    """Return ``sdp`` if it is a plausible session description within the size limit.

    Checks structure only (``v=0`` first, ``o=``/``s=`` lines, at least one ``m=`` section, every
    line ``x=...`` without control characters); the WebRTC stacks parse the rest.
    """
    if not isinstance(sdp, str):
        raise EnvelopeError("wrong_type", "sdp must be a string")
    size = len(sdp.encode("utf-8", "surrogatepass"))
    if size > MAX_SDP_BYTES:
        raise EnvelopeError("sdp_too_large", f"sdp is {size} bytes, limit {MAX_SDP_BYTES}")
    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line]
    if not lines or lines[0] != "v=0":
        raise EnvelopeError("bad_sdp", "sdp must start with v=0")
    kinds = set()
    for line in lines:
        if not _SDP_LINE_RE.fullmatch(line):
            raise EnvelopeError("bad_sdp", "sdp has a malformed line")
        kinds.add(line[0])
    if not {"o", "s", "m"} <= kinds:
        raise EnvelopeError("bad_sdp", "sdp needs o=, s= and at least one m= line")
    return sdp


def _sdp(obj: dict[str, Any]) -> str:
    return check_sdp(obj.get("sdp"))


def _candidate(obj: dict[str, Any], sid: str) -> Candidate:
    text = obj.get("candidate")
    if not isinstance(text, str):
        raise EnvelopeError("wrong_type", "candidate must be a string")
    if text:
        bits = text.split(" ")
        if (
            len(text) > MAX_CANDIDATE_CHARS
            or not text.startswith("candidate:")
            or len(bits) < 8
            or bits[6] != "typ"
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)
        ):
            raise EnvelopeError("bad_candidate", "candidate must be an a=candidate value")
    mid = obj.get("sdp_mid")
    if mid is not None and (not isinstance(mid, str) or len(mid) > 32):
        raise EnvelopeError("wrong_type", "sdp_mid must be a string of at most 32")
    index = obj.get("sdp_mline_index")
    if index is not None:
        index = _int(obj, "sdp_mline_index", 0, 63)
    if text and mid is None and index is None:
        raise EnvelopeError("missing_field", "a candidate needs sdp_mid or sdp_mline_index")
    return Candidate(sid, candidate=text, sdp_mid=mid, sdp_mline_index=index)


def _ice_servers(obj: dict[str, Any]) -> tuple[IceServer, ...]:
    raw = obj.get("ice_servers")
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > 8:
        raise EnvelopeError("wrong_type", "ice_servers must be a list of at most 8")
    servers = []
    for item in raw:
        if not isinstance(item, dict) or not set(item) <= {"urls", "username", "credential"}:
            raise EnvelopeError("wrong_type", "an ice server is {urls, username, credential}")
        urls = item.get("urls")
        if isinstance(urls, str):
            urls = [urls]
        if (
            not isinstance(urls, list)
            or not 1 <= len(urls) <= 8
            or not all(
                isinstance(u, str)
                and len(u) <= 512
                and u.split(":", 1)[0] in {"stun", "turn", "turns"}
                for u in urls
            )
        ):
            raise EnvelopeError("bad_value", "ice server urls must be stun:, turn: or turns: URLs")
        extra = {k: item.get(k) for k in ("username", "credential")}
        for key, value in extra.items():
            if value is not None and (not isinstance(value, str) or len(value) > 512):
                raise EnvelopeError("wrong_type", f"ice server {key} must be a string")
        servers.append(
            IceServer(urls=tuple(urls), username=extra["username"], credential=extra["credential"])
        )
    return tuple(servers)
