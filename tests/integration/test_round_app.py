"""Night rounds in the composed service: routes where the ``api`` role runs, the planner and
worker where ``rounds`` runs, driven by the injectable clock; real PostgreSQL and Mosquitto."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import date, time

import pytest

from consent import enrol
from consent.model import CarePlan, CareRecipient, CheckTime, Purpose
from services import app
from services.settings import load
from services.web import http
from supervision.checks import State
from supervision.ports import CheckChanged
from tests.rounds_support import LONG_AGO, at_local, fixed_clock

pytestmark = pytest.mark.integration

NIGHT = date(2025, 6, 10)
ADMIN = "staff-admin01"


async def seed(rt: app.Runtime) -> None:
    """One brukare with a 22:00 check, camera and motion consent and a bound online camera."""
    store = rt.consent
    await store.add_recipient(CareRecipient("r-1", "Namn"), actor=ADMIN, at=LONG_AGO)
    plan = CarePlan(
        plan_id="plan-1",
        recipient_id="r-1",
        decision_ref="dec-1",
        valid_from=LONG_AGO,
        checks=(CheckTime(time(22, 0), 15),),
    )
    await store.add_plan(plan, actor=ADMIN, at=LONG_AGO)
    await enrol.grant(
        store,
        "r-1",
        (Purpose.CAMERA_CHECK, Purpose.MOTION_ANALYSIS),
        given_at=LONG_AGO,
        informed_by="staff-abcdef",
        informed_how="samtal i hemmet",
        actor=ADMIN,
        at=LONG_AGO,
    )
    await rt.pool.execute(
        "INSERT INTO devices (device_id, kind, presence) VALUES ('cam-0001', 'camera', 'online')"
    )
    await enrol.bind(store, "cam-0001", "r-1", actor=ADMIN, at=LONG_AGO, confirmed_by=ADMIN)


async def test_split_roles_the_rounds_process_plans_and_a_probes_process_looks(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    clock = fixed_clock(at_local(NIGHT, 17, 0))
    base = dataclasses.replace(
        load({}), database_url=database_url, mqtt_url=mqtt_url, mqtt_topic_prefix=topic_prefix
    )
    planner = dataclasses.replace(base, roles=("api", "rounds"), instance_id="planner")
    async with app.runtime(planner, clock=clock) as rt:
        paths = {r.path for r in rt.app[http.ROUTES]}
        assert {"/api/rounds/queue", "/api/nights/{date}/report"} <= paths
        assert "rounds" in {t.get_name() for t in rt.tasks}
        await seed(rt)
        clock.set(at_local(NIGHT, 21, 46))  # past the planning hour and inside the window
        async with asyncio.timeout(30):
            while await rt.pool.fetchval("SELECT state FROM round_checks") != State.DUE:
                await asyncio.sleep(0.1)
        assert await rt.pool.fetchval("SELECT count(*) FROM round_nights") == 1
        # no "probes" role here: this process's worker leaves a due check 30 s to one that
        # probes (and the clock stands still)
        await asyncio.sleep(1.0)
        assert await rt.pool.fetchval("SELECT state FROM round_checks") == State.DUE
        prober = dataclasses.replace(base, roles=("probes",), instance_id="prober")
        with rt.bus.subscribe() as console_feed:
            async with app.runtime(prober, clock=clock) as other:
                assert "/api/rounds/queue" not in {r.path for r in other.app[http.ROUTES]}
                async with asyncio.timeout(40):  # it wakes the camera; nothing answers: patrol
                    while await rt.pool.fetchval("SELECT state FROM round_checks") != State.PATROL:
                        await asyncio.sleep(0.1)
            claims = await rt.pool.fetch(
                "SELECT actor FROM round_transitions WHERE event = 'claim'"
            )
            assert [r["actor"] for r in claims] == ["prober-rounds"]
            assert await rt.pool.fetchval("SELECT reason FROM round_checks") == "wake_failed"
            # the other process's steps reached this process's consoles (NOTIFY relay)
            seen: list[tuple[State, State]] = []
            async with asyncio.timeout(10):
                while (State.PROBING, State.PATROL) not in seen:
                    event = await console_feed.queue.get()
                    if isinstance(event, CheckChanged):
                        seen.append((event.before, event.state))
            assert (State.DUE, State.PROBING) in seen


async def test_with_every_role_a_camera_that_does_not_wake_sends_the_patrol(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    """The camera is online in the registry but nothing answers its wake command over MQTT:
    the worker asks, waits for the ack, and sends the patrol (hard rule 7)."""
    clock = fixed_clock(at_local(NIGHT, 17, 0))
    settings = dataclasses.replace(
        load({}), database_url=database_url, mqtt_url=mqtt_url, mqtt_topic_prefix=topic_prefix
    )
    async with app.runtime(settings, clock=clock) as rt:
        await seed(rt)
        clock.set(at_local(NIGHT, 21, 46))
        async with asyncio.timeout(40):
            while True:
                checks = await rt.pool.fetch("SELECT state, reason FROM round_checks")
                if checks and checks[0]["state"] == State.PATROL:
                    break
                await asyncio.sleep(0.1)
        assert checks[0]["reason"] == "wake_failed"
        sent = await rt.pool.fetch("SELECT op FROM device_commands WHERE device_id = 'cam-0001'")
        assert [r["op"] for r in sent] == ["wake"]


async def test_a_process_without_the_rounds_role_runs_no_round(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    settings = dataclasses.replace(
        load({}),
        database_url=database_url,
        mqtt_url=mqtt_url,
        mqtt_topic_prefix=topic_prefix,
        roles=("signalling",),
    )
    async with app.runtime(settings, clock=fixed_clock(at_local(NIGHT, 21, 46))) as rt:
        assert "rounds" not in {t.get_name() for t in rt.tasks}
        assert "/api/rounds/queue" not in {r.path for r in rt.app[http.ROUTES]}
        await asyncio.sleep(0.3)
        assert await rt.pool.fetchval("SELECT count(*) FROM round_nights") == 0
