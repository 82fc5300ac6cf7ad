"""The home knows (issue 15): real signalling, a real broker and simulated cameras with media.

The camera gets ``indicator on`` before the offer (nothing can flow before its light is on),
shows the look while it lasts and gets ``indicator off`` after ``bye``. A camera that does not
ack ``indicator on`` within ``indicator_ack_s`` (short here) is device trouble: the view is
closed ``device_lost`` with the stable ``indicator_not_acked`` before any offer reached it; the
motion probe reports the same cause, and the round worker sends that check to a physical visit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import date

import asyncpg
import pytest
from structlog.testing import capture_logs

from consent.model import Purpose as GatePurpose
from devices.topics import CommandOp, DeviceKind
from services.signalling.service import SignallingConfig
from supervision.checks import State
from supervision.probe import MotionProber
from supervision.runner import Runner, RunnerConfig
from supervision.store import RoundStore
from supervision.watchdog import Watchdog, WatchdogConfig
from tests.integration.signalling_support import (
    Device,
    FakeGate,
    Node,
    audit_actions,
    client,
    devices,
    node,
    wait_for,
)
from tests.rounds_support import BasisGate, FakeDevices, at_local, basis, fast, fixed_clock
from tools.view import View

pytestmark = pytest.mark.integration
CAM = "cam-0001"
ACK_S = 0.5  # the indicator's ack timeout in these tests (2 s in service)


@contextlib.asynccontextmanager
async def camera_and_node(
    pool: asyncpg.Pool,
    mqtt_url: str,
    prefix: str,
    gate: FakeGate,
    device_id: str = CAM,
    *,
    acks: bool = True,
) -> AsyncIterator[tuple[Node, Device]]:
    config = SignallingConfig(indicator_ack_s=ACK_S)
    async with (
        node(pool, mqtt_url, prefix, gate, config=config) as n,
        devices(mqtt_url, prefix, pool, [(device_id, DeviceKind.CAMERA)]) as devs,
    ):
        if not acks:
            devs[device_id].sim.unacked.add(CommandOp.INDICATOR)
        yield n, devs[device_id]


async def test_the_camera_is_lit_before_the_offer_and_dark_after_bye(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    gate = FakeGate()
    gate.allow(CAM, cap_s=30)
    async with (
        camera_and_node(pool, mqtt_url, topic_prefix, gate) as (n, cam),
        client(n) as c,
    ):
        view = View(c.channel, CAM, check_id=n.checks.queue(CAM))
        task = asyncio.create_task(view.run())
        await asyncio.wait_for(view.first_frame.wait(), 10)
        live = cam.peer.live()
        assert live is not None
        assert live["purpose"] == "view"
        assert live["session_id"] == view.session_id
        assert 20 < live["remaining_s"] <= 30  # the view's budget, counting down
        await view.hang_up()
        result = await asyncio.wait_for(task, 5)
        await wait_for(lambda: "indicator_off" in cam.peer.stats.seen, what="indicator off")
    assert result.bye == "operator"
    assert result.frames > 0
    seen = cam.peer.stats.seen
    assert seen[:2] == ["indicator_on", "offer"]  # lit before anything could flow
    assert sorted(seen[2:]) == ["bye", "indicator_off"]
    assert cam.peer.live() is None


async def test_a_camera_that_does_not_ack_gets_no_offer_and_the_view_ends(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    gate = FakeGate()
    gate.allow(CAM)
    async with (
        camera_and_node(pool, mqtt_url, topic_prefix, gate, acks=False) as (n, cam),
        client(n) as c,
    ):
        view = View(c.channel, CAM, check_id=n.checks.queue(CAM))
        result = await asyncio.wait_for(view.run(), ACK_S + 5)
        await wait_for(lambda: not n.signalling.sessions, what="the session closed")
    assert result.granted
    assert result.errors == ["indicator_not_acked"]
    assert result.bye == "device_lost"
    assert result.frames == 0
    assert cam.peer.stats.offers == 0  # the offer never reached the camera
    assert "offer" not in cam.peer.stats.seen
    actions = await audit_actions(pool, view.session_id)
    assert [a for a, _ in actions] == ["view.started", "view.ended"]
    assert actions[1][1]["reason"] == "device_lost"
    assert actions[1][1]["detail"] == "indicator_not_acked"
    # the check the view was owed to goes to a physical visit (hard rule 7)
    assert n.checks.troubled == [(view.check_id, "indicator_not_acked")]


async def test_a_probe_of_such_a_camera_sends_its_check_to_a_physical_visit(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    """The round worker, the real probe, real signalling and a camera whose indicator never
    acks: the probe reports device trouble and the check goes to the patrol (hard rule 7)."""
    night = date(2025, 6, 10)
    bases = {"dim": basis("dim", plan={"motion_may_clear": True})}
    store, round_gate = RoundStore(pool), BasisGate(bases)  # type: ignore[arg-type]
    clock = fixed_clock(at_local(night, 18))
    gate = FakeGate()
    gate.allow("cam-dim", GatePurpose.MOTION_ANALYSIS)
    async with camera_and_node(pool, mqtt_url, topic_prefix, gate, "cam-dim", acks=False) as (
        n,
        cam,
    ):
        await Watchdog(
            store,
            bases=round_gate,
            devices=FakeDevices({"cam-dim"}),
            clock=clock,
            config=WatchdogConfig(timing=fast(0.01)),
        ).plan(night)
        clock.set(at_local(night, 21, 50))
        runner = Runner(
            store,
            gate=round_gate,
            prober=MotionProber(n.signalling),
            devices=FakeDevices({"cam-dim"}),
            clock=clock,
            config=RunnerConfig(worker_id="w1", timing=fast(0.01)),
        )
        with capture_logs() as logs:
            async with asyncio.TaskGroup() as tasks:
                while await runner.tick(tasks):
                    pass
        [check] = await store.night_checks(night)
    assert (check.state, check.reason) == (State.PATROL, "indicator_not_acked")
    assert cam.peer.stats.offers == 0
    probes = await pool.fetch(
        "SELECT data->>'detail' AS detail FROM audit_log WHERE action = 'probe.ended'"
    )
    assert [p["detail"] for p in probes] == ["indicator_not_acked"]
    # the probe's session names the check it served; the round worker alone moved the check
    sessions = await pool.fetch("SELECT purpose, staff_id, check_id FROM signal_sessions")
    assert [tuple(r) for r in sessions] == [("probe", "system", check.check_id)]
    started = await pool.fetchval(
        "SELECT data->>'check_id' FROM audit_log WHERE action = 'probe.started'"
    )
    assert started == check.check_id
    moves = [(t.from_state, t.to_state) for t in await store.transitions(night)]
    assert moves[-1] == (State.PROBING, State.PATROL)
    assert not [e for e in logs if e["event"] == "signal_check_device_trouble"]


async def test_an_ended_view_leaves_the_indicator_off_for_the_next(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    """Two looks in a row: each lights the camera once and turns it off once, in order."""
    gate = FakeGate()
    gate.allow(CAM)
    async with (
        camera_and_node(pool, mqtt_url, topic_prefix, gate) as (n, cam),
        client(n) as c,
    ):
        for _ in range(2):
            view = View(c.channel, CAM, check_id=n.checks.queue(CAM), duration_s=0.5)
            result = await asyncio.wait_for(view.run(), 10)
            assert result.frames > 0
            seen = cam.peer.stats.seen
            await wait_for(
                lambda s=seen: s.count("indicator_off") == s.count("indicator_on"),
                what="indicator off",
            )
    seen = [s for s in cam.peer.stats.seen if s.startswith("indicator")]
    assert seen == ["indicator_on", "indicator_off"] * 2
    assert cam.peer.live() is None
