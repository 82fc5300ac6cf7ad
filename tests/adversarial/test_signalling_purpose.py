"""Issue 13, findings 2 (backend side), 3 and 4, replayed through the real ``/ws/signal``.

The composed service (real gate over real consent records in PostgreSQL, the broker, simulated
devices with real aiortc media): a view of a video phone (the silent look and listen), a call to
a camera, a call without the camera check's basis, and offers that ask for more than the purpose
allows or lack what the devices rely on. Each is refused with a clear reason and nothing reaches
the device.
"""

from __future__ import annotations

import asyncio
import io
from datetime import time as local_time
from datetime import timedelta

import pytest
from aiortc import RTCPeerConnection

from consent import enrol
from consent.model import Cohabitant, Purpose
from devices import envelope as env
from devices.topics import DeviceKind
from homeside.peer import AnswerPolicy, CallState
from tests.integration.signalling_home import ADMIN, Served, due_check, seed_home, served
from tests.integration.signalling_support import audit_actions, wait_for
from tools.view import View, ViewResult, WebSocketChannel, view_command

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CAM, PHONE = "cam-0103", "phone-0103"
MUX_CAM, MUX_PHONE = "cam-0109", "phone-0109"  # unique per test: no two device clients share an id
BOTH = (Purpose.CAMERA_CHECK, Purpose.VIDEO_CALL)


async def offer_sdp(*transceivers: tuple[str, str]) -> str:
    """A real aiortc offer with these (kind, direction) transceivers."""
    pc = RTCPeerConnection()
    try:
        for kind, direction in transceivers:
            pc.addTransceiver(kind, direction=direction)
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


def without_rtcp_mux(sdp: str) -> str:
    lines = [line for line in sdp.split("\r\n") if line and line != "a=rtcp-mux"]
    return "\r\n".join(lines) + "\r\n"


async def request(
    channel: WebSocketChannel,
    sid: str,
    device_id: str,
    purpose: env.Purpose,
    check_id: str | None = None,
) -> env.Envelope:
    """Send a request (a view names the due check it serves); its answer (``granted``,
    ``denied`` or ``error``), skipping the rest."""
    await channel.send(env.Request(sid, device_id=device_id, purpose=purpose, check_id=check_id))
    while True:
        message = await asyncio.wait_for(channel.recv(), 5)
        if isinstance(message, env.Granted | env.Denied | env.Error) and (
            message.session_id == sid
        ):
            return message


async def next_error(channel: WebSocketChannel) -> env.Error:
    while True:
        message = await asyncio.wait_for(channel.recv(), 5)
        if isinstance(message, env.Error):
            return message


async def first_frames(view: View) -> ViewResult:
    """Run ``view`` until its first decoded frame, then hang up. A view that ends without one
    (denied, say ``busy``, or a ``bye``) fails at once and says how it ended; the timeouts are
    bounds for a loaded machine, not waits."""
    task = asyncio.create_task(view.run())
    framed = asyncio.create_task(view.first_frame.wait())
    await asyncio.wait({task, framed}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    framed.cancel()
    assert view.first_frame.is_set(), f"no frame from {view.device_id}: {view.result}"
    await view.hang_up()
    return await asyncio.wait_for(task, 10)


async def open_rows(s: Served) -> int:
    return int(await s.rt.pool.fetchval("SELECT count(*) FROM signal_sessions"))


async def test_finding_3_a_phone_cannot_be_viewed(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    """``homecare view phone-…`` (a receive-only video offer, or one with audio too) is denied
    ``wrong_device_kind`` at the request: no row, no ring, no offer at the phone."""
    async with served(database_url, mqtt_url, topic_prefix, [(PHONE, DeviceKind.VIDEO_PHONE)]) as s:
        await seed_home(s, "rec-0103", [PHONE], purposes=BOTH)
        out = io.StringIO()
        code = await view_command(
            url=str(s.server.make_url("/")), device_id=PHONE, token=s.token, out=out
        )
        async with s.channel() as channel:
            denied = await request(channel, "s-adv-phone-view", PHONE, env.Purpose.VIEW)
        phone = s.peers[PHONE]
        actions = await audit_actions(s.rt.pool, "s-adv-phone-view")
        rows = await open_rows(s)
    assert code == 2
    assert out.getvalue().strip() == "denied: wrong_device_kind"
    assert denied == env.Denied("s-adv-phone-view", reason="wrong_device_kind")
    assert [a for a, _ in actions] == ["view.denied"]
    assert rows == 0
    assert phone.stats.offers == 0
    assert phone.call_state is CallState.IDLE


async def test_finding_3_a_view_offer_that_listens_is_refused(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    """A granted camera view whose offer also receives audio gets ``bad_offer``; the camera
    never sees it, and a proper offer afterwards gets video."""
    async with served(database_url, mqtt_url, topic_prefix, [(CAM, DeviceKind.CAMERA)]) as s:
        await seed_home(s, "rec-0104", [CAM])
        check_id = await due_check(s, CAM)
        camera = s.peers[CAM]
        async with s.channel() as channel:
            granted = await request(channel, "s-adv-listen-01", CAM, env.Purpose.VIEW, check_id)
            assert isinstance(granted, env.Granted)
            listening = await offer_sdp(("video", "recvonly"), ("audio", "recvonly"))
            await channel.send(env.Offer("s-adv-listen-01", sdp=listening))
            error = await next_error(channel)
            sending = await offer_sdp(("video", "sendrecv"))
            await channel.send(env.Offer("s-adv-listen-01", sdp=sending))
            error_send = await next_error(channel)
            await channel.send(env.Bye("s-adv-listen-01", env.ByeReason.OPERATOR))
            offers_seen = camera.stats.offers
            # the same camera still serves a proper view
            result = await first_frames(View(channel, CAM, check_id=check_id))
    assert error.code == "bad_offer"
    assert error.session_id == "s-adv-listen-01"
    assert "media_not_allowed" in error.message
    assert error_send.code == "bad_offer"
    assert "not_receive_only" in error_send.message
    assert offers_seen == 0
    assert result.frames > 0


async def test_finding_4_a_call_to_a_camera_is_denied(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    async with served(database_url, mqtt_url, topic_prefix, [(CAM, DeviceKind.CAMERA)]) as s:
        await seed_home(s, "rec-0105", [CAM], purposes=BOTH)
        async with s.channel() as channel:
            denied = await request(channel, "s-adv-cam-call", CAM, env.Purpose.CALL)
        actions = await audit_actions(s.rt.pool, "s-adv-cam-call")
        offers = s.peers[CAM].stats.offers
    assert denied == env.Denied("s-adv-cam-call", reason="wrong_device_kind")
    assert [a for a, _ in actions] == ["call.denied"]
    assert offers == 0


async def test_finding_4_a_call_needs_the_camera_basis(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    """A call's video needs what a view needs: the camera check consent of the brukare and of
    every cohabitant, and an agreed window; ``video_call`` alone is not enough."""
    phones = [
        ("phone-0106", DeviceKind.VIDEO_PHONE),
        ("phone-0107", DeviceKind.VIDEO_PHONE),
        ("phone-0108", DeviceKind.VIDEO_PHONE),
    ]
    async with served(
        database_url, mqtt_url, topic_prefix, phones, policy=AnswerPolicy.parse("always")
    ) as s:
        # only the video call consent
        await seed_home(s, "rec-0106", ["phone-0106"], purposes=(Purpose.VIDEO_CALL,))
        # both consents, but a cohabitant who has not consented to the camera
        await seed_home(s, "rec-0107", ["phone-0107"], purposes=BOTH)
        await s.rt.consent.add_cohabitant(
            Cohabitant(
                cohabitant_id="coh-0107",
                recipient_id="rec-0107",
                display_name="Sambo",
                moved_in_at=s.clock() - timedelta(days=1),
            ),
            actor=ADMIN,
            at=s.clock(),
        )
        await enrol.grant(
            s.rt.consent,
            "rec-0107",
            (Purpose.VIDEO_CALL,),
            given_at=s.clock() - timedelta(days=1),
            informed_by=ADMIN,
            informed_how="samtal i hemmet",
            actor=ADMIN,
            at=s.clock(),
            cohabitant_id="coh-0107",
            ids={Purpose.VIDEO_CALL: "cons-coh-0107-call"},
        )
        # both consents, outside the agreed window (the check is at 03:00)
        await seed_home(s, "rec-0108", ["phone-0108"], purposes=BOTH, check_at=local_time(3, 0))
        async with s.channel() as channel:
            answers = {
                device_id: await request(
                    channel, f"s-adv-basis-{device_id[-2:]}", device_id, env.Purpose.CALL
                )
                for device_id, _ in phones
            }
        rings = await s.rt.pool.fetchval("SELECT count(*) FROM device_commands WHERE op = 'ring'")
        offers = sum(s.peers[d].stats.offers for d, _ in phones)
        rows = await open_rows(s)
    assert answers == {
        "phone-0106": env.Denied("s-adv-basis-06", reason="no_consent"),
        "phone-0107": env.Denied("s-adv-basis-07", reason="cohabitant_missing"),
        "phone-0108": env.Denied("s-adv-basis-08", reason="outside_window"),
    }
    assert rings == 0
    assert offers == 0
    assert rows == 0


async def test_finding_2_an_offer_without_rtcp_mux_is_refused_and_the_home_keeps_going(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    """An offer that passes the syntax check but lacks ``a=rtcp-mux`` (what crashed the demo's
    devices) gets ``bad_offer`` for a view and for a call, is never relayed, and the same devices
    serve proper sessions afterwards."""
    async with served(
        database_url,
        mqtt_url,
        topic_prefix,
        [(MUX_CAM, DeviceKind.CAMERA), (MUX_PHONE, DeviceKind.VIDEO_PHONE)],
        policy=AnswerPolicy.parse("always"),
    ) as s:
        await seed_home(s, "rec-0109", [MUX_CAM, MUX_PHONE], purposes=BOTH)
        check_id = await due_check(s, MUX_CAM)
        async with s.channel() as channel:
            mux_view = await request(channel, "s-adv-mux-view", MUX_CAM, env.Purpose.VIEW, check_id)
            assert isinstance(mux_view, env.Granted)
            bad_view = without_rtcp_mux(await offer_sdp(("video", "recvonly")))
            await channel.send(env.Offer("s-adv-mux-view", sdp=bad_view))
            view_error = await next_error(channel)
            await channel.send(env.Bye("s-adv-mux-view", env.ByeReason.OPERATOR))
            assert isinstance(
                await request(channel, "s-adv-mux-call", MUX_PHONE, env.Purpose.CALL), env.Granted
            )
            bad_call = without_rtcp_mux(
                await offer_sdp(("video", "sendrecv"), ("audio", "sendrecv"))
            )
            await channel.send(env.Offer("s-adv-mux-call", sdp=bad_call))
            call_error = await next_error(channel)
            await channel.send(env.Bye("s-adv-mux-call", env.ByeReason.OPERATOR))
            await wait_for(
                lambda: s.peers[MUX_PHONE].call_state is CallState.IDLE, what="phone idle"
            )
            offers = (s.peers[MUX_CAM].stats.offers, s.peers[MUX_PHONE].stats.offers)
            view = await first_frames(View(channel, MUX_CAM, check_id=check_id))
            call = await first_frames(View(channel, MUX_PHONE, purpose=env.Purpose.CALL))
    assert view_error.code == "bad_offer"
    assert "no_rtcp_mux" in view_error.message
    assert call_error.code == "bad_offer"
    assert offers == (0, 0)
    assert view.frames > 0
    assert call.frames > 0
