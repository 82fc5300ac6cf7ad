"""``/metrics`` of the composed app: queue age, check lateness, presence, sessions and withdrawal ->
teardown latency, computed from the tables at the runtime's clock; no personal data in it; the
tables read at most once for scrapes in a row; an outsider refused."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import socket
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from services import app
from services.settings import load
from services.web import metrics as ops_metrics
from services.web.metrics_tables import PgTables, TableSnapshot

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
NIGHT = date(2026, 11, 20)
FINAL = {"cleared", "documented", "visited", "escalated", "deviation"}


async def _check(
    conn: asyncpg.Connection, rid: str, hhmm: str, state: str, since_s: float, deadline_s: float
) -> None:
    at = NOW
    await conn.execute(
        "INSERT INTO round_checks (check_id, recipient_id, device_id, night, agreed, agreed_at,"
        " window_start, window_end, policy, state, since, deadline, attempt, ladder_step, version,"
        " planned_at) VALUES ($1, $2, NULL, $3, $4, $5, $6, $7, '{}'::jsonb, $8, $9, $10, 1, 0,"
        " 0, $5)",
        f"{NIGHT:%Y%m%d}.{hhmm.replace(':', '')}.{rid}",
        rid,
        NIGHT,
        datetime.strptime(hhmm, "%H:%M").time(),
        at,
        at - timedelta(minutes=15),
        at + timedelta(minutes=15),
        state,
        NOW - timedelta(seconds=since_s),
        None if state in FINAL else NOW + timedelta(seconds=deadline_s),
    )


async def _session(
    conn: asyncpg.Connection, sid: str, device: str, rid: str, ended: datetime | None
) -> None:
    await conn.execute(
        "INSERT INTO signal_sessions (session_id, device_id, purpose, staff_id, recipient_id,"
        " instance_id, state, started_at, deadline, ended_at, end_reason)"
        " VALUES ($1, $2, 'view', 'staff-op1', $3, 'inst-1', $4, $5, $6, $7, $8)",
        sid,
        device,
        rid,
        "closed" if ended else "connected",
        NOW - timedelta(minutes=5),
        NOW + timedelta(minutes=5),
        ended,
        "withdrawn" if ended else None,
    )


async def _seed(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        for i, quarantined in enumerate([True, True, False]):
            await conn.execute(
                "INSERT INTO devices (device_id, presence, quarantined) VALUES ($1, $2, $3)",
                f"cam-{i}",
                "online",
                quarantined,
            )
        for rid in ("rcp-anna", "rcp-bo", "rcp-cia"):
            await conn.execute(
                "INSERT INTO care_recipients (recipient_id, display_name, created_at, created_by)"
                " VALUES ($1, $2, $3, 'staff-admin')",
                rid,
                f"Namn {rid}",
                NOW - timedelta(days=30),
            )
        await _check(conn, "rcp-anna", "21:00", "due", since_s=600, deadline_s=-120)
        await _check(conn, "rcp-bo", "21:30", "due", since_s=60, deadline_s=300)
        await _check(conn, "rcp-cia", "21:45", "needs_view", since_s=90, deadline_s=-30)
        await _check(conn, "rcp-bo", "20:00", "documented", since_s=3600, deadline_s=0)
        # a pause started 0.4 s before a live view of rcp-anna was torn down
        paused_at = NOW - timedelta(minutes=2)
        await conn.execute(
            "INSERT INTO pauses (pause_id, recipient_id, starts_at, source, reason, created_at,"
            " created_by) VALUES ('p-1', 'rcp-anna', $1, 'staff', 'hospital', $1, 'staff-admin')",
            paused_at,
        )
        await _session(conn, "sess-0001", "cam-0", "rcp-anna", paused_at + timedelta(seconds=0.4))
        # an unbinding 0.2 s before a view of rcp-bo was torn down
        unbound_at = NOW - timedelta(minutes=1)
        await conn.execute(
            "INSERT INTO device_bindings (binding_id, device_id, recipient_id, bound_at,"
            " requested_by, bound_by, unbound_at, unbound_by) VALUES ('b-1', 'cam-2', 'rcp-bo',"
            " $1, 'staff-a', 'staff-b', $2, 'staff-b')",
            NOW - timedelta(days=1),
            unbound_at,
        )
        await _session(conn, "sess-0002", "cam-2", "rcp-bo", unbound_at + timedelta(seconds=0.2))
        await _session(conn, "sess-0003", "cam-1", "rcp-cia", None)


@pytest.fixture
async def client(database_url: str, mqtt_url: str, topic_prefix: str) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    settings = dataclasses.replace(
        load({}), database_url=database_url, mqtt_url=mqtt_url, mqtt_topic_prefix=topic_prefix
    )
    async with app.runtime(settings, clock=lambda: NOW) as rt, TestClient(TestServer(rt.app)) as c:
        await _seed(rt.pool)
        yield c


def _metrics(text: str) -> dict[str, float]:
    """``{'name{label="value"}': value}`` as prometheus_client's parser reads the exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


async def test_ops_gauges_from_the_tables(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = await resp.text()
    m = _metrics(text)
    assert m['homecare_checks{state="due"}'] == 2
    assert m['homecare_checks{state="needs_view"}'] == 1
    assert 'homecare_checks{state="documented"}' not in m  # performed: not open
    assert m['homecare_check_queue_age_seconds{queue="due"}'] == 600
    assert m['homecare_check_queue_age_seconds{queue="needs_view"}'] == 90
    assert m['homecare_check_queue_age_seconds{queue="patrol"}'] == 0
    assert m["homecare_checks_overdue"] == 2
    assert m["homecare_check_lateness_seconds_max"] == 120
    assert m["homecare_devices_quarantined"] == 2
    assert m['homecare_devices{presence="online"}'] == 3
    assert m['homecare_sessions_open{purpose="view"}'] == 1
    assert m["homecare_teardowns"] == 2
    assert m['homecare_teardown_seconds{quantile="0.5"}'] == pytest.approx(0.3, abs=1e-3)
    assert m['homecare_teardown_seconds{quantile="0.99"}'] == pytest.approx(0.398, abs=1e-3)
    # the histograms are there from the start (HELP and TYPE; samples once observed)
    for name in (
        "homecare_signal_grant_seconds",
        "homecare_view_first_frame_seconds",
        "homecare_round_planning_seconds",
        "homecare_registry_lag_seconds",
    ):
        assert f"# TYPE {name} histogram" in text
    # no personal data: no recipient, device, session or staff id, no name
    assert not re.search(r"rcp-|cam-|sess-|staff-|Namn", text)


async def test_two_scrapes_in_a_row_run_the_aggregate_queries_once(
    client: TestClient,  # type: ignore[type-arg]
    database_url: str,
) -> None:
    """Counted where the SQL leaves: every statement a real pool sends, through asyncpg's query
    logger; and the served runtime's own count of its reads."""
    sent: list[str] = []

    async def log_queries(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda q: sent.append(q.query))

    async with asyncpg.create_pool(database_url, min_size=1, max_size=2, init=log_queries) as pool:
        m = ops_metrics.Metrics()
        rt = client.server.app[app.RUNTIME]
        m.watch(rt, TableSnapshot(PgTables(pool), lambda: NOW, max_age_s=60))
        await m.exposition()
        reads = len(sent)
        await m.exposition()
        assert len(sent) == reads  # the second scrape sent nothing
        assert sum("percentile_cont" in q for q in sent) == 1  # the 24-hour teardown query
        assert sum("FROM round_checks" in q for q in sent) == 1
        stale = TableSnapshot(PgTables(pool), lambda: NOW, max_age_s=0)  # the count is honest
        await stale.refresh()
        await stale.refresh()
        assert sum("percentile_cont" in q for q in sent) == 3
    for _ in range(2):
        text = await (await client.get("/metrics")).text()
    assert _metrics(text)['homecare_metrics_table_reads_total{outcome="ok"}'] == 1


def _outside_address() -> str:
    """This machine's address on its way out (not loopback); no packet is sent."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
        except OSError:
            pytest.skip("no route off loopback on this machine: no outside address to test from")
        host = str(s.getsockname()[0])
    if ipaddress.ip_address(host).is_loopback:
        pytest.skip("no outside address on this machine")
    return host


async def test_an_anonymous_scraper_from_outside_loopback_is_refused(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    """A real socket from this machine's outside address (not 127.0.0.1) to the runtime bound on
    every interface: refused unless it sends the metrics token; a proxy on loopback relaying
    someone is refused too."""
    host = _outside_address()
    settings = dataclasses.replace(
        load({}),
        database_url=database_url,
        mqtt_url=mqtt_url,
        mqtt_topic_prefix=topic_prefix,
        metrics_token="s3cret-metrics-token",
    )
    async with (
        app.runtime(settings, clock=lambda: NOW) as rt,
        TestServer(rt.app, host="0.0.0.0") as server,  # every interface, as a pod would
        aiohttp.ClientSession() as http,
    ):
        outside = f"http://{host}:{server.port}/metrics"
        inside = f"http://127.0.0.1:{server.port}/metrics"
        async with http.get(outside) as r:
            assert r.status == 403
            assert "version=0.0.4" not in r.headers.get("Content-Type", "")
        async with http.get(outside, headers={"Authorization": "Bearer wrong"}) as r:
            assert r.status == 403
        async with http.get(inside, headers={"X-Forwarded-For": "198.51.100.4"}) as r:
            assert r.status == 403
        for url, headers in (
            (outside, {"Authorization": "Bearer s3cret-metrics-token"}),
            (inside, {}),
        ):
            async with http.get(url, headers=headers) as r:
                assert r.status == 200
                assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
