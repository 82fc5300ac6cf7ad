"""What one signalling process holds in memory: its clients' connections and their live sessions.

A :class:`ClientConnection` is one WebSocket (or in-process client such as the probe): a principal,
an outbox the transport drains, a token bucket (:class:`kernel.ratelimit.TokenBucket`), and the
sessions it opened. A :class:`LiveSession` is the process-local half of a ``signal_sessions``
row: the session's current value (a :class:`services.signalling.machine.Session`, which holds
held call offers and dedupe flags), the connection it belongs to and its timer. Nothing here is
the only copy of anything that matters: the row in PostgreSQL is.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from dataclasses import dataclass, field

from devices import envelope as env
from kernel.ratelimit import TokenBucket
from kernel.roles import Principal
from services.signalling.machine import Session, State

__all__ = ["ClientConnection", "Closing", "LiveSession", "State"]

_conn_ids = itertools.count(1)


class Closing:
    """Outbox marker: close the transport with ``code`` (WebSocket close codes)."""

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


OutboxItem = env.Envelope | Closing


class ClientConnection:
    """One client. ``send`` never blocks: a client that stops reading is disconnected."""

    OUTBOX_LIMIT = 256

    def __init__(self, principal: Principal, bucket: TokenBucket) -> None:
        self.principal = principal
        self.conn_id = f"c{next(_conn_ids)}"
        self.bucket = bucket
        self.violations = 0
        self.sessions: dict[str, LiveSession] = {}
        self.recently_closed: OrderedDict[str, env.ByeReason] = OrderedDict()
        self.outbox: asyncio.Queue[OutboxItem] = asyncio.Queue()
        self.is_closed = False

    def send(self, message: env.Envelope) -> None:
        if self.is_closed:
            return
        if self.outbox.qsize() >= self.OUTBOX_LIMIT:
            self.close(1008, "client does not read")
            return
        self.outbox.put_nowait(message)

    def close(self, code: int, reason: str) -> None:
        if not self.is_closed:
            self.is_closed = True
            self.outbox.put_nowait(Closing(code, reason))

    def forget(self, session_id: str, reason: env.ByeReason) -> None:
        self.sessions.pop(session_id, None)
        self.recently_closed[session_id] = reason
        while len(self.recently_closed) > 64:
            self.recently_closed.popitem(last=False)

    async def recv(self, timeout_s: float | None = None) -> env.Envelope:
        """Next message for an in-process client; ``ConnectionError`` once closed."""
        item = await asyncio.wait_for(self.outbox.get(), timeout_s)
        if isinstance(item, Closing):
            self.outbox.put_nowait(item)
            raise ConnectionError(f"signalling closed the connection: {item.reason}")
        return item


@dataclass(eq=False)
class LiveSession:
    """The machine's current value for one session, its client and its timer task."""

    value: Session
    conn: ClientConnection
    timer: asyncio.Task[None] | None = None
    requested_at: float = 0.0  # loop time the client's request arrived (for the latencies)
    has_first_frame: bool = False  # the client has reported a decoded frame
    check_id: str | None = None  # the check a view or probe is owed to (None: an extra look)
    #: Held while one event's messages go to the device, so a later event's cannot overtake
    #: them (each publish awaits the broker).
    to_device: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def session_id(self) -> str:
        return self.value.session_id

    @property
    def device_id(self) -> str:
        return self.value.device_id

    @property
    def recipient_id(self) -> str | None:
        return self.value.recipient_id

    @property
    def purpose(self) -> env.Purpose:
        return self.value.purpose

    @property
    def state(self) -> State:
        return self.value.state

    @property
    def is_open(self) -> bool:
        return self.value.is_open

    def cancel_timer(self) -> None:
        if self.timer is not None:
            if self.timer is not asyncio.current_task():
                self.timer.cancel()
            self.timer = None
