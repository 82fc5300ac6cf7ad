"""Camera zones in PostgreSQL (``camera_zones``, migration 0006; asyncpg, plain SQL).

Setting zones is audited (``device.zones_set``: who, when, which zone names, never the room) in
the same transaction as the write, appended last so the audit lock is held briefly.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, TypeAlias

import asyncpg

from devices.errors import DeviceError, UnknownDevice
from kernel.audit import store as audit_store
from supervision.zones import CameraZones, ZoneError, from_json

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
    Executor: TypeAlias = "Conn | asyncpg.Pool[asyncpg.Record]"


class NotACamera(DeviceError, ValueError):
    """Zones belong to cameras; this device is a video phone."""

    http_status = 409
    code = "not_a_camera"
    field = "device_id"


async def get(conn: Executor, device_id: str) -> CameraZones | None:
    """The device's zones, or None when none are set (or what is stored no longer passes)."""
    row = await conn.fetchrow(
        "SELECT ref_width, ref_height, zones::text AS zones FROM camera_zones WHERE device_id = $1",
        device_id,
    )
    if row is None:
        return None
    try:
        return from_json(
            {
                "width": row["ref_width"],
                "height": row["ref_height"],
                "zones": json.loads(row["zones"]),
            }
        )
    except ZoneError:
        return None


async def put(
    pool: asyncpg.Pool, device_id: str, zones: CameraZones, *, actor: str, at: datetime
) -> CameraZones:
    """Replace the device's zones and audit it; :class:`UnknownDevice` or :class:`NotACamera`
    change nothing."""
    body = zones.to_json()
    async with pool.acquire() as conn, conn.transaction():
        kind = await conn.fetchrow(
            "SELECT kind FROM devices WHERE device_id = $1 FOR UPDATE", device_id
        )
        if kind is None:
            raise UnknownDevice(f"no device {device_id}")
        if kind["kind"] == "video_phone":
            raise NotACamera(f"{device_id} is a video phone; zones belong to cameras")
        await conn.execute(
            "INSERT INTO camera_zones (device_id, ref_width, ref_height, zones, updated_at,"
            " updated_by) VALUES ($1, $2, $3, $4::jsonb, $5, $6)"
            " ON CONFLICT (device_id) DO UPDATE SET ref_width = EXCLUDED.ref_width,"
            " ref_height = EXCLUDED.ref_height, zones = EXCLUDED.zones,"
            " updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by",
            device_id,
            zones.width,
            zones.height,
            json.dumps(body["zones"]),
            at,
            actor,
        )
        await audit_store.append(
            conn,
            actor=actor,
            action="device.zones_set",
            subject=device_id,
            data={
                "width": zones.width,
                "height": zones.height,
                "zones": [z.name for z in zones.zones],
            },
            at=at,
        )
    return zones
