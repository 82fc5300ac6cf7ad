"""The device agent put together: the contract client, the WebRTC answerer and a real source.

:class:`Agent` is what ``homecare agent`` runs on a camera's or a video phone's own small Linux
box. It speaks the device contract exactly as the simulated devices do, with the same code
(:class:`homeside.device.DeviceClient` and :func:`homeside.peer.attach`): birth and will with a
session, meta, health, events, acks, WebRTC answers, reconnect with backoff. What is its own:

- video from a real source (:class:`agent.sources.VideoSource`: a file, an RTSP camera, a V4L2
  camera), scaled to the device's size;
- health from that source: ``health.video`` (:mod:`agent.health`) in every periodic report, and
  a report at once when its state changes (a camera lost or covered is known within seconds);
  no ``link`` or ``battery_pct`` it cannot measure;
- the ``live`` indicator through a hook (:mod:`agent.indicator`): the ack waits for the lamp, a
  lamp that fails is acked ``ok: false``, and the lamp goes out when the session ends on the
  device's side too;
- the bind button: :meth:`Agent.press_bind_button` (``homecare agent`` presses it on ``SIGUSR1``);
- the motion check at home (a camera, unless ``home_probe=False``): :mod:`homeside.home_probe`
  runs the kernel on the source's own pictures on ``probe`` and answers numbers only, and the
  meta says ``home_probe``, so the backend probes it over MQTT and no video leaves the home for
  a quiet check (without it the backend probes over WebRTC);
- a video phone's microphone in a call (:mod:`agent.audio`): ``microphone``, opened for each
  call; without one the phone sends no sound.

A unit with a screen (a video phone) serves it from here: :meth:`Agent.run` mounts the aiohttp
application ``screen`` makes of the peer on ``127.0.0.1:screen_port`` (the in-home screen is
that application; the agent itself has no pages).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiomqtt
from aiohttp import web
from aiortc.mediastreams import MediaStreamTrack

from agent.indicator import Lamp
from agent.motors import MotorDriver
from agent.sources import SourceSpec, VideoSource
from devices import topics
from homeside import home_probe as device_home_probe
from homeside import peer as device_peer
from homeside.device import DeviceClient, DeviceSpec
from homeside.home_probe import HomeProbe
from homeside.peer import AudioSource, DevicePeer

log = logging.getLogger(__name__)

FW = "agent-1.0"
WATCH_S = 0.5  # how often the source's state and the lamp are looked at
Screen = Callable[[DevicePeer], web.Application]


@dataclass
class AgentDevice(DeviceClient):
    """A :class:`DeviceClient` whose health is measured, not simulated: uptime and the video
    source's state (``video``); no ``battery_pct``, ``link`` or ``shutter`` it cannot measure."""

    video_health: Callable[[], topics.VideoHealth] | None = None
    #: The video state last published (a change is reported at once).
    reported_video: topics.VideoState | None = field(default=None)

    def health(self) -> topics.Health:
        video = None if self.video_health is None else self.video_health()
        self.reported_video = None if video is None else video.state
        return topics.Health(
            uptime_s=round(time.monotonic() - self.started_at, 1),
            # a rolling phone whose motor driver reads its battery (agent.motors) says it
            battery_pct=None if self.battery is None else self.battery(),
            tamper=False,
            ts=round(time.time(), 3),
            video=video,
        )


@dataclass(frozen=True, slots=True)
class AgentConfig:
    device_id: str
    kind: topics.DeviceKind
    source: SourceSpec
    mqtt_url: str
    prefix: str = "hc/v1"
    width: int = 640
    height: int = 480
    fps: float = 10.0
    keepalive_s: int = 10
    health_interval_s: float = 30.0
    #: A camera runs the motion check itself (``probe``); off: the backend probes over WebRTC.
    home_probe: bool = True


async def no_sound() -> MediaStreamTrack | None:
    """A phone without a microphone: no audio track (the caller still is heard)."""
    return None


class Agent:
    """One device: ``await agent.run(stop)`` until ``stop`` is set."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        lamp: Lamp | None = None,
        motors: MotorDriver | None = None,
        microphone: AudioSource | None = None,
    ) -> None:
        """``motors``: a video phone's wheels (:mod:`agent.motors`); ``drive`` and ``dock``
        move it under the same dead-man rules as the simulated phone (:mod:`homeside.drive`).
        ``microphone``: a video phone's sound in a call (:class:`agent.audio.Microphone`);
        ``None``: no sound from the unit."""
        self.config = config
        self.lamp = lamp
        self.lamp_on = False
        self.source = VideoSource(config.source, width=config.width, height=config.height)
        spec = DeviceSpec(
            config.device_id,
            config.kind,
            fw=FW,
            width=config.width,
            height=config.height,
            fps=config.fps,
        )
        self.device = AgentDevice(
            spec,
            config.mqtt_url,
            prefix=config.prefix,
            keepalive_s=config.keepalive_s,
            health_interval_s=config.health_interval_s,
            video_health=self.source.health,
        )
        self.peer = device_peer.attach(
            self.device,
            scene=self.source,
            driver=motors,
            audio=no_sound if microphone is None else microphone,
        )
        #: The motion check at home (a camera with ``home_probe``), else ``None``.
        self.home: HomeProbe | None = None
        if config.home_probe and config.kind is topics.DeviceKind.CAMERA:
            self.home = device_home_probe.attach(self.peer)
        self._show = self.device.on_command[topics.CommandOp.INDICATOR]
        self.device.on_command[topics.CommandOp.INDICATOR] = self._on_indicator

    async def press_bind_button(self) -> None:
        """The installer's bind button (the proof a camera gives for its binding)."""
        await self.device.press_bind_button()
        log.info("bind button pressed on %s", self.config.device_id)

    async def _on_indicator(self, command: topics.Command) -> tuple[bool, str | None]:
        ok, detail = await self._show(command)
        if not ok or self.lamp is None:
            return ok, detail
        indicator = topics.decode_indicator(command)  # the peer has read it already
        if indicator.on:
            lit = await self.lamp.set(True, indicator.purpose.value)
            self.lamp_on = lit
            return (True, None) if lit else (False, "indicator_failed")
        if self.peer.indicator is None and self.lamp_on:  # nothing else is live
            if not await self.lamp.set(False, indicator.purpose.value):
                return False, "indicator_failed"
            self.lamp_on = False
        return True, None

    async def _watch(self) -> None:
        """Report a change of the source's state at once; put the lamp out when the session it
        showed ended on the device's side (a ``bye``, a lost peer)."""
        while True:
            await asyncio.sleep(WATCH_S)
            state = self.source.health().state
            if self.device.connected.is_set() and state is not self.device.reported_video:
                with contextlib.suppress(aiomqtt.MqttError):
                    await self.device.publish(topics.Channel.HEALTH, self.device.health().encode())
                    log.info("video of %s is %s", self.config.device_id, state.value)
            if self.lamp is not None and self.lamp_on and self.peer.indicator is None:
                self.lamp_on = not await self.lamp.set(False, "view")

    async def run(
        self,
        stop: asyncio.Event,
        *,
        screen: Screen | None = None,
        screen_port: int | None = None,
    ) -> None:
        """Serve until ``stop``; with ``screen`` and ``screen_port`` also the unit's screen."""
        self.source.start()
        runner: web.AppRunner | None = None
        try:
            if screen is not None and screen_port is not None:
                runner = web.AppRunner(screen(self.peer))
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", screen_port).start()
            watcher = asyncio.create_task(self._watch())
            try:
                await self.device.run(stop)
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        finally:
            if self.home is not None:
                await self.home.close()
            await self.peer.close()
            if self.peer.wheels is not None:
                await self.peer.wheels.close()  # stopped, whatever it was doing
            if self.lamp is not None and self.lamp_on:
                await self.lamp.set(False, "view")
                self.lamp_on = False
            if runner is not None:
                await runner.cleanup()
            await asyncio.to_thread(self.source.stop)
