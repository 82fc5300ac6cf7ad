"""HTTP routes of the night round: tonight's queue, duty, views and outcomes, patrol tasks,
alarms, planning and the morning report.

Operator outcomes (``ok``, ``not_seen``, ``call``, ``patrol``, ``technical``, an optional note)
need the operator on duty at that instant (403 ``not_on_duty``); an outcome the check's state does
not accept is 409 with the refusal as ``code``, and ``ok`` is 409 ``not_viewed`` unless a view or
call of that operator for that check delivered video (its device reported at least a second);
nothing changes on any error. Notes go to the
round's own table, never to the audit log. Dependencies come through the typed app keys below,
set by the composition root: :data:`STORE`, :data:`CLOCK`, :data:`WATCHDOG` (planning),
:data:`ZONE` and :data:`PUBLISH` (console events of operator steps); :func:`console_event` turns
the round's bus events into console messages.
"""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from aiohttp import web
from msgspec import Meta

from consent.rules import night_of
from kernel import access
from kernel.access import caller
from kernel.audit.reads import Read
from kernel.body import END, Fields, Id, NoFields, read_body
from kernel.clock import Clock
from kernel.codec import CodecError
from kernel.permissions import Permission, route
from kernel.roles import Principal, Role, Route
from supervision import checks as ch
from supervision import handover as hv
from supervision import report as rp
from supervision import teams as tm
from supervision.checks import Check, OutcomeKind, PatrolOutcome, State
from supervision.errors import BadRequest
from supervision.ports import AlarmRaised, CheckChanged, Publish
from supervision.runner import log_transition, publish_transition
from supervision.store import RoundStore
from supervision.watchdog import Watchdog

STORE: web.AppKey[RoundStore] = web.AppKey("rounds_store")
CLOCK: web.AppKey[Clock] = web.AppKey("rounds_clock")
WATCHDOG: web.AppKey[Watchdog] = web.AppKey("rounds_watchdog")
ZONE: web.AppKey[tzinfo] = web.AppKey("rounds_zone")
PUBLISH: web.AppKey[Publish] = web.AppKey("rounds_publish")

_TAGS = ("rounds",)
REASON = rf"^[a-z][a-z0-9_]{{0,63}}{END}"
MAX_NOTE = 2000


def _store(request: web.Request) -> RoundStore:
    return request.app[STORE]


def _now(request: web.Request) -> datetime:
    return request.app[CLOCK]()


def _zone(request: web.Request) -> tzinfo:
    return request.app.get(ZONE) or ZoneInfo("Europe/Stockholm")


def _teams(request: web.Request) -> frozenset[str] | None:
    """The teams a read is for: the caller's, or the one ``?team=`` names, which must be one of
    them (422 ``not_your_team``, the same for a team that does not exist)."""
    raw = request.query.get("team")
    try:
        return tm.chosen(caller(request).teams, None if raw is None else [raw])
    except tm.NotYourTeam:
        raise BadRequest("team is not one of yours", field="team", code="not_your_team") from None


def _listed(teams: frozenset[str] | None) -> list[str] | None:
    return None if teams is None else sorted(teams)


def check_json(c: Check) -> dict[str, Any]:
    return {
        "check_id": c.check_id,
        "recipient_id": c.recipient_id,
        "device_id": c.device_id,
        "night": c.night.isoformat(),
        "agreed": c.agreed.strftime("%H:%M"),
        "agreed_at": c.agreed_at.isoformat(),
        "window_start": c.window_start.isoformat(),
        "window_end": c.window_end.isoformat(),
        "state": c.state.value,
        "category": c.category.value,
        "since": c.since.isoformat(),
        "deadline": c.deadline.isoformat() if c.deadline else None,
        "attempt": c.attempt,
        "reason": c.reason,
        "holder": c.holder,
        "verdict": c.verdict,
        "version": c.version,
        "view_cap_s": c.policy.view_cap_s,
    }


def _night(request: web.Request, raw: str | None = None) -> date:
    text = raw if raw is not None else request.match_info["date"]
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequest(
            "date must be a night's evening date like 2025-06-10", field="date", code="invalid_date"
        ) from None


class Visit(Fields):
    """The patrol's visit, with an optional note for the round's record (never the audit log)."""

    note: Annotated[str, Meta(max_length=MAX_NOTE)] | None = None


class Documented(Fields, kw_only=True):
    """An operator's outcome of a check; a patrol needs a reason (a short code like 'fallen')."""

    outcome: OutcomeKind
    reason: Annotated[str, Meta(pattern=REASON)] | None = None
    note: Annotated[str, Meta(max_length=MAX_NOTE)] | None = None

    def __post_init__(self) -> None:
        if self.outcome is OutcomeKind.PATROL and self.reason is None:
            raise CodecError("missing_field", "reason", "a patrol needs its reason")


def _note(value: str | None) -> str | None:
    return (value or "").strip() or None


# --------------------------------------------------------------------------- the queue


async def queue(request: web.Request) -> web.Response:
    """Tonight's unfinished checks of the caller's teams (``?team=``: one of them), the human
    queue first, the open alarms, and who is on duty for which of those teams."""
    store = _store(request)
    now = _now(request)
    teams = _teams(request)
    raw = request.query.get("night")
    night = _night(request, raw) if raw else night_of(now, _zone(request))
    checks = [c for c in await store.open_checks(teams=teams) if c.night == night]
    order = {State.VIEWING: 0, State.NEEDS_VIEW: 1, State.CALLING: 2, State.PATROL: 3}
    checks.sort(key=lambda c: (order.get(c.state, 9), c.deadline or c.since, c.check_id))
    motion = await store.verdict_details([c.check_id for c in checks])
    assigned = await store.assignees([c.check_id for c in checks])
    duty = await store.duty_teams(now, teams=teams)
    return web.json_response(
        {
            "night": night.isoformat(),
            "at": now.isoformat(),
            "checks": [
                {
                    **check_json(c),
                    "motion": motion.get(c.check_id),
                    "assignee": assigned.get(c.check_id),
                }
                for c in checks
            ],
            "alarms": [
                _alarm_json(a) for a in await store.alarms(night, open_only=True, teams=teams)
            ],
            "teams": _listed(teams),
            "on_duty": sorted(duty),
            "duty_teams": duty,
        }
    )


def _alarm_json(a: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in a.items()}


async def get_check(request: web.Request) -> web.Response:
    """One check and its history; an audited read (``check.viewed``)."""
    why = access.why(request)
    store = _store(request)
    c = await store.get(request.match_info["check_id"], teams=caller(request).teams)
    await access.audit_read(
        request, Read.CHECK_VIEWED, c.check_id, why, recipient_id=c.recipient_id
    )
    steps = [t for t in await store.transitions(c.night) if t.check_id == c.check_id]
    return web.json_response(
        {
            **check_json(c),
            "motion": (await store.verdict_details([c.check_id])).get(c.check_id),
            "transitions": [
                {
                    "version": t.version,
                    "at": t.at.isoformat(),
                    "from": t.from_state.value,
                    "to": t.to_state.value,
                    "event": t.event,
                    "actor": t.actor,
                    "reason": t.reason,
                    "verdict": t.verdict,
                    "note": t.note,
                }
                for t in steps
            ],
        }
    )


# --------------------------------------------------------------------------- duty


class Duty(Fields):
    """Going on duty, covering ``teams`` (some of the caller's; absent: every one of them)."""

    teams: Annotated[tuple[Id, ...], Meta(min_length=1, max_length=100)] | None = None


async def start_duty(request: web.Request) -> web.Response:
    """Start my duty for my teams, or the ones named (422 ``not_your_team`` for another)."""
    who = caller(request)
    b = await read_body(request, Duty)
    try:
        teams = None if b.teams is None else tm.chosen(who.teams, b.teams)
    except tm.NotYourTeam as e:
        raise BadRequest(
            f"team {e} is not one of yours", field="teams", code="not_your_team"
        ) from None
    await _store(request).start_duty(who.staff_id, at=_now(request), teams=teams)
    covered = teams if teams is not None else who.teams
    return web.json_response(
        {"staff_id": who.staff_id, "on_duty": True, "teams": _listed(covered)}, status=201
    )


async def end_duty(request: web.Request) -> web.Response:
    who = caller(request)
    ended = await _store(request).end_duty(who.staff_id, at=_now(request))
    if not ended:
        raise BadRequest("you are not on duty", field=None, code="not_on_duty")
    return web.json_response({"staff_id": who.staff_id, "on_duty": False})


# --------------------------------------------------------------------------- operator steps


async def _step(
    request: web.Request, event: ch.Event, *, note: str | None = None, on_duty: bool = True
) -> web.Response:
    tr = await _store(request).transition(
        request.match_info["check_id"],
        event,
        at=_now(request),
        note=note,
        on_duty=on_duty,
        teams=caller(request).teams,
    )
    log_transition(tr)
    publish_transition(request.app.get(PUBLISH), tr)
    return web.json_response(check_json(tr.check))


async def open_view(request: web.Request) -> web.Response:
    """The operator opened the feed (the view itself goes through signalling)."""
    who = caller(request)
    await read_body(request, NoFields)
    return await _step(request, ch.ViewOpened(who.staff_id))


async def outcome(request: web.Request) -> web.Response:
    """An operator's outcome. ``ok`` needs a view or call of this operator for this check whose
    device reported at least a second of video (409 ``not_viewed`` otherwise); it waits a few
    seconds for a look that has just ended and not yet been reported."""
    who = caller(request)
    b = await read_body(request, Documented)
    if b.outcome is OutcomeKind.OK:
        await _store(request).await_video(
            request.match_info["check_id"], who.staff_id, at=_now(request)
        )
    outcome = ch.Outcome(who.staff_id, b.outcome, b.reason)
    return await _step(request, outcome, note=_note(b.note))


async def _patrol_step(
    request: web.Request,
    who: Principal,
    event: ch.PatrolAcknowledged | ch.PatrolVisited,
    note: str | None = None,
) -> web.Response:
    done = await _store(request).patrol_step(
        request.match_info["check_id"],
        event,
        at=_now(request),
        is_patrol=who.role is Role.PATROL,
        note=note,
        teams=who.teams,
    )
    if isinstance(done, Check):  # the same report again (a retry): nothing changed
        return web.json_response(check_json(done))
    log_transition(done)
    publish_transition(request.app.get(PUBLISH), done)
    return web.json_response(check_json(done.check))


async def patrol_ack(request: web.Request) -> web.Response:
    """The patrol takes the task (a retry by the same patrol changes nothing)."""
    who = caller(request)
    await read_body(request, NoFields)
    return await _patrol_step(request, who, ch.PatrolAcknowledged(who.staff_id))


async def patrol_visited(request: web.Request) -> web.Response:
    who = caller(request)
    note = _note((await read_body(request, Visit)).note)
    return await _patrol_step(request, who, ch.PatrolVisited(who.staff_id), note)


class PatrolReport(Fields, kw_only=True):
    """What the patrol found: ``not_home`` sends the task back to be taken again."""

    outcome: PatrolOutcome
    note: Annotated[str, Meta(max_length=MAX_NOTE)] | None = None


async def patrol_outcome(request: web.Request) -> web.Response:
    who = caller(request)
    b = await read_body(request, PatrolReport)
    event = ch.PatrolVisited(who.staff_id, b.outcome)
    return await _patrol_step(request, who, event, _note(b.note))


async def patrol_arrived(request: web.Request) -> web.Response:
    """The patrol is at the door (the first report counts; a retry changes nothing)."""
    who = caller(request)
    await read_body(request, NoFields)
    check_id = request.match_info["check_id"]
    arrived = await _store(request).patrol_arrived(
        check_id,
        staff_id=who.staff_id,
        at=_now(request),
        is_patrol=who.role is Role.PATROL,
        teams=who.teams,
    )
    return web.json_response({"check_id": check_id, "arrived_at": arrived.isoformat()})


def _task_json(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: (v.isoformat() if isinstance(v, datetime | date) else v) for k, v in row.items()}
    out["agreed"] = row["agreed"].strftime("%H:%M")
    return out


async def patrol_tasks(request: web.Request) -> web.Response:
    """Open patrol tasks of the caller's teams (``?team=``: one of them): a patrol sees its own
    and the unassigned ones, others see all."""
    who = caller(request)
    mine = who.staff_id if who.role is Role.PATROL else None
    rows = await _store(request).patrol_tasks(visible_to=mine, teams=_teams(request))
    return web.json_response(
        {"at": _now(request).isoformat(), "tasks": [_task_json(r) for r in rows]}
    )


async def escalations(request: web.Request) -> web.Response:
    """The night's alarms and escalations addressed to the shift lead (``?night=``, default
    tonight; ``?open=1``: only those not acknowledged), of the caller's teams (``?team=``)."""
    raw = request.query.get("night")
    night = _night(request, raw) if raw else night_of(_now(request), _zone(request))
    rows = await _store(request).lead_alarms(
        night, open_only=request.query.get("open") == "1", teams=_teams(request)
    )
    return web.json_response(
        {"night": night.isoformat(), "escalations": [_alarm_json(a) for a in rows]}
    )


class Assignment(Fields):
    """Who a check goes to: an operator's staff_id for a look, a patrol's for a patrol task;
    null takes it from whoever had it."""

    assignee: Annotated[str, Meta(pattern=rf"^staff-[a-z0-9-]{{1,64}}{END}")] | None


async def assign(request: web.Request) -> web.Response:
    """The shift lead moves a check or a patrol task between operators and patrol cars."""
    who = caller(request)
    b = await read_body(request, Assignment)
    check, before = await _store(request).assign(
        request.match_info["check_id"],
        b.assignee,
        by=who.staff_id,
        at=_now(request),
        teams=who.teams,
    )
    return web.json_response({**check_json(check), "assignee": b.assignee, "previous": before})


async def assignable(request: web.Request) -> web.Response:
    """Whom the shift lead may give a check or patrol task to: the active operators and patrols
    (pseudonymous ``staff_id``, display name, role, the teams they cover) who cover one of the
    caller's teams (``?team=``: that one), those on duty now first."""
    rows = await _store(request).assignable_staff(_now(request), teams=_teams(request))
    return web.json_response({"at": _now(request).isoformat(), "staff": rows})


def _wants_html(request: web.Request) -> bool:
    """``?format=html``, or no ``format`` and a browser's ``Accept: text/html``."""
    return request.query.get("format") == "html" or (
        "format" not in request.query and "text/html" in request.headers.get("Accept", "")
    )


async def handover(request: web.Request) -> web.Response:
    """The night's handover to the day staff: JSON, or printable HTML (?format=html&lang=en)."""
    why = access.why(request)
    night = _night(request)
    zone = _zone(request)
    html = _wants_html(request)
    lang = request.query.get("lang", "sv")
    if html and lang not in hv.LANGUAGES:
        raise BadRequest(f"lang is one of {', '.join(hv.LANGUAGES)}", field="lang")
    teams = _teams(request)
    start, end = hv.night_bounds(night, zone)
    store = _store(request)
    facts = await store.handover_facts(night, start=start, end=end, teams=teams)
    team_of, places = await store.night_teams(night, teams=teams)
    summary = hv.build(facts, generated_at=_now(request))
    summary["teams"] = _listed(teams)
    summary["rollup"] = tm.rollup((f.check for f in facts.checks), team_of, places)
    await access.audit_read(request, Read.REPORT_VIEWED, night.isoformat(), why, report="handover")
    if not html:
        return web.json_response(summary)
    return web.Response(
        text=hv.render_html(summary, zone=zone, lang=lang), content_type="text/html"
    )


async def ack_alarm(request: web.Request) -> web.Response:
    who = caller(request)
    try:
        version = int(request.match_info["version"])
    except ValueError:
        raise BadRequest("version is a whole number", field="version") from None
    await _store(request).acknowledge_alarm(
        request.match_info["check_id"],
        version,
        staff_id=who.staff_id,
        at=_now(request),
        teams=who.teams,
    )
    return web.json_response(
        {"check_id": request.match_info["check_id"], "version": version, "acknowledged": True}
    )


# --------------------------------------------------------------------------- nights


async def plan_night(request: web.Request) -> web.Response:
    night = _night(request)
    watchdog = request.app[WATCHDOG]
    tonight = watchdog.tonight(_now(request))
    if not tonight - date.resolution <= night <= tonight + date.resolution:
        raise BadRequest(
            f"only the nights around tonight ({tonight}) can be planned",
            field="date",
            code="night_out_of_range",
        )
    plan = await watchdog.plan(night)
    return web.json_response(
        {
            "night": night.isoformat(),
            "checks": len(plan.checks),
            "by_state": {k.value: v for k, v in plan.by_state().items()},
            "problems": [
                {
                    "recipient_id": p.recipient_id,
                    "plan_id": p.plan_id,
                    "field": p.field,
                    "code": p.code,
                    "message": p.message,
                }
                for p in plan.problems
            ],
        }
    )


async def reconcile_night(request: web.Request) -> web.Response:
    night = _night(request)
    now = _now(request)
    watchdog = request.app[WATCHDOG]
    if now < watchdog.reconcile_at(night) and "force" not in request.query:
        raise BadRequest(
            f"the round of {night} is not over until "
            f"{watchdog.reconcile_at(night).isoformat()}; add ?force=1",
            field="date",
            code="night_not_over",
        )
    closed = await watchdog.reconcile(night)
    return web.json_response({"night": night.isoformat(), "closed": len(closed)})


async def night_report(request: web.Request) -> web.Response:
    """The morning report; an audited read (``report.viewed``, subject the night)."""
    why = access.why(request)
    night = _night(request)
    teams = _teams(request)
    store = _store(request)
    nights = await store.planned_nights()
    since, until = hv.night_bounds(night, _zone(request))  # a night runs noon to noon
    checks = await store.night_checks(night, teams=teams)
    report = rp.build(
        night,
        checks,
        await store.transitions(night, teams=teams),
        generated_at=_now(request),
        reconciled_at=nights.get(night),
        alarms=await store.alarms(night, teams=teams),
        looks=await store.night_looks(night, since=since, until=until, teams=teams),
    )
    team_of, places = await store.night_teams(night, teams=teams)
    report["teams"] = _listed(teams)
    report["rollup"] = tm.rollup(checks, team_of, places)
    await access.audit_read(request, Read.REPORT_VIEWED, night.isoformat(), why, report="morning")
    if _wants_html(request):
        return web.Response(text=rp.render_html(report), content_type="text/html")
    return web.json_response(report)


def console_event(event: object) -> dict[str, Any] | None:
    """A round's bus event as a console message (``services.web.console`` encoder), else None:
    ``{"type": "check.changed", ...}`` or ``{"type": "check.alarm", ...}``; pseudonymous ids."""
    if isinstance(event, CheckChanged):
        return {
            "type": "check.changed",
            "check_id": event.check_id,
            "recipient_id": event.recipient_id,
            "device_id": event.device_id,
            "from": event.before.value,
            "state": event.state.value,
            "category": ch.CATEGORY[event.state].value,
            "verdict": event.verdict,
            "reason": event.reason,
            "deadline": event.deadline.isoformat() if event.deadline else None,
            "at": event.at.isoformat(),
            "actor": event.actor,
        }
    if isinstance(event, AlarmRaised):
        a = event.alarm
        return {
            "type": "check.alarm",
            "check_id": a.check_id,
            "recipient_id": a.recipient_id,
            "state": a.state.value,
            "deadline": a.deadline.isoformat(),
            "version": a.version,
            "late_s": round(a.late_s),
            "repeat": a.repeat,
            "alarm": a.kind.value,
            "to": a.to.value,
            "at": event.at.isoformat(),
        }
    return None


def routes() -> list[Route]:
    r, t = route, _TAGS
    return [
        r(
            "GET",
            "/api/rounds/queue",
            queue,
            Permission.READ_ROUNDS,
            "Tonight's open checks and alarms",
            tags=t,
        ),
        r(
            "POST",
            "/api/rounds/duty",
            start_duty,
            Permission.KEEP_WATCH,
            "Start my duty (for my teams, or some of them: teams)",
            body=Duty,
            tags=t,
        ),
        r("DELETE", "/api/rounds/duty", end_duty, Permission.KEEP_WATCH, "End my duty", tags=t),
        r(
            "GET",
            "/api/checks/{check_id}",
            get_check,
            Permission.READ_ROUNDS,
            "One check and its steps",
            tags=t,
        ),
        r(
            "POST",
            "/api/checks/{check_id}/view",
            open_view,
            Permission.LIVE_VIEW,
            "I opened the feed of a queued check",
            body=NoFields,
            tags=t,
        ),
        r(
            "POST",
            "/api/checks/{check_id}/outcome",
            outcome,
            Permission.DOCUMENT_CHECKS,
            "Document a check: ok, not_seen, call, patrol (with reason), technical",
            body=Documented,
            tags=t,
        ),
        r(
            "POST",
            "/api/checks/{check_id}/patrol/ack",
            patrol_ack,
            Permission.PATROL_VISITS,
            "The patrol takes the visit",
            body=NoFields,
            tags=t,
        ),
        r(
            "POST",
            "/api/checks/{check_id}/patrol/visited",
            patrol_visited,
            Permission.PATROL_VISITS,
            "The patrol made the visit",
            body=Visit,
            tags=t,
        ),
        r(
            "POST",
            "/api/alarms/{check_id}/{version}/ack",
            ack_alarm,
            Permission.KEEP_WATCH,
            "Acknowledge a missed-deadline alarm",
            tags=t,
        ),
        r(
            "POST",
            "/api/nights/{date}/plan",
            plan_night,
            Permission.PLAN_NIGHTS,
            "Plan a night now (idempotent)",
            tags=t,
        ),
        r(
            "POST",
            "/api/nights/{date}/reconcile",
            reconcile_night,
            Permission.PLAN_NIGHTS,
            "Close a night: every open check becomes a deviation or escalated",
            tags=t,
        ),
        r(
            "GET",
            "/api/nights/{date}/report",
            night_report,
            Permission.READ_REPORTS,
            "Morning report as JSON, or printable HTML (?format=html)",
            tags=t,
        ),
        r(
            "GET",
            "/api/patrol/tasks",
            patrol_tasks,
            Permission.READ_PATROL_TASKS,
            "Open patrol tasks (a patrol: its own and unassigned ones) with home and instruction",
            tags=t,
        ),
        r(
            "POST",
            "/api/checks/{check_id}/patrol/arrived",
            patrol_arrived,
            Permission.PATROL_VISITS,
            "The patrol is at the door",
            body=NoFields,
            tags=t,
        ),
        r(
            "POST",
            "/api/checks/{check_id}/patrol/outcome",
            patrol_outcome,
            Permission.PATROL_VISITS,
            "What the patrol found: found_well, helped, taken_to_hospital, not_home",
            body=PatrolReport,
            tags=t,
        ),
        r(
            "GET",
            "/api/rounds/escalations",
            escalations,
            Permission.REASSIGN,
            "The night's alarms and escalations addressed to the shift lead (?night=, ?open=1)",
            tags=t,
        ),
        r(
            "POST",
            "/api/checks/{check_id}/assign",
            assign,
            Permission.REASSIGN,
            "Give a check to an operator or a patrol task to a patrol (audited)",
            body=Assignment,
            tags=t,
        ),
        r(
            "GET",
            "/api/rounds/staff",
            assignable,
            Permission.REASSIGN,
            "Whom a check or patrol task may be given to: active operators and patrols",
            tags=t,
        ),
        r(
            "GET",
            "/api/rounds/{date}/handover",
            handover,
            Permission.READ_REPORTS,
            "The night's handover to the day staff: JSON, or printable HTML (?format=html)",
            tags=t,
        ),
    ]
