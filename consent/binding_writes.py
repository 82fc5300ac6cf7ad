"""The write path (see :mod:`consent.writes`) for two-step device binding, behaviour events and
suspension (hard rule 8), and re-verification. Each function runs inside the caller's
:class:`~consent.ports.WriteTx` and returns its result with the change to publish after the
commit (``None`` when the write publishes nothing)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from consent import rules
from consent.errors import Conflict, InvalidInput, NotFound
from consent.model import (
    BehaviourEvent,
    Binding,
    BindingAction,
    BindingRequest,
    ChangeKind,
    ConsentChange,
    Suspension,
)
from consent.ports import BINDING_REQUEST_TTL, WriteTx, new_id
from consent.write_steps import changed, locked_recipient


async def request_binding(
    tx: WriteTx,
    *,
    request_id: str,
    action: BindingAction,
    device_id: str,
    recipient_id: str | None,
    actor: str,
    at: datetime,
) -> BindingRequest:
    """Step one: ask to bind the device to a brukare (or to unbind it); replaces the device's
    open requests. Audited; publishes nothing (nothing changed yet)."""
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
    await rows.cancel_open_requests(device_id, at=at)
    req = BindingRequest(
        request_id=request_id,
        action=action,
        device_id=device_id,
        recipient_id=target,
        requested_by=actor,
        requested_at=at,
        expires_at=at + BINDING_REQUEST_TTL,
    )
    if not await rows.insert_request(req):
        raise Conflict("duplicate", "that request_id exists", "request_id")
    await tx.audit(
        actor=actor,
        action=f"binding.{action.value}_requested",
        subject=device_id,
        data={"request_id": request_id, "recipient_id": target},
        at=at,
    )
    return req


async def confirm_binding(
    tx: WriteTx, request_id: str, *, recipient_id: str, actor: str, at: datetime
) -> tuple[Binding, ConsentChange]:
    """Step two: ``recipient_id`` must name the brukare of the open, unexpired request. Binding
    lets the device out of quarantine, unbinding puts it back, in the same transaction."""
    rows = tx.bindings
    req = await rows.lock_request(request_id)
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
    await locked_recipient(tx, req.recipient_id)
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
        },
        at=at,
    )
    change = await changed(tx, kind, req.recipient_id, at, (req.device_id,))
    return replace(binding, device_kind=device_kind), change


async def record_device_event(
    tx: WriteTx, *, device_id: str, event_type: BehaviourEvent, at: datetime, threshold: int
) -> tuple[Suspension, ConsentChange] | None:
    """Count a behaviour event of a device bound at ``at`` (others are ignored: ``None``); when
    :func:`consent.rules.should_suspend` says so, suspend camera checks of its brukare."""
    rows = tx.bindings
    rid = await rows.recipient_at(device_id, at)
    if rid is None:
        return None
    await locked_recipient(tx, rid)
    await rows.add_behaviour_event(device_id, rid, event_type, at)
    await tx.audit(
        actor=f"device:{device_id}",
        action="device.behaviour_event",
        subject=rid,
        data={"device_id": device_id, "event_type": event_type.value},
        at=at,
    )
    mine = await rows.suspensions_of(rid)
    since = max((s.lifted_at for s in mine if s.lifted_at is not None), default=None)
    after = at - rules.BEHAVIOUR_WINDOW
    recent = await rows.behaviour_events(
        rid, after=after if since is None else max(after, since), until=at
    )
    if not rules.should_suspend(
        event_type=event_type,
        recent=recent,
        at=at,
        threshold=threshold,
        is_suspended=any(s.lifted_at is None for s in mine),
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
        },
        at=at,
    )
    return susp, await changed(tx, ChangeKind.SUSPENDED, rid, at)


async def reverify(
    tx: WriteTx, recipient_id: str, *, actor: str, at: datetime
) -> tuple[tuple[Suspension, ...], ConsentChange]:
    """Lift the brukare's suspensions after a human re-verified consent."""
    await locked_recipient(tx, recipient_id)
    active = sorted(
        (s for s in await tx.bindings.suspensions_of(recipient_id) if s.lifted_at is None),
        key=lambda s: s.started_at,
    )
    if not active:
        raise Conflict("not_suspended", "the recipient's supervision is not suspended")
    lifted = tuple(replace(s, lifted_at=max(at, s.started_at), lifted_by=actor) for s in active)
    await tx.bindings.lift(lifted)
    await tx.audit(
        actor=actor,
        action="consent.reverified",
        subject=recipient_id,
        data={"suspension_ids": [s.suspension_id for s in lifted]},
        at=at,
    )
    return lifted, await changed(tx, ChangeKind.REVERIFIED, recipient_id, at)
