"""The round's console events across processes: ``NOTIFY`` on commit, ``LISTEN`` where consoles are.

A process publishes its own transitions and alarms to its in-process bus at once. With split
roles the operators' consoles live in another process (``api``) than the one that made the
change (``rounds``, ``probes``), so the store also sends each one with PostgreSQL ``NOTIFY`` on
:data:`CHANNEL` in the same transaction (delivered on commit, never for a rolled-back step),
tagged with the sending process (``origin``). :func:`listen` in every ``api`` process turns what
other processes sent back into :class:`~supervision.ports.CheckChanged` (``relayed=True``: a
subscriber that acts on a step, not just shows it, must skip these: the sending process's own
subscriber has acted) and :class:`~supervision.ports.AlarmRaised` on its own bus; its own are
skipped (already published).
Planning's bulk moves are not sent one by one (the console reloads its queue when a night is
planned). Pseudonymous ids only; a payload is a few hundred bytes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import structlog

from kernel import listen as kernel_listen
from kernel.listen import LISTEN_BACKOFF
from kernel.retry import Backoff
from kernel.roles import Role
from supervision import checks as ch
from supervision.checks import Alarm, AlarmKind, State, Transition
from supervision.ports import AlarmRaised, CheckChanged

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = (
        "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
    )

log = structlog.get_logger(__name__)

CHANNEL = "homecare_rounds"
Event = CheckChanged | AlarmRaised


def changed(tr: Transition) -> CheckChanged:
    """The console event of one stored transition."""
    c = tr.check
    return CheckChanged(
        check_id=c.check_id,
        recipient_id=c.recipient_id,
        device_id=c.device_id,
        before=tr.before,
        state=c.state,
        reason=c.reason,
        deadline=c.deadline,
        at=tr.at,
        actor=ch.actor_of(tr.event),
        verdict=c.verdict,
    )


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def encode(origin: str, event: Event) -> str:
    if isinstance(event, CheckChanged):
        body: dict[str, Any] = {
            "kind": "check",
            "check_id": event.check_id,
            "recipient_id": event.recipient_id,
            "device_id": event.device_id,
            "before": event.before.value,
            "state": event.state.value,
            "reason": event.reason,
            "deadline": _ts(event.deadline),
            "at": event.at.isoformat(),
            "actor": event.actor,
            "verdict": event.verdict,
        }
    else:
        a = event.alarm
        body = {
            "kind": "alarm",
            "check_id": a.check_id,
            "recipient_id": a.recipient_id,
            "state": a.state.value,
            "deadline": a.deadline.isoformat(),
            "version": a.version,
            "late_s": a.late_s,
            "repeat": a.repeat,
            "alarm": a.kind.value,
            "to": a.to.value,
            "at": event.at.isoformat(),
        }
    return json.dumps({"origin": origin, **body})


def decode(payload: str) -> tuple[str, Event]:
    """``(origin, event)``; ``ValueError``, ``KeyError`` or ``TypeError`` if malformed."""
    d = json.loads(payload)
    if not isinstance(d, dict):
        raise TypeError("a round event is a JSON object")
    origin = str(d["origin"])
    if d["kind"] == "check":
        deadline = d["deadline"]
        return origin, CheckChanged(
            check_id=str(d["check_id"]),
            recipient_id=str(d["recipient_id"]),
            device_id=None if d["device_id"] is None else str(d["device_id"]),
            before=State(d["before"]),
            state=State(d["state"]),
            reason=None if d["reason"] is None else str(d["reason"]),
            deadline=None if deadline is None else datetime.fromisoformat(deadline),
            at=datetime.fromisoformat(d["at"]),
            actor=str(d["actor"]),
            verdict=None if d["verdict"] is None else str(d["verdict"]),
            relayed=True,
        )
    if d["kind"] == "alarm":
        alarm = Alarm(
            check_id=str(d["check_id"]),
            recipient_id=str(d["recipient_id"]),
            state=State(d["state"]),
            deadline=datetime.fromisoformat(d["deadline"]),
            version=int(d["version"]),
            late_s=float(d["late_s"]),
            # a process of the version before the ladder sends none of these three
            repeat=int(d.get("repeat", 1)),
            kind=AlarmKind(d.get("alarm", AlarmKind.ALARM)),
            to=Role(d.get("to", Role.OPERATOR)),
        )
        return origin, AlarmRaised(alarm, datetime.fromisoformat(d["at"]))
    raise ValueError(f"unknown round event kind {d['kind']!r}")


async def notify(conn: Connection, origin: str, event: Event) -> None:
    """Send ``event`` to every listening process when the caller's transaction commits."""
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, encode(origin, event))


async def listen(
    pool: asyncpg.Pool,
    publish: Callable[[object], None],
    *,
    origin: str,
    ready: asyncio.Event | None = None,
    backoff: Backoff = LISTEN_BACKOFF,
) -> None:
    """Publish other processes' round events on this process's bus until cancelled; holds one
    pooled connection and listens again after losing it (:func:`kernel.listen.listen`)."""

    def received(_conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            sender, event = decode(str(payload))
        except (ValueError, KeyError, TypeError):
            log.warning("round_event_unreadable", channel=CHANNEL)
            return
        if sender != origin:
            publish(event)

    await kernel_listen.listen(
        pool, CHANNEL, received, name="round_events", ready=ready, backoff=backoff
    )
