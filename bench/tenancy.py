"""What tenant isolation costs: the scope set on every pool acquire, row-level security on reads.

Baselines in the same run, on the same scratch database and the same rows:
- a pool without the scope step (``setup=None``, the schema owner: no role switch, no policies)
  against the service's pool (``services.db.enter_scope`` on every acquire, then the policies),
  both when one scope asks again and again (the connection keeps it: no extra round trip) and
  when every acquire comes from another organisation's request (one more round trip each);
- one brukare read by id, and one team's list, by the owner (no policies) against the service role
  with one organisation set (the policies filter every row).
Two organisations of ``--recipients`` brukare each; the reads ask for organisation A's.

    .venv/bin/python -m bench.tenancy [--recipients 5000] [--reads 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.registry import scratch_database
from kernel import tenancy
from services import db

RESULTS = Path(__file__).parent / "results"
BY_ID = "SELECT recipient_id, display_name, team_id FROM care_recipients WHERE recipient_id = $1"
TEAM_LIST = "SELECT recipient_id, display_name FROM care_recipients WHERE team_id = $1"


async def _seed(owner: asyncpg.Connection, recipients: int) -> None:
    for org in ("a", "b"):
        await owner.execute(
            "INSERT INTO organisations (organisation_id, name, kind)"
            f" VALUES ('org-{org}', 'Kommun', 'municipality');"
            "INSERT INTO units (unit_id, organisation_id, name)"
            f" VALUES ('u-{org}', 'org-{org}', 'U');"
            "INSERT INTO teams (team_id, unit_id, organisation_id, name)"
            f" VALUES ('t-{org}', 'u-{org}', 'org-{org}', 'T')"
        )
        await owner.execute(
            "INSERT INTO care_recipients (recipient_id, display_name, team_id, created_at,"
            " created_by) SELECT 'r-' || $1 || '-' || i, 'Brukare', 't-' || $1, now(), 'bench'"
            " FROM generate_series(1, $2) AS i",
            org,
            recipients,
        )
    await owner.execute("ANALYZE")


async def _timed(n: int, step: Callable[[int], Awaitable[object]]) -> float:
    """Microseconds per call of ``step`` over ``n`` calls (after 50 to warm up)."""
    for i in range(50):
        await step(i)
    start = time.perf_counter()
    for i in range(n):
        await step(i)
    return (time.perf_counter() - start) / n * 1e6


async def run(recipients: int = 5000, reads: int = 2000) -> dict[str, Any]:
    async with (
        scratch_database("tenancy") as url,
        db.open_pool(url, min_size=1, max_size=1) as service,
    ):
        owner_pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
        try:
            async with owner_pool.acquire() as owner:
                await _seed(owner, recipients)

            async def plain_acquire(_: int) -> object:
                async with owner_pool.acquire() as c:
                    return await c.fetchval("SELECT 1")

            async def scoped_acquire(_: int) -> object:
                async with service.acquire() as c:
                    return await c.fetchval("SELECT 1")

            async def switching_acquire(i: int) -> object:
                with tenancy.scoped(tenancy.Scope(orgs=frozenset({f"org-{'ab'[i % 2]}"}))):
                    return await scoped_acquire(i)

            plain_us = await _timed(reads, plain_acquire)
            with tenancy.scoped(tenancy.Scope(orgs=frozenset({"org-a"}))):
                scoped_us = await _timed(reads, scoped_acquire)
            switching_us = await _timed(reads, switching_acquire)
            async with owner_pool.acquire() as owner:
                owner_by_id = await _timed(
                    reads, lambda i: owner.fetchrow(BY_ID, f"r-a-{i % recipients + 1}")
                )
                owner_list = await _timed(max(reads // 20, 10), lambda _: owner.fetch(
                    TEAM_LIST, "t-a"))  # fmt: skip
            with tenancy.scoped(tenancy.Scope(orgs=frozenset({"org-a"}))):
                async with service.acquire() as conn:
                    rls_by_id = await _timed(
                        reads, lambda i: conn.fetchrow(BY_ID, f"r-a-{i % recipients + 1}")
                    )
                    rls_list = await _timed(max(reads // 20, 10), lambda _: conn.fetch(
                        TEAM_LIST, "t-a"))  # fmt: skip
                    listed = len(await conn.fetch(TEAM_LIST, "t-a"))
                    leaked = len(await conn.fetch(TEAM_LIST, "t-b"))
        finally:
            await owner_pool.close()
    if listed != recipients or leaked != 0:
        raise RuntimeError(f"the policies did not hold: listed {listed}, other org {leaked}")
    out = {
        "recipients_per_org": recipients,
        "reads": reads,
        "acquire_plain_us": round(plain_us, 1),
        "acquire_scoped_us": round(scoped_us, 1),
        "acquire_scope_added_us": round(scoped_us - plain_us, 1),
        "acquire_scope_switching_us": round(switching_us, 1),
        "read_by_id_owner_us": round(owner_by_id, 1),
        "read_by_id_rls_us": round(rls_by_id, 1),
        "team_list_owner_us": round(owner_list, 1),
        "team_list_rls_us": round(rls_list, 1),
        "team_list_rls_over_owner_ratio": round(rls_list / owner_list, 2),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tenancy.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--recipients", type=int, default=5000)
    p.add_argument("--reads", type=int, default=2000)
    args = p.parse_args()
    print(json.dumps(asyncio.run(run(args.recipients, args.reads)), indent=2))


if __name__ == "__main__":
    main()
