"""MQTT input limits through the backend's real link and a real Mosquitto: a flooding device is
rate limited (dropped and counted, logged once) while another device's presence still lands; an
oversized payload is refused; presence (``status``) is never dropped."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import aiomqtt
import asyncpg
import pytest

from devices import store, topics
from devices.handler import REGISTRY_CHANNELS, DeviceHandler
from services.events import EventBus
from services.mqtt import MqttLink, client_args

pytestmark = pytest.mark.integration


async def test_a_flooding_device_is_limited_and_others_still_land(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    handler = DeviceHandler(pool, clock=lambda: datetime.now(UTC), on_presence=EventBus().publish)
    link = MqttLink(
        mqtt_url, prefix=topic_prefix, keepalive_s=5, instance_id="limits", on_reject=handler.reject
    )
    for channel in REGISTRY_CHANNELS:
        link.subscribe(channel, handler.handle)

    def status(session: int) -> bytes:
        return json.dumps({"state": "online", "session": session}).encode()

    async with link, aiomqtt.Client(**client_args(mqtt_url), identifier="flood-a") as dev:  # type: ignore[arg-type]
        async with asyncio.timeout(10):
            await link.connected.wait()
        t = lambda d, c: topics.topic(topic_prefix, d, c)  # noqa: E731
        await dev.publish(t("flood-a", topics.Channel.STATUS), status(1), qos=1)
        health = json.dumps({"uptime_s": 1}).encode()
        for _ in range(400):
            await dev.publish(t("flood-a", topics.Channel.HEALTH), health, qos=0)
        # Status is exempt: even mid-flood, presence changes land.
        await dev.publish(t("flood-a", topics.Channel.STATUS), status(2), qos=1)
        await dev.publish(t("calm-b", topics.Channel.STATUS), status(1), qos=1)
        await dev.publish(t("calm-b", topics.Channel.HEALTH), b"{" + b" " * 70_000 + b"}", qos=1)
        async with asyncio.timeout(20):
            while True:
                a = await store.get(pool, "flood-a")
                b = await store.get(pool, "calm-b")
                if a and b and a.session == 2 and b.is_online and handler.rejected["too_large"]:
                    break
                await asyncio.sleep(0.05)
    limited = handler.rejected["rate_limited"]
    # A burst of 100 passes, then 20/s refill while the flood is handled: most are dropped.
    assert 150 <= limited <= 300
    assert link.device_limit.refused == limited
    assert handler.rejected["too_large"] == 1
