"""The probe's zone lookup at probe time: an async lookup is awaited per watch, and one that
fails leaves the probe without zones (logged; nothing can be cleared) instead of breaking it."""

from __future__ import annotations

import asyncpg
import pytest
from structlog.testing import capture_logs

from supervision.probe import MotionProber, ViewZones
from tests.integration.signalling_support import FakeGate, node

pytestmark = pytest.mark.integration


async def test_a_failing_zone_lookup_means_no_zones_and_the_watch_goes_on(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    asked: list[str] = []

    async def broken(device_id: str) -> ViewZones | None:
        asked.append(device_id)
        raise LookupError("zones unreadable")

    async with node(pool, mqtt_url, topic_prefix, FakeGate()) as n:
        with capture_logs() as logs:
            outcome = await MotionProber(n.signalling, zones=broken).watch(
                "cam-gone", check_id="20250610.2200.r1", window_s=1.0
            )
    assert asked == ["cam-gone"]
    assert outcome.ended == "denied:device_offline"
    assert outcome.verdict.needs_human
    failed = [e for e in logs if e["event"] == "probe_zones_unavailable"]
    assert failed == [
        {
            "event": "probe_zones_unavailable",
            "log_level": "warning",
            "check_id": "20250610.2200.r1",
            "device_id": "cam-gone",
            "error": "LookupError",
        }
    ]
