"""The round store on real PostgreSQL: idempotent plans, claims, refusals, alarms, duty, morning."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, time, timedelta

import asyncpg
import pytest

from kernel.audit import store as audit_store
from supervision import checks as ch
from supervision import schedule
from supervision.checks import OutcomeKind, State
from supervision.errors import (
    AlreadyOnDuty,
    NotOnDuty,
    TransitionRefused,
    UnknownAlarm,
    UnknownCheck,
)
from supervision.store import RoundStore
from tests.rounds_support import at_local, basis, delivered

pytestmark = pytest.mark.integration

NIGHT = date(2025, 6, 10)
PLAN_AT = at_local(NIGHT, 18)
WS = at_local(NIGHT, 21, 45)  # window start of the 22:00 check
SEC = timedelta(seconds=1)


async def planned(pool: asyncpg.Pool, *bases: object, online: bool = True) -> RoundStore:
    store = RoundStore(pool)
    plan = schedule.plan_night(
        bases or [basis("r1")],
        night=NIGHT,
        at=PLAN_AT,  # type: ignore[arg-type]
        online=lambda d: online,
    )
    await store.save_plan(plan, at=PLAN_AT)
    return store


async def counts(pool: asyncpg.Pool) -> tuple[int, int, int]:
    return (
        await pool.fetchval("SELECT count(*) FROM round_checks"),
        await pool.fetchval("SELECT count(*) FROM round_transitions"),
        await pool.fetchval("SELECT count(*) FROM audit_log"),
    )


async def test_planning_twice_stores_each_check_once(pool: asyncpg.Pool) -> None:
    bases = [basis("r1", times=(time(22, 0), time(2, 0))), basis("r2", camera=False)]
    store = RoundStore(pool)
    plan = schedule.plan_night(bases, night=NIGHT, at=PLAN_AT, online=lambda d: True)
    assert await store.save_plan(plan, at=PLAN_AT) == 3
    before = await counts(pool)
    assert before[:2] == (3, 1)  # r2's check went to the patrol at planning: one transition
    assert await store.save_plan(plan, at=PLAN_AT + SEC) == 0
    assert await counts(pool) == before
    stored = await store.night_checks(NIGHT)
    assert [c.check_id for c in stored] == [
        c.check_id for c in sorted(plan.checks, key=lambda c: c.agreed_at)
    ]
    assert {c.check_id: c for c in stored} == {c.check_id: c for c in plan.checks}
    assert (await store.planned_nights()) == {NIGHT: None}
    async with pool.acquire() as conn:
        assert (await audit_store.verify(conn)).ok


async def test_a_plan_in_parts_is_stored_whole_or_not_at_all(pool: asyncpg.Pool) -> None:
    """The parts' checks go to the database while the next part is planned, in the one
    transaction: a part that fails to plan leaves nothing stored; planned again, all of it."""
    bases = [basis(f"r{i}", camera=i % 2 == 0) for i in range(6)]
    store = RoundStore(pool)

    def parts(fail: bool) -> Iterator[schedule.NightPlan]:
        for i, part in enumerate(
            schedule.plan_parts(bases, night=NIGHT, at=PLAN_AT, online=lambda d: True, size=2)
        ):
            if fail and i == 2:
                raise RuntimeError("planner failed")
            yield part

    with pytest.raises(RuntimeError, match="planner failed"):
        await store.save_plan_parts(NIGHT, parts(True), at=PLAN_AT)
    assert await counts(pool) == (0, 0, 0)
    assert await store.planned_nights() == {}
    plan, inserted = await store.save_plan_parts(NIGHT, parts(False), at=PLAN_AT)
    assert inserted == 6
    assert plan == schedule.plan_night(bases, night=NIGHT, at=PLAN_AT, online=lambda d: True)
    assert {c.check_id: c for c in await store.night_checks(NIGHT)} == {
        c.check_id: c for c in plan.checks
    }
    assert (await counts(pool))[:2] == (6, 3)
    assert await store.save_plan_parts(NIGHT, parts(False), at=PLAN_AT + SEC) == (plan, 0)


async def test_planning_moves_are_stored_and_audited_in_batches(pool: asyncpg.Pool) -> None:
    bases = [basis(f"r{i:03d}", camera=i % 2 == 0) for i in range(100)]
    store = RoundStore(pool)
    plan = schedule.plan_night(bases, night=NIGHT, at=PLAN_AT, online=lambda d: True)
    assert len(plan.transitions) == 50
    assert await store.save_plan(plan, at=PLAN_AT) == 100
    steps = await store.transitions(NIGHT)
    assert {(t.check_id, t.version, t.to_state, t.reason) for t in steps} == {
        (t.check.check_id, 1, State.PATROL, "no_consent") for t in plan.transitions
    }
    rows = await pool.fetch(
        "SELECT data::text AS data FROM audit_log WHERE action = 'round.settled' ORDER BY seq"
    )
    listed = [x for r in rows for x in json.loads(r["data"])["transitions"]]
    assert len(rows) == 2  # 40 per entry
    assert sorted(x[0] for x in listed) == sorted(t.check.check_id for t in plan.transitions)
    assert {tuple(x[1:]) for x in listed} == {(1, "planned", "patrol", "no_consent")}
    async with pool.acquire() as conn:
        assert (await audit_store.verify(conn)).ok


async def test_planning_gives_checks_and_moves_their_brukare_organisation_and_team(
    pool: asyncpg.Pool, owner: asyncpg.Connection
) -> None:
    """The plan goes in set-based (one INSERT from arrays, its brukare joined): each check and
    planning transition carries its brukare's organisation and team, as the per-row triggers
    gave them; a check of a brukare not in the register is left to the triggers (none here)."""
    await owner.execute(
        "INSERT INTO organisations (organisation_id, name, kind)"
        " VALUES ('org-b', 'B', 'municipality');"
        "INSERT INTO units (unit_id, organisation_id, name) VALUES ('unit-b', 'org-b', 'Distrikt');"
        "INSERT INTO teams (team_id, unit_id, organisation_id, name)"
        " VALUES ('team-b', 'unit-b', 'org-b', 'Team B');"
        "INSERT INTO care_recipients (recipient_id, display_name, created_at, created_by, team_id,"
        " organisation_id) VALUES ('r-a', 'A', now(), 'x', 'default', 'default'),"
        " ('r-b', 'B', now(), 'x', 'team-b', 'org-b')"
    )
    bases = [basis("r-a"), basis("r-b", camera=False), basis("r-z", camera=False)]
    store = RoundStore(pool)
    plan = schedule.plan_night(bases, night=NIGHT, at=PLAN_AT, online=lambda d: True)
    assert await store.save_plan(plan, at=PLAN_AT) == 3
    checks = await owner.fetch(
        "SELECT recipient_id, organisation_id, team_id FROM round_checks ORDER BY recipient_id"
    )
    assert [tuple(r) for r in checks] == [
        ("r-a", "default", "default"),
        ("r-b", "org-b", "team-b"),
        ("r-z", None, None),
    ]
    moves = await owner.fetch(
        "SELECT c.recipient_id, t.organisation_id FROM round_transitions t"
        " JOIN round_checks c USING (check_id) ORDER BY c.recipient_id"
    )
    assert [tuple(r) for r in moves] == [("r-b", "org-b"), ("r-z", None)]
    assert await store.save_plan(plan, at=PLAN_AT + SEC) == 0
    async with pool.acquire() as conn:
        assert (await audit_store.verify(conn)).ok


async def test_open_claim_probe_view_document(pool: asyncpg.Pool) -> None:
    store = await planned(pool)
    assert await store.open_due(WS - SEC) == []
    opened = await store.open_due(WS)
    assert [t.after for t in opened] == [State.DUE]
    (claimed,) = await store.claim("w1", WS)
    assert claimed.state is State.PROBING
    assert claimed.holder == "w1"
    assert await store.claim("w2", WS + SEC) == []  # held
    await store.finish(claimed, ch.ProbeDone("still", needs_human=True), at=WS + 10 * SEC)
    await store.start_duty("staff-op1", at=PLAN_AT)
    cid = claimed.check_id
    await store.transition(cid, ch.ViewOpened("staff-op1"), at=WS + 60 * SEC, on_duty=True)
    await delivered(pool, cid, "staff-op1", started_at=WS + 60 * SEC, open_s=25, video_s=24.5)
    done = await store.transition(
        cid,
        ch.Outcome("staff-op1", OutcomeKind.OK),
        at=WS + 90 * SEC,
        note="sov gott",
        on_duty=True,
    )
    assert done.after is State.DOCUMENTED
    rows = await store.transitions(NIGHT)
    assert [(r.from_state, r.to_state, r.event) for r in rows] == [
        (State.PLANNED, State.DUE, "open"),
        (State.DUE, State.PROBING, "claim"),
        (State.PROBING, State.NEEDS_VIEW, "probe_done"),
        (State.NEEDS_VIEW, State.VIEWING, "view_opened"),
        (State.VIEWING, State.DOCUMENTED, "outcome_ok"),
    ]
    assert rows[-1].note == "sov gott"
    assert rows[-1].actor == "staff-op1"
    audit = await pool.fetch(
        "SELECT action, actor, data FROM audit_log WHERE subject=$1 ORDER BY seq", cid
    )
    assert [a["action"] for a in audit] == [
        "check.due",
        "check.probing",
        "check.needs_view",
        "check.viewing",
        "check.documented",
    ]
    assert "sov gott" not in str([dict(a) for a in audit])  # notes stay out of the audit log


async def test_an_expired_claim_is_taken_over_and_the_late_worker_is_refused(
    pool: asyncpg.Pool,
) -> None:
    store = await planned(pool)
    await store.open_due(WS)
    (first,) = await store.claim("w1", WS)
    assert first.deadline is not None
    (second,) = await store.claim("w2", first.deadline)
    assert second.holder == "w2"
    assert second.version == first.version + 1
    with pytest.raises(TransitionRefused) as refused:
        await store.finish(first, ch.ProbeDone("activity", False), at=first.deadline + SEC)
    assert refused.value.code == "claimed"
    await store.finish(second, ch.ProbeDone("activity", False), at=first.deadline + SEC)
    (check,) = await store.night_checks(NIGHT)
    assert check.state is State.NEEDS_VIEW
    assert check.holder is None


async def test_refused_events_and_unknown_checks_change_nothing(pool: asyncpg.Pool) -> None:
    store = await planned(pool)
    (check,) = await store.night_checks(NIGHT)
    before = await counts(pool)
    await store.start_duty("staff-op1", at=PLAN_AT)
    after_duty = await counts(pool)
    with pytest.raises(TransitionRefused) as refused:
        await store.transition(
            check.check_id, ch.Outcome("staff-op1", OutcomeKind.OK), at=WS, on_duty=True
        )
    assert refused.value.http_status == 409
    assert refused.value.code == "not_in_state"
    with pytest.raises(UnknownCheck):
        await store.transition("20250610.2200.nobody", ch.Open(), at=WS)
    with pytest.raises(TransitionRefused):
        await store.transition(check.check_id, ch.Open(), at=WS - SEC)  # too early
    assert await counts(pool) == after_duty
    assert after_duty[2] == before[2] + 1  # only the duty start was audited
    assert await store.get(check.check_id) == check


async def test_an_operator_not_on_duty_changes_nothing(pool: asyncpg.Pool) -> None:
    store = await planned(pool)
    await store.open_due(WS)
    (claimed,) = await store.claim("w1", WS)
    await store.finish(claimed, ch.ProbeSkipped("no_motion_consent"), at=WS)
    before = await counts(pool)
    with pytest.raises(NotOnDuty):
        await store.transition(claimed.check_id, ch.ViewOpened("staff-op2"), at=WS, on_duty=True)
    await store.start_duty("staff-op2", at=WS + SEC)
    with pytest.raises(AlreadyOnDuty):
        await store.start_duty("staff-op2", at=WS + 2 * SEC)
    with pytest.raises(NotOnDuty):  # the duty starts after the instant of the event
        await store.transition(claimed.check_id, ch.ViewOpened("staff-op2"), at=WS, on_duty=True)
    assert await store.end_duty("staff-op2", at=WS + 5 * SEC)
    assert not await store.end_duty("staff-op2", at=WS + 6 * SEC)
    with pytest.raises(NotOnDuty):
        await store.transition(
            claimed.check_id, ch.ViewOpened("staff-op2"), at=WS + 7 * SEC, on_duty=True
        )
    assert (await counts(pool))[:2] == before[:2]
    assert await store.on_duty(WS + 2 * SEC) == ["staff-op2"]


async def test_alarms_are_raised_once_per_missed_deadline_and_acknowledged(
    pool: asyncpg.Pool,
) -> None:
    store = await planned(pool)
    await store.open_due(WS)
    (claimed,) = await store.claim("w1", WS)
    await store.finish(claimed, ch.ProbeDone("empty", True), at=WS + 10 * SEC)
    check = await store.get(claimed.check_id)
    assert check.deadline is not None
    assert await store.watch_deadlines(check.deadline) == ([], [])
    late = check.deadline + timedelta(minutes=1)
    (alarm,), _ = await store.watch_deadlines(late)
    assert alarm.state is State.NEEDS_VIEW
    assert alarm.version == check.version
    assert alarm.repeat == 1
    assert await store.watch_deadlines(late + SEC) == ([], [])  # once per place
    (row,) = await store.alarms(NIGHT, open_only=True)
    assert row["recipient_id"] == "r1"
    assert (row["repeat"], row["kind"], row["addressed_to"]) == (1, "alarm", "operator")
    await store.acknowledge_alarm(check.check_id, check.version, staff_id="staff-op1", at=late)
    assert await store.alarms(NIGHT, open_only=True) == []
    with pytest.raises(UnknownAlarm):
        await store.acknowledge_alarm(check.check_id, check.version, staff_id="staff-op1", at=late)


async def test_morning_reconciliation_closes_every_check(pool: asyncpg.Pool) -> None:
    bases = [basis("r1", times=(time(22, 0), time(2, 0), time(5, 0))), basis("r2", camera=False)]
    store = await planned(pool, *bases)
    await store.open_due(WS)
    (claimed,) = await store.claim("w1", WS)
    await store.finish(claimed, ch.ProbeDone("covered", False), at=WS)  # -> patrol
    await store.transition(claimed.check_id, ch.PatrolAcknowledged("staff-p1"), at=WS + SEC)
    morning = at_local(NIGHT + timedelta(days=1), 13)
    closed = await store.reconcile(NIGHT, at=morning)
    assert len(closed) == 4
    final = {c.check_id: c for c in await store.night_checks(NIGHT)}
    assert all(c.is_finished for c in final.values())
    assert final[claimed.check_id].state is State.ESCALATED
    assert {c.reason for c in final.values() if c.recipient_id == "r2"} == {
        "patrol_not_acknowledged"
    }
    assert (await store.planned_nights())[NIGHT] == morning
    assert await store.reconcile(NIGHT, at=morning + SEC) == []
    async with pool.acquire() as conn:
        assert (await audit_store.verify(conn)).ok
