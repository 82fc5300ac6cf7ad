"""The night planner: camera or visit per check, idempotence, DST nights, re-planning."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.model import (
    Basis,
    BehaviourEvent,
    Binding,
    CarePlan,
    CareRecipient,
    CheckTime,
    Cohabitant,
    Consent,
    EscalationStep,
    Pause,
    PausedCheckPolicy,
    PauseReason,
    PauseSource,
    Purpose,
    RecipientBasis,
    Suspension,
)
from consent.rules import decide_recipient, validate_round_times
from supervision import checks as c
from supervision import schedule as s
from supervision.checks import Cancel, DeviceLost, State, Step

STHLM = ZoneInfo("Europe/Stockholm")
LONG_AGO = datetime(2024, 1, 1, tzinfo=UTC)
NIGHT = date(2025, 6, 10)
TIMES = (time(22, 0), time(1, 30), time(5, 45))


def at_local(d: date, hh: int, mm: int = 0) -> datetime:
    return datetime(d.year, d.month, d.day, hh, mm, tzinfo=STHLM)


def consent(
    rid: str,
    purpose: Purpose,
    *,
    cohab: str | None = None,
    n: int = 0,
    withdrawn_at: datetime | None = None,
) -> Consent:
    return Consent(
        consent_id=f"c-{rid}-{purpose}-{cohab}-{n}",
        recipient_id=rid,
        cohabitant_id=cohab,
        purpose=purpose,
        version=1,
        basis=Basis.INFORMED_CONSENT,
        given_at=LONG_AGO,
        valid_from=LONG_AGO,
        informed_by="staff-abcdef",
        withdrawn_at=withdrawn_at,
    )


def basis(
    rid: str = "r1",
    *,
    times: tuple[time, ...] = TIMES,
    tolerance: int = 15,
    consents: tuple[Consent, ...] | None = None,
    pauses: tuple[Pause, ...] = (),
    bound: bool = True,
    plan: dict[str, Any] | None = None,
    cohabitants: tuple[Cohabitant, ...] = (),
    suspensions: tuple[Suspension, ...] = (),
) -> RecipientBasis:
    care = CarePlan(
        plan_id=f"plan-{rid}",
        recipient_id=rid,
        decision_ref="dec-1",
        valid_from=LONG_AGO,
        checks=tuple(CheckTime(t, tolerance) for t in times),
        **(plan or {}),
    )
    if consents is None:
        consents = (consent(rid, Purpose.CAMERA_CHECK), consent(rid, Purpose.MOTION_ANALYSIS))
    bindings = (
        (
            Binding(
                binding_id=f"b-{rid}",
                device_id=f"cam-{rid}",
                recipient_id=rid,
                bound_at=LONG_AGO,
                requested_by="a",
                bound_by="b",
                device_kind="camera",
            ),
        )
        if bound
        else ()
    )
    return RecipientBasis(
        recipient=CareRecipient(rid, "Namn Namnsson"),
        plans=(care,),
        consents=consents,
        pauses=pauses,
        bindings=bindings,
        cohabitants=cohabitants,
        suspensions=suspensions,
    )


def everyone_online(device_id: str) -> bool:
    return True


PLAN_AT = at_local(NIGHT, 18)


def plan(
    *bases: RecipientBasis,
    night: date = NIGHT,
    at: datetime | None = None,
    online: s.Online = everyone_online,
) -> s.NightPlan:
    return s.plan_night(bases, night=night, at=at or at_local(night, 18), online=online)


# ------------------------------------------------------------------ the ordinary night


def test_an_ordinary_night_plans_one_camera_check_per_agreed_time() -> None:
    result = plan(basis())
    assert [x.check_id for x in result.checks] == [
        "20250610.2200.r1",
        "20250610.0130.r1",
        "20250610.0545.r1",
    ]
    assert all(x.state is State.PLANNED for x in result.checks)
    assert all(x.device_id == "cam-r1" for x in result.checks)
    first = result.checks[0]
    assert first.agreed_at == at_local(NIGHT, 22)
    assert first.window_start == at_local(NIGHT, 21, 45)
    assert first.window_end == at_local(NIGHT, 22, 15)
    assert first.deadline == first.window_start
    assert result.checks[1].agreed_at == at_local(NIGHT + timedelta(days=1), 1, 30)
    assert result.transitions == ()
    assert result.problems == ()
    assert s.summarise(result) == {
        "checks": 3,
        "camera": 3,
        "patrol": 0,
        "deviation": 0,
        "problems": 0,
    }


def test_the_plans_terms_travel_with_each_check() -> None:
    b = basis(
        plan={
            "view_cap_s": 20,
            "motion_may_clear": True,
            "retry_interval_s": 900,
            "escalation": (EscalationStep.CALL, EscalationStep.PATROL),
            "paused_checks": PausedCheckPolicy.DROP,
        }
    )
    policy = plan(b).checks[0].policy
    assert policy == c.Policy(
        view_cap_s=20,
        may_clear_without_human=True,
        retry_interval_s=900,
        ladder=(Step.CALL, Step.PATROL),
        paused_visit=False,
    )


def test_planning_twice_gives_the_same_checks() -> None:
    bases = [basis("r1"), basis("r2", consents=()), basis("r3", bound=False)]
    assert plan(*bases) == plan(*bases)
    later = plan(*bases, at=PLAN_AT + timedelta(minutes=5))
    assert [x.check_id for x in later.checks] == [x.check_id for x in plan(*bases).checks]


@pytest.mark.parametrize("size", [1, 2, 5])
def test_planning_in_parts_gives_the_nights_plan(size: int) -> None:
    bases = [basis("r1"), basis("r2", consents=()), basis("r3", bound=False), basis("r4")]
    parts = list(
        s.plan_parts(bases, night=NIGHT, at=at_local(NIGHT, 18), online=everyone_online, size=size)
    )
    assert len(parts) == -(-len(bases) // size)
    assert s.joined(NIGHT, parts) == plan(*bases)


def test_a_part_of_no_brukare_is_refused() -> None:
    with pytest.raises(ValueError, match="size"):
        next(
            s.plan_parts(
                [basis()], night=NIGHT, at=at_local(NIGHT, 18), online=everyone_online, size=0
            )
        )


def test_every_check_window_is_one_the_gate_accepts() -> None:
    b = basis()
    for x in plan(b).checks:
        for instant in (x.window_start, x.agreed_at, x.window_end - timedelta(seconds=1)):
            assert decide_recipient(b, purpose=Purpose.CAMERA_CHECK, at=instant).allowed


# ------------------------------------------------------------------ camera impossible -> visit


def test_no_consent_means_a_visit_at_once_with_the_reason() -> None:
    result = plan(basis(consents=()))
    assert {(x.state, x.reason) for x in result.checks} == {(State.PATROL, "no_consent")}
    assert len(result.transitions) == 3
    t = result.transitions[0]
    assert t.before is State.PLANNED
    assert t.after is State.PATROL
    assert t.at == PLAN_AT
    assert isinstance(t.event, Cancel)


def test_a_missing_cohabitant_consent_means_a_visit() -> None:
    co = Cohabitant("co-1", "r1", "Anhörig", moved_in_at=LONG_AGO)
    result = plan(basis(cohabitants=(co,)))
    assert {x.reason for x in result.checks} == {"cohabitant_missing"}
    consents = (
        consent("r1", Purpose.CAMERA_CHECK),
        consent("r1", Purpose.CAMERA_CHECK, cohab="co-1"),
    )
    assert plan(basis(cohabitants=(co,), consents=consents)).by_state() == {State.PLANNED: 3}


def test_consent_withdrawn_at_two_turns_only_the_later_checks_into_visits() -> None:
    two = at_local(NIGHT + timedelta(days=1), 2)
    consents = (consent("r1", Purpose.CAMERA_CHECK, withdrawn_at=two),)
    result = plan(basis(consents=consents))
    assert [(x.state, x.reason) for x in result.checks] == [
        (State.PLANNED, None),
        (State.PLANNED, None),
        (State.PATROL, "withdrawn"),
    ]


@pytest.mark.parametrize(
    ("online", "bound", "suspended", "reason"),
    [
        (False, True, False, "device_offline"),
        (True, False, False, "device_not_bound"),
        (True, True, True, "suspended"),
    ],
)
def test_device_trouble_and_suspension_mean_a_visit(
    online: bool, bound: bool, suspended: bool, reason: str
) -> None:
    sus = (
        (Suspension("s-1", "r1", "cam-r1", BehaviourEvent.TAMPER, LONG_AGO, 1),)
        if suspended
        else ()
    )
    result = plan(basis(bound=bound, suspensions=sus), online=lambda d: online)
    assert {(x.state, x.reason) for x in result.checks} == {(State.PATROL, reason)}
    if reason == "device_offline":
        assert all(isinstance(t.event, DeviceLost) for t in result.transitions)


@pytest.mark.parametrize(
    ("policy", "state"),
    [
        (PausedCheckPolicy.DROP, State.DEVIATION),
        (PausedCheckPolicy.PHYSICAL_VISIT, State.PATROL),
    ],
)
def test_a_pause_drops_or_visits_the_checks_it_covers(
    policy: PausedCheckPolicy, state: State
) -> None:
    pause = Pause(
        "p-1",
        "r1",
        starts_at=at_local(NIGHT, 23),
        ends_at=at_local(NIGHT, 23) + timedelta(hours=4),
        source=PauseSource.HOSPITAL,
        reason=PauseReason.HOSPITAL_STAY,
    )
    result = plan(basis(pauses=(pause,), plan={"paused_checks": policy}))
    assert [(x.state, x.reason) for x in result.checks] == [
        (State.PLANNED, None),
        (state, "paused"),
        (State.PLANNED, None),
    ]


def test_a_camera_on_a_video_phone_home_prefers_the_camera() -> None:
    b = basis()
    phone = Binding("b-phone", "phone-r1", "r1", LONG_AGO, "a", "b", device_kind="video_phone")
    b = dataclasses.replace(b, bindings=(phone, *b.bindings))
    assert {x.device_id for x in plan(b).checks} == {"cam-r1"}
    offline_cam = plan(b, online=lambda d: d != "cam-r1")
    assert {x.reason for x in offline_cam.checks} == {"device_offline"}


def test_a_check_whose_window_passed_before_planning_is_a_deviation() -> None:
    result = plan(basis(), at=at_local(NIGHT + timedelta(days=1), 3))
    assert [(x.state, x.reason) for x in result.checks] == [
        (State.DEVIATION, "planned_after_window"),
        (State.DEVIATION, "planned_after_window"),
        (State.PLANNED, None),
    ]


def test_a_plan_ending_in_the_night_plans_only_the_checks_before_its_end() -> None:
    end = at_local(NIGHT + timedelta(days=1), 1)
    result = plan(basis(plan={"valid_until": end}))
    assert [x.agreed for x in result.checks] == [time(22, 0)]


# ------------------------------------------------------------------ bad input


def test_checks_outside_the_night_round_are_not_planned_but_reported() -> None:
    result = plan(basis(times=(time(14, 0), time(22, 0), time(11, 55))))
    assert [x.agreed for x in result.checks] == [time(22, 0)]
    assert [(p.field, p.code) for p in result.problems] == [
        ("checks[0].at", "outside_night"),
        ("checks[2].at", "outside_night"),
    ]
    assert "14:00" in result.problems[0].message


@pytest.mark.parametrize(
    ("t", "tol", "ok"),
    [
        (time(18, 15), 15, True),
        (time(18, 10), 15, False),
        (time(11, 45), 15, True),
        (time(11, 50), 15, False),
        (time(14, 0), 5, False),
        (time(0, 0), 180, True),
    ],
)
def test_validate_round_times(t: time, tol: int, ok: bool) -> None:
    assert (validate_round_times([CheckTime(t, tol)]) == []) is ok


def test_naive_planning_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        s.plan_night([basis()], night=NIGHT, at=datetime(2025, 6, 10, 18), online=everyone_online)
    with pytest.raises(ValueError, match="plan_hour"):
        s.round_of(NIGHT, STHLM, plan_hour=9)


# ------------------------------------------------------------------ DST nights


@pytest.mark.parametrize(
    ("night", "offset_change_h"),
    [
        (date(2025, 3, 29), 1),
        (date(2025, 10, 25), -1),
        (date(2026, 3, 28), 1),
        (date(2026, 10, 24), -1),
    ],
)
def test_dst_nights_keep_every_check_once_with_real_length_windows(
    night: date, offset_change_h: int
) -> None:
    times = (time(22, 0), time(1, 45), time(2, 30), time(4, 0), time(6, 0))
    b = basis(times=times, tolerance=10)
    result = plan(b, night=night)
    assert len({x.check_id for x in result.checks}) == 5
    agreed = [x.agreed_at for x in result.checks]
    assert agreed == sorted(agreed)
    for x in result.checks:
        assert x.window_end - x.window_start == timedelta(minutes=20)
    # 22:00 -> 06:00 is 8 h of wall clock but 8 h - the jump of real time
    assert agreed[-1] - agreed[0] == timedelta(hours=8 - offset_change_h)
    two_thirty = result.checks[2]
    if offset_change_h == 1:  # 02:30 does not exist: it is the instant 02:30 CET would be
        assert two_thirty.agreed_at.astimezone(STHLM).time() == time(3, 30)
    else:  # 02:30 occurs twice: the first (summer time) one
        assert two_thirty.agreed_at.utcoffset() == timedelta(0)
        assert two_thirty.agreed_at.astimezone(STHLM).fold == 0
        assert two_thirty.agreed_at.astimezone(STHLM).utcoffset() == timedelta(hours=2)
    for x in result.checks:  # the gate resolves the same instants
        assert decide_recipient(b, purpose=Purpose.CAMERA_CHECK, at=x.window_start).allowed
        assert decide_recipient(b, purpose=Purpose.CAMERA_CHECK, at=x.agreed_at).allowed


@settings(max_examples=150, deadline=None)
@given(
    st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31)),
    st.sets(st.integers(min_value=0, max_value=17 * 4 - 1), min_size=1, max_size=10),
    st.integers(min_value=1, max_value=7),
)
def test_any_night_and_times_plan_deterministically_inside_the_round(
    night: date, quarters: set[int], tolerance: int
) -> None:
    # agreed times every 15 min from 18:15 to 11:00, windows <= 7 min each side: no overlap
    times = tuple(
        sorted(
            {(datetime(2000, 1, 1, 18, 15) + timedelta(minutes=15 * q)).time() for q in quarters}
        )
    )
    b = basis(times=times, tolerance=tolerance)
    result = plan(b, night=night)
    assert result == plan(b, night=night)
    bounds = s.round_of(night, STHLM)
    assert len(result.checks) == len(times)
    assert len({x.check_id for x in result.checks}) == len(times)
    for x in result.checks:
        assert bounds.start <= x.window_start < x.agreed_at < x.window_end <= bounds.end
        assert x.window_end - x.window_start == timedelta(minutes=2 * tolerance)
        assert x.check_id == s.check_id("r1", night, x.agreed)


# ------------------------------------------------------------------ re-planning in the night


def test_replan_after_a_withdrawal_turns_the_remaining_checks_into_visits() -> None:
    b = basis()
    first = plan(b)
    c1, c2, c3 = first.checks
    now = at_local(NIGHT, 22, 5)
    in_progress = c.apply(c1, c.Open(), at=c1.window_start)
    assert isinstance(in_progress, c.Transition)
    withdrawn = dataclasses.replace(
        b, consents=(consent("r1", Purpose.CAMERA_CHECK, withdrawn_at=now),)
    )
    result = s.replan(
        withdrawn, [in_progress.check, c2, c3], night=NIGHT, at=now, online=everyone_online
    )
    assert result.events == (
        (c1.check_id, Cancel("withdrawn")),
        (c2.check_id, Cancel("withdrawn")),
        (c3.check_id, Cancel("withdrawn")),
    )
    assert result.added.checks == ()


def test_replan_leaves_a_retry_past_its_window_alone_and_adds_new_times() -> None:
    b = basis()
    c1, c2, c3 = plan(b).checks
    waiting = dataclasses.replace(
        c1, state=State.RETRY_WAIT, deadline=c1.window_end + timedelta(minutes=10)
    )
    changed = basis(times=(*TIMES, time(3, 0)))
    now = c1.window_end + timedelta(minutes=5)
    result = s.replan(changed, [waiting, c2, c3], night=NIGHT, at=now, online=everyone_online)
    assert result.events == ()
    assert [x.check_id for x in result.added.checks] == ["20250610.0300.r1"]


def test_replan_drops_a_check_whose_time_was_removed_and_ignores_patrols() -> None:
    b = basis()
    c1, c2, c3 = plan(b).checks
    patrol = c.apply(c3, DeviceLost("device_offline"), at=PLAN_AT)
    assert isinstance(patrol, c.Transition)
    changed = basis(times=(time(22, 0),))
    result = s.replan(
        changed, [c1, c2, patrol.check], night=NIGHT, at=PLAN_AT, online=everyone_online
    )
    assert result.events == ((c2.check_id, Cancel("plan_changed", visit=False)),)


def test_replan_with_the_camera_gone_offline() -> None:
    b = basis()
    checks = list(plan(b).checks)
    result = s.replan(b, checks, night=NIGHT, at=PLAN_AT, online=lambda d: False)
    assert [e for _, e in result.events] == [DeviceLost("device_offline")] * 3


# ------------------------------------------------------------------ the steady-night shortcut

_EVENING = at_local(NIGHT, 17)
_MINUTES = st.one_of(st.none(), st.integers(min_value=-120, max_value=21 * 60))


def _in(minutes: int | None) -> datetime | None:
    return None if minutes is None else _EVENING + timedelta(minutes=minutes)


@settings(max_examples=200, deadline=None)
@given(
    withdrawn=_MINUTES,
    pause=st.one_of(st.none(), st.tuples(_MINUTES, _MINUTES)),
    unbound=_MINUTES,
    suspended=st.one_of(st.none(), st.tuples(_MINUTES, _MINUTES)),
    plan_ends=_MINUTES,
    drop=st.booleans(),
)
def test_the_steady_night_shortcut_gives_the_gates_answer_for_every_check(
    withdrawn: int | None,
    pause: tuple[int | None, int | None] | None,
    unbound: int | None,
    suspended: tuple[int | None, int | None] | None,
    plan_ends: int | None,
    drop: bool,
) -> None:
    times = (time(18, 30), time(22, 0), time(1, 30), time(5, 45), time(11, 0))
    b = basis(
        times=times,
        consents=(
            consent("r1", Purpose.CAMERA_CHECK, withdrawn_at=_in(withdrawn)),
            consent("r1", Purpose.MOTION_ANALYSIS),
        ),
        plan={
            "valid_until": _in(plan_ends),
            "paused_checks": PausedCheckPolicy.DROP if drop else PausedCheckPolicy.PHYSICAL_VISIT,
        },
    )
    if pause is not None and pause[0] is not None:
        start = _in(pause[0])
        end = _in(pause[1])
        assert start is not None
        ends = end if end is not None and end > start else None
        b = dataclasses.replace(
            b,
            pauses=(Pause("p1", "r1", start, ends, PauseSource.STAFF, PauseReason.VISITORS),),
        )
    if unbound is not None:
        b = dataclasses.replace(
            b, bindings=(dataclasses.replace(b.bindings[0], unbound_at=_in(unbound)),)
        )
    if suspended is not None and suspended[0] is not None:
        start = _in(suspended[0])
        assert start is not None
        lifted = _in(suspended[1])
        b = dataclasses.replace(
            b,
            suspensions=(
                Suspension(
                    "s1",
                    "r1",
                    "cam-r1",
                    BehaviourEvent.TAMPER,
                    start,
                    event_count=1,
                    lifted_at=lifted if lifted is not None and lifted > start else None,
                ),
            ),
        )
    care = b.plans[0]
    for x in plan(b).checks:
        v = s.camera_verdict(b, care, x.agreed_at, everyone_online)
        if v.reason is None:
            assert (x.state, x.reason) == (State.PLANNED, None)
        else:
            assert x.reason == v.reason
            assert x.state is (State.PATROL if v.visit else State.DEVIATION)
