"""Whom the shift lead may give a check to (``GET /api/rounds/staff``) on the real database: the
active operators, shift leads, administrators and patrols, by pseudonymous staff_id and display
name (the username when there is none), those on duty now first; never a technician, an inactive
account or a service account (the roles are those ``POST /api/checks/{id}/assign`` accepts)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from identity import store as staff_store
from kernel.roles import Role
from kernel.tenancy import DEFAULT_TEAM
from services.web import http
from supervision import api
from supervision.store import ASSIGNABLE, RoundStore
from tests.header_auth import header_authenticator
from tests.rounds_support import fixed_clock

pytestmark = pytest.mark.integration

NOW = datetime(2025, 6, 10, 21, 0, tzinfo=UTC)
LEAD = {"X-Test-Role": "shift_lead", "X-Test-Staff": "staff-lead01"}
Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[tuple[Client, dict[str, str]]]:
    ids: dict[str, str] = {}
    async with pool.acquire() as conn:
        for username, role, display, service in (
            ("kvall-op", Role.OPERATOR, "Olle Natt", False),
            ("kvall-op2", Role.OPERATOR, None, False),
            ("kvall-car", Role.PATROL, "Patrullbil 1", False),
            ("kvall-lead", Role.SHIFT_LEAD, "Lena Ledare", False),
            ("kvall-tech", Role.TECHNICIAN, "Tekla", False),
            ("kvall-bench", Role.OPERATOR, "bench", True),
            ("kvall-gone", Role.PATROL, "Slutat", False),
        ):
            account = await staff_store.create_staff(
                conn,
                username=username,
                role=role,
                password=None,
                display_name=display,
                is_service=service,
            )
            ids[username] = account.staff_id
        await conn.execute("UPDATE staff SET is_active=false WHERE staff_id=$1", ids["kvall-gone"])
    store = RoundStore(pool)
    await store.start_duty(ids["kvall-op2"], at=NOW)
    app = http.make_app(max_body_bytes=65536)
    app[http.AUTHENTICATOR] = header_authenticator
    app[api.STORE] = store
    app[api.CLOCK] = fixed_clock(NOW)
    http.add_routes(app, api.routes())
    async with TestClient(TestServer(app)) as c:
        yield c, ids


async def test_the_shift_lead_lists_whom_a_check_may_go_to(
    client: tuple[Client, dict[str, str]],
) -> None:
    c, ids = client
    resp = await c.get("/api/rounds/staff", headers=LEAD)
    assert resp.status == 200
    staff = (await resp.json())["staff"]
    mine = [s for s in staff if s["staff_id"] in ids.values()]
    assert mine[0] == {
        "staff_id": ids["kvall-op2"],
        "display_name": "kvall-op2",  # no display name: the username
        "role": "operator",
        "on_duty": True,
        "teams": [DEFAULT_TEAM],
    }
    assert {s["staff_id"]: (s["display_name"], s["role"], s["on_duty"]) for s in mine[1:]} == {
        ids["kvall-op"]: ("Olle Natt", "operator", False),
        ids["kvall-car"]: ("Patrullbil 1", "patrol", False),
        ids["kvall-lead"]: ("Lena Ledare", "shift_lead", False),
    }
    roles = ASSIGNABLE[True] | ASSIGNABLE[False]
    assert all(s["role"] in roles for s in staff)
    assert set(staff[0]) == {"staff_id", "display_name", "role", "on_duty", "teams"}


async def test_only_the_shift_lead_and_administrators_may_list_them(
    client: tuple[Client, dict[str, str]],
) -> None:
    c, _ = client
    for role in ("operator", "patrol", "technician"):
        resp = await c.get("/api/rounds/staff", headers={"X-Test-Role": role})
        assert resp.status == 403, role
    resp = await c.get("/api/rounds/staff", headers={"X-Test-Role": "administrator"})
    assert resp.status == 200
