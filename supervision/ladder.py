"""The escalation ladder (pure): what the watchdog owes a check whose deadline passed.

Every open step has a deadline (:func:`supervision.checks.deadline_for`). A step that waits for a
person (a queued or opened view, a call, the patrol's acknowledgement, its arrival) follows its
care plan's terms (:class:`consent.model.StepDeadline`); a step of the system (planned, due,
probing, a retry's wait) the timing policy. When the deadline has passed by the grace
(``Timing.alarm_grace_s``):

=================  ============  =====================  ===================================
state              plan terms    alarms call            ``escalate_s`` after the deadline
=================  ============  =====================  ===================================
needs_view         view          operators, repeated    :class:`~supervision.checks.Escalate`:
viewing            view          operators, repeated    to the patrol (``unanswered``), and
calling            call          operators, repeated    the shift lead is told
patrol             patrol_ack    patrol, repeated       the shift lead is told; alarms go on
patrol_acked       patrol_arr.   patrol, repeated       to the shift lead
planned, due, ...  (timing)      operators, once        nothing more
=================  ============  =====================  ===================================

Alarms repeat every ``repeat_s`` while the step stays undone; the ``n``-th is due at
``deadline + grace + (n - 1) * repeat_s``. A watchdog that was away raises only the latest one
due (numbered by its place, so the gap shows), never a burst. Escalations are alarms too, of kind
``escalation``, addressed to the shift lead, one per step. A patrol that reported its arrival has
nothing more owed for that step.

:func:`owed` is the whole rule: given a check, the instant and what was already raised for its
current step (:class:`Raised`, stored with the check), it returns the alarms to raise, whether
to apply :class:`~supervision.checks.Escalate`, the new :class:`Raised` and when to look again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from kernel.roles import Role
from supervision.checks import (
    Alarm,
    AlarmKind,
    Check,
    State,
    Timing,
    escalates_at,
    terms_of,
)


class Escalation(StrEnum):
    """What a step's second deadline does."""

    NONE = "none"  # a step of the system: one alarm, nothing more
    PATROL = "patrol"  # the check goes to the patrol by itself; the shift lead is told
    SHIFT_LEAD = "shift_lead"  # the shift lead is told; the visit stays requested


@dataclass(frozen=True, slots=True)
class Rung:
    """One state's rung of the ladder: whom its alarms call and what its escalation does."""

    alarm_to: Role
    escalation: Escalation


LADDER: dict[State, Rung] = {
    **{s: Rung(Role.OPERATOR, Escalation.NONE) for s in State},
    State.NEEDS_VIEW: Rung(Role.OPERATOR, Escalation.PATROL),
    State.VIEWING: Rung(Role.OPERATOR, Escalation.PATROL),
    State.CALLING: Rung(Role.OPERATOR, Escalation.PATROL),
    State.PATROL: Rung(Role.PATROL, Escalation.SHIFT_LEAD),
    State.PATROL_ACKED: Rung(Role.PATROL, Escalation.SHIFT_LEAD),
}
"""Every state's rung; the human steps are exactly those with plan terms (``HUMAN_STEPS``)."""


@dataclass(frozen=True, slots=True)
class Raised:
    """What the watchdog already did for a check's current step (its version)."""

    alarms: int = 0  # the place of the last alarm raised (0: none yet)
    lead_alerted: bool = False  # the shift lead was told (patrol steps)


@dataclass(frozen=True, slots=True)
class Owed:
    """What to do for one check now: raise ``alarms``, apply ``Escalate`` if ``escalate``,
    store ``raised``, and look again at ``next_at`` (None: nothing more in this step)."""

    alarms: tuple[Alarm, ...]
    escalate: bool
    raised: Raised
    next_at: datetime | None


def first_alarm_at(check: Check, timing: Timing) -> datetime | None:
    """When the first alarm of ``check``'s step is due (None: finished)."""
    if check.deadline is None:
        return None
    return check.deadline + timedelta(seconds=timing.alarm_grace_s)


def alarms_due(check: Check, at: datetime, timing: Timing) -> int:
    """The place of the latest alarm due by ``at`` in ``check``'s step (0: none yet)."""
    first = first_alarm_at(check, timing)
    if first is None or at < first:
        return 0
    terms = terms_of(check)
    if terms is None:  # a step of the system: one alarm
        return 1
    return 1 + int((at - first).total_seconds() // terms.repeat_s)


def owed(
    check: Check, at: datetime, timing: Timing, raised: Raised, *, arrived: bool = False
) -> Owed:
    """What the ladder owes ``check`` at ``at``, given what was ``raised`` in its step.

    ``arrived``: the patrol reported it is at the door (nothing more for ``patrol_acked``).
    """
    nothing = Owed((), False, raised, None)
    first = first_alarm_at(check, timing)
    if first is None or (arrived and check.state is State.PATROL_ACKED):
        return nothing
    rung = LADDER[check.state]
    escalation_at = escalates_at(check)
    is_escalating = escalation_at is not None and at >= escalation_at
    if is_escalating and rung.escalation is Escalation.PATROL:
        told = _alarm(check, at, repeat=1, kind=AlarmKind.ESCALATION, to=Role.SHIFT_LEAD)
        return Owed((told,), True, raised, None)
    alarms: list[Alarm] = []
    lead_alerted = raised.lead_alerted
    if is_escalating and not lead_alerted:  # a patrol step nobody answered
        alarms.append(_alarm(check, at, repeat=1, kind=AlarmKind.ESCALATION, to=Role.SHIFT_LEAD))
        lead_alerted = True
    place = alarms_due(check, at, timing)
    if place > raised.alarms:
        to = Role.SHIFT_LEAD if lead_alerted else rung.alarm_to
        alarms.append(_alarm(check, at, repeat=place, kind=AlarmKind.ALARM, to=to))
    done = Raised(max(place, raised.alarms), lead_alerted)
    return Owed(tuple(alarms), False, done, _next_at(check, first, done, escalation_at))


def _next_at(
    check: Check, first: datetime, done: Raised, escalation_at: datetime | None
) -> datetime | None:
    """The next alarm's instant or the escalation's, whichever comes first (None: neither)."""
    terms = terms_of(check)
    moments: list[datetime] = []
    if done.alarms == 0:
        moments.append(first)
    elif terms is not None:
        moments.append(first + timedelta(seconds=done.alarms * terms.repeat_s))
    if escalation_at is not None and not done.lead_alerted:
        moments.append(escalation_at)
    return min(moments, default=None)


def _alarm(check: Check, at: datetime, *, repeat: int, kind: AlarmKind, to: Role) -> Alarm:
    assert check.deadline is not None  # owed() returns early for a finished check
    return Alarm(
        check_id=check.check_id,
        recipient_id=check.recipient_id,
        state=check.state,
        deadline=check.deadline,
        version=check.version,
        late_s=(at - check.deadline).total_seconds(),
        repeat=repeat,
        kind=kind,
        to=to,
    )
