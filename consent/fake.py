"""An in-memory :class:`~consent.ports.ConsentStore` for tests. It writes through the same
:class:`consent.writes.ConsentWrites` as the PostgreSQL store (same rules, same errors, same
audit actions and change events; ``tests/contract`` proves it); only persistence differs: the
tables and write transaction of :mod:`consent.fake_rows`.

Audit entries are kept in :attr:`FakeConsentStore.audit` as ``(actor, action, subject, data)``;
devices are registered with :meth:`FakeConsentStore.add_device` (the registry's job in production).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from datetime import datetime
from typing import Any

from consent import rules
from consent.errors import NotFound
from consent.fake_rows import AuditRow, FakeDevice, FakeTables
from consent.model import (
    BehaviourEvent,
    Binding,
    BindingAction,
    BindingRequest,
    CarePlan,
    CareRecipient,
    Cohabitant,
    Consent,
    Pause,
    RecipientBasis,
    Suspension,
)
from consent.ports import Publish, RegisterRow
from consent.writes import ConsentWrites


class FakeConsentStore:
    """Implements :class:`consent.ports.ConsentStore` in memory."""

    def __init__(self, *, publish: Publish | None = None) -> None:
        self.tables = FakeTables()
        self._writes = ConsentWrites(self.tables.begin, publish=publish)

    # --- test set-up ----------------------------------------------------------------------
    def add_device(self, device_id: str, kind: str | None = "camera") -> None:
        self.tables.devices.setdefault(device_id, FakeDevice(kind))

    def is_quarantined(self, device_id: str) -> bool:
        return self.tables.devices[device_id].quarantined

    @property
    def audit(self) -> list[AuditRow]:
        """The audit entries written, oldest first."""
        return self.tables.audit

    # --- reads ----------------------------------------------------------------------------
    def _basis(self, recipient_id: str) -> RecipientBasis:
        t = self.tables
        try:
            r = t.recipients[recipient_id]
        except KeyError:
            raise NotFound("care recipient", recipient_id, "recipient_id") from None

        def mine(items: Collection[Any]) -> tuple[Any, ...]:
            return tuple(x for x in items if x.recipient_id == recipient_id)

        return RecipientBasis(
            recipient=r,
            cohabitants=tuple(sorted(mine(t.cohabitants.values()), key=lambda c: c.moved_in_at)),
            plans=tuple(sorted(mine(t.plans.values()), key=lambda p: p.valid_from)),
            consents=tuple(
                sorted(mine(t.consents.values()), key=lambda c: (c.purpose, c.person, c.version))
            ),
            pauses=tuple(sorted(mine(t.pauses.values()), key=lambda p: p.starts_at)),
            bindings=tuple(
                dataclasses.replace(b, device_kind=t.devices[b.device_id].kind)
                for b in sorted(mine(t.bindings.values()), key=lambda b: b.bound_at)
            ),
            suspensions=tuple(sorted(mine(t.suspensions.values()), key=lambda s: s.started_at)),
        )

    async def list_recipients(self) -> list[CareRecipient]:
        return sorted(self.tables.recipients.values(), key=lambda r: r.recipient_id)

    async def basis(self, recipient_id: str) -> RecipientBasis:
        return self._basis(recipient_id)

    async def basis_for_device(self, device_id: str, at: datetime) -> RecipientBasis | None:
        made = [
            b
            for b in self.tables.bindings.values()
            if b.device_id == device_id and b.bound_at <= at
        ]
        if not made:
            return None
        return self._basis(max(made, key=lambda b: b.bound_at).recipient_id)

    async def bases(
        self, recipient_ids: Collection[str] | None = None
    ) -> dict[str, RecipientBasis]:
        known = self.tables.recipients
        ids = known.keys() if recipient_ids is None else [i for i in recipient_ids if i in known]
        return {i: self._basis(i) for i in sorted(ids)}

    async def transitions(self, *, after: datetime, until: datetime) -> list[tuple[str, datetime]]:
        found = {
            (rid, t)
            for rid in self.tables.recipients
            for t in rules.transitions(self._basis(rid), after, until)
        }
        return sorted(found, key=lambda x: (x[1], x[0]))

    async def binding_requests(self, *, device_id: str | None = None) -> list[BindingRequest]:
        return sorted(
            (
                r
                for r in self.tables.requests.values()
                if device_id is None or r.device_id == device_id
            ),
            key=lambda r: (r.requested_at, r.request_id),
        )

    async def register(self, *, actor: str, at: datetime) -> list[RegisterRow]:
        bases = list((await self.bases()).values())
        return await self._writes.export_register(bases, actor=actor, at=at)

    # --- writes: the one write path -------------------------------------------------------
    async def add_recipient(
        self, recipient: CareRecipient, *, actor: str, at: datetime
    ) -> CareRecipient:
        return await self._writes.add_recipient(recipient, actor=actor, at=at)

    async def add_cohabitant(
        self, cohabitant: Cohabitant, *, actor: str, at: datetime
    ) -> Cohabitant:
        return await self._writes.add_cohabitant(cohabitant, actor=actor, at=at)

    async def end_cohabitant(
        self, cohabitant_id: str, *, moved_out_at: datetime, actor: str, at: datetime
    ) -> Cohabitant:
        return await self._writes.end_cohabitant(
            cohabitant_id, moved_out_at=moved_out_at, actor=actor, at=at
        )

    async def add_plan(
        self, plan: CarePlan, *, actor: str, at: datetime, plan_hour: int | None = None
    ) -> CarePlan:
        return await self._writes.add_plan(plan, actor=actor, at=at, plan_hour=plan_hour)

    async def end_plan(
        self, plan_id: str, *, ended_at: datetime, actor: str, at: datetime
    ) -> CarePlan:
        return await self._writes.end_plan(plan_id, ended_at=ended_at, actor=actor, at=at)

    async def record_consent(self, consent: Consent, *, actor: str, at: datetime) -> Consent:
        return await self._writes.record_consent(consent, actor=actor, at=at)

    async def withdraw_consent(
        self,
        consent_id: str,
        *,
        withdrawn_at: datetime,
        reason: str | None,
        actor: str,
        at: datetime,
    ) -> Consent:
        return await self._writes.withdraw_consent(
            consent_id, withdrawn_at=withdrawn_at, reason=reason, actor=actor, at=at
        )

    async def add_pause(self, pause: Pause, *, actor: str, at: datetime) -> Pause:
        return await self._writes.add_pause(pause, actor=actor, at=at)

    async def end_pause(
        self, pause_id: str, *, ended_at: datetime, actor: str, at: datetime
    ) -> Pause:
        return await self._writes.end_pause(pause_id, ended_at=ended_at, actor=actor, at=at)

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
        return await self._writes.request_binding(
            request_id=request_id,
            action=action,
            device_id=device_id,
            recipient_id=recipient_id,
            actor=actor,
            at=at,
        )

    async def confirm_binding(
        self, request_id: str, *, recipient_id: str, actor: str, at: datetime
    ) -> Binding:
        return await self._writes.confirm_binding(
            request_id, recipient_id=recipient_id, actor=actor, at=at
        )

    async def record_device_event(
        self, *, device_id: str, event_type: BehaviourEvent, at: datetime, threshold: int
    ) -> Suspension | None:
        return await self._writes.record_device_event(
            device_id=device_id, event_type=event_type, at=at, threshold=threshold
        )

    async def reverify(
        self, recipient_id: str, *, actor: str, at: datetime
    ) -> tuple[Suspension, ...]:
        return await self._writes.reverify(recipient_id, actor=actor, at=at)
