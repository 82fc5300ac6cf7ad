"""JSON Schemas of the consent routes' request bodies, as published in the OpenAPI document.

The handlers in :mod:`consent.api` validate every field themselves (with the field's name in the
error); these schemas describe the same shapes to integrators.
"""

from __future__ import annotations

from typing import Any

from consent.model import (
    DEFAULT_RETRY_INTERVAL_S,
    DEFAULT_VIEW_CAP_S,
    MAX_VIEW_CAP_S,
    MIN_VIEW_CAP_S,
    Basis,
    BindingAction,
    EscalationStep,
    PausedCheckPolicy,
    PauseReason,
    PauseSource,
    Purpose,
)

_TEXT = {"type": "string"}
_NTEXT = {"type": ["string", "null"]}
_ID = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,63}$"}
_INSTANT = {"type": "string", "description": "ISO 8601; without offset: local time"}
_HHMM_S = {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "additionalProperties": False,
        "properties": props,
    }


def _enum(kind: type[Any]) -> dict[str, Any]:
    return {"type": "string", "enum": [m.value for m in kind]}


RECIPIENT_BODY = _obj(
    ["display_name"],
    recipient_id=_ID,
    display_name=_TEXT,
    home=_TEXT,
    time_zone=_TEXT,
    language=_TEXT,
)
COHABITANT_BODY = _obj(
    ["display_name"], cohabitant_id=_ID, display_name=_TEXT, moved_in_at=_INSTANT
)
PLAN_BODY = _obj(
    ["decision_ref", "checks"],
    plan_id=_ID,
    decision_ref=_TEXT,
    valid_from=_INSTANT,
    valid_until=_INSTANT,
    checks={
        "type": "array",
        "minItems": 1,
        "maxItems": 24,
        "items": _obj(["at"], at=_HHMM_S, tolerance_min={"type": "integer"}),
    },
    view_cap_s={
        "type": "integer",
        "default": DEFAULT_VIEW_CAP_S,
        "minimum": MIN_VIEW_CAP_S,
        "maximum": MAX_VIEW_CAP_S,
    },
    motion_may_clear={"type": "boolean", "default": False},
    retry_interval_s={"type": "integer", "default": DEFAULT_RETRY_INTERVAL_S},
    escalation={"type": "array", "items": _enum(EscalationStep)},
    instruction=_TEXT,
    paused_checks=_enum(PausedCheckPolicy),
)
CONSENT_BODY = _obj(
    ["person", "purpose"],
    person={"type": "string", "description": "'recipient' or a cohabitant_id"},
    purpose=_enum(Purpose),
    basis={"type": ["string", "null"], "enum": [*Basis, None]},
    basis_ref=_NTEXT,
    informed_by=_NTEXT,
    informed_how=_NTEXT,
    given_at=_INSTANT,
    valid_from=_INSTANT,
    valid_until=_INSTANT,
    document_ref=_NTEXT,
    windows={"type": "array", "items": _obj(["start", "end"], start=_HHMM_S, end=_HHMM_S)},
)
WITHDRAW_BODY = _obj([], withdrawn_at=_INSTANT, reason=_NTEXT)
PAUSE_BODY = _obj(
    ["source", "reason"],
    starts_at=_INSTANT,
    ends_at=_INSTANT,
    source=_enum(PauseSource),
    reason=_enum(PauseReason),
    note=_TEXT,
)
REVERIFY_BODY = _obj(["consent_verified"], consent_verified={"const": True})
BIND_BODY = _obj([], action=_enum(BindingAction), recipient_id=_ID)
CONFIRM_BODY = _obj(["recipient_id"], recipient_id=_ID)


def end_body(key: str) -> dict[str, Any]:
    return _obj([], **{key: _INSTANT})
