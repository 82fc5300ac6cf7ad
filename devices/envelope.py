"""The signalling envelope (DESIGN.md, "Signalling contract"): a pure, strict codec.

One JSON object per message, ``{"type": ..., "session_id": ..., ...}``, the same on the browser
WebSocket ``/ws/signal`` and on a device's ``webrtc/in`` / ``webrtc/out`` topics.

========== ============== =================================================================
type       sent by        fields besides ``type`` and ``session_id``
========== ============== =================================================================
request    client         ``device_id``, ``purpose`` (view|call|probe), and what the look is
                          owed to: ``check_id`` (a due check) or ``reason`` + ``note`` (an
                          extra look); or ``extend`` (reason)
granted    server         ``device_id``, ``purpose``, ``ice_servers``, ``deadline`` (Unix s),
                          ``cap_s``, ``ring_timeout_s`` (calls), ``budget_s`` (a view's
                          seconds left: less than ``cap_s`` when a check's view is re-opened)
denied     server         ``reason`` (stable code)
offer      client, server ``sdp``; ``ice_servers`` when the server forwards it to a device;
                          a probe's also ``stream`` (:class:`ProbeStream`: the size and rate
                          it asks the camera for)
answer     device, server ``sdp``
candidate  all            ``candidate`` (``""`` = end of candidates), ``sdp_mid``,
                          ``sdp_mline_index``
bye        all            ``reason``: timeout|withdrawn|declined|operator|device_lost|no_answer
error      server, device ``code``, ``message``; ``session_id`` may be null
drive      client         ``linear``, ``angular`` in [-1, 1] (video phone during a call)
dock       client         none: the video phone drives back to its charger (during a call)
unit       device, server what the rolling phone reports during the call: ``event``
                          (bumped|cliff|docked|low_battery, or none) and ``battery_pct``
video      client         ``frames``: frames the caller has decoded so far (staleness)
ack        server         ``of``: the type acknowledged (``drive``, ``dock``)
stats      device         ``frames``, ``video_s``: video frames the device sent in the session
                          and the seconds they covered, once, when the session ends
========== ============== =================================================================

Each type is one msgspec Struct below, tagged by ``type`` (its class name in lower case): the
fields, types and ranges are declared on it, the rules across fields (and the SDP and candidate
grammar) in its ``__post_init__``, and :mod:`kernel.codec` decodes the union. Decoding refuses
anything else with :class:`EnvelopeError` (a ``PayloadError``) carrying a stable ``reason`` and,
when it could be read, the ``session_id``. SDP is at most :data:`MAX_SDP_BYTES` and must look
like SDP; it is never part of an error text or ``repr``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, ClassVar

import msgspec

from devices.errors import PayloadError
from kernel import codec

MAX_SDP_BYTES = 64 * 1024
MAX_MESSAGE_BYTES = 160 * 1024  # an SDP of 64 KiB grows when JSON escapes its line ends
MAX_CANDIDATE_CHARS = 1024
SESSION_ID_RE = re.compile(rf"^[A-Za-z0-9_-]{{8,64}}{codec.END}")
CODE_RE = re.compile(rf"^[a-z][a-z0-9_]{{0,63}}{codec.END}")
# SDP whose CRLFs became LFs: lines, each empty or ``x=...`` free of control characters (tab
# allowed). Unambiguous (a line cannot hold a LF), so matching is linear in the length.
_SDP_LINE = r"(?:[a-z]=[^\x00-\x08\x0a-\x1f\x7f]*)?"
_SDP_LINES = re.compile(f"{_SDP_LINE}(?:\n{_SDP_LINE})*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

SessionId = Annotated[str, msgspec.Meta(pattern=SESSION_ID_RE.pattern)]
DeviceId = Annotated[str, msgspec.Meta(pattern=rf"^[a-z0-9-]{{1,64}}{codec.END}")]
Code = Annotated[str, msgspec.Meta(pattern=CODE_RE.pattern)]
IceUrl = Annotated[str, msgspec.Meta(max_length=512, pattern=r"^(?:stun|turns?):")]
IceSecret = Annotated[str, msgspec.Meta(max_length=512)]
Speed = Annotated[float, msgspec.Meta(ge=-1, le=1)]
CheckId = Annotated[
    str, msgspec.Meta(pattern=rf"^[0-9]{{8}}\.[0-9]{{4}}\.[a-z0-9-]{{1,64}}{codec.END}")
]


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
    STATS = "stats"
    DOCK = "dock"
    UNIT = "unit"


#: Types a browser, probe or ``homecare view`` may send.
CLIENT_TYPES = frozenset(
    {
        MessageType.REQUEST,
        MessageType.OFFER,
        MessageType.CANDIDATE,
        MessageType.BYE,
        MessageType.DRIVE,
        MessageType.VIDEO,
        MessageType.DOCK,
    }
)
#: Types a device may send on ``webrtc/out`` (``error``: it refused a message of a session).
DEVICE_TYPES = frozenset(
    {
        MessageType.ANSWER,
        MessageType.CANDIDATE,
        MessageType.BYE,
        MessageType.ERROR,
        MessageType.STATS,
        MessageType.UNIT,
    }
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


class LookReason(StrEnum):
    """Why an operator looks without a due check: an extra look (audited as ``view.extra``,
    capped at the plan's cap with no extension, a deviation in the morning report)."""

    ALARM = "alarm"  # the brukare's safety alarm (trygghetslarm) or a sensor called
    CONCERN_REPORTED = "concern_reported"  # a relative, neighbour or colleague reported a worry
    FOLLOW_UP = "follow_up"  # following up an earlier look, call or visit tonight


MAX_NOTE_CHARS = 500
INDICATOR_NOT_ACKED = "indicator_not_acked"
"""Signalling's ``error`` code (and the audit's ``detail``) when the device did not ack
``indicator on`` in time: device trouble for the look, not a look (hard rule 7)."""


class EnvelopeError(PayloadError):
    """A signalling message breaks the contract. ``session_id`` is set when it could be read."""

    def __init__(
        self, reason: str, detail: str, session_id: str | None = None, field: str = ""
    ) -> None:
        super().__init__(reason, detail, field)
        self.session_id = session_id


# ---------------------------------------------------------------- values


class IceServer(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, gc=False
):
    """One ``RTCIceServer``: ``urls`` are ``stun:``/``turn:``/``turns:`` URLs (one URL alone is
    taken as a list of one)."""

    urls: Annotated[tuple[IceUrl, ...], msgspec.Meta(min_length=1, max_length=8)] | IceUrl
    username: IceSecret | None = None
    credential: IceSecret | None = None

    def __post_init__(self) -> None:
        if isinstance(self.urls, str):
            msgspec.structs.force_setattr(self, "urls", (self.urls,))

    def __repr__(self) -> str:
        hidden = "" if self.credential is None else ", credential=..."
        return f"IceServer(urls={self.urls!r}, username={self.username!r}{hidden})"


#: The sizes a probe may ask a camera for (``stream`` of a probe's ``offer``).
PROBE_SIZES = ((160, 120), (320, 240))
PROBE_FPS = (2.0, 5.0)


class ProbeStream(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """The small, slow stream a probe asks the camera for: ``w`` x ``h`` one of
    :data:`PROBE_SIZES`, ``fps`` 2 to 5. A camera sends that (scaling and dropping frames
    itself), so the backend decodes no more than the motion check uses."""

    w: int
    h: int
    fps: Annotated[float, msgspec.Meta(ge=PROBE_FPS[0], le=PROBE_FPS[1])]

    def __post_init__(self) -> None:
        if (self.w, self.h) not in PROBE_SIZES:
            sizes = " or ".join(f"{w}x{h}" for w, h in PROBE_SIZES)
            raise codec.CodecError("bad_value", "w", f"a probe stream is {sizes}")


class _Message(
    msgspec.Struct,
    frozen=True,
    forbid_unknown_fields=True,
    omit_defaults=True,
    gc=False,
    tag_field="type",
    tag=str.lower,
):
    """A signalling message; ``type`` is its tag on the wire, the class name in lower case."""

    type: ClassVar[MessageType]


class _InSession(_Message, frozen=True):
    session_id: SessionId


class Request(_InSession, frozen=True):
    type: ClassVar[MessageType] = MessageType.REQUEST

    device_id: DeviceId | None = None
    purpose: Purpose | None = None
    extend: ExtendReason | None = None
    #: The due check this look serves (``YYYYMMDD.HHMM.recipient``), or, for an extra look,
    #: ``reason`` and a free-text ``note`` (never logged, never in ``repr``).
    check_id: CheckId | None = None
    reason: LookReason | None = None
    note: Annotated[str, msgspec.Meta(max_length=MAX_NOTE_CHARS)] | None = None

    def __post_init__(self) -> None:
        if self.extend is None and (self.device_id is None or self.purpose is None):
            missing = "device_id" if self.device_id is None else "purpose"
            raise codec.CodecError(
                "missing_field", missing, "a request needs device_id and purpose unless it extends"
            )
        if self.extend is not None and (
            self.check_id is not None or self.reason is not None or self.note is not None
        ):
            raise codec.CodecError(
                "bad_value", "extend", "an extension names no check, reason or note"
            )
        if self.check_id is not None and self.reason is not None:
            raise codec.CodecError(
                "bad_value", "reason", "a look is owed to a check or has a reason, not both"
            )
        if (self.reason is None) != (self.note is None or not self.note.strip()):
            field = "note" if self.reason is not None else "reason"
            raise codec.CodecError(
                "missing_field" if field == "note" else "bad_value",
                field,
                "an extra look needs both a reason and a note that is not blank",
            )

    def __repr__(self) -> str:
        note = "" if self.note is None else ", note=..."
        return (
            f"Request(session_id={self.session_id!r}, device_id={self.device_id!r}, "
            f"purpose={self.purpose!r}, extend={self.extend!r}, check_id={self.check_id!r}, "
            f"reason={self.reason!r}{note})"
        )


def _listed() -> tuple[IceServer, ...]:
    """``granted``'s ``ice_servers`` default: a factory omit_defaults does not treat as empty,
    so the list is always sent, even when there is no server (peers then connect directly)."""
    return ()


class Granted(_InSession, frozen=True, kw_only=True):
    type: ClassVar[MessageType] = MessageType.GRANTED

    device_id: DeviceId
    purpose: Purpose
    ice_servers: Annotated[tuple[IceServer, ...], msgspec.Meta(max_length=8)] = msgspec.field(
        default_factory=_listed
    )
    deadline: Annotated[float, msgspec.Meta(ge=0, le=1e11)]
    cap_s: Annotated[float, msgspec.Meta(ge=0, le=86400)]
    ring_timeout_s: Annotated[float, msgspec.Meta(ge=0, le=3600)] | None = None
    #: A view's seconds left when it was granted: the check's budget, less than ``cap_s`` when
    #: the view of a check is re-opened (the client counts down from it, not from ``cap_s``).
    budget_s: Annotated[float, msgspec.Meta(ge=0, le=86400)] | None = None


class Denied(_InSession, frozen=True):
    type: ClassVar[MessageType] = MessageType.DENIED

    reason: Code


class Offer(_InSession, frozen=True):
    type: ClassVar[MessageType] = MessageType.OFFER

    sdp: str
    ice_servers: Annotated[tuple[IceServer, ...], msgspec.Meta(max_length=8)] = ()
    #: A probe's ask: the size and rate the camera should send (absent: what it sends).
    stream: ProbeStream | None = None

    def __post_init__(self) -> None:
        problem = sdp_problem(self.sdp)
        if problem is not None:
            raise codec.CodecError(problem[0], "sdp", problem[1])

    def __repr__(self) -> str:
        return (
            f"Offer(session_id={self.session_id!r}, sdp=..., ice_servers={self.ice_servers!r},"
            f" stream={self.stream!r})"
        )


class Answer(_InSession, frozen=True):
    type: ClassVar[MessageType] = MessageType.ANSWER

    sdp: str

    def __post_init__(self) -> None:
        problem = sdp_problem(self.sdp)
        if problem is not None:
            raise codec.CodecError(problem[0], "sdp", problem[1])

    def __repr__(self) -> str:
        return f"Answer(session_id={self.session_id!r}, sdp=...)"


class Candidate(_InSession, frozen=True):
    """A trickled ICE candidate; ``candidate == ""`` marks the end of candidates."""

    type: ClassVar[MessageType] = MessageType.CANDIDATE

    candidate: str
    sdp_mid: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    sdp_mline_index: Annotated[int, msgspec.Meta(ge=0, le=63)] | None = None

    def __post_init__(self) -> None:
        if not self.candidate:
            return
        if not is_candidate(self.candidate):
            raise codec.CodecError(
                "bad_candidate", "candidate", "candidate must be an a=candidate value"
            )
        if self.sdp_mid is None and self.sdp_mline_index is None:
            raise codec.CodecError(
                "missing_field", "sdp_mid", "a candidate needs sdp_mid or sdp_mline_index"
            )

    def __repr__(self) -> str:
        return (
            f"Candidate(session_id={self.session_id!r}, candidate=..., "
            f"sdp_mid={self.sdp_mid!r}, sdp_mline_index={self.sdp_mline_index!r})"
        )

    @property
    def is_end(self) -> bool:
        return self.candidate == ""


class Bye(_InSession, frozen=True):
    type: ClassVar[MessageType] = MessageType.BYE

    reason: ByeReason


class Error(_Message, frozen=True, omit_defaults=False):
    """A refusal. ``session_id`` is sent even when null (the message named no session)."""

    type: ClassVar[MessageType] = MessageType.ERROR

    code: Code
    message: Annotated[str, msgspec.Meta(max_length=512)]
    session_id: SessionId | None = None


class Drive(_InSession, frozen=True):
    """Move a video phone: ``linear`` forward/back and ``angular`` turn, each in [-1, 1]."""

    type: ClassVar[MessageType] = MessageType.DRIVE

    linear: Speed
    angular: Speed


class Dock(_InSession, frozen=True):
    """The caller sends the video phone back to its charger (it drives there by itself)."""

    type: ClassVar[MessageType] = MessageType.DOCK


class UnitEvent(StrEnum):
    """What a rolling phone reports during a call (``unit.event``)."""

    BUMPED = "bumped"
    CLIFF = "cliff"
    DOCKED = "docked"
    LOW_BATTERY = "low_battery"


class Unit(_InSession, frozen=True):
    """What the video phone of a call reports of itself (on its ``webrtc/out``), passed on to
    the caller: ``event`` (none when only the battery is news) and ``battery_pct``."""

    type: ClassVar[MessageType] = MessageType.UNIT

    event: UnitEvent | None = None
    battery_pct: Annotated[float, msgspec.Meta(ge=0, le=100)] | None = None


class Video(_InSession, frozen=True):
    """The caller's client reports how many frames it has decoded so far (monotonic count)."""

    type: ClassVar[MessageType] = MessageType.VIDEO

    frames: Annotated[int, msgspec.Meta(ge=0, le=2**53)]


class Stats(_InSession, frozen=True):
    """What the device sent in the session, reported once when it ends: ``frames`` of video
    and ``video_s``, the seconds from its first to its last frame. The server records it as the
    video delivered (an outcome ``ok`` needs at least a second of it)."""

    type: ClassVar[MessageType] = MessageType.STATS

    frames: Annotated[int, msgspec.Meta(ge=0, le=2**53)]
    video_s: Annotated[float, msgspec.Meta(ge=0, le=86400)]


class Ack(_InSession, frozen=True):
    type: ClassVar[MessageType] = MessageType.ACK

    of: MessageType


Envelope = (
    Request
    | Granted
    | Denied
    | Offer
    | Answer
    | Candidate
    | Bye
    | Error
    | Drive
    | Video
    | Ack
    | Stats
    | Dock
    | Unit
)
_DECODER: msgspec.json.Decoder[Envelope] = msgspec.json.Decoder(Envelope)


# ---------------------------------------------------------------- encoding


def as_json(env: Envelope) -> dict[str, Any]:
    """The JSON object of an envelope as sent (``None`` fields left out, but an error's
    ``session_id``); lists, not tuples, so it can be changed and compared like parsed JSON."""
    return msgspec.json.decode(codec.encode(env))  # type: ignore[no-any-return]


def encode(env: Envelope) -> str:
    """Compact JSON text of an envelope."""
    return codec.encode(env).decode("utf-8")


def encode_bytes(env: Envelope) -> bytes:
    return codec.encode(env)


# ---------------------------------------------------------------- decoding


def decode(data: bytes | str, *, allowed: frozenset[MessageType] | None = None) -> Envelope:
    """Parse and validate one envelope; ``allowed`` limits the types the sender may use.

    Raises :class:`EnvelopeError` with one of the reasons ``too_large``, ``bad_encoding``,
    ``bad_json``, ``unknown_type``, ``unexpected_type``, ``missing_field``, ``unknown_field``,
    ``wrong_type``, ``bad_value``, ``out_of_range``, ``bad_session_id``, ``sdp_too_large``,
    ``bad_sdp``, ``bad_candidate``.
    """
    if isinstance(data, str):
        raw = data.encode("utf-8", "surrogatepass")
    else:
        raw = data if isinstance(data, bytes) else bytes(data)
    if len(raw) > MAX_MESSAGE_BYTES:
        raise EnvelopeError("too_large", f"message is {len(raw)} bytes, limit {MAX_MESSAGE_BYTES}")
    try:
        message = codec.decode(raw, _DECODER)
    except codec.CodecError as e:
        if e.reason in {"bad_encoding", "bad_json"}:
            raise EnvelopeError(e.reason, e.detail) from None
        try:  # msgspec stops at the first refused value: the rest may not even be JSON
            head = codec.decode(raw, _HEAD)
        except codec.CodecError as bad:
            raise EnvelopeError(bad.reason, bad.detail) from None
        raise _refusal(e, head, allowed) from None
    return _sent_by(message, allowed)


def decode_object(
    obj: dict[str, Any], *, allowed: frozenset[MessageType] | None = None
) -> Envelope:
    """Validate an already parsed JSON object (see :func:`decode`)."""
    try:
        message: Envelope = codec.convert(obj, Envelope)  # type: ignore[arg-type]
    except codec.CodecError as e:
        if not isinstance(obj, dict):
            raise EnvelopeError("bad_json", "message must be a JSON object") from None
        head = _Head(obj.get("type", msgspec.UNSET), obj.get("session_id"))
        raise _refusal(e, head, allowed) from None
    return _sent_by(message, allowed)


class _Head(msgspec.Struct, gc=False):
    """What a refusal names, read leniently from a message its Struct refused."""

    type: Any = msgspec.UNSET
    session_id: Any = None


_HEAD = msgspec.json.Decoder(_Head)
_TYPES = frozenset(MessageType)


def _sent_by(message: Envelope, allowed: frozenset[MessageType] | None) -> Envelope:
    if allowed is not None and message.type not in allowed:
        sid = getattr(message, "session_id", None)
        raise EnvelopeError("unexpected_type", f"{message.type} may not be sent here", sid)
    return message


def _refusal(
    e: codec.CodecError, head: _Head, allowed: frozenset[MessageType] | None
) -> EnvelopeError:
    """The refusal of a message that breaks its Struct: the type first, then the field."""
    sid = head.session_id if is_session_id(head.session_id) else None
    if head.type is msgspec.UNSET:
        return EnvelopeError("missing_field", "missing field 'type'", sid, "type")
    if not isinstance(head.type, str) or head.type not in _TYPES:
        return EnvelopeError("unknown_type", "type is not a known signalling message", sid, "type")
    if allowed is not None and head.type not in allowed:
        return EnvelopeError("unexpected_type", f"{head.type} may not be sent here", sid, "type")
    if e.field == "session_id" and e.reason != "missing_field":
        detail = "session_id must be 8-64 of A-Z a-z 0-9 _ -"
        return EnvelopeError("bad_session_id", detail, None, e.field)
    return EnvelopeError(e.reason, e.detail, sid, e.field)


# ---------------------------------------------------------------- field checks


def is_session_id(value: object) -> bool:
    return isinstance(value, str) and SESSION_ID_RE.fullmatch(value) is not None


def sdp_problem(sdp: object) -> tuple[str, str] | None:
    """Why ``sdp`` is not a plausible session description within the size limit: a stable
    reason and the words for it, or ``None`` when it is one.

    Checks structure only (``v=0`` first, ``o=``/``s=`` lines, at least one ``m=`` section, every
    line ``x=...`` without control characters); the WebRTC stacks parse the rest.
    """
    if not isinstance(sdp, str):
        return "wrong_type", "sdp must be a string"
    size = len(sdp.encode("utf-8", "surrogatepass"))
    if size > MAX_SDP_BYTES:
        return "sdp_too_large", f"sdp is {size} bytes, limit {MAX_SDP_BYTES}"
    text = sdp.replace("\r\n", "\n")
    if text.lstrip("\n").partition("\n")[0] != "v=0":
        return "bad_sdp", "sdp must start with v=0"
    if _SDP_LINES.fullmatch(text) is None:
        return "bad_sdp", "sdp has a malformed line"
    starts = "\n" + text
    if "\no=" not in starts or "\ns=" not in starts or "\nm=" not in starts:
        return "bad_sdp", "sdp needs o=, s= and at least one m= line"
    return None


def check_sdp(sdp: object) -> str:
    """Return ``sdp`` if it is a plausible session description (see :func:`sdp_problem`)."""
    problem = sdp_problem(sdp)
    if problem is not None:
        raise EnvelopeError(*problem, field="sdp")
    assert isinstance(sdp, str)
    return sdp


def is_candidate(text: str) -> bool:
    """Whether ``text`` looks like an ``a=candidate`` value (the end-of-candidates ``""`` aside):
    ``candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> ...``
    within :data:`MAX_CANDIDATE_CHARS`, without control characters."""
    bits = text.split(" ", 7)
    return (
        len(text) <= MAX_CANDIDATE_CHARS
        and text.startswith("candidate:")
        and len(bits) == 8
        and bits[6] == "typ"
        and _CONTROL.search(text) is None
    )
