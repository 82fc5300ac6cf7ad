"""Probes per core, live: N receive-only aiortc peers in this process, cameras in another.

Part of ``bench/motion.py`` (which calls :func:`live_figures`). A child process (this module with
``--serve-cameras N``, pinned to another CPU) runs N simulated cameras: aiortc peers sending the
simulators' restless scene at 320x240, 5 fps, VP8. This process, pinned to one CPU, connects N
receive-only peers over loopback (offers and answers over the child's stdin and stdout), drains
every track, takes the Y plane without a copy and runs the motion kernel on each frame, as the
probe does. Over a measuring window it reports the CPU this process used (all its threads:
aiortc's network handling on the event loop and its decoder threads, plus the kernel), the
frames that arrived against those the cameras sent, and so the streams one core keeps in real
time; decoding's share comes from the same codec decoded in the same process beforehand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import numpy.typing as npt
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from homeside.media import FrameTrack
from simulators.scenes import Scene, SceneKind
from supervision.probe import luma_view
from vision import motion

ROOT = Path(__file__).resolve().parent.parent
FPS = 5.0


def _pin(cpu_index: int) -> str:
    try:
        cpus = sorted(os.sched_getaffinity(0))
        cpu = cpus[cpu_index % len(cpus)]
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        return "not pinned"
    return f"cpu {cpu}"


class _Looped:
    """A scene rendered once (8 s at 5 fps) and replayed, so the cameras' process spends its
    CPU on encoding and sending rather than on drawing."""

    def __init__(self, seed: int, width: int = 320, height: int = 240) -> None:
        scene = Scene(SceneKind.RESTLESS, seed=seed)
        self.pictures = [scene.yuv420(i / FPS, width, height) for i in range(round(8 * FPS))]

    def yuv420(self, t_s: float, width: int, height: int) -> npt.NDArray[np.uint8]:
        return self.pictures[round(t_s * FPS) % len(self.pictures)]


async def serve_cameras(count: int) -> None:
    """The child: answer ``count`` offers from stdin with cameras; run until stdin closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    pcs = []
    for _ in range(count):
        message = json.loads(await reader.readline())
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        source = _Looped(seed=int(message["i"]) % 4)
        pc.addTrack(FrameTrack(source, width=320, height=240, fps=FPS))
        await pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        answer = {"i": message["i"], "sdp": pc.localDescription.sdp}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
        pcs.append(pc)
    await reader.read()
    for pc in pcs:
        await pc.close()


class _Stream:
    def __init__(self, flowing: list[int], all_flowing: asyncio.Event, count: int) -> None:
        self.flowing, self.all_flowing, self.count = flowing, all_flowing, count
        self.received = 0
        self.kernel_s = 0.0
        self.state: motion.MotionState | None = None

    async def drain(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.received += 1
                if self.received == 5:
                    self.flowing[0] += 1
                    if self.flowing[0] == self.count:
                        self.all_flowing.set()
                luma = luma_view(frame)
                if self.state is None:
                    self.state = motion.MotionState(luma.shape[1], luma.shape[0])
                start = time.thread_time()
                motion.step(self.state, luma, float(frame.time or 0.0))
                self.kernel_s += time.thread_time() - start


async def live_figures(count: int, seconds: float, decode_us: float | None) -> dict[str, Any]:
    """Connect ``count`` cameras, warm up, measure ``seconds``; see the module docstring."""
    core = _pin(-1)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.motion_live",
        "--serve-cameras",
        str(count),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    pcs: list[RTCPeerConnection] = []
    flowing, all_flowing = [0], asyncio.Event()
    streams = [_Stream(flowing, all_flowing, count) for _ in range(count)]
    tasks: set[asyncio.Task[None]] = set()
    try:
        for i in range(count):
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc.addTransceiver("video", direction="recvonly")

            def on_track(track: MediaStreamTrack, stream: _Stream = streams[i]) -> None:
                tasks.add(asyncio.get_running_loop().create_task(stream.drain(track)))

            pc.on("track", on_track)
            await pc.setLocalDescription(await pc.createOffer())
            child.stdin.write(
                (json.dumps({"i": i, "sdp": pc.localDescription.sdp}) + "\n").encode()
            )
            pcs.append(pc)
        await child.stdin.drain()
        for _ in range(count):
            answer = json.loads(await asyncio.wait_for(child.stdout.readline(), 60))
            await pcs[answer["i"]].setRemoteDescription(
                RTCSessionDescription(answer["sdp"], "answer")
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_flowing.wait(), 30)
        connected = sum(s.received > 0 for s in streams)
        await asyncio.sleep(2.0)  # let rates settle
        frames0 = sum(s.received for s in streams)
        kernel0 = sum(s.kernel_s for s in streams)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
        frames = sum(s.received for s in streams) - frames0
        kernel_s = sum(s.kernel_s for s in streams) - kernel0
    finally:
        for task in tasks:
            task.cancel()
        for pc in pcs:
            await pc.close()
        child.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(child.wait(), 10)
        if child.returncode is None:
            child.kill()
            await child.wait()
    expected = count * FPS * wall
    per_frame_us = cpu / max(1, frames) * 1e6
    kernel_us = kernel_s / max(1, frames) * 1e6
    out: dict[str, Any] = {
        "core": core,
        "streams": count,
        "connected": connected,
        "window_s": round(wall, 1),
        "frames": frames,
        "frames_expected": round(expected),
        "delivered_share": round(frames / expected, 3) if expected else 0.0,
        "cpu_share_of_core": round(cpu / wall, 3),
        "cpu_per_frame_us": round(per_frame_us),
        "kernel_us": round(kernel_us, 1),
        # from the CPU per frame that arrived, so a camera process that falls behind on a busy
        # machine does not flatter the figure
        "streams_per_core_at_5fps": int(1e6 / (per_frame_us * FPS)) if frames else 0,
    }
    if decode_us is not None:
        out["decode_us"] = decode_us
        out["aiortc_us"] = round(per_frame_us - decode_us - kernel_us)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "--serve-cameras":
        _pin(0)
        asyncio.run(serve_cameras(int(args[1])))
        return 0
    count = int(args[0]) if args else 10
    print(json.dumps(asyncio.run(live_figures(count, 10.0, None)), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
