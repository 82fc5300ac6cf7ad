"""Device records in PostgreSQL (asyncpg, plain SQL).

A batch of device messages is read with :func:`get_many` (``FOR UPDATE``, in one query) and
written with :func:`put_many` (one ``INSERT ... SELECT FROM unnest(...)`` that also sends the
batch's notices with ``pg_notify`` on :data:`FEED_CHANNEL`, delivered when the transaction
commits), so a batch costs the same few round trips whatever its size.
"""

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
    " health, health_at, quarantined, first_seen, session_ended"
)

FEED_CHANNEL = "hc_device_feed"
"""The ``NOTIFY`` channel of the device feed (``devices.feed``): presence changes and call
answers, for every process."""


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
        session_ended=row["session_ended"],
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


def _video(r: DeviceRecord) -> str | None:
    if r.video is None:
        return None
    return json.dumps({"w": r.video.w, "h": r.video.h, "fps": r.video.fps})


_UPSERT = (
    "INSERT INTO devices (device_id, kind, firmware, caps, video, presence, session,"
    " presence_since, last_seen, health, health_at, quarantined, first_seen, session_ended)"
    " {source}"
    " ON CONFLICT (device_id) DO UPDATE SET kind = EXCLUDED.kind,"
    " firmware = EXCLUDED.firmware, caps = EXCLUDED.caps, video = EXCLUDED.video,"
    " presence = EXCLUDED.presence, session = EXCLUDED.session,"
    " presence_since = EXCLUDED.presence_since, last_seen = EXCLUDED.last_seen,"
    " health = EXCLUDED.health, health_at = EXCLUDED.health_at,"
    " session_ended = EXCLUDED.session_ended"
)


async def put(conn: Conn, r: DeviceRecord) -> None:
    """Insert or update a record as the pure registry computed it (caller holds the row lock)."""
    await conn.execute(
        _UPSERT.format(
            source="VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10::jsonb, $11, $12,"
            " $13, $14)"
        ),
        r.device_id,
        r.kind.value if r.kind else None,
        r.firmware,
        [c.value for c in r.caps],
        _video(r),
        r.presence.value,
        r.session,
        r.presence_since,
        r.last_seen,
        json.dumps(r.health) if r.health is not None else None,
        r.health_at,
        r.quarantined,
        r.first_seen,
        r.session_ended,
    )


async def get_many(conn: Conn, device_ids: Sequence[str]) -> dict[str, DeviceRecord]:
    """The records of ``device_ids`` that exist, each row locked (``FOR UPDATE``, in id order,
    so two batches that share devices never deadlock); one query."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM devices WHERE device_id = ANY($1::text[])"
        " ORDER BY device_id FOR UPDATE",
        list(device_ids),
    )
    return {r["device_id"]: _record(r) for r in rows}


async def put_many(conn: Conn, records: Sequence[DeviceRecord], notices: Sequence[str]) -> None:
    """Insert or update ``records`` (the caller holds their row locks, one record per device)
    and send ``notices`` (JSON texts) on :data:`FEED_CHANNEL`; one statement."""
    caps = ["{" + ",".join(c.value for c in r.caps) + "}" for r in records]
    await conn.execute(
        "WITH up AS ("
        + _UPSERT.format(
            source="SELECT i, k, f, c::text[], v::jsonb, p, s, ps, ls, h::jsonb, ha, q, fs, se"
            " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
            " $6::text[], $7::bigint[], $8::timestamptz[], $9::timestamptz[], $10::text[],"
            " $11::timestamptz[], $12::bool[], $13::timestamptz[], $14::bool[])"
            " AS t(i, k, f, c, v, p, s, ps, ls, h, ha, q, fs, se)"
        )
        + " RETURNING 1)"
        " SELECT (SELECT count(*) FROM up),"
        " (SELECT count(pg_notify($15, n)) FROM unnest($16::text[]) AS n)",
        [r.device_id for r in records],
        [r.kind.value if r.kind else None for r in records],
        [r.firmware for r in records],
        caps,
        [_video(r) for r in records],
        [r.presence.value for r in records],
        [r.session for r in records],
        [r.presence_since for r in records],
        [r.last_seen for r in records],
        [json.dumps(r.health) if r.health is not None else None for r in records],
        [r.health_at for r in records],
        [r.quarantined for r in records],
        [r.first_seen for r in records],
        [r.session_ended for r in records],
        FEED_CHANNEL,
        list(notices),
    )


async def notify(conn: Executor, notices: Sequence[str]) -> None:
    """Send ``notices`` on :data:`FEED_CHANNEL` (delivered when the caller's transaction
    commits)."""
    if notices:
        await conn.execute(
            "SELECT count(pg_notify($1, n)) FROM unnest($2::text[]) AS n",
            FEED_CHANNEL,
            list(notices),
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
