"""Session rows in PostgreSQL (migration 0005) with their audit entries in the same transaction.

Audit actions are ``{purpose}.started`` (``view.extra`` for an extra look), ``{purpose}.denied``,
``{purpose}.extended``, ``{purpose}.answered`` and ``{purpose}.ended`` (purpose: view, call,
probe); the actor is the staff id (``system`` for probes and for sessions closed by the sweep),
the subject the brukare when the gate named one, else the device. ``data`` never holds SDP or
free text: an extra look's note stays in its row (``look_note``; ``view.extra`` says
``has_note``), and is never logged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

import asyncpg

from devices.envelope import Purpose
from identity import store as staff_store
from services.signalling.decide import CheckUse


class AuditAppend(Protocol):
    """``kernel.audit.store.append`` (``conn`` is a connection in a transaction)."""

    def __call__(
        self,
        conn: Any,
        *,
        actor: str,
        action: str,
        subject: str | None,
        data: Mapping[str, Any],
        at: datetime,
    ) -> Awaitable[object]: ...


class SessionExists(LookupError):
    """A session with this id was opened before (ids are never reused)."""


class StatsRecorded(StrEnum):
    """What became of a device's ``stats`` (:func:`record_stats`); all but ``recorded`` are the
    stable codes of the ``error`` the device gets back (nothing changed)."""

    RECORDED = "recorded"
    UNKNOWN_SESSION = "unknown_session"  # no such session (or pruned)
    WRONG_DEVICE = "wrong_device"  # the session is another device's
    DUPLICATE = "duplicate_stats"  # the session's stats were recorded already


@dataclass(frozen=True, slots=True)
class SessionRow:
    session_id: str
    device_id: str
    purpose: Purpose
    staff_id: str
    recipient_id: str | None
    instance_id: str
    state: str
    started_at: datetime
    deadline: datetime
    extensions: int = 0
    ended_at: datetime | None = None
    end_reason: str | None = None
    # What a view is owed to (migration 0009): a check (``look='check'``, ``check_id``) or an
    # extra look (``look='extra'``, a reason code and a free-text note: never logged, no repr).
    check_id: str | None = None
    look: str | None = None
    look_reason: str | None = None
    look_note: str | None = field(default=None, repr=False)

    @property
    def is_open(self) -> bool:
        return self.state != "closed"

    @property
    def subject(self) -> str:
        return self.recipient_id or self.device_id


_COLUMNS = (
    "session_id, device_id, purpose, staff_id, recipient_id, instance_id, state,"
    " started_at, deadline, extensions, ended_at, end_reason, check_id, look, look_reason,"
    " look_note"
)


def _row(r: asyncpg.Record) -> SessionRow:
    return SessionRow(
        session_id=r["session_id"],
        device_id=r["device_id"],
        purpose=Purpose(r["purpose"]),
        staff_id=r["staff_id"],
        recipient_id=r["recipient_id"],
        instance_id=r["instance_id"],
        state=r["state"],
        started_at=r["started_at"],
        deadline=r["deadline"],
        extensions=r["extensions"],
        ended_at=r["ended_at"],
        end_reason=r["end_reason"],
        check_id=r["check_id"],
        look=r["look"],
        look_reason=r["look_reason"],
        look_note=r["look_note"],
    )


async def open_session(
    pool: asyncpg.Pool, audit: AuditAppend, row: SessionRow, data: Mapping[str, Any]
) -> bool:
    """Insert an open session and audit its start (``{purpose}.started``; an extra look is its
    own kind, ``view.extra``); ``False`` if the device has one open already.

    Raises :class:`SessionExists` if the id was used before.
    """
    async with pool.acquire() as conn, conn.transaction():
        try:
            await conn.execute(
                "INSERT INTO signal_sessions (session_id, device_id, purpose, staff_id,"
                " recipient_id, instance_id, state, started_at, deadline, check_id, look,"
                " look_reason, look_note)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                row.session_id,
                row.device_id,
                row.purpose.value,
                row.staff_id,
                row.recipient_id,
                row.instance_id,
                row.state,
                row.started_at,
                row.deadline,
                row.check_id,
                row.look,
                row.look_reason,
                row.look_note,
            )
        except asyncpg.UniqueViolationError as e:
            if e.constraint_name == "signal_sessions_pkey":
                raise SessionExists(row.session_id) from e
            return False
        await audit(
            conn,
            actor=row.staff_id,
            action=started_action(row),
            subject=row.subject,
            data=data,
            at=row.started_at,
        )
    return True


def started_action(row: SessionRow) -> str:
    """The audit action of a session's start: ``view.extra`` for an extra look (its own kind),
    else ``{purpose}.started``."""
    return "view.extra" if row.look == "extra" else f"{row.purpose.value}.started"


async def audit_denied(
    pool: asyncpg.Pool,
    audit: AuditAppend,
    *,
    actor: str,
    purpose: Purpose,
    subject: str,
    data: Mapping[str, Any],
    at: datetime,
) -> None:
    async with pool.acquire() as conn:
        await audit(
            conn, actor=actor, action=f"{purpose.value}.denied", subject=subject, data=data, at=at
        )


async def get(pool: asyncpg.Pool, session_id: str) -> SessionRow | None:
    r = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM signal_sessions WHERE session_id = $1", session_id
    )
    return _row(r) if r else None


async def mark_connected(
    pool: asyncpg.Pool,
    audit: AuditAppend | None,
    row: SessionRow,
    *,
    at: datetime,
    deadline: datetime | None = None,
) -> None:
    """The device answered (a view) or the brukare accepted (a call, audited)."""
    async with pool.acquire() as conn, conn.transaction():
        done = await conn.fetchval(
            "UPDATE signal_sessions SET state = 'connected', answered_at = $2,"
            " deadline = coalesce($3, deadline)"
            " WHERE session_id = $1 AND state IN ('granted', 'ringing') RETURNING 1",
            row.session_id,
            at,
            deadline,
        )
        if done and audit is not None:
            await audit(
                conn,
                actor=f"device:{row.device_id}",
                action=f"{row.purpose.value}.answered",
                subject=row.subject,
                data={"session_id": row.session_id, "device_id": row.device_id},
                at=at,
            )


async def extend(
    pool: asyncpg.Pool,
    audit: AuditAppend,
    row: SessionRow,
    *,
    actor: str,
    reason: str,
    deadline: datetime,
    at: datetime,
) -> int | None:
    """Move the deadline of an open session and audit why; the new extension count or ``None``."""
    async with pool.acquire() as conn, conn.transaction():
        count: int | None = await conn.fetchval(
            "UPDATE signal_sessions SET deadline = $2, extensions = extensions + 1"
            " WHERE session_id = $1 AND state <> 'closed' RETURNING extensions",
            row.session_id,
            deadline,
        )
        if count is None:
            return None
        await audit(
            conn,
            actor=actor,
            action=f"{row.purpose.value}.extended",
            subject=row.subject,
            data={
                "session_id": row.session_id,
                "device_id": row.device_id,
                "reason": reason,
                "extension": count,
                "deadline": deadline,
            },
            at=at,
        )
    return count


def _ended_data(r: SessionRow, reason: str, at: datetime, detail: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "session_id": r.session_id,
        "device_id": r.device_id,
        "reason": reason,
        "duration_s": round(max(0.0, (at - r.started_at).total_seconds()), 3),
        "extensions": r.extensions,
    }
    if detail:
        data["detail"] = detail
    return data


async def close(
    pool: asyncpg.Pool,
    audit: AuditAppend,
    session_id: str,
    *,
    actor: str,
    reason: str,
    at: datetime,
    detail: str | None = None,
    frames_decoded: int | None = None,
) -> SessionRow | None:
    """Close an open session and audit its end (once); the closed row or ``None``.
    ``frames_decoded``: the last count of frames the client reported decoding (``video``)."""
    async with pool.acquire() as conn, conn.transaction():
        r = await conn.fetchrow(
            "UPDATE signal_sessions SET state = 'closed', ended_at = $2, end_reason = $3,"
            " frames_decoded = $4"
            f" WHERE session_id = $1 AND state <> 'closed' RETURNING {_COLUMNS}",
            session_id,
            at,
            reason,
            frames_decoded,
        )
        if r is None:
            return None
        row = _row(r)
        await audit(
            conn,
            actor=actor,
            action=f"{row.purpose.value}.ended",
            subject=row.subject,
            data=_ended_data(row, reason, at, detail),
            at=at,
        )
    return row


async def sweep_overdue(
    pool: asyncpg.Pool,
    audit: AuditAppend,
    *,
    at: datetime,
    grace_s: float,
    instance_id: str | None = None,
    limit: int = 100,
) -> list[SessionRow]:
    """Close sessions past their deadline by ``grace_s`` (their process died), or every open
    session of ``instance_id``; each is audited as ended by ``timeout``."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "UPDATE signal_sessions SET state = 'closed', ended_at = $1, end_reason = 'timeout'"
            " WHERE session_id IN (SELECT session_id FROM signal_sessions WHERE state <> 'closed'"
            "  AND (deadline < $2 OR instance_id = $3) ORDER BY deadline LIMIT $4"
            "  FOR UPDATE SKIP LOCKED)"
            f" RETURNING {_COLUMNS}",
            at,
            at - timedelta(seconds=grace_s),
            instance_id,
            limit,
        )
        closed = [_row(r) for r in rows]
        for row in closed:
            await audit(
                conn,
                actor="system",
                action=f"{row.purpose.value}.ended",
                subject=row.subject,
                data=_ended_data(row, "timeout", at, "owner_lost"),
                at=at,
            )
    return closed


async def record_stats(
    pool: asyncpg.Pool, session_id: str, device_id: str, *, frames: int, video_s: float
) -> StatsRecorded:
    """Store what the device reported it sent in the session (``frames_sent``, ``video_s``):
    once, only from the session's own device, whether the session is open or closed already
    (a device reports when its side ends, usually just after the ``bye``)."""
    done = await pool.fetchval(
        "UPDATE signal_sessions SET frames_sent = $3, video_s = $4"
        " WHERE session_id = $1 AND device_id = $2 AND frames_sent IS NULL RETURNING 1",
        session_id,
        device_id,
        frames,
        video_s,
    )
    if done:
        return StatsRecorded.RECORDED
    owner = await pool.fetchval(
        "SELECT device_id FROM signal_sessions WHERE session_id = $1", session_id
    )
    if owner is None:
        return StatsRecorded.UNKNOWN_SESSION
    return StatsRecorded.DUPLICATE if owner == device_id else StatsRecorded.WRONG_DEVICE


async def prune(pool: asyncpg.Pool, *, before: datetime) -> int:
    """Forget closed probe sessions ended before ``before`` (the audit log keeps the history).

    Views and calls are kept: what they delivered (``video_s``) is what documented a check as
    seen and what the morning report counts, so they stay as long as the round's records.
    """
    result = await pool.execute(
        "DELETE FROM signal_sessions WHERE state = 'closed' AND ended_at < $1"
        " AND purpose = 'probe'",
        before,
    )
    return int(result.split()[-1])


async def check_use(pool: asyncpg.Pool, check_id: str, *, at: datetime) -> CheckUse:
    """What the views of ``check_id`` started before ``at`` spent: seconds (an open one up to
    ``at``) and extensions. The check's view budget, shared by every re-open (hard rule 5)."""
    r = await pool.fetchrow(
        "SELECT coalesce(sum(extract(epoch FROM least(coalesce(ended_at, $2), $2) - started_at)),"
        " 0)::float8 AS used_s, coalesce(sum(extensions), 0)::int AS extensions"
        " FROM signal_sessions WHERE check_id = $1 AND purpose = 'view' AND started_at < $2",
        check_id,
        at,
    )
    assert r is not None  # an aggregate always has one row
    return CheckUse(used_s=max(0.0, float(r["used_s"])), extensions=int(r["extensions"]))


class PgSessionStore:
    """:class:`services.signalling.ports.SessionStore` over PostgreSQL and the audit chain."""

    def __init__(self, pool: asyncpg.Pool, audit: AuditAppend) -> None:
        self.pool = pool
        self.audit = audit

    async def open(self, row: SessionRow, data: Mapping[str, Any]) -> bool:
        return await open_session(self.pool, self.audit, row, data)

    async def denied(
        self,
        *,
        actor: str,
        purpose: Purpose,
        subject: str,
        data: Mapping[str, Any],
        at: datetime,
    ) -> None:
        await audit_denied(
            self.pool, self.audit, actor=actor, purpose=purpose, subject=subject, data=data, at=at
        )

    async def get(self, session_id: str) -> SessionRow | None:
        return await get(self.pool, session_id)

    async def mark_connected(
        self, row: SessionRow, *, at: datetime, deadline: datetime | None, is_audited: bool
    ) -> None:
        await mark_connected(
            self.pool, self.audit if is_audited else None, row, at=at, deadline=deadline
        )

    async def extend(
        self, row: SessionRow, *, actor: str, reason: str, deadline: datetime, at: datetime
    ) -> int | None:
        return await extend(
            self.pool, self.audit, row, actor=actor, reason=reason, deadline=deadline, at=at
        )

    async def close(
        self,
        session_id: str,
        *,
        actor: str,
        reason: str,
        at: datetime,
        detail: str | None,
        frames_decoded: int | None = None,
    ) -> SessionRow | None:
        return await close(
            self.pool,
            self.audit,
            session_id,
            actor=actor,
            reason=reason,
            at=at,
            detail=detail,
            frames_decoded=frames_decoded,
        )

    async def record_stats(
        self, session_id: str, device_id: str, *, frames: int, video_s: float
    ) -> StatsRecorded:
        return await record_stats(self.pool, session_id, device_id, frames=frames, video_s=video_s)

    async def sweep_overdue(
        self, *, at: datetime, grace_s: float, instance_id: str | None = None
    ) -> list[SessionRow]:
        return await sweep_overdue(
            self.pool, self.audit, at=at, grace_s=grace_s, instance_id=instance_id
        )

    async def prune(self, *, before: datetime) -> int:
        return await prune(self.pool, before=before)

    async def check_use(self, check_id: str, *, at: datetime) -> CheckUse:
        return await check_use(self.pool, check_id, at=at)

    async def device_team(self, device_id: str, *, at: datetime) -> str | None:
        """The team of the brukare the device is bound to at ``at`` (``None``: bound to none the
        caller's scope shows)."""
        async with self.pool.acquire() as conn:
            team: str | None = await conn.fetchval(
                "SELECT r.team_id FROM device_bindings b JOIN care_recipients r"
                " USING (recipient_id) WHERE b.device_id = $1 AND b.bound_at <= $2"
                " AND (b.unbound_at IS NULL OR b.unbound_at > $2)"
                " ORDER BY b.bound_at DESC LIMIT 1",
                device_id,
                at,
            )
        return team

    async def device_language(self, device_id: str, *, at: datetime) -> str | None:
        """The care record's language of the brukare the device is bound to at ``at``."""
        try:
            async with self.pool.acquire() as conn:
                language: str | None = await conn.fetchval(
                    "SELECT r.language FROM device_bindings b JOIN care_recipients r"
                    " USING (recipient_id) WHERE b.device_id = $1 AND b.bound_at <= $2"
                    " AND (b.unbound_at IS NULL OR b.unbound_at > $2)"
                    " ORDER BY b.bound_at DESC LIMIT 1",
                    device_id,
                    at,
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return None
        return language

    async def staff_name(self, staff_id: str) -> str | None:
        """The staff member's display name (for the phone's screen; never logged)."""
        try:
            async with self.pool.acquire() as conn:
                return (await staff_store.get_staff(conn, staff_id)).display_name
        except (LookupError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return None
