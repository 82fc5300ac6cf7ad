"""Registry throughput through the real broker: device messages per second, end to end.

Publishers (plain MQTT clients, QoS 1, in another process: ``--publish``) send ``health``
messages for many devices through a private ``mosquitto``; the backend's own ``MqttLink``, the
shared intake (``devices.intake``: batches, one transaction each) and ``DeviceHandler`` decode,
apply and store them in PostgreSQL (a scratch database). The figure is messages stored per second
from the first publish to the last stored message.

Baselines in the same run, with the same publishers and messages:
- ``broker_only``: a bare subscriber that only counts messages (the broker and client ceiling);
  ``registry_over_broker_ratio`` is the registry's rate over it (target: at least 0.5);
- ``link_only``: the backend's ``MqttLink`` giving each message to a sink that only counts
  (the service's receive path, as the intake gets its messages, without the store);
- ``single``: the registry as before the intake, one row-locked transaction per message.

Then the re-announce after a broker restart: ``--reannounce`` devices (default 10,000) are on
record online; the broker is restarted; the backend's link reconnects and publishes its birth,
and the devices (simulated cheaply: 8 aiomqtt clients in another process, 100 in flight each)
re-announce with a new session (``status``, ``meta``, ``health`` each). ``reannounce_s`` is the
time from the broker listening again to every device online with its new session in the
registry.

    .venv/bin/python -m bench.registry [--devices 200] [--messages 20] [--reannounce 10000]
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
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import asyncpg

from bench import mqttraw
from devices import topics
from devices.handler import BATCH_CHANNELS, REGISTRY_CHANNELS, DeviceHandler
from devices.intake import SHARE_GROUP, Intake
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


class Mosquitto:
    """A private mosquitto on a fixed loopback port that can be restarted (the re-announce),
    whose queues never drop a bench message (the default ``max_queued_messages 1000`` would drop
    what a slow subscriber has not taken)."""

    def __init__(self, tmp: str) -> None:
        self.port = embedded.free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.conf = Path(tmp) / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nlog_dest stderr\n"
            "max_queued_messages 0\nmax_inflight_messages 100\nmax_connections -1\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([binary, "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None


@contextlib.contextmanager
def broker() -> Iterator[Mosquitto]:
    with tempfile.TemporaryDirectory(prefix="hc-bench-mqtt-") as tmp:
        m = Mosquitto(tmp)
        m.start()
        try:
            yield m
        finally:
            m.stop()


# ------------------------------------------------------------------ the publishers' process


def messages_of(kind: str, devices: int, messages: int, session: int) -> list[tuple[str, bytes]]:
    """What the publishers' process sends: ``health`` (``messages`` per device, device by
    device within each round) or ``announce`` (status, meta, health per device)."""
    ids = device_ids(devices)
    if kind == "health":
        return [
            (topics.topic(PREFIX, d, topics.Channel.HEALTH), health_payload(i))
            for i in range(messages)
            for d in ids
        ]
    meta = topics.Meta(kind=topics.DeviceKind.CAMERA, fw="bench", caps=()).encode()
    status = topics.Status(topics.Presence.ONLINE, session).encode()
    out: list[tuple[str, bytes]] = []
    for i, d in enumerate(ids):
        out.append((topics.topic(PREFIX, d, topics.Channel.STATUS), status))
        out.append((topics.topic(PREFIX, d, topics.Channel.META), meta))
        out.append((topics.topic(PREFIX, d, topics.Channel.HEALTH), health_payload(i)))
    return out


async def _publisher(url: str, kind: str, devices: int, messages: int, session: int) -> None:
    """``--publish``: make the messages, say ``ready``, publish them on ``go`` (stdin); for
    ``announce``, on the backend's next birth after ``go`` (a broker restart in between)."""
    batch = messages_of(kind, devices, messages, session)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    await reader.readline()
    if kind == "announce":
        await _await_birth(url)
    await publish_all(url, batch, publishers=8, inflight=100)
    print("done", flush=True)


async def _await_birth(url: str) -> None:
    """Wait for the broker to go (the restart), then reconnect until it is back and the
    backend's ``server/status`` says online again (the birth before the restart is ignored)."""
    host = embedded_host(url)
    dropped = False
    while True:
        try:
            async with aiomqtt.Client(
                host[0], host[1], identifier=f"bench-w-{uuid.uuid4().hex[:6]}", timeout=0.5
            ) as c:
                await c.subscribe(topics.server_status_topic(PREFIX), qos=1)
                async for m in c.messages:
                    payload = m.payload if isinstance(m.payload, bytes) else b""
                    if dropped and topics.decode_server_status(payload) is topics.Presence.ONLINE:
                        return
        except aiomqtt.MqttError:
            dropped = True
            await asyncio.sleep(0.02)


async def _raw_publisher(url: str, devices: int, messages: int, part: int, parts: int) -> None:
    """``--raw``: this process's devices' ``health`` messages (every ``parts``-th device from
    ``part``: a device's messages stay in one process, in order) encoded as one block of QoS 1
    PUBLISH packets before ``go``; on ``go`` one connection writes the block at once and reads
    the PUBACKs back; prints ``done <seconds>`` (``go`` to the last PUBACK: the broker has taken
    every message). The publisher costs one write, so what it feeds is the subscriber's limit."""
    ids = device_ids(devices)
    mine = [
        (topics.topic(PREFIX, ids[i], topics.Channel.HEALTH), health_payload(r))
        for r in range(messages)
        for i in range(part, devices, parts)
    ]
    block = b"".join(mqttraw.publish(t, p, pid=k % 65535 + 1) for k, (t, p) in enumerate(mine))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    await reader.readline()
    start = time.perf_counter()
    acked = asyncio.Event()
    count = [0]

    def on_puback() -> None:
        count[0] += 1
        if count[0] >= len(mine):
            acked.set()

    host, port = embedded_host(url)
    conn = await mqttraw.open_connection(
        host, port, f"bench-raw-{part}-{uuid.uuid4().hex[:6]}", keepalive_s=60,
        on_puback=on_puback,
    )  # fmt: skip
    conn.write(block)
    await acked.wait()
    print(f"done {time.perf_counter() - start:.4f}", flush=True)
    await reader.readline()


class RawPublishers:
    """``parts`` raw publishers' processes (``python -m bench.registry --raw``), together
    sending every device's ``messages`` health messages."""

    def __init__(self, url: str, devices: int, messages: int, parts: int) -> None:
        self.procs = []
        for k in range(parts):
            cmd = [sys.executable, "-m", "bench.registry", "--raw", url, str(devices),
                   str(messages), str(k), str(parts)]  # fmt: skip
            self.procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE))
        for proc in self.procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != b"ready":
                raise RuntimeError("a raw publishers' process did not start")

    def go(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.flush()

    def published_s(self) -> float:
        """The slowest publisher's ``go`` to its last PUBACK."""
        out = []
        for proc in self.procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().decode().split()
            if not line or line[0] != "done":
                raise RuntimeError("a raw publishers' process did not finish")
            out.append(float(line[1]))
        return max(out)

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait(5)


class Publishers:
    """The publishers' process (``python -m bench.registry --publish``)."""

    def __init__(self, url: str, kind: str, devices: int, messages: int, session: int) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.registry",
                "--publish",
                url,
                kind,
                str(devices),
                str(messages),
                str(session),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("the publishers' process did not start")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


# ------------------------------------------------------------------ the subscribers


class Timed:
    """One timed delivery: ``s`` from ``go`` to the last message counted, ``published_s`` from
    ``go`` to the broker having acked every publish (``None`` for the aiomqtt publishers)."""

    def __init__(self, s: float, published_s: float | None, cpu_s: float = 0.0) -> None:
        self.s = s
        self.published_s = published_s
        self.cpu_s = cpu_s  # this process's CPU over ``s`` (the subscriber's, or the registry's)


async def _count_until(count: Callable[[], int], target: int, start: float) -> float:
    last, idle_since = -1, time.monotonic()
    while (n := count()) < target:
        if n != last:
            last, idle_since = n, time.monotonic()
        elif time.monotonic() - idle_since > 10:
            raise RuntimeError(f"only {n} of {target} messages arrived")
        await asyncio.sleep(0.002)
    return time.perf_counter() - start


async def _timed_elsewhere(
    url: str,
    devices: int,
    messages: int,
    count: Callable[[], int],
    target: int,
    parts: int,
) -> Timed:
    """From ``go`` to ``count() >= target``, the messages sent by ``parts`` raw publishers'
    processes (:func:`_raw_publisher`)."""
    pubs = RawPublishers(url, devices, messages, parts)
    try:
        start, cpu = time.perf_counter(), time.process_time()
        pubs.go()
        s = await _count_until(count, target, start)
        cpu_s = time.process_time() - cpu
        published = await asyncio.to_thread(pubs.published_s)
        return Timed(s, published, cpu_s)
    finally:
        pubs.close()


async def _broker_only(url: str, devices: int, messages: int, parts: int) -> Timed:
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
            return await _timed_elsewhere(
                url, devices, messages, lambda: counter.n, devices * messages, parts
            )
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _raw_subscriber(url: str, devices: int, messages: int, parts: int) -> Timed:
    """The broker's own ceiling: a subscriber of ``bench.mqttraw`` (no client library) that
    acks and counts."""
    counter = Counter()
    host, port = embedded_host(url)
    conn = await mqttraw.open_connection(
        host, port, f"bench-rawsub-{uuid.uuid4().hex[:6]}", keepalive_s=60,
        on_publish=counter.add,
    )  # fmt: skip
    try:
        conn.write(mqttraw.subscribe(conn.next_pid(), [f"{PREFIX}/dev/+/health"]))
        await asyncio.sleep(0.2)  # the SUBACK (the raw client does not wait for it)
        return await _timed_elsewhere(
            url, devices, messages, lambda: counter.n, devices * messages, parts
        )
    finally:
        conn.write(mqttraw.DISCONNECT)
        if conn.transport is not None:
            conn.transport.close()


def _link(url: str, handler: DeviceHandler | None) -> MqttLink:
    return MqttLink(
        url,
        prefix=PREFIX,
        keepalive_s=30,
        instance_id=f"bench-{uuid.uuid4().hex[:6]}",
        on_reject=handler.reject if handler is not None else None,
    )


async def _link_only(url: str, devices: int, messages: int, parts: int) -> Timed:
    """The service's receive path without the store: the link's sink, counting."""
    counter = Counter()
    link = _link(url, None)
    for channel in BATCH_CHANNELS:
        link.subscribe_sink(channel, lambda _t, _p: counter.add(), share_group=SHARE_GROUP)
    async with link:
        await asyncio.wait_for(link.connected.wait(), 10)
        return await _timed_elsewhere(
            url, devices, messages, lambda: counter.n, devices * messages, parts
        )


def stored(handler: DeviceHandler) -> int:
    return sum(handler.stored.values())


async def _single(
    url: str, handler: DeviceHandler, devices: int, messages: int, parts: int
) -> Timed:
    """The registry as before the intake: every message its own transaction."""
    link = _link(url, handler)
    for channel in REGISTRY_CHANNELS:
        link.subscribe(channel, handler.handle)
    async with link:
        await asyncio.wait_for(link.connected.wait(), 10)
        target = stored(handler) + devices * messages
        return await _timed_elsewhere(
            url, devices, messages, lambda: stored(handler), target, parts
        )


@contextlib.asynccontextmanager
async def intake_link(url: str, handler: DeviceHandler) -> AsyncIterator[MqttLink]:
    """The backend as ``services.app`` wires it: the shared intake's batches."""
    intake = Intake(handler)
    link = _link(url, handler)
    for channel in BATCH_CHANNELS:
        link.subscribe_sink(channel, intake.offer, share_group=SHARE_GROUP)
    task = asyncio.create_task(intake.run())
    try:
        async with link:
            await asyncio.wait_for(link.connected.wait(), 10)
            yield link
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _batched(
    url: str, handler: DeviceHandler, devices: int, messages: int, parts: int
) -> Timed:
    async with intake_link(url, handler):
        target = stored(handler) + devices * messages
        return await _timed_elsewhere(
            url, devices, messages, lambda: stored(handler), target, parts
        )


async def seed(pool: asyncpg.Pool, devices: int, session: int) -> None:
    """``devices`` on record, online with ``session`` (as before a broker restart)."""
    await pool.execute(
        "INSERT INTO devices (device_id, kind, presence, session, last_seen)"
        " SELECT d, 'camera', 'online', $2, now() FROM unnest($1::text[]) AS d"
        " ON CONFLICT (device_id) DO UPDATE SET presence = 'online', session = $2",
        device_ids(devices),
        session,
    )


async def reannounce(mqtt: Mosquitto, pool: asyncpg.Pool, devices: int) -> dict[str, Any]:
    """The broker restarts under ``devices`` devices; each re-announces with a new session."""
    old = int(time.time() * 1000) - 60_000
    new = old + 30_000
    await seed(pool, devices, old)
    handler = DeviceHandler(
        pool,
        clock=lambda: datetime.now(UTC),
        on_presence=lambda _: None,
        quarantine_cap_per_hour=devices,
    )
    pubs = Publishers(mqtt.url, "announce", devices, 0, new)
    try:
        async with intake_link(mqtt.url, handler) as link:
            pubs.go()  # armed: they announce at the backend's next birth
            mqtt.stop()
            mqtt.start()
            back = time.perf_counter()
            while not (link.connected.is_set() and link.reconnected_at is not None):  # noqa: ASYNC110 (the link has no event for a reconnect)
                await asyncio.sleep(0.005)
            linked = time.perf_counter()
            sql = "SELECT count(*) FROM devices WHERE presence = 'online' AND session = $1"
            deadline = time.monotonic() + 120
            while await pool.fetchval(sql, new) < devices:
                if time.monotonic() > deadline:
                    raise RuntimeError("the re-announce did not complete in 120 s")
                await asyncio.sleep(0.02)
            done = time.perf_counter()
    finally:
        pubs.close()
    return {
        "reannounce_devices": devices,
        "reannounce_messages": 3 * devices,
        "reannounce_s": round(done - back, 3),
        "reannounce_link_back_s": round(linked - back, 3),
        "reannounce_stored_msgs_per_s": round(stored(handler) / (done - linked), 1),
        "reannounce_rejected": dict(handler.rejected),
    }


def _rates(n: int, t: Timed) -> dict[str, float | None]:
    return {
        "msgs_per_s": round(n / t.s, 1),
        "received_s": round(t.s, 3),
        "published_s": None if t.published_s is None else round(t.published_s, 3),
        "cpu_us_per_msg": round(t.cpu_s / n * 1e6, 1),
    }


async def run(
    devices: int = 300,
    messages: int = 100,
    publishers: int = 2,
    single_messages: int = 20,
    reannounce_n: int = 10_000,
) -> dict[str, Any]:
    """``devices`` announce themselves, then each sends ``messages`` health messages (the
    one-transaction-per-message baseline ``single_messages``), from ``publishers`` raw
    publishers' processes; the bare subscriber also from one, to show it saturated; then the
    re-announce of ``reannounce_n`` devices after a broker restart (0: skipped)."""
    session = int(time.time() * 1000)
    announce = [
        (
            topics.topic(PREFIX, d, topics.Channel.STATUS),
            topics.Status(topics.Presence.ONLINE, session).encode(),
        )
        for d in device_ids(devices)
    ]
    n, n_single = devices * messages, devices * single_messages
    with broker() as mqtt:
        url = mqtt.url
        bare = {
            parts: _rates(n, await _broker_only(url, devices, messages, parts))
            for parts in sorted({1, publishers})
        }
        raw = _rates(n, await _raw_subscriber(url, devices, messages, publishers))
        link = _rates(n, await _link_only(url, devices, messages, publishers))
        async with scratch_database("registry") as db_url, db.open_pool(db_url) as pool:
            handler = DeviceHandler(
                pool, clock=lambda: datetime.now(UTC), on_presence=EventBus().publish
            )
            async with intake_link(url, handler):
                await publish_all(url, announce, publishers=4)
                while stored(handler) < devices:  # noqa: ASYNC110 (a counter, polled)
                    await asyncio.sleep(0.01)
            batched = _rates(n, await _batched(url, handler, devices, messages, publishers))
            single = _rates(
                n_single, await _single(url, handler, devices, single_messages, publishers)
            )
            count = await pool.fetchval(
                "SELECT count(*) FROM devices WHERE health_at IS NOT NULL AND presence = 'online'"
            )
            rejected = dict(handler.rejected)
            again = await reannounce(mqtt, pool, reannounce_n) if reannounce_n else {}
    if count != devices or rejected:
        raise RuntimeError(f"registry run incomplete: {count} of {devices} stored, {rejected}")
    ceiling = max(float(r["msgs_per_s"] or 0) for r in bare.values())
    most = bare[max(bare)]
    registry = float(batched["msgs_per_s"] or 0)
    result = {
        "devices": devices,
        "messages": n,
        "single_messages": n_single,
        "publishers": publishers,
        "registry_msgs_per_s": registry,
        "registry_single_msgs_per_s": single["msgs_per_s"],
        "link_only_msgs_per_s": link["msgs_per_s"],
        "broker_only_msgs_per_s": ceiling,
        "broker_only_by_publishers": {str(k): v for k, v in bare.items()},
        # the publishers were not the limit: the broker had every message (acked) well before
        # the bare subscriber had them, and more publishers did not raise its rate much
        "broker_only_backlogged": bool(
            most["published_s"] is not None
            and float(most["published_s"]) < 0.6 * float(most["received_s"] or 0)
        ),
        "broker_only_more_publishers_gain": round(
            float(most["msgs_per_s"] or 0) / float(bare[1]["msgs_per_s"] or 1), 3
        ),
        "raw_subscriber_msgs_per_s": raw["msgs_per_s"],
        "raw_subscriber_timing": raw,
        "registry_over_raw_subscriber_ratio": round(registry / float(raw["msgs_per_s"] or 1), 3),
        "registry_timing": batched,
        "link_only_timing": link,
        "single_timing": single,
        "registry_over_broker_ratio": round(registry / ceiling, 3),
        "registry_over_link_ratio": round(registry / float(link["msgs_per_s"] or 1), 3),
        "registry_over_single_ratio": round(registry / float(single["msgs_per_s"] or 1), 3),
        "registry_ms_per_msg": round(1e3 / registry, 3),
        # CPU of this one process per message over each timed window: less at the mercy of the
        # machine's load than the rates (the publishers and the broker are other processes)
        "registry_cpu_us_per_msg": batched["cpu_us_per_msg"],
        "broker_only_cpu_us_per_msg": most["cpu_us_per_msg"],
        "link_only_cpu_us_per_msg": link["cpu_us_per_msg"],
        "registry_over_broker_cpu_ratio": round(
            float(most["cpu_us_per_msg"] or 0) / float(batched["cpu_us_per_msg"] or 1), 3
        ),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        **again,
        "note": "one backend process; the shared intake stores batches (one transaction each, "
        "in order per device); single: one row-locked transaction per message; raw publishers "
        "(QoS 1 packets encoded before the clock starts, one write each) in other processes, a "
        "device's messages in one of them; broker_only is the bare subscriber's best rate over "
        "1 and `publishers` publisher processes (aiomqtt, the client library the service uses: "
        "the baseline of the 0.5 target); "
        "raw_subscriber: the same without a client library (bench.mqttraw), the broker's own "
        "ceiling (not the baseline); *_cpu_us_per_msg: this process's CPU over the timed "
        "window per message, the broker-over-registry CPU ratio beside the rates' ratio; "
        "load_average at the end; private mosquitto (queues unbounded)",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "registry.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--devices", type=int, default=300)
    p.add_argument("--messages", type=int, default=100, help="health messages per device")
    p.add_argument("--publishers", type=int, default=2, help="raw publishers' processes")
    p.add_argument("--single-messages", type=int, default=20, help="per device, the baseline")
    p.add_argument("--reannounce", type=int, default=10_000, help="devices (0: skip)")
    p.add_argument("--publish", nargs=5, help=argparse.SUPPRESS)  # the publishers' process
    p.add_argument("--raw", nargs=5, help=argparse.SUPPRESS)  # a raw publishers' process
    args = p.parse_args()
    from services import logs

    logs.configure("warning", "console")
    if args.publish:
        url, kind, n, m, session = args.publish
        asyncio.run(_publisher(url, kind, int(n), int(m), int(session)))
        return
    if args.raw:
        url, n, m, part, parts = args.raw
        asyncio.run(_raw_publisher(url, int(n), int(m), int(part), int(parts)))
        return
    result = asyncio.run(
        run(args.devices, args.messages, args.publishers, args.single_messages, args.reannounce)
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
