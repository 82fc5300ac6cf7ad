"""Baseline for ``bench.codecs``: the hand-written wire decoders as they were before msgspec.

A frozen copy of ``devices/topics.py`` and ``devices/envelope.py`` (commit 771797606faa) with only
their decoding parts and the values they return (encoders dropped; the envelope's ``decode`` is
``decode_envelope`` here, and its helpers that clashed with the MQTT ones are renamed). Nothing
imports it but the benchmark, which measures today's code against its replacement in the same
run. Do not edit it to make it faster: it is the fair baseline, named as such.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from devices.errors import PayloadError

MAX_PAYLOAD_BYTES = 64 * 1024
_E = TypeVar("_E", bound=StrEnum)
DEVICE_ID_RE = re.compile(r"^[a-z0-9-]{1,64}$")


class Channel(StrEnum):
    STATUS = "status"
    META = "meta"
    HEALTH = "health"
    EVENT = "event"
    CMD = "cmd"
    CMD_ACK = "cmd/ack"
    WEBRTC_IN = "webrtc/in"
    WEBRTC_OUT = "webrtc/out"


class Presence(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    STOPPED = "stopped"


class DeviceKind(StrEnum):
    CAMERA = "camera"
    VIDEO_PHONE = "video_phone"


class Capability(StrEnum):
    VIDEO = "video"
    AUDIO = "audio"
    DRIVE = "drive"
    PRIVACY_SHUTTER = "privacy_shutter"
    SUBSTREAM = "substream"


class EventType(StrEnum):
    TAMPER = "tamper"
    PRIVACY_SWITCH = "privacy_switch"
    UNPLUGGED = "unplugged"
    CALL_ANSWER = "call_answer"
    CALL_DECLINE = "call_decline"
    BUTTON = "button"
    DOCKED = "docked"
    LOW_BATTERY = "low_battery"


class CommandOp(StrEnum):
    RING = "ring"
    HANGUP = "hangup"
    WAKE = "wake"
    SLEEP = "sleep"
    DRIVE = "drive"
    DOCK = "dock"
    SCENE = "scene"


def is_device_id(value: object) -> bool:
    return isinstance(value, str) and DEVICE_ID_RE.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Topic:
    device_id: str
    channel: Channel


def topic(prefix: str, device_id: str, channel: Channel) -> str:
    if not is_device_id(device_id):
        raise PayloadError("bad_device_id", "device ids are 1-64 characters of a-z, 0-9 and -")
    return f"{prefix}/dev/{device_id}/{channel.value}"


def server_status_topic(prefix: str) -> str:
    return f"{prefix}/server/status"


def parse_topic(prefix: str, name: str) -> Topic:
    """Split a device topic; raise ``PayloadError`` for anything outside the contract."""
    head = f"{prefix}/dev/"
    if not name.startswith(head):
        raise PayloadError("bad_topic", "not a device topic")
    device_id, _, rest = name[len(head) :].partition("/")
    if not is_device_id(device_id):
        raise PayloadError("bad_device_id", "device ids are 1-64 characters of a-z, 0-9 and -")
    try:
        channel = Channel(rest)
    except ValueError:
        raise PayloadError("bad_topic", "unknown channel") from None
    return Topic(device_id, channel)


# ---------------------------------------------------------------- payload helpers


def decode_object(payload: bytes) -> dict[str, Any]:
    """Decode a JSON object payload within the size limit."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(
            "too_large", f"payload is {len(payload)} bytes, limit {MAX_PAYLOAD_BYTES}"
        )
    try:
        value = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise PayloadError("bad_encoding", "payload is not UTF-8") from None
    except (ValueError, RecursionError):  # RecursionError: nested thousands of levels deep
        raise PayloadError("bad_json", "payload is not valid JSON") from None
    if not isinstance(value, dict):
        raise PayloadError("bad_json", "payload must be a JSON object")
    return value


def _only(
    obj: dict[str, Any], allowed: set[str], required: set[str], device_id: str | None = None
) -> None:
    """Refuse unknown or missing fields. An optional ``id`` must name the topic's device."""
    if "id" in obj and "id" not in allowed:
        if device_id is not None and obj["id"] != device_id:
            raise PayloadError("foreign_topic", "payload names another device than its topic")
        if not is_device_id(obj["id"]):
            raise PayloadError("bad_device_id", "id must be a device id")
        allowed = allowed | {"id"}
    extra = set(obj) - allowed
    if extra:
        raise PayloadError("unknown_field", f"unknown field {sorted(extra)[0]!r}")
    missing = required - set(obj)
    if missing:
        raise PayloadError("missing_field", f"missing field {sorted(missing)[0]!r}")


def _number(
    obj: dict[str, Any], key: str, lo: float, hi: float, *, optional: bool = True
) -> float | None:
    value = obj.get(key)
    if value is None:
        if optional:
            return None
        raise PayloadError("missing_field", f"missing field {key!r}")
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not math.isfinite(value))  # huge ints compare exactly
    ):
        raise PayloadError("wrong_type", f"{key} must be a number")
    if not lo <= value <= hi:
        raise PayloadError("out_of_range", f"{key} must be between {lo} and {hi}")
    return float(value)


def _int(obj: dict[str, Any], key: str, lo: int, hi: int) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError("wrong_type", f"{key} must be a whole number")
    if not lo <= value <= hi:
        raise PayloadError("out_of_range", f"{key} must be between {lo} and {hi}")
    return value


def _str(
    obj: dict[str, Any], key: str, max_len: int = 128, *, optional: bool = False
) -> str | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise PayloadError("wrong_type", f"{key} must be a string")
    if len(value) > max_len:
        raise PayloadError("out_of_range", f"{key} is longer than {max_len} characters")
    return value


def _enum(obj: dict[str, Any], key: str, enum: type[_E]) -> _E:
    value = obj.get(key)
    if not isinstance(value, str):
        raise PayloadError("wrong_type", f"{key} must be a string")
    try:
        return enum(value)
    except ValueError:
        raise PayloadError("bad_value", f"{key} must be one of {', '.join(enum)}") from None


# ---------------------------------------------------------------- status


@dataclass(frozen=True, slots=True)
class Status:
    """``status``: presence with the device's session counter; ``ts`` is Unix seconds if sent."""

    state: Presence
    session: int
    ts: float | None = None


def decode_status(payload: bytes, device_id: str | None = None) -> Status:
    obj = decode_object(payload)
    _only(obj, {"state", "session", "ts"}, {"state", "session"}, device_id)
    return Status(
        state=_enum(obj, "state", Presence),
        session=_int(obj, "session", 0, 2**53),
        ts=_number(obj, "ts", 0, 1e11),
    )


# ---------------------------------------------------------------- meta


@dataclass(frozen=True, slots=True)
class VideoSpec:
    w: int
    h: int
    fps: float


@dataclass(frozen=True, slots=True)
class Meta:
    kind: DeviceKind
    fw: str
    caps: tuple[Capability, ...]
    video: VideoSpec | None = None


def decode_meta(payload: bytes, device_id: str | None = None) -> Meta:
    obj = decode_object(payload)
    _only(obj, {"kind", "fw", "caps", "video"}, {"kind", "fw", "caps"}, device_id)
    caps_raw = obj["caps"]
    if not isinstance(caps_raw, list) or len(caps_raw) > 16:
        raise PayloadError("wrong_type", "caps must be a list of at most 16 capabilities")
    caps: list[Capability] = []
    for cap in caps_raw:
        try:
            caps.append(Capability(cap))
        except ValueError:
            raise PayloadError("bad_value", f"unknown capability {str(cap)[:32]!r}") from None
    video = None
    if obj.get("video") is not None:
        raw = obj["video"]
        if not isinstance(raw, dict):
            raise PayloadError("wrong_type", "video must be an object")
        _only(raw, {"w", "h", "fps"}, {"w", "h", "fps"})
        fps = _number(raw, "fps", 0.1, 120, optional=False)
        assert fps is not None
        video = VideoSpec(w=_int(raw, "w", 16, 7680), h=_int(raw, "h", 16, 4320), fps=fps)
    fw = _str(obj, "fw", 64)
    assert fw is not None
    return Meta(
        kind=_enum(obj, "kind", DeviceKind), fw=fw, caps=tuple(dict.fromkeys(caps)), video=video
    )


# ---------------------------------------------------------------- health


class Shutter(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Health:
    """Periodic health. ``battery_pct`` 0-100 (absent on mains), ``link`` 0-1 quality."""

    uptime_s: float
    battery_pct: float | None = None
    shutter: Shutter | None = None
    tamper: bool = False
    link: float | None = None
    ts: float | None = None


def decode_health(payload: bytes, device_id: str | None = None) -> Health:
    obj = decode_object(payload)
    _only(
        obj, {"uptime_s", "battery_pct", "shutter", "tamper", "link", "ts"}, {"uptime_s"}, device_id
    )
    tamper = obj.get("tamper", False)
    if not isinstance(tamper, bool):
        raise PayloadError("wrong_type", "tamper must be true or false")
    uptime = _number(obj, "uptime_s", 0, 1e10, optional=False)
    assert uptime is not None
    return Health(
        uptime_s=uptime,
        battery_pct=_number(obj, "battery_pct", 0, 100),
        shutter=None if obj.get("shutter") is None else _enum(obj, "shutter", Shutter),
        tamper=tamper,
        link=_number(obj, "link", 0, 1),
        ts=_number(obj, "ts", 0, 1e11),
    )


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    ts: float | None = None
    session_id: str | None = None


def decode_event(payload: bytes, device_id: str | None = None) -> Event:
    obj = decode_object(payload)
    _only(obj, {"type", "ts", "session_id"}, {"type"}, device_id)
    return Event(
        type=_enum(obj, "type", EventType),
        ts=_number(obj, "ts", 0, 1e11),
        session_id=_str(obj, "session_id", 64, optional=True),
    )


# ---------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class Command:
    """A command to a device. ``args`` holds op-specific values (e.g. drive speed, scene name)."""

    id: str
    op: CommandOp
    args: dict[str, Any] = field(default_factory=dict)


def decode_command(payload: bytes) -> Command:
    obj = decode_object(payload)
    if "id" not in obj or "op" not in obj:
        raise PayloadError("missing_field", "a command needs id and op")
    cid = _str(obj, "id", 64)
    assert cid is not None
    op = _enum(obj, "op", CommandOp)
    args = {k: v for k, v in obj.items() if k not in {"id", "op"}}
    return Command(id=cid, op=op, args=args)


#: The longest caller name a ``ring`` may carry (as long as a staff display name may be).
MAX_CALLER_CHARS = 200


@dataclass(frozen=True, slots=True)
class Ring:
    """``ring``'s arguments: the call's session, whether the phone answers at once (the backend
    saw an ``auto_answer`` consent), how long it rings, and optionally who calls: the display
    name the phone's screen shows (a staff member's name; never logged)."""

    session_id: str
    auto_answer: bool = False
    timeout_s: float | None = None
    caller: str | None = field(default=None, repr=False)


def decode_ring(command: Command) -> Ring:
    """Validate a ``ring`` command's arguments; ``PayloadError`` for anything else."""
    if command.op is not CommandOp.RING:
        raise PayloadError("bad_value", "not a ring command")
    args = command.args
    _only(args, {"session_id", "auto_answer", "timeout_s", "caller"}, {"session_id"})
    auto_answer = args.get("auto_answer", False)
    if not isinstance(auto_answer, bool):
        raise PayloadError("wrong_type", "auto_answer must be true or false")
    caller = _str(args, "caller", MAX_CALLER_CHARS, optional=True)
    if caller is not None and not caller.strip():
        raise PayloadError("bad_value", "caller must not be blank")
    session_id = _str(args, "session_id", 64)
    assert session_id is not None
    return Ring(
        session_id=session_id,
        auto_answer=auto_answer,
        timeout_s=_number(args, "timeout_s", 0, 86400),
        caller=caller,
    )


@dataclass(frozen=True, slots=True)
class CommandAck:
    id: str
    ok: bool
    detail: str | None = None


def decode_ack(payload: bytes) -> CommandAck:
    obj = decode_object(payload)
    _only(obj, {"id", "ok", "detail"}, {"id", "ok"})
    ok = obj["ok"]
    if not isinstance(ok, bool):
        raise PayloadError("wrong_type", "ok must be true or false")
    cid = _str(obj, "id", 64)
    assert cid is not None
    return CommandAck(id=cid, ok=ok, detail=_str(obj, "detail", 256, optional=True))


# ---------------------------------------------------------------- backend status


def decode_server_status(payload: bytes) -> Presence:
    obj = decode_object(payload)
    return _enum(obj, "state", Presence)


# ================================================================ signalling envelope

MAX_SDP_BYTES = 64 * 1024
MAX_MESSAGE_BYTES = 160 * 1024  # an SDP of 64 KiB grows when JSON escapes its line ends
MAX_CANDIDATE_CHARS = 1024
SESSION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_DEVICE_ID_RE = re.compile(r"^[a-z0-9-]{1,64}$")
_SDP_LINE_RE = re.compile(r"^[a-z]=[^\x00-\x08\x0a-\x1f\x7f]*$")
_EE = TypeVar("_EE", bound=StrEnum)


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


def decode_envelope(
    data: bytes | str, *, allowed: frozenset[MessageType] | None = None
) -> Envelope:
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
    return decode_envelope_object(obj, allowed=allowed)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_envelope_object(
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
            return Bye(s, reason=_env_enum(obj, "reason", ByeReason))
        case MessageType.ERROR:
            message = obj.get("message")
            if not isinstance(message, str) or len(message) > 512:
                raise EnvelopeError("wrong_type", "message must be a string of at most 512")
            return Error(code=_code(obj, "code"), message=message, session_id=sid)
        case MessageType.DRIVE:
            return Drive(s, linear=_num(obj, "linear", -1, 1), angular=_num(obj, "angular", -1, 1))
        case MessageType.VIDEO:
            return Video(s, frames=_env_int(obj, "frames", 0, 2**53))
        case MessageType.ACK:
            return Ack(s, of=_env_enum(obj, "of", MessageType))
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


def _env_enum(obj: dict[str, Any], key: str, enum: type[_EE]) -> _EE:
    value = obj.get(key)
    if isinstance(value, str):
        try:
            return enum(value)
        except ValueError:
            pass
    raise EnvelopeError("bad_value", f"{key} must be one of {', '.join(enum)}")


def _opt_enum(obj: dict[str, Any], key: str, enum: type[_EE]) -> _EE | None:
    return None if obj.get(key) is None else _env_enum(obj, key, enum)


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


def _env_int(obj: dict[str, Any], key: str, lo: int, hi: int) -> int:
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
        index = _env_int(obj, "sdp_mline_index", 0, 63)
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
