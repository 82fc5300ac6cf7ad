"""Service processes and cameras for the multi-process nights (``test_scale_out``,
``test_failover_night``): each node is ``tests.e2e.scale_out_node`` (the real composition root on
the shared sped-up clock), its log kept under ``test-artifacts/`` for a failed run's post-mortem;
the cameras are simulated devices (real MQTT clients) that send no picture."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path

from devices.topics import DeviceKind
from homeside.device import DeviceSpec
from simulators import homes
from tests.procs import die_with_parent
from tools.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = ROOT / "test-artifacts"  # git-ignored

Nodes = dict[str, tuple[subprocess.Popen[bytes], int]]
"""Each node's process and HTTP port, by name."""


@contextlib.contextmanager
def nodes(
    database_url: str,
    mqtt_url: str,
    prefix: str,
    *,
    roles: Mapping[str, str],
    t0: datetime,
    start: Path,
    speed: float,
    log_prefix: str,
) -> Iterator[Nodes]:
    """One process per ``roles`` entry (name -> ``HOMECARE_ROLES``); SIGTERM at the end, SIGKILL
    to the process group of one that hangs."""
    run = uuid.uuid4().hex[:6]  # MQTT client ids are unique per run on a shared broker
    procs: Nodes = {}
    ARTIFACTS.mkdir(exist_ok=True)
    logs = {}
    try:
        for name, role in roles.items():
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("HOMECARE_")}
            env.update(
                HOMECARE_DATABASE_URL=database_url,
                HOMECARE_MQTT_URL=mqtt_url,
                HOMECARE_MQTT_TOPIC_PREFIX=prefix,
                HOMECARE_ROLES=role,
                HOMECARE_INSTANCE_ID=f"{name}-{run}",
                HOMECARE_HTTP_PORT=str(port),
                HOMECARE_LOG_FORMAT="json",
                HOMECARE_LOG_LEVEL="warning",
                HOMECARE_MQTT_KEEPALIVE_S="30",
                HOMECARE_PLAN_HOUR="20",
            )
            logs[name] = (ARTIFACTS / f"{log_prefix}_{name}.log").open("wb")
            cmd = [sys.executable, "-m", "tests.e2e.scale_out_node", "--t0", t0.isoformat(),
                   "--start-file", str(start), "--speed", str(speed)]  # fmt: skip
            proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdout=logs[name],
                stderr=logs[name],
                preexec_fn=die_with_parent,
                start_new_session=True,
            )
            procs[name] = (proc, port)
        yield procs
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        for f in logs.values():
            f.close()


@contextlib.asynccontextmanager
async def cameras(
    mqtt_url: str, prefix: str, device_ids: Iterable[str], *, stop_within_s: float = 60
) -> AsyncIterator[None]:
    """Simulated cameras online (no picture, health hourly) until the block ends."""
    stop = asyncio.Event()
    specs = [DeviceSpec(device_id, DeviceKind.CAMERA) for device_id in device_ids]
    task = asyncio.create_task(
        homes.run_devices(
            specs,
            mqtt_url=mqtt_url,
            prefix=prefix,
            keepalive_s=30,
            stop=stop,
            health_interval_s=3600,
        )
    )
    yield
    stop.set()
    await asyncio.wait_for(task, stop_within_s)
