"""Registry throughput through the real broker: device messages per second, end to end.

Publishers (plain MQTT clients, QoS 1) send ``health`` messages for many devices through a private
``mosquitto``; the backend's own ``MqttLink`` and ``DeviceHandler`` decode each one, apply it under
a row lock and store it in PostgreSQL (a scratch database). The figure is messages handled per
second from the first publish to the last stored message.

Baselines in the same run, with the same publishers and messages:
- ``broker_only``: a bare subscriber that only counts messages (the broker and client ceiling);
- ``link_only``: the backend's ``MqttLink`` dispatching to a handler that does nothing (the cost
  of our decode and dispatch without the database).

    .venv/bin/python -m bench.registry [--devices 200] [--messages 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import asyncpg

from devices import topics
from devices.handler import REGISTRY_CHANNELS, DeviceHandler
from services import db
from services.events import EventBus
from services.mqtt import MqttLink
from tools import embedded

RESULTS = Path(__file__).parent / "results"
PREFIX = "hc/v1"
Handler = Callable[[topics.Topic, bytes], Awaitable[None]]


def admin_url() -> str:
    return os.environ.get(
        "HOMECARE_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )


@contextlib.asynccontextmanager
async def scratch_database(label: str) -> AsyncIterator[str]:
    """A migrated scratch database on the bench server; dropped afterwards."""
    base = admin_url()
    name = f"hc_bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(base)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = base.rpartition("/")[0] + "/" + name
        conn = await asyncpg.connect(url)
        try:
            await db.migrate(conn)
        finally:
            await conn.close()
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


class Counter:
    """Counts handled messages and wakes a waiter when ``target`` is reached."""

    def __init__(self) -> None:
        self.n = 0
        self.target = 0
        self.reached = asyncio.Event()

    def expect(self, target: int) -> None:
        self.n = 0
        self.target = target
        self.reached.clear()

    def add(self) -> None:
        self.n += 1
        if self.n >= self.target:
            self.reached.set()


def counted(counter: Counter, inner: Handler | None) -> Handler:
    async def handle(topic: topics.Topic, payload: bytes) -> None:
        try:
            if inner is not None:
                await inner(topic, payload)
        finally:
            counter.add()

    return handle


def device_ids(n: int) -> list[str]:
    return [f"bench-{i:05d}" for i in range(n)]


def health_payload(i: int) -> bytes:
    return topics.Health(uptime_s=float(i), link=0.9, ts=round(time.time(), 3)).encode()


async def publish_all(
    url: str, messages: list[tuple[str, bytes]], *, publishers: int, inflight: int = 32
) -> None:
    """Publish every (topic, payload) at QoS 1 from ``publishers`` clients, ``inflight`` each."""
    host = embedded_host(url)

    async def one(k: int, chunk: list[tuple[str, bytes]]) -> None:
        async with aiomqtt.Client(
            host[0], host[1], identifier=f"bench-pub-{k}-{uuid.uuid4().hex[:6]}"
        ) as client:
            client.pending_calls_threshold = inflight + 1
            sem = asyncio.Semaphore(inflight)

            async def send(topic: str, payload: bytes) -> None:
                async with sem:
                    await client.publish(topic, payload, qos=1, timeout=30)

            await asyncio.gather(*(send(t, p) for t, p in chunk))

    await asyncio.gather(*(one(k, messages[k::publishers]) for k in range(publishers)))


def embedded_host(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[1]
    host, _, port = rest.partition(":")
    return host, int(port or 1883)


async def _timed(
    url: str, messages: list[tuple[str, bytes]], counter: Counter, publishers: int
) -> float:
    counter.expect(len(messages))
    start = time.perf_counter()
    await publish_all(url, messages, publishers=publishers)
    last, idle_since = -1, time.monotonic()
    while not counter.reached.is_set():
        if counter.n != last:
            last, idle_since = counter.n, time.monotonic()
        elif time.monotonic() - idle_since > 10:
            raise RuntimeError(f"only {counter.n} of {counter.target} messages arrived")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(counter.reached.wait(), 0.5)
    return time.perf_counter() - start


@contextlib.contextmanager
def broker() -> Iterator[str]:
    """A private mosquitto on a free loopback port whose queues never drop a bench message
    (the default ``max_queued_messages 1000`` would drop what a slow subscriber has not taken)."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = embedded.free_port()
    with tempfile.TemporaryDirectory(prefix="hc-bench-mqtt-") as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\nlog_dest stderr\n"
            "max_queued_messages 0\nmax_inflight_messages 100\n"
        )
        proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield f"mqtt://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(5)


async def _broker_only(url: str, messages: list[tuple[str, bytes]], publishers: int) -> float:
    counter = Counter()
    host = embedded_host(url)
    async with aiomqtt.Client(
        host[0], host[1], identifier=f"bench-sub-{uuid.uuid4().hex[:6]}"
    ) as c:
        await c.subscribe(f"{PREFIX}/dev/+/health", qos=1)

        async def drain() -> None:
            async for _ in c.messages:
                counter.add()

        task = asyncio.create_task(drain())
        try:
            return await _timed(url, messages, counter, publishers)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _through_link(
    url: str,
    messages: list[tuple[str, bytes]],
    publishers: int,
    handler: DeviceHandler | None,
) -> tuple[float, int]:
    counter = Counter()
    link = MqttLink(
        url,
        prefix=PREFIX,
        keepalive_s=30,
        instance_id=f"bench-{uuid.uuid4().hex[:6]}",
        on_reject=handler.reject if handler is not None else None,
    )
    for channel in REGISTRY_CHANNELS:
        link.subscribe(channel, counted(counter, handler.handle if handler else None))
    async with link:
        await asyncio.wait_for(link.connected.wait(), 10)
        elapsed = await _timed(url, messages, counter, publishers)
        return elapsed, link.messages_in


async def run(devices: int = 200, messages: int = 20, publishers: int = 4) -> dict[str, Any]:
    """``devices`` announce themselves, then each sends ``messages`` health messages."""
    ids = device_ids(devices)
    session = int(time.time() * 1000)
    announce = [
        (
            topics.topic(PREFIX, d, topics.Channel.STATUS),
            topics.Status(topics.Presence.ONLINE, session).encode(),
        )
        for d in ids
    ]
    health = [
        (topics.topic(PREFIX, d, topics.Channel.HEALTH), health_payload(i))
        for i in range(messages)
        for d in ids
    ]
    with broker() as url:
        broker_s = await _broker_only(url, health, publishers)
        link_s, _ = await _through_link(url, health, publishers, None)
        async with scratch_database("registry") as db_url, db.open_pool(db_url) as pool:
            handler = DeviceHandler(
                pool, clock=lambda: datetime.now(UTC), on_presence=EventBus().publish
            )
            await _through_link(url, announce, publishers, handler)
            registry_s, _ = await _through_link(url, health, publishers, handler)
            stored = await pool.fetchval(
                "SELECT count(*) FROM devices WHERE health_at IS NOT NULL AND presence = 'online'"
            )
            rejected = dict(handler.rejected)
    if stored != devices or rejected:
        raise RuntimeError(f"registry run incomplete: {stored} of {devices} stored, {rejected}")
    n = len(health)
    result = {
        "devices": devices,
        "messages": n,
        "publishers": publishers,
        "registry_msgs_per_s": round(n / registry_s, 1),
        "link_only_msgs_per_s": round(n / link_s, 1),
        "broker_only_msgs_per_s": round(n / broker_s, 1),
        "registry_over_broker_ratio": round(broker_s / registry_s, 3),
        "registry_over_link_ratio": round(link_s / registry_s, 3),
        "registry_ms_per_msg": round(registry_s / n * 1e3, 3),
        "note": "one backend process, messages handled one at a time per link (in order per "
        "device); each is a row-locked transaction on PostgreSQL; private mosquitto",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "registry.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--devices", type=int, default=200)
    p.add_argument("--messages", type=int, default=20, help="health messages per device")
    p.add_argument("--publishers", type=int, default=4)
    args = p.parse_args()
    from services import logs

    logs.configure("warning", "console")
    print(json.dumps(asyncio.run(run(args.devices, args.messages, args.publishers)), indent=2))


if __name__ == "__main__":
    main()
