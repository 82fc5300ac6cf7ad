"""Signalling: live views, calls and probe sessions between clients and devices.

Clients (operator browsers over ``GET /ws/signal``, ``homecare view``, the in-process probe via
:meth:`Signalling.connect`) and devices (``{prefix}/dev/{id}/webrtc/in|out``) exchange the
envelopes of :mod:`devices.envelope`; media goes peer to peer (or via TURN), never through here.

A session: ``request`` -> role, presence and the consent gate -> a ``signal_sessions`` row (one
open per device) plus an audit entry -> ``granted`` (ICE servers, deadline) -> the client's
``offer`` and trickled candidates go to the device -> its ``answer`` (aiortc sends every candidate
inside it) comes back -> ``bye`` with a reason. The process holding the client's connection owns
the session's timers; a device message reaches one process of the group (a shared subscription),
which checks it against the row and routes it to the owner over ``{prefix}/server/signal/{id}``.

Rules enforced here: the view cap (``bye timeout`` to both sides and ``sleep`` to the camera),
extensions only with a reason (audited), ``bye withdrawn`` as soon as the gate turns to deny,
calls that ring (``cmd ring``) and end ``no_answer``, ``drive`` only during an accepted call while
the caller's video is fresh, a token bucket per connection (then disconnect), and an ``error``
envelope for every bad message with nothing else changed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Coroutine
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import asyncpg
import structlog

from consent import model as consent_model
from devices import envelope as env
from devices import topics
from identity import store as staff_store
from kernel.audit import store as audit_store
from kernel.roles import Principal
from services.signalling import store
from services.signalling.bus import BusHandlers, SignalBus
from services.signalling.http import SIGNALLING, on_shutdown, routes
from services.signalling.ports import (
    GATE_PURPOSE,
    ROLES_FOR,
    Clock,
    CommandsPort,
    GatePort,
    PresencePort,
    RegistryPresence,
    SignallingConfig,
    system_clock,
)
from services.signalling.router import DeviceMessage, DeviceRouter
from services.signalling.session import (
    ClientConnection,
    LiveSession,
    State,
    TokenBucket,
)
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


class Signalling:
    """The signalling service of one process; an async context manager.

    Create it in the composition root, set ``app[SIGNALLING]`` and add :func:`routes`.
    """

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        mqtt_url: str,
        prefix: str,
        instance_id: str,
        gate: GatePort,
        commands: CommandsPort,
        presence: PresencePort | None = None,
        audit: store.AuditAppend = audit_store.append,
        turn: TurnConfig | None = None,
        config: SignallingConfig | None = None,
        keepalive_s: int = 5,
        handle_devices: bool = True,
        clock: Clock = system_clock,
    ) -> None:
        self.pool = pool
        self.prefix = prefix
        self.instance_id = instance_id
        self.gate = gate
        self.commands = commands
        self.presence: PresencePort = presence or RegistryPresence(pool)
        self.audit = audit
        self.turn = turn or TurnConfig()
        self.config = config or SignallingConfig()
        self.clock = clock
        self.bus = SignalBus(
            mqtt_url,
            prefix=prefix,
            instance_id=instance_id,
            keepalive_s=keepalive_s,
            handle_devices=handle_devices,
            handlers=BusHandlers(
                self._on_device_signal,
                self._on_device_event,
                self._on_device_status,
                self._on_routed,
            ),
        )
        self.sessions: dict[str, LiveSession] = {}
        self.counters: Counter[str] = Counter()  # routed_out/in, client_rejected_<code>, ...
        self.router = DeviceRouter(
            pool=pool,
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

    # ------------------------------------------------------------ life

    async def __aenter__(self) -> Signalling:
        closed = await store.sweep_overdue(
            self.pool, self.audit, at=self.clock(), grace_s=0, instance_id=self.instance_id
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
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.bus.__aexit__(et, e, tb)

    async def close_clients(self) -> None:
        """End every live session and close every client (``app.on_shutdown``): GOING_AWAY."""
        self._accepting = False
        for session in list(self.sessions.values()):
            await self._close(session, env.ByeReason.TIMEOUT, detail="shutdown")
        for conn in list(self.connections):
            conn.close(WS_GOING_AWAY, "server shutting down")

    async def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Until the broker connection is up (tests and the demo)."""
        await asyncio.wait_for(self.bus.connected.wait(), timeout_s)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("signal_task_failed", error=repr(task.exception()))

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
            for session in list(conn.sessions.values()):
                await self._close(session, env.ByeReason.OPERATOR, detail="disconnected")
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
        match message:
            case env.Request():
                await self._on_request(conn, message)
            case env.Offer() | env.Candidate():
                await self._on_client_media(conn, message)
            case env.Bye():
                session = self._owned(conn, message.session_id)
                if session is not None:
                    await self._close(session, env.ByeReason.OPERATOR)
            case env.Video():
                session = self._owned(conn, message.session_id)
                if session is not None and message.frames > session.last_frames:
                    session.last_frames = message.frames
                    session.last_frame_mono = asyncio.get_running_loop().time()
            case env.Drive():
                await self._on_drive(conn, message)
            case _:  # pragma: no cover - decode() admits client types only
                self.reject(conn, "unexpected_type", "not a client message", None)

    def reject(
        self, conn: ClientConnection, code: str, message: str, session_id: str | None
    ) -> None:
        self.counters[f"client_rejected_{code}"] += 1
        log.info(
            "signal_message_rejected", conn_id=conn.conn_id, reason=code, session_id=session_id
        )
        conn.send(env.Error(code=code, message=message, session_id=session_id))

    def _owned(self, conn: ClientConnection, session_id: str) -> LiveSession | None:
        session = conn.sessions.get(session_id)
        if session is None:
            if session_id in conn.recently_closed:
                self.reject(conn, "session_closed", "the session has ended", session_id)
            else:
                self.reject(
                    conn, "unknown_session", "no such session on this connection", session_id
                )
        return session

    async def _on_request(self, conn: ClientConnection, req: env.Request) -> None:
        if req.extend is not None:
            session = self._owned(conn, req.session_id)
            if session is not None:
                await self._extend(session, req.extend)
            return
        assert req.device_id is not None
        assert req.purpose is not None
        who = conn.principal
        sid, device_id, purpose = req.session_id, req.device_id, req.purpose
        if sid in conn.sessions or sid in conn.recently_closed or sid in self.sessions:
            self.reject(conn, "duplicate_session", "this session id is in use", sid)
            return
        now = self.clock()
        if who.role not in ROLES_FOR[purpose]:
            await self._deny(conn, req, "forbidden", now, None)
            return
        if not await self.presence.is_online(device_id):
            await self._deny(conn, req, "device_offline", now, None)
            return
        decision = await self.gate.decide(
            device_id=device_id, purpose=GATE_PURPOSE[purpose], at=now
        )
        if not decision.allowed:
            reason = decision.reason.value if decision.reason else "no_legal_basis"
            await self._deny(conn, req, reason, now, decision.recipient_id)
            return
        auto_answer = False
        if purpose is env.Purpose.CALL:
            cap_s = self.config.ring_timeout_s
            auto = await self.gate.decide(
                device_id=device_id, purpose=consent_model.Purpose.AUTO_ANSWER, at=now
            )
            auto_answer = auto.allowed
        else:
            cap_s = float(decision.view_cap_s or self.config.default_cap_s)
        deadline = now + timedelta(seconds=cap_s)
        state = State.RINGING if purpose is env.Purpose.CALL else State.GRANTED
        row = store.SessionRow(
            session_id=sid,
            device_id=device_id,
            purpose=purpose,
            staff_id=who.staff_id,
            recipient_id=decision.recipient_id,
            instance_id=self.instance_id,
            state=state.value,
            started_at=now,
            deadline=deadline,
        )
        data = {
            "session_id": sid,
            "device_id": device_id,
            "cap_s": cap_s,
            "auto_answer": auto_answer,
            "plan_id": decision.plan_id,
        }
        try:
            opened = await store.open_session(self.pool, self.audit, row, data)
        except store.SessionExists:
            self.reject(conn, "duplicate_session", "this session id was used before", sid)
            return
        if not opened:
            await self._deny(conn, req, "busy", now, decision.recipient_id)
            return
        session = LiveSession(
            session_id=sid,
            device_id=device_id,
            purpose=purpose,
            staff_id=who.staff_id,
            recipient_id=decision.recipient_id,
            conn=conn,
            state=state,
            started_at=now,
            deadline=deadline,
            cap_s=cap_s,
        )
        self.sessions[sid] = session
        conn.sessions[sid] = session
        self._arm(session)
        log.info(
            "signal_session_granted",
            session_id=sid,
            device_id=device_id,
            purpose=purpose.value,
            staff_id=who.staff_id,
            cap_s=cap_s,
        )
        if conn.is_closed:  # the client left while we asked the gate
            await self._close(session, env.ByeReason.OPERATOR, detail="disconnected")
            return
        conn.send(
            env.Granted(
                sid,
                device_id=device_id,
                purpose=purpose,
                deadline=deadline.timestamp(),
                cap_s=cap_s,
                ice_servers=ice_servers(self.turn, who.staff_id, now),
                ring_timeout_s=cap_s if purpose is env.Purpose.CALL else None,
            )
        )
        if purpose is env.Purpose.CALL:
            self._spawn(self._ring(session, auto_answer))

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
        with contextlib.suppress(ValueError):
            await store.audit_denied(
                self.pool,
                self.audit,
                actor=conn.principal.staff_id,
                purpose=req.purpose,
                subject=recipient_id or req.device_id,
                data={"session_id": req.session_id, "device_id": req.device_id, "reason": reason},
                at=now,
            )
        conn.send(env.Denied(req.session_id, reason=reason))

    def _arm(self, session: LiveSession) -> None:
        session.cancel_timer()
        loop = asyncio.get_running_loop()
        delay = max(0.0, (session.deadline - self.clock()).total_seconds())
        reason = (
            env.ByeReason.NO_ANSWER if session.state is State.RINGING else env.ByeReason.TIMEOUT
        )
        session.timer = loop.call_later(delay, lambda: self._spawn(self._close(session, reason)))

    async def _extend(self, session: LiveSession, reason: env.ExtendReason) -> None:
        conn = session.conn
        if session.purpose is env.Purpose.CALL:
            self.reject(conn, "not_extendable", "calls have no view cap", session.session_id)
            return
        if session.extensions >= self.config.max_extensions:
            self.reject(
                conn, "extension_limit", "no more extensions for this view", session.session_id
            )
            return
        now = self.clock()
        decision = await self.gate.decide(
            device_id=session.device_id, purpose=GATE_PURPOSE[session.purpose], at=now
        )
        if not decision.allowed:
            await self._close(session, env.ByeReason.WITHDRAWN)
            return
        deadline = max(session.deadline, now) + timedelta(seconds=session.cap_s)
        row = store.SessionRow(
            session_id=session.session_id,
            device_id=session.device_id,
            purpose=session.purpose,
            staff_id=session.staff_id,
            recipient_id=session.recipient_id,
            instance_id=self.instance_id,
            state=session.state.value,
            started_at=session.started_at,
            deadline=session.deadline,
        )
        count = await store.extend(
            self.pool,
            self.audit,
            row,
            actor=conn.principal.staff_id,
            reason=reason.value,
            deadline=deadline,
            at=now,
        )
        if count is None or not session.is_open:
            return
        session.extensions = count
        session.deadline = deadline
        self._arm(session)
        log.info(
            "signal_session_extended",
            session_id=session.session_id,
            device_id=session.device_id,
            reason=reason.value,
            extension=count,
        )
        conn.send(
            env.Granted(
                session.session_id,
                device_id=session.device_id,
                purpose=session.purpose,
                deadline=deadline.timestamp(),
                cap_s=session.cap_s,
                ice_servers=ice_servers(self.turn, session.staff_id, now),
            )
        )

    async def _on_client_media(
        self, conn: ClientConnection, message: env.Offer | env.Candidate
    ) -> None:
        session = self._owned(conn, message.session_id)
        if session is None:
            return
        has_offer = session.offer_sent or any(isinstance(m, env.Offer) for m in session.held)
        if isinstance(message, env.Offer):
            if has_offer:
                self.reject(
                    conn, "duplicate_offer", "this session has an offer already", session.session_id
                )
                return
            message = env.Offer(
                message.session_id,
                sdp=message.sdp,
                ice_servers=ice_servers(self.turn, session.device_id, self.clock()),
            )
        elif not has_offer:
            self.reject(conn, "no_offer", "send the offer before candidates", session.session_id)
            return
        if session.state is State.RINGING:  # held until the brukare answers
            if len(session.held) >= 64:
                self.reject(
                    conn, "too_many_candidates", "candidate limit reached", session.session_id
                )
                return
            session.held.append(message)
            return
        if isinstance(message, env.Offer):
            session.offer_sent = True
        await self._tell_device(session.device_id, message)

    async def _on_drive(self, conn: ClientConnection, message: env.Drive) -> None:
        session = self._owned(conn, message.session_id)
        if session is None:
            return
        if session.purpose is not env.Purpose.CALL or session.state is not State.CONNECTED:
            self.reject(
                conn, "not_in_call", "drive only during an accepted call", session.session_id
            )
            return
        now = asyncio.get_running_loop().time()
        if (
            session.last_frame_mono is None
            or now - session.last_frame_mono > self.config.stale_video_s
        ):
            self.reject(
                conn,
                "video_stale",
                "no fresh video from the phone; not driving",
                session.session_id,
            )
            return
        self._spawn(self._drive(session, message))

    async def _drive(self, session: LiveSession, message: env.Drive) -> None:
        try:
            ack = await self.commands.send(
                session.device_id,
                topics.CommandOp.DRIVE,
                {
                    "session_id": session.session_id,
                    "linear": message.linear,
                    "angular": message.angular,
                },
                self.config.command_timeout_s,
            )
        except (TimeoutError, LookupError, ConnectionError) as e:
            self.reject(session.conn, "drive_failed", type(e).__name__, session.session_id)
            return
        if ack.ok:
            session.conn.send(env.Ack(session.session_id, of=env.MessageType.DRIVE))
        else:
            self.reject(session.conn, "drive_refused", "the device refused", session.session_id)

    async def _caller_name(self, staff_id: str) -> str | None:
        """The staff member's display name for the phone's screen (never logged); ``None`` (the
        phone then names the team, "Hemtjänsten") without one or if the lookup fails."""
        try:
            async with self.pool.acquire() as conn:
                name = (await staff_store.get_staff(conn, staff_id)).display_name
        except (LookupError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return None
        if name is None or not name.strip():
            return None
        return name[: topics.MAX_CALLER_CHARS]

    async def _ring(self, session: LiveSession, auto_answer: bool) -> None:
        ring = topics.Ring(
            session_id=session.session_id,
            auto_answer=auto_answer,
            timeout_s=session.cap_s,
            caller=await self._caller_name(session.staff_id),
        )
        try:
            ack = await self.commands.send(
                session.device_id,
                topics.CommandOp.RING,
                ring.args(),
                self.config.command_timeout_s,
            )
            ok = ack.ok
        except (TimeoutError, LookupError, ConnectionError):
            ok = False
        if not ok and session.is_open:
            await self._close(session, env.ByeReason.DEVICE_LOST, detail="ring_failed")

    async def _call_answered(self, session: LiveSession) -> None:
        if session.state is not State.RINGING:
            return
        now = self.clock()
        session.state = State.CONNECTED
        session.deadline = now + timedelta(seconds=self.config.max_call_s)
        self._arm(session)
        held, session.held = session.held, []
        log.info("signal_call_answered", session_id=session.session_id, device_id=session.device_id)
        for message in held:
            if isinstance(message, env.Offer):
                session.offer_sent = True
            await self._tell_device(session.device_id, message)
        await store.mark_connected(
            self.pool, self.audit, self._row(session), at=now, deadline=session.deadline
        )

    def _row(self, s: LiveSession) -> store.SessionRow:
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

    # ------------------------------------------------------------ ending

    async def _close(
        self,
        session: LiveSession,
        reason: env.ByeReason,
        *,
        tell_device: bool = True,
        detail: str | None = None,
    ) -> None:
        """End a session once: ``bye`` to the device (media stops at the source), the row and
        its audit entry, then ``bye`` to the client, so a new request right after it succeeds."""
        if not session.is_open:
            return
        session.state = State.CLOSED
        session.cancel_timer()
        self.sessions.pop(session.session_id, None)
        if tell_device:
            await self._tell_device(session.device_id, env.Bye(session.session_id, reason))
        stop = self._stop_op(session.purpose, reason)
        if stop is not None:
            self._spawn(self._stop_device(session.device_id, stop, session.session_id))
        now = self.clock()
        log.info(
            "signal_session_ended",
            session_id=session.session_id,
            device_id=session.device_id,
            purpose=session.purpose.value,
            reason=reason.value,
            duration_s=round((now - session.started_at).total_seconds(), 3),
        )
        actor = (
            session.staff_id
            if reason is env.ByeReason.OPERATOR
            else f"device:{session.device_id}"
            if reason in {env.ByeReason.DECLINED, env.ByeReason.DEVICE_LOST}
            else "system"
        )
        try:
            async with asyncio.timeout(2.0):
                await store.close(
                    self.pool,
                    self.audit,
                    session.session_id,
                    actor=actor,
                    reason=reason.value,
                    at=now,
                    detail=detail,
                )
        except (OSError, TimeoutError, asyncpg.PostgresError):
            log.exception("signal_session_close_failed", session_id=session.session_id)
        finally:  # the sweep closes the row later if this failed
            session.conn.forget(session.session_id, reason)
            session.conn.send(env.Bye(session.session_id, reason))

    @staticmethod
    def _stop_op(purpose: env.Purpose, reason: env.ByeReason) -> topics.CommandOp | None:
        if reason is env.ByeReason.DEVICE_LOST:
            return None
        if purpose is env.Purpose.CALL:
            return None if reason is env.ByeReason.DECLINED else topics.CommandOp.HANGUP
        return topics.CommandOp.SLEEP

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
        session = self.sessions.get(session_id)
        return None if session is None else session.device_id

    async def _on_device_signal(self, device_id: str, payload: bytes) -> None:
        await self.router.on_device_signal(device_id, payload)

    async def _on_routed(self, payload: bytes) -> None:
        await self.router.on_routed(payload)

    async def _from_device(self, device_id: str, message: DeviceMessage) -> None:
        """A checked device message for a session this process owns."""
        session = self.sessions.get(message.session_id)
        if session is None or session.device_id != device_id:
            return  # ended meanwhile (or checked already by the router)
        match message:
            case env.Answer():
                if session.answered:
                    return  # QoS 1 may deliver twice: first answer wins
                session.answered = True
                session.conn.send(message)
                for candidate in session.device_candidates:
                    session.conn.send(candidate)
                session.device_candidates.clear()
                if session.state is State.GRANTED:
                    session.state = State.CONNECTED
                    self._spawn(
                        store.mark_connected(self.pool, None, self._row(session), at=self.clock())
                    )
            case env.Candidate():
                if session.answered:
                    session.conn.send(message)
                elif len(session.device_candidates) < 64:
                    session.device_candidates.append(message)
            case env.Bye():
                reason = (
                    message.reason
                    if message.reason
                    in {env.ByeReason.DECLINED, env.ByeReason.DEVICE_LOST, env.ByeReason.NO_ANSWER}
                    else env.ByeReason.DEVICE_LOST
                )
                await self._close(session, reason, tell_device=False)

    async def _on_device_event(self, device_id: str, payload: bytes) -> None:
        event = topics.decode_event(payload, device_id)
        if event.session_id is None:
            return
        session = self.sessions.get(event.session_id)
        if (
            session is None
            or session.device_id != device_id
            or session.purpose is not env.Purpose.CALL
        ):
            return
        if event.type is topics.EventType.CALL_ANSWER:
            await self._call_answered(session)
        elif event.type is topics.EventType.CALL_DECLINE:
            await self._close(session, env.ByeReason.DECLINED)

    async def _on_device_status(self, device_id: str, payload: bytes) -> None:
        status = topics.decode_status(payload, device_id)
        known = self._device_sessions.get(device_id, 0)
        if status.session < known:
            return  # a late will of an older connection
        self._device_sessions[device_id] = status.session
        if status.state is topics.Presence.ONLINE:
            return
        for session in [s for s in self.sessions.values() if s.device_id == device_id]:
            await self._close(
                session, env.ByeReason.DEVICE_LOST, tell_device=False, detail=status.state.value
            )

    # ------------------------------------------------------------ the gate

    async def _recheck(self, session: LiveSession) -> None:
        decision = await self.gate.decide(
            device_id=session.device_id, purpose=GATE_PURPOSE[session.purpose], at=self.clock()
        )
        if not decision.allowed and session.is_open:
            log.info(
                "signal_session_withdrawn",
                session_id=session.session_id,
                device_id=session.device_id,
                reason=decision.reason.value if decision.reason else None,
            )
            await self._close(
                session,
                env.ByeReason.WITHDRAWN,
                detail=decision.reason.value if decision.reason else None,
            )

    async def _watch_gate(self) -> None:
        while True:
            changes = self.gate.changes()
            try:
                async for change in changes:
                    devices = set(change.device_ids)
                    for session in list(self.sessions.values()):
                        if (
                            change.recipient_id is None
                            or session.device_id in devices
                            or session.recipient_id == change.recipient_id
                        ):
                            self._spawn(self._recheck(session))
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
            await asyncio.sleep(self.config.recheck_interval_s)
            for session in list(self.sessions.values()):
                self._spawn(self._recheck(session))

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.sweep_interval_s)
            try:
                now = self.clock()
                for row in await store.sweep_overdue(
                    self.pool, self.audit, at=now, grace_s=self.config.sweep_grace_s
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
                await store.prune(self.pool, before=now - timedelta(days=1))
            except (OSError, asyncpg.PostgresError):
                log.exception("signal_sweep_failed")
