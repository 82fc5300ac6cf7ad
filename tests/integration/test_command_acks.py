"""A command's ack against the real Mosquitto and PostgreSQL: the sender goes on as soon as the
device it sent the command to acks, whatever the database does with the ack meanwhile; an ack
on another device's topic releases nothing."""

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
from devices.commands import Commands
from devices.handler import REGISTRY_CHANNELS, DeviceHandler
from homeside.device import DeviceClient, DeviceSpec
from services.events import EventBus
from services.mqtt import MqttLink, client_args

pytestmark = pytest.mark.integration


class Backend:
    def __init__(self, link: MqttLink, handler: DeviceHandler, commands: Commands) -> None:
        self.link, self.handler, self.commands = link, handler, commands


@pytest.fixture
async def backend(pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str) -> AsyncIterator[Backend]:
    handler = DeviceHandler(pool, clock=lambda: datetime.now(UTC), on_presence=EventBus().publish)
    link = MqttLink(
        mqtt_url, prefix=topic_prefix, keepalive_s=5, instance_id="acks", on_reject=handler.reject
    )
    for channel in REGISTRY_CHANNELS:
        link.subscribe(channel, handler.handle)
    async with link:
        await asyncio.wait_for(link.connected.wait(), 10)
        yield Backend(link, handler, Commands(pool, handler, link.publish, topic_prefix))
        await handler.acks_stored()


async def eventually(check: Callable[[], Coroutine[Any, Any, bool]], timeout_s: float = 5) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.02)


async def ack_row(pool: asyncpg.Pool, command_id: str) -> tuple[Any, ...]:
    row = await pool.fetchrow(
        "SELECT device_id, acked_at IS NOT NULL AS acked, ack_ok FROM device_commands"
        " WHERE command_id = $1",
        command_id,
    )
    assert row is not None
    return tuple(row)


async def test_an_ack_releases_the_sender_while_its_row_is_locked(
    backend: Backend, pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    """Another transaction holds the command's row until after the sender has its ack: the
    sender is not held by the ack's write, nor is the device's next message; the ack is stored
    once the row is free."""
    stop = asyncio.Event()
    blocker = await pool.acquire()  # held across the device's ack: released in finally
    locked = blocker.transaction()
    sent: list[str] = []

    async def lock_then_ack(command: topics.Command) -> tuple[bool, str | None]:
        # the device acks only once the command's row is locked by another transaction
        await locked.start()
        sent.append(command.id)
        await blocker.execute(
            "SELECT 1 FROM device_commands WHERE command_id = $1 FOR UPDATE", command.id
        )
        return True, None

    device = DeviceClient(
        DeviceSpec("cam-lock", topics.DeviceKind.CAMERA),
        mqtt_url,
        prefix=topic_prefix,
        on_command={topics.CommandOp.WAKE: lock_then_ack},
    )
    task = asyncio.create_task(device.run(stop))
    try:

        async def online() -> bool:
            rec = await store.get(pool, "cam-lock")
            return rec is not None and rec.presence.value == "online"

        await eventually(online)
        ack = await backend.commands.send("cam-lock", topics.CommandOp.WAKE, timeout_s=5)
        assert ack.ok
        [command_id] = sent
        # the sender has its ack while the ack's write still waits for the row
        assert await ack_row(pool, command_id) == ("cam-lock", False, None)
        # the device's next message, on the same lane, is not held behind that write
        await device.publish(topics.Channel.HEALTH, topics.Health(uptime_s=4242.0).encode())

        async def health_stored() -> bool:
            rec = await store.get(pool, "cam-lock")
            return rec is not None and (rec.health or {}).get("uptime_s") == 4242.0

        await eventually(health_stored)
        assert await ack_row(pool, command_id) == ("cam-lock", False, None)
    finally:
        if sent:  # the lock's transaction was started
            await locked.rollback()
        await pool.release(blocker)
        stop.set()
        await asyncio.wait_for(task, 10)
    await backend.handler.acks_stored()
    assert await ack_row(pool, command_id) == ("cam-lock", True, True)
    assert sum(backend.handler.rejected.values()) == 0


@contextlib.asynccontextmanager
async def raw_device(mqtt_url: str, prefix: str, device_id: str) -> AsyncIterator[aiomqtt.Client]:
    """A device by hand: announced online, subscribed to its commands, acking none by itself."""
    async with aiomqtt.Client(**client_args(mqtt_url)) as c:  # type: ignore[arg-type]
        await c.subscribe(topics.topic(prefix, device_id, topics.Channel.CMD), qos=1)
        await c.publish(
            topics.topic(prefix, device_id, topics.Channel.STATUS),
            b'{"state":"online","session":1}',
            qos=1,
        )
        yield c


async def test_an_ack_on_another_devices_topic_releases_nothing(
    backend: Backend, pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    async with (
        raw_device(mqtt_url, topic_prefix, "cam-own") as own,
        raw_device(mqtt_url, topic_prefix, "cam-other") as other,
    ):

        async def both_known() -> bool:
            return all([await store.get(pool, d) for d in ("cam-own", "cam-other")])

        await eventually(both_known)
        send = asyncio.create_task(
            backend.commands.send("cam-own", topics.CommandOp.WAKE, timeout_s=10)
        )
        message = await asyncio.wait_for(anext(aiter(own.messages)), 5)
        command = topics.decode_command(bytes(message.payload))  # type: ignore[arg-type]
        forged = topics.CommandAck(id=command.id, ok=True).encode()
        await other.publish(
            topics.topic(topic_prefix, "cam-other", topics.Channel.CMD_ACK), forged, qos=1
        )

        async def refused() -> bool:
            return backend.handler.rejected["unknown_command"] == 1

        await eventually(refused)
        assert not send.done()
        assert await ack_row(pool, command.id) == ("cam-own", False, None)

        # its own device's ack releases it
        refusal = topics.CommandAck(id=command.id, ok=False, detail="busy").encode()
        await own.publish(
            topics.topic(topic_prefix, "cam-own", topics.Channel.CMD_ACK), refusal, qos=1
        )
        ack = await asyncio.wait_for(send, 5)
    assert (ack.id, ack.ok, ack.detail) == (command.id, False, "busy")
    await backend.handler.acks_stored()
    assert await ack_row(pool, command.id) == ("cam-own", True, False)
    assert backend.handler.rejected == {"unknown_command": 1}
