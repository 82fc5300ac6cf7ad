"""Signalling: live views, calls and probe sessions between clients and devices (the interpreter).

Clients (operator browsers over ``GET /ws/signal``, ``homecare view``, the in-process probe via
:meth:`Signalling.connect`) and devices (``{prefix}/dev/{id}/webrtc/in|out``) exchange the
envelopes of :mod:`devices.envelope`; media goes peer to peer (or via TURN), never through here.

A session: ``request`` -> the facts (presence and kind from the registry, the gate's decisions,
the view budget already spent in the agreed window) -> :func:`machine.decide_request` -> a
``signal_sessions`` row (one open per device) plus an audit entry -> ``granted`` (ICE servers,
deadline) -> the client's ``offer`` (checked against the purpose) and trickled candidates go to
the device -> its ``answer`` comes back -> ``bye`` with a reason. The process holding the client's
connection owns the session's timers; a device message reaches one process of the group (a shared
subscription), which checks it against the row and routes it to the owner over
``{prefix}/server/signal/{id}``.

Every rule (cap, extensions, withdrawal, ring, drive lockout, media, bye reasons, audit actor) is
decided by the pure :mod:`services.signalling.machine`; this class turns what happens into its
events, feeds them to :func:`machine.apply` and performs the effects it returns. Timers run on the
injected clock: a timer sleeps until ``deadline - now`` on that clock (with the clock's own
``sleep`` when it has one, so a sped-up clock keeps caps right) and the machine checks the
deadline again when it fires. A token bucket per connection (then disconnect) and an ``error``
envelope for every bad message stay here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import asyncpg
import structlog

from consent import model as consent_model
from devices import envelope as env
from devices import topics
from kernel.audit import store as audit_store
from kernel.roles import Principal
from services.mqtt import MqttLink
from services.signalling import machine, store
from services.signalling.bus import BusHandlers, SignalBus
from services.signalling.http import SIGNALLING, on_shutdown, routes
from services.signalling.machine import TimerFired
from services.signalling.ports import (
    BusPort,
    Clock,
    CommandsPort,
    GatePort,
    PresencePort,
    RegistryPresence,
    SessionStore,
    SignallingConfig,
    Sleeper,
    system_clock,
)
from services.signalling.router import DeviceMessage, DeviceRouter
from services.signalling.session import ClientConnection, LiveSession, TokenBucket
from services.signalling.turn import TurnConfig, ice_servers

log = structlog.get_logger(__name__)

__all__ = [
    "SIGNALLING",
    "CommandsPort",
    "GatePort",
    "PresencePort",
    "Signalling",
    "SignallingConfig",
    "on_shutdown",
    "routes",
]
WS_GOING_AWAY = 1001
WS_POLICY_VIOLATION = 1008
BusFactory = Callable[[BusHandlers], BusPort]


def _clock_parts(
    clock: Clock | Sleeper,
) -> tuple[Callable[[], datetime], Callable[[float], Awaitable[None]]]:
    """``now`` and ``sleep`` of a clock port, or of a plain callable (then loop time sleeps)."""
    now = getattr(clock, "now", None)
    sleep = getattr(clock, "sleep", None)
    if callable(now) and callable(sleep):
        return now, sleep
    assert callable(clock)
    return clock, asyncio.sleep


class Signalling:
    """The signalling service of one process; an async context manager.

    Create it in the composition root, set ``app[SIGNALLING]`` and add :func:`routes`. ``store``,
    ``presence`` and ``bus`` default to the real adapters over ``pool`` and ``mqtt_url``; tests
    pass :mod:`services.signalling.fakes`.
    """

    def __init__(
        self,
        *,
        pool: asyncpg.Pool | None = None,
        link: MqttLink | None = None,
        prefix: str = "hc/v1",
        instance_id: str,
        gate: GatePort,
        commands: CommandsPort,
        presence: PresencePort | None = None,
        audit: store.AuditAppend = audit_store.append,
        turn: TurnConfig | None = None,
        config: SignallingConfig | None = None,
        handle_devices: bool = True,
        clock: Clock | Sleeper = system_clock,
        sessions: SessionStore | None = None,
        bus: BusFactory | None = None,
    ) -> None:
        self.pool = pool
        self.prefix = prefix
        self.instance_id = instance_id
        self.gate = gate
        self.commands = commands
        if presence is None or sessions is None:
            if pool is None:
                raise ValueError("without a pool, pass a session store and a presence port")
            presence = presence or RegistryPresence(pool)
            sessions = sessions or store.PgSessionStore(pool, audit)
        self.presence: PresencePort = presence
        self.store: SessionStore = sessions
        self.turn = turn or TurnConfig()
        self.config = config or SignallingConfig()
        self.clock = clock
        self._now, self._sleep = _clock_parts(clock)
        handlers = BusHandlers(
            self._on_device_signal, self._on_device_event, self._on_device_status, self._on_routed
        )
        if bus is not None:
            self.bus: BusPort = bus(handlers)
        elif link is not None:
            self.bus = SignalBus(
                link, instance_id=instance_id, handlers=handlers, handle_devices=handle_devices
            )
        else:
            raise ValueError("pass the process's MQTT link (or a bus factory)")
        self.sessions: dict[str, LiveSession] = {}
        self.counters: Counter[str] = Counter()  # routed_out/in, client_rejected_<code>, ...
        self.router = DeviceRouter(
            store=self.store,
            bus=self.bus,
            instance_id=instance_id,
            rate_per_s=self.config.device_rate_per_s,
            burst=self.config.device_rate_burst,
            local=self._local_device,
            deliver=self._from_device,
            counters=self.counters,
        )
        self.connections: set[ClientConnection] = set()
        self._device_sessions: dict[str, int] = {}  # last online session counter per device
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._accepting = False

    def now(self) -> datetime:
        return self._now()

    # ------------------------------------------------------------ life

    async def __aenter__(self) -> Signalling:
        closed = await self.store.sweep_overdue(
            at=self.now(), grace_s=0, instance_id=self.instance_id
        )
        await self.bus.__aenter__()
        for row in closed:
            self._spawn(
                self._tell_device(row.device_id, env.Bye(row.session_id, env.ByeReason.TIMEOUT))
            )
        loop = asyncio.get_running_loop()
        self._loops = [
            loop.create_task(self._watch_gate(), name="signal-gate"),
            loop.create_task(self._recheck_loop(), name="signal-recheck"),
            loop.create_task(self._sweep_loop(), name="signal-sweep"),
        ]
        self._accepting = True
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close_clients()
        for task in self._loops:
            task.cancel()
        for task in [*self._loops, *self._tasks]:
            task.cancel()
        for task in [*self._loops, *self._tasks]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.bus.__aexit__(et, e, tb)

    async def close_clients(self) -> None:
        """End every live session and close every client (``app.on_shutdown``): GOING_AWAY."""
        self._accepting = False
        for live in list(self.sessions.values()):
            await self._feed(live, machine.Shutdown())
        for conn in list(self.connections):
            conn.close(WS_GOING_AWAY, "server shutting down")

    async def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Until the broker connection is up (tests and the demo)."""
        await asyncio.wait_for(self.bus.connected.wait(), timeout_s)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("signal_task_failed", error=repr(task.exception()))

    # ------------------------------------------------------------ the machine

    async def _feed(self, live: LiveSession, event: machine.Event) -> None:
        """Apply ``event`` to the session and perform what the machine says, in order."""
        before = live.value
        after, effects = machine.apply(before, event, self.now(), self.config.terms)
        live.value = after
        if before.is_open and not after.is_open:
            live.cancel_timer()
            self.sessions.pop(after.session_id, None)
            log.info(
                "signal_session_ended",
                session_id=after.session_id,
                device_id=after.device_id,
                purpose=after.purpose.value,
                reason=after.end_reason.value if after.end_reason else None,
                duration_s=round((self.now() - after.started_at).total_seconds(), 3),
            )
        for effect in effects:
            await self._perform(live, effect)

    async def _perform(self, live: LiveSession, effect: machine.Effect) -> None:
        s, conn = live.value, live.conn
        match effect:
            case machine.ToClient(message=env.Granted() as granted):
                servers = ice_servers(self.turn, s.staff_id, self.now())
                conn.send(dataclasses.replace(granted, ice_servers=servers))
            case machine.ToClient(message=message):
                conn.send(message)
            case machine.ToDevice(message=env.Offer() as offer):
                servers = ice_servers(self.turn, s.device_id, self.now())
                await self._tell_device(
                    s.device_id, dataclasses.replace(offer, ice_servers=servers)
                )
            case machine.ToDevice(message=message):
                await self._tell_device(s.device_id, message)
            case machine.Refuse(code=code, message=text):
                self.reject(conn, code, text, s.session_id)
            case machine.Command(op=op):
                self._spawn(self._stop_device(s.device_id, op, s.session_id))
            case machine.Ring(timeout_s=timeout_s, auto_answer=auto_answer):
                self._spawn(self._ring(live, timeout_s, auto_answer))
            case machine.Drive():
                self._spawn(self._drive(live, effect))
            case machine.ArmTimer(at=at):
                self._arm(live, at)
            case machine.MarkConnected(at=at, deadline=deadline, is_audited=is_audited):
                write = self.store.mark_connected(
                    self._row(s), at=at, deadline=deadline, is_audited=is_audited
                )
                if is_audited:
                    log.info("signal_call_answered", session_id=s.session_id, device_id=s.device_id)
                    await write
                else:
                    self._spawn(write)
            case machine.Extended(actor=actor, reason=reason, deadline=deadline, at=at):
                await self.store.extend(
                    self._row(s), actor=actor, reason=reason, deadline=deadline, at=at
                )
                log.info(
                    "signal_session_extended",
                    session_id=s.session_id,
                    device_id=s.device_id,
                    reason=reason,
                    extension=s.extensions,
                )
            case machine.Closed(reason=reason, actor=actor, detail=detail, at=at):
                try:
                    async with asyncio.timeout(2.0):
                        await self.store.close(
                            s.session_id, actor=actor, reason=reason.value, at=at, detail=detail
                        )
                except (OSError, TimeoutError, asyncpg.PostgresError):
                    log.exception("signal_session_close_failed", session_id=s.session_id)
                finally:  # the sweep closes the row later if this failed
                    conn.forget(s.session_id, reason)

    def _arm(self, live: LiveSession, at: datetime) -> None:
        live.cancel_timer()
        live.timer = self._spawn(self._timer(live, at))

    async def _timer(self, live: LiveSession, at: datetime) -> None:
        while (wait_s := (at - self.now()).total_seconds()) > 0:
            await self._sleep(wait_s)
        live.timer = None
        await self._feed(live, TimerFired())

    def _row(self, s: machine.Session) -> store.SessionRow:
        return store.SessionRow(
            session_id=s.session_id,
            device_id=s.device_id,
            purpose=s.purpose,
            staff_id=s.staff_id,
            recipient_id=s.recipient_id,
            instance_id=self.instance_id,
            state=s.state.value,
            started_at=s.started_at,
            deadline=s.deadline,
            extensions=s.extensions,
        )

    # ------------------------------------------------------------ clients

    @contextlib.asynccontextmanager
    async def connect(self, principal: Principal) -> AsyncIterator[ClientConnection]:
        """A client connection (the WebSocket handler and in-process clients use this)."""
        if not self._accepting:
            raise ConnectionError("signalling is not accepting connections")
        loop = asyncio.get_running_loop()
        conn = ClientConnection(
            principal, TokenBucket(self.config.rate_per_s, self.config.rate_burst, loop.time())
        )
        self.connections.add(conn)
        log.info("signal_client_connected", conn_id=conn.conn_id, staff_id=principal.staff_id)
        try:
            yield conn
        finally:
            self.connections.discard(conn)
            for live in list(conn.sessions.values()):
                await self._feed(live, machine.ClientGone())
            conn.close(WS_GOING_AWAY, "closed")
            log.info("signal_client_disconnected", conn_id=conn.conn_id)

    async def handle_client(self, conn: ClientConnection, data: str | bytes) -> None:
        """One message from a client: rate limit, decode, act; a bad one gets an ``error``."""
        if conn.is_closed:
            return
        if not conn.bucket.take(asyncio.get_running_loop().time()):
            conn.violations += 1
            if conn.violations == 1:
                conn.send(env.Error(code="rate_limited", message="too many messages; slow down"))
            if conn.violations > self.config.max_violations:
                log.warning(
                    "signal_client_flooding", conn_id=conn.conn_id, staff_id=conn.principal.staff_id
                )
                conn.close(WS_POLICY_VIOLATION, "rate limit exceeded")
            return
        try:
            message = env.decode(data, allowed=env.CLIENT_TYPES)
        except env.EnvelopeError as e:
            self.reject(conn, e.reason, e.detail, e.session_id)
            return
        if isinstance(message, env.Request):
            await self._on_request(conn, message)
            return
        event: machine.Event
        match message:
            case env.Offer():
                event = machine.ClientOffer(message)
            case env.Candidate():
                event = machine.ClientCandidate(message)
            case env.Bye():
                event = machine.ClientBye()
            case env.Video():
                event = machine.ClientVideo(message.frames)
            case env.Drive():
                event = machine.ClientDrive(message.linear, message.angular)
            case _:  # pragma: no cover - decode() admits client types only
                self.reject(conn, "unexpected_type", "not a client message", None)
                return
        live = self._owned(conn, message.session_id)
        if live is not None:
            await self._feed(live, event)

    def reject(
        self, conn: ClientConnection, code: str, message: str, session_id: str | None
    ) -> None:
        self.counters[f"client_rejected_{code}"] += 1
        log.info(
            "signal_message_rejected", conn_id=conn.conn_id, reason=code, session_id=session_id
        )
        conn.send(env.Error(code=code, message=message, session_id=session_id))

    def _owned(self, conn: ClientConnection, session_id: str) -> LiveSession | None:
        live = conn.sessions.get(session_id)
        if live is None:
            if session_id in conn.recently_closed:
                self.reject(conn, "session_closed", "the session has ended", session_id)
            else:
                self.reject(
                    conn, "unknown_session", "no such session on this connection", session_id
                )
        return live

    async def _gate(
        self, device_id: str, purpose: env.Purpose, at: datetime
    ) -> dict[consent_model.Purpose, consent_model.Decision]:
        """The gate's decisions for every purpose the session needs, up to the first deny."""
        found = {}
        for needed in machine.GATE_PURPOSES[purpose]:
            decision = await self.gate.decide(device_id=device_id, purpose=needed, at=at)
            found[needed] = decision
            if not decision.allowed:
                break
        return found

    @staticmethod
    def _verdict(
        decisions: dict[consent_model.Purpose, consent_model.Decision],
    ) -> consent_model.Decision:
        denied = [d for d in decisions.values() if not d.allowed]
        return denied[0] if denied else next(iter(decisions.values()))

    async def _facts(
        self, who: Principal, device_id: str, purpose: env.Purpose, now: datetime
    ) -> machine.RequestFacts:
        """What :func:`machine.decide_request` needs, read only as far as it is needed."""
        facts = machine.RequestFacts(purpose, who.role, False, None, {})
        if not machine.may_request(who.role, purpose):
            return facts
        device = await self.presence.device(device_id)
        if device is None or not device.is_online:
            return facts
        facts = dataclasses.replace(facts, is_online=True, device_kind=device.kind)
        if device.kind is not machine.KIND_FOR[purpose]:
            return facts
        decisions = await self._gate(device_id, purpose, now)
        facts = dataclasses.replace(facts, decisions=decisions)
        first = self._verdict(decisions)
        if not first.allowed:
            return facts
        if purpose is env.Purpose.CALL:
            auto = await self.gate.decide(
                device_id=device_id, purpose=consent_model.Purpose.AUTO_ANSWER, at=now
            )
            return dataclasses.replace(facts, auto_answer=auto.allowed)
        if purpose is env.Purpose.VIEW and first.window_start is not None:
            use = await self.store.window_use(device_id, since=first.window_start, at=now)
            return dataclasses.replace(facts, window_use=use)
        return facts

    async def _on_request(self, conn: ClientConnection, req: env.Request) -> None:
        if req.extend is not None:
            live = self._owned(conn, req.session_id)
            if live is None:
                return
            s = live.value
            decisions = await self._gate(s.device_id, s.purpose, self.now())
            await self._feed(live, machine.ClientExtend(req.extend, self._verdict(decisions)))
            return
        assert req.device_id is not None
        assert req.purpose is not None
        who = conn.principal
        sid, device_id, purpose = req.session_id, req.device_id, req.purpose
        if sid in conn.sessions or sid in conn.recently_closed or sid in self.sessions:
            self.reject(conn, "duplicate_session", "this session id is in use", sid)
            return
        now = self.now()
        facts = await self._facts(who, device_id, purpose, now)
        outcome = machine.decide_request(facts, now, self.config.terms)
        if isinstance(outcome, machine.Deny):
            await self._deny(conn, req, outcome.reason, now, outcome.recipient_id)
            return
        row = store.SessionRow(
            session_id=sid,
            device_id=device_id,
            purpose=purpose,
            staff_id=who.staff_id,
            recipient_id=outcome.recipient_id,
            instance_id=self.instance_id,
            state=outcome.state.value,
            started_at=now,
            deadline=outcome.deadline,
        )
        data: dict[str, Any] = {
            "session_id": sid,
            "device_id": device_id,
            "cap_s": outcome.cap_s,
            "auto_answer": outcome.auto_answer,
            "plan_id": outcome.plan_id,
        }
        if purpose is env.Purpose.VIEW:
            data["budget_s"] = round((outcome.deadline - now).total_seconds(), 3)
            data["window_used_s"] = round(outcome.window_use.used_s, 3)
        try:
            opened = await self.store.open(row, data)
        except store.SessionExists:
            self.reject(conn, "duplicate_session", "this session id was used before", sid)
            return
        if not opened:
            await self._deny(conn, req, "busy", now, outcome.recipient_id)
            return
        session = machine.open_session(
            outcome,
            session_id=sid,
            device_id=device_id,
            purpose=purpose,
            staff_id=who.staff_id,
            now=now,
        )
        live = LiveSession(session, conn)
        self.sessions[sid] = live
        conn.sessions[sid] = live
        self._arm(live, session.deadline)
        log.info(
            "signal_session_granted",
            session_id=sid,
            device_id=device_id,
            purpose=purpose.value,
            staff_id=who.staff_id,
            cap_s=outcome.cap_s,
            budget_s=round((session.deadline - now).total_seconds(), 3),
        )
        if conn.is_closed:  # the client left while we asked the gate
            await self._feed(live, machine.ClientGone())
            return
        conn.send(
            env.Granted(
                sid,
                device_id=device_id,
                purpose=purpose,
                deadline=session.deadline.timestamp(),
                cap_s=outcome.cap_s,
                ice_servers=ice_servers(self.turn, who.staff_id, now),
                ring_timeout_s=outcome.cap_s if purpose is env.Purpose.CALL else None,
            )
        )
        if purpose is env.Purpose.CALL:
            await self._perform(live, machine.Ring(outcome.cap_s, outcome.auto_answer))

    async def _deny(
        self,
        conn: ClientConnection,
        req: env.Request,
        reason: str,
        now: datetime,
        recipient_id: str | None,
    ) -> None:
        assert req.device_id is not None
        assert req.purpose is not None
        log.info(
            "signal_session_denied",
            session_id=req.session_id,
            device_id=req.device_id,
            purpose=req.purpose.value,
            staff_id=conn.principal.staff_id,
            reason=reason,
        )
        try:
            await self.store.denied(
                actor=conn.principal.staff_id,
                purpose=req.purpose,
                subject=recipient_id or req.device_id,
                data={"session_id": req.session_id, "device_id": req.device_id, "reason": reason},
                at=now,
            )
        except (ValueError, OSError, asyncpg.PostgresError):
            log.exception("signal_denial_audit_failed", session_id=req.session_id)
        conn.send(env.Denied(req.session_id, reason=reason))

    async def _drive(self, live: LiveSession, drive: machine.Drive) -> None:
        s = live.value
        try:
            ack = await self.commands.send(
                s.device_id,
                topics.CommandOp.DRIVE,
                {"session_id": s.session_id, "linear": drive.linear, "angular": drive.angular},
                self.config.command_timeout_s,
            )
        except (TimeoutError, LookupError, ConnectionError) as e:
            self.reject(live.conn, "drive_failed", type(e).__name__, s.session_id)
            return
        if ack.ok:
            live.conn.send(env.Ack(s.session_id, of=env.MessageType.DRIVE))
        else:
            self.reject(live.conn, "drive_refused", "the device refused", s.session_id)

    async def _caller_name(self, staff_id: str) -> str | None:
        """The staff member's display name for the phone's screen (never logged); ``None`` (the
        phone then names the team, "Hemtjänsten") without one or if the lookup fails."""
        name = await self.store.staff_name(staff_id)
        if name is None or not name.strip():
            return None
        return name[: topics.MAX_CALLER_CHARS]

    async def _ring(self, live: LiveSession, timeout_s: float, auto_answer: bool) -> None:
        s = live.value
        ring = topics.Ring(
            session_id=s.session_id,
            auto_answer=auto_answer,
            timeout_s=timeout_s,
            caller=await self._caller_name(s.staff_id),
        )
        if not live.is_open:  # hung up while the name was looked up: no late ring
            return
        try:
            ack = await self.commands.send(
                s.device_id, topics.CommandOp.RING, ring.args(), self.config.command_timeout_s
            )
            ok = ack.ok
        except (TimeoutError, LookupError, ConnectionError):
            ok = False
        if not ok:
            await self._feed(live, machine.RingFailed())

    async def _stop_device(self, device_id: str, op: topics.CommandOp, session_id: str) -> None:
        try:
            await self.commands.send(
                device_id, op, {"session_id": session_id}, self.config.command_timeout_s
            )
        except (TimeoutError, LookupError, ConnectionError) as e:
            log.warning(
                "signal_stop_unacked", device_id=device_id, op=op.value, error=type(e).__name__
            )

    async def _tell_device(self, device_id: str, message: env.Envelope) -> None:
        await self.router.tell_device(device_id, message)

    # ------------------------------------------------------------ devices

    def _local_device(self, session_id: str) -> str | None:
        live = self.sessions.get(session_id)
        return None if live is None else live.device_id

    async def _on_device_signal(self, device_id: str, payload: bytes) -> None:
        await self.router.on_device_signal(device_id, payload)

    async def _on_routed(self, payload: bytes) -> None:
        await self.router.on_routed(payload)

    async def _from_device(self, device_id: str, message: DeviceMessage) -> None:
        """A checked device message for a session this process owns."""
        live = self.sessions.get(message.session_id)
        if live is None or live.device_id != device_id:
            return  # ended meanwhile (or checked already by the router)
        match message:
            case env.Answer():
                await self._feed(live, machine.DeviceAnswer(message))
            case env.Candidate():
                await self._feed(live, machine.DeviceCandidate(message))
            case env.Bye():
                await self._feed(live, machine.DeviceBye(message.reason))

    async def _on_device_event(self, device_id: str, payload: bytes) -> None:
        event = topics.decode_event(payload, device_id)
        if event.session_id is None:
            return
        live = self.sessions.get(event.session_id)
        if live is None or live.device_id != device_id:
            return
        if event.type is topics.EventType.CALL_ANSWER:
            await self._feed(live, machine.CallAnswered())
        elif event.type is topics.EventType.CALL_DECLINE:
            await self._feed(live, machine.CallDeclined())

    async def _on_device_status(self, device_id: str, payload: bytes) -> None:
        status = topics.decode_status(payload, device_id)
        known = self._device_sessions.get(device_id, 0)
        if status.session < known:
            return  # a late will of an older connection
        self._device_sessions[device_id] = status.session
        if status.state is topics.Presence.ONLINE:
            return
        for live in [x for x in self.sessions.values() if x.device_id == device_id]:
            await self._feed(live, machine.DeviceLost(status.state.value))

    # ------------------------------------------------------------ the gate

    async def _recheck(self, live: LiveSession) -> None:
        s = live.value
        decision = self._verdict(await self._gate(s.device_id, s.purpose, self.now()))
        if not decision.allowed and live.is_open:
            reason = decision.reason.value if decision.reason else None
            log.info(
                "signal_session_withdrawn",
                session_id=s.session_id,
                device_id=s.device_id,
                reason=reason,
            )
            await self._feed(live, machine.GateDenied(reason))

    async def _watch_gate(self) -> None:
        while True:
            changes = self.gate.changes()
            try:
                async for change in changes:
                    devices = set(change.device_ids)
                    for live in list(self.sessions.values()):
                        if (
                            change.recipient_id is None
                            or live.device_id in devices
                            or live.recipient_id == change.recipient_id
                        ):
                            self._spawn(self._recheck(live))
            except Exception:
                log.exception("signal_gate_watch_failed")
            finally:  # unsubscribe (the gate's subscription, or an async generator)
                close = getattr(changes, "close", None) or getattr(changes, "aclose", None)
                if close is not None:
                    result = close()
                    if asyncio.iscoroutine(result):
                        await result
            await asyncio.sleep(1.0)

    async def _recheck_loop(self) -> None:
        while True:
            # loop time: a clock that steps (``ScaledClock(speed=0)``) would spin this loop
            await asyncio.sleep(self.config.recheck_interval_s)
            for live in list(self.sessions.values()):
                self._spawn(self._recheck(live))

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.sweep_interval_s)
            try:
                now = self.now()
                for row in await self.store.sweep_overdue(
                    at=now, grace_s=self.config.sweep_grace_s
                ):
                    log.warning(
                        "signal_session_swept",
                        session_id=row.session_id,
                        device_id=row.device_id,
                        owner=row.instance_id,
                    )
                    await self._tell_device(
                        row.device_id, env.Bye(row.session_id, env.ByeReason.TIMEOUT)
                    )
                await self.store.prune(before=now - timedelta(days=1))
            except (OSError, asyncpg.PostgresError):
                log.exception("signal_sweep_failed")
