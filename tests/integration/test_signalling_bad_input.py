"""Bad input gets a clear ``error`` and changes nothing; everyone else's session goes on."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import aiomqtt
import asyncpg
import pytest

from devices import envelope as env
from devices.topics import DeviceKind
from services.mqtt import client_args
from services.signalling.service import SignallingConfig
from tests.integration.signalling_support import (
    Client,
    FakeGate,
    client,
    devices,
    node,
    wait_for,
)
from tools.view import View

pytestmark = pytest.mark.integration
CAM, OTHER = "cam-0001", "cam-0002"
SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=recvonly\r\n"
)
CAND = "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host"


async def _still_flowing(view: View, task: asyncio.Task[object]) -> None:
    frames = view.result.frames
    await wait_for(lambda: view.result.frames > frames + 3, what="more frames on the live view")
    assert not task.done()
    assert view.result.errors == []


async def test_bad_client_messages_get_errors_and_change_nothing(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    gate = FakeGate()
    gate.allow(CAM)
    gate.allow(OTHER)
    async with (
        node(pool, mqtt_url, topic_prefix, gate) as n,
        devices(
            mqtt_url, topic_prefix, pool, [(CAM, DeviceKind.CAMERA), (OTHER, DeviceKind.CAMERA)]
        ) as devs,
        client(n) as live,
        client(n, "op2-token") as bad,
    ):
        view = View(live.channel, CAM, check_id=n.checks.queue(CAM))
        task = asyncio.create_task(view.run())
        await asyncio.wait_for(view.first_frame.wait(), 10)

        async def error_for(raw: str) -> env.Error:
            await bad.send(raw)
            reply = await bad.recv()
            assert isinstance(reply, env.Error), reply
            return reply

        assert (
            await error_for('{"type":"subscribe","session_id":"s-bad-0001"}')
        ).code == "unknown_type"
        reply = await error_for('{"type":"request","session_id":"s-bad-0001","device_id":"x"}')
        assert (reply.code, reply.session_id) == ("missing_field", "s-bad-0001")
        assert (await error_for("not json")).code == "bad_json"
        assert (
            await error_for('{"type":"answer","session_id":"s-bad-0001","sdp":"v=0"}')
        ).code == "unexpected_type"
        # an offer for a session never granted, then candidates for it
        assert (
            await error_for(env.encode(env.Offer("s-never-01", sdp=SDP)))
        ).code == "unknown_session"
        assert (
            await error_for(env.encode(env.Candidate("s-never-01", CAND, sdp_mid="0")))
        ).code == "unknown_session"
        # somebody else's live session is not reachable from this connection
        assert (
            await error_for(env.encode(env.Bye(view.session_id, env.ByeReason.OPERATOR)))
        ).code == "unknown_session"
        # SDP over 64 KiB on a granted session: refused; the session still works afterwards
        await bad.send(
            env.Request("s-big-sdp1", OTHER, env.Purpose.VIEW, check_id=n.checks.queue(OTHER))
        )
        assert isinstance(await bad.expect(env.Granted), env.Granted)
        huge = {
            "type": "offer",
            "session_id": "s-big-sdp1",
            "sdp": SDP + "a=x-pad:" + "p" * (65 * 1024) + "\r\n",
        }
        reply = await error_for(json.dumps(huge))
        assert (reply.code, reply.session_id) == ("sdp_too_large", "s-big-sdp1")
        assert devs[OTHER].peer.stats.offers == 0
        await bad.send(env.Bye("s-big-sdp1", env.ByeReason.OPERATOR))
        assert await bad.expect(env.Bye) == env.Bye("s-big-sdp1", env.ByeReason.OPERATOR)
        # candidates for the closed session
        reply = await error_for(env.encode(env.Candidate("s-big-sdp1", CAND, sdp_mid="0")))
        assert (reply.code, reply.session_id) == ("session_closed", "s-big-sdp1")
        # drive outside a call
        await bad.send(
            env.Request("s-drive-01", OTHER, env.Purpose.VIEW, check_id=n.checks.queue(OTHER))
        )
        await bad.expect(env.Granted)
        assert (await error_for(env.encode(env.Drive("s-drive-01", 0.5, 0)))).code == "not_in_call"
        await bad.ws.send_bytes(b"\x00\x01")
        assert (await bad.recv()).type is env.MessageType.ERROR
        await _still_flowing(view, task)
        await view.hang_up()
        await asyncio.wait_for(task, 5)


async def test_a_device_cannot_answer_for_another_device(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    gate = FakeGate()
    gate.allow(CAM)
    evil = "cam-0666"
    async with (
        node(pool, mqtt_url, topic_prefix, gate) as n,
        devices(mqtt_url, topic_prefix, pool, [(CAM, DeviceKind.CAMERA)]),
        client(n) as live,
        aiomqtt.Client(**client_args(mqtt_url)) as rogue,
    ):  # type: ignore[arg-type]
        inbox = f"{topic_prefix}/dev/{evil}/webrtc/in"
        outbox = f"{topic_prefix}/dev/{evil}/webrtc/out"
        await rogue.subscribe(inbox, qos=1)
        view = View(live.channel, CAM, check_id=n.checks.queue(CAM))
        task = asyncio.create_task(view.run())
        await asyncio.wait_for(view.first_frame.wait(), 10)

        async def reply_to(payload: bytes) -> env.Error:
            await rogue.publish(outbox, payload, qos=1)
            message = await asyncio.wait_for(anext(aiter(rogue.messages)), 5)
            assert isinstance(message.payload, bytes)
            decoded = env.decode(message.payload)
            assert isinstance(decoded, env.Error)
            return decoded

        hijack = await reply_to(env.encode_bytes(env.Answer(view.session_id, sdp=SDP)))
        assert (hijack.code, hijack.session_id) == ("wrong_device", view.session_id)
        bye = await reply_to(env.encode_bytes(env.Bye(view.session_id, env.ByeReason.DECLINED)))
        assert bye.code == "wrong_device"
        assert (await reply_to(b"{garbage")).code == "bad_json"
        assert (
            await reply_to(env.encode_bytes(env.Answer("s-unknown-1", sdp=SDP)))
        ).code == "unknown_session"
        assert (
            await reply_to(env.encode_bytes(env.Offer("s-unknown-1", sdp=SDP)))
        ).code == "unexpected_type"
        await _still_flowing(view, task)
        assert view.result.bye is None
        await view.hang_up()
        assert (await asyncio.wait_for(task, 5)).bye == "operator"


async def _errors_until_closed(c: Client) -> list[str]:
    codes = []
    while True:
        try:
            message = await c.recv()
        except ConnectionError:
            return codes
        if isinstance(message, env.Error):
            codes.append(message.code)


async def test_a_flooding_client_is_rate_limited_then_disconnected(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    gate = FakeGate()
    gate.allow(CAM)
    gate.allow(OTHER)
    config = SignallingConfig(rate_per_s=10, rate_burst=20, max_violations=30)
    async with (
        node(pool, mqtt_url, topic_prefix, gate, config=config) as n,
        devices(
            mqtt_url, topic_prefix, pool, [(CAM, DeviceKind.CAMERA), (OTHER, DeviceKind.CAMERA)]
        ),
        client(n) as live,
        client(n, "op2-token") as flood,
    ):
        view = View(live.channel, CAM, check_id=n.checks.queue(CAM))
        task = asyncio.create_task(view.run())
        await asyncio.wait_for(view.first_frame.wait(), 10)
        await flood.send(
            env.Request("s-flood-01", OTHER, env.Purpose.VIEW, check_id=n.checks.queue(OTHER))
        )
        assert isinstance(await flood.expect(env.Granted), env.Granted)
        video = env.encode(env.Video("s-flood-01", frames=1))
        for _ in range(200):
            await flood.send(video)
        codes = await _errors_until_closed(flood)
        assert codes == ["rate_limited"]
        assert flood.ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
        # the flooder's own session ended; the device is free again
        await wait_for(
            lambda: n.signalling.sessions.get("s-flood-01") is None, what="flooder's session closed"
        )
        await _still_flowing(view, task)
        await view.hang_up()
        await asyncio.wait_for(task, 5)
    row = await pool.fetchrow(
        "SELECT state, end_reason FROM signal_sessions WHERE session_id = 's-flood-01'"
    )
    assert row is not None
    assert (row["state"], row["end_reason"]) == ("closed", "operator")
