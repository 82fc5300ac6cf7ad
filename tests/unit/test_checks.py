"""The check state machine: every (state, event) pair, every deadline, both DST nights."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.model import DEFAULT_DEADLINES as PLAN
from supervision import checks as c
from supervision import ladder
from supervision.checks import (
    Cancel,
    Check,
    Claim,
    DeviceLost,
    Open,
    Outcome,
    OutcomeKind,
    PatrolAcknowledged,
    PatrolVisited,
    Policy,
    ProbeDone,
    ProbeSkipped,
    Reconcile,
    Refusal,
    Rejected,
    RetryDue,
    State,
    Step,
    Transition,
    ViewOpened,
)

STHLM = ZoneInfo("Europe/Stockholm")
T = c.DEFAULT_TIMING
MIN = timedelta(minutes=1)
SEC = timedelta(seconds=1)


def local(d: date, hh: int, mm: int = 0, fold: int = 0) -> datetime:
    return datetime(d.year, d.month, d.day, hh, mm, tzinfo=STHLM, fold=fold).astimezone(UTC)


def make(
    policy: Policy | None = None,
    *,
    night: date = date(2025, 6, 10),
    hh: int = 22,
    mm: int = 30,
    tolerance_min: int = 15,
    at: datetime | None = None,
) -> Check:
    """A check planned at ``at`` (default 18:00 the evening before, long before its window)."""
    d = night if hh >= 12 else night + timedelta(days=1)
    agreed_at = local(d, hh, mm)
    return c.planned(
        check_id="n1-r1-2230",
        recipient_id="r1",
        device_id="cam-1",
        night=night,
        agreed=time(hh, mm),
        agreed_at=agreed_at,
        window_start=agreed_at - tolerance_min * MIN,
        window_end=agreed_at + tolerance_min * MIN,
        policy=policy or Policy(),
        at=at or local(night, 18),
    )


def ok(result: c.Result) -> Check:
    assert isinstance(result, Transition), result
    return result.check


def run(check: Check, *events: tuple[c.Event, datetime]) -> Check:
    for event, at in events:
        check = ok(c.apply(check, event, at=at))
    return check


def to_state(state: State, policy: Policy | None = None) -> tuple[Check, datetime]:
    """A check driven through real transitions into ``state``; returns it and the instant."""
    if state is State.CLEARED and policy is None:
        policy = CLEARING
    chk = make(policy)
    at = chk.window_start
    path: dict[State, list[c.Event]] = {
        State.PLANNED: [],
        State.DUE: [Open()],
        State.PROBING: [Open(), Claim("w1")],
        State.NEEDS_VIEW: [Open(), Claim("w1"), ProbeDone("still", needs_human=True)],
        State.VIEWING: [Open(), Claim("w1"), ProbeDone("still", True), ViewOpened("op1")],
        State.RETRY_WAIT: [
            Open(),
            Claim("w1"),
            ProbeDone("still", True),
            ViewOpened("op1"),
            Outcome("op1", OutcomeKind.NOT_SEEN),
        ],
        State.CALLING: [
            Open(),
            Claim("w1"),
            ProbeDone("still", True),
            ViewOpened("op1"),
            Outcome("op1", OutcomeKind.CALL),
        ],
        State.PATROL: [Open(), Claim("w1"), ProbeDone("dark", False)],
        State.PATROL_ACKED: [
            Open(),
            Claim("w1"),
            ProbeDone("dark", False),
            PatrolAcknowledged("p1"),
        ],
        State.CLEARED: [Open(), Claim("w1"), ProbeDone("activity", False)],
        State.DOCUMENTED: [
            Open(),
            Claim("w1"),
            ProbeDone("still", True),
            ViewOpened("op1"),
            Outcome("op1", OutcomeKind.OK, video_s=SEEN_S),
        ],
        State.VISITED: [Open(), Claim("w1"), ProbeDone("dark", False), PatrolVisited("p1")],
        State.ESCALATED: [
            Open(),
            Claim("w1"),
            ProbeDone("dark", False),
            PatrolAcknowledged("p1"),
            Reconcile(),
        ],
        State.DEVIATION: [Reconcile()],
    }
    for event in path[state]:
        chk = ok(c.apply(chk, event, at=at))
        at += SEC
    assert chk.state is state
    return chk, at


SEEN_S = 12.0  # seconds of video a view delivered (an ``ok`` needs c.MIN_SEEN_VIDEO_S)
ALL_EVENTS: list[c.Event] = [
    Open(),
    Claim("w2"),
    ProbeSkipped("no_motion_consent"),
    ProbeDone("activity", False),
    c.LookRefused("outside_window"),
    ProbeDone("empty", True),
    ProbeDone("covered", True),
    ViewOpened("op2"),
    *[Outcome("op2", k, video_s=SEEN_S) for k in OutcomeKind],
    RetryDue(),
    Cancel("consent_withdrawn"),
    Cancel("paused", visit=False),
    DeviceLost("device_offline"),
    PatrolAcknowledged("p2"),
    PatrolVisited("p2"),
    c.Escalate(),
    Reconcile(),
]
CLEARING = Policy(may_clear_without_human=True)


# ------------------------------------------------------------------ every pair


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda e: f"{c.event_name(e)}-{e}")
def test_every_state_event_pair_is_a_legal_move_or_a_typed_refusal(
    state: State, event: c.Event
) -> None:
    chk, at = to_state(state, CLEARING)
    late = at + timedelta(hours=3)  # past every time guard
    result = c.apply(chk, event, at=late)
    if isinstance(result, Rejected):
        assert result.state is state
        assert result.check_id == chk.check_id
        assert isinstance(result.refusal, Refusal)
        if state in c.TERMINAL:
            assert result.refusal is Refusal.FINISHED
        return
    assert (state, type(event)) in c.TABLE
    new = result.check
    assert new.state in c.ALLOWED[state]
    assert new.version == chk.version + 1
    assert new.since == late
    assert (new.deadline is None) == (new.state in c.TERMINAL)
    # no step is born late: an alarm needs a deadline missed after the step was taken
    assert new.deadline is None or new.deadline >= late
    assert chk.state is state  # the old value is untouched


def test_terminal_states_have_no_exits_and_every_open_state_reconciles() -> None:
    for state in State:
        if state in c.TERMINAL:
            assert c.ALLOWED[state] == frozenset()
        else:
            chk, at = to_state(state)
            assert ok(c.apply(chk, Reconcile(), at=at)).category is not c.Category.OPEN


def test_the_table_only_names_allowed_targets() -> None:
    reachable: set[State] = set()
    for targets in c.ALLOWED.values():
        reachable |= targets
    assert reachable | {State.PLANNED} == set(State)


def test_move_refuses_a_target_outside_the_table() -> None:
    chk = make()
    with pytest.raises(AssertionError):
        c._move(chk, State.DOCUMENTED, Open(), chk.window_start, T)


# ------------------------------------------------------------------ the happy paths


def test_cleared_without_a_human_when_the_plan_allows_it() -> None:
    chk = make(CLEARING)
    ws = chk.window_start
    done = run(chk, (Open(), ws), (Claim("w1"), ws), (ProbeDone("still", False), ws + 9 * SEC))
    assert done.state is State.CLEARED
    assert done.category is c.Category.PERFORMED
    assert done.reason == "motion_still"
    assert done.verdict == "still"
    assert done.version == 3


@pytest.mark.parametrize(
    ("verdict", "needs_human", "may_clear", "attempt", "expected"),
    [
        ("activity", False, True, 1, State.CLEARED),
        ("still", False, True, 1, State.CLEARED),
        ("activity", False, False, 1, State.NEEDS_VIEW),  # plan does not allow clearing
        ("activity", True, True, 1, State.NEEDS_VIEW),  # the motion check asks for a human
        ("still", False, True, 2, State.NEEDS_VIEW),  # a retry after "not seen" gets a human
        ("empty", False, True, 1, State.NEEDS_VIEW),  # empty bed: never cleared
        ("no_person_expected_zone", False, True, 1, State.NEEDS_VIEW),
        ("something-new", False, True, 1, State.NEEDS_VIEW),  # unknown verdicts fail safe
        ("dark", False, True, 1, State.PATROL),
        ("frozen", True, True, 1, State.PATROL),
        ("covered", False, False, 1, State.PATROL),
        ("no_signal", True, True, 1, State.PATROL),
    ],
)
def test_verdict_routing(
    verdict: str, needs_human: bool, may_clear: bool, attempt: int, expected: State
) -> None:
    chk = dataclasses.replace(make(Policy(may_clear_without_human=may_clear)), attempt=attempt)
    assert c.route_verdict(chk, verdict, needs_human)[0] is expected
    ws = chk.window_start
    probing = run(chk, (Open(), ws), (Claim("w1"), ws))
    assert ok(c.apply(probing, ProbeDone(verdict, needs_human), at=ws)).state is expected


def test_camera_trouble_names_the_cause() -> None:
    chk = make()
    ws = chk.window_start
    done = run(chk, (Open(), ws), (Claim("w1"), ws), (ProbeDone("covered", False), ws))
    assert done.reason == "camera_covered"


def test_no_motion_consent_goes_straight_to_a_human_view() -> None:
    chk = make(CLEARING)
    ws = chk.window_start
    done = run(chk, (Open(), ws), (Claim("w1"), ws), (ProbeSkipped("no_motion_consent"), ws))
    assert done.state is State.NEEDS_VIEW
    assert done.reason == "no_motion_consent"
    assert done.verdict is None


def test_view_then_ok_is_documented_by_that_operator() -> None:
    chk, at = to_state(State.VIEWING)
    assert chk.holder == "op1"
    done = ok(c.apply(chk, Outcome("op1", OutcomeKind.OK, video_s=SEEN_S), at=at))
    assert done.state is State.DOCUMENTED
    assert done.holder == "op1"
    assert done.reason == "seen"


# ------------------------------------------------------------------ the ladder


def test_default_ladder_not_seen_retry_then_call_then_patrol() -> None:
    chk, at = to_state(State.VIEWING)
    retry = ok(c.apply(chk, Outcome("op1", OutcomeKind.NOT_SEEN), at=at))
    assert retry.state is State.RETRY_WAIT
    assert retry.deadline == at + 20 * MIN
    assert retry.ladder_step == 1
    early = c.apply(retry, RetryDue(), at=at + 19 * MIN)
    assert isinstance(early, Rejected)
    assert early.refusal is Refusal.TOO_EARLY
    again = ok(c.apply(retry, RetryDue(), at=at + 20 * MIN))
    assert again.state is State.DUE
    assert again.attempt == 2
    t2 = at + 20 * MIN
    viewing = run(
        again, (Claim("w2"), t2), (ProbeDone("activity", False), t2), (ViewOpened("op1"), t2)
    )
    assert viewing.state is State.VIEWING  # the second look is never auto-cleared
    calling = ok(c.apply(viewing, Outcome("op1", OutcomeKind.NOT_SEEN), at=t2))
    assert calling.state is State.CALLING
    assert calling.ladder_step == 2
    assert calling.deadline == t2 + PLAN.call.respond_s * SEC
    patrol = ok(c.apply(calling, Outcome("op1", OutcomeKind.NOT_SEEN), at=t2))
    assert patrol.state is State.PATROL
    assert patrol.reason == "not_reached_by_call"


@pytest.mark.parametrize(
    ("ladder", "expected"),
    [
        ((Step.PATROL,), State.PATROL),
        ((Step.CALL, Step.PATROL), State.CALLING),
        ((Step.RETRY, Step.RETRY, Step.PATROL), State.RETRY_WAIT),
    ],
)
def test_first_not_seen_follows_the_plans_ladder(ladder: tuple[Step, ...], expected: State) -> None:
    chk, at = to_state(State.VIEWING, Policy(ladder=ladder))
    assert ok(c.apply(chk, Outcome("op1", OutcomeKind.NOT_SEEN), at=at)).state is expected


def test_two_retries_then_patrol() -> None:
    chk, at = to_state(
        State.VIEWING, Policy(ladder=(Step.RETRY, Step.RETRY, Step.PATROL), retry_interval_s=900)
    )
    for attempt in (2, 3):
        chk = ok(c.apply(chk, Outcome("op1", OutcomeKind.NOT_SEEN), at=at))
        assert chk.state is State.RETRY_WAIT
        assert chk.deadline == at + 15 * MIN
        at += 15 * MIN
        chk = run(
            chk,
            (RetryDue(), at),
            (Claim("w"), at),
            (ProbeSkipped("x"), at),
            (ViewOpened("op1"), at),
        )
        assert chk.attempt == attempt
    assert ok(c.apply(chk, Outcome("op1", OutcomeKind.NOT_SEEN), at=at)).state is State.PATROL


def test_operator_call_skips_the_ladders_call_rung() -> None:
    chk, at = to_state(State.VIEWING)
    calling = ok(c.apply(chk, Outcome("op1", OutcomeKind.CALL), at=at))
    assert calling.ladder_step == 2  # past retry and call
    seen = Outcome("op1", OutcomeKind.OK, video_s=SEEN_S)  # the call delivered video
    assert ok(c.apply(calling, seen, at=at)).state is State.DOCUMENTED


@pytest.mark.parametrize(
    ("kind", "reason", "expected_reason"),
    [
        (OutcomeKind.PATROL, "fell_last_night", "fell_last_night"),
        (OutcomeKind.PATROL, None, "operator_patrol"),
        (OutcomeKind.TECHNICAL, None, "technical"),
    ],
)
def test_operator_sends_the_patrol(
    kind: OutcomeKind, reason: str | None, expected_reason: str
) -> None:
    for state in (State.NEEDS_VIEW, State.VIEWING, State.CALLING):
        chk, at = to_state(state)
        done = ok(c.apply(chk, Outcome("op1", kind, reason), at=at))
        assert done.state is State.PATROL
        assert done.reason == expected_reason


@pytest.mark.parametrize(
    ("state", "kind"),
    [
        (State.NEEDS_VIEW, OutcomeKind.OK),  # "seen" without a view
        (State.NEEDS_VIEW, OutcomeKind.NOT_SEEN),
        (State.CALLING, OutcomeKind.CALL),
        (State.DUE, OutcomeKind.OK),
        (State.PROBING, OutcomeKind.PATROL),
        (State.PATROL, OutcomeKind.OK),
        (State.CLEARED, OutcomeKind.NOT_SEEN),
        (State.DOCUMENTED, OutcomeKind.OK),
    ],
)
def test_outcomes_refused_where_the_state_does_not_accept_them(
    state: State, kind: OutcomeKind
) -> None:
    chk, at = to_state(state)
    result = c.apply(chk, Outcome("op1", kind, video_s=SEEN_S), at=at)
    assert isinstance(result, Rejected)
    assert result.refusal in {Refusal.NOT_IN_STATE, Refusal.FINISHED}
    assert "refused" in result.message


# ------------------------------------------------------------------ claims, patrol, cancel


def test_a_live_claim_cannot_be_taken_but_an_expired_one_can() -> None:
    chk, at = to_state(State.PROBING)
    assert chk.deadline == at - SEC + T.probe_timeout_s * SEC
    taken = c.apply(chk, Claim("w2"), at=at)
    assert isinstance(taken, Rejected)
    assert taken.refusal is Refusal.CLAIMED
    assert chk.deadline is not None
    over = ok(c.apply(chk, Claim("w2"), at=chk.deadline))
    assert over.state is State.PROBING
    assert over.holder == "w2"
    assert over.version == chk.version + 1


def test_open_before_the_window_is_too_early() -> None:
    chk = make()
    result = c.apply(chk, Open(), at=chk.window_start - SEC)
    assert isinstance(result, Rejected)
    assert result.refusal is Refusal.TOO_EARLY


def test_patrol_ack_then_visit() -> None:
    chk, at = to_state(State.PATROL)
    acked = ok(c.apply(chk, PatrolAcknowledged("p1"), at=at))
    assert acked.deadline == at + PLAN.patrol_arrival.respond_s * SEC
    assert acked.holder == "p1"
    visited = ok(c.apply(acked, PatrolVisited("p1"), at=at + 30 * MIN))
    assert visited.state is State.VISITED
    assert visited.category is c.Category.PERFORMED
    assert visited.reason == "camera_dark"  # why the patrol went stays on record


@pytest.mark.parametrize(
    "state",
    [
        State.PLANNED,
        State.DUE,
        State.PROBING,
        State.NEEDS_VIEW,
        State.VIEWING,
        State.RETRY_WAIT,
        State.CALLING,
    ],
)
def test_withdrawal_and_device_loss_turn_any_open_check_into_a_visit(state: State) -> None:
    chk, at = to_state(state)
    visit = ok(c.apply(chk, Cancel("consent_withdrawn"), at=at))
    assert visit.state is State.PATROL
    assert visit.reason == "consent_withdrawn"
    dropped = ok(c.apply(chk, Cancel("paused", visit=False), at=at))
    assert dropped.state is State.DEVIATION
    assert dropped.reason == "paused"
    lost = ok(c.apply(chk, DeviceLost("device_offline"), at=at))
    assert lost.state is State.PATROL
    assert lost.reason == "device_offline"


def test_a_check_already_with_the_patrol_stays_there() -> None:
    for state in (State.PATROL, State.PATROL_ACKED):
        chk, at = to_state(state)
        for event in (DeviceLost("device_offline"), Cancel("consent_withdrawn")):
            result = c.apply(chk, event, at=at)
            assert isinstance(result, Rejected)
            assert result.refusal is Refusal.ALREADY_PATROL


@pytest.mark.parametrize(
    ("state", "expected", "reason"),
    [
        (State.PLANNED, State.DEVIATION, "unfinished_planned"),
        (State.NEEDS_VIEW, State.DEVIATION, "unfinished_needs_view"),
        (State.RETRY_WAIT, State.DEVIATION, "unfinished_retry_wait"),
        (State.PATROL, State.DEVIATION, "patrol_not_acknowledged"),
        (State.PATROL_ACKED, State.ESCALATED, "visit_not_reported"),
    ],
)
def test_morning_reconciliation(state: State, expected: State, reason: str) -> None:
    chk, at = to_state(state)
    done = ok(c.apply(chk, Reconcile(), at=at))
    assert (done.state, done.reason) == (expected, reason)


# ------------------------------------------------------------------ deadlines


def test_deadline_of_every_open_state() -> None:
    chk = make()
    ws, we = chk.window_start, chk.window_end
    assert chk.deadline == ws
    due = ok(c.apply(chk, Open(), at=ws))
    assert due.deadline == ws + T.claim_grace_s * SEC
    late_due = ok(c.apply(chk, Open(), at=we - SEC))
    assert late_due.deadline == we  # never past the window unless opened after it
    after = ok(c.apply(chk, Open(), at=we + MIN))
    assert after.deadline == we + MIN
    probing = ok(c.apply(due, Claim("w"), at=ws))
    assert probing.deadline == ws + T.probe_timeout_s * SEC
    nv = ok(c.apply(probing, ProbeDone("still", True), at=ws + 10 * SEC))
    assert nv.deadline == ws + 10 * SEC + PLAN.view.respond_s * SEC  # the plan's, not the window
    nv_late = ok(c.apply(probing, ProbeDone("still", True), at=we - MIN))
    assert nv_late.deadline == we - MIN + PLAN.view.respond_s * SEC
    viewing = ok(c.apply(nv, ViewOpened("op"), at=ws + MIN))
    assert viewing.deadline == ws + MIN + (30 + T.document_grace_s) * SEC
    capped = ok(
        c.apply(dataclasses.replace(nv, policy=Policy(view_cap_s=20)), ViewOpened("op"), at=ws)
    )
    assert capped.deadline == ws + (20 + T.document_grace_s) * SEC
    patrol_early = ok(c.apply(chk, DeviceLost("device_offline"), at=ws - 4 * 60 * MIN))
    # the visit is due at the window
    assert patrol_early.deadline == ws + PLAN.patrol_ack.respond_s * SEC


def test_a_check_planned_inside_its_window_is_due_at_once_not_already_late() -> None:
    """A plan added mid-night: the check is opened by the watchdog's next tick and is no alarm
    for the minutes of the window that passed before it existed."""
    at = make().window_start + 8 * MIN
    late = make(at=at)
    assert late.deadline == at
    assert late.deadline == c.deadline_for(State.PLANNED, late, at, T)
    assert ladder.alarms_due(late, at + (T.alarm_grace_s - 1) * SEC, T) == 0
    assert ladder.alarms_due(late, at + T.alarm_grace_s * SEC, T) == 1  # still planned: alarm
    assert ok(c.apply(late, Open(), at=at)).state is State.DUE


# ------------------------------------------------------------------ DST nights

DST_NIGHTS = [
    pytest.param(date(2025, 3, 29), 1, id="spring-forward-2025"),  # 02:00 -> 03:00 on 30 March
    pytest.param(date(2025, 10, 25), 2, id="fall-back-2025"),  # 03:00 -> 02:00 on 26 October
    pytest.param(date(2026, 3, 28), 1, id="spring-forward-2026"),
    pytest.param(date(2026, 10, 24), 2, id="fall-back-2026"),
]


@pytest.mark.parametrize(("night", "hour"), DST_NIGHTS)
def test_retry_and_view_deadlines_are_real_durations_across_the_jump(
    night: date, hour: int
) -> None:
    """A 20 min retry that starts ten minutes before the jump lasts 20 real minutes."""
    chk = make(night=night, hh=hour, mm=50, tolerance_min=10)  # 02:50 is the first (CEST) one
    viewing, at = to_state_from(chk, State.VIEWING)
    retry = ok(c.apply(viewing, Outcome("op1", OutcomeKind.NOT_SEEN), at=at))
    assert retry.deadline is not None
    assert (retry.deadline - at) == 20 * MIN
    wall_before = at.astimezone(STHLM)
    wall_after = retry.deadline.astimezone(STHLM)
    jump = (wall_after.replace(tzinfo=None) - wall_before.replace(tzinfo=None)) - 20 * MIN
    spring = night.month == 3
    assert jump == (timedelta(hours=1) if spring else -timedelta(hours=1))
    early = c.apply(retry, RetryDue(), at=retry.deadline - SEC)
    assert isinstance(early, Rejected)
    assert ok(c.apply(retry, RetryDue(), at=retry.deadline)).attempt == 2


def to_state_from(chk: Check, state: State) -> tuple[Check, datetime]:
    at = chk.window_start
    events: list[c.Event] = [Open(), Claim("w1"), ProbeDone("still", True), ViewOpened("op1")]
    for event in events:
        chk = ok(c.apply(chk, event, at=at))
        at += 3 * MIN
        if chk.state is state:
            break
    return chk, at


# ------------------------------------------------------------------ properties and invariants


def test_naive_instants_are_refused() -> None:
    chk = make()
    with pytest.raises(ValueError, match="timezone"):
        c.apply(chk, Open(), at=datetime(2025, 6, 10, 22, 30))
    with pytest.raises(ValueError, match="inside the window"):
        dataclasses.replace(chk, agreed_at=chk.window_end + SEC)
    with pytest.raises(ValueError, match="deadline"):
        dataclasses.replace(chk, deadline=None)


@pytest.mark.parametrize(
    "bad",
    [
        {"view_cap_s": 0},
        {"retry_interval_s": 10},
        {"ladder": ()},
        {"ladder": (Step.RETRY,)},
        {"ladder": (Step.PATROL, Step.PATROL)},
    ],
)
def test_bad_policies_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Policy(**bad)  # type: ignore[arg-type]


def test_ladder_from_ends_at_the_first_patrol() -> None:
    assert Policy.ladder_from(["retry", "patrol", "call"]) == (Step.RETRY, Step.PATROL)
    assert Policy.ladder_from(["retry", "call"]) == (Step.RETRY, Step.CALL, Step.PATROL)
    assert Policy.ladder_from([]) == (Step.PATROL,)


@pytest.mark.parametrize(
    ("ladder", "step", "expected", "ladder_step"),
    [
        ((Step.RETRY, Step.CALL, Step.PATROL), 1, State.CALLING, 2),
        ((Step.RETRY, Step.RETRY, Step.PATROL), 1, State.PATROL, 3),
        ((Step.CALL, Step.RETRY, Step.PATROL), 1, State.PATROL, 3),
    ],
)
def test_a_retry_the_gate_refuses_continues_the_ladder_without_a_look(
    ladder: tuple[Step, ...], step: int, expected: State, ladder_step: int
) -> None:
    chk, at = to_state(State.PROBING, Policy(ladder=ladder))
    chk = dataclasses.replace(chk, ladder_step=step, attempt=2)
    done = ok(c.apply(chk, c.LookRefused("outside_window"), at=at))
    assert done.state is expected
    assert done.reason == "outside_window"
    assert done.ladder_step == ladder_step


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(ALL_EVENTS), max_size=25),
    st.lists(st.integers(min_value=0, max_value=3600), min_size=25, max_size=25),
)
def test_any_event_sequence_keeps_the_invariants(events: list[c.Event], gaps: list[int]) -> None:
    chk = make(CLEARING)
    at = chk.window_start - 10 * MIN
    for event, gap in zip(events, gaps, strict=False):
        at += gap * SEC
        before = chk
        result = c.apply(chk, event, at=at)
        if isinstance(result, Transition):
            chk = result.check
            assert chk.state in c.ALLOWED[before.state]
            assert chk.version == before.version + 1
            if chk.state is State.CLEARED:  # cleared only from a clearable first-look verdict
                assert isinstance(event, ProbeDone)
                assert event.verdict in c.CLEARABLE_VERDICTS
                assert not event.needs_human
                assert chk.attempt == 1
        else:
            assert result.state is before.state
    final = c.apply(chk, Reconcile(), at=at)
    end = final.check if isinstance(final, Transition) else chk
    assert end.category is not c.Category.OPEN
