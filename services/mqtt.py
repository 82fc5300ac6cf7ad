"""The backend's MQTT link: one client, a reconnect loop, birth/will, and per-channel dispatch.

The process has one broker connection, and this is it: the device registry, the command acks
and signalling (its device channels, a shared subscription for ``webrtc/out``, and the topic
other processes route to it) each register their subscriptions here; one reconnect loop
re-subscribes them all before the link counts as connected.

The backend publishes ``{prefix}/server/status`` = online (retained) on every connect, with a
retained ``offline`` will; devices re-announce when they see it go online. Messages are handled
in lanes: a device always maps to the same lane, and a lane awaits its handlers one message at a
time, so a device's messages are handled in order while other devices' messages are handled
beside them (each is a database transaction). A full lane holds the link's loop back (aiomqtt's
own queue then keeps what paho reads: paho acknowledges a QoS 1 message as it reads it, before any
handler saw it). A handler that raises is logged and the link goes on.

A *sink* (:meth:`MqttLink.subscribe_sink`, the shared device intake's) takes its channels' messages
on the read path itself: aiomqtt hands each message paho has read to its incoming queue, and the
link's queue (``Inbox``, given as aiomqtt's ``queue_type``) gives a sink's message to the sink at
once, in arrival order, without a task, a future, a lane or an await per message (what the link's
loop costs each message is about what storing a message in a batch costs). A sink only queues: it
must neither block nor await. The guarantee is the same as a handler's: acknowledged to the broker
when read, kept in the process's memory until stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import zlib
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt
import structlog

from devices import topics
from devices.errors import PayloadError
from kernel.outages import UNAVAILABLE
from kernel.ratelimit import RateLimiter
from kernel.retry import DB_WRITE_RETRY, Backoff, Retry, retry

log = structlog.get_logger(__name__)

Handler = Callable[[topics.Topic, bytes], Awaitable[None]]
#: Takes a device message on the link's read path, in arrival order; never blocks or awaits
#: (``subscribe_sink``; ``devices.intake.Intake.offer``).
Sink = Callable[[topics.Topic, bytes], None]
#: A handler of one exact, non-device topic (signalling's route from other processes).
TopicHandler = Callable[[bytes], Awaitable[None]]
RejectHook = Callable[[str, str | None, str], None]
#: Told a device message's channel and the seconds from its arrival here (loop time) to one
#: handler having handled it (``subscribe(..., observe=)``; the registry lag on ``/metrics``).
HandledHook = Callable[[topics.Channel, float], None]
#: Wraps a long-running coroutine of the link (``services.supervisor.Supervisor.guard``).
Guard = Callable[[str, Coroutine[Any, Any, None]], Coroutine[Any, Any, None]]


RECONNECT = Backoff(first_s=0.2, factor=2.0, max_s=5.0)
"""Reconnecting to the broker: 0.2 s, 0.4 s ... at most 5 s; from 0.2 s again once connected."""


NO_DELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
"""The socket option of every broker connection (``client_args``): TCP_NODELAY."""


PARSED_TOPICS = 65536
"""Device topics a link keeps parsed for its sinks (four channels of 16,384 devices; then it
starts again)."""


class MqttUnavailable(ConnectionError):
    """The broker is not connected right now."""


def client_args(url: str) -> dict[str, object]:
    """aiomqtt ``Client`` keyword arguments for an ``mqtt://`` or ``mqtts://`` URL."""
    parts = urlsplit(url)
    args: dict[str, object] = {
        "hostname": parts.hostname or "127.0.0.1",
        "port": parts.port or (8883 if parts.scheme == "mqtts" else 1883),
        # Every packet at once: without it Nagle holds a publish that follows a PUBACK until
        # the broker's delayed ACK (40 ms on Linux), twice per command round trip.
        "socket_options": (NO_DELAY,),
    }
    if parts.username:
        args["username"] = unquote(parts.username)
        args["password"] = unquote(parts.password or "")
    if parts.scheme == "mqtts":
        args["tls_context"] = ssl.create_default_context()
    return args


class MqttLink:
    """Owns the backend's broker connection for the life of the process."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        keepalive_s: int,
        instance_id: str,
        on_reject: RejectHook | None = None,
        on_connect: Callable[[], None] | None = None,
        lanes: int = 4,
        lane_depth: int = 200,
        guard: Guard | None = None,
    ) -> None:
        """``guard`` wraps the link's loops so that a crash is reported (the supervisor);
        the link still ends them itself, after publishing ``stopped``."""
        if lanes < 1 or lane_depth < 1:
            raise ValueError("lanes and lane_depth are at least 1")
        self.url = url
        self._guard = guard
        self._on_connect = on_connect
        self.prefix = prefix
        self.keepalive_s = keepalive_s
        self.instance_id = instance_id
        self.connected = asyncio.Event()
        self.reconnected_at: float | None = None  # event loop time of the last reconnect
        self._handlers: dict[topics.Channel, list[Handler]] = {}
        self._sinks: dict[topics.Channel, list[Sink]] = {}
        self._inbox = _inbox_of(self)
        self._parsed: dict[str, topics.Topic] = {}  # a sink's topics, parsed once
        self._channel_filters: dict[topics.Channel, str] = {}
        self._topic_handlers: dict[str, list[TopicHandler]] = {}
        self._subscribed: set[str] = set()  # filters subscribed on the current connection
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._observers: dict[Handler, HandledHook] = {}
        self._lanes: list[asyncio.Queue[tuple[topics.Topic | str, bytes, float]]] = [
            asyncio.Queue(lane_depth) for _ in range(lanes)
        ]
        self._lane_tasks: list[asyncio.Task[None]] = []
        self._on_reject = on_reject
        self.messages_in = 0
        self.retried = 0  # handler retries while a backing service was unreachable
        self.handler_retry = DB_WRITE_RETRY  # given up: the message is dropped, counted unavailable
        # Per device: 20 messages/s, bursts of 100 (a re-announce is 2-3); a flood is dropped
        # and counted as rate_limited, so one device cannot starve the others' handling.
        # Presence (``status``) is never dropped: a lost will would leave a device "online".
        self.device_limit = RateLimiter(
            20, 100, event="mqtt_device_rate_limited", describe=lambda d: {"device_id": d}
        )

    @property
    def identifier(self) -> str:
        """The MQTT client id: one per instance and topic prefix on a broker."""
        return f"homecare-{self.instance_id}-{zlib.crc32(self.prefix.encode()):08x}"

    def subscribe(
        self,
        channel: topics.Channel,
        handler: Handler,
        *,
        share_group: str | None = None,
        observe: HandledHook | None = None,
    ) -> None:
        """Call ``handler`` for every message on ``{prefix}/dev/+/{channel}``; with
        ``share_group``, as a shared subscription (each message reaches one process of the
        group). Every user of a channel must agree on ``share_group``. ``observe`` is told how
        long each message took from its arrival to ``handler`` having handled it (not when it
        refused it)."""
        if channel in self._sinks:
            raise ValueError(f"{channel.value} is taken by a sink")
        self._channel_filter(channel, share_group)
        self._handlers.setdefault(channel, []).append(handler)
        if observe is not None:
            self._observers[handler] = observe
        self._subscribe_late()

    def subscribe_sink(
        self, channel: topics.Channel, sink: Sink, *, share_group: str | None = None
    ) -> None:
        """Give every message on ``{prefix}/dev/+/{channel}`` to ``sink`` on the read path (see
        the module docstring): parsed, rate-limited and refused as for a handler, in arrival
        order, with no lane. A channel has sinks or handlers, not both."""
        if channel in self._handlers:
            raise ValueError(f"{channel.value} is taken by handlers")
        self._channel_filter(channel, share_group)
        self._sinks.setdefault(channel, []).append(sink)
        self._subscribe_late()

    def _channel_filter(self, channel: topics.Channel, share_group: str | None) -> None:
        name = f"{self.prefix}/dev/+/{channel.value}"
        if share_group is not None:
            name = f"$share/{share_group}/{name}"
        if self._channel_filters.setdefault(channel, name) != name:
            raise ValueError(
                f"{channel.value} is already subscribed as {self._channel_filters[channel]}"
            )

    def subscribe_topic(self, topic: str, handler: TopicHandler) -> None:
        """Call ``handler`` with the payload of every message on the exact ``topic``."""
        if any(c in topic for c in "+#") or topic.startswith("$"):
            raise ValueError("subscribe_topic takes an exact topic")
        self._topic_handlers.setdefault(topic, []).append(handler)
        self._subscribe_late()

    def unsubscribe(self, handler: Handler | TopicHandler | Sink) -> None:
        """Stop calling ``handler``; a filter nobody handles any more is unsubscribed."""
        gone: list[str] = []
        self._observers.pop(handler, None)  # type: ignore[arg-type]
        channels: list[dict[topics.Channel, list[Any]]] = [self._handlers, self._sinks]
        for by_channel in channels:
            for channel, found in list(by_channel.items()):
                if handler in found:
                    found.remove(handler)
                if not found:
                    del by_channel[channel]
                    gone.append(self._channel_filters.pop(channel))
        for topic, found_t in list(self._topic_handlers.items()):
            if handler in found_t:
                found_t.remove(handler)
            if not found_t:
                del self._topic_handlers[topic]
                gone.append(topic)
        client = self._client
        for name in gone:
            self._subscribed.discard(name)
            if client is not None and self.connected.is_set():
                self._background(client.unsubscribe(name))

    def _filters(self) -> list[str]:
        return [*self._channel_filters.values(), *self._topic_handlers]

    def _subscribe_late(self) -> None:
        if self._client is not None and self.connected.is_set():
            self._background(self.subscribed())

    def _background(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def subscribed(self) -> None:
        """While connected: make sure every registered filter is subscribed (a user that
        subscribes after the link connected awaits this before it counts as ready)."""
        client = self._client
        if client is None or not self.connected.is_set():
            return  # the reconnect loop subscribes everything before it sets ``connected``
        with contextlib.suppress(aiomqtt.MqttError):
            await self._subscribe_all(client)

    async def _subscribe_all(self, client: aiomqtt.Client) -> None:
        while pending := [f for f in self._filters() if f not in self._subscribed]:
            for name in pending:
                await client.subscribe(name, qos=1)
                self._subscribed.add(name)

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        timeout_s: float = 10.0,
    ) -> None:
        client = self._client
        if client is None or not self.connected.is_set():
            raise MqttUnavailable("the MQTT broker is not connected")
        try:
            await client.publish(topic, payload, qos=qos, retain=retain, timeout=timeout_s)
        except aiomqtt.MqttError as e:
            raise MqttUnavailable(str(e)) from e

    async def __aenter__(self) -> MqttLink:
        loop = asyncio.get_running_loop()
        self._lane_tasks = [
            loop.create_task(
                self._guarded(f"mqtt-lane-{i}", self._drain(lane)), name=f"mqtt-lane-{i}"
            )
            for i, lane in enumerate(self._lanes)
        ]
        self._task = loop.create_task(self._guarded("mqtt-link", self._run()), name="mqtt-link")
        return self

    def _guarded(self, name: str, coro: Coroutine[Any, Any, None]) -> Coroutine[Any, Any, None]:
        return coro if self._guard is None else self._guard(name, coro)

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        client = self._client
        if client is not None and self.connected.is_set():
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await client.publish(
                    topics.server_status_topic(self.prefix),
                    topics.server_status(topics.Presence.STOPPED, self.instance_id),
                    qos=1,
                    retain=True,
                    timeout=2,
                )
        for task in (self._task, *self._lane_tasks):
            if task is not None:
                task.cancel()
                await asyncio.wait({task})  # a cancellation of the caller is not swallowed
                if not task.cancelled() and (error := task.exception()) is not None:
                    log.error("mqtt_task_failed", task=task.get_name(), error=repr(error))

    async def _run(self) -> None:
        reconnect = Retry(RECONNECT, clock=asyncio.get_running_loop().time)
        was_connected = False
        status_topic = topics.server_status_topic(self.prefix)
        while True:
            try:
                async with aiomqtt.Client(
                    **client_args(self.url),  # type: ignore[arg-type]
                    identifier=self.identifier,
                    keepalive=self.keepalive_s,
                    clean_session=True,
                    timeout=10,
                    queue_type=self._inbox,
                    will=aiomqtt.Will(
                        status_topic,
                        topics.server_status(topics.Presence.OFFLINE, self.instance_id),
                        qos=1,
                        retain=True,
                    ),
                ) as client:
                    self._client = client
                    self._subscribed.clear()
                    await self._subscribe_all(client)
                    await client.publish(
                        status_topic,
                        topics.server_status(topics.Presence.ONLINE, self.instance_id),
                        qos=1,
                        retain=True,
                    )
                    # A user that registered during the awaits above found the link not yet
                    # connected and left its filters to this loop: subscribe them too. No await
                    # between the last look and ``connected.set()``, so every filter registered
                    # before the link counts as connected is subscribed.
                    await self._subscribe_all(client)
                    if was_connected:  # the broker may have restarted: devices reconnect too
                        self.reconnected_at = asyncio.get_running_loop().time()
                    was_connected = True
                    self.connected.set()
                    if self._on_connect is not None:
                        self._on_connect()
                    reconnect.reset()
                    log.info("mqtt_connected", broker=urlsplit(self.url).netloc.rpartition("@")[2])
                    async for message in client.messages:  # what no sink took
                        await self._dispatch(message.topic.value, _payload(message))
            except aiomqtt.MqttError as e:
                if self.connected.is_set():
                    log.warning("mqtt_disconnected", error=str(e))
                self.connected.clear()
                self._client = None
                self._subscribed.clear()
                await reconnect.failed()

    def _take(self, message: aiomqtt.Message) -> bool:
        """On paho's read callback: give a sink's message to its sinks (``True``: taken, or
        refused here); anything else is left to the link's loop (``False``). Never raises: an
        exception here would end the connection."""
        if not self._sinks:
            return False
        name = message.topic.value
        topic = self._parsed.get(name)
        if topic is None:
            try:
                topic = topics.parse_topic(self.prefix, name)
            except PayloadError:
                return False  # the loop refuses it, as any other
            if len(self._parsed) >= PARSED_TOPICS:
                self._parsed.clear()
            self._parsed[name] = topic
        sinks = self._sinks.get(topic.channel)
        if sinks is None:
            return False
        self.messages_in += 1
        if (
            topic.channel is not topics.Channel.STATUS
            and self.device_limit.wait_s(topic.device_id) > 0
        ):
            if self._on_reject is not None:
                self._on_reject("rate_limited", topic.device_id, "too many messages")
            return True
        payload = _payload(message)
        for sink in sinks:
            try:
                sink(topic, payload)
            except Exception:  # the sink's boundary: the link goes on
                log.exception(
                    "mqtt_handler_failed", device_id=topic.device_id, channel=topic.channel.value
                )
        return True

    async def _dispatch(self, name: str, payload: bytes) -> None:
        self.messages_in += 1
        arrived = asyncio.get_running_loop().time()
        if name in self._topic_handlers:  # one lane per topic keeps its messages in order
            lane = self._lanes[zlib.crc32(name.encode()) % len(self._lanes)]
            await lane.put((name, payload, arrived))
            return
        try:
            topic = topics.parse_topic(self.prefix, name)
        except PayloadError as e:
            self.reject(e.reason, None, e.detail)
            return
        if (
            topic.channel is not topics.Channel.STATUS
            and self.device_limit.wait_s(topic.device_id) > 0
        ):
            if self._on_reject is not None:
                self._on_reject("rate_limited", topic.device_id, "too many messages")
            return
        lane = self._lanes[zlib.crc32(topic.device_id.encode()) % len(self._lanes)]
        await lane.put((topic, payload, arrived))

    async def _drain(self, lane: asyncio.Queue[tuple[topics.Topic | str, bytes, float]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            topic, payload, arrived = await lane.get()
            try:
                if isinstance(topic, str):
                    for on_topic in list(self._topic_handlers.get(topic, ())):
                        await self._deliver_topic(on_topic, topic, payload)
                else:
                    for handler in list(self._handlers.get(topic.channel, ())):
                        handled = await self._deliver(handler, topic, payload)
                        if handled and (observe := self._observers.get(handler)) is not None:
                            observe(topic.channel, loop.time() - arrived)
            finally:
                lane.task_done()

    async def _deliver_topic(self, handler: TopicHandler, name: str, payload: bytes) -> None:
        try:
            await handler(payload)
        except Exception:  # the handler's boundary: the link goes on
            log.exception("mqtt_handler_failed", topic=name.rsplit("/", 1)[0])

    async def idle(self) -> None:
        """Wait until every message received so far has been handled."""
        for lane in self._lanes:
            await lane.join()

    async def _deliver(self, handler: Handler, topic: topics.Topic, payload: bytes) -> bool:
        """Run one handler, ``True`` once it handled the message. While the database (or another
        backing service) is unreachable, retry it by :attr:`handler_retry` (``DB_WRITE_RETRY``),
        holding later messages back, so a presence change during an outage is not lost and order
        is kept."""

        def retrying(error: BaseException, failures: int, _wait_s: float) -> None:
            if failures == 1:
                log.warning(
                    "mqtt_handler_retrying",
                    device_id=topic.device_id,
                    channel=topic.channel.value,
                    error=type(error).__name__,
                )
            self.retried += 1

        try:
            await retry(
                lambda: handler(topic, payload),
                self.handler_retry,
                retry_on=UNAVAILABLE,
                on_retry=retrying,
                clock=asyncio.get_running_loop().time,
            )
            return True
        except PayloadError as e:
            self.reject(e.reason, topic.device_id, e.detail)
        except UNAVAILABLE as e:
            log.warning(
                "mqtt_message_dropped",
                device_id=topic.device_id,
                channel=topic.channel.value,
                error=type(e).__name__,
            )
            if self._on_reject is not None:
                self._on_reject("unavailable", topic.device_id, "backing service down")
        except Exception:
            log.exception(
                "mqtt_handler_failed", device_id=topic.device_id, channel=topic.channel.value
            )
        return False

    def reject(self, reason: str, device_id: str | None, detail: str) -> None:
        log.warning("mqtt_message_rejected", reason=reason, device_id=device_id, detail=detail)
        if self._on_reject is not None:
            self._on_reject(reason, device_id, detail)


def _payload(message: aiomqtt.Message) -> bytes:
    return bytes(message.payload)  # paho's ``bytes`` as it is (no copy)


def _inbox_of(link: MqttLink) -> type[asyncio.Queue[aiomqtt.Message]]:
    """aiomqtt's incoming queue for ``link``: a sink's message is taken as it is put (on paho's
    read callback); the rest is queued for the link's loop."""

    class Inbox(asyncio.Queue[aiomqtt.Message]):
        def put_nowait(self, item: aiomqtt.Message) -> None:
            if not link._take(item):
                super().put_nowait(item)

    return Inbox
