"""Signalling's ports (what it needs from the other slices and its adapters) and its configuration.

The composition root passes the real adapters: ``consent.gate.Gate`` for :class:`GatePort`,
``devices.commands.Commands`` for :class:`CommandsPort`, ``supervision.looks.CheckLooks`` for
:class:`ChecksPort`; presence and kind default to the
registry's table (:class:`RegistryPresence`), the session rows to
:class:`services.signalling.store.PgSessionStore`, the broker to
:class:`services.signalling.bus.SignalBus`. Tests pass the fakes of
:mod:`services.signalling.fakes`, which implement the same protocols. The clock is the one of
:mod:`kernel.clock`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol

import asyncpg

from consent import model as consent_model
from devices import store as device_store
from devices import topics
from devices.envelope import Purpose
from services.signalling.decide import GATE_PURPOSES, ROLES_FOR, CheckUse, Terms
from services.signalling.store import SessionRow, StatsRecorded
from supervision.looks import DueCheck

#: The first consent purpose the gate is asked about for each kind of session (a call also
#: needs :data:`GATE_PURPOSES`' camera check).
GATE_PURPOSE = {purpose: needed[0] for purpose, needed in GATE_PURPOSES.items()}
__all__ = ["GATE_PURPOSE", "GATE_PURPOSES", "ROLES_FOR"]


class GatePort(Protocol):
    """``consent.gate.Gate``: the legal basis now, and a stream of changes to re-ask about."""

    async def decide(
        self, *, device_id: str, purpose: consent_model.Purpose, at: datetime
    ) -> consent_model.Decision: ...

    def changes(self) -> AsyncIterator[consent_model.ConsentChange]: ...


class CommandsPort(Protocol):
    """``devices.commands.Commands``."""

    async def send(
        self,
        device_id: str,
        op: topics.CommandOp,
        args: dict[str, Any] | None = None,
        timeout_s: float = 5.0,
    ) -> topics.CommandAck: ...


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What the registry knows of a device: presence and kind (``None`` before its ``meta``)."""

    is_online: bool
    kind: topics.DeviceKind | None


class PresencePort(Protocol):
    async def device(self, device_id: str) -> DeviceFacts | None: ...


class RegistryPresence:
    """Presence and kind as the device registry stored them (``devices`` table)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def device(self, device_id: str) -> DeviceFacts | None:
        record = await device_store.get(self._pool, device_id)
        return None if record is None else DeviceFacts(record.is_online, record.kind)


class SessionStore(Protocol):
    """Session rows with their audit entries (:class:`services.signalling.store.PgSessionStore`).

    ``open`` returns ``False`` if the device has an open session, raises ``SessionExists`` if
    the id was used before."""

    async def open(self, row: SessionRow, data: Mapping[str, Any]) -> bool: ...

    async def denied(
        self,
        *,
        actor: str,
        purpose: Purpose,
        subject: str,
        data: Mapping[str, Any],
        at: datetime,
    ) -> None: ...

    async def get(self, session_id: str) -> SessionRow | None: ...

    async def mark_connected(
        self, row: SessionRow, *, at: datetime, deadline: datetime | None, is_audited: bool
    ) -> None: ...

    async def extend(
        self, row: SessionRow, *, actor: str, reason: str, deadline: datetime, at: datetime
    ) -> int | None: ...

    async def close(
        self,
        session_id: str,
        *,
        actor: str,
        reason: str,
        at: datetime,
        detail: str | None,
        frames_decoded: int | None = None,
    ) -> SessionRow | None: ...

    async def record_stats(
        self, session_id: str, device_id: str, *, frames: int, video_s: float
    ) -> StatsRecorded: ...

    async def sweep_overdue(
        self, *, at: datetime, grace_s: float, instance_id: str | None = None
    ) -> list[SessionRow]: ...

    async def prune(self, *, before: datetime) -> int: ...

    async def check_use(self, check_id: str, *, at: datetime) -> CheckUse:
        """What the earlier view sessions of ``check_id`` spent (the check's shared budget)."""
        ...

    async def staff_name(self, staff_id: str) -> str | None: ...

    async def device_team(self, device_id: str, *, at: datetime) -> str | None:
        """The team of the brukare the device is bound to at ``at`` (``None``: none)."""
        ...

    async def device_language(self, device_id: str, *, at: datetime) -> str | None:
        """The care record's language of the brukare the device is bound to at ``at`` (a tag
        like ``sv`` or ``fi``; ``None``: bound to none, or the lookup failed)."""
        ...


class ChecksPort(Protocol):
    """The night round's side of a view (:class:`supervision.looks.CheckLooks`): every view is
    owed to a check due now, or is an extra look; either way its operator is on duty."""

    async def check(self, check_id: str) -> DueCheck | None:
        """The check as stored now, ``None`` if there is none."""
        ...

    async def on_duty(self, staff_id: str, at: datetime) -> bool: ...

    async def view_opened(self, check_id: str, *, staff_id: str, at: datetime) -> bool:
        """Move a queued check to ``viewing`` held by ``staff_id`` (a granted view); ``False``
        if it moved meanwhile or the duty ended."""
        ...

    async def device_trouble(self, check_id: str, *, reason: str, at: datetime) -> bool:
        """The camera failed the check's view (``indicator_not_acked``): the check goes to a
        physical visit (hard rule 7); ``False`` if it could not move (ended meanwhile)."""
        ...


class BusPort(Protocol):
    """The broker side (:class:`services.signalling.bus.SignalBus`)."""

    prefix: str
    connected: asyncio.Event

    async def publish_to_device(self, device_id: str, payload: bytes) -> None: ...

    async def publish(self, topic: str, payload: bytes) -> None: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> Any: ...


LatencyHook = Callable[[Purpose, float], None]
"""Told a session's purpose and a latency in seconds (loop time, not the runtime's clock)."""


def _unobserved(purpose: Purpose, seconds: float) -> None:
    """No one watches (tests, tools)."""


@dataclass(frozen=True, slots=True)
class Latencies:
    """Where signalling reports its latencies (the composition root passes the histograms of
    ``services.web.metrics.Metrics``): ``granted`` from a client's ``request`` arriving to its
    ``granted`` sent; ``first_frame`` from that request arriving to the client's first ``video``
    report with frames > 0 for the session (click -> first frame as the backend sees it)."""

    granted: LatencyHook = _unobserved
    first_frame: LatencyHook = _unobserved


@dataclass(frozen=True, slots=True)
class SignallingConfig:
    """Durations in seconds; rates in messages per second."""

    default_cap_s: float = 30.0
    ring_timeout_s: float = 30.0
    max_call_s: float = 3600.0
    max_extensions: int = 3
    stale_video_s: float = 1.0
    recheck_interval_s: float = 5.0
    sweep_interval_s: float = 10.0
    sweep_grace_s: float = 5.0
    rate_per_s: float = 20.0
    rate_burst: float = 60.0
    max_violations: int = 20
    device_rate_per_s: float = 20.0
    device_rate_burst: float = 60.0
    command_timeout_s: float = 3.0
    #: How long ``indicator on`` may wait for its ack before the look is device trouble.
    indicator_ack_s: float = topics.INDICATOR_ACK_S
    #: How long a ``bye`` to the client waits for its row to close (the close goes on after).
    close_wait_s: float = 2.0
    #: How long a request waits for this process's unfinished close of the device's last row.
    pending_close_wait_s: float = 10.0

    @property
    def terms(self) -> Terms:
        return Terms(
            default_cap_s=self.default_cap_s,
            ring_timeout_s=self.ring_timeout_s,
            max_call_s=self.max_call_s,
            max_extensions=self.max_extensions,
            stale_video_s=self.stale_video_s,
        )
