"""What the motion check costs: the kernel beside a Frigate-style pipeline and the memory bound.

One command (from the repository root)::

    .venv/bin/python -m bench.motion            # about a minute
    .venv/bin/python -m bench.motion --quick    # fewer repeats and less video, a smoke run

In one run, on one core (the process pins itself to one CPU and OpenCV to one thread):

1. **Kernel** (:func:`vision.motion.step`, with ``bed`` and ``floor`` zones) per frame at
   320x240, 640x480 and 1280x720, beside
   (a) *baseline*: Frigate's improved motion detector as Frigate runs it with its default
       config (:class:`FrigateBaseline`: nearest-neighbour resize to 100 rows, two
       ``np.percentile`` calls and a contrast stretch over a 50-frame history, the motion mask,
       scipy's ``gaussian_filter``, difference against a running average, threshold 30, dilate,
       contours, their area and boxes, calibration and background update); scipy is in the
       ``dev`` extra, and without it the baseline is (a') and says so,
   (a') *baseline, OpenCV blur*: the same with ``cv2.GaussianBlur`` (same 3x3 kernel) in place of
       scipy's filter, the one call that costs most in (a), and
   (b) *memory bound*: reading the same frame once (``np.max`` over every pixel).
   Frames are Y planes of the real clips in ``../shared/data/video`` (resized for the other
   sizes; 1280x720 is upscaled), or the simulators' scenes when the clips are not there. Each
   timing is the best of several passes over a pool of 64 distinct frames (20 MB at 640x480:
   not in the core's own caches, as a freshly decoded frame of another stream would not be),
   the pipelines interleaved pass by pass; the load average is recorded with the figures.
2. **Probes per core**: N streams of 320x240 at 5 fps in one process, each a decoder (VP8 and
   H.264, packets encoded once in advance) plus a kernel, fed round-robin: decode time, Y-plane
   access (a zero-copy view of ``frame.planes[0]`` beside ``to_ndarray(format="gray")``) and kernel
   time per frame, and the streams one core keeps in real time from those (no network side).
3. **Probes per core, live** (``bench/motion_live.py``): N receive-only aiortc peers in this
   process against N simulated cameras in a child process on another CPU, over loopback; the
   CPU this process spends per arrived frame (aiortc's network handling and decoding, plus the
   kernel), split into decoding (item 2), the kernel (measured) and aiortc (the rest).

Prints ratios and writes ``bench/results/motion.json``. :func:`run` returns the same dict.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av
import cv2
import numpy as np
import numpy.typing as npt

from bench.motion_live import live_figures
from simulators.scenes import Scene, SceneKind
from vision import motion

U8 = npt.NDArray[np.uint8]
ROOT = Path(__file__).resolve().parent.parent
CLIPS = ROOT.parent / "shared" / "data" / "video"
RESULTS = ROOT / "bench" / "results" / "motion.json"
SIZES = ((320, 240), (640, 480), (1280, 720))
POOL = 64
CLIP_FILES = ("gmdcsa24_S2_Fall_12.mp4", "beweging_walking-to.h264")
# bed and floor of gmdcsa24_S2_Fall_12.mp4 (labels.json), in 640x480 pixels
BED_640 = ((142, 210), (300, 206), (488, 198), (497, 284), (300, 290), (142, 294))
FLOOR_640 = ((0, 385), (125, 335), (300, 348), (500, 352), (639, 362), (639, 479), (0, 479))


# -- the baseline ------------------------------------------------------------------------------


class FrigateBaseline:
    """Frigate's improved motion detector (``frigate/motion/improved_motion.py``), step by step
    as Frigate runs it with its default motion config (``frame_height`` 100,
    ``improve_contrast``, ``threshold`` 30, ``contour_area`` 10, ``lightning_threshold`` 0.8,
    ``frame_alpha`` 0.01, no motion mask), re-written here without what a benchmark cannot use
    (live config updates, PTZ autotracking, debug images). No zones, no frame health.

    ``blur="scipy"`` is Frigate's own blur, ``scipy.ndimage.gaussian_filter`` (sigma 1,
    radius 1); ``blur="opencv"`` swaps in ``cv2.GaussianBlur`` with the same 3x3 kernel and the
    same border (the one change), to show what that call costs in Frigate's pipeline.
    """

    def __init__(self, width: int, height: int, blur: str = "scipy", frame_height: int = 100):
        self.size = (frame_height * width // height, frame_height)  # (w, h) as cv2 wants it
        self.resize_factor = height / frame_height
        self.avg = np.zeros((frame_height, self.size[0]), np.float32)
        self.contrast = np.zeros((50, 2), np.uint8)  # the last 50 (low, high) percentiles
        self.contrast[:, 1] = 255
        self.index = 0
        self.motion_frames = 0
        self.calibrating = True
        # the motion mask at frame size (255: watched; no masked area configured), resized once
        full = np.full((height, width), 255, np.uint8)
        small = cv2.resize(full, self.size, interpolation=cv2.INTER_AREA)
        self.masked = np.where(small == 0)
        self.blur: Callable[[U8], U8]
        if blur == "scipy":
            from scipy.ndimage import gaussian_filter  # only the baseline needs scipy

            self.blur = lambda picture: gaussian_filter(picture, sigma=1, radius=1)
        elif blur == "opencv":
            self.blur = lambda picture: cv2.GaussianBlur(
                picture, (3, 3), 1.0, borderType=cv2.BORDER_REFLECT
            )
        else:
            raise ValueError(f"blur must be 'scipy' or 'opencv', got {blur!r}")

    def detect(self, luma: U8) -> list[tuple[int, int, int, int]]:
        """One frame; returns the motion boxes in frame pixels, as Frigate does."""
        small = cv2.resize(luma, self.size, interpolation=cv2.INTER_NEAREST)
        lo = np.percentile(small, 4).astype(np.uint8)
        hi = np.percentile(small, 96).astype(np.uint8)
        if lo < hi:  # not a single colour: stretch by the mean of the recent percentiles
            self.contrast[self.index] = [lo, hi]
            self.index = (self.index + 1) % len(self.contrast)
            avg_lo, avg_hi = np.mean(self.contrast, axis=0)
            small = np.clip(small, avg_lo, avg_hi)
            small = ((small - avg_lo) / (avg_hi - avg_lo) * 255).astype(np.uint8)
        small[self.masked] = 0
        blurred = self.blur(small)
        delta = cv2.absdiff(blurred, cv2.convertScaleAbs(self.avg))
        thresh = cv2.threshold(delta, 30, 255, cv2.THRESH_BINARY)[1]
        dilated = cv2.dilate(thresh, None, iterations=1)
        contours = cv2.findContours(dilated, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
        boxes = []
        total_area = 0.0
        for contour in contours:
            area = cv2.contourArea(contour)
            total_area += area
            if area > 10:
                x, y, w, h = cv2.boundingRect(contour)
                f = self.resize_factor
                boxes.append((int(x * f), int(y * f), int((x + w) * f), int((y + h) * f)))
        share = total_area / (self.size[0] * self.size[1])
        if share < 0.05 and len(boxes) <= 4:
            self.calibrating = False
        if share > 0.8:  # lightning, IR switch: recalibrate
            self.calibrating = True
        alpha = 0.2 if self.calibrating else 0.01
        if boxes:  # a lasting difference joins the background after 10 frames
            self.motion_frames += 1
            if self.motion_frames >= 10:
                cv2.accumulateWeighted(blurred, self.avg, alpha)
        else:
            cv2.accumulateWeighted(blurred, self.avg, alpha)
            self.motion_frames = 0
        return boxes


def has_scipy() -> bool:
    return importlib.util.find_spec("scipy") is not None


# -- frames ------------------------------------------------------------------------------------


def clip_lumas(count: int = POOL) -> tuple[list[U8], str]:
    """Up to ``count`` 640x480 Y planes from the real clips, else from a synthetic scene."""
    frames: list[U8] = []
    for name in CLIP_FILES:
        path = CLIPS / name
        if not path.exists():
            continue
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                if (frame.width, frame.height) != (640, 480):
                    break
                plane = frame.planes[0]
                y = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)
                frames.append(np.ascontiguousarray(y[:, : frame.width]))
                if len(frames) >= count * (CLIP_FILES.index(name) + 1) // len(CLIP_FILES):
                    break
    if len(frames) >= count // 2:
        return frames[:count], "real clips: " + ", ".join(CLIP_FILES)
    scene = Scene(SceneKind.RESTLESS, seed=1)
    return [scene.luma(i / 5, 640, 480) for i in range(count)], "synthetic scene (no clips)"


def at_size(frames: Sequence[U8], width: int, height: int) -> list[U8]:
    if (width, height) == (640, 480):
        return list(frames)
    interpolation = cv2.INTER_AREA if width < 640 else cv2.INTER_LINEAR
    return [cv2.resize(f, (width, height), interpolation=interpolation) for f in frames]


def zones_for(width: int, height: int) -> tuple[motion.Zone, ...]:
    sx, sy = (width - 1) / 639, (height - 1) / 479
    return tuple(
        motion.Zone(name, tuple((x * sx, y * sy) for x, y in polygon))
        for name, polygon in (("bed", BED_640), ("floor", FLOOR_640))
    )


# -- timing ------------------------------------------------------------------------------------


#: CPU time of this thread: on a shared machine, time spent descheduled does not count
CLOCK = time.thread_time


def one_pass(make: Callable[[], Callable[[U8, float], object]], frames: Sequence[U8]) -> float:
    """CPU seconds per frame over every frame of the pool, with a fresh state."""
    fn = make()
    for i, f in enumerate(frames[:8]):  # warm up
        fn(f, i / 5)
    start = CLOCK()
    for i, f in enumerate(frames):
        fn(f, (i + 8) / 5)
    return (CLOCK() - start) / len(frames)


def best_per_frame(
    makers: dict[str, Callable[[], Callable[[U8, float], object]]],
    frames: Sequence[U8],
    passes: int,
) -> dict[str, dict[str, float]]:
    """Best and median pass of each pipeline, the pipelines interleaved pass by pass so that
    they share the machine's conditions."""
    times: dict[str, list[float]] = {name: [] for name in makers}
    for _ in range(passes):
        for name, make in makers.items():
            times[name].append(one_pass(make, frames))
    return {name: {"best_s": min(t), "median_s": statistics.median(t)} for name, t in times.items()}


def kernel_figures(frames: Sequence[U8], passes: int) -> dict[str, Any]:
    height, width = frames[0].shape
    zones = zones_for(width, height)

    def kernel() -> Callable[[U8, float], object]:
        state = motion.MotionState(width, height, zones)
        return lambda f, t: motion.step(state, f, t)

    def baseline(blur: str) -> Callable[[], Callable[[U8, float], object]]:
        def make() -> Callable[[U8, float], object]:
            detector = FrigateBaseline(width, height, blur)
            return lambda f, t: detector.detect(f)

        return make

    def memory() -> Callable[[U8, float], object]:
        return lambda f, t: np.max(f)

    # Frigate's blur needs scipy (the dev extra); without it the baseline is the OpenCV one
    frigate_blur = "scipy" if has_scipy() else "opencv"
    timed = best_per_frame(
        {
            "kernel": kernel,
            "baseline": baseline(frigate_blur),
            "baseline_opencv": baseline("opencv"),
            "memory": memory,
        },
        frames,
        passes,
    )
    k, b, bo, m = timed["kernel"], timed["baseline"], timed["baseline_opencv"], timed["memory"]
    pixels = width * height
    return {
        "size": f"{width}x{height}",
        "kernel_us": round(k["best_s"] * 1e6, 1),
        "kernel_median_us": round(k["median_s"] * 1e6, 1),
        "kernel_fps": round(1 / k["best_s"]),
        "kernel_ns_per_pixel": round(k["best_s"] * 1e9 / pixels, 3),
        "baseline_blur": frigate_blur,
        "baseline_us": round(b["best_s"] * 1e6, 1),
        "baseline_fps": round(1 / b["best_s"]),
        "baseline_opencv_us": round(bo["best_s"] * 1e6, 1),
        "baseline_opencv_fps": round(1 / bo["best_s"]),
        "memory_us": round(m["best_s"] * 1e6, 1),
        "memory_ns_per_pixel": round(m["best_s"] * 1e9 / pixels, 3),
        "speedup_vs_baseline": round(b["best_s"] / k["best_s"], 2),
        "speedup_vs_baseline_opencv": round(bo["best_s"] / k["best_s"], 2),
        "times_memory_bound": round(k["best_s"] / m["best_s"], 2),
    }


# -- probes per core ---------------------------------------------------------------------------


def encode_stream(codec: str, seconds: float = 40.0, fps: int = 5) -> list[bytes]:
    """Packets of a 320x240 restless scene, encoded once (the camera's side, not timed)."""
    scene = Scene(SceneKind.RESTLESS, seed=2)
    encoder = av.CodecContext.create(codec, "w")
    encoder.width, encoder.height, encoder.pix_fmt = 320, 240, "yuv420p"
    encoder.time_base = Fraction(1, fps)
    encoder.framerate = Fraction(fps, 1)
    encoder.bit_rate = 300_000
    encoder.gop_size = fps * 10
    packets: list[bytes] = []
    for i in range(round(seconds * fps)):
        frame = av.VideoFrame.from_ndarray(scene.yuv420(i / fps, 320, 240), format="yuv420p")
        frame.pts = i
        packets.extend(bytes(p) for p in encoder.encode(frame))
    packets.extend(bytes(p) for p in encoder.encode(None))
    return packets


def probe_figures(codec: str, streams: int, fps: float, seconds: float) -> dict[str, Any]:
    """N decoders + kernels fed round-robin: CPU per frame split into decode, luma, kernel."""
    # only as much video as is fed (a quick run encodes seconds, not the full 40)
    packets = encode_stream("libvpx" if codec == "vp8" else "libx264", seconds, round(fps))
    decoders = [av.CodecContext.create(codec, "r") for _ in range(streams)]
    states = [motion.MotionState(320, 240, zones_for(320, 240)) for _ in range(streams)]
    decode_s = luma_s = kernel_s = gray_s = 0.0
    frames = 0
    count = min(len(packets), round(seconds * fps))
    for i in range(count):
        for s in range(streams):
            packet = av.Packet(packets[(i + 7 * s) % len(packets)] if i else packets[0])
            t0 = CLOCK()
            try:
                decoded = decoders[s].decode(packet)
            except av.error.InvalidDataError:  # a mid-stream start before the next key frame
                continue
            t1 = CLOCK()
            decode_s += t1 - t0
            for frame in decoded:
                t1 = CLOCK()
                plane = frame.planes[0]
                y = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)
                y = y[:, : frame.width]
                t2 = CLOCK()
                motion.step(states[s], y, i / fps)
                t3 = CLOCK()
                if s == 0:
                    frame.to_ndarray(format="gray")
                    gray_s += CLOCK() - t3
                luma_s += t2 - t1
                kernel_s += t3 - t2
                frames += 1
    per_frame = (decode_s + luma_s + kernel_s) / frames
    return {
        "codec": codec,
        "streams": streams,
        "frames": frames,
        "decode_us": round(decode_s / frames * 1e6, 1),
        "y_plane_view_us": round(luma_s / frames * 1e6, 2),
        "to_ndarray_gray_us": round(gray_s / max(1, frames // streams) * 1e6, 1),
        "kernel_us": round(kernel_s / frames * 1e6, 1),
        "per_frame_us": round(per_frame * 1e6, 1),
        "kernel_share": round(kernel_s / (decode_s + luma_s + kernel_s), 3),
        "streams_per_core_at_5fps": int(1 / (per_frame * fps)),
    }


# -- the run -----------------------------------------------------------------------------------


def pin_one_core() -> str:
    cv2.setNumThreads(1)
    try:
        cpu = sorted(os.sched_getaffinity(0))[-1]
        os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        return "not pinned"
    return f"cpu {cpu}"


def _load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "unknown"


def run(*, quick: bool = False, streams: int = 20, live: int = 20) -> dict[str, Any]:
    """Measure everything; returns the report that :func:`main` prints and writes."""
    core = pin_one_core()
    passes = 3 if quick else 7
    # quick: a smoke run of the same measurements with less video (still real figures)
    probe_s, live_s = (8.0, 3.0) if quick else (40.0, 15.0)
    frames, source = clip_lumas()
    report: dict[str, Any] = {
        "core": core,
        "load_average": _load_average(),
        "frames": source,
        "pool": len(frames),
        "baseline": (
            "Frigate's improved motion detector as Frigate runs it (scipy gaussian_filter blur)"
            if has_scipy()
            else "Frigate's improved motion detector with cv2.GaussianBlur (scipy not installed)"
        ),
        "baseline_opencv": "the same with cv2.GaussianBlur in place of scipy's gaussian_filter",
        "kernel": [],
    }
    for width, height in SIZES:
        report["kernel"].append(kernel_figures(at_size(frames, width, height), passes))
    report["probes"] = [probe_figures(codec, streams, 5.0, probe_s) for codec in ("vp8", "h264")]
    if live > 0:
        vp8 = next(p for p in report["probes"] if p["codec"] == "vp8")
        report["live"] = asyncio.run(
            live_figures(live, live_s, round(vp8["decode_us"] + vp8["y_plane_view_us"], 1))
        )
    k640 = next(k for k in report["kernel"] if k["size"] == "640x480")
    report["targets"] = {
        "kernel_640_speedup_vs_baseline_ge_5": k640["speedup_vs_baseline"] >= 5.0,
        "kernel_640_within_5x_memory_bound": k640["times_memory_bound"] <= 5.0,
        "probe_streams_per_core_ge_50": min(
            [p["streams_per_core_at_5fps"] for p in report["probes"]]
            + ([report["live"]["streams_per_core_at_5fps"]] if "live" in report else [])
        )
        >= 50,
    }
    return report


def print_report(report: dict[str, Any]) -> None:
    print(f"motion kernel, one core ({report['core']}), frames: {report['frames']}")
    print(f"load average: {report['load_average']}")
    print(f"baseline: {report['baseline']}; opencv: {report['baseline_opencv']}")
    print(
        f"{'size':>10}{'kernel us':>11}{'ns/px':>8}{'fps':>8}{'baseline us':>13}{'fps':>7}"
        f"{'opencv us':>11}{'memory us':>11}{'vs base':>9}{'vs opencv':>11}{'x memory':>10}"
    )
    for k in report["kernel"]:
        print(
            f"{k['size']:>10}{k['kernel_us']:>11}{k['kernel_ns_per_pixel']:>8}"
            f"{k['kernel_fps']:>8}{k['baseline_us']:>13}{k['baseline_fps']:>7}"
            f"{k['baseline_opencv_us']:>11}{k['memory_us']:>11}"
            f"{k['speedup_vs_baseline']:>8}x{k['speedup_vs_baseline_opencv']:>10}x"
            f"{k['times_memory_bound']:>9}x"
        )
    print("\nprobes per core: 320x240 at 5 fps, decode + Y plane + kernel per frame")
    print(
        f"{'codec':>6}{'streams':>9}{'decode us':>11}{'Y view us':>11}{'gray us':>9}"
        f"{'kernel us':>11}{'kernel %':>10}{'streams/core':>14}"
    )
    for p in report["probes"]:
        print(
            f"{p['codec']:>6}{p['streams']:>9}{p['decode_us']:>11}{p['y_plane_view_us']:>11}"
            f"{p['to_ndarray_gray_us']:>9}{p['kernel_us']:>11}{p['kernel_share'] * 100:>9.1f}%"
            f"{p['streams_per_core_at_5fps']:>14}"
        )
    live = report.get("live")
    if live:
        print(
            f"\nlive, over aiortc on loopback ({live['core']}): {live['streams']} streams, "
            f"{live['delivered_share']:.0%} of the cameras' frames arrived in "
            f"{live['window_s']} s, this process used {live['cpu_share_of_core']:.0%} of its core"
        )
        print(
            f"per frame: {live['cpu_per_frame_us']} us CPU = decode {live.get('decode_us')} + "
            f"aiortc {live.get('aiortc_us')} + kernel {live['kernel_us']}; "
            f"{live['streams_per_core_at_5fps']} streams per core at 5 fps"
        )
    print("\ntargets: " + ", ".join(f"{k}={v}" for k, v in report["targets"].items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer passes and probe frames")
    parser.add_argument("--streams", type=int, default=20, help="decoders fed round-robin")
    parser.add_argument(
        "--live", type=int, default=20, help="aiortc streams for the live run (0: none)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON report path")
    args = parser.parse_args(argv)
    report = run(quick=args.quick, streams=args.streams, live=args.live)
    print_report(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
