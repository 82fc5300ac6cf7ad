"""The check state machine (pure): one planned look at one brukare at one agreed time.

::

    planned ─open─▶ due ─claim─▶ probing ─verdict─▶ cleared    (plan allows, no human needed)
                                   │   └───────────▶ needs_view ─view─▶ viewing ─ok─▶ documented
                                   └─ camera trouble ─▶ patrol
    viewing ─not_seen─▶ next ladder step: retry_wait ─retry─▶ due … | calling | patrol
    viewing / needs_view ─call─▶ calling ─ok─▶ documented   ·   ─patrol / technical─▶ patrol
    patrol ─ack─▶ patrol_acked ─visited─▶ visited    ·   ─not_home─▶ patrol (again, unheld)
    any open state ─cancel─▶ patrol (visit) | deviation (dropped)   ·   ─device lost─▶ patrol
    needs_view / viewing / calling ─escalate (nobody acted)─▶ patrol (unanswered)
    morning ─reconcile─▶ deviation | escalated                       (nothing stays open)

An ``ok`` ("seen") needs video delivered: a view or call of that operator for that check, in its
current attempt, whose device reported at least :data:`MIN_SEEN_VIDEO_S` of it (the outcome's
``video_s``, filled in by the store); otherwise it is refused ``not_viewed``.

:func:`apply` is the only way to change a check: it looks the pair (state, event) up in one
transition table and returns either a :class:`Transition` carrying a new immutable :class:`Check`
or a :class:`Rejected` naming why. Every target a handler may reach is listed in :data:`ALLOWED`
and :func:`_move` refuses anything else, so an invalid transition cannot be built.

Each open state has a deadline, the instant by which it must be left; it comes from the check's
:class:`Policy` (the care plan's view cap, retry interval, escalation ladder and, for a step
that waits for a person, its deadline terms) and the system-wide :class:`Timing`. The watchdog
compares deadlines with the clock (:mod:`supervision.ladder`): an alarm, repeated, and after a
second deadline :class:`Escalate` (a view or a call goes to the patrol by itself).
All instants are timezone-aware; nothing here reads a clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from consent.model import (
    DEFAULT_DEADLINES,
    MAX_VIEW_CAP_S,
    MIN_VIEW_CAP_S,
    Deadlines,
    HumanStep,
    StepDeadline,
)
from kernel import timing as timing_policy
from kernel.roles import Role

# --------------------------------------------------------------------------- vocabulary


class State(StrEnum):
    PLANNED = "planned"  # made by the planner; its window has not opened
    DUE = "due"  # window open, waiting for a worker
    PROBING = "probing"  # a worker holds it: gate, wake, motion probe
    NEEDS_VIEW = "needs_view"  # queued for a human view
    VIEWING = "viewing"  # an operator has the feed open
    RETRY_WAIT = "retry_wait"  # not seen; a new look after the plan's retry interval
    CALLING = "calling"  # an operator calls the brukare
    PATROL = "patrol"  # a physical visit is requested, not yet acknowledged
    PATROL_ACKED = "patrol_acked"  # the patrol took the task
    CLEARED = "cleared"  # performed: the motion check cleared it without a human view
    DOCUMENTED = "documented"  # performed: an operator saw the brukare (view or call)
    VISITED = "visited"  # performed: the patrol reported the visit
    ESCALATED = "escalated"  # handed to the patrol, visit not reported by morning
    DEVIATION = "deviation"  # not performed as planned (avvikelse)


class Category(StrEnum):
    """How a check ends up in the morning report."""

    OPEN = "open"
    PERFORMED = "performed"
    ESCALATED = "escalated"
    DEVIATION = "deviation"


CATEGORY: dict[State, Category] = {
    **dict.fromkeys(State, Category.OPEN),
    State.CLEARED: Category.PERFORMED,
    State.DOCUMENTED: Category.PERFORMED,
    State.VISITED: Category.PERFORMED,
    State.ESCALATED: Category.ESCALATED,
    State.DEVIATION: Category.DEVIATION,
}
TERMINAL = frozenset(s for s, c in CATEGORY.items() if c is not Category.OPEN)
HUMAN_QUEUE = frozenset({State.NEEDS_VIEW, State.VIEWING, State.CALLING})
PATROL_STATES = frozenset({State.PATROL, State.PATROL_ACKED})


class Step(StrEnum):
    """One rung of the care plan's escalation ladder after a look that did not see the brukare."""

    RETRY = "retry"
    CALL = "call"
    PATROL = "patrol"


class OutcomeKind(StrEnum):
    """What an operator documents."""

    OK = "ok"  # seen, fine
    NOT_SEEN = "not_seen"  # -> next ladder step
    CALL = "call"  # start a video call now
    PATROL = "patrol"  # dispatch the night patrol (with a reason)
    TECHNICAL = "technical"  # device problem -> patrol


class PatrolOutcome(StrEnum):
    """What the patrol found at the home. ``not_home`` is no visit: the check stays open as a
    patrol task again (unassigned, with reason ``not_home``) for the shift lead to act on."""

    FOUND_WELL = "found_well"
    HELPED = "helped"
    TAKEN_TO_HOSPITAL = "taken_to_hospital"
    NOT_HOME = "not_home"


class Refusal(StrEnum):
    """Why an event was not applied; the HTTP layer shows these as 409."""

    FINISHED = "finished"  # the check already ended
    NOT_IN_STATE = "not_in_state"  # this state does not accept this event
    TOO_EARLY = "too_early"  # the window / retry time has not come
    CLAIMED = "claimed"  # another worker's claim has not expired
    ALREADY_PATROL = "already_patrol"  # nothing to do: a physical visit is already requested
    NOT_VIEWED = "not_viewed"  # "seen" without video delivered to this operator for this check


# Verdict names of the motion check (vision.verdict) as this module routes them.
CLEARABLE_VERDICTS = frozenset({"activity", "still"})
CAMERA_TROUBLE_VERDICTS = frozenset({"dark", "frozen", "covered", "no_signal"})
#: A camera's own ``health.video`` state (the device agent's; ``devices.topics.VideoState``)
#: that says it shows nothing, as the verdict it amounts to (hard rule 7).
VIDEO_TROUBLE = {"no_frames": "no_signal", "covered": "covered"}


def video_trouble(state: object) -> str | None:
    """Why a check of a camera whose last health reported ``state`` goes to the patrol without
    a look (``camera_no_signal``, ``camera_covered``, as the verdicts route), or ``None`` for
    ``ok`` or no ``video`` at all. A state this version does not know is trouble too."""
    if state is None or state == "ok":
        return None
    return f"camera_{VIDEO_TROUBLE.get(str(state), 'no_signal')}"


# --------------------------------------------------------------------------- terms


@dataclass(frozen=True, slots=True)
class Policy:
    """A check's terms, copied from the care plan when it was planned. Durations in seconds."""

    view_cap_s: int = 30
    may_clear_without_human: bool = False
    retry_interval_s: int = 1200
    ladder: tuple[Step, ...] = (Step.RETRY, Step.CALL, Step.PATROL)
    paused_visit: bool = True  # a check that meets a pause becomes a visit (else it is dropped)
    deadlines: Deadlines = DEFAULT_DEADLINES  # what happens when nobody acts (supervision.ladder)

    def __post_init__(self) -> None:
        if not MIN_VIEW_CAP_S <= self.view_cap_s <= MAX_VIEW_CAP_S:
            raise ValueError(
                f"view_cap_s must be {MIN_VIEW_CAP_S}..{MAX_VIEW_CAP_S}, got {self.view_cap_s}"
            )
        if not 60 <= self.retry_interval_s <= 4 * 3600:
            raise ValueError(f"retry_interval_s must be 60..14400, got {self.retry_interval_s}")
        if not self.ladder or self.ladder[-1] is not Step.PATROL:
            raise ValueError("the escalation ladder must end with patrol")
        if Step.PATROL in self.ladder[:-1]:
            raise ValueError("patrol can only be the ladder's last step")
        if len(self.ladder) > 8:
            raise ValueError("the escalation ladder has at most 8 steps")

    @staticmethod
    def ladder_from(steps: tuple[str, ...] | list[str]) -> tuple[Step, ...]:
        """Normalise a plan's ladder: the steps up to its first patrol (added if missing)."""
        out: list[Step] = []
        for raw in steps:
            step = Step(raw)
            out.append(step)
            if step is Step.PATROL:
                break
        else:
            out.append(Step.PATROL)
        return tuple(out)


# System-wide deadlines: the one timing policy (kernel.timing), re-exported for the round.
Timing = timing_policy.Timing
DEFAULT_TIMING = timing_policy.DEFAULT_TIMING


# --------------------------------------------------------------------------- the check


@dataclass(frozen=True, slots=True)
class Check:
    """One look at one brukare at one agreed time. Change it only through :func:`apply`.

    ``agreed`` is the local wall time of the care plan; ``agreed_at`` and the window are UTC
    instants already resolved for the night's DST rules (see ``supervision.schedule``).
    ``attempt`` counts looks (1 = the planned one); ``ladder_step`` counts escalation steps taken.
    ``holder`` is the worker or operator that holds the check in probing, viewing or calling.
    ``version`` grows by one with every transition (optimistic locking in the store).
    """

    check_id: str
    recipient_id: str
    device_id: str | None
    night: date
    agreed: time
    agreed_at: datetime
    window_start: datetime
    window_end: datetime
    policy: Policy
    state: State
    since: datetime
    deadline: datetime | None
    attempt: int = 1
    ladder_step: int = 0
    reason: str | None = None
    holder: str | None = None
    verdict: str | None = None
    version: int = 0

    def __post_init__(self) -> None:
        for name in ("agreed_at", "window_start", "window_end", "since"):
            value = getattr(self, name)
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware")
        if not self.window_start <= self.agreed_at <= self.window_end:
            raise ValueError("agreed_at must lie inside the window")
        if self.attempt < 1 or not 0 <= self.ladder_step <= len(self.policy.ladder):
            raise ValueError("attempt or ladder_step out of range")
        if (self.deadline is None) != (self.state in TERMINAL):
            raise ValueError("an open check has a deadline and a finished one has none")

    @property
    def category(self) -> Category:
        return CATEGORY[self.state]

    @property
    def is_finished(self) -> bool:
        return self.state in TERMINAL


def planned(
    *,
    check_id: str,
    recipient_id: str,
    device_id: str | None,
    night: date,
    agreed: time,
    agreed_at: datetime,
    window_start: datetime,
    window_end: datetime,
    policy: Policy,
    at: datetime,
) -> Check:
    """A new check waiting for its window."""
    return Check(
        check_id=check_id,
        recipient_id=recipient_id,
        device_id=device_id,
        night=night,
        agreed=agreed,
        agreed_at=agreed_at,
        window_start=window_start,
        window_end=window_end,
        policy=policy,
        state=State.PLANNED,
        since=at,
        # planned after its window opened (a plan added mid-night): due now, not already late
        deadline=max(window_start, at),
    )


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Open:
    """The window has started (watchdog)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """A worker takes the check (or takes over a claim that expired)."""

    worker_id: str


@dataclass(frozen=True, slots=True)
class ProbeSkipped:
    """No motion analysis allowed (no ``motion_analysis`` consent): straight to a human view."""

    reason: str


@dataclass(frozen=True, slots=True)
class ProbeDone:
    """The motion check's verdict over the probe window."""

    verdict: str
    needs_human: bool


@dataclass(frozen=True, slots=True)
class LookRefused:
    """The gate refuses a camera look now although the check stands (a retry outside the agreed
    window): the ladder continues without a look, at its next call or patrol rung."""

    reason: str


@dataclass(frozen=True, slots=True)
class ViewOpened:
    operator_id: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """An operator's outcome. ``video_s``: the most seconds of video one session of that
    operator for this check delivered in the current look (:func:`seen_video_s`), as its device
    reported; the store fills it in from the sessions, and ``ok`` needs
    :data:`MIN_SEEN_VIDEO_S` of it."""

    operator_id: str
    kind: OutcomeKind
    reason: str | None = None
    video_s: float = 0.0


@dataclass(frozen=True, slots=True)
class RetryDue:
    """The retry interval has passed (watchdog)."""


@dataclass(frozen=True, slots=True)
class Cancel:
    """No camera look is allowed any more (consent withdrawn, pause, unbound, plan changed).

    ``visit`` says whether a physical visit replaces it (else the check is dropped: a deviation).
    """

    reason: str
    visit: bool = True


@dataclass(frozen=True, slots=True)
class DeviceLost:
    """The camera is offline or broken before or during the check (hard rule 7)."""

    reason: str


@dataclass(frozen=True, slots=True)
class PatrolAcknowledged:
    staff_id: str


@dataclass(frozen=True, slots=True)
class PatrolVisited:
    """The patrol's report from the home; ``outcome`` None is a visit reported without one."""

    staff_id: str
    outcome: PatrolOutcome | None = None


@dataclass(frozen=True, slots=True)
class Escalate:
    """Nobody did a human step by its second deadline (watchdog, :mod:`supervision.ladder`): a
    view or a call goes to the patrol by itself, with reason ``unanswered``."""


@dataclass(frozen=True, slots=True)
class Reconcile:
    """Morning: whatever is still open ends as a deviation or, if with the patrol, escalated."""


Event = (
    Open
    | Claim
    | ProbeSkipped
    | ProbeDone
    | LookRefused
    | ViewOpened
    | Outcome
    | RetryDue
    | Cancel
    | DeviceLost
    | PatrolAcknowledged
    | PatrolVisited
    | Escalate
    | Reconcile
)


def event_name(event: Event) -> str:
    """A stable snake_case name for logs, the audit and the transitions table; an operator's
    outcome is named with its kind (``outcome_not_seen``), a patrol's ``not_home`` is
    ``patrol_not_home`` (no visit)."""
    if isinstance(event, Outcome):
        return f"outcome_{event.kind.value}"
    if isinstance(event, PatrolVisited) and event.outcome is PatrolOutcome.NOT_HOME:
        return "patrol_not_home"
    return _EVENT_NAMES[type(event)]


_EVENT_NAMES: dict[type, str] = {
    Open: "open",
    Claim: "claim",
    ProbeSkipped: "probe_skipped",
    ProbeDone: "probe_done",
    LookRefused: "look_refused",
    ViewOpened: "view_opened",
    Outcome: "outcome",
    RetryDue: "retry_due",
    Cancel: "cancel",
    DeviceLost: "device_lost",
    PatrolAcknowledged: "patrol_acknowledged",
    PatrolVisited: "patrol_visited",
    Escalate: "escalate",
    Reconcile: "reconcile",
}


def actor_of(event: Event) -> str:
    """Who caused an event: a worker, an operator, patrol staff, or the system."""
    match event:
        case Claim(worker_id=w):
            return w
        case ViewOpened(operator_id=o) | Outcome(operator_id=o):
            return o
        case PatrolAcknowledged(staff_id=s) | PatrolVisited(staff_id=s):
            return s
        case _:
            return "system"


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Transition:
    """A transition that happened: ``check`` is the new value, ``before`` the state it left."""

    check: Check
    before: State
    event: Event
    at: datetime

    @property
    def after(self) -> State:
        return self.check.state


@dataclass(frozen=True, slots=True)
class Rejected:
    check_id: str
    state: State
    event: str
    refusal: Refusal

    @property
    def message(self) -> str:
        return f"check {self.check_id} is {self.state}: {self.event} refused ({self.refusal})"


Result = Transition | Rejected
Handler = Callable[[Check, Any, datetime, Timing], Result]


# --------------------------------------------------------------------------- the table

ALLOWED: dict[State, frozenset[State]] = {
    State.PLANNED: frozenset({State.DUE, State.PATROL, State.DEVIATION}),
    State.DUE: frozenset({State.PROBING, State.CALLING, State.PATROL, State.DEVIATION}),
    State.PROBING: frozenset(
        {
            State.PROBING,
            State.CLEARED,
            State.NEEDS_VIEW,
            State.CALLING,
            State.PATROL,
            State.DEVIATION,
        }
    ),
    State.NEEDS_VIEW: frozenset({State.VIEWING, State.CALLING, State.PATROL, State.DEVIATION}),
    State.VIEWING: frozenset(
        {State.DOCUMENTED, State.RETRY_WAIT, State.CALLING, State.PATROL, State.DEVIATION}
    ),
    State.RETRY_WAIT: frozenset({State.DUE, State.PATROL, State.DEVIATION}),
    State.CALLING: frozenset({State.DOCUMENTED, State.PATROL, State.DEVIATION}),
    State.PATROL: frozenset({State.PATROL, State.PATROL_ACKED, State.VISITED, State.DEVIATION}),
    State.PATROL_ACKED: frozenset({State.PATROL, State.VISITED, State.ESCALATED}),
    **{s: frozenset() for s in TERMINAL},
}
"""Every state's possible next states; :func:`_move` enforces it."""


HUMAN_STEPS: dict[State, HumanStep] = {
    State.NEEDS_VIEW: HumanStep.VIEW,
    State.VIEWING: HumanStep.VIEW,
    State.CALLING: HumanStep.CALL,
    State.PATROL: HumanStep.PATROL_ACK,
    State.PATROL_ACKED: HumanStep.PATROL_ARRIVAL,
}
"""The states that wait for a person, and the plan's deadline terms each follows."""


def terms_of(check: Check) -> StepDeadline | None:
    """The plan's deadline terms of the step ``check`` is in (None: not a human step)."""
    step = HUMAN_STEPS.get(check.state)
    return None if step is None else check.policy.deadlines.of(step)


def escalates_at(check: Check) -> datetime | None:
    """When the human step ``check`` is in escalates: the plan's ``escalate_s`` after its
    deadline (None: not a human step, or finished)."""
    terms = terms_of(check)
    if terms is None or check.deadline is None:
        return None
    return check.deadline + timedelta(seconds=terms.escalate_s)


def deadline_for(state: State, check: Check, at: datetime, timing: Timing) -> datetime | None:
    """The instant by which ``check`` must leave ``state`` if it enters it at ``at``: the
    timing policy's for the system's steps, the plan's (``Policy.deadlines``) for a person's
    (an opened view: its cap plus the time to document it)."""
    s = timedelta(seconds=1)
    plan = check.policy.deadlines
    match state:
        case State.PLANNED:
            return max(check.window_start, at)
        case State.DUE:
            return min(
                max(at, check.window_start) + timing.claim_grace_s * s, max(check.window_end, at)
            )
        case State.PROBING:
            return at + timing.probe_timeout_s * s
        case State.NEEDS_VIEW:
            return at + plan.view.respond_s * s
        case State.VIEWING:
            return at + (check.policy.view_cap_s + timing.document_grace_s) * s
        case State.RETRY_WAIT:
            return at + check.policy.retry_interval_s * s
        case State.CALLING:
            return at + plan.call.respond_s * s
        case State.PATROL:
            return max(at, check.window_start) + plan.patrol_ack.respond_s * s
        case State.PATROL_ACKED:
            return at + plan.patrol_arrival.respond_s * s
        case _:
            return None


def _move(
    check: Check,
    to: State,
    event: Event,
    at: datetime,
    timing: Timing,
    *,
    reason: str | None = None,
    holder: str | None = None,
    **changes: Any,
) -> Transition:
    if to not in ALLOWED[check.state]:  # a bug in the table below, never user input
        raise AssertionError(f"{check.state} -> {to} is not an allowed transition")
    moved = dataclasses.replace(
        check,
        state=to,
        since=at,
        deadline=deadline_for(to, check, at, timing),
        reason=reason if reason is not None else check.reason,
        holder=holder,
        version=check.version + 1,
        **changes,
    )
    return Transition(check=moved, before=check.state, event=event, at=at)


def _refuse(check: Check, event: Event, refusal: Refusal) -> Rejected:
    return Rejected(check.check_id, check.state, event_name(event), refusal)


def _open(c: Check, e: Open, at: datetime, t: Timing) -> Result:
    if at < c.window_start:
        return _refuse(c, e, Refusal.TOO_EARLY)
    return _move(c, State.DUE, e, at, t)


def _claim(c: Check, e: Claim, at: datetime, t: Timing) -> Result:
    if c.state is State.PROBING and c.deadline is not None and at < c.deadline:
        return _refuse(c, e, Refusal.CLAIMED)
    return _move(c, State.PROBING, e, at, t, holder=e.worker_id)


def _probe_skipped(c: Check, e: ProbeSkipped, at: datetime, t: Timing) -> Result:
    return _move(c, State.NEEDS_VIEW, e, at, t, reason=e.reason)


def route_verdict(check: Check, verdict: str, needs_human: bool) -> tuple[State, str]:
    """Where a verdict sends a probing check, and why.

    Camera trouble (dark, frozen, covered, no signal) means a physical visit (hard rule 7). A
    check is cleared without a human only if the plan allows it, the verdict is ``activity`` or
    ``still``, the motion check says no human is needed, and it is the first look (a retry after
    "not seen" always gets a human). Everything else, unknown verdicts included, needs a view.
    """
    if verdict in CAMERA_TROUBLE_VERDICTS:
        return State.PATROL, f"camera_{verdict}"
    if (
        verdict in CLEARABLE_VERDICTS
        and not needs_human
        and check.policy.may_clear_without_human
        and check.attempt == 1
    ):
        return State.CLEARED, f"motion_{verdict}"
    return State.NEEDS_VIEW, f"motion_{verdict}" if verdict.isidentifier() else "motion_unknown"


def _probe_done(c: Check, e: ProbeDone, at: datetime, t: Timing) -> Result:
    to, reason = route_verdict(c, e.verdict, e.needs_human)
    return _move(c, to, e, at, t, reason=reason, verdict=e.verdict)


def _look_refused(c: Check, e: LookRefused, at: datetime, t: Timing) -> Result:
    if Step.CALL in c.policy.ladder[c.ladder_step :]:
        return _move(c, State.CALLING, e, at, t, reason=e.reason, ladder_step=_after_call_step(c))
    return _move(c, State.PATROL, e, at, t, reason=e.reason, ladder_step=len(c.policy.ladder))


def _view_opened(c: Check, e: ViewOpened, at: datetime, t: Timing) -> Result:
    return _move(c, State.VIEWING, e, at, t, holder=e.operator_id)


def next_step(check: Check) -> tuple[Step, int]:
    """The ladder rung after a look that did not see the brukare, and the new ``ladder_step``."""
    ladder = check.policy.ladder
    if check.ladder_step >= len(ladder):
        return Step.PATROL, len(ladder)
    return ladder[check.ladder_step], check.ladder_step + 1


def _after_call_step(check: Check) -> int:
    """``ladder_step`` once a call has been made: past the ladder's first call rung, if ahead."""
    rest = check.policy.ladder[check.ladder_step :]
    if Step.CALL in rest:
        return check.ladder_step + rest.index(Step.CALL) + 1
    return check.ladder_step


def _outcome(c: Check, e: Outcome, at: datetime, t: Timing) -> Result:
    kind = e.kind
    if kind is OutcomeKind.OK:
        if c.state is State.NEEDS_VIEW:  # "seen" needs a view or a call first
            return _refuse(c, e, Refusal.NOT_IN_STATE)
        if not has_seen(e.video_s):  # ... that delivered video to this operator
            return _refuse(c, e, Refusal.NOT_VIEWED)
        return _move(c, State.DOCUMENTED, e, at, t, reason="seen", holder=e.operator_id)
    if kind is OutcomeKind.NOT_SEEN:
        if c.state is State.NEEDS_VIEW:
            return _refuse(c, e, Refusal.NOT_IN_STATE)
        if c.state is State.CALLING:  # not reached by phone: the patrol goes
            return _move(
                c,
                State.PATROL,
                e,
                at,
                t,
                reason="not_reached_by_call",
                ladder_step=len(c.policy.ladder),
            )
        step, index = next_step(c)
        if step is Step.RETRY:
            return _move(c, State.RETRY_WAIT, e, at, t, reason="not_seen", ladder_step=index)
        if step is Step.CALL:
            return _move(
                c,
                State.CALLING,
                e,
                at,
                t,
                reason="not_seen",
                holder=e.operator_id,
                ladder_step=index,
            )
        return _move(c, State.PATROL, e, at, t, reason="not_seen", ladder_step=index)
    if kind is OutcomeKind.CALL:
        if c.state is State.CALLING:
            return _refuse(c, e, Refusal.NOT_IN_STATE)
        return _move(
            c,
            State.CALLING,
            e,
            at,
            t,
            reason="operator_call",
            holder=e.operator_id,
            ladder_step=_after_call_step(c),
        )
    if kind is OutcomeKind.TECHNICAL:
        return _move(c, State.PATROL, e, at, t, reason=e.reason or "technical")
    return _move(c, State.PATROL, e, at, t, reason=e.reason or "operator_patrol")


def _retry_due(c: Check, e: RetryDue, at: datetime, t: Timing) -> Result:
    if c.deadline is not None and at < c.deadline:
        return _refuse(c, e, Refusal.TOO_EARLY)
    return _move(c, State.DUE, e, at, t, attempt=c.attempt + 1)


def _cancel(c: Check, e: Cancel, at: datetime, t: Timing) -> Result:
    if c.state is State.PATROL:
        if e.visit:
            return _refuse(c, e, Refusal.ALREADY_PATROL)
        return _move(c, State.DEVIATION, e, at, t, reason=e.reason)
    if e.visit:
        return _move(c, State.PATROL, e, at, t, reason=e.reason)
    return _move(c, State.DEVIATION, e, at, t, reason=e.reason)


def _device_lost(c: Check, e: DeviceLost, at: datetime, t: Timing) -> Result:
    return _move(c, State.PATROL, e, at, t, reason=e.reason)


def _already_patrol(c: Check, e: Event, at: datetime, t: Timing) -> Result:
    return _refuse(c, e, Refusal.ALREADY_PATROL)


def _patrol_ack(c: Check, e: PatrolAcknowledged, at: datetime, t: Timing) -> Result:
    return _move(c, State.PATROL_ACKED, e, at, t, holder=e.staff_id)


def _patrol_visited(c: Check, e: PatrolVisited, at: datetime, t: Timing) -> Result:
    if e.outcome is PatrolOutcome.NOT_HOME:  # nobody seen: a patrol task again, unheld
        return _move(c, State.PATROL, e, at, t, reason=e.outcome.value)
    return _move(c, State.VISITED, e, at, t, holder=e.staff_id)


def _escalate(c: Check, e: Escalate, at: datetime, t: Timing) -> Result:
    due = escalates_at(c)
    if due is None or at < due:
        return _refuse(c, e, Refusal.TOO_EARLY)
    return _move(c, State.PATROL, e, at, t, reason="unanswered", ladder_step=len(c.policy.ladder))


def _reconcile(c: Check, e: Reconcile, at: datetime, t: Timing) -> Result:
    if c.state is State.PATROL_ACKED:
        return _move(c, State.ESCALATED, e, at, t, reason="visit_not_reported")
    if c.state is State.PATROL:
        return _move(c, State.DEVIATION, e, at, t, reason="patrol_not_acknowledged")
    return _move(c, State.DEVIATION, e, at, t, reason=f"unfinished_{c.state}")


_ACTIVE = (
    State.DUE,
    State.PROBING,
    State.NEEDS_VIEW,
    State.VIEWING,
    State.RETRY_WAIT,
    State.CALLING,
)
_OUTCOME_STATES = (State.NEEDS_VIEW, State.VIEWING, State.CALLING)

TABLE: dict[tuple[State, type], Handler] = {
    (State.PLANNED, Open): _open,
    (State.DUE, Claim): _claim,
    (State.PROBING, Claim): _claim,
    (State.PROBING, ProbeSkipped): _probe_skipped,
    (State.PROBING, ProbeDone): _probe_done,
    (State.DUE, LookRefused): _look_refused,
    (State.PROBING, LookRefused): _look_refused,
    (State.NEEDS_VIEW, ViewOpened): _view_opened,
    **{(s, Outcome): _outcome for s in _OUTCOME_STATES},
    (State.RETRY_WAIT, RetryDue): _retry_due,
    **{(s, Cancel): _cancel for s in (State.PLANNED, *_ACTIVE, State.PATROL)},
    **{(s, DeviceLost): _device_lost for s in (State.PLANNED, *_ACTIVE)},
    **{(s, DeviceLost): _already_patrol for s in PATROL_STATES},
    (State.PATROL_ACKED, Cancel): _already_patrol,
    (State.PATROL, PatrolAcknowledged): _patrol_ack,
    (State.PATROL, PatrolVisited): _patrol_visited,
    (State.PATROL_ACKED, PatrolVisited): _patrol_visited,
    **{(s, Escalate): _escalate for s in _OUTCOME_STATES},
    **{(s, Escalate): _already_patrol for s in PATROL_STATES},
    **{(s, Reconcile): _reconcile for s in State if s not in TERMINAL},
}
"""(state, event type) -> handler. A pair that is not here is refused."""


def apply(check: Check, event: Event, *, at: datetime, timing: Timing = DEFAULT_TIMING) -> Result:
    """Apply ``event`` to ``check`` at ``at``: a :class:`Transition` or a :class:`Rejected`."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("at must be timezone-aware")
    if check.state in TERMINAL:
        return _refuse(check, event, Refusal.FINISHED)
    handler = TABLE.get((check.state, type(event)))
    if handler is None:
        return _refuse(check, event, Refusal.NOT_IN_STATE)
    return handler(check, event, at, timing)


# --------------------------------------------------------------------------- seen on video

MIN_SEEN_VIDEO_S = 1.0
"""An outcome ``ok`` needs a session of that operator for that check whose device reported at
least this many seconds of video (first frame to last)."""


@dataclass(frozen=True, slots=True)
class Look:
    """One session that showed a human a camera's or phone's picture (a view or a call), as
    stored: who, for which check (``None``: an extra look, or a call naming none), when, and
    what its device reported it delivered (``video_s``: ``None`` until it reports). An extra
    look carries its reason code and note (free text, kept out of ``repr``)."""

    session_id: str
    purpose: str  # view | call
    staff_id: str
    device_id: str
    recipient_id: str | None
    check_id: str | None
    started_at: datetime
    ended_at: datetime | None
    video_s: float | None
    is_extra: bool = False
    reason: str | None = None
    note: str | None = dataclasses.field(default=None, repr=False)

    @property
    def delivered_s(self) -> float:
        """Seconds of video the device reported (0 until it reports)."""
        return self.video_s or 0.0


def has_seen(video_s: float) -> bool:
    """Whether a session that delivered ``video_s`` seconds of video lets its operator
    document the check as seen."""
    return video_s >= MIN_SEEN_VIDEO_S


def seen_video_s(looks: Iterable[Look], *, since: datetime) -> float:
    """The most seconds of video one look started at or after ``since`` (the current attempt
    of the check became due) delivered: what an ``ok`` of this operator rests on. A view of an
    earlier attempt (that ended ``not_seen``) does not count for a later one."""
    return max((x.delivered_s for x in looks if x.started_at >= since), default=0.0)


def awaits_report(looks: Iterable[Look], *, since: datetime, at: datetime, wait_s: float) -> bool:
    """Whether a look of the current attempt may still report its video: open, or ended less
    than ``wait_s`` before ``at`` without its device's report (it reports as its side ends)."""
    return any(
        x.video_s is None
        and x.started_at >= since
        and (x.ended_at is None or (at - x.ended_at).total_seconds() < wait_s)
        for x in looks
    )


# --------------------------------------------------------------------------- watchdog


class AlarmKind(StrEnum):
    ALARM = "alarm"  # a step's deadline passed (repeated while the step stays undone)
    ESCALATION = "escalation"  # its second deadline passed: the patrol went, the lead is told


@dataclass(frozen=True, slots=True)
class Alarm:
    """A missed deadline (:mod:`supervision.ladder` says when): the ``repeat``-th alarm of the
    check's step (version), or its escalation; ``to`` is the role it calls."""

    check_id: str
    recipient_id: str
    state: State
    deadline: datetime
    version: int
    late_s: float
    repeat: int = 1
    kind: AlarmKind = AlarmKind.ALARM
    to: Role = Role.OPERATOR
