"""The escalation ladder as a pure table (issue 16): what the watchdog owes a check when nobody
acts, minute by minute, for every state; and the ``Escalate`` event of the check machine."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta

import pytest

from consent.model import DEFAULT_DEADLINES, Deadlines, StepDeadline
from kernel.roles import Role
from supervision import checks as c
from supervision import ladder, report
from supervision.checks import (
    AlarmKind,
    Check,
    Claim,
    Escalate,
    Open,
    Outcome,
    OutcomeKind,
    PatrolAcknowledged,
    Policy,
    ProbeDone,
    Refusal,
    Rejected,
    State,
    Transition,
    ViewOpened,
)
from supervision.ladder import Escalation, Raised
from tools import night_ladder

T = c.DEFAULT_TIMING
GRACE = T.alarm_grace_s
SEC = timedelta(seconds=1)
MIN = timedelta(minutes=1)
WS = datetime(2025, 6, 10, 20, 15, tzinfo=UTC)  # 22:15 in Stockholm, the window opens


def make(policy: Policy | None = None) -> Check:
    return c.planned(
        check_id="20250610.2230.r1",
        recipient_id="r1",
        device_id="cam-1",
        night=date(2025, 6, 10),
        agreed=time(22, 30),
        agreed_at=WS + 15 * MIN,
        window_start=WS,
        window_end=WS + 30 * MIN,
        policy=policy or Policy(),
        at=WS - 4 * 60 * MIN,
    )


def ok(result: c.Result) -> Check:
    assert isinstance(result, Transition), result
    return result.check


PATHS: dict[State, list[c.Event]] = {
    State.PLANNED: [],
    State.DUE: [Open()],
    State.PROBING: [Open(), Claim("w1")],
    State.NEEDS_VIEW: [Open(), Claim("w1"), ProbeDone("still", True)],
    State.VIEWING: [Open(), Claim("w1"), ProbeDone("still", True), ViewOpened("op1")],
    State.CALLING: [
        Open(),
        Claim("w1"),
        ProbeDone("still", True),
        ViewOpened("op1"),
        Outcome("op1", OutcomeKind.CALL),
    ],
    State.PATROL: [Open(), Claim("w1"), ProbeDone("dark", False)],
    State.PATROL_ACKED: [Open(), Claim("w1"), ProbeDone("dark", False), PatrolAcknowledged("p1")],
}


def entered(state: State, policy: Policy | None = None) -> Check:
    """A check driven into ``state``, every step at the window's start."""
    chk = make(policy)
    for event in PATHS[state]:
        chk = ok(c.apply(chk, event, at=WS))
    assert chk.state is state
    return chk


def night(chk: Check, minutes: int) -> list[tuple[int, str, int, str]]:
    """Run the ladder once a minute (as a watchdog would) from the step's start for
    ``minutes``; every alarm raised as (minute, kind, repeat, to) and ``escalate`` when due."""
    raised = Raised()
    seen: list[tuple[int, str, int, str]] = []
    for minute in range(minutes + 1):
        at = WS + minute * MIN
        owed = ladder.owed(chk, at, T, raised)
        seen += [(minute, a.kind.value, a.repeat, a.to.value) for a in owed.alarms]
        if owed.escalate:
            seen.append((minute, "escalate", 0, ""))
            break
        raised = owed.raised
        if owed.next_at is not None:
            assert owed.next_at > at  # never a rung that is already due
    return seen


# The table: what nobody doing anything brings, minute by minute, with the default plan terms
# (view 5 min, alarm every 2 min, escalation 5 min after the deadline; patrol ack 10 min, every
# 5 min, the lead at 20; arrival 45 min, every 10 min, the lead at 60) and a 30 s grace.
NOBODY_ACTS: list[tuple[State, int, list[tuple[int, str, int, str]]]] = [
    (
        State.NEEDS_VIEW,
        30,
        [
            (6, "alarm", 1, "operator"),
            (8, "alarm", 2, "operator"),
            (10, "escalation", 1, "shift_lead"),
            (10, "escalate", 0, ""),
        ],
    ),
    (
        State.VIEWING,  # the view cap (30 s) and the grace to document (120 s) are the deadline
        30,
        [
            (3, "alarm", 1, "operator"),
            (5, "alarm", 2, "operator"),
            (7, "alarm", 3, "operator"),
            (8, "escalation", 1, "shift_lead"),  # 2.5 + 5 min
            (8, "escalate", 0, ""),
        ],
    ),
    (
        State.CALLING,
        30,
        [
            (6, "alarm", 1, "operator"),
            (8, "alarm", 2, "operator"),
            (10, "escalation", 1, "shift_lead"),
            (10, "escalate", 0, ""),
        ],
    ),
    (
        State.PATROL,
        36,
        [
            (11, "alarm", 1, "patrol"),
            (16, "alarm", 2, "patrol"),
            (20, "escalation", 1, "shift_lead"),
            (21, "alarm", 3, "shift_lead"),  # the alarms go on, now to the shift lead
            (26, "alarm", 4, "shift_lead"),
            (31, "alarm", 5, "shift_lead"),
            (36, "alarm", 6, "shift_lead"),
        ],
    ),
    (
        State.PATROL_ACKED,
        75,
        [
            (46, "alarm", 1, "patrol"),
            (56, "alarm", 2, "patrol"),
            (60, "escalation", 1, "shift_lead"),
            (66, "alarm", 3, "shift_lead"),
        ],
    ),
    # the system's own steps: one alarm, nothing more (the worker or the watchdog acts)
    (State.PLANNED, 60, [(1, "alarm", 1, "operator")]),
    (State.DUE, 60, [(3, "alarm", 1, "operator")]),
    (State.PROBING, 60, [(2, "alarm", 1, "operator")]),
]


@pytest.mark.parametrize(
    ("state", "minutes", "expected"), NOBODY_ACTS, ids=[s.value for s, _, _ in NOBODY_ACTS]
)
def test_what_nobody_acting_brings_minute_by_minute(
    state: State, minutes: int, expected: list[tuple[int, str, int, str]]
) -> None:
    assert night(entered(state), minutes) == expected


def test_every_state_has_a_rung_and_the_human_steps_are_those_with_plan_terms() -> None:
    assert set(ladder.LADDER) == set(State)
    escalating = {s for s, r in ladder.LADDER.items() if r.escalation is not Escalation.NONE}
    assert escalating == set(c.HUMAN_STEPS)
    for state in escalating:  # an unanswered person's step ends with the patrol sent or kept
        to_patrol = ladder.LADDER[state].escalation is Escalation.PATROL
        assert to_patrol == (state not in c.PATROL_STATES)


def test_a_finished_check_owes_nothing() -> None:
    done = ok(c.apply(entered(State.PATROL), c.PatrolVisited("p1"), at=WS + MIN))
    owed = ladder.owed(done, WS + 10 * 60 * MIN, T, Raised())
    assert owed == ladder.Owed((), False, Raised(), None)


def test_a_patrol_at_the_door_stops_the_arrival_alarms() -> None:
    acked = entered(State.PATROL_ACKED)
    assert ladder.owed(acked, WS + 2 * 60 * MIN, T, Raised(), arrived=True).alarms == ()
    assert ladder.owed(acked, WS + 2 * 60 * MIN, T, Raised()).alarms != ()


def test_a_watchdog_that_was_away_raises_the_latest_alarm_only_numbered_by_its_place() -> None:
    chk = entered(State.PATROL)
    owed = ladder.owed(chk, WS + 19 * MIN, T, Raised(alarms=1))  # alarm 2 and 3 were missed... 2
    assert [(a.kind, a.repeat, a.to) for a in owed.alarms] == [(AlarmKind.ALARM, 2, Role.PATROL)]
    assert owed.raised == Raised(alarms=2)
    owed = ladder.owed(chk, WS + 3 * 60 * MIN, T, Raised(alarms=2))
    assert [(a.kind, a.repeat, a.to) for a in owed.alarms] == [
        (AlarmKind.ESCALATION, 1, Role.SHIFT_LEAD),
        (AlarmKind.ALARM, 34, Role.SHIFT_LEAD),
    ]
    assert owed.raised == Raised(alarms=34, lead_alerted=True)
    assert ladder.owed(chk, WS + 3 * 60 * MIN, T, owed.raised).alarms == ()  # nothing twice


def test_the_plan_sets_the_ladder() -> None:
    fast = Deadlines(view=StepDeadline(respond_s=60, repeat_s=60, escalate_s=180))
    chk = entered(State.NEEDS_VIEW, Policy(deadlines=fast))
    assert chk.deadline == WS + MIN
    assert night(chk, 10) == [
        (2, "alarm", 1, "operator"),
        (3, "alarm", 2, "operator"),
        (4, "escalation", 1, "shift_lead"),
        (4, "escalate", 0, ""),
    ]
    assert c.escalates_at(chk) == WS + 4 * MIN


# ------------------------------------------------------------------ the Escalate event


@pytest.mark.parametrize("state", [State.NEEDS_VIEW, State.VIEWING, State.CALLING])
def test_an_unanswered_view_or_call_goes_to_the_patrol_by_itself(state: State) -> None:
    chk = entered(state)
    due = c.escalates_at(chk)
    assert due is not None
    early = c.apply(chk, Escalate(), at=due - SEC)
    assert isinstance(early, Rejected)
    assert early.refusal is Refusal.TOO_EARLY
    tr = c.apply(chk, Escalate(), at=due)
    assert isinstance(tr, Transition)
    new = tr.check
    assert (new.state, new.reason, new.holder) == (State.PATROL, "unanswered", None)
    assert new.ladder_step == len(new.policy.ladder)
    assert c.event_name(tr.event) == "escalate"
    assert c.actor_of(tr.event) == "system"
    assert new.deadline == due + DEFAULT_DEADLINES.patrol_ack.respond_s * SEC


@pytest.mark.parametrize("state", [State.PATROL, State.PATROL_ACKED])
def test_a_patrol_step_is_not_escalated_by_a_transition(state: State) -> None:
    result = c.apply(entered(state), Escalate(), at=WS + 10 * 60 * MIN)
    assert isinstance(result, Rejected)
    assert result.refusal is Refusal.ALREADY_PATROL


@pytest.mark.parametrize("state", [State.PLANNED, State.DUE, State.PROBING])
def test_a_system_step_is_never_escalated(state: State) -> None:
    result = c.apply(entered(state), Escalate(), at=WS + 10 * 60 * MIN)
    assert isinstance(result, Rejected)
    assert result.refusal is Refusal.NOT_IN_STATE


def test_an_old_policy_without_deadlines_gets_the_defaults() -> None:
    assert Policy().deadlines == DEFAULT_DEADLINES
    assert dataclasses.replace(Policy(), view_cap_s=20).deadlines == DEFAULT_DEADLINES


# ------------------------------------------------------------------ the morning report


@dataclasses.dataclass(frozen=True)
class Fact:
    check_id: str
    at: datetime
    from_state: State
    to_state: State
    event: str
    actor: str
    reason: str | None


def walk(chk: Check, *events: c.Event) -> tuple[Check, list[Fact]]:
    """Apply ``events`` a minute apart from the window's start; ``Escalate`` when it is due."""
    facts, at = [], WS
    for event in events:
        due = c.escalates_at(chk) if isinstance(event, Escalate) else None
        at = due if due is not None else at + MIN
        tr = c.apply(chk, event, at=at)
        assert isinstance(tr, Transition), tr
        facts.append(
            Fact(
                chk.check_id,
                at,
                tr.before,
                tr.after,
                c.event_name(event),
                c.actor_of(event),
                tr.check.reason,
            )
        )
        chk = tr.check
    return chk, facts


def test_the_report_counts_checks_nobody_saw_and_no_patrol_was_sent_to() -> None:
    def one(rid: str, *events: c.Event) -> tuple[Check, list[Fact]]:
        return walk(
            dataclasses.replace(make(), check_id=f"20250610.2230.{rid}", recipient_id=rid), *events
        )

    probe = (Open(), Claim("w1"), ProbeDone("still", True))
    fell_through, f1 = one("a", *probe, c.Reconcile())  # today's unfinished_needs_view
    escalated, f2 = one("b", *probe, Escalate(), c.Reconcile())  # the ladder sent the patrol
    seen, f3 = one("c", *probe, ViewOpened("op1"), Outcome("op1", OutcomeKind.NOT_SEEN, None))
    assert (fell_through.reason, escalated.reason) == (
        "unfinished_needs_view",
        "patrol_not_acknowledged",
    )
    alarms = [
        {"check_id": escalated.check_id, "kind": "alarm", "repeat": 1, "acknowledged_at": None},
        {"check_id": escalated.check_id, "kind": "alarm", "repeat": 2, "acknowledged_at": None},
        {"check_id": escalated.check_id, "kind": "escalation", "repeat": 1, "acknowledged_at": WS},
    ]
    built = report.build(
        date(2025, 6, 10),
        [fell_through, escalated, seen],
        f1 + f2 + f3,
        generated_at=WS + 24 * 60 * MIN,
        alarms=alarms,
    )
    t = built["totals"]
    assert (t["unattended"], t["alarm_repeats"], t["escalations"], t["alarms_open"]) == (1, 1, 1, 2)
    assert [r["unattended"] for r in built["recipients"]] == [
        [{"check_id": fell_through.check_id, "reason": "unfinished_needs_view"}],
        [],
        [],  # still open (retry): not ended
    ]
    assert "ended without a person seeing the brukare or a patrol sent: 1" in report.render_text(
        built
    )
    assert "Avslutade utan att någon såg brukaren" in report.render_html(built)


# ------------------------------------------------------------------ the simulated night's account


def test_the_nights_account_names_each_check_the_ladder_let_through() -> None:
    def one(rid: str, *events: c.Event) -> tuple[Check, list[Fact]]:
        chk = dataclasses.replace(make(), check_id=f"20250610.2230.{rid}", recipient_id=rid)
        return walk(chk, *events)

    probe = (Open(), Claim("w1"), ProbeDone("still", True))
    fell, f1 = one("fell", *probe, c.Reconcile())
    sent, f2 = one("sent", *probe, Escalate(), PatrolAcknowledged("p1"), c.PatrolVisited("p1"))
    late, f3 = one("late", *probe, Escalate())
    f3[-1] = dataclasses.replace(f3[-1], at=f3[-1].at + 5 * MIN)  # as if escalated 5 min late
    alone, f4 = one("alone", Open(), Claim("w1"), ProbeDone("dark", False), c.Reconcile())
    f4[-1] = dataclasses.replace(f4[-1], at=f4[-1].at + 12 * 60 * MIN)  # the morning
    entered = f2[2].at  # needs_view since
    first = entered + DEFAULT_DEADLINES.view.respond_s * SEC + GRACE * SEC
    alarms = [
        {
            "check_id": sent.check_id,
            "version": 3,
            "kind": "alarm",
            "state": "needs_view",
            "repeat": n,
            "deadline": first - GRACE * SEC,
            "raised_at": first + (n - 1) * 2 * MIN + (MIN if n == 3 else 0 * MIN),
            "addressed_to": "operator",
        }
        for n in (1, 2, 3)
    ] + [{"check_id": late.check_id, "kind": "escalation", "addressed_to": "shift_lead"}]
    got = night_ladder.account([fell, sent, late, alone], f1 + f2 + f3 + f4, alarms, T)
    assert (got.needed_person, got.patrol_tasks, got.escalated_to_patrol) == (4, 3, 2)
    assert got.never_patrol == [fell.check_id]
    assert got.late == [late.check_id]
    assert got.lead_not_told == [alone.check_id]  # nobody took it, the lead was never told
    assert got.off_interval == [sent.check_id]  # the third alarm came a minute late
    assert (got.alarms, got.repeats, dict(got.escalations)) == (3, 2, {"shift_lead": 1})
    assert not got.ok
