"""One MQTT connection per process: the device registry and signalling subscribe on the same
``MqttLink`` (one client, one reconnect loop); a subscription made after the link connected is
live before ``subscribed()`` returns; a crash in the link's loop is reported by the supervisor.
Real Mosquitto."""

from __future__ import annotations

import asyncio
import uuid

import aiomqtt
import pytest

from devices import topics
from services.mqtt import MqttLink, client_args
from services.signalling.bus import BusHandlers, SignalBus, route_topic
from services.supervisor import Supervisor

pytestmark = pytest.mark.integration


def link_for(mqtt_url: str, prefix: str, **kw: object) -> MqttLink:
    return MqttLink(
        mqtt_url, prefix=prefix, keepalive_s=5, instance_id=f"rt-{uuid.uuid4().hex[:6]}", **kw
    )  # type: ignore[arg-type]


async def test_registry_and_signalling_share_one_connection(
    mqtt_url: str, topic_prefix: str
) -> None:
    seen: dict[str, list[object]] = {"registry": [], "signal": [], "routed": [], "status": []}
    # signalling no longer reads status (presence reaches it through the device feed)

    async def registry(topic: topics.Topic, payload: bytes) -> None:
        seen["registry"].append((topic.device_id, topic.channel.value))

    async def device_signal(device_id: str, payload: bytes) -> None:
        seen["signal"].append(device_id)

    async def device_status(device_id: str, payload: bytes) -> None:
        seen["status"].append(device_id)

    async def ignore(device_id: str, payload: bytes) -> None:
        return None

    async def routed(payload: bytes) -> None:
        seen["routed"].append(payload)

    link = link_for(mqtt_url, topic_prefix)
    link.subscribe(topics.Channel.STATUS, registry)
    handlers = BusHandlers(device_signal, ignore, device_status, routed)
    async with link:
        async with asyncio.timeout(10):
            await link.connected.wait()
        # signalling joins after the link connected: its subscriptions are live on return
        async with SignalBus(link, instance_id="node-a", handlers=handlers) as bus:
            assert bus.connected is link.connected  # one connection, one readiness
            async with aiomqtt.Client(
                **client_args(mqtt_url), identifier=f"dev-{uuid.uuid4().hex[:6]}"
            ) as dev:  # type: ignore[arg-type]
                status = topics.topic(topic_prefix, "cam-0001", topics.Channel.STATUS)
                out = topics.topic(topic_prefix, "cam-0001", topics.Channel.WEBRTC_OUT)
                await dev.publish(status, b'{"state": "online", "session": 1}', qos=1)
                await dev.publish(out, b"{}", qos=1)
                await dev.publish(route_topic(topic_prefix, "node-a"), b"routed", qos=1)
                async with asyncio.timeout(10):
                    while not (seen["registry"] and seen["signal"] and seen["routed"]):
                        await asyncio.sleep(0.02)
                    await link.idle()
        # the bus left: its handlers are gone, the registry's stay
        assert link._handlers[topics.Channel.STATUS] == [registry]
        assert topics.Channel.WEBRTC_OUT not in link._handlers
    assert seen["registry"] == [("cam-0001", "status")]
    assert seen["status"] == []
    assert seen["signal"] == ["cam-0001"]
    assert seen["routed"] == [b"routed"]


def test_every_user_of_a_channel_agrees_on_sharing() -> None:
    link = MqttLink("mqtt://127.0.0.1", prefix="p", keepalive_s=5, instance_id="x")

    async def h(topic: topics.Topic, payload: bytes) -> None:
        return None

    link.subscribe(topics.Channel.WEBRTC_OUT, h, share_group="hc-signal")
    with pytest.raises(ValueError, match="already subscribed"):
        link.subscribe(topics.Channel.WEBRTC_OUT, h)
    with pytest.raises(ValueError, match="exact"):
        link.subscribe_topic("p/server/+", lambda payload: asyncio.sleep(0))


async def test_a_crash_in_the_link_s_loop_is_reported(mqtt_url: str, topic_prefix: str) -> None:
    def broken_hook() -> None:
        raise RuntimeError("a bug in on_connect")

    async with Supervisor() as sup:
        link = link_for(mqtt_url, topic_prefix, on_connect=broken_hook, guard=sup.guard)
        async with link:
            async with asyncio.timeout(10):
                while not sup.failed:
                    await asyncio.sleep(0.02)
        assert sup.failed == {"mqtt-link": "RuntimeError"}
        assert sup.crashes["mqtt-link"] == 1
