"""Backend CPU per probed home: the home probe (MQTT, numbers only) vs the WebRTC probe.

The cameras run in a child process (``--child``): ``--homes`` simulated cameras with real media
(320x240, 10 fps, VP8) that also run the motion check themselves (``homeside.home_probe``). This
process is the backend's side only: its MQTT link, device registry handler and command sender,
signalling (in-process, as the ``probes`` role runs it) on a scratch PostgreSQL database, and the
two probers. Each home is probed ``--rounds`` times each way, ``--concurrency`` at a time,
alternating the paths per round, and this process's CPU time (``time.process_time``: user +
system, all threads: aiortc's decoder runs in threads) is taken around each batch. The same
process idling for as long is measured in the same run (the link's keepalive, signalling's
sweeps) and reported beside it; the ratio is of the raw figures.

Not counted: PostgreSQL's and Mosquitto's own CPU (both paths write a session's audit entries;
the WebRTC probe also a session row), and the devices' (the home probe moves the kernel there).
The consent gate is an allow-all fake in both paths (the real gate costs microseconds a call:
``bench.gate``; the home probe asks it every 0.5 s while the device looks).

Computed from the measured CPU per probe (named ``..._computed``): probes a backend core could
run per hour, and how many homes a core could keep probing at once (a window's seconds over the
CPU seconds one probe costs). Writes ``bench/results/home_probe.json``.

    .venv/bin/python -m bench.home_probe [--homes 10] [--rounds 2] [--window-s 8] [--concurrency 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.registry import scratch_database
from consent import model
from devices.commands import Commands
from devices.handler import REGISTRY_CHANNELS, DeviceHandler
from devices.topics import Channel, DeviceKind
from kernel.tenancy import DEFAULT_ORGANISATION
from services import logs
from services.mqtt import MqttLink
from services.signalling.fakes import FakeChecks
from services.signalling.service import Signalling, SignallingConfig
from supervision.home_probe import HomeProber, pg_audit
from supervision.ports import ProbeResult
from supervision.probe import MotionProber, ProbeConfig

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "home_probe.json"


class AllowAll:
    """The consent gate's port: every device may be probed (the gate is not what is measured)."""

    async def decide(
        self, *, device_id: str, purpose: model.Purpose, at: datetime
    ) -> model.Decision:
        return model.Decision(allowed=True, reason=None, recipient_id="rec-bench", plan_id="p")

    async def changes(self) -> AsyncIterator[model.ConsentChange]:
        await asyncio.Event().wait()
        yield  # type: ignore[misc]  # never: nothing changes


def cam(i: int) -> str:
    return f"cam-{i:04d}"


# ------------------------------------------------------------------ the homes (child process)


async def run_homes(count: int, prefix: str, mqtt_url: str) -> None:
    """``count`` cameras that take both probes, until SIGTERM; prints ``ready`` once online."""
    from homeside import home_probe
    from homeside.device import DeviceClient, DeviceSpec
    from simulators.homes import attach
    from simulators.scenes import Scene, SceneKind

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    kinds = (SceneKind.ASLEEP, SceneKind.WALKING, SceneKind.RESTLESS, SceneKind.EMPTY_BED)
    devices = []
    for i in range(count):
        spec = DeviceSpec(cam(i), DeviceKind.CAMERA, width=320, height=240, fps=10.0)
        device = DeviceClient(spec, mqtt_url, prefix=prefix, health_interval_s=3600)
        peer = attach(device, scene=Scene(kinds[i % len(kinds)], seed=i))
        home_probe.attach(peer)
        devices.append(device)
    tasks = [asyncio.create_task(d.run(stop)) for d in devices]
    for device in devices:
        await device.connected.wait()
    print("ready", flush=True)
    await stop.wait()
    await asyncio.gather(*tasks, return_exceptions=True)


# ------------------------------------------------------------------ the backend (this process)


async def _until(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _batches(
    probe: Callable[[str], Awaitable[ProbeResult]], ids: list[str], concurrency: int
) -> tuple[float, float, list[ProbeResult]]:
    """(CPU seconds of this process, wall seconds, results) for probing ``ids``."""
    results: list[ProbeResult] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for start in range(0, len(ids), concurrency):
        batch = ids[start : start + concurrency]
        results += await asyncio.gather(*(probe(d) for d in batch))
    return time.process_time() - cpu0, time.perf_counter() - wall0, results


async def run(
    homes: int = 10,
    rounds: int = 2,
    window_s: float = 8.0,
    concurrency: int = 5,
    *,
    database_url: str | None = None,
    mqtt_url: str | None = None,
    write: bool = True,
) -> dict[str, Any]:
    if database_url is not None:
        os.environ["HOMECARE_BENCH_DATABASE_URL"] = database_url
    broker = mqtt_url or os.environ.get("HOMECARE_BENCH_MQTT_URL", "mqtt://127.0.0.1:1883")
    prefix = f"bench{uuid.uuid4().hex[:8]}/hc/v1"
    ids = [cam(i) for i in range(homes)]
    logs.configure("warning", "console")  # both paths alike; the homes log in their process
    # the homes: another process, so their CPU (encoding, or the kernel at home) is not counted
    child = subprocess.Popen(  # noqa: ASYNC220 (started once, before anything is measured)
        [sys.executable, "-m", "bench.home_probe", "--child", "--homes", str(homes),
         "--prefix", prefix, "--mqtt", broker],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        async with scratch_database("home_probe") as url:
            pool = await asyncpg.create_pool(url, min_size=2, max_size=10)
            try:
                return await _measure(
                    pool, broker, prefix, ids, child, rounds, window_s, concurrency, write
                )
            finally:
                await pool.close()
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()


async def _measure(
    pool: asyncpg.Pool,
    broker: str,
    prefix: str,
    ids: list[str],
    child: subprocess.Popen[str],
    rounds: int,
    window_s: float,
    concurrency: int,
    write: bool,
) -> dict[str, Any]:
    gate = AllowAll()
    handler = DeviceHandler(pool, clock=lambda: datetime.now(UTC), on_presence=lambda _: None)
    link = MqttLink(
        broker, prefix=prefix, keepalive_s=30, instance_id=f"bench-{uuid.uuid4().hex[:6]}"
    )
    for channel in REGISTRY_CHANNELS:
        link.subscribe(channel, handler.handle)
    async with link:
        await asyncio.wait_for(link.connected.wait(), 10)
        commands = Commands(pool, handler, link.publish, prefix)
        home = HomeProber(commands, gate, audit=pg_audit(pool))
        link.subscribe(Channel.PROBE, home.handle)
        await link.subscribed()
        sig = Signalling(
            pool=pool,
            link=link,
            prefix=prefix,
            instance_id="bench-home-probe",
            gate=gate,
            commands=commands,
            config=SignallingConfig(),
            checks=FakeChecks(),
        )
        async with sig:
            await sig.wait_ready()
            assert child.stdout is not None
            line = await asyncio.to_thread(child.stdout.readline)
            if line.strip() != "ready":
                raise RuntimeError(f"the homes did not start: {line!r}")

            async def online() -> bool:
                n = await pool.fetchval(
                    "SELECT count(*) FROM devices WHERE presence = 'online' AND kind IS NOT NULL"
                )
                return bool(n == len(ids))

            await _until(online, 30, "the homes online")
            await pool.execute("UPDATE devices SET organisation_id = $1", DEFAULT_ORGANISATION)
            webrtc = MotionProber(sig, config=ProbeConfig(window_s=window_s))

            async def by_webrtc(device_id: str) -> ProbeResult:
                return (await webrtc.watch(device_id, window_s=window_s)).result()

            async def at_home(device_id: str) -> ProbeResult:
                return (await home.watch(device_id, window_s=window_s)).result

            paths = {"webrtc": by_webrtc, "home": at_home}
            for probe in paths.values():  # warm up: codecs, prepared statements, imports
                await probe(ids[0])
            cpu = dict.fromkeys(paths, 0.0)
            wall = dict.fromkeys(paths, 0.0)
            verdicts: dict[str, Counter[str]] = {p: Counter() for p in paths}
            for r in range(rounds):
                order = list(paths) if r % 2 == 0 else list(reversed(paths))
                for name in order:
                    c, w, results = await _batches(paths[name], ids, concurrency)
                    cpu[name] += c
                    wall[name] += w
                    verdicts[name].update(x.verdict for x in results)
                    print(
                        f"  {name}: {len(results)} probes, {c:.2f} s CPU in {w:.1f} s", flush=True
                    )
            idle_wall = max(wall.values()) / rounds
            cpu0 = time.process_time()
            await asyncio.sleep(idle_wall)
            idle_cpu_per_s = (time.process_time() - cpu0) / idle_wall
    probes = len(ids) * rounds
    out: dict[str, Any] = {
        "homes": len(ids),
        "rounds": rounds,
        "window_s": window_s,
        "concurrency": concurrency,
        "idle_cpu_s_per_s": round(idle_cpu_per_s, 5),
    }
    for name in paths:
        per_probe = cpu[name] / probes
        net = max(1e-9, (cpu[name] - idle_cpu_per_s * wall[name]) / probes)
        out[name] = {
            "probes": probes,
            "cpu_s": round(cpu[name], 4),
            "wall_s": round(wall[name], 2),
            "cpu_per_probe_ms": round(per_probe * 1000, 3),
            "cpu_per_probe_less_idle_ms": round(net * 1000, 3),
            "verdicts": dict(verdicts[name]),
            "probes_per_core_hour_computed": round(3600 / per_probe),
            "homes_probed_at_once_per_core_computed": round(window_s / per_probe, 1),
        }
    out["home_vs_webrtc_cpu_ratio"] = round(
        out["home"]["cpu_per_probe_ms"] / out["webrtc"]["cpu_per_probe_ms"], 4
    )
    out["home_vs_webrtc_cpu_ratio_less_idle"] = round(
        out["home"]["cpu_per_probe_less_idle_ms"] / out["webrtc"]["cpu_per_probe_less_idle_ms"], 4
    )
    # a probe that saw nothing (an overloaded home missed its indicator ack) costs less than one
    # that decoded a window: the comparison holds only when every probe of both paths saw frames
    out["no_signal"] = {name: verdicts[name]["no_signal"] for name in paths}
    out["valid"] = not any(out["no_signal"].values())
    out["cpus"] = os.cpu_count()
    out["load_before"] = os.getloadavg()
    if write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--homes", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--window-s", type=float, default=8.0)
    p.add_argument("--concurrency", type=int, default=5)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--prefix", help=argparse.SUPPRESS)
    p.add_argument("--mqtt", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_homes(args.homes, args.prefix, args.mqtt))
        return
    result = asyncio.run(run(args.homes, args.rounds, args.window_s, args.concurrency))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
