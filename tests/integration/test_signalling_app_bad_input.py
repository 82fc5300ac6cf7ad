"""Bad signalling input through the composed service: an ``error`` envelope for each, nothing
written, the connection and everyone else's live view go on."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from devices import envelope as env
from devices.topics import DeviceKind
from tests.integration.signalling_home import due_check, seed_home, served
from tests.integration.signalling_support import wait_for
from tools.view import SERVER_TYPES, View

pytestmark = pytest.mark.integration
SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=recvonly\r\n"
)


async def test_bad_messages_get_errors_and_change_nothing(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    cams = [("cam-0051", DeviceKind.CAMERA), ("cam-0052", DeviceKind.CAMERA)]
    async with served(database_url, mqtt_url, topic_prefix, cams) as s:
        await seed_home(s, "rec-0051", ["cam-0051"])
        await seed_home(s, "rec-0052", ["cam-0052"])
        check_id = await due_check(s, "cam-0051")
        other_check = await due_check(s, "cam-0052")
        async with s.channel() as live, s.channel() as bad_channel:
            view = View(live, "cam-0051", check_id=check_id)
            task = asyncio.create_task(view.run())
            await wait_for(lambda: view.result.frames >= 5, what="the live view's frames")
            ws = bad_channel.ws

            async def reply() -> env.Envelope:
                msg = await asyncio.wait_for(ws.receive(), 5)
                assert msg.type is aiohttp.WSMsgType.TEXT, msg
                return env.decode(msg.data, allowed=SERVER_TYPES)

            async def error_for(raw: str) -> tuple[str, str | None]:
                await ws.send_str(raw)
                message = await reply()
                assert isinstance(message, env.Error), message
                assert message.message  # a clear text says what was wrong
                return message.code, message.session_id

            await ws.send_str(
                env.encode(
                    env.Request(
                        "s-bad-app01",
                        device_id="cam-0052",
                        purpose=env.Purpose.VIEW,
                        check_id=other_check,
                    )
                )
            )
            assert isinstance(await reply(), env.Granted)
            audit_before = await s.rt.pool.fetchval("SELECT count(*) FROM audit_log")
            sessions_before = await s.rt.pool.fetch(
                "SELECT session_id, state FROM signal_sessions ORDER BY session_id"
            )
            assert await error_for("{not json") == ("bad_json", None)
            assert (await error_for("[1, 2]"))[0] == "bad_json"
            assert await error_for('{"type":"teleport","session_id":"s-bad-app01"}') == (
                "unknown_type",
                "s-bad-app01",
            )
            assert await error_for(env.encode(env.Offer(view.session_id, sdp=SDP))) == (
                "unknown_session",
                view.session_id,
            )
            bad_sdp = {"type": "offer", "session_id": "s-bad-app01", "sdp": "hello"}
            assert await error_for(json.dumps(bad_sdp)) == ("bad_sdp", "s-bad-app01")
            big = {"type": "offer", "session_id": "s-bad-app01", "sdp": SDP + "a=x:" + "p" * 66_000}
            assert await error_for(json.dumps(big)) == ("sdp_too_large", "s-bad-app01")
            bad_candidate = {"type": "candidate", "session_id": "s-bad-app01", "candidate": "x"}
            assert (await error_for(json.dumps(bad_candidate)))[0] == "bad_candidate"
            assert s.peers["cam-0052"].stats.offers == 0
            assert await s.rt.pool.fetchval("SELECT count(*) FROM audit_log") == audit_before
            assert (
                await s.rt.pool.fetch(
                    "SELECT session_id, state FROM signal_sessions ORDER BY session_id"
                )
                == sessions_before
            )
            # the connection survives: its own session still answers
            await ws.send_str(env.encode(env.Bye("s-bad-app01", env.ByeReason.OPERATOR)))
            assert await reply() == env.Bye("s-bad-app01", env.ByeReason.OPERATOR)
            # a frame over the WebSocket limit closes only that socket (1009)
            await ws.send_str("x" * (env.MAX_MESSAGE_BYTES + 1024))
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.type in {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED}
            assert ws.close_code == 1009
            frames = view.result.frames
            await wait_for(lambda: view.result.frames > frames + 5, what="the view goes on")
            assert not task.done()
            assert view.result.errors == []
            await view.hang_up()
            assert (await asyncio.wait_for(task, 5)).bye == "operator"
