"""Driving the rolling video phone safely (issue 19 item 4), end to end: the backend's signalling,
a simulated phone on Mosquitto, a caller with real WebRTC media.

The phone reaches the broker through a relay this test owns on loopback, so the network between
them can really stall: the relay stops passing bytes either way while the operator keeps the
drive key held (fresh ``drive`` envelopes every 200 ms, as the console sends them). No command
reaches the phone any more, and it must stop by itself within the dead-man window of the last
command it took. Then the key is let go, the network comes back, and ``dock`` drives the phone
back to its charger in the simulated room; the caller sees ``docked`` and the battery. Last, the
caller's media goes away while the key is held: the phone sees its connection go and stops by
itself (its own video-stall rule), before the backend stops forwarding.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest

from consent.model import Purpose as GatePurpose
from devices import envelope as env
from devices.topics import DeviceKind
from homeside import drive
from homeside.device import DeviceClient, DeviceSpec
from homeside.peer import AnswerPolicy, CallState, DevicePeer
from kernel.tenancy import DEFAULT_ORGANISATION
from simulators.homes import attach
from simulators.rover import SimBody
from tests.integration.signalling_support import FakeGate, client, node, wait_for
from tools.view import View

pytestmark = pytest.mark.integration
PHONE = "phone-0007"
KEY_REPEAT_S = 0.2  # the console's held key (call.js DRIVE_REPEAT_MS)
MARGIN_S = 0.1  # scheduling on a loaded two-core machine


class Relay:
    """A TCP relay on loopback between the phone and the broker; :meth:`stall` holds every byte
    both ways (the connection stays up, as on a network that stops delivering)."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 1883
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"mqtt://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def stall(self) -> None:
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(65536):
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        for pump in (self._pump(reader, up_writer), self._pump(up_reader, writer)):
            task = asyncio.create_task(pump)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Relay]:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        try:
            yield self
        finally:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def held_key(c: object, session_id: str, linear: float, held: asyncio.Event) -> None:
    """The console's held arrow key: ``drive`` every 200 ms while held, ``0, 0`` on release."""
    send = c.send  # type: ignore[attr-defined]
    while held.is_set():
        await send(env.Drive(session_id, linear=linear, angular=0.0))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_released(held), KEY_REPEAT_S)
    await send(env.Drive(session_id, linear=0.0, angular=0.0))


async def _released(held: asyncio.Event) -> None:
    while held.is_set():
        await asyncio.sleep(0.01)


async def rtcp_reports_seen(peer: DevicePeer) -> bool:
    """Whether the phone's video sender has had an RTCP receiver report from the caller."""
    assert peer.pc is not None
    for sender in peer.pc.getSenders():
        if sender.track is peer.video:
            report = await sender.getStats()
            return any(s.type == "remote-inbound-rtp" for s in report.values())
    return False


async def test_a_network_stall_stops_the_phone_within_the_window_and_dock_brings_it_home(
    pool: asyncpg.Pool, mqtt_url: str, topic_prefix: str
) -> None:
    gate = FakeGate()
    gate.allow(PHONE, GatePurpose.VIDEO_CALL)
    async with Relay(mqtt_url).running() as relay, node(pool, mqtt_url, topic_prefix, gate) as n:
        spec = DeviceSpec(PHONE, DeviceKind.VIDEO_PHONE, width=320, height=240, fps=10.0)
        sim = DeviceClient(spec, relay.url, prefix=topic_prefix, keepalive_s=5)
        sim.health_interval_s = 3600
        peer = attach(sim, policy=AnswerPolicy.parse("always"))
        assert peer.wheels is not None
        wheels, body = peer.wheels, peer.wheels.driver
        assert isinstance(body, SimBody)
        stop = asyncio.Event()
        running = asyncio.create_task(sim.run(stop))
        try:
            await wait_for(
                lambda: pool.fetchval(
                    "SELECT presence = 'online' AND kind IS NOT NULL FROM devices"
                    " WHERE device_id = $1",
                    PHONE,
                ),
                what="phone online",
            )
            await pool.execute(
                "UPDATE devices SET organisation_id = $2 WHERE device_id = $1",
                PHONE,
                DEFAULT_ORGANISATION,
            )
            async with client(n) as c:
                call = View(c.channel, PHONE, purpose=env.Purpose.CALL)
                task = asyncio.create_task(call.run())
                await asyncio.wait_for(call.first_frame.wait(), 15)
                assert peer.call_state is CallState.IN_CALL
                await wait_for(lambda: call.result.frames > 5, what="the caller's video")
                await wait_for(lambda: call.result.units, what="the battery at the start")
                assert call.result.units[0].battery_pct == pytest.approx(90, abs=1)

                held = asyncio.Event()
                held.set()
                key = asyncio.create_task(held_key(c, call.session_id, 0.5, held))
                await wait_for(lambda: body.travelled_m > 0.1, what="the phone rolling")
                await wait_for(lambda: len(peer.stats.drives) >= 3, what="a held key")
                assert wheels.motion.mode is drive.Mode.DRIVING

                relay.stall()  # the key stays held; nothing reaches the phone any more
                await wait_for(lambda: not wheels.motion.is_moving, timeout_s=3, what="stop")
                stopped_at, reason = wheels.stops[-1]
                last = wheels.last_command_at
                assert last is not None
                assert reason is drive.StopReason.EXPIRED
                after_last_s = stopped_at - last
                assert drive.MAX_VALID_S - 0.01 <= after_last_s <= drive.MAX_VALID_S + MARGIN_S
                where = body.pose
                await asyncio.sleep(0.3)  # the key is still held at the console
                assert body.pose == where
                assert not body.is_moving

                held.clear()  # let go; the network comes back and delivers what waited
                await key
                relay.resume()
                await wait_for(
                    lambda: peer.stats.drives[-1] == (0.0, 0.0), what="the release delivered"
                )
                assert not wheels.motion.is_moving
                away_m = body.travelled_m

                await c.send(env.Dock(call.session_id))
                await wait_for(
                    lambda: any(u.event is env.UnitEvent.DOCKED for u in call.result.units),
                    timeout_s=10,
                    what="docked, as the caller sees it",
                )
                assert body.sensors().docked
                assert body.travelled_m > away_m + 0.1
                docked = call.result.units[-1]
                assert docked.battery_pct == pytest.approx(body.battery, abs=0.1)
                # the caller's receiver reports reach the phone (what its own stall rule reads)
                assert await peer.video_flowing()
                assert await rtcp_reports_seen(peer)

                # the caller's side of the media goes: the phone sees its connection go and
                # stops before the backend's freshness rule would stop the commands
                held.set()
                key = asyncio.create_task(held_key(c, call.session_id, 0.5, held))
                await wait_for(lambda: wheels.motion.is_moving, what="driving again")
                assert call.pc is not None
                await call.pc.close()
                await wait_for(lambda: not wheels.motion.is_moving, timeout_s=3, what="stop")
                assert wheels.stops[-1][1] is drive.StopReason.VIDEO_STALLED
                held.clear()
                await key
                await call.hang_up()
                result = await asyncio.wait_for(task, 5)
                assert result.bye == "operator"
            print(
                f"\nstall: stopped {after_last_s * 1000:.0f} ms after the last command "
                f"(window {drive.MAX_VALID_S * 1000:.0f} ms); docked after "
                f"{body.travelled_m - away_m:.2f} m"
            )
        finally:
            stop.set()
            await peer.close()
            await wheels.close()
            await asyncio.gather(running, return_exceptions=True)
