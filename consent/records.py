"""JSON shapes of the consent slice's values (pure): API responses, stored ``jsonb`` columns, and
the facts written to the audit log.

Audit data never holds names, homes, notes, free-text reasons or how a person was informed: only
pseudonymous ids, enums, references and instants.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from consent import rules
from consent.model import (
    Binding,
    BindingProof,
    BindingRequest,
    CarePlan,
    CareRecipient,
    CheckTime,
    Cohabitant,
    Consent,
    ConsentChange,
    Deadlines,
    Decision,
    HumanStep,
    Pause,
    PersonAsked,
    RecipientBasis,
    Reverification,
    StepDeadline,
    Suspension,
    TimeWindow,
)


def iso(at: datetime | None) -> str | None:
    """UTC ISO 8601, whatever zone the value carries."""
    return None if at is None else at.astimezone(UTC).isoformat()


def hhmm(t: time) -> str:
    return t.strftime("%H:%M")


def checks_json(checks: tuple[CheckTime, ...]) -> list[dict[str, Any]]:
    return [{"at": hhmm(c.at), "tolerance_min": c.tolerance_min} for c in checks]


def checks_from_json(items: list[dict[str, Any]]) -> tuple[CheckTime, ...]:
    return tuple(
        CheckTime(at=time.fromisoformat(i["at"]), tolerance_min=int(i["tolerance_min"]))
        for i in items
    )


def deadlines_json(d: Deadlines) -> dict[str, dict[str, int]]:
    """``{"view": {"respond_s": .., "repeat_s": .., "escalate_s": ..}, "call": .., ...}``."""
    return {
        step.value: {
            "respond_s": d.of(step).respond_s,
            "repeat_s": d.of(step).repeat_s,
            "escalate_s": d.of(step).escalate_s,
        }
        for step in HumanStep
    }


def deadlines_from_json(items: dict[str, dict[str, Any]]) -> Deadlines:
    """The inverse of :func:`deadlines_json`; a step left out keeps its default terms."""
    default = Deadlines()
    return Deadlines(
        **{
            step.value: StepDeadline(
                respond_s=int(items[step.value]["respond_s"]),
                repeat_s=int(items[step.value]["repeat_s"]),
                escalate_s=int(items[step.value]["escalate_s"]),
            )
            if step.value in items
            else default.of(step)
            for step in HumanStep
        }
    )


def windows_json(windows: tuple[TimeWindow, ...]) -> list[dict[str, str]]:
    return [{"start": hhmm(w.start), "end": hhmm(w.end)} for w in windows]


def windows_from_json(items: list[dict[str, Any]]) -> tuple[TimeWindow, ...]:
    return tuple(
        TimeWindow(start=time.fromisoformat(i["start"]), end=time.fromisoformat(i["end"]))
        for i in items
    )


# --- API responses (personal data included: only for authorised staff) ----------------------


def recipient_json(r: CareRecipient) -> dict[str, Any]:
    return {
        "recipient_id": r.recipient_id,
        "display_name": r.display_name,
        "home": r.home,
        "door_code_ref": r.door_code_ref,
        "time_zone": r.time_zone,
        "language": r.language,
        "created_at": iso(r.created_at),
        "team_id": r.team_id,
    }


def cohabitant_json(c: Cohabitant) -> dict[str, Any]:
    return {
        "cohabitant_id": c.cohabitant_id,
        "recipient_id": c.recipient_id,
        "display_name": c.display_name,
        "moved_in_at": iso(c.moved_in_at),
        "moved_out_at": iso(c.moved_out_at),
    }


def plan_json(p: CarePlan) -> dict[str, Any]:
    return {
        "plan_id": p.plan_id,
        "recipient_id": p.recipient_id,
        "decision_ref": p.decision_ref,
        "valid_from": iso(p.valid_from),
        "valid_until": iso(p.valid_until),
        "checks": checks_json(p.checks),
        "view_cap_s": p.view_cap_s,
        "motion_may_clear": p.motion_may_clear,
        "retry_interval_s": p.retry_interval_s,
        "escalation": [s.value for s in p.escalation],
        "instruction": p.instruction,
        "paused_checks": p.paused_checks.value,
        "call_cap_s": p.call_cap_s,
        "announce_s": p.announce_s,
        "live_countdown": p.live_countdown,
        "deadlines": deadlines_json(p.deadlines),
        "created_at": iso(p.created_at),
        "created_by": p.created_by,
        "ended_at": iso(p.ended_at),
        "ended_by": p.ended_by,
    }


def consent_json(c: Consent) -> dict[str, Any]:
    return {
        "consent_id": c.consent_id,
        "recipient_id": c.recipient_id,
        "person": c.person,
        "purpose": c.purpose.value,
        "version": c.version,
        "basis": c.basis.value if c.basis else None,
        "basis_ref": c.basis_ref,
        "has_legal_basis": c.has_legal_basis,
        "informed_by": c.informed_by,
        "informed_how": c.informed_how,
        "given_at": iso(c.given_at),
        "valid_from": iso(c.valid_from),
        "valid_until": iso(c.valid_until),
        "windows": windows_json(c.windows),
        "document_ref": c.document_ref,
        "recorded_at": iso(c.recorded_at),
        "recorded_by": c.recorded_by,
        "withdrawn_at": iso(c.withdrawn_at),
        "withdrawn_by": c.withdrawn_by,
        "withdrawal_reason": c.withdrawal_reason,
    }


def pause_json(p: Pause) -> dict[str, Any]:
    return {
        "pause_id": p.pause_id,
        "recipient_id": p.recipient_id,
        "starts_at": iso(p.starts_at),
        "ends_at": iso(p.ends_at),
        "source": p.source.value,
        "reason": p.reason.value,
        "note": p.note,
        "created_at": iso(p.created_at),
        "created_by": p.created_by,
        "ended_by": p.ended_by,
    }


def request_json(r: BindingRequest) -> dict[str, Any]:
    return {
        "request_id": r.request_id,
        "action": r.action.value,
        "device_id": r.device_id,
        "recipient_id": r.recipient_id,
        "requested_by": r.requested_by,
        "requested_at": iso(r.requested_at),
        "expires_at": iso(r.expires_at),
        "confirmed_by": r.confirmed_by,
        "confirmed_at": iso(r.confirmed_at),
        "cancelled_at": iso(r.cancelled_at),
        "proof": r.proof.value,
        "code_expires_at": iso(r.code_expires_at),
        "code_attempts_left": (
            max(0, rules.MAX_CODE_ATTEMPTS - r.code_attempts)
            if r.proof is BindingProof.CODE
            else None
        ),
        "button_pressed_at": iso(r.button_pressed_at),
    }


def binding_json(b: Binding) -> dict[str, Any]:
    return {
        "binding_id": b.binding_id,
        "device_id": b.device_id,
        "device_kind": b.device_kind,
        "recipient_id": b.recipient_id,
        "bound_at": iso(b.bound_at),
        "requested_by": b.requested_by,
        "bound_by": b.bound_by,
        "unbound_at": iso(b.unbound_at),
        "unbound_by": b.unbound_by,
    }


def suspension_json(s: Suspension) -> dict[str, Any]:
    return {
        "suspension_id": s.suspension_id,
        "recipient_id": s.recipient_id,
        "device_id": s.device_id,
        "event_type": s.event_type.value,
        "started_at": iso(s.started_at),
        "event_count": s.event_count,
        "lifted_at": iso(s.lifted_at),
        "lifted_by": s.lifted_by,
        "reason": s.reason.value,
    }


def person_asked_json(p: PersonAsked) -> dict[str, Any]:
    return {
        "person_id": p.person_id,
        "how": p.how.value,
        "spoken_at": iso(p.spoken_at),
        "answers": {k.value: v.value for k, v in p.answers},
    }


def reverification_json(r: Reverification) -> dict[str, Any]:
    return {
        "reverification_id": r.reverification_id,
        "recipient_id": r.recipient_id,
        "verified_by": r.verified_by,
        "recorded_at": iso(r.recorded_at),
        "people": [person_asked_json(p) for p in r.people],
        "outcome": r.outcome.value,
        "suspension_ids": list(r.suspension_ids),
        "withdrawn_consent_ids": list(r.withdrawn_consent_ids),
    }


def decision_json(d: Decision) -> dict[str, Any]:
    return {
        "allowed": d.allowed,
        "reason": d.reason.value if d.reason else None,
        "recipient_id": d.recipient_id,
        "plan_id": d.plan_id,
        "view_cap_s": d.view_cap_s,
        "call_cap_s": d.call_cap_s,
        "announce_s": d.announce_s,
        "live_countdown": d.live_countdown,
    }


def basis_json(b: RecipientBasis) -> dict[str, Any]:
    return {
        "recipient": recipient_json(b.recipient),
        "cohabitants": [cohabitant_json(c) for c in b.cohabitants],
        "care_plans": [plan_json(p) for p in b.plans],
        "consents": [consent_json(c) for c in b.consents],
        "pauses": [pause_json(p) for p in b.pauses],
        "bindings": [binding_json(x) for x in b.bindings],
        "suspensions": [suspension_json(s) for s in b.suspensions],
    }


def change_json(c: ConsentChange) -> dict[str, Any]:
    return {
        "event_id": c.event_id,
        "kind": c.kind.value,
        "recipient_id": c.recipient_id,
        "device_ids": list(c.device_ids),
        "at": iso(c.at),
    }


# --- audit facts ---------------------------------------------------------------------------
# The chained payload never holds free text (issue 18): a reference typed by staff (the
# decision, the legal basis, a document) may name the brukare, and the chain cannot be erased.
# It stays in its row, which erase_recipient blanks; the entry says only whether there was one.


def plan_audit(p: CarePlan) -> dict[str, Any]:
    return {
        "plan_id": p.plan_id,
        "has_decision_ref": bool(p.decision_ref),
        "valid_from": p.valid_from,
        "valid_until": p.valid_until,
        "checks": checks_json(p.checks),
        "view_cap_s": p.view_cap_s,
        "motion_may_clear": p.motion_may_clear,
        "retry_interval_s": p.retry_interval_s,
        "escalation": [s.value for s in p.escalation],
        "paused_checks": p.paused_checks.value,
        "call_cap_s": p.call_cap_s,
        "announce_s": p.announce_s,
        "live_countdown": p.live_countdown,
        "deadlines": deadlines_json(p.deadlines),
    }


def consent_audit(c: Consent) -> dict[str, Any]:
    return {
        "consent_id": c.consent_id,
        "person": c.person,
        "purpose": c.purpose.value,
        "version": c.version,
        "basis": c.basis.value if c.basis else None,
        "has_basis_ref": bool(c.basis_ref),
        "given_at": c.given_at,
        "valid_from": c.valid_from,
        "valid_until": c.valid_until,
        "windows": windows_json(c.windows),
        "has_document_ref": bool(c.document_ref),
    }


def pause_audit(p: Pause) -> dict[str, Any]:
    return {
        "pause_id": p.pause_id,
        "starts_at": p.starts_at,
        "ends_at": p.ends_at,
        "source": p.source.value,
        "reason": p.reason.value,
    }
