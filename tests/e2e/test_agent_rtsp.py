"""``homecare agent`` (a real process) with an RTSP camera none of us wrote: GStreamer's
gst-rtsp-server (Debian's packages, run by the system Python: ``tests/rtsp_server.py``) serving a
shared clip on loopback. The agent comes online with ``health.video`` ok, a live look decodes its
frames, then the server goes away mid-view: the agent's health turns ``no_frames`` within seconds
and the check that looks at the camera next goes to the patrol (``camera_no_signal``, hard rule
7) without waking or probing it. Throughout, the agent's standard error is JSON events (the
source opened, lost; the video state it reported), and the camera's password in ``--source``
appears nowhere in what it writes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import time, timedelta
from pathlib import Path

import pytest

from consent import enrol
from consent.model import CarePlan, CareRecipient, CheckTime, Purpose
from tests.integration.signalling_home import ADMIN, ADMIN2, due_check, served
from tests.integration.signalling_support import wait_for
from tests.procs import die_with_parent
from tools.embedded import free_port
from tools.view import View

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT.parent / "shared" / "data" / "video" / "gmdcsa24_S3_ADL_20.mp4"
SYSTEM_PYTHON = Path("/usr/bin/python3")
CAM = "cam-rtsp-1"
RID = "r-rtsp1"
PASSWORD = "s3cret-Pw9"  # in the RTSP URL (the server asks for none: the client sends it unused)


def _has_rtsp_server() -> bool:
    if not SYSTEM_PYTHON.exists():
        return False
    probe = "import gi; gi.require_version('GstRtspServer', '1.0')"
    return (
        subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, check=False).returncode
        == 0
    )


pytestmark.append(
    pytest.mark.skipif(
        not CLIP.is_file() or not _has_rtsp_server(),
        reason="needs ../shared/data/video and gst-rtsp-server (./run test installs it)",
    )
)


@pytest.fixture
def rtsp() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, str(ROOT / "tests" / "rtsp_server.py"), str(port), str(CLIP)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        yield f"rtsp://127.0.0.1:{port}/clip", proc
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


async def test_rtsp_agent_viewed_then_the_server_goes_away(
    rtsp: tuple[str, subprocess.Popen[bytes]],
    database_url: str,
    mqtt_url: str,
    topic_prefix: str,
) -> None:
    url, server = rtsp
    url = url.replace("rtsp://", f"rtsp://viewer:{PASSWORD}@")
    async with served(database_url, mqtt_url, topic_prefix, []) as s:
        agent = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tools.cli",
            "agent",
            "--source",
            url,
            "--id",
            CAM,
            "--mqtt-url",
            mqtt_url,
            "--prefix",
            topic_prefix,
            "--size",
            "320x240",
            cwd=ROOT,
            env={**os.environ, "HOMECARE_LOG_LEVEL": "info", "HOMECARE_LOG_FORMAT": "auto"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=die_with_parent,
        )
        assert agent.stdout is not None
        assert agent.stderr is not None
        read = asyncio.gather(agent.stdout.read(), agent.stderr.read())  # drained as it runs
        try:

            async def video_state() -> str | None:
                raw = await s.rt.pool.fetchval(
                    "SELECT health FROM devices WHERE device_id = $1 AND presence = 'online'", CAM
                )
                return None if raw is None else json.loads(raw).get("video", {}).get("state")

            await wait_for(
                lambda: _is(video_state(), "ok"), what="the agent's video ok", timeout_s=20
            )
            # bound, with consent; two checks tonight: one due now (a human looks: no motion
            # consent), one at 23:45 +-30 min
            store, now = s.rt.consent, s.clock()
            await store.add_recipient(
                CareRecipient(recipient_id=RID, display_name="Testperson"), actor=ADMIN, at=now
            )
            await enrol.grant(
                store,
                RID,
                (Purpose.CAMERA_CHECK,),
                given_at=now - timedelta(days=2),
                informed_by=ADMIN,
                informed_how="samtal i hemmet",
                actor=ADMIN,
                at=now,
            )
            await enrol.bind(store, CAM, RID, actor=ADMIN, at=now, confirmed_by=ADMIN2)
            await store.add_plan(
                CarePlan(
                    plan_id=f"plan-{RID}",
                    recipient_id=RID,
                    decision_ref="SN-TEST",
                    valid_from=now - timedelta(days=2),
                    checks=(CheckTime(time(22, 5), 60), CheckTime(time(23, 45), 30)),
                ),
                actor=ADMIN,
                at=now,
            )
            check_id = await due_check(s, CAM)
            async with s.channel() as channel:
                view = View(channel, CAM, check_id=check_id, duration_s=8.0)
                looking = asyncio.create_task(view.run())
                first = asyncio.create_task(view.first_frame.wait())
                await asyncio.wait({first, looking}, timeout=15, return_when="FIRST_COMPLETED")
                assert view.first_frame.is_set(), view.result
                before = view.result.frames
                server.kill()  # the camera goes away mid-view
                await wait_for(
                    lambda: _is(video_state(), "no_frames"),
                    what="health.video no_frames",
                    timeout_s=10,
                )
                await view.hang_up()
                result = await asyncio.wait_for(looking, 15)
            assert result.granted, result
            assert before >= 1
            assert result.frames > before  # frames were decoded before the server went
            # the check's window opens: it looks at the camera, which says it shows nothing
            s.clock.set(s.clock() + timedelta(minutes=80))

            async def patrolled() -> bool:
                row = await s.rt.pool.fetchrow(
                    "SELECT state, reason FROM round_checks WHERE device_id = $1"
                    " AND check_id <> $2",
                    CAM,
                    check_id,
                )
                return row is not None and (row["state"], row["reason"]) == (
                    "patrol",
                    "camera_no_signal",
                )

            await wait_for(patrolled, what="the check sent to the patrol", timeout_s=15)
        finally:
            agent.terminate()
            assert await asyncio.wait_for(agent.wait(), 15) == 0
            out, err = await asyncio.wait_for(read, 5)
    assert PASSWORD.encode() not in out + err
    assert b"rtsp://127.0.0.1:" in out  # the source as shown: without user and password
    # stderr is events, JSON off a TTY, as homecare serve writes them
    events = [json.loads(line) for line in err.decode().splitlines() if line.strip()]
    assert all({"event", "level", "logger", "timestamp"} <= e.keys() for e in events), events
    said = [(e["logger"], e["level"], e["event"]) for e in events]
    assert ("agent.sources", "info", f"video source {url_shown(url)} opened") in said, said
    assert any(
        logger == "agent.sources" and level == "warning" and ("failed" in text or "ended" in text)
        for logger, level, text in said
    ), said
    assert ("agent.app", "info", f"video of {CAM} is no_frames") in said, said


def url_shown(url: str) -> str:
    return "rtsp://" + url.split("@", 1)[1]


async def _is(value: object, want: str) -> bool:
    return await value == want  # type: ignore[misc]
