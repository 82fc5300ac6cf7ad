"""The device API through aiohttp's test client on the real database: roles, shape, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from devices import api, registry, store
from devices import topics as t
from services.web import http
from tests.header_auth import header_authenticator

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = http.make_app(max_body_bytes=65536)
    app[api.POOL] = pool
    app[http.AUTHENTICATOR] = header_authenticator
    http.add_routes(app, api.routes())
    async with pool.acquire() as conn:
        rec = registry.apply_status(None, "cam-0001", t.Status(t.Presence.ONLINE, 3), T0).record
        assert rec is not None
        await store.put(conn, rec)
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_requires_login(client: TestClient[web.Request, web.Application]) -> None:
    resp = await client.get("/api/devices")
    assert resp.status == 401
    body = await resp.json()
    assert body == {
        "error": {"status": 401, "code": "unauthorized", "message": "login required", "field": None}
    }


@pytest.mark.parametrize("role", ["operator", "administrator", "technician"])
async def test_staff_list_devices(
    client: TestClient[web.Request, web.Application], role: str
) -> None:
    resp = await client.get("/api/devices", headers={"X-Test-Role": role})
    assert resp.status == 200
    devices = (await resp.json())["devices"]
    assert [(d["id"], d["presence"], d["quarantined"]) for d in devices] == [
        ("cam-0001", "online", True)
    ]


async def test_system_role_is_not_staff(client: TestClient[web.Request, web.Application]) -> None:
    resp = await client.get("/api/devices", headers={"X-Test-Role": "system"})
    assert resp.status == 403


async def test_one_device_and_errors(client: TestClient[web.Request, web.Application]) -> None:
    h = {"X-Test-Role": "operator"}
    resp = await client.get("/api/devices/cam-0001", headers=h)
    assert resp.status == 200
    assert (await resp.json())["session"] == 3
    resp = await client.get("/api/devices/cam-9999", headers=h)
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    resp = await client.get("/api/devices/CAM%20X", headers=h)
    assert resp.status == 400
    assert (await resp.json())["error"]["field"] == "device_id"
    resp = await client.get("/api/devices?presence=asleep", headers=h)
    assert (resp.status, (await resp.json())["error"]["field"]) == (400, "presence")
    resp = await client.get("/api/devices?limit=x", headers=h)
    assert (resp.status, (await resp.json())["error"]["field"]) == (400, "limit")


async def test_undeclared_route_is_refused(pool: asyncpg.Pool) -> None:
    app = http.make_app(max_body_bytes=65536)

    async def sneaky(request: web.Request) -> web.Response:
        return web.json_response({"secret": True})

    app.router.add_get("/api/sneaky", sneaky)
    async with TestClient(TestServer(app)) as c:
        resp = await c.get("/api/sneaky")
        assert resp.status == 403
        resp = await c.get("/api/nothing-here")
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "not_found"


def test_openapi_lists_routes_with_roles() -> None:
    doc = http.openapi(api.routes(), title="t", version="1")
    op = doc["paths"]["/api/devices/{device_id}"]["get"]
    assert op["x-roles"] == ["administrator", "operator", "technician"]
    assert op["parameters"][0]["name"] == "device_id"
