"""The one write path of the consent store: validate, write, audit, notify, publish.

:class:`ConsentWrites` holds every write of the port; both adapters are a ``ConsentWrites`` over
their own ``begin`` (:class:`consent.store.PgConsentStore`, :class:`consent.fake.FakeConsentStore`)
and add only their reads, so the fake cannot drift from the real store. Each write opens one
:class:`~consent.ports.WriteTx`, and in it:

1. locks the brukare (or device) and validates with the pure :mod:`consent.rules`, raising
   :mod:`consent.errors` (``InvalidInput``, ``NotFound``, ``Conflict``);
2. persists through the transaction's :class:`~consent.ports.RecordRows` or
   :class:`~consent.ports.BindingRows` part;
3. appends the audit entry (``action`` like ``"consent.withdrawn"``; data holds pseudonymous ids,
   enums, references and instants only, see :mod:`consent.records`);
4. builds the :class:`~consent.model.ConsentChange` (with the brukare's bound devices) and hands
   it to :meth:`WriteTx.notify`, which in PostgreSQL is delivered only if the transaction commits;

and after the commit hands the change to ``publish`` (the in-process bus). A write that raises
anywhere changes nothing and publishes nothing.

Binding, behaviour and suspension writes live in :mod:`consent.binding_writes` and run through
the same steps (:mod:`consent.write_steps`); :class:`ConsentWrites` publishes their changes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime

from consent import binding_writes, records, rules
from consent.errors import Conflict, InvalidInput, NotFound, raise_first
from consent.model import (
    BehaviourEvent,
    Binding,
    BindingAction,
    BindingConfirmation,
    BindingRequest,
    CarePlan,
    CareRecipient,
    ChangeKind,
    Cohabitant,
    Consent,
    ConsentChange,
    Pause,
    PersonAsked,
    RecipientBasis,
    Reverification,
    Suspension,
)
from consent.ports import Begin, Publish, RegisterRow
from consent.register import register_rows
from consent.write_steps import changed, covered, locked_recipient


class ConsentWrites:
    """Every write of :class:`consent.ports.ConsentStore`, over the adapter's ``begin``."""

    def __init__(self, begin: Begin, *, publish: Publish | None = None) -> None:
        self._begin = begin
        self._publish = publish

    def published(self, change: ConsentChange | None) -> ConsentChange | None:
        """Hand a committed change to the in-process bus."""
        if change is not None and self._publish is not None:
            self._publish(change)
        return change

    # --- brukare and cohabitants ----------------------------------------------------------
    async def add_recipient(
        self, recipient: CareRecipient, *, actor: str, at: datetime
    ) -> CareRecipient:
        raise_first(rules.validate_recipient(recipient))
        stored = replace(recipient, created_at=at)
        async with self._begin() as tx:
            if not await tx.records.insert_recipient(stored, created_by=actor):
                raise Conflict("duplicate", "that recipient_id exists", "recipient_id")
            await tx.audit(
                actor=actor,
                action="recipient.created",
                subject=stored.recipient_id,
                data={
                    "time_zone": stored.time_zone,
                    "language": stored.language,
                    "team_id": stored.team_id,
                },
                at=at,
            )
        return stored

    async def add_cohabitant(
        self, cohabitant: Cohabitant, *, actor: str, at: datetime
    ) -> Cohabitant:
        c = cohabitant
        async with self._begin() as tx:
            await locked_recipient(tx, c.recipient_id)
            raise_first(rules.validate_cohabitant(c))
            if not await tx.records.insert_cohabitant(c):
                raise Conflict("duplicate", "that cohabitant_id exists", "cohabitant_id")
            await tx.audit(
                actor=actor,
                action="cohabitant.added",
                subject=c.recipient_id,
                data={"cohabitant_id": c.cohabitant_id, "moved_in_at": c.moved_in_at},
                at=at,
            )
            change = await changed(tx, ChangeKind.COHABITANT_ADDED, c.recipient_id, at)
        self.published(change)
        return c

    async def end_cohabitant(
        self,
        cohabitant_id: str,
        *,
        moved_out_at: datetime,
        actor: str,
        at: datetime,
        teams: Collection[str] | None = None,
    ) -> Cohabitant:
        async with self._begin() as tx:
            old = await tx.records.cohabitant(cohabitant_id)
            if old is None:
                raise NotFound("cohabitant", cohabitant_id, "cohabitant_id")
            covered(
                await locked_recipient(tx, old.recipient_id),
                teams,
                NotFound("cohabitant", cohabitant_id, "cohabitant_id"),
            )
            old = await tx.records.cohabitant(cohabitant_id) or old  # as of the lock
            if old.moved_out_at is not None:
                raise Conflict("already_moved_out", "the cohabitant has already moved out")
            new = replace(old, moved_out_at=moved_out_at)
            raise_first(rules.validate_cohabitant(new))
            await tx.records.set_moved_out(cohabitant_id, moved_out_at)
            await tx.audit(
                actor=actor,
                action="cohabitant.moved_out",
                subject=old.recipient_id,
                data={"cohabitant_id": cohabitant_id, "moved_out_at": moved_out_at},
                at=at,
            )
            change = await changed(tx, ChangeKind.COHABITANT_REMOVED, old.recipient_id, at)
        self.published(change)
        return new

    # --- care plans -----------------------------------------------------------------------
    async def add_plan(
        self, plan: CarePlan, *, actor: str, at: datetime, plan_hour: int | None = None
    ) -> CarePlan:
        async with self._begin() as tx:
            r = await locked_recipient(tx, plan.recipient_id)
            raise_first(rules.validate_plan(plan, zone_name=r.time_zone))
            if plan_hour is not None:
                for field_name, message in rules.validate_round_times(plan.checks, plan_hour):
                    raise InvalidInput(field_name, "outside_round", message)
            existing = await tx.records.plans_of(plan.recipient_id)
            if any(p.plan_id == plan.plan_id for p in existing):
                raise Conflict("duplicate", "that plan_id exists", "plan_id")
            clash = rules.plan_overlap(plan, existing)
            if clash is not None:
                raise Conflict(clash.code, clash.message, clash.field)
            stored = replace(
                plan,
                checks=rules.sorted_checks(plan.checks),
                created_at=at,
                created_by=actor,
                ended_at=None,
                ended_by=None,
            )
            if not await tx.records.insert_plan(stored):
                raise Conflict("duplicate", "that plan_id exists", "plan_id")
            await tx.audit(
                actor=actor,
                action="care_plan.created",
                subject=stored.recipient_id,
                data=records.plan_audit(stored),
                at=at,
            )
            change = await changed(tx, ChangeKind.PLAN_ADDED, stored.recipient_id, at)
        self.published(change)
        return stored

    async def end_plan(
        self,
        plan_id: str,
        *,
        ended_at: datetime,
        actor: str,
        at: datetime,
        teams: Collection[str] | None = None,
    ) -> CarePlan:
        async with self._begin() as tx:
            old = await tx.records.plan(plan_id)
            if old is None:
                raise NotFound("care plan", plan_id, "plan_id")
            covered(
                await locked_recipient(tx, old.recipient_id),
                teams,
                NotFound("care plan", plan_id, "plan_id"),
            )
            old = await tx.records.plan(plan_id) or old  # as of the lock
            if old.ended_at is not None:
                raise Conflict("already_ended", "the care plan has already been ended")
            ended = max(ended_at, old.valid_from)
            await tx.records.end_plan(plan_id, ended_at=ended, ended_by=actor)
            await tx.audit(
                actor=actor,
                action="care_plan.ended",
                subject=old.recipient_id,
                data={"plan_id": plan_id, "ended_at": ended},
                at=at,
            )
            change = await changed(tx, ChangeKind.PLAN_ENDED, old.recipient_id, at)
        self.published(change)
        return replace(old, ended_at=ended, ended_by=actor)

    # --- consents -------------------------------------------------------------------------
    async def record_consent(self, consent: Consent, *, actor: str, at: datetime) -> Consent:
        c = consent
        async with self._begin() as tx:
            await locked_recipient(tx, c.recipient_id)
            if c.cohabitant_id is not None:
                co = await tx.records.cohabitant(c.cohabitant_id)
                if co is None or co.recipient_id != c.recipient_id:
                    raise InvalidInput(
                        "person",
                        "unknown_person",
                        "person is neither the recipient nor a registered cohabitant",
                    )
            raise_first(rules.validate_consent(c, now=at))
            version = await tx.records.next_version(c.recipient_id, c.cohabitant_id, c.purpose)
            stored = replace(
                c,
                version=version,
                recorded_at=at,
                recorded_by=actor,
                withdrawn_at=None,
                withdrawn_by=None,
                withdrawal_reason=None,
            )
            if not await tx.records.insert_consent(stored):
                raise Conflict("duplicate", "that consent_id exists", "consent_id")
            await tx.audit(
                actor=actor,
                action="consent.recorded",
                subject=c.recipient_id,
                data=records.consent_audit(stored),
                at=at,
            )
            change = await changed(tx, ChangeKind.CONSENT_RECORDED, c.recipient_id, at)
        self.published(change)
        return stored

    async def withdraw_consent(
        self,
        consent_id: str,
        *,
        withdrawn_at: datetime,
        reason: str | None,
        actor: str,
        at: datetime,
        teams: Collection[str] | None = None,
    ) -> Consent:
        async with self._begin() as tx:
            found = await tx.records.consent(consent_id)
            if found is None:
                raise NotFound("consent", consent_id, "consent_id")
            rid = found.recipient_id
            covered(
                await locked_recipient(tx, rid),
                teams,
                NotFound("consent", consent_id, "consent_id"),
            )
            series = await tx.records.consent_series(consent_id)  # as of the lock
            target = next(c for c in series if c.consent_id == consent_id)
            if target.withdrawn_at is not None:
                raise Conflict("already_withdrawn", "this consent has already been withdrawn")
            problem = rules.validate_withdrawal(target, withdrawn_at=withdrawn_at, now=at)
            if problem is not None:
                raise InvalidInput.of(problem)
            open_ = [c for c in series if c.withdrawn_at is None]
            await tx.records.withdraw(
                [c.consent_id for c in open_],
                withdrawn_at=withdrawn_at,
                withdrawn_by=actor,
                reason=reason,
                recorded_at=at,
            )
            await tx.audit(
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
            change = await changed(tx, ChangeKind.CONSENT_WITHDRAWN, rid, at)
        self.published(change)
        return replace(
            target, withdrawn_at=withdrawn_at, withdrawn_by=actor, withdrawal_reason=reason
        )

    # --- pauses ---------------------------------------------------------------------------
    async def add_pause(self, pause: Pause, *, actor: str, at: datetime) -> Pause:
        p = pause
        async with self._begin() as tx:
            await locked_recipient(tx, p.recipient_id)
            raise_first(rules.validate_pause(p))
            stored = replace(p, created_at=at, created_by=actor, ended_by=None)
            if not await tx.records.insert_pause(stored):
                raise Conflict("duplicate", "that pause_id exists", "pause_id")
            await tx.audit(
                actor=actor,
                action="pause.created",
                subject=p.recipient_id,
                data=records.pause_audit(stored),
                at=at,
            )
            change = await changed(tx, ChangeKind.PAUSE_ADDED, p.recipient_id, at)
        self.published(change)
        return stored

    async def end_pause(
        self,
        pause_id: str,
        *,
        ended_at: datetime,
        actor: str,
        at: datetime,
        teams: Collection[str] | None = None,
    ) -> Pause:
        async with self._begin() as tx:
            old = await tx.records.pause(pause_id)
            if old is None:
                raise NotFound("pause", pause_id, "pause_id")
            covered(
                await locked_recipient(tx, old.recipient_id),
                teams,
                NotFound("pause", pause_id, "pause_id"),
            )
            old = await tx.records.pause(pause_id) or old  # as of the lock
            if old.ended_by is not None or (old.ends_at is not None and old.ends_at <= ended_at):
                raise Conflict("pause_over", "the pause is already over")
            ends = max(ended_at, old.starts_at)
            await tx.records.end_pause(pause_id, ends_at=ends, ended_by=actor)
            await tx.audit(
                actor=actor,
                action="pause.ended",
                subject=old.recipient_id,
                data={"pause_id": pause_id, "ends_at": ends},
                at=at,
            )
            change = await changed(tx, ChangeKind.PAUSE_ENDED, old.recipient_id, at)
        self.published(change)
        return replace(old, ends_at=ends, ended_by=actor)

    # --- device binding, behaviour and suspension (consent.binding_writes) ----------------
    async def request_binding(
        self,
        *,
        request_id: str,
        action: BindingAction,
        device_id: str,
        recipient_id: str | None,
        actor: str,
        at: datetime,
        code: str | None = None,
    ) -> BindingRequest:
        async with self._begin() as tx:
            return await binding_writes.request_binding(
                tx,
                request_id=request_id,
                action=action,
                device_id=device_id,
                recipient_id=recipient_id,
                actor=actor,
                at=at,
                code=code,
            )

    async def confirm_binding(
        self, request_id: str, typed: BindingConfirmation, *, actor: str, at: datetime
    ) -> Binding:
        async with self._begin() as tx:
            done = await binding_writes.confirm_binding(tx, request_id, typed, actor=actor, at=at)
        if isinstance(done, Exception):
            raise done  # a wrong code: counted and committed, and still refused
        binding, change = done
        self.published(change)
        return binding

    async def seed_binding(
        self,
        *,
        device_id: str,
        recipient_id: str,
        actor: str,
        at: datetime,
        bound_by: str | None = None,
    ) -> Binding:
        async with self._begin() as tx:
            binding, change = await binding_writes.seed_binding(
                tx,
                device_id=device_id,
                recipient_id=recipient_id,
                actor=actor,
                at=at,
                bound_by=bound_by,
            )
        self.published(change)
        return binding

    async def record_bind_button(self, device_id: str, at: datetime) -> bool:
        async with self._begin() as tx:
            return await binding_writes.record_bind_button(tx, device_id, at)

    async def record_device_event(
        self,
        *,
        device_id: str,
        event_type: BehaviourEvent,
        at: datetime,
        threshold: int,
        agreed_checks: Sequence[datetime] = (),
        observed_at: datetime | None = None,
    ) -> Suspension | None:
        async with self._begin() as tx:
            found = await binding_writes.record_device_event(
                tx,
                device_id=device_id,
                event_type=event_type,
                at=at,
                threshold=threshold,
                agreed_checks=agreed_checks,
                observed_at=observed_at,
            )
        if found is None:
            return None
        suspension, change = found
        self.published(change)
        return suspension

    async def reverify(
        self,
        recipient_id: str,
        *,
        people: Sequence[PersonAsked],
        actor: str,
        at: datetime,
        teams: Collection[str] | None = None,
    ) -> tuple[Reverification, tuple[Suspension, ...]]:
        async with self._begin() as tx:
            record, lifted, changes = await binding_writes.reverify(
                tx, recipient_id, people=people, actor=actor, at=at, teams=teams
            )
        for change in changes:
            self.published(change)
        return record, lifted

    # --- the camera register --------------------------------------------------------------
    async def export_register(
        self, bases: list[RecipientBasis], *, actor: str, at: datetime
    ) -> list[RegisterRow]:
        """The register rows of ``bases`` at ``at``; the export itself is audited."""
        rows = register_rows(bases, at=at)
        async with self._begin() as tx:
            await tx.audit(
                actor=actor,
                action="register.exported",
                subject=None,
                data={"rows": len(rows)},
                at=at,
            )
        return rows
