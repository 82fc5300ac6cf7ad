"""Runners and the watchdog on real PostgreSQL with fakes of the gate, devices and probe."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import date, time, timedelta

import asyncpg
import pytest
from structlog.testing import capture_logs

from consent.model import ChangeKind, ConsentChange, Purpose
from kernel.clock import ScaledClock
from kernel.timing import Timing
from supervision import schedule
from supervision.checks import State
from supervision.ports import AlarmRaised, CheckChanged
from supervision.runner import Runner, RunnerConfig
from supervision.store import RoundStore
from supervision.watchdog import Watchdog, WatchdogConfig
from tests.rounds_support import (
    BasisGate,
    FakeDevices,
    TableProber,
    at_local,
    basis,
    consent,
    fast,
    fixed_clock,
)

pytestmark = pytest.mark.integration

NIGHT = date(2025, 6, 10)
PLAN_AT = at_local(NIGHT, 18)
WS = at_local(NIGHT, 21, 45)
SEC = timedelta(seconds=1)


@dataclasses.dataclass
class Rig:
    store: RoundStore
    gate: BasisGate
    devices: FakeDevices
    prober: TableProber
    clock: ScaledClock
    events: list[object]

    def runner(self, worker: str = "w1", timing: Timing | None = None, **kw: object) -> Runner:
        return Runner(
            self.store,
            gate=self.gate,
            prober=self.prober,
            devices=self.devices,
            clock=self.clock,
            config=RunnerConfig(worker_id=worker, timing=timing or fast(0.01), **kw),  # type: ignore[arg-type]
            publish=self.events.append,
        )

    def watchdog(self, **kw: object) -> Watchdog:
        return Watchdog(
            self.store,
            bases=self.gate,
            devices=self.devices,
            clock=self.clock,
            config=WatchdogConfig(timing=fast(0.01), **kw),  # type: ignore[arg-type]
            publish=self.events.append,
        )

    async def plan(self) -> schedule.NightPlan:
        self.clock.set(PLAN_AT)
        return await self.watchdog().plan(NIGHT)

    async def drain(self, runner: Runner) -> None:
        async with asyncio.TaskGroup() as tasks:
            while await runner.tick(tasks):
                pass


def rig(
    pool: asyncpg.Pool,
    bases: list[object],
    *,
    offline: set[str] | None = None,
    verdicts: dict[str, tuple[str, bool]] | None = None,
) -> Rig:
    data = {b.recipient_id: b for b in bases}  # type: ignore[attr-defined]
    devices = {f"cam-{rid}" for rid in data}
    return Rig(
        RoundStore(pool),
        BasisGate(data),
        FakeDevices(devices, offline),  # type: ignore[arg-type]
        TableProber(verdicts),
        fixed_clock(PLAN_AT),
        [],
    )


async def states(store: RoundStore) -> dict[str, tuple[State, str | None]]:
    return {c.recipient_id: (c.state, c.reason) for c in await store.night_checks(NIGHT)}


async def test_a_runner_does_each_check_by_the_rules(pool: asyncpg.Pool) -> None:
    r = rig(
        pool,
        [
            basis("clear", plan={"motion_may_clear": True}),
            basis("view"),  # the plan does not allow clearing
            basis("fallen", plan={"motion_may_clear": True}),
            basis("dark", plan={"motion_may_clear": True}),
            basis("nomotion", motion=False, plan={"motion_may_clear": True}),
            basis("asleep", device="cam-nowake"),
            basis("broken"),
            basis("gone", device="cam-gone"),
        ],
        verdicts={
            "cam-fallen": ("still", True),
            "cam-dark": ("dark", True),
            "cam-broken": ("raise", True),
        },
    )
    r.devices.all_online |= {"cam-nowake", "cam-gone"}
    await r.plan()
    r.devices.unresponsive.add("cam-nowake")  # online, but answers no wake
    r.devices.offline.add("cam-gone")  # went offline after planning: no look at all
    r.clock.set(WS)
    await r.drain(r.runner())
    assert await states(r.store) == {
        "clear": (State.CLEARED, "motion_activity"),
        "view": (State.NEEDS_VIEW, "motion_activity"),
        "fallen": (State.NEEDS_VIEW, "motion_still"),
        "dark": (State.PATROL, "camera_dark"),
        "nomotion": (State.NEEDS_VIEW, "no_motion_consent"),  # hard rule 3: no probe
        "asleep": (State.PATROL, "wake_failed"),
        "broken": (State.NEEDS_VIEW, "probe_failed"),
        "gone": (State.PATROL, "device_offline"),
    }
    assert "cam-nomotion" not in r.devices.woken
    assert "cam-gone" not in r.devices.woken
    # the probe's numbers are kept with the step that applied its verdict (never audited)
    details = await pool.fetch(
        "SELECT check_id, verdict_detail::text AS d FROM round_transitions"
        " WHERE verdict_detail IS NOT NULL ORDER BY check_id"
    )
    assert {x["check_id"].rsplit(".", 1)[1] for x in details} == {"clear", "view", "fallen", "dark"}
    assert all('"frames": 40' in x["d"] for x in details)
    assert (
        await pool.fetchval("SELECT count(*) FROM audit_log WHERE data::text LIKE '%frames%'") == 0
    )
    assert all(not c.endswith("nomotion") for c in r.prober.probed)
    changed = [e for e in r.events if isinstance(e, CheckChanged)]
    assert {e.state for e in changed} >= {State.DUE, State.PROBING, State.CLEARED}


async def test_the_gate_is_asked_again_when_the_window_opens(pool: asyncpg.Pool) -> None:
    r = rig(
        pool,
        [
            basis("gone"),
            basis("paused", plan={"paused_checks": "drop"}),
            basis("late", tolerance=10),
        ],
    )
    await r.plan()
    r.gate.data["gone"] = dataclasses.replace(
        r.gate.data["gone"],
        consents=(consent("gone", Purpose.CAMERA_CHECK, withdrawn_at=PLAN_AT + SEC),),
    )
    from consent.model import Pause, PauseReason, PauseSource

    r.gate.data["paused"] = dataclasses.replace(
        r.gate.data["paused"],
        pauses=(
            Pause("p1", "paused", PLAN_AT, None, PauseSource.HOSPITAL, PauseReason.HOSPITAL_STAY),
        ),
    )
    r.clock.set(WS)
    await r.watchdog().tick()  # opens all three windows
    r.clock.set(at_local(NIGHT, 22, 11))  # 'late' (21:50-22:10) is past its window now
    await r.drain(r.runner())
    assert await states(r.store) == {
        "gone": (State.PATROL, "withdrawn"),
        "paused": (State.DEVIATION, "paused"),
        "late": (State.CALLING, "outside_window"),
    }


async def test_two_runners_share_a_night_and_do_every_check_once(
    pool: asyncpg.Pool, database_url: str
) -> None:
    bases = [basis(f"r{i:03d}") for i in range(80)]
    r = rig(pool, bases)
    r.prober.delay_s = 0.01
    await r.plan()
    r.clock.set(WS)
    async with asyncpg.create_pool(database_url, min_size=1, max_size=4) as other_pool:
        other = dataclasses.replace(r, store=RoundStore(other_pool))
        one, two = r.runner("w1", concurrency=4), other.runner("w2", concurrency=4)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(x.run(stop)) for x in (one, two)]
        await r.watchdog().tick()
        for _ in range(600):  # until every check has left planned, due and probing
            if not await r.store.open_checks(states=[State.PLANNED, State.DUE, State.PROBING]):
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*tasks)
    assert one.processed + two.processed == 80
    assert one.processed > 0
    assert two.processed > 0
    assert one.lost_claims == two.lost_claims == 0
    checks = await r.store.night_checks(NIGHT)
    assert len(checks) == 80
    assert {c.state for c in checks} == {State.NEEDS_VIEW}
    rows = await pool.fetch(
        "SELECT check_id, count(*) AS n FROM round_transitions"
        " WHERE event = 'probe_done' GROUP BY check_id"
    )
    assert len(rows) == 80
    assert {x["n"] for x in rows} == {1}
    assert sorted(r.prober.probed) == sorted(c.check_id for c in checks)


async def test_a_dead_workers_claims_are_taken_over(pool: asyncpg.Pool) -> None:
    r = rig(pool, [basis(f"r{i}") for i in range(3)])
    await r.plan()
    r.clock.set(WS)
    r.prober.delay_s = 3600  # the first worker hangs in its probes ...
    dead = r.runner("dead", concurrency=3)
    stop = asyncio.Event()
    task = asyncio.create_task(dead.run(stop))
    for _ in range(200):
        if len(r.prober.probed) == 3:
            break
        await asyncio.sleep(0.02)
    task.cancel()  # ... and dies with its claims held
    with pytest.raises(asyncio.CancelledError):
        await task
    assert {c.holder for c in await r.store.night_checks(NIGHT)} == {"dead"}
    alive = r.runner("alive")
    r.prober.delay_s = 0
    await r.drain(alive)
    assert alive.processed == 0  # the claims have not expired yet
    r.clock.set(WS + timedelta(seconds=r.store.timing.probe_timeout_s))
    await r.drain(alive)
    assert alive.processed == 3
    assert {c.state for c in await r.store.night_checks(NIGHT)} == {State.NEEDS_VIEW}
    claims = await pool.fetch(
        "SELECT actor FROM round_transitions WHERE event='claim' ORDER BY at, actor"
    )
    assert [x["actor"] for x in claims] == ["dead"] * 3 + ["alive"] * 3


async def test_watchdog_plans_once_opens_alarms_and_reconciles(pool: asyncpg.Pool) -> None:
    r = rig(pool, [basis("a"), basis("b", camera=False)])
    dog = r.watchdog()
    r.clock.set(at_local(NIGHT, 17, 59))
    await dog.tick()
    assert await r.store.planned_nights() == {}
    r.clock.set(PLAN_AT)
    await dog.tick()
    await dog.tick()
    assert len(await r.store.night_checks(NIGHT)) == 2
    r.clock.set(WS)
    await dog.tick()
    assert (await states(r.store))["a"] == (State.DUE, None)
    r.clock.set(WS + timedelta(minutes=5))  # nobody claimed it in time
    await dog.tick()
    alarms = [e for e in r.events if isinstance(e, AlarmRaised)]
    assert [a.alarm.recipient_id for a in alarms] == ["a"]
    await dog.tick()
    assert dog.alarms_raised == 1
    r.clock.set(dog.reconcile_at(NIGHT))
    await dog.tick()
    assert await states(r.store) == {
        "a": (State.DEVIATION, "unfinished_due"),
        "b": (State.DEVIATION, "patrol_not_acknowledged"),
    }
    assert (await r.store.planned_nights())[NIGHT] == r.clock()


async def test_a_camera_going_offline_sends_the_patrol_at_once(pool: asyncpg.Pool) -> None:
    r = rig(pool, [basis("a", times=(time(22, 0), time(23, 0), time(3, 0)))])
    await r.plan()
    r.clock.set(WS)
    dog = r.watchdog()
    await dog.tick()
    offline = type("P", (), {"device_id": "cam-a", "presence": "offline", "at": WS})()
    moved = await dog.on_presence(offline)  # type: ignore[arg-type]
    assert sorted(t.check.agreed for t in moved) == [time(22, 0)]  # 23:00 is beyond 30 min
    r.clock.set(at_local(NIGHT, 22, 40))
    moved = await dog.on_presence(offline)  # type: ignore[arg-type]
    assert [t.check.agreed for t in moved] == [time(23, 0)]
    assert {c.agreed: c.reason for c in await r.store.night_checks(NIGHT)} == {
        time(22, 0): "device_offline",
        time(23, 0): "device_offline",
        time(3, 0): None,
    }
    online = type("P", (), {"device_id": "cam-a", "presence": "online", "at": WS})()
    assert await dog.on_presence(online) == []  # type: ignore[arg-type]


async def test_a_withdrawal_in_the_night_replans_the_remaining_checks(pool: asyncpg.Pool) -> None:
    times = (time(22, 0), time(1, 0), time(4, 0))
    r = rig(pool, [basis("a", times=times), basis("b", times=times)])
    await r.plan()
    two = at_local(NIGHT + timedelta(days=1), 2)
    r.clock.set(two)
    r.gate.data["a"] = dataclasses.replace(
        r.gate.data["a"], consents=(consent("a", Purpose.CAMERA_CHECK, withdrawn_at=two),)
    )
    dog = r.watchdog()
    change = ConsentChange("e1", ChangeKind.CONSENT_WITHDRAWN, "a", ("cam-a",), two)
    feed: asyncio.Queue[object] = asyncio.Queue()

    async def events():  # type: ignore[no-untyped-def]
        while True:
            yield await feed.get()

    # an event whose handling fails (PostgreSQL refuses a device id that is no text) is logged
    # with its type, and the next one is handled
    broken = type("Broken", (), {"device_id": 61, "presence": "offline", "at": two})()
    with capture_logs() as logs:
        watcher = asyncio.create_task(dog.watch(events()))
        await feed.put("noise")
        await feed.put(broken)
        await feed.put(change)
        for _ in range(200):
            if (await r.store.get("20250610.0400.a")).state is State.PATROL:
                break
            await asyncio.sleep(0.02)
        watcher.cancel()
    failed = [e for e in logs if e["event"] == "round_event_failed"]
    assert [(e["event_type"], e["log_level"]) for e in failed] == [("Broken", "error")]
    by = {
        (c.recipient_id, c.agreed): (c.state, c.reason) for c in await r.store.night_checks(NIGHT)
    }
    assert by[("a", time(4, 0))] == (State.PATROL, "withdrawn")
    assert by[("a", time(22, 0))][0] is State.PLANNED  # past checks are left to the round
    assert by[("b", time(4, 0))] == (State.PLANNED, None)


async def test_a_resync_replans_everyone_with_checks_still_open(pool: asyncpg.Pool) -> None:
    """Consent events may have been missed (the listener reconnected): re-judge every brukare."""
    times = (time(22, 0), time(1, 0), time(4, 0))
    r = rig(pool, [basis(rid, times=times) for rid in ("a", "b", "c")])
    await r.plan()
    two = at_local(NIGHT + timedelta(days=1), 2)
    r.clock.set(two)
    for rid in ("a", "b"):
        r.gate.data[rid] = dataclasses.replace(
            r.gate.data[rid], consents=(consent(rid, Purpose.CAMERA_CHECK, withdrawn_at=two),)
        )
    moved = await r.watchdog().on_change(ConsentChange("e9", ChangeKind.RESYNC, None, (), two))
    assert sorted(t.check.check_id for t in moved) == ["20250610.0400.a", "20250610.0400.b"]
    by = {
        (c.recipient_id, c.agreed): (c.state, c.reason) for c in await r.store.night_checks(NIGHT)
    }
    assert by[("a", time(4, 0))] == (State.PATROL, "withdrawn")
    assert by[("b", time(4, 0))] == (State.PATROL, "withdrawn")
    assert by[("c", time(4, 0))] == (State.PLANNED, None)


async def test_the_backends_own_link_down_is_waited_out_not_sent_to_the_patrol(
    pool: asyncpg.Pool,
) -> None:
    r = rig(pool, [basis("r0")])
    await r.plan()
    r.clock.set(WS)
    r.devices.link_down_for = 3  # the broker is back after three tries
    runner = r.runner(timing=fast(0.01, link_retry_s=0.01))
    await r.drain(runner)
    assert await states(r.store) == {"r0": (State.NEEDS_VIEW, "motion_activity")}
    assert runner.link_retries == 3
    assert len(r.prober.probed) == 1
    assert r.devices.woken == ["cam-r0"] * 4


async def test_the_wait_for_the_link_runs_on_the_clock(pool: asyncpg.Pool) -> None:
    """The link wait is a deadline of the night (it must end before the claim does): measured
    and slept on the injected clock, so a stopped clock (or a sped-up one) gets through the
    production ``link_wait_s`` (30 s, a try every second) without waiting 30 real seconds."""
    r = rig(pool, [basis("r0")])
    await r.plan()
    r.clock.set(WS)
    r.devices.link_down_for = 1000
    production = Timing(poll_s=0.01)  # link_retry_s=1, link_wait_s=30
    started = asyncio.get_running_loop().time()
    await r.drain(r.runner("w1", timing=production))
    assert asyncio.get_running_loop().time() - started < production.link_wait_s / 2
    [check] = await r.store.night_checks(NIGHT)
    assert (check.state, check.holder) == (State.PROBING, "w1")  # the claim lapses, not patrol
    moved_s = (r.clock() - WS).total_seconds()
    assert production.link_wait_s - production.link_retry_s <= moved_s <= production.link_wait_s


async def test_a_link_down_past_the_wait_lets_the_claim_lapse(pool: asyncpg.Pool) -> None:
    r = rig(pool, [basis("r0")])
    await r.plan()
    r.clock.set(WS)
    r.devices.link_down_for = 1000
    await r.drain(r.runner("w1", timing=fast(0.01, link_retry_s=0.01, link_wait_s=0.1)))
    [check] = await r.store.night_checks(NIGHT)
    assert (check.state, check.holder) == (State.PROBING, "w1")  # no patrol, the claim is held
    assert r.prober.probed == []
    # the claim lapses after the window ended: claimed again, the ladder goes on without a look
    r.devices.link_down_for = 0
    r.clock.set(check.window_end + timedelta(seconds=r.store.timing.probe_timeout_s))
    other = r.runner("w2")
    await r.drain(other)
    assert other.processed == 1
    [after] = await r.store.night_checks(NIGHT)
    assert (after.state, after.reason) == (State.CALLING, "outside_window")
    assert r.prober.probed == []
