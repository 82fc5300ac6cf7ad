"""The device side of signalling: what devices say, their presence, the gate's changes, the sweep.

A device's ``webrtc/out`` message reaches one process of the group (a shared subscription); the
:class:`services.signalling.router.DeviceRouter` checks it against the session's row and hands it
to the process that owns the session, whose :meth:`DeviceSide._from_device` turns it into an
event: ``answer``, ``candidate``, ``bye``, ``unit`` (a rolling phone's bump, edge, dock or
battery, passed on to the caller), and ``error`` (the device refused the session's
signalling; the session ends ``device_lost`` and the client is told the device's code). The
phone's ``call_answer``/``call_decline`` events, a device going offline, the gate turning to deny
(its change feed and a periodic re-check) are events too. The sweep closes rows whose owner
vanished and tells their devices ``bye`` and ``indicator off``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import structlog

from devices import envelope as env
from devices import topics
from devices.feed import CallEvent
from devices.registry import PresenceChanged
from kernel.retry import Backoff, Retry
from services.signalling import machine
from services.signalling.interpreter import Interpreter
from services.signalling.router import DeviceMessage
from services.signalling.session import LiveSession

log = structlog.get_logger(__name__)

GATE_WATCH_RESTART = Backoff(first_s=1.0, max_s=30.0)
"""The gate watch failed (a bug): subscribed again 1 s, 2 s ... at most 30 s later, from 1 s
again once a change came through."""


class DeviceSide(Interpreter):
    """Device messages, events and presence; the gate's changes; the sweep (part of
    ``Signalling``)."""

    _device_sessions: dict[str, int]  # last online session counter per device

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
        live = None if message.session_id is None else self.sessions.get(message.session_id)
        if live is None or live.device_id != device_id:
            if isinstance(message, env.Error):
                self.router.drop_error(device_id, "session_ended", message.session_id)
            return  # ended meanwhile (or checked already by the router)
        match message:
            case env.Answer():
                await self._feed(live, machine.DeviceAnswer(message))
            case env.Candidate():
                await self._feed(live, machine.DeviceCandidate(message))
            case env.Bye():
                await self._feed(live, machine.DeviceBye(message.reason))
            case env.Error():
                code = machine.device_error_code(message.code)
                log.info(
                    "signal_device_refused",
                    session_id=live.session_id,
                    device_id=device_id,
                    code=code,
                )
                await self._feed(live, machine.DeviceError(code))
            case env.Unit():
                await self._feed(live, machine.UnitReported(message))

    async def on_feed(self, item: object) -> None:
        """A notice of the device feed (``devices.feed``, every process hears it): a presence
        change or a phone's call answer; anything else is ignored."""
        if isinstance(item, PresenceChanged):
            await self._device_presence(item.device_id, item.presence.value, item.session)
        elif isinstance(item, CallEvent):
            await self._call_event(item.device_id, item.type, item.session_id)

    async def _on_device_event(self, device_id: str, payload: bytes) -> None:
        event = topics.decode_event(payload, device_id)
        if event.session_id is not None:
            await self._call_event(device_id, event.type, event.session_id)

    async def _call_event(self, device_id: str, kind: topics.EventType, session_id: str) -> None:
        live = self.sessions.get(session_id)
        if live is None or live.device_id != device_id:
            return
        if kind is topics.EventType.CALL_ANSWER:
            await self._feed(live, machine.CallAnswered())
        elif kind is topics.EventType.CALL_DECLINE:
            await self._feed(live, machine.CallDeclined())

    async def _on_device_status(self, device_id: str, payload: bytes) -> None:
        status = topics.decode_status(payload, device_id)
        await self._device_presence(device_id, status.state.value, status.session)

    async def _device_presence(self, device_id: str, state: str, session: int) -> None:
        known = self._device_sessions.get(device_id, 0)
        if session < known:
            return  # a late will of an older connection
        self._device_sessions[device_id] = session
        if state not in (topics.Presence.OFFLINE.value, topics.Presence.STOPPED.value):
            return
        for live in [x for x in self.sessions.values() if x.device_id == device_id]:
            await self._feed(live, machine.DeviceLost(state))

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
        restart = Retry(GATE_WATCH_RESTART)
        while True:
            changes = self.gate.changes()
            try:
                async for change in changes:
                    restart.reset()
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
            await restart.failed()

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
                    await self._tell_orphaned(row)
                # probes only: views and calls stay, what documented checks and the report
                await self.store.prune(before=now - timedelta(days=1))
            except (OSError, asyncpg.PostgresError):
                log.exception("signal_sweep_failed")
