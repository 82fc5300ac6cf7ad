"""Seen means video delivered, through the composed service (issue 15): a real view of a due
check over ``/ws/signal`` with a simulated camera's real frames; the camera reports what it sent
when the view ends (``stats``), and only then does ``POST /api/checks/{id}/outcome {"ok"}``
document the check as seen. The same operator documenting ``ok`` after a view that delivered
under a second is ``409 not_viewed``, and nothing changed."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from consent.model import Purpose
from devices.topics import DeviceKind
from tests.integration.signalling_home import due_check, seed_home, served
from tests.integration.signalling_support import wait_for
from tools.view import View

pytestmark = pytest.mark.integration
CAM = "cam-0081"


async def _outcome(http: aiohttp.ClientSession, url: str, outcome: str) -> tuple[int, Any]:
    async with http.post(url, json={"outcome": outcome}) as r:
        return r.status, await r.json()


async def test_ok_rests_on_the_video_the_camera_delivered(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    async with served(database_url, mqtt_url, topic_prefix, [(CAM, DeviceKind.CAMERA)]) as s:
        await seed_home(s, "rec-0081", [CAM], purposes=(Purpose.CAMERA_CHECK,))
        check_id = await due_check(s, CAM)
        url = str(s.server.make_url(f"/api/checks/{check_id}/outcome"))
        pool = s.rt.pool
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {s.token}"}) as http,
            s.channel() as channel,
        ):
            # a glimpse: the view is granted (the check moves to viewing) and closed at once
            glimpse = View(channel, CAM, check_id=check_id, duration_s=0.3)
            assert (await asyncio.wait_for(glimpse.run(), 15)).granted
            await wait_for(lambda: s.peers[CAM].stats.reported, what="the camera's stats")
            assert s.peers[CAM].stats.reported[-1].video_s < 1.0
            before = await pool.fetchval("SELECT count(*) FROM round_transitions")
            status, body = await _outcome(http, url, "ok")
            assert (status, body["error"]["code"]) == (409, "not_viewed"), body
            assert await pool.fetchval("SELECT count(*) FROM round_transitions") == before

            # a real look: a few seconds of frames, closed by the operator
            view = View(channel, CAM, check_id=check_id, duration_s=3.0)
            result = await asyncio.wait_for(view.run(), 20)
            assert result.frames >= 10
            status, body = await _outcome(http, url, "ok")  # may wait for the camera's report
            assert status == 200, body
            assert body["state"] == "documented"
        sent = s.peers[CAM].stats.reported[-1]
        assert sent.session_id == view.session_id
        row = await pool.fetchrow(
            "SELECT video_s, frames_sent, frames_decoded, check_id FROM signal_sessions"
            " WHERE session_id = $1",
            view.session_id,
        )
        assert row is not None
        assert (row["video_s"], row["frames_sent"], row["check_id"]) == (
            pytest.approx(sent.video_s),
            sent.frames,
            check_id,
        )
        assert row["video_s"] >= 1.0
        assert 0 < row["frames_decoded"] <= result.frames
        audit = await pool.fetchval(
            "SELECT (data->>'video_s')::float8 FROM audit_log WHERE action = 'check.documented'"
            " AND subject = $1",
            check_id,
        )
        assert audit == pytest.approx(row["video_s"], abs=0.05)
