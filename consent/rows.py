"""Decoding stored rows into the consent model: from asyncpg records and from the JSON objects
that ``json_agg`` returns (timestamps then arrive as ISO strings)."""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any, Protocol

from consent import records
from consent.model import (
    Basis,
    BehaviourEvent,
    Binding,
    BindingAction,
    BindingProof,
    BindingRequest,
    CarePlan,
    CareRecipient,
    CheckTime,
    Cohabitant,
    Consent,
    Deadlines,
    EscalationStep,
    Pause,
    PausedCheckPolicy,
    PauseReason,
    PauseSource,
    PersonAsked,
    Purpose,
    Reverification,
    ReverifyAnswer,
    ReverifyHow,
    ReverifyOutcome,
    Suspension,
    SuspensionReason,
    TimeWindow,
)
from kernel.tenancy import DEFAULT_TEAM


class Row(Protocol):
    """An asyncpg record or a decoded JSON object."""

    def __getitem__(self, key: str, /) -> Any: ...


def ts(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def ts_opt(value: Any) -> datetime | None:
    return None if value is None else ts(value)


def js(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


# Planning reads every brukare's plan and consents at once (tens of thousands of rows), and most
# of them share the same JSON: the agreed times, the deadlines, the windows. Those decode once
# per distinct text (the values are immutable); a value already decoded (a JSON object from
# ``json_agg``) decodes as before.


@functools.lru_cache(maxsize=4096)
def _checks(raw: str) -> tuple[CheckTime, ...]:
    return records.checks_from_json(json.loads(raw))


@functools.lru_cache(maxsize=4096)
def _deadlines(raw: str) -> Deadlines:
    return records.deadlines_from_json(json.loads(raw))


@functools.lru_cache(maxsize=4096)
def _windows(raw: str) -> tuple[TimeWindow, ...]:
    return records.windows_from_json(json.loads(raw))


@functools.lru_cache(maxsize=256)
def _escalation(steps: tuple[str, ...]) -> tuple[EscalationStep, ...]:
    return tuple(EscalationStep(s) for s in steps)


_PURPOSES = {p.value: p for p in Purpose}
_BASES = {b.value: b for b in Basis}


def _purpose(value: str) -> Purpose:
    return _PURPOSES.get(value) or Purpose(value)  # an unknown value raises as before


def _plan_checks(value: Any) -> tuple[CheckTime, ...]:
    return _checks(value) if isinstance(value, str) else records.checks_from_json(value)


def _plan_deadlines(value: Any) -> Deadlines:
    return _deadlines(value) if isinstance(value, str) else records.deadlines_from_json(value)


def _consent_windows(value: Any) -> tuple[TimeWindow, ...]:
    return _windows(value) if isinstance(value, str) else records.windows_from_json(value)


def _text_or_empty(d: Row, key: str) -> str:
    """A text column added later: empty in rows written before it (exports, older JSON)."""
    try:
        return str(d[key] or "")
    except KeyError:
        return ""


def recipient(d: Row) -> CareRecipient:
    return CareRecipient(
        recipient_id=d["recipient_id"],
        display_name=d["display_name"],
        home=d["home"],
        time_zone=d["time_zone"],
        door_code_ref=_text_or_empty(d, "door_code_ref"),
        language=d["language"],
        created_at=ts_opt(d["created_at"]),
        team_id=_text_or_empty(d, "team_id") or DEFAULT_TEAM,
    )


def cohabitant(d: Row) -> Cohabitant:
    return Cohabitant(
        cohabitant_id=d["cohabitant_id"],
        recipient_id=d["recipient_id"],
        display_name=d["display_name"],
        moved_in_at=ts(d["moved_in_at"]),
        moved_out_at=ts_opt(d["moved_out_at"]),
    )


def plan(d: Row) -> CarePlan:
    return CarePlan(
        plan_id=d["plan_id"],
        recipient_id=d["recipient_id"],
        decision_ref=d["decision_ref"],
        valid_from=ts(d["valid_from"]),
        valid_until=ts_opt(d["valid_until"]),
        checks=_plan_checks(d["checks"]),
        view_cap_s=d["view_cap_s"],
        motion_may_clear=d["motion_may_clear"],
        retry_interval_s=d["retry_interval_s"],
        escalation=_escalation(tuple(d["escalation"])),
        instruction=d["instruction"],
        paused_checks=PausedCheckPolicy(d["paused_checks"]),
        call_cap_s=d["call_cap_s"],
        announce_s=d["announce_s"],
        live_countdown=d["live_countdown"],
        deadlines=_plan_deadlines(d["deadlines"]),
        created_at=ts_opt(d["created_at"]),
        created_by=d["created_by"],
        ended_at=ts_opt(d["ended_at"]),
        ended_by=d["ended_by"],
    )


def consent(d: Row) -> Consent:
    return Consent(
        consent_id=d["consent_id"],
        recipient_id=d["recipient_id"],
        cohabitant_id=d["cohabitant_id"],
        purpose=_purpose(d["purpose"]),
        version=d["version"],
        basis=(_BASES.get(d["basis"]) or Basis(d["basis"])) if d["basis"] else None,
        basis_ref=d["basis_ref"],
        informed_by=d["informed_by"],
        informed_how=d["informed_how"],
        given_at=ts(d["given_at"]),
        valid_from=ts(d["valid_from"]),
        valid_until=ts_opt(d["valid_until"]),
        windows=_consent_windows(d["windows"]),
        document_ref=d["document_ref"],
        recorded_at=ts_opt(d["recorded_at"]),
        recorded_by=d["recorded_by"],
        withdrawn_at=ts_opt(d["withdrawn_at"]),
        withdrawn_by=d["withdrawn_by"],
        withdrawal_reason=d["withdrawal_reason"],
    )


def pause(d: Row) -> Pause:
    return Pause(
        pause_id=d["pause_id"],
        recipient_id=d["recipient_id"],
        starts_at=ts(d["starts_at"]),
        ends_at=ts_opt(d["ends_at"]),
        source=PauseSource(d["source"]),
        reason=PauseReason(d["reason"]),
        note=d["note"],
        created_at=ts_opt(d["created_at"]),
        created_by=d["created_by"],
        ended_by=d["ended_by"],
    )


def binding(d: Row) -> Binding:
    return Binding(
        binding_id=d["binding_id"],
        device_id=d["device_id"],
        recipient_id=d["recipient_id"],
        bound_at=ts(d["bound_at"]),
        requested_by=d["requested_by"],
        bound_by=d["bound_by"],
        unbound_at=ts_opt(d["unbound_at"]),
        unbound_by=d["unbound_by"],
        device_kind=d["device_kind"],
    )


def request(d: Row, *, button_pressed_at: datetime | None = None) -> BindingRequest:
    """A ``binding_requests`` row; ``button_pressed_at`` as the reads found it (not stored)."""
    return BindingRequest(
        request_id=d["request_id"],
        action=BindingAction(d["action"]),
        device_id=d["device_id"],
        recipient_id=d["recipient_id"],
        requested_by=d["requested_by"],
        requested_at=ts(d["requested_at"]),
        expires_at=ts(d["expires_at"]),
        confirmed_by=d["confirmed_by"],
        confirmed_at=ts_opt(d["confirmed_at"]),
        cancelled_at=ts_opt(d["cancelled_at"]),
        proof=BindingProof(d["proof"]),
        code_hash=d["code_hash"],
        code_expires_at=ts_opt(d["code_expires_at"]),
        code_attempts=d["code_attempts"],
        button_pressed_at=button_pressed_at,
    )


def suspension(d: Row) -> Suspension:
    return Suspension(
        suspension_id=d["suspension_id"],
        recipient_id=d["recipient_id"],
        device_id=d["device_id"],
        event_type=BehaviourEvent(d["event_type"]),
        started_at=ts(d["started_at"]),
        event_count=d["event_count"],
        lifted_at=ts_opt(d["lifted_at"]),
        lifted_by=d["lifted_by"],
        reason=SuspensionReason(d["reason"]),
    )


def reverification(d: Row) -> Reverification:
    people = js(d["people"])
    return Reverification(
        reverification_id=d["reverification_id"],
        recipient_id=d["recipient_id"],
        verified_by=d["verified_by"],
        recorded_at=ts(d["recorded_at"]),
        people=tuple(
            PersonAsked(
                person_id=p["person_id"],
                how=ReverifyHow(p["how"]),
                spoken_at=ts(p["spoken_at"]),
                answers=tuple(
                    (Purpose(k), ReverifyAnswer(v)) for k, v in sorted(p["answers"].items())
                ),
            )
            for p in people
        ),
        outcome=ReverifyOutcome(d["outcome"]),
        suspension_ids=tuple(d["suspension_ids"]),
        withdrawn_consent_ids=tuple(d["withdrawn_consent_ids"]),
    )
