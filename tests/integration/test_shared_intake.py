"""Issue 21: the shared device intake. Three consumers, each as a service process builds it
(its own pool, MQTT link, ``DeviceHandler``, batching ``Intake`` on the shared subscription
``$share/hc-registry/...`` and ``DeviceFeed`` on the device feed's ``LISTEN``), in one test
process: each device message is stored by exactly one of them, presence reaches all three
within 1 s, and a lost listener resyncs. Real Mosquitto and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import asyncpg
import pytest

from devices import store
from devices.feed import DeviceFeed
from devices.handler import BATCH_CHANNELS, DeviceHandler
from devices.intake import SHARE_GROUP, Intake
from devices.registry import PresenceChanged, Stored
from kernel.retry import Backoff
from services import db
from services.events import EventBus, Overflow
from services.mqtt import MqttLink, client_args

pytestmark = pytest.mark.integration

FAST = Backoff(first_s=0.1, factor=2.0, max_s=1.0)


@dataclass
class Consumer:
    pool: asyncpg.Pool
    handler: DeviceHandler
    intake: Intake
    feed: DeviceFeed
    bus: EventBus
    link: MqttLink


@contextlib.asynccontextmanager
async def running(coro: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    task = asyncio.create_task(coro)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def consumer(
    database_url: str, mqtt_url: str, prefix: str, name: str
) -> AsyncIterator[Consumer]:
    async with db.open_pool(database_url, max_size=3) as pool:
        bus = EventBus()
        handler = DeviceHandler(pool, clock=lambda: datetime.now(UTC), on_presence=lambda _: None)
        intake = Intake(handler)
        feed = DeviceFeed(pool, bus.publish)
        link = MqttLink(
            mqtt_url, prefix=prefix, keepalive_s=5, instance_id=name, on_reject=handler.reject
        )
        for channel in BATCH_CHANNELS:
            link.subscribe_sink(channel, intake.offer, share_group=SHARE_GROUP)
        async with link, running(intake.run()), running(feed.run(backoff=FAST)):
            async with asyncio.timeout(10):
                await link.connected.wait()
                await feed.ready.wait()
            yield Consumer(pool, handler, intake, feed, bus, link)


@contextlib.asynccontextmanager
async def three(database_url: str, mqtt_url: str, prefix: str) -> AsyncIterator[list[Consumer]]:
    async with (
        consumer(database_url, mqtt_url, prefix, "p1") as a,
        consumer(database_url, mqtt_url, prefix, "p2") as b,
        consumer(database_url, mqtt_url, prefix, "p3") as c,
    ):
        yield [a, b, c]


async def test_each_message_is_stored_once_and_presence_reaches_every_process(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    devices = [f"cam-{i:03d}" for i in range(30)]
    session = int(time.time() * 1000)
    async with three(database_url, mqtt_url, topic_prefix) as consumers:
        with contextlib.ExitStack() as subs:
            feeds = [
                subs.enter_context(c.bus.subscribe(overflow=Overflow.KEEP_ALL)) for c in consumers
            ]
            sent = 0
            async with aiomqtt.Client(**client_args(mqtt_url)) as dev:  # type: ignore[arg-type]
                for d in devices:  # birth, meta, two health reports: in order per device
                    base = f"{topic_prefix}/dev/{d}"
                    await dev.publish(
                        f"{base}/status", b'{"state":"online","session":%d}' % session, qos=1
                    )
                    await dev.publish(
                        f"{base}/meta", b'{"kind":"camera","fw":"1","caps":[]}', qos=1
                    )
                    for ts in (1.0, 2.0):
                        await dev.publish(
                            f"{base}/health", b'{"uptime_s":%.0f,"ts":%.1f}' % (ts, ts), qos=1
                        )
                    sent += 4

                def stored() -> list[int]:
                    return [sum(c.handler.stored.values()) for c in consumers]

                async with asyncio.timeout(10):
                    while sum(stored()) < sent:
                        await asyncio.sleep(0.02)
                    for c in consumers:
                        await c.link.idle()
                        await c.intake.idle()
                per_process = stored()
                assert sum(per_process) == sent  # none lost, none doubled
                assert all(n > 0 for n in per_process), per_process  # the work was shared
                assert all(not c.handler.rejected for c in consumers)

                # every process heard every device come online, through the feed
                async with asyncio.timeout(5):
                    for events in feeds:
                        online: set[str] = set()
                        while online != set(devices):
                            e = await events.queue.get()
                            if isinstance(e, PresenceChanged) and e.presence is Stored.ONLINE:
                                online.add(e.device_id)

                # one device's will: all three processes hear it within 1 s
                started = time.monotonic()
                await dev.publish(
                    f"{topic_prefix}/dev/cam-007/status",
                    b'{"state":"offline","session":%d}' % session,
                    qos=1,
                )
                async with asyncio.timeout(5):
                    for events in feeds:
                        while True:
                            e = await events.queue.get()
                            if isinstance(e, PresenceChanged) and e.device_id == "cam-007":
                                assert e.presence is Stored.OFFLINE
                                break
                reached_all_s = time.monotonic() - started
            assert reached_all_s < 1.0, reached_all_s
        rows = await consumers[0].pool.fetch(
            "SELECT device_id, presence, health FROM devices WHERE device_id = ANY($1::text[])",
            devices,
        )
    assert len(rows) == len(devices)
    assert {r["presence"] for r in rows if r["device_id"] != "cam-007"} == {"online"}
    assert all('"ts": 2.0' in r["health"] for r in rows)  # the newer report, whoever stored it


async def test_a_lost_listener_resyncs_what_it_missed(
    database_url: str, mqtt_url: str, topic_prefix: str, owner: asyncpg.Connection
) -> None:
    async with consumer(database_url, mqtt_url, topic_prefix, "solo") as c:
        async with aiomqtt.Client(**client_args(mqtt_url)) as dev:  # type: ignore[arg-type]
            await dev.publish(
                f"{topic_prefix}/dev/cam-r/status", b'{"state":"online","session":5}', qos=1
            )
        with c.bus.subscribe(overflow=Overflow.KEEP_ALL) as events:
            first = await asyncio.wait_for(events.queue.get(), 5)
            assert isinstance(first, PresenceChanged)
            assert first.presence is Stored.ONLINE
            # a change nobody is told of (no notice), then the listener is lost
            await owner.execute("UPDATE devices SET presence = 'offline' WHERE device_id = 'cam-r'")
            pids = await owner.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND query LIKE 'LISTEN%'"
            )
            assert len(pids) == 1
            c.feed.ready.clear()
            await owner.execute("SELECT pg_terminate_backend($1)", pids[0]["pid"])
            event = await asyncio.wait_for(events.queue.get(), 5)
        assert event == PresenceChanged(
            "cam-r", Stored.OFFLINE, Stored.ONLINE, 5, event.at
        )  # the resync told this process what it missed
        assert c.feed.resyncs == 1
        rec = await store.get(c.pool, "cam-r")
        assert rec is not None
        assert rec.presence is Stored.OFFLINE
