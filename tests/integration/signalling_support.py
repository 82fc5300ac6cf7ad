"""Test wiring for signalling: a consent gate fake, a service node, simulated devices, clients.

A *node* is what one ``homecare serve`` process runs for signalling: the lead's MQTT link,
device registry handler and command sender, plus
:class:`services.signalling.service.Signalling` and an
aiohttp server with ``/ws/signal``. Two nodes share only PostgreSQL and the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestServer

from consent import model
from devices import envelope as env
from devices.commands import Commands
from devices.feed import DeviceFeed
from devices.handler import BATCH_CHANNELS, DeviceHandler
from devices.intake import SHARE_GROUP, Intake
from devices.topics import Channel, DeviceKind
from homeside.device import DeviceClient, DeviceSpec
from homeside.peer import AnswerPolicy, DevicePeer
from kernel.clock import ScaledClock
from kernel.roles import Principal, Role, Route
from kernel.tenancy import DEFAULT_ORGANISATION, DEFAULT_TEAM
from services.app import feed_signalling
from services.events import EventBus
from services.mqtt import MqttLink
from services.signalling import service as signalling
from services.signalling.fakes import FakeChecks
from services.signalling.service import Signalling, SignallingConfig
from services.web import http
from simulators.homes import attach
from tools.view import SERVER_TYPES, WebSocketChannel

_DEFAULT = {"orgs": frozenset({DEFAULT_ORGANISATION}), "teams": frozenset({DEFAULT_TEAM})}
TOKENS = {
    "op-token": Principal("staff-op0001", Role.OPERATOR, via="token", **_DEFAULT),
    "op2-token": Principal("staff-op0002", Role.OPERATOR, via="token", **_DEFAULT),
    "tech-token": Principal("staff-tech01", Role.TECHNICIAN, via="token", **_DEFAULT),
    "sys-token": Principal("system", Role.SYSTEM, via="token", orgs=None, teams=None),
}
"""What a login of the default team would carry (``staff_scope``); the system sees all."""


async def token_auth(request: web.Request) -> Principal | None:
    """Bearer header, or ``?token=`` (the viewer page in the browser test)."""
    header = request.headers.get("Authorization", "")
    token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
    return TOKENS.get(token or request.query.get("token", ""))


class JumpClock(ScaledClock):
    """The one clock (:class:`kernel.clock.ScaledClock`) at real speed from ``start``, whose
    ``sleep`` wakes early when the clock is moved past its end (:meth:`advance`), so a test
    jumps to a deadline (a view cap, a ring timeout) instead of waiting for it."""

    def __init__(self, start: datetime | None = None) -> None:
        super().__init__(1.0, start)
        self._moved = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        until = self.now() + timedelta(seconds=seconds)
        while (left_s := (until - self.now()).total_seconds()) > 0:
            moved = self._moved
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left_s):
                    await moved.wait()

    def set(self, at: datetime) -> None:
        """Jump to ``at`` and wake every sleeper to look again."""
        super().set(at)
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()


class FakeGate:
    """The consent gate's port: per device and purpose a decision; changes on demand."""

    def __init__(self) -> None:
        self.decisions: dict[tuple[str, model.Purpose], model.Decision] = {}
        self.calls = 0
        self._subscribers: list[asyncio.Queue[model.ConsentChange]] = []

    def allow(
        self,
        device_id: str,
        *purposes: model.Purpose,
        cap_s: int = 30,
        recipient_id: str = "rec-0001",
        camera: bool = True,
    ) -> None:
        """Allow ``purposes`` (default camera check). A video call also gets the camera check
        it needs for its video unless ``camera=False``."""
        wanted = set(purposes or (model.Purpose.CAMERA_CHECK,))
        if model.Purpose.VIDEO_CALL in wanted and camera:
            wanted.add(model.Purpose.CAMERA_CHECK)  # a call's video needs the view's basis too
        for purpose in wanted:
            self.decisions[device_id, purpose] = model.Decision(
                allowed=True,
                reason=None,
                recipient_id=recipient_id,
                plan_id="plan-0001",
                view_cap_s=cap_s,
            )

    def deny(
        self,
        device_id: str,
        reason: model.Reason = model.Reason.WITHDRAWN,
        kind: model.ChangeKind = model.ChangeKind.CONSENT_WITHDRAWN,
    ) -> None:
        """Turn every purpose of the device to deny and announce it, like a withdrawal."""
        for key in [k for k in self.decisions if k[0] == device_id]:
            self.decisions[key] = model.Decision.deny(reason, "rec-0001")
        change = model.ConsentChange(
            event_id=uuid.uuid4().hex,
            kind=kind,
            recipient_id="rec-0001",
            device_ids=(device_id,),
            at=datetime.now(UTC),
        )
        for queue in self._subscribers:
            queue.put_nowait(change)

    async def decide(
        self, *, device_id: str, purpose: model.Purpose, at: datetime
    ) -> model.Decision:
        self.calls += 1
        return self.decisions.get(
            (device_id, purpose), model.Decision.deny(model.Reason.NO_CONSENT)
        )

    async def changes(self) -> AsyncIterator[model.ConsentChange]:
        queue: asyncio.Queue[model.ConsentChange] = asyncio.Queue()
        self._subscribers.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.remove(queue)


@dataclass
class Node:
    signalling: Signalling
    server: TestServer
    link: MqttLink
    checks: FakeChecks  # the round's side of a view: ``checks.queue(device)`` is a due check

    def ws_url(self, token: str | None = "op-token") -> str:
        return str(self.server.make_url("/ws/signal" + (f"?token={token}" if token else "")))

    @property
    def url(self) -> str:
        return str(self.server.make_url("/"))


@contextlib.asynccontextmanager
async def node(
    pool: asyncpg.Pool,
    mqtt_url: str,
    prefix: str,
    gate: FakeGate,
    *,
    instance_id: str | None = None,
    handle_devices: bool = True,
    config: SignallingConfig | None = None,
    extra_routes: Iterable[Route] = (),
    clock: JumpClock | None = None,
    checks: FakeChecks | None = None,
) -> AsyncIterator[Node]:
    """``checks``: the round's side of every view (default: the test operators on duty, no
    check queued; a test queues the checks its views are owed to)."""
    checks = checks or FakeChecks(duty=tuple(p.staff_id for p in TOKENS.values()))
    # unique per run: two runs on one broker must not take over each other's MQTT client ids
    instance_id = instance_id or f"node-{uuid.uuid4().hex[:8]}"
    handler = DeviceHandler(pool, clock=lambda: datetime.now(UTC), on_presence=lambda _: None)
    link = MqttLink(
        mqtt_url, prefix=prefix, keepalive_s=5, instance_id=instance_id, on_reject=handler.reject
    )
    # as the service wires it: the shared intake, and presence and call answers from the feed
    intake = Intake(handler)
    for channel in BATCH_CHANNELS:
        link.subscribe_sink(channel, intake.offer, share_group=SHARE_GROUP)
    link.subscribe(Channel.CMD_ACK, handler.handle)
    bus = EventBus()
    feed = DeviceFeed(pool, bus.publish)
    async with link, contextlib.AsyncExitStack() as tasks:
        for coro in (intake.run(), feed.run()):
            tasks.push_async_callback(_cancel, asyncio.create_task(coro))
        await asyncio.wait_for(link.connected.wait(), 10)
        await asyncio.wait_for(feed.ready.wait(), 10)
        commands = Commands(pool, handler, link.publish, prefix)
        sig = Signalling(
            pool=pool,
            link=link,
            prefix=prefix,
            instance_id=instance_id,
            gate=gate,
            commands=commands,
            handle_devices=handle_devices,
            config=config or SignallingConfig(),
            clock=clock or JumpClock(),
            checks=checks,
        )
        async with sig:
            await sig.wait_ready()
            tasks.push_async_callback(_cancel, asyncio.create_task(feed_signalling(bus, sig)))
            app = http.make_app(max_body_bytes=65536)
            app[http.AUTHENTICATOR] = token_auth
            app[signalling.SIGNALLING] = sig
            app.on_shutdown.append(signalling.on_shutdown)
            http.add_routes(app, [*signalling.routes(), *extra_routes])
            server = TestServer(app, host="127.0.0.1")
            await server.start_server()
            try:
                yield Node(sig, server, link, checks)
            finally:
                await server.close()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@dataclass
class Device:
    sim: DeviceClient
    peer: DevicePeer
    stop: asyncio.Event
    task: asyncio.Task[None]


@contextlib.asynccontextmanager
async def devices(
    mqtt_url: str,
    prefix: str,
    pool: asyncpg.Pool,
    specs: Iterable[tuple[str, DeviceKind]],
    *,
    policy: AnswerPolicy | None = None,
) -> AsyncIterator[dict[str, Device]]:
    """Simulated devices with real media, online and registered before the block starts."""
    found: dict[str, Device] = {}
    for device_id, kind in specs:
        spec = DeviceSpec(device_id, kind, width=320, height=240, fps=10.0)
        sim = DeviceClient(spec, mqtt_url, prefix=prefix, keepalive_s=5, health_interval_s=3600)
        peer = attach(sim, policy=policy)
        stop = asyncio.Event()
        found[device_id] = Device(sim, peer, stop, asyncio.create_task(sim.run(stop)))
    try:
        for device_id in found:
            await wait_for(lambda d=device_id: _online(pool, d), what=f"{device_id} online")
        # The fake gate stands for a binding; a binding would put the device in its brukare's
        # organisation, where the sessions written in an operator's scope must belong.
        await pool.execute(
            "UPDATE devices SET organisation_id = $2 WHERE device_id = ANY($1::text[])",
            list(found),
            DEFAULT_ORGANISATION,
        )
        yield found
    finally:
        for device in found.values():
            device.stop.set()
            await device.peer.close()
        await asyncio.gather(*(d.task for d in found.values()), return_exceptions=True)


async def _online(pool: asyncpg.Pool, device_id: str) -> bool:
    """Online, and its kind known (signalling checks the kind against the purpose)."""
    return (
        await pool.fetchval(
            "SELECT presence = 'online' AND kind IS NOT NULL FROM devices WHERE device_id = $1",
            device_id,
        )
        is True
    )


async def wait_for(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    timeout_s: float = 10.0,
    what: str = "condition",
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Client:
    """A raw WebSocket client for protocol tests."""

    ws: aiohttp.ClientWebSocketResponse
    seen: list[env.Envelope] = field(default_factory=list)

    @property
    def channel(self) -> WebSocketChannel:
        return WebSocketChannel(self.ws)

    async def send(self, message: env.Envelope | str) -> None:
        await self.ws.send_str(message if isinstance(message, str) else env.encode(message))

    async def recv(self, timeout_s: float = 5.0) -> env.Envelope:
        msg = await asyncio.wait_for(self.ws.receive(), timeout_s)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"websocket {msg.type.name} {self.ws.close_code}")
        message = env.decode(msg.data, allowed=SERVER_TYPES)
        self.seen.append(message)
        return message

    async def expect(self, kind: type[env.Envelope], timeout_s: float = 5.0) -> env.Envelope:
        while True:
            message = await self.recv(timeout_s)
            if isinstance(message, kind):
                return message


@contextlib.asynccontextmanager
async def client(n: Node, token: str = "op-token") -> AsyncIterator[Client]:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(n.ws_url(token), max_msg_size=env.MAX_MESSAGE_BYTES * 2) as ws,
    ):
        yield Client(ws)


async def audit_actions(pool: asyncpg.Pool, session_id: str) -> list[tuple[str, dict[str, object]]]:
    import json

    rows = await pool.fetch(
        "SELECT action, data::text AS data FROM audit_log"
        " WHERE data->>'session_id' = $1 ORDER BY seq",
        session_id,
    )
    return [(r["action"], json.loads(r["data"])) for r in rows]
