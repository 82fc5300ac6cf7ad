"""``homecare simulate-night``: one whole night of rounds against simulated homes, sped up.

Everything real except the homes and the staff: a scratch PostgreSQL database (migrated, dropped
afterwards) and the service's own bootstrap (``services.app.runtime`` with the ``rounds`` and
``probes`` roles, no broker): the consent store and gate with its change feed, the planner and
watchdog, **two** round workers on separate connection pools sharing the queue (``FOR UPDATE
SKIP LOCKED``), the audit chain, and the morning report. The simulation passes its clock, its
probe and its wake, and steps the watchdog and the workers itself (``Options(drive=False)``).
The clock is a simulated one that jumps from one moment where something happens (a window opens,
a retry is due, a scripted event, an operator or the patrol acts) to the next, paced at ``speed``
simulated seconds per real second (0: as fast as the machine goes).

Simulated homes follow a scripted mix (:data:`MIX`): asleep, restless, up and walking, fallen,
empty bed, camera dark, frozen or covered, camera going offline at 23:30, consent withdrawn at
02:00, a pause from 00:30, no consent to motion analysis, a plan that never clears without a
human. The probe renders the home's scene (``simulators.scenes``) and runs the real motion
kernel and verdict over it. A scripted operator opens queued views after a delay and documents
what the scene shows; a scripted patrol acknowledges and visits. With ``operators_idle`` nobody
works the queue, with ``patrol_idle`` the patrol never answers: the escalation ladder must then
send every check that waits for a person to the patrol within its plan's deadlines, and tell the
shift lead of every patrol task nobody takes (:mod:`tools.night_ladder` accounts for it).

At the end it prints the morning report and its own checks, and returns non-zero if any planned
check was lost (missing, or still open after reconciliation), done twice (probed more often than
looked at, a second final step, a transition not audited), if a dangerous scene (fallen,
empty bed, broken camera) was cleared without a human, or if the ladder let a check through.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import time as wall
import uuid
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import asyncpg
import structlog

from consent import enrol
from consent.gate import ChangeSubscription, Gate
from consent.model import (
    CarePlan,
    CareRecipient,
    CheckTime,
    Pause,
    PauseReason,
    PauseSource,
    Purpose,
)
from consent.store import PgConsentStore
from devices.envelope import Purpose as LookPurpose
from devices.registry import PresenceChanged, Stored
from kernel.audit import store as audit_store
from kernel.clock import ScaledClock
from kernel.timing import DEFAULT_TIMING, Timing
from services import app
from services.settings import Settings, SettingsError
from services.signalling import store as signal_store
from simulators import scenes
from supervision import checks as ch
from supervision import report, schedule
from supervision.checks import Check, OutcomeKind, State
from supervision.errors import TransitionRefused
from supervision.ports import ProbeResult
from supervision.runner import Runner
from supervision.store import RoundStore
from supervision.watchdog import Watchdog
from tools import night_ladder
from vision import motion
from vision.verdict import decide

log = structlog.get_logger(__name__)

ADMIN = "staff-sim-admin"
OPERATORS = ("staff-sim-op1", "staff-sim-op2")
PATROL = "staff-sim-patrol"
PROBE_SIZE = (320, 240)
PROBE_FPS = 5.0
PROBE_WINDOW_S = 8.0
SEEDS = 5  # scene variants per kind (each (kind, variant) is watched once per process)
SIM_FPS = 10.0  # what a simulated camera or phone sends during a look
VIEW_FIRST_FRAME_S = 1.5  # from a view's grant to its first frame
CALL_ANSWER_S = 8.0  # from a call's start to the brukare answering (video from then on)
MAX_CALL_S = 900.0  # a simulated call's deadline


@dataclass(frozen=True, slots=True)
class Home:
    """One simulated home: its brukare, camera, scene and scripted trouble."""

    index: int
    scenario: str
    scene: scenes.SceneKind
    times: tuple[time, ...]
    motion_consent: bool = True
    may_clear: bool = True
    offline_at: time | None = None
    withdraw_at: time | None = None
    pause_at: time | None = None

    @property
    def recipient_id(self) -> str:
        return f"r-{self.index:05d}"

    @property
    def device_id(self) -> str:
        return f"cam-{self.index:05d}"

    @property
    def truth(self) -> scenes.SceneTruth:
        return scenes.Scene(self.scene).truth


K = scenes.SceneKind
#: The scripted mix, one entry per home in turn: (scenario, scene, extra terms).
MIX: tuple[tuple[str, scenes.SceneKind, dict[str, Any]], ...] = (
    ("asleep", K.ASLEEP, {}),
    ("restless", K.RESTLESS, {}),
    ("asleep", K.ASLEEP, {}),
    ("walking", K.WALKING, {}),
    ("asleep", K.ASLEEP, {}),
    ("fallen", K.FALLEN, {}),
    ("restless", K.RESTLESS, {}),
    ("empty_bed", K.EMPTY_BED, {}),
    ("no_motion_consent", K.ASLEEP, {"motion_consent": False}),
    ("camera_dark", K.LIGHTS_OFF, {}),
    ("offline_2330", K.ASLEEP, {"offline_at": time(23, 30)}),
    ("asleep", K.ASLEEP, {}),
    ("withdrawn_0200", K.RESTLESS, {"withdraw_at": time(2, 0)}),
    ("camera_frozen", K.FROZEN, {}),
    ("pause_0030", K.ASLEEP, {"pause_at": time(0, 30)}),
    ("walking", K.WALKING, {}),
    ("human_only_plan", K.RESTLESS, {"may_clear": False}),
    ("camera_covered", K.COVERED, {}),
    ("fall", K.FALL, {}),
    ("asleep", K.ASLEEP, {}),
)
TIMES: tuple[tuple[time, ...], ...] = (
    (time(22, 0), time(2, 0)),
    (time(21, 30), time(1, 0), time(4, 30)),
    (time(23, 0), time(3, 0)),
    (time(22, 30), time(5, 0)),
    (time(0, 0), time(3, 30), time(6, 0)),
)


def homes(n: int) -> list[Home]:
    out = []
    for i in range(n):
        scenario, scene, extra = MIX[i % len(MIX)]
        shift = timedelta(minutes=5 * ((i // len(MIX)) % 6))
        times = tuple(
            (datetime.combine(date(2000, 1, 1), t) + shift).time() for t in TIMES[i % len(TIMES)]
        )
        out.append(Home(i + 1, scenario, scene, times, **extra))
    return out


# --------------------------------------------------------------------------- simulated parts


Watch = Callable[[scenes.SceneKind, int, float], ProbeResult]
"""(scene, variant, window seconds) -> the motion check's verdict."""


class SceneProber:
    """The motion probe over a home's rendered scene: real kernel, real verdict, no network."""

    def __init__(
        self, by_device: dict[str, Home], online: set[str], watch: Watch | None = None
    ) -> None:
        self.by_device = by_device
        self.online = online
        self.watch = watch or _watch
        self.probes: Counter[str] = Counter()

    async def probe(self, *, device_id: str, check_id: str, window_s: float) -> ProbeResult:
        self.probes[check_id] += 1
        if device_id not in self.online:
            return ProbeResult("no_signal", True)
        home = self.by_device[device_id]
        seed = (home.index + self.probes[check_id]) % SEEDS
        return await asyncio.to_thread(self.watch, home.scene, seed, window_s)


@functools.lru_cache(maxsize=256)
def _watch(kind: scenes.SceneKind, seed: int, window_s: float) -> ProbeResult:
    scene = scenes.Scene(kind, seed=seed)
    width, height = PROBE_SIZE
    zones = tuple(motion.Zone(n, p) for n, p in scene.zones(width, height).items())
    state = motion.MotionState(width, height, zones)
    frames = int(window_s * PROBE_FPS)
    results = [
        motion.step(state, scene.luma(i / PROBE_FPS, width, height), i / PROBE_FPS)
        for i in range(frames)
    ]
    verdict = decide(results, window_s=window_s)
    return ProbeResult(verdict.kind.value, verdict.needs_human, verdict.confidence, frames)


@dataclass(slots=True)
class Staff:
    """The scripted operators and patrol: who does what how long after a check arrives."""

    by_recipient: dict[str, Home]
    react_s: int = 90  # a queued view is opened this long after it arrived
    view_s: int = 20  # the feed is watched this long, then documented
    call_s: int = 60
    patrol_ack_s: int = 120
    patrol_visit_s: int = 900
    operators_idle: bool = False  # nobody works the queue
    patrol_idle: bool = False  # the patrol never answers
    actions: Counter[str] = field(default_factory=Counter)

    def when(self, c: Check) -> datetime | None:
        """When the scripted staff next act on ``c`` (None: not theirs to act on, or idle)."""
        if (self.operators_idle and c.state in ch.HUMAN_QUEUE) or (
            self.patrol_idle and c.state in ch.PATROL_STATES
        ):
            return None
        delay = {
            State.NEEDS_VIEW: self.react_s + 7 * (zlib.crc32(c.check_id.encode()) % 10),
            State.VIEWING: self.view_s,
            State.CALLING: self.call_s,
            State.PATROL: self.patrol_ack_s,
            State.PATROL_ACKED: self.patrol_visit_s,
        }.get(c.state)
        if delay is None:
            return None
        since = max(c.since, c.window_start) if c.state is State.PATROL else c.since
        return since + timedelta(seconds=delay)

    def event(self, c: Check) -> ch.Event:
        home = self.by_recipient[c.recipient_id]
        op = OPERATORS[zlib.crc32(c.check_id.encode()) % len(OPERATORS)]
        kind = home.scene
        match c.state:
            case State.NEEDS_VIEW:
                return ch.ViewOpened(op)
            case State.VIEWING if kind in (K.FALLEN, K.FALL):
                return ch.Outcome(op, OutcomeKind.PATROL, "fallen")
            case State.VIEWING if kind in (K.EMPTY_BED, K.LEAVES_BED):
                return ch.Outcome(op, OutcomeKind.NOT_SEEN)
            case State.VIEWING if kind in (K.LIGHTS_OFF, K.FROZEN, K.COVERED):
                return ch.Outcome(op, OutcomeKind.TECHNICAL, "camera_trouble")
            case State.VIEWING:
                return ch.Outcome(op, OutcomeKind.OK)
            case State.CALLING if kind in (K.EMPTY_BED, K.LEAVES_BED, K.FALLEN, K.FALL):
                return ch.Outcome(op, OutcomeKind.NOT_SEEN)
            case State.CALLING:
                return ch.Outcome(op, OutcomeKind.OK)
            case State.PATROL:
                return ch.PatrolAcknowledged(PATROL)
            case _:
                return ch.PatrolVisited(PATROL)


# --------------------------------------------------------------------------- the night


@dataclass(slots=True)
class NightResult:
    report: dict[str, Any]
    planned: int
    lost: list[str]
    doubled: list[str]
    dangerous_cleared: list[str]
    audit_ok: bool
    wall_s: float
    steps: int
    alarms: int
    staff_actions: dict[str, int]
    ladder: night_ladder.LadderAccount
    #: Seconds of video the night's views and calls delivered, as their devices reported
    #: (summed over ``signal_sessions``): the report must say the same.
    delivered: dict[str, float] = field(default_factory=dict)

    @property
    def seconds_match(self) -> bool:
        """Whether the report's view and call seconds are the sessions' delivered seconds."""
        t = self.report["totals"]
        return all(
            abs(t[f"{kind}_seconds"] - self.delivered.get(kind, 0.0)) <= 0.051
            for kind in ("view", "call")
        )

    @property
    def ok(self) -> bool:
        return (
            not (self.lost or self.doubled or self.dangerous_cleared)
            and self.audit_ok
            and self.ladder.ok
            and self.seconds_match
        )


def at_local(night: date, t: time, zone: ZoneInfo) -> datetime:
    """The instant of local time ``t`` in the night of ``night`` (evening date)."""
    day = night if t >= time(12, 0) else night + timedelta(days=1)
    return datetime.combine(day, t, tzinfo=zone)


async def seed(
    store: PgConsentStore, pool: asyncpg.Pool, all_homes: list[Home], at: datetime
) -> None:
    """Register every home: brukare, care plan, consents, a camera bound in two steps."""
    await pool.executemany(
        "INSERT INTO devices (device_id, kind, presence, quarantined)"
        " VALUES ($1, 'camera', 'online', false)",
        [(h.device_id,) for h in all_homes],
    )
    for h in all_homes:
        rid = h.recipient_id
        await store.add_recipient(CareRecipient(rid, f"Brukare {h.index}"), actor=ADMIN, at=at)
        plan = CarePlan(
            plan_id=f"plan-{h.index:05d}",
            recipient_id=rid,
            decision_ref=f"SIM-{h.index}",
            valid_from=at,
            checks=tuple(CheckTime(t, 15) for t in h.times),
            motion_may_clear=h.may_clear,
            retry_interval_s=900,
        )
        await store.add_plan(plan, actor=ADMIN, at=at)
        purposes = [Purpose.CAMERA_CHECK] + ([Purpose.MOTION_ANALYSIS] if h.motion_consent else [])
        await enrol.grant(
            store,
            rid,
            purposes,
            given_at=at,
            informed_by=ADMIN,
            informed_how="simulerat samtal",
            actor=ADMIN,
            at=at,
            ids={p: consent_id(h, p) for p in purposes},
        )
        await enrol.bind(store, h.device_id, rid, actor=ADMIN, at=at)


def consent_id(h: Home, purpose: Purpose) -> str:
    return f"cons-{h.index:05d}-{purpose.value.replace('_', '-')}"


@dataclass(frozen=True, slots=True)
class Scripted:
    at: datetime
    home: Home
    what: str  # offline | withdraw | pause


def script_of(all_homes: list[Home], night: date, zone: ZoneInfo) -> list[Scripted]:
    out = []
    for h in all_homes:
        for what, t in (
            ("offline", h.offline_at),
            ("withdraw", h.withdraw_at),
            ("pause", h.pause_at),
        ):
            if t is not None:
                out.append(Scripted(at_local(night, t, zone), h, what))
    return sorted(out, key=lambda s: (s.at, s.home.index))


class NightSim:
    """One simulated night on the database of ``database_url``, in the service's bootstrap."""

    def __init__(
        self,
        database_url: str,
        *,
        n_homes: int,
        night: date,
        zone: str = "Europe/Stockholm",
        plan_hour: int = 18,
        watch: Watch | None = None,
        timing: Timing = DEFAULT_TIMING,
        operators_idle: bool = False,
        patrol_idle: bool = False,
    ) -> None:
        """``watch`` replaces the motion check over a scene (tests of the night's own checks);
        ``operators_idle``: nobody works the queue; ``patrol_idle``: the patrol never answers."""
        self.night = night
        self.tz = ZoneInfo(zone)
        self.homes = homes(n_homes)
        self.by_recipient = {h.recipient_id: h for h in self.homes}
        self.start = datetime.combine(night, time(plan_hour), tzinfo=self.tz)
        # stands still between the moments the night jumps to (``set``); a deadline's sleep jumps it
        self.clock = ScaledClock(0, self.start - timedelta(days=1))
        self.online = {h.device_id for h in self.homes}
        self.prober = SceneProber({h.device_id: h for h in self.homes}, self.online, watch)
        self.settings = Settings(
            database_url=database_url,
            mqtt_url=None,  # no broker: the probe and the wake are simulated
            roles=("rounds", "probes"),
            time_zone=zone,
            plan_hour=plan_hour,
            instance_id="sim",
            timing=dataclasses.replace(timing, probe_window_s=PROBE_WINDOW_S),
        )
        self.options = app.Options(
            prober=self.prober, wake=self.wake, drive=False, workers=2, pool_max=6
        )
        self.staff = Staff(
            self.by_recipient, operators_idle=operators_idle, patrol_idle=patrol_idle
        )
        self.script = script_of(self.homes, night, self.tz)
        self.steps = 0
        self.looks: dict[str, signal_store.SessionRow] = {}  # check id -> its open view
        self._rt: app.Runtime | None = None

    @property
    def rt(self) -> app.Runtime:
        if self._rt is None:
            raise RuntimeError("the night is not running")
        return self._rt

    @property
    def pool(self) -> asyncpg.Pool:
        return self.rt.pool

    @property
    def consent(self) -> PgConsentStore:
        return self.rt.consent

    @property
    def gate(self) -> Gate:
        return self.rt.gate

    @property
    def store(self) -> RoundStore:
        assert self.rt.rounds is not None
        return self.rt.rounds.store

    @property
    def watchdog(self) -> Watchdog:
        assert self.rt.rounds is not None
        return self.rt.rounds.watchdog

    @property
    def runners(self) -> list[Runner]:
        return self.rt.workers

    async def wake(self, device_id: str) -> bool:
        return device_id in self.online

    async def video_trouble(self, device_id: str) -> str | None:
        return None  # simulated cameras report no video state

    async def run(self, *, speed: float = 0.0, progress: bool = False) -> NightResult:
        async with app.runtime(self.settings, clock=self.clock, options=self.options) as rt:
            self._rt = rt
            try:
                return await self._run(speed, progress)
            finally:
                self._rt = None

    async def _run(self, speed: float, progress: bool) -> NightResult:
        started = wall.monotonic()
        await seed(self.consent, self.pool, self.homes, self.clock())
        self.clock.set(self.start)
        for op in OPERATORS:
            await self.store.start_duty(op, at=self.start)
        end = self.watchdog.reconcile_at(self.night)
        with contextlib.closing(self.gate.changes()) as changes:
            while True:
                self.steps += 1
                await self.step(changes)
                if await self.staff_act():
                    continue  # a step may open more work at the same instant
                if self.clock() >= end:
                    break
                nxt = await self.next_moment(end)
                await _pace(speed, self.start, nxt, started)
                self.clock.set(nxt)
                if progress and self.steps % 100 == 0:
                    log.info("night_simulated_until", local=f"{nxt.astimezone(self.tz):%H:%M}")
        for op in OPERATORS:
            await self.store.end_duty(op, at=self.clock())
        return await self.account(wall.monotonic() - started)

    async def step(self, changes: ChangeSubscription) -> None:
        """One instant: the watchdog's tick, scripted events, consent changes, the workers."""
        await self.watchdog.tick()
        while self.script and self.script[0].at <= self.clock():
            await self.play(self.script.pop(0))
        while True:  # consent changes reach the watchdog as in the service
            try:
                change = await changes.get(timeout_s=0)
            except TimeoutError:
                break
            await self.watchdog.on_change(change)
        claimed = 1
        while claimed:  # every due check is done before the clock moves
            async with asyncio.TaskGroup() as tasks:
                claimed = sum([await r.tick(tasks) for r in self.runners])

    async def play(self, s: Scripted) -> None:
        h, at = s.home, self.clock()
        if s.what == "offline":
            self.online.discard(h.device_id)
            await self.pool.execute(
                "UPDATE devices SET presence = 'offline', presence_since = $2 WHERE device_id = $1",
                h.device_id,
                at,
            )
            await self.watchdog.on_presence(
                PresenceChanged(h.device_id, Stored.OFFLINE, Stored.ONLINE, 2, at)
            )
        elif s.what == "withdraw":
            await self.consent.withdraw_consent(
                consent_id(h, Purpose.CAMERA_CHECK),
                withdrawn_at=at,
                reason="simulated withdrawal",
                actor=ADMIN,
                at=at,
            )
        else:
            pause = Pause(
                f"pause-{h.index:05d}",
                h.recipient_id,
                at,
                at + timedelta(hours=8),
                PauseSource.RELATIVE,
                PauseReason.VISITORS,
            )
            await self.consent.add_pause(pause, actor=ADMIN, at=at)

    async def staff_act(self) -> int:
        acted = 0
        now = self.clock()
        waiting = await self.store.open_checks(states=list(ch.HUMAN_QUEUE | ch.PATROL_STATES))
        viewing = {c.check_id for c in waiting if c.state is State.VIEWING}
        for check_id in [k for k in self.looks if k not in viewing]:  # ended by the system
            await self.end_look(check_id, now, shown=True)
        for c in waiting:
            when = self.staff.when(c)
            if when is None or when > now:
                continue
            event = self.staff.event(c)
            if isinstance(event, ch.Outcome):  # the look ends first; its device reports
                if c.state is State.CALLING and c.device_id is not None:
                    await self.open_look(c, event.operator_id, LookPurpose.CALL, c.since)
                # a call nobody answered shows nothing
                await self.end_look(
                    c.check_id,
                    now,
                    shown=event.kind is not OutcomeKind.NOT_SEEN or c.state is State.VIEWING,
                )
            with contextlib.suppress(TransitionRefused):
                await self.store.transition(
                    c.check_id,
                    event,
                    at=now,
                    on_duty=isinstance(event, ch.ViewOpened | ch.Outcome),
                )
                self.staff.actions[ch.event_name(event)] += 1
                acted += 1
                if isinstance(event, ch.ViewOpened):
                    await self.open_look(c, event.operator_id, LookPurpose.VIEW, now)
        return acted

    # The staff's looks as signalling would store them (its own store functions): a view the
    # operator opens is a session owed to its check, and when it ends its camera reports the
    # video it delivered (``stats``); a call likewise, its phone reporting the video of the
    # answered part. The morning report and the outcome ``ok`` read only these.

    async def open_look(self, c: Check, staff_id: str, purpose: LookPurpose, at: datetime) -> None:
        is_view = purpose is LookPurpose.VIEW
        assert c.device_id is not None
        row = signal_store.SessionRow(
            session_id=f"sim-{purpose.value}-{c.check_id.replace('.', '-')}-{c.attempt}",
            device_id=c.device_id if is_view else c.device_id.replace("cam-", "phone-"),
            purpose=purpose,
            staff_id=staff_id,
            recipient_id=c.recipient_id,
            instance_id="sim",
            state="connected",
            started_at=at,
            deadline=at + timedelta(seconds=c.policy.view_cap_s if is_view else MAX_CALL_S),
            check_id=c.check_id,
            look="check" if is_view else None,
        )
        data = {"session_id": row.session_id, "device_id": row.device_id, "check_id": c.check_id}
        await signal_store.open_session(self.pool, audit_store.append, row, data)
        self.looks[c.check_id] = row

    async def end_look(self, check_id: str, at: datetime, *, shown: bool) -> None:
        """End the check's look (a view opened earlier, or a call placed when the check began
        calling): its device reports the video it delivered, none if nobody was ``shown``."""
        row = self.looks.pop(check_id, None)
        if row is None:
            return
        is_view = row.purpose is LookPurpose.VIEW
        lead_s = VIEW_FIRST_FRAME_S if is_view else CALL_ANSWER_S
        open_s = min(at - row.started_at, row.deadline - row.started_at).total_seconds()
        is_online = row.device_id.replace("phone-", "cam-") in self.online
        video_s = max(0.0, open_s - lead_s) if shown and is_online else 0.0
        await signal_store.close(
            self.pool,
            audit_store.append,
            row.session_id,
            actor=row.staff_id,
            reason="operator" if shown else "no_answer",
            at=row.started_at + timedelta(seconds=open_s),
            frames_decoded=int(video_s * SIM_FPS),
        )
        await signal_store.record_stats(
            self.pool,
            row.session_id,
            row.device_id,
            frames=int(video_s * SIM_FPS),
            video_s=round(video_s, 3),
        )

    async def next_moment(self, end: datetime) -> datetime:
        """The next instant at which anything happens (at least one second on)."""
        now = self.clock()
        candidates = [end, now + timedelta(minutes=15)]  # the watchdog looks at least every 15 min
        if self.script:
            candidates.append(self.script[0].at)
        soonest = await self.pool.fetchval(
            "SELECT min(deadline) FROM round_checks WHERE state IN ('planned', 'retry_wait')"
            " AND deadline > $1",
            now,
        )
        if soonest is not None:
            candidates.append(soonest)
        rung = await self.pool.fetchval(  # the escalation ladder's next alarm or escalation
            "SELECT min(CASE WHEN alarmed_version IS DISTINCT FROM version THEN deadline"
            " ELSE next_rung_at END) FROM round_checks WHERE deadline IS NOT NULL"
            " AND CASE WHEN alarmed_version IS DISTINCT FROM version THEN deadline"
            " ELSE next_rung_at END > $1",
            now,
        )
        if rung is not None:
            candidates.append(rung)
        for c in await self.store.open_checks(states=list(ch.HUMAN_QUEUE | ch.PATROL_STATES)):
            when = self.staff.when(c)
            if when is not None:
                candidates.append(when)
        return max(min(candidates), now + timedelta(seconds=1))

    async def account(self, wall_s: float) -> NightResult:
        """Lost, doubled and dangerous-cleared checks, the audit, and the morning report."""
        night, store = self.night, self.store
        checks = await store.night_checks(night)
        steps = await store.transitions(night)
        expected = {
            schedule.check_id(h.recipient_id, night, t) for h in self.homes for t in h.times
        }
        stored = {c.check_id: c for c in checks}
        lost = sorted(expected - stored.keys()) + sorted(
            c.check_id for c in checks if c.category is ch.Category.OPEN
        )
        finals = Counter(t.check_id for t in steps if t.to_state in ch.TERMINAL)
        doubled = sorted(
            {cid for cid, n in finals.items() if n > 1}
            | {
                cid
                for cid, n in self.prober.probes.items()
                if cid not in stored or n > stored[cid].attempt
            }
        )
        dangerous = sorted(
            c.check_id
            for c in checks
            if c.state is State.CLEARED and self.by_recipient[c.recipient_id].truth.is_dangerous
        )
        async with self.pool.acquire() as conn:
            verified = await audit_store.verify(conn)
            audited = await conn.fetchval(
                "SELECT (SELECT count(*) FROM audit_log WHERE action LIKE 'check.%'"
                " AND action NOT LIKE 'check.alarm%') + (SELECT coalesce(sum("
                "jsonb_array_length(data->'transitions')), 0) FROM audit_log"
                " WHERE action = 'round.settled')"
            )
        alarms = await store.alarms(night)
        noon = datetime.combine(night, time(12), tzinfo=self.tz)
        built = report.build(
            night,
            checks,
            steps,
            generated_at=self.clock(),
            reconciled_at=(await store.planned_nights()).get(night),
            alarms=alarms,
            looks=await store.night_looks(night, since=noon, until=noon + timedelta(days=1)),
        )
        delivered = {
            r["purpose"]: float(r["video_s"])
            for r in await self.pool.fetch(
                "SELECT purpose, coalesce(sum(video_s), 0) AS video_s FROM signal_sessions"
                " WHERE purpose IN ('view', 'call') GROUP BY purpose"
            )
        }
        ladder = night_ladder.account(checks, steps, alarms, self.store.timing)
        return NightResult(
            report=built,
            planned=len(expected),
            lost=lost,
            doubled=doubled,
            dangerous_cleared=dangerous,
            audit_ok=bool(verified.ok) and audited == len(steps),
            wall_s=wall_s,
            steps=self.steps,
            alarms=len(alarms),
            staff_actions=dict(self.staff.actions),
            ladder=ladder,
            delivered=delivered,
        )


async def _pace(speed: float, start: datetime, nxt: datetime, started: float) -> None:
    """Sleep so that the simulated time runs at most ``speed`` times real time."""
    if speed <= 0:
        return
    lag = (nxt - start).total_seconds() / speed - (wall.monotonic() - started)
    if lag > 0:
        await asyncio.sleep(lag)


# --------------------------------------------------------------------------- the command


@contextlib.asynccontextmanager
async def scratch_database(server_url: str) -> AsyncIterator[str]:
    """A new, empty database on the server of ``server_url``; dropped afterwards."""
    name = f"homecare_sim_{uuid.uuid4().hex[:10]}"
    url = urlsplit(server_url)._replace(path=f"/{name}").geturl()  # keeps ?host=/socket/dir
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield url
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def simulate(
    server_url: str,
    *,
    n_homes: int,
    night: date,
    speed: float = 0.0,
    zone: str = "Europe/Stockholm",
    plan_hour: int = 18,
    progress: bool = False,
    operators_idle: bool = False,
    patrol_idle: bool = False,
) -> NightResult:
    """Simulate ``night`` in a scratch database on the server of ``server_url``."""
    async with scratch_database(server_url) as url:
        sim = NightSim(
            url,
            n_homes=n_homes,
            night=night,
            zone=zone,
            plan_hour=plan_hour,
            operators_idle=operators_idle,
            patrol_idle=patrol_idle,
        )
        return await sim.run(speed=speed, progress=progress)


def render(result: NightResult) -> str:
    t = result.report["totals"]
    lines = [
        report.render_text(result.report),
        "",
        f"simulated night {result.report['night']}: {result.planned} planned checks for "
        f"{len(result.report['recipients'])} homes in {result.wall_s:.1f} s "
        f"({result.steps} steps, {result.alarms} alarms)",
        f"staff: {', '.join(f'{k} {v}' for k, v in sorted(result.staff_actions.items()))}",
        f"cleared without a human: {t['cleared']} of {t['planned']} ({t['cleared_share']:.1%}); "
        f"lost: {len(result.lost)}; done twice: {len(result.doubled)}; dangerous scenes "
        f"cleared: {len(result.dangerous_cleared)}; audit chain "
        f"{'ok' if result.audit_ok else 'BROKEN or incomplete'}",
        *result.ladder.lines(),
    ]
    ladder = result.ladder
    lines.append(
        f"video delivered (sessions, as the devices reported): views "
        f"{result.delivered.get('view', 0.0):.1f} s, calls {result.delivered.get('call', 0.0):.1f}"
        f" s; the report: {t['view_seconds']} s and {t['call_seconds']} s"
        + ("" if result.seconds_match else " (DIFFERENT)")
    )
    for name, ids in (
        ("lost", result.lost),
        ("done twice", result.doubled),
        ("dangerous cleared", result.dangerous_cleared),
        ("never a patrol task nor seen", ladder.never_patrol),
        ("reached the patrol late", ladder.late),
        ("sent to the patrol twice", ladder.doubled),
        ("patrol task nobody took, shift lead not told", ladder.lead_not_told),
        ("alarms off the plan's interval", ladder.off_interval),
    ):
        if ids:
            lines.append(f"{name}: {', '.join(ids[:20])}" + (" ..." if len(ids) > 20 else ""))
    lines.append("PASS" if result.ok else "FAIL")
    return "\n".join(lines)


def default_night(zone: str) -> date:
    """The night that starts this evening (local)."""
    return datetime.now(UTC).astimezone(ZoneInfo(zone)).date()


async def command(args: argparse.Namespace, settings: Settings) -> NightResult:
    """Run the command on a scratch database of ``HOMECARE_DATABASE_URL``'s server, or of an
    embedded PostgreSQL when none is set."""
    if not 1 <= args.homes <= 20000:
        raise SettingsError("--homes must be 1..20000")
    if args.speed < 0:
        raise SettingsError("--speed must be 0 (as fast as possible) or more")
    night = args.night or default_night(settings.time_zone)
    with contextlib.ExitStack() as sync_stack:
        url = settings.database_url
        if url is None:
            from tools import embedded

            url = await asyncio.to_thread(sync_stack.enter_context, embedded.postgres())
        return await simulate(
            url,
            n_homes=args.homes,
            night=night,
            speed=args.speed,
            zone=settings.time_zone,
            plan_hour=settings.plan_hour,
            progress=args.progress,
            operators_idle=args.operators == "idle",
            patrol_idle=args.patrol == "idle",
        )
