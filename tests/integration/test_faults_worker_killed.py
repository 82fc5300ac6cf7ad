"""Fault: a service process is killed (SIGKILL) in the middle of its checks; another takes over.

A separate Python process runs a round worker on the test's database and claims checks; its
probes hang (a camera that never answers in time), and the test kills the process with SIGKILL
while it holds every claim - its database connections die mid-transaction. A worker in this
process then takes the checks over once the claims expire, and every check ends up done exactly
once: no check lost, none done twice, the dead worker's claims recorded as the only others.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import date
from pathlib import Path

import asyncpg
import pytest

from supervision.checks import State
from supervision.runner import Runner, RunnerConfig
from supervision.store import RoundStore
from supervision.watchdog import Watchdog, WatchdogConfig
from tests.procs import die_with_parent
from tests.rounds_support import (
    BasisGate,
    FakeDevices,
    TableProber,
    at_local,
    basis,
    fast,
    fixed_clock,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NIGHT = date(2025, 6, 10)
COUNT = 6


def _bases() -> BasisGate:
    return BasisGate({f"k{i}": basis(f"k{i}") for i in range(COUNT)})


async def _doomed_worker(database_url: str) -> None:
    """The process that dies: claims every due check, then hangs in its probes."""
    gate = _bases()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    runner = Runner(
        RoundStore(pool),
        gate=gate,
        prober=TableProber(delay_s=3600),
        devices=FakeDevices({f"cam-{r}" for r in gate.data}),
        clock=fixed_clock(at_local(NIGHT, 21, 45)),
        config=RunnerConfig(worker_id="doomed", concurrency=COUNT, timing=fast()),
    )
    print("worker started", flush=True)
    await runner.run(asyncio.Event())


async def test_a_killed_process_s_checks_are_taken_over(
    pool: asyncpg.Pool, database_url: str
) -> None:
    gate = _bases()
    devices = FakeDevices({f"cam-{r}" for r in gate.data})
    clock = fixed_clock(at_local(NIGHT, 18))
    store = RoundStore(pool)
    await Watchdog(
        store, bases=gate, devices=devices, clock=clock, config=WatchdogConfig(timing=fast())
    ).plan(NIGHT)

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.test_faults_worker_killed",
        database_url,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        preexec_fn=die_with_parent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(60):
            while True:  # until the other process holds every check
                held = await pool.fetchval(
                    "SELECT count(*) FROM round_checks WHERE holder = 'doomed'"
                )
                if held == COUNT:
                    break
                assert proc.returncode is None, await proc.stdout.read()  # type: ignore[union-attr]
                await asyncio.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL

    prober = TableProber()
    alive = Runner(
        store,
        gate=gate,
        prober=prober,
        devices=devices,
        clock=clock,
        config=RunnerConfig(worker_id="alive", timing=fast()),
    )
    clock.set(at_local(NIGHT, 21, 45))

    async def drain() -> None:
        async with asyncio.TaskGroup() as tasks:
            while await alive.tick(tasks):
                pass

    await drain()
    assert alive.processed == 0  # the dead process's claims have not expired yet
    clock.advance(store.timing.probe_timeout_s)
    await drain()
    assert alive.processed == COUNT
    checks = await store.night_checks(NIGHT)
    assert len(checks) == COUNT
    assert {c.state for c in checks} == {State.NEEDS_VIEW}
    rows = await pool.fetch(
        "SELECT check_id, count(*) AS n FROM round_transitions"
        " WHERE event = 'probe_done' GROUP BY check_id"
    )
    assert {r["n"] for r in rows} == {1}
    assert len(rows) == COUNT
    claims = await pool.fetch(
        "SELECT actor, count(*) AS n FROM round_transitions WHERE event = 'claim' GROUP BY actor"
    )
    assert {r["actor"]: r["n"] for r in claims} == {"alive": COUNT, "doomed": COUNT}


if __name__ == "__main__":
    asyncio.run(_doomed_worker(sys.argv[1]))
