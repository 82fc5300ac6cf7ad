"""In-process event bus: domain events fanned out to async subscribers (console, rounds, ...).

Each subscriber gets its own bounded queue; a subscriber that falls behind loses its oldest events
(and is told how many through ``dropped``) rather than slowing the publisher. Events that must
survive a process are also in PostgreSQL; this bus only makes them fast.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field


@dataclass(eq=False)
class Subscription:
    queue: asyncio.Queue[object] = field(default_factory=lambda: asyncio.Queue(maxsize=1000))
    dropped: int = 0

    def __aiter__(self) -> AsyncIterator[object]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[object]:
        while True:
            yield await self.queue.get()


class EventBus:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()

    def publish(self, event: object) -> None:
        for sub in self._subs:
            if sub.queue.full():
                sub.queue.get_nowait()
                sub.dropped += 1
            sub.queue.put_nowait(event)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        sub = Subscription()
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)
