"""Reconnect storm: N simulated devices online, the broker restarts, how long until all are online
again in the registry (new sessions stored), and what it costs the backend.

Runs against a private mosquitto on a free loopback port and a scratch database on the local
PostgreSQL (``HOMECARE_BENCH_DATABASE_URL``, default the loopback server). Target (DESIGN.md):
1,000 devices all online again within 30 s. Baseline in the same run: the first connect burst.

    .venv/bin/python -m bench.reconnect [--devices 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from homeside.device import DeviceSpec
from services import app, logs
from services.settings import Settings
from simulators import homes
from tools import embedded

RESULTS = Path(__file__).parent / "results"


async def _all_online(
    pool: asyncpg.Pool, n: int, newer_than: dict[str, int] | None, timeout_s: float
) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        rows = await pool.fetch("SELECT device_id, session, presence FROM devices")
        ok = [
            r
            for r in rows
            if r["presence"] == "online"
            and (newer_than is None or r["session"] > newer_than.get(r["device_id"], 0))
        ]
        if len(ok) >= n:
            return time.monotonic() - start
        await asyncio.sleep(0.1)
    raise TimeoutError(f"not all {n} devices online within {timeout_s} s")


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run(devices: int = 1000, quiet: bool = False) -> dict[str, Any]:
    admin_url = os.environ.get(
        "HOMECARE_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    name = f"hc_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    port = embedded.free_port()
    prefix = "hc/v1"
    specs = [DeviceSpec(f"cam-{i:05d}", homes.DeviceKind.CAMERA) for i in range(devices)]
    stop = asyncio.Event()
    try:
        with contextlib.ExitStack() as brokers:
            url = brokers.enter_context(embedded.mosquitto(port))
            settings = Settings(  # the service's bootstrap: its one link and the registry
                database_url=admin_url.rpartition("/")[0] + "/" + name,
                mqtt_url=url,
                mqtt_topic_prefix=prefix,
                mqtt_keepalive_s=5,  # the registry's sweep grace after a reconnect: 12 s
                roles=("api",),
                instance_id="bench",
            )
            async with app.runtime(settings) as rt:
                pool, handler = rt.pool, rt.devices
                assert handler is not None
                rss0 = _rss_mib()
                sims = asyncio.create_task(
                    homes.run_devices(
                        specs,
                        mqtt_url=url,
                        prefix=prefix,
                        keepalive_s=5,
                        stop=stop,
                        health_interval_s=300,
                    )
                )
                first = await _all_online(pool, devices, None, 120)
                cpu0 = time.process_time()
                if not quiet:
                    print(f"first connect: {devices} online after {first:.2f} s")
                sessions = {
                    r["device_id"]: r["session"]
                    for r in await pool.fetch("SELECT device_id, session FROM devices")
                }
                brokers.close()
                await asyncio.sleep(1.0)
                brokers.enter_context(embedded.mosquitto(port))
                again = await _all_online(pool, devices, sessions, 120)
                cpu = time.process_time() - cpu0
                if not quiet:
                    print(
                        f"after broker restart: {devices} online again after {again:.2f} s"
                        f" (target 30 s)"
                    )
                stop.set()
                await asyncio.wait_for(sims, 60)
                rejected = dict(handler.rejected)
        result = {
            "devices": devices,
            "first_connect_s": round(first, 3),
            "reconnect_after_restart_s": round(again, 3),
            "target_s": 30.0,
            "ratio_to_first_connect": round(again / first, 2),
            "process_cpu_s_during_storm": round(cpu, 2),
            "note": "devices, backend link and registry in one process; broker is a private "
            "mosquitto; time includes the broker's start",
            "rss_mib_before": round(rss0, 1),
            "rss_mib_max": round(_rss_mib(), 1),
            "rejected": rejected,
        }
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reconnect.json").write_text(json.dumps(result, indent=2))
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--devices", type=int, default=1000)
    args = p.parse_args()
    logs.configure("warning", "console")
    print(json.dumps(asyncio.run(run(args.devices)), indent=2))


if __name__ == "__main__":
    main()
