"""The MQTT wire contract (DESIGN.md, "Device contract"): topics and payloads, pure.

Topics are ``{prefix}/dev/{device_id}/{channel}``; ids are ``[a-z0-9-]{1,64}``. Payloads are JSON
objects of at most :data:`MAX_PAYLOAD_BYTES`; unknown fields, wrong types and out-of-range values
raise :class:`~devices.errors.PayloadError` with a stable ``reason`` code. Encoders produce the
exact bytes a device or the backend publishes.
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


def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(
        {k: v for k, v in obj.items() if v is not None}, separators=(",", ":")
    ).encode()


# ---------------------------------------------------------------- status


@dataclass(frozen=True, slots=True)
class Status:
    """``status``: presence with the device's session counter; ``ts`` is Unix seconds if sent."""

    state: Presence
    session: int
    ts: float | None = None

    def encode(self) -> bytes:
        return _dump({"state": self.state.value, "session": self.session, "ts": self.ts})


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

    def encode(self) -> bytes:
        video = (
            None
            if self.video is None
            else {"w": self.video.w, "h": self.video.h, "fps": self.video.fps}
        )
        return _dump(
            {
                "kind": self.kind.value,
                "fw": self.fw,
                "caps": [c.value for c in self.caps],
                "video": video,
            }
        )


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

    def encode(self) -> bytes:
        return _dump(
            {
                "uptime_s": self.uptime_s,
                "battery_pct": self.battery_pct,
                "shutter": None if self.shutter is None else self.shutter.value,
                "tamper": self.tamper,
                "link": self.link,
                "ts": self.ts,
            }
        )

    def as_json(self) -> dict[str, Any]:
        return json.loads(self.encode())  # type: ignore[no-any-return]


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

    def encode(self) -> bytes:
        return _dump({"type": self.type.value, "ts": self.ts, "session_id": self.session_id})


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

    def encode(self) -> bytes:
        return json.dumps(
            {"id": self.id, "op": self.op.value, **self.args}, separators=(",", ":")
        ).encode()


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

    def command(self, command_id: str) -> Command:
        return Command(command_id, CommandOp.RING, self.args())

    def args(self) -> dict[str, Any]:
        out: dict[str, Any] = {"session_id": self.session_id, "auto_answer": self.auto_answer}
        if self.timeout_s is not None:
            out["timeout_s"] = self.timeout_s
        if self.caller is not None:
            out["caller"] = self.caller
        return out


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

    def encode(self) -> bytes:
        return _dump({"id": self.id, "ok": self.ok, "detail": self.detail})


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


def server_status(state: Presence, instance: str) -> bytes:
    return _dump({"state": state.value, "instance": instance})


def decode_server_status(payload: bytes) -> Presence:
    obj = decode_object(payload)
    return _enum(obj, "state", Presence)
