"""Signalling's own broker connection: device signalling in, routing between instances.

Subscriptions (``{p}`` is the topic prefix):

- ``$share/hc-signal/{p}/dev/+/webrtc/out``: each device message reaches exactly one signalling
  process of the group, which checks it against the session rows and routes it on (only when
  ``handle_devices``);
- ``{p}/dev/+/event`` and ``{p}/dev/+/status``: every process sees call answers and presence, and
  acts on the sessions it holds;
- ``{p}/server/signal/{instance}``: messages routed to this process by another one.

The caller owns nothing here but the handlers; the bus reconnects with backoff and re-subscribes.
Handlers run one message at a time, so one device's messages keep their order.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType

import aiomqtt
import structlog

from devices import topics
from devices.errors import PayloadError
from services.mqtt import client_args

log = structlog.get_logger(__name__)

DeviceHandler = Callable[[str, bytes], Awaitable[None]]
RoutedHandler = Callable[[bytes], Awaitable[None]]
SHARE_GROUP = "hc-signal"


def route_topic(prefix: str, instance_id: str) -> str:
    return f"{prefix}/server/signal/{instance_id}"


class BusUnavailable(ConnectionError):
    """The broker is not connected right now."""


@dataclass(frozen=True, slots=True)
class BusHandlers:
    device_signal: DeviceHandler
    device_event: DeviceHandler
    device_status: DeviceHandler
    routed: RoutedHandler


class SignalBus:
    """An aiomqtt client with a reconnect loop; ``publish`` raises ``BusUnavailable`` offline."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        instance_id: str,
        keepalive_s: int,
        handlers: BusHandlers,
        handle_devices: bool = True,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.instance_id = instance_id
        self.keepalive_s = keepalive_s
        self.handle_devices = handle_devices
        self.connected = asyncio.Event()
        self._handlers = handlers
        self._prefix_hash = f"{zlib.crc32(prefix.encode()):08x}"  # unique per prefix on a broker
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None

    def _filters(self) -> list[str]:
        p = self.prefix
        found = [
            f"{p}/dev/+/{topics.Channel.STATUS.value}",
            f"{p}/dev/+/{topics.Channel.EVENT.value}",
            route_topic(p, self.instance_id),
        ]
        if self.handle_devices:
            found.append(f"$share/{SHARE_GROUP}/{p}/dev/+/{topics.Channel.WEBRTC_OUT.value}")
        return found

    async def publish(self, topic: str, payload: bytes) -> None:
        client = self._client
        if client is None or not self.connected.is_set():
            raise BusUnavailable("the MQTT broker is not connected")
        try:
            await client.publish(topic, payload, qos=1, timeout=5)
        except aiomqtt.MqttError as e:
            raise BusUnavailable(str(e)) from e

    async def publish_to_device(self, device_id: str, payload: bytes) -> None:
        await self.publish(topics.topic(self.prefix, device_id, topics.Channel.WEBRTC_IN), payload)

    async def __aenter__(self) -> SignalBus:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="signal-bus")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            try:
                async with aiomqtt.Client(
                    **client_args(self.url),  # type: ignore[arg-type]
                    identifier=f"homecare-signal-{self.instance_id}-{self._prefix_hash}",
                    keepalive=self.keepalive_s,
                    clean_session=True,
                    timeout=10,
                ) as client:
                    self._client = client
                    for name in self._filters():
                        await client.subscribe(name, qos=1)
                    self.connected.set()
                    backoff = 0.2
                    log.info("signal_bus_connected", instance_id=self.instance_id)
                    async for message in client.messages:
                        payload = message.payload
                        data = (
                            bytes(payload)
                            if isinstance(payload, bytes | bytearray)
                            else str(payload or "").encode()
                        )
                        await self._dispatch(message.topic.value, data)
            except aiomqtt.MqttError as e:
                if self.connected.is_set():
                    log.warning("signal_bus_disconnected", error=str(e))
                self.connected.clear()
                self._client = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _dispatch(self, name: str, payload: bytes) -> None:
        try:
            if name == route_topic(self.prefix, self.instance_id):
                await self._handlers.routed(payload)
                return
            topic = topics.parse_topic(self.prefix, name)
            match topic.channel:
                case topics.Channel.WEBRTC_OUT:
                    await self._handlers.device_signal(topic.device_id, payload)
                case topics.Channel.EVENT:
                    await self._handlers.device_event(topic.device_id, payload)
                case topics.Channel.STATUS:
                    await self._handlers.device_status(topic.device_id, payload)
                case _:
                    pass
        except PayloadError as e:
            log.info("signal_bus_message_rejected", reason=e.reason, detail=e.detail)
        except Exception:
            log.exception("signal_bus_handler_failed")
