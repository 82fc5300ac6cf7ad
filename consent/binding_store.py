"""The PostgreSQL consent store, part two: two-step device binding (which also clears or sets
``devices.quarantined`` in the same transaction), behaviour events and suspension (hard rule 8),
and re-verification."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from consent import rows, rules
from consent.errors import Conflict, InvalidInput, NotFound
from consent.model import (
    BehaviourEvent,
    Binding,
    BindingAction,
    BindingRequest,
    ChangeKind,
    Suspension,
)
from consent.pg import PgCore
from consent.ports import BINDING_REQUEST_TTL, new_id
from kernel.audit import store as audit_store


class PgBindingStore(PgCore):
    # --- device binding ------------------------------------------------------------------
    async def request_binding(
        self,
        *,
        request_id: str,
        action: BindingAction,
        device_id: str,
        recipient_id: str | None,
        actor: str,
        at: datetime,
    ) -> BindingRequest:
        async with self._tx() as conn:
            if (
                await conn.fetchval(
                    "SELECT 1 FROM devices WHERE device_id = $1 FOR UPDATE", device_id
                )
                is None
            ):
                raise NotFound("device", device_id, "device_id")
            active = await conn.fetchrow(
                "SELECT * FROM device_bindings WHERE device_id = $1 AND unbound_at IS NULL",
                device_id,
            )
            if action is BindingAction.BIND:
                if recipient_id is None:
                    raise InvalidInput("recipient_id", "required", "recipient_id is required")
                await self._lock_recipient(conn, recipient_id)
                if active is not None:
                    raise Conflict("device_bound", "the device is bound; unbind it first")
                target = recipient_id
            else:
                if active is None:
                    raise Conflict("device_not_bound", "the device is not bound")
                if recipient_id is not None and recipient_id != active["recipient_id"]:
                    raise Conflict(
                        "recipient_mismatch",
                        "the device is bound to another recipient",
                        "recipient_id",
                    )
                target = active["recipient_id"]
            await conn.execute(
                "UPDATE binding_requests SET cancelled_at = $2 WHERE device_id = $1"
                " AND confirmed_at IS NULL AND cancelled_at IS NULL",
                device_id,
                at,
            )
            req = BindingRequest(
                request_id=request_id,
                action=action,
                device_id=device_id,
                recipient_id=target,
                requested_by=actor,
                requested_at=at,
                expires_at=at + BINDING_REQUEST_TTL,
            )
            await conn.execute(
                "INSERT INTO binding_requests (request_id, action, device_id, recipient_id,"
                " requested_by, requested_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                req.request_id,
                action.value,
                device_id,
                target,
                actor,
                at,
                req.expires_at,
            )
            await audit_store.append(
                conn,
                actor=actor,
                action=f"binding.{action.value}_requested",
                subject=device_id,
                data={"request_id": request_id, "recipient_id": target},
                at=at,
            )
        return req

    async def confirm_binding(
        self, request_id: str, *, recipient_id: str, actor: str, at: datetime
    ) -> Binding:
        async with self._tx() as conn:
            device_id = await conn.fetchval(
                "SELECT device_id FROM binding_requests WHERE request_id = $1", request_id
            )
            await conn.execute("SELECT 1 FROM devices WHERE device_id = $1 FOR UPDATE", device_id)
            row = await conn.fetchrow(
                "SELECT * FROM binding_requests WHERE request_id = $1", request_id
            )
            if row is None:
                raise NotFound("binding request", request_id, "request_id")
            req = rows.request(row)
            if not req.is_open:
                raise Conflict("request_closed", "the request was already confirmed or replaced")
            if at >= req.expires_at:
                raise Conflict("request_expired", "the request has expired; make a new one")
            if recipient_id != req.recipient_id:
                raise Conflict(
                    "recipient_mismatch",
                    "recipient_id does not name the brukare of the request",
                    "recipient_id",
                )
            await self._lock_recipient(conn, req.recipient_id)
            active = await conn.fetchrow(
                "SELECT * FROM device_bindings WHERE device_id = $1 AND unbound_at IS NULL",
                req.device_id,
            )
            if req.action is BindingAction.BIND:
                if active is not None:
                    raise Conflict("device_bound", "the device is bound; unbind it first")
                binding = Binding(
                    binding_id=new_id("bind"),
                    device_id=req.device_id,
                    recipient_id=req.recipient_id,
                    bound_at=at,
                    requested_by=req.requested_by,
                    bound_by=actor,
                )
                await conn.execute(
                    "INSERT INTO device_bindings (binding_id, device_id, recipient_id, bound_at,"
                    " requested_by, bound_by) VALUES ($1, $2, $3, $4, $5, $6)",
                    binding.binding_id,
                    binding.device_id,
                    binding.recipient_id,
                    at,
                    binding.requested_by,
                    actor,
                )
                quarantined, kind = False, ChangeKind.DEVICE_BOUND
            else:
                if active is None or active["recipient_id"] != req.recipient_id:
                    raise Conflict(
                        "device_not_bound", "the device is no longer bound to the brukare"
                    )
                binding = replace(
                    rows.binding({**dict(active), "device_kind": None}),
                    unbound_at=at,
                    unbound_by=actor,
                )
                await conn.execute(
                    "UPDATE device_bindings SET unbound_at = $2, unbound_by = $3"
                    " WHERE binding_id = $1",
                    binding.binding_id,
                    at,
                    actor,
                )
                quarantined, kind = True, ChangeKind.DEVICE_UNBOUND
            device_kind = await conn.fetchval(
                "UPDATE devices SET quarantined = $2 WHERE device_id = $1 RETURNING kind",
                req.device_id,
                quarantined,
            )
            await conn.execute(
                "UPDATE binding_requests SET confirmed_by = $2, confirmed_at = $3"
                " WHERE request_id = $1",
                request_id,
                actor,
                at,
            )
            binding = replace(binding, device_kind=device_kind)
            await audit_store.append(
                conn,
                actor=actor,
                action=f"binding.{req.action.value}_confirmed",
                subject=req.device_id,
                data={
                    "request_id": request_id,
                    "recipient_id": req.recipient_id,
                    "binding_id": binding.binding_id,
                },
                at=at,
            )
            change = await self._notify(conn, kind, req.recipient_id, at, (req.device_id,))
        self._after_commit(change)
        return binding

    # --- behaviour and suspension ---------------------------------------------------------
    async def record_device_event(
        self, *, device_id: str, event_type: BehaviourEvent, at: datetime, threshold: int
    ) -> Suspension | None:
        async with self._tx() as conn:
            rid = await conn.fetchval(
                "SELECT recipient_id FROM device_bindings WHERE device_id = $1 AND bound_at <= $2"
                " AND (unbound_at IS NULL OR unbound_at > $2)",
                device_id,
                at,
            )
            if rid is None:
                return None
            await self._lock_recipient(conn, rid)
            await conn.execute(
                "INSERT INTO behaviour_events (device_id, recipient_id, event_type,"
                " at) VALUES ($1, $2, $3, $4)",
                device_id,
                rid,
                event_type.value,
                at,
            )
            await audit_store.append(
                conn,
                actor=f"device:{device_id}",
                action="device.behaviour_event",
                subject=rid,
                data={"device_id": device_id, "event_type": event_type.value},
                at=at,
            )
            since = await conn.fetchval(
                "SELECT max(lifted_at) FROM suspensions WHERE recipient_id = $1", rid
            )
            is_suspended = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM suspensions WHERE recipient_id = $1"
                " AND lifted_at IS NULL)",
                rid,
            )
            recent = [
                (BehaviourEvent(r["event_type"]), r["at"])
                for r in await conn.fetch(
                    "SELECT event_type, at FROM behaviour_events WHERE recipient_id = $1"
                    " AND at > $2 AND at <= $3 AND ($4::timestamptz IS NULL OR at > $4)",
                    rid,
                    at - rules.BEHAVIOUR_WINDOW,
                    at,
                    since,
                )
            ]
            if not rules.should_suspend(
                event_type=event_type,
                recent=recent,
                at=at,
                threshold=threshold,
                is_suspended=is_suspended,
            ):
                return None
            count = rules.behaviour_count(event_type, recent, at)
            susp = Suspension(
                suspension_id=new_id("susp"),
                recipient_id=rid,
                device_id=device_id,
                event_type=event_type,
                started_at=at,
                event_count=count,
            )
            await conn.execute(
                "INSERT INTO suspensions (suspension_id, recipient_id, device_id, event_type,"
                " started_at, event_count) VALUES ($1, $2, $3, $4, $5, $6)",
                susp.suspension_id,
                rid,
                device_id,
                event_type.value,
                at,
                count,
            )
            await audit_store.append(
                conn,
                actor="system",
                action="supervision.suspended",
                subject=rid,
                data={
                    "suspension_id": susp.suspension_id,
                    "device_id": device_id,
                    "event_type": event_type.value,
                    "event_count": count,
                    "threshold": threshold,
                },
                at=at,
            )
            change = await self._notify(conn, ChangeKind.SUSPENDED, rid, at)
        self._after_commit(change)
        return susp

    async def reverify(
        self, recipient_id: str, *, actor: str, at: datetime
    ) -> tuple[Suspension, ...]:
        async with self._tx() as conn:
            await self._lock_recipient(conn, recipient_id)
            found = await conn.fetch(
                "UPDATE suspensions SET lifted_at = greatest($2, started_at), lifted_by = $3"
                " WHERE recipient_id = $1 AND lifted_at IS NULL RETURNING *",
                recipient_id,
                at,
                actor,
            )
            if not found:
                raise Conflict("not_suspended", "the recipient's supervision is not suspended")
            lifted = tuple(sorted((rows.suspension(r) for r in found), key=lambda s: s.started_at))
            await audit_store.append(
                conn,
                actor=actor,
                action="consent.reverified",
                subject=recipient_id,
                data={"suspension_ids": [s.suspension_id for s in lifted]},
                at=at,
            )
            change = await self._notify(conn, ChangeKind.REVERIFIED, recipient_id, at)
        self._after_commit(change)
        return lifted
