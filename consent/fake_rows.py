"""The in-memory consent store's tables (:class:`FakeTables`) and one write transaction over
them (:class:`FakeTx`, implementing :class:`consent.ports.WriteTx`, :class:`~consent.ports.
RecordRows` and :class:`~consent.ports.BindingRows` at once). Like the PostgreSQL parts, it
checks nothing: :mod:`consent.writes` decides. A write that raises is rolled back
(:meth:`FakeTables.begin` restores the tables as they were)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from consent.errors import NotFound
from consent.model import (
    BehaviourEvent,
    Binding,
    BindingRequest,
    ButtonPress,
    CarePlan,
    CareRecipient,
    Cohabitant,
    Consent,
    ConsentChange,
    Pause,
    Purpose,
    RecipientBasis,
    Reverification,
    Suspension,
)
from kernel.audit.chain import GENESIS_HASH, next_entry

AuditRow = tuple[str, str, str | None, dict[str, Any]]
"""``(actor, action, subject, data)``."""


@dataclasses.dataclass(frozen=True, slots=True)
class FakeDevice:
    kind: str | None
    quarantined: bool = True


@dataclasses.dataclass
class FakeTables:
    devices: dict[str, FakeDevice] = dataclasses.field(default_factory=dict)
    recipients: dict[str, CareRecipient] = dataclasses.field(default_factory=dict)
    cohabitants: dict[str, Cohabitant] = dataclasses.field(default_factory=dict)
    plans: dict[str, CarePlan] = dataclasses.field(default_factory=dict)
    consents: dict[str, Consent] = dataclasses.field(default_factory=dict)
    pauses: dict[str, Pause] = dataclasses.field(default_factory=dict)
    requests: dict[str, BindingRequest] = dataclasses.field(default_factory=dict)
    bindings: dict[str, Binding] = dataclasses.field(default_factory=dict)
    buttons: dict[str, datetime] = dataclasses.field(default_factory=dict)
    """Each device's latest ``bind_button``."""
    suspensions: dict[str, Suspension] = dataclasses.field(default_factory=dict)
    reverifications: list[Reverification] = dataclasses.field(default_factory=list)
    events: list[tuple[str, str, BehaviourEvent, datetime]] = dataclasses.field(
        default_factory=list
    )
    audit: list[AuditRow] = dataclasses.field(default_factory=list)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[FakeTx]:
        """One write transaction (:class:`consent.ports.Begin`): all or nothing."""
        saved = {f.name: getattr(self, f.name).copy() for f in dataclasses.fields(self)}
        try:
            yield FakeTx(self)
        except BaseException:
            for name, value in saved.items():
                table = getattr(self, name)
                table.clear()
                if isinstance(table, dict):
                    table.update(value)
                else:
                    table.extend(value)
            raise


def _insert(table: dict[str, Any], key: str, value: object) -> bool:
    if key in table:
        return False
    table[key] = value
    return True


def basis_of(t: FakeTables, recipient_id: str) -> RecipientBasis:
    """The brukare's basis as the tables hold it now (``NotFound`` if there is none)."""
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


class FakeTx:
    """A write transaction over :class:`FakeTables`; its own ``records`` and ``bindings``."""

    def __init__(self, tables: FakeTables) -> None:
        self._t = tables

    @property
    def records(self) -> FakeTx:
        return self

    @property
    def bindings(self) -> FakeTx:
        return self

    # --- the transaction's core -----------------------------------------------------------
    async def lock_recipient(self, recipient_id: str) -> CareRecipient | None:
        return self._t.recipients.get(recipient_id)

    async def basis(self, recipient_id: str) -> RecipientBasis:
        return basis_of(self._t, recipient_id)

    async def bound_devices(self, recipient_id: str) -> set[str]:
        return {
            b.device_id
            for b in self._t.bindings.values()
            if b.recipient_id == recipient_id and b.unbound_at is None
        }

    async def audit(
        self,
        *,
        actor: str,
        action: str,
        subject: str | None,
        data: Mapping[str, Any],
        at: datetime,
    ) -> None:
        # the chain's own check of the entry (raises AuditDataError as the real append does)
        next_entry(
            prev_seq=0,
            prev_hash=GENESIS_HASH,
            at=at,
            actor=actor,
            action=action,
            subject=subject,
            data=data,
        )
        self._t.audit.append((actor, action, subject, dict(data)))

    async def notify(self, change: ConsentChange) -> None:
        """No other process to tell."""

    # --- records --------------------------------------------------------------------------
    async def insert_recipient(self, recipient: CareRecipient, *, created_by: str) -> bool:
        return _insert(self._t.recipients, recipient.recipient_id, recipient)

    async def cohabitant(self, cohabitant_id: str) -> Cohabitant | None:
        return self._t.cohabitants.get(cohabitant_id)

    async def insert_cohabitant(self, cohabitant: Cohabitant) -> bool:
        return _insert(self._t.cohabitants, cohabitant.cohabitant_id, cohabitant)

    async def set_moved_out(self, cohabitant_id: str, moved_out_at: datetime) -> None:
        old = self._t.cohabitants[cohabitant_id]
        self._t.cohabitants[cohabitant_id] = dataclasses.replace(old, moved_out_at=moved_out_at)

    async def plans_of(self, recipient_id: str) -> list[CarePlan]:
        mine = (p for p in self._t.plans.values() if p.recipient_id == recipient_id)
        return sorted(mine, key=lambda p: p.valid_from)

    async def plan(self, plan_id: str) -> CarePlan | None:
        return self._t.plans.get(plan_id)

    async def insert_plan(self, plan: CarePlan) -> bool:
        return _insert(self._t.plans, plan.plan_id, plan)

    async def end_plan(self, plan_id: str, *, ended_at: datetime, ended_by: str) -> None:
        old = self._t.plans[plan_id]
        self._t.plans[plan_id] = dataclasses.replace(old, ended_at=ended_at, ended_by=ended_by)

    async def consent(self, consent_id: str) -> Consent | None:
        return self._t.consents.get(consent_id)

    async def consent_series(self, consent_id: str) -> list[Consent]:
        t = self._t.consents[consent_id]
        return sorted(
            (
                c
                for c in self._t.consents.values()
                if c.recipient_id == t.recipient_id
                and c.cohabitant_id == t.cohabitant_id
                and c.purpose is t.purpose
            ),
            key=lambda c: c.version,
        )

    async def next_version(
        self, recipient_id: str, cohabitant_id: str | None, purpose: Purpose
    ) -> int:
        return 1 + max(
            (
                c.version
                for c in self._t.consents.values()
                if c.recipient_id == recipient_id
                and c.cohabitant_id == cohabitant_id
                and c.purpose is purpose
            ),
            default=0,
        )

    async def insert_consent(self, consent: Consent) -> bool:
        return _insert(self._t.consents, consent.consent_id, consent)

    async def withdraw(
        self,
        consent_ids: Sequence[str],
        *,
        withdrawn_at: datetime,
        withdrawn_by: str,
        reason: str | None,
        recorded_at: datetime,
    ) -> None:
        for cid in consent_ids:
            self._t.consents[cid] = dataclasses.replace(
                self._t.consents[cid],
                withdrawn_at=withdrawn_at,
                withdrawn_by=withdrawn_by,
                withdrawal_reason=reason,
            )

    async def pause(self, pause_id: str) -> Pause | None:
        return self._t.pauses.get(pause_id)

    async def insert_pause(self, pause: Pause) -> bool:
        return _insert(self._t.pauses, pause.pause_id, pause)

    async def end_pause(self, pause_id: str, *, ends_at: datetime, ended_by: str) -> None:
        old = self._t.pauses[pause_id]
        self._t.pauses[pause_id] = dataclasses.replace(old, ends_at=ends_at, ended_by=ended_by)

    # --- bindings -------------------------------------------------------------------------
    async def lock_device(self, device_id: str) -> bool:
        return device_id in self._t.devices

    async def device_kind(self, device_id: str) -> str | None:
        return self._t.devices[device_id].kind

    async def lock_request(self, request_id: str) -> BindingRequest | None:
        return self._t.requests.get(request_id)

    async def count_code_attempt(self, request_id: str, *, void_at: datetime | None) -> int:
        old = self._t.requests[request_id]
        new = dataclasses.replace(
            old,
            code_attempts=old.code_attempts + 1,
            cancelled_at=old.cancelled_at if void_at is None else void_at,
        )
        self._t.requests[request_id] = new
        return new.code_attempts

    async def bind_button(self, device_id: str) -> ButtonPress | None:
        at = self._t.buttons.get(device_id)
        return None if at is None else ButtonPress(device_id, at)

    async def set_bind_button(self, device_id: str, at: datetime) -> bool:
        if device_id not in self._t.devices:
            return False
        self._t.buttons[device_id] = max(at, self._t.buttons.get(device_id, at))
        return True

    async def active_binding(self, device_id: str) -> Binding | None:
        return next(
            (
                b
                for b in self._t.bindings.values()
                if b.device_id == device_id and b.unbound_at is None
            ),
            None,
        )

    async def cancel_open_requests(self, device_id: str, *, at: datetime) -> None:
        for r in list(self._t.requests.values()):
            if r.device_id == device_id and r.is_open:
                self._t.requests[r.request_id] = dataclasses.replace(r, cancelled_at=at)

    async def insert_request(self, request: BindingRequest) -> bool:
        return _insert(self._t.requests, request.request_id, request)

    async def confirm_request(self, request_id: str, *, confirmed_by: str, at: datetime) -> None:
        old = self._t.requests[request_id]
        self._t.requests[request_id] = dataclasses.replace(
            old, confirmed_by=confirmed_by, confirmed_at=at
        )

    async def insert_binding(self, binding: Binding) -> None:
        self._t.bindings[binding.binding_id] = binding

    async def unbind(self, binding_id: str, *, at: datetime, unbound_by: str) -> None:
        old = self._t.bindings[binding_id]
        self._t.bindings[binding_id] = dataclasses.replace(
            old, unbound_at=at, unbound_by=unbound_by
        )

    async def set_quarantined(self, device_id: str, quarantined: bool) -> str | None:
        device = dataclasses.replace(self._t.devices[device_id], quarantined=quarantined)
        self._t.devices[device_id] = device
        return device.kind

    async def recipient_at(self, device_id: str, at: datetime) -> str | None:
        return next(
            (
                b.recipient_id
                for b in self._t.bindings.values()
                if b.device_id == device_id and b.is_active(at)
            ),
            None,
        )

    async def add_behaviour_event(
        self, device_id: str, recipient_id: str, event_type: BehaviourEvent, at: datetime
    ) -> None:
        self._t.events.append((device_id, recipient_id, event_type, at))

    async def behaviour_events(
        self, recipient_id: str, *, after: datetime, until: datetime
    ) -> list[tuple[BehaviourEvent, datetime]]:
        return sorted(
            ((k, t) for _, r, k, t in self._t.events if r == recipient_id and after < t <= until),
            key=lambda e: e[1],
        )

    async def suspensions_of(self, recipient_id: str) -> list[Suspension]:
        mine = (s for s in self._t.suspensions.values() if s.recipient_id == recipient_id)
        return sorted(mine, key=lambda s: s.started_at)

    async def insert_suspension(self, suspension: Suspension) -> None:
        self._t.suspensions[suspension.suspension_id] = suspension

    async def lift(self, lifted: Sequence[Suspension]) -> None:
        for s in lifted:
            self._t.suspensions[s.suspension_id] = s

    async def insert_reverification(self, record: Reverification) -> None:
        self._t.reverifications.append(record)

    async def reverifications_of(self, recipient_id: str) -> list[Reverification]:
        return [r for r in self._t.reverifications if r.recipient_id == recipient_id]
