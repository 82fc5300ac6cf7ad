"""The one bootstrap (``services.app.runtime``): routes per role, readiness over every
dependency and every supervised task, one MQTT connection, lossless hard-rule subscriptions.
Real PostgreSQL and Mosquitto."""

from __future__ import annotations

import asyncio
import dataclasses
import socket

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services import app
from services.events import Overflow
from services.settings import Settings, load

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
        assert (await r.json())["checks"] == {"database": True, "broker": True, "tasks": True}
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
        assert 'homecare_task_crashes_total{task="broken_task"} 1' in metrics
        assert 'homecare_task_failed{task="broken_task"} 1' in metrics
        assert 'homecare_task_failed{task="consent_listen"} 0' in metrics


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
        assert (await r.json())["checks"] == {"database": True, "broker": False, "tasks": True}


async def test_the_hard_rule_consumers_never_lose_an_event(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    settings = settings_for(database_url, mqtt_url, topic_prefix, "rounds", "probes")
    async with app.runtime(settings) as rt:
        async with asyncio.timeout(10):
            while len(rt.bus.subscriptions) < 2:
                await asyncio.sleep(0.01)
        policies = {s.name: s.overflow for s in rt.bus.subscriptions}
        assert policies == {
            "consent-covered": Overflow.KEEP_ALL,  # rule 8: covered repeatedly
            "rounds-presence": Overflow.KEEP_ALL,  # rules 7 and 8 ride on presence
        }


async def test_a_process_without_a_broker_needs_roles_that_need_none(database_url: str) -> None:
    settings = dataclasses.replace(load({}), database_url=database_url, mqtt_url=None)
    with pytest.raises(RuntimeError, match="mqtt_url"):
        async with app.runtime(settings):
            pass
