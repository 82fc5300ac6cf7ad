"""Issue 13, finding 5: the view cap bypassed by reopening after each ``bye timeout``.

The composed service with the real gate (a care plan with a 10 s cap, one agreed window), the
session rows in PostgreSQL and a simulated camera with real media. The service's clock is jumped
to each deadline instead of waited for. Since issue 15 the budget is the check's: a view of the
same check (the real round's, waiting for a view) re-opened continues the budget its earlier
views spent; once it is spent the request is denied ``budget_spent`` (audited), and an extension
taken earlier adds one cap to that check's budget.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from devices import envelope as env
from devices.topics import DeviceKind
from tests.integration.signalling_home import Served, due_check, seed_home, served
from tests.integration.signalling_support import audit_actions
from tools.view import WebSocketChannel

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CAM = "cam-0201"
CAP_S = 10


async def answer_to(channel: WebSocketChannel, sid: str) -> env.Envelope:
    """The next ``granted``/``denied``/``error``/``bye`` of session ``sid``."""
    while True:
        message = await asyncio.wait_for(channel.recv(), 5)
        if message.session_id == sid and not isinstance(message, env.Answer | env.Candidate):
            return message


async def ask(channel: WebSocketChannel, sid: str, check_id: str) -> env.Envelope:
    await channel.send(env.Request(sid, device_id=CAM, purpose=env.Purpose.VIEW, check_id=check_id))
    return await answer_to(channel, sid)


def left_s(s: Served, granted: env.Envelope) -> float:
    assert isinstance(granted, env.Granted), granted
    return granted.deadline - s.clock().timestamp()


async def test_reopening_after_the_cap_is_denied_budget_spent(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    async with served(database_url, mqtt_url, topic_prefix, [(CAM, DeviceKind.CAMERA)]) as s:
        await seed_home(s, "rec-0201", [CAM], view_cap_s=CAP_S)
        check_id = await due_check(s, CAM)
        async with s.channel() as channel:
            first = await ask(channel, "s-reopen-0001", check_id)
            assert CAP_S - 0.5 < left_s(s, first) <= CAP_S
            s.clock.advance(CAP_S)
            assert await answer_to(channel, "s-reopen-0001") == env.Bye(
                "s-reopen-0001", env.ByeReason.TIMEOUT
            )
            second = await ask(channel, "s-reopen-0002", check_id)
            third = await ask(channel, "s-reopen-0003", check_id)
        rows = await s.rt.pool.fetchval(
            "SELECT count(*) FROM signal_sessions WHERE device_id = $1", CAM
        )
        denied = await audit_actions(s.rt.pool, "s-reopen-0002")
    assert second == env.Denied("s-reopen-0002", reason="budget_spent")
    assert third == env.Denied("s-reopen-0003", reason="budget_spent")
    assert rows == 1  # the denied ones opened nothing
    assert denied == [
        (
            "view.denied",
            {"session_id": "s-reopen-0002", "device_id": CAM, "reason": "budget_spent"},
        )
    ]


async def test_a_reopened_view_continues_the_budget_and_extensions_count(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    async with served(database_url, mqtt_url, topic_prefix, [(CAM, DeviceKind.CAMERA)]) as s:
        await seed_home(s, "rec-0202", [CAM], view_cap_s=CAP_S)
        check_id = await due_check(s, CAM)
        async with s.channel() as channel:
            started = time.monotonic()  # the service's clock runs at real speed besides its jumps

            def at_least(expected_s: float, granted: env.Envelope) -> bool:
                """``expected_s`` left on the service's clock, less the real time since the
                first grant (a loaded machine takes seconds over these steps)."""
                left = left_s(s, granted)
                return expected_s - (time.monotonic() - started) - 0.05 < left

            await ask(channel, "s-budget-0001", check_id)
            s.clock.advance(4)
            await channel.send(env.Bye("s-budget-0001", env.ByeReason.OPERATOR))
            await answer_to(channel, "s-budget-0001")
            # about 6 s of the 10 s cap are left for this check
            second = await ask(channel, "s-budget-0002", check_id)
            assert at_least(6.0, second)
            assert left_s(s, second) < 6.1
            await channel.send(env.Request("s-budget-0002", extend=env.ExtendReason.UNCLEAR_IMAGE))
            extended = await answer_to(channel, "s-budget-0002")
            assert at_least(16.0, extended)  # one more cap
            assert left_s(s, extended) < 16.1
            s.clock.advance(6)
            await channel.send(env.Bye("s-budget-0002", env.ByeReason.OPERATOR))
            await answer_to(channel, "s-budget-0002")
            # spent about 10 s of the 20 s (the cap and the extension taken for this check)
            third = await ask(channel, "s-budget-0003", check_id)
            assert at_least(10.0, third)
            assert left_s(s, third) < 10.1
            s.clock.advance(11)
            assert await answer_to(channel, "s-budget-0003") == env.Bye(
                "s-budget-0003", env.ByeReason.TIMEOUT
            )
            fourth = await ask(channel, "s-budget-0004", check_id)
    assert fourth == env.Denied("s-budget-0004", reason="budget_spent")
