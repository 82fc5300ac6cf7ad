"""Issue 17: access follows the team inside an organisation, through the composed service.

Two teams of the default organisation, in two units: ``north`` (the default unit) and ``south``
(unit ``east``), a brukare, a camera and an open check each, and a patrol task in the south.
An operator of the north sees only the north's brukare, records, queue, checks, report and
handover; the south's record and check are 404 (as if they did not exist); ``?team=south`` is
422 ``not_your_team``; a view of the south's camera is ``denied not_your_team``; a console
socket gets no push about the south; the shift lead assigns only to staff who cover the team.
An administrator sees both teams, and the report and handover roll up per team, unit and
organisation. Going on duty may name some of one's teams; the queue shows who covers which.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from consent.rules import night_of
from devices import envelope as env
from identity import store as staff_store
from kernel.roles import Role
from services import app
from services.settings import load
from supervision.checks import Policy, State
from supervision.ports import CheckChanged
from supervision.store import policy_json

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

STHLM = ZoneInfo("Europe/Stockholm")


@dataclass
class Teams:
    rt: app.Runtime
    server: TestServer
    night: str
    checks: dict[str, str]  # "north", "south", "south-patrol" -> check_id
    tokens: dict[str, str]  # "op-north", "op-south", "lead-north", "patrol-*", "admin"
    ids: dict[str, str]  # the same names -> staff_id

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def get(self, who: str, path: str, **params: str) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession(headers=self.headers(who)) as http,
            http.get(self.server.make_url(path), params=params) as resp,
        ):
            return resp.status, await resp.json()

    async def post(self, who: str, path: str, body: Any) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession(headers=self.headers(who)) as http,
            http.post(self.server.make_url(path), json=body) as resp,
        ):
            return resp.status, await resp.json()


async def _seed(owner: asyncpg.Connection, now: datetime) -> tuple[str, dict[str, str]]:
    await owner.execute(
        "INSERT INTO units (unit_id, organisation_id, name) VALUES ('east', 'default', 'Öster');"
        "INSERT INTO teams (team_id, unit_id, organisation_id, name) VALUES"
        " ('north', 'default', 'default', 'Norr'), ('south', 'east', 'default', 'Söder');"
    )
    for side in ("north", "south"):
        await owner.execute(
            "INSERT INTO care_recipients (recipient_id, display_name, created_at, created_by,"
            " team_id) VALUES ($1, 'Brukare', $2, 'test', $3)",
            f"r-{side}",
            now,
            side,
        )
        await owner.execute(
            "INSERT INTO devices (device_id, kind, quarantined) VALUES ($1, 'camera', false)",
            f"cam-{side}",
        )
        await owner.execute(
            "INSERT INTO device_bindings (binding_id, device_id, recipient_id, bound_at,"
            " requested_by, bound_by) VALUES ($1, $2, $3, $4, 'a', 'b')",
            f"bind-{side}",
            f"cam-{side}",
            f"r-{side}",
            now - timedelta(days=1),
        )
    night = night_of(now, STHLM)
    policy = policy_json(Policy(view_cap_s=30))
    checks: dict[str, str] = {}
    for name, rid, state, minute in (
        ("north", "r-north", State.NEEDS_VIEW, 0),
        ("south", "r-south", State.NEEDS_VIEW, 1),
        ("south-patrol", "r-south", State.PATROL, 2),
    ):
        agreed = now.astimezone(STHLM).replace(second=0, microsecond=0) + timedelta(minutes=minute)
        check_id = f"{night:%Y%m%d}.{agreed:%H%M}.{rid}"
        await owner.execute(
            "INSERT INTO round_checks (check_id, recipient_id, device_id, night, agreed,"
            " agreed_at, window_start, window_end, policy, state, since, deadline, attempt,"
            " ladder_step, version, planned_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, 1, 0, 1, $11)",
            check_id,
            rid,
            f"cam-{rid.removeprefix('r-')}",
            night,
            agreed.time(),
            agreed,
            agreed - timedelta(minutes=30),
            agreed + timedelta(minutes=30),
            policy,
            state.value,
            now,
            now + timedelta(hours=1),
        )
        checks[name] = check_id
    return night.isoformat(), checks


ACCOUNTS = {
    "op-north": (Role.OPERATOR, ["north"]),
    "op-south": (Role.OPERATOR, ["south"]),
    "lead-north": (Role.SHIFT_LEAD, ["north"]),
    "patrol-north": (Role.PATROL, ["north"]),
    "patrol-south": (Role.PATROL, ["south"]),
    "admin": (Role.ADMINISTRATOR, ["default"]),
}


@contextlib.asynccontextmanager
async def two_teams(database_url: str, mqtt_url: str, topic_prefix: str) -> AsyncIterator[Teams]:
    settings = dataclasses.replace(
        load({}),
        database_url=database_url,
        mqtt_url=mqtt_url,
        mqtt_topic_prefix=topic_prefix,
        roles=("api", "signalling"),  # no round: nothing replans the checks written here
        http_rate_per_s=100_000,
        http_rate_burst=100_000,
    )
    async with app.runtime(settings) as rt:
        now = datetime.now(UTC)
        owner = await asyncpg.connect(database_url)
        try:
            night, checks = await _seed(owner, now)
        finally:
            await owner.close()
        tokens: dict[str, str] = {}
        ids: dict[str, str] = {}
        async with rt.pool.acquire() as conn:
            for name, (role, teams) in ACCOUNTS.items():
                account = await staff_store.create_staff(
                    conn, username=name, role=role, password=None, is_service=False, teams=teams
                )
                ids[name] = account.staff_id
                tokens[name] = await staff_store.create_token(
                    conn, staff_id=account.staff_id, role=role, ttl_s=600, label="teams"
                )
        if rt.signalling is not None:
            await rt.signalling.wait_ready()
        server = TestServer(rt.app, host="127.0.0.1")
        await server.start_server()
        try:
            yield Teams(rt, server, night, checks, tokens, ids)
        finally:
            await server.close()


@pytest.fixture
async def teams(database_url: str, mqtt_url: str, topic_prefix: str) -> AsyncIterator[Teams]:
    async with two_teams(database_url, mqtt_url, topic_prefix) as t:
        yield t


async def test_an_operator_sees_only_their_teams_brukare(teams: Teams) -> None:
    status, body = await teams.get("op-north", "/api/recipients")
    assert status == 200
    assert [(r["recipient_id"], r["team_id"]) for r in body["recipients"]] == [("r-north", "north")]
    assert (await teams.get("op-north", "/api/recipients/r-north"))[0] == 200
    # Another team's record is exactly as unknown as one that does not exist.
    south = await teams.get("op-north", "/api/recipients/r-south")
    nobody = await teams.get("op-north", "/api/recipients/r-nobody")
    assert south[0] == nobody[0] == 404
    assert south[1]["error"]["code"] == nobody[1]["error"]["code"] == "not_found"
    # ... and so is a write about them (a pause phoned in at night).
    status, _ = await teams.post(
        "op-north",
        "/api/recipients/r-south/pauses",
        {"source": "staff", "reason": "hospital_stay"},
    )
    assert status == 404
    _, body = await teams.get("admin", "/api/recipients")
    assert [r["recipient_id"] for r in body["recipients"]] == ["r-north", "r-south"]


async def test_the_queue_checks_and_tasks_are_per_team(teams: Teams) -> None:
    status, body = await teams.get("op-north", "/api/rounds/queue")
    assert status == 200, body
    assert [c["check_id"] for c in body["checks"]] == [teams.checks["north"]]
    assert body["teams"] == ["north"]
    status, body = await teams.get("op-north", "/api/rounds/queue", team="south")
    assert (status, body["error"]["code"], body["error"]["field"]) == (
        422,
        "not_your_team",
        "team",
    )
    _, body = await teams.get("admin", "/api/rounds/queue")
    assert {c["check_id"] for c in body["checks"]} == set(teams.checks.values())
    _, body = await teams.get("admin", "/api/rounds/queue", team="south")
    assert {c["check_id"] for c in body["checks"]} == {
        teams.checks["south"],
        teams.checks["south-patrol"],
    }
    assert body["teams"] == ["south"]
    # One check of another team: 404, as a check that does not exist.
    status, body = await teams.get("op-north", f"/api/checks/{teams.checks['south']}")
    assert (status, body["error"]["code"]) == (404, "unknown_check")
    assert (await teams.get("op-north", f"/api/checks/{teams.checks['north']}"))[0] == 200
    # The patrol of the north has no task; the south's patrol has the south's.
    _, body = await teams.get("patrol-north", "/api/patrol/tasks")
    assert body["tasks"] == []
    _, body = await teams.get("patrol-south", "/api/patrol/tasks")
    assert [t["check_id"] for t in body["tasks"]] == [teams.checks["south-patrol"]]
    # A step on another team's check is refused as unknown, and changes nothing.
    status, _ = await teams.post(
        "patrol-north", f"/api/checks/{teams.checks['south-patrol']}/patrol/ack", {}
    )
    assert status == 404
    state = await teams.rt.pool.fetchval(
        "SELECT state FROM round_checks WHERE check_id = $1", teams.checks["south-patrol"]
    )
    assert state == "patrol"


async def test_going_on_duty_for_some_of_ones_teams(teams: Teams) -> None:
    status, body = await teams.post("op-north", "/api/rounds/duty", {"teams": ["south"]})
    assert (status, body["error"]["code"], body["error"]["field"]) == (
        422,
        "not_your_team",
        "teams",
    )
    assert await teams.rt.pool.fetchval("SELECT count(*) FROM round_duty") == 0
    status, body = await teams.post("op-north", "/api/rounds/duty", {"teams": ["north"]})
    assert (status, body["teams"]) == (201, ["north"])
    status, body = await teams.post("op-south", "/api/rounds/duty", {})
    assert (status, body["teams"]) == (201, ["south"])
    _, body = await teams.get("admin", "/api/rounds/queue")
    assert body["duty_teams"] == {
        teams.ids["op-north"]: ["north"],
        teams.ids["op-south"]: ["south"],
    }
    _, body = await teams.get("op-north", "/api/rounds/queue")
    assert body["duty_teams"] == {teams.ids["op-north"]: ["north"]}
    assert body["on_duty"] == [teams.ids["op-north"]]


async def test_the_report_and_handover_roll_up_per_team_unit_and_organisation(
    teams: Teams,
) -> None:
    status, report = await teams.get("admin", f"/api/nights/{teams.night}/report")
    assert status == 200, report
    rollup = report["rollup"]
    assert [
        (t["team_id"], t["unit_id"], t["planned"], t["patrol_tasks"]) for t in rollup["teams"]
    ] == [
        ("north", "default", 1, 0),
        ("south", "east", 2, 1),
    ]
    assert [(u["unit_id"], u["planned"]) for u in rollup["units"]] == [("default", 1), ("east", 2)]
    assert [(o["organisation_id"], o["planned"], o["open"]) for o in rollup["organisations"]] == [
        ("default", 3, 3)
    ]
    assert report["totals"]["planned"] == 3
    # The operator's report is their team's, rolled up the same way.
    _, mine = await teams.get("op-north", f"/api/nights/{teams.night}/report")
    assert mine["totals"]["planned"] == 1
    assert [r["recipient_id"] for r in mine["recipients"]] == ["r-north"]
    assert [t["team_id"] for t in mine["rollup"]["teams"]] == ["north"]
    # The handover: the patrol task is the south's, and the roll-up says so.
    _, handover = await teams.get("admin", f"/api/rounds/{teams.night}/handover", team="south")
    assert handover["teams"] == ["south"]
    assert [t["check_id"] for t in handover["open_patrol_tasks"]] == [teams.checks["south-patrol"]]
    assert [(t["team_id"], t["planned"]) for t in handover["rollup"]["teams"]] == [("south", 2)]
    _, handover = await teams.get("op-north", f"/api/rounds/{teams.night}/handover")
    assert handover["open_patrol_tasks"] == []
    assert handover["counts"]["checks"] == 1


async def test_a_check_goes_only_to_staff_who_cover_its_team(teams: Teams) -> None:
    _, body = await teams.get("lead-north", "/api/rounds/staff")
    listed = {s["staff_id"]: s["teams"] for s in body["staff"]}
    assert teams.ids["op-north"] in listed
    assert teams.ids["op-south"] not in listed
    assert listed[teams.ids["op-north"]] == ["north"]
    # The lead of the north does not see the south's check at all.
    status, _ = await teams.post(
        "lead-north",
        f"/api/checks/{teams.checks['south']}/assign",
        {"assignee": teams.ids["op-north"]},
    )
    assert status == 404
    # An administrator sees it, but may not give it to someone who does not cover the south.
    status, body = await teams.post(
        "admin", f"/api/checks/{teams.checks['south']}/assign", {"assignee": teams.ids["op-north"]}
    )
    assert (status, body["error"]["code"]) == (422, "bad_assignee")
    assignee = await teams.rt.pool.fetchval(
        "SELECT assignee FROM round_checks WHERE check_id = $1", teams.checks["south"]
    )
    assert assignee is None
    status, body = await teams.post(
        "admin", f"/api/checks/{teams.checks['south']}/assign", {"assignee": teams.ids["op-south"]}
    )
    assert (status, body["assignee"]) == (200, teams.ids["op-south"])
    status, _ = await teams.post(
        "admin",
        f"/api/checks/{teams.checks['south-patrol']}/assign",
        {"assignee": teams.ids["patrol-north"]},
    )
    assert status == 422


async def test_a_view_of_another_teams_camera_is_denied_not_your_team(teams: Teams) -> None:
    await teams.rt.pool.execute(
        "INSERT INTO round_duty (staff_id, started_at) VALUES ($1, $2)",
        teams.ids["op-north"],
        datetime.now(UTC) - timedelta(minutes=1),
    )
    url = teams.server.make_url("/ws/signal")
    async with (
        aiohttp.ClientSession(headers=teams.headers("op-north")) as http,
        http.ws_connect(url) as ws,
    ):
        for sid, device_id, purpose, check_id in (
            ("s-team-1", "cam-south", env.Purpose.VIEW, teams.checks["south"]),
            ("s-team-2", "cam-south", env.Purpose.CALL, None),
        ):
            await ws.send_str(
                env.encode(
                    env.Request(sid, device_id=device_id, purpose=purpose, check_id=check_id)
                )
            )
            answer = json.loads((await ws.receive(timeout=10)).data)
            assert (answer["type"], answer["session_id"], answer["reason"]) == (
                "denied",
                sid,
                "not_your_team",
            )
    denied = await teams.rt.pool.fetch(
        "SELECT data->>'reason' AS reason FROM audit_log WHERE actor = $1"
        " AND action LIKE '%denied' ORDER BY seq",
        teams.ids["op-north"],
    )
    assert [r["reason"] for r in denied] == ["not_your_team", "not_your_team"]


async def test_a_console_gets_pushes_about_its_teams_only(teams: Teams) -> None:
    url = teams.server.make_url("/ws/console")
    now = datetime.now(UTC)

    def changed(side: str) -> CheckChanged:
        return CheckChanged(
            check_id=teams.checks[side],
            recipient_id=f"r-{side}",
            device_id=f"cam-{side}",
            before=State.PROBING,
            state=State.NEEDS_VIEW,
            reason="motion_still",
            deadline=now + timedelta(minutes=5),
            at=now,
            actor="system",
            verdict="still",
        )

    async with (
        aiohttp.ClientSession(headers=teams.headers("op-north")) as north_http,
        north_http.ws_connect(url) as north,
        aiohttp.ClientSession(headers=teams.headers("admin")) as admin_http,
        admin_http.ws_connect(url) as admin,
    ):
        for ws in (north, admin):
            assert (await ws.receive_json(timeout=5))["type"] == "hello"
            await ws.send_str("ping")  # answered once the socket listens to the bus
            assert (await ws.receive_json(timeout=5))["type"] == "pong"
        teams.rt.bus.publish(changed("south"))
        teams.rt.bus.publish(changed("north"))  # after the south's, on the same bus
        # One pump, in order: had the south's event been sent, it would have come first.
        first = await north.receive_json(timeout=5)
        assert (first["type"], first["recipient_id"]) == ("check.changed", "r-north")
        seen = [(await admin.receive_json(timeout=5))["recipient_id"] for _ in range(2)]
        assert seen == ["r-south", "r-north"]


async def test_writes_by_id_about_another_teams_brukare_are_not_found(teams: Teams) -> None:
    """A consent, pause, plan or cohabitant is reached by its own id, but belongs to a brukare:
    an operator of another team gets the same 404 as for an id that does not exist, and nothing
    changes; the gate's answer about another team's camera is as unknown."""
    now = datetime.now(UTC)
    await teams.rt.pool.execute(
        "INSERT INTO consents (consent_id, recipient_id, purpose, version, basis, given_at,"
        " valid_from, recorded_at, recorded_by) VALUES"
        " ('con-south', 'r-south', 'camera_check', 1, 'informed_consent', $1, $1, $1, 'test')",
        now,
    )
    await teams.rt.pool.execute(
        "INSERT INTO pauses (pause_id, recipient_id, starts_at, source, reason, created_at,"
        " created_by) VALUES ('p-south', 'r-south', $1, 'staff', 'hospital_stay', $1, 'test')",
        now,
    )
    writes = [
        ("/api/consents/con-south/withdraw", {}, "/api/consents/con-nobody/withdraw"),
        ("/api/pauses/p-south/end", {}, "/api/pauses/p-nobody/end"),
    ]
    for path, body, unknown in writes:
        theirs = await teams.post("op-north", path, body)
        nobody = await teams.post("op-north", unknown, body)
        assert theirs[0] == nobody[0] == 404, (path, theirs, nobody)
        assert theirs[1]["error"]["code"] == nobody[1]["error"]["code"]
    assert (
        await teams.rt.pool.fetchval(
            "SELECT count(*) FROM consent_withdrawals WHERE consent_id = 'con-south'"
        )
        == 0
    )
    assert (
        await teams.rt.pool.fetchval("SELECT ended_by FROM pauses WHERE pause_id = 'p-south'")
        is None
    )
    assert (await teams.get("op-north", "/api/gate?device_id=cam-south"))[0] == 404
    assert (await teams.get("op-south", "/api/gate?device_id=cam-south"))[0] == 200
    # the brukare's own team does it
    for path, body, _ in writes:
        status, answer = await teams.post("op-south", path, body)
        assert status == 200, answer
