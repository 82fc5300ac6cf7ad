"""A call may name the check it serves (issue 15): then its session counts for the check's
``ok`` like a view of it. ``decide_request`` grants the name only for a check that is
``calling``, held by the caller, for the brukare the phone's consent names; any other is
``denied no_due_check``. A call that names no check is decided as before."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from consent.model import Decision
from devices import envelope as env
from devices.topics import DeviceKind
from kernel.roles import Role
from services.signalling import decide as d
from supervision.checks import State as CheckState

NOW = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)
S = timedelta(seconds=1)
CHECK = "20261206.2200.rec-0001"


def facts(check: d.CheckFacts | None, *, check_id: str | None = CHECK) -> d.RequestFacts:
    allowed = Decision(True, None, "rec-0001", "plan-0001", 30, NOW - 600 * S, NOW + 600 * S)
    return d.RequestFacts(
        env.Purpose.CALL,
        Role.OPERATOR,
        True,
        DeviceKind.VIDEO_PHONE,
        dict.fromkeys(d.GATE_PURPOSES[env.Purpose.CALL], allowed),
        device_id="phone-0001",
        staff_id="staff-op01",
        check_id=check_id,
        check=check,
    )


CALLING = d.CheckFacts(CheckState.CALLING, "cam-0001", "staff-op01", 30.0, "rec-0001")


def test_a_call_of_the_callers_calling_check_carries_it() -> None:
    grant = d.decide_request(facts(CALLING), NOW, d.DEFAULT_TERMS)
    assert isinstance(grant, d.Grant)
    assert (grant.state, grant.check_id) == (d.State.RINGING, CHECK)


def test_a_call_that_names_no_check_is_as_before() -> None:
    grant = d.decide_request(facts(None, check_id=None), NOW, d.DEFAULT_TERMS)
    assert isinstance(grant, d.Grant)
    assert grant.check_id is None


@pytest.mark.parametrize(
    "check",
    [
        None,  # no such check
        dataclasses.replace(CALLING, state=CheckState.NEEDS_VIEW),  # not calling
        dataclasses.replace(CALLING, state=CheckState.DOCUMENTED),
        dataclasses.replace(CALLING, holder="staff-op02"),  # another operator's call
        dataclasses.replace(CALLING, recipient_id="rec-0002"),  # another brukare's check
    ],
)
def test_a_call_naming_a_check_it_does_not_serve_is_denied(check: d.CheckFacts | None) -> None:
    denied = d.decide_request(facts(check), NOW, d.DEFAULT_TERMS)
    assert denied == d.Deny("no_due_check", "rec-0001")
