"""Issue 12: one view-cap range (consent.model, 10-60 s, default 30) that the care plan validator,
a check's ``Policy``, the API schema and ``homecare demo --view-cap`` all agree on."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from consent import rules
from consent.model import (
    DEFAULT_VIEW_CAP_S,
    MAX_VIEW_CAP_S,
    MIN_VIEW_CAP_S,
    CarePlan,
    CheckTime,
)
from consent.record_api import NewPlan
from kernel.codec import schema
from supervision.checks import Policy
from tools.cli import parser

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def plan_ok(cap_s: int) -> bool:
    plan = CarePlan(
        plan_id="plan-1",
        recipient_id="r-1",
        decision_ref="SN-1",
        valid_from=T0,
        checks=(CheckTime(time(22, 0), 15),),
        view_cap_s=cap_s,
    )
    return not rules.validate_plan(plan, zone_name="Europe/Stockholm")


def policy_ok(cap_s: int) -> bool:
    try:
        Policy(view_cap_s=cap_s)
    except ValueError:
        return False
    return True


def cli_ok(cap_s: int) -> bool:
    try:
        return bool(parser().parse_args(["demo", "--view-cap", str(cap_s)]).view_cap == cap_s)
    except SystemExit as e:  # argparse: exit 2 with the reason on stderr
        return e.code != 2


def schema_ok(cap_s: int) -> bool:
    prop = schema(NewPlan)["properties"]["view_cap_s"]
    return bool(prop["minimum"] <= cap_s <= prop["maximum"])


def test_the_range_is_the_one_of_the_design() -> None:
    assert (MIN_VIEW_CAP_S, DEFAULT_VIEW_CAP_S, MAX_VIEW_CAP_S) == (10, 30, 60)
    assert Policy().view_cap_s == DEFAULT_VIEW_CAP_S
    assert parser().parse_args(["demo"]).view_cap == DEFAULT_VIEW_CAP_S


@pytest.mark.parametrize("cap_s", [0, 5, 9, 10, 11, 30, 59, 60, 61, 300, 400, 600])
def test_validator_policy_schema_and_cli_agree(cap_s: int) -> None:
    expected = MIN_VIEW_CAP_S <= cap_s <= MAX_VIEW_CAP_S
    assert (plan_ok(cap_s), policy_ok(cap_s), schema_ok(cap_s), cli_ok(cap_s)) == (expected,) * 4
