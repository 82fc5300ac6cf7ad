"""Video calls: ring, answer or decline on the unit, two-way media, no answer, auto-answer,
drive."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aiortc import RTCPeerConnection

from consent.model import Purpose as GatePurpose
from devices import envelope as env
from devices.topics import DeviceKind
from homeside.peer import MIN_ANNOUNCE_S, AnswerPolicy, CallState
from services.signalling.service import SignallingConfig
from tests.integration.signalling_support import (
    FakeGate,
    JumpClock,
    audit_actions,
    client,
    devices,
    node,
    wait_for,
)
from tools.view import View

pytestmark = pytest.mark.integration
PHONE = "phone-0003"


async def test_answered_call_has_two_way_media_and_drive_needs_fresh_video(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    gate = FakeGate()
    gate.allow(PHONE, GatePurpose.VIDEO_CALL)
    clock = JumpClock()
    async with (
        node(pool, mqtt_url, topic_prefix, gate, clock=clock) as n,
        devices(
            mqtt_url,
            topic_prefix,
            pool,
            [(PHONE, DeviceKind.VIDEO_PHONE)],
            policy=AnswerPolicy.parse("after:0.3"),
        ) as devs,
        client(n) as c,
    ):
        phone = devs[PHONE].peer
        call = View(c.channel, PHONE, purpose=env.Purpose.CALL, report_video=False)
        task = asyncio.create_task(call.run())
        await wait_for(lambda: phone.call_state is CallState.RINGING, what="ringing")
        await asyncio.wait_for(call.first_frame.wait(), 10)
        await wait_for(lambda: phone.stats.frames_received > 5, what="caller's video at phone")
        # answered, but the caller has not reported any decoded frame yet: stale
        await c.send(env.Drive(call.session_id, linear=0.3, angular=0.0))
        await wait_for(lambda: "video_stale" in call.result.errors, what="stale refusal")
        await c.send(env.Video(call.session_id, frames=call.result.frames))
        await c.send(env.Drive(call.session_id, linear=0.3, angular=-0.2))
        await wait_for(lambda: phone.stats.drives == [(0.3, -0.2)], what="drive at the phone")
        clock.advance(1.2)  # no newer frame count reported for 1.2 s: stale again
        await c.send(env.Drive(call.session_id, linear=0.5, angular=0.0))
        await wait_for(lambda: call.result.errors.count("video_stale") == 2, what="stale again")
        assert phone.stats.drives == [(0.3, -0.2)]
        # two-way media: the phone's video decoded at the caller too (a busy machine is slower)
        await wait_for(lambda: call.result.frames > 5, what="the phone's video at the caller")
        await call.hang_up()
        result = await asyncio.wait_for(task, 5)
        assert result.bye == "operator"
        assert result.frames > 5
        await wait_for(lambda: phone.pc is None, what="phone hung up")
    actions = [a for a, _ in await audit_actions(pool, call.session_id)]
    assert actions == ["call.started", "call.answered", "call.ended"]


async def test_declined_on_the_unit(pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str) -> None:
    gate = FakeGate()
    gate.allow(PHONE, GatePurpose.VIDEO_CALL)
    async with (
        node(pool, mqtt_url, topic_prefix, gate) as n,
        devices(
            mqtt_url,
            topic_prefix,
            pool,
            [(PHONE, DeviceKind.VIDEO_PHONE)],
            policy=AnswerPolicy.parse("manual"),
        ) as devs,
        client(n) as c,
    ):
        phone = devs[PHONE].peer
        call = View(c.channel, PHONE, purpose=env.Purpose.CALL)
        task = asyncio.create_task(call.run())
        await wait_for(lambda: phone.call_state is CallState.RINGING, what="ringing")
        assert await phone.decline()
        result = await asyncio.wait_for(task, 5)
        assert result.bye == "declined"
        assert result.frames == 0
        assert phone.stats.offers == 0  # the caller's offer never reached the unit
    ended = (await audit_actions(pool, call.session_id))[-1]
    assert ended[0] == "call.ended"
    assert ended[1]["reason"] == "declined"


async def test_no_answer_and_auto_answer_only_under_consent(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    gate = FakeGate()
    gate.allow(PHONE, GatePurpose.VIDEO_CALL)
    config = SignallingConfig(ring_timeout_s=30)
    clock = JumpClock()
    async with (
        node(pool, mqtt_url, topic_prefix, gate, config=config, clock=clock) as n,
        devices(
            mqtt_url,
            topic_prefix,
            pool,
            [(PHONE, DeviceKind.VIDEO_PHONE)],
            policy=AnswerPolicy.parse("never"),
        ) as devs,
        client(n) as c,
    ):
        phone = devs[PHONE].peer
        ringing = View(c.channel, PHONE, purpose=env.Purpose.CALL)
        task = asyncio.create_task(ringing.run())
        await wait_for(lambda: phone.call_state is CallState.RINGING, what="ringing")
        clock.advance(28)
        await c.send(env.Drive(ringing.session_id, linear=0.1, angular=0.0))
        await wait_for(lambda: "not_in_call" in ringing.result.errors, what="still ringing")
        assert not task.done()
        clock.advance(2)  # past the ring timeout, on the service's clock
        unanswered = await asyncio.wait_for(task, 5)
        assert unanswered.bye == "no_answer"
        await wait_for(lambda: phone.call_state is CallState.IDLE, what="ringing stopped")
        gate.allow(PHONE, GatePurpose.AUTO_ANSWER)
        # announced for the least announcement (the fake gate names no plan), then answered
        auto = View(c.channel, PHONE, purpose=env.Purpose.CALL, duration_s=MIN_ANNOUNCE_S + 1.5)
        answered = await asyncio.wait_for(auto.run(), 10)
        assert answered.bye == "operator"
        assert answered.frames > 0
        assert phone.stats.announced_s[0] >= MIN_ANNOUNCE_S
    started_data = (await audit_actions(pool, auto.session_id))[0][1]
    assert started_data["auto_answer"] is True


async def test_always_answers_at_once(pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str) -> None:
    gate = FakeGate()
    gate.allow(PHONE, GatePurpose.VIDEO_CALL)
    async with (
        node(pool, mqtt_url, topic_prefix, gate) as n,
        devices(
            mqtt_url,
            topic_prefix,
            pool,
            [(PHONE, DeviceKind.VIDEO_PHONE)],
            policy=AnswerPolicy.parse("always"),
        ) as devs,
        client(n) as c,
    ):
        call = View(c.channel, PHONE, purpose=env.Purpose.CALL, duration_s=1.5)
        result = await asyncio.wait_for(call.run(), 10)
        assert devs[PHONE].peer.stats.frames_received > 0
    assert result.bye == "operator"
    assert result.frames > 0
    started = (await audit_actions(pool, call.session_id))[0][1]
    assert started["auto_answer"] is False  # the unit's own policy, not the consent


async def _video_only_offer() -> str:
    """A real aiortc call offer without audio: the backend lets it through (a call needs video),
    the simulated phone refuses it (``unexpected_offer``: it sends audio and video)."""
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("video", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


async def test_an_offer_the_phone_refuses_ends_the_call_and_the_caller_learns_why(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    """The phone answers, then cannot use the caller's offer: its ``error`` ends the session
    ``device_lost`` at once (not at a deadline), the caller gets the phone's code and a ``bye``,
    the audit names the phone, nobody answers the phone's error, and the next call works."""
    gate = FakeGate()
    gate.allow(PHONE, GatePurpose.VIDEO_CALL)
    async with (
        node(pool, mqtt_url, topic_prefix, gate) as n,
        devices(
            mqtt_url,
            topic_prefix,
            pool,
            [(PHONE, DeviceKind.VIDEO_PHONE)],
            policy=AnswerPolicy.parse("always"),
        ) as devs,
        client(n) as c,
    ):
        phone = devs[PHONE].peer
        sid = "s-refused-call"
        await c.send(env.Request(sid, device_id=PHONE, purpose=env.Purpose.CALL))
        assert isinstance(await c.expect(env.Granted), env.Granted)
        await c.send(env.Offer(sid, sdp=await _video_only_offer()))
        error = await c.expect(env.Error, timeout_s=10)
        bye = await c.expect(env.Bye)
        assert (error.session_id, error.code) == (sid, "unexpected_offer")
        assert bye == env.Bye(sid, env.ByeReason.DEVICE_LOST)
        assert sid not in n.signalling.sessions
        await wait_for(lambda: phone.call_state is CallState.IDLE, what="phone idle")
        # the phone still serves a proper call; by then any answer to its error has arrived
        call = View(c.channel, PHONE, purpose=env.Purpose.CALL, duration_s=1.0)
        result = await asyncio.wait_for(call.run(), 10)
        assert result.frames > 0
        assert phone.stats.refused == ["unexpected_offer"]
        assert phone.stats.errors == []  # its error was not answered: no error ping-pong
        assert phone.stats.byes == 1  # the second call's hang-up only
    actions = await audit_actions(pool, sid)
    assert [a for a, _ in actions] == ["call.started", "call.answered", "call.ended"]
    ended = actions[-1][1]
    assert (ended["reason"], ended["detail"]) == ("device_lost", "unexpected_offer")
    actor = await pool.fetchval(
        "SELECT actor FROM audit_log WHERE action = 'call.ended' AND data->>'session_id' = $1", sid
    )
    assert actor == f"device:{PHONE}"
