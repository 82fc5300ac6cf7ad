"""In-process event bus: domain events fanned out to async subscribers (console, rounds, ...).

Each subscriber chooses what happens when it falls behind (:class:`Overflow`):

- ``DROP_OLDEST`` (the default, for display feeds such as the console): a bounded queue that
  loses its oldest events, counted in ``dropped``, rather than slowing the publisher; the console
  then tells its screen to reload.
- ``KEEP_ALL`` (for consumers that enforce a hard rule: the watchdog's presence feed for rules 7
  and 8, the rule-8 "covered repeatedly" counter): an unbounded queue that never loses an event.
  ``publish`` is synchronous (device handlers call it), so back-pressure is not possible here;
  the queue's depth is visible as ``pending`` for metrics.

Events that must survive a process are also in PostgreSQL; this bus only makes them fast.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

DISPLAY_QUEUE = 1000  # events a display subscriber may fall behind before it loses the oldest


class Overflow(StrEnum):
    DROP_OLDEST = "drop_oldest"
    KEEP_ALL = "keep_all"


@dataclass(eq=False)
class Subscription:
    name: str = ""
    overflow: Overflow = Overflow.DROP_OLDEST
    queue: asyncio.Queue[object] = field(init=False)
    dropped: int = 0

    def __post_init__(self) -> None:
        size = DISPLAY_QUEUE if self.overflow is Overflow.DROP_OLDEST else 0
        self.queue = asyncio.Queue(maxsize=size)

    @property
    def pending(self) -> int:
        """Events published and not yet taken by this subscriber."""
        return self.queue.qsize()

    def _put(self, event: object) -> None:
        if self.overflow is Overflow.DROP_OLDEST and self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    def __aiter__(self) -> AsyncIterator[object]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[object]:
        while True:
            yield await self.queue.get()


class EventBus:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """The current subscribers (metrics and tests)."""
        return tuple(self._subs)

    def publish(self, event: object) -> None:
        for sub in self._subs:
            sub._put(event)

    @contextlib.contextmanager
    def subscribe(
        self, name: str = "", *, overflow: Overflow = Overflow.DROP_OLDEST
    ) -> Iterator[Subscription]:
        """Receive every event published while the block runs; ``overflow`` says what happens
        when this subscriber falls behind (``KEEP_ALL`` for consumers of a hard rule)."""
        sub = Subscription(name, overflow)
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)
