"""The consent store in PostgreSQL (plain SQL over asyncpg), implementing
:class:`consent.ports.ConsentStore`.

Each write runs in one transaction: lock the brukare's row (so versions and overlaps are decided
one writer at a time), validate with :mod:`consent.rules`, write, append the audit entry
(``kernel.audit.store.append``), and ``pg_notify`` the change on :data:`CHANNEL`; PostgreSQL
delivers the notification only if the transaction commits. After the commit the change is also
handed to ``publish`` (the in-process bus), so local subscribers need not wait for the round trip.

The code is split in three: :mod:`consent.pg` (connections, locks, notification, the basis
read), :mod:`consent.binding_store` (binding, behaviour, suspension) and this module.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import replace
from datetime import datetime

import asyncpg

from consent import records, rows, rules
from consent.binding_store import PgBindingStore
from consent.errors import Conflict, InvalidInput, NotFound, raise_first
from consent.model import (
    BehaviourEvent,
    BindingRequest,
    CarePlan,
    CareRecipient,
    ChangeKind,
    Cohabitant,
    Consent,
    Pause,
    RecipientBasis,
    Suspension,
)
from consent.pg import BASIS_SQL, CHANNEL, basis_of, read_bases
from consent.ports import RegisterRow
from consent.register import register_rows
from kernel.audit import store as audit_store

TRANSITIONS_SQL = """
SELECT DISTINCT recipient_id, at FROM (
  SELECT recipient_id, starts_at AS at FROM pauses
  UNION ALL SELECT recipient_id, valid_until FROM care_plans
  UNION ALL SELECT recipient_id, ended_at FROM care_plans
  UNION ALL SELECT recipient_id, valid_from FROM consents
  UNION ALL SELECT recipient_id, valid_until FROM consents
  UNION ALL SELECT c.recipient_id, w.withdrawn_at FROM consent_withdrawals w
    JOIN consents c USING (consent_id)
  UNION ALL SELECT recipient_id, moved_in_at FROM cohabitants
) t WHERE at > $1 AND at <= $2
ORDER BY at, recipient_id
"""
"""Mirrors :func:`consent.rules.transitions` over every brukare."""


class PgConsentStore(PgBindingStore):
    """Implements :class:`consent.ports.ConsentStore`."""

    # --- reads ----------------------------------------------------------------------------
    async def list_recipients(self) -> list[CareRecipient]:
        async with self._conn() as conn:
            found = await conn.fetch("SELECT * FROM care_recipients ORDER BY recipient_id")
        return [rows.recipient(r) for r in found]

    async def basis(self, recipient_id: str) -> RecipientBasis:
        async with self._conn() as conn:
            row = await conn.fetchrow(BASIS_SQL + " WHERE r.recipient_id = $1", recipient_id)
        if row is None:
            raise NotFound("care recipient", recipient_id, "recipient_id")
        return basis_of(row)

    async def basis_for_device(self, device_id: str, at: datetime) -> RecipientBasis | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                BASIS_SQL + " WHERE r.recipient_id = (SELECT recipient_id FROM device_bindings"
                " WHERE device_id = $1 AND bound_at <= $2 ORDER BY bound_at DESC LIMIT 1)",
                device_id,
                at,
            )
        return None if row is None else basis_of(row)

    async def bases(
        self, recipient_ids: Collection[str] | None = None
    ) -> dict[str, RecipientBasis]:
        ids = None if recipient_ids is None else list(recipient_ids)
        async with self._conn() as conn:
            found = await read_bases(conn, ids)
        return {b.recipient_id: b for b in found}

    async def transitions(self, *, after: datetime, until: datetime) -> list[tuple[str, datetime]]:
        async with self._conn() as conn:
            found = await conn.fetch(TRANSITIONS_SQL, after, until)
        return [(r["recipient_id"], r["at"]) for r in found]

    async def binding_requests(self, *, device_id: str | None = None) -> list[BindingRequest]:
        async with self._conn() as conn:
            found = await conn.fetch(
                "SELECT * FROM binding_requests WHERE $1::text IS NULL"
                " OR device_id = $1 ORDER BY requested_at, request_id",
                device_id,
            )
        return [rows.request(r) for r in found]

    async def register(self, *, actor: str, at: datetime) -> list[RegisterRow]:
        result = register_rows(list((await self.bases()).values()), at=at)
        async with self._tx() as conn:
            await audit_store.append(
                conn,
                actor=actor,
                action="register.exported",
                subject=None,
                data={"rows": len(result)},
                at=at,
            )
        return result

    # --- brukare and cohabitants ----------------------------------------------------------
    async def add_recipient(
        self, recipient: CareRecipient, *, actor: str, at: datetime
    ) -> CareRecipient:
        raise_first(rules.validate_recipient(recipient))
        r = recipient
        async with self._tx() as conn:
            done = await conn.execute(
                "INSERT INTO care_recipients (recipient_id, display_name, home, time_zone,"
                " language, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " ON CONFLICT (recipient_id) DO NOTHING",
                r.recipient_id,
                r.display_name,
                r.home,
                r.time_zone,
                r.language,
                at,
                actor,
            )
            if done.endswith(" 0"):
                raise Conflict("duplicate", "that recipient_id exists", "recipient_id")
            await audit_store.append(
                conn,
                actor=actor,
                action="recipient.created",
                subject=r.recipient_id,
                data={"time_zone": r.time_zone, "language": r.language},
                at=at,
            )
        return CareRecipient(
            recipient_id=r.recipient_id,
            display_name=r.display_name,
            home=r.home,
            time_zone=r.time_zone,
            language=r.language,
            created_at=at,
        )

    async def add_cohabitant(
        self, cohabitant: Cohabitant, *, actor: str, at: datetime
    ) -> Cohabitant:
        c = cohabitant
        async with self._tx() as conn:
            await self._lock_recipient(conn, c.recipient_id)
            raise_first(rules.validate_cohabitant(c))
            done = await conn.execute(
                "INSERT INTO cohabitants (cohabitant_id, recipient_id, display_name, moved_in_at,"
                " moved_out_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                c.cohabitant_id,
                c.recipient_id,
                c.display_name,
                c.moved_in_at,
                c.moved_out_at,
            )
            if done.endswith(" 0"):
                raise Conflict("duplicate", "that cohabitant_id exists", "cohabitant_id")
            await audit_store.append(
                conn,
                actor=actor,
                action="cohabitant.added",
                subject=c.recipient_id,
                data={"cohabitant_id": c.cohabitant_id, "moved_in_at": c.moved_in_at},
                at=at,
            )
            change = await self._notify(conn, ChangeKind.COHABITANT_ADDED, c.recipient_id, at)
        self._after_commit(change)
        return c

    async def end_cohabitant(
        self, cohabitant_id: str, *, moved_out_at: datetime, actor: str, at: datetime
    ) -> Cohabitant:
        async with self._tx() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM cohabitants WHERE cohabitant_id = $1", cohabitant_id
            )
            if row is None:
                raise NotFound("cohabitant", cohabitant_id, "cohabitant_id")
            old = rows.cohabitant(row)
            await self._lock_recipient(conn, old.recipient_id)
            if old.moved_out_at is not None:
                raise Conflict("already_moved_out", "the cohabitant has already moved out")
            new = Cohabitant(
                cohabitant_id=old.cohabitant_id,
                recipient_id=old.recipient_id,
                display_name=old.display_name,
                moved_in_at=old.moved_in_at,
                moved_out_at=moved_out_at,
            )
            raise_first(rules.validate_cohabitant(new))
            await conn.execute(
                "UPDATE cohabitants SET moved_out_at = $2 WHERE cohabitant_id = $1",
                cohabitant_id,
                moved_out_at,
            )
            await audit_store.append(
                conn,
                actor=actor,
                action="cohabitant.moved_out",
                subject=old.recipient_id,
                data={"cohabitant_id": cohabitant_id, "moved_out_at": moved_out_at},
                at=at,
            )
            change = await self._notify(conn, ChangeKind.COHABITANT_REMOVED, old.recipient_id, at)
        self._after_commit(change)
        return new

    # --- care plans -----------------------------------------------------------------------
    async def add_plan(self, plan: CarePlan, *, actor: str, at: datetime) -> CarePlan:
        async with self._tx() as conn:
            r = await self._lock_recipient(conn, plan.recipient_id)
            raise_first(rules.validate_plan(plan, zone_name=r.time_zone))
            existing = [
                rows.plan(x)
                for x in await conn.fetch(
                    "SELECT * FROM care_plans WHERE recipient_id = $1", plan.recipient_id
                )
            ]
            if any(p.plan_id == plan.plan_id for p in existing):
                raise Conflict("duplicate", "that plan_id exists", "plan_id")
            clash = rules.plan_overlap(plan, existing)
            if clash is not None:
                raise Conflict(clash.code, clash.message, clash.field)
            p = CarePlan(
                plan_id=plan.plan_id,
                recipient_id=plan.recipient_id,
                decision_ref=plan.decision_ref,
                valid_from=plan.valid_from,
                valid_until=plan.valid_until,
                checks=rules.sorted_checks(plan.checks),
                view_cap_s=plan.view_cap_s,
                motion_may_clear=plan.motion_may_clear,
                retry_interval_s=plan.retry_interval_s,
                escalation=plan.escalation,
                instruction=plan.instruction,
                paused_checks=plan.paused_checks,
                created_at=at,
                created_by=actor,
            )
            await conn.execute(
                "INSERT INTO care_plans (plan_id, recipient_id, decision_ref, valid_from,"
                " valid_until, checks, view_cap_s, motion_may_clear, retry_interval_s,"
                " escalation, instruction, paused_checks, created_at, created_by)"
                " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12, $13, $14)",
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
                at,
                actor,
            )
            await audit_store.append(
                conn,
                actor=actor,
                action="care_plan.created",
                subject=p.recipient_id,
                data=records.plan_audit(p),
                at=at,
            )
            change = await self._notify(conn, ChangeKind.PLAN_ADDED, p.recipient_id, at)
        self._after_commit(change)
        return p

    async def end_plan(
        self, plan_id: str, *, ended_at: datetime, actor: str, at: datetime
    ) -> CarePlan:
        async with self._tx() as conn:
            row = await conn.fetchrow("SELECT * FROM care_plans WHERE plan_id = $1", plan_id)
            if row is None:
                raise NotFound("care plan", plan_id, "plan_id")
            await self._lock_recipient(conn, row["recipient_id"])
            old = rows.plan(row)
            if old.ended_at is not None:
                raise Conflict("already_ended", "the care plan has already been ended")
            ended = max(ended_at, old.valid_from)
            await conn.execute(
                "UPDATE care_plans SET ended_at = $2, ended_by = $3 WHERE plan_id = $1",
                plan_id,
                ended,
                actor,
            )
            await audit_store.append(
                conn,
                actor=actor,
                action="care_plan.ended",
                subject=old.recipient_id,
                data={"plan_id": plan_id, "ended_at": ended},
                at=at,
            )
            change = await self._notify(conn, ChangeKind.PLAN_ENDED, old.recipient_id, at)
        self._after_commit(change)
        return replace(old, ended_at=ended, ended_by=actor)

    # --- consents -------------------------------------------------------------------------
    async def record_consent(self, consent: Consent, *, actor: str, at: datetime) -> Consent:
        c = consent
        async with self._tx() as conn:
            await self._lock_recipient(conn, c.recipient_id)
            if c.cohabitant_id is not None:
                owner = await conn.fetchval(
                    "SELECT recipient_id FROM cohabitants WHERE cohabitant_id = $1", c.cohabitant_id
                )
                if owner != c.recipient_id:
                    raise InvalidInput(
                        "person",
                        "unknown_person",
                        "person is neither the recipient nor a registered cohabitant",
                    )
            raise_first(rules.validate_consent(c, now=at))
            version = await conn.fetchval(
                "SELECT coalesce(max(version), 0) + 1 FROM consents WHERE recipient_id = $1"
                " AND cohabitant_id IS NOT DISTINCT FROM $2 AND purpose = $3",
                c.recipient_id,
                c.cohabitant_id,
                c.purpose.value,
            )
            done = await conn.execute(
                "INSERT INTO consents (consent_id, recipient_id, cohabitant_id, purpose, version,"
                " basis, basis_ref, informed_by, informed_how, given_at, valid_from, valid_until,"
                " windows, document_ref, recorded_at, recorded_by) VALUES ($1, $2, $3, $4, $5,"
                " $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14, $15, $16)"
                " ON CONFLICT (consent_id) DO NOTHING",
                c.consent_id,
                c.recipient_id,
                c.cohabitant_id,
                c.purpose.value,
                version,
                c.basis.value if c.basis else None,
                c.basis_ref,
                c.informed_by,
                c.informed_how,
                c.given_at,
                c.valid_from,
                c.valid_until,
                json.dumps(records.windows_json(c.windows)),
                c.document_ref,
                at,
                actor,
            )
            if done.endswith(" 0"):
                raise Conflict("duplicate", "that consent_id exists", "consent_id")
            stored = Consent(
                consent_id=c.consent_id,
                recipient_id=c.recipient_id,
                cohabitant_id=c.cohabitant_id,
                purpose=c.purpose,
                version=version,
                basis=c.basis,
                given_at=c.given_at,
                valid_from=c.valid_from,
                valid_until=c.valid_until,
                basis_ref=c.basis_ref,
                informed_by=c.informed_by,
                informed_how=c.informed_how,
                windows=c.windows,
                document_ref=c.document_ref,
                recorded_at=at,
                recorded_by=actor,
            )
            await audit_store.append(
                conn,
                actor=actor,
                action="consent.recorded",
                subject=c.recipient_id,
                data=records.consent_audit(stored),
                at=at,
            )
            change = await self._notify(conn, ChangeKind.CONSENT_RECORDED, c.recipient_id, at)
        self._after_commit(change)
        return stored

    async def withdraw_consent(
        self,
        consent_id: str,
        *,
        withdrawn_at: datetime,
        reason: str | None,
        actor: str,
        at: datetime,
    ) -> Consent:
        async with self._tx() as conn:
            rid = await conn.fetchval(
                "SELECT recipient_id FROM consents WHERE consent_id = $1", consent_id
            )
            if rid is None:
                raise NotFound("consent", consent_id, "consent_id")
            await self._lock_recipient(conn, rid)
            series = [
                rows.consent(r)
                for r in await conn.fetch(
                    "SELECT c.*, w.withdrawn_at, w.withdrawn_by, w.reason AS withdrawal_reason"
                    " FROM consents c JOIN consents t ON t.consent_id = $1"
                    "  AND c.recipient_id = t.recipient_id AND c.purpose = t.purpose"
                    "  AND c.cohabitant_id IS NOT DISTINCT FROM t.cohabitant_id"
                    " LEFT JOIN consent_withdrawals w ON w.consent_id = c.consent_id",
                    consent_id,
                )
            ]
            target = next(c for c in series if c.consent_id == consent_id)
            if target.withdrawn_at is not None:
                raise Conflict("already_withdrawn", "this consent has already been withdrawn")
            problem = rules.validate_withdrawal(target, withdrawn_at=withdrawn_at, now=at)
            if problem is not None:
                raise InvalidInput.of(problem)
            open_ = [c for c in series if c.withdrawn_at is None]
            await conn.executemany(
                "INSERT INTO consent_withdrawals (consent_id, withdrawn_at, withdrawn_by, reason,"
                " recorded_at) VALUES ($1, $2, $3, $4, $5)",
                [(c.consent_id, withdrawn_at, actor, reason, at) for c in open_],
            )
            await audit_store.append(
                conn,
                actor=actor,
                action="consent.withdrawn",
                subject=rid,
                data={
                    "consent_id": consent_id,
                    "person": target.person,
                    "purpose": target.purpose.value,
                    "withdrawn_at": withdrawn_at,
                    "versions": sorted(c.version for c in open_),
                    "has_reason": bool(reason),
                },
                at=at,
            )
            change = await self._notify(conn, ChangeKind.CONSENT_WITHDRAWN, rid, at)
        self._after_commit(change)
        return replace(
            target, withdrawn_at=withdrawn_at, withdrawn_by=actor, withdrawal_reason=reason
        )

    # --- pauses ---------------------------------------------------------------------------
    async def add_pause(self, pause: Pause, *, actor: str, at: datetime) -> Pause:
        p = pause
        async with self._tx() as conn:
            await self._lock_recipient(conn, p.recipient_id)
            raise_first(rules.validate_pause(p))
            done = await conn.execute(
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
                at,
                actor,
            )
            if done.endswith(" 0"):
                raise Conflict("duplicate", "that pause_id exists", "pause_id")
            stored = Pause(
                pause_id=p.pause_id,
                recipient_id=p.recipient_id,
                starts_at=p.starts_at,
                ends_at=p.ends_at,
                source=p.source,
                reason=p.reason,
                note=p.note,
                created_at=at,
                created_by=actor,
            )
            await audit_store.append(
                conn,
                actor=actor,
                action="pause.created",
                subject=p.recipient_id,
                data=records.pause_audit(stored),
                at=at,
            )
            change = await self._notify(conn, ChangeKind.PAUSE_ADDED, p.recipient_id, at)
        self._after_commit(change)
        return stored

    async def end_pause(
        self, pause_id: str, *, ended_at: datetime, actor: str, at: datetime
    ) -> Pause:
        async with self._tx() as conn:
            row = await conn.fetchrow("SELECT * FROM pauses WHERE pause_id = $1", pause_id)
            if row is None:
                raise NotFound("pause", pause_id, "pause_id")
            old = rows.pause(row)
            await self._lock_recipient(conn, old.recipient_id)
            if old.ended_by is not None or (old.ends_at is not None and old.ends_at <= ended_at):
                raise Conflict("pause_over", "the pause is already over")
            ends = max(ended_at, old.starts_at)
            await conn.execute(
                "UPDATE pauses SET ends_at = $2, ended_by = $3 WHERE pause_id = $1",
                pause_id,
                ends,
                actor,
            )
            await audit_store.append(
                conn,
                actor=actor,
                action="pause.ended",
                subject=old.recipient_id,
                data={"pause_id": pause_id, "ends_at": ends},
                at=at,
            )
            change = await self._notify(conn, ChangeKind.PAUSE_ENDED, old.recipient_id, at)
        self._after_commit(change)
        return replace(old, ends_at=ends, ended_by=actor)


async def on_device_event(
    pool: asyncpg.Pool, *, device_id: str, event_type: str, at: datetime, threshold: int = 1
) -> Suspension | None:
    """Hard rule 8, for the device MQTT handler: count a ``privacy_switch``, ``tamper`` or
    ``unplugged`` event of a bound device; at ``threshold`` events since the last re-verification,
    suspend camera checks of its brukare (audited, change published). Other event types and
    unbound devices are ignored (``None``)."""
    try:
        kind = BehaviourEvent(event_type)
    except ValueError:
        return None
    return await PgConsentStore(pool).record_device_event(
        device_id=device_id, event_type=kind, at=at, threshold=threshold
    )


__all__ = ["CHANNEL", "PgConsentStore", "on_device_event"]
