"""Tonight's plan for 10,000 brukare end to end, as the service runs it; the pure planner beside.

**End to end** (the figure against DESIGN's target, 10,000 brukare planned in < 2 s):
``Watchdog.plan()`` exactly as the service runs it, on the service's pool (its role, scope and
row-level security): read every brukare's basis through the consent gate, read the devices online,
plan (:func:`supervision.schedule.plan_night`), store (checks, planning transitions, audit
entries), one run's sum, timed as the service reports it to ``/metrics``. The brukare are the six
demo cases (:mod:`tools.demo_seed`) cloned by SQL (``bench.gate.CLONE_SQL``) to 10,002, each
keeping 2 or 3 agreed times (about 25,000 checks), one camera in 25 offline; the previous
``--history`` nights (7) are stored first, so tonight's store meets tables that hold last week
(nothing is truncated): the first of them planned and stored through the same path, the others
copies of it by SQL with their dates shifted (no audit entries of their own). The bases are read
in parts (``supervision.watchdog.READ_PART_SIZE``), each planned and stored while the next is
read, so the parts overlap; each is timed inside that run as what it adds to the wall time:
``bases_read_s`` the time the planning waited for bases, ``devices_online_s``, ``store_s`` the
store's time outside asking for parts; the planner's own share is the rest (``_computed``).
The process's garbage collector is set as the service sets it
(:func:`services.collector.collect_less`).
Baseline in the same run: a floor, as the schema's owner with no security: fetch every row of the
bases' tables once (no model built), and ``COPY`` the same checks into a regular, WAL-logged
table without indexes, triggers or constraints.

**Pure planner** at 1k / 10k brukare (``--sizes`` for others) of a synthetic municipality (2-3
agreed times per brukare; 8 % without camera consent, 4 % with the camera offline, 3 % paused
tonight, 10 % without motion consent), no I/O, beside building the same
:class:`~supervision.checks.Check` values with no rule evaluated.

    .venv/bin/python -m bench.planning [--quick] [--sizes 1000,10000] [--recipients N]

Scratch database on the server of ``HOMECARE_BENCH_DATABASE_URL`` (else ``HOMECARE_DATABASE_URL``,
else the loopback server). Prints the figures and writes ``bench/results/planning.json``;
:func:`run` returns the same dict.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Collection, Iterable
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import asyncpg
import structlog

from bench.gate import CLONE_SQL
from consent.gate import Gate
from consent.model import (
    Basis,
    Binding,
    CarePlan,
    CareRecipient,
    CheckTime,
    Consent,
    Pause,
    PauseReason,
    PauseSource,
    Purpose,
    RecipientBasis,
)
from consent.rules import night_windows
from consent.store import PgConsentStore
from services import collector, db
from supervision import checks as ch
from supervision import schedule
from supervision.service import RegistryDevices
from supervision.store import INSERT_COLUMNS, RoundStore, _columns
from supervision.watchdog import Watchdog, WatchdogConfig
from tools import demo_seed as demo

RESULTS = Path(__file__).parent / "results"
ZONE = ZoneInfo("Europe/Stockholm")
NIGHT = date(2026, 3, 10)
PLAN_AT = datetime(2026, 3, 10, 18, 0, tzinfo=ZONE)
LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)
TIMES = (
    (clock_time(22, 0), clock_time(2, 0)),
    (clock_time(21, 30), clock_time(1, 0), clock_time(4, 30)),
    (clock_time(23, 0), clock_time(3, 0)),
    (clock_time(22, 30), clock_time(5, 0), clock_time(6, 30)),
)
TARGET_10K_S = 2.0


def _consent(rid: str, purpose: Purpose) -> Consent:
    return Consent(
        consent_id=f"c-{rid}-{purpose.value}",
        recipient_id=rid,
        cohabitant_id=None,
        purpose=purpose,
        version=1,
        basis=Basis.INFORMED_CONSENT,
        given_at=LONG_AGO,
        valid_from=LONG_AGO,
        informed_by="staff-bench",
    )


def municipality(n: int) -> tuple[list[RecipientBasis], set[str]]:
    """``n`` brukare and the set of online devices."""
    bases, online = [], set()
    for i in range(n):
        rid = f"r-{i:06d}"
        device = f"cam-{i:06d}"
        consents = [] if i % 25 == 3 else [_consent(rid, Purpose.CAMERA_CHECK)]
        if i % 10 != 7:
            consents.append(_consent(rid, Purpose.MOTION_ANALYSIS))
        pauses = ()
        if i % 33 == 5:
            pauses = (
                Pause(f"p-{rid}", rid, LONG_AGO, None, PauseSource.HOSPITAL, PauseReason.TRAVEL),
            )
        bases.append(
            RecipientBasis(
                recipient=CareRecipient(rid, "Namn"),
                plans=(
                    CarePlan(
                        plan_id=f"plan-{rid}",
                        recipient_id=rid,
                        decision_ref="dec",
                        valid_from=LONG_AGO,
                        checks=tuple(CheckTime(t, 15) for t in TIMES[i % len(TIMES)]),
                        motion_may_clear=i % 2 == 0,
                    ),
                ),
                consents=tuple(consents),
                pauses=pauses,
                bindings=(
                    Binding(f"b-{rid}", device, rid, LONG_AGO, "a", "b", device_kind="camera"),
                ),
            )
        )
        if i % 25 != 11:
            online.add(device)
    return bases, online


def floor_checks(bases: list[RecipientBasis]) -> int:
    """The baseline: the same check values with windows resolved, no rule evaluated."""
    made = 0
    for b in bases:
        for plan in b.plans:
            policy = schedule.policy_of(plan)
            for w in night_windows(plan, NIGHT, ZONE):
                ch.planned(
                    check_id=schedule.check_id(
                        b.recipient.recipient_id, NIGHT, plan.checks[w.index].at
                    ),
                    recipient_id=b.recipient.recipient_id,
                    device_id=b.bindings[0].device_id,
                    night=NIGHT,
                    agreed=plan.checks[w.index].at,
                    agreed_at=w.at,
                    window_start=w.start,
                    window_end=w.end,
                    policy=policy,
                    at=PLAN_AT,
                )
                made += 1
    return made


def _pure(n: int) -> dict[str, Any]:
    """The pure planner for ``n`` brukare (no I/O), best of three up to 10k (one above)."""
    bases, online = municipality(n)
    reps = 3 if n <= 10_000 else 1
    floor_s = plan_s = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        floor_n = floor_checks(bases)
        floor_s = min(floor_s, time.perf_counter() - start)
        start = time.perf_counter()
        plan = schedule.plan_night(bases, night=NIGHT, at=PLAN_AT, online=online.__contains__)
        plan_s = min(plan_s, time.perf_counter() - start)
        if len(plan.checks) != floor_n:
            raise RuntimeError(f"planner made {len(plan.checks)} checks, the floor {floor_n}")
    return {
        "recipients": n,
        "checks": len(plan.checks),
        "by_state": {k.value: v for k, v in plan.by_state().items()},
        "plan_s": round(plan_s, 4),
        "baseline": "building the same Check values with no rule evaluated",
        "baseline_s": round(floor_s, 4),
        "plan_over_baseline": round(plan_s / floor_s, 2),
        "repetitions": reps,
    }


# -- end to end: plan() as the service runs it ---------------------------------------------------


class _TimedBases:
    """The service's bases port (the consent gate), timed: ``bases_read_s`` is the time the
    planning waited for its parts (the read of a part overlaps the store's insert of the one
    before; what overlaps is not counted twice)."""

    def __init__(self, inner: Gate, took: dict[str, float]) -> None:
        self.inner, self.took = inner, took

    async def bases(
        self, recipient_ids: Collection[str] | None = None
    ) -> dict[str, RecipientBasis]:
        return await self.inner.bases(recipient_ids)

    async def bases_in_parts(self, size: int) -> AsyncGenerator[list[RecipientBasis], None]:
        self.took["bases_read_s"] = 0.0
        read = self.inner.bases_in_parts(size)
        try:
            while True:
                start = time.perf_counter()
                part = await anext(read, None)
                self.took["bases_read_s"] += time.perf_counter() - start
                if part is None:
                    return
                yield part
        finally:
            await read.aclose()


class _TimedDevices(RegistryDevices):
    def __init__(self, pool: asyncpg.Pool, took: dict[str, float]) -> None:
        super().__init__(pool)
        self.took = took

    async def online(self, device_ids: Collection[str] | None = None) -> set[str]:
        start = time.perf_counter()
        try:
            return await super().online(device_ids)
        finally:
            self.took["devices_online_s"] = time.perf_counter() - start


class _TimedStore(RoundStore):
    def __init__(self, pool: asyncpg.Pool, took: dict[str, float]) -> None:
        super().__init__(pool)
        self.took = took

    async def save_plan_parts(
        self,
        night: date,
        parts: Iterable[schedule.NightPlan] | AsyncIterable[schedule.NightPlan],
        *,
        at: datetime,
        actor: str = "system",
    ) -> tuple[schedule.NightPlan, int]:
        """Timed; the parts asked for inside (the bases read and the planning) are timed apart
        and not counted in ``store_s``: the store's own time is what it adds to them."""
        planning = [0.0]
        assert isinstance(parts, AsyncIterable)  # as Watchdog.plan gives them

        async def timed() -> AsyncIterator[schedule.NightPlan]:
            it = aiter(parts)
            while True:
                start = time.perf_counter()
                part = await anext(it, None)
                planning[0] += time.perf_counter() - start
                if part is None:
                    return
                yield part

        start = time.perf_counter()
        try:
            return await super().save_plan_parts(night, timed(), at=at, actor=actor)
        finally:
            self.took["read_and_planning_in_store_s"] = planning[0]
            self.took["store_s"] = time.perf_counter() - start - planning[0]


#: Each brukare keeps 2 or 3 of the demo plan's agreed times (about 2.5 checks a night).
TRIM_PLANS_SQL = """UPDATE care_plans SET checks = (
  SELECT jsonb_agg(e ORDER BY o) FROM jsonb_array_elements(checks) WITH ORDINALITY x(e, o)
  WHERE o <= 2 + (hashtext(plan_id) & 1))"""
#: About one camera in 25 is offline tonight.
ONLINE_SQL = "UPDATE devices SET presence = 'online' WHERE hashtext(device_id) % 25 <> 0"
FLOOR_TABLES = ("care_recipients", "cohabitants", "care_plans", "consents", "consent_withdrawals",
                "pauses", "device_bindings", "suspensions")  # fmt: skip


async def _floor(owner: asyncpg.Connection, plan: schedule.NightPlan) -> dict[str, float]:
    """What any planner must do at least, as the owner (no row-level security): fetch every row
    of the bases' tables once (no model built), and COPY the plan's checks into a regular
    (WAL-logged) table without indexes, triggers or constraints."""
    start = time.perf_counter()
    for table in FLOOR_TABLES:
        await owner.fetch(f"SELECT * FROM {table}")  # constant names
    read_s = time.perf_counter() - start
    cols = _columns(list(plan.checks))
    await owner.execute("CREATE TABLE bench_floor (LIKE round_checks INCLUDING DEFAULTS)")
    try:
        start = time.perf_counter()
        async with owner.transaction():
            await owner.copy_records_to_table(
                "bench_floor",
                records=zip(
                    *cols,
                    [c.version for c in plan.checks],
                    [PLAN_AT] * len(plan.checks),
                    strict=True,
                ),
                columns=[*INSERT_COLUMNS, "version", "planned_at"],
            )
        write_s = time.perf_counter() - start
    finally:
        await owner.execute("DROP TABLE bench_floor")
    return {"read_floor_s": read_s, "write_floor_s": write_s}


_SHIFTED = ("agreed_at", "window_start", "window_end", "since", "deadline", "planned_at")
COPY_CHECKS_SQL = (
    "INSERT INTO round_checks ({cols}) SELECT {exprs} FROM round_checks WHERE night = $1".format(
        cols=", ".join([*INSERT_COLUMNS, "version", "planned_at", "organisation_id", "team_id"]),
        exprs=", ".join(
            "replace(check_id, to_char($1::date, 'YYYYMMDD'), to_char($2::date, 'YYYYMMDD'))"
            if c == "check_id"
            else "$2::date"
            if c == "night"
            else f"{c} + ($2::date - $1::date) * interval '1 day'"
            if c in _SHIFTED
            else c
            for c in [*INSERT_COLUMNS, "version", "planned_at", "organisation_id", "team_id"]
        ),
    )
)
COPY_TRANSITIONS_SQL = (
    "INSERT INTO round_transitions (check_id, version, at, from_state, to_state, event, actor,"
    " reason, verdict, organisation_id)"
    " SELECT replace(t.check_id, to_char($1::date, 'YYYYMMDD'), to_char($2::date, 'YYYYMMDD')),"
    " t.version, t.at + ($2::date - $1::date) * interval '1 day', t.from_state, t.to_state,"
    " t.event, t.actor, t.reason, t.verdict, t.organisation_id"
    " FROM round_transitions t JOIN round_checks c USING (check_id) WHERE c.night = $1"
)
COPY_NIGHT_SQL = (
    "INSERT INTO round_nights (night, planned_at, summary, reconciled_at)"
    " SELECT $2::date, planned_at + ($2::date - $1::date) * interval '1 day', summary,"
    " planned_at + ($2::date - $1::date + 1) * interval '1 day' FROM round_nights WHERE night = $1"
)


async def _copy_night(owner: asyncpg.Connection, source: date, night: date) -> None:
    """Another stored night like ``source`` (checks, transitions, the night's row), dates
    shifted: history for the tables and indexes, without planning it again."""
    async with owner.transaction():
        for sql in (COPY_CHECKS_SQL, COPY_TRANSITIONS_SQL, COPY_NIGHT_SQL):
            await owner.execute(sql, source, night)


async def end_to_end(url: str, recipients: int, history_nights: int) -> dict[str, Any]:
    """``Watchdog.plan()`` as the service runs it, for ``recipients`` brukare, with the previous
    ``history_nights`` nights already stored: the first of them planned and stored through the
    same path (timed: ``history_plan_s``), the others copies of it with their dates shifted."""
    tonight = NIGHT
    clock = [datetime.combine(tonight - timedelta(days=history_nights + 1), clock_time(21), ZONE)]
    took: dict[str, float] = {}
    thresholds = collector.collect_less()  # as services.app.serve does once it has started
    async with db.open_pool(url) as pool:  # the service's pool: its role, its scope, RLS
        consent = PgConsentStore(pool)
        start = time.perf_counter()
        await demo.seed_consent(consent, pool, homes=6, now=clock[0])
        async with pool.acquire() as conn, conn.transaction():
            for sql in CLONE_SQL:  # the six demo cases, cloned
                await conn.execute(sql, -(-recipients // 6))
        owner = await asyncpg.connect(url)
        try:
            await owner.execute(TRIM_PLANS_SQL)
            await owner.execute(ONLINE_SQL)
            await owner.execute("ANALYZE")
            seed_s = time.perf_counter() - start
            watchdog = Watchdog(
                _TimedStore(pool, took),
                bases=_TimedBases(Gate(consent), took),
                devices=_TimedDevices(pool, took),
                clock=lambda: clock[0],
                config=WatchdogConfig(zone=str(ZONE)),
                on_planned=lambda _kind, s: took.__setitem__("plan_total_s", s),
            )
            history: list[float] = []
            first = tonight - timedelta(days=history_nights)
            for night in [first] * bool(history_nights) + [tonight]:
                clock[0] = datetime.combine(night, clock_time(18), ZONE)
                took.clear()
                plan = await watchdog.plan(night)
                print(f"planned {night}: {took['plan_total_s']:.2f} s", flush=True)
                if night != tonight:
                    history.append(round(took["plan_total_s"], 3))
                    for back in range(history_nights - 1, 0, -1):
                        await _copy_night(owner, first, tonight - timedelta(days=back))
                    await owner.execute("ANALYZE round_checks, round_transitions")
            stored = await owner.fetchval("SELECT count(*) FROM round_checks")
            brukare = await owner.fetchval("SELECT count(*) FROM care_recipients")
            floor = await _floor(owner, plan)
        finally:
            await owner.close()
    total = took["plan_total_s"]
    parts = {
        k: round(took[k], 4)
        for k in ("bases_read_s", "devices_online_s", "store_s", "read_and_planning_in_store_s")
    }
    parts["plan_night_s_computed"] = round(
        total - took["bases_read_s"] - took["devices_online_s"] - took["store_s"], 4
    )
    floor_s = floor["read_floor_s"] + floor["write_floor_s"]
    return {
        "recipients": brukare,
        "checks": len(plan.checks),
        "by_state": {k.value: v for k, v in plan.by_state().items()},
        "checks_stored_before": stored - len(plan.checks),
        "history_nights": history_nights,
        "history_plan_s": history,
        "seed_s": round(seed_s, 2),
        "gc_thresholds": list(thresholds),
        "plan_s": round(total, 4),
        **parts,
        "baseline": "fetch the bases' rows once + COPY the checks into a plain table (owner)",
        "baseline_s": round(floor_s, 4),
        **{k: round(v, 4) for k, v in floor.items()},
        "plan_over_baseline": round(total / floor_s, 2),
        "target_s": TARGET_10K_S if brukare >= 10_000 else None,
        "target_ratio": round(total / TARGET_10K_S, 3),
    }


async def run(
    quick: bool = False,
    sizes: tuple[int, ...] | None = None,
    recipients: int | None = None,
    history_nights: int | None = None,
) -> dict[str, Any]:
    sizes = sizes or ((100, 1_000) if quick else (1_000, 10_000))
    recipients = recipients or (300 if quick else 10_000)
    history_nights = history_nights if history_nights is not None else (1 if quick else 7)
    admin_url = (
        os.environ.get("HOMECARE_BENCH_DATABASE_URL")
        or os.environ.get("HOMECARE_DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    rows = [_pure(n) for n in sizes]
    print(f"pure planner: {[r['plan_s'] for r in rows]} s", flush=True)
    name = f"hc_bench_planning_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    try:
        e2e = await end_to_end(url, recipients, history_nights)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    out = {
        "night": NIGHT.isoformat(),
        "sizes": rows,
        "end_to_end": e2e,
        "target": f"10,000 brukare planned end to end in < {TARGET_10K_S} s (DESIGN.md)",
        "load_average": _load_average(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "planning.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


def _load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "unknown"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--sizes", help="comma list of brukare counts for the pure planner")
    p.add_argument("--recipients", type=int, help="brukare for the end-to-end run (10,000)")
    p.add_argument("--history", type=int, help="nights already stored before tonight (7)")
    args = p.parse_args()
    sizes = tuple(int(x) for x in args.sizes.split(",")) if args.sizes else None
    logging.getLogger().setLevel(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    result = asyncio.run(run(args.quick, sizes, args.recipients, args.history))
    for row in result["sizes"]:
        print(
            f"pure planner {row['recipients']:>7,} brukare, {row['checks']:>7,} checks: "
            f"{row['plan_s']:.3f} s ({row['plan_over_baseline']}x the floor)"
        )
    e = result["end_to_end"]
    print(
        f"end to end {e['recipients']:,} brukare, {e['checks']:,} checks, "
        f"{e['checks_stored_before']:,} stored before: {e['plan_s']:.3f} s = bases "
        f"{e['bases_read_s']:.3f} + online {e['devices_online_s']:.3f} + plan (computed) "
        f"{e['plan_night_s_computed']:.3f} + store {e['store_s']:.3f};"
        f" floor {e['baseline_s']:.3f} s;"
        f" {e['target_ratio']:.2f} of the 2 s target (load {result['load_average']})"
    )


if __name__ == "__main__":
    main()
