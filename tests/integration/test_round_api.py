"""The round's HTTP API through aiohttp's test client on the real database: duty, views,
outcomes, patrol, bad input (each a clear 4xx, nothing changed), console events, the report."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from kernel.clock import ScaledClock
from services.web import http
from supervision import api
from supervision.checks import State
from supervision.ports import CheckChanged
from supervision.store import RoundStore
from supervision.watchdog import Watchdog
from tests.header_auth import header_authenticator
from tests.rounds_support import (
    BasisGate,
    FakeDevices,
    at_local,
    basis,
    delivered,
    fixed_clock,
    seed_recipients,
    seed_staff,
)

pytestmark = pytest.mark.integration

NIGHT = date(2025, 6, 10)
PLAN_AT = at_local(NIGHT, 18)
WS = at_local(NIGHT, 21, 45)
Client = TestClient[web.Request, web.Application]
OPERATOR = {"X-Test-Role": "operator", "X-Test-Staff": "staff-oper01"}
OTHER = {"X-Test-Role": "operator", "X-Test-Staff": "staff-oper02"}
ADMIN = {"X-Test-Role": "administrator", "X-Test-Staff": "staff-admin01"}
TECH = {"X-Test-Role": "technician", "X-Test-Staff": "staff-tech01"}
CHECK = "20250610.2200.r1"


@dataclass
class Rig:
    client: Client
    store: RoundStore
    clock: ScaledClock
    events: list[object]


@pytest.fixture
async def rig(pool: asyncpg.Pool) -> AsyncIterator[Rig]:
    bases = {b.recipient_id: b for b in (basis("r1"), basis("r2", camera=False))}
    gate = BasisGate(bases)
    await seed_recipients(pool, bases)
    await seed_staff(
        pool, [(h["X-Test-Staff"], h["X-Test-Role"]) for h in (OPERATOR, OTHER, ADMIN, TECH)]
    )
    clock = fixed_clock(PLAN_AT)
    events: list[object] = []
    store = RoundStore(pool)
    dog = Watchdog(
        store,
        bases=gate,
        devices=FakeDevices({f"cam-{r}" for r in bases}),
        clock=clock,
        publish=events.append,
    )
    app = http.make_app(max_body_bytes=65536)
    app[http.AUTHENTICATOR] = header_authenticator
    app[api.STORE] = store
    app[api.CLOCK] = clock
    app[api.WATCHDOG] = dog
    app[api.PUBLISH] = events.append
    http.add_routes(app, api.routes())
    async with TestClient(TestServer(app)) as c:
        yield Rig(c, store, clock, events)


async def ok(resp: Any, status: int = 200) -> dict[str, Any]:
    body = await resp.json()
    assert resp.status == status, body
    return dict(body)


async def error(resp: Any, status: int) -> dict[str, Any]:
    body = await resp.json()
    assert resp.status == status, body
    return dict(body["error"])


async def snapshot(pool: asyncpg.Pool) -> tuple[object, ...]:
    return (
        tuple(await pool.fetch("SELECT * FROM round_checks ORDER BY check_id")),
        await pool.fetchval("SELECT count(*) FROM round_transitions"),
        await pool.fetchval("SELECT count(*) FROM audit_log"),
    )


async def to_needs_view(r: Rig) -> None:
    """Plan the night through the API and bring r1's check to a human view."""
    c = r.client
    body = await ok(await c.post(f"/api/nights/{NIGHT}/plan", headers=ADMIN))
    assert body["checks"] == 2
    assert body["by_state"] == {"planned": 1, "patrol": 1}
    r.clock.set(WS)
    await r.store.open_due(WS)
    (claimed,) = await r.store.claim("w1", WS)
    from supervision import checks as ch

    await r.store.finish(claimed, ch.ProbeSkipped("no_motion_consent"), at=WS)


async def test_an_operator_views_and_documents_a_check(rig: Rig, pool: asyncpg.Pool) -> None:
    c = rig.client
    await to_needs_view(rig)
    queue = await ok(await c.get("/api/rounds/queue", headers=OPERATOR))
    assert [x["state"] for x in queue["checks"]] == ["needs_view", "patrol"]
    await ok(await c.post("/api/rounds/duty", headers=OPERATOR, json={}), 201)
    rig.clock.set(WS + timedelta(seconds=30))
    await ok(await c.post(f"/api/checks/{CHECK}/view", headers=OPERATOR, json={}))
    # the view itself goes through signalling; its camera reported 24 s of video at the end
    await delivered(
        pool, CHECK, "staff-oper01", started_at=WS + timedelta(seconds=30), open_s=25, video_s=24.0
    )
    rig.clock.set(WS + timedelta(seconds=55))
    body = await ok(
        await c.post(
            f"/api/checks/{CHECK}/outcome",
            headers=OPERATOR,
            json={"outcome": "ok", "note": "sover lugnt"},
        )
    )
    assert body["state"] == "documented"
    steps = (await ok(await c.get(f"/api/checks/{CHECK}", headers=OPERATOR)))["transitions"]
    assert [s["to"] for s in steps] == ["due", "probing", "needs_view", "viewing", "documented"]
    assert steps[-1]["note"] == "sover lugnt"
    assert steps[-1]["actor"] == "staff-oper01"
    published = [e for e in rig.events if isinstance(e, CheckChanged)]
    assert [(e.before, e.state) for e in published[-2:]] == [
        (State.NEEDS_VIEW, State.VIEWING),
        (State.VIEWING, State.DOCUMENTED),
    ]
    message = api.console_event(published[-1])
    assert message is not None
    assert message["type"] == "check.changed"
    assert message["state"] == "documented"
    assert message["category"] == "performed"
    assert message["from"] == "viewing"
    assert api.console_event("something else") is None
    audit = await pool.fetch("SELECT action, data::text AS data FROM audit_log ORDER BY seq")
    assert "check.documented" in [a["action"] for a in audit]
    assert all("sover" not in a["data"] for a in audit)  # notes never go to the audit log

    report = await ok(await c.get(f"/api/nights/{NIGHT}/report", headers=OPERATOR))
    assert report["totals"]["planned"] == 2
    assert report["totals"]["performed"] == 1
    assert report["totals"]["views"] == 1
    assert report["operators"][0]["staff_id"] == "staff-oper01"
    assert report["operators"][0]["view_seconds"] == 24.0  # delivered, as the camera reported
    page = await c.get(f"/api/nights/{NIGHT}/report?format=html", headers=OPERATOR)
    assert page.status == 200
    assert page.content_type == "text/html"
    assert "Nattrapport" in await page.text()


async def test_not_seen_then_the_ladder_and_the_patrol(rig: Rig) -> None:
    c = rig.client
    await to_needs_view(rig)
    await ok(await c.post("/api/rounds/duty", headers=OPERATOR, json={}), 201)
    await ok(await c.post(f"/api/checks/{CHECK}/view", headers=OPERATOR, json={}))
    body = await ok(
        await c.post(f"/api/checks/{CHECK}/outcome", headers=OPERATOR, json={"outcome": "not_seen"})
    )
    assert body["state"] == "retry_wait"
    rig.clock.set(WS + timedelta(minutes=25))
    await rig.store.open_due(rig.clock())
    assert (await rig.store.get(CHECK)).state is State.DUE
    patrol = "20250610.2200.r2"
    await ok(await c.post(f"/api/checks/{patrol}/patrol/ack", headers=OTHER, json={}))
    body = await ok(
        await c.post(f"/api/checks/{patrol}/patrol/visited", headers=OTHER, json={"note": "ok"})
    )
    assert body["state"] == "visited"


async def test_bad_outcomes_change_nothing(rig: Rig, pool: asyncpg.Pool) -> None:
    c = rig.client
    await to_needs_view(rig)
    url = f"/api/checks/{CHECK}/outcome"
    before = await snapshot(pool)
    # not on duty: 403, whatever the body
    e = await error(await c.post(url, headers=OPERATOR, json={"outcome": "call"}), 403)
    assert e["code"] == "not_on_duty"
    await ok(await c.post("/api/rounds/duty", headers=OPERATOR, json={}), 201)
    e = await error(await c.post("/api/rounds/duty", headers=OPERATOR, json={}), 409)
    assert e["code"] == "already_on_duty"
    before = await snapshot(pool)
    cases: list[tuple[dict[str, Any], dict[str, str], int, str | None]] = [
        ({"outcome": "ok"}, OPERATOR, 409, "not_in_state"),  # seen without a view?
        ({"outcome": "not_seen"}, OPERATOR, 409, "not_in_state"),
        ({"outcome": "maybe"}, OPERATOR, 422, "outcome"),
        ({"outcome": "patrol"}, OPERATOR, 422, "reason"),  # a patrol needs a reason
        ({"outcome": "patrol", "reason": "Fallen!"}, OPERATOR, 422, "reason"),
        ({"outcome": "ok", "extra": 1}, OPERATOR, 422, "extra"),
        ({"outcome": "call", "note": "x" * 2001}, OPERATOR, 422, "note"),
        ({}, OPERATOR, 422, "outcome"),
        ({"outcome": "call"}, TECH, 403, None),  # not an operator role
    ]
    for body, headers, status, what in cases:
        err = await error(await c.post(url, headers=headers, json=body), status)
        if status == 409:
            assert err["code"] == what, (body, err)
        elif status == 422:
            assert err["field"] == what, (body, err)
    as_json = {**OPERATOR, "Content-Type": "application/json"}
    err = await error(await c.post(url, headers=as_json, data=b"{not json"), 400)
    assert err["status"] == 400
    err = await error(await c.post(url, headers=OPERATOR, data=b"{not json"), 415)
    err = await error(
        await c.post("/api/checks/20250610.2200.nobody/outcome", headers=OPERATOR, json={}), 422
    )
    err = await error(
        await c.post(
            "/api/checks/20250610.2200.nobody/outcome", headers=OPERATOR, json={"outcome": "ok"}
        ),
        404,
    )
    assert err["code"] == "unknown_check"
    # a finished check accepts nothing; a patrol visit is not an outcome
    patrol = "20250610.2200.r2"
    err = await error(
        await c.post(f"/api/checks/{patrol}/outcome", headers=OPERATOR, json={"outcome": "ok"}),
        409,
    )
    assert err["code"] == "not_in_state"
    err = await error(await c.get("/api/nights/2025-13-40/report", headers=OPERATOR), 422)
    assert err["field"] == "date"
    err = await error(await c.post("/api/nights/2030-01-01/plan", headers=ADMIN), 422)
    assert err["code"] == "night_out_of_range"
    err = await error(await c.post(f"/api/nights/{NIGHT}/reconcile", headers=ADMIN), 422)
    assert err["code"] == "night_not_over"
    err = await error(await c.post(f"/api/alarms/{CHECK}/x/ack", headers=OPERATOR), 422)
    err = await error(await c.post(f"/api/alarms/{CHECK}/3/ack", headers=OPERATOR), 404)
    assert await snapshot(pool) == before


async def test_a_duplicate_claim_gets_nothing(rig: Rig) -> None:
    await ok(await rig.client.post(f"/api/nights/{NIGHT}/plan", headers=ADMIN))
    await rig.store.open_due(WS)
    first = await rig.store.claim("w1", WS, limit=5)
    assert [x.check_id for x in first] == [CHECK]
    assert await rig.store.claim("w2", WS, limit=5) == []
    assert await rig.store.claim("w1", WS, limit=5) == []
    assert (await rig.store.get(CHECK)).holder == "w1"


async def test_a_worker_without_the_probe_waits_before_it_claims(rig: Rig) -> None:
    await ok(await rig.client.post(f"/api/nights/{NIGHT}/plan", headers=ADMIN))
    await rig.store.open_due(WS)
    later = WS + timedelta(seconds=29)
    assert await rig.store.claim("human-only", later, after_s=30) == []
    (taken,) = await rig.store.claim("human-only", later + timedelta(seconds=1), after_s=30)
    assert taken.holder == "human-only"


async def test_agreed_times_outside_the_night_are_reported_not_planned(pool: asyncpg.Pool) -> None:
    bases = {"r1": basis("r1", times=(time(22, 0), time(14, 0)))}
    store = RoundStore(pool)
    dog = Watchdog(
        store, bases=BasisGate(bases), devices=FakeDevices({"cam-r1"}), clock=fixed_clock(PLAN_AT)
    )
    plan = await dog.plan(NIGHT)
    assert [x.agreed for x in plan.checks] == [time(22, 0)]
    assert [(p.field, p.code) for p in plan.problems] == [("checks[1].at", "outside_night")]
    assert len(await store.night_checks(NIGHT)) == 1
