"""The rows of a brukare's log extract (:mod:`supervision.extract`), read in plain SQL.

The domain tables are the source, not the audit log: ``signal_sessions`` (every view, extra look,
probe and call of the brukare's devices, with the check each served from ``round_checks``), the
brukare's own consents and their withdrawals (a cohabitant's consent is the cohabitant's data and
stays out), pauses, device bindings and suspensions, and the display names of the staff named.
It reads in whatever scope its connection has: in the service, the caller's organisations (a
brukare of another organisation is not found); from the command line, the system's.

:func:`make` reads, builds and appends the audit entry (:data:`extract.ACTION`) in one
transaction, so an extract that was made is always logged and one that failed is not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import TYPE_CHECKING, Any, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from kernel.audit import store as audit_store
from supervision import extract as ex

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = (
        "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
    )


@dataclass(frozen=True, slots=True)
class Recipient:
    recipient_id: str
    display_name: str
    team_id: str | None
    zone: tzinfo


SESSIONS_SQL = """
SELECT s.session_id, s.purpose, s.staff_id, s.device_id, s.started_at, s.ended_at, s.video_s,
       s.check_id, c.agreed_at AS check_agreed_at, s.look, s.look_reason, s.look_note
  FROM signal_sessions s LEFT JOIN round_checks c ON c.check_id = s.check_id
 WHERE (s.recipient_id = $1 OR c.recipient_id = $1)
   AND s.started_at >= $2 AND s.started_at < $3
 ORDER BY s.started_at, s.session_id
"""

CONSENTS_SQL = """
SELECT c.consent_id, c.purpose, c.version, c.basis, c.given_at, c.valid_from, c.valid_until,
       c.recorded_by, w.withdrawn_at, w.withdrawn_by, w.reason
  FROM consents c LEFT JOIN consent_withdrawals w USING (consent_id)
 WHERE c.recipient_id = $1 AND c.cohabitant_id IS NULL
   AND ((c.given_at >= $2 AND c.given_at < $3) OR (w.withdrawn_at >= $2 AND w.withdrawn_at < $3))
"""

PAUSES_SQL = """
SELECT pause_id, starts_at, ends_at, source, reason, note, created_by, ended_by FROM pauses
 WHERE recipient_id = $1
   AND ((starts_at >= $2 AND starts_at < $3) OR (ends_at >= $2 AND ends_at < $3))
"""

BINDINGS_SQL = """
SELECT binding_id, device_id, bound_at, bound_by, unbound_at, unbound_by FROM device_bindings
 WHERE recipient_id = $1
   AND ((bound_at >= $2 AND bound_at < $3) OR (unbound_at >= $2 AND unbound_at < $3))
"""

SUSPENSIONS_SQL = """
SELECT suspension_id, device_id, event_type, started_at, event_count, lifted_at, lifted_by
  FROM suspensions
 WHERE recipient_id = $1
   AND ((started_at >= $2 AND started_at < $3) OR (lifted_at >= $2 AND lifted_at < $3))
"""


def _zone(name: str | None) -> tzinfo:
    try:
        return ZoneInfo(name or "Europe/Stockholm")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Europe/Stockholm")


async def recipient(conn: Connection, recipient_id: str) -> Recipient | None:
    """The brukare as this connection's scope sees them (``None``: absent or not visible)."""
    row = await conn.fetchrow(
        "SELECT recipient_id, display_name, team_id, time_zone FROM care_recipients"
        " WHERE recipient_id = $1",
        recipient_id,
    )
    if row is None:
        return None
    return Recipient(
        row["recipient_id"], row["display_name"], row["team_id"], _zone(row["time_zone"])
    )


async def facts(conn: Connection, r: Recipient, p: ex.Period) -> ex.Facts:
    """Every row of the brukare's extract for period ``p``, and the names of the staff named."""
    args = (r.recipient_id, p.start, p.end)
    sessions = [
        ex.SessionRow(
            session_id=s["session_id"],
            purpose=s["purpose"],
            staff_id=s["staff_id"],
            device_id=s["device_id"],
            started_at=s["started_at"],
            ended_at=s["ended_at"],
            video_s=s["video_s"],
            check_id=s["check_id"],
            check_agreed_at=s["check_agreed_at"],
            look=s["look"],
            reason=s["look_reason"],
            note=s["look_note"],
        )
        for s in await conn.fetch(SESSIONS_SQL, *args)
    ]
    consents = [
        ex.ConsentRow(
            consent_id=c["consent_id"],
            purpose=c["purpose"],
            version=c["version"],
            basis=c["basis"],
            given_at=c["given_at"],
            valid_from=c["valid_from"],
            valid_until=c["valid_until"],
            recorded_by=c["recorded_by"],
            withdrawn_at=c["withdrawn_at"],
            withdrawn_by=c["withdrawn_by"],
            withdrawal_reason=c["reason"],
        )
        for c in await conn.fetch(CONSENTS_SQL, *args)
    ]
    pauses = [ex.PauseRow(**dict(x)) for x in await conn.fetch(PAUSES_SQL, *args)]
    bindings = [ex.BindingRow(**dict(x)) for x in await conn.fetch(BINDINGS_SQL, *args)]
    suspensions = [ex.SuspensionRow(**dict(x)) for x in await conn.fetch(SUSPENSIONS_SQL, *args)]
    named = {s.staff_id for s in sessions}
    named |= {c.recorded_by for c in consents} | {c.withdrawn_by or "" for c in consents}
    named |= {x.created_by for x in pauses} | {x.ended_by or "" for x in pauses}
    named |= {b.bound_by for b in bindings} | {b.unbound_by or "" for b in bindings}
    named |= {s.lifted_by or "" for s in suspensions}
    names = {
        n["staff_id"]: n["display_name"]
        for n in await conn.fetch(
            "SELECT staff_id, display_name FROM staff"
            " WHERE staff_id = ANY($1::text[]) AND display_name IS NOT NULL",
            sorted(named - {""}),
        )
    }
    return ex.Facts(
        recipient_id=r.recipient_id,
        display_name=r.display_name,
        sessions=sessions,
        consents=consents,
        pauses=pauses,
        bindings=bindings,
        suspensions=suspensions,
        names=names,
    )


async def make(
    conn: Connection,
    r: Recipient,
    first: date | None,
    last: date | None,
    *,
    actor: str,
    fmt: str,
    lang: str,
    now: datetime,
    more: Mapping[str, Any],
) -> ex.Extract:
    """Read and build the extract of ``r`` and log it (:data:`extract.ACTION`) in one
    transaction. ``more`` goes into the audit entry's data (the route, ``via``, a reason)."""
    p = ex.period(first, last, today=now.astimezone(r.zone).date(), zone=r.zone)
    async with conn.transaction():
        built = ex.build(await facts(conn, r, p), p, generated_at=now)
        await audit_store.append(
            conn,
            actor=actor,
            action=ex.ACTION,
            subject=r.recipient_id,
            data={
                **more,
                "from": p.first.isoformat(),
                "to": p.last.isoformat(),
                "format": fmt,
                "lang": lang,
                "looks": built.totals.looks,
                "entries": len(built.entries),
            },
            at=now,
        )
    return built
