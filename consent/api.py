"""HTTP routes of the consent slice: brukare, cohabitants, care plans, consents and withdrawal,
pauses, suspension and re-verification, two-step device binding, the gate, and the camera register.

Bodies are JSON objects; every validation error names its field (``checks[1].tolerance_min``).
Instants are ISO 8601; without an offset they are local time in the brukare's zone (or
:data:`ZONE` where no brukare is named) and refused if that time does not exist or is ambiguous.
The acting staff id comes from :func:`kernel.access.caller`. Dependencies come through the typed
app keys below, set by the composition root: :data:`STORE`, :data:`CLOCK`, :data:`ZONE`.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

import structlog
from aiohttp import web

from consent import records, rules, schemas
from consent import register as camera_register
from consent.errors import InvalidInput
from consent.model import (
    DEFAULT_RETRY_INTERVAL_S,
    DEFAULT_TOLERANCE_MIN,
    DEFAULT_VIEW_CAP_S,
    DEFAULT_ZONE,
    Basis,
    BindingAction,
    CarePlan,
    CareRecipient,
    CheckTime,
    Cohabitant,
    Consent,
    EscalationStep,
    Pause,
    PausedCheckPolicy,
    PauseReason,
    PauseSource,
    Purpose,
    TimeWindow,
)
from consent.ports import ConsentStore, new_id
from consent.rules import DEFAULT_PLAN_HOUR
from kernel import access
from kernel.access import caller
from kernel.body import Body, parse_instant, read_object
from kernel.roles import ADMINS, DEVICE_STAFF, OPERATORS, STAFF, Route
from kernel.values import is_id

log = structlog.get_logger(__name__)

STORE: web.AppKey[ConsentStore] = web.AppKey("consent_store")
CLOCK = access.CLOCK  # the service clock (kernel.access); set by the composition root
ZONE: web.AppKey[tzinfo] = web.AppKey("consent_zone")
"""The zone for local times on routes that name no brukare (the deployment's default)."""
PLAN_HOUR: web.AppKey[int] = web.AppKey("consent_plan_hour")
"""The hour the night round starts (settings ``plan_hour``): agreed times must fall in a round."""

_TAGS = ("consent",)


def _store(request: web.Request) -> ConsentStore:
    return request.app[STORE]


def _now(request: web.Request) -> datetime:
    return request.app[CLOCK]()


def _zone(request: web.Request) -> tzinfo:
    return request.app.get(ZONE) or rules.zone_of(DEFAULT_ZONE)


async def _body(request: web.Request) -> Body:
    return Body(await read_object(request))


def _json(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


# --- brukare and cohabitants ---------------------------------------------------------------


async def list_recipients(request: web.Request) -> web.Response:
    found = await _store(request).list_recipients()
    return _json({"recipients": [records.recipient_json(r) for r in found]})


async def create_recipient(request: web.Request) -> web.Response:
    who = caller(request)
    b = await _body(request)
    r = CareRecipient(
        recipient_id=b.identifier("recipient_id", required=False) or new_id("r"),
        display_name=b.req_text("display_name"),
        home=b.text("home", max_len=500, required=False) or "",
        time_zone=b.text("time_zone", max_len=64, required=False) or DEFAULT_ZONE,
        language=b.text("language", max_len=8, required=False) or "sv",
    )
    b.done()
    stored = await _store(request).add_recipient(r, actor=who.staff_id, at=_now(request))
    log.info("recipient_created", recipient_id=stored.recipient_id, staff_id=who.staff_id)
    return _json(records.recipient_json(stored), 201)


async def get_recipient(request: web.Request) -> web.Response:
    basis = await _store(request).basis(request.match_info["recipient_id"])
    now = _now(request)
    status = {
        p.value: records.decision_json(rules.decide_recipient(basis, purpose=p, at=now))
        for p in Purpose
    }
    return _json({**records.basis_json(basis), "now": records.iso(now), "gate": status})


async def _recipient_zone(request: web.Request, recipient_id: str) -> tzinfo:
    basis = await _store(request).basis(recipient_id)
    return rules.zone_of(basis.recipient.time_zone)


async def add_cohabitant(request: web.Request) -> web.Response:
    who = caller(request)
    rid = request.match_info["recipient_id"]
    zone = await _recipient_zone(request, rid)
    now = _now(request)
    b = await _body(request)
    c = Cohabitant(
        cohabitant_id=b.identifier("cohabitant_id", required=False) or new_id("co"),
        recipient_id=rid,
        display_name=b.req_text("display_name"),
        moved_in_at=b.instant("moved_in_at", zone, now) or now,
    )
    b.done()
    stored = await _store(request).add_cohabitant(c, actor=who.staff_id, at=now)
    log.info("cohabitant_added", recipient_id=rid, cohabitant_id=c.cohabitant_id)
    return _json(records.cohabitant_json(stored), 201)


async def move_out_cohabitant(request: web.Request) -> web.Response:
    who = caller(request)
    now = _now(request)
    b = await _body(request)
    moved_out_at = b.instant("moved_out_at", _zone(request), now) or now
    b.done()
    c = await _store(request).end_cohabitant(
        request.match_info["cohabitant_id"], moved_out_at=moved_out_at, actor=who.staff_id, at=now
    )
    log.info("cohabitant_moved_out", recipient_id=c.recipient_id, cohabitant_id=c.cohabitant_id)
    return _json(records.cohabitant_json(c))


# --- care plans ----------------------------------------------------------------------------


def _checks(b: Body) -> tuple[CheckTime, ...]:
    out = []
    for c in b.objects("checks"):
        out.append(
            CheckTime(
                at=c.hhmm("at"),
                tolerance_min=c.integer("tolerance_min", DEFAULT_TOLERANCE_MIN, -1440, 1440),
            )
        )
        c.done()
    return tuple(out)


async def create_plan(request: web.Request) -> web.Response:
    who = caller(request)
    rid = request.match_info["recipient_id"]
    zone = await _recipient_zone(request, rid)
    now = _now(request)
    b = await _body(request)
    ladder = b.strings("escalation")
    try:
        escalation = (
            tuple(EscalationStep(s) for s in ladder)
            if ladder is not None
            else (EscalationStep.RETRY, EscalationStep.CALL, EscalationStep.PATROL)
        )
    except ValueError:
        raise InvalidInput(
            "escalation", "invalid_choice", "escalation steps are retry, call and patrol"
        ) from None
    plan = CarePlan(
        plan_id=b.identifier("plan_id", required=False) or new_id("plan"),
        recipient_id=rid,
        decision_ref=b.req_text("decision_ref", max_len=128),
        valid_from=b.instant("valid_from", zone, now) or now,
        valid_until=b.instant("valid_until", zone),
        checks=_checks(b),
        view_cap_s=b.integer("view_cap_s", DEFAULT_VIEW_CAP_S, 0, 86400),
        motion_may_clear=b.boolean("motion_may_clear", False),
        retry_interval_s=b.integer("retry_interval_s", DEFAULT_RETRY_INTERVAL_S, 0, 86400),
        escalation=escalation,
        instruction=b.text("instruction", max_len=2000, required=False) or "",
        paused_checks=b.enum("paused_checks", PausedCheckPolicy, PausedCheckPolicy.PHYSICAL_VISIT),
    )
    b.done()
    plan_hour = request.app.get(PLAN_HOUR, DEFAULT_PLAN_HOUR)  # agreed times fit a round
    stored = await _store(request).add_plan(plan, actor=who.staff_id, at=now, plan_hour=plan_hour)
    log.info("care_plan_created", recipient_id=rid, plan_id=stored.plan_id)
    return _json(records.plan_json(stored), 201)


async def end_plan(request: web.Request) -> web.Response:
    who = caller(request)
    now = _now(request)
    b = await _body(request)
    ended_at = b.instant("ended_at", _zone(request), now) or now
    b.done()
    p = await _store(request).end_plan(
        request.match_info["plan_id"], ended_at=ended_at, actor=who.staff_id, at=now
    )
    log.info("care_plan_ended", recipient_id=p.recipient_id, plan_id=p.plan_id)
    return _json(records.plan_json(p))


# --- consents ------------------------------------------------------------------------------


async def record_consent(request: web.Request) -> web.Response:
    who = caller(request)
    rid = request.match_info["recipient_id"]
    zone = await _recipient_zone(request, rid)
    now = _now(request)
    b = await _body(request)
    person = b.req_text("person", max_len=64)
    windows = []
    for w in b.objects("windows", required=False):
        windows.append(TimeWindow(start=w.hhmm("start"), end=w.hhmm("end")))
        w.done()
    given_at = b.instant("given_at", zone, now) or now
    c = Consent(
        consent_id=new_id("cons"),
        recipient_id=rid,
        cohabitant_id=None if person == "recipient" else person,
        purpose=b.enum("purpose", Purpose),
        version=0,
        basis=b.opt_enum("basis", Basis),
        basis_ref=b.text("basis_ref", max_len=200, required=False),
        informed_by=b.text("informed_by", max_len=200, required=False),
        informed_how=b.text("informed_how", max_len=1000, required=False),
        given_at=given_at,
        valid_from=b.instant("valid_from", zone, given_at) or given_at,
        valid_until=b.instant("valid_until", zone),
        windows=tuple(windows),
        document_ref=b.text("document_ref", max_len=200, required=False),
    )
    b.done()
    stored = await _store(request).record_consent(c, actor=who.staff_id, at=now)
    log.info(
        "consent_recorded",
        recipient_id=rid,
        consent_id=stored.consent_id,
        purpose=stored.purpose.value,
        version=stored.version,
    )
    return _json(records.consent_json(stored), 201)


async def withdraw_consent(request: web.Request) -> web.Response:
    who = caller(request)
    now = _now(request)
    b = await _body(request)
    withdrawn_at = b.instant("withdrawn_at", _zone(request), now) or now
    reason = b.text("reason", max_len=500, required=False)
    b.done()
    c = await _store(request).withdraw_consent(
        request.match_info["consent_id"],
        withdrawn_at=withdrawn_at,
        reason=reason,
        actor=who.staff_id,
        at=now,
    )
    log.info("consent_withdrawn", recipient_id=c.recipient_id, consent_id=c.consent_id)
    return _json(records.consent_json(c))


# --- pauses and suspension -----------------------------------------------------------------


async def create_pause(request: web.Request) -> web.Response:
    who = caller(request)
    rid = request.match_info["recipient_id"]
    zone = await _recipient_zone(request, rid)
    now = _now(request)
    b = await _body(request)
    p = Pause(
        pause_id=new_id("pause"),
        recipient_id=rid,
        starts_at=b.instant("starts_at", zone, now) or now,
        ends_at=b.instant("ends_at", zone),
        source=b.enum("source", PauseSource),
        reason=b.enum("reason", PauseReason),
        note=b.text("note", max_len=500, required=False) or "",
    )
    b.done()
    stored = await _store(request).add_pause(p, actor=who.staff_id, at=now)
    log.info("pause_created", recipient_id=rid, pause_id=stored.pause_id)
    return _json(records.pause_json(stored), 201)


async def end_pause(request: web.Request) -> web.Response:
    who = caller(request)
    now = _now(request)
    b = await _body(request)
    ended_at = b.instant("ended_at", _zone(request), now) or now
    b.done()
    p = await _store(request).end_pause(
        request.match_info["pause_id"], ended_at=ended_at, actor=who.staff_id, at=now
    )
    log.info("pause_ended", recipient_id=p.recipient_id, pause_id=p.pause_id)
    return _json(records.pause_json(p))


async def reverify(request: web.Request) -> web.Response:
    who = caller(request)
    rid = request.match_info["recipient_id"]
    b = await _body(request)
    if b.boolean("consent_verified", False) is not True:
        raise InvalidInput(
            "consent_verified",
            "must_confirm",
            "set consent_verified to true once the brukare's consent has been re-verified",
        )
    b.done()
    lifted = await _store(request).reverify(rid, actor=who.staff_id, at=_now(request))
    log.info("supervision_reinstated", recipient_id=rid, suspensions=len(lifted))
    return _json({"lifted": [records.suspension_json(s) for s in lifted]})


async def list_suspensions(request: web.Request) -> web.Response:
    """Supervision suspended by device behaviour and not yet re-verified (hard rule 8)."""
    now = _now(request)
    bases = await _store(request).bases()
    found = sorted(
        (s for b in bases.values() for s in b.suspensions if s.is_active(now)),
        key=lambda s: (s.started_at, s.recipient_id),
    )
    return _json({"suspensions": [records.suspension_json(s) for s in found]})


# --- device binding ------------------------------------------------------------------------


async def list_binding_requests(request: web.Request) -> web.Response:
    device_id = request.query.get("device_id")
    found = await _store(request).binding_requests(device_id=device_id)
    return _json({"requests": [records.request_json(r) for r in found]})


async def request_binding(request: web.Request) -> web.Response:
    who = caller(request)
    device_id = request.match_info["device_id"]
    b = await _body(request)
    action = b.enum("action", BindingAction, BindingAction.BIND)
    rid = b.identifier("recipient_id", required=action is BindingAction.BIND)
    b.done()
    req = await _store(request).request_binding(
        request_id=new_id("breq"),
        action=action,
        device_id=device_id,
        recipient_id=rid,
        actor=who.staff_id,
        at=_now(request),
    )
    log.info(
        "binding_requested", device_id=device_id, action=action.value, request_id=req.request_id
    )
    return _json(records.request_json(req), 201)


async def confirm_binding(request: web.Request) -> web.Response:
    who = caller(request)
    b = await _body(request)
    rid = b.identifier("recipient_id")
    b.done()
    assert rid is not None
    binding = await _store(request).confirm_binding(
        request.match_info["request_id"], recipient_id=rid, actor=who.staff_id, at=_now(request)
    )
    log.info(
        "binding_confirmed",
        device_id=binding.device_id,
        recipient_id=rid,
        bound=binding.unbound_at is None,
    )
    return _json(records.binding_json(binding))


# --- the gate and the register -------------------------------------------------------------


async def gate(request: web.Request) -> web.Response:
    q = request.query
    device_id = q.get("device_id", "")
    if not is_id(device_id):
        raise InvalidInput(
            "device_id", "invalid_id", "device_id is 1..64 lowercase letters, digits and dashes"
        )
    try:
        purpose = Purpose(q.get("purpose", Purpose.CAMERA_CHECK.value))
    except ValueError:
        raise InvalidInput("purpose", "invalid_choice", "unknown purpose") from None
    at = _now(request)
    if "at" in q:
        at = parse_instant(q["at"], "at", _zone(request))
        if (problem := rules.check_instant(at, "at")) is not None:
            raise InvalidInput.of(problem)
    basis = await _store(request).basis_for_device(device_id, at)
    decision = rules.decide(basis, device_id=device_id, purpose=purpose, at=at)
    return _json(
        {
            "device_id": device_id,
            "purpose": purpose.value,
            "at": records.iso(at),
            **records.decision_json(decision),
        }
    )


async def register(request: web.Request) -> web.Response:
    who = caller(request)
    fmt = request.query.get("format")
    if fmt is None:
        fmt = "csv" if "text/csv" in request.headers.get("Accept", "") else "json"
    if fmt not in {"csv", "json"}:
        raise InvalidInput("format", "invalid_choice", "format is csv or json")
    now = _now(request)
    rows = await _store(request).register(actor=who.staff_id, at=now)
    log.info("register_exported", staff_id=who.staff_id, rows=len(rows), format=fmt)
    if fmt == "csv":
        return web.Response(
            text=camera_register.csv_text(rows),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": 'attachment; filename="kameraregister.csv"'},
        )
    return _json(
        {"generated_at": records.iso(now), "cameras": [camera_register.row_json(r) for r in rows]}
    )


# --- routes --------------------------------------------------------------------------------


def routes() -> list[Route]:
    r = Route
    t = _TAGS
    return [
        r("GET", "/api/recipients", list_recipients, STAFF, "List brukare", tags=t),
        r(
            "POST",
            "/api/recipients",
            create_recipient,
            ADMINS,
            "Register a brukare",
            body=schemas.RECIPIENT_BODY,
            tags=t,
        ),
        r(
            "GET",
            "/api/recipients/{recipient_id}",
            get_recipient,
            STAFF,
            "A brukare with cohabitants, plans, consents, pauses, bindings, suspensions and the "
            "gate's answer now",
            tags=t,
        ),
        r(
            "POST",
            "/api/recipients/{recipient_id}/cohabitants",
            add_cohabitant,
            ADMINS,
            "Register a cohabitant (their consent is then required)",
            body=schemas.COHABITANT_BODY,
            tags=t,
        ),
        r(
            "POST",
            "/api/cohabitants/{cohabitant_id}/move-out",
            move_out_cohabitant,
            ADMINS,
            "A cohabitant moved out",
            body=schemas.end_body("moved_out_at"),
            tags=t,
        ),
        r(
            "POST",
            "/api/recipients/{recipient_id}/care-plans",
            create_plan,
            ADMINS,
            "Register a care plan (agreed check times, view cap, escalation)",
            body=schemas.PLAN_BODY,
            tags=t,
        ),
        r(
            "POST",
            "/api/care-plans/{plan_id}/end",
            end_plan,
            ADMINS,
            "End a care plan",
            body=schemas.end_body("ended_at"),
            tags=t,
        ),
        r(
            "POST",
            "/api/recipients/{recipient_id}/consents",
            record_consent,
            ADMINS,
            "Record a consent (a new version of the person's consent for the purpose)",
            body=schemas.CONSENT_BODY,
            tags=t,
        ),
        r(
            "POST",
            "/api/consents/{consent_id}/withdraw",
            withdraw_consent,
            OPERATORS,
            "Withdraw a consent; takes effect at once and ends live sessions",
            body=schemas.WITHDRAW_BODY,
            tags=t,
        ),
        r(
            "POST",
            "/api/recipients/{recipient_id}/pauses",
            create_pause,
            OPERATORS,
            "Pause camera checks (hospital, travel, visitors)",
            body=schemas.PAUSE_BODY,
            tags=t,
        ),
        r(
            "POST",
            "/api/pauses/{pause_id}/end",
            end_pause,
            OPERATORS,
            "End a pause",
            body=schemas.end_body("ended_at"),
            tags=t,
        ),
        r(
            "POST",
            "/api/recipients/{recipient_id}/reverify",
            reverify,
            ADMINS,
            "Lift a suspension after consent was re-verified",
            body=schemas.REVERIFY_BODY,
            tags=t,
        ),
        r(
            "GET",
            "/api/suspensions",
            list_suspensions,
            STAFF,
            "Brukare whose camera checks are suspended until consent is re-verified",
            tags=t,
        ),
        r(
            "GET",
            "/api/binding-requests",
            list_binding_requests,
            DEVICE_STAFF,
            "Binding requests (filter with ?device_id=)",
            tags=t,
        ),
        r(
            "POST",
            "/api/devices/{device_id}/binding-requests",
            request_binding,
            DEVICE_STAFF,
            "Step one: ask to bind a device to a brukare's home, or to unbind it",
            body=schemas.BIND_BODY,
            tags=t,
        ),
        r(
            "POST",
            "/api/binding-requests/{request_id}/confirm",
            confirm_binding,
            ADMINS,
            "Step two: confirm, naming the brukare",
            body=schemas.CONFIRM_BODY,
            tags=t,
        ),
        r(
            "GET",
            "/api/gate",
            gate,
            STAFF,
            "May this device be used for this purpose now (?device_id=&purpose=&at=)",
            tags=t,
        ),
        r(
            "GET",
            "/api/register",
            register,
            ADMINS,
            "The camera register (?format=csv|json); the export is audited",
            tags=t,
        ),
    ]
