"""A rolling unit's wheels: carries out :mod:`homeside.drive` on a motor driver.

:class:`Wheels` holds the unit's :class:`~homeside.drive.Motion`, takes ``drive`` and ``dock``
commands (:meth:`Wheels.drive`, :meth:`Wheels.dock`), and while the unit moves runs one task
that every :data:`TICK_S` (and exactly at a drive's dead-man deadline) asks the pure rules what
to do, sets the driver's speeds or stops it, reads its sensors and reports ``bumped``, ``cliff``
and ``docked`` through ``on_event``. When nothing moves no task runs. The driver is anything
that speaks :class:`MotorDriver`: the simulated unit's body (:mod:`simulators.rover`) or a
real motor board (:mod:`agent.motors`). Times are the event loop's clock unless a test passes
``clock``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from devices import topics
from homeside import drive as rules

log = logging.getLogger(__name__)

#: How often a moving unit looks at its sensors and the rules, seconds.
TICK_S = 0.05
#: How often a driving unit asks whether its video to the caller has stalled, seconds.
VIDEO_CHECK_S = 0.25
#: Below this charge a moving unit reports ``low_battery`` (once per crossing).
LOW_BATTERY_PCT = 15.0


@dataclass(frozen=True, slots=True)
class Sensors:
    """What a driver can tell: touching something, an edge ahead, on the charger, and the
    battery (``None``: on mains, or the board cannot read it)."""

    bumped: bool = False
    cliff: bool = False
    docked: bool = False
    battery_pct: float | None = None


class MotorDriver(Protocol):
    """The motor hook: a differential drive and whatever sensors the base has.

    ``set_speeds`` takes shares of the top speeds (-1..1: forward/back, left/right turn) and
    holds them until the next call; ``stop`` stops at once; ``sensors`` (read every
    :data:`TICK_S` while moving, so it must be cheap) tells whether a bumper or a cliff sensor
    is set now and whether the unit sits on its charger (all ``False`` where there are none);
    ``dock`` starts the base's own way home and says whether it has one (``sensors().docked``
    tells when it got there)."""

    def set_speeds(self, linear: float, angular: float) -> None: ...

    def stop(self) -> None: ...

    def sensors(self) -> Sensors: ...

    def dock(self) -> bool: ...


#: Reports an event of the call ``session_id`` (``None``: no call).
EventSink = Callable[[topics.EventType, str | None], Coroutine[Any, Any, None]]
#: Whether video still reaches the caller (``homeside.peer`` asks its connection).
VideoCheck = Callable[[], Awaitable[bool]]


class Wheels:
    """See the module docstring. ``close()`` stops the unit and is safe to call twice."""

    def __init__(
        self,
        driver: MotorDriver,
        *,
        on_event: EventSink,
        video_ok: VideoCheck | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.driver = driver
        self.on_event = on_event
        self.video_ok = video_ok
        self._clock = clock
        self.motion = rules.STILL
        #: Clock time of the last ``drive`` taken (the dead man counts from it).
        self.last_command_at: float | None = None
        #: (clock time, reason) of every stop, oldest first (the log says the same).
        self.stops: list[tuple[float, rules.StopReason]] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._seen = Sensors()
        self._events: set[asyncio.Task[None]] = set()  # reports under way (strong references)

    def now(self) -> float:
        return asyncio.get_running_loop().time() if self._clock is None else self._clock()

    # ------------------------------------------------------------ commands

    def drive(self, d: topics.Drive) -> None:
        """A caller's ``drive`` (the caller checks it is the call's)."""
        now = self.now()
        self.last_command_at = now
        self._set(
            rules.command(
                self.motion,
                linear=d.linear,
                angular=d.angular,
                valid_s=d.valid_ms / 1000,
                session_id=d.session_id,
                now=now,
            ),
            now,
        )

    def dock(self, session_id: str | None) -> bool:
        """Head for the charger; ``False`` when the base has no way to find it."""
        if self.driver.sensors().docked:
            self._spawn_event(topics.EventType.DOCKED, session_id)
            return True
        if not self.driver.dock():
            return False
        self._set(rules.dock(self.motion, session_id=session_id), self.now())
        return True

    def call_ended(self, session_id: str | None = None) -> None:
        self._set(rules.call_ended(self.motion, session_id), self.now())

    def halt(self, reason: rules.StopReason) -> None:
        self._set(rules.halt(self.motion, reason), self.now())

    def battery_pct(self) -> float | None:
        return self.driver.sensors().battery_pct

    # ------------------------------------------------------------ carrying out

    def _set(self, motion: rules.Motion, now: float) -> None:
        was, self.motion = self.motion, motion
        if motion.mode is rules.Mode.DRIVING:
            self.driver.set_speeds(motion.linear, motion.angular)
        elif motion.mode is rules.Mode.IDLE and was.mode is not rules.Mode.IDLE:
            self.driver.stop()
            assert motion.stopped is not None
            self.stops.append((now, motion.stopped))
            log.info("wheels stopped: %s", motion.stopped.value)
        if motion.is_moving and (self._task is None or self._task.done()):
            self._seen = self.driver.sensors()
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._wake.set()

    async def _run(self) -> None:
        """While the unit moves: the dead man at its deadline, sensors every tick."""
        next_video_check = self.now() + VIDEO_CHECK_S
        while True:
            now = self.now()
            self._set(rules.due(self.motion, now), now)
            if not self.motion.is_moving:
                return
            await self._sense(now)
            checks_video = self.motion.mode is rules.Mode.DRIVING and self.video_ok is not None
            if checks_video and now >= next_video_check and self.video_ok is not None:
                next_video_check = now + VIDEO_CHECK_S
                if not await self.video_ok():
                    self.halt(rules.StopReason.VIDEO_STALLED)
                    return
            wait_s = min(TICK_S, max(0.0, self.motion.until - self.now()))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait_s)

    async def _sense(self, now: float) -> None:
        seen, was = self.driver.sensors(), self._seen
        self._seen = seen
        session_id = self.motion.session_id
        # on the rising edge only: a bumper still pressed must not keep the unit from backing off
        if seen.bumped and not was.bumped:
            self._set(rules.halt(self.motion, rules.StopReason.BUMPED), now)
            await self.on_event(topics.EventType.BUMPED, session_id)
        elif seen.cliff and not was.cliff:
            self._set(rules.halt(self.motion, rules.StopReason.CLIFF), now)
            await self.on_event(topics.EventType.CLIFF, session_id)
        elif seen.docked and not was.docked and self.motion.mode is rules.Mode.DOCKING:
            self._set(rules.halt(self.motion, rules.StopReason.DOCKED), now)
            await self.on_event(topics.EventType.DOCKED, session_id)
        if (
            seen.battery_pct is not None
            and was.battery_pct is not None
            and seen.battery_pct < LOW_BATTERY_PCT <= was.battery_pct
        ):
            await self.on_event(topics.EventType.LOW_BATTERY, session_id)

    def _spawn_event(self, kind: topics.EventType, session_id: str | None) -> None:
        task = asyncio.get_running_loop().create_task(self.on_event(kind, session_id))
        self._events.add(task)
        task.add_done_callback(self._events.discard)

    async def close(self) -> None:
        self.halt(rules.StopReason.CALL_ENDED)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
