"""The backend's MQTT link through a real Mosquitto: one slow device does not hold the others
back, and every device's messages are still handled in the order it sent them."""

from __future__ import annotations

import asyncio
import zlib

import aiomqtt
import pytest

from devices import topics
from services.mqtt import MqttLink, client_args

pytestmark = pytest.mark.integration

LANES = 4


def _lane(device_id: str) -> int:
    return zlib.crc32(device_id.encode()) % LANES


async def test_a_slow_device_holds_back_only_itself_and_order_is_kept(
    mqtt_url: str, topic_prefix: str
) -> None:
    slow = "cam-0001"
    others = [d for d in (f"cam-{i:04d}" for i in range(2, 40)) if _lane(d) != _lane(slow)][:3]
    handled: dict[str, list[int]] = {}
    release = asyncio.Event()

    async def handler(topic: topics.Topic, payload: bytes) -> None:
        if topic.device_id == slow:
            await release.wait()  # e.g. a database row lock held elsewhere
        handled.setdefault(topic.device_id, []).append(int(payload))

    link = MqttLink(mqtt_url, prefix=topic_prefix, keepalive_s=5, instance_id="lanes", lanes=LANES)
    link.subscribe(topics.Channel.HEALTH, handler)
    async with link, aiomqtt.Client(**client_args(mqtt_url), identifier="lanes-dev") as dev:  # type: ignore[arg-type]
        async with asyncio.timeout(10):
            await link.connected.wait()
        for seq in range(20):
            for device in (slow, *others):
                t = topics.topic(topic_prefix, device, topics.Channel.HEALTH)
                await dev.publish(t, str(seq).encode(), qos=1)
        async with asyncio.timeout(10):
            while any(len(handled.get(d, [])) < 20 for d in others):
                await asyncio.sleep(0.02)
        assert slow not in handled  # still waiting, and nobody else waited for it
        release.set()
        async with asyncio.timeout(10):
            while len(handled.get(slow, [])) < 20:
                await asyncio.sleep(0.02)
            await link.idle()
    for device in (slow, *others):
        assert handled[device] == list(range(20)), device


def test_a_link_needs_at_least_one_lane() -> None:
    with pytest.raises(ValueError, match="lanes"):
        MqttLink("mqtt://127.0.0.1", prefix="p", keepalive_s=5, instance_id="x", lanes=0)
