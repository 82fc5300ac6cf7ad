"""A night that survives losing a node (issue 21 item 3): three service processes, the broker and
a PostgreSQL pair (Patroni with etcd, :mod:`tests.pg_pair`) on a sped-up night; mid-night one
service process is killed (SIGKILL), then the PostgreSQL primary (SIGKILL to its Patroni and
PostgreSQL, as a machine that dies), and the standby takes over.

- processes A (``api,signalling``), B and C (``rounds``): :data:`ROLES`, the shapes deploy runs
  (its ``probes`` process aside; tests/deploy holds them equal), each the real composition root
  on the shared sped-up clock of ``tests/e2e/scale_out_node.py`` (``SPEED`` simulated seconds per
  real second), connected with the pair's multi-host URL and ``target_session_attrs=read-write``;
- simulated cameras (real MQTT clients) answer; the workers have no prober, so every check goes
  to a human: a scripted operator works the queue through A's API (view, document camera
  trouble, the patrol visits), retrying what failed while the database was away;
- the early checks are being worked when B is killed; a brukare's camera consent is withdrawn
  through the consent store (committed on the primary, so on the synchronous standby too) just
  before the primary is killed; the late checks, the withdrawn brukare's among them, come due
  after the failover.

Checked afterwards: every planned check ended exactly once (one final transition per check, one
result per attempt, none missing), the withdrawn brukare's check was no camera check (refused by
the gate with ``withdrawn``: no look, no session of its camera), ``homecare audit verify``
passes against the new primary. Measured and printed (``failover-json:``, also written to
``test-artifacts/failover_night.json``): from the primary's kill to ``/readyz`` green again on A
and C, to the first round write and the first claim stored after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from datetime import time as local_time
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from consent import enrol
from consent.model import CarePlan, CareRecipient, CheckTime, Purpose
from consent.store import PgConsentStore
from identity import store as staff_store
from kernel.roles import Role
from services import db
from tests import pg_pair
from tests.e2e import night_nodes
from tests.rounds_support import LONG_AGO, STHLM

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(pg_pair.available() is not None, reason=f"{pg_pair.available()}"),
]

SPEED = 60.0  # simulated seconds per real second
EARLY = 4  # homes whose checks are worked when the nodes are killed: agreed 20:03 +- 2 min
LATE = 4  # homes due during and after the failover: agreed 20:36 (20:45) +- 30 min
HOMES = EARLY + LATE
WITHDRAWN = HOMES  # the last late brukare's camera consent is withdrawn before the failover
FINAL = {"cleared", "documented", "visited", "escalated", "deviation"}
ADMIN = "staff-admin01"
# the processes and their roles; deploy (compose and Kubernetes) runs the same shapes
ROLES = {"node-a": "api,signalling", "node-b": "rounds", "node-c": "rounds"}


def _rid(i: int) -> str:
    return f"r-{i:04d}"


def _cam(i: int) -> str:
    return f"cam-{i:04d}"


@pytest.fixture
def pair() -> Iterator[pg_pair.PgPair]:
    p = pg_pair.PgPair()
    began = time.monotonic()
    try:
        p.start()
        print(f"\nfailover: the pair up in {time.monotonic() - began:.1f} s")
        yield p
    finally:
        began = time.monotonic()
        p.stop()
        print(f"\nfailover: the pair stopped in {time.monotonic() - began:.1f} s")


async def _seed(url: str, t0: datetime) -> str:
    """The brukare, their plans, consents and cameras (through the consent store); a token of
    the operator."""
    async with db.open_pool(url, max_size=4) as pool:
        store = PgConsentStore(pool)
        for i in range(1, HOMES + 1):
            rid, cam = _rid(i), _cam(i)
            agreed, tolerance = (
                (local_time(20, 3), 2)  # open 20:01, worked when the nodes are killed
                if i <= EARLY
                else (local_time(20, 45), 30)  # open 20:15, well after the failover
                if i == WITHDRAWN
                else (local_time(20, 36), 30)  # open 20:06, during the failover
            )
            await store.add_recipient(CareRecipient(rid, f"Brukare {i}"), actor=ADMIN, at=LONG_AGO)
            plan = CarePlan(
                plan_id=f"plan-{rid}",
                recipient_id=rid,
                decision_ref=f"dec-{i}",
                valid_from=LONG_AGO,
                checks=(CheckTime(agreed, tolerance),),
            )
            await store.add_plan(plan, actor=ADMIN, at=LONG_AGO)
            await enrol.grant(
                store,
                rid,
                (Purpose.CAMERA_CHECK, Purpose.MOTION_ANALYSIS),
                given_at=LONG_AGO,
                informed_by="staff-abcdef",
                informed_how="samtal i hemmet",
                actor=ADMIN,
                at=LONG_AGO,
            )
            await pool.execute("INSERT INTO devices (device_id, kind) VALUES ($1, 'camera')", cam)
            await enrol.bind(store, cam, rid, actor=ADMIN, at=LONG_AGO, confirmed_by="staff-x2")
        async with pool.acquire() as conn:
            who = await staff_store.create_staff(
                conn, username="failover-op", role=Role.OPERATOR, password=None
            )
            return await staff_store.create_token(
                conn,
                staff_id=who.staff_id,
                role=Role.OPERATOR,
                ttl_s=3 * 24 * 3600,
                label="failover test",
                now=t0 - timedelta(hours=1),
            )


async def _ready(http: aiohttp.ClientSession, port: int) -> bool:
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with http.get(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
            return r.status == 200
    return False


async def _fetchval(url: str, sql: str) -> object:
    """One read on a fresh connection (the test's own, across the failover): None if it failed."""
    with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        conn = await asyncpg.connect(url, timeout=2)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()
    return None


async def _operator(http: aiohttp.ClientSession, api: str, url: str, stop: asyncio.Event) -> None:
    """Work the human queue until ``stop``; what fails (the database away) is tried again on the
    next round: a step whose outcome was lost answers 409 the second time."""
    while True:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with http.post(f"{api}/api/rounds/duty", timeout=3) as r:
                if r.status in (200, 201):
                    break
        await asyncio.sleep(0.2)
    while not stop.is_set():
        queue: dict[str, list[dict[str, str]]] = {"checks": []}
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
            async with http.get(f"{api}/api/rounds/queue", timeout=3) as r:
                if r.status == 200:
                    queue = await r.json()
        for c in queue["checks"]:
            check = f"{api}/api/checks/{c['check_id']}"
            steps: list[tuple[str, dict[str, str] | None]] = {
                "needs_view": [("/view", None), ("/outcome", {"outcome": "technical"})],
                "viewing": [("/outcome", {"outcome": "technical"})],
                "calling": [("/outcome", {"outcome": "technical"})],
                "patrol": [("/patrol/ack", None), ("/patrol/visited", None)],
                "patrol_acked": [("/patrol/visited", None)],
            }.get(c["state"], [])
            for path, body in steps:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.post(check + path, json=body or {}, timeout=3) as r:
                        assert r.status in (200, 409, 500, 503), await r.text()
                        if r.status != 200:
                            break  # moved on meanwhile, or the database is away: next round
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.2)


@pytest.fixture
async def cameras(mqtt_url: str, topic_prefix: str) -> AsyncIterator[None]:
    async with night_nodes.cameras(
        mqtt_url, topic_prefix, map(_cam, range(1, HOMES + 1)), stop_within_s=30
    ):
        yield


async def test_a_night_survives_losing_a_service_process_and_the_primary(
    pair: pg_pair.PgPair, mqtt_url: str, topic_prefix: str, cameras: None, tmp_path: Path
) -> None:
    began = time.monotonic()
    tonight = datetime.now(STHLM).date()
    t0 = datetime(tonight.year, tonight.month, tonight.day, 19, 59, 50, tzinfo=STHLM)
    url = pair.url
    token = await _seed(url, t0)
    start = tmp_path / "start"
    figures: dict[str, object] = {"seed_s": round(time.monotonic() - began, 2)}

    def simulated(wall: float) -> datetime:  # the nodes' clock at a wall-clock instant
        return t0 + timedelta(seconds=(wall - w0) * SPEED)

    with night_nodes.nodes(
        url,
        mqtt_url,
        topic_prefix,
        roles=ROLES,
        t0=t0,
        start=start,
        speed=SPEED,
        log_prefix="failover",
    ) as nodes:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            async with asyncio.timeout(60):
                for name, (proc, port) in nodes.items():
                    while not await _ready(http, port):
                        assert proc.poll() is None, f"{name} exited with {proc.returncode}"
                        await asyncio.sleep(0.2)
                online = "SELECT count(*) FROM devices WHERE presence = 'online'"
                while await _fetchval(url, online) != HOMES:
                    await asyncio.sleep(0.2)
            w0 = time.time()
            start.write_text(repr(w0))
            api = f"http://127.0.0.1:{nodes['node-a'][1]}"
            stop = asyncio.Event()
            operator = asyncio.create_task(_operator(http, api, url, stop))
            try:
                # mid-night: the early checks are being worked (none still planned)
                early_open = (
                    "SELECT count(*) FROM round_checks WHERE agreed = '20:03'"
                    " AND state NOT IN ('planned', 'due')"
                )
                async with asyncio.timeout(30):
                    while await _fetchval(url, early_open) != EARLY:
                        await asyncio.sleep(0.1)
                node_b = nodes["node-b"][0]
                node_b.send_signal(signal.SIGKILL)
                node_b.wait(5)
                # a withdrawal written just before the failover
                async with db.open_pool(url, max_size=1) as pool:
                    store = PgConsentStore(pool)
                    now = simulated(time.time())
                    await store.withdraw_consent(
                        enrol.consent_id(_rid(WITHDRAWN), Purpose.CAMERA_CHECK),
                        withdrawn_at=now,
                        reason="vill inte längre",
                        actor=ADMIN,
                        at=now,
                    )
                killed = pair.kill_primary()
                kill_wall = time.time()
                kill_mono = time.monotonic()
                figures["killed_at_night_s"] = round(kill_wall - w0, 2)
                figures["killed_node"] = killed.name
                # /readyz of the surviving processes: red during the gap, green after
                survivors = {n: nodes[n][1] for n in ("node-a", "node-c")}
                red: set[str] = set()
                green_s: dict[str, float] = {}
                async with asyncio.timeout(60):
                    while len(green_s) < len(survivors):
                        for name, port in survivors.items():
                            if name in green_s:
                                continue
                            if not await _ready(http, port):
                                red.add(name)
                            elif name in red:
                                green_s[name] = round(time.monotonic() - kill_mono, 2)
                        await asyncio.sleep(0.1)
                assert red == set(survivors), f"/readyz never red during the gap: {red}"
                figures["readyz_green_s"] = green_s
                figures["new_primary"] = getattr(pair.primary(), "name", None)
                # the night goes on to its end: every check final
                not_final = (
                    "SELECT count(*) FROM round_checks WHERE state NOT IN"
                    " ('cleared', 'documented', 'visited', 'escalated', 'deviation')"
                )
                async with asyncio.timeout(60):
                    while await _fetchval(url, not_final) != 0:
                        await asyncio.sleep(0.2)
            finally:
                stop.set()
                await asyncio.wait_for(operator, 10)
            for name in ("node-a", "node-c"):
                assert nodes[name][0].poll() is None, f"{name} died"

    conn = await asyncpg.connect(url, timeout=10)
    try:
        checks = await conn.fetch(
            "SELECT check_id, recipient_id, state, reason, attempt FROM round_checks"
        )
        transitions = await conn.fetch(
            "SELECT check_id, version, at, from_state, to_state, event, actor, reason"
            " FROM round_transitions ORDER BY check_id, version"
        )
        sessions = await conn.fetchval(
            "SELECT count(*) FROM signal_sessions WHERE device_id = $1", _cam(WITHDRAWN)
        )
    finally:
        await conn.close()
    verify = subprocess.run(
        [sys.executable, "-m", "tools.cli", "audit", "verify"],
        cwd=night_nodes.ROOT,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("HOMECARE_")},
            "HOMECARE_DATABASE_URL": url,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # every planned check ended, exactly once
    assert sorted(c["recipient_id"] for c in checks) == [_rid(i) for i in range(1, HOMES + 1)]
    assert {c["state"] for c in checks} <= FINAL, [dict(c) for c in checks]
    finals = Counter(t["check_id"] for t in transitions if t["to_state"] in FINAL)
    assert finals == Counter({c["check_id"]: 1 for c in checks}), finals
    results = Counter(
        t["check_id"] for t in transitions if t["from_state"] == "probing" and t["event"] != "claim"
    )
    doubled = {
        c["check_id"]: results[c["check_id"]]
        for c in checks
        if results[c["check_id"]] > c["attempt"]
    }
    assert not doubled, f"done twice: {doubled}"
    # the withdrawal took effect: the gate refused the camera, nobody looked
    withdrawn = next(c for c in checks if c["recipient_id"] == _rid(WITHDRAWN))
    steps = [t for t in transitions if t["check_id"] == withdrawn["check_id"]]
    assert any(t["event"] == "cancel" and t["reason"] == "withdrawn" for t in steps), [
        dict(t) for t in steps
    ]
    assert not any(t["to_state"] in ("needs_view", "viewing") for t in steps), steps
    assert sessions == 0
    # the audit chain is whole on the new primary
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "audit chain ok" in verify.stdout, verify.stdout
    # measured: from the primary's kill to the first round write and claim stored after it
    kill_at = simulated(kill_wall)
    after = [t for t in transitions if t["at"] > kill_at]
    claims = [t for t in after if t["event"] == "claim"]
    assert claims, "no check claimed after the failover"

    def since_kill(at: datetime) -> float:
        return round((at - kill_at).total_seconds() / SPEED, 2)

    figures["first_write_s"] = since_kill(min(t["at"] for t in after))
    figures["first_claim_s"] = since_kill(min(t["at"] for t in claims))
    figures["checks"] = dict(Counter(c["state"] for c in checks))
    figures["wall_s"] = round(time.monotonic() - began, 2)
    night_nodes.ARTIFACTS.mkdir(exist_ok=True)
    (night_nodes.ARTIFACTS / "failover_night.json").write_text(json.dumps(figures, indent=2))
    print(f"\nfailover-json: {json.dumps(figures)}")
