"""The audit log in PostgreSQL: append inside the caller's transaction, verify by streaming.

The log is lanes (:mod:`kernel.audit.chain`). ``append`` enters the entry's lane
(``audit_lane_enter``, migration 0027: that lane's transaction-scoped advisory lock, its head and a
new id in one round trip) and inserts the next entry of the lane, so concurrent writers in any
number of processes keep every lane one unbroken chain, and writers of different lanes never wait
for each other. A transaction keeps the lane of its first entry for all its entries (the
database remembers it in a transaction-local setting): it holds one lane's lock at most, so two
transactions can never deadlock over lanes. The lock is held until the caller's transaction ends:
append last, just before commit, to keep it short. Callers must use READ COMMITTED (PostgreSQL's
default); under REPEATABLE READ a writer could read a stale head, and the unique index on
``(lane, lane_seq)`` would refuse its insert rather than fork the lane.

Reading: :func:`entries_after` tails the log with a cursor (per lane, the last position read;
:mod:`kernel.audit.cursor`) and never skips an entry; :func:`entries` pages by ``seq``, which is
not commit order across lanes, and is for old history only.

The table refuses UPDATE, DELETE and TRUNCATE through triggers (migration 0002).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from kernel.audit import reads
from kernel.audit.chain import (
    AuditEntry,
    BreakReason,
    LanesVerifier,
    VerifyResult,
    checked_data,
    lane_of,
    next_lane_entry,
)
from kernel.audit.cursor import Cursor, advance
from kernel.roles import Principal

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = (
        "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
    )
    """A plain connection or one acquired from a pool; both work everywhere here."""

__all__ = [
    "AUDIT_LOCK_KEY",
    "AuditEntry",
    "NewEntry",
    "VerifyResult",
    "append",
    "append_many",
    "append_read",
    "entries",
    "entries_after",
    "positions",
    "read_log",
    "verify",
]

AUDIT_LOCK_KEY = 0x68635F617564  # "hc_aud"
"""The one lock of the chain before lanes (kept for the frozen baseline in ``bench/baselines``)."""
LANE_LOCK_KEY = 1751343477  # "hcau": pg_advisory_xact_lock(LANE_LOCK_KEY, lane), migration 0027

_COLUMNS = "seq, at, actor, action, subject, data::text AS data, prev_hash, hash, lane, lane_seq"
_INSERT = (
    "INSERT INTO audit_log (seq, lane, lane_seq, at, actor, action, subject, data, prev_hash,"
    " hash) SELECT seq, lane, lane_seq, at, actor, action, subject, data::jsonb, prev_hash, hash"
    " FROM unnest($1::bigint[], $2::smallint[], $3::bigint[], $4::timestamptz[], $5::text[],"
    " $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])"
    " AS e(seq, lane, lane_seq, at, actor, action, subject, data, prev_hash, hash)"
)


def _entry(row: asyncpg.Record) -> AuditEntry:
    raw = row["data"]
    data = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(data, dict):
        raise TypeError("audit data is not a JSON object")
    return AuditEntry(
        seq=row["seq"],
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        subject=row["subject"],
        data=data,
        prev_hash=row["prev_hash"],
        hash=row["hash"],
        lane=0 if row["lane"] is None else row["lane"],
        lane_seq=row["lane_seq"],
    )


@asynccontextmanager
async def _in_transaction(conn: Connection) -> AsyncIterator[None]:
    if conn.is_in_transaction():
        yield
    else:
        async with conn.transaction():
            yield


async def append(
    conn: Connection,
    *,
    actor: str,
    action: str,
    subject: str | None,
    data: Mapping[str, Any],
    at: datetime,
) -> AuditEntry:
    """Append one entry in the caller's transaction (or a new one if there is none).

    ``actor`` is a pseudonymous staff id, ``"system"`` or ``"device:<id>"``; ``action`` reads like
    ``"consent.withdrawn"``; ``subject`` is a pseudonymous recipient/device id; ``data`` is a small
    JSON object (never names, secrets or media). Raises :class:`kernel.audit.chain.AuditDataError`
    (a ``ValueError``) for a bad value before touching the database.
    """
    made = await append_many(
        conn, [NewEntry(actor=actor, action=action, subject=subject, data=data, at=at)]
    )
    return made[0]


@dataclass(frozen=True, slots=True)
class NewEntry:
    """One entry to append with :func:`append_many` (the arguments of :func:`append`)."""

    actor: str
    action: str
    subject: str | None
    data: Mapping[str, Any]
    at: datetime


@dataclass(frozen=True, slots=True)
class _Lane:
    """A lane entered by this transaction: its number, its head and the ids it was given."""

    lane: int
    lane_seq: int
    hash: str
    seqs: list[int]


async def _enter(conn: Connection, lane: int, count: int) -> _Lane:
    row = await conn.fetchrow("SELECT * FROM audit_lane_enter($1, $2)", lane, count)
    assert row is not None
    return _Lane(row["lane"], row["lane_seq"], row["hash"], list(row["seqs"]))


async def _insert(conn: Connection, lane: _Lane, items: Sequence[NewEntry]) -> list[AuditEntry]:
    made: list[AuditEntry] = []
    prev_seq, prev_hash = lane.lane_seq, lane.hash
    for seq, item in zip(lane.seqs, items, strict=True):
        entry = next_lane_entry(
            seq=seq,
            lane=lane.lane,
            prev_lane_seq=prev_seq,
            prev_hash=prev_hash,
            at=item.at,
            actor=item.actor,
            action=item.action,
            subject=item.subject,
            data=item.data,
        )
        made.append(entry)
        prev_seq, prev_hash = entry.position, entry.hash
    await conn.execute(
        _INSERT,
        [e.seq for e in made],
        [e.lane for e in made],
        [e.lane_seq for e in made],
        [e.at for e in made],
        [e.actor for e in made],
        [e.action for e in made],
        [e.subject for e in made],
        [json.dumps(e.data, ensure_ascii=False) for e in made],
        [e.prev_hash for e in made],
        [e.hash for e in made],
    )
    return made


def _check(items: Sequence[NewEntry]) -> None:
    for item in items:  # validate before taking a lock, so a bad entry never holds one up
        checked_data(
            at=item.at, actor=item.actor, action=item.action, subject=item.subject, data=item.data
        )


async def append_many(conn: Connection, items: Sequence[NewEntry]) -> list[AuditEntry]:
    """Append ``items`` in their order, as :func:`append` would one by one, in two round trips
    (the lane, its head and the ids in one; one ``INSERT`` of every entry; the planner audits
    hundreds of batches at once). They go to the lane of the first (or of the transaction, if it
    appended before). All or nothing; a bad value raises
    :class:`kernel.audit.chain.AuditDataError` before touching the database."""
    if not items:
        return []
    _check(items)
    first = items[0]
    async with _in_transaction(conn):
        lane = await _enter(conn, lane_of(subject=first.subject, actor=first.actor), len(items))
        return await _insert(conn, lane, items)


async def append_read(
    conn: Connection,
    *,
    actor: str,
    action: str,
    subject: str | None,
    data: Mapping[str, Any],
    at: datetime,
    fold_s: float = reads.FOLD_S,
) -> AuditEntry | None:
    """Append a read (:mod:`kernel.audit.reads`) unless it folds into the actor's last entry of
    the same action and subject; ``None`` when it folded. The look-up and the append hold the
    lane's lock together, so two concurrent reads (of one subject, so of one lane, each in its
    own transaction) write one entry."""
    item = NewEntry(actor=actor, action=action, subject=subject, data=data, at=at)
    _check([item])
    async with _in_transaction(conn):
        lane = await _enter(conn, lane_of(subject=subject, actor=actor), 1)
        last = await conn.fetchrow(
            "SELECT at, data::text AS data FROM audit_log"
            " WHERE actor = $1 AND action = $2 AND subject IS NOT DISTINCT FROM $3"
            " ORDER BY seq DESC LIMIT 1",
            actor,
            action,
            subject,
        )
        if last is not None and reads.folds(
            last["at"], json.loads(last["data"]), at=at, data=data, fold_s=fold_s
        ):
            return None  # the id the lane gave is left unused: ids may have gaps
        return (await _insert(conn, lane, [item]))[0]


ReadLog = Callable[[Principal, str, "str | None", Mapping[str, Any]], Awaitable[None]]


def read_log(
    pool: asyncpg.Pool, clock: Callable[[], datetime], *, fold_s: float = reads.FOLD_S
) -> ReadLog:
    """The read log the composition root gives the HTTP handlers (``kernel.access.READ_LOG``):
    each read is :func:`append_read` in its own transaction, at the service clock's now."""

    async def log(
        who: Principal, action: str, subject: str | None, data: Mapping[str, Any]
    ) -> None:
        async with pool.acquire() as conn:
            await append_read(
                conn,
                actor=who.staff_id,
                action=action,
                subject=subject,
                data=data,
                at=clock(),
                fold_s=fold_s,
            )

    return log


_LANES_IN_ORDER = (
    f"SELECT {_COLUMNS} FROM audit_log WHERE lane IS NULL ORDER BY seq",
    f"SELECT {_COLUMNS} FROM audit_log WHERE lane IS NOT NULL ORDER BY lane, lane_seq",
)
"""The whole log, lane by lane: the entries before lanes (lane 0's beginning), then every lane."""


async def verify(conn: Connection, *, batch: int = 1000) -> VerifyResult:
    """Walk every lane in order with server-side cursors; memory constant in the entries."""
    verifier = LanesVerifier()
    async with _in_transaction(conn):
        for query in _LANES_IN_ORDER:
            async for row in conn.cursor(query, prefetch=batch):
                try:
                    entry = _entry(row)
                except (ValueError, TypeError) as e:
                    lane = 0 if row["lane"] is None else row["lane"]
                    where = row["seq"] if row["lane_seq"] is None else row["lane_seq"]
                    verifier.fail(lane, where, BreakReason.UNREADABLE, str(e))
                    break
                if not verifier.feed(entry):
                    break
            if verifier.is_broken:
                break
    return verifier.result()


async def positions(conn: Connection, *, batch: int = 1000) -> AsyncGenerator[tuple[int, int, str]]:
    """Every entry's ``(lane, lane_seq, hash)``, lane by lane, each lane in order (what anchors
    are compared with); run it inside a transaction."""
    queries = (
        "SELECT 0 AS lane, seq AS lane_seq, hash FROM audit_log WHERE lane IS NULL ORDER BY seq",
        "SELECT lane, lane_seq, hash FROM audit_log WHERE lane IS NOT NULL ORDER BY lane, lane_seq",
    )
    for query in queries:
        async for row in conn.cursor(query, prefetch=batch):
            yield int(row["lane"]), int(row["lane_seq"]), str(row["hash"])


async def entries(
    conn: Connection,
    *,
    subject: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    after_seq: int = 0,
    limit: int = 100,
) -> list[AuditEntry]:
    """Entries in ``seq`` order after ``after_seq``, optionally filtered; at most ``limit``.

    For paging through old history only: ``seq`` is not commit order across lanes, so an entry
    that commits after a read with a lower seq than one already read is never returned by a
    later ``after_seq``. Tail the log with :func:`entries_after` and a cursor."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM audit_log"
        " WHERE seq > $1 AND ($2::text IS NULL OR subject = $2)"
        " AND ($3::text IS NULL OR action = $3) AND ($4::text IS NULL OR actor = $4)"
        " ORDER BY seq LIMIT $5",
        after_seq,
        subject,
        action,
        actor,
        max(0, min(limit, 10_000)),
    )
    return [_entry(r) for r in rows]


_AFTER_CURSOR = (
    "WITH pos AS (SELECT * FROM unnest($1::int[], $2::bigint[]) AS c(lane, pos)),"
    " found AS ("
    f" (SELECT {_COLUMNS} FROM audit_log"
    "   WHERE lane IS NULL AND seq > (SELECT pos FROM pos WHERE lane = 0) AND {filters}"
    "   ORDER BY seq LIMIT $6)"
    " UNION ALL"
    " (SELECT e.* FROM pos CROSS JOIN LATERAL ("
    f"   SELECT {_COLUMNS} FROM audit_log"
    "    WHERE lane = pos.lane AND lane_seq > pos.pos AND {filters}"
    "    ORDER BY lane_seq LIMIT $6) AS e))"
    " SELECT * FROM found ORDER BY seq LIMIT $6"
).replace(
    "{filters}",
    "($3::text IS NULL OR subject = $3) AND ($4::text IS NULL OR action = $4)"
    " AND ($5::text IS NULL OR actor = $5)",
)
"""A page after a cursor (``kernel.audit.cursor.page``) in the lanes ``$1`` from the positions
``$2``: each lane's first ``limit`` entries after its position (lane 0 also the entries before
lanes, whose position is their seq), one index range per lane, and the first ``limit`` of them
all by seq. By the cursor's F1 (within a lane seq rises with the position) this is the first
``limit`` by seq of every entry after the cursor in those lanes."""


async def entries_after(
    conn: Connection,
    cursor: Cursor,
    *,
    subject: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    limit: int = 100,
) -> tuple[list[AuditEntry], Cursor]:
    """The entries after ``cursor`` in ``seq`` order, optionally filtered, at most ``limit``,
    and the cursor after them: tailing page by page returns every entry the caller may see
    exactly once, whatever order the lanes commit in (the proof is in
    :mod:`kernel.audit.cursor`).

    The lanes' heads are read first (``audit_heads()``, every organisation's, one snapshot),
    then the page, in a later snapshot, from only the lanes whose head was past the cursor: a
    lane that gains its first new entries in between is read by the next page (its cursor
    position does not move), so nothing is skipped, and an idle tail costs one look at the
    heads. JIT compilation is off for the transaction: the page touches at most ``limit`` rows
    per lane, and the planner's estimate for a large ``limit`` would otherwise compile it
    (seconds on a loaded machine, for milliseconds of work)."""
    limit = max(0, min(limit, 10_000))
    async with _in_transaction(conn):
        await conn.execute("SET LOCAL jit = off")
        heads = {
            int(r["lane"]): int(r["lane_seq"])
            for r in await conn.fetch("SELECT lane, lane_seq FROM audit_heads()")
        }
        news = [(lane, cursor.position(lane)) for lane, head in sorted(heads.items())]
        news = [(lane, at) for lane, at in news if heads[lane] > at]
        rows = (
            await conn.fetch(
                _AFTER_CURSOR,
                [lane for lane, _ in news],
                [at for _, at in news],
                subject,
                action,
                actor,
                limit,
            )
            if news and limit
            else []
        )
    found = [_entry(r) for r in rows]
    return found, advance(cursor, found, limit=limit, heads=heads)
