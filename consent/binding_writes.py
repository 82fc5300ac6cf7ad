"""The write path (see :mod:`consent.writes`) for two-step device binding (four eyes and proof
from the device, decided by :func:`consent.rules.confirm_refusal`), seeding as the system, the
devices' ``bind_button`` presses, behaviour events and suspension (hard rule 8), and
re-verification. Each function runs inside the caller's
:class:`~consent.ports.WriteTx` and returns its result with the change to publish after the
commit (``None`` when the write publishes nothing)."""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime

from consent import rules
from consent.errors import Conflict, InvalidInput, NotFound, raise_first
from consent.model import (
    BehaviourEvent,
    Binding,
    BindingAction,
    BindingConfirmation,
    BindingProof,
    BindingRequest,
    ChangeKind,
    ConsentChange,
    PersonAsked,
    Reverification,
    ReverifyOutcome,
    Suspension,
)
from consent.ports import BINDING_REQUEST_TTL, WriteTx, new_id
from consent.write_steps import changed, covered, locked_recipient


def new_bind_code() -> str:
    """A fresh one-time code of :data:`consent.rules.BIND_CODE_DIGITS` digits (``secrets``)."""
    return f"{secrets.randbelow(10**rules.BIND_CODE_DIGITS):0{rules.BIND_CODE_DIGITS}d}"


async def request_binding(
    tx: WriteTx,
    *,
    request_id: str,
    action: BindingAction,
    device_id: str,
    recipient_id: str | None,
    actor: str,
    at: datetime,
    code: str | None = None,
) -> BindingRequest:
    """Step one: ask to bind the device to a brukare (or to unbind it); replaces the device's
    open requests. Binding a video phone keeps the hash of ``code``, valid for
    :data:`consent.rules.PROOF_WINDOW`. Audited; publishes nothing (nothing changed yet)."""
    rows = tx.bindings
    if not await rows.lock_device(device_id):
        raise NotFound("device", device_id, "device_id")
    active = await rows.active_binding(device_id)
    if action is BindingAction.BIND:
        if recipient_id is None:
            raise InvalidInput("recipient_id", "required", "recipient_id is required")
        await locked_recipient(tx, recipient_id)
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
    proof = rules.proof_for(action, await rows.device_kind(device_id))
    code_hash = code_expires_at = None
    if proof is BindingProof.CODE:
        digits = rules.BIND_CODE_DIGITS
        if code is None or not (code.isascii() and code.isdigit()) or len(code) != digits:
            raise InvalidInput("code", "bad_value", f"a video phone needs a {digits}-digit code")
        code_hash = rules.bind_code_hash(request_id, code)
        code_expires_at = at + rules.PROOF_WINDOW
    await rows.cancel_open_requests(device_id, at=at)
    req = BindingRequest(
        request_id=request_id,
        action=action,
        device_id=device_id,
        recipient_id=target,
        requested_by=actor,
        requested_at=at,
        expires_at=at + BINDING_REQUEST_TTL,
        proof=proof,
        code_hash=code_hash,
        code_expires_at=code_expires_at,
    )
    if not await rows.insert_request(req):
        raise Conflict("duplicate", "that request_id exists", "request_id")
    await tx.audit(
        actor=actor,
        action=f"binding.{action.value}_requested",
        subject=device_id,
        data={"request_id": request_id, "recipient_id": target, "proof": proof.value},
        at=at,
    )
    return req


def refusal_error(refusal: rules.ConfirmRefusal) -> Conflict | InvalidInput:
    """The error a refused confirmation raises: 409 :class:`Conflict` or 422 ``InvalidInput``."""
    if refusal.status == 409:
        return Conflict(refusal.code, refusal.message, refusal.field)
    return InvalidInput(refusal.field or "request_id", refusal.code, refusal.message)


async def confirm_binding(
    tx: WriteTx, request_id: str, typed: BindingConfirmation, *, actor: str, at: datetime
) -> tuple[Binding, ConsentChange] | Conflict | InvalidInput:
    """Step two, decided by :func:`consent.rules.confirm_refusal`. Binding lets the device out of
    quarantine, unbinding puts it back, in the same transaction. A refusal raises (nothing
    changes), except a wrong code: it is counted and audited (the last one voids the request)
    and its error *returned*, for the caller to raise once that is committed."""
    rows = tx.bindings
    req = await rows.lock_request(request_id)
    if req is None:
        raise NotFound("binding request", request_id, "request_id")
    recipient = await locked_recipient(tx, req.recipient_id)
    button = None if req.proof is not BindingProof.BUTTON else await rows.bind_button(req.device_id)
    refusal = rules.confirm_refusal(
        req, typed, confirmer=actor, recipient=recipient, button=button, at=at
    )
    if refusal is not None and refusal.counts:
        attempts = await rows.count_code_attempt(request_id, void_at=at if refusal.voids else None)
        await tx.audit(
            actor=actor,
            action="binding.code_refused",
            subject=req.device_id,
            data={"request_id": request_id, "attempts": attempts, "void": refusal.voids},
            at=at,
        )
        return refusal_error(refusal)
    if refusal is not None:
        raise refusal_error(refusal)
    active = await rows.active_binding(req.device_id)
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
        await rows.insert_binding(binding)
        quarantined, kind = False, ChangeKind.DEVICE_BOUND
    else:
        if active is None or active.recipient_id != req.recipient_id:
            raise Conflict("device_not_bound", "the device is no longer bound to the brukare")
        binding = replace(active, unbound_at=at, unbound_by=actor)
        await rows.unbind(binding.binding_id, at=at, unbound_by=actor)
        quarantined, kind = True, ChangeKind.DEVICE_UNBOUND
    device_kind = await rows.set_quarantined(req.device_id, quarantined)
    await rows.confirm_request(request_id, confirmed_by=actor, at=at)
    await tx.audit(
        actor=actor,
        action=f"binding.{req.action.value}_confirmed",
        subject=req.device_id,
        data={
            "request_id": request_id,
            "recipient_id": req.recipient_id,
            "binding_id": binding.binding_id,
            "proof": req.proof.value,
            "requested_by": req.requested_by,
        },
        at=at,
    )
    change = await changed(tx, kind, req.recipient_id, at, (req.device_id,))
    return replace(binding, device_kind=device_kind), change


async def seed_binding(
    tx: WriteTx,
    *,
    device_id: str,
    recipient_id: str,
    actor: str,
    at: datetime,
    bound_by: str | None = None,
) -> tuple[Binding, ConsentChange]:
    """Bind at once as the system, for seeding a demo or a test (no request, no proof): audited
    ``binding.seeded`` by ``actor``, recorded as requested by ``actor`` and bound by
    ``bound_by`` (default ``actor``). Never reachable from the API."""
    rows = tx.bindings
    if not await rows.lock_device(device_id):
        raise NotFound("device", device_id, "device_id")
    await locked_recipient(tx, recipient_id)
    if await rows.active_binding(device_id) is not None:
        raise Conflict("device_bound", "the device is bound; unbind it first")
    await rows.cancel_open_requests(device_id, at=at)
    binding = Binding(
        binding_id=new_id("bind"),
        device_id=device_id,
        recipient_id=recipient_id,
        bound_at=at,
        requested_by=actor,
        bound_by=bound_by or actor,
    )
    await rows.insert_binding(binding)
    device_kind = await rows.set_quarantined(device_id, False)
    await tx.audit(
        actor=actor,
        action="binding.seeded",
        subject=device_id,
        data={"recipient_id": recipient_id, "binding_id": binding.binding_id},
        at=at,
    )
    change = await changed(tx, ChangeKind.DEVICE_BOUND, recipient_id, at, (device_id,))
    return replace(binding, device_kind=device_kind), change


async def record_bind_button(tx: WriteTx, device_id: str, at: datetime) -> bool:
    """Keep the device's latest ``bind_button`` (when it arrived; nothing else)."""
    return await tx.bindings.set_bind_button(device_id, at)


async def record_device_event(
    tx: WriteTx,
    *,
    device_id: str,
    event_type: BehaviourEvent,
    at: datetime,
    threshold: int,
    agreed_checks: Sequence[datetime] = (),
    observed_at: datetime | None = None,
) -> tuple[Suspension, ConsentChange] | None:
    """Count a behaviour event of a device bound at ``at`` (others are ignored: ``None``); when
    :func:`consent.rules.should_suspend` says so, suspend camera checks of its brukare (reason
    ``possible_withdrawal``). ``agreed_checks``: for ``offline_at_check`` (dated at its check's
    agreed instant), the agreed instants of the brukare's checks around it; ``observed_at``
    (default ``at``) when it was found, which is when a suspension starts."""
    rows = tx.bindings
    now = observed_at or at
    rid = await rows.recipient_at(device_id, at)
    if rid is None:
        return None
    await locked_recipient(tx, rid)
    await rows.add_behaviour_event(device_id, rid, event_type, at)
    data: dict[str, str] = {"device_id": device_id, "event_type": event_type.value}
    if now != at:
        data["dated"] = at.isoformat()
    await tx.audit(
        actor=f"device:{device_id}",
        action="device.behaviour_event",
        subject=rid,
        data=data,
        at=now,
    )
    mine = await rows.suspensions_of(rid)
    since = max((s.lifted_at for s in mine if s.lifted_at is not None), default=None)
    after = at - rules.BEHAVIOUR_WINDOW
    # up to a window ahead too: offline checks are dated at their agreed instants, and a later
    # check of the same run may have been recorded first
    recent = await rows.behaviour_events(
        rid, after=after if since is None else max(after, since), until=at + rules.BEHAVIOUR_WINDOW
    )
    if not rules.should_suspend(
        event_type=event_type,
        recent=recent,
        at=at,
        threshold=threshold,
        is_suspended=any(s.lifted_at is None for s in mine),
        agreed_checks=agreed_checks,
    ):
        return None
    count = rules.behaviour_weight(event_type, recent, at, agreed_checks)
    susp = Suspension(
        suspension_id=new_id("susp"),
        recipient_id=rid,
        device_id=device_id,
        event_type=event_type,
        started_at=now,
        event_count=count,
    )
    await rows.insert_suspension(susp)
    await tx.audit(
        actor="system",
        action="supervision.suspended",
        subject=rid,
        data={
            "suspension_id": susp.suspension_id,
            "device_id": device_id,
            "event_type": event_type.value,
            "event_count": count,
            "threshold": threshold,
            "reason": susp.reason.value,
        },
        at=now,
    )
    return susp, await changed(tx, ChangeKind.SUSPENDED, rid, now)


async def reverify(
    tx: WriteTx,
    recipient_id: str,
    *,
    people: Sequence[PersonAsked],
    actor: str,
    at: datetime,
    teams: Collection[str] | None = None,
) -> tuple[Reverification, tuple[Suspension, ...], list[ConsentChange]]:
    """Record a re-verification (hard rule 8) and act on it, in one transaction.

    Every person living there (the brukare and each current cohabitant) must be in ``people``
    and nobody else (:func:`consent.rules.check_reverification`; ``InvalidInput``, nothing
    changed). Each ``refuses`` withdraws that person's consent for that purpose as a withdrawal
    does (audited ``consent.withdrawn``, change ``consent_withdrawn``: live sessions end, later
    checks become visits). The suspensions are lifted only when nobody refuses camera checks.
    """
    recipient = await locked_recipient(tx, recipient_id)
    covered(recipient, teams, NotFound("care recipient", recipient_id, "recipient_id"))
    active = sorted(
        (s for s in await tx.bindings.suspensions_of(recipient_id) if s.lifted_at is None),
        key=lambda s: s.started_at,
    )
    if not active:
        raise Conflict("not_suspended", "the recipient's supervision is not suspended")
    basis = await tx.basis(recipient_id)
    raise_first(rules.check_reverification(basis, people, at))
    outcome = rules.reverification_outcome(people)
    withdrawn = rules.consents_to_withdraw(basis, rules.refusals(people), at)
    changes: list[ConsentChange] = []
    if withdrawn:
        await tx.records.withdraw(
            [c.consent_id for c in withdrawn],
            withdrawn_at=at,
            withdrawn_by=actor,
            reason=None,
            recorded_at=at,
        )
        for c in withdrawn:
            await tx.audit(
                actor=actor,
                action="consent.withdrawn",
                subject=recipient_id,
                data={
                    "consent_id": c.consent_id,
                    "person": c.person,
                    "purpose": c.purpose.value,
                    "withdrawn_at": at,
                    "versions": [c.version],
                    "has_reason": False,
                    "at_reverification": True,
                },
                at=at,
            )
        changes.append(await changed(tx, ChangeKind.CONSENT_WITHDRAWN, recipient_id, at))
    lifted: tuple[Suspension, ...] = ()
    if outcome is ReverifyOutcome.LIFTED:
        lifted = tuple(replace(s, lifted_at=max(at, s.started_at), lifted_by=actor) for s in active)
        await tx.bindings.lift(lifted)
    record = Reverification(
        reverification_id=new_id("rever"),
        recipient_id=recipient_id,
        verified_by=actor,
        recorded_at=at,
        people=tuple(people),
        outcome=outcome,
        suspension_ids=tuple(s.suspension_id for s in active),
        withdrawn_consent_ids=tuple(c.consent_id for c in withdrawn),
    )
    await tx.bindings.insert_reverification(record)
    await tx.audit(
        actor=actor,
        action="consent.reverified",
        subject=recipient_id,
        data={
            "reverification_id": record.reverification_id,
            "suspension_ids": list(record.suspension_ids),
            "outcome": outcome.value,
            "people": [
                {
                    "person_id": p.person_id,
                    "how": p.how.value,
                    "spoken_at": p.spoken_at,
                    "answers": {k.value: v.value for k, v in p.answers},
                }
                for p in people
            ],
            "withdrawn_consent_ids": list(record.withdrawn_consent_ids),
        },
        at=at,
    )
    if lifted:
        changes.append(await changed(tx, ChangeKind.REVERIFIED, recipient_id, at))
    return record, lifted, changes
