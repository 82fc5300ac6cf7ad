"""The in-home unit's screen (:mod:`homeside.screen`, served for simulated homes by
:mod:`simulators.kiosk`): Svara / Avvisa answer and end a real call; the ring's language and the
caller's name spoken by espeak-ng (a WAV made in memory; text only without espeak-ng)."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from consent.model import Purpose as GatePurpose
from devices import envelope as env
from devices.topics import MAX_CALLER_CHARS, CommandOp, DeviceKind
from homeside.peer import AnswerPolicy, CallState
from homeside.screen import Speech
from simulators.kiosk import kiosk_app
from tests.integration.signalling_support import (
    FakeGate,
    audit_actions,
    client,
    devices,
    node,
    wait_for,
)
from tools.view import View

pytestmark = pytest.mark.integration
PHONE, CAM = "phone-0003", "cam-0003"


CALLER = "Karin Nattsköterska"


async def test_svara_then_lagg_pa_on_the_phone_screen(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The phone shows who calls (the staff member's display name, carried by ``ring``); the
    name appears in no log line."""
    caplog.set_level(logging.DEBUG)
    await pool.execute(
        "INSERT INTO staff (staff_id, username, display_name, role, created_at)"
        " VALUES ('staff-op0001', 'karin', $1, 'operator', now())",
        CALLER,
    )
    gate = FakeGate()
    gate.allow(PHONE, GatePurpose.VIDEO_CALL)
    with capture_logs() as logs:
        await _svara_then_lagg_pa(pool, mqtt_url, topic_prefix, gate)
    assert logs  # the call was logged ...
    assert CALLER not in repr(logs)  # ... without the caller's name
    assert CALLER not in caplog.text


async def _svara_then_lagg_pa(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str, gate: FakeGate
) -> None:
    async with (
        node(pool, mqtt_url, topic_prefix, gate) as n,
        devices(
            mqtt_url,
            topic_prefix,
            pool,
            [(PHONE, DeviceKind.VIDEO_PHONE), (CAM, DeviceKind.CAMERA)],
            policy=AnswerPolicy.parse("manual"),
        ) as devs,
        client(n) as c,
        TestClient(TestServer(kiosk_app({d: v.peer for d, v in devs.items()}))) as screen,
    ):
        page = await screen.get(f"/kiosk/{PHONE}")
        assert page.status == 200
        assert "Svara" in await page.text()
        assert (await screen.get(f"/kiosk/{CAM}")).status == 200  # a camera's: its indicator
        assert (await screen.post(f"/kiosk/{CAM}/answer")).status == 404  # no calls
        assert (await screen.post(f"/kiosk/{PHONE}/answer")).status == 409  # nothing rings
        phone = devs[PHONE].peer
        call = View(c.channel, PHONE, purpose=env.Purpose.CALL)
        task = asyncio.create_task(call.run())
        await wait_for(lambda: phone.call_state is CallState.RINGING, what="ringing")
        state = await (await screen.get(f"/kiosk/{PHONE}/state")).json()
        assert state == {
            "call_state": "ringing",
            "session_id": call.session_id,
            "caller": CALLER,
            "announce_s": None,  # it rings: the brukare answers (no announcement)
            "frames_received": 0,
            "kind": "video_phone",
            "live": None,  # nothing shows the home before the call is answered
            "bind_code": None,  # no binding request is on the screen
            "lang": "sv",  # the brukare's language: a device bound to nobody rings in Swedish
            "speech": Speech.find().is_available,  # espeak-ng speaks the name where installed
        }
        await asyncio.sleep(0.5)
        assert call.result.frames == 0  # nothing flows before the brukare answers
        assert (await screen.post(f"/kiosk/{PHONE}/answer")).status == 200
        await wait_for(lambda: call.result.frames >= 5, what="the phone's video at the caller")
        await wait_for(lambda: phone.stats.frames_received >= 5, what="caller's video at phone")
        state = await (await screen.get(f"/kiosk/{PHONE}/state")).json()
        assert state["call_state"] == "in_call"
        assert state["caller"] == CALLER  # "i samtal med ..."
        assert state["frames_received"] >= 5  # the caller's video, counted at the phone
        assert state["live"] == {  # a plain indicator during a call
            "purpose": "call",
            "session_id": call.session_id,
            "remaining_s": None,
        }
        assert (await screen.post(f"/kiosk/{PHONE}/decline")).status == 200  # Lägg på
        result = await asyncio.wait_for(task, 5)
    assert result.bye == "declined"
    actions = [a for a, _ in await audit_actions(pool, call.session_id)]
    assert actions == ["call.started", "call.answered", "call.ended"]


async def test_avvisa_declines_a_ringing_call(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
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
        TestClient(TestServer(kiosk_app({PHONE: devs[PHONE].peer}))) as screen,
    ):
        call = View(c.channel, PHONE, purpose=env.Purpose.CALL)
        task = asyncio.create_task(call.run())
        await wait_for(lambda: devs[PHONE].peer.call_state is CallState.RINGING, what="ringing")
        # a caller without a staff record or display name: no name, the screen names the team
        ringing = await (await screen.get(f"/kiosk/{PHONE}/state")).json()
        assert ringing["caller"] is None
        assert (await screen.post(f"/kiosk/{PHONE}/decline")).status == 200
        result = await asyncio.wait_for(task, 5)
        state = await (await screen.get(f"/kiosk/{PHONE}/state")).json()
    assert result.bye == "declined"
    assert result.frames == 0
    assert state["call_state"] == "idle"
    assert state["caller"] is None


@pytest.mark.parametrize(
    "bad",
    [
        {"caller": 42},
        {"caller": "x" * (MAX_CALLER_CHARS + 1)},
        {"caller": "   "},
        {"colour": "blue"},
        {"lang": "de"},  # not a language of the screen (the unit test has the others)
    ],
)
async def test_a_bad_ring_is_refused_and_changes_nothing(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str, bad: dict[str, object]
) -> None:
    gate = FakeGate()
    async with (
        node(pool, mqtt_url, topic_prefix, gate) as n,
        devices(
            mqtt_url,
            topic_prefix,
            pool,
            [(PHONE, DeviceKind.VIDEO_PHONE)],
            policy=AnswerPolicy.parse("always"),
        ) as devs,
        TestClient(TestServer(kiosk_app({PHONE: devs[PHONE].peer}))) as screen,
    ):
        args = {"session_id": "s-badring1", "auto_answer": True, **bad}
        ack = await n.signalling.commands.send(PHONE, CommandOp.RING, args, 5.0)
        state = await (await screen.get(f"/kiosk/{PHONE}/state")).json()
    assert (ack.ok, ack.detail) == (False, "bad_args")
    assert (state["call_state"], state["session_id"], state["caller"]) == ("idle", None, None)
    assert state["lang"] is None  # the screen's language is untouched too


FINNISH_CALLER = "Aino Järvinen-Virtanen"


async def test_a_finnish_ring_is_shown_and_spoken_in_finnish(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``ring.lang`` fi: the screen's language is Finnish, and who calls is spoken with the
    Finnish voice as a WAV made in memory (never a file); the name is in no log line. Without
    espeak-ng the screen says it cannot speak and the route answers 503, logged without the
    name."""
    caplog.set_level(logging.DEBUG)
    speech = Speech.find()
    assert speech.is_available, "espeak-ng is a Debian package ./run test installs"
    gate = FakeGate()
    async with (
        node(pool, mqtt_url, topic_prefix, gate) as n,
        devices(
            mqtt_url,
            topic_prefix,
            pool,
            [(PHONE, DeviceKind.VIDEO_PHONE)],
            policy=AnswerPolicy.parse("manual"),
        ) as devs,
        TestClient(TestServer(kiosk_app({PHONE: devs[PHONE].peer}, speech=speech))) as screen,
        TestClient(TestServer(kiosk_app({PHONE: devs[PHONE].peer}, speech=Speech(None)))) as mute,
        TestClient(
            TestServer(kiosk_app({PHONE: devs[PHONE].peer}, speech=Speech("/nonexistent/espeak")))
        ) as broken,
    ):
        assert (await screen.get(f"/kiosk/{PHONE}/spoken")).status == 404  # nothing rings
        args = {"session_id": "s-finnish1", "caller": FINNISH_CALLER, "lang": "fi"}
        ack = await n.signalling.commands.send(PHONE, CommandOp.RING, args, 5.0)
        assert ack.ok
        state = await (await screen.get(f"/kiosk/{PHONE}/state")).json()
        texts = await (await screen.get("/kiosk/texts.json")).json()
        with capture_logs() as logs:
            wav = await screen.get(f"/kiosk/{PHONE}/spoken")
            body = await wav.read()
            silent = await mute.get(f"/kiosk/{PHONE}/spoken")
            silent_body = await silent.json()
            missing = await broken.get(f"/kiosk/{PHONE}/spoken")
        mute_state = await (await mute.get(f"/kiosk/{PHONE}/state")).json()
    assert (state["call_state"], state["lang"], state["speech"]) == ("ringing", "fi", True)
    assert (texts["fi"]["answer"], texts["fi"]["decline"]) == ("Vastaa", "Hylkää")
    assert set(texts["fi"]) == set(texts["sv"]) == set(texts["en"])  # every text in each
    assert wav.status == 200
    assert wav.content_type == "audio/wav"
    assert (body[:4], body[8:12]) == (b"RIFF", b"WAVE")
    assert int.from_bytes(body[4:8], "little") == len(body) - 8  # sizes filled in
    # 22,050 samples of 16 bits a second: the name and "soittaa" take well over half a second
    assert len(body) > 22_050
    assert (silent.status, silent_body) == (
        503,
        {"error": "speech_unavailable", "reason": "not_installed"},
    )
    assert missing.status == 503
    assert mute_state["speech"] is False  # the page shows the name only
    assert "speech_unavailable" in caplog.text
    assert "caller_spoken" in caplog.text
    assert FINNISH_CALLER not in caplog.text
    assert "Aino" not in caplog.text
    assert "Aino" not in repr(logs)
