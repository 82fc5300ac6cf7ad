"""The audit log in PostgreSQL: append inside the caller's transaction, verify by streaming.

``append`` takes a transaction-scoped advisory lock, reads the head of the chain, and inserts the
next entry, so concurrent writers in any number of processes keep one unbroken chain. The lock is
held until the caller's transaction ends: append last, just before commit, to keep it short.
Callers must use READ COMMITTED (PostgreSQL's default); under REPEATABLE READ a writer could read
a stale head, and the primary key on ``seq`` would refuse its insert rather than fork the chain.

The table refuses UPDATE, DELETE and TRUNCATE through triggers (migration 0002).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from kernel.audit import reads
from kernel.audit.chain import (
    GENESIS_HASH,
    AuditEntry,
    BreakReason,
    ChainVerifier,
    VerifyResult,
    next_entry,
)
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
    "VerifyResult",
    "append",
    "append_read",
    "entries",
    "read_log",
    "verify",
]

AUDIT_LOCK_KEY = 0x68635F617564  # "hc_aud"

_COLUMNS = "seq, at, actor, action, subject, data::text AS data, prev_hash, hash"


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
    # Validate before taking the lock, so a bad entry never holds up other writers.
    next_entry(
        prev_seq=0,
        prev_hash=GENESIS_HASH,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        data=data,
    )
    async with _in_transaction(conn):
        await conn.execute("SELECT pg_advisory_xact_lock($1)", AUDIT_LOCK_KEY)
        # audit_head() reads past row-level security: the chain runs through every organisation.
        head = await conn.fetchrow("SELECT seq, hash FROM audit_head()")
        prev_seq, prev_hash = (
            (head["seq"], head["hash"]) if head and head["seq"] is not None else (0, GENESIS_HASH)
        )
        entry = next_entry(
            prev_seq=prev_seq,
            prev_hash=prev_hash,
            at=at,
            actor=actor,
            action=action,
            subject=subject,
            data=data,
        )
        await conn.execute(
            "INSERT INTO audit_log (seq, at, actor, action, subject, data, prev_hash, hash)"
            " VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8)",
            entry.seq,
            entry.at,
            entry.actor,
            entry.action,
            entry.subject,
            json.dumps(entry.data, ensure_ascii=False),
            entry.prev_hash,
            entry.hash,
        )
    return entry


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
    chain's lock together, so two concurrent reads write one entry."""
    async with _in_transaction(conn):
        await conn.execute("SELECT pg_advisory_xact_lock($1)", AUDIT_LOCK_KEY)
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
            return None
        return await append(conn, actor=actor, action=action, subject=subject, data=data, at=at)


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


async def verify(conn: Connection, *, batch: int = 1000) -> VerifyResult:
    """Walk the whole chain in ``seq`` order with a server-side cursor; constant memory."""
    verifier = ChainVerifier()
    async with _in_transaction(conn):
        cursor = conn.cursor(f"SELECT {_COLUMNS} FROM audit_log ORDER BY seq", prefetch=batch)
        async for row in cursor:
            try:
                entry = _entry(row)
            except (ValueError, TypeError) as e:
                verifier.fail(row["seq"], BreakReason.UNREADABLE, str(e))
                break
            if not verifier.feed(entry):
                break
    return verifier.result()


async def entries(
    conn: Connection,
    *,
    subject: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    after_seq: int = 0,
    limit: int = 100,
) -> list[AuditEntry]:
    """Entries in ``seq`` order after ``after_seq``, optionally filtered; at most ``limit``."""
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
