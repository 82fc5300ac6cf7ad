"""Signalling's subscriptions on the process's one broker connection (:class:`MqttLink`).

Subscriptions (``{p}`` is the topic prefix):

- ``$share/hc-signal/{p}/dev/+/webrtc/out``: each device message reaches exactly one signalling
  process of the group, which checks it against the session rows and routes it on (only when
  ``handle_devices``);
- ``{p}/server/signal/{instance}``: messages routed to this process by another one.

A device's ``status`` and ``event`` are the shared device intake's (``devices.intake``: each
reaches one process); what signalling needs of them, a presence change and a phone's call
answer or decline, reaches every process through the device feed (``devices.feed``), which the
composition root hands to :meth:`~services.signalling.device_side.DeviceSide.on_feed`.

The link reconnects with backoff and re-subscribes; this bus only registers its handlers while
it is entered. A device's messages are handled in order (the link's per-device lanes); a handler
that raises is logged here and the link goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType

import structlog

from devices import topics
from devices.errors import PayloadError
from services.mqtt import MqttLink, MqttUnavailable

log = structlog.get_logger(__name__)

DeviceHandler = Callable[[str, bytes], Awaitable[None]]
RoutedHandler = Callable[[bytes], Awaitable[None]]
SHARE_GROUP = "hc-signal"
#: The device channels signalling reads; ``webrtc/out`` only where it handles devices.
CHANNELS = (topics.Channel.WEBRTC_OUT,)


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
    """Signalling's view of the link; ``publish`` raises ``BusUnavailable`` offline."""

    def __init__(
        self,
        link: MqttLink,
        *,
        instance_id: str,
        handlers: BusHandlers,
        handle_devices: bool = True,
    ) -> None:
        self.link = link
        self.prefix = link.prefix
        self.instance_id = instance_id
        self.handle_devices = handle_devices
        self.connected: asyncio.Event = link.connected
        self._handlers = handlers

    async def publish(self, topic: str, payload: bytes) -> None:
        try:
            await self.link.publish(topic, payload, qos=1, timeout_s=5)
        except MqttUnavailable as e:
            raise BusUnavailable(str(e)) from e

    async def publish_to_device(self, device_id: str, payload: bytes) -> None:
        await self.publish(topics.topic(self.prefix, device_id, topics.Channel.WEBRTC_IN), payload)

    async def __aenter__(self) -> SignalBus:
        """Register the subscriptions; subscribed on the broker before this returns when the
        link is connected, else before the link next counts as connected."""
        for channel in CHANNELS:
            if channel is topics.Channel.WEBRTC_OUT:
                if self.handle_devices:
                    self.link.subscribe(channel, self._on_device, share_group=SHARE_GROUP)
            else:
                self.link.subscribe(channel, self._on_device)
        self.link.subscribe_topic(route_topic(self.prefix, self.instance_id), self._on_routed)
        await self.link.subscribed()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.link.unsubscribe(self._on_device)
        self.link.unsubscribe(self._on_routed)

    async def _on_routed(self, payload: bytes) -> None:
        try:
            await self._handlers.routed(payload)
        except PayloadError as e:
            log.info("signal_bus_message_rejected", reason=e.reason, detail=e.detail)
        except Exception:
            log.exception("signal_bus_handler_failed")

    async def _on_device(self, topic: topics.Topic, payload: bytes) -> None:
        try:
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
