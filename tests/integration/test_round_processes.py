"""Round workers as separate OS processes on one real database: a worker killed with its claims
held loses them when they expire, two others share the rest, and no check is done twice or lost."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from supervision import schedule
from supervision.checks import DEFAULT_TIMING, State
from supervision.store import RoundStore
from tests.procs import die_with_parent
from tests.round_worker import NIGHT, WS
from tests.rounds_support import at_local, basis

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
N = 40


def worker(database_url: str, name: str, logs: Path, **opts: float) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "tests.round_worker", "--database-url", database_url]
    cmd += ["--worker", name, "--recipients", str(N)]
    for key, value in opts.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    with (logs / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**os.environ, "HOMECARE_LOG_LEVEL": "warning"},
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )


async def wait_for(pool: asyncpg.Pool, sql: str, want: object, timeout_s: float = 60) -> None:
    async with asyncio.timeout(timeout_s):
        while await pool.fetchval(sql) != want:
            await asyncio.sleep(0.05)


async def test_a_killed_workers_checks_are_taken_over_by_two_others(
    pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    store = RoundStore(pool)
    plan = schedule.plan_night(
        [basis(f"r{i:03d}") for i in range(N)],
        night=NIGHT,
        at=at_local(NIGHT, 18),
        online=lambda d: True,
    )
    assert await store.save_plan(plan, at=at_local(NIGHT, 18)) == N
    assert len(await store.open_due(WS)) == N

    # a worker that hangs in its probes, holding 4 claims, and is then killed
    doomed = worker(database_url, "doomed", tmp_path, probe_delay_s=3600, concurrency=4)
    try:
        await wait_for(
            pool, "SELECT count(*) FROM round_checks WHERE holder = 'doomed'", 4, timeout_s=60
        )
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
    held = {
        r["check_id"]
        for r in await pool.fetch("SELECT check_id FROM round_checks WHERE holder = 'doomed'")
    }
    assert len(held) == 4

    # two workers whose clock is past the claims' expiry share what is left
    later = DEFAULT_TIMING.probe_timeout_s + 1
    others = [
        worker(database_url, name, tmp_path, offset_s=later, probe_delay_s=0.02)
        for name in ("one", "two")
    ]
    try:
        await wait_for(
            pool,
            "SELECT count(*) FROM round_checks WHERE state IN ('due', 'probing')",
            0,
            timeout_s=90,
        )
    finally:
        for p in others:
            p.send_signal(signal.SIGTERM)
        for name, p in zip(("one", "two"), others, strict=True):
            assert p.wait(20) == 0, (tmp_path / f"{name}.log").read_text()

    checks = await store.night_checks(NIGHT)
    assert len(checks) == N
    assert {c.state for c in checks} == {State.NEEDS_VIEW}  # the plans do not allow clearing
    done = await pool.fetch(
        "SELECT check_id, count(*) AS n FROM round_transitions"
        " WHERE event = 'probe_done' GROUP BY check_id"
    )
    assert len(done) == N  # none lost
    assert {r["n"] for r in done} == {1}  # none done twice
    last_claims = await pool.fetch(
        "SELECT DISTINCT ON (check_id) check_id, actor FROM round_transitions"
        " WHERE event = 'claim' ORDER BY check_id, version DESC"
    )
    by_worker = {r["check_id"]: r["actor"] for r in last_claims}
    assert {by_worker[c] for c in held} <= {"one", "two"}  # the dead worker's checks taken over
    assert set(by_worker.values()) == {"one", "two"}  # both live workers did some
    claims = await pool.fetch(
        "SELECT check_id, actor FROM round_transitions WHERE event = 'claim' ORDER BY at, version"
    )
    assert sum(1 for r in claims if r["actor"] == "doomed") == 4
