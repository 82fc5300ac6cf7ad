"""Administrators' staff, token and audit routes through aiohttp's test client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from identity import api as staff_api
from identity import login as auth
from identity import store as staff_store
from identity.staff import FAST_HASHING, PasswordHasher
from kernel.audit import cursor as ac
from kernel.audit import store as audit_store
from kernel.roles import Role
from services.web import http

pytestmark = pytest.mark.integration

Client = TestClient[web.Request, web.Application]
T0 = datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
FAST = PasswordHasher(FAST_HASHING)


@pytest.fixture
async def setup(pool: asyncpg.Pool) -> AsyncIterator[tuple[Client, dict[str, str]]]:
    headers = {}
    async with pool.acquire() as conn:
        for username, role in [("admin1", Role.ADMINISTRATOR), ("natt1", Role.OPERATOR)]:
            acc = await staff_store.create_staff(
                conn, username=username, role=role, password=None, now=T0
            )
            token = await staff_store.create_token(
                conn, staff_id=acc.staff_id, role=role, ttl_s=3600, label="", now=T0
            )
            headers[username] = token
    app = http.make_app(max_body_bytes=4096)
    auth.install(app, auth.make_authenticator(pool, hasher=FAST, clock=lambda: T0))
    http.add_routes(app, [*auth.routes(), *staff_api.routes()])
    async with TestClient(TestServer(app)) as c:
        yield c, headers


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ADMIN_ROUTES = [
    ("GET", "/api/staff"),
    ("POST", "/api/staff"),
    ("POST", "/api/staff/staff-abcdef/active"),
    ("POST", "/api/staff/staff-abcdef/password"),
    ("POST", "/api/staff/staff-abcdef/tokens"),
    ("DELETE", "/api/tokens/abcdefghij"),
    ("GET", "/api/audit"),
    ("GET", "/api/audit/verify"),
]


async def test_admin_only(setup: tuple[Client, dict[str, str]]) -> None:
    client, tokens = setup
    for method, path in ADMIN_ROUTES:
        assert (await client.request(method, path)).status == 401, path
        resp = await client.request(method, path, headers=bearer(tokens["natt1"]), json={})
        assert resp.status == 403, path
    listed = {(r.method, r.path) for r in staff_api.routes()}
    assert listed == {
        (m, p.replace("staff-abcdef", "{staff_id}").replace("abcdefghij", "{token_id}"))
        for m, p in ADMIN_ROUTES
    }


async def test_create_account_then_log_in(
    setup: tuple[Client, dict[str, str]], pool: asyncpg.Pool
) -> None:
    client, tokens = setup
    admin = bearer(tokens["admin1"])
    resp = await client.post(
        "/api/staff",
        headers=admin,
        json={
            "username": "Natt2",
            "role": "operator",
            "password": "en lång lösenfras",
            "display_name": "Bo Ek",
        },
    )
    assert resp.status == 201
    account = await resp.json()
    assert (account["username"], account["role"], account["has_password"]) == (
        "natt2",
        "operator",
        True,
    )
    login = await client.post(
        "/api/login", json={"username": "natt2", "password": "en lång lösenfras"}
    )
    assert login.status == 200
    listed = await (await client.get("/api/staff", headers=admin)).json()
    assert [a["username"] for a in listed["staff"]] == ["admin1", "natt1", "natt2"]
    async with pool.acquire() as conn:
        [created] = await audit_store.entries(
            conn, subject=account["staff_id"], action="staff.created"
        )
        admin_id = await staff_store.find_by_username(conn, "admin1")
    assert admin_id is not None
    assert created.actor == admin_id.staff_id


@pytest.mark.parametrize("role", ["patrol", "shift_lead"])
async def test_night_roles_are_created_and_log_in_with_their_role(
    setup: tuple[Client, dict[str, str]], role: str
) -> None:
    """The patrol and the shift lead get accounts like anyone else; their role is what a login
    and a token of theirs carry."""
    client, tokens = setup
    body = {"username": f"natt-{role}", "role": role, "password": "en lång lösenfras"}
    resp = await client.post("/api/staff", headers=bearer(tokens["admin1"]), json=body)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["role"] == role
    login = await client.post(
        "/api/login", json={"username": f"natt-{role}", "password": "en lång lösenfras"}
    )
    assert login.status == 200
    me = await (await client.get("/api/me")).json()
    assert me["role"] == role


BAD_ACCOUNTS: list[tuple[dict[str, Any], str, int]] = [
    ({"role": "operator"}, "username", 422),
    ({"username": "natt3"}, "role", 422),
    ({"username": "natt3", "role": "system"}, "role", 422),
    ({"username": "natt3", "role": "night_patrol"}, "role", 422),
    ({"username": "natt3", "role": "operator", "password": "kort"}, "password", 422),
    ({"username": "natt3", "role": "operator", "password": 5}, "password", 422),
    ({"username": "natt1", "role": "operator"}, "username", 409),
]


async def test_bad_account_bodies(setup: tuple[Client, dict[str, str]], pool: asyncpg.Pool) -> None:
    client, tokens = setup
    async with pool.acquire() as conn:
        before = await conn.fetchval("SELECT count(*) FROM audit_log")
    for body, field, status in BAD_ACCOUNTS:
        resp = await client.post("/api/staff", headers=bearer(tokens["admin1"]), json=body)
        assert resp.status == status, body
        assert (await resp.json())["error"]["field"] == field, body
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM staff") == 2
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == before


async def test_tokens_and_deactivation(setup: tuple[Client, dict[str, str]]) -> None:
    client, tokens = setup
    admin = bearer(tokens["admin1"])
    me = await (await client.get("/api/me", headers=bearer(tokens["natt1"]))).json()
    resp = await client.post(
        f"/api/staff/{me['staff_id']}/tokens",
        headers=admin,
        json={"ttl_s": 600, "label": "console kiosk"},
    )
    assert resp.status == 201
    new = await resp.json()
    assert (await client.get("/api/me", headers=bearer(new["token"]))).status == 200
    resp = await client.delete(f"/api/tokens/{new['token_id']}", headers=admin)
    assert resp.status == 200
    assert (await client.get("/api/me", headers=bearer(new["token"]))).status == 401
    assert (await client.delete(f"/api/tokens/{new['token_id']}", headers=admin)).status == 404
    resp = await client.post(
        f"/api/staff/{me['staff_id']}/active", headers=admin, json={"is_active": False}
    )
    assert (await resp.json())["is_active"] is False
    assert (await client.get("/api/me", headers=bearer(tokens["natt1"]))).status == 401
    bad = await client.post(
        f"/api/staff/{me['staff_id']}/active", headers=admin, json={"is_active": "no"}
    )
    assert (await bad.json())["error"]["field"] == "is_active"
    missing = await client.post(
        "/api/staff/staff-nobody99/active", headers=admin, json={"is_active": True}
    )
    assert missing.status == 404


async def test_an_administrator_cannot_deactivate_themselves(
    setup: tuple[Client, dict[str, str]], pool: asyncpg.Pool
) -> None:
    client, tokens = setup
    admin = bearer(tokens["admin1"])
    me = await (await client.get("/api/me", headers=admin)).json()
    before = await pool.fetchval("SELECT count(*) FROM audit_log")
    resp = await client.post(
        f"/api/staff/{me['staff_id']}/active", headers=admin, json={"is_active": False}
    )
    assert resp.status == 422
    assert (await resp.json())["error"]["code"] == "self_deactivation"
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == before
    assert (await client.get("/api/me", headers=admin)).status == 200


async def test_audit_listing_is_itself_audited(setup: tuple[Client, dict[str, str]]) -> None:
    client, tokens = setup
    admin = bearer(tokens["admin1"])
    resp = await client.get("/api/audit?action=token.created&limit=1", headers=admin)
    body = await resp.json()
    assert [e["seq"] for e in body["entries"]] == [2]
    assert body["next_after_seq"] == 2
    resp = await client.get("/api/audit?after_seq=2", headers=admin)
    actions = [e["action"] for e in (await resp.json())["entries"]]
    assert actions == ["staff.created", "token.created", "audit.exported"]
    verify = await (await client.get("/api/audit/verify", headers=admin)).json()
    assert verify == {"ok": True, "checked": 6, "first_broken_seq": None, "reason": None}


async def test_bad_audit_queries(setup: tuple[Client, dict[str, str]], pool: asyncpg.Pool) -> None:
    client, tokens = setup
    for query, field in [
        ("subject=Anna%20Svensson", "subject"),
        ("limit=0", "limit"),
        ("after_seq=x", "after_seq"),
        ("action=DROP", "action"),
    ]:
        resp = await client.get(f"/api/audit?{query}", headers=bearer(tokens["admin1"]))
        assert resp.status == 422, query
        assert (await resp.json())["error"]["field"] == field, query
    async with pool.acquire() as conn:
        assert await audit_store.entries(conn, action="audit.exported") == []


async def test_tailing_the_audit_log_by_cursor(setup: tuple[Client, dict[str, str]]) -> None:
    """No parameters: the first page and a cursor; the cursor: what came after, each entry once
    (the export's own entry included); an idle tail reads nothing and keeps its place."""
    client, tokens = setup
    admin = bearer(tokens["admin1"])
    first = await (await client.get("/api/audit?limit=3", headers=admin)).json()
    assert [e["seq"] for e in first["entries"]] == [1, 2, 3]
    assert first["next_after_seq"] == 3
    rest = await (
        await client.get(f"/api/audit?cursor={first['next_cursor']}", headers=admin)
    ).json()
    assert "next_after_seq" not in rest  # a cursor's answer offers no seq to tail by
    assert [e["action"] for e in rest["entries"]] == ["token.created", "audit.exported"]
    exported = rest["entries"][-1]["data"]  # the first read's: from the start, 3 entries
    assert (exported["cursor"], exported["count"]) == (ac.START.encode(), 3)
    seen = [e["seq"] for e in first["entries"] + rest["entries"]]
    assert len(seen) == len(set(seen)) == 5
    more = await (
        await client.get(f"/api/audit?cursor={rest['next_cursor']}", headers=admin)
    ).json()
    assert [e["action"] for e in more["entries"]] == ["audit.exported"]  # the read before
    by_seq = await (await client.get("/api/audit?after_seq=4", headers=admin)).json()
    assert "next_cursor" not in by_seq  # a seq gives no cursor: it may have skipped


async def test_bad_cursors_are_refused_and_change_nothing(
    setup: tuple[Client, dict[str, str]], pool: asyncpg.Pool
) -> None:
    client, tokens = setup
    before = await pool.fetchval("SELECT count(*) FROM audit_log")
    for query, code, field in [
        ("cursor=", "bad_cursor", "cursor"),
        ("cursor=x", "bad_cursor", "cursor"),
        ("cursor=MS4%3D", "bad_cursor", "cursor"),  # "1:" with padding
        ("cursor=Mjo", "bad_cursor", "cursor"),  # "2:", another version
        ("cursor=MTozLjUsMi42", "bad_cursor", "cursor"),  # "1:3.5,2.6", lanes out of order
        ("cursor=MTowLjA", "bad_cursor", "cursor"),  # "1:0.0"
        ("cursor=MS4&after_seq=0", "cursor_with_after_seq", "after_seq"),
    ]:
        resp = await client.get(f"/api/audit?{query}", headers=bearer(tokens["admin1"]))
        error = (await resp.json())["error"]
        assert (resp.status, error["code"], error["field"]) == (422, code, field), query
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == before


def test_the_audit_route_publishes_its_cursor() -> None:
    """OpenAPI names the query parameters and both ways to go on, and says which one tails."""
    op = http.openapi(staff_api.routes(), title="t", version="0")["paths"]["/api/audit"]["get"]
    query = {p["name"]: p for p in op["parameters"] if p["in"] == "query"}
    assert {"cursor", "after_seq", "limit", "subject", "action", "actor", "why"} <= set(query)
    assert "not for tailing" in query["after_seq"]["description"]
    answer = op["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
    assert {"entries", "next_cursor", "next_after_seq"} <= set(answer)
    assert "Tail with cursor" in op["summary"]
