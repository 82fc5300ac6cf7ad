"""HTTP handlers of the consent slice for brukare, cohabitants, care plans, consents and
withdrawal, pauses, suspension and re-verification (routes in :func:`consent.api.routes`). Each
body is one Struct, declared above its handler: the handler decodes it with
:func:`kernel.body.read_body`, resolves the instants in the brukare's zone, calls the store's port
(which checks the rules between records), and shapes the answer."""

from __future__ import annotations

from datetime import tzinfo
from typing import Annotated

import msgspec
import structlog
from aiohttp import web
from msgspec import Meta

from consent import api_context as ctx
from consent import records, rules
from consent.model import (
    DEFAULT_ANNOUNCE_S,
    DEFAULT_CALL_CAP_S,
    DEFAULT_DEADLINES,
    DEFAULT_LIVE_COUNTDOWN,
    DEFAULT_RETRY_INTERVAL_S,
    DEFAULT_TOLERANCE_MIN,
    DEFAULT_VIEW_CAP_S,
    DEFAULT_ZONE,
    MAX_ANNOUNCE_S,
    MAX_CALL_CAP_S,
    MAX_ESCALATE_S,
    MAX_REPEAT_S,
    MAX_RESPOND_S,
    MAX_VIEW_CAP_S,
    MIN_ANNOUNCE_S,
    MIN_CALL_CAP_S,
    MIN_ESCALATE_S,
    MIN_REPEAT_S,
    MIN_RESPOND_S,
    MIN_VIEW_CAP_S,
    Basis,
    CarePlan,
    CareRecipient,
    CheckTime,
    Cohabitant,
    Consent,
    Deadlines,
    EscalationStep,
    HumanStep,
    Pause,
    PausedCheckPolicy,
    PauseReason,
    PauseSource,
    PersonAsked,
    Purpose,
    ReverifyAnswer,
    ReverifyHow,
    StepDeadline,
    TimeWindow,
)
from consent.ports import new_id
from consent.rules import DEFAULT_PLAN_HOUR, MAX_CHECKS, MIN_CHECKS
from kernel import access
from kernel.access import caller
from kernel.audit.reads import Read
from kernel.body import (
    NOT_BLANK,
    Fields,
    Id,
    Instant,
    LocalTime,
    instant,
    parse_hhmm,
    parse_instant,
    read_body,
)
from kernel.errors import InvalidInput
from kernel.roles import Principal
from kernel.tenancy import DEFAULT_TEAM

log = structlog.get_logger("consent.api")

Text = Annotated[str, Meta(max_length=200)]


def _strip(value: str | None) -> str | None:
    return None if value is None else value.strip()


# --- brukare and cohabitants ---------------------------------------------------------------


class NewRecipient(Fields, kw_only=True):
    """A brukare to register; an id is made up when recipient_id is absent."""

    recipient_id: Id | None = None
    display_name: Annotated[str, Meta(max_length=200, pattern=NOT_BLANK)]
    home: Annotated[str, Meta(max_length=500)] = ""
    door_code_ref: Annotated[
        str, Meta(max_length=200, description="where the key or code is kept, never the code")
    ] = ""
    time_zone: Annotated[str, Meta(max_length=64, description="an IANA zone")] = DEFAULT_ZONE
    language: Annotated[str, Meta(max_length=8)] = "sv"
    team_id: Annotated[
        Id | None,
        Meta(
            description="the team that cares for the brukare (required outside the default"
            " organisation)"
        ),
    ] = None


def _team_of_new_recipient(who: Principal, team_id: str | None) -> str:
    """The team a new brukare joins: the named one, which must be one of the caller's; without
    one, the default team where the caller's organisation has it (an installation that never
    named an organisation), else the caller must name one."""
    if team_id is None:
        if who.covers(DEFAULT_TEAM):
            return DEFAULT_TEAM
        raise InvalidInput("team_id", "missing_field", "name the team that cares for the brukare")
    if not who.covers(team_id):
        raise InvalidInput("team_id", "unknown_team", "no such team in your organisation")
    return team_id


class NewCohabitant(Fields, kw_only=True):
    """Someone who lives with the brukare (their consent is then required too)."""

    cohabitant_id: Id | None = None
    display_name: Annotated[str, Meta(max_length=200, pattern=NOT_BLANK)]
    moved_in_at: Instant | None = None


class MoveOut(Fields):
    """When the cohabitant moved out (now when absent)."""

    moved_out_at: Instant | None = None


class End(Fields):
    """When it ends (now when absent)."""

    ended_at: Instant | None = None


async def list_recipients(request: web.Request) -> web.Response:
    """The brukare of the caller's teams; one audited read (``recipient.listed``) for the
    whole list."""
    why = access.why(request)
    found = await ctx.store(request).list_recipients(teams=caller(request).teams)
    await access.audit_read(request, Read.RECIPIENTS_LISTED, None, why, count=len(found))
    return ctx.answer({"recipients": [records.recipient_json(r) for r in found]})


async def create_recipient(request: web.Request) -> web.Response:
    who = caller(request)
    b = await read_body(request, NewRecipient)
    team_id = _team_of_new_recipient(who, b.team_id)
    r = CareRecipient(
        recipient_id=b.recipient_id or new_id("r"),
        display_name=b.display_name.strip(),
        home=b.home.strip(),
        door_code_ref=b.door_code_ref.strip(),
        time_zone=b.time_zone.strip() or DEFAULT_ZONE,
        language=b.language.strip() or "sv",
        team_id=team_id,
    )
    stored = await ctx.store(request).add_recipient(r, actor=who.staff_id, at=ctx.now(request))
    log.info("recipient_created", recipient_id=stored.recipient_id, staff_id=who.staff_id)
    return ctx.answer(records.recipient_json(stored), 201)


async def get_recipient(request: web.Request) -> web.Response:
    """A brukare's whole record; an audited read (``recipient.viewed``)."""
    why = access.why(request)
    basis = await ctx.covered_basis(request, request.match_info["recipient_id"])
    await access.audit_read(request, Read.RECIPIENT_VIEWED, basis.recipient.recipient_id, why)
    now = ctx.now(request)
    status = {
        p.value: records.decision_json(rules.decide_recipient(basis, purpose=p, at=now))
        for p in Purpose
    }
    return ctx.answer({**records.basis_json(basis), "now": records.iso(now), "gate": status})


async def add_cohabitant(request: web.Request) -> web.Response:
    who = caller(request)
    b = await read_body(request, NewCohabitant)
    rid = request.match_info["recipient_id"]
    zone = await ctx.recipient_zone(request, rid)
    now = ctx.now(request)
    c = Cohabitant(
        cohabitant_id=b.cohabitant_id or new_id("co"),
        recipient_id=rid,
        display_name=b.display_name.strip(),
        moved_in_at=instant(b.moved_in_at, "moved_in_at", zone) or now,
    )
    stored = await ctx.store(request).add_cohabitant(c, actor=who.staff_id, at=now)
    log.info("cohabitant_added", recipient_id=rid, cohabitant_id=c.cohabitant_id)
    return ctx.answer(records.cohabitant_json(stored), 201)


async def move_out_cohabitant(request: web.Request) -> web.Response:
    who = caller(request)
    now = ctx.now(request)
    b = await read_body(request, MoveOut)
    moved_out_at = instant(b.moved_out_at, "moved_out_at", ctx.zone(request)) or now
    c = await ctx.store(request).end_cohabitant(
        request.match_info["cohabitant_id"],
        moved_out_at=moved_out_at,
        actor=who.staff_id,
        at=now,
        teams=who.teams,
    )
    log.info("cohabitant_moved_out", recipient_id=c.recipient_id, cohabitant_id=c.cohabitant_id)
    return ctx.answer(records.cohabitant_json(c))


# --- care plans ----------------------------------------------------------------------------


class PlanCheck(Fields):
    """An agreed check time and how many minutes either side of it the check may happen."""

    at: LocalTime
    tolerance_min: Annotated[int, Meta(ge=-1440, le=1440)] = DEFAULT_TOLERANCE_MIN


class StepTerms(Fields):
    """One human step's deadline terms, seconds: due ``respond_s`` after it starts, an alarm
    every ``repeat_s`` after that, escalated ``escalate_s`` after the deadline."""

    respond_s: Annotated[int, Meta(ge=MIN_RESPOND_S, le=MAX_RESPOND_S)]
    repeat_s: Annotated[int, Meta(ge=MIN_REPEAT_S, le=MAX_REPEAT_S)]
    escalate_s: Annotated[int, Meta(ge=MIN_ESCALATE_S, le=MAX_ESCALATE_S)]


def _terms(step: HumanStep) -> StepTerms:
    d = DEFAULT_DEADLINES.of(step)
    return StepTerms(d.respond_s, d.repeat_s, d.escalate_s)


class PlanDeadlines(Fields, kw_only=True):
    """What happens when nobody acts: per human step its deadline, alarm interval and
    escalation (a view or call to the patrol, a patrol step to the shift lead); a step left out
    keeps the defaults (view 300/120/300, call 300/120/300, patrol_ack 600/300/600,
    patrol_arrival 2700/600/900)."""

    view: StepTerms = msgspec.field(default_factory=lambda: _terms(HumanStep.VIEW))
    call: StepTerms = msgspec.field(default_factory=lambda: _terms(HumanStep.CALL))
    patrol_ack: StepTerms = msgspec.field(default_factory=lambda: _terms(HumanStep.PATROL_ACK))
    patrol_arrival: StepTerms = msgspec.field(
        default_factory=lambda: _terms(HumanStep.PATROL_ARRIVAL)
    )

    def value(self) -> Deadlines:
        def terms(t: StepTerms) -> StepDeadline:
            return StepDeadline(t.respond_s, t.repeat_s, t.escalate_s)

        return Deadlines(
            terms(self.view), terms(self.call), terms(self.patrol_ack), terms(self.patrol_arrival)
        )


class NewPlan(Fields, kw_only=True):
    """A care plan: the agreed check times of a night, the view cap and the escalation; the
    call terms: an auto-answered call's cap (``call_cap_s``), how long it is announced on the
    unit before video flows (``announce_s``), and whether the home's screen counts down a view
    (``live_countdown``); ``deadlines``, what happens when nobody acts (:class:`PlanDeadlines`)."""

    plan_id: Id | None = None
    decision_ref: Annotated[str, Meta(max_length=128, pattern=NOT_BLANK)]
    valid_from: Instant | None = None
    valid_until: Instant | None = None
    checks: Annotated[tuple[PlanCheck, ...], Meta(min_length=MIN_CHECKS, max_length=MAX_CHECKS)]
    view_cap_s: Annotated[int, Meta(ge=MIN_VIEW_CAP_S, le=MAX_VIEW_CAP_S)] = DEFAULT_VIEW_CAP_S
    motion_may_clear: bool = False
    retry_interval_s: Annotated[int, Meta(ge=0, le=86400)] = DEFAULT_RETRY_INTERVAL_S
    escalation: tuple[EscalationStep, ...] = (
        EscalationStep.RETRY,
        EscalationStep.CALL,
        EscalationStep.PATROL,
    )
    instruction: Annotated[str, Meta(max_length=2000)] = ""
    paused_checks: PausedCheckPolicy = PausedCheckPolicy.PHYSICAL_VISIT
    call_cap_s: Annotated[int, Meta(ge=MIN_CALL_CAP_S, le=MAX_CALL_CAP_S)] = DEFAULT_CALL_CAP_S
    announce_s: Annotated[int, Meta(ge=MIN_ANNOUNCE_S, le=MAX_ANNOUNCE_S)] = DEFAULT_ANNOUNCE_S
    live_countdown: bool = DEFAULT_LIVE_COUNTDOWN
    deadlines: PlanDeadlines = msgspec.field(default_factory=PlanDeadlines)


async def create_plan(request: web.Request) -> web.Response:
    who = caller(request)
    b = await read_body(request, NewPlan)
    rid = request.match_info["recipient_id"]
    zone = await ctx.recipient_zone(request, rid)
    now = ctx.now(request)
    plan = CarePlan(
        plan_id=b.plan_id or new_id("plan"),
        recipient_id=rid,
        decision_ref=b.decision_ref.strip(),
        valid_from=instant(b.valid_from, "valid_from", zone) or now,
        valid_until=instant(b.valid_until, "valid_until", zone),
        checks=tuple(
            CheckTime(parse_hhmm(c.at, f"checks[{i}].at"), c.tolerance_min)
            for i, c in enumerate(b.checks)
        ),
        view_cap_s=b.view_cap_s,
        motion_may_clear=b.motion_may_clear,
        retry_interval_s=b.retry_interval_s,
        escalation=b.escalation,
        instruction=b.instruction.strip(),
        paused_checks=b.paused_checks,
        call_cap_s=b.call_cap_s,
        announce_s=b.announce_s,
        live_countdown=b.live_countdown,
        deadlines=b.deadlines.value(),
    )
    plan_hour = request.app.get(ctx.PLAN_HOUR, DEFAULT_PLAN_HOUR)  # agreed times fit a round
    stored = await ctx.store(request).add_plan(
        plan, actor=who.staff_id, at=now, plan_hour=plan_hour
    )
    log.info("care_plan_created", recipient_id=rid, plan_id=stored.plan_id)
    return ctx.answer(records.plan_json(stored), 201)


async def end_plan(request: web.Request) -> web.Response:
    who = caller(request)
    now = ctx.now(request)
    b = await read_body(request, End)
    ended_at = instant(b.ended_at, "ended_at", ctx.zone(request)) or now
    p = await ctx.store(request).end_plan(
        request.match_info["plan_id"],
        ended_at=ended_at,
        actor=who.staff_id,
        at=now,
        teams=who.teams,
    )
    log.info("care_plan_ended", recipient_id=p.recipient_id, plan_id=p.plan_id)
    return ctx.answer(records.plan_json(p))


# --- consents ------------------------------------------------------------------------------


class Window(Fields):
    """A time of day the consent covers (it may cross midnight)."""

    start: LocalTime
    end: LocalTime


class NewConsent(Fields, kw_only=True):
    """A person's consent (or other legal basis) for one purpose; a new version of any earlier."""

    person: Annotated[
        str, Meta(max_length=64, description="'recipient' or a cohabitant_id", pattern=NOT_BLANK)
    ]
    purpose: Purpose
    basis: Basis | None = None
    basis_ref: Text | None = None
    informed_by: Text | None = None
    informed_how: Annotated[str, Meta(max_length=1000)] | None = None
    given_at: Instant | None = None
    valid_from: Instant | None = None
    valid_until: Instant | None = None
    document_ref: Text | None = None
    windows: Annotated[tuple[Window, ...], Meta(max_length=100)] = ()


async def record_consent(request: web.Request) -> web.Response:
    who = caller(request)
    b = await read_body(request, NewConsent)
    rid = request.match_info["recipient_id"]
    zone = await ctx.recipient_zone(request, rid)
    now = ctx.now(request)
    person = b.person.strip()
    given_at = instant(b.given_at, "given_at", zone) or now
    c = Consent(
        consent_id=new_id("cons"),
        recipient_id=rid,
        cohabitant_id=None if person == "recipient" else person,
        purpose=b.purpose,
        version=0,
        basis=b.basis,
        basis_ref=_strip(b.basis_ref),
        informed_by=_strip(b.informed_by),
        informed_how=_strip(b.informed_how),
        given_at=given_at,
        valid_from=instant(b.valid_from, "valid_from", zone) or given_at,
        valid_until=instant(b.valid_until, "valid_until", zone),
        windows=tuple(
            TimeWindow(
                parse_hhmm(w.start, f"windows[{i}].start"), parse_hhmm(w.end, f"windows[{i}].end")
            )
            for i, w in enumerate(b.windows)
        ),
        document_ref=_strip(b.document_ref),
    )
    stored = await ctx.store(request).record_consent(c, actor=who.staff_id, at=now)
    log.info(
        "consent_recorded",
        recipient_id=rid,
        consent_id=stored.consent_id,
        purpose=stored.purpose.value,
        version=stored.version,
    )
    return ctx.answer(records.consent_json(stored), 201)


class Withdrawal(Fields):
    """When the consent was withdrawn (now when absent) and, optionally, why."""

    withdrawn_at: Instant | None = None
    reason: Annotated[str, Meta(max_length=500)] | None = None


async def withdraw_consent(request: web.Request) -> web.Response:
    who = caller(request)
    now = ctx.now(request)
    b = await read_body(request, Withdrawal)
    c = await ctx.store(request).withdraw_consent(
        request.match_info["consent_id"],
        withdrawn_at=instant(b.withdrawn_at, "withdrawn_at", ctx.zone(request)) or now,
        reason=_strip(b.reason),
        actor=who.staff_id,
        at=now,
        teams=who.teams,
    )
    log.info("consent_withdrawn", recipient_id=c.recipient_id, consent_id=c.consent_id)
    return ctx.answer(records.consent_json(c))


# --- pauses and suspension -----------------------------------------------------------------


class NewPause(Fields, kw_only=True):
    """A pause of camera checks: from now when starts_at is absent, open-ended without ends_at."""

    starts_at: Instant | None = None
    ends_at: Instant | None = None
    source: PauseSource
    reason: PauseReason
    note: Annotated[str, Meta(max_length=500)] = ""


async def create_pause(request: web.Request) -> web.Response:
    who = caller(request)
    b = await read_body(request, NewPause)
    rid = request.match_info["recipient_id"]
    zone = await ctx.recipient_zone(request, rid)
    now = ctx.now(request)
    p = Pause(
        pause_id=new_id("pause"),
        recipient_id=rid,
        starts_at=instant(b.starts_at, "starts_at", zone) or now,
        ends_at=instant(b.ends_at, "ends_at", zone),
        source=b.source,
        reason=b.reason,
        note=b.note.strip(),
    )
    stored = await ctx.store(request).add_pause(p, actor=who.staff_id, at=now)
    log.info("pause_created", recipient_id=rid, pause_id=stored.pause_id)
    return ctx.answer(records.pause_json(stored), 201)


async def end_pause(request: web.Request) -> web.Response:
    who = caller(request)
    now = ctx.now(request)
    b = await read_body(request, End)
    ended_at = instant(b.ended_at, "ended_at", ctx.zone(request)) or now
    p = await ctx.store(request).end_pause(
        request.match_info["pause_id"],
        ended_at=ended_at,
        actor=who.staff_id,
        at=now,
        teams=who.teams,
    )
    log.info("pause_ended", recipient_id=p.recipient_id, pause_id=p.pause_id)
    return ctx.answer(records.pause_json(p))


class Answers(Fields, kw_only=True):
    """One person's answer per purpose; ``camera_check`` always, the others where asked."""

    camera_check: ReverifyAnswer
    motion_analysis: ReverifyAnswer | None = None
    video_call: ReverifyAnswer | None = None
    auto_answer: ReverifyAnswer | None = None


class PersonAnswer(Fields, kw_only=True):
    """One person asked: the brukare (``person_id`` = its recipient_id) or a cohabitant living
    there (its cohabitant_id); how (``visit``, ``phone``), when, and the answers."""

    person_id: Id
    how: ReverifyHow
    spoken_at: Instant
    answers: Answers


class Reverification(Fields):
    """A re-verification record (hard rule 8): who was asked, how, when and what they said.
    Every person living there (the brukare and each current cohabitant) must be listed once.
    Nobody refusing camera checks lifts the suspension; anyone refusing a purpose has that
    consent withdrawn at once (supervision ends)."""

    people: Annotated[list[PersonAnswer], Meta(min_length=1, max_length=32)]


def _people(b: Reverification, zone: tzinfo) -> list[PersonAsked]:
    out = []
    for i, p in enumerate(b.people):
        spoken = parse_instant(p.spoken_at, f"people[{i}].spoken_at", zone)
        answers = tuple(
            (Purpose(name), getattr(p.answers, name))
            for name in ("camera_check", "motion_analysis", "video_call", "auto_answer")
            if getattr(p.answers, name) is not None
        )
        out.append(PersonAsked(p.person_id, p.how, spoken, answers))
    return out


async def reverify(request: web.Request) -> web.Response:
    who = caller(request)
    rid = request.match_info["recipient_id"]
    b = await read_body(request, Reverification)
    record, lifted = await ctx.store(request).reverify(
        rid,
        people=_people(b, ctx.zone(request)),
        actor=who.staff_id,
        at=ctx.now(request),
        teams=who.teams,
    )
    log.info(
        "supervision_reverified",
        recipient_id=rid,
        outcome=record.outcome.value,
        suspensions=len(lifted),
        withdrawn=len(record.withdrawn_consent_ids),
    )
    return ctx.answer(
        {
            "reverification": records.reverification_json(record),
            "lifted": [records.suspension_json(s) for s in lifted],
        }
    )


async def list_suspensions(request: web.Request) -> web.Response:
    """Supervision suspended by device behaviour and not yet re-verified (hard rule 8)."""
    now = ctx.now(request)
    who = caller(request)
    bases = await ctx.store(request).bases()
    found = sorted(
        (
            s
            for b in bases.values()
            if who.covers(b.recipient.team_id)
            for s in b.suspensions
            if s.is_active(now)
        ),
        key=lambda s: (s.started_at, s.recipient_id),
    )
    return ctx.answer({"suspensions": [records.suspension_json(s) for s in found]})
