"""Privacy proof for the one place where frames enter the backend: the motion probe.

The probe (an aiortc peer inside the service) watches two simulated cameras for a whole probe
window, decoding and analysing real video, with this process's working directory and temporary
directory pointed at an empty folder. Afterwards the database (every text, JSON and bytea value),
every structlog event and everything printed, and every file in those folders are scanned like in
``test_privacy_demo.py``: no image, no frame, no base64 blob, no SDP. Only numbers (the verdict
and its measures) and who/when/why were kept.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import asyncpg
import pytest
from structlog.testing import capture_logs

from consent.model import Purpose as GatePurpose
from devices.topics import DeviceKind
from simulators.scenes import Scene, SceneKind
from supervision.probe import MotionProber
from tests.e2e.test_privacy_demo import _dump_database, findings
from tests.integration.signalling_support import FakeGate, devices, node

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CAMERAS = {"cam-priv1": SceneKind.WALKING, "cam-priv2": SceneKind.ASLEEP}


async def test_probing_real_video_leaves_only_numbers(
    pool: asyncpg.Pool,
    mqtt_url: str,
    topic_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    gate = FakeGate()
    for device_id in CAMERAS:
        gate.allow(device_id, GatePurpose.MOTION_ANALYSIS)
    specs = [(d, DeviceKind.CAMERA) for d in CAMERAS]
    with capture_logs() as logs:
        async with (
            node(pool, mqtt_url, topic_prefix, gate) as n,
            devices(mqtt_url, topic_prefix, pool, specs) as devs,
        ):
            for device_id, kind in CAMERAS.items():
                devs[device_id].peer.scene = Scene(kind, seed=3)
            prober = MotionProber(n.signalling)
            outcomes = await asyncio.gather(
                *(prober.watch(d, check_id=f"20250610.2200.r-{i}") for i, d in enumerate(CAMERAS))
            )
    analysed = sum(o.frames_analysed for o in outcomes)
    received = sum(o.frames_received for o in outcomes)
    assert analysed >= 10  # the probe really decoded and analysed video
    printed = capfd.readouterr()

    problems = findings(json.dumps(logs, default=str).encode(), "structlog events")
    problems += findings((printed.out + printed.err).encode(), "printed output")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    for path in files:
        problems += findings(path.read_bytes(), str(path.relative_to(tmp_path)))
    async with pool.acquire() as conn:
        values = await _dump_database(conn)
    for table, column, value in values:
        raw = value if isinstance(value, bytes) else str(value).encode()
        problems += findings(raw, f"{table}.{column}")
    print(
        f"\nprobe privacy scan: {received} frames received, {analysed} analysed; "
        f"{len(values)} database values, {len(logs)} log events, {len(files)} files"
    )
    assert len(logs) > 5
    assert problems == []
