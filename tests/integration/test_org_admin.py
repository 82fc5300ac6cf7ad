"""Issue 17, item 1 through the composed service: an administrator manages their own
organisation (units, teams, members, a brukare's team) and gives a night centre's team a dated,
audited grant that takes effect, and ends, at the next request; every refusal is a clear 4xx and
changes nothing; nothing of another organisation can be touched."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from kernel.roles import Role
from services import app
from services.settings import load
from tests.integration.two_orgs import A, B, Staff, staff_of, two_orgs

pytestmark = pytest.mark.integration


@dataclasses.dataclass
class World:
    client: TestClient  # type: ignore[type-arg]
    pool: asyncpg.Pool
    admin_a: Staff
    admin_b: Staff
    operator_a: Staff
    operator_b: Staff


@pytest.fixture
async def world(database_url: str, mqtt_url: str, topic_prefix: str) -> AsyncIterator[World]:
    settings = dataclasses.replace(
        load({}),
        database_url=database_url,
        mqtt_url=mqtt_url,
        mqtt_topic_prefix=topic_prefix,
        http_rate_per_s=100_000,
        http_rate_burst=100_000,
        roles=("api",),
    )
    async with app.runtime(settings) as rt:
        await two_orgs(rt.pool, rt.clock())
        admin_a = await staff_of(rt.pool, A, Role.ADMINISTRATOR)
        admin_b = await staff_of(rt.pool, B, Role.ADMINISTRATOR)
        operator_a = await staff_of(rt.pool, A, Role.OPERATOR)
        operator_b = await staff_of(rt.pool, B, Role.OPERATOR)
        async with TestClient(TestServer(rt.app)) as client:
            yield World(client, rt.pool, admin_a, admin_b, operator_a, operator_b)


async def call(
    w: World, method: str, path: str, who: Staff, body: Any = None, status: int = 200
) -> Any:
    resp = await w.client.request(method, path, json=body, headers=who.headers)
    data = await resp.json()
    assert resp.status == status, (method, path, data)
    return data


async def refused(
    w: World, method: str, path: str, who: Staff, body: Any, status: int, code: str, field: str
) -> None:
    error = (await call(w, method, path, who, body, status))["error"]
    assert (error["code"], error["field"]) == (code, field), (path, body, error)


async def counts(pool: asyncpg.Pool) -> tuple[int, ...]:
    return tuple(
        await pool.fetchrow(
            "SELECT (SELECT count(*) FROM units), (SELECT count(*) FROM teams),"
            " (SELECT count(*) FROM staff_teams), (SELECT count(*) FROM team_grants),"
            " (SELECT count(*) FROM team_grants WHERE revoked_at IS NOT NULL),"
            " (SELECT count(*) FROM staff), (SELECT count(*) FROM audit_log),"
            " (SELECT string_agg(recipient_id || ':' || team_id, ',' ORDER BY recipient_id)"
            "  FROM care_recipients)"
        )
        or ()
    )


async def audit_actions(pool: asyncpg.Pool, actor: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT action FROM audit_log WHERE actor = $1 AND action <> 'token.created' ORDER BY seq",
        actor,
    )
    return [r["action"] for r in rows]


async def test_an_administrator_builds_their_own_organisation(world: World) -> None:
    w = world
    unit = await call(
        w, "POST", "/api/units", w.admin_a, {"unit_id": "a-syd", "name": "Syd"}, status=201
    )
    assert unit == {"unit_id": "a-syd", "organisation_id": A.organisation_id, "name": "Syd"}
    made = await call(
        w, "POST", "/api/teams", w.admin_a, {"unit_id": "a-syd", "name": "Kväll"}, 201
    )
    assert made["team_id"].startswith("team-")
    assert made["organisation_id"] == A.organisation_id
    units = await call(w, "GET", "/api/units", w.admin_a)
    assert [u["unit_id"] for u in units["units"]] == ["a-syd", A.unit_id]
    teams = (await call(w, "GET", "/api/teams", w.admin_a))["teams"]
    assert {t["team_id"] for t in teams} == {A.team_id, made["team_id"]}
    night = next(t for t in teams if t["team_id"] == A.team_id)
    assert set(night["members"]) == {w.admin_a.staff_id, w.operator_a.staff_id}
    # B's administrator sees B's only
    teams_b = (await call(w, "GET", "/api/teams", w.admin_b))["teams"]
    assert [t["team_id"] for t in teams_b] == [B.team_id]
    assert [u["unit_id"] for u in (await call(w, "GET", "/api/units", w.admin_b))["units"]] == [
        B.unit_id
    ]

    # a new account joins the organisation and the named teams
    account = await call(
        w,
        "POST",
        "/api/staff",
        w.admin_a,
        {"username": "ny-operator", "role": "operator", "teams": [made["team_id"]]},
        201,
    )
    org = await w.pool.fetchval(
        "SELECT organisation_id FROM staff WHERE staff_id = $1", account["staff_id"]
    )
    assert org == A.organisation_id
    path = f"/api/teams/{A.team_id}/members"
    team = await call(w, "POST", path, w.admin_a, {"staff_id": account["staff_id"]})
    assert account["staff_id"] in team["members"]
    team = await call(w, "DELETE", f"{path}/{account['staff_id']}", w.admin_a)
    assert account["staff_id"] not in team["members"]
    kept = (await call(w, "GET", "/api/teams", w.admin_a))["teams"]
    assert next(t for t in kept if t["team_id"] == made["team_id"])["members"] == [
        account["staff_id"]
    ]
    assert await audit_actions(w.pool, w.admin_a.staff_id) == [
        "unit.created",
        "team.created",
        "staff.created",
        "team.member_added",
        "team.member_removed",
    ]
    # the operator may not manage the organisation
    assert (await w.client.get("/api/teams", headers=w.operator_a.headers)).status == 403


async def test_bad_input_is_refused_and_changes_nothing(world: World) -> None:
    w = world
    before = await counts(w.pool)
    members = f"/api/teams/{A.team_id}/members"
    cases: list[tuple[str, str, Any, int, str, str]] = [
        ("POST", "/api/units", {"name": "  "}, 422, "bad_value", "name"),
        ("POST", "/api/units", {"unit_id": "Ä-1", "name": "x"}, 422, "bad_value", "unit_id"),
        ("POST", "/api/units", {"unit_id": A.unit_id, "name": "x"}, 409, "duplicate", "unit_id"),
        ("POST", "/api/units", {"unit_id": B.unit_id, "name": "x"}, 409, "duplicate", "unit_id"),
        ("POST", "/api/units", {"name": "x", "extra": 1}, 422, "unknown_field", "extra"),
        ("POST", "/api/teams", {"unit_id": B.unit_id, "name": "x"}, 422, "unknown_unit", "unit_id"),
        ("POST", "/api/teams", {"unit_id": "nope", "name": "x"}, 422, "unknown_unit", "unit_id"),
        ("POST", "/api/teams", {"name": "x"}, 422, "missing_field", "unit_id"),
        (
            "POST",
            "/api/teams",
            {"team_id": A.team_id, "unit_id": A.unit_id, "name": "x"},
            409,
            "duplicate",
            "team_id",
        ),
        ("POST", members, {"staff_id": w.operator_b.staff_id}, 404, "not_found", "staff_id"),
        ("POST", members, {"staff_id": w.operator_a.staff_id}, 409, "already_member", "staff_id"),
        ("POST", members, {"staff_id": "nobody"}, 422, "bad_value", "staff_id"),
        (
            "POST",
            f"/api/teams/{B.team_id}/members",
            {"staff_id": w.operator_a.staff_id},
            404,
            "not_found",
            "team_id",
        ),
        ("DELETE", f"{members}/{w.operator_b.staff_id}", None, 404, "not_found", "staff_id"),
        ("DELETE", f"{members}/not-a-staff-id", None, 422, "invalid_staff_id", "staff_id"),
        (
            "POST",
            "/api/staff",
            {"username": "fel-team", "role": "operator", "teams": [A.team_id, B.team_id]},
            422,
            "unknown_team",
            "teams[1]",
        ),
        (
            "POST",
            "/api/staff",
            {"username": "fel-team", "role": "operator", "teams": ["Bad"]},
            422,
            "bad_value",
            "teams[0]",
        ),
    ]
    for method, path, body, status, code, field in cases:
        await refused(w, method, path, w.admin_a, body, status, code, field)
    assert await counts(w.pool) == before


async def test_a_brukare_belongs_to_a_team_of_its_organisation(world: World) -> None:
    w = world
    await call(w, "POST", "/api/units", w.admin_a, {"unit_id": "a-syd", "name": "Syd"}, 201)
    await call(
        w,
        "POST",
        "/api/teams",
        w.admin_a,
        {"team_id": "a-syd-natt", "unit_id": "a-syd", "name": "N"},
        201,
    )
    before = await counts(w.pool)
    new = {"recipient_id": "r-a-1", "display_name": "Astrid A"}
    # kommun-a has no default team: the team must be named, and be one of A's
    await refused(w, "POST", "/api/recipients", w.admin_a, new, 422, "missing_field", "team_id")
    body = {**new, "team_id": B.team_id}
    await refused(w, "POST", "/api/recipients", w.admin_a, body, 422, "unknown_team", "team_id")
    assert await counts(w.pool) == before
    made = await call(w, "POST", "/api/recipients", w.admin_a, {**new, "team_id": A.team_id}, 201)
    assert made["team_id"] == A.team_id
    await call(
        w,
        "POST",
        "/api/recipients",
        w.admin_b,
        {"recipient_id": "r-b-1", "display_name": "Bertil B", "team_id": B.team_id},
        201,
    )

    moved = await call(
        w, "POST", "/api/recipients/r-a-1/team", w.admin_a, {"team_id": "a-syd-natt"}
    )
    assert moved == {"recipient_id": "r-a-1", "from_team_id": A.team_id, "team_id": "a-syd-natt"}
    entry = await w.pool.fetchrow(
        "SELECT actor, data FROM audit_log WHERE action = 'recipient.team_moved'"
    )
    assert entry["actor"] == w.admin_a.staff_id
    before = await counts(w.pool)
    path = "/api/recipients/r-a-1/team"
    await refused(
        w, "POST", path, w.admin_a, {"team_id": B.team_id}, 409, "other_organisation", "team_id"
    )
    await refused(
        w, "POST", path, w.admin_a, {"team_id": "no-such"}, 422, "unknown_team", "team_id"
    )
    await refused(
        w, "POST", path, w.admin_a, {"team_id": "a-syd-natt"}, 409, "same_team", "team_id"
    )
    await refused(w, "POST", path, w.admin_a, {}, 422, "missing_field", "team_id")
    # another organisation's brukare does not exist for A
    await refused(
        w,
        "POST",
        "/api/recipients/r-b-1/team",
        w.admin_a,
        {"team_id": A.team_id},
        404,
        "not_found",
        "recipient_id",
    )
    assert await counts(w.pool) == before


async def test_a_night_centre_grant_takes_effect_and_ends_at_the_next_request(
    world: World,
) -> None:
    """kommun-a's night team is the night centre for kommun-b's team by agreement."""
    w = world
    await call(
        w,
        "POST",
        "/api/recipients",
        w.admin_b,
        {"recipient_id": "r-b-1", "display_name": "Bertil B", "team_id": B.team_id},
        201,
    )
    assert (await w.client.get("/api/recipients/r-b-1", headers=w.operator_a.headers)).status == 404

    before = await counts(w.pool)
    base = {"team_id": B.team_id, "grantee_team_id": A.team_id, "agreement_ref": "AVTAL-2026-7"}
    bad: list[tuple[Staff, dict[str, Any], int, str, str]] = [
        (w.admin_a, base, 422, "unknown_team", "team_id"),  # not A's team to give
        (w.admin_b, {**base, "grantee_team_id": B.team_id}, 422, "same_team", "grantee_team_id"),
        (w.admin_b, {**base, "grantee_team_id": "no-such"}, 422, "unknown_team", "grantee_team_id"),
        (w.admin_b, {**base, "agreement_ref": " "}, 422, "bad_value", "agreement_ref"),
        (
            w.admin_b,
            {
                **base,
                "valid_from": "2026-05-02T00:00:00+02:00",
                "valid_until": "2026-05-01T00:00:00+02:00",
            },
            422,
            "bad_period",
            "valid_until",
        ),
        (w.admin_b, {**base, "valid_from": "igår"}, 422, "invalid_datetime", "valid_from"),
        (w.operator_b, base, 403, "forbidden", None),  # type: ignore[list-item]
    ]
    for who, body, status, code, field in bad:
        resp = await w.client.post("/api/team-grants", json=body, headers=who.headers)
        error = (await resp.json())["error"]
        assert (resp.status, error["code"], error["field"]) == (status, code, field), body
    assert await counts(w.pool) == before

    grant = await call(w, "POST", "/api/team-grants", w.admin_b, base, 201)
    assert grant["active"] is True
    assert grant["grantee_organisation_id"] == A.organisation_id
    # the next request of kommun-a's operator carries the grant: B's brukare is theirs tonight
    assert (await w.client.get("/api/recipients/r-b-1", headers=w.operator_a.headers)).status == 200
    listed = await call(w, "GET", "/api/recipients", w.operator_a)
    assert [r["recipient_id"] for r in listed["recipients"]] == ["r-b-1"]
    # the grant is for the night centre's night staff: its administrator, although a member of
    # the grantee team, still sees nothing of kommun-b (migration 0020)
    assert (await w.client.get("/api/recipients/r-b-1", headers=w.admin_a.headers)).status == 404
    staff_seen = await call(w, "GET", "/api/staff", w.admin_a)
    assert {s["staff_id"] for s in staff_seen["staff"]}.isdisjoint(
        {w.admin_b.staff_id, w.operator_b.staff_id}
    )
    # both organisations' administrators see the grant; only the giver can revoke it
    for admin in (w.admin_a, w.admin_b):
        grants = (await call(w, "GET", "/api/team-grants", admin))["grants"]
        assert [g["grant_id"] for g in grants] == [grant["grant_id"]]
    path = f"/api/team-grants/{grant['grant_id']}"
    await refused(w, "DELETE", path, w.admin_a, None, 404, "not_found", "grant_id")
    await refused(
        w, "DELETE", "/api/team-grants/nope", w.admin_b, None, 422, "invalid_id", "grant_id"
    )

    revoked = await call(w, "DELETE", path, w.admin_b)
    assert revoked["active"] is False
    assert revoked["revoked_by"] == w.admin_b.staff_id
    # at once: the very next request no longer carries it
    assert (await w.client.get("/api/recipients/r-b-1", headers=w.operator_a.headers)).status == 404
    assert (await call(w, "GET", "/api/recipients", w.operator_a))["recipients"] == []
    before = await counts(w.pool)
    await refused(w, "DELETE", path, w.admin_b, None, 409, "already_revoked", "grant_id")
    assert await counts(w.pool) == before
    rows = await w.pool.fetch(
        "SELECT action, subject, data FROM audit_log WHERE action LIKE 'team_grant.%' ORDER BY seq"
    )
    assert [(r["action"], r["subject"]) for r in rows] == [
        ("team_grant.created", grant["grant_id"]),
        ("team_grant.revoked", grant["grant_id"]),
    ]

    # a grant that starts later is no grant yet
    later = (w.client.app[app.RUNTIME].clock() + timedelta(days=1)).isoformat()  # type: ignore[index]
    pending = await call(
        w, "POST", "/api/team-grants", w.admin_b, {**base, "valid_from": later}, 201
    )
    assert pending["active"] is False
    assert (await w.client.get("/api/recipients/r-b-1", headers=w.operator_a.headers)).status == 404
