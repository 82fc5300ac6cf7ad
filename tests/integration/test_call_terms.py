"""Calls keep to the agreement (issue 15), through ``/ws/signal`` of the composed service: real
consent records and gate, PostgreSQL, Mosquitto and simulated video phones with aiortc media.

- a video phone with auto-answer consent called outside the agreed windows is ``denied
  outside_window`` (and audited so);
- inside a window, the auto-answered call is announced on the unit before any video (the ring
  carries the plan's ``announce_s``; no offer reaches the phone before it answers) and ends by
  itself at the plan's call cap (``bye timeout``), on the service's clock;
- a call the brukare answers by pressing Svara keeps today's rules: not ended at the plan's cap.
"""

from __future__ import annotations

import asyncio
from datetime import time

import pytest

from consent.model import Purpose
from devices import envelope as env
from devices.topics import DeviceKind
from homeside.peer import AnswerPolicy, CallState
from tests.integration.signalling_home import seed_home, served
from tests.integration.signalling_support import audit_actions, wait_for
from tools.view import View

pytestmark = pytest.mark.integration

AUTO, SVARA, LATE = "phone-0151", "phone-0152", "phone-0153"
CALL = (Purpose.VIDEO_CALL, Purpose.CAMERA_CHECK)
CAP_S, ANNOUNCE_S = 60, 4  # the shortest cap a plan may name; an announcement above the least


async def test_auto_answer_keeps_to_the_windows_the_announcement_and_the_call_cap(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    phones = [(d, DeviceKind.VIDEO_PHONE) for d in (AUTO, SVARA, LATE)]
    # "always": the brukare presses Svara at once when it rings (an auto-answer ring is not rung)
    async with served(
        database_url, mqtt_url, topic_prefix, phones, policy=AnswerPolicy.parse("always")
    ) as s:
        auto_answer = (*CALL, Purpose.AUTO_ANSWER)
        await seed_home(
            s, "rec-0151", [AUTO], purposes=auto_answer, call_cap_s=CAP_S, announce_s=ANNOUNCE_S
        )
        await seed_home(s, "rec-0152", [SVARA], purposes=CALL, call_cap_s=CAP_S)
        # the night clock says 22:00; this home's only agreed window is 02:00-04:00
        await seed_home(s, "rec-0153", [LATE], purposes=auto_answer, check_at=time(3, 0))
        phone = s.peers[AUTO]
        async with s.channel() as channel:
            # 1. outside the agreed windows: denied, nothing rings
            late = await asyncio.wait_for(View(channel, LATE, purpose=env.Purpose.CALL).run(), 10)
            assert (late.granted, late.denied) == (False, "outside_window")
            assert s.peers[LATE].call_state is CallState.IDLE

            # 2. inside: announced first, then answered by itself, then ended at the plan's cap
            call = View(channel, AUTO, purpose=env.Purpose.CALL)
            task = asyncio.create_task(call.run())
            await wait_for(lambda: phone.call_state is CallState.ANNOUNCING, what="announced")
            assert phone.announce_s == ANNOUNCE_S
            assert (phone.stats.offers, call.result.frames) == (0, 0)  # no video yet
            await wait_for(lambda: call.result.frames >= 5, what="the phone's video", timeout_s=20)
            assert phone.stats.announced_s[0] >= ANNOUNCE_S
            assert not task.done()
            s.clock.advance(CAP_S - 5)  # not yet
            await wait_for(lambda: call.result.frames >= 10, what="video after 55 s")
            assert not task.done()
            s.clock.advance(5)  # the plan's call cap since the phone answered
            ended = await asyncio.wait_for(task, 5)
            assert ended.bye == "timeout"
            await wait_for(lambda: phone.pc is None, what="the phone hung up")

            # 3. Svara: today's rules, the plan's call cap does not end it
            svara = View(channel, SVARA, purpose=env.Purpose.CALL)
            svara_task = asyncio.create_task(svara.run())
            await wait_for(lambda: svara.result.frames >= 5, what="video of the Svara call")
            # it rang (no announcement) and the brukare answered
            assert (s.peers[SVARA].announce_s, s.peers[SVARA].stats.announced_s) == (None, [])
            s.clock.advance(CAP_S + 5)
            frames = svara.result.frames
            await wait_for(lambda: svara.result.frames >= frames + 5, what="video after the cap")
            assert not svara_task.done()
            await svara.hang_up()
            svara_ended = await asyncio.wait_for(svara_task, 5)
        denied = await s.rt.pool.fetchval(
            "SELECT data->>'reason' FROM audit_log WHERE action = 'call.denied'"
            " AND data->>'device_id' = $1",
            LATE,
        )
        rang = await s.rt.pool.fetchval(
            "SELECT count(*) FROM device_commands WHERE device_id = $1 AND op = 'ring'", LATE
        )
        actions = await audit_actions(s.rt.pool, call.session_id)
    assert (denied, rang) == ("outside_window", 0)
    assert [a for a, _ in actions] == ["call.started", "call.answered", "call.ended"]
    assert actions[2][1]["reason"] == "timeout"
    assert (actions[0][1]["call_cap_s"], actions[0][1]["announce_s"]) == (CAP_S, ANNOUNCE_S)
    duration_s = float(str(actions[2][1]["duration_s"]))
    assert CAP_S + ANNOUNCE_S <= duration_s < CAP_S + ANNOUNCE_S + 20, actions[2][1]
    assert svara_ended.bye == "operator"
