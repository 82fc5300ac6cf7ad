"""The one bootstrap (``services.app.runtime``): routes per role, readiness over every
dependency and every supervised task, one MQTT connection, lossless hard-rule subscriptions.
Real PostgreSQL and Mosquitto."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer

from consent.model import ConsentChange
from devices.handler import DeviceHandler
from kernel.clock import ScaledClock
from services import app
from services.events import Overflow
from services.settings import Settings, load
from services.signalling.bus import BusHandlers
from services.signalling.fakes import (
    FakeBus,
    FakeChecks,
    FakeCommands,
    FakeGate,
    FakePresence,
    FakeSessionStore,
)
from services.signalling.service import Signalling
from services.supervisor import Supervisor

pytestmark = pytest.mark.integration


def settings_for(database_url: str, mqtt_url: str, topic_prefix: str, *roles: str) -> Settings:
    base = dataclasses.replace(
        load({}), database_url=database_url, mqtt_url=mqtt_url, mqtt_topic_prefix=topic_prefix
    )
    return dataclasses.replace(base, roles=roles) if roles else base


async def ready(rt: app.Runtime) -> None:
    assert rt.mqtt is not None
    async with asyncio.timeout(15):
        await rt.mqtt.connected.wait()
        for listening in rt.feeds.values():
            await listening.wait()


async def test_a_probes_process_serves_no_api_and_no_signalling(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    settings = settings_for(database_url, mqtt_url, topic_prefix, "probes")
    async with app.runtime(settings) as rt, TestClient(TestServer(rt.app)) as c:
        await ready(rt)
        for path in ("/api/recipients", "/api/openapi.json", "/api/login", "/console/"):
            assert (await c.get(path)).status == 404, path
        assert (await c.get("/ws/signal")).status == 404
        assert (await c.get("/healthz")).status == 200
        r = await c.get("/readyz")
        assert r.status == 200, await r.text()
        assert (await r.json())["checks"] == {
            "database": True,
            "broker": True,
            "feeds": True,
            "tasks": True,
        }
        assert (await c.get("/metrics")).status == 200
        assert rt.signalling is not None  # the probe's in-process client


async def test_an_api_process_serves_the_api_and_not_the_signalling_socket(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    settings = settings_for(database_url, mqtt_url, topic_prefix, "api")
    async with app.runtime(settings) as rt, TestClient(TestServer(rt.app)) as c:
        assert (await c.get("/api/recipients")).status == 401  # there, behind login
        assert (await c.get("/ws/signal")).status == 404
        assert rt.signalling is None
        assert "rounds" not in {t.get_name() for t in rt.tasks}


async def test_a_signalling_process_serves_the_socket_and_not_the_api(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    settings = settings_for(database_url, mqtt_url, topic_prefix, "signalling")
    async with app.runtime(settings) as rt, TestClient(TestServer(rt.app)) as c:
        assert (await c.get("/api/recipients")).status == 404
        assert (await c.get("/ws/signal")).status == 401  # there, behind a token
        # one broker connection: signalling subscribes on the process's link
        assert rt.signalling is not None
        assert rt.signalling.bus.link is rt.mqtt  # type: ignore[attr-defined]


async def test_a_crashed_task_is_logged_counted_and_makes_the_process_unready(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    settings = settings_for(database_url, mqtt_url, topic_prefix)
    async with app.runtime(settings) as rt, TestClient(TestServer(rt.app)) as c:
        await ready(rt)
        assert (await c.get("/readyz")).status == 200
        crashed = asyncio.Event()

        async def broken() -> None:
            crashed.set()
            raise ValueError("a bug in a background task")

        task = rt.supervisor.spawn("broken-task", broken())
        await crashed.wait()
        await asyncio.wait({task})
        r = await c.get("/readyz")
        assert r.status == 503
        body = await r.json()
        assert body["checks"]["tasks"] is False
        assert body["failed_tasks"] == ["broken-task"]
        metrics = await (await c.get("/metrics")).text()
        assert 'homecare_task_crashes_total{task="broken_task"} 1.0' in metrics
        assert 'homecare_task_failed{task="broken_task"} 1.0' in metrics
        assert 'homecare_task_failed{task="consent_listen"} 0.0' in metrics


async def test_readyz_waits_for_every_change_feed_and_names_one_that_does_not_listen(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    """Until a feed listens, a withdrawal or a revoked login written by another process would
    not reach what this process holds: the process is not ready."""
    settings = settings_for(database_url, mqtt_url, topic_prefix)
    async with app.runtime(settings) as rt, TestClient(TestServer(rt.app)) as c:
        assert sorted(rt.feeds) == ["consent", "devices", "revocations", "round_events"]
        await ready(rt)
        r = await c.get("/readyz")
        assert r.status == 200
        assert (await r.json())["checks"]["feeds"] is True
        rt.feeds["consent"].clear()  # as kernel.listen does while its connection is lost
        r = await c.get("/readyz")
        assert r.status == 503
        body = await r.json()
        assert body["checks"]["feeds"] is False
        assert body["feeds_not_listening"] == ["consent"]
        rt.feeds["consent"].set()
        assert (await c.get("/readyz")).status == 200


async def test_readyz_names_a_broker_that_is_not_connected(
    database_url: str, topic_prefix: str
) -> None:
    with socket.socket() as s:  # a port where no broker listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = settings_for(database_url, f"mqtt://127.0.0.1:{port}", topic_prefix, "api")
    async with app.runtime(settings) as rt, TestClient(TestServer(rt.app)) as c:
        r = await c.get("/readyz")
        assert r.status == 503
        checks = (await r.json())["checks"]
        assert (checks["database"], checks["broker"], checks["tasks"]) == (True, False, True)


async def test_the_hard_rule_consumers_never_lose_an_event(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    settings = settings_for(database_url, mqtt_url, topic_prefix, "rounds", "probes")
    async with app.runtime(settings) as rt:
        async with asyncio.timeout(10):
            while len(rt.bus.subscriptions) < 4:
                await asyncio.sleep(0.01)
        policies = {s.name: s.overflow for s in rt.bus.subscriptions}
        assert policies == {
            "consent-covered": Overflow.KEEP_ALL,  # rule 8: covered repeatedly
            "consent-offline": Overflow.KEEP_ALL,  # rule 8: offline at consecutive checks
            "rounds-presence": Overflow.KEEP_ALL,  # rules 7 and 8 ride on presence
            "signal-feed": Overflow.KEEP_ALL,  # rule 2/7: a lost device ends its sessions
        }


async def test_a_process_without_a_broker_needs_roles_that_need_none(database_url: str) -> None:
    settings = dataclasses.replace(load({}), database_url=database_url, mqtt_url=None)
    with pytest.raises(RuntimeError, match="mqtt_url"):
        async with app.runtime(settings):
            pass


class BrokenSweep:
    """The session store with a sweep that breaks (a bug, not an outage); the rest delegates."""

    def __init__(self, store: object) -> None:
        self._store = store
        self.tried = asyncio.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def sweep_overdue(self, **kw: object) -> list[object]:
        self.tried.set()
        raise RuntimeError("a bug in the sweep")


async def test_a_crash_in_a_signalling_loop_makes_the_process_unready_naming_it(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    settings = settings_for(database_url, mqtt_url, topic_prefix, "signalling")
    fast = dataclasses.replace(settings.timing, sweep_interval_s=0.01)
    async with (
        app.runtime(settings, options=app.Options(timing=fast)) as rt,
        TestClient(TestServer(rt.app)) as c,
    ):
        await ready(rt)
        assert "device-sweep" in {t.get_name() for t in rt.tasks}
        assert (await c.get("/readyz")).status == 200
        assert rt.signalling is not None
        broken = BrokenSweep(rt.signalling.store)
        rt.signalling.store = broken  # type: ignore[assignment]
        async with asyncio.timeout(10):
            await broken.tried.wait()
            while "signal-sweep" not in rt.supervisor.failed:
                await asyncio.sleep(0)
        r = await c.get("/readyz")
        assert r.status == 503
        assert (await r.json())["failed_tasks"] == ["signal-sweep"]
        metrics = await (await c.get("/metrics")).text()
        assert 'homecare_task_crashes_total{task="signal_sweep"} 1.0' in metrics


class BrokenChanges(FakeGate):
    def changes(self) -> AsyncIterator[ConsentChange]:
        raise RuntimeError("a bug in the change feed")


async def test_signallings_loops_run_under_the_guard_they_are_given() -> None:
    """Signalling's three loops report to the supervisor; its per-session tasks' failures are
    logged and counted (``task_failed``), not lost."""

    def bus(handlers: BusHandlers) -> FakeBus:
        return FakeBus(handlers)

    async with Supervisor() as sup:
        sig = Signalling(
            instance_id="rt",
            gate=BrokenChanges(),
            commands=FakeCommands(),
            presence=FakePresence(),
            checks=FakeChecks(),
            sessions=FakeSessionStore(),
            bus=bus,
            clock=ScaledClock(0, datetime(2026, 1, 15, 21, 0, tzinfo=UTC)),
            guard=sup.guard,
        )
        async with sig:
            assert {t.get_name() for t in sig._loops} == {
                "signal-gate",
                "signal-recheck",
                "signal-sweep",
            }
            async with asyncio.timeout(5):
                while not sup.failed:
                    await asyncio.sleep(0)
            assert sup.failed == {"signal-gate": "RuntimeError"}

            async def broken() -> None:
                raise ValueError("a bug in a session's task")

            task = sig._spawn(broken())
            await asyncio.wait({task})
            await asyncio.sleep(0)  # the done callback
            assert sig.counters["task_failed"] == 1
        assert sup.crashes == {"signal-gate": 1}


class FailingPool:
    """A pool whose queries fail: first with an outage (``OSError``), then with a bug."""

    def __init__(self) -> None:
        self.errors: list[Exception] = [OSError("database down"), RuntimeError("a bug")]
        self.tried = 0

    async def fetch(self, *args: object) -> list[object]:
        self.tried += 1
        raise self.errors.pop(0)


async def test_the_device_sweep_survives_an_outage_and_reports_a_crash() -> None:
    pool = FailingPool()
    handler = DeviceHandler(
        pool,  # type: ignore[arg-type]
        clock=ScaledClock(0, datetime(2026, 1, 15, 21, 0, tzinfo=UTC)),
        on_presence=lambda _: None,
    )
    async with Supervisor() as sup:
        handler.link_connected(0.001)  # before the sweep runs: not lost
        sup.spawn("device-sweep", handler.run_sweep())
        async with asyncio.timeout(5):
            while pool.tried < 1:
                await asyncio.sleep(0.001)
        assert sup.healthy  # an outage is logged, the sweep waits for the next connect
        handler.link_connected(0.001)
        async with asyncio.timeout(5):
            while not sup.failed:
                await asyncio.sleep(0.001)
        assert sup.failed == {"device-sweep": "RuntimeError"}


def test_options_refuse_a_pool_too_small_to_plan_a_night() -> None:
    """A night's planning reads the bases on one connection while it stores on another
    (``Watchdog.plan``): a pool of one would wait for itself."""
    with pytest.raises(ValueError, match="pool_max is at least 2"):
        app.Options(pool_max=1)
    with pytest.raises(ValueError, match="workers is at least 1"):
        app.Options(workers=0)
    assert app.Options(pool_max=2).pool_max == 2
