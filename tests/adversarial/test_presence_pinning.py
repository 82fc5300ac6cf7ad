"""Issue 13, finding 3 (through the broker): a forged ``status`` with a session from the future
cannot pin a device online.

``{"state":"online","session":9007199254740992}`` used to be stored, and every later real birth,
``stopped`` and will of that device was then "stale": it showed online for good. Now the registry
refuses it (``session_in_future``, logged and counted, nothing stored) and the real device's
messages keep counting. The real backend handler and MQTT link, a real simulated device.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import asyncpg
import pytest
from structlog.testing import capture_logs

from devices import store, topics
from devices.handler import REGISTRY_CHANNELS, DeviceHandler
from devices.registry import Stored
from homeside.device import DeviceClient, DeviceSpec, client_args
from services.events import EventBus
from services.mqtt import MqttLink

pytestmark = pytest.mark.integration

DEVICE = "cam-pin"
PINNING = b'{"state":"online","session":9007199254740992}'


@pytest.fixture
async def backend(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> AsyncIterator[tuple[MqttLink, DeviceHandler]]:
    handler = DeviceHandler(pool, clock=lambda: datetime.now(UTC), on_presence=EventBus().publish)
    link = MqttLink(
        mqtt_url, prefix=topic_prefix, keepalive_s=5, instance_id="test", on_reject=handler.reject
    )
    for channel in REGISTRY_CHANNELS:
        link.subscribe(channel, handler.handle)
    async with link:
        await asyncio.wait_for(link.connected.wait(), 10)
        yield link, handler


async def eventually(check: Callable[[], Coroutine[Any, Any, bool]], timeout_s: float = 10) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.02)


async def stored(pool: asyncpg.Pool) -> tuple[Stored, int] | None:
    rec = await store.get(pool, DEVICE)
    return None if rec is None else (rec.presence, rec.session)


async def test_a_session_from_the_future_is_refused_and_the_device_keeps_its_presence(
    backend: tuple[MqttLink, DeviceHandler], pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    link, handler = backend
    device = DeviceClient(DeviceSpec(DEVICE, topics.DeviceKind.CAMERA), mqtt_url, topic_prefix)
    stop = asyncio.Event()
    run = asyncio.create_task(device.run(stop))

    async def online() -> bool:
        return await stored(pool) == (Stored.ONLINE, device.session)

    await eventually(online)
    first = device.session
    with capture_logs() as logs:
        async with aiomqtt.Client(**client_args(mqtt_url)) as forger:
            name = topics.topic(topic_prefix, DEVICE, topics.Channel.STATUS)
            await forger.publish(name, PINNING, qos=1, retain=True)
        await asyncio.sleep(0.3)
        await link.idle()
    assert handler.rejected["session_in_future"] == 1
    assert await stored(pool) == (Stored.ONLINE, first)
    assert any(
        e.get("event") == "mqtt_message_rejected" and e.get("reason") == "session_in_future"
        for e in logs
    ), logs

    # the device's own stopped, and its next birth, still count
    stop.set()
    await asyncio.wait_for(run, 10)

    async def stopped() -> bool:
        return await stored(pool) == (Stored.STOPPED, first)

    await eventually(stopped)
    stop = asyncio.Event()
    run = asyncio.create_task(device.run(stop))
    try:
        await eventually(online)
        assert device.session > first
    finally:
        stop.set()
        await asyncio.wait_for(run, 10)
