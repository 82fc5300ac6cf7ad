"""HTTP handlers of the consent slice for brukare, cohabitants, care plans, consents and
withdrawal, pauses, suspension and re-verification (routes in :func:`consent.api.routes`). Each
parses the request, calls the store's port, and shapes the answer."""

from __future__ import annotations

import structlog
from aiohttp import web

from consent import api_context as ctx
from consent import records, rules
from consent.errors import InvalidInput
from consent.model import (
    DEFAULT_RETRY_INTERVAL_S,
    DEFAULT_TOLERANCE_MIN,
    DEFAULT_VIEW_CAP_S,
    DEFAULT_ZONE,
    Basis,
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
from consent.ports import new_id
from consent.rules import DEFAULT_PLAN_HOUR
from kernel.access import caller
from kernel.body import Body

log = structlog.get_logger("consent.api")


# --- brukare and cohabitants ---------------------------------------------------------------


async def list_recipients(request: web.Request) -> web.Response:
    found = await ctx.store(request).list_recipients()
    return ctx.answer({"recipients": [records.recipient_json(r) for r in found]})


async def create_recipient(request: web.Request) -> web.Response:
    who = caller(request)
    b = await ctx.body(request)
    r = CareRecipient(
        recipient_id=b.identifier("recipient_id", required=False) or new_id("r"),
        display_name=b.req_text("display_name"),
        home=b.text("home", max_len=500, required=False) or "",
        time_zone=b.text("time_zone", max_len=64, required=False) or DEFAULT_ZONE,
        language=b.text("language", max_len=8, required=False) or "sv",
    )
    b.done()
    stored = await ctx.store(request).add_recipient(r, actor=who.staff_id, at=ctx.now(request))
    log.info("recipient_created", recipient_id=stored.recipient_id, staff_id=who.staff_id)
    return ctx.answer(records.recipient_json(stored), 201)


async def get_recipient(request: web.Request) -> web.Response:
    basis = await ctx.store(request).basis(request.match_info["recipient_id"])
    now = ctx.now(request)
    status = {
        p.value: records.decision_json(rules.decide_recipient(basis, purpose=p, at=now))
        for p in Purpose
    }
    return ctx.answer({**records.basis_json(basis), "now": records.iso(now), "gate": status})


async def add_cohabitant(request: web.Request) -> web.Response:
    who = caller(request)
    rid = request.match_info["recipient_id"]
    zone = await ctx.recipient_zone(request, rid)
    now = ctx.now(request)
    b = await ctx.body(request)
    c = Cohabitant(
        cohabitant_id=b.identifier("cohabitant_id", required=False) or new_id("co"),
        recipient_id=rid,
        display_name=b.req_text("display_name"),
        moved_in_at=b.instant("moved_in_at", zone, now) or now,
    )
    b.done()
    stored = await ctx.store(request).add_cohabitant(c, actor=who.staff_id, at=now)
    log.info("cohabitant_added", recipient_id=rid, cohabitant_id=c.cohabitant_id)
    return ctx.answer(records.cohabitant_json(stored), 201)


async def move_out_cohabitant(request: web.Request) -> web.Response:
    who = caller(request)
    now = ctx.now(request)
    b = await ctx.body(request)
    moved_out_at = b.instant("moved_out_at", ctx.zone(request), now) or now
    b.done()
    c = await ctx.store(request).end_cohabitant(
        request.match_info["cohabitant_id"], moved_out_at=moved_out_at, actor=who.staff_id, at=now
    )
    log.info("cohabitant_moved_out", recipient_id=c.recipient_id, cohabitant_id=c.cohabitant_id)
    return ctx.answer(records.cohabitant_json(c))


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
    zone = await ctx.recipient_zone(request, rid)
    now = ctx.now(request)
    b = await ctx.body(request)
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
    plan_hour = request.app.get(ctx.PLAN_HOUR, DEFAULT_PLAN_HOUR)  # agreed times fit a round
    stored = await ctx.store(request).add_plan(
        plan, actor=who.staff_id, at=now, plan_hour=plan_hour
    )
    log.info("care_plan_created", recipient_id=rid, plan_id=stored.plan_id)
    return ctx.answer(records.plan_json(stored), 201)


async def end_plan(request: web.Request) -> web.Response:
    who = caller(request)
    now = ctx.now(request)
    b = await ctx.body(request)
    ended_at = b.instant("ended_at", ctx.zone(request), now) or now
    b.done()
    p = await ctx.store(request).end_plan(
        request.match_info["plan_id"], ended_at=ended_at, actor=who.staff_id, at=now
    )
    log.info("care_plan_ended", recipient_id=p.recipient_id, plan_id=p.plan_id)
    return ctx.answer(records.plan_json(p))


# --- consents ------------------------------------------------------------------------------


async def record_consent(request: web.Request) -> web.Response:
    who = caller(request)
    rid = request.match_info["recipient_id"]
    zone = await ctx.recipient_zone(request, rid)
    now = ctx.now(request)
    b = await ctx.body(request)
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
    stored = await ctx.store(request).record_consent(c, actor=who.staff_id, at=now)
    log.info(
        "consent_recorded",
        recipient_id=rid,
        consent_id=stored.consent_id,
        purpose=stored.purpose.value,
        version=stored.version,
    )
    return ctx.answer(records.consent_json(stored), 201)


async def withdraw_consent(request: web.Request) -> web.Response:
    who = caller(request)
    now = ctx.now(request)
    b = await ctx.body(request)
    withdrawn_at = b.instant("withdrawn_at", ctx.zone(request), now) or now
    reason = b.text("reason", max_len=500, required=False)
    b.done()
    c = await ctx.store(request).withdraw_consent(
        request.match_info["consent_id"],
        withdrawn_at=withdrawn_at,
        reason=reason,
        actor=who.staff_id,
        at=now,
    )
    log.info("consent_withdrawn", recipient_id=c.recipient_id, consent_id=c.consent_id)
    return ctx.answer(records.consent_json(c))


# --- pauses and suspension -----------------------------------------------------------------


async def create_pause(request: web.Request) -> web.Response:
    who = caller(request)
    rid = request.match_info["recipient_id"]
    zone = await ctx.recipient_zone(request, rid)
    now = ctx.now(request)
    b = await ctx.body(request)
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
    stored = await ctx.store(request).add_pause(p, actor=who.staff_id, at=now)
    log.info("pause_created", recipient_id=rid, pause_id=stored.pause_id)
    return ctx.answer(records.pause_json(stored), 201)


async def end_pause(request: web.Request) -> web.Response:
    who = caller(request)
    now = ctx.now(request)
    b = await ctx.body(request)
    ended_at = b.instant("ended_at", ctx.zone(request), now) or now
    b.done()
    p = await ctx.store(request).end_pause(
        request.match_info["pause_id"], ended_at=ended_at, actor=who.staff_id, at=now
    )
    log.info("pause_ended", recipient_id=p.recipient_id, pause_id=p.pause_id)
    return ctx.answer(records.pause_json(p))


async def reverify(request: web.Request) -> web.Response:
    who = caller(request)
    rid = request.match_info["recipient_id"]
    b = await ctx.body(request)
    if b.boolean("consent_verified", False) is not True:
        raise InvalidInput(
            "consent_verified",
            "must_confirm",
            "set consent_verified to true once the brukare's consent has been re-verified",
        )
    b.done()
    lifted = await ctx.store(request).reverify(rid, actor=who.staff_id, at=ctx.now(request))
    log.info("supervision_reinstated", recipient_id=rid, suspensions=len(lifted))
    return ctx.answer({"lifted": [records.suspension_json(s) for s in lifted]})


async def list_suspensions(request: web.Request) -> web.Response:
    """Supervision suspended by device behaviour and not yet re-verified (hard rule 8)."""
    now = ctx.now(request)
    bases = await ctx.store(request).bases()
    found = sorted(
        (s for b in bases.values() for s in b.suspensions if s.is_active(now)),
        key=lambda s: (s.started_at, s.recipient_id),
    )
    return ctx.answer({"suspensions": [records.suspension_json(s) for s in found]})
