"""Round events across processes over PostgreSQL NOTIFY: another process's steps and alarms reach
this process's bus, its own are not repeated, a rolled-back step sends nothing, bad payloads
change nothing."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from datetime import date, timedelta

import asyncpg
import pytest

from kernel.roles import Role
from supervision import checks as ch
from supervision import relay, schedule
from supervision.checks import Alarm, AlarmKind, State
from supervision.errors import TransitionRefused
from supervision.ports import AlarmRaised, CheckChanged
from supervision.store import RoundStore
from tests.rounds_support import at_local, basis

pytestmark = pytest.mark.integration

NIGHT = date(2025, 6, 10)
WS = at_local(NIGHT, 21, 45)


async def next_event(queue: asyncio.Queue[object], timeout_s: float = 10) -> object:
    async with asyncio.timeout(timeout_s):
        return await queue.get()


async def test_steps_and_alarms_of_another_process_reach_this_ones_bus(
    pool: asyncpg.Pool, database_url: str
) -> None:
    plan = schedule.plan_night(
        [basis("r1")], night=NIGHT, at=at_local(NIGHT, 18), online=lambda d: True
    )
    await RoundStore(pool).save_plan(plan, at=at_local(NIGHT, 18))
    received: asyncio.Queue[object] = asyncio.Queue()
    ready = asyncio.Event()
    listener = asyncio.create_task(
        relay.listen(pool, received.put_nowait, origin="api-1", ready=ready)
    )
    try:
        await asyncio.wait_for(ready.wait(), 10)
        async with asyncpg.create_pool(database_url, min_size=1, max_size=2) as other:
            theirs = RoundStore(other, origin="rounds-1")
            mine = RoundStore(pool, origin="api-1")
            await theirs.open_due(WS)
            event = await next_event(received)
            assert isinstance(event, CheckChanged)
            assert (event.check_id, event.before, event.state) == (
                "20250610.2200.r1",
                State.PLANNED,
                State.DUE,
            )
            assert event.deadline == WS + timedelta(seconds=120)
            assert event.relayed
            assert event.at == WS
            (claimed,) = await mine.claim("w1", WS)  # this process's own step: not repeated
            with pytest.raises(TransitionRefused):  # refused, rolled back: nothing sent
                await theirs.transition(claimed.check_id, ch.Open(), at=WS)
            late = WS + timedelta(minutes=10)
            (alarm,), _ = await theirs.watch_deadlines(late)
            event = await next_event(received)
            assert isinstance(event, AlarmRaised)
            assert event.alarm == alarm
            assert received.empty()
            # a payload another program put on the channel is logged and dropped
            await pool.execute("SELECT pg_notify($1, $2)", relay.CHANNEL, '{"origin": 1}')
            await pool.execute("SELECT pg_notify($1, $2)", relay.CHANNEL, "not json")
            await asyncio.sleep(0.3)
            assert received.empty()
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


def test_the_codec_round_trips_and_refuses_what_it_does_not_know() -> None:
    event = CheckChanged(
        "20250610.2200.r1", "r1", None, State.VIEWING, State.DOCUMENTED, "seen", None, WS, "op"
    )
    assert relay.decode(relay.encode("p1", event)) == (
        "p1",
        dataclasses.replace(event, relayed=True),
    )
    for bad in ("[]", '{"origin": "p", "kind": "nope"}', '{"kind": "check"}', "{"):
        with pytest.raises((ValueError, KeyError, TypeError)):
            relay.decode(bad)


def test_an_alarm_keeps_its_repeat_kind_and_addressee_and_an_older_payload_reads() -> None:
    alarm = Alarm(
        "20250610.2200.r1",
        "r1",
        State.PATROL,
        WS,
        3,
        930.0,
        4,
        AlarmKind.ESCALATION,
        Role.SHIFT_LEAD,
    )
    assert relay.decode(relay.encode("p1", AlarmRaised(alarm, WS))) == (
        "p1",
        AlarmRaised(alarm, WS),
    )
    old = json.loads(relay.encode("p1", AlarmRaised(alarm, WS)))
    for key in ("repeat", "alarm", "to"):  # a process from before the ladder
        del old[key]
    _, event = relay.decode(json.dumps(old))
    assert isinstance(event, AlarmRaised)
    assert (event.alarm.repeat, event.alarm.kind, event.alarm.to) == (
        1,
        AlarmKind.ALARM,
        Role.OPERATOR,
    )
