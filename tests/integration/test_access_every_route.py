"""Default deny, proven over the whole composed application: every route that is not public
refuses a caller without a login (401) and every role it does not name (403)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from identity import store as staff_store
from kernel.roles import STAFF, Role, Route
from services import app
from services.settings import load
from services.web import http

pytestmark = pytest.mark.integration


@pytest.fixture
async def composed(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> AsyncIterator[tuple[TestClient, dict[Role, str]]]:  # type: ignore[type-arg]
    settings = dataclasses.replace(
        load({}), database_url=database_url, mqtt_url=mqtt_url, mqtt_topic_prefix=topic_prefix
    )
    async with app.runtime(settings) as rt:
        tokens: dict[Role, str] = {}
        async with rt.pool.acquire() as conn:
            for role in STAFF:
                account = await staff_store.create_staff(
                    conn, username=f"probe-{role.value}", role=role, password=None, is_service=True
                )
                tokens[role] = await staff_store.create_token(
                    conn, staff_id=account.staff_id, role=role, ttl_s=600, label="route walk"
                )
        async with TestClient(TestServer(rt.app)) as client:
            yield client, tokens


def _concrete(path: str) -> str:
    return "/".join("x-0001" if p.startswith("{") else p for p in path.split("/"))


async def test_every_route_refuses_the_wrong_caller(
    composed: tuple[TestClient, dict[Role, str]],
) -> None:  # type: ignore[type-arg]
    client, tokens = composed
    routes: list[Route] = client.app[http.ROUTES]  # type: ignore[index]
    assert len(routes) >= 6
    unauthenticated = 0
    for route in routes:
        if route.is_public:
            continue
        url = _concrete(route.path)
        resp = await client.request(route.method, url)
        assert resp.status == 401, f"{route.method} {route.path} without login: {resp.status}"
        unauthenticated += 1
        for role, token in tokens.items():
            if role in route.roles:
                continue
            resp = await client.request(
                route.method, url, headers={"Authorization": f"Bearer {token}"}
            )
            assert resp.status == 403, f"{route.method} {route.path} as {role}: {resp.status}"
    assert unauthenticated >= 3


async def test_public_routes_are_only_the_expected_ones(
    composed: tuple[TestClient, dict[Role, str]],
) -> None:  # type: ignore[type-arg]
    client, _ = composed
    routes: list[Route] = client.app[http.ROUTES]  # type: ignore[index]
    public = {r.path for r in routes if r.is_public}
    allowed_prefixes = (
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/openapi.json",
        "/api/login",
        "/api/logout",
        "/static/",
        "/console",
        "/kiosk",
        "/viewer",
    )
    for path in public:
        assert path == "/" or path.startswith(allowed_prefixes), f"unexpected public {path}"
    assert not any(
        p.startswith(("/api/devices", "/api/recipients", "/api/register", "/ws/")) for p in public
    )


async def test_every_state_change_by_cookie_needs_the_csrf_header(
    composed: tuple[TestClient, dict[Role, str]],
) -> None:  # type: ignore[type-arg]
    """A logged-in browser's cookie alone changes nothing anywhere (no cross-site forgery):
    every non-GET route refuses it without ``X-CSRF-Token`` before its handler runs."""
    client, _ = composed
    routes: list[Route] = client.app[http.ROUTES]  # type: ignore[index]
    pool = client.app[app.RUNTIME].pool  # type: ignore[index]
    password = "ett långt lösenord för test"
    for role in STAFF:
        async with pool.acquire() as conn:
            await staff_store.create_staff(
                conn, username=f"csrf-{role.value}", role=role, password=password
            )
    audit_before = await pool.fetchval("SELECT count(*) FROM audit_log")
    checked = 0
    for role in STAFF:
        client.session.cookie_jar.clear()
        login = await client.post(
            "/api/login", json={"username": f"csrf-{role.value}", "password": password}
        )
        assert login.status == 200
        for route in routes:
            if route.is_public or route.method in {"GET", "HEAD"} or role not in route.roles:
                continue
            resp = await client.request(route.method, _concrete(route.path), json={})
            assert resp.status == 403, f"{route.method} {route.path} as {role}: {resp.status}"
            assert (await resp.json())["error"]["code"] == "csrf_failed"
            checked += 1
    assert checked >= 10
    logins = await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'login.succeeded'")
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == audit_before + logins
