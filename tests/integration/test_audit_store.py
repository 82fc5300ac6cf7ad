"""The audit log on the real PostgreSQL: append in the caller's transaction, refuse changes,
catch tampering, keep every lane one chain under concurrent writers, and let writers of
different lanes pass each other."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from kernel.audit import store as audit_store
from kernel.audit.chain import GENESIS_HASH, AuditDataError, BreakReason, lane_of, next_entry

pytestmark = pytest.mark.integration

T0 = datetime(2025, 10, 26, 1, 30, tzinfo=UTC)


async def fill(conn: asyncpg.Connection, n: int, *, subjects: int = 3) -> None:
    for i in range(n):
        async with conn.transaction():
            await audit_store.append(
                conn,
                actor="staff-abc123",
                action="view.ended",
                subject=f"rcp-{i % subjects}",
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
        # the rolled-back entry's id is gone with it (ids come from a sequence); no lane has a gap
        assert await conn.fetchval("SELECT array_agg(seq ORDER BY seq) FROM audit_log") == [1, 2, 4]
        assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE subject = 'rcp-9'") == 0
        result = await audit_store.verify(conn)
        assert (result.ok, result.checked) == (True, 3)


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
    """One subject: its eight entries are one lane, whose lane seqs are the ids here."""
    lane = lane_of(subject="rcp-0", actor="staff-abc123")
    assert lane != 0  # a lane of its own, not the chain before lanes
    await fill(owner, 8, subjects=1)
    await fill(owner, 3, subjects=4)  # other lanes around it
    assert (await audit_store.verify(owner)).ok
    await tamper(owner, statement)
    result = await audit_store.verify(owner, batch=3)
    assert not result.ok
    assert result.lane == lane
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
    assert len(set(seqs)) == 50
    assert by_actor == {"staff-aaa111": 25, "staff-bbb222": 25}


def subject_in(lane: int, *, besides: str = "") -> str:
    return next(
        s
        for s in (f"rcp-{i}" for i in range(10_000))
        if s != besides and lane_of(subject=s, actor="system") == lane
    )


async def lane_waits(conn: asyncpg.Connection) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND classid = $1",
            audit_store.LANE_LOCK_KEY,
        )
    )


async def test_writers_of_different_lanes_do_not_wait_for_each_other(database_url: str) -> None:
    """A holds its transaction open after appending in lane 1; B appends in lane 2 and commits
    meanwhile; C, in lane 1, waits for A's commit and then links to A's entry."""
    a, b, c = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        tx = a.transaction()
        await tx.start()
        first = await audit_store.append(
            a, actor="system", action="view.ended", subject=subject_in(1), data={}, at=T0
        )
        assert first.lane == 1
        async with asyncio.timeout(5):  # would hang on the chain's one lock before lanes
            other = await audit_store.append(
                b, actor="system", action="view.ended", subject=subject_in(2), data={}, at=T0
            )
        assert (other.lane, other.lane_seq) == (2, 1)
        same = asyncio.create_task(
            audit_store.append(
                c,
                actor="system",
                action="view.ended",
                subject=subject_in(1, besides=first.subject or ""),
                data={},
                at=T0,
            )
        )
        async with asyncio.timeout(5):
            while await lane_waits(b) != 1:  # C queues on lane 1's lock
                await asyncio.sleep(0.01)
        assert not same.done()
        await tx.commit()
        async with asyncio.timeout(5):
            after = await same
        assert (after.lane, after.lane_seq, after.prev_hash) == (1, 2, first.hash)
        result = await audit_store.verify(b)
        assert (result.ok, result.checked, result.lanes) == (True, 3, 2)
    finally:
        for conn in (a, b, c):
            await conn.close()


async def test_a_transaction_keeps_the_lane_of_its_first_entry(pool: asyncpg.Pool) -> None:
    """Two subjects of different lanes in one transaction: both entries in the first's lane (a
    transaction holds one lane's lock at most); the next transaction starts afresh."""
    one, two = subject_in(3), subject_in(4)
    async with pool.acquire() as conn:
        async with conn.transaction():
            e1 = await audit_store.append(
                conn, actor="system", action="view.ended", subject=one, data={}, at=T0
            )
            e2 = await audit_store.append(
                conn, actor="system", action="view.ended", subject=two, data={}, at=T0
            )
        e3 = await audit_store.append(
            conn, actor="system", action="view.ended", subject=two, data={}, at=T0
        )
        assert [(e.lane, e.lane_seq) for e in (e1, e2, e3)] == [(3, 1), (3, 2), (4, 1)]
        assert e2.prev_hash == e1.hash
        assert (await audit_store.verify(conn)).ok


async def test_the_chain_before_lanes_goes_on_as_lane_0(owner: asyncpg.Connection) -> None:
    """Entries of the old form (written before migration 0027: no lane, the old hash) stay as
    they are and verify; lane 0's first laned entry links to the last of them."""
    old = []
    prev_seq, prev_hash = 0, GENESIS_HASH
    for i in range(3):
        e = next_entry(
            prev_seq=prev_seq,
            prev_hash=prev_hash,
            at=T0,
            actor="system",
            action="view.ended",
            subject=f"rcp-{i}",
            data={"i": i},
        )
        old.append(e)
        prev_seq, prev_hash = e.seq, e.hash
    async with owner.transaction():  # the table as an older release left it
        await owner.execute("ALTER TABLE audit_log DROP CONSTRAINT audit_log_laned")
        for e in old:
            await owner.execute(
                "INSERT INTO audit_log (seq, at, actor, action, subject, data, prev_hash, hash)"
                " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)",
                e.seq,
                e.at,
                e.actor,
                e.action,
                e.subject,
                json.dumps(dict(e.data)),
                e.prev_hash,
                e.hash,
            )
        await owner.execute(
            "ALTER TABLE audit_log ADD CONSTRAINT audit_log_laned"
            " CHECK (lane IS NOT NULL AND lane BETWEEN 0 AND 255 AND lane_seq >= 1) NOT VALID"
        )
        await owner.execute("SELECT setval('audit_log_seq', 4, false)")
    new0 = await audit_store.append(
        owner, actor="system", action="view.ended", subject=subject_in(0), data={}, at=T0
    )
    new5 = await audit_store.append(
        owner, actor="system", action="view.ended", subject=subject_in(5), data={}, at=T0
    )
    assert (new0.seq, new0.lane, new0.lane_seq, new0.prev_hash) == (4, 0, 4, old[-1].hash)
    assert (new5.lane, new5.lane_seq, new5.prev_hash) == (5, 1, GENESIS_HASH)
    result = await audit_store.verify(owner)
    assert (result.ok, result.checked, result.lanes) == (True, 5, 2)
    # an old-form entry can no longer be added
    with pytest.raises(asyncpg.CheckViolationError):
        await owner.execute(
            "INSERT INTO audit_log (seq, at, actor, action, prev_hash, hash)"
            " VALUES (99, now(), 'system', 'a.b', $1, $2)",
            GENESIS_HASH,
            "a" * 64,
        )
