"""The latency histograms of ``/metrics`` after a real live view on loopback: the composed service,
a simulated camera answering with aiortc media, ``homecare view``'s client over ``/ws/signal``,
and the scrape over HTTP from 127.0.0.1."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devices.topics import DeviceKind
from tests.integration.signalling_home import Served, due_check, seed_home, served
from tests.integration.signalling_support import wait_for
from tools.view import View

pytestmark = pytest.mark.integration

CAM = "cam-metrics1"


async def _scrape(s: Served) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(str(s.server.make_url("/metrics"))) as r,
    ):
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = await r.text()
    return {
        (x.name, tuple(sorted(x.labels.items()))): x.value
        for family in text_string_to_metric_families(text)
        for x in family.samples
    }


async def test_a_view_fills_the_latency_histograms(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    view_ = (("purpose", "view"),)
    async with served(database_url, mqtt_url, topic_prefix, [(CAM, DeviceKind.CAMERA)]) as s:
        await seed_home(s, "rec-metrics1", [CAM])
        check_id = await due_check(s, CAM)
        assert s.server.host == "127.0.0.1"
        async with s.channel() as channel:
            view = View(channel, CAM, check_id=check_id)
            began = asyncio.get_running_loop().time()
            task = asyncio.create_task(view.run())
            await asyncio.wait_for(view.first_frame.wait(), 10)

            async def first_frame_seen() -> bool:
                got = await _scrape(s)
                return got.get(("homecare_view_first_frame_seconds_count", view_), 0) >= 1

            await wait_for(first_frame_seen, what="the first frame reported to the backend")
            elapsed_s = asyncio.get_running_loop().time() - began
            await view.hang_up()
            result = await asyncio.wait_for(task, 10)
        assert result.granted

        async def planned() -> bool:  # tonight at start, the brukare's change since
            got = await _scrape(s)
            return all(
                got.get(("homecare_round_planning_seconds_count", (("kind", kind),)), 0) >= 1
                for kind in ("night", "replan")
            )

        await wait_for(planned, what="the night planned and re-planned")
        got = await _scrape(s)
    grant_s = got[("homecare_signal_grant_seconds_sum", view_)]
    first_s = got[("homecare_view_first_frame_seconds_sum", view_)]
    assert got[("homecare_signal_grant_seconds_count", view_)] == 1
    assert got[("homecare_view_first_frame_seconds_count", view_)] == 1  # once per session
    assert 0 < grant_s < first_s <= elapsed_s
    assert got[("homecare_view_first_frame_seconds_bucket", (("le", "+Inf"), *view_))] == 1
    # the camera's status, meta and health went through the registry
    assert got[("homecare_registry_lag_seconds_count", (("channel", "status"),))] >= 1
    assert got[("homecare_registry_lag_seconds_count", (("channel", "meta"),))] >= 1
    assert got[("homecare_round_planning_seconds_count", (("kind", "night"),))] >= 1
