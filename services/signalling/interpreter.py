"""The interpreter of the signalling machine: feed an event, perform the effects it returns.

:func:`services.signalling.machine.apply` decides; :class:`Interpreter` does: it sends to the
client's connection, publishes to the device (adding TURN credentials to a ``granted`` and to an
offer), sends device commands (``ring``, ``drive``, ``indicator``, ``sleep``/``hangup``) in
their own tasks (``indicator on``'s ack, or its absence within ``indicator_ack_s``, is fed back
as :class:`~services.signalling.events.IndicatorAcked` or ``IndicatorNotAcked``),
arms the session's timer, and writes the row and its audit entries. It is the base of
:class:`services.signalling.service.Signalling`; the client side
(:mod:`services.signalling.clients`) and the device side (:mod:`services.signalling.device_side`)
turn what happens into events and hand them to :meth:`Interpreter._feed`.

Timers run on the injected clock: a timer sleeps until ``deadline - now`` on that clock (with the
clock's own ``sleep`` when it has one, so a sped-up clock keeps caps right) and the machine checks
the deadline again when it fires.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
import structlog

from consent import model as consent_model
from devices import envelope as env
from devices import topics
from kernel.retry import Backoff, retry
from services.signalling import decide, machine
from services.signalling.machine import TimerFired
from services.signalling.ports import (
    BusPort,
    ChecksPort,
    CommandsPort,
    GatePort,
    PresencePort,
    SessionStore,
    SignallingConfig,
)
from services.signalling.router import DeviceRouter
from services.signalling.session import ClientConnection, LiveSession
from services.signalling.store import SessionRow
from services.signalling.turn import TurnConfig, ice_servers

log = structlog.get_logger(__name__)

LIVE = {
    env.Purpose.VIEW: topics.LivePurpose.VIEW,
    env.Purpose.PROBE: topics.LivePurpose.PROBE,
    env.Purpose.CALL: topics.LivePurpose.CALL,
}
"""What the device's indicator says is live, per kind of session."""

CLOSE_RETRY = Backoff(first_s=0.25, factor=2.0, max_s=30.0)
"""A row close the database refused: tried again 0.25 s, 0.5 s ... at most 30 s apart, until
it is done (never given up: the row must close)."""


class Interpreter:
    """Performs the machine's effects for the live sessions of one process.

    The attributes are set by :class:`services.signalling.service.Signalling`.
    """

    instance_id: str
    gate: GatePort
    commands: CommandsPort
    presence: PresencePort
    checks: ChecksPort  # the night round's side of a view (the check it names, duty)
    store: SessionStore
    turn: TurnConfig
    config: SignallingConfig
    bus: BusPort
    router: DeviceRouter
    sessions: dict[str, LiveSession]  # the open sessions this process owns
    counters: Counter[str]  # routed_out/in, client_rejected_<code>, device_error_dropped, ...
    connections: set[ClientConnection]
    _now: Callable[[], datetime]
    _sleep: Callable[[float], Awaitable[None]]
    _tasks: set[asyncio.Task[Any]]
    _closing: dict[str, asyncio.Task[Any]]  # device id -> the unfinished close of its last row

    def now(self) -> datetime:
        return self._now()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        """A per-session task ended: a failure is logged with its traceback and counted
        (``task_failed`` on ``/metrics``), never lost; the session's other tasks go on."""
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            self.counters["task_failed"] += 1
            log.error("signal_task_failed", error=type(error).__name__, exc_info=error)

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
        if not any(isinstance(effect, machine.ToDevice) for effect in effects):
            for effect in effects:
                await self._perform(live, effect)
            return
        # The device gets the session's messages in the machine's order: the offer and
        # candidates held until the indicator was acked go one publish at a time, and a
        # candidate (or its end) the client sends meanwhile must wait for them, or the device
        # drops what comes after the end (no frame flows).
        async with live.to_device:
            for effect in effects:
                await self._perform(live, effect)

    async def _perform(self, live: LiveSession, effect: machine.Effect) -> None:
        s, conn = live.value, live.conn
        match effect:
            case machine.ToClient(message=env.Granted() as granted):
                servers = ice_servers(self.turn, s.staff_id, self.now())
                conn.send(msgspec.structs.replace(granted, ice_servers=servers))
            case machine.ToClient(message=message):
                conn.send(message)
            case machine.ToDevice(message=env.Offer() as offer):
                servers = ice_servers(self.turn, s.device_id, self.now())
                await self._tell_device(
                    s.device_id, msgspec.structs.replace(offer, ice_servers=servers)
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
            case machine.Dock():
                self._spawn(self._dock(live))
            case machine.Indicate(on=on, remaining_s=remaining):
                self._spawn(self._indicate(live, on, remaining))
            case machine.CheckTrouble(reason=reason) if (
                live.check_id is not None and s.purpose is not env.Purpose.PROBE
            ):
                self._spawn(self._check_trouble(live.check_id, reason, s.device_id))
            case machine.CheckTrouble():
                pass  # a probe (its round worker decides) or an extra look: no check to move
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
                # The row must close even when the database is slow (a loaded machine) or out:
                # the close runs on in its own task after the client's bye; a request for the
                # device waits for it (:meth:`_close_settled`) instead of finding it ``busy``.
                closing = self._spawn(self._close_row(s, reason.value, actor, detail, at))
                self._closing[s.device_id] = closing
                try:
                    await asyncio.wait({closing}, timeout=self.config.close_wait_s)
                finally:
                    conn.forget(s.session_id, reason)

    async def _close_row(
        self, s: machine.Session, reason: str, actor: str, detail: str | None, at: datetime
    ) -> None:
        """Close the session's row and audit its end, retrying until that is done (or the row
        was closed already, e.g. by the sweep); then forget the pending close."""

        def failed(_error: BaseException, _failures: int, wait_s: float) -> None:
            # called inside retry()'s ``except``: the traceback is the error's
            log.exception("signal_session_close_failed", session_id=s.session_id, retry_s=wait_s)

        try:
            await retry(
                lambda: self.store.close(
                    s.session_id,
                    actor=actor,
                    reason=reason,
                    at=at,
                    detail=detail,
                    frames_decoded=s.last_frames,
                ),
                CLOSE_RETRY,
                retry_on=(OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError),
                on_retry=failed,
            )
        finally:
            if self._closing.get(s.device_id) is asyncio.current_task():
                del self._closing[s.device_id]

    async def _close_settled(self, device_id: str) -> None:
        """Wait (at most ``pending_close_wait_s``) until this process's close of the device's
        last session is done, so a request right after a ``bye`` does not find its row open
        (``busy``, and its time still counting against the view budget)."""
        closing = self._closing.get(device_id)
        if closing is not None:
            await asyncio.wait({closing}, timeout=self.config.pending_close_wait_s)

    def _arm(self, live: LiveSession, at: datetime) -> None:
        live.cancel_timer()
        live.timer = self._spawn(self._timer(live, at))

    async def _timer(self, live: LiveSession, at: datetime) -> None:
        while (wait_s := (at - self.now()).total_seconds()) > 0:
            await self._sleep(wait_s)
        live.timer = None
        await self._feed(live, TimerFired())

    def _row(self, s: machine.Session) -> SessionRow:
        return SessionRow(
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

    def reject(
        self, conn: ClientConnection, code: str, message: str, session_id: str | None
    ) -> None:
        """An ``error`` to the client for a message it should not have sent (counted)."""
        self.counters[f"client_rejected_{code}"] += 1
        log.info(
            "signal_message_rejected", conn_id=conn.conn_id, reason=code, session_id=session_id
        )
        conn.send(env.Error(code=code, message=message, session_id=session_id))

    # ------------------------------------------------------------ the gate

    async def _gate(
        self, device_id: str, purpose: env.Purpose, at: datetime
    ) -> dict[consent_model.Purpose, consent_model.Decision]:
        """The gate's decisions for every purpose the session needs, up to the first deny."""
        found = {}
        for needed in decide.GATE_PURPOSES[purpose]:
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

    # ------------------------------------------------------------ device commands

    async def _drive(self, live: LiveSession, drive: machine.Drive) -> None:
        s = live.value
        order = topics.Drive(
            session_id=s.session_id,
            linear=drive.linear,
            angular=drive.angular,
            valid_ms=drive.valid_ms,
        )
        await self._order(live, topics.CommandOp.DRIVE, order.args(), env.MessageType.DRIVE)

    async def _dock(self, live: LiveSession) -> None:
        s = live.value
        log.info("signal_dock_requested", session_id=s.session_id, device_id=s.device_id)
        args = topics.Dock(session_id=s.session_id).args()
        await self._order(live, topics.CommandOp.DOCK, args, env.MessageType.DOCK)

    async def _order(
        self,
        live: LiveSession,
        op: topics.CommandOp,
        args: dict[str, Any],
        of: env.MessageType,
    ) -> None:
        """Send a call's ``drive`` or ``dock`` to the phone; the caller gets ``ack`` or an
        ``error`` (``{op}_failed``: no ack in time; ``{op}_refused``: the phone said no)."""
        s = live.value
        try:
            ack = await self.commands.send(s.device_id, op, args, self.config.command_timeout_s)
        except (TimeoutError, LookupError, ConnectionError) as e:
            self.reject(live.conn, f"{op.value}_failed", type(e).__name__, s.session_id)
            return
        if ack.ok:
            live.conn.send(env.Ack(s.session_id, of=of))
        else:
            self.reject(live.conn, f"{op.value}_refused", "the device refused", s.session_id)

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
            announce_s=s.announce_s if auto_answer else None,  # chime and name before video
            # the brukare's language from the care record: the screen's texts, the spoken name
            lang=topics.ScreenLanguage.of(
                await self.store.device_language(s.device_id, at=self.now())
            ),
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

    async def _indicate(self, live: LiveSession, on: bool, remaining_s: float | None) -> None:
        """``cmd indicator``; for ``on`` the ack (within ``indicator_ack_s``) is fed back to the
        machine, which lets the held offer go or ends the session as device trouble."""
        s = live.value
        indicator = topics.Indicator(
            on=on, session_id=s.session_id, purpose=LIVE[s.purpose], remaining_s=remaining_s
        )
        is_acked = await self._send_indicator(s.device_id, indicator)
        if on:
            await self._feed(
                live, machine.IndicatorAcked() if is_acked else machine.IndicatorNotAcked()
            )

    async def _send_indicator(self, device_id: str, indicator: topics.Indicator) -> bool:
        """Send ``cmd indicator``; whether the device acked it ``ok`` in time (else logged)."""
        try:
            ack = await self.commands.send(
                device_id,
                topics.CommandOp.INDICATOR,
                indicator.args(),
                self.config.indicator_ack_s,
            )
            error = None if ack.ok else "refused"
        except (TimeoutError, LookupError, ConnectionError) as e:
            error = type(e).__name__
        if error is None:
            return True
        log.warning(
            "signal_indicator_unacked",
            session_id=indicator.session_id,
            device_id=device_id,
            on=indicator.on,
            error=error,
        )
        return False

    async def _check_trouble(self, check_id: str, reason: str, device_id: str) -> None:
        """The device failed a check's view: the check goes to a physical visit (hard rule 7)."""
        moved = await self.checks.device_trouble(check_id, reason=reason, at=self.now())
        log.warning(
            "signal_check_device_trouble",
            check_id=check_id,
            device_id=device_id,
            reason=reason,
            moved=moved,
        )

    async def _stop_device(self, device_id: str, op: topics.CommandOp, session_id: str) -> None:
        try:
            await self.commands.send(
                device_id, op, {"session_id": session_id}, self.config.command_timeout_s
            )
        except (TimeoutError, LookupError, ConnectionError) as e:
            log.warning(
                "signal_stop_unacked", device_id=device_id, op=op.value, error=type(e).__name__
            )

    async def _tell_orphaned(self, row: SessionRow) -> None:
        """A row closed by a sweep (its owning process vanished, or this one restarted): its
        device is told ``bye`` and ``indicator off``, as its session's machine would have."""
        await self._tell_device(row.device_id, env.Bye(row.session_id, env.ByeReason.TIMEOUT))
        off = topics.Indicator(on=False, session_id=row.session_id, purpose=LIVE[row.purpose])
        self._spawn(self._send_indicator(row.device_id, off))

    async def _tell_device(self, device_id: str, message: env.Envelope) -> None:
        await self.router.tell_device(device_id, message)
