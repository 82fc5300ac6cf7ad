"""What the night round needs from the rest of the system, as protocols (ports).

The composition root (``services/app.py``) hands adapters for these to
:class:`supervision.runner.Runner` and :class:`supervision.watchdog.Watchdog`; tests and the
simulated night hand in-process fakes that implement the same protocols.

======================  =====================================================  ==================
port                    what                                                   real adapter
======================  =====================================================  ==================
:class:`ConsentGate`    the consent gate at an instant (hard rules 1 and 3)    consent gate
:class:`Prober`         watch a camera a few seconds, return the verdict       probe (issue 5)
:class:`Devices`        wake a camera; which devices are online now            devices.commands
:class:`Bases`          brukare, plans, consents, pauses, bindings             consent store
:class:`Looks`          views and calls with the video they delivered          signal_sessions
:data:`Clock`           the injectable clock (tz-aware)                        system / simulated
:data:`Publish`         console events (in-process bus)                        services.events
======================  =====================================================  ==================

Presence and consent changes arrive as async iterators of objects shaped like
:class:`PresenceEvent` (``devices.registry.PresenceChanged``) and
:class:`~consent.model.ConsentChange`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from consent.model import Decision, Purpose, RecipientBasis
from supervision.checks import Alarm, Look, State

Publish = Callable[[object], None]
"""Publishes a console event (:class:`CheckChanged`, :class:`AlarmRaised`); never blocks."""


class ConsentGate(Protocol):
    async def decide(self, *, device_id: str, purpose: Purpose, at: datetime) -> Decision:
        """May ``device_id`` be used for ``purpose`` at ``at``? Default deny."""
        ...


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The motion check's verdict over one probe window (names as in ``vision.verdict``)."""

    verdict: str
    needs_human: bool
    confidence: float = 0.0
    frames: int = 0
    detail: Mapping[str, Any] | None = None  # the numbers behind the verdict (JSON, no pictures)
    #: Why the camera itself failed the look (``indicator_not_acked``): a physical visit.
    device_trouble: str | None = None


class Prober(Protocol):
    async def probe(self, *, device_id: str, check_id: str, window_s: float) -> ProbeResult:
        """Watch ``device_id`` receive-only for ``window_s`` seconds and return the verdict.

        Returns ``no_signal`` when nothing arrives; raises only on a broken invariant.
        """
        ...


class Looks(Protocol):
    """The sessions that showed a human a picture (views and calls), as signalling stored them
    with what their devices reported delivered: :class:`supervision.sessions.PgLooks` over
    ``signal_sessions``, :class:`supervision.fake.FakeLooks` in memory."""

    async def of_check(self, check_id: str, staff_id: str) -> list[Look]:
        """The looks of ``staff_id`` for ``check_id``, oldest first."""
        ...

    async def of_night(
        self, check_ids: Collection[str], *, since: datetime, until: datetime
    ) -> list[Look]:
        """The looks for any of ``check_ids``, and those naming no check that started in
        ``[since, until)`` (extra looks, calls), oldest first."""
        ...


class LinkDown(ConnectionError):
    """This process's own link to the devices (the broker) is down: not the device's fault."""


class Devices(Protocol):
    async def wake(self, device_id: str) -> bool:
        """Ask the camera to wake; True when it acknowledged in time (:class:`LinkDown` if this
        process could not reach the device's broker meanwhile)."""
        ...

    async def online(self, device_ids: Collection[str] | None = None) -> set[str]:
        """Ids of the devices (of ``device_ids``, or all) that are online now."""
        ...

    async def video_trouble(self, device_id: str) -> str | None:
        """Why the camera's own last health says it shows nothing (``camera_no_signal``,
        ``camera_covered``: :func:`supervision.checks.video_trouble`), else ``None``."""
        ...


class Bases(Protocol):
    async def bases(
        self, recipient_ids: Collection[str] | None = None
    ) -> dict[str, RecipientBasis]:
        """Everything about many (default all) brukare: ``consent.ports.ConsentStore.bases``."""
        ...

    def bases_in_parts(self, size: int) -> AsyncGenerator[list[RecipientBasis], None]:
        """Every brukare's basis in ``recipient_id`` order, in parts of ``size``, as of one
        moment: ``consent.ports.ConsentStore.bases_in_parts``."""
        ...


@runtime_checkable
class PresenceEvent(Protocol):
    """A device's presence changed (``devices.registry.PresenceChanged``)."""

    @property
    def device_id(self) -> str: ...

    @property
    def presence(self) -> str: ...  # "online" | "offline" | "stopped" | "unknown"

    @property
    def at(self) -> datetime: ...


# --------------------------------------------------------------------------- console events


@dataclass(frozen=True, slots=True)
class CheckChanged:
    """A check moved; the console updates its queue. Pseudonymous ids only."""

    check_id: str
    recipient_id: str
    device_id: str | None
    before: State
    state: State
    reason: str | None
    deadline: datetime | None
    at: datetime
    actor: str
    verdict: str | None = None  # the motion check's verdict, once probed
    relayed: bool = False  # made by another process (supervision.relay): already acted on there


@dataclass(frozen=True, slots=True)
class AlarmRaised:
    """A deadline was missed (watchdog); shown in the console until acknowledged."""

    alarm: Alarm
    at: datetime
