"""Operations gauges for ``/metrics`` computed from the shared tables (Prometheus text format).

Every process reads the same tables, so these gauges are the same whichever process is scraped
(aggregate them with ``max``, not ``sum``). Only counts, ages and latencies: no id, name or
anything else personal ever appears in a label.

- ``homecare_checks{state}``: open checks (not yet performed, escalated or a deviation) by state;
- ``homecare_check_queue_age_seconds{queue}``: how long the oldest check has waited for a worker
  (``due``), for an operator (``needs_view``) and for the patrol (``patrol``); 0 when none waits;
- ``homecare_checks_overdue`` and ``homecare_check_lateness_seconds_max``: open checks past their
  step's deadline, and by how much the latest one is late;
- ``homecare_devices_quarantined``: devices heard of but never bound;
- ``homecare_sessions_open{purpose}``: live views, calls and probes;
- ``homecare_teardown_seconds{quantile}`` / ``homecare_teardowns``: over the last 24 h, from the
  instant a legal basis ended (consent withdrawn, pause started, device unbound, care plan ended,
  supervision suspended) to the live session of that brukare being closed as ``withdrawn``.

Who may scrape: a client on loopback (a sidecar or node exporter) without proxy headers, or anyone
sending ``Authorization: Bearer <HOMECARE_METRICS_TOKEN>``. Everyone else gets 403: the counters
say how many homes, devices and sessions there are, and when staff are busy.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from datetime import datetime

import asyncpg
from aiohttp import web

QUEUES = ("due", "needs_view", "patrol")
_PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


def may_scrape(remote: str | None, headers: Mapping[str, str], token: str) -> bool:
    """Whether a client at ``remote`` sending ``headers`` may read ``/metrics`` (see above). A
    request relayed by a proxy on loopback is not a loopback client."""
    if token:
        sent = headers.get("Authorization", "")
        if hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return True
    if remote is None or any(h in headers for h in _PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:
        return False  # a Unix socket or something else we cannot place


def require_scraper(request: web.Request, token: str) -> None:
    """Raise 403 unless the request :func:`may_scrape`."""
    if not may_scrape(request.remote, request.headers, token):
        raise web.HTTPForbidden(reason="metrics are for loopback or the metrics token")


OPEN_SQL = """
SELECT state, count(*) AS n, min(since) AS oldest,
       count(*) FILTER (WHERE deadline < $1::timestamptz) AS overdue,
       max($1::timestamptz - deadline) AS late
  FROM round_checks
 WHERE deadline IS NOT NULL
 GROUP BY state
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


def _num(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))


async def table_gauges(pool: asyncpg.Pool, now: datetime) -> list[str]:
    """The gauges above as exposition lines, at ``now`` (the runtime's clock)."""
    lines: list[str] = []
    async with pool.acquire() as conn:
        rows = await conn.fetch(OPEN_SQL, now)
        quarantined = await conn.fetchval("SELECT count(*) FROM devices WHERE quarantined")
        sessions = await conn.fetch(
            "SELECT purpose, count(*) AS n FROM signal_sessions WHERE state <> 'closed'"
            " GROUP BY purpose"
        )
        teardown = await conn.fetchrow(TEARDOWN_SQL, now)
    lines.append("# TYPE homecare_checks gauge")
    lines += [f'homecare_checks{{state="{r["state"]}"}} {r["n"]}' for r in rows]
    by_state = {r["state"]: r for r in rows}
    lines.append("# TYPE homecare_check_queue_age_seconds gauge")
    for queue in QUEUES:
        row = by_state.get(queue)
        age = max(0.0, (now - row["oldest"]).total_seconds()) if row else 0.0
        lines.append(f'homecare_check_queue_age_seconds{{queue="{queue}"}} {_num(age)}')
    overdue = sum(r["overdue"] for r in rows)
    late = max((r["late"].total_seconds() for r in rows if r["late"] is not None), default=0.0)
    lines += [
        "# TYPE homecare_checks_overdue gauge",
        f"homecare_checks_overdue {overdue}",
        "# TYPE homecare_check_lateness_seconds_max gauge",
        f"homecare_check_lateness_seconds_max {_num(max(0.0, late))}",
        "# TYPE homecare_devices_quarantined gauge",
        f"homecare_devices_quarantined {quarantined}",
        "# TYPE homecare_sessions_open gauge",
    ]
    lines += [f'homecare_sessions_open{{purpose="{r["purpose"]}"}} {r["n"]}' for r in sessions]
    lines += [
        "# TYPE homecare_teardowns gauge",
        f"homecare_teardowns {teardown['n'] if teardown else 0}",
        "# TYPE homecare_teardown_seconds gauge",
    ]
    if teardown and teardown["n"]:
        lines += [
            f'homecare_teardown_seconds{{quantile="0.5"}} {_num(float(teardown["p50"]))}',
            f'homecare_teardown_seconds{{quantile="0.99"}} {_num(float(teardown["p99"]))}',
        ]
    return lines
