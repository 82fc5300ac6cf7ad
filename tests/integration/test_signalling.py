"""Live views over the real broker and real signalling, frames decoded on the receiving side."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from consent.model import Purpose as GatePurpose
from consent.model import Reason
from devices import envelope as env
from devices.topics import DeviceKind
from services.signalling.service import SignallingConfig
from tests.integration.signalling_support import (
    FakeGate,
    JumpClock,
    audit_actions,
    client,
    devices,
    node,
    wait_for,
)
from tools.view import View

pytestmark = pytest.mark.integration
CAM = "cam-0001"


async def test_view_delivers_real_frames_and_is_audited(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    gate = FakeGate()
    gate.allow(CAM)
    async with (
        node(pool, mqtt_url, topic_prefix, gate) as n,
        devices(mqtt_url, topic_prefix, pool, [(CAM, DeviceKind.CAMERA)]) as devs,
        client(n) as c,
    ):
        view = View(c.channel, CAM, check_id=n.checks.queue(CAM))
        task = asyncio.create_task(view.run())
        await asyncio.wait_for(view.first_frame.wait(), 10)
        await wait_for(lambda: view.result.frames >= 10, what="10 decoded frames")
        assert devs[CAM].peer.frames_sent >= 10
        await view.hang_up()
        result = await asyncio.wait_for(task, 5)
    assert result.granted
    assert result.bye == "operator"
    assert result.frames >= 10
    actions = await audit_actions(pool, view.session_id)
    assert [a for a, _ in actions] == ["view.started", "view.ended"]
    assert actions[1][1]["reason"] == "operator"
    assert actions[0][1]["device_id"] == CAM
    row = await pool.fetchrow(
        "SELECT state, end_reason FROM signal_sessions WHERE session_id = $1", view.session_id
    )
    assert row is not None
    assert dict(row) == {"state": "closed", "end_reason": "operator"}


async def test_denied_without_consent_offline_or_wrong_role(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    gate = FakeGate()
    async with (
        node(pool, mqtt_url, topic_prefix, gate) as n,
        devices(mqtt_url, topic_prefix, pool, [(CAM, DeviceKind.CAMERA)]),
    ):
        async with client(n) as c:
            due = n.checks.queue(CAM)
            await c.send(
                env.Request("s-noconsent", device_id=CAM, purpose=env.Purpose.VIEW, check_id=due)
            )
            assert await c.recv() == env.Denied("s-noconsent", reason="no_consent")
            await c.send(
                env.Request(
                    "s-offline1", device_id="cam-9999", purpose=env.Purpose.VIEW, check_id=due
                )
            )
            assert await c.recv() == env.Denied("s-offline1", reason="device_offline")
            gate.allow(CAM, GatePurpose.MOTION_ANALYSIS)
            await c.send(env.Request("s-probe-op", device_id=CAM, purpose=env.Purpose.PROBE))
            assert await c.recv() == env.Denied("s-probe-op", reason="forbidden")
        async with client(n, "sys-token") as probe:
            view = View(probe.channel, CAM, purpose=env.Purpose.PROBE, duration_s=0.8)
            result = await asyncio.wait_for(view.run(), 10)
            assert result.frames > 0
    actions = await audit_actions(pool, "s-noconsent")
    assert actions == [
        ("view.denied", {"session_id": "s-noconsent", "device_id": CAM, "reason": "no_consent"})
    ]
    assert [a for a, _ in await audit_actions(pool, view.session_id)] == [
        "probe.started",
        "probe.ended",
    ]


async def test_one_view_per_device(pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str) -> None:
    gate = FakeGate()
    gate.allow(CAM)
    async with (
        node(pool, mqtt_url, topic_prefix, gate) as n,
        devices(mqtt_url, topic_prefix, pool, [(CAM, DeviceKind.CAMERA)]),
        client(n) as a,
        client(n, "op2-token") as b,
    ):
        first, second = n.checks.queue(CAM), n.checks.queue(CAM)
        await a.send(env.Request("s-first-01", CAM, env.Purpose.VIEW, check_id=first))
        assert isinstance(await a.recv(), env.Granted)
        await b.send(env.Request("s-second-1", CAM, env.Purpose.VIEW, check_id=second))
        assert await b.recv() == env.Denied("s-second-1", reason="busy")
        await a.send(env.Bye("s-first-01", env.ByeReason.OPERATOR))
        assert await a.expect(env.Bye) == env.Bye("s-first-01", env.ByeReason.OPERATOR)
        await b.send(env.Request("s-second-2", CAM, env.Purpose.VIEW, check_id=second))
        assert isinstance(await b.recv(), env.Granted)
        # a session id is never reused, even after it ended
        await a.send(env.Request("s-first-01", CAM, env.Purpose.VIEW, check_id=first))
        assert (await a.recv()).type is env.MessageType.ERROR


async def test_cap_closes_both_sides_and_puts_the_camera_to_sleep(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    gate = FakeGate()
    gate.allow(CAM, cap_s=2)
    clock = JumpClock()
    async with (
        node(pool, mqtt_url, topic_prefix, gate, clock=clock) as n,
        devices(mqtt_url, topic_prefix, pool, [(CAM, DeviceKind.CAMERA)]) as devs,
        client(n) as c,
    ):
        view = View(c.channel, CAM, check_id=n.checks.queue(CAM, cap_s=2))
        started = time.monotonic()
        task = asyncio.create_task(view.run())
        await wait_for(lambda: view.result.frames > 5, what="frames before the cap")
        assert not task.done()
        clock.advance(2)  # to the cap on the service's clock
        result = await asyncio.wait_for(task, 5)
        real_s = time.monotonic() - started  # the clock also ran at real speed meanwhile
        assert result.bye == "timeout"
        assert result.frames > 5
        assert result.deadline is not None
        await wait_for(lambda: devs[CAM].peer.pc is None, what="device peer closed")
        await wait_for(lambda: _slept(pool, CAM), what="sleep command acked")
    ended = (await audit_actions(pool, view.session_id))[-1]
    assert ended[0] == "view.ended"
    assert ended[1]["reason"] == "timeout"
    # the cap on the service's clock: its 2 s jump plus the real time from the grant to the end
    assert 2.0 <= ended[1]["duration_s"] <= 2.0 + real_s


async def _slept(pool: asyncpg.Pool, device_id: str) -> bool:
    return (
        await pool.fetchval(
            "SELECT ack_ok FROM device_commands WHERE device_id = $1 AND op = 'sleep'", device_id
        )
        is True
    )


async def test_extension_needs_a_reason_and_is_audited(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    gate = FakeGate()
    gate.allow(CAM, cap_s=2)
    config = SignallingConfig(max_extensions=1)
    clock = JumpClock()
    async with (
        node(pool, mqtt_url, topic_prefix, gate, config=config, clock=clock) as n,
        devices(mqtt_url, topic_prefix, pool, [(CAM, DeviceKind.CAMERA)]),
        client(n) as c,
    ):
        due = n.checks.queue(CAM, cap_s=2)
        await c.send(env.Request("s-extend01", CAM, env.Purpose.VIEW, check_id=due))
        granted = await c.expect(env.Granted)
        assert isinstance(granted, env.Granted)
        await c.send('{"type":"request","session_id":"s-extend01","extend":"because"}')
        assert (await c.recv()).type is env.MessageType.ERROR
        await c.send(env.Request("s-extend01", extend=env.ExtendReason.UNCLEAR_IMAGE))
        extended = await c.expect(env.Granted)
        assert isinstance(extended, env.Granted)
        assert extended.deadline == pytest.approx(granted.deadline + 2, abs=0.2)
        await c.send(env.Request("s-extend01", extend=env.ExtendReason.UNCLEAR_IMAGE))
        error = await c.expect(env.Error)
        assert isinstance(error, env.Error)
        assert error.code == "extension_limit"
        clock.advance(2.5)  # past the first deadline, before the extended one: still open
        await c.send(env.Request("s-extend01", extend=env.ExtendReason.UNCLEAR_IMAGE))
        still = await c.expect(env.Error)
        assert isinstance(still, env.Error)
        assert still.code == "extension_limit"  # not session_closed
        clock.advance(2.0)
        assert await c.expect(env.Bye, timeout_s=5) == env.Bye("s-extend01", env.ByeReason.TIMEOUT)
    actions = await audit_actions(pool, "s-extend01")
    assert [a for a, _ in actions] == ["view.started", "view.extended", "view.ended"]
    assert actions[1][1]["reason"] == "unclear_image"


async def test_withdrawal_closes_a_live_view_within_one_second(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    gate = FakeGate()
    gate.allow(CAM)
    gate.allow("cam-0002")
    async with (
        node(pool, mqtt_url, topic_prefix, gate) as n,
        devices(
            mqtt_url,
            topic_prefix,
            pool,
            [(CAM, DeviceKind.CAMERA), ("cam-0002", DeviceKind.CAMERA)],
        ) as devs,
        client(n) as c,
        client(n, "op2-token") as other,
    ):
        view = View(c.channel, CAM, check_id=n.checks.queue(CAM))
        bystander = View(other.channel, "cam-0002", check_id=n.checks.queue("cam-0002"))
        task = asyncio.create_task(view.run())
        other_task = asyncio.create_task(bystander.run())
        await asyncio.wait_for(view.first_frame.wait(), 10)
        await asyncio.wait_for(bystander.first_frame.wait(), 10)
        withdrawn_at = time.monotonic()
        gate.deny(CAM, Reason.WITHDRAWN)
        result = await asyncio.wait_for(task, 5)
        client_s = time.monotonic() - withdrawn_at
        await wait_for(lambda: devs[CAM].peer.pc is None, timeout_s=2, what="device closed")
        device_s = time.monotonic() - withdrawn_at
        assert result.bye == "withdrawn"
        assert client_s < 1.0, client_s
        assert device_s < 1.0, device_s
        # the other brukare's view goes on
        frames = bystander.result.frames
        await wait_for(lambda: bystander.result.frames > frames + 3, what="bystander frames")
        assert not other_task.done()
        await bystander.hang_up()
        await asyncio.wait_for(other_task, 5)
    ended = (await audit_actions(pool, view.session_id))[-1]
    assert ended[1]["reason"] == "withdrawn"
    assert ended[1]["detail"] == "withdrawn"
