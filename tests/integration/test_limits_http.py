"""HTTP limits on the composed application: request rate per client (429 with Retry-After, before
any login check or database work) and body size (413), each with the one error shape."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from identity import store as staff_store
from kernel.roles import Role
from services import app
from services.settings import load
from services.web import limits

pytestmark = pytest.mark.integration


class Ticks:
    """Monotonic seconds for the rate limiter (not a :data:`kernel.clock.Clock` of instants)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def client(database_url: str, mqtt_url: str, topic_prefix: str) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    settings = dataclasses.replace(
        load({}),
        database_url=database_url,
        mqtt_url=mqtt_url,
        mqtt_topic_prefix=topic_prefix,
        http_rate_per_s=2,
        http_rate_burst=5,
        max_body_bytes=2048,
    )
    async with app.runtime(settings) as rt, TestClient(TestServer(rt.app)) as c:
        rt.app[limits.LIMITER].clock = Ticks()
        yield c


async def test_a_client_over_its_rate_gets_429_then_recovers(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    limiter = client.app[limits.LIMITER]  # type: ignore[index]
    statuses = [(await client.get("/api/me")).status for _ in range(5)]
    assert statuses == [401] * 5  # the burst: each reached authentication
    refused = await client.get("/api/me")
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "1"
    assert (await refused.json())["error"]["code"] == "rate_limited"
    # A login attempt is refused too, before any password check or audit entry.
    login = await client.post("/api/login", json={"username": "natt1", "password": "x" * 12})
    assert login.status == 429
    async with client.app[app.RUNTIME].pool.acquire() as conn:  # type: ignore[index]
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 0
    # Health checks are never limited; the bucket refills at the configured rate.
    assert (await client.get("/healthz")).status == 200
    limiter.clock.t += 0.5  # type: ignore[attr-defined]
    assert (await client.get("/api/me")).status == 401
    assert (await client.get("/api/me")).status == 429
    assert limiter.refused == 3


async def test_a_body_over_the_limit_is_refused_with_nothing_changed(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    body = b'{"username": "natt1", "password": "' + b"x" * 4096 + b'"}'
    resp = await client.post("/api/login", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "too_large"
    async with client.app[app.RUNTIME].pool.acquire() as conn:  # type: ignore[index]
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 0
        assert await conn.fetchval("SELECT count(*) FROM login_throttle") == 0


async def test_deeply_nested_json_is_a_clear_400(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    limiter = client.app[limits.LIMITER]  # type: ignore[index]
    pool = client.app[app.RUNTIME].pool  # type: ignore[index]
    async with pool.acquire() as conn:
        account = await staff_store.create_staff(
            conn, username="admin-nest", role=Role.ADMINISTRATOR, password=None, is_service=True
        )
        token = await staff_store.create_token(
            conn, staff_id=account.staff_id, role=Role.ADMINISTRATOR, ttl_s=600, label="x"
        )
        before = await conn.fetchval("SELECT count(*) FROM audit_log")
    admin = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    # An object (so only the depth can make it unreadable), within the 2 KiB body limit and
    # deeper than the JSON parser's recursion limit.
    nested = b'{"a": ' + b"[" * 1015 + b"]" * 1015 + b"}"
    for path in ("/api/login", "/api/recipients", "/api/staff"):
        limiter.clock.t += 100  # type: ignore[attr-defined]
        resp = await client.post(path, data=nested, headers=admin)
        assert resp.status == 400, path
        assert (await resp.json())["error"]["code"] == "bad_body"
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == before


async def test_login_attempts_have_their_own_tighter_limit(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    """Password spraying (one attempt per username, many usernames) is slowed per address."""
    general = client.app[limits.LIMITER]  # type: ignore[index]
    logins = client.app[limits.LOGIN_LIMITER]  # type: ignore[index]
    logins.clock = Ticks()
    statuses = []
    for i in range(limits.LOGIN_BURST + 2):
        general.clock.t += 100  # type: ignore[attr-defined]  # never the general limit
        resp = await client.post("/api/login", json={"username": f"user{i}", "password": "x" * 12})
        statuses.append(resp.status)
    assert statuses[: limits.LOGIN_BURST] == [401] * limits.LOGIN_BURST
    assert statuses[limits.LOGIN_BURST :] == [429, 429]
    assert (await client.get("/api/me")).status == 401  # other routes are not affected
