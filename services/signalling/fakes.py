"""In-memory fakes of signalling's ports, for unit tests of the interpreter (no PostgreSQL,
Mosquitto or aiortc): each implements the same protocol as the real adapter.

- :class:`FakeSessionStore`: :class:`~services.signalling.ports.SessionStore` (rows and the
  audit entries they would write, in ``audit``);
- :class:`FakeBus`: :class:`~services.signalling.ports.BusPort`; what signalling publishes to
  devices lands in ``to_device``; :meth:`FakeBus.device_says`, :meth:`FakeBus.event` and
  :meth:`FakeBus.status` play a device;
- :class:`FakeGate`, :class:`FakePresence`, :class:`FakeCommands`, :class:`FakeChecks`;
- :class:`FakeClock`: the one clock, stopped, whose sleepers wake when :meth:`FakeClock.step`
  moves it past their end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from consent import model
from devices import envelope as env
from devices import topics
from kernel.clock import ScaledClock
from services.signalling.bus import BusHandlers, route_topic
from services.signalling.decide import CheckUse
from services.signalling.ports import DeviceFacts
from services.signalling.store import SessionExists, SessionRow, StatsRecorded, started_action
from supervision.checks import State as CheckState
from supervision.looks import DueCheck


class FakeClock(ScaledClock):
    """The one clock (:class:`kernel.clock.ScaledClock`, stopped) whose ``sleep`` waits until the
    clock is moved past its end, instead of jumping there: a session's timer fires only when the
    test moves the clock (:meth:`step`)."""

    def __init__(self, start: datetime) -> None:
        super().__init__(0, start)
        self._sleepers: list[tuple[datetime, asyncio.Future[None]]] = []

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now() + timedelta(seconds=seconds), future))
        try:
            await future
        finally:
            self._sleepers = [(t, f) for t, f in self._sleepers if f is not future]

    def set(self, at: datetime) -> None:
        super().set(at)
        for until, future in list(self._sleepers):
            if until <= at and not future.done():
                future.set_result(None)

    async def step(self, seconds: float) -> None:
        """Move the clock and let every task woken by it run."""
        self.advance(seconds)
        for _ in range(20):
            await asyncio.sleep(0)


class FakeGate:
    """A decision per (device, purpose); everything else is ``no_consent``."""

    def __init__(self) -> None:
        self.decisions: dict[tuple[str, model.Purpose], model.Decision] = {}
        self._queues: list[asyncio.Queue[model.ConsentChange]] = []

    def allow(
        self,
        device_id: str,
        *purposes: model.Purpose,
        cap_s: int = 30,
        recipient_id: str = "rec-0001",
        window: tuple[datetime, datetime] | None = None,
    ) -> None:
        for purpose in purposes or (model.Purpose.CAMERA_CHECK,):
            self.decisions[device_id, purpose] = model.Decision(
                allowed=True,
                reason=None,
                recipient_id=recipient_id,
                plan_id="plan-0001",
                view_cap_s=cap_s,
                window_start=window[0] if window else None,
                window_end=window[1] if window else None,
            )

    def deny(self, device_id: str, reason: model.Reason, at: datetime) -> None:
        """Every purpose of the device to deny, announced like a withdrawal."""
        for key in [k for k in self.decisions if k[0] == device_id]:
            self.decisions[key] = model.Decision.deny(reason, "rec-0001")
        change = model.ConsentChange(
            event_id=uuid.uuid4().hex,
            kind=model.ChangeKind.CONSENT_WITHDRAWN,
            recipient_id="rec-0001",
            device_ids=(device_id,),
            at=at,
        )
        for queue in self._queues:
            queue.put_nowait(change)

    async def decide(
        self, *, device_id: str, purpose: model.Purpose, at: datetime
    ) -> model.Decision:
        return self.decisions.get(
            (device_id, purpose), model.Decision.deny(model.Reason.NO_CONSENT)
        )

    async def changes(self) -> AsyncIterator[model.ConsentChange]:
        queue: asyncio.Queue[model.ConsentChange] = asyncio.Queue()
        self._queues.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.remove(queue)


class FakePresence:
    def __init__(self, devices: Mapping[str, topics.DeviceKind] | None = None) -> None:
        self.devices: dict[str, DeviceFacts] = {
            d: DeviceFacts(True, kind) for d, kind in (devices or {}).items()
        }

    async def device(self, device_id: str) -> DeviceFacts | None:
        return self.devices.get(device_id)


class FakeCommands:
    """Acks every command ``ok`` (or per op as set in ``refuse``); records them in ``sent``."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, topics.CommandOp, dict[str, Any]]] = []
        self.refuse: set[topics.CommandOp] = set()

    async def send(
        self,
        device_id: str,
        op: topics.CommandOp,
        args: dict[str, Any] | None = None,
        timeout_s: float = 5.0,
    ) -> topics.CommandAck:
        self.sent.append((device_id, op, dict(args or {})))
        return topics.CommandAck(id=uuid.uuid4().hex, ok=op not in self.refuse)

    def ops(self, device_id: str) -> list[topics.CommandOp]:
        return [op for d, op, _ in self.sent if d == device_id]


class FakeChecks:
    """:class:`~services.signalling.ports.ChecksPort` in memory: checks queued for a view
    (:meth:`queue`), operators on duty (``duty``), and the steps a granted view made
    (``opened``: check id, operator)."""

    def __init__(self, *, duty: tuple[str, ...] = ()) -> None:
        self.checks: dict[str, DueCheck] = {}
        self.duty: set[str] = set(duty)
        self.opened: list[tuple[str, str]] = []
        self.troubled: list[tuple[str, str]] = []  # check id, reason: sent to a physical visit

    def queue(
        self,
        device_id: str,
        *,
        check_id: str | None = None,
        cap_s: int = 30,
        recipient_id: str = "rec-0001",
    ) -> str:
        """A check of ``device_id`` waiting for a view (``needs_view``); its id (a new one
        unless given: each is its own budget)."""
        if check_id is None:
            check_id = f"20261206.{2200 + len(self.checks):04d}.{recipient_id}"
        self.checks[check_id] = DueCheck(
            check_id, recipient_id, device_id, CheckState.NEEDS_VIEW, None, cap_s
        )
        return check_id

    async def check(self, check_id: str) -> DueCheck | None:
        return self.checks.get(check_id)

    async def on_duty(self, staff_id: str, at: datetime) -> bool:
        return staff_id in self.duty

    async def view_opened(self, check_id: str, *, staff_id: str, at: datetime) -> bool:
        c = self.checks.get(check_id)
        if c is None or c.state is not CheckState.NEEDS_VIEW or staff_id not in self.duty:
            return False
        self.checks[check_id] = dataclasses.replace(c, state=CheckState.VIEWING, holder=staff_id)
        self.opened.append((check_id, staff_id))
        return True

    async def device_trouble(self, check_id: str, *, reason: str, at: datetime) -> bool:
        c = self.checks.get(check_id)
        if c is None or c.state not in {CheckState.NEEDS_VIEW, CheckState.VIEWING}:
            return False
        self.checks[check_id] = dataclasses.replace(c, state=CheckState.PATROL, holder=None)
        self.troubled.append((check_id, reason))
        return True


class FakeSessionStore:
    """Rows in a dict, the audit entries they would write in ``audit`` (action, actor, data)."""

    def __init__(self) -> None:
        self.rows: dict[str, SessionRow] = {}
        self.audit: list[tuple[str, str, dict[str, Any]]] = []
        self.names: dict[str, str] = {}
        self.teams: dict[str, str] = {}  # device -> its brukare's team (absent: none)
        self.languages: dict[str, str] = {}  # device -> its brukare's language (absent: none)
        self.stats: dict[str, tuple[int, float]] = {}  # session -> (frames_sent, video_s)
        self.frames_decoded: dict[str, int | None] = {}  # session -> as closed

    def _audit(self, actor: str, action: str, data: Mapping[str, Any]) -> None:
        self.audit.append((action, actor, dict(data)))

    def actions(self, session_id: str) -> list[str]:
        return [a for a, _, d in self.audit if d.get("session_id") == session_id]

    async def open(self, row: SessionRow, data: Mapping[str, Any]) -> bool:
        if row.session_id in self.rows:
            raise SessionExists(row.session_id)
        if any(r.is_open and r.device_id == row.device_id for r in self.rows.values()):
            return False
        self.rows[row.session_id] = row
        self._audit(row.staff_id, started_action(row), data)
        return True

    async def denied(
        self,
        *,
        actor: str,
        purpose: env.Purpose,
        subject: str,
        data: Mapping[str, Any],
        at: datetime,
    ) -> None:
        self._audit(actor, f"{purpose.value}.denied", data)

    async def get(self, session_id: str) -> SessionRow | None:
        return self.rows.get(session_id)

    async def mark_connected(
        self, row: SessionRow, *, at: datetime, deadline: datetime | None, is_audited: bool
    ) -> None:
        r = self.rows.get(row.session_id)
        if r is None or r.state not in {"granted", "ringing"}:
            return
        self.rows[r.session_id] = dataclasses.replace(
            r, state="connected", deadline=deadline or r.deadline
        )
        if is_audited:
            self._audit(
                f"device:{r.device_id}",
                f"{r.purpose.value}.answered",
                {"session_id": r.session_id, "device_id": r.device_id},
            )

    async def extend(
        self, row: SessionRow, *, actor: str, reason: str, deadline: datetime, at: datetime
    ) -> int | None:
        r = self.rows.get(row.session_id)
        if r is None or not r.is_open:
            return None
        r = self.rows[r.session_id] = dataclasses.replace(
            r, deadline=deadline, extensions=r.extensions + 1
        )
        data = {"session_id": r.session_id, "reason": reason, "extension": r.extensions}
        self._audit(actor, f"{r.purpose.value}.extended", data)
        return r.extensions

    async def close(
        self,
        session_id: str,
        *,
        actor: str,
        reason: str,
        at: datetime,
        detail: str | None,
        frames_decoded: int | None = None,
    ) -> SessionRow | None:
        r = self.rows.get(session_id)
        if r is None or not r.is_open:
            return None
        self.frames_decoded[session_id] = frames_decoded
        r = self.rows[session_id] = dataclasses.replace(
            r, state="closed", ended_at=at, end_reason=reason
        )
        data: dict[str, Any] = {
            "session_id": session_id,
            "device_id": r.device_id,
            "reason": reason,
            "duration_s": round((at - r.started_at).total_seconds(), 3),
        }
        if detail:
            data["detail"] = detail
        self._audit(actor, f"{r.purpose.value}.ended", data)
        return r

    async def record_stats(
        self, session_id: str, device_id: str, *, frames: int, video_s: float
    ) -> StatsRecorded:
        r = self.rows.get(session_id)
        if r is None:
            return StatsRecorded.UNKNOWN_SESSION
        if r.device_id != device_id:
            return StatsRecorded.WRONG_DEVICE
        if session_id in self.stats:
            return StatsRecorded.DUPLICATE
        self.stats[session_id] = (frames, video_s)
        return StatsRecorded.RECORDED

    async def sweep_overdue(
        self, *, at: datetime, grace_s: float, instance_id: str | None = None
    ) -> list[SessionRow]:
        late = at - timedelta(seconds=grace_s)
        due = [
            r
            for r in self.rows.values()
            if r.is_open and (r.deadline < late or r.instance_id == instance_id)
        ]
        closed = []
        for r in due:
            row = await self.close(
                r.session_id, actor="system", reason="timeout", at=at, detail="owner_lost"
            )
            if row is not None:
                closed.append(row)
        return closed

    async def prune(self, *, before: datetime) -> int:
        old = [
            k
            for k, r in self.rows.items()
            if r.ended_at is not None and r.ended_at < before and r.purpose is env.Purpose.PROBE
        ]
        for k in old:
            del self.rows[k]
        return len(old)

    async def check_use(self, check_id: str, *, at: datetime) -> CheckUse:
        rows = [
            r
            for r in self.rows.values()
            if r.check_id == check_id and r.purpose is env.Purpose.VIEW and r.started_at < at
        ]
        used = sum(((min(r.ended_at or at, at)) - r.started_at).total_seconds() for r in rows)
        return CheckUse(used_s=max(0.0, used), extensions=sum(r.extensions for r in rows))

    async def staff_name(self, staff_id: str) -> str | None:
        return self.names.get(staff_id)

    async def device_team(self, device_id: str, *, at: datetime) -> str | None:
        return self.teams.get(device_id)

    async def device_language(self, device_id: str, *, at: datetime) -> str | None:
        return self.languages.get(device_id)


class FakeBus:
    """The broker: records what signalling publishes; plays devices through the handlers."""

    def __init__(self, handlers: BusHandlers, prefix: str = "hc/v1") -> None:
        self.handlers = handlers
        self.prefix = prefix
        self.connected = asyncio.Event()
        self.to_device: list[tuple[str, env.Envelope]] = []
        self.published: list[tuple[str, bytes]] = []

    async def __aenter__(self) -> FakeBus:
        self.connected.set()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.connected.clear()

    async def publish_to_device(self, device_id: str, payload: bytes) -> None:
        self.to_device.append((device_id, env.decode(payload)))

    async def publish(self, topic: str, payload: bytes) -> None:
        self.published.append((topic, payload))

    def sent(self, device_id: str, kind: type[Any] | None = None) -> list[env.Envelope]:
        return [
            m for d, m in self.to_device if d == device_id and (kind is None or isinstance(m, kind))
        ]

    async def device_says(self, device_id: str, message: env.Envelope) -> None:
        await self.handlers.device_signal(device_id, env.encode_bytes(message))

    async def event(self, device_id: str, kind: topics.EventType, session_id: str) -> None:
        payload = topics.Event(type=kind, session_id=session_id).encode()
        await self.handlers.device_event(device_id, payload)

    async def status(self, device_id: str, state: topics.Presence, session: int) -> None:
        await self.handlers.device_status(device_id, topics.Status(state, session).encode())

    def route_topic(self, instance_id: str) -> str:
        return route_topic(self.prefix, instance_id)
