"""The audit log on the real PostgreSQL: append in the caller's transaction, refuse changes,
catch tampering, and keep one chain under concurrent writers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from kernel.audit import store as audit_store
from kernel.audit.chain import AuditDataError, BreakReason

pytestmark = pytest.mark.integration

T0 = datetime(2025, 10, 26, 1, 30, tzinfo=UTC)


async def fill(conn: asyncpg.Connection, n: int) -> None:
    for i in range(n):
        async with conn.transaction():
            await audit_store.append(
                conn,
                actor="staff-abc123",
                action="view.ended",
                subject=f"rcp-{i % 3}",
                at=T0 + timedelta(seconds=i),
                data={"duration_s": 12.25, "ended_by": "timeout", "i": i},
            )


async def test_append_and_verify(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        assert await audit_store.verify(conn) == audit_store.VerifyResult(ok=True, checked=0)
        await fill(conn, 5)
        result = await audit_store.verify(conn)
        assert result.ok
        assert result.checked == 5
        rows = await audit_store.entries(conn, subject="rcp-1")
    assert [e.seq for e in rows] == [2, 5]
    assert rows[0].data == {"duration_s": 12.25, "ended_by": "timeout", "i": 1}
    assert rows[0].at == T0 + timedelta(seconds=1)


async def test_append_without_transaction_opens_one(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        entry = await audit_store.append(
            conn, actor="system", action="round.planned", subject=None, data={}, at=T0
        )
        assert entry.seq == 1
        assert (await audit_store.verify(conn)).ok


async def append_then_fail(conn: asyncpg.Connection) -> None:
    """A change that records its audit entry and then fails: both roll back."""
    async with conn.transaction():
        await audit_store.append(
            conn, actor="system", action="consent.withdrawn", subject="rcp-9", data={}, at=T0
        )
        raise RuntimeError("the change it records failed")


async def test_rolled_back_change_leaves_no_entry(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await fill(conn, 2)
        with pytest.raises(RuntimeError):
            await append_then_fail(conn)
        await fill(conn, 1)
        assert await conn.fetchval("SELECT array_agg(seq ORDER BY seq) FROM audit_log") == [1, 2, 3]
        assert (await audit_store.verify(conn)).ok


ROUND_TRIP_VALUES: list[Any] = [
    0.1,
    1e300,
    1e-300,
    -0.0,
    2**70,
    "åäö ✓ 𝄞",
    "\\\"'",
    [1, [2, {"k": None}]],
    True,
]


async def test_data_round_trips_through_jsonb(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        for value in ROUND_TRIP_VALUES:
            await audit_store.append(
                conn,
                actor="device:cam-1",
                action="device.event",
                subject="cam-1",
                data={"v": value},
                at=T0,
            )
            assert (await audit_store.verify(conn)).ok, value


async def test_bad_entry_changes_nothing(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(AuditDataError):
            await audit_store.append(
                conn,
                actor="system",
                action="view.ended",
                subject=None,
                data={"display_name": "Anna"},
                at=T0,
            )
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 0


CHANGES = [
    "UPDATE audit_log SET actor = 'system' WHERE seq = 2",
    "DELETE FROM audit_log WHERE seq = 3",
    "TRUNCATE audit_log",
]


async def test_changes_are_refused(pool: asyncpg.Pool, owner: asyncpg.Connection) -> None:
    """The service's role holds no right to change the log; the owner, who does, meets the
    append-only triggers."""
    async with pool.acquire() as conn:
        await fill(conn, 3)
        for statement in CHANGES:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await conn.execute(statement)
    for statement in CHANGES:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await owner.execute(statement)
    assert await owner.fetchval("SELECT count(*) FROM audit_log") == 3
    assert (await audit_store.verify(owner)).ok


async def tamper(conn: asyncpg.Connection, statement: str) -> None:
    """What a superuser could do: switch the guard off, change history, switch it back on."""
    async with conn.transaction():
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        await conn.execute(statement)
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")


@pytest.mark.parametrize(
    ("statement", "broken_seq", "reason"),
    [
        (
            "UPDATE audit_log SET data = jsonb_set(data, '{duration_s}', '3') WHERE seq = 4",
            4,
            BreakReason.HASH_MISMATCH,
        ),
        ("UPDATE audit_log SET actor = 'staff-zzz999' WHERE seq = 2", 2, BreakReason.HASH_MISMATCH),
        (
            "UPDATE audit_log SET at = at - interval '1 hour' WHERE seq = 6",
            6,
            BreakReason.HASH_MISMATCH,
        ),
        ("DELETE FROM audit_log WHERE seq = 3", 3, BreakReason.SEQ_GAP),
        (
            "UPDATE audit_log SET prev_hash = repeat('0', 64) WHERE seq = 5",
            5,
            BreakReason.PREV_HASH_MISMATCH,
        ),
        ("UPDATE audit_log SET data = '[1]' WHERE seq = 2", 2, BreakReason.UNREADABLE),
    ],
)
async def test_tampering_names_the_first_broken_seq(
    owner: asyncpg.Connection, statement: str, broken_seq: int, reason: BreakReason
) -> None:
    await fill(owner, 8)
    assert (await audit_store.verify(owner)).ok
    await tamper(owner, statement)
    result = await audit_store.verify(owner, batch=3)
    assert not result.ok
    assert result.first_broken_seq == broken_seq
    assert result.reason is not None
    assert result.reason.startswith(reason)


async def test_concurrent_writers_keep_one_chain(database_url: str) -> None:
    conns = [await asyncpg.connect(database_url) for _ in range(3)]
    try:

        async def writer(conn: asyncpg.Connection, who: str, n: int) -> None:
            for i in range(n):
                async with conn.transaction():
                    await conn.execute("SELECT 1")  # the change being recorded
                    await audit_store.append(
                        conn,
                        actor=who,
                        action="view.started",
                        subject=f"rcp-{i}",
                        data={"i": i},
                        at=T0,
                    )
                    await asyncio.sleep(0)  # let the others queue on the lock

        async def doomed(conn: asyncpg.Connection) -> None:
            for _ in range(10):
                with pytest.raises(RuntimeError):
                    await append_then_fail(conn)

        await asyncio.gather(
            writer(conns[0], "staff-aaa111", 25),
            writer(conns[1], "staff-bbb222", 25),
            doomed(conns[2]),
        )
        result = await audit_store.verify(conns[0])
        seqs = await conns[0].fetchval("SELECT array_agg(seq ORDER BY seq) FROM audit_log")
        by_actor = dict(
            await conns[0].fetch("SELECT actor, count(*) FROM audit_log GROUP BY actor")
        )
    finally:
        for c in conns:
            await c.close()
    assert result.ok, result
    assert result.checked == 50
    assert seqs == list(range(1, 51))
    assert by_actor == {"staff-aaa111": 25, "staff-bbb222": 25}
