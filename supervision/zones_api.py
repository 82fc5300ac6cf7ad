"""HTTP routes of a camera's zones (bed, floor, door): the motion check's picture of the room.

Polygons in reference-picture pixels, never pictures. Reading needs any staff role; replacing
them is for device staff and is audited.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from devices import store
from devices.api import POOL, device_id_param
from devices.errors import UnknownDevice
from kernel import codec
from kernel.access import CLOCK, caller
from kernel.body import read_body
from kernel.permissions import Permission, route
from kernel.roles import Route
from supervision import zone_store, zones


def zones_json(device_id: str, found: zones.CameraZones | None) -> dict[str, Any]:
    if found is None:
        return {"device_id": device_id, "width": None, "height": None, "zones": []}
    return {"device_id": device_id, **found.to_json()}


async def get_zones(request: web.Request) -> web.Response:
    """The camera's zones (polygons in reference-picture pixels), or an empty list."""
    device_id = device_id_param(request)
    pool = request.app[POOL]
    if await store.get(pool, device_id) is None:
        raise UnknownDevice(f"no device {device_id}")
    return web.json_response(zones_json(device_id, await zone_store.get(pool, device_id)))


async def put_zones(request: web.Request) -> web.Response:
    """Replace the camera's zones (administrators and technicians; audited)."""
    who = caller(request)
    device_id = device_id_param(request)
    parsed = (await read_body(request, zones.ZonesBody)).camera_zones()
    clock = request.app.get(CLOCK)
    at = clock() if clock is not None else datetime.now(UTC)
    await zone_store.put(request.app[POOL], device_id, parsed, actor=who.staff_id, at=at)
    return web.json_response(zones_json(device_id, parsed))


ZONES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "device_id": {"type": "string"},
        "width": {"type": ["integer", "null"]},
        "height": {"type": ["integer", "null"]},
        "zones": codec.schema(zones.ZonesBody)["properties"]["zones"],
    },
}


def routes() -> list[Route]:
    return [
        route(
            "GET",
            "/api/devices/{device_id}/zones",
            get_zones,
            Permission.READ_DEVICES,
            "A camera's zones (bed, floor, door) as polygons in reference-picture pixels",
            response=ZONES_SCHEMA,
            tags=("devices",),
        ),
        route(
            "PUT",
            "/api/devices/{device_id}/zones",
            put_zones,
            Permission.MANAGE_DEVICES,
            "Replace a camera's zones (polygons, never pictures); audited",
            body=zones.ZonesBody,
            response=ZONES_SCHEMA,
            tags=("devices",),
        ),
    ]
