"""Signalling's ports (what it needs from the other slices) and its configuration.

The composition root passes the real adapters: ``consent.gate.Gate`` for :class:`GatePort`,
``devices.commands.Commands`` for :class:`CommandsPort`; presence defaults to the registry's
table (:class:`RegistryPresence`); tests pass fakes that implement the same protocols.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg

from consent import model as consent_model
from devices import envelope as env
from devices import store as device_store
from devices import topics
from kernel.roles import OPERATORS, Role

Clock = Callable[[], datetime]

#: The consent purpose the gate is asked about for each kind of session.
GATE_PURPOSE = {
    env.Purpose.VIEW: consent_model.Purpose.CAMERA_CHECK,
    env.Purpose.PROBE: consent_model.Purpose.MOTION_ANALYSIS,
    env.Purpose.CALL: consent_model.Purpose.VIDEO_CALL,
}
#: Who may open each kind of session.
ROLES_FOR = {
    env.Purpose.VIEW: OPERATORS,
    env.Purpose.CALL: OPERATORS,
    env.Purpose.PROBE: frozenset({Role.SYSTEM}),
}


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


class PresencePort(Protocol):
    async def is_online(self, device_id: str) -> bool: ...


class RegistryPresence:
    """Presence as the device registry stored it (``devices`` table)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def is_online(self, device_id: str) -> bool:
        record = await device_store.get(self._pool, device_id)
        return record is not None and record.is_online


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


def system_clock() -> datetime:
    return datetime.now(UTC)
