"""Issue 13, finding 13: staff routes refuse unknown fields (422 ``unknown_field`` naming it), so a
typo such as ``is_activ`` never silently does nothing; nothing changes and nothing is audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from identity import api as staff_api
from identity import login as auth
from identity import store as staff_store
from kernel.roles import Role
from services.web import http
from tests.integration.test_auth_admin_api import FAST, T0, Client, bearer

pytestmark = pytest.mark.integration


@pytest.fixture
async def setup(pool: asyncpg.Pool) -> AsyncIterator[tuple[Client, dict[str, str]]]:
    async with pool.acquire() as conn:
        acc = await staff_store.create_staff(
            conn, username="admin1", role=Role.ADMINISTRATOR, password=None, now=T0
        )
        token = await staff_store.create_token(
            conn, staff_id=acc.staff_id, role=Role.ADMINISTRATOR, ttl_s=3600, label="", now=T0
        )
    app = http.make_app(max_body_bytes=4096)
    auth.install(app, auth.make_authenticator(pool, hasher=FAST, clock=lambda: T0))
    http.add_routes(app, [*auth.routes(), *staff_api.routes()])
    async with TestClient(TestServer(app)) as c:
        yield c, {"admin1": token}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/staff", {"username": "ny1", "role": "operator", "rol": "administrator"}, "rol"),
        ("/api/staff/{me}/active", {"is_active": True, "is_activ": False}, "is_activ"),
        ("/api/staff/{me}/password", {"password": "lång nog lösen 1", "old": "x"}, "old"),
        ("/api/staff/{me}/tokens", {"label": "ci", "role": "administrator"}, "role"),
    ],
)
async def test_unknown_fields_on_staff_routes_are_refused(
    setup: tuple[Client, dict[str, str]],
    pool: asyncpg.Pool,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    client, tokens = setup
    me = await pool.fetchval("SELECT staff_id FROM staff WHERE username = 'admin1'")
    audited = await pool.fetchval("SELECT count(*) FROM audit_log")
    resp = await client.post(path.format(me=me), json=body, headers=bearer(tokens["admin1"]))
    err = (await resp.json())["error"]
    assert (resp.status, err["code"], err["field"]) == (422, "unknown_field", field)
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == audited
