"""The daily retention job: delete or blank what is past its retention, erase ended brukare.

:func:`run` takes the policy (:func:`policy_of` the settings), the instant and a pool whose
connections run as the service's role in the system's scope. It holds a session-level advisory
lock (:data:`RETENTION_LOCK_KEY`) for the whole run, so one process at a time runs it (another
that finds the lock taken does nothing and says so). Then, for each class of
:mod:`services.retention_rules`, it runs its sweeps in batches (``batch`` rows per transaction,
until a batch comes back short), and erases every brukare due (``erase_recipient``, one
transaction each, with a ``recipient.erased`` audit entry holding counts only). Each class that
was acted on gets one audit entry per run (``retention.applied``: the class, the cutoff, the rows
per table; no personal data; a class with nothing to do gets none). ``dry_run`` counts what
would be done and changes nothing (and audits nothing).

:func:`daily` is the background task of the process with the ``rounds`` role: it runs the job at
``retention_hour`` local time every day, on the service clock.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo

import asyncpg
import structlog

from kernel import tenancy
from kernel.audit import store as audit_store
from kernel.clock import Clock, ClockPort
from services import retention_rules as rr
from services.settings import Settings

log = structlog.get_logger(__name__)

RETENTION_LOCK_KEY = 0x68635F726574  # "hc_ret"


def policy_of(settings: Settings) -> rr.Policy:
    """The retention policy the settings give."""
    return rr.Policy(
        {
            rr.DataClass.VIEW_LOG: settings.retention_view_log_days,
            rr.DataClass.CHECK_RECORDS: settings.retention_check_days,
            rr.DataClass.NOTES: settings.retention_note_days,
            rr.DataClass.DEVICE_HEALTH: settings.retention_device_health_days,
            rr.DataClass.SESSIONS: settings.retention_session_days,
            rr.DataClass.ENDED_RECIPIENTS: settings.retention_ended_recipient_days,
        }
    )


@dataclass
class Outcome:
    """What one run did (or, dry, would do): rows per class and table, brukare erased."""

    ran: bool = True  # False: another process held the lock
    dry_run: bool = False
    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    erased: list[str] = field(default_factory=list)

    def add(self, data_class: rr.DataClass, table: str, n: int) -> None:
        per = self.rows.setdefault(data_class.value, {})
        per[table] = per.get(table, 0) + n

    def json(self) -> dict[str, object]:
        return {
            "ran": self.ran,
            "dry_run": self.dry_run,
            "rows": self.rows,
            "erased": len(self.erased),
        }


async def run(
    pool: asyncpg.Pool,
    policy: rr.Policy,
    *,
    now: datetime,
    batch: int = 1000,
    dry_run: bool = False,
) -> Outcome:
    """One run of the job at ``now`` (see the module's docstring)."""
    with tenancy.scoped(tenancy.SYSTEM):
        async with pool.acquire() as lock_conn:
            if not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", RETENTION_LOCK_KEY):
                log.info("retention_skipped", reason="another_process_runs_it")
                return Outcome(ran=False, dry_run=dry_run)
            try:
                return await _run(pool, policy, now=now, batch=batch, dry_run=dry_run)
            finally:
                await lock_conn.execute("SELECT pg_advisory_unlock($1)", RETENTION_LOCK_KEY)


async def _run(
    pool: asyncpg.Pool, policy: rr.Policy, *, now: datetime, batch: int, dry_run: bool
) -> Outcome:
    out = Outcome(dry_run=dry_run)
    cut = rr.cutoffs(policy, now)
    for sweep in rr.SWEEPS:
        cutoff = cut[sweep.data_class]
        n = (
            await _count(pool, sweep, cutoff)
            if dry_run
            else await _sweep(pool, sweep, cutoff, batch)
        )
        out.add(sweep.data_class, sweep.table, n)
    rows = await pool.fetch(
        "SELECT recipient_id, ended_at, erased_at FROM care_recipients"
        " WHERE ended_at IS NOT NULL AND erased_at IS NULL AND ended_at <= $1",
        cut[rr.DataClass.ENDED_RECIPIENTS],
    )
    due = rr.due_for_erasure(
        (rr.EndedRecipient(r["recipient_id"], r["ended_at"], r["erased_at"]) for r in rows),
        policy,
        now,
    )
    for recipient_id in due:
        if not dry_run:
            counts = await erase(pool, recipient_id, at=now)
            for table, n in counts.items():
                out.add(rr.DataClass.ENDED_RECIPIENTS, table, n)
        out.erased.append(recipient_id)
    out.add(rr.DataClass.ENDED_RECIPIENTS, "care_recipients", len(due))
    if not dry_run:
        async with pool.acquire() as conn:
            for data_class in rr.DataClass:
                per = {t: n for t, n in out.rows.get(data_class.value, {}).items() if n}
                if not per:
                    continue  # nothing past retention: no entry (the log line says it ran)
                await audit_store.append(
                    conn,
                    actor="system",
                    action="retention.applied",
                    subject=None,
                    data={
                        "data_class": data_class.value,
                        "retention_days": policy.of(data_class),
                        "cutoff": cut[data_class],
                        "rows": per,
                        "total": sum(per.values()),
                    },
                    at=now,
                )
    log.info(
        "retention_run",
        dry_run=dry_run,
        erased=len(out.erased),
        **{c: sum(t.values()) for c, t in out.rows.items()},
    )
    return out


async def _count(pool: asyncpg.Pool, sweep: rr.Sweep, cutoff: datetime) -> int:
    found: int = await pool.fetchval(
        f"SELECT count(*) FROM {sweep.table} WHERE {sweep.where}",
        cutoff,
    )
    return found


async def _sweep(pool: asyncpg.Pool, sweep: rr.Sweep, cutoff: datetime, batch: int) -> int:
    """Delete or blank the sweep's rows, ``batch`` per transaction, until a batch is short."""
    pick = f"SELECT {sweep.key} FROM {sweep.table} WHERE {sweep.where} LIMIT $2"
    if sweep.action is rr.Action.DELETE:
        sql = f"DELETE FROM {sweep.table} WHERE {sweep.key} IN ({pick})"
    else:
        sql = f"UPDATE {sweep.table} SET {sweep.assign} WHERE {sweep.key} IN ({pick})"
    total = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            status = await conn.execute(sql, cutoff, batch)
        n = int(status.split()[-1])
        total += n
        if n < batch:
            return total


async def erase(pool: asyncpg.Pool, recipient_id: str, *, at: datetime) -> dict[str, int]:
    """Erase one ended brukare's personal data (``erase_recipient``) and audit it with counts;
    one transaction. Raises ``asyncpg.CheckViolationError`` if their service has not ended."""
    async with pool.acquire() as conn, conn.transaction():
        raw = await conn.fetchval("SELECT erase_recipient($1, $2)::text", recipient_id, at)
        counts: dict[str, int] = json.loads(raw)
        await audit_store.append(
            conn,
            actor="system",
            action="recipient.erased",
            subject=recipient_id,
            data={"rows": counts},
            at=at,
        )
    log.info("recipient_erased", recipient_id=recipient_id, rows=sum(counts.values()))
    return counts


def next_run(now: datetime, zone: tzinfo, hour: int) -> datetime:
    """The next ``hour`` o'clock local time after ``now`` (pure)."""
    local = now.astimezone(zone)
    at = datetime.combine(local.date(), time(hour), tzinfo=zone)
    if at <= local:
        at = datetime.combine(local.date() + timedelta(days=1), time(hour), tzinfo=zone)
    return at


POLL_S = 30.0
"""How often the daily job looks at the clock, in real seconds."""


async def daily(pool: asyncpg.Pool, settings: Settings, clock: Clock | ClockPort) -> None:
    """Run the job every day at ``retention_hour`` (the ``retention`` task).

    It looks at the service clock every :data:`POLL_S` seconds of real time rather than sleeping
    on the clock: a hand-moved clock (tests, ``ScaledClock(0)``) advances when slept on, and a
    daily job must never move the service's time forward by a day."""
    policy = policy_of(settings)
    due = next_run(clock(), settings.zone, settings.retention_hour)
    while True:
        await asyncio.sleep(POLL_S)
        now = clock()
        if now < due:
            continue
        due = next_run(now, settings.zone, settings.retention_hour)
        try:
            await run(pool, policy, now=now, batch=settings.retention_batch_rows)
        except (OSError, asyncpg.PostgresError) as e:  # tomorrow again; the log says why
            log.warning("retention_failed", error=type(e).__name__)
