"""The patrol's report from the home: found well, helped or taken to hospital end the check as a
visit (why the patrol went stays its reason); not home keeps it open as a patrol task again."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from supervision import checks as c
from supervision.checks import (
    Check,
    DeviceLost,
    PatrolAcknowledged,
    PatrolOutcome,
    PatrolVisited,
    Policy,
    Rejected,
    State,
    Transition,
)

T = c.DEFAULT_TIMING
SEC = timedelta(seconds=1)
AT = datetime(2025, 6, 10, 20, 30, tzinfo=UTC)


def patrol_task() -> Check:
    """A check sent to the patrol because its camera went dark."""
    planned = c.planned(
        check_id="20250610.2230.r1",
        recipient_id="r1",
        device_id="cam-1",
        night=date(2025, 6, 10),
        agreed=time(22, 30),
        agreed_at=AT,
        window_start=AT - 900 * SEC,
        window_end=AT + 900 * SEC,
        policy=Policy(),
        at=AT - 3600 * SEC,
    )
    moved = c.apply(planned, DeviceLost("camera_dark"), at=AT - 600 * SEC)
    assert isinstance(moved, Transition)
    return moved.check


def step(check: Check, event: c.Event, at: datetime) -> Transition:
    result = c.apply(check, event, at=at)
    assert isinstance(result, Transition), result
    return result


@pytest.mark.parametrize(
    "outcome", [PatrolOutcome.FOUND_WELL, PatrolOutcome.HELPED, PatrolOutcome.TAKEN_TO_HOSPITAL]
)
@pytest.mark.parametrize("acked", [True, False])
def test_a_visit_with_an_outcome_performs_the_check(outcome: PatrolOutcome, acked: bool) -> None:
    task = patrol_task()
    if acked:
        task = step(task, PatrolAcknowledged("staff-patrol1"), AT).check
    tr = step(task, PatrolVisited("staff-patrol1", outcome), AT + 1200 * SEC)
    assert tr.check.state is State.VISITED
    assert tr.check.category is c.Category.PERFORMED
    assert tr.check.reason == "camera_dark"  # why the patrol went stays on record
    assert tr.check.holder == "staff-patrol1"
    assert c.event_name(tr.event) == "patrol_visited"


@pytest.mark.parametrize("acked", [True, False])
def test_not_home_sends_the_check_back_as_an_open_patrol_task(acked: bool) -> None:
    task = patrol_task()
    if acked:
        task = step(task, PatrolAcknowledged("staff-patrol1"), AT).check
    at = AT + 1200 * SEC
    tr = step(task, PatrolVisited("staff-patrol1", PatrolOutcome.NOT_HOME), at)
    back = tr.check
    assert back.state is State.PATROL
    assert back.category is c.Category.OPEN
    assert (back.reason, back.holder) == ("not_home", None)
    # a new acknowledgement is owed, by the plan's patrol_ack deadline from now
    assert back.deadline == c.deadline_for(State.PATROL, back, at, T)
    assert back.deadline is not None
    assert back.deadline > at
    assert back.version == task.version + 1
    assert c.event_name(tr.event) == "patrol_not_home"
    # the next patrol takes it and reports a visit: performed
    again = step(back, PatrolAcknowledged("staff-patrol2"), at + 60 * SEC).check
    done = step(again, PatrolVisited("staff-patrol2", PatrolOutcome.HELPED), at + 900 * SEC)
    assert done.check.state is State.VISITED


def test_not_home_on_a_finished_check_is_refused() -> None:
    task = patrol_task()
    visited = step(task, PatrolVisited("staff-patrol1", PatrolOutcome.FOUND_WELL), AT).check
    result = c.apply(visited, PatrolVisited("staff-patrol1", PatrolOutcome.NOT_HOME), at=AT)
    assert isinstance(result, Rejected)
    assert result.refusal is c.Refusal.FINISHED


def test_morning_still_closes_a_task_sent_back() -> None:
    task = patrol_task()
    back = step(task, PatrolVisited("staff-patrol1", PatrolOutcome.NOT_HOME), AT).check
    closed = step(back, c.Reconcile(), AT + 8 * 3600 * SEC).check
    assert (closed.state, closed.reason) == (State.DEVIATION, "patrol_not_acknowledged")
