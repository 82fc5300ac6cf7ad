"""Every look is owed to a check (issue 15), through ``/ws/signal`` on the real PostgreSQL: the
round's real store holds a check waiting for a view, signalling reads it through
:class:`supervision.looks.CheckLooks`, and the session rows give the check's budget."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta

import asyncpg
import pytest

from consent.rules import night_of
from devices import envelope as env
from devices.topics import DeviceKind
from supervision import checks as ch
from supervision.looks import CheckLooks
from supervision.ports import CheckChanged
from supervision.schedule import NightPlan
from supervision.store import RoundStore
from tests.integration.signalling_support import (
    FakeGate,
    JumpClock,
    audit_actions,
    client,
    devices,
    node,
)
from tests.rounds_support import seed_recipients, seed_staff
from tools.view import View

pytestmark = pytest.mark.integration
CAM = "cam-0001"
OPERATOR, OTHER = "staff-op0001", "staff-op0002"


async def queued_check(store: RoundStore, at: datetime, *, cap_s: int = 10) -> str:
    """A check of CAM waiting for a human view (no motion consent), as the round leaves it."""
    night = night_of(at, UTC)
    check_id = f"{night:%Y%m%d}.2200.rec-0001"
    check = ch.planned(
        check_id=check_id,
        recipient_id="rec-0001",
        device_id=CAM,
        night=night,
        agreed=time(22, 0),
        agreed_at=at,
        window_start=at - timedelta(minutes=30),
        window_end=at + timedelta(minutes=30),
        policy=ch.Policy(view_cap_s=cap_s),
        at=at,
    )
    await store.save_plan(NightPlan(night, (check,)), at=at)
    steps = [ch.Open(), ch.Claim("test-worker"), ch.ProbeSkipped("no_motion_consent")]
    done, refused = await store.apply_many([(check_id, step) for step in steps], at=at)
    assert not refused
    assert done[-1].check.state is ch.State.NEEDS_VIEW
    return check_id


async def test_a_check_s_views_share_its_budget_and_nothing_else_is_a_view(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    gate = FakeGate()
    gate.allow(CAM, cap_s=30)  # the plan's cap now; the check's own (10 s) is lower and wins
    clock = JumpClock()
    store = RoundStore(pool)
    await seed_recipients(pool, ["rec-0001"])
    await seed_staff(pool, [(OPERATOR, "operator"), (OTHER, "operator")])
    events: list[object] = []
    check_id = await queued_check(store, clock())
    for staff_id in (OPERATOR, OTHER):
        await store.start_duty(staff_id, at=clock() - timedelta(minutes=1))
    looks = CheckLooks(store, publish=events.append)
    async with (
        node(pool, mqtt_url, topic_prefix, gate, clock=clock, checks=looks) as n,  # type: ignore[arg-type]
        devices(mqtt_url, topic_prefix, pool, [(CAM, DeviceKind.CAMERA)]),
        client(n) as c,
        client(n, "op2-token") as other,
    ):
        await c.send(env.Request("s-look-none", CAM, env.Purpose.VIEW))
        assert await c.recv() == env.Denied("s-look-none", reason="no_due_check")

        view = View(c.channel, CAM, check_id=check_id)
        task = asyncio.create_task(view.run())
        await asyncio.wait_for(view.first_frame.wait(), 10)
        assert (await store.get(check_id)).state is ch.State.VIEWING
        assert (await store.get(check_id)).holder == OPERATOR
        clock.advance(4)
        await view.hang_up()
        first = await asyncio.wait_for(task, 5)
        assert (first.granted, first.bye) == (True, "operator")

        await other.send(env.Request("s-look-taken", CAM, env.Purpose.VIEW, check_id=check_id))
        assert await other.recv() == env.Denied("s-look-taken", reason="no_due_check")

        await c.send(env.Request("s-look-again", CAM, env.Purpose.VIEW, check_id=check_id))
        again = await c.expect(env.Granted)
        assert isinstance(again, env.Granted)
        assert again.cap_s == 10
        assert again.budget_s is not None
        assert 0 < again.budget_s <= 6  # what the first view left, not a new cap
        clock.advance(again.budget_s)
        assert await c.expect(env.Bye) == env.Bye("s-look-again", env.ByeReason.TIMEOUT)

        await c.send(env.Request("s-look-spent", CAM, env.Purpose.VIEW, check_id=check_id))
        assert await c.recv() == env.Denied("s-look-spent", reason="budget_spent")

    rows = await pool.fetch(
        "SELECT session_id, check_id, look FROM signal_sessions WHERE device_id = $1"
        " ORDER BY started_at",
        CAM,
    )
    assert [(r["session_id"], r["check_id"], r["look"]) for r in rows] == [
        (view.session_id, check_id, "check"),
        ("s-look-again", check_id, "check"),
    ]
    moved = [e for e in events if isinstance(e, CheckChanged)]
    assert [(e.before, e.state, e.actor) for e in moved] == [
        (ch.State.NEEDS_VIEW, ch.State.VIEWING, OPERATOR)  # once: the re-open moved nothing
    ]
    started = (await audit_actions(pool, "s-look-again"))[0]
    assert started[0] == "view.started"
    assert started[1]["check_id"] == check_id
    assert [a for a, _ in await audit_actions(pool, "s-look-spent")] == ["view.denied"]


async def test_an_extra_look_names_why_is_capped_and_audited_as_its_own_kind(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    gate = FakeGate()
    gate.allow(CAM, cap_s=12)
    clock = JumpClock()
    store = RoundStore(pool)
    await seed_recipients(pool, ["rec-0001"])
    await seed_staff(pool, [(OPERATOR, "operator"), (OTHER, "operator")])
    await store.start_duty(OPERATOR, at=clock() - timedelta(minutes=1))
    note = "larmet gick 03:12, ingen svarar i telefon"
    async with (
        node(
            pool,
            mqtt_url,
            topic_prefix,
            gate,
            clock=clock,
            checks=CheckLooks(store),  # type: ignore[arg-type]
        ) as n,
        devices(mqtt_url, topic_prefix, pool, [(CAM, DeviceKind.CAMERA)]),
        client(n) as c,
        client(n, "op2-token") as off_duty,
    ):
        ask = env.Request(
            "s-extra-off", CAM, env.Purpose.VIEW, reason=env.LookReason.ALARM, note=note
        )
        await off_duty.send(ask)
        assert await off_duty.recv() == env.Denied("s-extra-off", reason="not_on_duty")
        await c.send(
            env.Request(
                "s-extra-001", CAM, env.Purpose.VIEW, reason=env.LookReason.ALARM, note=note
            )
        )
        granted = await c.expect(env.Granted)
        assert isinstance(granted, env.Granted)
        assert (granted.cap_s, granted.budget_s) == (12, 12)
        await c.send(env.Request("s-extra-001", extend=env.ExtendReason.POSSIBLE_DISTRESS))
        refused = await c.expect(env.Error)
        assert isinstance(refused, env.Error)
        assert refused.code == "not_extendable"
        clock.advance(12)
        assert await c.expect(env.Bye) == env.Bye("s-extra-001", env.ByeReason.TIMEOUT)
    row = await pool.fetchrow(
        "SELECT staff_id, started_at, ended_at, check_id, look, look_reason, look_note"
        " FROM signal_sessions WHERE session_id = 's-extra-001'"
    )
    assert row is not None
    assert (row["staff_id"], row["check_id"], row["look"], row["look_reason"]) == (
        OPERATOR,
        None,
        "extra",
        "alarm",
    )
    assert row["look_note"] == note
    assert 12 <= (row["ended_at"] - row["started_at"]).total_seconds() < 14
    actions = await audit_actions(pool, "s-extra-001")
    assert [a for a, _ in actions] == ["view.extra", "view.ended"]
    assert (actions[0][1]["reason"], actions[0][1]["has_note"]) == ("alarm", True)
    assert note not in repr(actions)  # the permanent log holds no free text
