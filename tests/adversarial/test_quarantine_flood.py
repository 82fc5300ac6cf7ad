"""Issue 13, finding 5: a flood of made-up device ids cannot grow the quarantine without bound.

The real link and handler on the broker and database, with a small cap injected: beyond it a new
device's birth is dropped, counted (``quarantine_full``) and logged once per window; known devices
keep being served; the next window admits new devices again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiomqtt
import asyncpg
import pytest
from structlog.testing import capture_logs

from devices import handler as device_handler
from devices import store
from devices.handler import REGISTRY_CHANNELS, DeviceHandler
from devices.registry import Stored
from homeside.device import client_args
from kernel.clock import ScaledClock
from services.events import EventBus
from services.mqtt import MqttLink

pytestmark = pytest.mark.integration

CAP = 5
T0 = datetime.now(UTC)


@pytest.fixture
async def backend(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> AsyncIterator[tuple[MqttLink, DeviceHandler, ScaledClock]]:
    clock = ScaledClock(0, T0)
    handler = DeviceHandler(
        pool, clock=clock, on_presence=EventBus().publish, quarantine_cap_per_hour=CAP
    )
    link = MqttLink(
        mqtt_url, prefix=topic_prefix, keepalive_s=5, instance_id="test", on_reject=handler.reject
    )
    for channel in REGISTRY_CHANNELS:
        link.subscribe(channel, handler.handle)
    async with link:
        await asyncio.wait_for(link.connected.wait(), 10)
        yield link, handler, clock


async def births(mqtt_url: str, prefix: str, device_ids: list[str], session: int = 1) -> None:
    async with aiomqtt.Client(**client_args(mqtt_url)) as c:
        for device_id in device_ids:
            payload = b'{"state":"online","session":%d}' % session
            await c.publish(f"{prefix}/dev/{device_id}/status", payload, qos=1)


async def settle(link: MqttLink, pool: asyncpg.Pool, expected_rows: int) -> None:
    async with asyncio.timeout(10):
        while await pool.fetchval("SELECT count(*) FROM devices") < expected_rows:
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)  # the broker has delivered what it will
    await link.idle()


async def test_new_devices_beyond_the_cap_are_dropped_and_logged_once(
    backend: tuple[MqttLink, DeviceHandler, ScaledClock],
    pool: asyncpg.Pool,
    mqtt_url: str,
    topic_prefix: str,
) -> None:
    link, handler, clock = backend
    await pool.execute("INSERT INTO devices (device_id, kind) VALUES ('cam-known', 'camera')")
    flood = [f"fake-{i:03d}" for i in range(3 * CAP)]
    with capture_logs() as logs:
        await births(mqtt_url, topic_prefix, flood)
        await settle(link, pool, 1 + CAP)
        # a known device is not held back by the cap
        await births(mqtt_url, topic_prefix, ["cam-known"], session=7)
        async with asyncio.timeout(10):
            while (rec := await store.get(pool, "cam-known")) is None or not rec.is_online:
                await asyncio.sleep(0.02)
    stored = await pool.fetchval("SELECT count(*) FROM devices WHERE device_id LIKE 'fake-%'")
    assert stored == CAP
    assert handler.rejected["quarantine_full"] == 2 * CAP
    capped = [e for e in logs if e.get("event") == "device_quarantine_capped"]
    assert len(capped) == 1, capped
    assert capped[0]["cap"] == CAP
    assert capped[0]["log_level"] == "warning"
    assert not [e for e in logs if e.get("event") == "mqtt_message_rejected"]  # not per message

    # a device dropped in this window is stored when it re-announces in the next one
    clock.set(T0 + timedelta(hours=1))
    known = {r["device_id"] for r in await pool.fetch("SELECT device_id FROM devices")}
    dropped = sorted(set(flood) - known)
    with capture_logs() as later:
        await births(mqtt_url, topic_prefix, dropped[:CAP])
        await settle(link, pool, 1 + 2 * CAP)
        # one more after those (devices are handled in parallel lanes, so not in the same batch)
        await births(mqtt_url, topic_prefix, ["fake-new"])
        await settle(link, pool, 1 + 2 * CAP)
    rec = await store.get(pool, dropped[0])
    assert rec is not None
    assert (rec.presence, rec.quarantined) == (Stored.ONLINE, True)
    assert await store.get(pool, "fake-new") is None  # the second window is full too
    assert handler.rejected["quarantine_full"] == 2 * CAP + 1
    assert len([e for e in later if e.get("event") == "device_quarantine_capped"]) == 1


def test_the_default_cap_is_a_documented_constant() -> None:
    assert device_handler.QUARANTINE_CAP_PER_HOUR > 0
    assert timedelta(hours=1) == device_handler.QUARANTINE_WINDOW
    assert "QUARANTINE_CAP_PER_HOUR" in (device_handler.__doc__ or "")
