"""Device records in PostgreSQL (asyncpg, plain SQL)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from devices.registry import DeviceRecord, Stored
from devices.topics import Capability, DeviceKind, VideoSpec

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
    Executor: TypeAlias = "Conn | asyncpg.Pool[asyncpg.Record]"

_COLUMNS = (
    "device_id, kind, firmware, caps, video, presence, session, presence_since, last_seen,"
    " health, health_at, quarantined, first_seen"
)


def _record(row: asyncpg.Record) -> DeviceRecord:
    video = json.loads(row["video"]) if row["video"] else None
    return DeviceRecord(
        device_id=row["device_id"],
        presence=Stored(row["presence"]),
        session=row["session"],
        presence_since=row["presence_since"],
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        kind=DeviceKind(row["kind"]) if row["kind"] else None,
        firmware=row["firmware"],
        caps=tuple(Capability(c) for c in row["caps"]),
        video=VideoSpec(**video) if video else None,
        health=json.loads(row["health"]) if row["health"] else None,
        health_at=row["health_at"],
        quarantined=row["quarantined"],
    )


async def get(conn: Executor, device_id: str, *, for_update: bool = False) -> DeviceRecord | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM devices WHERE device_id = $1{lock}", device_id
    )
    return _record(row) if row else None


async def list_all(
    conn: Executor,
    *,
    presence: Stored | None = None,
    limit: int = 1000,
    after: str = "",
) -> Sequence[DeviceRecord]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM devices WHERE device_id > $1"
        " AND ($2::text IS NULL OR presence = $2) ORDER BY device_id LIMIT $3",
        after,
        presence.value if presence else None,
        limit,
    )
    return [_record(r) for r in rows]


async def put(conn: Conn, r: DeviceRecord) -> None:
    """Insert or update a record as the pure registry computed it (caller holds the row lock)."""
    video: dict[str, Any] | None = (
        None if r.video is None else {"w": r.video.w, "h": r.video.h, "fps": r.video.fps}
    )
    await conn.execute(
        "INSERT INTO devices (device_id, kind, firmware, caps, video, presence, session,"
        " presence_since, last_seen, health, health_at, quarantined, first_seen)"
        " VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10::jsonb, $11, $12, $13)"
        " ON CONFLICT (device_id) DO UPDATE SET kind = EXCLUDED.kind,"
        " firmware = EXCLUDED.firmware, caps = EXCLUDED.caps, video = EXCLUDED.video,"
        " presence = EXCLUDED.presence, session = EXCLUDED.session,"
        " presence_since = EXCLUDED.presence_since, last_seen = EXCLUDED.last_seen,"
        " health = EXCLUDED.health, health_at = EXCLUDED.health_at",
        r.device_id,
        r.kind.value if r.kind else None,
        r.firmware,
        [c.value for c in r.caps],
        json.dumps(video) if video else None,
        r.presence.value,
        r.session,
        r.presence_since,
        r.last_seen,
        json.dumps(r.health) if r.health is not None else None,
        r.health_at,
        r.quarantined,
        r.first_seen,
    )


async def record_command(conn: Executor, command_id: str, device_id: str, op: str) -> bool:
    """Store a command about to be sent; ``False`` (nothing stored) if the device is unknown.
    One statement: a command's send waits for it, so it is one round trip, not a look-up first."""
    try:
        status = await conn.execute(
            "INSERT INTO device_commands (command_id, device_id, op)"
            " SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM devices WHERE device_id = $2)",
            command_id,
            device_id,
            op,
        )
    except asyncpg.ForeignKeyViolationError:  # the device was deleted meanwhile
        return False
    return bool(status.endswith(" 1"))


async def record_ack(
    conn: Executor,
    command_id: str,
    device_id: str,
    ok: bool,
    detail: str | None,
) -> bool:
    """Store an ack; False if no such command was sent to that device (nothing changes)."""
    status = await conn.execute(
        "UPDATE device_commands SET acked_at = now(), ack_ok = $3, ack_detail = $4"
        " WHERE command_id = $1 AND device_id = $2 AND acked_at IS NULL",
        command_id,
        device_id,
        ok,
        detail,
    )
    return bool(status.endswith(" 1"))


async def command_sent(conn: Executor, command_id: str, device_id: str) -> bool:
    """Whether that command was sent to that device (acked or not)."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM device_commands"
            " WHERE command_id = $1 AND device_id = $2)",
            command_id,
            device_id,
        )
    )


async def recent_commands(conn: Executor, device_id: str, limit: int = 10) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT command_id, op, sent_at, acked_at, ack_ok, ack_detail FROM device_commands"
        " WHERE device_id = $1 ORDER BY sent_at DESC LIMIT $2",
        device_id,
        limit,
    )
    return [dict(r) for r in rows]
