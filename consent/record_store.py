"""The PostgreSQL consent store's rows of brukare, cohabitants, care plans, consents and pauses
(plain SQL over asyncpg), inside one write transaction: :class:`PgRecordRows` implements
:class:`consent.ports.RecordRows`. It checks nothing; :mod:`consent.writes` decides."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from consent import records, rows
from consent.model import CarePlan, CareRecipient, Cohabitant, Consent, Pause, Purpose

if TYPE_CHECKING:
    from consent.pg import Connection

_SERIES_SQL = """
SELECT c.*, w.withdrawn_at, w.withdrawn_by, w.reason AS withdrawal_reason
  FROM consents c JOIN consents t ON t.consent_id = $1
   AND c.recipient_id = t.recipient_id AND c.purpose = t.purpose
   AND c.cohabitant_id IS NOT DISTINCT FROM t.cohabitant_id
  LEFT JOIN consent_withdrawals w ON w.consent_id = c.consent_id
 ORDER BY c.version
"""


def _inserted(status: str) -> bool:
    """``INSERT ... ON CONFLICT DO NOTHING`` stored its row."""
    return not status.endswith(" 0")


class PgRecordRows:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    # --- brukare and cohabitants ----------------------------------------------------------
    async def insert_recipient(self, recipient: CareRecipient, *, created_by: str) -> bool:
        r = recipient
        return _inserted(
            await self._conn.execute(
                "INSERT INTO care_recipients (recipient_id, display_name, home, time_zone,"
                " language, created_at, created_by, door_code_ref, team_id)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                " ON CONFLICT (recipient_id) DO NOTHING",
                r.recipient_id,
                r.display_name,
                r.home,
                r.time_zone,
                r.language,
                r.created_at,
                created_by,
                r.door_code_ref,
                r.team_id,
            )
        )

    async def cohabitant(self, cohabitant_id: str) -> Cohabitant | None:
        row = await self._conn.fetchrow(
            "SELECT * FROM cohabitants WHERE cohabitant_id = $1", cohabitant_id
        )
        return None if row is None else rows.cohabitant(row)

    async def insert_cohabitant(self, cohabitant: Cohabitant) -> bool:
        c = cohabitant
        return _inserted(
            await self._conn.execute(
                "INSERT INTO cohabitants (cohabitant_id, recipient_id, display_name, moved_in_at,"
                " moved_out_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                c.cohabitant_id,
                c.recipient_id,
                c.display_name,
                c.moved_in_at,
                c.moved_out_at,
            )
        )

    async def set_moved_out(self, cohabitant_id: str, moved_out_at: datetime) -> None:
        await self._conn.execute(
            "UPDATE cohabitants SET moved_out_at = $2 WHERE cohabitant_id = $1",
            cohabitant_id,
            moved_out_at,
        )

    # --- care plans -----------------------------------------------------------------------
    async def plans_of(self, recipient_id: str) -> list[CarePlan]:
        found = await self._conn.fetch(
            "SELECT * FROM care_plans WHERE recipient_id = $1 ORDER BY valid_from", recipient_id
        )
        return [rows.plan(x) for x in found]

    async def plan(self, plan_id: str) -> CarePlan | None:
        row = await self._conn.fetchrow("SELECT * FROM care_plans WHERE plan_id = $1", plan_id)
        return None if row is None else rows.plan(row)

    async def insert_plan(self, plan: CarePlan) -> bool:
        p = plan
        return _inserted(
            await self._conn.execute(
                "INSERT INTO care_plans (plan_id, recipient_id, decision_ref, valid_from,"
                " valid_until, checks, view_cap_s, motion_may_clear, retry_interval_s,"
                " escalation, instruction, paused_checks, created_at, created_by, call_cap_s,"
                " announce_s, live_countdown, deadlines)"
                " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12, $13, $14,"
                " $15, $16, $17, $18::jsonb)"
                " ON CONFLICT (plan_id) DO NOTHING",
                p.plan_id,
                p.recipient_id,
                p.decision_ref,
                p.valid_from,
                p.valid_until,
                json.dumps(records.checks_json(p.checks)),
                p.view_cap_s,
                p.motion_may_clear,
                p.retry_interval_s,
                [s.value for s in p.escalation],
                p.instruction,
                p.paused_checks.value,
                p.created_at,
                p.created_by,
                p.call_cap_s,
                p.announce_s,
                p.live_countdown,
                json.dumps(records.deadlines_json(p.deadlines)),
            )
        )

    async def end_plan(self, plan_id: str, *, ended_at: datetime, ended_by: str) -> None:
        await self._conn.execute(
            "UPDATE care_plans SET ended_at = $2, ended_by = $3 WHERE plan_id = $1",
            plan_id,
            ended_at,
            ended_by,
        )

    # --- consents -------------------------------------------------------------------------
    async def consent(self, consent_id: str) -> Consent | None:
        row = await self._conn.fetchrow(
            "SELECT c.*, w.withdrawn_at, w.withdrawn_by, w.reason AS withdrawal_reason"
            " FROM consents c LEFT JOIN consent_withdrawals w USING (consent_id)"
            " WHERE c.consent_id = $1",
            consent_id,
        )
        return None if row is None else rows.consent(row)

    async def consent_series(self, consent_id: str) -> list[Consent]:
        return [rows.consent(r) for r in await self._conn.fetch(_SERIES_SQL, consent_id)]

    async def next_version(
        self, recipient_id: str, cohabitant_id: str | None, purpose: Purpose
    ) -> int:
        version: int = await self._conn.fetchval(
            "SELECT coalesce(max(version), 0) + 1 FROM consents WHERE recipient_id = $1"
            " AND cohabitant_id IS NOT DISTINCT FROM $2 AND purpose = $3",
            recipient_id,
            cohabitant_id,
            purpose.value,
        )
        return version

    async def insert_consent(self, consent: Consent) -> bool:
        c = consent
        return _inserted(
            await self._conn.execute(
                "INSERT INTO consents (consent_id, recipient_id, cohabitant_id, purpose, version,"
                " basis, basis_ref, informed_by, informed_how, given_at, valid_from, valid_until,"
                " windows, document_ref, recorded_at, recorded_by) VALUES ($1, $2, $3, $4, $5,"
                " $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14, $15, $16)"
                " ON CONFLICT (consent_id) DO NOTHING",
                c.consent_id,
                c.recipient_id,
                c.cohabitant_id,
                c.purpose.value,
                c.version,
                c.basis.value if c.basis else None,
                c.basis_ref,
                c.informed_by,
                c.informed_how,
                c.given_at,
                c.valid_from,
                c.valid_until,
                json.dumps(records.windows_json(c.windows)),
                c.document_ref,
                c.recorded_at,
                c.recorded_by,
            )
        )

    async def withdraw(
        self,
        consent_ids: Sequence[str],
        *,
        withdrawn_at: datetime,
        withdrawn_by: str,
        reason: str | None,
        recorded_at: datetime,
    ) -> None:
        await self._conn.executemany(
            "INSERT INTO consent_withdrawals (consent_id, withdrawn_at, withdrawn_by, reason,"
            " recorded_at) VALUES ($1, $2, $3, $4, $5)",
            [(cid, withdrawn_at, withdrawn_by, reason, recorded_at) for cid in consent_ids],
        )

    # --- pauses ---------------------------------------------------------------------------
    async def pause(self, pause_id: str) -> Pause | None:
        row = await self._conn.fetchrow("SELECT * FROM pauses WHERE pause_id = $1", pause_id)
        return None if row is None else rows.pause(row)

    async def insert_pause(self, pause: Pause) -> bool:
        p = pause
        return _inserted(
            await self._conn.execute(
                "INSERT INTO pauses (pause_id, recipient_id, starts_at, ends_at, source, reason,"
                " note, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                " ON CONFLICT DO NOTHING",
                p.pause_id,
                p.recipient_id,
                p.starts_at,
                p.ends_at,
                p.source.value,
                p.reason.value,
                p.note,
                p.created_at,
                p.created_by,
            )
        )

    async def end_pause(self, pause_id: str, *, ends_at: datetime, ended_by: str) -> None:
        await self._conn.execute(
            "UPDATE pauses SET ends_at = $2, ended_by = $3 WHERE pause_id = $1",
            pause_id,
            ends_at,
            ended_by,
        )
