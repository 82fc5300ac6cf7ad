"""HTTP routes of the device registry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

from consent import api as consent_api
from consent.access import caller
from consent.body import read_object
from consent.roles import DEVICE_STAFF, STAFF, Route
from devices import store, topics, zone_store, zones
from devices.errors import UnknownDevice
from devices.registry import DeviceRecord, Stored

POOL = web.AppKey("devices_pool", asyncpg.Pool)
CLOCK = consent_api.CLOCK
"""The service clock for audit entries (zones set): the consent API's key, which the composition
root sets; the system clock when it is not set."""


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def device_json(r: DeviceRecord) -> dict[str, Any]:
    return {
        "id": r.device_id,
        "kind": r.kind.value if r.kind else None,
        "firmware": r.firmware,
        "caps": [c.value for c in r.caps],
        "video": None if r.video is None else {"w": r.video.w, "h": r.video.h, "fps": r.video.fps},
        "presence": r.presence.value,
        "session": r.session,
        "presence_since": _iso(r.presence_since),
        "last_seen": _iso(r.last_seen),
        "health": r.health,
        "health_at": _iso(r.health_at),
        "quarantined": r.quarantined,
        "first_seen": _iso(r.first_seen),
    }


DEVICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "kind": {"type": ["string", "null"]},
        "presence": {"type": "string", "enum": [s.value for s in Stored]},
        "quarantined": {"type": "boolean"},
        "caps": {"type": "array"},
    },
}


class BadQuery(ValueError):
    http_status = 400
    code = "bad_query"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


async def list_devices(request: web.Request) -> web.Response:
    presence = request.query.get("presence")
    if presence is not None and presence not in {s.value for s in Stored}:
        raise BadQuery("presence", "presence must be unknown, online, offline or stopped")
    after = request.query.get("after", "")
    try:
        limit = int(request.query.get("limit", "1000"))
    except ValueError:
        raise BadQuery("limit", "limit must be a whole number") from None
    if not 1 <= limit <= 5000:
        raise BadQuery("limit", "limit must be between 1 and 5000")
    rows = await store.list_all(
        request.app[POOL], presence=Stored(presence) if presence else None, limit=limit, after=after
    )
    return web.json_response({"devices": [device_json(r) for r in rows]})


async def get_device(request: web.Request) -> web.Response:
    device_id = request.match_info["device_id"]
    if not topics.is_device_id(device_id):
        raise BadQuery("device_id", "device ids are 1-64 characters of a-z, 0-9 and -")
    pool = request.app[POOL]
    record = await store.get(pool, device_id)
    if record is None:
        raise UnknownDevice(f"no device {device_id}")
    body = device_json(record)
    body["commands"] = [
        {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in c.items()}
        for c in await store.recent_commands(pool, device_id)
    ]
    return web.json_response(body)


def _device_id(request: web.Request) -> str:
    device_id = request.match_info["device_id"]
    if not topics.is_device_id(device_id):
        raise BadQuery("device_id", "device ids are 1-64 characters of a-z, 0-9 and -")
    return device_id


def zones_json(device_id: str, found: zones.CameraZones | None) -> dict[str, Any]:
    if found is None:
        return {"device_id": device_id, "width": None, "height": None, "zones": []}
    return {"device_id": device_id, **found.to_json()}


async def get_zones(request: web.Request) -> web.Response:
    """The camera's zones (polygons in reference-picture pixels), or an empty list."""
    device_id = _device_id(request)
    pool = request.app[POOL]
    if await store.get(pool, device_id) is None:
        raise UnknownDevice(f"no device {device_id}")
    return web.json_response(zones_json(device_id, await zone_store.get(pool, device_id)))


async def put_zones(request: web.Request) -> web.Response:
    """Replace the camera's zones (administrators and technicians; audited)."""
    who = caller(request)
    device_id = _device_id(request)
    parsed = zones.from_json(await read_object(request))
    clock = request.app.get(CLOCK)
    at = clock() if clock is not None else datetime.now(UTC)
    await zone_store.put(request.app[POOL], device_id, parsed, actor=who.staff_id, at=at)
    return web.json_response(zones_json(device_id, parsed))


_POINT = {
    "type": "array",
    "items": {"type": "number", "minimum": 0},
    "minItems": 2,
    "maxItems": 2,
}
ZONES_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["width", "height", "zones"],
    "additionalProperties": False,
    "properties": {
        "width": {"type": "integer", "minimum": zones.MIN_SIDE, "maximum": zones.MAX_SIDE},
        "height": {"type": "integer", "minimum": zones.MIN_SIDE, "maximum": zones.MAX_SIDE},
        "zones": {
            "type": "array",
            "maxItems": len(zones.ZONE_NAMES),
            "items": {
                "type": "object",
                "required": ["name", "polygon"],
                "additionalProperties": False,
                "properties": {
                    "name": {"enum": list(zones.ZONE_NAMES)},
                    "polygon": {
                        "type": "array",
                        "items": _POINT,
                        "minItems": 3,
                        "maxItems": zones.MAX_VERTICES,
                    },
                },
            },
        },
    },
}
ZONES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "device_id": {"type": "string"},
        "width": {"type": ["integer", "null"]},
        "height": {"type": ["integer", "null"]},
        "zones": ZONES_BODY["properties"]["zones"],
    },
}


def routes() -> list[Route]:
    return [
        Route(
            "GET",
            "/api/devices",
            list_devices,
            STAFF,
            "List devices with presence and health",
            response={
                "type": "object",
                "properties": {"devices": {"type": "array", "items": DEVICE_SCHEMA}},
            },
            tags=("devices",),
        ),
        Route(
            "GET",
            "/api/devices/{device_id}",
            get_device,
            STAFF,
            "One device with its recent commands",
            response=DEVICE_SCHEMA,
            tags=("devices",),
        ),
        Route(
            "GET",
            "/api/devices/{device_id}/zones",
            get_zones,
            STAFF,
            "A camera's zones (bed, floor, door) as polygons in reference-picture pixels",
            response=ZONES_SCHEMA,
            tags=("devices",),
        ),
        Route(
            "PUT",
            "/api/devices/{device_id}/zones",
            put_zones,
            DEVICE_STAFF,
            "Replace a camera's zones (polygons, never pictures); audited",
            body=ZONES_BODY,
            response=ZONES_SCHEMA,
            tags=("devices",),
        ),
    ]
