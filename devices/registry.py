"""Registry state changes, pure: what a status, meta or health message does to a device record.

Presence follows the device's session counter (DESIGN.md): a message of an older session than the
one on record is stale and changes nothing, so a late will of an old connection never marks a
reconnected device offline. A device first heard of is created quarantined; binding is an
administrator's act elsewhere and never happens here.

A session counter is a device's clock in Unix milliseconds at connect (``homeside.device``), or a
smaller count; one beyond :func:`session_limit` (the receiving clock plus
:data:`MAX_SESSION_AHEAD`) is refused (``session_in_future``): else one forged ``status`` with a
huge session would make every later real birth and will stale and pin the presence for good. A
record already carrying such a session (stored before this check) no longer makes anything stale.

Within a session, order comes from the contract, not from arrival (device messages are shared
between processes, so two of one device may be applied by two processes in either order): a
device's own ``offline`` (its will) or ``stopped`` ends its session (``session_ended``), and an
``online`` of an ended session is stale (``stale_session``); the sweep's ``offline``
(:func:`mark_silent`) does not end it, so the device's own late re-announce still counts. A
``health`` older (its ``ts``) than the one stored changes nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from devices.topics import (
    Capability,
    DeviceKind,
    Health,
    Meta,
    Presence,
    Shutter,
    Status,
    VideoSpec,
)

MAX_SESSION_AHEAD = timedelta(hours=6)
"""How far a session counter may run ahead of the receiving clock: device clocks drift, and tests
and demos run the service's clock up to a few hours behind the devices' (tonight 22:00)."""


def session_limit(at: datetime) -> int:
    """The largest session counter believable at ``at`` (Unix ms of ``at + MAX_SESSION_AHEAD``)."""
    return int((at + MAX_SESSION_AHEAD).timestamp() * 1000)


class Stored(StrEnum):
    """Stored presence: the wire's three states plus ``unknown`` (heard of, never online)."""

    UNKNOWN = "unknown"
    ONLINE = "online"
    OFFLINE = "offline"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    device_id: str
    presence: Stored
    session: int
    presence_since: datetime
    first_seen: datetime
    last_seen: datetime | None = None
    kind: DeviceKind | None = None
    firmware: str | None = None
    caps: tuple[Capability, ...] = ()
    video: VideoSpec | None = None
    health: dict[str, Any] | None = None
    health_at: datetime | None = None
    quarantined: bool = True
    session_ended: bool = False  # the device itself said offline or stopped for ``session``

    @property
    def is_online(self) -> bool:
        return self.presence is Stored.ONLINE


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    """Published when a device's presence changes (stored and sent to in-process subscribers)."""

    device_id: str
    presence: Stored
    previous: Stored
    session: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Applied:
    """The outcome of one message: the record to store (or None to change nothing)."""

    record: DeviceRecord | None
    change: PresenceChanged | None = None
    rejected: str | None = None  # a stable reason code when the message was refused


def new_record(device_id: str, at: datetime) -> DeviceRecord:
    return DeviceRecord(
        device_id=device_id, presence=Stored.UNKNOWN, session=0, presence_since=at, first_seen=at
    )


def apply_status(
    record: DeviceRecord | None, device_id: str, status: Status, at: datetime
) -> Applied:
    """Apply a ``status`` message received at ``at``; a session beyond :func:`session_limit` is
    refused (``session_in_future``) and changes nothing."""
    limit = session_limit(at)
    if status.session > limit:
        return Applied(None, rejected="session_in_future")
    return _apply_status(record, device_id, status, at, limit, by_device=True)


def _apply_status(
    record: DeviceRecord | None,
    device_id: str,
    status: Status,
    at: datetime,
    limit: int,
    *,
    by_device: bool,
) -> Applied:
    current = record or new_record(device_id, at)
    if status.session < current.session <= limit:
        reason = "stale_will" if status.state is not Presence.ONLINE else "stale_session"
        return Applied(None, rejected=reason)
    same = status.session == current.session
    if same and current.session_ended and status.state is Presence.ONLINE:
        return Applied(None, rejected="stale_session")  # the session ended: online came late
    presence = Stored(status.state.value)
    ends = by_device and presence is not Stored.ONLINE
    if presence is current.presence and same:
        if presence is Stored.ONLINE:
            return Applied(dataclasses.replace(current, last_seen=at))
        if ends and not current.session_ended:
            return Applied(dataclasses.replace(current, session_ended=True))
        return Applied(None)
    updated = dataclasses.replace(
        current,
        presence=presence,
        session=status.session,
        presence_since=at,
        last_seen=at if presence is Stored.ONLINE else current.last_seen,
        session_ended=ends or (same and current.session_ended),
    )
    change = None
    if presence is not current.presence:
        change = PresenceChanged(device_id, presence, current.presence, status.session, at)
    return Applied(updated, change)


def mark_silent(record: DeviceRecord, since: datetime, at: datetime) -> Applied:
    """After the backend (re)connects, every device re-announces; one online device that has
    not been heard since ``since`` is offline (its will may have died with a restarted broker)."""
    if record.presence is not Stored.ONLINE or (record.last_seen and record.last_seen >= since):
        return Applied(None)
    offline = Status(Presence.OFFLINE, record.session)
    return _apply_status(record, record.device_id, offline, at, session_limit(at), by_device=False)


def apply_meta(record: DeviceRecord | None, device_id: str, meta: Meta, at: datetime) -> Applied:
    current = record or new_record(device_id, at)
    if current.kind is not None and current.kind is not meta.kind:
        return Applied(None, rejected="kind_changed")
    return Applied(
        dataclasses.replace(
            current,
            kind=meta.kind,
            firmware=meta.fw,
            caps=meta.caps,
            video=meta.video,
            last_seen=at,
        )
    )


def apply_health(
    record: DeviceRecord | None, device_id: str, health: Health, at: datetime
) -> Applied:
    if record is None:
        return Applied(None, rejected="unknown_device")
    stored_ts = (record.health or {}).get("ts")
    if health.ts is not None and isinstance(stored_ts, int | float) and health.ts < stored_ts:
        return Applied(None)  # an older report applied after a newer one: nothing to change
    return Applied(dataclasses.replace(record, health=health.as_json(), health_at=at, last_seen=at))


HEALTH_FLAG_SHUTTER_CLOSED = "shutter_closed"
HEALTH_FLAG_TAMPER = "tamper"


def health_flags_on(before: dict[str, Any] | None, health: Health) -> tuple[str, ...]:
    """The health flags that count as behaviour (hard rule 8) and turned on with ``health``,
    compared with the stored health ``before`` (``None``: none stored yet): the privacy shutter
    ``closed`` (``shutter_closed``) and ``tamper``. A flag that stays on is not reported
    again; one that went off and comes back is."""
    was = before or {}
    out: list[str] = []
    if health.shutter is Shutter.CLOSED and was.get("shutter") != Shutter.CLOSED.value:
        out.append(HEALTH_FLAG_SHUTTER_CLOSED)
    if health.tamper and was.get("tamper") is not True:
        out.append(HEALTH_FLAG_TAMPER)
    return tuple(out)
