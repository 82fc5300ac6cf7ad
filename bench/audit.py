"""Audit chain and login costs: what one audited change adds, and how fast the chain verifies.

Baseline in the same run: a plain INSERT of the same row in its own transaction (no lock, no
hashing), so the ratio shows what the chain costs. Also: appends from several connections at once
(the advisory lock serialises them), ``verify`` throughput, the pure hash per entry, and one
argon2id password check with the production parameters.

Scratch database on ``HOMECARE_BENCH_DATABASE_URL`` (default the loopback server).

    .venv/bin/python -m bench.audit [--entries 2000] [--writers 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from identity.staff import DEFAULT_HASHING, PasswordHasher
from kernel.audit import store as audit_store
from kernel.audit.chain import GENESIS_HASH, next_entry
from services import db

RESULTS = Path(__file__).parent / "results"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
DATA = {"device": "cam-0001", "duration_s": 23.5, "ended_by": "timeout", "extended": False}


async def _plain_inserts(conn: asyncpg.Connection, n: int) -> float:
    await conn.execute("CREATE TEMP TABLE plain (LIKE audit_log)")
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


async def run(entries: int = 2000, writers: int = 4) -> dict[str, Any]:
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
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "audit.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--entries", type=int, default=2000)
    p.add_argument("--writers", type=int, default=4)
    args = p.parse_args()
    print(json.dumps(asyncio.run(run(args.entries, args.writers)), indent=2))


if __name__ == "__main__":
    main()
