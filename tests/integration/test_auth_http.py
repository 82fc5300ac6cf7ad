"""Login, logout, cookies, bearer tokens, roles and lockout through aiohttp's test client on a
real database; every attempt audited, bad bodies rejected with nothing changed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from identity import login as auth
from identity import store as staff_store
from identity.staff import FAST_HASHING, PasswordHasher
from kernel.access import caller
from kernel.audit import store as audit_store
from kernel.clock import ScaledClock
from kernel.permissions import MATRIX
from kernel.roles import ADMINS, LOGINS, STAFF, Role, Route
from services.web import http

pytestmark = pytest.mark.integration

Client = TestClient[web.Request, web.Application]
T0 = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
PASSWORD = "korrekt häst batteri"


class CountingHasher(PasswordHasher):
    """The real argon2id hasher (cheap parameters) that counts how often it verifies."""

    def __init__(self) -> None:
        super().__init__(FAST_HASHING)
        self.verified = 0

    def verify(self, password_hash: str | None, password: str) -> bool:
        self.verified += 1
        return super().verify(password_hash, password)


async def admin_only(request: web.Request) -> web.Response:
    return web.json_response({"staff_id": caller(request).staff_id})


@pytest.fixture
def clock() -> ScaledClock:
    return ScaledClock(0, T0)


@pytest.fixture
def hasher() -> CountingHasher:
    return CountingHasher()


@pytest.fixture
async def accounts(pool: asyncpg.Pool, hasher: CountingHasher) -> dict[str, str]:
    """username -> staff_id for one account per role."""
    out = {}
    async with pool.acquire() as conn:
        for username, role in [
            ("natt1", Role.OPERATOR),
            ("admin1", Role.ADMINISTRATOR),
            ("tekn1", Role.TECHNICIAN),
        ]:
            acc = await staff_store.create_staff(
                conn,
                username=username,
                role=role,
                password=PASSWORD,
                display_name="Anna Andersson",
                hasher=hasher,
                now=T0,
            )
            out[username] = acc.staff_id
    return out


def make_app(
    pool: asyncpg.Pool,
    clock: ScaledClock,
    hasher: PasswordHasher,
    *,
    cookie_secure: bool = False,
    trust_proxy: bool = False,
) -> web.Application:
    app = http.make_app(max_body_bytes=2048)
    authenticator = auth.make_authenticator(
        pool, clock=clock, hasher=hasher, cookie_secure=cookie_secure, trust_proxy=trust_proxy
    )
    auth.install(app, authenticator)
    http.add_routes(
        app, [*auth.routes(), Route("GET", "/api/admin-only", admin_only, ADMINS, "test route")]
    )
    return app


@pytest.fixture
async def client(
    pool: asyncpg.Pool, clock: ScaledClock, hasher: CountingHasher, accounts: dict[str, str]
) -> AsyncIterator[Client]:
    async with TestClient(TestServer(make_app(pool, clock, hasher))) as c:
        yield c


async def login(client: Client, username: str = "natt1", password: str = PASSWORD) -> Any:
    return await client.post("/api/login", json={"username": username, "password": password})


def csrf_header(client: Client) -> dict[str, str]:
    """What the console sends on a state change: the readable hc_csrf cookie, echoed."""
    token = client.session.cookie_jar.filter_cookies(client.make_url("/"))["hc_csrf"].value
    return {"X-CSRF-Token": token}


async def audit_actions(pool: asyncpg.Pool) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    async with pool.acquire() as conn:
        rows = await audit_store.entries(conn, limit=1000)
        assert (await audit_store.verify(conn)).ok
    return [
        (e.action, e.actor, e.subject, dict(e.data))
        for e in rows
        if e.action.startswith(("login.", "session."))
    ]


async def counts(pool: asyncpg.Pool) -> tuple[int, int, int]:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM audit_log) AS a, (SELECT count(*) FROM staff_sessions)"
            " AS s, (SELECT count(*) FROM login_throttle) AS t"
        )
    assert row is not None
    return row["a"], row["s"], row["t"]


async def test_login_sets_a_strict_httponly_cookie_and_me_answers(
    client: Client, pool: asyncpg.Pool, accounts: dict[str, str]
) -> None:
    resp = await login(client, username=" NATT1 ")
    assert resp.status == 200
    body = await resp.json()
    assert body["staff_id"] == accounts["natt1"]
    assert body["role"] == "operator"
    assert datetime.fromisoformat(body["expires_at"]) == T0 + timedelta(hours=12)
    cookie = resp.headers["Set-Cookie"]
    assert cookie.startswith("hc_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie
    me = await client.get("/api/me")
    assert me.status == 200
    assert await me.json() == {
        "staff_id": accounts["natt1"],
        "username": "natt1",
        "display_name": "Anna Andersson",
        "role": "operator",
        "permissions": sorted(MATRIX[Role.OPERATOR]),  # what the console's screens follow
        "via": "session",
        "expires_at": body["expires_at"],
    }
    [(action, actor, subject, data)] = await audit_actions(pool)
    assert (action, actor, subject) == ("login.succeeded", accounts["natt1"], accounts["natt1"])
    assert data["session_id"].startswith("sess-")
    assert "natt1" not in str(data)


async def test_secure_cookie_when_configured(
    pool: asyncpg.Pool, clock: ScaledClock, hasher: CountingHasher, accounts: dict[str, str]
) -> None:
    async with TestClient(TestServer(make_app(pool, clock, hasher, cookie_secure=True))) as c:
        resp = await login(c)
        assert resp.status == 200
        assert "Secure" in resp.headers["Set-Cookie"]


async def test_logout_ends_the_session_for_good(
    client: Client, pool: asyncpg.Pool, accounts: dict[str, str]
) -> None:
    await login(client)
    secret = client.session.cookie_jar.filter_cookies(client.make_url("/"))["hc_session"].value
    resp = await client.post("/api/logout", headers=csrf_header(client))
    assert resp.status == 200
    assert await resp.json() == {"ended": True}
    assert 'hc_session=""' in resp.headers["Set-Cookie"]
    assert (await client.get("/api/me")).status == 401
    replay = await client.get("/api/me", cookies={"hc_session": secret})
    assert replay.status == 401
    actions = [a for a, *_ in await audit_actions(pool)]
    assert actions == ["login.succeeded", "session.ended"]


async def test_session_expires(client: Client, clock: ScaledClock) -> None:
    await login(client)
    clock.advance(timedelta(hours=11, minutes=59))
    assert (await client.get("/api/me")).status == 200
    clock.advance(timedelta(minutes=1))
    assert (await client.get("/api/me")).status == 401


async def test_deactivation_ends_sessions_and_blocks_login(
    client: Client, pool: asyncpg.Pool, accounts: dict[str, str]
) -> None:
    await login(client)
    async with pool.acquire() as conn:
        await staff_store.set_active(
            conn, staff_id=accounts["natt1"], is_active=False, actor=accounts["admin1"], now=T0
        )
    assert (await client.get("/api/me")).status == 401
    assert (await login(client)).status == 401
    reasons = [d.get("reason") for a, _, _, d in await audit_actions(pool) if a == "login.failed"]
    assert reasons == ["inactive"]


@pytest.mark.parametrize(
    ("username", "password"),
    [("natt1", "wrong password here"), ("nobody", PASSWORD), ("not a username!", PASSWORD)],
)
async def test_bad_credentials_same_answer_same_work(
    client: Client, pool: asyncpg.Pool, hasher: CountingHasher, username: str, password: str
) -> None:
    before = hasher.verified
    resp = await login(client, username, password)
    assert resp.status == 401
    assert await resp.json() == {
        "error": {
            "status": 401,
            "code": "bad_credentials",
            "message": "wrong username or password",
            "field": None,
        }
    }
    assert "Set-Cookie" not in resp.headers
    assert hasher.verified == before + 1  # unknown usernames cost one argon2 check too
    [(action, actor, _, data)] = await audit_actions(pool)
    assert action == "login.failed"
    assert data["failures"] == 1
    assert (actor == "anonymous") == (username != "natt1")
    assert username.strip() not in str(data)
    _, sessions, throttles = await counts(pool)
    assert (sessions, throttles) == (0, 1)


@pytest.mark.parametrize("username", ["natt1", "nobody"])
async def test_lockout_after_five_failures(
    client: Client, pool: asyncpg.Pool, clock: ScaledClock, hasher: CountingHasher, username: str
) -> None:
    for _ in range(4):
        assert (await login(client, username, "wrong password here")).status == 401
        clock.advance(timedelta(seconds=30))
    fifth = await login(client, username, "wrong password here")
    assert fifth.status == 429
    assert (await fifth.json())["error"]["code"] == "rate_limited"
    assert fifth.headers["Retry-After"] == "900"
    verified = hasher.verified
    clock.advance(timedelta(minutes=14))
    locked = await login(client, username, PASSWORD)
    assert locked.status == 429
    assert locked.headers["Retry-After"] == "60"
    assert hasher.verified == verified  # no argon2 work while locked
    actions = [a for a, *_ in await audit_actions(pool)]
    assert actions == ["login.failed"] * 5 + ["login.locked", "login.refused"]
    clock.advance(timedelta(minutes=1))
    after = await login(client, username, PASSWORD)
    assert after.status == (200 if username == "natt1" else 401)


async def test_success_clears_earlier_failures(
    client: Client, pool: asyncpg.Pool, clock: ScaledClock
) -> None:
    for _ in range(4):
        await login(client, "natt1", "wrong password here")
    assert (await login(client)).status == 200
    for _ in range(4):
        assert (await login(client, "natt1", "wrong password here")).status == 401


async def test_roles_are_enforced(client: Client) -> None:
    assert (await client.get("/api/admin-only")).status == 401
    assert (await client.get("/api/me")).status == 401
    assert (await client.post("/api/logout")).status == 401
    await login(client, "natt1")
    resp = await client.get("/api/admin-only")
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "forbidden"
    await login(client, "admin1")
    assert (await client.get("/api/admin-only")).status == 200


async def test_bearer_tokens(
    client: Client, pool: asyncpg.Pool, clock: ScaledClock, accounts: dict[str, str]
) -> None:
    async with pool.acquire() as conn:
        token = await staff_store.create_token(
            conn,
            staff_id=accounts["admin1"],
            role=Role.ADMINISTRATOR,
            ttl_s=3600,
            label="integration x",
            now=T0,
        )
        stored = await conn.fetchval("SELECT secret_hash FROM api_tokens")
    assert token not in stored
    bearer = {"Authorization": f"Bearer {token}"}
    me = await client.get("/api/me", headers=bearer)
    assert me.status == 200
    body = await me.json()
    assert (body["via"], body["role"], body["expires_at"]) == ("token", "administrator", None)
    assert (await client.get("/api/admin-only", headers=bearer)).status == 200
    logout = await client.post("/api/logout", headers=bearer)
    assert await logout.json() == {"ended": False}
    assert (await client.get("/api/me", headers=bearer)).status == 200
    bad = {"Authorization": f"Bearer {token[:-2]}xx"}
    assert (await client.get("/api/me", headers=bad)).status == 401
    clock.advance(timedelta(hours=1))
    assert (await client.get("/api/me", headers=bearer)).status == 401


async def test_bad_bearer_never_falls_back_to_the_cookie(client: Client) -> None:
    await login(client)
    assert (await client.get("/api/me")).status == 200
    resp = await client.get("/api/me", headers={"Authorization": "Bearer nonsense"})
    assert resp.status == 401


async def test_revoked_token_and_role_change(
    client: Client, pool: asyncpg.Pool, accounts: dict[str, str]
) -> None:
    async with pool.acquire() as conn:
        t1 = await staff_store.create_token(
            conn, staff_id=accounts["tekn1"], role=Role.TECHNICIAN, ttl_s=3600, label="", now=T0
        )
        t2 = await staff_store.create_token(
            conn, staff_id=accounts["tekn1"], role=Role.TECHNICIAN, ttl_s=3600, label="", now=T0
        )
        token_id = t1.split("_")[1]
        await staff_store.revoke_token(conn, token_id=token_id, actor=accounts["admin1"], now=T0)
        assert (
            await client.get("/api/me", headers={"Authorization": f"Bearer {t1}"})
        ).status == 401
        assert (
            await client.get("/api/me", headers={"Authorization": f"Bearer {t2}"})
        ).status == 200
        await conn.execute(
            "UPDATE staff SET role = 'administrator' WHERE staff_id = $1", accounts["tekn1"]
        )
        assert (
            await client.get("/api/me", headers={"Authorization": f"Bearer {t2}"})
        ).status == 401
        actions = [e.action for e in await audit_store.entries(conn, subject=accounts["tekn1"])]
    assert actions == ["staff.created", "token.created", "token.created", "token.revoked"]


BAD_BODIES: list[tuple[bytes, int, str, str | None]] = [
    (b"not json", 400, "bad_body", None),
    (b"\xff\xfe{}", 400, "bad_body", None),
    (b"[1, 2]", 400, "bad_body", None),
    (b"", 400, "bad_body", None),
    (
        b'{"password": "korrekt h\\u00e4st batteri"}',
        422,
        "missing_field",
        "username",
    ),
    (b'{"username": "natt1"}', 422, "missing_field", "password"),
    (
        b'{"username": "natt1", "password": 12345678901234}',
        422,
        "wrong_type",
        "password",
    ),
    (b'{"username": "natt1", "password": ""}', 422, "out_of_range", "password"),
    (
        b'{"username": ["natt1"], "password": "x"}',
        422,
        "wrong_type",
        "username",
    ),
    (b'{"username": "natt1", "password": "x", "remember": true}', 422, "unknown_field", "remember"),
    (
        b'{"username": "natt1", "password": "' + b"x" * 3000 + b'"}',
        413,
        "too_large",
        None,
    ),
]


async def test_bad_login_bodies_change_nothing(client: Client, pool: asyncpg.Pool) -> None:
    before = await counts(pool)
    for body, status, code, field in BAD_BODIES:
        resp = await client.post(
            "/api/login", data=body, headers={"Content-Type": "application/json"}
        )
        assert resp.status == status, body
        error = (await resp.json())["error"]
        assert (error["status"], error["code"], error["field"]) == (status, code, field), body
        assert "Set-Cookie" not in resp.headers
    assert await counts(pool) == before


async def test_openapi_lists_the_auth_routes(client: Client) -> None:
    doc = http.openapi(client.app[http.ROUTES], title="t", version="0")  # type: ignore[index]
    assert doc["paths"]["/api/login"]["post"]["x-roles"] == ["public"]
    assert doc["paths"]["/api/me"]["get"]["x-roles"] == sorted(r.value for r in LOGINS)


async def test_cookie_state_changes_need_the_csrf_header(
    client: Client, pool: asyncpg.Pool, accounts: dict[str, str]
) -> None:
    resp = await login(client)
    body = await resp.json()
    cookies = resp.headers.getall("Set-Cookie")
    [csrf_cookie] = [c for c in cookies if c.startswith("hc_csrf=")]
    assert "HttpOnly" not in csrf_cookie  # the console must read it
    assert "SameSite=Strict" in csrf_cookie
    assert body["csrf_token"] == csrf_header(client)["X-CSRF-Token"]
    before = await counts(pool)
    for headers in ({}, {"X-CSRF-Token": "0" * 64}, {"X-CSRF-Token": body["csrf_token"][:-1]}):
        refused = await client.post("/api/logout", headers=headers)
        assert refused.status == 403
        assert (await refused.json())["error"]["code"] == "csrf_failed"
    assert await counts(pool) == before  # nothing changed, the session still works
    assert (await client.get("/api/me")).status == 200  # safe methods need no header
    ok = await client.post("/api/logout", headers=csrf_header(client))
    assert ok.status == 200
    assert await ok.json() == {"ended": True}


async def test_bearer_clients_are_exempt_from_csrf(
    client: Client, pool: asyncpg.Pool, accounts: dict[str, str]
) -> None:
    async with pool.acquire() as conn:
        token = await staff_store.create_token(
            conn, staff_id=accounts["natt1"], role=Role.OPERATOR, ttl_s=3600, label="x", now=T0
        )
    resp = await client.post("/api/logout", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200
    assert await resp.json() == {"ended": False}


async def test_csrf_token_of_another_session_is_refused(
    pool: asyncpg.Pool, clock: ScaledClock, hasher: CountingHasher, accounts: dict[str, str]
) -> None:
    app = make_app(pool, clock, hasher)
    async with TestClient(TestServer(app)) as a, TestClient(TestServer(app)) as b:
        await login(a, "natt1")
        await login(b, "admin1")
        assert (await a.post("/api/logout", headers=csrf_header(b))).status == 403
        assert (await a.post("/api/logout", headers=csrf_header(a))).status == 200


async def _ws_echo(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_str(caller(request).staff_id)
    await ws.close()
    return ws


async def test_cookie_websockets_only_from_the_own_origin(
    pool: asyncpg.Pool, clock: ScaledClock, hasher: CountingHasher, accounts: dict[str, str]
) -> None:
    app = make_app(pool, clock, hasher)
    http.add_routes(app, [Route("GET", "/ws/test", _ws_echo, STAFF, "test socket")])
    async with TestClient(TestServer(app)) as c:
        await login(c, "natt1")
        own = f"http://{c.host}:{c.port}"
        for origin in ("http://evil.example", "null", f"http://{c.host}:1"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await c.ws_connect("/ws/test", headers={"Origin": origin})
            assert refused.value.status == 403
        for headers in ({"Origin": own}, {}):  # the console; a non-browser client
            async with c.ws_connect("/ws/test", headers=headers) as ws:
                assert await ws.receive_str() == accounts["natt1"]
        # Without a proxy in front (the default), a forwarded host is anyone's to send.
        proxied = {"Origin": "https://tillsyn.example", "X-Forwarded-Host": "tillsyn.example"}
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await c.ws_connect("/ws/test", headers=proxied)
        assert refused.value.status == 403
    # Behind a reverse proxy that rewrites Host (HOMECARE_TRUST_PROXY), the forwarded host counts.
    app = make_app(pool, clock, hasher, trust_proxy=True)
    http.add_routes(app, [Route("GET", "/ws/test", _ws_echo, STAFF, "test socket")])
    async with TestClient(TestServer(app)) as c:
        await login(c, "natt1")
        async with c.ws_connect("/ws/test", headers=proxied) as ws:
            assert await ws.receive_str() == accounts["natt1"]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await c.ws_connect("/ws/test", headers={"Origin": "http://evil.example"})
        assert refused.value.status == 403
