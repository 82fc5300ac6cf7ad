"""The backend's MQTT link through a real Mosquitto: one slow device does not hold the others
back, and every device's messages are still handled in the order it sent them."""

from __future__ import annotations

import asyncio
import zlib

import aiomqtt
import pytest

from devices import topics
from kernel.ratelimit import RateLimiter
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


async def test_a_sink_takes_its_messages_in_order_and_a_failing_one_stops_nothing(
    mqtt_url: str, topic_prefix: str
) -> None:
    """The intake's path (``subscribe_sink``): messages reach the sink as they are read, in the
    order sent, beside a handler's channel; a sink that raises is logged and the link, its
    connection and the other channels go on; a flood past the device's limit is refused."""
    taken: list[tuple[str, int]] = []
    handled: list[str] = []
    rejected: list[tuple[str, str | None]] = []

    def sink(topic: topics.Topic, payload: bytes) -> None:
        if payload == b"boom":
            raise RuntimeError("a bug in the sink")
        taken.append((topic.device_id, int(payload)))

    async def handler(topic: topics.Topic, payload: bytes) -> None:
        handled.append(topic.device_id)

    link = MqttLink(
        mqtt_url,
        prefix=topic_prefix,
        keepalive_s=5,
        instance_id="sink",
        on_reject=lambda reason, device, _detail: rejected.append((reason, device)),
    )
    # c's 45 messages are 5 past its burst (tokens come back once in 1,000 s)
    link.device_limit = RateLimiter(0.001, 40, event="test_rate_limited")
    link.subscribe_sink(topics.Channel.HEALTH, sink)
    link.subscribe(topics.Channel.META, handler)
    with pytest.raises(ValueError, match="taken by a sink"):
        link.subscribe(topics.Channel.HEALTH, handler)
    with pytest.raises(ValueError, match="taken by handlers"):
        link.subscribe_sink(topics.Channel.META, sink)
    async with link, aiomqtt.Client(**client_args(mqtt_url), identifier="sink-dev") as dev:  # type: ignore[arg-type]
        async with asyncio.timeout(10):
            await link.connected.wait()
        health = {d: topics.topic(topic_prefix, d, topics.Channel.HEALTH) for d in ("a", "b")}
        await dev.publish(health["a"], b"boom", qos=1)
        for seq in range(30):
            for t in health.values():
                await dev.publish(t, str(seq).encode(), qos=1)
        await dev.publish(f"{topic_prefix}/dev/NOT_AN_ID/health", b"1", qos=1)
        await dev.publish(topics.topic(topic_prefix, "a", topics.Channel.META), b"{}", qos=1)
        flood = topics.topic(topic_prefix, "c", topics.Channel.HEALTH)
        for seq in range(45):
            await dev.publish(flood, str(seq).encode(), qos=1)
        async with asyncio.timeout(10):
            while not handled or rejected.count(("rate_limited", "c")) < 5:
                await asyncio.sleep(0.02)
            await link.idle()
    assert link.reconnected_at is None  # the failing sink did not cost the connection
    for device in ("a", "b"):
        assert [seq for d, seq in taken if d == device] == list(range(30)), device
    assert [seq for d, seq in taken if d == "c"] == list(range(40))
    assert rejected.count(("rate_limited", "c")) == 5
    assert ("bad_device_id", None) in rejected
    assert handled == ["a"]
