"""The registry against the real Mosquitto and PostgreSQL: births, wills, garbage, commands."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import asyncpg
import pytest

from devices import store, topics
from devices.commands import Commands, CommandTimeout
from devices.handler import REGISTRY_CHANNELS, DeviceHandler
from devices.registry import PresenceChanged, Stored
from homeside.device import DeviceClient, DeviceSpec
from services.events import EventBus
from services.mqtt import MqttLink, client_args

pytestmark = pytest.mark.integration


class Backend:
    def __init__(
        self, link: MqttLink, handler: DeviceHandler, bus: EventBus, commands: Commands
    ) -> None:
        self.link, self.handler, self.bus, self.commands = link, handler, bus, commands


@pytest.fixture
async def backend(pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str) -> AsyncIterator[Backend]:
    bus = EventBus()
    handler = DeviceHandler(pool, clock=lambda: datetime.now(UTC), on_presence=bus.publish)
    link = MqttLink(
        mqtt_url, prefix=topic_prefix, keepalive_s=5, instance_id="test", on_reject=handler.reject
    )
    for channel in REGISTRY_CHANNELS:
        link.subscribe(channel, handler.handle)
    async with link:
        await asyncio.wait_for(link.connected.wait(), 10)
        yield Backend(link, handler, bus, Commands(pool, handler, link.publish, topic_prefix))


@contextlib.asynccontextmanager
async def raw_client(mqtt_url: str) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(**client_args(mqtt_url)) as c:  # type: ignore[arg-type]
        yield c


async def eventually(check: Callable[[], Coroutine[Any, Any, bool]], timeout_s: float = 5) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.02)


async def presence(pool: asyncpg.Pool, device_id: str) -> str | None:
    rec = await store.get(pool, device_id)
    return rec.presence.value if rec else None


async def test_birth_from_a_foreign_client_creates_a_quarantined_device(
    backend: Backend, pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    with backend.bus.subscribe() as events:
        async with raw_client(mqtt_url) as c:
            await c.publish(
                f"{topic_prefix}/dev/cam-new/status",
                b'{"state":"online","session":1}',
                qos=1,
                retain=True,
            )
        event = await asyncio.wait_for(anext(aiter(events)), 5)
    assert isinstance(event, PresenceChanged)
    assert event.device_id == "cam-new"
    rec = await store.get(pool, "cam-new")
    assert rec is not None
    assert rec.quarantined
    assert rec.presence is Stored.ONLINE


@pytest.mark.parametrize(
    ("topic_tail", "payload", "reason"),
    [
        ("dev/cam-1/status", b"garbage", "bad_json"),
        ("dev/cam-1/status", b'{"state":"online","session":"1"}', "wrong_type"),
        ("dev/cam-1/status", b'{"state":"online","session":1,"x":1}', "unknown_field"),
        ("dev/cam-1/status", b'{"state":"online","session":1,"id":"cam-2"}', "foreign_topic"),
        (
            "dev/cam-1/status",
            b'{"state":"online","session":1,"p":"' + b"x" * 70000 + b'"}',
            "too_large",
        ),
        ("dev/CAM_1/status", b'{"state":"online","session":1}', "bad_device_id"),
        ("dev/cam-1/health", b'{"uptime_s": 1}', "unknown_device"),
        ("dev/cam-1/cmd/ack", b'{"id":"nope","ok":true}', "unknown_command"),
    ],
)
async def test_bad_messages_are_counted_and_change_nothing(
    backend: Backend,
    pool: asyncpg.Pool,
    mqtt_url: str,
    topic_prefix: str,
    topic_tail: str,
    payload: bytes,
    reason: str,
) -> None:
    before = await pool.fetchval("SELECT count(*) FROM devices")
    async with raw_client(mqtt_url) as c:
        await c.publish(f"{topic_prefix}/{topic_tail}", payload, qos=1)
        # a valid message after it proves the link kept serving
        await c.publish(
            f"{topic_prefix}/dev/cam-ok/status", b'{"state":"online","session":1}', qos=1
        )

    async def ok_seen() -> bool:
        return await presence(pool, "cam-ok") == "online"

    await eventually(ok_seen)
    await backend.link.idle()  # devices are handled in lanes: cam-ok may have gone first
    assert backend.handler.rejected[reason] == 1
    assert await pool.fetchval("SELECT count(*) FROM devices WHERE device_id <> 'cam-ok'") == before


async def test_stale_will_of_an_old_session_keeps_the_device_online(
    backend: Backend, pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    status = f"{topic_prefix}/dev/cam-1/status"
    async with raw_client(mqtt_url) as c:
        await c.publish(status, b'{"state":"online","session":10}', qos=1)
        await c.publish(status, b'{"state":"online","session":11}', qos=1)
        await c.publish(status, b'{"state":"offline","session":10}', qos=1)
        await c.publish(
            f"{topic_prefix}/dev/cam-2/status", b'{"state":"online","session":1}', qos=1
        )

    async def done() -> bool:
        return await presence(pool, "cam-2") == "online"

    await eventually(done)
    await backend.link.idle()  # devices are handled in lanes: cam-2 may have gone first
    rec = await store.get(pool, "cam-1")
    assert rec is not None
    assert (rec.presence, rec.session) == (Stored.ONLINE, 11)
    assert backend.handler.rejected["stale_will"] == 1


async def test_simulated_device_lifecycle_and_command_ack(
    backend: Backend, pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    stop = asyncio.Event()
    acked: list[topics.CommandOp] = []

    async def on_wake(cmd: topics.Command) -> tuple[bool, str | None]:
        acked.append(cmd.op)
        return True, None

    device = DeviceClient(
        DeviceSpec("cam-7", topics.DeviceKind.CAMERA),
        mqtt_url,
        prefix=topic_prefix,
        on_command={topics.CommandOp.WAKE: on_wake},
    )
    task = asyncio.create_task(device.run(stop))
    try:

        async def online() -> bool:
            rec = await store.get(pool, "cam-7")
            return rec is not None and rec.presence is Stored.ONLINE and rec.kind is not None

        await eventually(online)
        ack = await backend.commands.send("cam-7", topics.CommandOp.WAKE, timeout_s=5)
        assert ack.ok
        assert acked == [topics.CommandOp.WAKE]
        await backend.handler.acks_stored()  # stored once the sender has it
        rows = await store.recent_commands(pool, "cam-7")
        assert rows[0]["ack_ok"] is True
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)

    async def stopped() -> bool:
        return await presence(pool, "cam-7") == "stopped"

    await eventually(stopped)


async def test_unacknowledged_command_times_out(
    backend: Backend, mqtt_url: str, topic_prefix: str
) -> None:
    async with raw_client(mqtt_url) as c:
        await c.publish(
            f"{topic_prefix}/dev/cam-mute/status", b'{"state":"online","session":1}', qos=1
        )
    await asyncio.sleep(0.3)
    with pytest.raises(CommandTimeout):
        await backend.commands.send("cam-mute", topics.CommandOp.WAKE, timeout_s=0.5)


async def test_device_reannounces_when_the_backend_comes_online(
    backend: Backend, pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    stop = asyncio.Event()
    device = DeviceClient(
        DeviceSpec("cam-8", topics.DeviceKind.CAMERA), mqtt_url, prefix=topic_prefix
    )
    task = asyncio.create_task(device.run(stop))
    try:
        await asyncio.wait_for(device.connected.wait(), 10)

        async def online() -> bool:
            return await presence(pool, "cam-8") == "online"

        await eventually(online)
        await pool.execute("DELETE FROM devices WHERE device_id = 'cam-8'")
        async with raw_client(mqtt_url) as c:
            await c.publish(
                topics.server_status_topic(topic_prefix),
                topics.server_status(topics.Presence.ONLINE, "other"),
                qos=1,
            )
        await eventually(online)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


class LateAckHandler(DeviceHandler):
    """Takes an ack only once another process has stored it (that process wins the race)."""

    async def handle(self, topic: topics.Topic, payload: bytes) -> None:
        if topic.channel is topics.Channel.CMD_ACK:
            command_id = topics.decode_ack(payload).id

            async def stored_by_other() -> bool:
                return bool(
                    await self._pool.fetchval(
                        "SELECT acked_at IS NOT NULL FROM device_commands WHERE command_id = $1",
                        command_id,
                    )
                )

            await eventually(stored_by_other)
        await super().handle(topic, payload)


async def test_ack_stored_by_another_process_still_resolves_the_sender(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    clock = lambda: datetime.now(UTC)  # noqa: E731
    bus = EventBus()
    late = LateAckHandler(pool, clock=clock, on_presence=bus.publish)
    other = DeviceHandler(pool, clock=clock, on_presence=bus.publish)
    link_a = MqttLink(mqtt_url, prefix=topic_prefix, keepalive_s=5, instance_id="ack-a")
    link_b = MqttLink(mqtt_url, prefix=topic_prefix, keepalive_s=5, instance_id="ack-b")
    for channel in REGISTRY_CHANNELS:
        link_a.subscribe(channel, late.handle)
        link_b.subscribe(channel, other.handle)
    stop = asyncio.Event()
    device = DeviceClient(
        DeviceSpec("cam-9", topics.DeviceKind.CAMERA), mqtt_url, prefix=topic_prefix
    )
    async with link_a, link_b:
        await asyncio.wait_for(link_a.connected.wait(), 10)
        await asyncio.wait_for(link_b.connected.wait(), 10)
        task = asyncio.create_task(device.run(stop))
        try:

            async def online() -> bool:
                return await presence(pool, "cam-9") == "online"

            await eventually(online)
            commands = Commands(pool, late, link_a.publish, topic_prefix)
            ack = await commands.send("cam-9", topics.CommandOp.WAKE, timeout_s=10)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    assert ack.ok
    assert late.rejected["unknown_command"] == 0
    assert other.rejected["unknown_command"] == 0
    rows = await store.recent_commands(pool, "cam-9")
    assert [(r["op"], r["ack_ok"]) for r in rows] == [("wake", True)]
