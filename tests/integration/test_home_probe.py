"""The motion check at home (issue 19 item 5) through a real Mosquitto, PostgreSQL and aiortc.

One real clip (``../shared/data/video``, skipped when absent) is fed both ways: a camera that
runs the check itself (``homeside.home_probe``, probed over MQTT) and one probed over WebRTC
(``supervision.probe``), both showing the clip's decoded frames by stream time, the way the
round's :class:`supervision.home_probe.ProbeRouter` picks per device from its meta. Both must
give the same verdict. Then what a device can get wrong: bad answers are refused and change
nothing, a device that never answers is ``no_signal``, and without consent (or once it is
withdrawn) no home probe runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import av
import numpy as np
import numpy.typing as npt
import pytest

from consent.model import Purpose as GatePurpose
from devices import topics
from devices.topics import DeviceKind
from homeside import home_probe as device_home_probe
from homeside.device import DeviceClient, DeviceSpec
from homeside.peer import DevicePeer
from kernel.tenancy import DEFAULT_ORGANISATION
from simulators.homes import attach
from supervision.home_probe import HomeProbeConfig, HomeProber, ProbeRouter, caps_of, pg_audit
from supervision.probe import MotionProber, ProbeConfig, ViewZones, zones_of
from tests.integration.signalling_support import FakeGate, Node, _online, node, wait_for
from vision.verdict import VerdictKind, no_signal

pytestmark = pytest.mark.integration
CLIPS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "video"
CLIP = "gmdcsa24_S2_Fall_12.mp4"  # walks about the room for 7 s, then falls
W, H = 320, 240
WINDOW_S = 4.0


class ClipSource:
    """A clip's first seconds decoded once into I420 pictures of ``W`` x ``H`` (in memory only,
    never written), shown by stream time: the picture at ``t_s`` is the clip's frame then."""

    def __init__(self, path: Path, seconds: float) -> None:
        pictures: list[npt.NDArray[np.uint8]] = []
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            self.fps = float(stream.average_rate or 15)
            for frame in container.decode(stream):
                if len(pictures) >= seconds * self.fps:
                    break
                small = frame.reformat(width=W, height=H, format="yuv420p")
                pictures.append(small.to_ndarray())
        self.pictures = pictures

    def yuv420(self, t_s: float, width: int, height: int) -> npt.NDArray[np.uint8]:
        assert (width, height) == (W, H)
        return self.pictures[min(int(t_s * self.fps + 1e-6), len(self.pictures) - 1)]


def clip_zones() -> ViewZones:
    labels = json.loads((CLIPS / "labels.json").read_text())
    clip = next(c for c in labels["clips"] if c["file"] == CLIP)
    return zones_of(clip["width"], clip["height"], clip["zones"])


@dataclass
class Camera:
    sim: DeviceClient
    peer: DevicePeer
    home: device_home_probe.HomeProbe | None  # runs the check itself


@contextlib.asynccontextmanager
async def cameras(
    mqtt_url: str, prefix: str, pool: asyncpg.Pool, ids: list[str], *, at_home: set[str]
) -> AsyncIterator[dict[str, Camera]]:
    """Simulated cameras with real media (320x240, 10 fps), online before the block starts;
    those in ``at_home`` run the motion check themselves (``home_probe`` in their meta)."""
    found: dict[str, Camera] = {}
    stop = asyncio.Event()
    for device_id in ids:
        spec = DeviceSpec(device_id, DeviceKind.CAMERA, width=W, height=H, fps=10.0)
        sim = DeviceClient(spec, mqtt_url, prefix=prefix, keepalive_s=5, health_interval_s=3600)
        peer = attach(sim)
        home = device_home_probe.attach(peer) if device_id in at_home else None
        found[device_id] = Camera(sim, peer, home)
    tasks = [asyncio.create_task(c.sim.run(stop)) for c in found.values()]
    try:
        for device_id in found:
            await wait_for(lambda d=device_id: _online(pool, d), what=f"{device_id} online")
        await pool.execute(  # as a binding would: the brukare's organisation
            "UPDATE devices SET organisation_id = $2 WHERE device_id = ANY($1::text[])",
            list(found),
            DEFAULT_ORGANISATION,
        )
        yield found
    finally:
        stop.set()
        for camera in found.values():
            if camera.home is not None:
                await camera.home.close()
            await camera.peer.close()
        await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def home_prober(
    n: Node, gate: FakeGate, pool: asyncpg.Pool, config: HomeProbeConfig | None = None
) -> AsyncIterator[HomeProber]:
    home = HomeProber(
        n.signalling.commands,
        gate,
        zones=lambda _: clip_zones() if (CLIPS / CLIP).exists() else None,
        audit=pg_audit(pool),
        config=config,
    )
    n.link.subscribe(topics.Channel.PROBE, home.handle)
    await n.link.subscribed()
    try:
        yield home
    finally:
        n.link.unsubscribe(home.handle)


async def test_one_clip_gives_the_same_verdict_at_home_and_over_webrtc(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    if not (CLIPS / CLIP).exists():
        pytest.skip(f"{CLIPS / CLIP} is not here")
    source = ClipSource(CLIPS / CLIP, WINDOW_S + 1.0)
    gate = FakeGate()
    for device_id in ("cam-clip-home", "cam-clip-rtc"):
        gate.allow(device_id, GatePurpose.MOTION_ANALYSIS, GatePurpose.CAMERA_CHECK)
    ids = ["cam-clip-home", "cam-clip-rtc"]
    async with (
        node(pool, mqtt_url, topic_prefix, gate) as n,
        cameras(mqtt_url, topic_prefix, pool, ids, at_home={ids[0]}) as devs,
    ):
        for device in devs.values():
            device.peer.scene = source
        at_home = devs["cam-clip-home"].home
        assert at_home is not None
        async with home_prober(n, gate, pool) as home:
            webrtc = MotionProber(n.signalling, zones=lambda _: clip_zones(), config=ProbeConfig())
            router = ProbeRouter(webrtc, home, caps_of(pool))
            assert await router.path("cam-clip-home") == "home"
            assert await router.path("cam-clip-rtc") == "webrtc"
            by_home, by_rtc = await asyncio.gather(
                *(
                    router.probe(device_id=d, check_id=f"20250610.2200.r-{d}", window_s=WINDOW_S)
                    for d in ("cam-clip-home", "cam-clip-rtc")
                )
            )
        rtc_frames = devs["cam-clip-rtc"].peer.stats.reported
    assert router.routed == {"home": 1, "webrtc": 1}
    assert by_home.detail is not None
    assert by_rtc.detail is not None
    assert by_home.detail["path"] == "home"
    assert "path" not in by_rtc.detail
    assert by_home.verdict == by_rtc.verdict == VerdictKind.ACTIVITY.value, (by_home, by_rtc)
    assert by_home.needs_human == by_rtc.needs_human is True  # out of bed: someone looks
    assert by_home.detail["reason"] == by_rtc.detail["reason"]
    assert by_home.detail["where"] == by_rtc.detail["where"]
    assert 15 <= by_home.frames <= 20  # 5 a second over 4 s, paced like a camera
    assert at_home.stats.frames == by_home.frames
    assert rtc_frames
    assert rtc_frames[0].frames > 0
    assert at_home.peer.stats.offers == 0  # and none left the home-probed one
    assert at_home.peer.indicator is None  # its light went off when the look ended
    assert at_home.peer.stats.seen == ["indicator_on", "indicator_off"]  # lit while it looked
    rows = await pool.fetch(
        "SELECT action, data->>'check_id' AS check_id FROM audit_log"
        " WHERE data->>'device_id' = 'cam-clip-home' AND data->>'path' = 'home' ORDER BY seq"
    )
    assert [r["action"] for r in rows] == ["probe.started", "probe.ended"]
    assert rows[0]["check_id"] == "20250610.2200.r-cam-clip-home"


async def test_bad_answers_are_refused_and_a_silent_device_is_no_signal(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    gate = FakeGate()
    gate.allow("cam-mute", GatePurpose.MOTION_ANALYSIS, GatePurpose.CAMERA_CHECK)
    gate.allow("cam-liar", GatePurpose.MOTION_ANALYSIS, GatePurpose.CAMERA_CHECK)
    config = HomeProbeConfig(answer_grace_s=0.5)
    async with (
        node(pool, mqtt_url, topic_prefix, gate) as n,
        cameras(mqtt_url, topic_prefix, pool, ["cam-mute", "cam-liar"], at_home=set()) as devs,
        home_prober(n, gate, pool, config) as home,
    ):
        mute, liar = devs["cam-mute"], devs["cam-liar"]  # neither runs the check: no answer
        task = asyncio.create_task(home.watch("cam-mute", window_s=1.0))
        await wait_for(lambda: bool(home._waiting), what="the probe waiting for its answer")
        (probe_id,) = home._waiting
        good = device_home_probe.answer_of(probe_id, no_signal(0), topics.ProbeEnded.NO_FRAMES)
        base = json.loads(good.encode())
        bad = [
            b"{not json",
            json.dumps({**base, "verdict": "asleep"}).encode(),  # not a verdict
            json.dumps({**base, "needs_human": False}).encode(),  # clears without the reason
            json.dumps({**base, "confidence": 2}).encode(),
            json.dumps({**base, "picture": "..."}).encode(),  # nothing but numbers
            json.dumps({**base, "numbers": {f"n{i}": 1 for i in range(60)}}).encode(),
            json.dumps({**base, "frames": base["frames"] + 1}).encode(),
            b"{" + b" " * (65 * 1024) + b"}",
        ]
        for payload in bad:
            await mute.sim.publish(topics.Channel.PROBE, payload)
        await liar.sim.publish(topics.Channel.PROBE, good.encode())  # another camera's word
        outcome = await task
    assert outcome.ended == "no_answer"
    assert outcome.result.verdict == "no_signal"
    assert outcome.result.needs_human
    assert outcome.answer is None
    assert home.refused == len(bad) + 1  # each bad one, and the other camera's word
    assert mute.peer.stats.seen == ["indicator_on", "indicator_off"]  # lit, then off again


async def test_without_consent_no_home_probe_is_sent_and_withdrawal_stops_one(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    gate = FakeGate()  # cam-nocons: no consent at all
    gate.allow("cam-withdrawn", GatePurpose.MOTION_ANALYSIS, GatePurpose.CAMERA_CHECK)
    ids = ["cam-nocons", "cam-withdrawn"]
    async with (
        node(pool, mqtt_url, topic_prefix, gate) as n,
        cameras(mqtt_url, topic_prefix, pool, ids, at_home=set(ids)) as devs,
        home_prober(n, gate, pool) as home,
    ):
        refused = await home.watch("cam-nocons", window_s=2.0)
        task = asyncio.create_task(home.watch("cam-withdrawn", window_s=8.0))
        at_home = devs["cam-withdrawn"].home
        assert at_home is not None
        await wait_for(lambda: at_home.running is not None, what="the device looking")
        gate.deny("cam-withdrawn")
        withdrawn = await task
        await wait_for(lambda: at_home.running is None, what="the device to stop")
    nocons = devs["cam-nocons"]
    assert refused.ended == "denied:no_consent"
    assert refused.result.verdict == "no_signal"
    assert nocons.peer.stats.seen == []  # not even the light: nothing was sent
    assert nocons.home is not None
    assert nocons.home.stats.started == 0
    assert withdrawn.ended == "withdrawn"
    assert withdrawn.result.needs_human
    assert at_home.stats.stopped == 1
    assert at_home.stats.answered == []
    assert at_home.peer.indicator is None
