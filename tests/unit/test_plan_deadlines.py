"""A care plan's deadline terms (issue 16): bounded, ending in a visit, stored as JSON."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time

import pytest

from consent import records, rules
from consent.model import (
    DEFAULT_DEADLINES,
    MAX_TO_VISIT_S,
    CarePlan,
    CheckTime,
    Deadlines,
    HumanStep,
    StepDeadline,
)

AT = datetime(2025, 6, 10, 12, tzinfo=UTC)


def plan(deadlines: Deadlines = DEFAULT_DEADLINES) -> CarePlan:
    return CarePlan(
        plan_id="p1",
        recipient_id="r1",
        decision_ref="D-1",
        valid_from=AT,
        checks=(CheckTime(time(22, 0)),),
        deadlines=deadlines,
    )


def problems(deadlines: Deadlines) -> list[tuple[str, str]]:
    return [(p.field, p.code) for p in rules.validate_plan(plan(deadlines), zone_name="UTC")]


def test_the_defaults_are_the_night_care_ladder_and_valid() -> None:
    d = DEFAULT_DEADLINES
    assert d.view == StepDeadline(respond_s=300, repeat_s=120, escalate_s=300)  # patrol at 10 min
    assert d.patrol_ack.respond_s == 600
    assert d.patrol_arrival.respond_s == 45 * 60
    assert problems(d) == []
    assert [d.of(s) for s in HumanStep] == [d.view, d.call, d.patrol_ack, d.patrol_arrival]


@pytest.mark.parametrize(
    ("step", "terms", "expected"),
    [
        ("view", StepDeadline(0, 120, 300), [("deadlines.view.respond_s", "out_of_range")]),
        ("call", StepDeadline(300, -5, 300), [("deadlines.call.repeat_s", "out_of_range")]),
        ("call", StepDeadline(300, 59, 300), [("deadlines.call.repeat_s", "out_of_range")]),
        (
            "patrol_ack",
            StepDeadline(600, 120, 10**6),
            [("deadlines.patrol_ack.escalate_s", "out_of_range")],
        ),
        (
            "patrol_arrival",
            StepDeadline(3 * 3600, 120, 0),
            [
                ("deadlines.patrol_arrival.respond_s", "out_of_range"),
                ("deadlines.patrol_arrival.escalate_s", "out_of_range"),
            ],
        ),
        # nobody answers a view: the patrol must come within the hour
        ("view", StepDeadline(1800, 120, 1801), [("deadlines.view", "visit_too_late")]),
        ("call", StepDeadline(3000, 600, 601), [("deadlines.call", "visit_too_late")]),
        ("view", StepDeadline(1800, 120, 1800), []),
        # a patrol step past the hour alerts the shift lead; the visit stays requested
        ("patrol_arrival", StepDeadline(7200, 1800, 3600), []),
    ],
)
def test_every_step_is_bounded_and_a_view_or_call_reaches_a_visit(
    step: str, terms: StepDeadline, expected: list[tuple[str, str]]
) -> None:
    assert problems(dataclasses.replace(DEFAULT_DEADLINES, **{step: terms})) == expected


def test_the_longest_way_to_a_visit_is_the_bound() -> None:
    terms = StepDeadline(MAX_TO_VISIT_S - 60, 60, 60)
    assert problems(Deadlines(view=terms, call=terms)) == []


def test_the_json_round_trips_and_a_missing_step_keeps_its_default() -> None:
    d = Deadlines(view=StepDeadline(120, 60, 240))
    assert records.deadlines_from_json(records.deadlines_json(d)) == d
    assert records.deadlines_json(d)["view"] == {
        "respond_s": 120,
        "repeat_s": 60,
        "escalate_s": 240,
    }
    assert records.deadlines_from_json({}) == DEFAULT_DEADLINES
    assert records.plan_json(plan(d))["deadlines"] == records.deadlines_json(d)
    assert records.plan_audit(plan(d))["deadlines"] == records.deadlines_json(d)
