"""The motion probe: watch a camera a few seconds through the signalling server, return a verdict.

A receive-only aiortc peer inside the backend (``purpose=probe``, principal ``system``):

1. opens an in-process client connection on the signalling server (:class:`SignallingPort`,
   which :class:`services.signalling.service.Signalling` implements) and sends ``request``
   naming the check it serves (``check_id``, stored on the session row); the server
   checks role, presence and the ``motion_analysis`` gate and audits the session like any view
   (actor ``system``: ``probe.started`` / ``probe.ended``);
2. on ``granted`` offers receive-only video (every candidate inside the offer), asking for a
   small, slow stream: in the offer's ``stream`` (the contract's probe stream, 160x120 or
   320x240 at 2-5 fps, which a camera honours) and in SDP (``b=AS``, ``a=framerate``,
   ``a=imageattr``; ``b=AS`` 64 kbit/s, the lowest rate at which the check's verdicts on the
   real clips hold: ``bench/probe_bitrate.py``), without bandwidth estimation (no REMB) and
   without RTP header extensions (fewer packets and less work on each), and applies the
   device's ``answer`` and candidates;
3. drains the video track as fast as frames arrive (aiortc's receive queue is unbounded) and
   keeps only the latest frame; the analysis loop takes that one, skips it if it comes sooner
   than ``1 / max_fps`` after the last analysed frame, reads the Y plane without copying
   (``frame.planes[0]``) and runs :func:`vision.motion.step` inline for small frames (a
   320x240 frame costs less than a thread hop) or in a worker thread for large ones;
4. after ``window_s`` from the first frame (or at ``bye``), sends ``bye``, closes the peer and
   returns :func:`vision.verdict.decide` over what it saw, with the numbers behind it.

No frame arrives within ``connect_timeout_s`` -> ``no_signal``; ``denied`` -> ``no_signal``
with the reason in :attr:`ProbeOutcome.ended`. The camera did not ack its live indicator (the
server's ``error indicator_not_acked``, then ``bye device_lost``; no frame flowed) ->
``no_signal`` with ``ended`` and :attr:`ProbeResult.device_trouble` ``indicator_not_acked``: the
round sends the check to a physical visit (hard rule 7). A frame of another aspect ratio
mid-stream restarts the analysis without zones (so nothing can be cleared). A frame is never stored:
only the latest one is referenced, until the next arrives.

:class:`MotionProber` implements :class:`supervision.ports.Prober` for the round runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import av
import numpy as np
import structlog
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from devices import envelope as env
from kernel.roles import SYSTEM_PRINCIPAL, Principal
from supervision.ports import ProbeResult
from vision import motion
from vision.verdict import DEFAULT_THRESHOLDS, Thresholds, Verdict, decide, no_signal

log = structlog.get_logger(__name__)
_LUMA_FIRST = frozenset({"yuv420p", "yuvj420p", "nv12", "yuv422p", "yuv444p", "gray"})


class ProbeConnection(Protocol):
    """``services.signalling.session.ClientConnection`` as the probe uses it."""

    async def recv(self, timeout_s: float | None = None) -> env.Envelope:
        """The next server message; ``ConnectionError`` once the connection is closed."""
        ...


C = TypeVar("C", bound=ProbeConnection)


class SignallingPort(Protocol[C]):
    """``services.signalling.service.Signalling``'s in-process client API."""

    def connect(self, principal: Principal) -> AbstractAsyncContextManager[C]: ...

    async def handle_client(self, conn: C, data: str | bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class ViewZones:
    """A camera's zones, drawn on a ``width`` x ``height`` picture (scaled to the stream's)."""

    width: int
    height: int
    zones: tuple[motion.Zone, ...]


ZoneLookup = Callable[[str], ViewZones | Awaitable[ViewZones | None] | None]
"""A camera's zones by device id, read at probe time (plain or async, e.g. from the database).
A lookup that fails (``OSError``, ``TimeoutError``, ``LookupError``) means no zones: nothing
is cleared without them."""
_Spawn = Callable[[Coroutine[Any, Any, None]], None]


def no_zones(device_id: str) -> ViewZones | None:
    """The default lookup: no zones, so the probe never clears a check by itself."""
    return None


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    """Seconds of real time; the window is stream time from the first frame."""

    window_s: float = 8.0
    connect_timeout_s: float = 6.0  # request -> first frame, else no_signal
    max_fps: float = 5.0  # frames sooner than 1/max_fps after the last analysed one are skipped
    max_width: int = 320  # the small, slow stream the offer asks for (SDP hints a camera
    max_height: int = 240  # may honour: imageattr, framerate, b=AS)
    #: ``b=AS``: 64 kbit/s keeps every "needs a human" of the real clips and no more camera
    #: trouble than 150 (``bench/probe_bitrate.py``) in ~1.7 RTP packets a frame instead of
    #: ~2.8 at 320x240, 5 fps; the receive path pays per packet.
    max_kbps: int = 64
    offload_min_px: int = 640 * 480 + 1  # frames this large run the kernel in a worker thread
    #: Ask the camera for ``max_width`` x ``max_height`` at ``max_fps`` in the offer's
    #: ``stream`` (the contract's probe stream: a size of ``PROBE_SIZES``, 2-5 fps), which a
    #: camera honours, so nothing more is sent or decoded than the analysis uses.
    ask_stream: bool = True

    def __post_init__(self) -> None:
        if not (self.window_s > 0 and self.connect_timeout_s > 0 and self.max_fps > 0):
            raise ValueError("window_s, connect_timeout_s and max_fps must be positive")
        if min(self.max_width, self.max_height, self.max_kbps) < 16:
            raise ValueError("max_width, max_height and max_kbps must be positive (>= 16)")
        low, high = env.PROBE_FPS
        if self.ask_stream and (
            (self.max_width, self.max_height) not in env.PROBE_SIZES
            or not low <= self.max_fps <= high
        ):
            sizes = " or ".join(f"{w}x{h}" for w, h in env.PROBE_SIZES)
            raise ValueError(
                f"a probe asks for {sizes} at {low:g}-{high:g} fps (or set ask_stream=False)"
            )

    @property
    def stream(self) -> env.ProbeStream | None:
        """What the offer asks the camera to send (``None``: whatever it sends)."""
        if not self.ask_stream:
            return None
        return env.ProbeStream(w=self.max_width, h=self.max_height, fps=self.max_fps)


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """What one probe saw: the verdict and counts (no pictures, nothing personal)."""

    session_id: str
    verdict: Verdict
    ended: str  # window | bye:<reason> | denied:<reason> | no_frames | disconnected | failed
    #           | indicator_not_acked
    frames_received: int
    frames_analysed: int
    frames_skipped: int  # overwritten before analysis, or sooner than 1/max_fps
    first_frame_s: float | None  # request -> first frame, real time
    frame_size: tuple[int, int] | None  # of the last analysed frame

    def result(self) -> ProbeResult:
        v = self.verdict
        return ProbeResult(
            v.kind.value,
            v.needs_human,
            v.confidence,
            self.frames_analysed,
            detail=verdict_detail(v, ended=self.ended),
            device_trouble=self.ended if self.ended == env.INDICATOR_NOT_ACKED else None,
        )


@dataclass
class _Watch:
    """The mutable state of one probe session."""

    session_id: str
    device_id: str
    window_s: float
    zones: ViewZones | None
    thresholds: Thresholds
    check_id: str | None = None  # the check the look is owed to (None: a look for no check)
    pc: RTCPeerConnection | None = None
    ended: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    first_frame: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    latest: av.VideoFrame | None = None
    received: int = 0
    analysed: int = 0
    skipped: int = 0
    first_frame_s: float | None = None
    state: motion.MotionState | None = None
    results: list[motion.FrameResult] = field(default_factory=list)
    t0_s: float | None = None  # stream time of the first analysed frame
    last_t_s: float = -1.0
    last_mono: float = 0.0
    size: tuple[int, int] | None = None

    def end(self, why: str) -> None:
        if self.ended is None:
            self.ended = why
        self.done.set()


class MotionProber:
    """The round runner's :class:`supervision.ports.Prober`, over the signalling server."""

    def __init__(
        self,
        signalling: SignallingPort[Any],
        *,
        zones: ZoneLookup = no_zones,
        config: ProbeConfig | None = None,
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
        principal: Principal = SYSTEM_PRINCIPAL,
    ) -> None:
        self.signalling = signalling
        self.zones = zones
        self.config = config or ProbeConfig()
        self.thresholds = thresholds
        self.principal = principal

    async def _zones(self, device_id: str, check_id: str | None) -> ViewZones | None:
        try:
            found = self.zones(device_id)
            if inspect.isawaitable(found):
                found = await found
        except (OSError, TimeoutError, LookupError) as e:
            log.warning(
                "probe_zones_unavailable",
                check_id=check_id,
                device_id=device_id,
                error=type(e).__name__,
            )
            return None
        return found

    async def probe(self, *, device_id: str, check_id: str, window_s: float) -> ProbeResult:
        outcome = await self.watch(device_id, check_id=check_id, window_s=window_s)
        return outcome.result()

    async def watch(
        self, device_id: str, *, check_id: str | None = None, window_s: float | None = None
    ) -> ProbeOutcome:
        """Watch ``device_id`` for ``window_s`` (default from the config); never raises for
        anything the camera, the network or the server does."""
        window = self.config.window_s if window_s is None else window_s
        if not window > 0:
            raise ValueError("window_s must be positive")
        w = _Watch(
            session_id="p-" + secrets.token_urlsafe(12),
            device_id=device_id,
            window_s=window,
            zones=await self._zones(device_id, check_id),
            thresholds=self.thresholds,
            check_id=check_id,
        )
        started = time.perf_counter()
        log.info("probe_started", check_id=check_id, device_id=device_id, session_id=w.session_id)
        try:
            async with self.signalling.connect(self.principal) as conn:
                await self._run(conn, w, started)
                if w.ended in {"window", "no_frames"}:
                    with contextlib.suppress(ConnectionError):
                        await self._send(conn, env.Bye(w.session_id, env.ByeReason.OPERATOR))
        except ConnectionError:
            w.end("disconnected")
        except (OSError, TimeoutError):  # the server's database or broker failed under it
            log.exception("probe_signalling_failed", check_id=check_id, session_id=w.session_id)
            w.end("failed")
        finally:
            if w.pc is not None:
                await w.pc.close()
        outcome = self._outcome(w)
        log.info(
            "probe_finished",
            check_id=check_id,
            device_id=device_id,
            session_id=w.session_id,
            verdict=outcome.verdict.kind.value,
            needs_human=outcome.verdict.needs_human,
            reason=outcome.verdict.reason.value,
            ended=outcome.ended,
            frames_received=outcome.frames_received,
            frames_analysed=outcome.frames_analysed,
            frames_skipped=outcome.frames_skipped,
        )
        return outcome

    # ------------------------------------------------------------ session

    async def _send(self, conn: Any, message: env.Envelope) -> None:
        await self.signalling.handle_client(conn, env.encode(message))

    async def _run(self, conn: Any, w: _Watch, started: float) -> None:
        tasks: set[asyncio.Task[None]] = set()

        def spawn(coro: Coroutine[Any, Any, None]) -> None:
            tasks.add(asyncio.get_running_loop().create_task(coro))

        request = env.Request(
            w.session_id, device_id=w.device_id, purpose=env.Purpose.PROBE, check_id=w.check_id
        )
        await self._send(conn, request)
        spawn(self._read(conn, w, spawn, started))
        spawn(self._analyse(w))
        try:
            await self._wait(w)
        finally:
            for task in tasks:
                task.cancel()
            for failure in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(failure, Exception):
                    log.error("probe_task_failed", session_id=w.session_id, error=repr(failure))

    async def _wait(self, w: _Watch) -> None:
        first = asyncio.ensure_future(w.first_frame.wait())
        done = asyncio.ensure_future(w.done.wait())
        try:
            await asyncio.wait(
                {first, done},
                timeout=self.config.connect_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not w.first_frame.is_set():
                w.end("no_frames")
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(w.done.wait(), w.window_s)
            w.end("window")
        finally:
            first.cancel()
            done.cancel()

    async def _read(self, conn: Any, w: _Watch, spawn: _Spawn, started: float) -> None:
        """Server messages for this session, until the connection closes."""
        try:
            while True:
                message = await conn.recv()
                if message.session_id not in {w.session_id, None}:
                    continue
                match message:
                    case env.Granted():
                        if w.pc is None:
                            await self._offer(conn, w, message, spawn, started)
                    case env.Denied():
                        w.end(f"denied:{message.reason}")
                    case env.Answer() if w.pc is not None:
                        await w.pc.setRemoteDescription(
                            RTCSessionDescription(sdp=message.sdp, type="answer")
                        )
                    case env.Candidate() if w.pc is not None:
                        await _add_candidate(w.pc, message)
                    case env.Bye():
                        w.end(f"bye:{message.reason.value}")
                    case env.Error():
                        log.warning(
                            "probe_signal_error", session_id=w.session_id, code=message.code
                        )
                        if message.code == env.INDICATOR_NOT_ACKED:
                            w.end(env.INDICATOR_NOT_ACKED)  # the bye device_lost follows
                    case _:
                        pass
        except ConnectionError:
            w.end("disconnected")
        except asyncio.CancelledError:
            raise
        except Exception:  # a task boundary: aiortc refused the answer or a candidate
            log.exception("probe_session_failed", session_id=w.session_id)
            w.end("failed")

    async def _offer(
        self,
        conn: Any,
        w: _Watch,
        granted: env.Granted,
        spawn: _Spawn,
        started: float,
    ) -> None:
        servers = [
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in granted.ice_servers
        ]
        pc = w.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            spawn(self._drain(track, w, started) if track.kind == "video" else _discard(track))

        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())  # every candidate inside
        sdp = ask_small_slow(pc.localDescription.sdp, self.config)
        await self._send(conn, env.Offer(w.session_id, sdp=sdp, stream=self.config.stream))

    async def _drain(self, track: MediaStreamTrack, w: _Watch, started: float) -> None:
        """Take every frame off aiortc's queue at once; keep only the latest."""
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.VideoFrame):
                    continue
                w.received += 1
                if w.latest is not None:
                    w.skipped += 1  # the analysis did not take the previous one in time
                w.latest = frame
                w.arrived.set()
                if w.first_frame_s is None:
                    w.first_frame_s = time.perf_counter() - started
                    w.first_frame.set()

    # ------------------------------------------------------------ analysis

    async def _analyse(self, w: _Watch) -> None:
        min_gap_s = 1.0 / self.config.max_fps - 0.01
        while True:
            await w.arrived.wait()
            w.arrived.clear()
            frame, w.latest = w.latest, None
            if frame is None:
                continue
            t_s = _stream_time(frame, w)
            if w.results and t_s - w.last_t_s < min_gap_s:
                w.skipped += 1
                continue
            luma = luma_view(frame)
            height, width = luma.shape
            if w.state is None:
                w.state = _first_state(w, width, height)
            try:
                if w.state is None:
                    w.skipped += 1
                    continue
                result = await self._step(w, w.state, luma, t_s)
            finally:
                del frame, luma  # nothing of the picture outlives its analysis
            if result is None:
                w.skipped += 1
                continue
            w.results.append(result)
            w.analysed += 1
            w.last_t_s = t_s
            w.last_mono = time.monotonic()
            w.size = (width, height)

    async def _step(
        self, w: _Watch, state: motion.MotionState, luma: motion.U8, t_s: float
    ) -> motion.FrameResult | None:
        try:
            if luma.size >= self.config.offload_min_px:
                return await asyncio.to_thread(motion.step, state, luma, t_s)
            return motion.step(state, luma, t_s)
        except motion.MotionInputError as e:
            # another aspect ratio than the zones were drawn for (or a broken frame):
            # go on without zones, from this frame, so nothing can be cleared
            log.warning("probe_frame_rejected", session_id=w.session_id, error=str(e))
        try:
            w.state = motion.MotionState(luma.shape[1], luma.shape[0], (), w.thresholds)
            w.results.clear()
            return motion.step(w.state, luma, t_s)
        except motion.MotionInputError:
            return None

    def _outcome(self, w: _Watch) -> ProbeOutcome:
        if w.results:
            verdict = decide(w.results, window_s=w.window_s, thresholds=w.thresholds)
        else:
            verdict = no_signal(w.received)
        return ProbeOutcome(
            session_id=w.session_id,
            verdict=verdict,
            ended=w.ended or "window",
            frames_received=w.received,
            frames_analysed=w.analysed,
            frames_skipped=w.skipped,
            first_frame_s=w.first_frame_s,
            frame_size=w.size,
        )


def verdict_detail(verdict: Verdict, *, ended: str | None = None) -> dict[str, Any]:
    """The numbers behind a verdict as the round stores them with the check's step and the
    console shows them: kind, confidence, reason, where, and a small dict of floats (the
    window's health shares and, per region, seconds active and peak moving share). JSON-ready,
    finite, rounded; nothing personal, no picture."""
    n = verdict.numbers
    numbers = n.measures()
    return {
        "verdict": verdict.kind.value,
        "confidence": _finite(verdict.confidence),
        "reason": verdict.reason.value,
        "where": verdict.where,
        "ended": ended,
        "numbers": {k: _finite(float(v)) for k, v in numbers.items()},
    }


def _finite(value: float) -> float:
    return round(value, 4) if math.isfinite(value) else 0.0


def luma_view(frame: av.VideoFrame) -> motion.U8:
    """The frame's luma as ``uint8`` H x W: a view of the Y plane (no copy) when the format
    stores luma first, else a conversion (``to_ndarray(format="gray")``)."""
    if frame.format.name in _LUMA_FIRST:
        plane = frame.planes[0]
        stride = plane.line_size
        y = np.frombuffer(memoryview(plane), np.uint8, count=stride * frame.height)
        return y.reshape(frame.height, stride)[:, : frame.width]
    return np.asarray(frame.to_ndarray(format="gray"), np.uint8)


_LEFT_OUT = re.compile(
    r"^a=(?:extmap:.*|extmap-allow-mixed|rtcp-fb:\S+ (?:goog-remb|transport-cc))$"
)
"""Offer lines the probe leaves out: RTP header extensions and bandwidth estimation feedback."""


def ask_small_slow(sdp: str, config: ProbeConfig) -> str:
    """The offer with the small, slow stream asked for in each video section: ``b=AS``
    (kbit/s, after the connection line), ``a=framerate`` and ``a=imageattr`` (RFC 6236) for
    what we receive. Cameras that ignore them send what they send; the probe thins it.

    Without bandwidth estimation (``goog-remb``, ``transport-cc`` feedback), so the receiver
    sends no REMB that would push a camera's rate up past what the probe asked for, and without
    any RTP header extension (``a=extmap``): ``abs-send-time`` would run aiortc's estimator on
    every packet (about a tenth of the receive path), and ``sdes:mid`` is parsed on every packet
    but not needed (one media section: aiortc routes by SSRC and payload type). Kept: ``nack``
    and ``nack pli`` feedback and RTX, which is how a lost packet is recovered (aiortc's jitter
    buffer holds every later frame until the hole is filled or 512 packets have passed)."""
    out: list[str] = []
    in_video = False
    hints = [
        f"a=framerate:{config.max_fps:g}",
        f"a=imageattr:* recv [x=[16:{config.max_width}],y=[16:{config.max_height}]]",
    ]
    lines = [line for line in sdp.split("\r\n") if not _LEFT_OUT.match(line)]
    for line in lines:
        if line.startswith("m="):
            if in_video:
                out.extend(hints)
            in_video = line.startswith("m=video")
        elif in_video and line == "" and out and out[-1] != "":
            out.extend(hints)
            in_video = False
        out.append(line)
        if in_video and line.startswith("c="):
            out.append(f"b=AS:{config.max_kbps}")
    if in_video:
        out.extend(hints)
    return "\r\n".join(out)


def _stream_time(frame: av.VideoFrame, w: _Watch) -> float:
    """Seconds since the first frame, from the frame's own timestamp (aiortc maps RTP time to
    start at 0) while it moves forward sensibly, else from the receive clock."""
    now = time.monotonic()
    stamp = float(frame.time) if frame.time is not None else now
    if w.t0_s is None:
        w.t0_s, w.last_mono = stamp, now
        return 0.0
    t_s = stamp - w.t0_s
    if not w.last_t_s <= t_s <= w.last_t_s + 60.0:  # a jump: follow the clock from here
        t_s = max(w.last_t_s, 0.0) + (now - w.last_mono)
        w.t0_s = stamp - t_s
    return t_s


def _first_state(w: _Watch, width: int, height: int) -> motion.MotionState | None:
    """The kernel state for the stream, with the camera's zones (the first step scales them to
    the stream's size); without zones if they do not fit; None for an unusable size."""
    zones = w.zones
    try:
        if zones is not None and zones.zones:
            try:
                return motion.MotionState(zones.width, zones.height, zones.zones, w.thresholds)
            except motion.MotionInputError as e:
                log.warning("probe_zones_rejected", session_id=w.session_id, error=str(e))
        return motion.MotionState(width, height, (), w.thresholds)
    except motion.MotionInputError as e:
        log.warning("probe_frame_rejected", session_id=w.session_id, error=str(e))
        return None


async def _discard(track: MediaStreamTrack) -> None:
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()


async def _add_candidate(pc: RTCPeerConnection, message: env.Candidate) -> None:
    if message.is_end:
        with contextlib.suppress(ValueError):
            await pc.addIceCandidate(None)
        return
    ice = candidate_from_sdp(message.candidate.removeprefix("candidate:"))
    ice.sdpMid = message.sdp_mid
    ice.sdpMLineIndex = message.sdp_mline_index
    with contextlib.suppress(ValueError):
        await pc.addIceCandidate(ice)


def zones_of(width: int, height: int, polygons: dict[str, Sequence[Sequence[float]]]) -> ViewZones:
    """Zones from ``{"bed": [[x, y], ...], ...}`` drawn on a ``width`` x ``height`` picture."""
    return ViewZones(
        width,
        height,
        tuple(
            motion.Zone(name, tuple((float(p[0]), float(p[1])) for p in polygon))
            for name, polygon in polygons.items()
        ),
    )
