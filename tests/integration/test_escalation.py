"""Escalation that acts (issue 16) on real PostgreSQL: the watchdog on a stepped clock repeats a
missed step's alarm at the plan's interval, sends an unanswered view to the patrol by itself and
tells the shift lead, tells the shift lead when the patrol does not answer, never twice even with
two watchdogs; the plan's deadline terms go through the API and the consent store to the check."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from consent import api
from consent.model import Deadlines, StepDeadline
from consent.ports import ConsentStore
from consent.store import PgConsentStore
from kernel.clock import ScaledClock
from kernel.roles import Role
from services.web import http
from supervision import checks as ch
from supervision.checks import AlarmKind, State
from supervision.ports import AlarmRaised, CheckChanged
from supervision.store import RoundStore
from supervision.watchdog import Watchdog, WatchdogConfig
from tests.header_auth import header_authenticator
from tests.rounds_support import (
    BasisGate,
    FakeDevices,
    at_local,
    basis,
    fast,
    fixed_clock,
    seed_recipients,
)

pytestmark = pytest.mark.integration

NIGHT = date(2025, 6, 10)
PLAN_AT = at_local(NIGHT, 18)
WS = at_local(NIGHT, 21, 45)  # the 22:00 check's window opens
MIN = timedelta(minutes=1)
SEC = timedelta(seconds=1)


@dataclasses.dataclass
class Night:
    store: RoundStore
    dog: Watchdog
    clock: ScaledClock
    events: list[object]

    async def at(self, when: datetime) -> None:
        self.clock.set(when)
        await self.dog.tick()

    async def minutes(self, start: datetime, n: int) -> None:
        """The watchdog once a minute from ``start`` (inclusive) for ``n`` minutes."""
        for i in range(n + 1):
            await self.at(start + i * MIN)

    async def check(self, rid: str) -> ch.Check:
        (c,) = [c for c in await self.store.night_checks(NIGHT) if c.recipient_id == rid]
        return c


async def night(pool: asyncpg.Pool, *bases: Any, store: RoundStore | None = None) -> Night:
    gate = BasisGate({b.recipient_id: b for b in bases})
    await seed_recipients(pool, [b.recipient_id for b in bases])
    devices = FakeDevices({f"cam-{b.recipient_id}" for b in bases})
    clock = fixed_clock(PLAN_AT)
    events: list[object] = []
    store = store or RoundStore(pool)
    dog = Watchdog(
        store,
        bases=gate,
        devices=devices,
        clock=clock,
        config=WatchdogConfig(timing=fast(0.01)),
        publish=events.append,
    )
    await dog.plan(NIGHT)
    return Night(store, dog, clock, events)


async def to_needs_view(n: Night, rid: str, at: datetime) -> ch.Check:
    """The check of ``rid`` claimed and sent to a human at ``at`` (as a worker would)."""
    n.clock.set(at)
    await n.store.open_due(at)
    c = await n.check(rid)
    claimed = await n.store.transition(c.check_id, ch.Claim("w1"), at=at)
    done = await n.store.finish(claimed.check, ch.ProbeDone("still", True), at=at)
    return done.check


async def alarm_rows(pool: asyncpg.Pool, check_id: str) -> list[tuple[Any, ...]]:
    rows = await pool.fetch(
        "SELECT version, kind, repeat, addressed_to, state, raised_at FROM round_alarms"
        " WHERE check_id=$1 ORDER BY raised_at, kind DESC, repeat",
        check_id,
    )
    return [tuple(r) for r in rows]


async def test_a_view_nobody_opens_repeats_its_alarm_then_goes_to_the_patrol(
    pool: asyncpg.Pool,
) -> None:
    n = await night(pool, basis("r1"))
    queued = await to_needs_view(n, "r1", WS)
    assert queued.deadline == WS + 5 * MIN  # the plan's default: a queued view within 5 min
    await n.minutes(WS, 14)
    patrol = await n.check("r1")
    assert (patrol.state, patrol.reason, patrol.holder) == (State.PATROL, "unanswered", None)
    v = queued.version
    assert await alarm_rows(pool, queued.check_id) == [
        (v, "alarm", 1, "operator", "needs_view", WS + 6 * MIN),  # 5 min + 30 s grace
        (v, "alarm", 2, "operator", "needs_view", WS + 8 * MIN),  # every 2 min
        (v, "escalation", 1, "shift_lead", "needs_view", WS + 10 * MIN),  # 5 min after
    ]
    step = await pool.fetchrow(
        "SELECT at, event, actor, reason FROM round_transitions WHERE check_id=$1"
        " AND to_state='patrol'",
        queued.check_id,
    )
    assert dict(step) == {
        "at": WS + 10 * MIN,
        "event": "escalate",
        "actor": "system",
        "reason": "unanswered",
    }
    audited = await pool.fetch(
        "SELECT action FROM audit_log WHERE subject=$1 AND action LIKE 'check.%' ORDER BY seq",
        queued.check_id,
    )
    assert [r["action"] for r in audited][-4:] == [
        "check.alarm_raised",
        "check.alarm_raised",
        "check.alarm_escalated",
        "check.patrol",
    ]
    published = [e for e in n.events if isinstance(e, AlarmRaised | CheckChanged)]
    alarms = [e.alarm for e in published if isinstance(e, AlarmRaised)]
    assert [(a.kind, a.repeat, a.to) for a in alarms] == [
        (AlarmKind.ALARM, 1, Role.OPERATOR),
        (AlarmKind.ALARM, 2, Role.OPERATOR),
        (AlarmKind.ESCALATION, 1, Role.SHIFT_LEAD),
    ]
    assert any(
        isinstance(e, CheckChanged) and e.state is State.PATROL and e.reason == "unanswered"
        for e in published
    )
    assert (n.dog.alarms_raised, n.dog.escalations) == (3, 1)
    # the patrol task has its own deadline: 10 min to acknowledge; nothing new is owed before
    assert patrol.deadline == WS + 20 * MIN


async def test_a_patrol_that_never_answers_tells_the_shift_lead_and_the_alarm_goes_on(
    pool: asyncpg.Pool,
) -> None:
    n = await night(pool, basis("r1"))
    n.clock.set(WS)
    await n.store.open_due(WS)
    c = await n.check("r1")
    claimed = await n.store.transition(c.check_id, ch.Claim("w1"), at=WS)
    sent = (await n.store.finish(claimed.check, ch.ProbeDone("dark", False), at=WS)).check
    assert (sent.state, sent.deadline) == (State.PATROL, WS + 10 * MIN)
    await n.minutes(WS, 60)
    rows = await alarm_rows(pool, sent.check_id)
    # alarms every 5 min from 10.5 min; the shift lead told at 20 min; the alarms go on to them
    assert [(kind, repeat, to) for _, kind, repeat, to, _, _ in rows] == [
        ("alarm", 1, "patrol"),
        ("alarm", 2, "patrol"),
        ("escalation", 1, "shift_lead"),
        *[("alarm", k, "shift_lead") for k in range(3, 11)],
    ]
    assert [r[5] for r in rows if r[1] == "alarm"] == [WS + (11 + 5 * k) * MIN for k in range(10)]
    assert (await n.check("r1")).state is State.PATROL  # the visit stays requested
    # acknowledging quiets the alarms raised so far, not the next ones
    await n.store.acknowledge_alarm(sent.check_id, sent.version, staff_id="staff-lead", at=WS)
    assert await n.store.alarms(NIGHT, open_only=True) == []
    await n.minutes(WS + 61 * MIN, 4)
    (again,) = await n.store.alarms(NIGHT, open_only=True)
    assert (again["repeat"], again["addressed_to"]) == (11, "shift_lead")


async def test_a_step_done_in_time_stops_its_ladder(pool: asyncpg.Pool) -> None:
    n = await night(pool, basis("r1"))
    queued = await to_needs_view(n, "r1", WS)
    await n.minutes(WS, 7)  # one alarm at 6 min
    await n.store.transition(queued.check_id, ch.ViewOpened("staff-op1"), at=WS + 7 * MIN)
    await n.minutes(WS + 8 * MIN, 3)  # the view's own deadline: cap + grace (2.5 min) + 30 s
    rows = await alarm_rows(pool, queued.check_id)
    assert [(r[1], r[2], r[4]) for r in rows] == [
        ("alarm", 1, "needs_view"),
        ("alarm", 1, "viewing"),
    ]
    assert (await n.check("r1")).state is State.VIEWING


async def test_two_watchdogs_never_raise_or_escalate_twice(
    pool: asyncpg.Pool, database_url: str
) -> None:
    bases = [basis(f"r{i}") for i in range(6)]
    n = await night(pool, *bases)
    for b in bases:
        await to_needs_view(n, b.recipient_id, WS)
    async with asyncpg.create_pool(database_url, min_size=1, max_size=2) as other_pool:
        other = RoundStore(other_pool)
        for minute in range(15):
            at = WS + minute * MIN
            (a1, _), (a2, _) = await asyncio.gather(
                n.store.watch_deadlines(at), other.watch_deadlines(at)
            )
            keys = [(a.check_id, a.version, a.kind, a.repeat) for a in a1 + a2]
            assert len(keys) == len(set(keys))
    counts = await pool.fetchrow(
        "SELECT count(*) FILTER (WHERE kind='alarm') AS alarms,"
        " count(*) FILTER (WHERE kind='escalation') AS escalations FROM round_alarms"
    )
    assert dict(counts) == {"alarms": 12, "escalations": 6}
    escalated = await pool.fetchval("SELECT count(*) FROM round_transitions WHERE event='escalate'")
    assert escalated == 6


async def test_the_plans_terms_set_the_ladder(pool: asyncpg.Pool) -> None:
    quick = Deadlines(view=StepDeadline(respond_s=60, repeat_s=60, escalate_s=120))
    n = await night(pool, basis("r1", plan={"deadlines": quick}))
    queued = await to_needs_view(n, "r1", WS)
    assert queued.policy.deadlines == quick
    assert queued.deadline == WS + MIN
    await n.minutes(WS, 4)
    assert (await n.check("r1")).state is State.PATROL  # 1 min + 2 min
    rows = await alarm_rows(pool, queued.check_id)
    assert [(r[1], r[2], r[5]) for r in rows] == [
        ("alarm", 1, WS + 2 * MIN),
        ("escalation", 1, WS + 3 * MIN),
    ]


# ------------------------------------------------------------------ the plan's terms by HTTP

T0 = datetime(2026, 1, 12, 20, 0, tzinfo=UTC)
ADMIN = {"X-Test-Role": "administrator", "X-Test-Staff": "staff-admin01"}
PLAN = {"decision_ref": "SN-1", "checks": [{"at": "22:00"}]}


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = http.make_app(max_body_bytes=65536)
    store: ConsentStore = PgConsentStore(pool)
    app[api.STORE] = store
    now: api.Clock = ScaledClock(0, T0)
    app[api.CLOCK] = now
    app[http.AUTHENTICATOR] = header_authenticator
    http.add_routes(app, api.routes())
    async with TestClient(TestServer(app)) as c:
        resp = await c.post(
            "/api/recipients", json={"recipient_id": "r-1", "display_name": "A"}, headers=ADMIN
        )
        assert resp.status == 201, await resp.text()
        yield c


async def test_a_plans_deadlines_are_stored_read_back_and_checked(
    client: TestClient[web.Request, web.Application], pool: asyncpg.Pool
) -> None:
    terms = {"respond_s": 120, "repeat_s": 60, "escalate_s": 240}
    resp = await client.post(
        "/api/recipients/r-1/care-plans",
        json={**PLAN, "deadlines": {"view": terms}},
        headers=ADMIN,
    )
    body = await resp.json()
    assert resp.status == 201, body
    assert body["deadlines"]["view"] == terms
    assert body["deadlines"]["patrol_arrival"] == {
        "respond_s": 2700,
        "repeat_s": 600,
        "escalate_s": 900,
    }
    (stored,) = (await PgConsentStore(pool).basis("r-1")).plans
    assert stored.deadlines.view == StepDeadline(120, 60, 240)
    before = await pool.fetchval("SELECT count(*) FROM care_plans")
    for bad, field, code in [
        ({"view": {**terms, "repeat_s": 0}}, "deadlines.view.repeat_s", "out_of_range"),
        ({"call": {"respond_s": 300}}, "deadlines.call.repeat_s", "missing_field"),
        ({"patrol": terms}, "deadlines.patrol", "unknown_field"),
        ({"view": {**terms, "respond_s": 3000, "escalate_s": 1200}}, "deadlines.view", None),
    ]:
        resp = await client.post(
            "/api/recipients/r-1/care-plans",
            json={**PLAN, "valid_from": "2027-01-01T12:00:00+01:00", "deadlines": bad},
            headers=ADMIN,
        )
        error = (await resp.json())["error"]
        assert resp.status == 422, error
        assert error["field"] == field
        if code is not None:
            assert error["code"] == code
    assert await pool.fetchval("SELECT count(*) FROM care_plans") == before


async def test_a_patrol_at_the_door_ends_the_arrival_alarms(pool: asyncpg.Pool) -> None:
    n = await night(pool, basis("r1"), basis("r2"))
    for rid in ("r1", "r2"):  # both sent to the patrol and taken at once
        n.clock.set(WS)
        await n.store.open_due(WS)
        c = await n.check(rid)
        claimed = await n.store.transition(c.check_id, ch.Claim("w1"), at=WS)
        await n.store.finish(claimed.check, ch.ProbeDone("dark", False), at=WS)
        await n.store.transition(c.check_id, ch.PatrolAcknowledged("staff-p1"), at=WS)
    here = (await n.check("r1")).check_id
    await n.minutes(WS, 50)  # the arrival was due at 45 min: both sound at 45.5
    await n.store.patrol_arrived(here, staff_id="staff-p1", at=WS + 50 * MIN, is_patrol=True)
    await n.minutes(WS + 51 * MIN, 30)
    arrived = [(r[1], r[2]) for r in await alarm_rows(pool, here)]
    late = [(r[1], r[2]) for r in await alarm_rows(pool, (await n.check("r2")).check_id)]
    assert arrived == [("alarm", 1)]
    assert late == [("alarm", 1), ("alarm", 2), ("escalation", 1), ("alarm", 3), ("alarm", 4)]


async def test_an_escalated_look_given_to_an_operator_is_every_patrols_task(
    pool: asyncpg.Pool,
) -> None:
    n = await night(pool, basis("r1"))
    queued = await to_needs_view(n, "r1", WS)
    await pool.execute(  # the shift lead gave the look to an operator, who never opened it
        "UPDATE round_checks SET assignee='staff-op1', assigned_at=$2 WHERE check_id=$1",
        queued.check_id,
        WS,
    )
    await n.minutes(WS, 10)
    assert (await n.check("r1")).state is State.PATROL
    tasks = await n.store.patrol_tasks(visible_to="staff-p1")
    assert [(t["check_id"], t["assignee"], t["reason"]) for t in tasks] == [
        (queued.check_id, None, "unanswered")
    ]
