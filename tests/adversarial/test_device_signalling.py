"""Issue 13, finding 1: nothing the backend sends on ``webrtc/in`` can end a simulated device.

Real simulated homes (``simulators.homes.run_devices`` with real media) on the real broker; the
test speaks for the backend with a plain MQTT client. Each bad message gets an ``error`` envelope
back on the device's ``webrtc/out`` naming its session, only that session is closed, and the same
devices still answer a good offer (and a good call) afterwards while ``run_devices`` keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import pytest
from aiortc import RTCPeerConnection

from devices import envelope as env
from devices import topics
from homeside.device import client_args
from homeside.peer import CallState, DevicePeer
from simulators import homes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CAM, PHONE = "cam-0003", "phone-0003"  # home 3 has both


def sid() -> str:
    return f"s-{uuid.uuid4().hex[:16]}"


async def offer_sdp(*kinds: str) -> str:
    """A real aiortc offer receiving ``kinds`` (what ``homecare view`` or the console sends)."""
    pc = RTCPeerConnection()
    try:
        for kind in kinds:
            pc.addTransceiver(kind, direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


def without_rtcp_mux(sdp: str) -> str:
    lines = [line for line in sdp.split("\r\n") if line and line != "a=rtcp-mux"]
    return "\r\n".join(lines) + "\r\n"


@dataclass
class Home:
    """The backend's side of the wire, played by the test."""

    client: aiomqtt.Client
    prefix: str
    peers: dict[str, DevicePeer]
    run: asyncio.Task[Any]
    out: dict[str, asyncio.Queue[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(asyncio.Queue)
    )
    events: dict[str, asyncio.Queue[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(asyncio.Queue)
    )

    async def send(self, device_id: str, message: dict[str, Any] | bytes) -> None:
        payload = message if isinstance(message, bytes) else json.dumps(message).encode()
        name = topics.topic(self.prefix, device_id, topics.Channel.WEBRTC_IN)
        await self.client.publish(name, payload, qos=1)

    async def reply(self, device_id: str, timeout_s: float = 15) -> dict[str, Any]:
        return await asyncio.wait_for(self.out[device_id].get(), timeout_s)

    async def silence(self, device_id: str, seconds: float = 0.5) -> None:
        with contextlib.suppress(TimeoutError):
            got = await asyncio.wait_for(self.out[device_id].get(), seconds)
            raise AssertionError(f"expected no reply, got {got}")

    async def ring(self, session_id: str, *, auto_answer: bool) -> None:
        ring = topics.Ring(session_id, auto_answer=auto_answer)
        name = topics.topic(self.prefix, PHONE, topics.Channel.CMD)
        await self.client.publish(name, ring.command(f"c-{session_id}").encode(), qos=1)
        if auto_answer:
            event = await asyncio.wait_for(self.events[PHONE].get(), 10)
            assert (event["type"], event["session_id"]) == ("call_answer", session_id)
        else:
            await wait_until(lambda: self.peers[PHONE].call_state is CallState.RINGING)

    async def good_offer(self, device_id: str) -> str:
        """Send a good offer and check the device answers it; returns the session id."""
        session_id = sid()
        kinds: tuple[str, ...] = ("video",)
        if device_id == PHONE:
            await self.ring(session_id, auto_answer=True)
            kinds = ("video", "audio")  # the console's call without camera and microphone
        await self.send(device_id, env.as_json(env.Offer(session_id, await offer_sdp(*kinds))))
        answer = await self.reply(device_id)
        assert (answer["type"], answer["session_id"]) == ("answer", session_id)
        return session_id

    def alive(self) -> None:
        assert not self.run.done(), "run_devices ended"


async def wait_until(check: Callable[[], bool], timeout_s: float = 10) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def home(mqtt_url: str, prefix: str) -> AsyncIterator[Home]:
    peers: dict[str, DevicePeer] = {}
    stop = asyncio.Event()
    async with aiomqtt.Client(**client_args(mqtt_url)) as client:
        await client.subscribe(f"{prefix}/dev/+/webrtc/out", qos=1)
        await client.subscribe(f"{prefix}/dev/+/event", qos=1)
        run = asyncio.create_task(
            homes.run_devices(
                homes.home_devices(1, first=3),
                mqtt_url=mqtt_url,
                prefix=prefix,
                keepalive_s=5,
                stop=stop,
                decorate=homes.media(peers=peers),
            )
        )
        h = Home(client, prefix, peers, run)

        async def read() -> None:
            async for m in client.messages:
                parsed = topics.parse_topic(prefix, str(m.topic))
                payload = m.payload if isinstance(m.payload, bytes) else b""
                queues = h.out if parsed.channel is topics.Channel.WEBRTC_OUT else h.events
                queues[parsed.device_id].put_nowait(json.loads(payload))

        reader = asyncio.create_task(read())
        try:
            await wait_until(lambda: len(peers) == 2)
            for peer in peers.values():
                await asyncio.wait_for(peer.device.connected.wait(), 10)
            yield h
        finally:
            stop.set()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(run), 15)
            if not run.done():
                run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
            for peer in peers.values():
                await peer.close()


Build = Callable[[Home, str], Awaitable[dict[str, Any] | bytes]]


async def _no_rtcp_mux(h: Home, session_id: str) -> dict[str, Any]:
    sdp = without_rtcp_mux(await offer_sdp("video"))
    assert env.check_sdp(sdp) == sdp  # the backend lets it through
    return env.as_json(env.Offer(session_id, sdp))


async def _sdp_aiortc_refuses(h: Home, session_id: str) -> dict[str, Any]:
    sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
    assert env.check_sdp(sdp) == sdp
    return env.as_json(env.Offer(session_id, sdp))


async def _garbage_sdp(h: Home, session_id: str) -> dict[str, Any]:
    return {"type": "offer", "session_id": session_id, "sdp": "garbage, not SDP"}


async def _audio_only_to_camera(h: Home, session_id: str) -> dict[str, Any]:
    return env.as_json(env.Offer(session_id, await offer_sdp("audio")))


async def _candidate_before_offer(h: Home, session_id: str) -> dict[str, Any]:
    line = "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host"
    return env.as_json(env.Candidate(session_id, line, sdp_mid="0", sdp_mline_index=0))


async def _bye_for_unknown_session(h: Home, session_id: str) -> dict[str, Any]:
    return env.as_json(env.Bye(session_id, env.ByeReason.OPERATOR))


async def _answer_sent_to_a_device(h: Home, session_id: str) -> dict[str, Any]:
    return env.as_json(env.Answer(session_id, await offer_sdp("video")))


async def _not_json(h: Home, session_id: str) -> bytes:
    return b"\xff not json"


async def _deeply_nested(h: Home, session_id: str) -> bytes:
    return b"[" * 60_000 + b"]" * 60_000


async def _view_of_a_phone(h: Home, session_id: str) -> dict[str, Any]:
    """``homecare view phone-0003``: video only, receive-only, in an answered call."""
    await h.ring(session_id, auto_answer=True)
    return env.as_json(env.Offer(session_id, await offer_sdp("video")))


async def _call_offer_without_a_ring(h: Home, session_id: str) -> dict[str, Any]:
    return env.as_json(env.Offer(session_id, await offer_sdp("video", "audio")))


async def _call_offer_while_ringing(h: Home, session_id: str) -> dict[str, Any]:
    await h.ring(session_id, auto_answer=False)
    return env.as_json(env.Offer(session_id, await offer_sdp("video", "audio")))


@pytest.mark.parametrize(
    ("device_id", "build", "code", "names_session"),
    [
        pytest.param(CAM, _no_rtcp_mux, "bad_offer", True, id="offer-without-rtcp-mux"),
        pytest.param(CAM, _sdp_aiortc_refuses, "bad_offer", True, id="sdp-without-ice"),
        pytest.param(CAM, _garbage_sdp, "bad_sdp", True, id="garbage-sdp"),
        pytest.param(CAM, _audio_only_to_camera, "unexpected_offer", True, id="audio-to-camera"),
        pytest.param(CAM, _candidate_before_offer, "no_offer", True, id="candidate-before-offer"),
        pytest.param(CAM, _bye_for_unknown_session, "unknown_session", True, id="unknown-bye"),
        pytest.param(CAM, _answer_sent_to_a_device, "unexpected_type", True, id="answer-to-dev"),
        pytest.param(CAM, _not_json, "bad_encoding", False, id="not-json"),
        pytest.param(CAM, _deeply_nested, "bad_json", False, id="deeply-nested-json"),
        pytest.param(PHONE, _view_of_a_phone, "unexpected_offer", True, id="view-of-a-phone"),
        pytest.param(PHONE, _call_offer_without_a_ring, "unknown_session", True, id="no-ring"),
        pytest.param(PHONE, _call_offer_while_ringing, "not_answered", True, id="still-ringing"),
    ],
)
async def test_a_bad_message_gets_an_error_and_the_devices_keep_answering(
    mqtt_url: str, topic_prefix: str, device_id: str, build: Build, code: str, names_session: bool
) -> None:
    async with home(mqtt_url, topic_prefix) as h:
        session_id = sid()
        await h.send(device_id, await build(h, session_id))
        error = await h.reply(device_id)
        assert error["type"] == "error"
        assert error["code"] == code
        assert error["session_id"] == (session_id if names_session else None)
        peer = h.peers[device_id]
        assert peer.stats.refused == [code]
        assert peer.pc is None
        assert peer.call_state is CallState.IDLE  # a refused call is over on the phone too
        h.alive()
        # the same devices still serve: a good offer to each is answered
        await h.good_offer(CAM)
        await h.good_offer(PHONE)
        h.alive()


async def test_a_bad_offer_for_a_new_session_leaves_the_live_one_running(
    mqtt_url: str, topic_prefix: str
) -> None:
    async with home(mqtt_url, topic_prefix) as h:
        live = await h.good_offer(CAM)
        peer = h.peers[CAM]
        pc = peer.pc
        assert pc is not None
        other = sid()
        await h.send(CAM, await _no_rtcp_mux(h, other))
        error = await h.reply(CAM)
        assert (error["type"], error["code"], error["session_id"]) == ("error", "bad_offer", other)
        assert (peer.session_id, peer.pc) == (live, pc)
        assert pc.connectionState != "closed"
        # the live session ends normally: the device reports it (``stats``, its own message on
        # webrtc/out), and only it: the refused offer was never a session of the device's
        await h.send(CAM, env.as_json(env.Bye(live, env.ByeReason.OPERATOR)))
        stats = await h.reply(CAM)
        assert (stats["type"], stats["session_id"]) == ("stats", live)
        assert peer.pc is None
        assert [s.session_id for s in peer.stats.reported] == [live]
        # a repeated bye for it is expected: neither refused nor reported again
        await h.send(CAM, env.as_json(env.Bye(live, env.ByeReason.OPERATOR)))
        await h.silence(CAM)
        h.alive()


async def test_a_bad_candidate_closes_only_its_session(mqtt_url: str, topic_prefix: str) -> None:
    async with home(mqtt_url, topic_prefix) as h:
        live = await h.good_offer(CAM)
        call = await h.good_offer(PHONE)
        line = "candidate:1 1 udp not-a-number 127.0.0.1 40000 typ host"
        assert env.decode_object(env.as_json(env.Candidate(live, line, sdp_mid="0")))
        await h.send(CAM, env.as_json(env.Candidate(live, line, sdp_mid="0")))
        # the device refuses it and ends the session: an ``error`` and the session's ``stats``
        sent = {m["type"]: m for m in [await h.reply(CAM), await h.reply(CAM)]}
        assert set(sent) == {"error", "stats"}
        assert (sent["error"]["code"], sent["error"]["session_id"]) == ("bad_candidate", live)
        assert sent["stats"]["session_id"] == live
        assert h.peers[CAM].pc is None
        assert h.peers[PHONE].session_id == call  # the other device's call is untouched
        # a candidate trickled after its session ended is dropped quietly
        ok = "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host"
        await h.send(CAM, env.as_json(env.Candidate(live, ok, sdp_mid="0")))
        await h.silence(CAM)
        await h.good_offer(CAM)
        h.alive()


async def test_an_error_from_the_backend_is_counted_never_answered(
    mqtt_url: str, topic_prefix: str
) -> None:
    async with home(mqtt_url, topic_prefix) as h:
        await h.send(CAM, env.as_json(env.Error("session_closed", "the session has ended", sid())))
        await h.send(CAM, {"type": "error", "code": "Not A Code", "message": 1})
        await h.silence(CAM)
        # refused for its first bad value in the order sent: the code (the message is a number)
        assert h.peers[CAM].stats.errors == ["session_closed", "bad_value"]
        assert h.peers[CAM].stats.refused == []
        await h.good_offer(CAM)
        h.alive()
