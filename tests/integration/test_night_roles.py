"""Roles for the night on the real database: the patrol sees its tasks (home, door-code
reference, the plan's instruction, why), takes one, arrives and reports what it found; the shift
lead moves tasks between patrols (audited); a patrol cannot act on another's task, see the queue
or document a look; retried reports change nothing. And the handover the day staff get."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from consent.model import CareRecipient
from consent.store import PgConsentStore
from identity import store as staff_store
from kernel.clock import ScaledClock
from kernel.roles import Role
from services.web import http
from supervision import api
from supervision import checks as ch
from supervision.looks import CheckLooks
from supervision.store import RoundStore
from supervision.watchdog import Watchdog
from tests.header_auth import header_authenticator
from tests.rounds_support import (
    BasisGate,
    FakeDevices,
    at_local,
    basis,
    fixed_clock,
    seed_recipients,
)

pytestmark = pytest.mark.integration

NIGHT = date(2025, 6, 10)
PLAN_AT = at_local(NIGHT, 18)
WS = at_local(NIGHT, 21, 45)
ADMIN = {"X-Test-Role": "administrator", "X-Test-Staff": "staff-admin01"}
TASK = "20250610.2200.r2"  # r2 has no camera consent: a patrol task from planning
LOOK = "20250610.2200.r1"
Client = TestClient[web.Request, web.Application]


@dataclass
class Night:
    client: Client
    store: RoundStore
    clock: ScaledClock
    staff: dict[str, dict[str, str]]  # name -> headers of a real staff account


@pytest.fixture
async def night(pool: asyncpg.Pool) -> AsyncIterator[Night]:
    gate = BasisGate({b.recipient_id: b for b in (basis("r1"), basis("r2", camera=False))})
    clock = fixed_clock(PLAN_AT)
    store = RoundStore(pool)
    dog = Watchdog(store, bases=gate, devices=FakeDevices({"cam-r1", "cam-r2"}), clock=clock)
    home = CareRecipient(
        "r2", "Brukare Två", home="Storgatan 2, lgh 1102", door_code_ref="nyckelskåp 14 i porten"
    )
    stored = await PgConsentStore(pool).add_recipient(home, actor="staff-admin01", at=PLAN_AT)
    await seed_recipients(pool, ["r1"])
    assert stored.door_code_ref == "nyckelskåp 14 i porten"
    staff: dict[str, dict[str, str]] = {}
    async with pool.acquire() as conn:
        for name, role in (
            ("patrol1", Role.PATROL),
            ("patrol2", Role.PATROL),
            ("lead", Role.SHIFT_LEAD),
            ("oper", Role.OPERATOR),
        ):
            account = await staff_store.create_staff(
                conn, username=f"night-{name}", role=role, password=None, is_service=True
            )
            staff[name] = {"X-Test-Role": role.value, "X-Test-Staff": account.staff_id}
        await conn.execute(
            "INSERT INTO care_plans (plan_id, recipient_id, decision_ref, valid_from, checks,"
            " view_cap_s, motion_may_clear, retry_interval_s, escalation, instruction,"
            " paused_checks, created_at, created_by) VALUES ('plan-r2', 'r2', 'dec-1', $1,"
            " '[]'::jsonb, 30, false, 1200, ARRAY['retry','call','patrol'],"
            " 'Knacka, vänta, ring på telefonen', 'physical_visit', $1, 'test')",
            PLAN_AT - timedelta(days=30),
        )
    app = http.make_app(max_body_bytes=65536)
    app[http.AUTHENTICATOR] = header_authenticator
    app[api.STORE] = store
    app[api.CLOCK] = clock
    app[api.WATCHDOG] = dog
    http.add_routes(app, api.routes())
    async with TestClient(TestServer(app)) as c:
        body = await ok(await c.post(f"/api/nights/{NIGHT}/plan", headers=ADMIN))
        assert body["by_state"] == {"planned": 1, "patrol": 1}
        clock.set(WS)
        yield Night(c, store, clock, staff)


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


async def tasks(n: Night, who: str) -> list[dict[str, Any]]:
    body = await ok(await n.client.get("/api/patrol/tasks", headers=n.staff[who]))
    return list(body["tasks"])


async def test_the_patrol_takes_reports_and_the_shift_lead_reassigns(
    night: Night, pool: asyncpg.Pool
) -> None:
    c, s = night.client, night.staff
    [task] = await tasks(night, "patrol1")
    assert task["check_id"] == TASK
    assert (task["home"], task["door_code_ref"]) == (
        "Storgatan 2, lgh 1102",
        "nyckelskåp 14 i porten",
    )
    assert task["instruction"] == "Knacka, vänta, ring på telefonen"
    assert (task["state"], task["assignee"], task["agreed"]) == ("patrol", None, "22:00")
    assert task["reason"]

    # the shift lead gives it to patrol2: patrol1 no longer sees it and cannot take it
    patrol2 = s["patrol2"]["X-Test-Staff"]
    body = await ok(
        await c.post(f"/api/checks/{TASK}/assign", headers=s["lead"], json={"assignee": patrol2})
    )
    assert (body["assignee"], body["previous"]) == (patrol2, None)
    assert await tasks(night, "patrol1") == []
    assert [t["assignee"] for t in await tasks(night, "lead")] == [patrol2]
    before = await snapshot(pool)
    refused = await error(
        await c.post(f"/api/checks/{TASK}/patrol/ack", headers=s["patrol1"], json={}), 403
    )
    assert refused["code"] == "not_your_task"
    for assignee, code in (
        (s["oper"]["X-Test-Staff"], "bad_assignee"),  # a patrol task goes to a patrol
        ("staff-nobody00", "bad_assignee"),
    ):
        e = await error(
            await c.post(
                f"/api/checks/{TASK}/assign", headers=s["lead"], json={"assignee": assignee}
            ),
            422,
        )
        assert (e["code"], e["field"]) == (code, "assignee")
    e = await error(
        await c.post(f"/api/checks/{TASK}/assign", headers=s["patrol2"], json={"assignee": None}),
        403,
    )
    assert await snapshot(pool) == before  # nothing changed by any refusal

    # patrol2 takes it (a retried ack changes nothing), arrives (retried too) and finds nobody
    acked = await ok(await c.post(f"/api/checks/{TASK}/patrol/ack", headers=s["patrol2"], json={}))
    assert acked["state"] == "patrol_acked"
    again = await ok(await c.post(f"/api/checks/{TASK}/patrol/ack", headers=s["patrol2"], json={}))
    assert again["version"] == acked["version"]
    e = await error(
        await c.post(f"/api/checks/{TASK}/assign", headers=s["lead"], json={"assignee": None}), 409
    )
    assert e["code"] == "not_in_state"
    night.clock.set(WS + timedelta(minutes=12))
    arrived = await ok(
        await c.post(f"/api/checks/{TASK}/patrol/arrived", headers=s["patrol2"], json={})
    )
    night.clock.set(WS + timedelta(minutes=13))
    retried = await ok(
        await c.post(f"/api/checks/{TASK}/patrol/arrived", headers=s["patrol2"], json={})
    )
    assert retried == arrived
    assert datetime.fromisoformat(arrived["arrived_at"]) == WS + timedelta(minutes=12)
    back = await ok(
        await c.post(
            f"/api/checks/{TASK}/patrol/outcome", headers=s["patrol2"], json={"outcome": "not_home"}
        )
    )
    assert (back["state"], back["reason"]) == ("patrol", "not_home")
    [task] = await tasks(night, "patrol1")  # open to every patrol again
    assert (task["assignee"], task["patrol_arrived_at"]) == (None, None)

    # patrol1 takes it and reports a hospital transfer; the retry changes nothing
    await ok(await c.post(f"/api/checks/{TASK}/patrol/ack", headers=s["patrol1"], json={}))
    await ok(await c.post(f"/api/checks/{TASK}/patrol/arrived", headers=s["patrol1"], json={}))
    report = {"outcome": "taken_to_hospital", "note": "ambulans 23:10"}
    done = await ok(
        await c.post(f"/api/checks/{TASK}/patrol/outcome", headers=s["patrol1"], json=report)
    )
    assert done["state"] == "visited"
    same = await ok(
        await c.post(f"/api/checks/{TASK}/patrol/outcome", headers=s["patrol1"], json=report)
    )
    assert same["version"] == done["version"]
    assert await tasks(night, "patrol1") == []
    row = await pool.fetchrow(
        "SELECT patrol_outcome, assignee FROM round_checks WHERE check_id=$1", TASK
    )
    assert (row["patrol_outcome"], row["assignee"]) == (
        "taken_to_hospital",
        s["patrol1"]["X-Test-Staff"],
    )
    audit = await pool.fetch(
        "SELECT action, data FROM audit_log WHERE subject=$1 ORDER BY seq", TASK
    )
    actions = [a["action"] for a in audit]
    assert actions.count("check.assigned") == 1
    assert actions.count("check.patrol_arrived") == 2
    assert '"taken_to_hospital"' in audit[-1]["data"]
    assert all("ambulans" not in a["data"] for a in audit)  # the note is the round's, not audited
    steps = [t.event for t in await night.store.transitions(NIGHT) if t.check_id == TASK]
    assert steps[-4:] == [
        "patrol_acknowledged",
        "patrol_not_home",
        "patrol_acknowledged",
        "patrol_visited",
    ]


async def test_what_a_patrol_and_a_shift_lead_may_reach(night: Night) -> None:
    c, s = night.client, night.staff
    for method, path in (
        ("GET", "/api/rounds/queue"),
        ("GET", f"/api/checks/{LOOK}"),
        ("POST", f"/api/checks/{LOOK}/view"),
        ("POST", f"/api/checks/{LOOK}/outcome"),
        ("POST", f"/api/checks/{LOOK}/assign"),
        ("GET", f"/api/rounds/{NIGHT}/handover"),
        ("GET", f"/api/nights/{NIGHT}/report"),
    ):
        resp = await c.request(method, path, headers=s["patrol1"], json={})
        assert resp.status == 403, (method, path, resp.status)
    for method, path in (
        ("POST", f"/api/checks/{LOOK}/view"),
        ("POST", f"/api/checks/{TASK}/patrol/ack"),
    ):
        resp = await c.request(method, path, headers=s["lead"], json={})
        assert resp.status == 403, (method, path, resp.status)
    queue = await ok(await c.get("/api/rounds/queue", headers=s["lead"]))
    assert TASK in {x["check_id"] for x in queue["checks"]}
    # the shift lead gives a look to an operator, and takes it back
    oper = s["oper"]["X-Test-Staff"]
    await night.store.open_due(WS)
    (claimed,) = await night.store.claim("w1", WS)
    await night.store.finish(claimed, ch.ProbeSkipped("no_motion_consent"), at=WS)
    body = await ok(
        await c.post(f"/api/checks/{LOOK}/assign", headers=s["lead"], json={"assignee": oper})
    )
    assert (body["state"], body["assignee"]) == ("needs_view", oper)
    queue = await ok(await c.get("/api/rounds/queue", headers=s["lead"]))
    assert {x["check_id"]: x["assignee"] for x in queue["checks"]} == {LOOK: oper, TASK: None}
    e = await error(
        await c.post(
            f"/api/checks/{LOOK}/assign",
            headers=s["lead"],
            json={"assignee": s["patrol1"]["X-Test-Staff"]},
        ),
        422,
    )
    assert e["code"] == "bad_assignee"  # a look goes to an operator, not a patrol car
    body = await ok(
        await c.post(f"/api/checks/{LOOK}/assign", headers=s["lead"], json={"assignee": None})
    )
    assert (body["assignee"], body["previous"]) == (None, oper)
    e = await error(
        await c.post(f"/api/checks/{LOOK}/assign", headers=s["lead"], json={"assignee": "Bob"}), 422
    )
    assert e["field"] == "assignee"

    # an operator acknowledging for the patrol (the console's button) assigns nobody: any patrol
    # may still report from the home
    acked = await ok(await c.post(f"/api/checks/{TASK}/patrol/ack", headers=s["oper"], json={}))
    assert acked["state"] == "patrol_acked"
    [task] = await tasks(night, "patrol2")
    assert task["assignee"] is None
    found = {"outcome": "found_well"}
    done = await ok(
        await c.post(f"/api/checks/{TASK}/patrol/outcome", headers=s["patrol2"], json=found)
    )
    assert (done["state"], done["holder"]) == ("visited", s["patrol2"]["X-Test-Staff"])


WAYS_INTO_PATROL: dict[str, Callable[[Night, str], Awaitable[object]]] = {
    "operator_patrol": lambda n, oper: n.store.transition(
        LOOK, ch.Outcome(oper, ch.OutcomeKind.PATROL, "fall_risk"), at=WS
    ),
    "technical": lambda n, oper: n.store.transition(
        LOOK, ch.Outcome(oper, ch.OutcomeKind.TECHNICAL), at=WS
    ),
    "device_lost": lambda n, _: n.store.transition(LOOK, ch.DeviceLost("device_offline"), at=WS),
    "withdrawal": lambda n, _: n.store.transition(
        LOOK, ch.Cancel("consent_withdrawn", visit=True), at=WS
    ),
    "indicator_not_acked": lambda n, _: CheckLooks(n.store).device_trouble(
        LOOK, reason="indicator_not_acked", at=WS
    ),
    "camera_trouble": lambda n, _: n.store.transition(
        LOOK, ch.ProbeDone("dark", needs_human=True), at=WS
    ),
}


@pytest.mark.parametrize("way", sorted(WAYS_INTO_PATROL))
async def test_a_look_given_to_an_operator_is_every_patrols_task_once_it_goes_to_the_patrol(
    night: Night, pool: asyncpg.Pool, way: str
) -> None:
    """Every move into ``patrol`` (not only the ladder's escalation) takes the check from the
    operator it was given to: a patrol's list shows its own and unassigned tasks only."""
    c, s = night.client, night.staff
    oper = s["oper"]["X-Test-Staff"]
    await night.store.open_due(WS)
    (claimed,) = await night.store.claim("w1", WS)
    if way != "camera_trouble":  # the probe's verdict moves the check it holds
        await night.store.finish(claimed, ch.ProbeSkipped("no_motion_consent"), at=WS)
    await ok(await c.post(f"/api/checks/{LOOK}/assign", headers=s["lead"], json={"assignee": oper}))
    if way in ("operator_patrol", "technical"):
        await night.store.transition(LOOK, ch.ViewOpened(oper), at=WS)
    assert LOOK not in {t["check_id"] for t in await tasks(night, "patrol1")}

    moved = await WAYS_INTO_PATROL[way](night, oper)
    assert moved is not False
    assert (await night.store.get(LOOK)).state is ch.State.PATROL
    for patrol in ("patrol1", "patrol2"):
        seen = {t["check_id"]: t["assignee"] for t in await tasks(night, patrol)}
        assert seen == {TASK: None, LOOK: None}, (way, patrol)
    data = await pool.fetchval(
        "SELECT data FROM audit_log WHERE subject=$1 AND action='check.patrol'", LOOK
    )
    assert json.loads(data)["unassigned"] == oper  # who no longer has it, in the step's entry

    # a patrol takes it: the others no longer see it
    await ok(await c.post(f"/api/checks/{LOOK}/patrol/ack", headers=s["patrol1"], json={}))
    assert LOOK not in {t["check_id"] for t in await tasks(night, "patrol2")}


async def test_the_handover_lists_what_the_day_staff_must_act_on(
    night: Night, pool: asyncpg.Pool
) -> None:
    c, s = night.client, night.staff
    # r1's look is left waiting for a human and its alarm is never acknowledged
    await night.store.open_due(WS)
    (claimed,) = await night.store.claim("w1", WS)
    await night.store.finish(claimed, ch.ProbeSkipped("no_motion_consent"), at=WS)
    late = WS + timedelta(hours=3)
    night.clock.set(late)
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO round_alarms (check_id, version, state, deadline, raised_at, kind,"
            " repeat, addressed_to) VALUES ($1, 3, 'needs_view', $2, $3, 'alarm', 1, 'operator'),"
            " ($1, 3, 'needs_view', $2, $3 + interval '2 min', 'alarm', 2, 'operator'),"
            " ($4, 1, 'patrol', $2, $3, 'alarm', 1, 'patrol'),"
            " ($4, 1, 'patrol', $2, $3 + interval '10 min', 'escalation', 1, 'shift_lead')",
            LOOK,
            WS + timedelta(minutes=15),
            WS + timedelta(minutes=20),
            TASK,
        )
        await conn.execute(
            "UPDATE round_alarms SET acknowledged_at=$2, acknowledged_by='staff-x'"
            " WHERE check_id=$1 AND kind='alarm'",
            TASK,
            late,
        )
        await conn.execute("INSERT INTO devices (device_id, kind) VALUES ('cam-r2', 'camera')")
        await conn.execute(
            "INSERT INTO suspensions (suspension_id, recipient_id, device_id, event_type,"
            " started_at, event_count) VALUES ('susp-1', 'r2', 'cam-r2', 'covered', $1, 2)",
            WS + timedelta(hours=1),
        )
        await conn.execute(
            "INSERT INTO pauses (pause_id, recipient_id, starts_at, ends_at, source, reason,"
            " note, created_at, created_by) VALUES ('pause-1', 'r2', $1, NULL, 'hospital',"
            " 'hospital_stay', 'hemligt', $1, 'test')",
            WS + timedelta(hours=2),
        )
    for who in ("lead", "oper"):
        h = await ok(await c.get(f"/api/rounds/{NIGHT}/handover", headers=s[who]))
        assert h["night"] == NIGHT.isoformat()
    assert h["counts"] == {
        "checks": 2,
        "open_patrol_tasks": 1,
        "patrol_reports": 0,
        "taken_to_hospital": 0,
        "open_checks": 1,
        "deviations": 0,
        "alarms_not_acknowledged": 2,
        "suspensions": 1,
        "pauses": 1,
    }
    assert h["open_patrol_tasks"][0]["check_id"] == TASK
    assert h["open_checks"][0]["state"] == "needs_view"
    assert [(a["check_id"], a["kind"], a["repeats"]) for a in h["alarms_not_acknowledged"]] == [
        (LOOK, "alarm", 2),
        (TASK, "escalation", 1),
    ]

    # the shift lead reads the escalations addressed to them; nobody else does
    lead = await ok(await c.get(f"/api/rounds/escalations?night={NIGHT}", headers=s["lead"]))
    assert [(x["check_id"], x["kind"], x["now"]) for x in lead["escalations"]] == [
        (TASK, "escalation", "patrol")
    ]
    assert (await ok(await c.get("/api/rounds/escalations?open=1", headers=s["lead"])))[
        "night"
    ] == NIGHT.isoformat()
    for who in ("oper", "patrol1"):
        resp = await c.get("/api/rounds/escalations", headers=s[who])
        assert resp.status == 403, who
    assert h["pauses"][0]["reason"] == "hospital_stay"
    assert "hemligt" not in str(h)  # a pause's note stays with consent
    page = await c.get(f"/api/rounds/{NIGHT}/handover?format=html", headers=s["lead"])
    assert page.status == 200
    text = await page.text()
    assert "Överlämning" in text
    assert "Öppna patrulluppdrag (1)" in text
    english = await (
        await c.get(f"/api/rounds/{NIGHT}/handover?format=html&lang=en", headers=s["lead"])
    ).text()
    assert "Open patrol tasks (1)" in english
    e = await error(
        await c.get(f"/api/rounds/{NIGHT}/handover?format=html&lang=xx", headers=s["lead"]), 422
    )
    assert e["field"] == "lang"
    e = await error(await c.get("/api/rounds/2025-13-01/handover", headers=s["lead"]), 422)
    assert e["field"] == "date"
