"""A simulated device's MQTT agent: the reference implementation of the device side of the contract.

Birth (``status`` online, retained, QoS 1) with a session number that grows with every connection,
a retained ``offline`` will of the same session, retained ``meta``, periodic ``health``, command
acks (but never of the ops in :attr:`DeviceClient.unacked`), a video phone's ``bind_code``
kept to show (:meth:`DeviceClient.shown_bind_code`), the bind button
(:meth:`DeviceClient.press_bind_button`), re-announcement when the
backend's ``server/status`` goes online, ``stopped`` on a clean exit, and reconnect with
exponential backoff plus jitter.

Nothing a message says ends the device: each command and each ``webrtc/in`` message is handled in
its own task that logs a failure instead of raising it (a failed command is acked ``ok: false``
with ``detail: "failed"``), and a session that still fails for a reason other than the broker is
logged and reconnected like a lost connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from devices import topics
from kernel.retry import Backoff, Retry

CommandHandler = Callable[[topics.Command], Coroutine[Any, Any, tuple[bool, str | None]]]
#: Gets each raw ``webrtc/in`` payload; decoding and refusing are its job (homeside.peer).
SignalHandler = Callable[[bytes], Coroutine[Any, Any, None]]
log = logging.getLogger(__name__)

RECONNECT = Backoff(first_s=0.6, factor=2.0, max_s=12.0, jitter=0.35)
"""Reconnecting: about 0.5 s doubling to about 10 s, each wait 0 to 35 % shorter at random so a
home full of devices that lost the broker together does not come back in step."""


def client_args(url: str) -> dict[str, Any]:
    """aiomqtt ``Client`` keyword arguments for an ``mqtt://`` or ``mqtts://`` URL (TLS verified
    against the default trust store, which ``SSL_CERT_FILE`` can point at a site CA)."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    args: dict[str, Any] = {
        "hostname": parts.hostname or "127.0.0.1",
        "port": parts.port or (8883 if tls else 1883),
        # as docs/device-contract.md asks of a device: the ack of a command is not held behind
        # the PUBACK of that command until the broker's delayed ACK (40 ms)
        "socket_options": ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
    }
    if parts.username:
        args["username"] = unquote(parts.username)
        args["password"] = unquote(parts.password or "")
    if tls:
        args["tls_context"] = ssl.create_default_context()
    return args


@dataclass
class DeviceSpec:
    device_id: str
    kind: topics.DeviceKind
    fw: str = "sim-1.0"
    width: int = 320
    height: int = 240
    fps: float = 5.0
    #: Runs the motion check on its own frames (``probe``; set by ``homeside.home_probe.attach``).
    home_probe: bool = False

    @property
    def caps(self) -> tuple[topics.Capability, ...]:
        home = (topics.Capability.HOME_PROBE,) if self.home_probe else ()
        if self.kind is topics.DeviceKind.VIDEO_PHONE:
            return (
                topics.Capability.VIDEO,
                topics.Capability.AUDIO,
                topics.Capability.DRIVE,
                *home,
            )
        return (topics.Capability.VIDEO, topics.Capability.PRIVACY_SHUTTER, *home)

    def meta(self) -> topics.Meta:
        return topics.Meta(
            kind=self.kind,
            fw=self.fw,
            caps=self.caps,
            video=topics.VideoSpec(self.width, self.height, self.fps),
        )


@dataclass
class DeviceClient:
    """Run with ``await device.run(stop_event)``; hooks let media and call logic plug in."""

    spec: DeviceSpec
    mqtt_url: str
    prefix: str = "hc/v1"
    keepalive_s: int = 5
    health_interval_s: float = 30.0
    on_command: dict[topics.CommandOp, CommandHandler] = field(default_factory=dict)
    on_signal: SignalHandler | None = None
    session: int = 0
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    shutter: topics.Shutter = topics.Shutter.OPEN
    #: Commands this device takes but never acks (a broken unit, for tests of device trouble:
    #: ``{CommandOp.INDICATOR}`` is a camera whose live indicator does not answer).
    unacked: set[topics.CommandOp] = field(default_factory=set)
    started_at: float = field(default_factory=time.monotonic)
    #: The last ``bind_code`` a video phone got: its screen shows the code until it expires
    #: (:meth:`shown_bind_code`), as the installer reads it out to the person confirming.
    bind_code: topics.BindCode | None = None
    #: ``bind_button`` presses published (the installer pressed the unit's button).
    bind_presses: int = 0
    #: A rolling unit's battery (its wheels' driver): reported in health and with every event.
    battery: Callable[[], float | None] | None = None
    _client: aiomqtt.Client | None = None

    @property
    def client_id(self) -> str:
        """``dev-{id}``; under another topic prefix (tests sharing one broker) also a hash of
        it, so the same device id in two prefixes never takes over the other's connection."""
        if self.prefix == "hc/v1":
            return f"dev-{self.spec.device_id}"
        return f"dev-{self.spec.device_id}-{zlib.crc32(self.prefix.encode()):08x}"

    def _topic(self, channel: topics.Channel) -> str:
        return topics.topic(self.prefix, self.spec.device_id, channel)

    def _status(self, state: topics.Presence) -> bytes:
        return topics.Status(state=state, session=self.session, ts=round(time.time(), 3)).encode()

    async def publish(
        self, channel: topics.Channel, payload: bytes, *, retain: bool = False
    ) -> None:
        if self._client is None:
            raise aiomqtt.MqttError("not connected")
        await self._client.publish(self._topic(channel), payload, qos=1, retain=retain)

    async def send_signal(self, envelope: dict[str, Any]) -> None:
        await self.publish(topics.Channel.WEBRTC_OUT, json.dumps(envelope).encode())

    async def send_event(self, event_type: topics.EventType, session_id: str | None = None) -> None:
        battery = None if self.battery is None else self.battery()
        event = topics.Event(
            type=event_type, ts=round(time.time(), 3), session_id=session_id, battery_pct=battery
        )
        await self.publish(topics.Channel.EVENT, event.encode())

    async def press_bind_button(self) -> None:
        """The installer presses the unit's bind button: a ``bind_button`` event, the proof a
        camera gives for its binding (docs/device-contract.md)."""
        await self.send_event(topics.EventType.BIND_BUTTON)
        self.bind_presses += 1

    def shown_bind_code(self, now: float | None = None) -> topics.BindCode | None:
        """The binding code on the screen now (a video phone), or ``None`` once it expired."""
        code = self.bind_code
        if code is None or (time.time() if now is None else now) >= code.expires_at:
            return None
        return code

    async def _show_bind_code(self, command: topics.Command) -> tuple[bool, str | None]:
        """``bind_code``: a video phone shows it (a camera has no screen and refuses it)."""
        if self.spec.kind is not topics.DeviceKind.VIDEO_PHONE:
            return False, "no_screen"
        try:
            self.bind_code = topics.decode_bind_code(command)
        except ValueError as e:
            log.warning("bind_code refused by %s: %s", self.spec.device_id, e)
            return False, "bad_args"
        log.info("%s shows a binding code", self.spec.device_id)  # never the code itself
        return True, None

    def health(self) -> topics.Health:
        battery = None if self.battery is None else self.battery()
        if battery is None and self.spec.kind is topics.DeviceKind.VIDEO_PHONE:
            battery = round(max(5.0, 100.0 - (time.monotonic() - self.started_at) / 360), 1)
        return topics.Health(
            uptime_s=round(time.monotonic() - self.started_at, 1),
            battery_pct=battery,
            shutter=self.shutter,
            tamper=False,
            link=round(random.uniform(0.85, 1.0), 2),
            ts=round(time.time(), 3),
        )

    async def _announce(self) -> None:
        await self.publish(topics.Channel.STATUS, self._status(topics.Presence.ONLINE), retain=True)
        await self.publish(topics.Channel.META, self.spec.meta().encode(), retain=True)

    async def _health_loop(self) -> None:
        while True:
            await self.publish(topics.Channel.HEALTH, self.health().encode())
            await asyncio.sleep(self.health_interval_s)

    async def _handle_command(self, payload: bytes) -> None:
        try:
            command = topics.decode_command(payload)
        except ValueError:
            return
        if command.op in self.unacked:
            log.warning("%s not acked by %s (as set up)", command.op.value, self.spec.device_id)
            return
        handler = self.on_command.get(command.op)
        if handler is None and command.op is topics.CommandOp.BIND_CODE:
            handler = self._show_bind_code
        try:
            ok, detail = (True, None) if handler is None else await handler(command)
        except Exception:  # a task boundary: one command never ends the device
            log.exception("command %s failed on %s", command.op.value, self.spec.device_id)
            ok, detail = False, "failed"
        await self.publish(
            topics.Channel.CMD_ACK, topics.CommandAck(id=command.id, ok=ok, detail=detail).encode()
        )

    async def _guarded(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        """Run one message's handling; a failure is logged, never raised into the session."""
        try:
            await coro
        except aiomqtt.MqttError as e:  # the connection went; the session loop notices too
            log.warning("%s on %s not completed: %s", what, self.spec.device_id, e)
        except Exception:
            log.exception("%s failed on %s", what, self.spec.device_id)

    async def _session_loop(self, client: aiomqtt.Client) -> None:
        server = topics.server_status_topic(self.prefix)
        await client.subscribe(self._topic(topics.Channel.CMD), qos=1)
        await client.subscribe(self._topic(topics.Channel.WEBRTC_IN), qos=1)
        await client.subscribe(server, qos=1)
        await self._announce()
        self.connected.set()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._health_loop())
            async for message in client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                name = str(message.topic)
                if name == server:
                    with contextlib.suppress(ValueError):
                        if topics.decode_server_status(payload) is topics.Presence.ONLINE:
                            await self._announce()
                elif name.endswith("/cmd"):
                    tg.create_task(self._guarded(self._handle_command(payload), "command"))
                elif self.on_signal is not None:
                    tg.create_task(self._guarded(self.on_signal(payload), "signal"))

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, serve and reconnect until ``stop`` is set; then publish ``stopped``."""

        async def pause(wait_s: float) -> None:  # ends early when stopping
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait_s)

        reconnect = Retry(RECONNECT, sleep=pause)
        while not stop.is_set():
            self.session = max(self.session + 1, int(time.time() * 1000))
            will = aiomqtt.Will(
                self._topic(topics.Channel.STATUS),
                self._status(topics.Presence.OFFLINE),
                qos=1,
                retain=True,
            )
            try:
                async with aiomqtt.Client(
                    **client_args(self.mqtt_url),
                    identifier=self.client_id,
                    keepalive=self.keepalive_s,
                    will=will,
                    clean_session=True,
                    timeout=10,
                ) as client:
                    self._client = client
                    reconnect.reset()
                    serve = asyncio.create_task(self._session_loop(client))
                    stopper = asyncio.create_task(stop.wait())
                    done, _ = await asyncio.wait(
                        {serve, stopper}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if stopper in done:
                        serve.cancel()
                        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                            await serve
                        with contextlib.suppress(aiomqtt.MqttError):
                            await client.publish(
                                self._topic(topics.Channel.STATUS),
                                self._status(topics.Presence.STOPPED),
                                qos=1,
                                retain=True,
                                timeout=2,
                            )
                        return
                    stopper.cancel()
                    serve.result()
            except (aiomqtt.MqttError, ExceptionGroup) as e:
                if isinstance(e, ExceptionGroup) and not e.subgroup(aiomqtt.MqttError):
                    # not the broker: a bug; keep the device alive and reconnect
                    log.exception("session of %s failed", self.spec.device_id)
            except Exception:
                log.exception("session of %s failed", self.spec.device_id)
            finally:
                self._client = None
                self.connected.clear()
            await reconnect.failed()
