"""Issue 15, calls keep to the agreement: a plan's call terms (an auto-answered call's cap, its
announcement, the live countdown) have one range each, which the plan validator and the API
schema agree on; the call's deadline follows who answered."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time, timedelta

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
    Decision,
)
from consent.record_api import NewPlan
from devices import envelope as env
from devices.topics import CommandOp, DeviceKind
from kernel.codec import CodecError, convert, schema
from kernel.roles import Role
from services.signalling import decide as d
from services.signalling import machine as m

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


# --- the call's deadline (pure: services.signalling.decide and machine) ---------------------

NOW = datetime(2026, 1, 15, 21, 0, tzinfo=UTC)
S = timedelta(seconds=1)
TERMS = m.Terms(ring_timeout_s=30, max_call_s=3600)


def decision(**terms: object) -> Decision:
    return Decision(
        True,
        None,
        "rec-0001",
        "plan-0001",
        30,
        NOW - 600 * S,
        NOW + 600 * S,
        **terms,  # type: ignore[arg-type]
    )


def call(*, auto_answer: bool, **terms: object) -> m.Session:
    facts = d.RequestFacts(
        env.Purpose.CALL,
        Role.OPERATOR,
        True,
        DeviceKind.VIDEO_PHONE,
        {p: decision(**terms) for p in d.GATE_PURPOSES[env.Purpose.CALL]},
        auto_answer=auto_answer,
    )
    grant = d.decide_request(facts, NOW, TERMS)
    assert isinstance(grant, d.Grant)
    return m.open_session(
        grant,
        session_id="s-0001",
        device_id="phone-0001",
        purpose=env.Purpose.CALL,
        staff_id="staff-0001",
        now=NOW,
    )


@pytest.mark.parametrize(
    ("auto_answer", "terms", "limit_s", "announce_s"),
    [
        # the brukare pressed Svara: today's rules (max_call_s), whatever the plan says
        (False, {"call_cap_s": 120, "announce_s": 5}, 3600, None),
        (False, {}, 3600, None),
        # answered by itself: the plan's call cap and announcement
        (True, {"call_cap_s": 60, "announce_s": 15}, 60, 15),
        (True, {"call_cap_s": 900, "announce_s": 3}, 900, 3),
        # no plan named on the decision: the defaults, never an hour
        (True, {}, DEFAULT_CALL_CAP_S, DEFAULT_ANNOUNCE_S),
    ],
)
def test_an_auto_answered_call_ends_at_the_plans_call_cap(
    auto_answer: bool, terms: dict[str, object], limit_s: float, announce_s: float | None
) -> None:
    s = call(auto_answer=auto_answer, **terms)
    assert (s.auto_answer, s.announce_s) == (auto_answer, announce_s)
    # it rings for the ring timeout (after its announcement) before it may be answered
    assert s.deadline == NOW + (30 + (announce_s or 0)) * S
    assert m.call_limit_s(s, TERMS) == limit_s
    answered_at = NOW + ((announce_s or 0) + 4) * S  # announced first (if it answers itself)
    s, effects = m.apply(s, m.CallAnswered(), answered_at, TERMS)
    assert s.state is m.State.CONNECTED
    assert s.deadline == answered_at + limit_s * S
    assert m.ArmTimer(s.deadline) in effects
    assert m.MarkConnected(answered_at, s.deadline, is_audited=True) in effects
    same, effects = m.apply(s, m.TimerFired(), s.deadline - S, TERMS)  # early: waits on
    assert same.is_open
    assert effects == (m.ArmTimer(s.deadline),)
    ended, effects = m.apply(s, m.TimerFired(), s.deadline, TERMS)
    assert not ended.is_open
    assert ended.end_reason is env.ByeReason.TIMEOUT
    assert m.ToClient(env.Bye("s-0001", env.ByeReason.TIMEOUT)) in effects
    assert m.Command(CommandOp.HANGUP) in effects


def test_a_system_limit_below_the_plans_cap_still_holds() -> None:
    s = call(auto_answer=True, call_cap_s=900)
    assert m.call_limit_s(s, m.Terms(max_call_s=600)) == 600


def test_call_terms_for_svara_are_none() -> None:
    assert d.call_terms(False, decision(call_cap_s=60, announce_s=3)) == (None, None)
    assert d.call_terms(True, decision(call_cap_s=60, announce_s=4)) == (60.0, 4.0)


def test_a_phone_that_answers_before_its_announcement_gets_no_video() -> None:
    """The phone runs the announcement after the ring, which went out when the session opened:
    an answer earlier than ``announce_s`` after that skipped it. The call ends ``device_lost``
    (detail ``not_announced``) before the held offer reached the phone; the client is told."""
    s = call(auto_answer=True, call_cap_s=60, announce_s=5)
    offer = env.Offer(
        "s-0001",
        sdp="v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
    )
    s = dataclasses.replace(s, held=(offer,))
    assert not m.is_announced(s, NOW + 4.9 * S)
    assert m.is_announced(s, NOW + 5 * S)
    ended, effects = m.apply(s, m.CallAnswered(), NOW + 1 * S, TERMS)
    assert not ended.is_open
    assert ended.end_reason is env.ByeReason.DEVICE_LOST
    assert effects[0] == m.ToClient(
        env.Error(
            code=m.NOT_ANNOUNCED,
            message="the phone answered before it announced the call",
            session_id="s-0001",
        )
    )
    assert m.Closed(env.ByeReason.DEVICE_LOST, "device:phone-0001", m.NOT_ANNOUNCED, NOW + S) in (
        effects
    )
    assert not any(isinstance(e, m.ToDevice) and isinstance(e.message, env.Offer) for e in effects)
    on_time, _ = m.apply(s, m.CallAnswered(), NOW + 5 * S, TERMS)
    assert on_time.state is m.State.CONNECTED
    svara = call(auto_answer=False)  # pressing Svara at once is the brukare's own doing
    assert m.is_announced(svara, NOW)
    assert m.apply(svara, m.CallAnswered(), NOW, TERMS)[0].state is m.State.CONNECTED
