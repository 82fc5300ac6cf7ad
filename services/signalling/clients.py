"""The client side of signalling: connections, their rate limit, decoding, and requests.

Clients are operator browsers over ``GET /ws/signal``, ``homecare view`` and the in-process probe
(via :meth:`ClientSide.connect`). Each message is rate limited per connection (a token bucket;
past ``max_violations`` the connection is closed), decoded strictly (a bad one gets an ``error``
envelope), and turned into an event of the machine. A ``request`` gathers the facts (presence and
kind from the registry; for a view the check it names and what that check's earlier sessions
spent, or the extra look's reason, and the caller's duty; the gate's decisions) for
:func:`services.signalling.decide.decide_request`; a granted view of a queued check moves the
check to ``viewing`` (:class:`~services.signalling.ports.ChecksPort`); then it opens the
``signal_sessions`` row (one open per device; the check or the extra look's reason and note) with
its audit entry and answers ``granted`` or ``denied``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from consent import model as consent_model
from devices import envelope as env
from kernel.ratelimit import TokenBucket
from kernel.roles import Principal
from services.signalling import decide, machine
from services.signalling.interpreter import Interpreter
from services.signalling.ports import Latencies
from services.signalling.session import ClientConnection, LiveSession
from services.signalling.store import SessionExists, SessionRow
from services.signalling.turn import ice_servers
from supervision.checks import State as CheckState
from supervision.looks import DueCheck

log = structlog.get_logger(__name__)

WS_GOING_AWAY = 1001
WS_POLICY_VIOLATION = 1008


class ClientSide(Interpreter):
    """Client connections and their messages (part of ``Signalling``)."""

    _accepting: bool
    latencies: Latencies  # request -> granted, request -> first frame (``/metrics``)

    # ------------------------------------------------------------ connections

    @contextlib.asynccontextmanager
    async def connect(self, principal: Principal) -> AsyncIterator[ClientConnection]:
        """A client connection (the WebSocket handler and in-process clients use this)."""
        if not self._accepting:
            raise ConnectionError("signalling is not accepting connections")
        loop = asyncio.get_running_loop()
        conn = ClientConnection(
            principal,
            TokenBucket.full(self.config.rate_per_s, self.config.rate_burst, loop.time()),
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
        arrived = asyncio.get_running_loop().time()
        if conn.bucket.wait_s(arrived) > 0:  # refused
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
            await self._on_request(conn, message, arrived)
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
            case env.Dock():
                event = machine.ClientDock()
            case _:  # pragma: no cover - decode() admits client types only
                self.reject(conn, "unexpected_type", "not a client message", None)
                return
        live = self._owned(conn, message.session_id)
        if live is None:
            return
        if isinstance(event, machine.ClientVideo) and event.frames > 0 and not live.has_first_frame:
            live.has_first_frame = True
            self.latencies.first_frame(live.purpose, arrived - live.requested_at)
        await self._feed(live, event)

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

    # ------------------------------------------------------------ requests

    async def _facts(self, who: Principal, req: env.Request, now: datetime) -> decide.RequestFacts:
        """What :func:`decide.decide_request` needs, read only as far as it is needed."""
        assert req.device_id is not None
        assert req.purpose is not None
        device_id, purpose = req.device_id, req.purpose
        facts = decide.RequestFacts(
            purpose,
            who.role,
            False,
            None,
            {},
            device_id=device_id,
            staff_id=who.staff_id,
            check_id=req.check_id,
            extra_reason=None if req.reason is None else req.reason.value,
            teams=who.teams,
        )
        if not decide.may_request(who.role, purpose):
            return facts
        if who.teams is not None:  # whose brukare: decided before anything else is read
            team_id = await self.store.device_team(device_id, at=now)
            facts = dataclasses.replace(facts, team_id=team_id)
            if decide.team_denied(facts) is not None:
                return facts
        device = await self.presence.device(device_id)
        if device is None or not device.is_online:
            return facts
        facts = dataclasses.replace(facts, is_online=True, device_kind=device.kind)
        if device.kind is not decide.KIND_FOR[purpose]:
            return facts
        if purpose is env.Purpose.VIEW:
            facts = await self._look_facts(facts, now)
            if decide.look_denied(facts) is not None:
                return facts
        if purpose is env.Purpose.CALL and facts.check_id is not None:  # the call it serves
            found = await self.checks.check(facts.check_id)
            if found is not None:
                facts = dataclasses.replace(facts, check=_check_facts(found))
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
        return facts

    async def _look_facts(self, facts: decide.RequestFacts, now: datetime) -> decide.RequestFacts:
        """A view's own facts: the check it names (as stored, and what its earlier sessions
        spent) and whether the caller is on duty."""
        if facts.check_id is None and facts.extra_reason is None:
            return facts
        if facts.check_id is not None:
            found = await self.checks.check(facts.check_id)
            if found is None:
                return facts
            use = await self.store.check_use(facts.check_id, at=now)
            facts = dataclasses.replace(facts, check=_check_facts(found, use))
        on_duty = await self.checks.on_duty(facts.staff_id, now)
        return dataclasses.replace(facts, is_on_duty=on_duty)

    async def _on_request(self, conn: ClientConnection, req: env.Request, arrived: float) -> None:
        """``arrived``: the loop time the request arrived (the latencies count from it)."""
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
        await self._close_settled(device_id)  # a bye just before: its row closes first
        now = self.now()
        facts = await self._facts(who, req, now)
        outcome = decide.decide_request(facts, now, self.config.terms)
        if isinstance(outcome, decide.Deny):
            await self._deny(conn, req, outcome.reason, now, outcome.recipient_id)
            return
        if not await self._check_step(facts, who.staff_id, now):
            await self._deny(conn, req, "no_due_check", now, outcome.recipient_id)
            return
        row, data = self._opening(who, req, outcome, now)
        try:
            opened = await self.store.open(row, data)
        except SessionExists:
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
            countdown=all(d.live_countdown is not False for d in facts.decisions.values()),
        )
        live = LiveSession(session, conn, requested_at=arrived, check_id=row.check_id)
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
            look=row.look,
            check_id=row.check_id,
            look_reason=row.look_reason,  # a code; the note is never logged
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
                budget_s=(
                    round((session.deadline - now).total_seconds(), 3)
                    if purpose is env.Purpose.VIEW
                    else None
                ),
            )
        )
        self.latencies.granted(purpose, asyncio.get_running_loop().time() - arrived)
        await self._feed(live, machine.Started())  # a view or probe: the indicator, then media
        if purpose is env.Purpose.CALL:
            await self._perform(live, machine.Ring(outcome.cap_s, outcome.auto_answer))

    def _opening(
        self, who: Principal, req: env.Request, outcome: decide.Grant, now: datetime
    ) -> tuple[SessionRow, dict[str, Any]]:
        """The row a grant opens and its audit entry's data. An extra look's note goes to the
        row only (``look_note``), never to the audit log or a log line."""
        assert req.device_id is not None
        assert req.purpose is not None
        extra = req if outcome.look is decide.Look.EXTRA else None
        row = SessionRow(
            session_id=req.session_id,
            device_id=req.device_id,
            purpose=req.purpose,
            staff_id=who.staff_id,
            recipient_id=outcome.recipient_id,
            instance_id=self.instance_id,
            state=outcome.state.value,
            started_at=now,
            deadline=outcome.deadline,
            check_id=outcome.check_id,
            look=None if outcome.look is None else outcome.look.value,
            look_reason=extra.reason.value if extra and extra.reason else None,
            look_note=extra.note if extra else None,
        )
        data: dict[str, Any] = {
            "session_id": req.session_id,
            "device_id": req.device_id,
            "cap_s": outcome.cap_s,
            "auto_answer": outcome.auto_answer,
            "plan_id": outcome.plan_id,
        }
        if outcome.call_cap_s is not None:  # answered by itself: the plan's terms (issue 15)
            data["call_cap_s"] = outcome.call_cap_s
            data["announce_s"] = outcome.announce_s
        if req.purpose is env.Purpose.PROBE and outcome.check_id is not None:
            data["check_id"] = outcome.check_id  # the check the system's look is owed to
        if req.purpose is env.Purpose.VIEW:
            data["budget_s"] = round((outcome.deadline - now).total_seconds(), 3)
            if outcome.check_id is not None:
                data["check_id"] = outcome.check_id
                data["check_used_s"] = round(outcome.check_use.used_s, 3)
            else:  # an extra look: why (the note itself stays in the row: the audit log is
                # permanent and refuses free text, as it does the round's notes)
                data["reason"] = row.look_reason
                data["has_note"] = row.look_note is not None
        return row, data

    async def _check_step(self, facts: decide.RequestFacts, staff_id: str, now: datetime) -> bool:
        """A granted view of a queued check moves it to ``viewing`` held by the operator, as
        ``POST /api/checks/{id}/view`` would (a re-open moves nothing). ``False`` when the check
        moved meanwhile or the duty ended: the view is then denied."""
        check = facts.check
        if facts.purpose is not env.Purpose.VIEW or check is None or facts.check_id is None:
            return True
        if check.state is not CheckState.NEEDS_VIEW:
            return True
        return await self.checks.view_opened(facts.check_id, staff_id=staff_id, at=now)

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


def _check_facts(found: DueCheck, use: decide.CheckUse = decide.NO_USE) -> decide.CheckFacts:
    """The facts :mod:`decide` needs of the check a view or call names (``use``: what the
    check's earlier view sessions spent; a call spends none)."""
    return decide.CheckFacts(
        found.state, found.device_id, found.holder, float(found.view_cap_s), found.recipient_id, use
    )
