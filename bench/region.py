"""A region's devices in one run: 10,000 simulated devices through one broker into three service
processes (issue 21 item 5).

- **The service**: three ``homecare serve`` processes (roles ``api,signalling``, ``rounds`` and
  ``probes``, as ``tests/e2e/test_scale_out.py`` splits them), each with its own MQTT link and so
  its share of the shared device intake (``$share/hc-registry``), on one scratch database.
- **The broker**: a private ``mosquitto`` started by the benchmark (the same binary as the
  machine's; its own so that its memory can be read and 10,000 connections do not disturb anyone
  else's broker) with the limits of ``deploy/mosquitto/mosquitto.conf`` (queues of 100,000 per
  client: with mosquitto's default of 1,000 the services' queues overflow while 10,000 devices
  announce, and births are dropped) and ``max_connections -1``; no TLS and no passwords. It
  inherits this process's open-file limit (``open_files_limit`` in the result).
- **The devices**: ``devices`` simulated devices, **each its own MQTT connection**
  (``bench.mqttraw``: one ``asyncio.Protocol`` per device, no task per device), spread over
  ``simulators`` child processes. Each connects like a device (clean session, a retained
  ``offline`` will of its session), subscribes its ``cmd``, ``webrtc/in`` and the server status,
  announces (``status`` online and ``meta``, retained, and a first ``health``), then sends
  ``health`` every ``health_s`` seconds (the contract's devices every 60 s; the benchmark may send
  faster, and the result says at what rate it measured), each device at its own phase so the
  load is even. Every ``health`` carries its ``ts`` (the device's wall clock at sending).
- **Seeding**: the devices are put on record first (``devices`` rows, offline, as provisioned
  devices are): a process stores at most 1,000 devices it has never heard of per hour
  (quarantine), which 10,000 new devices would hit.

Measured:
- ``connect``: from ``go`` to every device connected (CONNACK, in the simulators) and to every
  device online in the registry (births stored; polled every 0.1 s).
- **Registry lag** of the ``health`` messages sent in the steady window (``steady_s`` after every
  device is online): ``lag_applied``: the device's ``ts`` to the storing batch's own time
  (``health_at``, the service's clock when its batch began; same machine, same wall clock);
  ``lag_visible``: the ``ts`` to the first poll (every ``poll_s``) that saw the row committed, an
  upper bound that is at most one poll interval late. p50/p95/p99/max of both; the messages sent in
  the window against those seen (``missing``: never seen, or overwritten by the device's next
  health before a poll saw it).
- **Memory**: each service process's RSS before the devices connect (ready and idle) and at the
  end of the steady window, the broker's likewise, and the simulators' (for reference); the
  growth per 1,000 connected devices is computed from them (``*_per_1000_computed``).
- **CPU** in the steady window (process CPU seconds over wall seconds, every thread): each
  service process, the broker, the PostgreSQL server processes of the services' pools (not
  PostgreSQL's shared writers) and the simulators; per 1,000 devices at the measured rate and,
  scaled linearly, at the contract's 60 s (``*_computed``).
- **Stored once**: ``homecare_device_messages_stored_total`` of every process, summed per
  channel, against what the simulators sent.

    .venv/bin/python -m bench.region [--devices 10000] [--health-s 6] [--steady-s 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import aiohttp
import asyncpg

from bench import mqttraw
from bench.registry import Mosquitto, scratch_database
from devices import topics
from services import db
from tools.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PREFIX = "hc/v1"
ROLES = ("api,signalling", "rounds", "probes")
MIB = 1024 * 1024
BROKER = (  # deploy/mosquitto/mosquitto.conf's limits (no TLS, no passwords, no persistence)
    "max_connections -1\nmax_packet_size 131072\nmax_queued_messages 100000\n"
    "max_inflight_messages 20\nmax_keepalive 300\nset_tcp_nodelay true\n"
)


def device_id(i: int) -> str:
    return f"region-{i:05d}"


def _cpu_s(pid: int) -> float:
    """A process's CPU seconds so far, user and system, every thread (``/proc/<pid>/stat``);
    0 for one that has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _backends(pool: asyncpg.Pool) -> list[int]:
    """The PostgreSQL server processes serving this database (the services' pools)."""
    rows = await pool.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid()"
    )
    return [int(r["pid"]) for r in rows]


def _rss(pid: int) -> int:
    """A process's resident set (Linux: ``VmRSS`` of ``/proc/<pid>/status``), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


# ------------------------------------------------------------------ the simulators' process


class Fleet:
    """``count`` devices from number ``first``, each its own connection (``--simulate``)."""

    def __init__(
        self, host: str, port: int, first: int, count: int, health_s: float, session: int
    ) -> None:
        self.host, self.port = host, port
        self.ids = [device_id(i) for i in range(first, first + count)]
        self.health_s = health_s
        self.session = session
        self.conns: dict[str, mqttraw.Connection] = {}
        self.sent = {"status": 0, "meta": 0, "health": 0}
        self.health_by_second: dict[int, int] = {}
        self.failed: list[str] = []
        self.started = time.monotonic()

    def _topic(self, d: str, channel: topics.Channel) -> str:
        return topics.topic(PREFIX, d, channel)

    async def _one(self, d: str, sem: asyncio.Semaphore) -> None:
        offline = topics.Status(topics.Presence.OFFLINE, self.session).encode()
        async with sem:
            try:
                conn = await mqttraw.open_connection(
                    self.host,
                    self.port,
                    d,
                    keepalive_s=max(30, int(2 * self.health_s)),
                    will=(self._topic(d, topics.Channel.STATUS), offline),
                )
            except (OSError, ConnectionError, TimeoutError) as e:
                self.failed.append(f"{d}: {type(e).__name__}: {e}")
                return
        filters = [
            self._topic(d, topics.Channel.CMD),
            self._topic(d, topics.Channel.WEBRTC_IN),
            topics.server_status_topic(PREFIX),
        ]
        conn.write(mqttraw.subscribe(conn.next_pid(), filters))
        online = topics.Status(topics.Presence.ONLINE, self.session).encode()
        meta = topics.Meta(kind=topics.DeviceKind.CAMERA, fw="region-sim", caps=()).encode()
        pid = conn.next_pid
        conn.write(
            mqttraw.publish(self._topic(d, topics.Channel.STATUS), online, pid=pid(), retain=True)
            + mqttraw.publish(self._topic(d, topics.Channel.META), meta, pid=pid(), retain=True)
        )
        self.sent["status"] += 1
        self.sent["meta"] += 1
        self.conns[d] = conn
        self._health(d, conn)

    def _health(self, d: str, conn: mqttraw.Connection) -> None:
        now = time.time()
        payload = topics.Health(
            uptime_s=round(time.monotonic() - self.started, 1), link=0.95, ts=round(now, 3)
        ).encode()
        conn.write(
            mqttraw.publish(self._topic(d, topics.Channel.HEALTH), payload, pid=conn.next_pid())
        )
        self.sent["health"] += 1
        second = int(round(now, 3))  # the stamp's second
        self.health_by_second[second] = self.health_by_second.get(second, 0) + 1

    async def connect_all(self, concurrency: int = 100) -> float:
        sem = asyncio.Semaphore(concurrency)
        start = time.perf_counter()
        await asyncio.gather(*(self._one(d, sem) for d in self.ids))
        return time.perf_counter() - start

    async def health_loop(self, base: float) -> None:
        """Every device's ``health`` every ``health_s``, device ``j`` at phase ``j/n`` of it."""
        n = len(self.ids)
        k = 0
        while True:
            now = time.time()
            while base + (k // n) * self.health_s + self.health_s * (k % n) / n <= now:
                d = self.ids[k % n]
                conn = self.conns.get(d)
                if conn is not None and conn.transport is not None:
                    self._health(d, conn)
                k += 1
            await asyncio.sleep(0.02)

    def close(self) -> None:
        for conn in self.conns.values():
            conn.write(mqttraw.DISCONNECT)
            if conn.transport is not None:
                conn.transport.close()


async def _simulate(url: str, first: int, count: int, health_s: float, session: int) -> None:
    """``--simulate``: say ``ready``; on ``go`` connect every device and start their health;
    print ``connected {...}``; on ``stop`` disconnect them all and print the final counts."""
    host, _, port = url.split("://", 1)[1].partition(":")
    fleet = Fleet(host, int(port), first, count, health_s, session)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    await reader.readline()
    base = time.time()
    health = asyncio.create_task(fleet.health_loop(base + health_s))  # the births send one
    connect_s = await fleet.connect_all()
    print(
        "connected "
        + json.dumps(
            {
                "connect_s": round(connect_s, 3),
                "connected": len(fleet.conns),
                "failed": len(fleet.failed),
                "failures": fleet.failed[:5],
                "rss_bytes": _rss(os.getpid()),
            }
        ),
        flush=True,
    )
    await reader.readline()
    health.cancel()
    rss = _rss(os.getpid())
    lost = sum(1 for c in fleet.conns.values() if c.transport is None)
    fleet.close()
    await asyncio.sleep(0.5)
    print(
        json.dumps(
            {
                "sent": fleet.sent,
                "health_by_second": fleet.health_by_second,
                "connections_lost": lost,
                "rss_bytes": rss,
            }
        ),
        flush=True,
    )


class Simulator:
    """One simulators' child process."""

    def __init__(self, url: str, first: int, count: int, health_s: float, session: int) -> None:
        cmd = [sys.executable, "-m", "bench.region", "--simulate", url, str(first), str(count),
               str(health_s), str(session)]  # fmt: skip
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.connected: dict[str, Any] = {}
        if self._line() != "ready":
            raise RuntimeError("a simulators' process did not start")

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().decode().strip()

    def _say(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word.encode() + b"\n")
        self.proc.stdin.flush()

    def go(self) -> None:
        self._say("go")

    async def wait_connected(self) -> dict[str, Any]:
        line = await asyncio.to_thread(self._line)
        if not line.startswith("connected "):
            raise RuntimeError(f"a simulators' process said {line!r}")
        self.connected = json.loads(line.removeprefix("connected "))
        return self.connected

    def stop(self) -> dict[str, Any]:
        self._say("stop")
        out: dict[str, Any] = json.loads(self._line())
        self.proc.wait(10)
        return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


# ------------------------------------------------------------------ the service processes


@contextlib.contextmanager
def services(
    database_url: str, mqtt_url: str, folder: Path
) -> Iterator[list[tuple[subprocess.Popen[bytes], int, str]]]:
    """The three ``homecare serve`` processes; SIGTERM at the end (SIGKILL if they hang)."""
    run = uuid.uuid4().hex[:6]
    procs: list[tuple[subprocess.Popen[bytes], int, str]] = []
    logs: list[IO[bytes]] = []
    try:
        for k, roles in enumerate(ROLES):
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("HOMECARE_")}
            env.update(
                HOMECARE_DATABASE_URL=database_url,
                HOMECARE_MQTT_URL=mqtt_url,
                HOMECARE_MQTT_TOPIC_PREFIX=PREFIX,
                HOMECARE_ROLES=roles,
                HOMECARE_INSTANCE_ID=f"region-{k}-{run}",
                HOMECARE_HTTP_PORT=str(port),
                HOMECARE_LOG_FORMAT="json",
                HOMECARE_LOG_LEVEL="warning",
            )
            log = (folder / f"service-{k}.log").open("wb")
            logs.append(log)
            proc = subprocess.Popen(
                [sys.executable, "-m", "tools.cli", "serve"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
            procs.append((proc, port, roles))
        yield procs
    finally:
        for proc, _, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _, _ in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        for f in logs:
            f.close()


async def _ready(http: aiohttp.ClientSession, proc: subprocess.Popen[bytes], port: int) -> None:
    async with asyncio.timeout(90):
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"a service process exited with {proc.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.2)


STORED = re.compile(r'^homecare_device_messages_stored_total\{channel="(\w+)"\} ([0-9.e+]+)$')


async def _stored(http: aiohttp.ClientSession, port: int) -> dict[str, int]:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
        text = await r.text()
    out: dict[str, int] = {}
    for line in text.splitlines():
        if m := STORED.match(line):
            out[m.group(1)] = int(float(m.group(2)))
    return out


# ------------------------------------------------------------------ the measurement


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    s = sorted(values)

    def p(q: float) -> float:
        return round(s[min(len(s) - 1, int(q * len(s)))] * 1e3, 1)

    return {"p50_ms": p(0.50), "p95_ms": p(0.95), "p99_ms": p(0.99), "max_ms": p(1.0)}


class LagPoller:
    """Polls the devices' stored health every ``poll_s``: for each (device, ts) first seen, the
    poll's start (the row was committed before it) and the row's ``health_at``."""

    def __init__(self, pool: asyncpg.Pool, poll_s: float) -> None:
        self.pool = pool
        self.poll_s = poll_s
        self.seen: dict[tuple[str, float], tuple[float, float]] = {}
        self.polls = 0

    async def run(self) -> None:
        since = datetime.now(UTC)
        sql = (
            "SELECT device_id, (health->>'ts')::float8 AS ts, health_at FROM devices"
            " WHERE health_at > $1"
        )
        while True:
            started = time.time()
            rows = await self.pool.fetch(sql, since)
            self.polls += 1
            newest = since
            for r in rows:
                key = (r["device_id"], r["ts"])
                if key not in self.seen:
                    self.seen[key] = (started, r["health_at"].timestamp())
                newest = max(newest, r["health_at"])
            # a batch's health_at is its start; one that began earlier may commit later
            since = max(since, datetime.fromtimestamp(newest.timestamp() - 3.0, UTC))
            await asyncio.sleep(max(0.0, self.poll_s - (time.time() - started)))

    def window(self, start: float, end: float) -> tuple[list[float], list[float]]:
        applied, visible = [], []
        for (_, ts), (polled, health_at) in self.seen.items():
            if start <= ts < end:
                applied.append(health_at - ts)
                visible.append(polled - ts)
        return applied, visible


async def _online(pool: asyncpg.Pool, session: int) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM devices WHERE presence = 'online' AND session = $1", session
        )
    )


async def measure(
    devices: int, health_s: float, steady_s: float, simulators: int, poll_s: float
) -> dict[str, Any]:
    session = int(time.time() * 1000)
    with tempfile.TemporaryDirectory(prefix="hc-region-") as tmp:
        folder = Path(tmp)
        mqtt = Mosquitto(tmp)
        mqtt.conf.write_text(f"listener {mqtt.port} 127.0.0.1\nallow_anonymous true\n" + BROKER)
        mqtt.start()
        assert mqtt.proc is not None
        sims: list[Simulator] = []
        try:
            async with (
                scratch_database("region") as db_url,
                db.open_pool(db_url, max_size=4) as pool,
                aiohttp.ClientSession() as http,
            ):
                ids = [device_id(i) for i in range(devices)]
                await pool.execute(  # on record, as provisioned devices are (see the docstring)
                    "INSERT INTO devices (device_id, kind, presence)"
                    " SELECT d, 'camera', 'offline' FROM unnest($1::text[]) AS d",
                    ids,
                )
                with services(db_url, mqtt.url, folder) as procs:
                    try:
                        await asyncio.gather(*(_ready(http, p, port) for p, port, _ in procs))
                    except BaseException:
                        for k in range(len(procs)):
                            tail = (folder / f"service-{k}.log").read_bytes()[-2000:]
                            sys.stderr.write(tail.decode(errors="replace"))
                        raise
                    await asyncio.sleep(2.0)  # settled: start-up work done
                    rss0 = [_rss(p.pid) for p, _, _ in procs]
                    broker0 = _rss(mqtt.proc.pid)
                    share = -(-devices // simulators)
                    sims = [
                        Simulator(mqtt.url, k * share, min(share, devices - k * share),
                                  health_s, session)
                        for k in range(simulators) if k * share < devices
                    ]  # fmt: skip
                    go = time.perf_counter()
                    for s in sims:
                        s.go()
                    connected = await asyncio.gather(*(s.wait_connected() for s in sims))
                    all_connected_s = time.perf_counter() - go
                    deadline = time.monotonic() + 120
                    while (online := await _online(pool, session)) < devices:
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"only {online} of {devices} devices came online")
                        await asyncio.sleep(0.1)
                    all_online_s = time.perf_counter() - go
                    poller = LagPoller(pool, poll_s)
                    polling = asyncio.create_task(poller.run())
                    start = float(int(time.time()) + 2)  # whole seconds: see _sent_in
                    end = start + max(1, round(steady_s))
                    rss_max = list(rss0)
                    broker_max = broker0
                    await asyncio.sleep(max(0.0, start - time.time()))
                    watched = {"services": [p.pid for p, _, _ in procs],
                               "broker": [mqtt.proc.pid], "postgres": await _backends(pool),
                               "simulators": [s.proc.pid for s in sims]}  # fmt: skip
                    cpu0 = {k: [_cpu_s(pid) for pid in v] for k, v in watched.items()}
                    wall0 = time.monotonic()
                    while time.time() < end:
                        await asyncio.sleep(min(1.0, max(0.01, end - time.time())))
                        rss_max = [
                            max(m, _rss(p.pid)) for m, (p, _, _) in zip(rss_max, procs, strict=True)
                        ]
                        broker_max = max(broker_max, _rss(mqtt.proc.pid))
                    wall = time.monotonic() - wall0
                    cores = {
                        k: [
                            round((_cpu_s(pid) - c) / wall, 3)
                            for pid, c in zip(v, cpu0[k], strict=True)
                        ]
                        for k, v in watched.items()
                    }
                    rss1 = [_rss(p.pid) for p, _, _ in procs]
                    broker1 = _rss(mqtt.proc.pid)
                    # the window's last messages land: until none new for 2 s (at most 20 s)
                    settle = time.monotonic() + 20
                    seen, quiet_since = -1, time.monotonic()
                    while time.monotonic() < settle and time.monotonic() - quiet_since < 2:
                        await asyncio.sleep(0.25)
                        if (n := len(poller.window(start, end)[0])) != seen:
                            seen, quiet_since = n, time.monotonic()
                    polling.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await polling
                    finals = [s.stop() for s in sims]
                    await asyncio.sleep(1.0)
                    stored = [await _stored(http, port) for _, port, _ in procs]
        finally:
            for s in sims:
                s.kill()
            mqtt.stop()
    sent_window = _sent_in(finals, start, end)
    applied, visible = poller.window(start, end)
    sent = {k: sum(f["sent"][k] for f in finals) for k in ("status", "meta", "health")}
    stored_sum = {k: sum(s.get(k, 0) for s in stored) for k in ("status", "meta", "health")}
    per_k = devices / 1000
    growth = [b - a for a, b in zip(rss0, rss1, strict=True)]
    return {
        "devices": devices,
        "connections": sum(c["connected"] for c in connected),
        "connections_failed": sum(c["failed"] for c in connected),
        "connection_failures": [f for c in connected for f in c["failures"]][:5],
        "simulator_processes": len(sims),
        "service_processes": [roles for _, _, roles in procs],
        "health_every_s": health_s,
        "health_msgs_per_s_computed": round(devices / health_s, 1),
        "steady_s": round(end - start, 1),
        "poll_s": poll_s,
        "all_connected_s": round(all_connected_s, 3),
        "all_online_in_registry_s": round(all_online_s, 3),
        "health_sent_in_window": sent_window,
        "health_seen_in_window": len(applied),
        "health_missing_in_window": sent_window - len(applied),
        "lag_applied": percentiles(applied),
        "lag_visible": percentiles(visible),
        "registry_lag_p99_ms": percentiles(visible).get("p99_ms"),
        "sent": sent,
        "stored_per_process": stored,
        "stored_sum": stored_sum,
        "stored_once": stored_sum == sent,
        "rss_mib_before": [round(r / MIB, 1) for r in rss0],
        "rss_mib_after": [round(r / MIB, 1) for r in rss1],
        "rss_mib_max": [round(r / MIB, 1) for r in rss_max],
        "service_rss_mib_per_1000_devices_computed": [round(g / MIB / per_k, 2) for g in growth],
        "services_rss_mib_per_1000_devices_computed": round(sum(growth) / MIB / per_k, 2),
        "broker_rss_mib_before": round(broker0 / MIB, 1),
        "broker_rss_mib_after": round(broker1 / MIB, 1),
        "broker_rss_mib_max": round(broker_max / MIB, 1),
        "broker_rss_mib_per_1000_devices_computed": round((broker1 - broker0) / MIB / per_k, 2),
        "cores_in_window": cores,
        "service_cores_per_1000_devices_computed": round(sum(cores["services"]) / per_k, 4),
        "service_cores_per_1000_devices_at_60s_health_computed": round(
            sum(cores["services"]) / per_k * health_s / 60.0, 4
        ),
        "broker_cores_per_1000_devices_computed": round(sum(cores["broker"]) / per_k, 4),
        "postgres_backend_cores_per_1000_devices_computed": round(
            sum(cores["postgres"]) / per_k, 4
        ),
        "simulator_rss_mib": [round(f["rss_bytes"] / MIB, 1) for f in finals],
        "simulator_connections_lost": sum(f["connections_lost"] for f in finals),
        "open_files_limit": _nofile(),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
    }


def _sent_in(finals: list[dict[str, Any]], start: float, end: float) -> int:
    """Health messages the simulators stamped in ``[start, end)``, whole seconds (the
    simulators count per second of the stamp)."""
    lo, hi = int(start), int(end)
    return sum(n for f in finals for s, n in f["health_by_second"].items() if lo <= int(s) < hi)


def _nofile() -> int:
    import resource

    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def run(
    devices: int = 10_000,
    health_s: float = 6.0,
    steady_s: float = 60.0,
    simulators: int = 2,
    poll_s: float = 0.1,
    quick: bool = False,
) -> dict[str, Any]:
    if quick:
        devices, health_s, steady_s = min(devices, 200), 1.0, 5.0
    result = await measure(devices, health_s, steady_s, simulators, poll_s)
    result["note"] = (
        "each simulated device is its own MQTT connection (raw MQTT 3.1.1, one asyncio protocol "
        "each, in child processes); three `homecare serve` processes share the intake; private "
        f"mosquitto; health every {health_s} s (the contract's devices: 60 s); devices seeded on "
        "record (the quarantine takes 1,000 new devices per process per hour); lag_applied: "
        "device ts -> the storing batch's health_at; lag_visible: ts -> the first poll that saw "
        f"it (every {poll_s} s, an upper bound)"
    )
    result["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "region.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--devices", type=int, default=10_000)
    p.add_argument("--health-s", type=float, default=6.0, help="seconds between health")
    p.add_argument("--steady-s", type=float, default=60.0, help="the measured window")
    p.add_argument("--simulators", type=int, default=2, help="simulators' processes")
    p.add_argument("--poll-s", type=float, default=0.1)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--simulate", nargs=5, help=argparse.SUPPRESS)  # a simulators' process
    args = p.parse_args()
    from services import logs

    logs.configure("warning", "console")
    if args.simulate:
        url, first, count, health_s, session = args.simulate
        asyncio.run(_simulate(url, int(first), int(count), float(health_s), int(session)))
        return
    result = asyncio.run(
        run(args.devices, args.health_s, args.steady_s, args.simulators, args.poll_s, args.quick)
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
