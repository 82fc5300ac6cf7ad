"""The clock port: what time it is, tz-aware, and a sleep that runs at the same speed.

Every component is handed its clock, so a night (the simulated one, a test) can run faster with
the same code. ``Clock`` is the reading side alone (a callable, as the pure code and the stores
take it); :class:`ClockPort` adds the sleep that deadlines wait with. Two clocks exist:

- :class:`SystemClock`: the wall clock (UTC) and ``asyncio.sleep``;
- :class:`ScaledClock`: starts at ``start`` and runs ``speed`` times faster than real time;
  ``sleep(s)`` waits ``s / speed`` real seconds. ``speed=0`` stops it: time moves only by
  :meth:`ScaledClock.advance` (or :meth:`ScaledClock.set`), and ``sleep`` advances it at once
  instead of waiting (a test or the simulated night stepping from one instant to the next).

Both are callables too, so either can be passed where a :data:`Clock` is wanted.

A wait for a *deadline of the night* (a view cap, a ring, how long a worker keeps its claim while
its link is down) sleeps on the clock (:func:`sleep_of`), so a sped-up clock keeps it right; a
*poll interval* (how often to look again) waits in loop time, since a stopped clock would spin it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

Clock = Callable[[], datetime]
"""Returns the current instant, tz-aware (UTC in the service)."""


@runtime_checkable
class ClockPort(Protocol):
    """A clock that can also wait: deadlines sleep with it, so a sped-up clock shortens them."""

    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...

    def __call__(self) -> datetime: ...


def sleep_of(clock: Clock | ClockPort) -> Callable[[float], Awaitable[None]]:
    """How to wait ``seconds`` on ``clock``: its own ``sleep`` (a port), else loop time (a plain
    callable is taken to run at real speed)."""
    sleep = getattr(clock, "sleep", None)
    if callable(sleep):
        return sleep  # type: ignore[no-any-return]
    return asyncio.sleep


def system_now() -> datetime:
    """The wall clock in UTC (a :data:`Clock`)."""
    return datetime.now(UTC)


class SystemClock:
    """The wall clock (UTC) and ``asyncio.sleep``."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __call__(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


class ScaledClock:
    """Time from ``start`` at ``speed`` x real time (``speed=0``: moved by hand only)."""

    def __init__(
        self,
        speed: float = 1.0,
        start: datetime | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed < 0:
            raise ValueError("speed must be 0 (moved by hand) or more")
        start = start or datetime.now(UTC)
        if start.tzinfo is None:
            raise ValueError("start must be tz-aware")
        self.speed = speed
        self._monotonic = monotonic
        self._base = start
        self._base_mono = monotonic()

    def now(self) -> datetime:
        if self.speed == 0:
            return self._base
        elapsed = (self._monotonic() - self._base_mono) * self.speed
        return self._base + timedelta(seconds=elapsed)

    def __call__(self) -> datetime:
        return self.now()

    def set(self, at: datetime) -> None:
        """Jump to ``at`` (forwards or back) and run on from there at the same speed."""
        if at.tzinfo is None:
            raise ValueError("at must be tz-aware")
        self._base, self._base_mono = at, self._monotonic()

    def advance(self, by: float | timedelta) -> datetime:
        """Move the clock forwards at once by ``by`` (seconds or a duration); the new instant."""
        self.set(self.now() + (by if isinstance(by, timedelta) else timedelta(seconds=by)))
        return self._base

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
        elif self.speed == 0:
            self.advance(seconds)
            await asyncio.sleep(0)
        else:
            await asyncio.sleep(seconds / self.speed)

    def __repr__(self) -> str:
        return f"ScaledClock(speed={self.speed}, now={self.now().isoformat()})"
