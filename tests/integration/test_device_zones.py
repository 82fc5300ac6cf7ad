"""Camera zones over HTTP on the real database: roles, audit, the OpenAPI listing, and every bad
body refused with a clear 4xx while nothing changes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from devices import api
from kernel.access import CLOCK
from services.web import http
from supervision import zone_store, zones_api
from tests.header_auth import header_authenticator

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)
Client = TestClient[web.Request, web.Application]
BED = [[26, 100], [198, 100], [210, 177], [13, 177]]
FLOOR = [[0, 187], [223, 187], [223, 110], [319, 110], [319, 239], [0, 239]]
GOOD = {"width": 320, "height": 240, "zones": [{"name": "bed", "polygon": BED}]}


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[Client]:
    app = http.make_app(max_body_bytes=65536)
    app[api.POOL] = pool
    app[CLOCK] = lambda: T0
    app[http.AUTHENTICATOR] = header_authenticator
    http.add_routes(app, [*api.routes(), *zones_api.routes()])
    await pool.executemany(
        "INSERT INTO devices (device_id, kind) VALUES ($1, $2)",
        [("cam-0001", "camera"), ("phone-0001", "video_phone")],
    )
    async with TestClient(TestServer(app)) as c:
        yield c


def as_(role: str) -> dict[str, str]:
    return {"X-Test-Role": role, "X-Test-Staff": f"staff-{role}"}


async def audited(pool: asyncpg.Pool) -> list[tuple[str, str, dict[str, Any]]]:
    rows = await pool.fetch(
        "SELECT actor, subject, data::text AS data FROM audit_log"
        " WHERE action = 'device.zones_set' ORDER BY seq"
    )
    return [(r["actor"], r["subject"], json.loads(r["data"])) for r in rows]


async def test_staff_read_zones_and_only_admins_and_technicians_set_them(
    client: Client, pool: asyncpg.Pool
) -> None:
    resp = await client.get("/api/devices/cam-0001/zones", headers=as_("operator"))
    assert resp.status == 200
    assert await resp.json() == {
        "device_id": "cam-0001",
        "width": None,
        "height": None,
        "zones": [],
    }

    resp = await client.put("/api/devices/cam-0001/zones", json=GOOD, headers=as_("operator"))
    assert resp.status == 403
    resp = await client.put("/api/devices/cam-0001/zones", json=GOOD)
    assert resp.status == 401

    body = {
        "width": 320,
        "height": 240,
        "zones": [GOOD["zones"][0], {"name": "floor", "polygon": FLOOR}],
    }  # type: ignore[index]
    resp = await client.put("/api/devices/cam-0001/zones", json=body, headers=as_("technician"))
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"device_id": "cam-0001", **body}
    for role in ("operator", "administrator", "technician"):
        resp = await client.get("/api/devices/cam-0001/zones", headers=as_(role))
        assert await resp.json() == {"device_id": "cam-0001", **body}

    resp = await client.put("/api/devices/cam-0001/zones", json=GOOD, headers=as_("administrator"))
    assert resp.status == 200
    stored = await zone_store.get(pool, "cam-0001")
    assert stored is not None
    assert (stored.width, stored.height, [z.name for z in stored.zones]) == (320, 240, ["bed"])
    assert stored.zones[0].polygon == tuple((float(x), float(y)) for x, y in BED)
    # audited in the same transaction: who, which zones; no picture, no polygon
    assert await audited(pool) == [
        ("staff-technician", "cam-0001", {"width": 320, "height": 240, "zones": ["bed", "floor"]}),
        ("staff-administrator", "cam-0001", {"width": 320, "height": 240, "zones": ["bed"]}),
    ]
    # an empty list removes every zone
    resp = await client.put(
        "/api/devices/cam-0001/zones",
        json={"width": 320, "height": 240, "zones": []},
        headers=as_("administrator"),
    )
    assert resp.status == 200
    stored = await zone_store.get(pool, "cam-0001")
    assert stored is not None
    assert stored.zones == ()


P = "zones[0].polygon"
N = "zones[0].name"


def _zone(**changes: Any) -> dict[str, Any]:
    return {"width": 320, "height": 240, "zones": [{"name": "bed", "polygon": BED, **changes}]}


BAD_BODIES: list[tuple[str, bytes | dict[str, Any] | list[Any], int, str, str | None]] = [
    ("not json", b"{bed", 400, "bad_body", None),
    ("not an object", [1, 2], 400, "bad_body", None),
    ("empty", b"", 400, "bad_body", None),
    ("no width", {"height": 240, "zones": []}, 422, "missing_field", "width"),
    ("width a bool", {**GOOD, "width": True}, 422, "wrong_type", "width"),
    ("width a string", {**GOOD, "width": "320"}, 422, "wrong_type", "width"),
    ("height too small", {**GOOD, "height": 8}, 422, "out_of_range", "height"),
    ("height too large", {**GOOD, "height": 100_000}, 422, "out_of_range", "height"),
    ("unknown field", {**GOOD, "image": "aGVq"}, 422, "unknown_field", "image"),
    ("zones missing", {"width": 320, "height": 240}, 422, "missing_field", "zones"),
    ("zones an object", {**GOOD, "zones": {"bed": BED}}, 422, "wrong_type", "zones"),
    (
        "four zones",
        {**GOOD, "zones": [{"name": "bed", "polygon": BED}] * 4},
        422,
        "out_of_range",
        "zones",
    ),
    ("zone not an object", {**GOOD, "zones": [BED]}, 422, "wrong_type", "zones[0]"),
    ("zone with a picture", _zone(jpeg="/9j/4AAQ"), 422, "unknown_field", "zones[0].jpeg"),
    ("unknown zone name", _zone(name="kitchen"), 422, "bad_value", N),
    ("zone name missing", {**GOOD, "zones": [{"polygon": BED}]}, 422, "missing_field", N),
    (
        "the same zone twice",
        {**GOOD, "zones": [{"name": "bed", "polygon": BED}, {"name": "bed", "polygon": FLOOR}]},
        422,
        "duplicate",
        "zones[1].name",
    ),
    ("two points", _zone(polygon=BED[:2]), 422, "out_of_range", P),
    ("polygon not a list", _zone(polygon="0,0 1,1 2,2"), 422, "wrong_type", P),
    ("point of three", _zone(polygon=[[1, 1, 1], *BED]), 422, "out_of_range", f"{P}[0]"),
    ("point a string", _zone(polygon=[*BED, ["1", 2]]), 422, "wrong_type", f"{P}[4][0]"),
    ("point a huge int", _zone(polygon=[[10**400, 1], *BED]), 422, "out_of_range", f"{P}[0][0]"),
    ("point outside", _zone(polygon=[*BED[:3], [-1, 177]]), 422, "out_of_range", f"{P}[3][0]"),
    ("point beyond", _zone(polygon=[*BED[:3], [13, 241]]), 422, "outside_picture", f"{P}[3]"),
    ("no area", _zone(polygon=[[0, 0], [10, 10], [20, 20]]), 422, "invalid_polygon", P),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [pytest.param(b, s, c, f, id=name) for name, b, s, c, f in BAD_BODIES],
)
async def test_a_bad_body_is_refused_and_nothing_changes(
    client: Client,
    pool: asyncpg.Pool,
    body: bytes | dict[str, Any] | list[Any],
    status: int,
    code: str,
    field: str | None,
) -> None:
    resp = await client.put("/api/devices/cam-0001/zones", json=GOOD, headers=as_("technician"))
    assert resp.status == 200
    before = await audited(pool)
    if isinstance(body, bytes):
        resp = await client.put(
            "/api/devices/cam-0001/zones",
            data=body,
            headers={**as_("technician"), "Content-Type": "application/json"},
        )
    else:
        resp = await client.put("/api/devices/cam-0001/zones", json=body, headers=as_("technician"))
    assert resp.status == status, await resp.text()
    error = (await resp.json())["error"]
    assert (error["code"], error["field"]) == (code, field), error
    assert error["message"]
    resp = await client.get("/api/devices/cam-0001/zones", headers=as_("operator"))
    assert await resp.json() == {"device_id": "cam-0001", **GOOD}
    assert await audited(pool) == before


async def test_unknown_devices_phones_and_bad_ids_are_refused(
    client: Client, pool: asyncpg.Pool
) -> None:
    resp = await client.put("/api/devices/cam-0404/zones", json=GOOD, headers=as_("technician"))
    assert (resp.status, (await resp.json())["error"]["code"]) == (404, "not_found")
    resp = await client.get("/api/devices/cam-0404/zones", headers=as_("operator"))
    assert resp.status == 404
    resp = await client.put("/api/devices/phone-0001/zones", json=GOOD, headers=as_("technician"))
    assert (resp.status, (await resp.json())["error"]["code"]) == (409, "not_a_camera")
    resp = await client.put("/api/devices/Cam_1/zones", json=GOOD, headers=as_("technician"))
    assert (resp.status, (await resp.json())["error"]["field"]) == (400, "device_id")
    assert await pool.fetchval("SELECT count(*) FROM camera_zones") == 0
    assert await audited(pool) == []


def test_the_zone_routes_are_in_the_openapi_document() -> None:
    doc = http.openapi(zones_api.routes(), title="t", version="0")
    zones = doc["paths"]["/api/devices/{device_id}/zones"]
    assert zones["get"]["x-roles"] == ["administrator", "operator", "technician"]
    assert zones["put"]["x-roles"] == ["administrator", "technician"]
    body = zones["put"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["width", "height", "zones"]
    assert sorted(body["properties"]["zones"]["items"]["properties"]["name"]["enum"]) == [
        "bed",
        "door",
        "floor",
    ]
