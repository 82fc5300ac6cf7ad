"""HTTP routes of the device registry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web

from devices import store, topics
from devices.errors import UnknownDevice
from devices.registry import DeviceRecord, Stored
from kernel.permissions import Permission, route
from kernel.roles import Route

POOL = web.AppKey("devices_pool", asyncpg.Pool)


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


def device_id_param(request: web.Request) -> str:
    device_id = request.match_info["device_id"]
    if not topics.is_device_id(device_id):
        raise BadQuery("device_id", "device ids are 1-64 characters of a-z, 0-9 and -")
    return device_id


def routes() -> list[Route]:
    return [
        route(
            "GET",
            "/api/devices",
            list_devices,
            Permission.READ_DEVICES,
            "List devices with presence and health",
            response={
                "type": "object",
                "properties": {"devices": {"type": "array", "items": DEVICE_SCHEMA}},
            },
            tags=("devices",),
        ),
        route(
            "GET",
            "/api/devices/{device_id}",
            get_device,
            Permission.READ_DEVICES,
            "One device with its recent commands",
            response=DEVICE_SCHEMA,
            tags=("devices",),
        ),
    ]
