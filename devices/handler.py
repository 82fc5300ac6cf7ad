"""MQTT adapter of the registry: decode, apply the pure state change, store, announce.

Each message is decoded by ``devices.topics``, applied by ``devices.registry`` under a row lock and
stored in one transaction; a presence change is then handed to ``on_presence`` (the in-process
event bus), and told to every process as a notice of the device feed (``devices.feed``), sent in
the same transaction. Anything refused is counted by reason in ``rejected`` and logged; nothing
changes. What was stored is counted by channel in ``stored``.

:meth:`DeviceHandler.handle_batch` does the same for a batch of messages (``devices.intake``):
one transaction that locks the batch's devices in one query, applies each message in arrival
order (a device's messages one after the other, each on the record the previous one left) and
writes every changed record and every notice in one statement.

A device first heard of is stored quarantined. At most :data:`QUARANTINE_CAP_PER_HOUR` new
devices are stored per hour (a window that opens with the first new device), so a flood of
made-up device ids cannot grow the table without bound: beyond the cap a new device's message is
dropped, counted as ``rejected["quarantine_full"]`` (``homecare_mqtt_rejected_total`` on
``/metrics``) and logged once per window (``device_quarantine_capped``). A dropped device is
stored when it announces itself again after the window (it re-announces when the backend's
``server/status`` goes online, or on reconnect). Known devices are never held back. The count
is per process.

A command's ack on its device's ``cmd/ack`` releases this process's waiting sender
(``Commands.send``) first, and is stored afterwards in a task of its own (retried while the
database is down), so a slow or locked ``device_commands`` row holds back neither the sender nor
the device's next message on its lane. Only an ack on the topic of the device the command was
sent to releases it; any other ack is stored (or refused as ``unknown_command``) as every
process stores acks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

import asyncpg
import structlog

from devices import feed, registry, store, topics
from devices.errors import PayloadError
from kernel.clock import Clock
from kernel.outages import UNAVAILABLE
from kernel.retry import DB_WRITE_RETRY, retry

log = structlog.get_logger(__name__)

EventHook = Callable[[str, topics.Event, datetime], Awaitable[None]]
HealthFlagsHook = Callable[[str, tuple[str, ...], datetime], Awaitable[None]]
"""Told the health flags that turned on (``registry.health_flags_on``) after they are stored."""

QUARANTINE_CAP_PER_HOUR = 1000
"""New (quarantined) devices stored per hour at most. Far above any real installation rate, and
above the largest first-connect burst of the benchmarks (``bench.reconnect``: 1000 devices);
tests inject a small cap."""
QUARANTINE_WINDOW = timedelta(hours=1)


class DeviceHandler:
    """Handles every device channel except signalling (``webrtc/out``), which signalling owns."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        clock: Clock,
        on_presence: Callable[[registry.PresenceChanged], None],
        on_event: EventHook | None = None,
        on_health_flags: HealthFlagsHook | None = None,
        quarantine_cap_per_hour: int = QUARANTINE_CAP_PER_HOUR,
    ) -> None:
        if quarantine_cap_per_hour < 0:
            raise ValueError("quarantine_cap_per_hour must be 0 or more")
        self._pool = pool
        self._clock = clock
        self._on_presence = on_presence
        self._on_event = on_event
        self._on_health_flags = on_health_flags
        self.rejected: Counter[str] = Counter()
        self.stored: Counter[str] = Counter()  # messages stored (or applied), by channel
        self.quarantine_cap_per_hour = quarantine_cap_per_hour
        self._window_start: datetime | None = None
        self._window_new = 0
        # command id -> (the device it was sent to, its sender's waiter)
        self._acks: dict[str, tuple[str, asyncio.Future[topics.CommandAck]]] = {}
        self._storing: set[asyncio.Task[None]] = set()  # acks released, being stored
        self._sweep_after: tuple[datetime, float] | None = None  # (connected at, grace_s)
        self._sweep_wanted = asyncio.Event()

    def reject(self, reason: str, device_id: str | None, detail: str) -> None:
        """Count a refused message (also called by the MQTT link for topic errors)."""
        self.rejected[reason] += 1

    def _admit_new(self, device_id: str) -> bool:
        """Whether one more new device may be stored in this window (counts it if so)."""
        now = self._clock()
        if self._window_start is None or now - self._window_start >= QUARANTINE_WINDOW:
            self._window_start, self._window_new = now, 0
        if self._window_new < self.quarantine_cap_per_hour:
            self._window_new += 1
            return True
        self.rejected["quarantine_full"] += 1
        if self._window_new == self.quarantine_cap_per_hour:  # the first drop of this window
            self._window_new += 1
            log.warning(
                "device_quarantine_capped",
                device_id=device_id,
                cap=self.quarantine_cap_per_hour,
                window_s=QUARANTINE_WINDOW.total_seconds(),
                window_start=self._window_start.isoformat(),
            )
        return False

    async def _apply(
        self, device_id: str, step: Callable[[registry.DeviceRecord | None], registry.Applied]
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            current = await store.get(conn, device_id, for_update=True)
            applied = step(current)
            if applied.rejected:
                raise PayloadError(applied.rejected, "refused by the registry")
            if applied.record is not None:
                if current is None and not self._admit_new(device_id):
                    return  # over the cap: dropped, counted, logged once per window
                await store.put(conn, applied.record)
            if applied.change is not None:
                await store.notify(conn, [feed.presence_notice(applied.change)])
        if applied.change is not None:
            log.info(
                "device_presence_changed",
                device_id=device_id,
                presence=applied.change.presence.value,
                session=applied.change.session,
            )
            self._on_presence(applied.change)

    async def handle(self, topic: topics.Topic, payload: bytes) -> None:
        now = self._clock()
        device_id = topic.device_id
        match topic.channel:
            case topics.Channel.STATUS:
                status = topics.decode_status(payload, device_id)
                await self._apply(
                    device_id, lambda r: registry.apply_status(r, device_id, status, now)
                )
                self.stored[topic.channel.value] += 1
            case topics.Channel.META:
                meta = topics.decode_meta(payload, device_id)
                await self._apply(device_id, lambda r: registry.apply_meta(r, device_id, meta, now))
                self.stored[topic.channel.value] += 1
            case topics.Channel.HEALTH:
                health = topics.decode_health(payload, device_id)
                turned_on: list[tuple[str, ...]] = []

                def step(r: registry.DeviceRecord | None) -> registry.Applied:
                    # read under the row lock: of two reports racing, one sees the other's flags
                    turned_on.append(registry.health_flags_on(r.health if r else None, health))
                    return registry.apply_health(r, device_id, health, now)

                await self._apply(device_id, step)
                self.stored[topic.channel.value] += 1
                if turned_on and turned_on[-1] and self._on_health_flags is not None:
                    log.info("device_health_flags_on", device_id=device_id, flags=turned_on[-1])
                    await self._on_health_flags(device_id, turned_on[-1], now)
            case topics.Channel.EVENT:
                event = topics.decode_event(payload, device_id)
                if await store.get(self._pool, device_id) is None:
                    raise PayloadError("unknown_device", "event from a device never announced")
                log.info("device_event_received", device_id=device_id, type=event.type.value)
                if (call := _call(device_id, event, now)) is not None:
                    await store.notify(self._pool, [feed.call_notice(call)])
                self.stored[topic.channel.value] += 1
                if self._on_event is not None:
                    await self._on_event(device_id, event, now)
            case topics.Channel.CMD_ACK:
                ack = topics.decode_ack(payload)
                if self._release(ack, device_id):
                    # this process sent it to this device: the sender goes on at once, and the
                    # ack is stored beside the lane, so a slow or failing write holds back
                    # neither the command nor the device's next message (its answer, say)
                    task = asyncio.create_task(self._store_ack(ack, device_id))
                    self._storing.add(task)
                    task.add_done_callback(self._storing.discard)
                    return
                # every backend process hears every ack: the first stores it, and the sender
                # resolves its waiter whichever process that was
                await self._record_ack(ack, device_id)
            case _:
                raise PayloadError("bad_topic", f"the registry does not take {topic.channel}")

    async def handle_batch(
        self, batch: Sequence[tuple[topics.Topic, bytes]], *, defer_unknown: bool = False
    ) -> list[bool | None]:
        """Handle ``status``, ``meta``, ``health`` and ``event`` messages in one transaction;
        for each, whether it was handled (``False``: refused, counted in ``rejected``). With
        ``defer_unknown``, a ``health`` or ``event`` of a device not on record is neither
        (``None``): its birth may be in another process's batch, so the caller tries it again
        later. A failure of the database raises and changes nothing (the caller retries the
        batch)."""
        now = self._clock()
        handled: list[bool | None] = [False] * len(batch)
        decoded: list[tuple[int, str, Decoded]] = []
        for i, (topic, payload) in enumerate(batch):
            try:
                decoded.append((i, topic.device_id, _decode(topic, payload)))
            except PayloadError as e:
                self._refused(e.reason, topic.device_id, e.detail)
        changes: list[registry.PresenceChanged] = []
        flags: list[tuple[str, tuple[str, ...]]] = []
        events: list[tuple[str, topics.Event]] = []
        async with self._pool.acquire() as conn, conn.transaction():
            current: dict[str, registry.DeviceRecord | None] = dict(
                await store.get_many(conn, sorted({d for _, d, _ in decoded}))
            )
            changed: dict[str, registry.DeviceRecord] = {}
            notices: list[str] = []
            for i, device_id, message in decoded:
                record = current.get(device_id)
                if (
                    record is None
                    and defer_unknown
                    and isinstance(message, topics.Health | topics.Event)
                ):
                    handled[i] = None
                    continue
                if isinstance(message, topics.Event):
                    if record is None:
                        self._refused(
                            "unknown_device", device_id, "event from a device never announced"
                        )
                        continue
                    events.append((device_id, message))
                    if (call := _call(device_id, message, now)) is not None:
                        notices.append(feed.call_notice(call))
                    handled[i] = True
                    continue
                turned: tuple[str, ...] = ()
                if isinstance(message, topics.Health):
                    turned = registry.health_flags_on(record.health if record else None, message)
                applied = _step(record, device_id, message, now)
                if applied.rejected:
                    self._refused(applied.rejected, device_id, "refused by the registry")
                    continue
                if applied.record is not None:
                    if record is None and not self._admit_new(device_id):
                        continue  # over the cap: dropped, counted, logged once per window
                    current[device_id] = changed[device_id] = applied.record
                if applied.change is not None:
                    changes.append(applied.change)
                    notices.append(feed.presence_notice(applied.change))
                if turned:
                    flags.append((device_id, turned))
                handled[i] = True
            if changed or notices:
                await store.put_many(conn, list(changed.values()), notices)
        self.stored.update(
            topic.channel.value for (topic, _), ok in zip(batch, handled, strict=True) if ok
        )
        await self._after_batch(changes, flags, events, now)
        return handled

    async def _after_batch(
        self,
        changes: list[registry.PresenceChanged],
        flags: list[tuple[str, tuple[str, ...]]],
        events: list[tuple[str, topics.Event]],
        now: datetime,
    ) -> None:
        """A committed batch's hooks, in the batch's order: presence, health flags, events."""
        for change in changes:
            log.info(
                "device_presence_changed",
                device_id=change.device_id,
                presence=change.presence.value,
                session=change.session,
            )
            self._on_presence(change)
        for device_id, on in flags:
            if self._on_health_flags is not None:
                log.info("device_health_flags_on", device_id=device_id, flags=on)
                await self._on_health_flags(device_id, on, now)
        for device_id, event in events:
            log.info("device_event_received", device_id=device_id, type=event.type.value)
            if self._on_event is not None:
                await self._on_event(device_id, event, now)

    def _refused(self, reason: str, device_id: str | None, detail: str) -> None:
        log.warning("mqtt_message_rejected", reason=reason, device_id=device_id, detail=detail)
        self.reject(reason, device_id, detail)

    async def sweep_silent(self, since: datetime) -> list[str]:
        """Mark offline every online device not heard from since ``since`` (see
        ``registry.mark_silent``); returns their ids."""
        now = self._clock()
        ids = [
            r["device_id"]
            for r in await self._pool.fetch(
                "SELECT device_id FROM devices WHERE presence = 'online'"
                " AND (last_seen IS NULL OR last_seen < $1)",
                since,
            )
        ]
        for device_id in ids:
            await self._apply(
                device_id,
                lambda r: (
                    registry.mark_silent(r, since, now) if r is not None else registry.Applied(None)
                ),
            )
        if ids:
            log.warning("devices_silent_after_reconnect", count=len(ids))
        return ids

    def link_connected(self, grace_s: float) -> None:
        """The backend's MQTT link (re)connected: devices re-announce on ``server/status``;
        after ``grace_s`` those that did not are swept offline by :meth:`run_sweep`."""
        self._sweep_after = (self._clock(), grace_s)
        self._sweep_wanted.set()

    async def run_sweep(self) -> None:
        """Sweep silent devices after each (re)connect of the link, until cancelled. The
        composition root runs it as a supervised task (``device-sweep``): a crash is reported,
        not lost. A database outage is logged and the sweep waits for the next connect."""
        while True:
            await self._sweep_wanted.wait()
            self._sweep_wanted.clear()
            assert self._sweep_after is not None
            since, grace_s = self._sweep_after
            # Loop time: the grace is the devices' network round trip to re-announce, not a
            # deadline of the night. A newer connect starts the grace again.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace_s):
                    await self._sweep_wanted.wait()
            if self._sweep_wanted.is_set():
                continue
            try:
                await self.sweep_silent(since)
            except (OSError, asyncpg.PostgresError):
                log.exception("device_sweep_failed")

    def expect_ack(self, command_id: str, device_id: str) -> asyncio.Future[topics.CommandAck]:
        """A waiter for the ack of ``command_id``, sent to ``device_id``: only an ack on that
        device's own ``cmd/ack`` topic resolves it (one device cannot ack another's command)."""
        fut: asyncio.Future[topics.CommandAck] = asyncio.get_running_loop().create_future()
        self._acks[command_id] = (device_id, fut)
        return fut

    def forget_ack(self, command_id: str) -> None:
        self._acks.pop(command_id, None)

    def _release(self, ack: topics.CommandAck, device_id: str) -> bool:
        """Resolve the waiter of a command this process sent to ``device_id``; ``False`` (the
        waiter, if any, left waiting) for any other ack."""
        pending = self._acks.get(ack.id)
        if pending is None or pending[0] != device_id:
            return False
        del self._acks[ack.id]
        if not pending[1].done():
            pending[1].set_result(ack)
        return True

    async def _record_ack(self, ack: topics.CommandAck, device_id: str) -> None:
        recorded = await store.record_ack(self._pool, ack.id, device_id, ack.ok, ack.detail)
        if not recorded and not await store.command_sent(self._pool, ack.id, device_id):
            raise PayloadError("unknown_command", "ack for a command never sent")

    async def _store_ack(self, ack: topics.CommandAck, device_id: str) -> None:
        """Store an ack already handed to its sender, retrying while the database is down (as
        the link would have retried the message); a failure is logged, never raised."""
        try:
            await retry(
                lambda: self._record_ack(ack, device_id), DB_WRITE_RETRY, retry_on=UNAVAILABLE
            )
        except PayloadError as e:  # the command's row went (its device was deleted)
            self.reject(e.reason, device_id, e.detail)
        except Exception:  # a task's boundary: logged, the process goes on
            log.exception("device_ack_store_failed", device_id=device_id)

    async def acks_stored(self, timeout_s: float | None = None) -> None:
        """Wait until every ack handed to its sender so far is stored (or its storing failed);
        with ``timeout_s``, at most that long (shutdown: those still storing are left)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self._storing:
                    await asyncio.wait(set(self._storing))


REGISTRY_CHANNELS = (
    topics.Channel.STATUS,
    topics.Channel.META,
    topics.Channel.HEALTH,
    topics.Channel.EVENT,
    topics.Channel.CMD_ACK,
)


Decoded = topics.Status | topics.Meta | topics.Health | topics.Event
BATCH_CHANNELS = (
    topics.Channel.STATUS,
    topics.Channel.META,
    topics.Channel.HEALTH,
    topics.Channel.EVENT,
)
"""The channels :meth:`DeviceHandler.handle_batch` takes (the shared intake's)."""


def _decode(topic: topics.Topic, payload: bytes) -> Decoded:
    match topic.channel:
        case topics.Channel.STATUS:
            return topics.decode_status(payload, topic.device_id)
        case topics.Channel.META:
            return topics.decode_meta(payload, topic.device_id)
        case topics.Channel.HEALTH:
            return topics.decode_health(payload, topic.device_id)
        case topics.Channel.EVENT:
            return topics.decode_event(payload, topic.device_id)
        case _:
            raise PayloadError("bad_topic", f"the intake does not take {topic.channel}")


def _step(
    record: registry.DeviceRecord | None,
    device_id: str,
    message: topics.Status | topics.Meta | topics.Health,
    at: datetime,
) -> registry.Applied:
    if isinstance(message, topics.Status):
        return registry.apply_status(record, device_id, message, at)
    if isinstance(message, topics.Meta):
        return registry.apply_meta(record, device_id, message, at)
    return registry.apply_health(record, device_id, message, at)


def _call(device_id: str, event: topics.Event, at: datetime) -> feed.CallEvent | None:
    """A call answer or decline to tell every process (signalling acts where the call is)."""
    if event.type not in feed.CALL_EVENTS or event.session_id is None:
        return None
    return feed.CallEvent(device_id, event.type, event.session_id, at)
