"""The device feed: what the intake decided, told to every process through PostgreSQL.

Device messages are shared between processes (each reaches one process of the intake's group,
``devices.intake``), but every process needs what they change: the console shows presence, the
round turns an offline camera's check into a visit, signalling ends a lost device's sessions and
hears a phone's call answer. The process that stores a message sends a notice on
:data:`devices.store.FEED_CHANNEL` in the same transaction (``pg_notify``, delivered at commit,
in commit order); every process's :class:`DeviceFeed` listens (the one ``LISTEN`` loop,
``kernel.listen``) and publishes the notice on its in-process bus as a
:class:`~devices.registry.PresenceChanged` or a :class:`CallEvent`.

A lost listener misses notices: when it listens again the feed reads every device's presence and
publishes a change for each device whose presence differs from the last one it published (a
resync, logged ``device_feed_resynced``). A call answer missed that way is not replayed (it is
not stored): the call then ends at its ring timeout. A notice whose presence the feed already
published (one the resync read first) is not published twice.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from devices import store, topics
from devices.registry import PresenceChanged, Stored
from kernel.listen import LISTEN_BACKOFF, listen
from kernel.retry import Backoff

log = structlog.get_logger(__name__)

CALL_EVENTS = (topics.EventType.CALL_ANSWER, topics.EventType.CALL_DECLINE)
"""The device events signalling acts on in whichever process holds the call."""


@dataclass(frozen=True, slots=True)
class CallEvent:
    """A video phone's ``call_answer`` or ``call_decline`` for the call ``session_id``."""

    device_id: str
    type: topics.EventType
    session_id: str
    at: datetime


def presence_notice(change: PresenceChanged) -> str:
    return json.dumps(
        {
            "k": "presence",
            "d": change.device_id,
            "p": change.presence.value,
            "was": change.previous.value,
            "s": change.session,
            "at": change.at.isoformat(),
        },
        separators=(",", ":"),
    )


def call_notice(event: CallEvent) -> str:
    return json.dumps(
        {
            "k": "call",
            "d": event.device_id,
            "t": event.type.value,
            "sid": event.session_id,
            "at": event.at.isoformat(),
        },
        separators=(",", ":"),
    )


def parse(payload: str) -> PresenceChanged | CallEvent:
    """A notice back to its value; ``ValueError`` for anything else."""
    try:
        data: Any = json.loads(payload)
        match data.get("k"):
            case "presence":
                return PresenceChanged(
                    device_id=str(data["d"]),
                    presence=Stored(data["p"]),
                    previous=Stored(data["was"]),
                    session=int(data["s"]),
                    at=datetime.fromisoformat(data["at"]),
                )
            case "call":
                kind = topics.EventType(data["t"])
                if kind not in CALL_EVENTS:
                    raise ValueError("not a call event")
                return CallEvent(
                    str(data["d"]), kind, str(data["sid"]), datetime.fromisoformat(data["at"])
                )
    except (AttributeError, KeyError, TypeError) as e:
        raise ValueError("not a device notice") from e
    raise ValueError("not a device notice")


class DeviceFeed:
    """Publishes every process's device notices on this process's bus (``publish``)."""

    def __init__(self, pool: asyncpg.Pool, publish: Callable[[object], None]) -> None:
        self._pool = pool
        self._publish = publish
        self._known: dict[str, Stored] = {}  # the last presence published (or read) per device
        self.ready = asyncio.Event()
        self.resyncs = 0

    async def run(self, *, backoff: Backoff = LISTEN_BACKOFF, ping_s: float = 30.0) -> None:
        """Listen until cancelled (a supervised task of the composition root)."""
        await listen(
            self._pool,
            store.FEED_CHANNEL,
            self._on_notify,
            name="device_feed",
            on_listening=self._listening,
            ready=self.ready,
            backoff=backoff,
            ping_s=ping_s,
        )

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            item = parse(str(payload))
        except ValueError:
            log.warning("device_feed_notice_refused")
            return
        if isinstance(item, PresenceChanged):
            if self._known.get(item.device_id) is item.presence:
                return  # published already (the resync read it first)
            self._known[item.device_id] = item.presence
        self._publish(item)

    async def _listening(self, resumed: bool) -> None:
        rows = await self._pool.fetch(
            "SELECT device_id, presence, session, presence_since FROM devices"
        )
        if not resumed:  # the first time: what is stored is the starting point
            self._known = {r["device_id"]: Stored(r["presence"]) for r in rows}
            return
        changed = 0
        for r in rows:
            presence = Stored(r["presence"])
            previous = self._known.get(r["device_id"], Stored.UNKNOWN)
            if presence is previous:
                continue
            self._known[r["device_id"]] = presence
            changed += 1
            self._publish(
                PresenceChanged(
                    r["device_id"], presence, previous, r["session"], r["presence_since"]
                )
            )
        self.resyncs += 1
        log.info("device_feed_resynced", devices=len(rows), changed=changed)
