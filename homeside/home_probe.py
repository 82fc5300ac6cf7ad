"""The motion check at home: on ``probe``, the device runs the kernel on its own frames.

:func:`attach` gives a :class:`homeside.device.DeviceClient` (with its
:class:`homeside.peer.DevicePeer`) the ``probe`` command and advertises
``Capability.HOME_PROBE`` in its meta. On ``probe`` (``devices.topics.Probe``) the device:

1. refuses (ack ``ok: false``) arguments the contract does not allow (``bad_args``), a probe
   whose session its live indicator does not show with purpose ``probe`` (``indicator_off``: the
   backend lights it first, so nothing is ever looked at unseen), and a second probe while one
   runs (``busy``); else acks at once;
2. takes pictures from the peer's frame source (``peer.scene``: a camera, a file, a simulated
   scene) at the asked size and rate, paced in real time like a camera from stream time 0, and
   feeds the Y plane of each (a view, no copy) to :func:`vision.motion.step` with the camera's
   zones, exactly as the backend's WebRTC probe does with the frames it decodes;
3. after ``window_s`` answers on ``probe`` with :func:`vision.verdict.decide`'s verdict and the
   numbers behind it (``devices.topics.ProbeAnswer``), and turns its indicator off if it still
   shows this probe.

No frame leaves the device and none is kept: each picture is dropped after its step. ``sleep``
naming the probe's session stops it (the backend gave up or consent was withdrawn): no answer is
sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import aiomqtt

from devices import topics
from devices.errors import PayloadError
from homeside.device import CommandHandler, DeviceClient
from homeside.peer import DevicePeer
from vision import motion
from vision.verdict import DEFAULT_THRESHOLDS, Thresholds, Verdict, decide, no_signal

log = logging.getLogger(__name__)
OFFLOAD_MIN_PX = 640 * 480 + 1  # frames this large run the kernel in a worker thread
MAX_BEHIND_S = 1.0  # a frame due longer ago than this is skipped (a busy device), not burst


@dataclass
class HomeProbeStats:
    """What the device's probes did (for tests and the agent's logs; no picture)."""

    started: int = 0
    answered: list[topics.ProbeAnswer] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    stopped: int = 0
    frames: int = 0  # pictures taken from the source


def answer_of(probe_id: str, verdict: Verdict, ended: topics.ProbeEnded) -> topics.ProbeAnswer:
    """The answer a device sends: the verdict and its numbers (the backend's probe's
    ``verdict_detail`` numbers), finite and rounded."""
    n = verdict.numbers
    numbers = n.measures()
    return topics.ProbeAnswer(
        probe_id=probe_id,
        verdict=verdict.kind.value,
        needs_human=verdict.needs_human,
        confidence=_finite(verdict.confidence),
        reason=verdict.reason.value,
        frames=n.frames,
        ended=ended,
        numbers={k: _finite(float(v)) for k, v in numbers.items()},
        where=verdict.where,
    )


def _finite(value: float) -> float:
    return round(min(max(value, 0.0), 1e6), 4) if math.isfinite(value) else 0.0


class HomeProbe:
    """The ``probe`` command of one device (see the module docstring)."""

    def __init__(self, peer: DevicePeer, *, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> None:
        self.peer = peer
        self.device: DeviceClient = peer.device
        self.thresholds = thresholds
        self.stats = HomeProbeStats()
        self.running: topics.Probe | None = None
        self._task: asyncio.Task[None] | None = None
        self._clock: Callable[[], float] = lambda: asyncio.get_running_loop().time()

    def _refuse(self, detail: str) -> tuple[bool, str]:
        self.stats.refused.append(detail)
        log.warning("probe refused on %s: %s", self.device.spec.device_id, detail)
        return False, detail

    async def on_probe(self, command: topics.Command) -> tuple[bool, str | None]:
        try:
            probe = topics.decode_probe(command)
        except PayloadError as e:  # refused; nothing changes
            return self._refuse("bad_args" if e.field is None else f"bad_args:{e.field}")
        shown = self.peer.indicator
        if (
            shown is None
            or shown.session_id != probe.probe_id
            or shown.purpose is not topics.LivePurpose.PROBE
        ):
            return self._refuse("indicator_off")  # never look without the light on
        if self.running is not None:
            return self._refuse("busy")
        self.running = probe
        self.stats.started += 1
        self._task = asyncio.get_running_loop().create_task(self._run(probe))
        log.info("probe started on %s (session %s)", self.device.spec.device_id, probe.probe_id)
        return True, None

    async def on_sleep(self, command: topics.Command) -> bool:
        """``sleep`` naming the running probe's session stops it; ``True`` if it did."""
        running, task = self.running, self._task
        if running is None or task is None or command.args.get("session_id") != running.probe_id:
            return False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return True

    async def _run(self, probe: topics.Probe) -> None:
        try:
            verdict, ended = await self.watch(probe)
            answer = answer_of(probe.probe_id, verdict, ended)
            await self.device.publish(topics.Channel.PROBE, answer.encode())
            self.stats.answered.append(answer)
            log.info(
                "probe answered on %s: %s (%s frames)",
                self.device.spec.device_id,
                answer.verdict,
                answer.frames,
            )
        except asyncio.CancelledError:
            self.stats.stopped += 1
            log.info("probe stopped on %s (session %s)", self.device.spec.device_id, probe.probe_id)
        except aiomqtt.MqttError as e:  # the link went: the backend hears nothing, no_signal
            log.warning("probe answer of %s not sent: %s", self.device.spec.device_id, e)
        finally:
            self.running = None
            self._task = None
            shown = self.peer.indicator
            if shown is not None and shown.session_id == probe.probe_id:
                self.peer.indicator = None  # the look ended on the device's side: light off

    async def watch(self, probe: topics.Probe) -> tuple[Verdict, topics.ProbeEnded]:
        """Take frames from the source at ``probe.fps`` for ``probe.window_s`` (paced in real
        time), run the kernel on each, and return the verdict over the window."""
        step_s = 1.0 / probe.fps
        count = max(1, math.ceil(probe.window_s * probe.fps - 1e-9))
        state = self._first_state(probe)
        results: list[motion.FrameResult] = []
        start = self._clock()
        for k in range(count):
            t_s = k * step_s
            wait_s = start + t_s - self._clock()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            elif wait_s < -MAX_BEHIND_S:
                continue  # far behind (a busy device): skip it, as a camera drops frames
            picture = self.peer.scene.yuv420(t_s, probe.width, probe.height)
            self.stats.frames += 1
            luma = picture[: probe.height]  # the Y plane of I420: a view, no copy
            try:
                result, state = await self._step(state, luma, t_s, results)
            except motion.MotionInputError as e:
                log.warning("probe frame rejected on %s: %s", self.device.spec.device_id, e)
                continue
            finally:
                del picture, luma  # nothing of the picture outlives its analysis
            results.append(result)
        if not results:
            return no_signal(0), topics.ProbeEnded.NO_FRAMES
        return decide(
            results, window_s=probe.window_s, thresholds=self.thresholds
        ), topics.ProbeEnded.WINDOW

    def _first_state(self, probe: topics.Probe) -> motion.MotionState:
        """The kernel's state with the camera's zones (scaled by the first step to the picture
        size), or without zones if they do not fit: then nothing can be cleared."""
        zones = probe.zones
        if zones is not None and zones.zones:
            try:
                return motion.MotionState(
                    zones.w,
                    zones.h,
                    tuple(motion.Zone(z.name, z.polygon) for z in zones.zones),
                    self.thresholds,
                )
            except motion.MotionInputError as e:
                log.warning("probe zones rejected on %s: %s", self.device.spec.device_id, e)
        return motion.MotionState(probe.width, probe.height, (), self.thresholds)

    async def _step(
        self,
        state: motion.MotionState,
        luma: motion.U8,
        t_s: float,
        results: list[motion.FrameResult],
    ) -> tuple[motion.FrameResult, motion.MotionState]:
        try:
            return await self._kernel(state, luma, t_s), state
        except motion.MotionInputError:
            # another aspect ratio than the zones were drawn for: on without zones, from this
            # frame, so nothing can be cleared (as the backend's probe does)
            fresh = motion.MotionState(luma.shape[1], luma.shape[0], (), self.thresholds)
            results.clear()
            return await self._kernel(fresh, luma, t_s), fresh

    async def _kernel(
        self, state: motion.MotionState, luma: motion.U8, t_s: float
    ) -> motion.FrameResult:
        if luma.size >= OFFLOAD_MIN_PX:
            return await asyncio.to_thread(motion.step, state, luma, t_s)
        return motion.step(state, luma, t_s)

    async def close(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def attach(peer: DevicePeer, *, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> HomeProbe:
    """Give ``peer``'s device the ``probe`` command and advertise it (call before it connects,
    so its first ``meta`` says ``home_probe``); ``sleep`` naming a running probe stops it."""
    home = HomeProbe(peer, thresholds=thresholds)
    device = peer.device
    device.spec.home_probe = True
    before: CommandHandler | None = device.on_command.get(topics.CommandOp.SLEEP)

    async def on_sleep(command: topics.Command) -> tuple[bool, str | None]:
        if await home.on_sleep(command):
            return True, None
        return (True, None) if before is None else await before(command)

    device.on_command[topics.CommandOp.PROBE] = home.on_probe
    device.on_command[topics.CommandOp.SLEEP] = on_sleep
    return home


__all__ = ["HomeProbe", "HomeProbeStats", "answer_of", "attach"]
