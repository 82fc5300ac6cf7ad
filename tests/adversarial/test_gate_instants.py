"""Issue 13, finding 2: an instant the gate cannot reason about is a 422 naming ``at``, never a 500.

``GET /api/gate?...&at=9999-12-31T23:59:59`` used to overflow inside the rules (a window or a
night computed a day past ``datetime.max``). Through the HTTP app on the real database, with and
without a brukare whose plan, consent and binding would otherwise be looked at.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from consent import api
from consent.ports import ConsentStore
from consent.store import PgConsentStore
from kernel.access import AUTHENTICATOR
from services.web import http
from tests.header_auth import header_authenticator

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 12, 20, 0, tzinfo=UTC)  # 21:00 in Stockholm
Client = TestClient[web.Request, web.Application]
ADMIN = {"X-Test-Role": "administrator", "X-Test-Staff": "staff-admin01"}
ADMIN2 = {"X-Test-Role": "administrator", "X-Test-Staff": "staff-admin02"}
OPERATOR = {"X-Test-Role": "operator", "X-Test-Staff": "staff-oper01"}
TECH = {"X-Test-Role": "technician", "X-Test-Staff": "staff-tech01"}


def now() -> datetime:
    return T0


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[Client]:
    app = http.make_app(max_body_bytes=65536)
    store: ConsentStore = PgConsentStore(pool)
    app[api.STORE] = store
    app[api.CLOCK] = now
    app[AUTHENTICATOR] = header_authenticator
    http.add_routes(app, api.routes())
    await pool.execute("INSERT INTO devices (device_id, kind) VALUES ('cam-0001', 'camera')")
    async with TestClient(TestServer(app)) as c:
        yield c


async def ok(resp: Any, status: int = 200) -> dict[str, Any]:
    body = await resp.json()
    assert resp.status == status, body
    return dict(body)


async def seed(client: Client) -> None:
    """A brukare with a plan, camera consent and the camera bound (as the UI would do it)."""
    recipient = {"recipient_id": "r-1", "display_name": "Astrid Lindqvist", "home": "Storg. 1"}
    await ok(await client.post("/api/recipients", json=recipient, headers=ADMIN), 201)
    plan = {
        "decision_ref": "SN-2026-0042",
        "valid_from": "2026-01-01T12:00:00+01:00",
        "checks": [{"at": "22:00", "tolerance_min": 15}, {"at": "02:00"}],
    }
    await ok(await client.post("/api/recipients/r-1/care-plans", json=plan, headers=ADMIN), 201)
    consent = {
        "person": "recipient",
        "purpose": "camera_check",
        "basis": "informed_consent",
        "informed_by": "staff-admin01",
        "informed_how": "samtal i hemmet",
        "given_at": "2026-01-10T14:00:00+01:00",
    }
    await ok(await client.post("/api/recipients/r-1/consents", json=consent, headers=ADMIN), 201)
    req = await ok(
        await client.post(
            "/api/devices/cam-0001/binding-requests", json={"recipient_id": "r-1"}, headers=TECH
        ),
        201,
    )
    assert await client.app[api.STORE].record_bind_button("cam-0001", T0)  # the installer
    await ok(
        await client.post(
            f"/api/binding-requests/{req['request_id']}/confirm",
            json={"recipient_id": "r-1", "name": "Astrid Lindqvist", "address": "Storg. 1"},
            headers=ADMIN2,
        )
    )


async def gate(client: Client, at: str) -> Any:
    return await client.get(
        "/api/gate",
        params={"device_id": "cam-0001", "purpose": "camera_check", "at": at},
        headers=OPERATOR,
    )


FAR = [
    "9999-12-31T23:59:59",
    "9999-12-31T23:59:59+00:00",
    "9999-12-31T12:00:00-12:00",
    "9999-12-30T22:05:00",
    "0001-01-01T00:00:00",
    "0001-01-01T00:00:00+14:00",
    "0001-01-02T22:05:00",
    "3000-01-01T22:05:00+01:00",
    "1000-01-01T22:05:00+01:00",
]


@pytest.mark.parametrize("at", FAR)
@pytest.mark.parametrize("seeded", [True, False], ids=["seeded", "empty"])
async def test_a_far_instant_is_a_422_naming_at(
    client: Client, pool: asyncpg.Pool, at: str, seeded: bool
) -> None:
    if seeded:
        await seed(client)
    before = await pool.fetchval("SELECT count(*) FROM audit_log")
    resp = await gate(client, at)
    body = await resp.json()
    assert resp.status == 422, body
    assert body["error"]["field"] == "at"
    assert body["error"]["code"] == "out_of_range"
    assert at not in body["error"]["message"]  # the message states the range, not the input
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == before
    # the gate still answers a sane instant
    inside = await ok(await gate(client, "2026-01-12T22:05:00+01:00"))
    assert inside["allowed"] is seeded


@pytest.mark.parametrize("at", ["2000-01-01T00:00:00+00:00", "2199-12-31T23:59:59+00:00"])
async def test_instants_at_the_edges_of_the_range_are_answered(client: Client, at: str) -> None:
    await seed(client)
    answer = await ok(await gate(client, at))
    assert answer["allowed"] is False
