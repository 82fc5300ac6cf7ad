"""The gate and the validation rules (pure, default deny).

The gate answers, for a brukare's :class:`~consent.model.RecipientBasis`, a purpose, a device and
an instant: allowed, or denied with one :class:`~consent.model.Reason`. Nothing is allowed unless
every requirement of the purpose holds:

=================  =====  =========  ====  ==========================  =====  ======
purpose            bound  suspended  plan  consents (who)              pause  window
=================  =====  =========  ====  ==========================  =====  ======
camera_check       yes    yes        yes   camera_check (all)          yes    yes
motion_analysis    yes    yes        yes   camera_check +              yes    yes
                                           motion_analysis (all)
auto_answer        yes    yes        yes   video_call + auto_answer    yes    yes
                                           (all)
video_call         yes    no         no    video_call (brukare)        no     no
=================  =====  =========  ====  ==========================  =====  ======

"all" means the brukare and every cohabitant living there at that instant. When several
requirements fail, the first in this order is the reason: ``device_not_bound``, ``suspended``,
``plan_inactive``, then per required purpose and per person (the brukare first, then cohabitants
by id): ``no_consent`` / ``cohabitant_missing``, ``withdrawn``, ``no_legal_basis``, ``expired``,
``outside_window`` (the consent's own time windows); then ``paused``, then ``outside_window`` (the
plan's agreed windows).

Calls: signalling asks ``video_call`` and ``camera_check`` for every call (the call's video has
a view's basis, so a call outside the agreed windows is denied ``outside_window``), then
``auto_answer`` to learn whether the phone may answer by itself. An auto-answered call opens the
home's camera with nobody pressing anything, so it needs an agreed window of its own here too
(issue 15), not only through the call's ``camera_check``. The decision carries the plan's call
terms (``call_cap_s``, ``announce_s``, ``live_countdown``).

Time: the version of a consent in force at ``t`` is the highest version of its series with
``valid_from <= t``. An agreed check time is a local wall-clock time in the brukare's zone; its
window is that time ± the tolerance, measured in real time around one instant, so every check
happens exactly once a night and keeps its length, also on the nights the clocks change:

- a time that does not exist (March, 02:00–02:59 in Stockholm) is read with the offset in force
  before the jump (``fold=0``), so 02:30 happens at 03:30 summer time, 2½ real hours after
  midnight, and 02:00 exactly at the jump;
- a time that occurs twice (October) happens at its first occurrence.

Plan validation resolves every night the plan may run in its first :data:`DST_SCAN_DAYS` days
on which the offset changes, and refuses checks whose windows would then overlap or swap order
(``dst_overlap``). Dated local timestamps (a plan's ``valid_from`` written without an offset,
say) that do not exist or are ambiguous are refused by :func:`resolve_local`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from consent.model import (
    MAX_ANNOUNCE_S,
    MAX_CALL_CAP_S,
    MAX_ESCALATE_S,
    MAX_REPEAT_S,
    MAX_RESPOND_S,
    MAX_TO_VISIT_S,
    MAX_VIEW_CAP_S,
    MIN_ANNOUNCE_S,
    MIN_CALL_CAP_S,
    MIN_ESCALATE_S,
    MIN_REPEAT_S,
    MIN_RESPOND_S,
    MIN_VIEW_CAP_S,
    Basis,
    BehaviourEvent,
    BindingAction,
    BindingConfirmation,
    BindingProof,
    BindingRequest,
    ButtonPress,
    CarePlan,
    CareRecipient,
    CheckTime,
    CheckWindow,
    Cohabitant,
    Consent,
    Deadlines,
    Decision,
    EscalationStep,
    HumanStep,
    Pause,
    PersonAsked,
    Purpose,
    Reason,
    RecipientBasis,
    ReverifyAnswer,
    ReverifyOutcome,
    TimeWindow,
)
from kernel.values import Problem, is_id

NOON = time(12, 0)
MIN_CHECKS, MAX_CHECKS = 1, 24
MIN_TOLERANCE_MIN, MAX_TOLERANCE_MIN = 1, 180
MIN_RETRY_S, MAX_RETRY_S = 60, 4 * 3600
CLOCK_SKEW = timedelta(minutes=2)
"""How far in the future a 'now' timestamp from a client may be (clock drift)."""
DST_SCAN_DAYS = 400
EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(2200, 1, 1, tzinfo=UTC)
"""The gate answers for instants in ``[EARLIEST_INSTANT, LATEST_INSTANT)``: no record predates
1970, no plan reaches 2200, and the night and window arithmetic around an instant (a day either
side) stays far from ``datetime``'s year 1 and 9999. :func:`check_instant` refuses the rest."""
_DAY = timedelta(days=1)
_MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True, slots=True)
class Requirement:
    """What one purpose needs (see the module table)."""

    consents: tuple[Purpose, ...]
    needs_cohabitants: bool
    needs_plan: bool
    is_suspendable: bool
    is_pausable: bool
    needs_window: bool


REQUIREMENTS: dict[Purpose, Requirement] = {
    Purpose.CAMERA_CHECK: Requirement((Purpose.CAMERA_CHECK,), True, True, True, True, True),
    Purpose.MOTION_ANALYSIS: Requirement(
        (Purpose.CAMERA_CHECK, Purpose.MOTION_ANALYSIS), True, True, True, True, True
    ),
    Purpose.AUTO_ANSWER: Requirement(
        (Purpose.VIDEO_CALL, Purpose.AUTO_ANSWER), True, True, True, True, True
    ),
    Purpose.VIDEO_CALL: Requirement((Purpose.VIDEO_CALL,), False, False, False, False, False),
}


# --- time ----------------------------------------------------------------------------------


def zone_of(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def night_of(at: datetime, zone: tzinfo) -> date:
    """The night containing ``at``: named by its evening's date, running noon to noon locally."""
    local = at.astimezone(zone)
    return local.date() if local.time() >= NOON else local.date() - _DAY


def night_minute(t: time) -> int:
    """Minutes since the night began at noon (0..1439): 12:00 -> 0, 22:30 -> 630, 02:00 -> 840."""
    return (t.hour * 60 + t.minute - 12 * 60) % _MINUTES_PER_DAY


def check_date(night: date, t: time) -> date:
    """The calendar date on which local time ``t`` falls in ``night``."""
    return night if t >= NOON else night + _DAY


def night_windows(plan: CarePlan, night: date, zone: tzinfo) -> tuple[CheckWindow, ...]:
    """The plan's agreed windows on ``night`` as instants (UTC), in the plan's check order."""
    return check_windows(plan.checks, night, zone)


@lru_cache(maxsize=1024)
def check_windows(
    checks: tuple[CheckTime, ...], night: date, zone: tzinfo
) -> tuple[CheckWindow, ...]:
    """:func:`night_windows` of agreed times ``checks``. Remembered (the values are immutable):
    planning a night asks it for every brukare, and most share their agreed times."""
    out = []
    for i, check in enumerate(checks):
        wall = datetime.combine(check_date(night, check.at), check.at, tzinfo=zone)
        at = wall.astimezone(UTC)
        tol = timedelta(minutes=check.tolerance_min)
        out.append(CheckWindow(index=i, at=at, start=at - tol, end=at + tol))
    return tuple(out)


def window_at(plan: CarePlan, at: datetime, zone: tzinfo) -> CheckWindow | None:
    """The plan's agreed window containing ``at``, if any (neighbouring nights included)."""
    night = night_of(at, zone)
    for n in (night, night - _DAY, night + _DAY):
        for window in night_windows(plan, n, zone):
            if window.contains(at):
                return window
    return None


# --- the gate ------------------------------------------------------------------------------


def consent_in_force(
    consents: Iterable[Consent], *, cohabitant_id: str | None, purpose: Purpose, at: datetime
) -> Consent | None:
    """The version of the series (person, purpose) in force at ``at``: the highest version with
    ``valid_from <= at``."""
    best: Consent | None = None
    for c in consents:
        if (
            c.cohabitant_id == cohabitant_id
            and c.purpose is purpose
            and c.valid_from <= at
            and (best is None or c.version > best.version)
        ):
            best = c
    return best


def consent_reason(
    basis: RecipientBasis, cohabitant_id: str | None, purpose: Purpose, at: datetime, zone: tzinfo
) -> Reason | None:
    c = consent_in_force(basis.consents, cohabitant_id=cohabitant_id, purpose=purpose, at=at)
    if c is None:
        return Reason.NO_CONSENT if cohabitant_id is None else Reason.COHABITANT_MISSING
    if c.withdrawn_at is not None and c.withdrawn_at <= at:
        return Reason.WITHDRAWN
    if not c.has_legal_basis:
        return Reason.NO_LEGAL_BASIS
    if c.valid_until is not None and at >= c.valid_until:
        return Reason.EXPIRED
    if c.windows:
        local = at.astimezone(zone).time().replace(tzinfo=None)
        if not any(w.contains(local) for w in c.windows):
            return Reason.OUTSIDE_WINDOW
    return None


def _decide(basis: RecipientBasis, purpose: Purpose, at: datetime) -> Decision:
    req = REQUIREMENTS[purpose]
    rid = basis.recipient_id
    if req.is_suspendable and any(s.is_active(at) for s in basis.suspensions):
        return Decision.deny(Reason.SUSPENDED, rid)
    plans = [p for p in basis.plans if p.is_active(at)]
    if req.needs_plan and not plans:
        return Decision.deny(Reason.PLAN_INACTIVE, rid)
    zone = zone_of(basis.recipient.time_zone)
    people: list[str | None] = [None]
    if req.needs_cohabitants:
        people += sorted(c.cohabitant_id for c in basis.cohabitants if c.lives_there(at))
    for needed in req.consents:
        for person in people:
            reason = consent_reason(basis, person, needed, at, zone)
            if reason is not None:
                return Decision.deny(reason, rid)
    if req.is_pausable and any(p.is_active(at) for p in basis.pauses):
        return Decision.deny(Reason.PAUSED, rid)
    plan = plans[0] if plans else None
    window = None
    if req.needs_window:
        plan, window = next(
            ((p, w) for p in plans if (w := window_at(p, at, zone)) is not None), (None, None)
        )
        if plan is None:
            return Decision.deny(Reason.OUTSIDE_WINDOW, rid)
    return Decision(
        allowed=True,
        reason=None,
        recipient_id=rid,
        plan_id=plan.plan_id if plan else None,
        view_cap_s=plan.view_cap_s if plan else None,
        window_start=window.start if window else None,
        window_end=window.end if window else None,
        call_cap_s=plan.call_cap_s if plan else None,
        announce_s=plan.announce_s if plan else None,
        live_countdown=plan.live_countdown if plan else None,
    )


def check_instant(at: datetime, field: str) -> Problem | None:
    """A problem naming ``field`` when ``at`` is outside the range the gate answers for."""
    if at.tzinfo is None:
        return Problem(field, "invalid_datetime", f"{field} must be timezone-aware")
    if not EARLIEST_INSTANT <= at < LATEST_INSTANT:
        return Problem(
            field,
            "out_of_range",
            f"{field} must be from {EARLIEST_INSTANT:%Y-%m-%d} up to (not including) "
            f"{LATEST_INSTANT:%Y-%m-%d} UTC",
        )
    return None


def decide(
    basis: RecipientBasis | None, *, device_id: str, purpose: Purpose, at: datetime
) -> Decision:
    """May ``device_id`` be used for ``purpose`` at ``at``? ``basis`` is the brukare the device
    is (or was) bound to, or ``None`` when it has never been bound. ``at`` is tz-aware and within
    :func:`check_instant`'s range (callers with input from outside check it first)."""
    if (problem := check_instant(at, "at")) is not None:
        raise ValueError(problem.message)
    if basis is None or not any(
        b.device_id == device_id and b.is_active(at) for b in basis.bindings
    ):
        return Decision.deny(
            Reason.DEVICE_NOT_BOUND, basis.recipient_id if basis is not None else None
        )
    return _decide(basis, purpose, at)


def decide_recipient(basis: RecipientBasis, *, purpose: Purpose, at: datetime) -> Decision:
    """The gate for a brukare through any device bound to the home at ``at`` (for planning)."""
    if (problem := check_instant(at, "at")) is not None:
        raise ValueError(problem.message)
    if not any(b.is_active(at) for b in basis.bindings):
        return Decision.deny(Reason.DEVICE_NOT_BOUND, basis.recipient_id)
    return _decide(basis, purpose, at)


def transitions(basis: RecipientBasis, after: datetime, until: datetime) -> list[datetime]:
    """Dated instants in ``(after, until]`` at which a stored record comes into force or ends and
    may turn an allowed look into a denied one with nobody writing anything: a pause starts, a
    plan or a consent ends, a consent version or a withdrawal takes effect, a cohabitant moves
    in. Sorted, without duplicates."""
    found: set[datetime] = set()
    found.update(p.starts_at for p in basis.pauses)
    found.update(t for p in basis.plans for t in (p.valid_until, p.ended_at) if t is not None)
    for c in basis.consents:
        found.update(t for t in (c.valid_from, c.valid_until, c.withdrawn_at) if t is not None)
    found.update(c.moved_in_at for c in basis.cohabitants)
    return sorted(t for t in found if after < t <= until)


def devices_at(basis: RecipientBasis, at: datetime) -> tuple[str, ...]:
    """Ids of the devices bound to the brukare's home at ``at``, sorted."""
    return tuple(sorted({b.device_id for b in basis.bindings if b.is_active(at)}))


# --- validation ----------------------------------------------------------------------------


def parse_zone(name: str, field: str = "time_zone") -> ZoneInfo | Problem:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return Problem(field, "unknown_time_zone", f"{field} is not a known time zone: {name!r}")


@lru_cache(maxsize=512)
def _transition_nights(zone_name: str, first: date, days: int) -> tuple[date, ...]:
    """Nights in ``[first, first + days)`` during which the zone's UTC offset changes."""
    zone = ZoneInfo(zone_name)
    out = []
    prev = datetime.combine(first, NOON, tzinfo=zone).utcoffset()
    for i in range(days):
        d = first + timedelta(days=i)
        nxt = datetime.combine(d + _DAY, NOON, tzinfo=zone).utcoffset()
        if nxt != prev:
            out.append(d)
        prev = nxt
    return tuple(out)


def transition_nights(zone_name: str, start: datetime, until: datetime | None) -> tuple[date, ...]:
    """The DST nights a plan running from ``start`` may meet in its first ``DST_SCAN_DAYS``."""
    zone = ZoneInfo(zone_name)
    first = night_of(start, zone)
    days = DST_SCAN_DAYS
    if until is not None:
        days = max(1, min(days, (night_of(until, zone) - first).days + 1))
    return _transition_nights(zone_name, first, days)


def sorted_checks(checks: Sequence[CheckTime]) -> tuple[CheckTime, ...]:
    """Checks in the order they fall in the night (from noon)."""
    return tuple(sorted(checks, key=lambda c: night_minute(c.at)))


def validate_checks(
    checks: Sequence[CheckTime],
    *,
    zone_name: str,
    valid_from: datetime,
    valid_until: datetime | None,
) -> list[Problem]:
    """Count, tolerances, overlaps, noon crossings and DST for a night's agreed times."""
    problems: list[Problem] = []
    if not MIN_CHECKS <= len(checks) <= MAX_CHECKS:
        return [
            Problem(
                "checks",
                "check_count",
                f"a night has {MIN_CHECKS} to {MAX_CHECKS} checks, got {len(checks)}",
            )
        ]
    for i, c in enumerate(checks):
        f = f"checks[{i}]"
        if c.at.tzinfo is not None:
            problems.append(Problem(f"{f}.at", "not_local", f"{f}.at must be a local time"))
        if c.tolerance_min < 0:
            problems.append(
                Problem(
                    f"{f}.tolerance_min",
                    "inverted_window",
                    f"{f}.tolerance_min is negative: the window ends before it starts",
                )
            )
        elif not MIN_TOLERANCE_MIN <= c.tolerance_min <= MAX_TOLERANCE_MIN:
            problems.append(
                Problem(
                    f"{f}.tolerance_min",
                    "out_of_range",
                    f"{f}.tolerance_min must be {MIN_TOLERANCE_MIN} to {MAX_TOLERANCE_MIN} minutes",
                )
            )
        else:
            m = night_minute(c.at)
            if m - c.tolerance_min < 0 or m + c.tolerance_min > _MINUTES_PER_DAY:
                problems.append(
                    Problem(
                        f,
                        "crosses_noon",
                        f"{f}: the window crosses 12:00, where one night ends and the next begins",
                    )
                )
    if problems:
        return problems
    order = sorted(range(len(checks)), key=lambda i: night_minute(checks[i].at))
    for a, b in itertools.pairwise(order):
        ca, cb = checks[a], checks[b]
        if night_minute(ca.at) + ca.tolerance_min > night_minute(cb.at) - cb.tolerance_min:
            problems.append(
                Problem(f"checks[{b}]", "overlapping_windows", f"checks[{b}] overlaps checks[{a}]")
            )
    if problems:
        return problems
    zone = ZoneInfo(zone_name)
    probe = CarePlan(
        plan_id="-", recipient_id="-", decision_ref="-", valid_from=valid_from, checks=tuple(checks)
    )
    for night in transition_nights(zone_name, valid_from, valid_until):
        windows = night_windows(probe, night, zone)
        for a, b in itertools.pairwise(order):
            wa, wb = windows[a], windows[b]
            if wa.end > wb.start:
                return [
                    Problem(
                        f"checks[{b}]",
                        "dst_overlap",
                        f"checks[{b}] overlaps or comes before checks[{a}] on the night "
                        f"of {night.isoformat()}, when the clocks change in {zone_name}",
                    )
                ]
    return problems


def validate_plan(plan: CarePlan, *, zone_name: str) -> list[Problem]:
    """Everything wrong with a new care plan, field by field (empty when valid)."""
    problems: list[Problem] = []
    zone = parse_zone(zone_name)
    if isinstance(zone, Problem):
        return [zone]
    if not plan.decision_ref.strip() or len(plan.decision_ref) > 128:
        problems.append(
            Problem(
                "decision_ref",
                "required",
                "decision_ref (the granted decision) is required, at most 128 characters",
            )
        )
    if plan.valid_until is not None and plan.valid_until <= plan.valid_from:
        problems.append(
            Problem("valid_until", "inverted_period", "valid_until must be after valid_from")
        )
    if not MIN_VIEW_CAP_S <= plan.view_cap_s <= MAX_VIEW_CAP_S:
        problems.append(
            Problem(
                "view_cap_s",
                "out_of_range",
                f"view_cap_s must be {MIN_VIEW_CAP_S} to {MAX_VIEW_CAP_S}",
            )
        )
    if not MIN_CALL_CAP_S <= plan.call_cap_s <= MAX_CALL_CAP_S:
        problems.append(
            Problem(
                "call_cap_s",
                "out_of_range",
                f"call_cap_s must be {MIN_CALL_CAP_S} to {MAX_CALL_CAP_S}",
            )
        )
    if not MIN_ANNOUNCE_S <= plan.announce_s <= MAX_ANNOUNCE_S:
        problems.append(
            Problem(
                "announce_s",
                "out_of_range",
                f"announce_s must be {MIN_ANNOUNCE_S} to {MAX_ANNOUNCE_S}",
            )
        )
    if not MIN_RETRY_S <= plan.retry_interval_s <= MAX_RETRY_S:
        problems.append(
            Problem(
                "retry_interval_s",
                "out_of_range",
                f"retry_interval_s must be {MIN_RETRY_S} to {MAX_RETRY_S}",
            )
        )
    if not plan.escalation or plan.escalation[-1] is not EscalationStep.PATROL:
        problems.append(
            Problem(
                "escalation",
                "must_end_with_patrol",
                "the escalation ladder must end with a patrol visit",
            )
        )
    problems += validate_deadlines(plan.deadlines)
    if len(plan.instruction) > 2000:
        problems.append(Problem("instruction", "too_long", "instruction is at most 2000 chars"))
    if problems:
        return problems
    return validate_checks(
        plan.checks, zone_name=zone_name, valid_from=plan.valid_from, valid_until=plan.valid_until
    )


_DEADLINE_BOUNDS = (
    ("respond_s", MIN_RESPOND_S, MAX_RESPOND_S),
    ("repeat_s", MIN_REPEAT_S, MAX_REPEAT_S),
    ("escalate_s", MIN_ESCALATE_S, MAX_ESCALATE_S),
)


def validate_deadlines(deadlines: Deadlines) -> list[Problem]:
    """Every step's terms within their bounds, and a view or a call nobody answers reaching a
    physical visit (the patrol) within ``MAX_TO_VISIT_S`` of its start: the ladder ends in a
    visit (a patrol step nobody answers alerts the shift lead; the visit stays requested)."""
    problems: list[Problem] = []
    for step in HumanStep:
        terms = deadlines.of(step)
        for name, low, high in _DEADLINE_BOUNDS:
            value = getattr(terms, name)
            if not low <= value <= high:
                problems.append(
                    Problem(
                        f"deadlines.{step.value}.{name}",
                        "out_of_range",
                        f"deadlines.{step.value}.{name} must be {low} to {high}",
                    )
                )
    for step in (HumanStep.VIEW, HumanStep.CALL):
        terms = deadlines.of(step)
        if not problems and terms.respond_s + terms.escalate_s > MAX_TO_VISIT_S:
            problems.append(
                Problem(
                    f"deadlines.{step.value}",
                    "visit_too_late",
                    f"an unanswered {step.value} must reach the patrol within {MAX_TO_VISIT_S} s"
                    " (respond_s + escalate_s)",
                )
            )
    return problems


def plan_overlap(new: CarePlan, existing: Iterable[CarePlan]) -> Problem | None:
    """A brukare has at most one care plan in force at any instant."""
    for old in existing:
        if old.recipient_id != new.recipient_id:
            continue
        old_until, new_until = old.effective_until, new.effective_until
        if (old_until is None or new.valid_from < old_until) and (
            new_until is None or old.valid_from < new_until
        ):
            return Problem(
                "valid_from",
                "overlapping_plan",
                f"the period overlaps care plan {old.plan_id}; end it first",
            )
    return None


def _spans(w: TimeWindow) -> list[tuple[int, int]]:
    """A daily window as minute intervals ``[a, b)`` of one day (two if it crosses midnight)."""
    a, b = w.start.hour * 60 + w.start.minute, w.end.hour * 60 + w.end.minute
    return [(a, b)] if a < b else [(a, _MINUTES_PER_DAY), (0, b)]


def validate_windows(windows: Sequence[TimeWindow], field: str = "windows") -> list[Problem]:
    """Each window non-empty, and no two overlapping (a window ending when the next starts is
    fine)."""
    problems = [
        Problem(f"{field}[{i}]", "empty_window", f"{field}[{i}] starts when it ends")
        for i, w in enumerate(windows)
        if w.start == w.end
    ]
    if problems:
        return problems
    for j, wj in enumerate(windows):
        for i in range(j):
            if any(a < d and c < b for a, b in _spans(windows[i]) for c, d in _spans(wj)):
                return [
                    Problem(
                        f"{field}[{j}]",
                        "overlapping_windows",
                        f"{field}[{j}] overlaps {field}[{i}]",
                    )
                ]
    return []


def validate_consent(c: Consent, *, now: datetime) -> list[Problem]:
    """Everything wrong with a new consent record (the person is checked by the store)."""
    problems: list[Problem] = []
    if c.basis is Basis.OTHER_LEGAL_BASIS and not (c.basis_ref or "").strip():
        problems.append(
            Problem("basis_ref", "required", "another legal basis needs its reference (basis_ref)")
        )
    if c.basis is Basis.INFORMED_CONSENT:
        if not (c.informed_by or "").strip():
            problems.append(
                Problem("informed_by", "required", "informed consent needs who informed the person")
            )
        if not (c.informed_how or "").strip():
            problems.append(
                Problem(
                    "informed_how", "required", "informed consent needs how the person was informed"
                )
            )
    if c.given_at > now + CLOCK_SKEW:
        problems.append(Problem("given_at", "in_future", "given_at is in the future"))
    if c.valid_until is not None and c.valid_until <= c.valid_from:
        problems.append(
            Problem("valid_until", "inverted_period", "valid_until must be after valid_from")
        )
    problems += validate_windows(c.windows)
    return problems


def validate_withdrawal(c: Consent, *, withdrawn_at: datetime, now: datetime) -> Problem | None:
    if withdrawn_at < c.given_at:
        return Problem(
            "withdrawn_at", "before_consent", "withdrawn_at is before the consent was given"
        )
    if withdrawn_at > now + CLOCK_SKEW:
        return Problem(
            "withdrawn_at",
            "in_future",
            "a withdrawal takes effect at once; it cannot be dated in the future",
        )
    return None


def validate_pause(p: Pause) -> list[Problem]:
    if p.ends_at is not None and p.ends_at <= p.starts_at:
        return [Problem("ends_at", "inverted_period", "ends_at must be after starts_at")]
    return []


@dataclass(frozen=True, slots=True)
class BehaviourThresholds:
    """Hard rule 8's thresholds, as data: which behaviour counts as a possible withdrawal and
    how much of it. Events older than ``window`` (or from before the last re-verification) no
    longer count.

    - ``at_once``: a suspension at the first event (the camera removed, unplugged, or a health
      report's tamper flag turning on);
    - ``privacy``: device privacy events (``privacy_switch``, and a health report's shutter
      turning ``closed``) within the window; the setting ``HOMECARE_TAMPER_SUSPEND_THRESHOLD``
      overrides it (default 1);
    - ``covered``: covered-lens verdicts of the motion probe within the window;
    - ``offline_checks_in_a_row``: the bound camera found offline at this many consecutive
      agreed checks of the brukare (a camera pulled from the wall cannot say ``unplugged``).
    """

    window: timedelta = timedelta(days=7)
    at_once: frozenset[BehaviourEvent] = frozenset(
        {BehaviourEvent.TAMPER, BehaviourEvent.UNPLUGGED}
    )
    privacy: int = 1
    covered: int = 3
    offline_checks_in_a_row: int = 2

    def __post_init__(self) -> None:
        if min(self.privacy, self.covered, self.offline_checks_in_a_row) < 1:
            raise ValueError("every behaviour threshold must be at least 1")


THRESHOLDS = BehaviourThresholds()
"""The thresholds in force (``privacy`` is replaced by the setting)."""
BEHAVIOUR_WINDOW = THRESHOLDS.window
"""Behaviour older than this no longer counts towards a suspension."""
COVERED_SUSPEND_THRESHOLD = THRESHOLDS.covered
"""Covered-lens verdicts within :data:`BEHAVIOUR_WINDOW` that count as taking the camera down."""
OFFLINE_CHECKS_IN_A_ROW = THRESHOLDS.offline_checks_in_a_row
"""Consecutive agreed checks at which the bound camera was offline that count as removal."""
SUSPEND_AT_ONCE = THRESHOLDS.at_once
"""The camera removed or unplugged: a possible withdrawal at the first event."""


def _behaviour_class(kind: BehaviourEvent) -> str:
    """Events count with others of their class: the probe's covered verdicts, the round's
    offline checks, and the device's own events (privacy, tamper, unplugged, shutter)."""
    if kind is BehaviourEvent.COVERED:
        return "covered"
    if kind is BehaviourEvent.OFFLINE_AT_CHECK:
        return "offline"
    return "device"


def behaviour_count(
    event_type: BehaviourEvent,
    recent: Iterable[tuple[BehaviourEvent, datetime]],
    at: datetime,
    *,
    window: timedelta = BEHAVIOUR_WINDOW,
) -> int:
    """How many of ``recent`` count with ``event_type`` at ``at``: events of the same class
    (covered verdicts, offline checks, or the device events) within ``window`` up to ``at``."""
    cls = _behaviour_class(event_type)
    return sum(1 for kind, t in recent if _behaviour_class(kind) == cls and at - window < t <= at)


def offline_streak(
    recent: Iterable[tuple[BehaviourEvent, datetime]],
    at: datetime,
    agreed_checks: Iterable[datetime],
    *,
    window: timedelta = BEHAVIOUR_WINDOW,
) -> int:
    """How many consecutive agreed checks of the brukare, the one at ``at`` among them, found
    the camera offline. ``offline_at_check`` events are dated at their check's agreed instant;
    ``agreed_checks`` are the agreed instants of the brukare's checks around ``at`` (any order;
    ``at`` itself may be missing). The run is the longest stretch of neighbouring checks, in
    agreed order, each with such an event, within ``window`` of ``at``; a check between without
    one (the camera was there, or the check was not the camera's) ends it. The order in which
    the events were recorded does not matter."""
    offline = {t for kind, t in recent if kind is BehaviourEvent.OFFLINE_AT_CHECK}
    if at not in offline:
        return 0
    times = sorted({t for t in agreed_checks if abs(t - at) < window} | {at})
    i = times.index(at)
    lo = i
    while lo > 0 and times[lo - 1] in offline:
        lo -= 1
    hi = i
    while hi + 1 < len(times) and times[hi + 1] in offline:
        hi += 1
    return hi - lo + 1


def should_suspend(
    *,
    event_type: BehaviourEvent,
    recent: Iterable[tuple[BehaviourEvent, datetime]],
    at: datetime,
    threshold: int,
    is_suspended: bool,
    agreed_checks: Sequence[datetime] = (),
    thresholds: BehaviourThresholds = THRESHOLDS,
) -> bool:
    """Hard rule 8: is this behaviour a possible withdrawal (reason ``possible_withdrawal``), so
    that camera checks stop until a human re-verifies consent?

    ``recent`` is the brukare's behaviour since the last re-verification, this event included;
    ``threshold`` the setting ``HOMECARE_TAMPER_SUSPEND_THRESHOLD`` (``thresholds.privacy``);
    ``agreed_checks`` (for ``offline_at_check``) the agreed instants of the brukare's checks
    around this one (see :func:`offline_streak`). See :class:`BehaviourThresholds` for the
    policy. Nothing new starts while a suspension is in force.
    """
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    if is_suspended:
        return False
    if event_type in thresholds.at_once:
        return True
    recent = list(recent)
    if event_type is BehaviourEvent.OFFLINE_AT_CHECK:
        streak = offline_streak(recent, at, agreed_checks, window=thresholds.window)
        return streak >= thresholds.offline_checks_in_a_row
    need = thresholds.covered if event_type is BehaviourEvent.COVERED else threshold
    return behaviour_count(event_type, recent, at, window=thresholds.window) >= need


def behaviour_weight(
    event_type: BehaviourEvent,
    recent: Iterable[tuple[BehaviourEvent, datetime]],
    at: datetime,
    agreed_checks: Sequence[datetime] = (),
) -> int:
    """The count a suspension records: the offline streak for ``offline_at_check``, else
    :func:`behaviour_count` (at least 1: this event)."""
    if event_type is BehaviourEvent.OFFLINE_AT_CHECK:
        return max(1, offline_streak(recent, at, agreed_checks))
    return max(1, behaviour_count(event_type, recent, at))


# --- re-verification (hard rule 8's way back) -------------------------------------------------


def people_living_there(basis: RecipientBasis, at: datetime) -> tuple[str, ...]:
    """Whom a re-verification must ask: the brukare (by ``recipient_id``), then each
    cohabitant living there at ``at`` (by ``cohabitant_id``)."""
    cohabitants = sorted(c.cohabitant_id for c in basis.cohabitants if c.lives_there(at))
    return (basis.recipient_id, *cohabitants)


def check_reverification(
    basis: RecipientBasis, people: Sequence[PersonAsked], at: datetime
) -> list[Problem]:
    """Problems with a re-verification record (empty: it may be stored): every person living
    there is asked exactly once, nobody else; nobody was spoken with in the future or before
    the suspension they answer; everyone answers for ``camera_check``."""
    problems: list[Problem] = []
    living = people_living_there(basis, at)
    seen: set[str] = set()
    active = [s for s in basis.suspensions if s.is_active(at)]
    earliest = min((s.started_at for s in active), default=None)
    for i, p in enumerate(people):
        where = f"people[{i}]"
        if p.person_id not in living:
            problems.append(
                Problem(
                    f"{where}.person_id",
                    "unknown_person",
                    "neither the brukare nor a cohabitant living there now",
                )
            )
        elif p.person_id in seen:
            problems.append(
                Problem(f"{where}.person_id", "duplicate_person", "this person is listed twice")
            )
        seen.add(p.person_id)
        if p.spoken_at > at + CLOCK_SKEW:
            problems.append(
                Problem(f"{where}.spoken_at", "in_future", "spoken_at is in the future")
            )
        elif earliest is not None and p.spoken_at < earliest:
            problems.append(
                Problem(
                    f"{where}.spoken_at",
                    "before_suspension",
                    "the person was asked before supervision was suspended",
                )
            )
        if Purpose.CAMERA_CHECK not in dict(p.answers):
            problems.append(
                Problem(
                    f"{where}.answers",
                    "answer_missing",
                    "every person answers for camera_check",
                )
            )
    problems.extend(
        Problem(
            "people",
            "person_missing",
            f"{'the brukare' if x == basis.recipient_id else 'a cohabitant living there'}"
            f" ({x}) was not asked",
        )
        for x in living
        if x not in seen
    )
    return problems


def reverification_outcome(people: Sequence[PersonAsked]) -> ReverifyOutcome:
    """``lifted`` when nobody refuses camera checks, else ``withdrawn`` (supervision ends: the
    refusing person's consent is withdrawn). Refusals of other purposes withdraw those consents
    but do not keep camera checks suspended."""
    refuses = any(
        dict(p.answers).get(Purpose.CAMERA_CHECK) is ReverifyAnswer.REFUSES for p in people
    )
    return ReverifyOutcome.WITHDRAWN if refuses else ReverifyOutcome.LIFTED


def refusals(people: Sequence[PersonAsked]) -> list[tuple[str, Purpose]]:
    """Each (person, purpose) answered ``refuses``, in the order given."""
    return [
        (p.person_id, purpose)
        for p in people
        for purpose, answer in p.answers
        if answer is ReverifyAnswer.REFUSES
    ]


def consents_to_withdraw(
    basis: RecipientBasis, refused: Sequence[tuple[str, Purpose]], at: datetime
) -> list[Consent]:
    """The consents a re-verification withdraws: for each refusal, the not yet withdrawn
    versions of that person's series for that purpose (none when the person had not consented;
    the refusal is still recorded)."""
    out: list[Consent] = []
    for person, purpose in refused:
        cohabitant = None if person == basis.recipient_id else person
        out.extend(
            c
            for c in basis.consents
            if c.cohabitant_id == cohabitant and c.purpose is purpose and c.withdrawn_at is None
        )
    return out


def validate_recipient(r: CareRecipient) -> list[Problem]:
    problems: list[Problem] = []
    if not is_id(r.recipient_id):
        problems.append(
            Problem(
                "recipient_id",
                "invalid_id",
                "recipient_id is 1..64 lowercase letters, digits and dashes",
            )
        )
    if not r.display_name.strip() or len(r.display_name) > 200:
        problems.append(
            Problem("display_name", "required", "display_name is required, at most 200 characters")
        )
    if len(r.home) > 500:
        problems.append(Problem("home", "too_long", "home is at most 500 characters"))
    zone = parse_zone(r.time_zone)
    if isinstance(zone, Problem):
        problems.append(zone)
    if not (2 <= len(r.language) <= 8 and r.language.replace("-", "").isalpha()):
        problems.append(Problem("language", "invalid", "language is a tag like 'sv' or 'fi'"))
    if not is_id(r.team_id):
        problems.append(Problem("team_id", "invalid_id", "team_id is not a team id"))
    return problems


def validate_cohabitant(c: Cohabitant) -> list[Problem]:
    problems: list[Problem] = []
    if not is_id(c.cohabitant_id):
        problems.append(
            Problem(
                "cohabitant_id",
                "invalid_id",
                "cohabitant_id is 1..64 lowercase letters, digits and dashes",
            )
        )
    if not c.display_name.strip() or len(c.display_name) > 200:
        problems.append(
            Problem("display_name", "required", "display_name is required, at most 200 characters")
        )
    if c.moved_out_at is not None and c.moved_out_at < c.moved_in_at:
        problems.append(
            Problem("moved_out_at", "inverted_period", "moved_out_at is before moved_in_at")
        )
    return problems


DEFAULT_PLAN_HOUR = 18
"""Local hour the night round begins (``HOMECARE_PLAN_HOUR``); every round ends at noon."""


def validate_round_times(
    checks: Sequence[CheckTime], plan_hour: int = DEFAULT_PLAN_HOUR
) -> list[tuple[str, str]]:
    """``(field, message)`` for agreed times outside any round (for the plan API's 422).

    Wall-clock arithmetic only: a window must start at or after ``plan_hour`` and end by noon.
    """
    out = []
    for i, c in enumerate(checks):
        minute = c.at.hour * 60 + c.at.minute
        since_start = (minute - plan_hour * 60) % (24 * 60)
        length = (24 - plan_hour + 12) * 60
        if since_start - c.tolerance_min < 0 or since_start + c.tolerance_min > length:
            out.append(
                (
                    f"checks[{i}].at",
                    f"checks[{i}] at {c.at:%H:%M} ± {c.tolerance_min} min is outside the "
                    f"night round {plan_hour:02d}:00-12:00",
                )
            )
    return out


# --- binding: four eyes and proof from the device (issue 17) ----------------------------------

PROOF_WINDOW = timedelta(minutes=10)
"""The device's proof counts only within this long of the request: a video phone's code expires
then, and a camera's ``bind_button`` must be pressed at or after the request and within it."""
MAX_CODE_ATTEMPTS = 5
"""Wrong codes a request takes; the last one voids it (a new request sends a new code), so a
six-digit code cannot be guessed: 5 tries in a million."""
BIND_CODE_DIGITS = 6


def proof_for(action: BindingAction, device_kind: str | None) -> BindingProof:
    """The proof a request needs: binding a video phone its code, binding anything else (a
    camera, or a device that never said what it is) its button; unbinding none."""
    if action is BindingAction.UNBIND:
        return BindingProof.NONE
    return BindingProof.CODE if device_kind == "video_phone" else BindingProof.BUTTON


def bind_code_hash(request_id: str, code: str) -> str:
    """The stored form of a one-time code: SHA-256 of the code salted with its request's id."""
    return hashlib.sha256(f"{request_id}:{code}".encode()).hexdigest()


def normalised(text: str) -> str:
    """Text as compared: Unicode NFKC, case folded, every run of anything but letters and digits
    one space (``"Storg. 1"`` and ``"storg 1"`` are the same)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.split(r"[\W_]+", folded)).strip()


def name_matches(typed: str, display_name: str) -> bool:
    """The brukare's name as read out on site: the whole name, or the family name (the last
    word), as on the door."""
    said, full = normalised(typed), normalised(display_name)
    return bool(said) and (said == full or said == full.rsplit(" ", 1)[-1])


def address_matches(typed: str, home: str) -> bool:
    """The street address as read out on site: the whole registered home, or its first part
    (before the first comma: street and number, without the flat or postcode)."""
    said = normalised(typed)
    return bool(said) and said in {normalised(home), normalised(home.split(",", 1)[0])}


@dataclass(frozen=True, slots=True)
class ConfirmRefusal:
    """Why a confirmation is refused: ``code`` is the API's (``four_eyes`` 409,
    ``device_proof`` and ``details_mismatch`` 422, ...), ``reason`` the finer cause
    (``wrong_code``, ``code_expired``, ``no_button``, ``button_before_request``, ...).
    ``counts`` is a wrong code: the attempt is recorded although nothing else changes, and
    ``voids`` says it was the last one the request takes."""

    status: int
    code: str
    reason: str
    field: str | None
    message: str
    counts: bool = False
    voids: bool = False


def _proof_refusal(
    req: BindingRequest, typed: BindingConfirmation, button: ButtonPress | None, at: datetime
) -> ConfirmRefusal | None:
    def refuse(
        reason: str, field: str, message: str, *, counts: bool = False, voids: bool = False
    ) -> ConfirmRefusal:
        return ConfirmRefusal(422, "device_proof", reason, field, message, counts, voids)

    if req.proof is BindingProof.CODE:
        left = MAX_CODE_ATTEMPTS - req.code_attempts
        if left <= 0 or req.code_hash is None:
            return refuse("attempts_exhausted", "code", "too many wrong codes; make a new request")
        if req.code_expires_at is None or at >= req.code_expires_at:
            return refuse("code_expired", "code", "the code has expired; make a new request")
        if not typed.code:
            return refuse("code_missing", "code", "type the code the video phone shows")
        if not hmac.compare_digest(bind_code_hash(req.request_id, typed.code), req.code_hash):
            if left == 1:
                return refuse(
                    "attempts_exhausted",
                    "code",
                    "wrong code, the last attempt: the request is void; make a new one",
                    counts=True,
                    voids=True,
                )
            return refuse(
                "wrong_code", "code", f"wrong code; {left - 1} attempt(s) left", counts=True
            )
        return None
    if req.proof is BindingProof.BUTTON:
        if button is None or button.device_id != req.device_id:
            return refuse("no_button", "device_id", "the device's bind button has not been pressed")
        if button.at < req.requested_at:
            return refuse(
                "button_before_request",
                "device_id",
                "the button was pressed before the request; press it again",
            )
        if button.at > req.requested_at + PROOF_WINDOW or button.at > at:
            return refuse(
                "button_too_late",
                "device_id",
                "the button was pressed more than 10 minutes after the request; make a new one",
            )
        return None
    return refuse("no_proof", "request_id", "the request names no proof; make a new request")


def confirm_refusal(
    req: BindingRequest,
    typed: BindingConfirmation,
    *,
    confirmer: str,
    recipient: CareRecipient,
    button: ButtonPress | None,
    at: datetime,
) -> ConfirmRefusal | None:
    """Whether step two may go ahead (``None``), else the first reason in this order: the request
    is closed or expired (409); the confirmer is the requester (409 ``four_eyes``); the
    confirmation names another brukare (409 ``recipient_mismatch``); then, for a binding, the
    device's proof (422 ``device_proof``: the code, or ``button``, the latest
    ``bind_button`` of *that* device, pressed at or after the request and within
    :data:`PROOF_WINDOW`), then the brukare's details (422 ``details_mismatch``: the name, and
    the street address when the record holds one). An unbinding needs four eyes only."""
    if not req.is_open:
        return ConfirmRefusal(
            409, "request_closed", "closed", None, "the request was already confirmed or replaced"
        )
    if at >= req.expires_at:
        return ConfirmRefusal(
            409, "request_expired", "expired", None, "the request has expired; make a new one"
        )
    if confirmer == req.requested_by:
        return ConfirmRefusal(
            409,
            "four_eyes",
            "same_person",
            None,
            "the request must be confirmed by someone other than its requester",
        )
    if typed.recipient_id != req.recipient_id:
        return ConfirmRefusal(
            409,
            "recipient_mismatch",
            "recipient_mismatch",
            "recipient_id",
            "recipient_id does not name the brukare of the request",
        )
    if req.action is BindingAction.UNBIND:
        return None
    if (proof := _proof_refusal(req, typed, button, at)) is not None:
        return proof
    if not name_matches(typed.name, recipient.display_name):
        return ConfirmRefusal(
            422, "details_mismatch", "name", "name", "the name does not match the brukare's record"
        )
    if recipient.home.strip() and not address_matches(typed.address, recipient.home):
        return ConfirmRefusal(
            422,
            "details_mismatch",
            "address",
            "address",
            "the address does not match the brukare's record",
        )
    return None
