"""The MQTT wire contract (DESIGN.md, "Device contract"): topics and payloads, pure.

Topics are ``{prefix}/dev/{device_id}/{channel}``; ids are ``[a-z0-9-]{1,64}``. Each payload is
one msgspec Struct below: a JSON object of at most :data:`MAX_PAYLOAD_BYTES` whose fields, types
and ranges the Struct declares, decoded by :mod:`kernel.codec`. Unknown fields, wrong types and
out-of-range values raise :class:`~devices.errors.PayloadError` with the codec's stable ``reason``
(``bad_encoding``, ``bad_json``, ``unknown_field``, ``missing_field``, ``wrong_type``,
``out_of_range``, ``bad_value``) plus ``too_large``; a payload's optional ``id`` that is not its
topic's device is ``foreign_topic`` (``bad_device_id`` without a topic). ``encode()`` gives the
exact bytes a device or the backend publishes: compact JSON, fields left at ``None`` omitted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import msgspec

from devices.errors import PayloadError
from kernel import codec

MAX_PAYLOAD_BYTES = 64 * 1024
DEVICE_ID_RE = re.compile(rf"^[a-z0-9-]{{1,64}}{codec.END}")

DeviceId = Annotated[str, msgspec.Meta(pattern=DEVICE_ID_RE.pattern)]
UnixTime = Annotated[float, msgspec.Meta(ge=0, le=1e11)]
"""Seconds since 1970 (UTC), until the year 5138."""


class Channel(StrEnum):
    STATUS = "status"
    META = "meta"
    HEALTH = "health"
    EVENT = "event"
    CMD = "cmd"
    CMD_ACK = "cmd/ack"
    WEBRTC_IN = "webrtc/in"
    WEBRTC_OUT = "webrtc/out"
    PROBE = "probe"  # a home probe's answer (device -> backend): numbers only


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
    HOME_PROBE = "home_probe"  # runs the motion check on its own frames (``probe`` command)


class EventType(StrEnum):
    TAMPER = "tamper"
    PRIVACY_SWITCH = "privacy_switch"
    UNPLUGGED = "unplugged"
    CALL_ANSWER = "call_answer"
    CALL_DECLINE = "call_decline"
    BUTTON = "button"
    DOCKED = "docked"
    LOW_BATTERY = "low_battery"
    BIND_BUTTON = "bind_button"  # the installer pressed the bind button (proof of a binding)
    BUMPED = "bumped"  # a rolling unit touched something and stopped
    CLIFF = "cliff"  # a rolling unit saw an edge (stairs) ahead and stopped


class CommandOp(StrEnum):
    RING = "ring"
    HANGUP = "hangup"
    WAKE = "wake"
    SLEEP = "sleep"
    DRIVE = "drive"
    DOCK = "dock"
    SCENE = "scene"
    INDICATOR = "indicator"
    BIND_CODE = "bind_code"
    PROBE = "probe"  # run the motion check at home and answer on ``probe`` (numbers only)


class Shutter(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


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


def audit_anchor_topic(prefix: str) -> str:
    """The audit chain's newest signed head (retained; ``kernel.audit.anchor``), for anyone
    with read access to keep outside the database."""
    return f"{prefix}/server/audit-anchor"


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


# ---------------------------------------------------------------- payloads


class Payload(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, gc=False
):
    """One MQTT payload: a strict JSON object. ``id``, where a payload has it, may repeat the
    topic's device id; it must then be that id (checked against the topic, never believed)."""

    def encode(self) -> bytes:
        return codec.encode(self)


class Status(Payload, frozen=True):
    """``status``: presence with the device's session counter; ``ts`` is Unix seconds if sent."""

    state: Presence
    session: Annotated[int, msgspec.Meta(ge=0, le=2**53)]
    ts: UnixTime | None = None
    id: DeviceId | None = None


class VideoSpec(Payload, frozen=True):
    w: Annotated[int, msgspec.Meta(ge=16, le=7680)]
    h: Annotated[int, msgspec.Meta(ge=16, le=4320)]
    fps: Annotated[float, msgspec.Meta(ge=0.1, le=120)]


class Meta(Payload, frozen=True):
    """``meta`` (retained): what the device is. ``caps`` keep their first order, once each."""

    kind: DeviceKind
    fw: Annotated[str, msgspec.Meta(max_length=64)]
    caps: Annotated[tuple[Capability, ...], msgspec.Meta(max_length=16)]
    video: VideoSpec | None = None
    id: DeviceId | None = None

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "caps", tuple(dict.fromkeys(self.caps)))


class VideoState(StrEnum):
    """What a device's own video source shows (the device agent's health): ``ok``, ``no_frames``
    (nothing arrives from the camera: unplugged, an RTSP camera gone) or ``covered`` (a flat,
    featureless picture: the lens covered)."""

    OK = "ok"
    NO_FRAMES = "no_frames"
    COVERED = "covered"


class VideoHealth(Payload, frozen=True):
    """``health.video``: the state of the device's video source, the frames a second arriving
    from it (measured) and the mean luma of its picture (exposure, 0-255; absent with no frames)."""

    state: VideoState
    fps: Annotated[float, msgspec.Meta(ge=0, le=240)] = 0.0
    luma: Annotated[float, msgspec.Meta(ge=0, le=255)] | None = None


class Health(Payload, frozen=True):
    """Periodic health. ``battery_pct`` 0-100 (absent on mains), ``link`` 0-1 quality,
    ``video`` the state of a real video source (the device agent's)."""

    uptime_s: Annotated[float, msgspec.Meta(ge=0, le=1e10)]
    battery_pct: Annotated[float, msgspec.Meta(ge=0, le=100)] | None = None
    shutter: Shutter | None = None
    # A factory rather than ``= False``: omit_defaults drops a plain default, and ``tamper``
    # has always been on the wire (and in the stored health) even when false.
    tamper: bool = msgspec.field(default_factory=bool)
    link: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    ts: UnixTime | None = None
    video: VideoHealth | None = None
    id: DeviceId | None = None

    def as_json(self) -> dict[str, Any]:
        """The health as stored for the device (without the ``id`` it may have repeated)."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        out.pop("id", None)
        return out


class Event(Payload, frozen=True):
    """Something happened. ``session_id`` names the call it belongs to; a unit on a battery may
    say its charge with it (``battery_pct``, 0-100), so a caller sees it during the call."""

    type: EventType
    ts: UnixTime | None = None
    session_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    battery_pct: Annotated[float, msgspec.Meta(ge=0, le=100)] | None = None
    id: DeviceId | None = None


_FromDevice = TypeVar("_FromDevice", Status, Meta, Health, Event)
_T = TypeVar("_T")
_STATUS = msgspec.json.Decoder(Status)
_META = msgspec.json.Decoder(Meta)
_HEALTH = msgspec.json.Decoder(Health)
_EVENT = msgspec.json.Decoder(Event)


def _decode(payload: bytes, decoder: msgspec.json.Decoder[_T]) -> _T:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(
            "too_large", f"payload is {len(payload)} bytes, limit {MAX_PAYLOAD_BYTES}"
        )
    try:
        return codec.decode(payload, decoder)
    except codec.CodecError as e:
        raise PayloadError(e.reason, e.detail, e.field) from None


def _from_device(
    payload: bytes, decoder: msgspec.json.Decoder[_FromDevice], device_id: str | None
) -> _FromDevice:
    """Decode a device's own payload; its ``id``, if sent, must name ``device_id``."""
    try:
        message = _decode(payload, decoder)
    except PayloadError as e:
        if e.field != "id":
            raise
        message = None  # an id that is no device id names no topic's device either
    if message is None or (device_id is not None and message.id not in (None, device_id)):
        if device_id is not None:
            raise PayloadError("foreign_topic", "payload names another device than its topic", "id")
        raise PayloadError("bad_device_id", "id must be a device id", "id")
    return message


def decode_status(payload: bytes, device_id: str | None = None) -> Status:
    return _from_device(payload, _STATUS, device_id)


def decode_meta(payload: bytes, device_id: str | None = None) -> Meta:
    return _from_device(payload, _META, device_id)


def decode_health(payload: bytes, device_id: str | None = None) -> Health:
    return _from_device(payload, _HEALTH, device_id)


def decode_event(payload: bytes, device_id: str | None = None) -> Event:
    return _from_device(payload, _EVENT, device_id)


# ---------------------------------------------------------------- commands


class Command(msgspec.Struct, frozen=True):
    """A command to a device. ``args`` holds op-specific values (e.g. drive speed, scene name),
    sent beside ``id`` and ``op`` in one flat object; :func:`decode_ring` checks a ring's."""

    id: Annotated[str, msgspec.Meta(max_length=64)]
    op: CommandOp
    args: dict[str, Any] = msgspec.field(default_factory=dict)

    def encode(self) -> bytes:
        return codec.encode({"id": self.id, "op": self.op, **self.args})


_OBJECT = msgspec.json.Decoder(dict[str, Any])


def decode_command(payload: bytes) -> Command:
    obj = _decode(payload, _OBJECT)
    args = {k: v for k, v in obj.items() if k not in {"id", "op"}}
    head = {k: obj[k] for k in ("id", "op") if k in obj}
    try:
        return codec.convert({**head, "args": args}, Command)
    except codec.CodecError as e:
        raise PayloadError(e.reason, e.detail, e.field) from None


#: The longest caller name a ``ring`` may carry (as long as a staff display name may be).
MAX_CALLER_CHARS = 200


class ScreenLanguage(StrEnum):
    """The languages a unit's screen speaks (``ring.lang``): Swedish, English and Finnish (a
    national minority language); the care record's language picks one (:meth:`of`)."""

    SV = "sv"
    EN = "en"
    FI = "fi"

    @classmethod
    def of(cls, tag: str | None) -> ScreenLanguage:
        """The screen language for a care record's language tag (``sv``, ``fi-FI``, ``en-GB``,
        ...): its primary subtag when the screen speaks it, else Swedish."""
        primary = (tag or "").strip().lower().replace("_", "-").split("-", 1)[0]
        try:
            return cls(primary)
        except ValueError:
            return cls.SV


class Ring(Payload, frozen=True):
    """``ring``'s arguments: the call's session, whether the phone answers at once (the backend
    saw an ``auto_answer`` consent), how long it rings, and optionally who calls: the display
    name the phone's screen shows (a staff member's name; never logged, never in ``repr``)."""

    session_id: Annotated[str, msgspec.Meta(max_length=64)]
    auto_answer: bool = msgspec.field(default_factory=bool)  # always sent, see Health.tamper
    timeout_s: Annotated[float, msgspec.Meta(ge=0, le=86400)] | None = None
    caller: Annotated[str, msgspec.Meta(max_length=MAX_CALLER_CHARS)] | None = None
    #: An auto-answered call: chime and show ``caller`` for this long before any video flows.
    announce_s: Annotated[float, msgspec.Meta(ge=0, le=60)] | None = None
    #: The brukare's language (from the care record): the screen's texts and the spoken name.
    lang: ScreenLanguage | None = None

    def __post_init__(self) -> None:
        if self.caller is not None and not self.caller.strip():
            raise codec.CodecError("bad_value", "caller", "caller must not be blank")

    def __repr__(self) -> str:
        caller = "" if self.caller is None else ", caller=..."
        return (
            f"Ring(session_id={self.session_id!r}, auto_answer={self.auto_answer!r}, "
            f"timeout_s={self.timeout_s!r}, announce_s={self.announce_s!r}, "
            f"lang={self.lang!r}{caller})"
        )

    def command(self, command_id: str) -> Command:
        return Command(command_id, CommandOp.RING, self.args())

    def args(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


def decode_ring(command: Command) -> Ring:
    """Validate a ``ring`` command's arguments; ``PayloadError`` for anything else."""
    if command.op is not CommandOp.RING:
        raise PayloadError("bad_value", "not a ring command", "op")
    try:
        return codec.convert(command.args, Ring)
    except codec.CodecError as e:
        raise PayloadError(e.reason, e.detail, e.field) from None


class LivePurpose(StrEnum):
    """What the ``indicator`` says is live: someone or something is looking (``view``,
    ``probe``: the motion check looks too) or a call is on (``call``)."""

    VIEW = "view"
    PROBE = "probe"
    CALL = "call"


class Indicator(Payload, frozen=True):
    """``indicator``'s arguments: the server tells the device that a session that shows its
    picture started (``on``) or ended (``off``); the device shows it (a lamp, the screen's
    *Hemtjänsten tittar*) and acks within :data:`INDICATOR_ACK_S`. ``remaining_s`` is the
    look's budget left, for a device that counts it down on screen (when the plan says so)."""

    on: bool
    session_id: Annotated[str, msgspec.Meta(max_length=64)]
    purpose: LivePurpose
    remaining_s: Annotated[float, msgspec.Meta(ge=0, le=86400)] | None = None

    def command(self, command_id: str) -> Command:
        return Command(command_id, CommandOp.INDICATOR, self.args())

    def args(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


#: A device that does not ack ``indicator`` within this many seconds is in trouble for the check.
INDICATOR_ACK_S = 2.0


def decode_indicator(command: Command) -> Indicator:
    """Validate an ``indicator`` command's arguments; ``PayloadError`` for anything else."""
    if command.op is not CommandOp.INDICATOR:
        raise PayloadError("bad_value", "not an indicator command", "op")
    try:
        return codec.convert(command.args, Indicator)
    except codec.CodecError as e:
        raise PayloadError(e.reason, e.detail, e.field) from None


BIND_CODE_RE = rf"^[0-9]{{6}}{codec.END}"


class BindCode(Payload, frozen=True):
    """``bind_code``'s arguments: the one-time code of a binding request, which a video phone
    shows large on its screen until ``expires_at`` (Unix seconds) or until another ``bind_code``
    replaces it, so the installer can read it out to the person confirming the binding. Never
    logged, never in ``repr``."""

    code: Annotated[str, msgspec.Meta(pattern=BIND_CODE_RE)]
    expires_at: UnixTime

    def __repr__(self) -> str:
        return f"BindCode(code=..., expires_at={self.expires_at!r})"

    def command(self, command_id: str) -> Command:
        return Command(command_id, CommandOp.BIND_CODE, self.args())

    def args(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


def decode_bind_code(command: Command) -> BindCode:
    """Validate a ``bind_code`` command's arguments; ``PayloadError`` for anything else."""
    if command.op is not CommandOp.BIND_CODE:
        raise PayloadError("bad_value", "not a bind_code command", "op")
    try:
        return codec.convert(command.args, BindCode)
    except codec.CodecError as e:
        raise PayloadError(e.reason, e.detail, e.field) from None


#: A ``drive`` command's longest validity (the dead-man window), and its default: a unit that
#: gets no fresh ``drive`` within this many milliseconds of the last one stops by itself.
DRIVE_VALID_MS = 500

Speed = Annotated[float, msgspec.Meta(ge=-1, le=1)]


def _drive_valid_ms() -> int:
    """``drive.valid_ms``'s default: a factory, so it is always on the wire (see Health.tamper)."""
    return DRIVE_VALID_MS


class Drive(Payload, frozen=True):
    """``drive``'s arguments: ``linear`` (forward +, back -) and ``angular`` (left +, right -)
    as shares of the unit's top speeds, each -1..1, for the call ``session_id``, valid for
    ``valid_ms`` (1..:data:`DRIVE_VALID_MS`) from its arrival: the dead-man window. A unit
    keeps these speeds until a newer ``drive`` or the window ends, then stops by itself
    (``homeside.drive``). ``0, 0`` stops at once."""

    session_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    linear: Speed
    angular: Speed
    valid_ms: Annotated[int, msgspec.Meta(ge=1, le=DRIVE_VALID_MS)] = msgspec.field(
        default_factory=_drive_valid_ms
    )

    def command(self, command_id: str) -> Command:
        return Command(command_id, CommandOp.DRIVE, self.args())

    def args(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


def decode_drive(command: Command) -> Drive:
    """Validate a ``drive`` command's arguments; ``PayloadError`` for anything else."""
    if command.op is not CommandOp.DRIVE:
        raise PayloadError("bad_value", "not a drive command", "op")
    try:
        return codec.convert(command.args, Drive)
    except codec.CodecError as e:
        raise PayloadError(e.reason, e.detail, e.field) from None


class Dock(Payload, frozen=True):
    """``dock``'s arguments: drive back to the charger by itself, for the call ``session_id``
    when a caller asked (the unit's ``docked`` event names it)."""

    session_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None

    def command(self, command_id: str) -> Command:
        return Command(command_id, CommandOp.DOCK, self.args())

    def args(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


def decode_dock(command: Command) -> Dock:
    """Validate a ``dock`` command's arguments; ``PayloadError`` for anything else."""
    if command.op is not CommandOp.DOCK:
        raise PayloadError("bad_value", "not a dock command", "op")
    try:
        return codec.convert(command.args, Dock)
    except codec.CodecError as e:
        raise PayloadError(e.reason, e.detail, e.field) from None


class CommandAck(Payload, frozen=True):
    id: Annotated[str, msgspec.Meta(max_length=64)]
    ok: bool
    detail: Annotated[str, msgspec.Meta(max_length=256)] | None = None


_ACK = msgspec.json.Decoder(CommandAck)


def decode_ack(payload: bytes) -> CommandAck:
    return _decode(payload, _ACK)


# ---------------------------------------------------------------- backend status


class ServerStatus(msgspec.Struct, frozen=True, gc=False):
    """``server/status`` (retained, and the backend's will). Unknown fields are ignored: another
    version of the backend may say more, and only ``state`` is read."""

    state: Presence
    instance: str | None = None


_SERVER_STATUS = msgspec.json.Decoder(ServerStatus)


def server_status(state: Presence, instance: str) -> bytes:
    return codec.encode(ServerStatus(state, instance))


def decode_server_status(payload: bytes) -> Presence:
    return _decode(payload, _SERVER_STATUS).state


# ---------------------------------------------------------------- the home probe

#: A home probe's id: the session id the ``indicator`` names while it looks (as signalling's).
PROBE_ID_RE = rf"^[A-Za-z0-9_-]{{8,64}}{codec.END}"
ZONE_NAME_RE = rf"^[a-z0-9_-]{{1,32}}{codec.END}"
#: A verdict's kind, reason and number names (their vocabulary is ``vision.verdict``'s, which
#: the backend checks; the contract only bounds their shape).
WORD_RE = rf"^[a-z0-9_]{{1,64}}{codec.END}"
MAX_PROBE_ZONES = 8
MAX_ZONE_POINTS = 32
MAX_PROBE_NUMBERS = 48
MAX_PROBE_WINDOW_S = 30.0

ProbeId = Annotated[str, msgspec.Meta(pattern=PROBE_ID_RE)]
ZoneName = Annotated[str, msgspec.Meta(pattern=ZONE_NAME_RE)]
Word = Annotated[str, msgspec.Meta(pattern=WORD_RE)]
_Coord = Annotated[float, msgspec.Meta(ge=0, le=7680)]


class ProbeZone(Payload, frozen=True):
    """One zone of the camera (``bed``, ``floor``, ...): a polygon of 3 to 32 points in the
    pixels of the picture the zones were drawn on."""

    name: ZoneName
    polygon: Annotated[
        tuple[tuple[_Coord, _Coord], ...],
        msgspec.Meta(min_length=3, max_length=MAX_ZONE_POINTS),
    ]

    def __post_init__(self) -> None:
        if self.name == "elsewhere":  # the region outside every zone has that name
            raise codec.CodecError("bad_value", "name", "a zone may not be named elsewhere")


class ProbeZones(Payload, frozen=True):
    """The camera's zones, drawn on a ``w`` x ``h`` picture (scaled to the probed size)."""

    w: Annotated[int, msgspec.Meta(ge=16, le=7680)]
    h: Annotated[int, msgspec.Meta(ge=16, le=4320)]
    zones: Annotated[tuple[ProbeZone, ...], msgspec.Meta(max_length=MAX_PROBE_ZONES)]

    def __post_init__(self) -> None:
        names = [z.name for z in self.zones]
        if len(set(names)) != len(names):
            raise codec.CodecError("bad_value", "zones", "zone names must be unique")
        for zone in self.zones:
            if any(x > self.w or y > self.h for x, y in zone.polygon):
                raise codec.CodecError("out_of_range", "zones", "a zone point is off the picture")


class Probe(Payload, frozen=True):
    """``probe``'s arguments: run the motion check on the device's own frames, ``width`` x
    ``height`` at ``fps`` for ``window_s`` seconds, with the camera's zones, and answer with
    numbers only (:class:`ProbeAnswer` on ``probe``). ``probe_id`` is the look's session: the
    device runs it only while its ``indicator`` shows that session with purpose ``probe``."""

    probe_id: ProbeId
    window_s: Annotated[float, msgspec.Meta(ge=1, le=MAX_PROBE_WINDOW_S)]
    width: Annotated[int, msgspec.Meta(ge=16, le=1920)]
    height: Annotated[int, msgspec.Meta(ge=16, le=1080)]
    fps: Annotated[float, msgspec.Meta(ge=0.5, le=30)]
    zones: ProbeZones | None = None

    def __post_init__(self) -> None:
        if self.width % 2 or self.height % 2:
            raise codec.CodecError("bad_value", "width", "width and height must be even")

    def command(self, command_id: str) -> Command:
        return Command(command_id, CommandOp.PROBE, self.args())

    def args(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


def decode_probe(command: Command) -> Probe:
    """Validate a ``probe`` command's arguments; ``PayloadError`` for anything else."""
    if command.op is not CommandOp.PROBE:
        raise PayloadError("bad_value", "not a probe command", "op")
    try:
        return codec.convert(command.args, Probe)
    except codec.CodecError as e:
        raise PayloadError(e.reason, e.detail, e.field) from None


class ProbeEnded(StrEnum):
    """How a home probe's window ended on the device."""

    WINDOW = "window"  # it watched the whole window
    NO_FRAMES = "no_frames"  # its source gave no usable frame
    FAILED = "failed"  # the analysis failed on the device


class ProbeAnswer(Payload, frozen=True):
    """A home probe's answer on ``probe``: the verdict and the numbers behind it, nothing else
    (no picture). The fields are those of the backend's own probe
    (``supervision.probe.verdict_detail``); ``frames`` is the frames analysed."""

    probe_id: ProbeId
    verdict: Word
    needs_human: bool
    confidence: Annotated[float, msgspec.Meta(ge=0, le=1)]
    reason: Word
    frames: Annotated[int, msgspec.Meta(ge=0, le=100_000)]
    ended: ProbeEnded
    numbers: Annotated[
        dict[Word, Annotated[float, msgspec.Meta(ge=0, le=1e6)]],
        msgspec.Meta(max_length=MAX_PROBE_NUMBERS),
    ]
    where: Word | None = None
    id: DeviceId | None = None


_PROBE_ANSWER = msgspec.json.Decoder(ProbeAnswer)


def decode_probe_answer(payload: bytes, device_id: str | None = None) -> ProbeAnswer:
    """Decode a device's ``probe`` answer; its ``id``, if sent, must name ``device_id``."""
    answer = _decode(payload, _PROBE_ANSWER)
    if device_id is not None and answer.id not in (None, device_id):
        raise PayloadError("foreign_topic", "payload names another device than its topic", "id")
    return answer
