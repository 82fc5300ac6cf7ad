"""Hostile MQTT input end to end: hypothesis-made and hand-made payloads on every device channel,
through a real Mosquitto into the backend's link and the device registry. Each is refused (and
counted) or applied; none escapes as an unexpected error, none changes another device, and the
link goes on handling good messages afterwards."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import aiomqtt
import asyncpg
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from devices import store, topics
from devices.handler import REGISTRY_CHANNELS, DeviceHandler
from services.events import EventBus
from services.mqtt import MqttLink, client_args

pytestmark = pytest.mark.integration

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
FIELDS = ["state", "session", "ts", "kind", "fw", "caps", "video", "uptime_s", "battery_pct",
          "shutter", "tamper", "link", "type", "id", "ok", "detail", "session_id"]  # fmt: skip
payloads = (
    st.binary(max_size=300)
    | st.builds(lambda v: json.dumps(v).encode(), json_values)
    | st.builds(
        lambda d: json.dumps(d).encode(),
        st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6),
    )
)
COUNT = 150
HAND_MADE = [
    b"[" * 5000 + b"]" * 5000,
    b'{"state": "online", "session": ' + b"9" * 4000 + b"}",
    b'{"uptime_s": 1' + b"0" * 400 + b"}",
    b'{"state": "online", "session": 1, "id": "cam-0002"}',  # names another device
    b"\xff\xfe\x00",
    b"x" * 70_000,
]


@settings(
    max_examples=COUNT,
    phases=[Phase.generate],
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
@given(st.sampled_from(list(REGISTRY_CHANNELS)), payloads)
def _draw(channel: topics.Channel, payload: bytes) -> None:
    """Hypothesis draws the hostile messages for the async test below, one per example."""
    SAMPLES.append((channel, payload))


SAMPLES: list[tuple[topics.Channel, bytes]] = []


async def test_hostile_payloads_are_refused_and_nothing_escapes(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    SAMPLES.clear()
    _draw()
    assert len(set(SAMPLES)) > COUNT // 2
    handler = DeviceHandler(pool, clock=lambda: datetime.now(UTC), on_presence=EventBus().publish)
    link = MqttLink(
        mqtt_url, prefix=topic_prefix, keepalive_s=5, instance_id="fuzz", on_reject=handler.reject
    )
    link.device_limit.rate_per_s = link.device_limit.burst = 100_000  # fuzz, not flood
    for channel in REGISTRY_CHANNELS:
        link.subscribe(channel, handler.handle)
    messages = [(c, p) for c, p in SAMPLES] + [(c, p) for p in HAND_MADE for c in REGISTRY_CHANNELS]
    with capture_logs() as logs:
        async with link, aiomqtt.Client(**client_args(mqtt_url), identifier="fuzz-dev") as dev:  # type: ignore[arg-type]
            async with asyncio.timeout(10):
                await link.connected.wait()
            good = json.dumps({"state": "online", "session": 7}).encode()
            await dev.publish(
                topics.topic(topic_prefix, "cam-0002", topics.Channel.STATUS), good, qos=1
            )
            for channel, payload in messages:
                await dev.publish(topics.topic(topic_prefix, "cam-0001", channel), payload, qos=1)
            await dev.publish(
                topics.topic(topic_prefix, "cam-0001", topics.Channel.STATUS), good, qos=1
            )
            async with asyncio.timeout(30):
                while (found := await store.get(pool, "cam-0001")) is None or found.session != 7:
                    await asyncio.sleep(0.05)
                await link.idle()  # and cam-0002's lane, handled beside cam-0001's
    failures = [e for e in logs if e["event"] == "mqtt_handler_failed"]
    assert failures == [], failures[:3]
    assert link.messages_in >= len(messages) + 2
    assert sum(handler.rejected.values()) >= len(HAND_MADE) * len(REGISTRY_CHANNELS) - 5
    other = await store.get(pool, "cam-0002")
    assert other is not None
    assert other.session == 7  # the message naming cam-0002 on cam-0001's topic changed nothing
    print(f"\n{len(messages)} hostile messages: refused by reason {dict(handler.rejected)}")
