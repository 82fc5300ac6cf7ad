"""The device agent with a file source against the composed service (issue 19): it comes online
in the registry with its meta and measured video health, is bound in two steps (a technician
asks, the agent's bind button is pressed, an administrator confirms with the brukare's details),
its due check is probed at home (the ``probe`` command over MQTT, a verdict back, no video offer
to the agent), a view of the check is decoded by an aiortc receiver showing the clip's picture,
and the same brukare's agent video phone (the same clip, a real audio track from its microphone
hook) is called: its video and its sound decoded by the caller."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from av import AudioFrame, VideoFrame

from agent.app import Agent, AgentConfig
from agent.audio import Microphone, MicSpec
from agent.sources import parse_source
from consent import enrol
from consent.model import CarePlan, CareRecipient, CheckTime, Purpose
from devices import envelope as env
from devices.topics import DeviceKind
from homeside.peer import AudioSource, CallState
from kernel.roles import Role
from kernel.timing import DEFAULT_TIMING
from tests.integration.signalling_home import (
    ADMIN,
    ADMIN2,
    Served,
    _staff_token,
    due_check,
    served,
)
from tests.integration.signalling_support import wait_for
from tools.view import View

pytestmark = pytest.mark.integration

VIDEO = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "video"
CLIP = VIDEO / "gmdcsa24_S3_ADL_20.mp4"
CAM = "cam-agent-1"
PHONE = "phone-agent-1"
RID = "r-agent1"
#: A microphone that is no device: PyAV's lavfi sine (1 kHz: neither the simulators' 440 Hz tone
#: nor the caller's 660 Hz), through the same hook as ALSA or PulseAudio.
SINE_HZ = 1000.0
SINE = MicSpec("lavfi", f"sine=frequency={SINE_HZ:g}:sample_rate=48000")
needs_clip = pytest.mark.skipif(not CLIP.is_file(), reason="../shared/data/video is not here")


@asynccontextmanager
async def running(
    mqtt_url: str,
    prefix: str,
    source: str,
    device_id: str = CAM,
    *,
    kind: DeviceKind = DeviceKind.CAMERA,
    microphone: AudioSource | None = None,
) -> AsyncIterator[Agent]:
    """The agent as ``homecare agent`` runs it, in this process."""
    agent = Agent(
        AgentConfig(
            device_id=device_id,
            kind=kind,
            source=parse_source(source),
            mqtt_url=mqtt_url,
            prefix=prefix,
            width=320,
            height=240,
            fps=10.0,
            keepalive_s=5,
        ),
        microphone=microphone,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        yield agent
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def health(s: Served, device_id: str) -> dict[str, Any]:
    raw = await s.rt.pool.fetchval("SELECT health FROM devices WHERE device_id = $1", device_id)
    return {} if raw is None else dict(json.loads(raw))


async def online(s: Served, device_id: str) -> bool:
    row = await s.rt.pool.fetchrow(
        "SELECT presence, kind FROM devices WHERE device_id = $1", device_id
    )
    return row is not None and row["presence"] == "online" and row["kind"] is not None


@needs_clip
async def test_a_file_agent_is_bound_in_two_steps_probed_at_home_viewed_and_called(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    fast = dataclasses.replace(DEFAULT_TIMING, probe_window_s=3.0)
    async with (
        served(database_url, mqtt_url, topic_prefix, [], timing=fast) as s,
        running(mqtt_url, topic_prefix, f"file:{CLIP}") as agent,
        running(
            mqtt_url,
            topic_prefix,
            f"file:{CLIP}",
            PHONE,
            kind=DeviceKind.VIDEO_PHONE,
            microphone=Microphone(SINE),
        ) as phone,
    ):
        await wait_for(lambda: online(s, CAM), what="the agent online", timeout_s=15)
        caps = await s.rt.pool.fetchval("SELECT caps FROM devices WHERE device_id = $1", CAM)
        assert "home_probe" in caps  # a camera with a real source runs the check at home
        row = await s.rt.pool.fetchrow(
            "SELECT quarantined, firmware, video FROM devices WHERE device_id = $1", CAM
        )
        assert row["quarantined"] is True
        video_spec = json.loads(row["video"])
        assert (row["firmware"], video_spec) == ("agent-1.0", {"w": 320, "h": 240, "fps": 10.0})

        async def video_ok() -> bool:
            return (await health(s, CAM)).get("video", {}).get("state") == "ok"

        await wait_for(video_ok, what="health.video ok", timeout_s=10)
        video = (await health(s, CAM))["video"]
        assert 5 < video["fps"] < 40  # measured as the first pictures arrive (the clip: 15 fps)
        assert 100 < video["luma"] < 170  # a lit bedroom

        # the brukare, then the binding in two steps by two people with proof from the device
        store, now = s.rt.consent, s.clock()
        await store.add_recipient(
            CareRecipient(recipient_id=RID, display_name="Testperson", home="Storgatan 1"),
            actor=ADMIN,
            at=now,
        )
        tech = await _staff_token(s.rt, "t-tech", Role.TECHNICIAN)
        admin = await _staff_token(s.rt, "t-admin", Role.ADMINISTRATOR)
        base = str(s.server.make_url("/api"))
        async with aiohttp.ClientSession() as http:

            async def post(token: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
                headers = {"Authorization": f"Bearer {token}"}
                async with http.post(base + path, json=body, headers=headers) as r:
                    return r.status, await r.json()

            status, req = await post(
                tech, f"/devices/{CAM}/binding-requests", {"recipient_id": RID}
            )
            assert (status, req["proof"]) == (201, "button"), req
            confirm = f"/binding-requests/{req['request_id']}/confirm"
            details = {"recipient_id": RID, "name": "Testperson", "address": "Storgatan 1"}
            status, body = await post(admin, confirm, details)
            assert (status, body["error"]["code"]) == (422, "device_proof")  # not pressed yet
            await agent.press_bind_button()

            async def pressed() -> bool:
                status, body = await post(admin, confirm, details)
                return status == 200 and body["device_id"] == CAM

            await wait_for(pressed, what="the binding confirmed after the press", timeout_s=10)
        assert not await s.rt.pool.fetchval(
            "SELECT quarantined FROM devices WHERE device_id = $1", CAM
        )

        # the phone of the same home, bound (its two steps are the camera's, shown above)
        await wait_for(lambda: online(s, PHONE), what="the agent phone online", timeout_s=15)
        await enrol.bind(store, PHONE, RID, actor=ADMIN, at=now, confirmed_by=ADMIN2)

        # consent and a plan: the round plans tonight's check and probes it at home
        await enrol.grant(
            store,
            RID,
            (Purpose.CAMERA_CHECK, Purpose.MOTION_ANALYSIS, Purpose.VIDEO_CALL),
            given_at=now - timedelta(days=2),
            informed_by=ADMIN,
            informed_how="samtal i hemmet",
            actor=ADMIN,
            at=now,
        )
        await store.add_plan(
            CarePlan(
                plan_id=f"plan-{RID}",
                recipient_id=RID,
                decision_ref="SN-TEST",
                valid_from=now - timedelta(days=2),
                checks=(CheckTime(time(22, 5), 60),),
                view_cap_s=30,
            ),
            actor=ADMIN,
            at=now,
        )
        probed: list[dict[str, Any]] = []

        async def probed_at_home() -> bool:
            raw = await s.rt.pool.fetchval(
                "SELECT t.verdict_detail FROM round_transitions t"
                " JOIN round_checks c USING (check_id)"
                " WHERE c.device_id = $1 AND t.verdict_detail IS NOT NULL",
                CAM,
            )
            if raw is not None:
                probed.append(json.loads(raw))
            return raw is not None

        await wait_for(probed_at_home, what="the check probed at home", timeout_s=20)
        detail = probed[0]
        assert detail["path"] == "home", detail
        assert agent.home is not None
        [answer] = agent.home.stats.answered  # the kernel ran on the agent, on its own pictures
        assert detail["verdict"] == answer.verdict
        assert answer.verdict in {"activity", "still", "empty"}, answer  # no device trouble
        assert answer.frames >= 10
        assert agent.peer.stats.offers == 0  # no video offer reached the agent for the probe
        assert agent.peer.indicator is None  # the light went out with the probe
        check_id = await due_check(s, CAM)  # no zones, so nothing cleared: a human looks

        lumas: list[float] = []

        def look(frame: VideoFrame) -> None:  # in memory only, never kept
            lumas.append(float(np.mean(frame.to_ndarray(format="gray"))))

        async with s.channel() as channel:
            view = View(channel, CAM, check_id=check_id, duration_s=2.5, on_picture=look)
            result = await asyncio.wait_for(view.run(), 20)
        assert result.granted, result
        assert result.frames >= 10, result
        # the clip's picture, not the black the agent sends without one
        assert len(lumas) >= 10
        assert 100 < float(np.median(lumas)) < 170
        assert agent.source.frames > 0
        assert agent.source.failures == 0
        assert agent.peer.stats.offers == 1  # the view's

        # a call to the agent phone: its file camera and its microphone reach the caller
        pitches: list[float] = []
        samples: list[np.ndarray[Any, Any]] = []

        def hear(frame: AudioFrame) -> None:  # in memory only, never kept
            samples.append(frame.to_ndarray().reshape(-1, 2)[:, 0].astype(np.float64))
            if len(samples) == 10:  # 0.2 s: the loudest frequency
                pcm = np.concatenate(samples)
                spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
                pitches.append(float(np.argmax(spectrum)) * 48_000 / len(pcm))
                samples.clear()

        lumas.clear()
        async with s.channel() as channel:
            call = View(channel, PHONE, purpose=env.Purpose.CALL, on_picture=look, on_sound=hear)
            calling = asyncio.create_task(call.run())
            await wait_for(
                lambda: phone.peer.call_state is CallState.RINGING, what="the phone rings"
            )
            assert await phone.peer.answer()  # the brukare presses Svara

            async def heard() -> bool:
                return call.result.frames >= 10 and len(pitches) >= 2

            await wait_for(heard, what="the phone's video and sound decoded", timeout_s=15)
            await call.hang_up()
            ended = await asyncio.wait_for(calling, 10)
        assert ended.bye == "operator", ended
        assert 100 < float(np.median(lumas)) < 170  # the clip, from the phone's own source
        assert all(abs(p - SINE_HZ) < 10 for p in pitches), pitches  # its microphone, not a tone
        mic = phone.peer.microphone
        assert isinstance(mic, Microphone)
        assert (mic.opened, mic.failed) == (1, 0)
        await wait_for(lambda: phone.peer.audio is None, what="the microphone closed")


async def test_a_microphone_that_cannot_open_gives_no_sound_and_no_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mic = Microphone(MicSpec("alsa", "no-such-card"))
    with caplog.at_level(logging.WARNING, logger="agent.audio"):
        assert await mic() is None
    assert (mic.opened, mic.failed) == (0, 1)
    assert "microphone alsa:no-such-card could not be opened" in caplog.text
    assert "no sound from the unit" in caplog.text
