"""The table gauges of ``/metrics``: aggregates of the shared tables, read at most every
``max_age_s`` seconds, whatever the scrape rate.

:class:`PgTables` reads them (five aggregate queries on one connection, among them the 24-hour
withdrawal -> teardown percentiles); :class:`TableSnapshot` keeps the last reading and is the
prometheus_client collector that exposes it. A scrape calls :meth:`TableSnapshot.refresh` first:
when the snapshot is older than ``max_age_s`` (monotonic time) one read starts, and every scrape
meanwhile shares it (waiting at most ``wait_s`` for it; a slow database gets the previous snapshot
and the read goes on). So two scrapes in a row cost at most one read, and a scrape storm costs
one read per ``max_age_s``. ``homecare_metrics_table_age_seconds`` says how old the numbers are.

Every process reads the same tables, so these gauges are the same whichever process is scraped
(aggregate them with ``max``, not ``sum``). Only counts, ages and latencies: no id, name or
anything else personal ever appears in a label.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import asyncpg
import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from kernel.clock import Clock

log = structlog.get_logger(__name__)

QUEUES = ("due", "needs_view", "patrol")
"""The check queues whose oldest waiting check is measured (worker, operator, patrol)."""
MAX_AGE_S = 15.0
"""Default: the table gauges are read at most this often (a typical scrape interval)."""
WAIT_S = 2.0
"""Default: how long a scrape waits for a read before it serves the previous snapshot."""


@dataclass(frozen=True, slots=True)
class TableFacts:
    """One reading of the tables, at ``at`` (the runtime's clock). Durations in seconds."""

    at: datetime
    checks: Mapping[str, int] = field(default_factory=dict)  # open checks by state
    queue_age_s: Mapping[str, float] = field(default_factory=dict)  # oldest wait, by queue
    overdue: int = 0  # open checks past their step's deadline
    lateness_max_s: float = 0.0  # how late the latest of them is (0 when none)
    devices: Mapping[str, int] = field(default_factory=dict)  # by presence
    quarantined: int = 0  # devices heard of, never bound
    sessions_open: Mapping[str, int] = field(default_factory=dict)  # live sessions by purpose
    teardowns: int = 0  # withdrawn sessions closed in the last 24 h with a known cause
    teardown_p50_s: float | None = None
    teardown_p99_s: float | None = None


class TableSource(Protocol):
    """What the snapshot reads (:class:`PgTables`; a test counts its calls through this)."""

    async def read(self, now: datetime) -> TableFacts: ...


OPEN_SQL = """
SELECT state, count(*) AS n, min(since) AS oldest,
       count(*) FILTER (WHERE deadline < $1::timestamptz) AS overdue,
       max($1::timestamptz - deadline) AS late
  FROM round_checks
 WHERE deadline IS NOT NULL
 GROUP BY state
"""

DEVICES_SQL = """
SELECT presence, count(*) AS n, count(*) FILTER (WHERE quarantined) AS quarantined
  FROM devices
 GROUP BY presence
"""

SESSIONS_SQL = """
SELECT purpose, count(*) AS n FROM signal_sessions WHERE state <> 'closed' GROUP BY purpose
"""

TEARDOWN_SQL = """
WITH closed AS (
    SELECT s.ended_at, s.device_id, s.recipient_id
      FROM signal_sessions s
     WHERE s.state = 'closed' AND s.end_reason = 'withdrawn'
       AND s.ended_at > $1::timestamptz - interval '24 hours' AND s.ended_at <= $1::timestamptz
), caused AS (
    SELECT c.ended_at, GREATEST(
        (SELECT max(GREATEST(w.withdrawn_at, w.recorded_at))
           FROM consent_withdrawals w JOIN consents k USING (consent_id)
          WHERE k.recipient_id = c.recipient_id
            AND GREATEST(w.withdrawn_at, w.recorded_at) <= c.ended_at),
        (SELECT max(GREATEST(p.starts_at, p.created_at)) FROM pauses p
          WHERE p.recipient_id = c.recipient_id
            AND GREATEST(p.starts_at, p.created_at) <= c.ended_at),
        (SELECT max(b.unbound_at) FROM device_bindings b
          WHERE b.device_id = c.device_id AND b.unbound_at <= c.ended_at),
        (SELECT max(pl.ended_at) FROM care_plans pl
          WHERE pl.recipient_id = c.recipient_id AND pl.ended_at <= c.ended_at),
        (SELECT max(su.started_at) FROM suspensions su
          WHERE su.recipient_id = c.recipient_id AND su.started_at <= c.ended_at)
    ) AS caused_at
      FROM closed c
)
SELECT count(*) AS n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM ended_at - caused_at)) AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM ended_at - caused_at))
           AS p99
  FROM caused
 WHERE caused_at IS NOT NULL
"""


class PgTables:
    """:class:`TableSource` over PostgreSQL: one connection, one read-only transaction."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def read(self, now: datetime) -> TableFacts:
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            open_rows = await conn.fetch(OPEN_SQL, now)
            device_rows = await conn.fetch(DEVICES_SQL)
            session_rows = await conn.fetch(SESSIONS_SQL)
            teardown = await conn.fetchrow(TEARDOWN_SQL, now)
        by_state = {r["state"]: r for r in open_rows}
        late = [r["late"].total_seconds() for r in open_rows if r["late"] is not None]
        n_teardowns = int(teardown["n"]) if teardown else 0
        return TableFacts(
            at=now,
            checks={r["state"]: int(r["n"]) for r in open_rows},
            queue_age_s={
                q: max(0.0, (now - by_state[q]["oldest"]).total_seconds()) if q in by_state else 0.0
                for q in QUEUES
            },
            overdue=sum(int(r["overdue"]) for r in open_rows),
            lateness_max_s=max(0.0, *late) if late else 0.0,
            devices={r["presence"]: int(r["n"]) for r in device_rows},
            quarantined=sum(int(r["quarantined"]) for r in device_rows),
            sessions_open={r["purpose"]: int(r["n"]) for r in session_rows},
            teardowns=n_teardowns,
            teardown_p50_s=float(teardown["p50"]) if n_teardowns and teardown else None,
            teardown_p99_s=float(teardown["p99"]) if n_teardowns and teardown else None,
        )


class TableSnapshot(Collector):
    """The last :class:`TableFacts` as Prometheus gauges; :meth:`refresh` before each scrape.

    ``max_age_s``: a snapshot younger than this is served as it is (monotonic time, so a sped-up
    runtime clock does not change the read rate); ``wait_s``: the longest a scrape waits for a
    read. :meth:`close` cancels a read still running (the composition root calls it at
    shutdown)."""

    def __init__(
        self,
        source: TableSource,
        clock: Clock,
        *,
        max_age_s: float = MAX_AGE_S,
        wait_s: float = WAIT_S,
    ) -> None:
        if max_age_s < 0 or wait_s <= 0:
            raise ValueError("max_age_s is 0 or more and wait_s more than 0")
        self._source = source
        self._clock = clock
        self.max_age_s = max_age_s
        self.wait_s = wait_s
        self.facts: TableFacts | None = None
        self._read_at: float | None = None  # monotonic time of the last successful read
        self._started_at: float | None = None  # monotonic time the last read started
        self._reading: asyncio.Task[None] | None = None
        self.reads = {"ok": 0, "failed": 0}

    async def refresh(self) -> None:
        """Start a read if the last one started ``max_age_s`` ago or more (a failed one too:
        a database outage costs one attempt per ``max_age_s``), and wait for the read under
        way, if any, at most ``wait_s``."""
        now_s = time.monotonic()
        if self._reading is None and (
            self._started_at is None or now_s - self._started_at >= self.max_age_s
        ):
            self._started_at = now_s
            self._reading = asyncio.get_running_loop().create_task(
                self._read(), name="metrics-tables"
            )
        if self._reading is not None:
            await asyncio.wait({self._reading}, timeout=self.wait_s)

    async def _read(self) -> None:
        try:
            self.facts = await self._source.read(self._clock())
            self._read_at = time.monotonic()
            self.reads["ok"] += 1
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            self.reads["failed"] += 1
            log.warning("metrics_tables_unread", error=type(e).__name__)
        finally:
            self._reading = None

    async def close(self) -> None:
        """Cancel a read still under way; safe to call twice."""
        reading, self._reading = self._reading, None
        if reading is not None:
            reading.cancel()
            await asyncio.wait({reading})

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        reads = CounterMetricFamily(
            "homecare_metrics_table_reads",
            "Reads of the table gauges from PostgreSQL, by outcome (at most one per max_age_s)",
            labels=["outcome"],
        )
        for outcome, n in sorted(self.reads.items()):
            reads.add_metric([outcome], n)
        yield reads
        f = self.facts
        if f is None or self._read_at is None:
            return  # never read yet (or the database never answered): no made-up zeros
        yield GaugeMetricFamily(
            "homecare_metrics_table_age_seconds",
            "How old the table gauges below are (seconds since their read finished)",
            value=max(0.0, time.monotonic() - self._read_at),
        )
        yield _by("homecare_checks", "Open checks by state", "state", f.checks)
        yield _by(
            "homecare_check_queue_age_seconds",
            "How long the oldest check has waited, by queue: due (a worker), needs_view"
            " (an operator), patrol; 0 when none waits",
            "queue",
            f.queue_age_s,
        )
        yield GaugeMetricFamily(
            "homecare_checks_overdue", "Open checks past their step's deadline", value=f.overdue
        )
        yield GaugeMetricFamily(
            "homecare_check_lateness_seconds_max",
            "How far past its deadline the latest open check is (0 when none is late)",
            value=f.lateness_max_s,
        )
        yield _by("homecare_devices", "Devices by presence", "presence", f.devices)
        yield GaugeMetricFamily(
            "homecare_devices_quarantined",
            "Devices heard of but never bound",
            value=f.quarantined,
        )
        yield _by(
            "homecare_sessions_open",
            "Live views, calls and probes, by purpose",
            "purpose",
            f.sessions_open,
        )
        yield GaugeMetricFamily(
            "homecare_teardowns",
            "Sessions torn down because a legal basis ended, over the last 24 h",
            value=f.teardowns,
        )
        teardown = GaugeMetricFamily(
            "homecare_teardown_seconds",
            "From a legal basis ending to its live session closed as withdrawn, over the last"
            " 24 h (quantile 0.5 and 0.99; absent without teardowns)",
            labels=["quantile"],
        )
        if f.teardown_p50_s is not None and f.teardown_p99_s is not None:
            teardown.add_metric(["0.5"], f.teardown_p50_s)
            teardown.add_metric(["0.99"], f.teardown_p99_s)
        yield teardown


def _by(name: str, doc: str, label: str, values: Mapping[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family
