"""The simulated night's account of the escalation ladder (issue 16), from stored facts only.

With nobody working the queue (``homecare simulate-night --operators idle``) every check that
waited for a person must still reach the patrol, by the ladder, within its care plan's deadlines;
with a patrol that never answers (``--patrol idle``) every patrol task must reach the shift lead
and its alarm repeat at the plan's interval. :func:`account` checks both on the night's checks,
transitions and alarm rows (``round_alarms``), and counts alarms, repeats and escalations.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from supervision import checks as ch
from supervision.checks import Check, State, Timing
from supervision.report import TransitionFact

SLACK = timedelta(seconds=1)
"""How late a rung may come in the simulation: the clock steps at least a second."""
WAITS_FOR_A_PERSON = ch.HUMAN_QUEUE | ch.PATROL_STATES
SEEN = frozenset({State.DOCUMENTED, State.VISITED})


@dataclass(slots=True)
class LadderAccount:
    """Figures and the ids of the checks that broke a rule (each list empty on a good night)."""

    needed_person: int = 0  # checks that waited for an operator or the patrol
    patrol_tasks: int = 0  # ... of which became a patrol task
    escalated_to_patrol: int = 0  # ... by the ladder (unanswered)
    alarms: int = 0  # alarm rows (each repeat its own)
    repeats: int = 0  # ... of which repeats (the second alarm of a step and later)
    escalations: Counter[str] = field(default_factory=Counter)  # escalation rows per addressee
    alarms_to: Counter[str] = field(default_factory=Counter)  # alarm rows per addressee
    never_patrol: list[str] = field(default_factory=list)  # waited, nobody saw, no patrol task
    late: list[str] = field(default_factory=list)  # reached the patrol after the plan's deadlines
    doubled: list[str] = field(default_factory=list)  # sent to the patrol twice
    lead_not_told: list[str] = field(
        default_factory=list
    )  # a patrol task nobody took, lead not told
    off_interval: list[str] = field(default_factory=list)  # alarms not at the plan's interval

    @property
    def ok(self) -> bool:
        return not (
            self.never_patrol
            or self.late
            or self.doubled
            or self.lead_not_told
            or self.off_interval
        )

    def lines(self) -> list[str]:
        verdict = (
            f"every check needing a person ({self.needed_person}) was seen or got a patrol task"
            " within its plan's deadlines, none twice"
            if not (self.never_patrol or self.late or self.doubled)
            else "SOME CHECKS NEEDING A PERSON FELL THROUGH (listed below)"
        )
        return [
            verdict,
            f"needing a person: {self.needed_person}; patrol tasks: {self.patrol_tasks} "
            f"({self.escalated_to_patrol} sent by the ladder, unanswered); never a patrol task "
            f"nor seen: {len(self.never_patrol)}; late: {len(self.late)}; sent twice: "
            f"{len(self.doubled)}",
            f"alarms: {self.alarms} ({self.repeats} repeats; {_by(self.alarms_to)}); "
            f"escalations: {sum(self.escalations.values())} ({_by(self.escalations)}); "
            f"patrol tasks nobody took without the shift lead told: "
            f"{len(self.lead_not_told)}; alarms off the plan's interval: "
            f"{len(self.off_interval)}",
        ]


def _by(counts: Counter[str]) -> str:
    return ", ".join(f"to {k} {v}" for k, v in sorted(counts.items())) or "none"


def account(
    checks: Sequence[Check],
    steps: Iterable[TransitionFact],
    alarms: Sequence[Mapping[str, Any]],
    timing: Timing,
) -> LadderAccount:
    """The ladder's account of a night (see the module's docstring)."""
    out = LadderAccount()
    by_check: dict[str, list[TransitionFact]] = defaultdict(list)
    for t in steps:
        by_check[t.check_id].append(t)
    told = {a["check_id"] for a in alarms if a["kind"] == "escalation"}
    for c in checks:
        mine = sorted(by_check[c.check_id], key=lambda t: t.at)  # stable: in version order
        reached = {t.to_state for t in mine}
        if not reached & WAITS_FOR_A_PERSON:
            continue
        out.needed_person += 1
        to_patrol = [t for t in mine if t.to_state is State.PATROL]
        first_patrol = [t for t in to_patrol if t.from_state not in ch.PATROL_STATES]
        if to_patrol:
            out.patrol_tasks += 1
        elif not reached & SEEN:
            out.never_patrol.append(c.check_id)
        if len(first_patrol) > 1:
            out.doubled.append(c.check_id)
        for step, left in zip(mine, [*mine[1:], None], strict=True):
            # ``step`` began a state, ``left`` (None: the night's end) ended it
            if left is not None and left.event == "escalate":
                out.escalated_to_patrol += 1
                if left.at > _escalation_due(c, step, timing) + SLACK:
                    out.late.append(c.check_id)
            if step.to_state is State.PATROL and c.check_id not in told:
                # a patrol task nobody took by its second deadline: the lead must have been told
                taken = left is not None and left.to_state in (State.PATROL_ACKED, State.VISITED)
                lasted = left is None or left.at >= _escalation_due(c, step, timing)
                if not taken and lasted:
                    out.lead_not_told.append(c.check_id)
    _count_alarms(out, checks, alarms, timing)
    return out


def _escalation_due(check: Check, entered: TransitionFact, timing: Timing) -> datetime:
    """When the step ``entered`` began should have escalated, by the check's plan."""
    state = entered.to_state
    step = dataclasses.replace(
        check,
        state=state,
        since=entered.at,
        deadline=ch.deadline_for(state, check, entered.at, timing),
    )
    due = ch.escalates_at(step)
    assert due is not None, f"{state} does not escalate"
    return due


def _count_alarms(
    out: LadderAccount,
    checks: Sequence[Check],
    alarms: Sequence[Mapping[str, Any]],
    timing: Timing,
) -> None:
    policies = {c.check_id: c.policy for c in checks}
    per_step: dict[tuple[str, int], list[Mapping[str, Any]]] = defaultdict(list)
    for a in alarms:
        if a["kind"] == "escalation":
            out.escalations[a["addressed_to"]] += 1
            continue
        out.alarms += 1
        out.repeats += a["repeat"] > 1
        out.alarms_to[a["addressed_to"]] += 1
        per_step[(a["check_id"], a["version"])].append(a)
    for (check_id, _), rows in sorted(per_step.items()):
        human = ch.HUMAN_STEPS.get(State(rows[0]["state"]))
        if human is None:
            continue
        every = timedelta(seconds=policies[check_id].deadlines.of(human).repeat_s)
        first = rows[0]["deadline"] + timedelta(seconds=timing.alarm_grace_s)
        if any(abs(a["raised_at"] - (first + (a["repeat"] - 1) * every)) > SLACK for a in rows):
            out.off_interval.append(check_id)
