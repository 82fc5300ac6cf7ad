"""The gate as a service, and consent change events inside and across processes.

:class:`Gate` reads a brukare's basis from the store and asks the pure :func:`consent.rules.decide`
(default deny); it caches nothing, so every answer reflects the committed state.

Change events (hard rule 2): every store write publishes a :class:`~consent.model.ConsentChange`
twice: at once to this process's :class:`ChangeBus`, and, on commit, through PostgreSQL
``NOTIFY`` on :data:`consent.pg.CHANNEL`. :meth:`Gate.listen` runs ``LISTEN`` on one pooled
connection and feeds every process's bus, so a session held by another process is told too; it
also publishes a ``scheduled`` change when a dated record comes into force (a pause that starts
later, a plan or consent that ends), since nobody writes anything at that instant. The
bus drops duplicates by ``event_id``. If the listening connection is lost, the bus receives a
``resync`` change (``recipient_id=None``) once listening resumes: events may have been missed, so
subscribers must re-check every live session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Collection
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import asyncpg
import structlog

from consent import rules
from consent.errors import StoreUnavailable
from consent.model import ChangeKind, ConsentChange, Decision, Purpose, RecipientBasis
from consent.pg import CHANNEL
from consent.ports import ConsentStore
from consent.rows import ts
from kernel import listen as kernel_listen
from kernel.listen import LISTEN_BACKOFF
from kernel.retry import Backoff, Retry

log = structlog.get_logger(__name__)

_SEEN_MAX = 4096
_QUEUE_MAX = 1000
_MIN_WAIT_S = 0.02


class ChangeSubscription:
    """A subscriber's queue of changes; iterate with ``async for``, end with :meth:`close`
    (or ``async with``). A subscriber that falls :data:`_QUEUE_MAX` events behind gets one
    ``resync`` change instead of the backlog."""

    def __init__(self, bus: ChangeBus) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[ConsentChange] = asyncio.Queue()

    def _put(self, change: ConsentChange) -> None:
        if self._queue.qsize() >= _QUEUE_MAX:
            while not self._queue.empty():
                self._queue.get_nowait()
            change = resync_change(change.at)
        self._queue.put_nowait(change)

    def __aiter__(self) -> ChangeSubscription:
        return self

    async def __anext__(self) -> ConsentChange:
        return await self._queue.get()

    async def get(self, timeout_s: float | None = None) -> ConsentChange:
        """The next change; ``TimeoutError`` after ``timeout_s`` seconds."""
        async with asyncio.timeout(timeout_s):
            return await self._queue.get()

    def clear(self) -> None:
        """Drop the changes waiting (for a subscriber that only needs to know that some came)."""
        while not self._queue.empty():
            self._queue.get_nowait()

    def close(self) -> None:
        self._bus._subs.discard(self)

    async def __aenter__(self) -> ChangeSubscription:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def resync_change(at: datetime) -> ConsentChange:
    return ConsentChange(
        event_id=uuid.uuid4().hex, kind=ChangeKind.RESYNC, recipient_id=None, device_ids=(), at=at
    )


def decode_change(payload: str) -> ConsentChange:
    """A change from its NOTIFY payload; ``ValueError`` (or ``KeyError``/``TypeError``) if bad."""
    d: dict[str, Any] = json.loads(payload)
    rid = d["recipient_id"]
    devices = d["device_ids"]
    if not (rid is None or isinstance(rid, str)) or not isinstance(devices, list):
        raise TypeError("bad change fields")
    return ConsentChange(
        event_id=str(d["event_id"]),
        kind=ChangeKind(d["kind"]),
        recipient_id=rid,
        device_ids=tuple(str(x) for x in devices),
        at=ts(d["at"]),
    )


class ChangeBus:
    """In-process fan-out of consent changes, deduplicated by ``event_id``."""

    def __init__(self) -> None:
        self._subs: set[ChangeSubscription] = set()
        self._seen: OrderedDict[str, None] = OrderedDict()

    def publish(self, change: ConsentChange) -> None:
        if change.event_id in self._seen:
            return
        self._seen[change.event_id] = None
        if len(self._seen) > _SEEN_MAX:
            self._seen.popitem(last=False)
        for sub in list(self._subs):
            sub._put(change)

    def subscribe(self) -> ChangeSubscription:
        """Subscribe now (changes published from here on are delivered)."""
        sub = ChangeSubscription(self)
        self._subs.add(sub)
        return sub


class Gate:
    """May this device be used for this purpose now? Plus the change feed."""

    def __init__(
        self,
        store: ConsentStore,
        bus: ChangeBus | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.bus = bus if bus is not None else ChangeBus()
        self._clock = clock

    async def decide(self, *, device_id: str, purpose: Purpose, at: datetime) -> Decision:
        basis = await self.store.basis_for_device(device_id, at)
        return rules.decide(basis, device_id=device_id, purpose=purpose, at=at)

    async def decide_for_recipient(
        self, *, recipient_id: str, purpose: Purpose, at: datetime
    ) -> Decision:
        """The gate through any device bound to the brukare's home (raises ``NotFound``)."""
        basis = await self.store.basis(recipient_id)
        return rules.decide_recipient(basis, purpose=purpose, at=at)

    async def bases(
        self, recipient_ids: Collection[str] | None = None
    ) -> dict[str, RecipientBasis]:
        """Bases for planning many brukare at once; decide with :func:`consent.rules.decide`."""
        return await self.store.bases(recipient_ids)

    def bases_in_parts(self, size: int) -> AsyncGenerator[list[RecipientBasis], None]:
        """Every brukare's basis in parts of ``size``, as of one moment, for planning a night
        part by part while the next part is read (:meth:`ConsentStore.bases_in_parts`)."""
        return self.store.bases_in_parts(size)

    def changes(self) -> ChangeSubscription:
        """Subscribe to consent changes (``async for change in gate.changes(): ...``)."""
        return self.bus.subscribe()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            change = decode_change(str(payload))
        except (ValueError, KeyError, TypeError):
            log.warning("consent_change_unreadable", channel=CHANNEL)
            return
        self.bus.publish(change)

    async def listen(
        self,
        pool: asyncpg.Pool,
        *,
        ready: asyncio.Event | None = None,
        backoff: Backoff = LISTEN_BACKOFF,
        ping_s: float = 30.0,
        horizon_s: float = 60.0,
    ) -> None:
        """Keep the change feed complete until cancelled: changes written by every process
        (:meth:`listen_notify`) and dated records coming into force (:meth:`watch_schedule`)."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(
                self.listen_notify(pool, ready=ready, backoff=backoff, ping_s=ping_s),
                name="consent-notify",
            )
            tg.create_task(
                self.watch_schedule(horizon_s=horizon_s, backoff=backoff), name="consent-schedule"
            )

    async def watch_schedule(
        self, *, horizon_s: float = 60.0, backoff: Backoff = LISTEN_BACKOFF
    ) -> None:
        """Hard rule 2 without a write: when a stored, dated record comes into force (a pause
        starts, a plan or consent ends, a withdrawal dated a moment ahead takes effect, a
        cohabitant moves in; :func:`consent.rules.transitions`), publish a ``scheduled`` change
        for that brukare at that instant. Looks ``horizon_s`` seconds ahead and sleeps until the
        next instant, so the change comes within milliseconds of it; any change on the bus (a
        write here or, through NOTIFY, elsewhere) makes it look again at once. Runs until
        cancelled; after a failed read it tries again by ``backoff``."""
        with contextlib.closing(self.bus.subscribe()) as woken:
            await self._watch_schedule(woken, horizon_s, Retry(backoff))

    async def _watch_schedule(
        self, woken: ChangeSubscription, horizon_s: float, retry: Retry
    ) -> None:
        last = self._clock()
        while True:
            now = self._clock()
            try:
                upcoming = await self.store.transitions(
                    after=last, until=now + timedelta(seconds=horizon_s)
                )
                due = sorted({rid for rid, t in upcoming if t <= now})
                bases = await self.store.bases(due) if due else {}
            except StoreUnavailable:
                log.warning("consent_schedule_unavailable")
                await retry.failed()
                continue
            except Exception:  # the task's boundary: keep watching after a bug or bad row
                log.exception("consent_schedule_failed")
                await retry.failed()
                continue
            retry.reset()
            for rid in due:
                devices = rules.devices_at(bases[rid], now) if rid in bases else ()
                self.bus.publish(
                    ConsentChange(
                        event_id=uuid.uuid4().hex,
                        kind=ChangeKind.SCHEDULED,
                        recipient_id=rid,
                        device_ids=devices,
                        at=now,
                    )
                )
            if due:
                log.info("consent_scheduled_changes", recipients=len(due))
            last = now
            ahead = [t for _, t in upcoming if t > now]
            wait_s = (min(ahead) - now).total_seconds() if ahead else horizon_s
            with contextlib.suppress(TimeoutError):
                await woken.get(min(max(wait_s, _MIN_WAIT_S), horizon_s))
            woken.clear()  # one look covers every change that came meanwhile

    async def listen_notify(
        self,
        pool: asyncpg.Pool,
        *,
        ready: asyncio.Event | None = None,
        backoff: Backoff = LISTEN_BACKOFF,
        ping_s: float = 30.0,
    ) -> None:
        """LISTEN for changes from every process until cancelled (:func:`kernel.listen.listen`:
        one pooled connection, pinged every ``ping_s`` seconds, listened to again after a loss by
        ``backoff``), and after a loss publish a ``resync``. Sets ``ready`` once listening."""
        await kernel_listen.listen(
            pool,
            CHANNEL,
            self._on_notify,
            name="consent",
            on_listening=self._on_listening,
            ready=ready,
            backoff=backoff,
            ping_s=ping_s,
        )

    async def _on_listening(self, resumed: bool) -> None:
        if resumed:
            self.bus.publish(resync_change(self._clock()))
            log.info("consent_listener_resumed")
