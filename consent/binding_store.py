"""The PostgreSQL consent store's rows of devices, binding requests, bindings, behaviour events
and suspensions (plain SQL over asyncpg), inside one write transaction: :class:`PgBindingRows`
implements :class:`consent.ports.BindingRows`. It checks nothing; :mod:`consent.binding_writes`
decides."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from consent import records, rows
from consent.model import (
    BehaviourEvent,
    Binding,
    BindingRequest,
    ButtonPress,
    Reverification,
    Suspension,
)

if TYPE_CHECKING:
    from consent.pg import Connection


class PgBindingRows:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    # --- devices and binding requests -----------------------------------------------------
    async def lock_device(self, device_id: str) -> bool:
        found = await self._conn.fetchval(
            "SELECT 1 FROM devices WHERE device_id = $1 FOR UPDATE", device_id
        )
        return found is not None

    async def device_kind(self, device_id: str) -> str | None:
        kind: str | None = await self._conn.fetchval(
            "SELECT kind FROM devices WHERE device_id = $1", device_id
        )
        return kind

    async def lock_request(self, request_id: str) -> BindingRequest | None:
        device_id = await self._conn.fetchval(
            "SELECT device_id FROM binding_requests WHERE request_id = $1", request_id
        )
        if device_id is None:
            return None
        await self.lock_device(device_id)
        row = await self._conn.fetchrow(
            "SELECT * FROM binding_requests WHERE request_id = $1", request_id
        )
        return None if row is None else rows.request(row)

    async def cancel_open_requests(self, device_id: str, *, at: datetime) -> None:
        await self._conn.execute(
            "UPDATE binding_requests SET cancelled_at = $2 WHERE device_id = $1"
            " AND confirmed_at IS NULL AND cancelled_at IS NULL",
            device_id,
            at,
        )

    async def insert_request(self, request: BindingRequest) -> bool:
        r = request
        status = await self._conn.execute(
            "INSERT INTO binding_requests (request_id, action, device_id, recipient_id,"
            " requested_by, requested_at, expires_at, proof, code_hash, code_expires_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            " ON CONFLICT (request_id) DO NOTHING",
            r.request_id,
            r.action.value,
            r.device_id,
            r.recipient_id,
            r.requested_by,
            r.requested_at,
            r.expires_at,
            r.proof.value,
            r.code_hash,
            r.code_expires_at,
        )
        return not status.endswith(" 0")

    async def count_code_attempt(self, request_id: str, *, void_at: datetime | None) -> int:
        attempts: int = await self._conn.fetchval(
            "UPDATE binding_requests SET code_attempts = code_attempts + 1,"
            " cancelled_at = COALESCE($2, cancelled_at) WHERE request_id = $1"
            " RETURNING code_attempts",
            request_id,
            void_at,
        )
        return attempts

    async def bind_button(self, device_id: str) -> ButtonPress | None:
        at = await self._conn.fetchval(
            "SELECT pressed_at FROM device_bind_buttons WHERE device_id = $1", device_id
        )
        return None if at is None else ButtonPress(device_id, at)

    async def set_bind_button(self, device_id: str, at: datetime) -> bool:
        status = await self._conn.execute(
            "INSERT INTO device_bind_buttons (device_id, pressed_at)"
            " SELECT device_id, $2 FROM devices WHERE device_id = $1"
            " ON CONFLICT (device_id) DO UPDATE SET pressed_at = GREATEST("
            "device_bind_buttons.pressed_at, EXCLUDED.pressed_at)",
            device_id,
            at,
        )
        return not status.endswith(" 0")

    async def confirm_request(self, request_id: str, *, confirmed_by: str, at: datetime) -> None:
        await self._conn.execute(
            "UPDATE binding_requests SET confirmed_by = $2, confirmed_at = $3"
            " WHERE request_id = $1",
            request_id,
            confirmed_by,
            at,
        )

    async def set_quarantined(self, device_id: str, quarantined: bool) -> str | None:
        kind: str | None = await self._conn.fetchval(
            "UPDATE devices SET quarantined = $2 WHERE device_id = $1 RETURNING kind",
            device_id,
            quarantined,
        )
        return kind

    # --- bindings -------------------------------------------------------------------------
    async def active_binding(self, device_id: str) -> Binding | None:
        row = await self._conn.fetchrow(
            "SELECT * FROM device_bindings WHERE device_id = $1 AND unbound_at IS NULL",
            device_id,
        )
        return None if row is None else rows.binding({**dict(row), "device_kind": None})

    async def insert_binding(self, binding: Binding) -> None:
        b = binding
        await self._conn.execute(
            "INSERT INTO device_bindings (binding_id, device_id, recipient_id, bound_at,"
            " requested_by, bound_by) VALUES ($1, $2, $3, $4, $5, $6)",
            b.binding_id,
            b.device_id,
            b.recipient_id,
            b.bound_at,
            b.requested_by,
            b.bound_by,
        )

    async def unbind(self, binding_id: str, *, at: datetime, unbound_by: str) -> None:
        await self._conn.execute(
            "UPDATE device_bindings SET unbound_at = $2, unbound_by = $3 WHERE binding_id = $1",
            binding_id,
            at,
            unbound_by,
        )

    async def recipient_at(self, device_id: str, at: datetime) -> str | None:
        rid: str | None = await self._conn.fetchval(
            "SELECT recipient_id FROM device_bindings WHERE device_id = $1 AND bound_at <= $2"
            " AND (unbound_at IS NULL OR unbound_at > $2)",
            device_id,
            at,
        )
        return rid

    # --- behaviour and suspension ---------------------------------------------------------
    async def add_behaviour_event(
        self, device_id: str, recipient_id: str, event_type: BehaviourEvent, at: datetime
    ) -> None:
        await self._conn.execute(
            "INSERT INTO behaviour_events (device_id, recipient_id, event_type, at)"
            " VALUES ($1, $2, $3, $4)",
            device_id,
            recipient_id,
            event_type.value,
            at,
        )

    async def behaviour_events(
        self, recipient_id: str, *, after: datetime, until: datetime
    ) -> list[tuple[BehaviourEvent, datetime]]:
        found = await self._conn.fetch(
            "SELECT event_type, at FROM behaviour_events WHERE recipient_id = $1"
            " AND at > $2 AND at <= $3 ORDER BY at",
            recipient_id,
            after,
            until,
        )
        return [(BehaviourEvent(r["event_type"]), r["at"]) for r in found]

    async def suspensions_of(self, recipient_id: str) -> list[Suspension]:
        found = await self._conn.fetch(
            "SELECT * FROM suspensions WHERE recipient_id = $1 ORDER BY started_at", recipient_id
        )
        return [rows.suspension(r) for r in found]

    async def insert_suspension(self, suspension: Suspension) -> None:
        s = suspension
        await self._conn.execute(
            "INSERT INTO suspensions (suspension_id, recipient_id, device_id, event_type,"
            " started_at, event_count, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            s.suspension_id,
            s.recipient_id,
            s.device_id,
            s.event_type.value,
            s.started_at,
            s.event_count,
            s.reason.value,
        )

    async def lift(self, lifted: Sequence[Suspension]) -> None:
        await self._conn.executemany(
            "UPDATE suspensions SET lifted_at = $2, lifted_by = $3 WHERE suspension_id = $1",
            [(s.suspension_id, s.lifted_at, s.lifted_by) for s in lifted],
        )

    async def insert_reverification(self, record: Reverification) -> None:
        r = record
        await self._conn.execute(
            "INSERT INTO reverifications (reverification_id, recipient_id, verified_by,"
            " recorded_at, people, outcome, suspension_ids, withdrawn_consent_ids)"
            " VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8)",
            r.reverification_id,
            r.recipient_id,
            r.verified_by,
            r.recorded_at,
            json.dumps([records.person_asked_json(p) for p in r.people]),
            r.outcome.value,
            list(r.suspension_ids),
            list(r.withdrawn_consent_ids),
        )

    async def reverifications_of(self, recipient_id: str) -> list[Reverification]:
        found = await self._conn.fetch(
            "SELECT * FROM reverifications WHERE recipient_id = $1 ORDER BY recorded_at",
            recipient_id,
        )
        return [rows.reverification(r) for r in found]
