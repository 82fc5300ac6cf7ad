"""The round's clockwork: plan the night, open checks, climb the ladder, react to changes, close.

:meth:`Watchdog.tick` (every ``poll_s`` of the timing policy, :mod:`kernel.timing`) plans
tonight once the planning hour has come (and again, idempotently, after a restart), opens checks
whose window or retry time came, climbs the escalation ladder of every missed deadline
(:mod:`supervision.ladder`: an alarm, repeated at the plan's interval while a person's step stays
undone; after the plan's second deadline an unanswered view or call goes to the patrol by itself
and the shift lead is told, and so is a patrol step nobody answered; each a console event and a
structured log), and reconciles a night once its round is over: every check still open ends as a
deviation or, if the patrol has it, escalated.

Changes arrive as events:

- a device going ``offline`` or ``stopped`` (:meth:`Watchdog.on_presence`) turns its checks under
  way, and those whose window opens within ``offline_horizon_s``, into patrol visits at once
  (hard rule 7); later checks meet the camera's state when their window opens;
- a consent, plan, pause or binding change (:meth:`Watchdog.on_change`) re-plans that brukare's
  remaining checks (``supervision.schedule.replan``); a resync re-plans everyone with checks open.

Several processes may run a watchdog: every write is a locked, versioned transition, so two of
them never make the same step twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import structlog

from consent.model import ConsentChange
from consent.rules import DEFAULT_PLAN_HOUR, night_of
from kernel.clock import Clock
from kernel.listen import CONNECTION_LOST, FAILOVER_RETRY
from kernel.retry import retry
from kernel.timing import DEFAULT_TIMING, Timing
from supervision import checks as ch
from supervision import schedule
from supervision.checks import AlarmKind, State, Transition
from supervision.ports import AlarmRaised, Bases, Devices, PresenceEvent, Publish
from supervision.runner import log_transition, publish_transition
from supervision.store import RoundStore

log = structlog.get_logger(__name__)

#: Told how long planning took, in real seconds: ``("night", s)`` for a whole night (read,
#: plan, store), ``("replan", s)`` for one change's re-plan (``/metrics``).
PlanningHook = Callable[[str, float], None]

READ_PART_SIZE = 1_000
"""Brukare per part of the bases read for a night's planning: a part is planned and its checks
sent to the database while the next part is read (10,000 brukare: ten parts)."""
OFFLINE = frozenset({"offline", "stopped"})
UNDER_WAY = (
    State.DUE,
    State.PROBING,
    State.NEEDS_VIEW,
    State.VIEWING,
    State.RETRY_WAIT,
    State.CALLING,
)


@dataclass(frozen=True, slots=True)
class WatchdogConfig:
    zone: str = "Europe/Stockholm"
    plan_hour: int = DEFAULT_PLAN_HOUR
    auto_plan: bool = True  # plan tonight by itself at the planning hour
    timing: Timing = DEFAULT_TIMING  # poll_s, offline_horizon_s, reconcile_after_s


class Watchdog:
    def __init__(
        self,
        store: RoundStore,
        *,
        bases: Bases,
        devices: Devices,
        clock: Clock,
        config: WatchdogConfig | None = None,
        publish: Publish | None = None,
        on_planned: PlanningHook | None = None,
    ) -> None:
        self.store = store
        self.bases = bases
        self.devices = devices
        self.clock = clock
        self.config = config or WatchdogConfig()
        self.zone = ZoneInfo(self.config.zone)
        self.publish = publish
        self.on_planned = on_planned
        self.alarms_raised = 0  # alarms and escalations this watchdog raised
        self.escalations = 0  # of which escalations (to the shift lead)

    def _emit(self, transitions: Collection[Transition]) -> None:
        for tr in transitions:
            log_transition(tr)
            publish_transition(self.publish, tr)

    # ------------------------------------------------------------------ planning

    def tonight(self, at: datetime | None = None) -> date:
        return night_of(at or self.clock(), self.zone)

    async def plan(self, night: date | None = None) -> schedule.NightPlan:
        """Plan ``night`` (default: the current one) now; idempotent."""
        started = time.perf_counter()
        at = self.clock()
        night = night or self.tonight(at)
        online = await self.devices.online()

        async def parts() -> AsyncGenerator[schedule.NightPlan, None]:
            """Planned as the store asks, while it inserts the last and the next is read."""
            async with contextlib.aclosing(self.bases.bases_in_parts(READ_PART_SIZE)) as read:
                async for bases in read:
                    for part in schedule.plan_parts(
                        bases,
                        night=night,
                        at=at,
                        online=online.__contains__,
                        plan_hour=self.config.plan_hour,
                    ):
                        yield part

        async with contextlib.aclosing(parts()) as planned:
            plan, inserted = await self.store.save_plan_parts(night, planned, at=at)
        if self.on_planned is not None:
            self.on_planned("night", time.perf_counter() - started)
        for p in plan.problems:
            log.warning(
                "check_not_planned",
                recipient_id=p.recipient_id,
                plan_id=p.plan_id,
                field=p.field,
                code=p.code,
            )
        log.info(
            "night_planned", night=night.isoformat(), inserted=inserted, **schedule.summarise(plan)
        )
        self._emit(plan.transitions)
        return plan

    def _planning_due(self, at: datetime) -> bool:
        local = at.astimezone(self.zone)
        return local.hour >= self.config.plan_hour or local.hour < 12

    # ------------------------------------------------------------------ the tick

    async def tick(self) -> None:
        at = self.clock()
        nights = await self.store.planned_nights()
        if self.config.auto_plan and self._planning_due(at) and self.tonight(at) not in nights:
            await self.plan(self.tonight(at))
        self._emit(await self.store.open_due(at))
        await self.climb(at)
        for night, reconciled in sorted(nights.items()):
            if reconciled is None and at >= self.reconcile_at(night):
                await self.reconcile(night)

    async def climb(self, at: datetime) -> None:
        """Raise the alarms owed at ``at`` and make the escalations (:mod:`supervision.ladder`)."""
        alarms, escalated = await self.store.watch_deadlines(at)
        for alarm in alarms:
            self.alarms_raised += 1
            is_escalation = alarm.kind is AlarmKind.ESCALATION
            self.escalations += is_escalation
            log.warning(
                "check_escalated" if is_escalation else "check_deadline_missed",
                check_id=alarm.check_id,
                recipient_id=alarm.recipient_id,
                state=alarm.state.value,
                late_s=round(alarm.late_s),
                repeat=alarm.repeat,
                to=alarm.to.value,
            )
            if self.publish is not None:
                self.publish(AlarmRaised(alarm, at))
        self._emit(escalated)

    def reconcile_at(self, night: date) -> datetime:
        end = schedule.round_of(night, self.zone, self.config.plan_hour).end
        return end + timedelta(seconds=self.config.timing.reconcile_after_s)

    async def reconcile(self, night: date) -> list[Transition]:
        closed = await self.store.reconcile(night, at=self.clock())
        self._emit(closed)
        log.info("night_reconciled", night=night.isoformat(), closed=len(closed))
        return closed

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick()
            except CONNECTION_LOST as e:  # the database away (a failover): the next tick
                log.warning("watchdog_tick_unavailable", error=type(e).__name__)
            except Exception:  # a task boundary: the next tick tries again
                log.exception("watchdog_tick_failed")
            with contextlib.suppress(TimeoutError):
                # A poll interval, in loop time: each tick compares every deadline of the night
                # with the clock, so a sped-up (or stepped) clock keeps them right.
                await asyncio.wait_for(stop.wait(), self.config.timing.poll_s)

    # ------------------------------------------------------------------ changes

    async def on_presence(self, event: PresenceEvent) -> list[Transition]:
        """A device went offline: its checks under way or about to start go to the patrol."""
        if str(event.presence) not in OFFLINE:
            return []
        at = self.clock()
        horizon = at + timedelta(seconds=self.config.timing.offline_horizon_s)
        hit = [
            c
            for c in await self.store.open_checks(device_id=event.device_id)
            if c.state in UNDER_WAY or (c.state is State.PLANNED and c.window_start <= horizon)
        ]
        done, _ = await self.store.apply_many(
            [(c.check_id, ch.DeviceLost("device_offline")) for c in hit], at=at
        )
        if done:
            log.warning("device_lost_checks_to_patrol", device_id=event.device_id, checks=len(done))
        self._emit(done)
        return done

    async def on_change(self, change: ConsentChange) -> list[Transition]:
        """Re-plan the remaining checks of the brukare a change concerns (everyone on resync)."""
        started = time.perf_counter()
        at = self.clock()
        open_checks = await self.store.open_checks(recipient_id=change.recipient_id)
        recipients = (
            {change.recipient_id} if change.recipient_id else {c.recipient_id for c in open_checks}
        )
        if not recipients:
            return []
        bases = await self.bases.bases(recipients)
        devices = {b.device_id for basis in bases.values() for b in basis.bindings}
        online = await self.devices.online(devices)
        nights = await self.store.planned_nights()
        done: list[Transition] = []
        for rid in sorted(recipients):
            basis = bases.get(rid)
            mine = [c for c in open_checks if c.recipient_id == rid]
            if basis is None:  # the brukare is gone: nothing can be done by camera
                events: list[tuple[str, ch.Event]] = [
                    (c.check_id, ch.Cancel("recipient_removed")) for c in mine
                ]
                moved, _ = await self.store.apply_many(events, at=at)
                done += moved
                continue
            for night in sorted({c.night for c in mine} | self._open_nights(nights, at)):
                result = schedule.replan(
                    basis,
                    [c for c in mine if c.night == night],
                    night=night,
                    at=at,
                    online=online.__contains__,
                    plan_hour=self.config.plan_hour,
                )
                moved, _ = await self.store.apply_many(result.events, at=at)
                done += moved
                if result.added.checks:
                    await self.store.save_plan(result.added, at=at)
                    done += list(result.added.transitions)
        if self.on_planned is not None:
            self.on_planned("replan", time.perf_counter() - started)
        if done:
            log.info(
                "checks_replanned",
                kind=str(change.kind),
                recipients=len(recipients),
                moved=len(done),
            )
        self._emit(done)
        return done

    @staticmethod
    def _open_nights(nights: dict[date, datetime | None], at: datetime) -> set[date]:
        return {
            n
            for n, reconciled in nights.items()
            if reconciled is None and n >= (at - timedelta(days=2)).date()
        }

    async def watch(self, events: AsyncIterable[object]) -> None:
        """Consume an event stream (the in-process bus) until cancelled: presence changes
        (``devices.registry.PresenceChanged``) and consent changes (``ConsentChange``); other
        events are ignored. A failure on one event is logged and the next is handled; one that
        met the database away (a failover) is handled again, up to ``FAILOVER_RETRY``'s 30 s:
        a re-plan and a device's loss are idempotent (a check already moved is not moved
        again), so a second try after a lost answer to its COMMIT does nothing twice."""
        async for event in events:
            try:
                if isinstance(event, ConsentChange):
                    change = functools.partial(self.on_change, event)
                    await retry(change, FAILOVER_RETRY, retry_on=CONNECTION_LOST)
                elif isinstance(event, PresenceEvent):
                    presence = functools.partial(self.on_presence, event)
                    await retry(presence, FAILOVER_RETRY, retry_on=CONNECTION_LOST)
            except asyncio.CancelledError:
                raise
            except Exception:  # a task boundary: one bad event must not stop the round
                log.exception("round_event_failed", event_type=type(event).__name__)
