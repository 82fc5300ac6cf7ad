"""Measured saturation: N live probe streams into one backend process, until it stops keeping up.

This process is the backend: it runs N :class:`supervision.probe.MotionProber` watches at once,
the service's real receive path (a receive-only aiortc peer per probe: ICE, DTLS, SRTP, RTP, the
jitter buffer, aiortc's ``libvpx`` decoder thread, the probe's drain and analysis, the motion
kernel, the verdict). A child process (``--senders``) plays the cameras: per stream an aiortc
peer whose track returns already-encoded ``av.Packet``\\s, which aiortc's sender packetises
without encoding (``RTCRtpSender._next_encoded_frame``: a track item that is not a ``Frame`` goes
to ``encoder.pack``), so the senders cost almost nothing.

Shortcut, and why it does not change the receiver's cost: signalling is an in-process port
(:class:`_Port`, the probe's ``SignallingPort``) that grants every request and carries the
offer and answer over the child's stdin/stdout, instead of the service's signalling, PostgreSQL
and MQTT. Everything after the answer (the media path this measures) is what the service runs.
ICE is held to 127.0.0.1 in both processes (``aioice.ice.get_host_addresses`` is replaced), so
the run touches loopback only.

Material: real frames of the clips in ``../shared/data/video`` (the simulators' scenes when the
clips are not there), taken at the stream's rate (5 fps: the frame nearest each 0.2 s), scaled
to the stream's size, encoded once per variant: an asked stream by our devices' own probe
encoder (:class:`homeside.encoder.Vp8AtRate`: aiortc's VP8 settings at the rate the probe's
``b=AS`` asks, 64 kbit/s, a key frame every 2 s), exactly what the simulated cameras and
``homecare agent`` send a probe; the camera's own stream by aiortc's ``Vp8Encoder`` at its
default 500 kbit/s, its RTP payloads joined back into frames. Each stream replays its clip in a
loop from the key frame, paced at the stream's rate.

Variants (the same clips): ``camera`` is what a camera sends that does not honour the probe's
stream request (the clips' own 640x480 at 15 fps; the probe still analyses 5 a second);
``asked 320x240@5`` and ``asked 160x120@2`` are streams the probe asks for
(:class:`devices.envelope.ProbeStream`). Each runs at N = 50, 100, 150, 200 (stopping at the
first N that does not keep up); the baseline is the ``camera`` variant at a fifth of the smallest
N (10), where it still keeps up, so its CPU per stream is not flattered by frames it failed to
take. ``asked 320x240@5 150kbit`` is the asked stream at the ``b=AS`` the probe asked before
``bench/probe_bitrate.py`` chose 64 kbit/s, at the smallest N only: the bit rate's own
before/after. Each probe watches 10 s (the service's 8 s plus room for the start-up ramp, so
that every stream flows together for several seconds; the cost per frame is the same).

Per N: frames delivered (received by the probe) and analysed in time (the kernel ran on the
frame within one frame interval of the sender handing it to aiortc; sender and backend share
the machine's monotonic clock) as shares of the frames the probes should have analysed
(``window_s`` x the analysed rate); every probe's verdict and its latency (from the end of its
window to the verdict returned); and the backend process's CPU as process CPU seconds over wall
seconds (all its threads: the event loop, aiortc's decoder threads), measured over the interval
in which every stream was flowing. CPU time, not wall time, so the figure stays meaningful on a
loaded machine; it does not count time the process waited for a core.

**Keeps up** at N: at least 95 % of the frames analysed in time, every probe reached a verdict
from frames (none ``no_signal``), and the backend used at most one core (CPU s / wall s <= 1.0).
``streams_per_core_measured`` is N / cores used at the largest N that keeps up: a ratio of two
figures measured at that N, not an extrapolation from a small N.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aioice.ice
import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs.vpx import PACKET_MAX, Vp8Encoder, VpxPayloadDescriptor
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from devices import envelope as env
from homeside.encoder import Vp8AtRate
from kernel.roles import Principal
from supervision import probe
from vision import motion

ROOT = Path(__file__).resolve().parent.parent
CLIPS = ROOT.parent / "shared" / "data" / "video"
CLIP_FILES = (
    "gmdcsa24_S2_Fall_12.mp4",
    "gmdcsa24_S3_ADL_20.mp4",
    "gmdcsa24_S4_ADL_19.mp4",
    "intel_one-by-one-person-detection.mp4",
)
CLOCK = 90_000
TIME_BASE = fractions.Fraction(1, CLOCK)
ANALYSED_FPS = 5.0  # the probe's max_fps
KEEP_UP_SHARE = 0.95
KEEP_UP_CORES = 1.0


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    width: int
    height: int
    fps: float
    asked: bool  # the probe's stream request is honoured (else the camera's own stream)
    kbps: int | None = None  # the b=AS asked and sent (None: the probe's own when asked)

    @property
    def rate_kbps(self) -> int | None:
        """What the camera is asked for and sends (None: aiortc's default, 500 kbit/s)."""
        if not self.asked:
            return None
        return self.kbps or probe.ProbeConfig().max_kbps

    def rounds(self, counts: list[int]) -> list[int]:
        """The N this variant runs at: an asked stream at the probe's own rate goes up the
        counts; the camera's own stream only at a fifth of the smallest (where it keeps up);
        the asked stream at another rate only at the smallest (a before/after per stream)."""
        if not self.asked:
            return [max(1, counts[0] // 5)]
        return counts if self.kbps is None else counts[:1]

    def wire(self) -> dict[str, Any]:
        return {"name": self.name, "w": self.width, "h": self.height, "fps": self.fps,
                "kbps": self.rate_kbps}  # fmt: skip


CAMERA = Variant("camera 640x480@15", 640, 480, 15.0, asked=False)
ASKED = Variant("asked 320x240@5", 320, 240, 5.0, asked=True)
#: The same stream at the b=AS the probe asked for before bench.probe_bitrate (150 kbit/s).
ASKED_150 = Variant("asked 320x240@5 150kbit", 320, 240, 5.0, asked=True, kbps=150)
ASKED_SMALL = Variant("asked 160x120@2", 160, 120, 2.0, asked=True)


def loopback_only() -> None:
    """ICE offers 127.0.0.1 only, in this process."""

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return ["127.0.0.1"] if use_ipv4 else []

    aioice.ice.get_host_addresses = host_addresses  # type: ignore[assignment]


# ------------------------------------------------------------------ the senders (child process)


def _pictures(
    width: int, height: int, fps: float, seconds: float, seed: int
) -> list[av.VideoFrame]:
    """``seconds`` of one clip at ``fps`` (the frame nearest each tick), ``width`` x ``height``
    yuv420p; the simulators' scene when the clips are not here."""
    count = round(seconds * fps)
    path = CLIPS / CLIP_FILES[seed % len(CLIP_FILES)]
    if not path.exists():
        from simulators.scenes import Scene, SceneKind

        scene = Scene(SceneKind.RESTLESS, seed=seed)
        return [
            av.VideoFrame.from_ndarray(scene.yuv420(i / fps, width, height), format="yuv420p")
            for i in range(count)
        ]
    out: list[av.VideoFrame] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            t = float(frame.time or 0.0)
            while len(out) < count and t + 0.5 / fps >= len(out) / fps:
                out.append(frame.reformat(width=width, height=height, format="yuv420p"))
            if len(out) >= count:
                break
    while len(out) < count:  # a short clip: play it back and forth
        out.append(out[len(out) % max(1, len(out) // 2)])
    return out


def encode(variant: dict[str, Any], seed: int, seconds: float) -> list[bytes]:
    """The clip as VP8, one bytes per frame, the first a key frame: at the ``b=AS`` asked by
    our devices' probe encoder (as they send it), else by aiortc's own at its default rate."""
    fps = float(variant["fps"])
    own = None if variant["kbps"] is None else Vp8AtRate(int(variant["kbps"]))
    encoder = Vp8Encoder()
    frames: list[bytes] = []
    for i, picture in enumerate(_pictures(variant["w"], variant["h"], fps, seconds, seed)):
        picture.pts = round(i * CLOCK / fps)
        picture.time_base = TIME_BASE
        if own is not None:
            packet = own.encode(picture)
            frames.append(b"" if packet is None else bytes(packet))
            continue
        payloads, _ = encoder.encode(picture, force_keyframe=i == 0)
        frames.append(b"".join(VpxPayloadDescriptor.parse(p)[1] for p in payloads))
    return frames


class PacketTrack(MediaStreamTrack):
    """A camera replaying encoded frames in a loop at ``fps``; aiortc sends them as they are."""

    kind = "video"

    def __init__(self, frames: list[bytes], fps: float, on_first: Any) -> None:
        super().__init__()
        self.frames, self.fps, self.on_first = frames, fps, on_first
        self.sent = 0
        self.t0: float | None = None

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        if self.t0 is None:
            self.t0 = time.monotonic()
            self.on_first(self.t0)
        else:
            wait = self.t0 + self.sent / self.fps - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        packet = av.Packet(self.frames[self.sent % len(self.frames)])
        packet.pts = round(self.sent * CLOCK / self.fps)
        packet.time_base = TIME_BASE
        self.sent += 1
        return packet


async def senders(seconds: float) -> None:
    """The child: answer offers from stdin with replaying cameras until stdin closes."""
    loopback_only()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 22)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    material: dict[tuple[str, int], list[bytes]] = {}
    pcs: dict[str, RTCPeerConnection] = {}
    closing: set[asyncio.Task[None]] = set()

    def say(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    while line := await reader.readline():
        m = json.loads(line)
        if m["op"] == "prepare":  # encode before anything is measured
            sizes, packets = {}, {}
            clips = int(m["clips"])
            for variant in m["variants"]:
                for seed in range(clips):
                    key = (variant["name"], seed)
                    material[key] = await asyncio.to_thread(encode, variant, seed, seconds)
                lengths = [len(f) for s in range(clips) for f in material[(variant["name"], s)][1:]]
                sizes[variant["name"]] = round(float(np.mean(lengths)))
                # aiortc's packetiser: at most PACKET_MAX bytes with the 4-byte VP8 descriptor
                packets[variant["name"]] = round(
                    float(np.mean([-(-n // (PACKET_MAX - 4)) for n in lengths])), 2
                )
            say({"op": "prepared", "bytes_per_frame": sizes, "rtp_packets_per_frame": packets})
        elif m["op"] == "offer":
            sid, variant = m["sid"], m["variant"]
            pc = pcs[sid] = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            frames = material[(variant["name"], int(m["seed"]) % clips)]
            track = PacketTrack(
                frames,
                float(variant["fps"]),
                lambda t0, sid=sid: say({"op": "t0", "sid": sid, "t0": t0}),
            )
            pc.addTrack(track)
            await pc.setRemoteDescription(RTCSessionDescription(m["sdp"], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            say({"op": "answer", "sid": sid, "sdp": pc.localDescription.sdp})
        elif m["op"] == "close":
            pc = pcs.pop(m["sid"], None)
            if pc is not None:
                closing.add(loop.create_task(pc.close()))
        elif m["op"] == "cpu":
            say({"op": "cpu", "cpu_s": time.process_time()})
    for pc in pcs.values():
        await pc.close()
    await asyncio.gather(*closing)


# ------------------------------------------------------------------ the backend (this process)


class _Conn:
    """The probe's signalling connection (``ProbeConnection``)."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[env.Envelope | None] = asyncio.Queue()

    async def recv(self, timeout_s: float | None = None) -> env.Envelope:
        message = await self.inbox.get()
        if message is None:
            raise ConnectionError("closed")
        return message


@dataclass
class _Stream:
    variant: Variant
    seed: int
    t0: float | None = None  # monotonic: the sender handed its first frame to aiortc
    analysed: list[tuple[float, float]] = field(default_factory=list)  # (stream t, monotonic)


class _Port:
    """Signalling for the bench: grants every request, carries SDP over the child's pipes."""

    def __init__(self, child: asyncio.subprocess.Process) -> None:
        self.child = child
        self.streams: dict[str, _Stream] = {}
        self.arrivals: list[float] = []  # monotonic, every frame any probe received
        self.pending: dict[str, tuple[_Conn, _Stream]] = {}
        self.variant_of: dict[str, tuple[Variant, int]] = {}
        self.answers: dict[str, asyncio.Future[str]] = {}
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.child.stdout is not None
        while line := await self.child.stdout.readline():
            m = json.loads(line)
            if m["op"] == "answer":
                self.answers.pop(m["sid"]).set_result(m["sdp"])
            elif m["op"] == "t0":
                if m["sid"] in self.streams:
                    self.streams[m["sid"]].t0 = m["t0"]
            else:
                await self.replies.put(m)

    def tell(self, message: dict[str, Any]) -> None:
        assert self.child.stdin is not None
        self.child.stdin.write((json.dumps(message) + "\n").encode())

    async def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        self.tell(message)
        return await asyncio.wait_for(self.replies.get(), 300)

    @contextlib.asynccontextmanager
    async def connect(self, principal: Principal) -> AsyncIterator[_Conn]:
        conn = _Conn()
        try:
            yield conn
        finally:
            conn.inbox.put_nowait(None)

    async def handle_client(self, conn: _Conn, data: str | bytes) -> None:
        message = env.decode(data)
        sid = message.session_id
        assert sid is not None
        match message:
            case env.Request(device_id=device_id):
                assert device_id is not None
                variant, seed = self.variant_of[device_id]
                self.streams[sid] = _Stream(variant, seed)
                granted = env.Granted(
                    sid, device_id=device_id, purpose=env.Purpose.PROBE, deadline=0, cap_s=60
                )
                conn.inbox.put_nowait(granted)
            case env.Offer(sdp=sdp, stream=asked):
                stream = self.streams[sid]
                # the cameras send what the offer asks for, as homeside's device does
                wanted = None if asked is None else (asked.w, asked.h, asked.fps)
                sent = stream.variant
                assert wanted == ((sent.width, sent.height, sent.fps) if sent.asked else None)
                answer = self.answers[sid] = asyncio.get_running_loop().create_future()
                self.tell(
                    {"op": "offer", "sid": sid, "sdp": sdp, "seed": stream.seed,
                     "variant": stream.variant.wire()}
                )  # fmt: skip
                conn.inbox.put_nowait(env.Answer(sid, sdp=await answer))
            case env.Bye():
                self.tell({"op": "close", "sid": sid})
            case _:
                pass


class _Counted(MediaStreamTrack):
    """A received track that notes when each frame came off aiortc's queue."""

    kind = "video"

    def __init__(self, track: MediaStreamTrack, arrivals: list[float]) -> None:
        super().__init__()
        self.track, self.arrivals = track, arrivals

    async def recv(self) -> Any:
        frame = await self.track.recv()
        self.arrivals.append(time.monotonic())
        return frame


class _TimedProber(probe.MotionProber):
    """The service's prober, noting when each frame's analysis finished (nothing else)."""

    def __init__(self, port: _Port, config: probe.ProbeConfig) -> None:
        super().__init__(port, config=config)
        self.port = port

    async def _drain(self, track: MediaStreamTrack, w: Any, started: float) -> None:
        await super()._drain(_Counted(track, self.port.arrivals), w, started)

    async def _step(
        self, w: Any, state: motion.MotionState, luma: motion.U8, t_s: float
    ) -> motion.FrameResult | None:
        result = await super()._step(w, state, luma, t_s)
        self.port.streams[w.session_id].analysed.append((t_s, time.monotonic()))
        return result


def _cpu_split() -> tuple[float, float]:
    """CPU seconds of this process's main thread (the event loop: network, SRTP, RTP, the
    probe, the kernel) and of its other threads (aiortc's decoder threads), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    main = others = 0.0
    pid = os.getpid()
    with contextlib.suppress(OSError):
        for task in os.scandir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(task.path, "stat").read_text().rsplit(")", 1)[1].split()
                used = (int(fields[11]) + int(fields[12])) / tick
                if int(task.name) == pid:
                    main += used
                else:
                    others += used
    return main, others


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)) * 1000, 1) if values else 0.0


async def _round(
    port: _Port, variant: Variant, n: int, window_s: float, ramp_s: float
) -> dict[str, Any]:
    """N probes of ``variant`` at once (started over ``ramp_s``); what they saw and cost."""
    port.streams.clear()
    port.arrivals.clear()
    load0 = os.getloadavg()[0]
    config = probe.ProbeConfig(
        window_s=window_s,
        connect_timeout_s=30.0,
        max_width=variant.width if variant.asked else 320,
        max_height=variant.height if variant.asked else 240,
        max_fps=variant.fps if variant.asked else ANALYSED_FPS,
        max_kbps=variant.rate_kbps or probe.ProbeConfig().max_kbps,
        ask_stream=variant.asked,
    )
    prober = _TimedProber(port, config)
    samples: list[tuple[float, float]] = []

    async def sample() -> None:
        while True:
            samples.append((time.monotonic(), time.process_time()))
            await asyncio.sleep(0.1)

    async def one(i: int) -> tuple[probe.ProbeOutcome, float]:
        await asyncio.sleep(ramp_s * i / n)
        device_id = f"cam-{variant.width}-{i}"
        port.variant_of[device_id] = (variant, i)
        outcome = await prober.watch(device_id)
        return outcome, time.monotonic()

    sampler = asyncio.get_running_loop().create_task(sample())
    split0 = _cpu_split()
    sender_cpu0 = (await port.ask({"op": "cpu"}))["cpu_s"]
    wall0 = time.monotonic()
    try:
        done = await asyncio.gather(*(one(i) for i in range(n)))
    finally:
        sampler.cancel()
    split = _cpu_split()
    loop_s, decoders_s = split[0] - split0[0], split[1] - split0[1]
    sender_cpu = (await port.ask({"op": "cpu"}))["cpu_s"] - sender_cpu0
    sender_wall = time.monotonic() - wall0
    streams = [port.streams[o.session_id] for o, _ in done]
    firsts = [s.analysed[0][1] for s in streams if s.analysed]
    # every stream flowing: after the last first frame, before the first window closes
    start = max(firsts, default=0.0) + 0.3
    stop = min(firsts, default=0.0) + window_s - 0.2
    inside = [(t, c) for t, c in samples if start <= t <= stop]
    interval_s = inside[-1][0] - inside[0][0] if len(inside) >= 2 else 0.0
    cpu_s = inside[-1][1] - inside[0][1] if len(inside) >= 2 else 0.0
    cores = cpu_s / interval_s if interval_s > 0 else 0.0  # 0: no interval with all flowing
    frames_in = sum(inside[0][0] <= t <= inside[-1][0] for t in port.arrivals) if inside else 0
    # aiortc's jitter buffer hands a frame on when the next frame's first packet arrives (one
    # interval of the stream), then the probe has one analysis interval
    interval = 1.0 / variant.fps + 1.0 / min(variant.fps, ANALYSED_FPS)
    latencies: list[float] = []
    in_time = 0
    for s in streams:
        if s.t0 is None:
            continue
        for t_s, at in s.analysed:
            latency = at - (s.t0 + t_s)
            latencies.append(latency)
            in_time += latency <= interval
    analysed_fps = min(variant.fps, ANALYSED_FPS)
    expected = n * (int(window_s * analysed_fps) + 1)
    received = sum(o.frames_received for o, _ in done)
    verdict_latency = [
        end - (s.analysed[0][1] + window_s)
        for (_, end), s in zip(done, streams, strict=True)
        if s.analysed
    ]
    verdicts = [o.verdict.kind.value for o, _ in done]
    no_signal = sum(v == "no_signal" for v in verdicts)
    in_time_share = in_time / expected if expected else 0.0
    ok = (
        in_time_share >= KEEP_UP_SHARE
        and no_signal == 0
        and interval_s >= 1.0
        and cores <= KEEP_UP_CORES
    )
    return {
        "variant": variant.name,
        "streams": n,
        "measured_interval_s": round(interval_s, 1),
        "backend_cores": round(cores, 3),
        "backend_cpu_per_stream_ms_per_s": round(cores / n * 1000, 2) if n else 0.0,
        "backend_cpu_per_frame_us": round(cpu_s / frames_in * 1e6) if frames_in else 0,
        "delivered_share": round(received / (n * (int(window_s * variant.fps) + 1)), 3),
        "analysed_in_time_share": round(in_time_share, 3),
        "frame_latency_p50_ms": _pct(latencies, 50),
        "frame_latency_p95_ms": _pct(latencies, 95),
        "verdict_latency_p50_ms": _pct(verdict_latency, 50),
        "verdict_latency_p95_ms": _pct(verdict_latency, 95),
        "loop_share_of_cpu": round(loop_s / (loop_s + decoders_s), 2) if loop_s else 0.0,
        "no_signal": no_signal,
        "verdicts": {k: verdicts.count(k) for k in sorted(set(verdicts))},
        "sender_cores": round(sender_cpu / sender_wall, 3),
        "keeps_up": ok,
        "load_average_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }


async def _settle(port: _Port) -> None:
    """Let the senders close the last round's peers before the next round is measured."""
    await port.ask({"op": "cpu"})
    await asyncio.sleep(1.0)


async def measure(
    counts: list[int],
    window_s: float,
    ramp_s: float,
    variants: list[Variant],
    clips: int = len(CLIP_FILES),
) -> dict[str, Any]:
    loopback_only()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.saturation", "--senders", "--seconds", str(window_s + 4),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    port = _Port(child)
    rounds: list[dict[str, Any]] = []
    try:
        prepared = await port.ask(
            {"op": "prepare", "variants": [v.wire() for v in variants], "clips": clips}
        )
        for variant in variants:
            for n in variant.rounds(counts):
                r = await _round(port, variant, n, window_s, ramp_s)
                print(json.dumps(r), file=sys.stderr, flush=True)
                rounds.append(r)
                await _settle(port)
                if not r["keeps_up"]:
                    break
    finally:
        assert child.stdin is not None
        child.stdin.close()
        try:
            await asyncio.wait_for(child.wait(), 20)
        except TimeoutError:
            child.kill()
            await child.wait()
        port.reader.cancel()
    out: dict[str, Any] = {
        "material": "real clips" if (CLIPS / CLIP_FILES[0]).exists() else "simulated scenes",
        "codec": "VP8 (at the b=AS asked: our devices' probe encoder, homeside.encoder, aiortc's "
        "settings, a key frame every 2 s; else aiortc's Vp8Encoder at 500 kbit/s; libvpx decoder)",
        "window_s": window_s,
        "bytes_per_frame": prepared["bytes_per_frame"],
        "rtp_packets_per_frame": prepared["rtp_packets_per_frame"],
        "b_as_kbps": {v.name: v.rate_kbps for v in variants},
        "keep_up_rule": (
            f">= {KEEP_UP_SHARE:.0%} of frames analysed within one frame interval, every probe "
            f"a verdict from frames, backend <= {KEEP_UP_CORES:g} core (process CPU s / wall s)"
        ),
        "rounds": rounds,
        "variants": [v.name for v in variants],
    }
    for variant in variants:
        mine = [r for r in rounds if r["variant"] == variant.name]
        kept = [r for r in mine if r["keeps_up"]]
        best = max(kept, key=lambda r: r["streams"], default=None)
        out[variant.name] = {
            "largest_n_keeping_up": best["streams"] if best else 0,
            "streams_per_core_measured": (
                int(best["streams"] / best["backend_cores"]) if best else 0
            ),
            "cpu_per_stream_ms_per_s": mine[0]["backend_cpu_per_stream_ms_per_s"] if mine else None,
        }
    return out


def run(
    counts: list[int] | None = None,
    window_s: float = 10.0,
    ramp_s: float = 1.5,
    quick: bool = False,
) -> dict[str, Any]:
    """``homecare bench --only saturation``; ``quick``: 2 streams, a short window."""
    if quick:
        return asyncio.run(measure([2], 2.0, 0.2, [CAMERA, ASKED], clips=1))
    return asyncio.run(measure(counts or [50, 100, 150, 200], window_s, ramp_s,
                               [CAMERA, ASKED_150, ASKED, ASKED_SMALL]))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--senders", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--seconds", type=float, default=12.0, help=argparse.SUPPRESS)
    p.add_argument("--streams", type=int, action="append", help="N (repeatable)")
    p.add_argument("--window", type=float, default=10.0, help="each probe's window, s")
    p.add_argument("--variant", action="append", choices=["camera", "asked", "asked150", "small"])
    p.add_argument("--profile", type=Path, help="write a cProfile of the backend here")
    args = p.parse_args(argv)
    if args.senders:
        asyncio.run(senders(args.seconds))
        return 0
    chosen = {"camera": CAMERA, "asked": ASKED, "asked150": ASKED_150, "small": ASKED_SMALL}
    variants = [chosen[v] for v in args.variant or ["camera", "asked150", "asked", "small"]]
    coro = measure(args.streams or [50, 100, 150, 200], args.window, 1.5, variants)
    if args.profile:
        import cProfile

        with cProfile.Profile(time.thread_time) as prof:
            result = asyncio.run(coro)
        prof.dump_stats(args.profile)
    else:
        result = asyncio.run(coro)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
