"""Fault: the broker restarts mid-night. The backend and the devices reconnect by themselves and
presence is right afterwards (every device online again, none left offline by a stale will); a
round running through the restart loses no check and does none twice."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, date, datetime

import asyncpg
import pytest

from devices import store, topics
from devices.commands import Commands
from devices.handler import REGISTRY_CHANNELS, DeviceHandler
from devices.registry import PresenceChanged, Stored
from kernel.clock import ScaledClock
from services.events import EventBus
from services.mqtt import MqttLink
from simulators import homes
from supervision.checks import State
from supervision.runner import Runner, RunnerConfig
from supervision.service import RegistryDevices, command_wake
from supervision.store import RoundStore
from supervision.watchdog import Watchdog, WatchdogConfig
from tests.rounds_support import BasisGate, TableProber, at_local, basis, fast
from tools import embedded
from tools.embedded import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not embedded.has_mosquitto(), reason="needs a mosquitto binary to restart"),
]


async def _online(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM devices WHERE presence = 'online'"))


async def test_broker_restart_everyone_reconnects(pool: asyncpg.Pool, topic_prefix: str) -> None:
    port = free_port()
    specs = homes.home_devices(20)
    stop = asyncio.Event()
    handler = DeviceHandler(pool, clock=lambda: datetime.now(UTC), on_presence=EventBus().publish)
    with contextlib.ExitStack() as brokers:
        url = brokers.enter_context(embedded.mosquitto(port))
        link = MqttLink(
            url,
            prefix=topic_prefix,
            keepalive_s=2,
            instance_id="fault",
            on_reject=handler.reject,
            on_connect=lambda: handler.link_connected(2.0),
        )
        for channel in REGISTRY_CHANNELS:
            link.subscribe(channel, handler.handle)
        sweep = asyncio.create_task(handler.run_sweep())  # the process supervises it
        async with link:
            sims = asyncio.create_task(
                homes.run_devices(
                    specs, mqtt_url=url, prefix=topic_prefix, keepalive_s=2, stop=stop
                )
            )
            # one home's devices die for good while the broker is down: their wills die with it
            lost = homes.home_devices(1, first=99)
            lost_stop = asyncio.Event()
            lost_task = asyncio.create_task(
                homes.run_devices(
                    lost, mqtt_url=url, prefix=topic_prefix, keepalive_s=2, stop=lost_stop
                )
            )
            try:
                async with asyncio.timeout(20):
                    while await _online(pool) < len(specs) + len(lost):
                        await asyncio.sleep(0.05)
                before = {r.device_id: r.session for r in await store.list_all(pool)}
                brokers.close()  # the broker goes away: every connection drops
                await asyncio.sleep(1.0)
                assert not link.connected.is_set()
                lost_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lost_task
                restarted = time.monotonic()
                brokers.enter_context(embedded.mosquitto(port))
                async with asyncio.timeout(30):
                    await link.connected.wait()
                    # every live device re-announces with a newer session; the lost one is
                    # swept offline once the grace after the backend's reconnect has passed
                    while True:
                        now = {r.device_id: r for r in await store.list_all(pool)}
                        live_ok = all(
                            now[s.device_id].session > before[s.device_id]
                            and now[s.device_id].is_online
                            for s in specs
                        )
                        lost_ok = all(now[d.device_id].presence.value == "offline" for d in lost)
                        if live_ok and lost_ok:
                            break
                        await asyncio.sleep(0.05)
                took = time.monotonic() - restarted
                print(f"\n{len(specs)} devices online again {took:.2f} s after the broker restart")
                await asyncio.sleep(1.0)  # late wills of the old sessions must change nothing
                assert await _online(pool) == len(specs)
            finally:
                stop.set()
                sweep.cancel()
                await asyncio.wait_for(sims, 15)


async def test_broker_restart_mid_round_loses_no_check(
    pool: asyncpg.Pool, topic_prefix: str
) -> None:
    """The round goes on while the broker restarts: the backend's own outage is not the cameras'
    fault, so a check that cannot wake its camera meanwhile waits for the link and is done by
    camera once the broker is back; only a camera the registry was told is offline (the broker
    delivers the devices' wills as it shuts down) becomes a physical visit (hard rule 7). Every
    planned check ends exactly once and none is left open."""
    port = free_port()
    specs = [s for s in homes.home_devices(8) if s.kind is topics.DeviceKind.CAMERA]
    bases = {
        f"r{s.device_id[-4:]}": basis(f"r{s.device_id[-4:]}", device=s.device_id) for s in specs
    }
    gate = BasisGate(bases)
    stop = asyncio.Event()
    presence: list[PresenceChanged] = []
    handler = DeviceHandler(pool, clock=lambda: datetime.now(UTC), on_presence=presence.append)
    night = date(2025, 6, 10)
    # real time from 18:00: the broker's outage takes real seconds, and so do the link waits
    clock = ScaledClock(1, at_local(night, 18))
    store_ = RoundStore(pool)
    with contextlib.ExitStack() as brokers:
        url = brokers.enter_context(embedded.mosquitto(port))
        link = MqttLink(url, prefix=topic_prefix, keepalive_s=2, instance_id="fault-round")
        for channel in REGISTRY_CHANNELS:
            link.subscribe(channel, handler.handle)
        commands = Commands(pool, handler, link.publish, topic_prefix)
        devices = RegistryDevices(
            pool, command_wake(commands, timeout_s=2.0, link=link, settle_s=15.0)
        )
        async with link:
            sims = asyncio.create_task(
                homes.run_devices(
                    specs, mqtt_url=url, prefix=topic_prefix, keepalive_s=2, stop=stop
                )
            )
            try:
                async with asyncio.timeout(20):
                    while await _online(pool) < len(specs):
                        await asyncio.sleep(0.05)
                watchdog = Watchdog(
                    store_, bases=gate, devices=devices, clock=clock, config=WatchdogConfig()
                )
                await watchdog.plan(night)
                clock.set(at_local(night, 21, 50))
                prober = TableProber(delay_s=0.5)
                runner = Runner(
                    store_,
                    gate=gate,
                    prober=prober,
                    devices=devices,
                    clock=clock,
                    config=RunnerConfig(
                        worker_id="w-fault", concurrency=2, timing=fast(link_retry_s=0.2)
                    ),
                )
                halt = asyncio.Event()
                work = asyncio.create_task(runner.run(halt))
                async with asyncio.timeout(30):
                    while len(prober.probed) < 2:
                        await asyncio.sleep(0.02)
                brokers.close()  # mid-round: wakes now fail
                async with asyncio.timeout(30):  # until a check in flight has met the outage
                    while runner.link_retries == 0:
                        await asyncio.sleep(0.02)
                brokers.enter_context(embedded.mosquitto(port))
                async with asyncio.timeout(60):
                    while await store_.open_checks(
                        states=[State.PLANNED, State.DUE, State.PROBING]
                    ):
                        await asyncio.sleep(0.1)
                halt.set()
                await asyncio.wait_for(work, 30)
            finally:
                stop.set()
                await asyncio.wait_for(sims, 15)
    checks = await store_.night_checks(night)
    assert len(checks) == len(specs)  # none lost
    # the backend's own outage sent no check to the patrol (no wake_failed): a visit only for a
    # camera whose offline will the registry received
    outcomes = {(c.state, c.reason) for c in checks}
    assert outcomes <= {(State.NEEDS_VIEW, "motion_activity"), (State.PATROL, "device_offline")}
    wills = {p.device_id for p in presence if p.presence is Stored.OFFLINE}
    assert {c.device_id for c in checks if c.state is State.PATROL} <= wills
    assert {c.check_id for c in checks if c.state is State.NEEDS_VIEW} == set(prober.probed)
    assert runner.link_retries > 0  # the outage really hit checks in flight
    rows = await pool.fetch(
        "SELECT check_id, count(*) AS n FROM round_transitions"
        " WHERE event IN ('probe_done', 'device_lost') GROUP BY check_id"
    )
    assert len(rows) == len(specs)
    assert {r["n"] for r in rows} == {1}  # none done twice
    patrols = sum(c.state is State.PATROL for c in checks)
    print(
        f"\n{len(specs)} checks across a broker restart: {runner.link_retries} waits for the"
        f" link, {patrols} physical visits (offline wills)"
    )
