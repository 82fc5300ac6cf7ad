"""The night planner (pure): tonight's checks from care plans, consents, pauses and device health.

A night is named by its evening's date and runs noon to noon locally (``consent.rules``); the
*round* is the part of it the planner covers, from the planning hour (default 18:00) to the next
noon. Each agreed check time of the care plan in force at that instant becomes one
:class:`~supervision.checks.Check`, its window resolved exactly as the gate resolves it
(``consent.rules.night_windows``: the instant the wall-clock time first occurs ± the tolerance, in
real time), so on the March and October nights each check happens once and keeps its length.

A check that cannot be done by camera becomes a physical visit at once, with the reason: no
consent, a cohabitant's consent missing, withdrawn, suspended, no device bound, the device offline.
A paused check is dropped (a deviation) or visited, as the plan says. A check whose window ended
before it was planned is a deviation (``planned_after_window``). Agreed times outside the round
are not planned; they come back as :class:`PlanProblem` s.

Ids are deterministic (:func:`check_id`: night, agreed time, brukare), so planning twice yields
the same checks and the store keeps the first. :func:`replan` turns one brukare's remaining
checks into visits or deviations when a plan, consent or pause changes during the night, and adds
checks for newly agreed times. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from consent.model import (
    Binding,
    CarePlan,
    Deadlines,
    EscalationStep,
    PausedCheckPolicy,
    Purpose,
    Reason,
    RecipientBasis,
)
from consent.rules import (
    DEFAULT_PLAN_HOUR,
    decide_recipient,
    night_windows,
)
from supervision import checks as ch
from supervision.checks import Cancel, Check, DeviceLost, Policy, State, Transition

NOON = time(12, 0)
_DAY = timedelta(days=1)

Online = Callable[[str], bool]
"""Whether a device is online now (the registry's last known presence)."""


# --------------------------------------------------------------------------- ids and bounds


def check_id(recipient_id: str, night: date, agreed: time) -> str:
    """The check's id: ``YYYYMMDD.HHMM.<recipient>`` (the night's evening date, local time)."""
    return (
        f"{night.year:04d}{night.month:02d}{night.day:02d}."
        f"{agreed.hour:02d}{agreed.minute:02d}.{recipient_id}"
    )


@dataclass(frozen=True, slots=True)
class Round:
    """One night's round in one time zone: ``[start, end)`` as instants."""

    night: date
    zone: tzinfo
    start: datetime
    end: datetime


def round_of(night: date, zone: tzinfo, plan_hour: int = DEFAULT_PLAN_HOUR) -> Round:
    """The round of ``night``: from ``plan_hour`` local on the evening to noon the next day."""
    if not 12 <= plan_hour <= 23:
        raise ValueError(f"plan_hour must be 12..23, got {plan_hour}")
    start = datetime.combine(night, time(plan_hour), tzinfo=zone)
    end = datetime.combine(night + _DAY, NOON, tzinfo=zone)
    return Round(night, zone, start, end)


@dataclass(frozen=True, slots=True)
class PlanProblem:
    """An agreed time that could not be planned; ``field`` names it as the plan API does."""

    recipient_id: str
    plan_id: str
    field: str
    code: str
    message: str


def round_problems(
    plan: CarePlan, night: date, zone: tzinfo, plan_hour: int = DEFAULT_PLAN_HOUR
) -> list[PlanProblem]:
    """Agreed times of ``plan`` whose window is not inside the round of ``night``."""
    bounds = round_of(night, zone, plan_hour)
    out = []
    for w in night_windows(plan, night, zone):
        if w.start < bounds.start or w.end > bounds.end:
            t = plan.checks[w.index].at
            out.append(
                PlanProblem(
                    plan.recipient_id,
                    plan.plan_id,
                    f"checks[{w.index}].at",
                    "outside_night",
                    f"checks[{w.index}] at {t:%H:%M} ± {plan.checks[w.index].tolerance_min} min is "
                    f"outside the night round {plan_hour:02d}:00-12:00",
                )
            )
    return out


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True, slots=True)
class NightPlan:
    """The planner's output. ``transitions`` are the moves made at planning (to patrol or
    deviation), to be stored and audited beside the checks."""

    night: date
    checks: tuple[Check, ...]
    transitions: tuple[Transition, ...] = ()
    problems: tuple[PlanProblem, ...] = ()

    def by_state(self) -> dict[State, int]:
        counts: dict[State, int] = {}
        for c in self.checks:
            counts[c.state] = counts.get(c.state, 0) + 1
        return counts


def policy_of(plan: CarePlan) -> Policy:
    """A check's terms from the care plan."""
    return _policy(
        (plan.view_cap_s, plan.motion_may_clear, plan.retry_interval_s),
        plan.escalation,
        plan.paused_checks,
        plan.deadlines,
    )


@lru_cache(maxsize=1024)
def _policy(
    numbers: tuple[int, bool, int],
    escalation: tuple[EscalationStep, ...],
    paused_checks: PausedCheckPolicy,
    deadlines: Deadlines,
) -> Policy:
    """One :class:`Policy` value per distinct set of terms (immutable, so shared: a night of
    thousands of brukare has a handful). ``numbers``: the view cap, whether motion may clear, the
    retry interval."""
    view_cap_s, motion_may_clear, retry_interval_s = numbers
    return Policy(
        view_cap_s=view_cap_s,
        may_clear_without_human=motion_may_clear,
        retry_interval_s=retry_interval_s,
        ladder=Policy.ladder_from([s.value for s in escalation]),
        paused_visit=paused_checks is PausedCheckPolicy.PHYSICAL_VISIT,
        deadlines=deadlines,
    )


def _device_for(basis: RecipientBasis, at: datetime, online: Online) -> str | None:
    """The device a camera check at ``at`` uses: a bound camera (an online one first), else any
    bound device; None when nothing is bound."""
    bound = [b for b in basis.bindings if b.is_active(at)]
    if not bound:
        return None

    def rank(b: Binding) -> tuple[int, int, str]:
        return (
            0 if b.device_kind in ("camera", None) else 1,
            0 if online(b.device_id) else 1,
            b.device_id,
        )

    return min(bound, key=rank).device_id


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether one check can be done by camera, and if not what replaces it."""

    device_id: str | None
    reason: str | None = None  # None: camera check possible
    visit: bool = True


def camera_verdict(
    basis: RecipientBasis,
    plan: CarePlan,
    at: datetime,
    online: Online,
    *,
    ignore_window: bool = False,
) -> Verdict:
    """Can the check at instant ``at`` be done by camera, as far as is known now?

    ``ignore_window`` accepts a denial for being outside the plan's agreed windows (a check under
    way that is already past its window, e.g. waiting for a retry): the gate reports that reason
    only after every consent, pause and binding requirement held.
    """
    device = _device_for(basis, at, online)
    decision = decide_recipient(basis, purpose=Purpose.CAMERA_CHECK, at=at)
    if not decision.allowed and not (ignore_window and decision.reason is Reason.OUTSIDE_WINDOW):
        reason = decision.reason or Reason.NO_CONSENT
        if reason is Reason.PAUSED:
            return Verdict(
                device, "paused", visit=plan.paused_checks is PausedCheckPolicy.PHYSICAL_VISIT
            )
        return Verdict(device, str(reason))
    if device is None:
        return Verdict(None, str(Reason.DEVICE_NOT_BOUND))
    if not online(device):
        return Verdict(device, "device_offline")
    return Verdict(device)


def _instants(basis: RecipientBasis) -> Iterator[datetime | None]:
    """Every instant at which something in ``basis`` starts or stops being in force."""
    for p in basis.plans:
        yield p.valid_from
        yield p.effective_until
    for c in basis.consents:
        yield c.valid_from
        yield c.valid_until
        yield c.withdrawn_at
    for x in basis.pauses:
        yield x.starts_at
        yield x.ends_at
    for b in basis.bindings:
        yield b.bound_at
        yield b.unbound_at
    for s in basis.suspensions:
        yield s.started_at
        yield s.lifted_at
    for h in basis.cohabitants:
        yield h.moved_in_at
        yield h.moved_out_at


def is_steady(basis: RecipientBasis, start: datetime, end: datetime) -> bool:
    """Nothing in ``basis`` changes in ``[start, end]`` and no consent is limited to daily
    windows: then the gate's answer for a check is the same at every agreed instant of the round
    (the agreed window itself holds by construction), so the planner asks it once."""
    if any(c.windows for c in basis.consents):
        return False
    return not any(t is not None and start <= t <= end for t in _instants(basis))


def _plans_in_night(basis: RecipientBasis, bounds: Round) -> list[CarePlan]:
    """Plans in force at some instant of the night (noon to noon; windows never cross noon)."""
    night_start = datetime.combine(bounds.night, NOON, tzinfo=bounds.zone)
    return _plans_between(basis, night_start, bounds.end)


def _plans_between(basis: RecipientBasis, start: datetime, end: datetime) -> list[CarePlan]:
    out = []
    for p in basis.plans:
        until = p.effective_until
        if p.valid_from < end and (until is None or until > start):
            out.append(p)
    return out


@dataclass(frozen=True, slots=True)
class _Bounds:
    """A round's bounds as UTC instants (comparisons with the stored UTC instants then need no
    zone look-ups), and the noon that begins its night."""

    start: datetime
    end: datetime
    night_start: datetime


@lru_cache(maxsize=64)
def _bounds(night: date, zone: tzinfo, plan_hour: int) -> _Bounds:
    r = round_of(night, zone, plan_hour)
    noon = datetime.combine(night, NOON, tzinfo=zone)
    return _Bounds(r.start.astimezone(UTC), r.end.astimezone(UTC), noon.astimezone(UTC))


@dataclass(slots=True)
class _Builder:
    night: date
    at: datetime
    checks: list[Check] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    problems: list[PlanProblem] = field(default_factory=list)

    def settle(self, check: Check, verdict: Verdict) -> Check:
        """Move a new check to patrol or deviation if it cannot be done by camera."""
        event: ch.Event | None = None
        if check.window_end <= self.at:
            event = Cancel("planned_after_window", visit=False)
        elif verdict.reason == "device_offline":
            event = DeviceLost("device_offline")
        elif verdict.reason is not None:
            event = Cancel(verdict.reason, visit=verdict.visit)
        if event is None:
            return check
        result = ch.apply(check, event, at=self.at)
        if not isinstance(result, Transition):  # a new planned check accepts both events
            raise TypeError(f"planning could not settle a new check: {result}")
        self.transitions.append(result)
        return result.check


def _candidates(
    basis: RecipientBasis,
    b: _Builder,
    *,
    plan_hour: int,
    online: Online,
    skip: frozenset[str] = frozenset(),
) -> None:
    rec = basis.recipient
    night = b.night
    zone = ZoneInfo(rec.time_zone)
    bounds = _bounds(night, zone, plan_hour)
    steady = is_steady(basis, bounds.start, bounds.end)
    for plan in _plans_between(basis, bounds.night_start, bounds.end):
        policy: Policy | None = None
        known: Verdict | None = None  # the verdict of every check of a steady night
        for w in night_windows(plan, night, zone):
            if not plan.is_active(w.at):
                continue
            agreed = plan.checks[w.index].at
            cid = check_id(rec.recipient_id, night, agreed)
            if cid in skip:
                continue
            if w.start < bounds.start or w.end > bounds.end:
                b.problems.extend(
                    p
                    for p in round_problems(plan, night, zone, plan_hour)
                    if p.field == f"checks[{w.index}].at"
                )
                continue
            policy = policy or policy_of(plan)
            verdict = known or camera_verdict(basis, plan, w.at, online)
            if steady:
                known = verdict
            new = ch.planned(
                check_id=cid,
                recipient_id=rec.recipient_id,
                device_id=verdict.device_id,
                night=night,
                agreed=agreed,
                agreed_at=w.at,
                window_start=w.start,
                window_end=w.end,
                policy=policy,
                at=b.at,
            )
            b.checks.append(b.settle(new, verdict))


def plan_night(
    bases: Iterable[RecipientBasis],
    *,
    night: date,
    at: datetime,
    online: Online,
    plan_hour: int = DEFAULT_PLAN_HOUR,
) -> NightPlan:
    """Tonight's checks for every brukare in ``bases``, planned at instant ``at``.

    Deterministic: the same inputs give the same checks, ids and transitions, in the order of
    ``bases`` and then of each plan's agreed times.
    """
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    b = _Builder(night, at)
    for basis in bases:
        _candidates(basis, b, plan_hour=plan_hour, online=online)
    return NightPlan(night, tuple(b.checks), tuple(b.transitions), tuple(b.problems))


PART_SIZE = 250
"""Brukare per part of :func:`plan_parts` (a few tens of milliseconds of planning each)."""


def plan_parts(
    bases: Iterable[RecipientBasis],
    *,
    night: date,
    at: datetime,
    online: Online,
    plan_hour: int = DEFAULT_PLAN_HOUR,
    size: int = PART_SIZE,
) -> Iterator[NightPlan]:
    """:func:`plan_night` in parts of ``size`` brukare, each planned when asked for (so a store
    can send one part's checks to the database while the next is planned). The parts joined
    (:func:`joined`) are :func:`plan_night` of all ``bases``: each brukare is planned alone."""
    if size < 1:
        raise ValueError("size must be at least 1")
    part: list[RecipientBasis] = []
    for basis in bases:
        part.append(basis)
        if len(part) == size:
            yield plan_night(part, night=night, at=at, online=online, plan_hour=plan_hour)
            part = []
    if part:
        yield plan_night(part, night=night, at=at, online=online, plan_hour=plan_hour)


def joined(night: date, parts: Iterable[NightPlan]) -> NightPlan:
    """One night's plan from its parts, in their order."""
    checks: list[Check] = []
    transitions: list[Transition] = []
    problems: list[PlanProblem] = []
    for p in parts:
        checks.extend(p.checks)
        transitions.extend(p.transitions)
        problems.extend(p.problems)
    return NightPlan(night, tuple(checks), tuple(transitions), tuple(problems))


@dataclass(frozen=True, slots=True)
class Replan:
    """What a change during the night does to one brukare's checks."""

    events: tuple[tuple[str, ch.Event], ...]  # (check_id, event) for existing checks
    added: NightPlan  # newly agreed checks


def replan(
    basis: RecipientBasis,
    existing: Sequence[Check],
    *,
    night: date,
    at: datetime,
    online: Online,
    plan_hour: int = DEFAULT_PLAN_HOUR,
) -> Replan:
    """Re-plan one brukare's remaining checks of ``night`` after a change, at instant ``at``.

    A check not yet started (``planned``) is re-judged at its own agreed instant; one under way
    (due, probing, queued or viewed, waiting to retry, in a call) at ``at``. One whose agreed time
    is no longer in any plan in force is dropped (``plan_changed``). Checks with the patrol or
    already finished are left alone.
    """
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    zone = ZoneInfo(basis.recipient.time_zone)
    plans = _plans_in_night(basis, round_of(night, zone, plan_hour))
    events: list[tuple[str, ch.Event]] = []
    for c in existing:
        if c.is_finished or c.state in ch.PATROL_STATES:
            continue
        started = c.state is not State.PLANNED
        when = max(at, c.window_start) if started else c.agreed_at
        plan = _plan_with(plans, c)
        if plan is None:
            events.append((c.check_id, Cancel("plan_changed", visit=False)))
            continue
        verdict = camera_verdict(basis, plan, when, online, ignore_window=started)
        if verdict.reason == "device_offline":
            events.append((c.check_id, DeviceLost("device_offline")))
        elif verdict.reason is not None:
            events.append((c.check_id, Cancel(verdict.reason, visit=verdict.visit)))
    b = _Builder(night, at)
    _candidates(
        basis, b, plan_hour=plan_hour, online=online, skip=frozenset(c.check_id for c in existing)
    )
    added = NightPlan(night, tuple(b.checks), tuple(b.transitions), tuple(b.problems))
    return Replan(tuple(events), added)


def _plan_with(plans: Iterable[CarePlan], c: Check) -> CarePlan | None:
    """The plan in force at the check's instant that still agrees its time."""
    for p in plans:
        if p.is_active(c.agreed_at) and any(t.at == c.agreed for t in p.checks):
            return p
    return None


def summarise(plan: NightPlan) -> Mapping[str, int]:
    """Counts for logs and the audit: planned, patrol, deviation, problems."""
    states = plan.by_state()
    return {
        "checks": len(plan.checks),
        "camera": states.get(State.PLANNED, 0),
        "patrol": states.get(State.PATROL, 0),
        "deviation": states.get(State.DEVIATION, 0),
        "problems": len(plan.problems),
    }
