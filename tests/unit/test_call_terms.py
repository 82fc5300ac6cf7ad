"""Issue 15, calls keep to the agreement: a plan's call terms (an auto-answered call's cap, its
announcement, the live countdown) have one range each, which the plan validator and the API
schema agree on; the call's deadline follows who answered."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from consent import rules
from consent.model import (
    DEFAULT_ANNOUNCE_S,
    DEFAULT_CALL_CAP_S,
    DEFAULT_LIVE_COUNTDOWN,
    MAX_ANNOUNCE_S,
    MAX_CALL_CAP_S,
    MIN_ANNOUNCE_S,
    MIN_CALL_CAP_S,
    CarePlan,
    CheckTime,
)
from consent.record_api import NewPlan
from kernel.codec import CodecError, convert, schema

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def plan(**over: object) -> CarePlan:
    return CarePlan(
        plan_id="plan-1",
        recipient_id="r-1",
        decision_ref="SN-1",
        valid_from=T0,
        checks=(CheckTime(time(22, 0), 15),),
        **over,  # type: ignore[arg-type]
    )


def problems(**over: object) -> list[tuple[str, str]]:
    return [
        (p.field, p.code) for p in rules.validate_plan(plan(**over), zone_name="Europe/Stockholm")
    ]


def body(**over: object) -> NewPlan:
    return convert({"decision_ref": "SN-1", "checks": [{"at": "22:00"}], **over}, NewPlan)


def test_the_defaults_and_ranges_are_the_issues() -> None:
    assert (MIN_CALL_CAP_S, DEFAULT_CALL_CAP_S, MAX_CALL_CAP_S) == (60, 300, 900)
    assert (MIN_ANNOUNCE_S, DEFAULT_ANNOUNCE_S, MAX_ANNOUNCE_S) == (3, 3, 15)
    assert DEFAULT_LIVE_COUNTDOWN is True
    p, b = plan(), body()
    assert (p.call_cap_s, p.announce_s, p.live_countdown) == (300, 3, True)
    assert (b.call_cap_s, b.announce_s, b.live_countdown) == (300, 3, True)


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("call_cap_s", 0, False),
        ("call_cap_s", 59, False),
        ("call_cap_s", 60, True),
        ("call_cap_s", 300, True),
        ("call_cap_s", 900, True),
        ("call_cap_s", 901, False),
        ("call_cap_s", 3600, False),
        ("announce_s", 0, False),
        ("announce_s", 2, False),
        ("announce_s", 3, True),
        ("announce_s", 15, True),
        ("announce_s", 16, False),
    ],
)
def test_validator_and_schema_agree(field: str, value: int, ok: bool) -> None:
    assert (problems(**{field: value}) == []) is ok
    if not ok:
        assert problems(**{field: value}) == [(field, "out_of_range")]
    prop = schema(NewPlan)["properties"][field]
    assert (prop["minimum"] <= value <= prop["maximum"]) is ok
    if ok:
        assert getattr(body(**{field: value}), field) == value
    else:
        with pytest.raises(CodecError) as refused:
            body(**{field: value})
        assert (refused.value.reason, refused.value.field) == ("out_of_range", field)


def test_live_countdown_is_a_boolean() -> None:
    assert body(live_countdown=False).live_countdown is False
    with pytest.raises(CodecError) as refused:
        body(live_countdown="no")
    assert (refused.value.reason, refused.value.field) == ("wrong_type", "live_countdown")
    assert schema(NewPlan)["properties"]["live_countdown"]["type"] == "boolean"
