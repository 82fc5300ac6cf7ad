"""The round as a running service on real PostgreSQL: two processes' worth of ``Rounds`` share
a night, presence and consent feeds move checks at once, devices come from the registry table."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import date, time, timedelta

import asyncpg
import pytest

from consent.model import ChangeKind, ConsentChange, Purpose
from devices.registry import PresenceChanged, Stored
from supervision.checks import State
from supervision.service import RegistryDevices, Rounds, RoundsConfig
from supervision.store import RoundStore
from tests.rounds_support import (
    BasisGate,
    TableProber,
    at_local,
    basis,
    consent,
    fast,
    fixed_clock,
)

pytestmark = pytest.mark.integration

NIGHT = date(2025, 6, 10)
WS = at_local(NIGHT, 21, 45)


async def feed(queue: asyncio.Queue[object]) -> AsyncIterator[object]:
    while True:
        yield await queue.get()


async def until(pred: object, store: RoundStore, timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await pred(await store.night_checks(NIGHT)):  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def test_two_processes_run_a_night_and_react_to_presence_and_consent(
    pool: asyncpg.Pool, database_url: str
) -> None:
    times = (time(22, 0), time(2, 0))
    bases = {b.recipient_id: b for b in [basis(f"r{i}", times=times) for i in range(6)]}
    await pool.executemany(
        "INSERT INTO devices (device_id, kind, presence) VALUES ($1, 'camera', $2)",
        [(f"cam-r{i}", "offline" if i == 5 else "online") for i in range(6)],
    )
    gate = BasisGate(bases)
    clock = fixed_clock(WS)
    prober = TableProber({"cam-r0": ("activity", False)})
    presence: asyncio.Queue[object] = asyncio.Queue()
    changes: asyncio.Queue[object] = asyncio.Queue()
    stop = asyncio.Event()
    async with asyncpg.create_pool(database_url, min_size=1, max_size=4) as other_pool:
        one = Rounds(
            pool,
            config=RoundsConfig(worker_id="p1", timing=fast(0.02)),
            gate=gate,
            bases=gate,
            devices=RegistryDevices(pool),
            clock=clock,
            prober=None,  # no probes role: every look goes to a human
        )
        two = Rounds(
            other_pool,
            config=RoundsConfig(worker_id="p2", timing=fast(0.02), run_watchdog=False),
            gate=gate,
            bases=gate,
            devices=RegistryDevices(other_pool, wake=lambda d: _true()),
            clock=clock,
            prober=prober,
        )
        tasks = [
            asyncio.create_task(one.run(presence=feed(presence), changes=feed(changes), stop=stop)),
            asyncio.create_task(two.run(stop=stop)),
        ]
        store = one.store

        async def first_looks_done(checks: list[object]) -> bool:
            first = [c for c in checks if c.agreed == time(22, 0)]  # type: ignore[attr-defined]
            return len(first) == 6 and all(
                c.state not in (State.PLANNED, State.DUE, State.PROBING)  # type: ignore[attr-defined]
                for c in first
            )

        await until(first_looks_done, store)
        by = {(c.recipient_id, c.agreed): c for c in await store.night_checks(NIGHT)}
        assert by[("r5", time(22, 0))].state is State.PATROL  # offline at planning
        assert by[("r5", time(22, 0))].reason == "device_offline"
        looked = {c.recipient_id: c.state for c in by.values() if c.agreed == time(22, 0)}
        assert set(looked.values()) <= {State.NEEDS_VIEW, State.PATROL}
        holders = await pool.fetch(
            "SELECT DISTINCT actor FROM round_transitions WHERE event='claim'"
        )
        assert {h["actor"] for h in holders} <= {"p1", "p2"}

        # a camera going offline during a check: patrol at once
        presence.put_nowait(
            PresenceChanged("cam-r1", Stored.OFFLINE, Stored.ONLINE, 2, WS + timedelta(seconds=5))
        )
        # a withdrawal during the night: the remaining checks become visits
        gate.data["r2"] = dataclasses.replace(
            gate.data["r2"],
            consents=(consent("r2", Purpose.CAMERA_CHECK, withdrawn_at=WS),),
        )
        changes.put_nowait(ConsentChange("e1", ChangeKind.CONSENT_WITHDRAWN, "r2", ("cam-r2",), WS))

        async def moved(checks: list[object]) -> bool:
            d = {(c.recipient_id, c.agreed): c for c in checks}  # type: ignore[attr-defined]
            return (
                d[("r1", time(22, 0))].state is State.PATROL
                and d[("r2", time(2, 0))].state is State.PATROL
            )

        await until(moved, store)
        by = {(c.recipient_id, c.agreed): c for c in await store.night_checks(NIGHT)}
        assert by[("r1", time(22, 0))].reason == "device_offline"
        assert by[("r2", time(2, 0))].reason == "withdrawn"
        assert by[("r3", time(2, 0))].state is State.PLANNED
        stop.set()
        await asyncio.gather(*tasks)
    assert (await store.planned_nights()).keys() == {NIGHT}
    rows = await pool.fetch(
        "SELECT check_id, version, count(*) AS n FROM round_transitions GROUP BY 1, 2"
    )
    assert {r["n"] for r in rows} == {1}


async def _true() -> bool:
    return True


async def test_registry_devices_reads_presence(pool: asyncpg.Pool) -> None:
    await pool.executemany(
        "INSERT INTO devices (device_id, kind, presence) VALUES ($1, 'camera', $2)",
        [("cam-a", "online"), ("cam-b", "offline"), ("cam-c", "online")],
    )
    devices = RegistryDevices(pool)
    assert await devices.online() == {"cam-a", "cam-c"}
    assert await devices.online(["cam-b", "cam-c", "cam-x"]) == {"cam-c"}
    assert await devices.wake("cam-b") is True  # no command link: the probe finds out
