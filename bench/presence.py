"""Device presence latency: from a device's change to the registry's stored presence change.

Devices are minimal raw-socket MQTT 3.1.1 clients (so a "killed" device really closes its socket
without DISCONNECT, and a "frozen" one really goes silent with the socket open). Through a private
``mosquitto`` the backend (the service's bootstrap, ``services.app.runtime`` with the ``api``
role: its ``MqttLink`` + ``DeviceHandler``) stores each change in PostgreSQL (a scratch database)
and announces it on the event bus; the time a bus subscriber sees it is the measured end.

- ``online``: birth published -> stored online;
- ``killed``: socket aborted -> the broker sends the will -> stored offline;
- ``frozen``: the device stops sending at all -> the broker's keepalive check sends the will
  (1.5 x keepalive) -> stored offline. Target (DESIGN.md): within 1.5 x keepalive + 1 s.

Baseline in the same run: a bare subscriber on the status topics timestamps the broker's delivery
of the same births and wills, so ``registry - broker`` is what the backend adds.

    .venv/bin/python -m bench.presence [--devices 200] [--frozen 20] [--keepalive 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import struct
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt

from bench.registry import PREFIX, broker, embedded_host, scratch_database
from devices import topics
from devices.registry import PresenceChanged, Stored
from services import app
from services.events import Overflow
from services.settings import Settings

RESULTS = Path(__file__).parent / "results"


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def _packet(first: int, body: bytes) -> bytes:
    n, length = len(body), b""
    while True:
        byte, n = n % 128, n // 128
        length += bytes([byte | (0x80 if n else 0)])
        if not n:
            return bytes([first]) + length + body


def connect_packet(client_id: str, keepalive_s: int, will_topic: str, will: bytes) -> bytes:
    flags = 0x02 | 0x04 | 0x08 | 0x20  # clean session, will, will QoS 1, will retained
    header = _str("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive_s)
    return _packet(0x10, header + _str(client_id) + _str(will_topic) + _str(will))


def publish_packet(topic: str, payload: bytes) -> bytes:
    return _packet(0x31, _str(topic) + payload)  # QoS 0, retained


class RawDevice:
    """One device on its own socket; ``kill`` aborts it, ``freeze`` just stops talking."""

    def __init__(self, device_id: str, keepalive_s: int) -> None:
        self.device_id = device_id
        self.keepalive_s = keepalive_s
        self.session = int(time.time() * 1000)
        self.last_sent = 0.0
        self._writer: asyncio.StreamWriter | None = None

    def _status(self, state: topics.Presence) -> bytes:
        return topics.Status(state, self.session).encode()

    async def connect(self, host: str, port: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        status = topics.topic(PREFIX, self.device_id, topics.Channel.STATUS)
        writer.write(
            connect_packet(
                f"dev-{self.device_id}",
                self.keepalive_s,
                status,
                self._status(topics.Presence.OFFLINE),
            )
        )
        await writer.drain()
        ack = await reader.readexactly(4)
        if ack[0] != 0x20 or ack[3] != 0:
            raise ConnectionError(f"broker refused {self.device_id}: {ack!r}")
        self._writer = writer

    def birth(self) -> None:
        assert self._writer is not None
        status = topics.topic(PREFIX, self.device_id, topics.Channel.STATUS)
        self._writer.write(publish_packet(status, self._status(topics.Presence.ONLINE)))
        self.last_sent = time.perf_counter()

    def kill(self) -> None:
        assert self._writer is not None
        self._writer.transport.abort()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()


def _stats(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1e3 for v in values)
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 2),
        "max_ms": round(ms[-1], 2),
    }


class Clocks:
    """Arrival times per (device, state) at the registry and at the bare subscriber."""

    def __init__(self) -> None:
        self.registry: dict[tuple[str, str], float] = {}
        self.broker: dict[tuple[str, str], float] = {}

    def on_presence(self, change: PresenceChanged) -> None:
        self.registry.setdefault((change.device_id, change.presence.value), time.perf_counter())

    async def wait(self, keys: list[tuple[str, str]], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not all(k in self.registry and k in self.broker for k in keys):
            if time.monotonic() > deadline:
                missing = [k for k in keys if k not in self.registry or k not in self.broker]
                raise RuntimeError(f"{len(missing)} presence changes never arrived: {missing[:3]}")
            await asyncio.sleep(0.01)


async def _phase(
    devices: list[RawDevice],
    clocks: Clocks,
    state: str,
    act: str,
    stagger_s: float,
    timeout_s: float,
) -> tuple[list[float], list[float]]:
    started: dict[str, float] = {}
    for d in devices:
        started[d.device_id] = time.perf_counter()
        if act == "birth":
            d.birth()
        elif act == "kill":
            d.kill()
        else:  # "freeze": it sends nothing more; the broker's clock runs from its last packet
            started[d.device_id] = d.last_sent
        await asyncio.sleep(stagger_s)
    keys = [(d.device_id, state) for d in devices]
    await clocks.wait(keys, timeout_s)
    registry = [clocks.registry[k] - started[k[0]] for k in keys]
    broker_side = [clocks.broker[k] - started[k[0]] for k in keys]
    return registry, broker_side


async def run(devices: int = 200, frozen: int = 20, keepalive_s: int = 2) -> dict[str, Any]:
    clocks = Clocks()
    with broker() as mosquitto:
        url = mosquitto.url
        host, port = embedded_host(url)
        async with (
            scratch_database("presence") as db_url,
            aiomqtt.Client(host, port, identifier=f"bench-watch-{uuid.uuid4().hex[:6]}") as watch,
        ):
            settings = Settings(
                database_url=db_url,
                mqtt_url=url,
                mqtt_topic_prefix=PREFIX,
                mqtt_keepalive_s=30,
                roles=("api",),
                instance_id="bench-presence",
            )
            await watch.subscribe(f"{PREFIX}/dev/+/status", qos=1)

            async def observe() -> None:
                async for message in watch.messages:
                    at = time.perf_counter()
                    device_id = str(message.topic).split("/")[-2]
                    payload = message.payload if isinstance(message.payload, bytes) else b""
                    state = topics.decode_status(payload).state.value
                    clocks.broker.setdefault((device_id, state), at)

            observer = asyncio.create_task(observe())
            async with app.runtime(settings) as rt:
                assert rt.mqtt is not None
                with rt.bus.subscribe("bench-presence", overflow=Overflow.KEEP_ALL) as events:

                    async def announced() -> None:
                        async for event in events:
                            if isinstance(event, PresenceChanged):
                                clocks.on_presence(event)

                    listener = asyncio.create_task(announced())
                    await asyncio.wait_for(rt.mqtt.connected.wait(), 10)
                    fleet = [RawDevice(f"pres-{i:05d}", keepalive_s) for i in range(devices)]
                    still = [RawDevice(f"frozen-{i:04d}", keepalive_s) for i in range(frozen)]
                    try:
                        for d in fleet + still:
                            await d.connect(host, port)
                        online = await _phase(fleet + still, clocks, "online", "birth", 0.005, 60)
                        killed = await _phase(fleet, clocks, "offline", "kill", 0.005, 60)
                        freeze = await _phase(
                            still, clocks, "offline", "freeze", 0.0, 3 * keepalive_s + 10
                        )
                    finally:
                        for d in fleet + still:
                            d.close()
                        for task in (observer, listener):
                            task.cancel()
                            with contextlib.suppress(asyncio.CancelledError):
                                await task
                stored = await rt.pool.fetchval(
                    "SELECT count(*) FROM devices WHERE presence = $1", Stored.OFFLINE.value
                )
    if stored != devices + frozen:
        raise RuntimeError(f"only {stored} of {devices + frozen} devices stored offline")
    target_frozen_s = 1.5 * keepalive_s + 1.0
    frozen_stats = _stats(freeze[0])
    result = {
        "devices": devices,
        "frozen_devices": frozen,
        "keepalive_s": keepalive_s,
        "online": {"registry": _stats(online[0]), "broker_only": _stats(online[1])},
        "killed": {"registry": _stats(killed[0]), "broker_only": _stats(killed[1])},
        "frozen": {"registry": frozen_stats, "broker_only": _stats(freeze[1])},
        "killed_p95_over_broker_ratio": round(
            _stats(killed[0])["p95_ms"] / max(_stats(killed[1])["p95_ms"], 1e-3), 2
        ),
        "online_p95_over_broker_ratio": round(
            _stats(online[0])["p95_ms"] / max(_stats(online[1])["p95_ms"], 1e-3), 2
        ),
        "frozen_target_ms": target_frozen_s * 1e3,
        "frozen_max_within_target": frozen_stats["max_ms"] <= target_frozen_s * 1e3,
        "note": "latency from the device's act to the registry's stored change; broker_only is "
        "a bare subscriber's receipt of the same status message; private mosquitto 2.0",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "presence.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--devices", type=int, default=200)
    p.add_argument("--frozen", type=int, default=20)
    p.add_argument("--keepalive", type=int, default=2)
    args = p.parse_args()
    from services import logs

    logs.configure("warning", "console")
    print(json.dumps(asyncio.run(run(args.devices, args.frozen, args.keepalive)), indent=2))


if __name__ == "__main__":
    main()
