"""Audit chain and login costs: what one audited change adds, and how fast the chain verifies.

Baseline in the same run: a plain INSERT of the same row in its own transaction (no lock, no
hashing), so the ratio shows what the chain costs. Also: appends from several connections at once
(the advisory lock serialises them), ``verify`` throughput, the pure hash per entry, and one
argon2id password check with the production parameters.

The night peak (issue 18): ``writers`` connections append for ``seconds`` each, every append in
its own transaction, with the anchoring task (:class:`kernel.audit.anchoring.Anchorer`) signing
the head every ``anchor_interval_s`` into a scratch directory; beside it, in the same run, the
same writers with plain INSERTs (no lock) and the same appends without anchoring. What 10,000
brukare need is computed from the assumptions in :data:`NIGHT` (named ``..._computed``: a figure
from assumptions, not a measurement).

Audited writes from three processes (issue 21): ``processes`` service processes, each with its
own pool (the service's role, row-level security) of ``process_conns`` connections, write
audited changes for ``process_seconds``: each transaction inserts a change row into a real table
and appends its audit entry, the subject drawn from 10,000 brukare. Measured twice in the same
run, alternating: the frozen single-lock append (``bench/baselines/audit_single_lock.py``,
against its own real table with the same indexes, triggers and policies) and the lanes
(``kernel.audit.store.append``). Every table is a real one (WAL-logged, fsynced commits): no
temporary tables.

Scratch database on ``HOMECARE_BENCH_DATABASE_URL`` (default the loopback server).

    .venv/bin/python -m bench.audit [--entries 2000] [--writers 4] [--seconds 4] [--peak-writers 8]
        [--processes 3] [--process-seconds 5] [--process-conns 4] [--process-rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.baselines import audit_single_lock
from identity.staff import DEFAULT_HASHING, PasswordHasher
from kernel.audit import anchor as audit_anchor
from kernel.audit import anchoring
from kernel.audit import store as audit_store
from kernel.audit.chain import GENESIS_HASH, AuditEntry, next_entry, verify_chain
from services import db

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent
"""The source tree, where the writer processes find ``bench``."""
T0 = datetime(2026, 1, 1, tzinfo=UTC)
DATA = {"device": "cam-0001", "duration_s": 23.5, "ended_by": "timeout", "extended": False}

BRUKARE = 10_000
"""Brukare the benchmark's subjects are drawn from."""

NIGHT = {
    "brukare": 10_000,
    "checks_per_brukare_per_night": 4,  # the upper end of agreed night checks
    "entries_per_check": 10,  # its steps (due, probing/viewing, done, ...) and its look's
    # started / delivered / ended, with room for an escalation or a console read
    "peak_window_s": 600,  # every brukare's check of one round falls in the same ten minutes
    "night_s": 12 * 3600,
}
"""Assumptions of a night at 10,000 brukare; the needed rates below are computed from them."""


def needed_rates(night: dict[str, int]) -> dict[str, float]:
    """Audit appends per second a night needs, computed from ``night`` (not measured): the peak
    (one check of every brukare within ``peak_window_s``) and the night's mean."""
    per_check = night["entries_per_check"]
    peak = night["brukare"] * per_check / night["peak_window_s"]
    mean = night["brukare"] * night["checks_per_brukare_per_night"] * per_check / night["night_s"]
    return {
        "needed_appends_per_s_computed": round(peak, 1),
        "night_mean_appends_per_s_computed": round(mean, 1),
    }


async def _for_seconds(conns: list[asyncpg.Connection], seconds: float, one: Any) -> float:
    """Each connection repeats ``one(conn, i)`` until ``seconds`` pass; the total per second."""
    done = [0] * len(conns)
    end = time.perf_counter() + seconds

    async def writer(k: int, conn: asyncpg.Connection) -> None:
        while time.perf_counter() < end:
            await one(conn, k)
            done[k] += 1

    start = time.perf_counter()
    await asyncio.gather(*(writer(k, c) for k, c in enumerate(conns)))
    return sum(done) / (time.perf_counter() - start)


async def _plain_one(conn: asyncpg.Connection, k: int) -> None:
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO plain_peak VALUES (nextval('plain_peak_seq'), $1, $2, $3, $4,"
            " $5::text::jsonb, $6, $7)",
            T0,
            f"staff-bench{k:04d}",
            "view.ended",
            "rcp-1",
            json.dumps(DATA),
            GENESIS_HASH,
            GENESIS_HASH,
        )


async def _append_one(conn: asyncpg.Connection, k: int) -> None:
    subject = f"rcp-{random.randrange(BRUKARE):05d}"  # spread as a night's checks are
    async with conn.transaction():
        await audit_store.append(
            conn, actor=f"staff-peak{k:04d}", action="view.ended", subject=subject, data=DATA, at=T0
        )


async def _night_peak(
    url: str, owner: asyncpg.Connection, writers: int, seconds: float, anchor_interval_s: float
) -> dict[str, Any]:
    """Appends per second from ``writers`` connections: plain INSERTs (baseline), the chain
    without anchoring, the chain with the anchoring task running."""
    await owner.execute(
        "CREATE TABLE plain_peak (LIKE audit_log); CREATE SEQUENCE plain_peak_seq;"
        " GRANT ALL ON plain_peak, plain_peak_seq TO PUBLIC"
    )
    conns = [await asyncpg.connect(url) for _ in range(writers)]
    try:
        plain = await _for_seconds(conns, seconds, _plain_one)
        unanchored = await _for_seconds(conns, seconds, _append_one)
        async with db.open_pool(url, max_size=2) as pool, asyncio.TaskGroup() as tasks:
            with tempfile.TemporaryDirectory() as tmp:
                anchorer = anchoring.Anchorer(
                    pool,
                    audit_anchor.new_key(),
                    anchoring.AnchorFiles(Path(tmp)),
                    clock=lambda: datetime.now(UTC),
                    interval_s=anchor_interval_s,
                )
                task = tasks.create_task(anchorer.run())
                anchored = await _for_seconds(conns, seconds, _append_one)
                task.cancel()
                anchors = anchorer.written
    finally:
        for c in conns:
            await c.close()
    if anchors < 1:
        raise RuntimeError("the anchoring task wrote no anchor during the peak")
    return {
        "peak_writers": writers,
        "peak_seconds": seconds,
        "peak_plain_inserts_per_s": round(plain),
        "peak_appends_per_s_unanchored": round(unanchored),
        "peak_appends_per_s": round(anchored),
        "peak_anchors_written": anchors,
        "anchor_interval_s": anchor_interval_s,
    }


async def _plain_inserts(conn: asyncpg.Connection, n: int) -> float:
    await conn.execute("CREATE TABLE plain (LIKE audit_log)")  # real: WAL like the log
    start = time.perf_counter()
    for i in range(n):
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO plain VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8)",
                i + 1,
                T0,
                "staff-bench0001",
                "view.ended",
                "rcp-1",
                json.dumps(DATA),
                GENESIS_HASH,
                f"{i:064x}",
            )
    return time.perf_counter() - start


async def _appends(conn: asyncpg.Connection, n: int, actor: str) -> None:
    for _ in range(n):
        async with conn.transaction():
            await audit_store.append(
                conn, actor=actor, action="view.ended", subject="rcp-1", data=DATA, at=T0
            )


async def _child(url: str, mode: str, conns: int, seconds: float) -> int:
    """One service process: opens its pool of ``conns`` connections, says ``ready``, reads the
    start (wall clock, shared by the processes) from stdin, writes audited changes from then
    for ``seconds``; the count that ended in the window."""
    one = audit_single_lock.append if mode == "single" else audit_store.append
    pid = os.getpid()
    done = 0
    async with db.open_pool(url, min_size=conns, max_size=conns) as pool:
        print("ready", flush=True)
        start_at = float(await asyncio.to_thread(sys.stdin.readline))

        async def worker(k: int) -> None:
            nonlocal done
            rng = random.Random(pid * 100 + k)
            await asyncio.sleep(max(0.0, start_at - time.time()))  # the shared start
            end = start_at + seconds
            while True:
                subject = f"rcp-{rng.randrange(BRUKARE):05d}"
                async with pool.acquire() as conn, conn.transaction():
                    await conn.execute(
                        "INSERT INTO bench_changes (subject, at) VALUES ($1, now())", subject
                    )
                    await one(
                        conn,
                        actor=f"staff-p{pid}k{k}",
                        action="view.ended",
                        subject=subject,
                        data=DATA,
                        at=datetime.now(UTC),
                    )
                if time.time() > end:
                    return
                done += 1

        await asyncio.gather(*(worker(k) for k in range(conns)))
    return done


async def _processes(
    url: str,
    owner: asyncpg.Connection,
    processes: int,
    conns: int,
    seconds: float,
    rounds: int,
) -> dict[str, Any]:
    """Audited writes per second from ``processes`` processes: the single lock vs the lanes,
    alternating ``rounds`` times in this run (the median of each)."""
    await audit_single_lock.create_table(owner)
    await owner.execute(
        "CREATE TABLE bench_changes (id bigserial PRIMARY KEY, subject text, at timestamptz);"
        " GRANT SELECT, INSERT ON bench_changes TO homecare_service;"
        " GRANT USAGE ON SEQUENCE bench_changes_id_seq TO homecare_service"
    )
    rates: dict[str, list[float]] = {"single": [], "lanes": []}
    for mode in ("single", "lanes") * rounds:
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.audit",
                "--child",
                mode,
                "--url",
                url,
                "--process-conns",
                str(conns),
                "--process-seconds",
                str(seconds),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                cwd=ROOT,
            )
            for _ in range(processes)
        ]
        for proc in procs:  # every process has its pool before any starts
            assert proc.stdout is not None
            line = b""
            async with asyncio.timeout(60):
                while line.strip() != b"ready":  # log lines before it, if any, are skipped
                    line = await proc.stdout.readline()
                    if not line:
                        raise RuntimeError(f"a {mode} writer process ended before it was ready")
        start_at = time.time() + 0.2
        counts = []
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{start_at!r}\n".encode())
            await proc.stdin.drain()
        for proc in procs:
            out, _ = await proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"a {mode} writer process failed ({proc.returncode})")
            counts.append(int(json.loads(out.splitlines()[-1])["done"]))
        if time.time() < start_at + seconds:
            raise RuntimeError("the writer processes ended before their window")
        rates[mode].append(sum(counts) / seconds)
    lanes = await audit_store.verify(owner)
    if not lanes.ok:
        raise RuntimeError(f"the lanes do not verify after the run: {lanes}")
    single = verify_chain(
        AuditEntry(
            seq=r["seq"],
            at=r["at"],
            actor=r["actor"],
            action=r["action"],
            subject=r["subject"],
            data=json.loads(r["data"]),
            prev_hash=r["prev_hash"],
            hash=r["hash"],
        )
        for r in await owner.fetch(
            "SELECT seq, at, actor, action, subject, data::text AS data, prev_hash, hash"
            " FROM audit_log_single ORDER BY seq"
        )
    )
    if not single.ok:
        raise RuntimeError(f"the baseline's chain does not verify after the run: {single}")
    single_rate, lanes_rate = statistics.median(rates["single"]), statistics.median(rates["lanes"])
    return {
        "processes": processes,
        "process_conns": conns,
        "process_seconds": seconds,
        "process_rounds": rounds,
        "brukare": BRUKARE,
        "audited_writes_per_s_single_lock": round(single_rate),
        "audited_writes_per_s_lanes": round(lanes_rate),
        "lanes_over_single_lock_ratio": round(lanes_rate / single_rate, 2),
        "rounds_single_lock": [round(x) for x in rates["single"]],
        "rounds_lanes": [round(x) for x in rates["lanes"]],
        "lanes_used": lanes.lanes,
        "lanes_entries_verified": lanes.checked,
    }


async def run(
    entries: int = 2000,
    writers: int = 4,
    seconds: float = 4.0,
    peak_writers: int = 8,
    anchor_interval_s: float = 1.0,
    processes: int = 3,
    process_seconds: float = 5.0,
    process_conns: int = 4,
    process_rounds: int = 2,
) -> dict[str, Any]:
    admin_url = os.environ.get(
        "HOMECARE_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    name = f"hc_bench_audit_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rpartition("/")[0] + f"/{name}"
    try:
        conns = [await asyncpg.connect(url) for _ in range(writers)]
        await db.migrate(conns[0])
        plain_s = await _plain_inserts(conns[0], entries)
        start = time.perf_counter()
        await _appends(conns[0], entries, "staff-bench0001")
        serial_s = time.perf_counter() - start
        start = time.perf_counter()
        per = entries // writers
        await asyncio.gather(
            *(_appends(c, per, f"staff-bench{i:04d}") for i, c in enumerate(conns))
        )
        concurrent_s = time.perf_counter() - start
        total = entries + per * writers
        start = time.perf_counter()
        result = await audit_store.verify(conns[0])
        verify_s = time.perf_counter() - start
        if not result.ok or result.checked != total:
            raise RuntimeError(f"chain not intact after the run: {result}")
        for c in conns:
            await c.close()
        owner = await asyncpg.connect(url)
        try:
            peak = await _night_peak(url, owner, peak_writers, seconds, anchor_interval_s)
            spread = await _processes(
                url, owner, processes, process_conns, process_seconds, process_rounds
            )
        finally:
            await owner.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    start = time.perf_counter()
    reps = 20_000
    for _ in range(reps):
        next_entry(
            prev_seq=1,
            prev_hash=GENESIS_HASH,
            at=T0,
            actor="staff-bench0001",
            action="view.ended",
            subject="rcp-1",
            data=DATA,
        )
    hash_us = (time.perf_counter() - start) / reps * 1e6
    hasher = PasswordHasher(DEFAULT_HASHING)
    pw_hash = hasher.hash("en lång lösenfras för mätning")
    start = time.perf_counter()
    for _ in range(5):
        hasher.verify(pw_hash, "en lång lösenfras för mätning")
    argon_ms = (time.perf_counter() - start) / 5 * 1e3
    out = {
        "entries": entries,
        "writers": writers,
        "plain_insert_ms": round(plain_s / entries * 1e3, 3),
        "audited_append_ms": round(serial_s / entries * 1e3, 3),
        "append_over_plain_ratio": round(serial_s / plain_s, 2),
        "concurrent_appends_per_s": round(per * writers / concurrent_s),
        "verify_entries_per_s": round(total / verify_s),
        "pure_entry_hash_us": round(hash_us, 1),
        "argon2id_verify_ms": round(argon_ms, 1),
        **peak,
        **spread,
        **needed_rates(NIGHT),
        "night_assumptions": NIGHT,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "audit.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--entries", type=int, default=2000)
    p.add_argument("--writers", type=int, default=4)
    p.add_argument("--seconds", type=float, default=4.0, help="each night-peak phase")
    p.add_argument("--peak-writers", type=int, default=8)
    p.add_argument("--anchor-interval-s", type=float, default=1.0)
    p.add_argument("--processes", type=int, default=3)
    p.add_argument("--process-seconds", type=float, default=5.0)
    p.add_argument("--process-conns", type=int, default=4)
    p.add_argument("--process-rounds", type=int, default=2)
    p.add_argument("--child", choices=("single", "lanes"), help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:  # one writer process of the three-process phase
        done = asyncio.run(_child(args.url, args.child, args.process_conns, args.process_seconds))
        print(json.dumps({"done": done}))
        return
    result = run(
        args.entries,
        args.writers,
        args.seconds,
        args.peak_writers,
        args.anchor_interval_s,
        args.processes,
        args.process_seconds,
        args.process_conns,
        args.process_rounds,
    )
    print(json.dumps(asyncio.run(result), indent=2))


if __name__ == "__main__":
    main()
