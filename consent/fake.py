"""An in-memory :class:`~consent.ports.ConsentStore` for tests: same rules, same errors, same
audit actions and change events as the PostgreSQL store (``tests/contract`` proves it).

Audit entries are kept in :attr:`FakeConsentStore.audit` as ``(actor, action, subject, data)``;
devices are registered with :meth:`FakeConsentStore.add_device` (the registry's job in production).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from consent import records, rules
from consent.errors import Conflict, InvalidInput, NotFound, raise_first
from consent.model import (
    BehaviourEvent,
    Binding,
    BindingAction,
    BindingRequest,
    CarePlan,
    CareRecipient,
    ChangeKind,
    Cohabitant,
    Consent,
    ConsentChange,
    Pause,
    RecipientBasis,
    Suspension,
)
from consent.ports import BINDING_REQUEST_TTL, Publish, RegisterRow, new_id
from consent.register import register_rows
from kernel.audit.chain import GENESIS_HASH, next_entry


@dataclasses.dataclass
class _Device:
    kind: str | None
    quarantined: bool = True


class FakeConsentStore:
    def __init__(self, *, publish: Publish | None = None) -> None:
        self._publish = publish
        self.devices: dict[str, _Device] = {}
        self.recipients: dict[str, CareRecipient] = {}
        self.cohabitants: dict[str, Cohabitant] = {}
        self.plans: dict[str, CarePlan] = {}
        self.consents: dict[str, Consent] = {}
        self.pauses: dict[str, Pause] = {}
        self.requests: dict[str, BindingRequest] = {}
        self.bindings: dict[str, Binding] = {}
        self.suspensions: dict[str, Suspension] = {}
        self.events: list[tuple[str, str, BehaviourEvent, datetime]] = []
        self.audit: list[tuple[str, str, str | None, dict[str, Any]]] = []

    # --- test set-up ----------------------------------------------------------------------
    def add_device(self, device_id: str, kind: str | None = "camera") -> None:
        self.devices.setdefault(device_id, _Device(kind))

    def is_quarantined(self, device_id: str) -> bool:
        return self.devices[device_id].quarantined

    # --- helpers --------------------------------------------------------------------------
    def _recipient(self, recipient_id: str) -> CareRecipient:
        try:
            return self.recipients[recipient_id]
        except KeyError:
            raise NotFound("care recipient", recipient_id, "recipient_id") from None

    def _audit(
        self, actor: str, action: str, subject: str | None, data: Mapping[str, Any], at: datetime
    ) -> None:
        next_entry(
            prev_seq=0,
            prev_hash=GENESIS_HASH,
            at=at,
            actor=actor,
            action=action,
            subject=subject,
            data=data,
        )
        self.audit.append((actor, action, subject, dict(data)))

    def _emit(
        self, kind: ChangeKind, recipient_id: str, at: datetime, extra_devices: tuple[str, ...] = ()
    ) -> None:
        devices = {
            b.device_id
            for b in self.bindings.values()
            if b.recipient_id == recipient_id and b.unbound_at is None
        }
        change = ConsentChange(
            event_id=uuid.uuid4().hex,
            kind=kind,
            recipient_id=recipient_id,
            device_ids=tuple(sorted(devices | set(extra_devices))),
            at=at,
        )
        if self._publish is not None:
            self._publish(change)

    def _basis(self, recipient_id: str) -> RecipientBasis:
        r = self._recipient(recipient_id)

        def mine(items: Collection[Any]) -> tuple[Any, ...]:
            return tuple(x for x in items if x.recipient_id == recipient_id)

        bindings = tuple(
            dataclasses.replace(b, device_kind=self.devices[b.device_id].kind)
            for b in mine(self.bindings.values())
        )
        return RecipientBasis(
            recipient=r,
            cohabitants=mine(self.cohabitants.values()),
            plans=mine(self.plans.values()),
            consents=tuple(
                sorted(mine(self.consents.values()), key=lambda c: (c.purpose, c.person, c.version))
            ),
            pauses=mine(self.pauses.values()),
            bindings=bindings,
            suspensions=mine(self.suspensions.values()),
        )

    # --- reads ----------------------------------------------------------------------------
    async def list_recipients(self) -> list[CareRecipient]:
        return sorted(self.recipients.values(), key=lambda r: r.recipient_id)

    async def basis(self, recipient_id: str) -> RecipientBasis:
        return self._basis(recipient_id)

    async def basis_for_device(self, device_id: str, at: datetime) -> RecipientBasis | None:
        made = [b for b in self.bindings.values() if b.device_id == device_id and b.bound_at <= at]
        if not made:
            return None
        return self._basis(max(made, key=lambda b: b.bound_at).recipient_id)

    async def bases(
        self, recipient_ids: Collection[str] | None = None
    ) -> dict[str, RecipientBasis]:
        ids = (
            self.recipients.keys()
            if recipient_ids is None
            else [i for i in recipient_ids if i in self.recipients]
        )
        return {i: self._basis(i) for i in sorted(ids)}

    async def transitions(self, *, after: datetime, until: datetime) -> list[tuple[str, datetime]]:
        found = [
            (rid, t)
            for rid in self.recipients
            for t in rules.transitions(self._basis(rid), after, until)
        ]
        return sorted(found, key=lambda x: (x[1], x[0]))

    async def binding_requests(self, *, device_id: str | None = None) -> list[BindingRequest]:
        return sorted(
            (r for r in self.requests.values() if device_id is None or r.device_id == device_id),
            key=lambda r: (r.requested_at, r.request_id),
        )

    async def register(self, *, actor: str, at: datetime) -> list[RegisterRow]:
        rows = register_rows(list((await self.bases()).values()), at=at)
        self._audit(actor, "register.exported", None, {"rows": len(rows)}, at)
        return rows

    # --- writes ---------------------------------------------------------------------------
    async def add_recipient(
        self, recipient: CareRecipient, *, actor: str, at: datetime
    ) -> CareRecipient:
        raise_first(rules.validate_recipient(recipient))
        if recipient.recipient_id in self.recipients:
            raise Conflict("duplicate", "that recipient_id exists", "recipient_id")
        stored = dataclasses.replace(recipient, created_at=at)
        self._audit(
            actor,
            "recipient.created",
            stored.recipient_id,
            {"time_zone": stored.time_zone, "language": stored.language},
            at,
        )
        self.recipients[stored.recipient_id] = stored
        return stored

    async def add_cohabitant(
        self, cohabitant: Cohabitant, *, actor: str, at: datetime
    ) -> Cohabitant:
        self._recipient(cohabitant.recipient_id)
        raise_first(rules.validate_cohabitant(cohabitant))
        if cohabitant.cohabitant_id in self.cohabitants:
            raise Conflict("duplicate", "that cohabitant_id exists", "cohabitant_id")
        self._audit(
            actor,
            "cohabitant.added",
            cohabitant.recipient_id,
            {"cohabitant_id": cohabitant.cohabitant_id, "moved_in_at": cohabitant.moved_in_at},
            at,
        )
        self.cohabitants[cohabitant.cohabitant_id] = cohabitant
        self._emit(ChangeKind.COHABITANT_ADDED, cohabitant.recipient_id, at)
        return cohabitant

    async def end_cohabitant(
        self, cohabitant_id: str, *, moved_out_at: datetime, actor: str, at: datetime
    ) -> Cohabitant:
        old = self.cohabitants.get(cohabitant_id)
        if old is None:
            raise NotFound("cohabitant", cohabitant_id, "cohabitant_id")
        if old.moved_out_at is not None:
            raise Conflict("already_moved_out", "the cohabitant has already moved out")
        new = dataclasses.replace(old, moved_out_at=moved_out_at)
        raise_first(rules.validate_cohabitant(new))
        self._audit(
            actor,
            "cohabitant.moved_out",
            old.recipient_id,
            {"cohabitant_id": cohabitant_id, "moved_out_at": moved_out_at},
            at,
        )
        self.cohabitants[cohabitant_id] = new
        self._emit(ChangeKind.COHABITANT_REMOVED, old.recipient_id, at)
        return new

    async def add_plan(self, plan: CarePlan, *, actor: str, at: datetime) -> CarePlan:
        r = self._recipient(plan.recipient_id)
        raise_first(rules.validate_plan(plan, zone_name=r.time_zone))
        if plan.plan_id in self.plans:
            raise Conflict("duplicate", "that plan_id exists", "plan_id")
        clash = rules.plan_overlap(plan, self.plans.values())
        if clash is not None:
            raise Conflict(clash.code, clash.message, clash.field)
        stored = dataclasses.replace(
            plan,
            checks=rules.sorted_checks(plan.checks),
            created_at=at,
            created_by=actor,
            ended_at=None,
            ended_by=None,
        )
        self._audit(actor, "care_plan.created", stored.recipient_id, records.plan_audit(stored), at)
        self.plans[stored.plan_id] = stored
        self._emit(ChangeKind.PLAN_ADDED, stored.recipient_id, at)
        return stored

    async def end_plan(
        self, plan_id: str, *, ended_at: datetime, actor: str, at: datetime
    ) -> CarePlan:
        old = self.plans.get(plan_id)
        if old is None:
            raise NotFound("care plan", plan_id, "plan_id")
        if old.ended_at is not None:
            raise Conflict("already_ended", "the care plan has already been ended")
        ended = max(ended_at, old.valid_from)
        new = dataclasses.replace(old, ended_at=ended, ended_by=actor)
        self._audit(
            actor, "care_plan.ended", old.recipient_id, {"plan_id": plan_id, "ended_at": ended}, at
        )
        self.plans[plan_id] = new
        self._emit(ChangeKind.PLAN_ENDED, old.recipient_id, at)
        return new

    async def record_consent(self, consent: Consent, *, actor: str, at: datetime) -> Consent:
        self._recipient(consent.recipient_id)
        if consent.cohabitant_id is not None:
            co = self.cohabitants.get(consent.cohabitant_id)
            if co is None or co.recipient_id != consent.recipient_id:
                raise InvalidInput(
                    "person",
                    "unknown_person",
                    "person is neither the recipient nor a registered cohabitant",
                )
        raise_first(rules.validate_consent(consent, now=at))
        if consent.consent_id in self.consents:
            raise Conflict("duplicate", "that consent_id exists", "consent_id")
        version = 1 + max(
            (
                c.version
                for c in self.consents.values()
                if c.recipient_id == consent.recipient_id
                and c.cohabitant_id == consent.cohabitant_id
                and c.purpose is consent.purpose
            ),
            default=0,
        )
        stored = dataclasses.replace(
            consent,
            version=version,
            recorded_at=at,
            recorded_by=actor,
            withdrawn_at=None,
            withdrawn_by=None,
            withdrawal_reason=None,
        )
        self._audit(
            actor, "consent.recorded", stored.recipient_id, records.consent_audit(stored), at
        )
        self.consents[stored.consent_id] = stored
        self._emit(ChangeKind.CONSENT_RECORDED, stored.recipient_id, at)
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
        target = self.consents.get(consent_id)
        if target is None:
            raise NotFound("consent", consent_id, "consent_id")
        if target.withdrawn_at is not None:
            raise Conflict("already_withdrawn", "this consent has already been withdrawn")
        problem = rules.validate_withdrawal(target, withdrawn_at=withdrawn_at, now=at)
        if problem is not None:
            raise InvalidInput.of(problem)
        series = [
            c
            for c in self.consents.values()
            if c.recipient_id == target.recipient_id
            and c.cohabitant_id == target.cohabitant_id
            and c.purpose is target.purpose
            and c.withdrawn_at is None
        ]
        self._audit(
            actor,
            "consent.withdrawn",
            target.recipient_id,
            {
                "consent_id": consent_id,
                "person": target.person,
                "purpose": target.purpose.value,
                "withdrawn_at": withdrawn_at,
                "versions": sorted(c.version for c in series),
                "has_reason": bool(reason),
            },
            at,
        )
        for c in series:
            self.consents[c.consent_id] = dataclasses.replace(
                c, withdrawn_at=withdrawn_at, withdrawn_by=actor, withdrawal_reason=reason
            )
        self._emit(ChangeKind.CONSENT_WITHDRAWN, target.recipient_id, at)
        return self.consents[consent_id]

    async def add_pause(self, pause: Pause, *, actor: str, at: datetime) -> Pause:
        self._recipient(pause.recipient_id)
        raise_first(rules.validate_pause(pause))
        if pause.pause_id in self.pauses:
            raise Conflict("duplicate", "that pause_id exists", "pause_id")
        stored = dataclasses.replace(pause, created_at=at, created_by=actor, ended_by=None)
        self._audit(actor, "pause.created", stored.recipient_id, records.pause_audit(stored), at)
        self.pauses[stored.pause_id] = stored
        self._emit(ChangeKind.PAUSE_ADDED, stored.recipient_id, at)
        return stored

    async def end_pause(
        self, pause_id: str, *, ended_at: datetime, actor: str, at: datetime
    ) -> Pause:
        old = self.pauses.get(pause_id)
        if old is None:
            raise NotFound("pause", pause_id, "pause_id")
        if old.ended_by is not None or (old.ends_at is not None and old.ends_at <= ended_at):
            raise Conflict("pause_over", "the pause is already over")
        new = dataclasses.replace(old, ends_at=max(ended_at, old.starts_at), ended_by=actor)
        self._audit(
            actor,
            "pause.ended",
            old.recipient_id,
            {"pause_id": pause_id, "ends_at": new.ends_at},
            at,
        )
        self.pauses[pause_id] = new
        self._emit(ChangeKind.PAUSE_ENDED, old.recipient_id, at)
        return new

    def _active_binding(self, device_id: str) -> Binding | None:
        return next(
            (
                b
                for b in self.bindings.values()
                if b.device_id == device_id and b.unbound_at is None
            ),
            None,
        )

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
        if device_id not in self.devices:
            raise NotFound("device", device_id, "device_id")
        active = self._active_binding(device_id)
        if action is BindingAction.BIND:
            if recipient_id is None:
                raise InvalidInput("recipient_id", "required", "recipient_id is required")
            self._recipient(recipient_id)
            if active is not None:
                raise Conflict("device_bound", "the device is bound; unbind it first")
            target = recipient_id
        else:
            if active is None:
                raise Conflict("device_not_bound", "the device is not bound")
            if recipient_id is not None and recipient_id != active.recipient_id:
                raise Conflict(
                    "recipient_mismatch", "the device is bound to another recipient", "recipient_id"
                )
            target = active.recipient_id
        for old in [r for r in self.requests.values() if r.device_id == device_id and r.is_open]:
            self.requests[old.request_id] = dataclasses.replace(old, cancelled_at=at)
        req = BindingRequest(
            request_id=request_id,
            action=action,
            device_id=device_id,
            recipient_id=target,
            requested_by=actor,
            requested_at=at,
            expires_at=at + BINDING_REQUEST_TTL,
        )
        self._audit(
            actor,
            f"binding.{action.value}_requested",
            device_id,
            {"request_id": request_id, "recipient_id": target},
            at,
        )
        self.requests[request_id] = req
        return req

    async def confirm_binding(
        self, request_id: str, *, recipient_id: str, actor: str, at: datetime
    ) -> Binding:
        req = self.requests.get(request_id)
        if req is None:
            raise NotFound("binding request", request_id, "request_id")
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
        active = self._active_binding(req.device_id)
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
            quarantined, kind = False, ChangeKind.DEVICE_BOUND
        else:
            if active is None or active.recipient_id != req.recipient_id:
                raise Conflict("device_not_bound", "the device is no longer bound to the brukare")
            binding = dataclasses.replace(active, unbound_at=at, unbound_by=actor)
            quarantined, kind = True, ChangeKind.DEVICE_UNBOUND
        self._audit(
            actor,
            f"binding.{req.action.value}_confirmed",
            req.device_id,
            {
                "request_id": request_id,
                "recipient_id": req.recipient_id,
                "binding_id": binding.binding_id,
            },
            at,
        )
        self.requests[request_id] = dataclasses.replace(req, confirmed_by=actor, confirmed_at=at)
        self.bindings[binding.binding_id] = binding
        self.devices[req.device_id].quarantined = quarantined
        self._emit(kind, req.recipient_id, at, (req.device_id,))
        return dataclasses.replace(binding, device_kind=self.devices[req.device_id].kind)

    async def record_device_event(
        self, *, device_id: str, event_type: BehaviourEvent, at: datetime, threshold: int
    ) -> Suspension | None:
        binding = next(
            (b for b in self.bindings.values() if b.device_id == device_id and b.is_active(at)),
            None,
        )
        if binding is None:
            return None
        rid = binding.recipient_id
        self._audit(
            f"device:{device_id}",
            "device.behaviour_event",
            rid,
            {"device_id": device_id, "event_type": event_type.value},
            at,
        )
        self.events.append((device_id, rid, event_type, at))
        mine = [s for s in self.suspensions.values() if s.recipient_id == rid]
        since = max((s.lifted_at for s in mine if s.lifted_at is not None), default=None)
        recent = [
            (k, t)
            for _, r, k, t in self.events
            if r == rid and (since is None or t > since) and at - rules.BEHAVIOUR_WINDOW < t <= at
        ]
        is_suspended = any(s.lifted_at is None for s in mine)
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
        self._audit(
            "system",
            "supervision.suspended",
            rid,
            {
                "suspension_id": susp.suspension_id,
                "device_id": device_id,
                "event_type": event_type.value,
                "event_count": count,
                "threshold": threshold,
            },
            at,
        )
        self.suspensions[susp.suspension_id] = susp
        self._emit(ChangeKind.SUSPENDED, rid, at)
        return susp

    async def reverify(
        self, recipient_id: str, *, actor: str, at: datetime
    ) -> tuple[Suspension, ...]:
        self._recipient(recipient_id)
        active = sorted(
            (
                s
                for s in self.suspensions.values()
                if s.recipient_id == recipient_id and s.lifted_at is None
            ),
            key=lambda s: s.started_at,
        )
        if not active:
            raise Conflict("not_suspended", "the recipient's supervision is not suspended")
        lifted = tuple(
            dataclasses.replace(s, lifted_at=max(at, s.started_at), lifted_by=actor) for s in active
        )
        self._audit(
            actor,
            "consent.reverified",
            recipient_id,
            {"suspension_ids": [s.suspension_id for s in lifted]},
            at,
        )
        for s in lifted:
            self.suspensions[s.suspension_id] = s
        self._emit(ChangeKind.REVERIFIED, recipient_id, at)
        return lifted
