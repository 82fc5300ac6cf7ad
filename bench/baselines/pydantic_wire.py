"""Baseline for ``bench.codecs``: the wire messages as pydantic v2 models (msgspec's rival).

The same definitions as the msgspec Structs of ``devices/topics.py`` and ``devices/envelope.py``
(fields, bounds, patterns and cross-field rules; the SDP and candidate grammar call the same
functions), written the way pydantic v2 is meant to be used: ``extra="forbid"``, strict,
``Annotated`` constraints, validators for the rules, and a discriminated union on ``type``
decoded by one ``TypeAdapter`` with ``validate_json``. The decode functions add what ``devices``
adds around its Structs (the size limit, the payload's ``id`` against its topic, the sender's
allowed types), so the three implementations of ``bench.codecs`` do the same work. Only the
benchmark imports it.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from devices import envelope as env
from devices import topics as t
from devices.errors import PayloadError

# python-re: the patterns are the devices' own, which end with ``kernel.codec.END`` (a lookahead:
# no newline after the end), and pydantic's default Rust engine has no lookaround
_CONFIG = ConfigDict(extra="forbid", strict=True, frozen=True, regex_engine="python-re")
DeviceId = Annotated[str, Field(pattern=t.DEVICE_ID_RE.pattern)]
UnixTime = Annotated[float, Field(ge=0, le=1e11)]
SessionId = Annotated[str, Field(pattern=env.SESSION_ID_RE.pattern)]
Code = Annotated[str, Field(pattern=env.CODE_RE.pattern)]
CheckId = Annotated[str, Field(pattern=env.CheckId.__metadata__[0].pattern)]
IceUrl = Annotated[str, Field(max_length=512, pattern=r"^(?:stun|turns?)(?::|$)")]
Unit = Annotated[float, Field(ge=-1, le=1)]


# ---------------------------------------------------------------- MQTT payloads


class Status(BaseModel):
    model_config = _CONFIG
    state: t.Presence
    session: Annotated[int, Field(ge=0, le=2**53)]
    ts: UnixTime | None = None
    id: DeviceId | None = None


class VideoSpec(BaseModel):
    model_config = _CONFIG
    w: Annotated[int, Field(ge=16, le=7680)]
    h: Annotated[int, Field(ge=16, le=4320)]
    fps: Annotated[float, Field(ge=0.1, le=120)]


class Meta(BaseModel):
    model_config = _CONFIG
    kind: t.DeviceKind
    fw: Annotated[str, Field(max_length=64)]
    caps: Annotated[tuple[t.Capability, ...], Field(max_length=16)]
    video: VideoSpec | None = None
    id: DeviceId | None = None

    @field_validator("caps")
    @classmethod
    def _once_each(cls, caps: tuple[t.Capability, ...]) -> tuple[t.Capability, ...]:
        return tuple(dict.fromkeys(caps))


class Health(BaseModel):
    model_config = _CONFIG
    uptime_s: Annotated[float, Field(ge=0, le=1e10)]
    battery_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    shutter: t.Shutter | None = None
    tamper: bool = False
    link: Annotated[float, Field(ge=0, le=1)] | None = None
    ts: UnixTime | None = None
    id: DeviceId | None = None


class Event(BaseModel):
    model_config = _CONFIG
    type: t.EventType
    ts: UnixTime | None = None
    session_id: Annotated[str, Field(max_length=64)] | None = None
    id: DeviceId | None = None


# ---------------------------------------------------------------- signalling envelope


class IceServer(BaseModel):
    model_config = _CONFIG
    urls: Annotated[tuple[IceUrl, ...], Field(min_length=1, max_length=8)] | IceUrl
    username: Annotated[str, Field(max_length=512)] | None = None
    credential: Annotated[str, Field(max_length=512)] | None = None


class Request(BaseModel):
    model_config = _CONFIG
    type: Literal["request"]
    session_id: SessionId
    device_id: DeviceId | None = None
    purpose: env.Purpose | None = None
    extend: env.ExtendReason | None = None
    check_id: CheckId | None = None
    reason: env.LookReason | None = None
    note: Annotated[str, Field(max_length=env.MAX_NOTE_CHARS)] | None = None

    @model_validator(mode="after")
    def _needs_device_and_purpose(self) -> Request:
        if self.extend is None and (self.device_id is None or self.purpose is None):
            raise ValueError("a request needs device_id and purpose unless it extends")
        if self.extend is not None and (
            self.check_id is not None or self.reason is not None or self.note is not None
        ):
            raise ValueError("an extension names no check, reason or note")
        if self.check_id is not None and self.reason is not None:
            raise ValueError("a look is owed to a check or has a reason, not both")
        if (self.reason is None) != (self.note is None or not self.note.strip()):
            raise ValueError("an extra look needs both a reason and a note that is not blank")
        return self


class Granted(BaseModel):
    model_config = _CONFIG
    type: Literal["granted"]
    session_id: SessionId
    device_id: DeviceId
    purpose: env.Purpose
    ice_servers: Annotated[tuple[IceServer, ...], Field(max_length=8)] = ()
    deadline: Annotated[float, Field(ge=0, le=1e11)]
    cap_s: Annotated[float, Field(ge=0, le=86400)]
    ring_timeout_s: Annotated[float, Field(ge=0, le=3600)] | None = None


class Denied(BaseModel):
    model_config = _CONFIG
    type: Literal["denied"]
    session_id: SessionId
    reason: Code


def _sdp(sdp: str) -> str:
    problem = env.sdp_problem(sdp)  # the same grammar check as the Structs'
    if problem is not None:
        raise ValueError(problem[1])
    return sdp


class Offer(BaseModel):
    model_config = _CONFIG
    type: Literal["offer"]
    session_id: SessionId
    sdp: str
    ice_servers: Annotated[tuple[IceServer, ...], Field(max_length=8)] = ()

    _check_sdp = field_validator("sdp")(_sdp)


class Answer(BaseModel):
    model_config = _CONFIG
    type: Literal["answer"]
    session_id: SessionId
    sdp: str

    _check_sdp = field_validator("sdp")(_sdp)


class Candidate(BaseModel):
    model_config = _CONFIG
    type: Literal["candidate"]
    session_id: SessionId
    candidate: str
    sdp_mid: Annotated[str, Field(max_length=32)] | None = None
    sdp_mline_index: Annotated[int, Field(ge=0, le=63)] | None = None

    @model_validator(mode="after")
    def _grammar(self) -> Candidate:
        if self.candidate and not env.is_candidate(self.candidate):
            raise ValueError("candidate must be an a=candidate value")
        if self.candidate and self.sdp_mid is None and self.sdp_mline_index is None:
            raise ValueError("a candidate needs sdp_mid or sdp_mline_index")
        return self


class Bye(BaseModel):
    model_config = _CONFIG
    type: Literal["bye"]
    session_id: SessionId
    reason: env.ByeReason


class Error(BaseModel):
    model_config = _CONFIG
    type: Literal["error"]
    code: Code
    message: Annotated[str, Field(max_length=512)]
    session_id: SessionId | None = None


class Drive(BaseModel):
    model_config = _CONFIG
    type: Literal["drive"]
    session_id: SessionId
    linear: Unit
    angular: Unit


class Video(BaseModel):
    model_config = _CONFIG
    type: Literal["video"]
    session_id: SessionId
    frames: Annotated[int, Field(ge=0, le=2**53)]


class Stats(BaseModel):
    model_config = _CONFIG
    type: Literal["stats"]
    session_id: SessionId
    frames: Annotated[int, Field(ge=0, le=2**53)]
    video_s: Annotated[float, Field(ge=0, le=86400)]


class Ack(BaseModel):
    model_config = _CONFIG
    type: Literal["ack"]
    session_id: SessionId
    of: env.MessageType


Envelope = Annotated[
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
    | Stats,
    Field(discriminator="type"),
]
_ENVELOPE: TypeAdapter[Envelope] = TypeAdapter(Envelope)


# ---------------------------------------------------------------- decoding, as devices does it

P = TypeVar("P", Status, Meta, Health, Event)


def decode_payload(payload: bytes, model: type[P], device_id: str | None) -> P:
    if len(payload) > t.MAX_PAYLOAD_BYTES:
        raise PayloadError("too_large", "payload over the limit")
    try:
        message = model.model_validate_json(payload)
    except pydantic.ValidationError as e:
        raise PayloadError("refused", e.errors()[0]["type"]) from None
    if device_id is not None and message.id not in (None, device_id):
        raise PayloadError("foreign_topic", "payload names another device than its topic")
    return message


def decode_envelope(data: bytes, *, allowed: frozenset[env.MessageType] | None = None) -> Envelope:
    if len(data) > env.MAX_MESSAGE_BYTES:
        raise env.EnvelopeError("too_large", "message over the limit")
    try:
        message = _ENVELOPE.validate_json(data)
    except pydantic.ValidationError as e:
        raise env.EnvelopeError("refused", e.errors()[0]["type"]) from None
    if allowed is not None and message.type not in allowed:
        raise env.EnvelopeError("unexpected_type", "not from this sender", message.session_id)
    return message
