"""Tailing the audit log on the real PostgreSQL: two writers of different lanes, the one with
the lower seq committing last; a reader tailing by cursor between the commits reads every entry
exactly once, while one paging by ``after_seq`` loses the late entry (the hazard the cursor
exists for). Pages by cursor agree with the pure specification (``kernel.audit.cursor.page``)."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from kernel.audit import cursor as ac
from kernel.audit import store as audit_store
from kernel.audit.chain import AuditEntry, lane_of

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def subject_in(lane: int, *, besides: str = "") -> str:
    return next(
        s
        for s in (f"rcp-{i}" for i in range(10_000))
        if s != besides and lane_of(subject=s, actor="system") == lane
    )


async def append(conn: asyncpg.Connection, subject: str) -> AuditEntry:
    return await audit_store.append(
        conn, actor="system", action="view.ended", subject=subject, data={}, at=T0
    )


async def test_a_late_commit_with_a_lower_seq_is_read_by_cursor_and_lost_by_after_seq(
    database_url: str, pool: asyncpg.Pool
) -> None:
    a, b = [await asyncpg.connect(database_url) for _ in range(2)]
    try:
        tx = a.transaction()
        await tx.start()
        early = await append(a, subject_in(1))  # draws the lower seq, commits last
        late = await append(b, subject_in(2))  # its own transaction: committed now
        assert early.seq < late.seq
        async with pool.acquire() as reader:
            first, cursor = await audit_store.entries_after(reader, ac.START, limit=10)
            by_seq = await audit_store.entries(reader, after_seq=0, limit=10)
            assert [e.seq for e in first] == [e.seq for e in by_seq] == [late.seq]
            await tx.commit()
            second, cursor = await audit_store.entries_after(reader, cursor, limit=10)
            assert [e.seq for e in second] == [early.seq]
            again, _ = await audit_store.entries_after(reader, cursor, limit=10)
            assert again == []
            # The hazard: paging on from the last seq read never returns the late commit.
            assert await audit_store.entries(reader, after_seq=by_seq[-1].seq, limit=10) == []
    finally:
        await a.close()
        await b.close()
    assert {e.seq for e in first + second} == {early.seq, late.seq}


async def test_pages_by_cursor_are_the_specification_and_cover_the_log_once(
    pool: asyncpg.Pool,
) -> None:
    """Eleven entries over four lanes, read three at a time with and without a filter: each
    page is ``cursor.page`` over what is stored, and the pages together are the log once, in
    seq order. A filtered tail's short page moves the cursor over the lanes' other entries."""
    subjects = [subject_in(lane) for lane in (0, 3, 5, 9)]
    async with pool.acquire() as conn:
        for i in range(11):
            await append(conn, subjects[(i * 7) % 4])
        stored, _ = await audit_store.entries_after(conn, ac.START, limit=100)
        assert len(stored) == 11
        for wanted in (None, subjects[1]):
            visible = [e for e in stored if wanted is None or e.subject == wanted]
            cursor, read = ac.START, []
            for _ in range(6):
                found, following = await audit_store.entries_after(
                    conn, cursor, subject=wanted, limit=3
                )
                assert found == ac.page(cursor, visible, 3)
                read += found
                cursor = following
                if len(found) < 3:
                    break
            assert read == visible
            # the last page was short: every lane moved to its head, the filter's or not
            assert all(
                cursor.position(lane) == max(e.position for e in stored if e.lane == lane)
                for lane in (0, 3, 5, 9)
            )
        # a cursor naming lanes the log does not have yet reads nothing and keeps them
        beyond = ac.Cursor(((7, 40), (200, 3)))
        found, following = await audit_store.entries_after(conn, beyond, limit=5)
        assert found == stored[:5]
        assert (following.position(7), following.position(200)) == (40, 3)
