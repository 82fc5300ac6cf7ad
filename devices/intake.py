"""The shared device intake: device messages stored in batches, each by one process.

Every backend process subscribes the device channels ``status``, ``meta``, ``health`` and
``event`` as one shared subscription (``$share/hc-registry/...``, :data:`SHARE_GROUP`): the
broker hands each message to one process of the group, so adding processes divides the database
writes instead of multiplying them. What every process needs to know of them (presence, a
phone's call answer) reaches it through PostgreSQL (``devices.feed``).

:class:`Intake` takes those channels' messages as the link's *sink* (:meth:`Intake.offer`, given
to ``services.mqtt.MqttLink.subscribe_sink``): the link hands it each message as paho reads it,
and it only appends it to its pending list (no task, no await per message). Its one loop
(:meth:`Intake.run`, a supervised task) takes what is pending, up to ``max_batch`` messages,
waiting at most ``linger_s`` for more, and hands the batch to
:meth:`devices.handler.DeviceHandler.handle_batch`: one transaction and a constant number of
round trips (begin, lock-read, write-and-notify, commit), whatever the batch's size. Under load a
batch fills while the previous one is in the database; alone, a message waits at most
``linger_s``. :meth:`Intake.handle` is the same as an awaited handler (it waits while ``depth``
messages are pending).

Order per device: the link hands a device's messages to the intake in the order the broker
delivered them (its lanes, by device); the queue and the one loop keep that order, and a batch
applies a device's messages one after the other. Between processes, order comes from the device
contract (``devices.registry``): an older session is stale, a session the device ended stays
ended, an older health report changes nothing. With EMQX the group's strategy
``hash_clientid`` (deploy/emqx) sends all of a device's messages to the same process.

A ``health`` or ``event`` of a device not on record is tried once more ``unknown_wait_s`` later
(its birth may be in another process's batch, which commits meanwhile), and only then refused
(``unknown_device``).

While the database is down a batch is retried by ``DB_WRITE_RETRY`` (each retry counted in
:attr:`Intake.retried`), holding later messages back in the pending list (in memory: the broker
had them acknowledged as they were read, as for any handler of the link; ``pending`` says how
many, and crossing ``depth`` is logged once, ``device_intake_backlog``); a batch given up is
dropped and counted ``unavailable``. A batch that fails for any other reason (a bug) is handled
again message by message, so one bad message costs only itself.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import structlog

from devices import topics
from devices.errors import PayloadError
from devices.handler import DeviceHandler
from kernel.outages import UNAVAILABLE
from kernel.retry import DB_WRITE_RETRY, Backoff, retry

log = structlog.get_logger(__name__)

SHARE_GROUP = "hc-registry"
"""The shared-subscription group of the device intake (deploy/emqx names it too)."""

#: Told each stored message's channel and the seconds from its arrival here (loop time) to its
#: batch having committed (the registry lag on ``/metrics``).
Observe = Callable[[topics.Channel, float], None]

Item = tuple[topics.Topic, bytes, float, bool]
"""A pending message: its topic, payload, loop time of arrival, and whether it was deferred
once."""


class Intake:
    """Batches device messages for one :class:`DeviceHandler`; see the module docstring."""

    def __init__(
        self,
        handler: DeviceHandler,
        *,
        max_batch: int = 500,
        linger_s: float = 0.002,
        depth: int = 5000,
        observe: Observe | None = None,
        unknown_wait_s: float = 0.25,
        db_retry: Backoff | None = None,
    ) -> None:
        if max_batch < 1 or depth < 1 or linger_s < 0:
            raise ValueError("max_batch and depth are at least 1, linger_s at least 0")
        self.handler = handler
        self.max_batch = max_batch
        self.linger_s = linger_s
        self._observe = observe
        self._retry = db_retry or DB_WRITE_RETRY
        self.unknown_wait_s = unknown_wait_s
        self.depth = depth
        self._pending: deque[Item] = deque()
        self._unfinished = 0  # offered and not yet stored, refused or dropped
        self._finished = asyncio.Event()
        self._finished.set()
        self._wake: asyncio.Future[None] | None = None  # the loop's, while it waits
        self._wake_at = 1  # pending messages that wake it
        self._room: asyncio.Event | None = None  # ``handle``'s, while it waits for room
        self._backlogged = False
        self._deferred: list[tuple[Item, float]] = []  # (message, when to try it again)
        self.batches = 0
        self.retried = 0  # batch retries while the database was unreachable

    @property
    def pending(self) -> int:
        return len(self._pending)

    def offer(self, topic: topics.Topic, payload: bytes) -> None:
        """The link's sink: append the message to the pending list (never waits)."""
        self._pending.append((topic, payload, asyncio.get_running_loop().time(), False))
        self._unfinished += 1
        if self._finished.is_set():
            self._finished.clear()
        n = len(self._pending)
        if self._wake is not None and n >= self._wake_at and not self._wake.done():
            self._wake.set_result(None)
        if n > self.depth and not self._backlogged:
            self._backlogged = True
            log.warning("device_intake_backlog", pending=n, depth=self.depth)

    async def handle(self, topic: topics.Topic, payload: bytes) -> None:
        """As a handler of the link: offer the message, then wait while ``depth`` are pending."""
        self.offer(topic, payload)
        while len(self._pending) >= self.depth:
            self._room = self._room or asyncio.Event()
            await self._room.wait()

    async def idle(self) -> None:
        """Until every message offered so far is stored (or refused, or dropped; one deferred
        too)."""
        await self._finished.wait()

    def _done(self, n: int) -> None:
        self._unfinished -= n
        if self._unfinished <= 0:
            self._finished.set()
        else:
            self._finished.clear()

    async def run(self) -> None:
        """Store batches until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch(loop)
            kept: list[Item] = []
            try:
                kept = await self._store(batch)
            finally:
                self._done(len(batch) - len(kept))
            due = loop.time() + self.unknown_wait_s
            self._deferred.extend((item, due) for item in kept)

    async def _until(self, loop: asyncio.AbstractEventLoop, pending: int, wait_s: float) -> None:
        """Wait until ``pending`` messages are pending, at most ``wait_s``."""
        if len(self._pending) >= pending or wait_s <= 0:
            return
        self._wake, self._wake_at = loop.create_future(), pending
        try:
            async with asyncio.timeout(wait_s):
                await self._wake
        except TimeoutError:
            pass
        finally:
            self._wake = None

    async def _next_batch(self, loop: asyncio.AbstractEventLoop) -> list[Item]:
        """Deferred messages that are due (first: they are the older ones), then what is
        pending, up to ``max_batch``, waiting at most ``linger_s`` for more."""
        while True:
            now = loop.time()
            batch = [item for item, due in self._deferred if due <= now]
            self._deferred = [(item, due) for item, due in self._deferred if due > now]
            if batch or self._pending:
                break
            wait_s = min((due for _, due in self._deferred), default=now + 3600.0) - now
            await self._until(loop, 1, wait_s)
        await self._until(loop, self.max_batch - len(batch), self.linger_s)
        take = min(self.max_batch - len(batch), len(self._pending))
        pop = self._pending.popleft
        batch.extend(pop() for _ in range(take))
        if self._room is not None and len(self._pending) < self.depth:
            self._room.set()
            self._room = None
        if len(self._pending) <= self.depth // 2:
            self._backlogged = False
        return batch

    async def _store(self, batch: list[Item]) -> list[Item]:
        """Store a batch; the messages to try again later (of a device not yet on record)."""
        items = [(topic, payload) for topic, payload, _, _ in batch]
        loop = asyncio.get_running_loop()
        self.batches += 1
        try:
            handled = await retry(
                lambda: self.handler.handle_batch(items, defer_unknown=True),
                self._retry,
                retry_on=UNAVAILABLE,
                on_retry=lambda error, failures, _w: self._retrying(error, failures, len(batch)),
                clock=loop.time,
            )
        except UNAVAILABLE as e:
            log.warning("device_batch_dropped", messages=len(batch), error=type(e).__name__)
            for topic, _ in items:
                self.handler.reject("unavailable", topic.device_id, "backing service down")
            return []
        except Exception:  # a bug: one by one, so a bad message costs only itself
            log.exception("device_batch_failed", messages=len(batch))
            handled = [await self._one(topic, payload) for topic, payload in items]
        kept: list[Item] = []
        now = loop.time()
        for (topic, payload, queued, deferred), ok in zip(batch, handled, strict=True):
            if ok is None:
                if not deferred:  # once more, later
                    kept.append((topic, payload, queued, True))
                else:
                    self.handler.reject(
                        "unknown_device", topic.device_id, "from a device never announced"
                    )
            elif ok and self._observe is not None:
                self._observe(topic.channel, now - queued)
        return kept

    def _retrying(self, error: BaseException, failures: int, messages: int) -> None:
        if failures == 1:
            log.warning("device_batch_retrying", messages=messages, error=type(error).__name__)
        self.retried += 1

    async def _one(self, topic: topics.Topic, payload: bytes) -> bool:
        try:
            await self.handler.handle(topic, payload)
            return True
        except PayloadError as e:
            self.handler.reject(e.reason, topic.device_id, e.detail)
        except Exception:  # the message's boundary: logged, the intake goes on
            log.exception("device_message_failed", device_id=topic.device_id)
        return False
