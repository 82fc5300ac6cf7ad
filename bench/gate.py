"""The consent gate's cost per call: the pure rule, the gate through PostgreSQL, and bulk planning.

Baselines in the same run:
- pure ``rules.decide``: against one ``datetime.astimezone(zone)`` (the least any DST-correct
  answer must do) on the same instant;
- ``Gate.decide`` (one basis read + the rule): against a ``SELECT 1`` round trip on the same pool;
- ``Gate.bases`` for all brukare + ``rules.decide`` each (what the night planner does): per
  brukare, against the per-call gate;
- ``--bulk N`` (default 10,000): ``Gate.bases()`` of N brukare, the six demo cases cloned by SQL.

Scratch database on ``HOMECARE_BENCH_DATABASE_URL`` (default the loopback server), dropped after.

    .venv/bin/python -m bench.gate [--recipients 200] [--calls 2000] [--bulk 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from consent import rules
from consent.gate import Gate
from consent.model import Purpose
from consent.store import PgConsentStore
from services import db
from tools import demo_seed as demo

RESULTS = Path(__file__).parent / "results"


def _per_call_us(fn: Any, reps: int) -> float:
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps * 1e6


async def run(recipients: int = 200, calls: int = 2000) -> dict[str, Any]:
    admin_url = os.environ.get(
        "HOMECARE_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    name = f"hc_bench_gate_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rpartition("/")[0] + f"/{name}"
    now = datetime.now(UTC)
    try:
        async with db.open_pool(url) as pool:  # migrates as the URL's user, the owner
            store = PgConsentStore(pool)
            start = time.perf_counter()
            seeded = await demo.seed_consent(store, pool, homes=recipients, now=now)
            seed_s = time.perf_counter() - start
            gate = Gate(store)
            # an instant inside the first brukare's first agreed window, so the full path runs
            basis = await store.basis(seeded.recipients[0])
            device = basis.bindings[0].device_id
            zone = rules.zone_of(basis.recipient.time_zone)
            window = rules.night_windows(basis.plans[0], rules.night_of(now, zone), zone)[0]
            at = window.at
            decision = rules.decide(basis, device_id=device, purpose=Purpose.CAMERA_CHECK, at=at)
            if not decision.allowed:
                raise RuntimeError(f"bench basis not allowed: {decision}")
            pure_us = _per_call_us(
                lambda: rules.decide(basis, device_id=device, purpose=Purpose.CAMERA_CHECK, at=at),
                calls * 10,
            )
            outside = at + timedelta(hours=6, minutes=7)
            pure_out_us = _per_call_us(
                lambda: rules.decide(
                    basis, device_id=device, purpose=Purpose.CAMERA_CHECK, at=outside
                ),
                calls * 10,
            )
            tz_us = _per_call_us(lambda: at.astimezone(zone), calls * 10)

            start = time.perf_counter()
            for _ in range(calls):
                await pool.fetchval("SELECT 1")
            select1_us = (time.perf_counter() - start) / calls * 1e6
            start = time.perf_counter()
            for _ in range(calls):
                await gate.decide(device_id=device, purpose=Purpose.CAMERA_CHECK, at=at)
            gate_us = (time.perf_counter() - start) / calls * 1e6

            start = time.perf_counter()
            bases = await gate.bases()
            allowed = 0
            for b in bases.values():
                d = rules.decide_recipient(b, purpose=Purpose.CAMERA_CHECK, at=at)
                allowed += d.allowed
            bulk_s = time.perf_counter() - start
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    bulk_us = bulk_s / len(bases) * 1e6
    return {
        "recipients": len(bases),
        "calls": calls,
        "seed_s": round(seed_s, 2),
        "pure_decide_allowed_us": round(pure_us, 2),
        "pure_decide_outside_window_us": round(pure_out_us, 2),
        "astimezone_baseline_us": round(tz_us, 3),
        "pure_over_astimezone_ratio": round(pure_us / tz_us, 1),
        "gate_decide_db_us": round(gate_us, 1),
        "select1_baseline_us": round(select1_us, 1),
        "gate_over_select1_ratio": round(gate_us / select1_us, 2),
        "bulk_bases_plus_decide_per_recipient_us": round(bulk_us, 1),
        "bulk_over_per_call_ratio": round(bulk_us / gate_us, 3),
        "allowed_in_bulk_at_first_window": allowed,
    }


CLONE_SQL = [
    # n copies of brukare r-0001..r-0006 (all six demo cases) as r-0006-00001 ...
    """INSERT INTO care_recipients (recipient_id, display_name, home, time_zone, language,
         created_at, created_by)
       SELECT r.recipient_id || '-' || lpad(i::text, 5, '0'), r.display_name, r.home, r.time_zone,
         r.language, r.created_at, r.created_by
       FROM care_recipients r, generate_series(1, $1) i WHERE r.recipient_id <= 'r-0006'""",
    """INSERT INTO cohabitants (cohabitant_id, recipient_id, display_name, moved_in_at,
         moved_out_at)
       SELECT c.cohabitant_id || '-' || lpad(i::text, 5, '0'),
         c.recipient_id || '-' || lpad(i::text, 5, '0'), c.display_name, c.moved_in_at,
         c.moved_out_at
       FROM cohabitants c, generate_series(1, $1) i WHERE c.recipient_id <= 'r-0006'""",
    """INSERT INTO care_plans SELECT p.plan_id || '-' || lpad(i::text, 5, '0'),
         p.recipient_id || '-' || lpad(i::text, 5, '0'), p.decision_ref, p.valid_from,
         p.valid_until, p.checks, p.view_cap_s, p.motion_may_clear, p.retry_interval_s,
         p.escalation, p.instruction, p.paused_checks, p.created_at, p.created_by, p.ended_at,
         p.ended_by
       FROM care_plans p, generate_series(1, $1) i WHERE p.recipient_id <= 'r-0006'""",
    """INSERT INTO consents SELECT c.consent_id || '-' || lpad(i::text, 5, '0'),
         c.recipient_id || '-' || lpad(i::text, 5, '0'),
         c.cohabitant_id || '-' || lpad(i::text, 5, '0'), c.purpose, c.version, c.basis,
         c.basis_ref, c.informed_by, c.informed_how, c.given_at, c.valid_from, c.valid_until,
         c.windows, c.document_ref, c.recorded_at, c.recorded_by
       FROM consents c, generate_series(1, $1) i WHERE c.recipient_id <= 'r-0006'""",
    """INSERT INTO consent_withdrawals SELECT w.consent_id || '-' || lpad(i::text, 5, '0'),
         w.withdrawn_at, w.withdrawn_by, w.reason, w.recorded_at
       FROM consent_withdrawals w JOIN consents c USING (consent_id), generate_series(1, $1) i
       WHERE c.recipient_id <= 'r-0006'""",
    """INSERT INTO pauses SELECT p.pause_id || '-' || lpad(i::text, 5, '0'),
         p.recipient_id || '-' || lpad(i::text, 5, '0'), p.starts_at, p.ends_at, p.source,
         p.reason, p.note, p.created_at, p.created_by, p.ended_by
       FROM pauses p, generate_series(1, $1) i WHERE p.recipient_id <= 'r-0006'""",
    """INSERT INTO devices (device_id, kind, quarantined)
       SELECT b.device_id || '-' || lpad(i::text, 5, '0'), d.kind, false
       FROM device_bindings b JOIN devices d USING (device_id), generate_series(1, $1) i
       WHERE b.recipient_id <= 'r-0006'""",
    """INSERT INTO device_bindings SELECT b.binding_id || '-' || lpad(i::text, 5, '0'),
         b.device_id || '-' || lpad(i::text, 5, '0'),
         b.recipient_id || '-' || lpad(i::text, 5, '0'), b.bound_at, b.requested_by,
         b.bound_by, b.unbound_at, b.unbound_by
       FROM device_bindings b, generate_series(1, $1) i WHERE b.recipient_id <= 'r-0006'""",
]


async def bulk(recipients: int) -> dict[str, Any]:
    """``Gate.bases()`` for ``recipients`` brukare (the six demo cases cloned by SQL), and the
    pure gate over all of them: what the night planner reads and decides in one go."""
    admin_url = os.environ.get(
        "HOMECARE_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    name = f"hc_bench_gate_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rpartition("/")[0] + f"/{name}"
    now = datetime.now(UTC)
    try:
        async with db.open_pool(url) as pool:  # migrates as the URL's user, the owner
            store = PgConsentStore(pool)
            await demo.seed_consent(store, pool, homes=6, now=now)
            async with pool.acquire() as conn, conn.transaction():
                for sql in CLONE_SQL:
                    await conn.execute(sql, recipients // 6)
                await conn.execute("ANALYZE")
            gate = Gate(store)
            start = time.perf_counter()
            bases = await gate.bases()
            read_s = time.perf_counter() - start
            start = time.perf_counter()
            allowed = sum(
                rules.decide_recipient(b, purpose=Purpose.CAMERA_CHECK, at=now).allowed
                for b in bases.values()
            )
            decide_s = time.perf_counter() - start
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return {
        "bulk_recipients": len(bases),
        "bulk_bases_read_s": round(read_s, 3),
        "bulk_pure_decide_s": round(decide_s, 3),
        "bulk_allowed_now": allowed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=200)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--bulk", type=int, default=10_000, help="brukare for Gate.bases()")
    args = parser.parse_args()
    out = asyncio.run(run(args.recipients, args.calls))
    if args.bulk:
        out |= asyncio.run(bulk(args.bulk))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gate.json").write_text(json.dumps(out, indent=2) + "\n")
    for k, v in out.items():
        print(f"{k:>44}: {v}")


if __name__ == "__main__":
    main()
