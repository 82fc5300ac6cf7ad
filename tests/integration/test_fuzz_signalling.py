"""Hostile signalling input end to end: hypothesis-made envelopes (valid types with hostile
values, malformed SDP and candidates, random JSON and text) sent over ``/ws/signal`` of the
composed service while a live view runs. Every message gets an answer from the protocol (an
``error``, or ``denied``), nothing fails inside the service, the connection stays usable and the
live view goes on."""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from devices import envelope as env
from devices.topics import DeviceKind
from tests.integration.signalling_home import due_check, seed_home, served
from tests.integration.signalling_support import wait_for
from tools.view import SERVER_TYPES, View

pytestmark = pytest.mark.integration

COUNT = 120
SDP_LINES = [
    "v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0", "m=video 9 UDP/TLS/RTP/SAVPF 96",
    "c=IN IP4 0.0.0.0", "a=recvonly", "a=fingerprint:sha-256 00", "m=audio 0 RTP/AVP",
]  # fmt: skip
text = st.text(max_size=40)
sdp = st.lists(st.sampled_from(SDP_LINES) | text, max_size=12).map("\r\n".join)
session_ids = st.sampled_from(["s-fuzz-0001", "s-", "", "S-UPPER", "s-" + "x" * 80]) | text
values = st.none() | st.booleans() | st.integers() | st.floats() | text
messages = (
    st.one_of(
        st.builds(
            lambda t, s, extra: {"type": t, "session_id": s, **extra},
            st.sampled_from([t.value for t in env.MessageType] + ["nonsense"]),
            session_ids,
            st.dictionaries(
                st.sampled_from(
                    [
                        "device_id",
                        "purpose",
                        "extend",
                        "sdp",
                        "candidate",
                        "sdpMid",
                        "sdpMLineIndex",
                        "reason",
                        "linear",
                        "angular",
                        "frames",
                        "x",
                    ]
                ),
                values | sdp,
                max_size=4,
            ),
        ),
        st.builds(
            lambda s, body: {"type": "offer", "session_id": s, "sdp": body}, session_ids, sdp
        ),
        st.builds(
            lambda s, c: {"type": "candidate", "session_id": s, "candidate": c, "sdpMid": "0"},
            session_ids,
            text,
        ),
        st.builds(
            lambda d, p: {
                "type": "request",
                "session_id": "s-fuzz-req1",
                "device_id": d,
                "purpose": p,
            },
            st.sampled_from(["cam-0061", "cam-9999", "CAM", ""]) | text,
            st.sampled_from(["view", "call", "probe", "x"]),
        ),
    ).map(json.dumps)
    | text
    | st.binary(max_size=60).map(lambda b: b.decode("latin-1"))
)

SAMPLES: list[str] = []


@settings(
    max_examples=COUNT,
    phases=[Phase.generate],
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
@given(messages)
def _draw(raw: str) -> None:
    """Hypothesis draws the hostile messages for the async test below, one per example."""
    SAMPLES.append(raw)


async def test_hostile_envelopes_get_protocol_answers_and_nothing_breaks(
    database_url: str, mqtt_url: str, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    SAMPLES.clear()
    _draw()
    assert len(set(SAMPLES)) > COUNT // 2
    caplog.set_level(logging.ERROR)
    cams = [("cam-0061", DeviceKind.CAMERA), ("cam-0062", DeviceKind.CAMERA)]
    async with served(database_url, mqtt_url, topic_prefix, cams) as s:
        await seed_home(s, "rec-0061", ["cam-0061"])
        await seed_home(s, "rec-0062", ["cam-0062"])
        check_id = await due_check(s, "cam-0062")
        with capture_logs() as logs:
            async with s.channel() as live, s.channel() as fuzz:
                view = View(live, "cam-0062", check_id=check_id)
                task = asyncio.create_task(view.run())
                await wait_for(lambda: view.result.frames >= 3, what="the live view's frames")
                ws = fuzz.ws
                kinds: dict[str, int] = {}

                async def drain(timeout_s: float) -> None:
                    while True:
                        try:
                            msg = await asyncio.wait_for(ws.receive(), timeout_s)
                        except TimeoutError:
                            return
                        assert msg.type is aiohttp.WSMsgType.TEXT, msg
                        answer = env.decode(msg.data, allowed=SERVER_TYPES)
                        kinds[answer.type.value] = kinds.get(answer.type.value, 0) + 1
                        if isinstance(answer, env.Granted):  # a valid request got through:
                            bye = env.Bye(answer.session_id, reason=env.ByeReason.OPERATOR)
                            await ws.send_str(env.encode(bye))  # hang it up at once

                for raw in SAMPLES:
                    await ws.send_str(raw)
                    await drain(0.08)  # also keeps under the 20 messages/s limit
                # The connection is still usable: a clean request gets its answer.
                await ws.send_str(
                    env.encode(
                        env.Request("s-fuzz-last", device_id="cam-9999", purpose=env.Purpose.VIEW)
                    )
                )
                msg = await asyncio.wait_for(ws.receive(), 5)
                last = env.decode(msg.data, allowed=SERVER_TYPES)
                assert isinstance(last, env.Denied), last
                assert view.result.bye is None  # the other operator's view went on
                frames = view.result.frames
                await wait_for(lambda: view.result.frames > frames, what="frames after the fuzz")
                await view.hang_up()
                await asyncio.wait_for(task, 10)
        errors = [e for e in logs if e.get("log_level") in {"error", "critical"}]
        assert errors == [], errors[:3]
        assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
        assert kinds.get("error", 0) >= COUNT // 2
        assert kinds.get("denied", 0) >= 1  # some requests were well-formed enough to decide
        assert "rate_limited" not in str(logs)
    print(f"\n{COUNT} hostile envelopes: answers {kinds}")
