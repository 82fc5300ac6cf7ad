"""Default deny over signalling, message type by message type, through the composed service.

- Only the roles the role matrix (``kernel.permissions``) gives a live view, a call or a probe
  may open ``/ws/signal``: no login is 401 and a technician, a patrol, a shift lead or an auditor
  403, before any WebSocket exists (the patrol never opens a camera). A case officer
  (administrator) connects for calls but a ``view`` is ``denied`` ``forbidden`` (issue 17).
- ``request``: each purpose only for the roles ``ROLES_FOR`` names (a probe is the system's,
  never staff's) - anything else is ``denied`` with ``forbidden`` and audited, no session.
- Every message that names a session (``offer``, ``candidate``, ``bye``, ``drive``, ``video``,
  and ``request`` to extend) reaches only the caller's own sessions: another operator naming a
  live view's session gets ``unknown_session`` and the view goes on untouched.
- Devices' types (``answer``) and server types (``granted``, ``denied``, ``error``, ``ack``) are
  never accepted from a client.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from devices import envelope as env
from devices.topics import DeviceKind
from kernel.permissions import roles_with
from kernel.roles import Role
from services.signalling.decide import PERMISSION_FOR
from services.signalling.ports import ROLES_FOR
from tests.integration.signalling_home import _staff_token, due_check, seed_home, served
from tests.integration.signalling_support import wait_for
from tools.view import SERVER_TYPES, View

pytestmark = pytest.mark.integration

SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=recvonly\r\n"
)


async def test_every_signalling_message_type_needs_the_right_role(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    async with served(database_url, mqtt_url, topic_prefix, [("cam-0071", DeviceKind.CAMERA)]) as s:
        await seed_home(s, "rec-0071", ["cam-0071"])
        check_id = await due_check(s, "cam-0071")
        tokens = {
            role: await _staff_token(s.rt, f"walk-{role.value}", role)
            for role in (
                Role.ADMINISTRATOR,
                Role.TECHNICIAN,
                Role.PATROL,
                Role.SHIFT_LEAD,
                Role.AUDITOR,
            )
        }
        other_operator = await _staff_token(s.rt, "walk-operator2", Role.OPERATOR)

        # The socket itself: no login, or a role without signalling, never gets a WebSocket.
        async with aiohttp.ClientSession() as http:
            for headers, status in (
                ({}, 401),
                ({"Authorization": f"Bearer {tokens[Role.TECHNICIAN]}"}, 403),
                ({"Authorization": f"Bearer {tokens[Role.PATROL]}"}, 403),  # no camera, ever
                ({"Authorization": f"Bearer {tokens[Role.SHIFT_LEAD]}"}, 403),
                ({"Authorization": f"Bearer {tokens[Role.AUDITOR]}"}, 403),
                ({"Authorization": "Bearer hct_abcdefghij_" + "x" * 43}, 401),
            ):
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(s.ws_url, headers=headers)
                assert refused.value.status == status

        # A live view of the first operator that everything below tries to reach.
        async with s.channel() as live, s.channel(other_operator) as intruder:
            view = View(live, "cam-0071", check_id=check_id)
            task = asyncio.create_task(view.run())
            await wait_for(lambda: view.result.frames >= 3, what="the live view's frames")
            [live_sid] = list(s.rt.signalling.sessions)
            ws = intruder.ws

            async def reply() -> env.Envelope:
                msg = await asyncio.wait_for(ws.receive(), 5)
                assert msg.type is aiohttp.WSMsgType.TEXT, msg
                return env.decode(msg.data, allowed=SERVER_TYPES)

            audit_before = await s.rt.pool.fetchval("SELECT count(*) FROM audit_log")
            foreign = [
                env.Offer(live_sid, sdp=SDP),
                env.Candidate(
                    live_sid, candidate="candidate:1 1 udp 1 127.0.0.1 9 typ host", sdp_mid="0"
                ),
                env.Bye(live_sid, reason=env.ByeReason.OPERATOR),
                env.Drive(live_sid, linear=0.5, angular=0.0),
                env.Video(live_sid, frames=1),
                env.Request(live_sid, extend=env.ExtendReason.UNCLEAR_IMAGE),
            ]
            for message in foreign:
                await ws.send_str(env.encode(message))
                answer = await reply()
                assert isinstance(answer, env.Error), (message.type, answer)
                assert answer.code in {"unknown_session", "duplicate_session"}, answer
            # Types a client may never send, whatever session they name.
            for raw in (
                env.encode(env.Answer(live_sid, sdp=SDP)),
                env.encode(
                    env.Granted(
                        live_sid,
                        device_id="cam-0071",
                        purpose=env.Purpose.VIEW,
                        deadline=0,
                        cap_s=1,
                    )
                ),
                f'{{"type": "ack", "session_id": "{live_sid}", "of": "offer"}}',
                '{"type": "error", "code": "x", "message": "y"}',
            ):
                await ws.send_str(raw)
                answer = await reply()
                assert isinstance(answer, env.Error), answer
                assert answer.code in {"unexpected_type", "unknown_type", "bad_value"}, answer
            assert await s.rt.pool.fetchval("SELECT count(*) FROM audit_log") == audit_before
            assert view.result.bye is None  # the live view went on
            frames = view.result.frames
            await wait_for(lambda: view.result.frames > frames, what="more frames after all that")

            # Purposes by role: a probe is the system's alone.
            assert Role.OPERATOR not in ROLES_FOR[env.Purpose.PROBE]
            await ws.send_str(
                env.encode(
                    env.Request("s-walk-probe", device_id="cam-0071", purpose=env.Purpose.PROBE)
                )
            )
            denied = await reply()
            assert isinstance(denied, env.Denied)
            assert denied.reason == "forbidden"
            await view.hang_up()
            await asyncio.wait_for(task, 10)

        # The socket's roles and each purpose's are the role matrix's.
        for purpose, roles in ROLES_FOR.items():
            assert roles == roles_with(PERMISSION_FOR[purpose]), purpose
            assert Role.TECHNICIAN not in roles, purpose
            assert Role.PATROL not in roles, purpose
        assert Role.ADMINISTRATOR not in ROLES_FOR[env.Purpose.VIEW]


async def test_a_case_officer_opens_no_live_view(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    """Issue 17: an administrator (case officer) may connect (it may call) but a ``view``, even of
    a due check while on duty, is ``denied`` ``forbidden``, audited, and opens no session."""
    async with served(database_url, mqtt_url, topic_prefix, [("cam-0072", DeviceKind.CAMERA)]) as s:
        await seed_home(s, "rec-0072", ["cam-0072"])
        check_id = await due_check(s, "cam-0072")
        admin = await _staff_token(s.rt, "case-officer", Role.ADMINISTRATOR, on_duty_at=s.clock())
        async with s.channel(admin) as officer:
            ws = officer.ws
            await ws.send_str(
                env.encode(
                    env.Request(
                        "s-officer-view",
                        device_id="cam-0072",
                        purpose=env.Purpose.VIEW,
                        check_id=check_id,
                    )
                )
            )
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.type is aiohttp.WSMsgType.TEXT, msg
            denied = env.decode(msg.data, allowed=SERVER_TYPES)
            assert isinstance(denied, env.Denied), denied
            assert denied.reason == "forbidden"
        assert not s.rt.signalling.sessions
        assert (
            await s.rt.pool.fetchval(
                "SELECT count(*) FROM audit_log WHERE action = 'view.denied' AND actor = ("
                " SELECT staff_id FROM staff WHERE username = 'case-officer')"
            )
            >= 1
        )
