"""What a session delivered, as its device reports it: the simulated camera's ``stats`` at the
session's end lands on the row (frames sent, seconds of video), with the client's last count of
decoded frames; a second report, another device's or an unknown session's is refused with an
``error`` to the device and changes nothing."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from consent.model import Purpose as GatePurpose
from devices import envelope as env
from devices.topics import DeviceKind
from tests.integration.signalling_support import FakeGate, client, devices, node, wait_for
from tools.view import View

pytestmark = pytest.mark.integration
CAM, OTHER = "cam-0301", "cam-0302"


async def _delivered(pool: asyncpg.Pool, session_id: str) -> dict[str, object] | None:
    row = await pool.fetchrow(
        "SELECT frames_sent, video_s, frames_decoded FROM signal_sessions WHERE session_id = $1",
        session_id,
    )
    return None if row is None else dict(row)


async def test_the_device_reports_what_it_sent_once_and_only_for_its_own_session(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    gate = FakeGate()
    for device_id in (CAM, OTHER):
        gate.allow(device_id, GatePurpose.CAMERA_CHECK, GatePurpose.MOTION_ANALYSIS)
    async with (
        node(pool, mqtt_url, topic_prefix, gate) as n,
        devices(
            mqtt_url, topic_prefix, pool, [(CAM, DeviceKind.CAMERA), (OTHER, DeviceKind.CAMERA)]
        ) as devs,
        client(n, "sys-token") as c,
    ):
        look = View(c.channel, CAM, purpose=env.Purpose.PROBE, duration_s=2.5)
        result = await asyncio.wait_for(look.run(), 15)
        assert result.frames >= 10
        sid = look.session_id
        await wait_for(lambda: devs[CAM].peer.stats.reported, what="the camera's stats")
        sent = devs[CAM].peer.stats.reported[0]
        assert sent.session_id == sid
        assert sent.frames >= result.frames  # the camera sent at least what the client decoded
        assert 1.5 <= sent.video_s <= 4.0  # about the 2.5 s the client watched

        async def recorded() -> bool:
            found = await _delivered(pool, sid)
            return found is not None and found["frames_sent"] is not None

        await wait_for(recorded, what="the stats on the row")
        row = await _delivered(pool, sid)
        assert row is not None
        assert row["frames_sent"] == sent.frames
        assert row["video_s"] == pytest.approx(sent.video_s)
        decoded = row["frames_decoded"]
        assert isinstance(decoded, int)
        assert 0 < decoded <= result.frames  # the client's last video report before the bye
        assert n.signalling.counters["device_stats_recorded"] == 1

        forged = [
            (CAM, env.Stats(sid, frames=9999, video_s=600.0), "duplicate_stats"),
            (OTHER, env.Stats(sid, frames=9999, video_s=600.0), "wrong_device"),
            (CAM, env.Stats("s-never-was-1", frames=5, video_s=1.0), "unknown_session"),
        ]
        for device_id, stats, code in forged:
            await devs[device_id].sim.send_signal(env.as_json(stats))
            await wait_for(
                lambda d=device_id, k=code: k in devs[d].peer.stats.errors,
                what=f"{code} back to {device_id}",
            )
            assert n.signalling.counters[f"device_rejected_{code}"] == 1
        assert await _delivered(pool, sid) == row
        assert await _delivered(pool, "s-never-was-1") is None
        assert n.signalling.counters["device_stats_recorded"] == 1
