"""What the motion check costs: the kernel beside fair baselines and the floor of its memory reads.

One command (from the repository root)::

    .venv/bin/python -m bench.motion            # about a minute and a half
    .venv/bin/python -m bench.motion --quick    # fewer passes and less video, a smoke run

In one run, on one core (the process pins itself to one CPU and OpenCV to one thread):

1. **The frame pool**: real consecutive frames at 5 fps (one frame every 0.2 s of the clip's own
   time) from the labelled clips in ``../shared/data/video`` (``labels.json``), each decoded at
   its native size, centre-cropped to 4:3 and downscaled (``INTER_AREA``) to 320x240 and to
   640x480, only from clips at least that large (never upscaled): 640x480 from the 640x480
   clips, 320x240 from those and the larger ones. Frames labelled ``startup`` are left out. Each
   frame is *quiet* (labelled still, empty, dark or on the floor) or *active* (activity, a fall,
   a light change), and every figure is reported for each kind separately: the kernel skips
   work on quiet frames, Frigate does not. Without the clips the benchmark says so and uses the
   simulators' scenes (labelled by the scene).
2. **Kernel vs Frigate** (:func:`vision.motion.step`, with ``bed`` and ``floor`` zones) per frame
   at both sizes, each clip in order with a fresh state, beside two baselines frozen in
   ``bench/baselines/frigate.py``: *Frigate as written* (its ``np.percentile`` contrast, float
   stretch and scipy blur) and *Frigate-lite* (the same steps with a histogram and a ``cv2.LUT``
   stretch and ``cv2.GaussianBlur``: what a lean rival would run; the same boxes). The pipelines
   take turns pass by pass; the best pass counts (the median is recorded). The pool is larger
   than the last-level cache, so frames come to each pipeline cold.
3. **Kernel vs the floor of the bytes it touches**: the kernel reads every ``step``-th row of a
   frame (``step = round(height / work_height)``: 2 at 320x240, 5 at 640x480). The floor is a
   numpy read (``np.max``) of exactly those rows, *hot* (the whole frame read just before, as
   a frame the decoder just wrote is) and *cold* (straight from the pool); the kernel is timed
   hot and cold the same way, on the same frames.
4. **Probe decoding** (320x240, 5 fps): the 320x240 pool encoded as a camera sends it, with
   aiortc's own encoders (VP8 by libvpx, realtime; H.264 by libx264 in the constrained baseline
   profile, ``zerolatency``: no B-frames, as WebRTC sends), split into frames as aiortc's
   receiver does, and decoded with aiortc's decoders (``Vp8Decoder``: libvpx;
   ``H264Decoder``: FFmpeg's h264), N streams round-robin; decode, Y-plane view and kernel time
   per frame. ``streams_per_core_at_5fps_computed`` is ``1 / (per frame x 5)``: computed from a
   single-threaded loop, not measured (the saturation benchmark measures live streams).
5. **Live** (``bench/motion_live.py``): N receive-only aiortc peers in this process against N
   simulated cameras in a child process, over loopback: the CPU this process spends per arrived
   frame, split into decoding (item 4), the kernel and aiortc (the rest); its streams per core
   are again computed (``_computed``) from that CPU share.

All times are CPU time of this thread per frame (``time.thread_time``, so time spent
descheduled on a shared machine does not count), less the cost of the two clock reads around
each frame (``timer_overhead_us``, measured in the same run). The load average is recorded.

Prints ratios and writes ``bench/results/motion.json``. :func:`run` returns the same dict.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av
import cv2
import numpy as np
import numpy.typing as npt

from bench.baselines.frigate import FrigateAsWritten, FrigateLite
from bench.motion_live import live_figures
from simulators.scenes import Scene, SceneKind
from vision import motion

U8 = npt.NDArray[np.uint8]
ROOT = Path(__file__).resolve().parent.parent
CLIPS = ROOT.parent / "shared" / "data" / "video"
RESULTS = ROOT / "bench" / "results" / "motion.json"
SIZES = ((320, 240), (640, 480))
FPS = 5.0
QUIET = frozenset({"still", "empty", "dark", "on_floor"})
ACTIVE = frozenset({"activity", "fall", "light_change"})
KINDS = ("quiet", "active")
WARM_FRAMES = 3  # each clip's first frames feed the state but are not timed
# bed and floor of gmdcsa24_S2_Fall_12.mp4 (labels.json), in 640x480 pixels
BED_640 = ((142, 210), (300, 206), (488, 198), (497, 284), (300, 290), (142, 294))
FLOOR_640 = ((0, 385), (125, 335), (300, 348), (500, 352), (639, 362), (639, 479), (0, 479))

#: kept for earlier callers: Frigate's detector as Frigate writes it
FrigateBaseline = FrigateAsWritten
__all__ = ["FrigateAsWritten", "FrigateBaseline", "FrigateLite", "kernel_figures", "run"]


def has_scipy() -> bool:
    import importlib.util

    return importlib.util.find_spec("scipy") is not None


# -- the frame pool ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """Consecutive 5 fps frames of one clip at one size, each quiet or active."""

    name: str
    frames: list[U8]
    kinds: list[str]


def _label_at(segments: Sequence[dict[str, Any]], t: float) -> str | None:
    for seg in segments:
        if seg["start_s"] <= t < seg["end_s"]:
            return str(seg["label"])
    return None


def _crop_43(y: U8) -> U8:
    h, w = y.shape
    if w * 3 > h * 4:  # wider than 4:3
        cw = h * 4 // 3
        x0 = (w - cw) // 2
        return y[:, x0 : x0 + cw]
    ch = w * 3 // 4
    y0 = (h - ch) // 2
    return y[y0 : y0 + ch, :]


def real_pool(
    width: int,
    height: int,
    *,
    max_seconds: float | None = None,
    max_clips: int | None = None,
    clips_dir: Path = CLIPS,
) -> list[Clip]:
    """Every labelled clip at least ``width`` x ``height`` (after a 4:3 crop), at 5 fps
    (the first ``max_clips`` of them when given: the quick run's smoke)."""
    labels_path = clips_dir / "labels.json"
    if not labels_path.exists():
        return []
    out: list[Clip] = []
    for entry in json.loads(labels_path.read_text())["clips"]:
        if max_clips is not None and len(out) >= max_clips:
            break
        path = clips_dir / entry["file"]
        w, h = int(entry["width"]), int(entry["height"])
        cw, ch = (w, w * 3 // 4) if w * 3 <= h * 4 else (h * 4 // 3, h)
        if cw < width or ch < height or not path.exists():
            continue  # never upscaled
        fps = float(entry["fps"])
        frames: list[U8] = []
        kinds: list[str] = []
        next_t = 0.0
        with av.open(str(path)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                t = i / fps  # the clip's own time (raw .h264 streams carry no timestamps)
                if t + 1e-6 < next_t:
                    continue
                next_t += 1 / FPS
                if max_seconds is not None and t > max_seconds:
                    break
                label = _label_at(entry["segments"], t)
                if label is None or label == "startup":
                    continue
                plane = frame.planes[0]
                y = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)
                y = _crop_43(y[:, : frame.width])
                if y.shape != (height, width):
                    y = cv2.resize(y, (width, height), interpolation=cv2.INTER_AREA)
                frames.append(np.ascontiguousarray(y))
                kinds.append("quiet" if label in QUIET else "active")
        if len(frames) > WARM_FRAMES:
            out.append(Clip(str(entry["file"]), frames, kinds))
    return out


def synthetic_pool(width: int, height: int, seconds: float) -> list[Clip]:
    """The simulators' scenes when the clips are not there: a still sleeper and a walker."""
    out = []
    for kind, label in ((SceneKind.ASLEEP, "quiet"), (SceneKind.WALKING, "active")):
        scene = Scene(kind, seed=1)
        n = round(seconds * FPS)
        frames = [scene.luma(i / FPS, width, height) for i in range(n)]
        out.append(Clip(f"scene:{kind.value}", frames, [label] * n))
    return out


def pool_for(width: int, height: int, quick: bool) -> tuple[list[Clip], str]:
    # quick: the first three clips (quiet and active frames both among them), 4 s each
    clips = real_pool(
        width, height, max_seconds=4.0 if quick else None, max_clips=3 if quick else None
    )
    if clips:
        return clips, "real clips at 5 fps: " + ", ".join(c.name for c in clips)
    return synthetic_pool(width, height, 4.0 if quick else 40.0), "synthetic scenes (no clips)"


def zones_for(width: int, height: int) -> tuple[motion.Zone, ...]:
    sx, sy = (width - 1) / 639, (height - 1) / 479
    return tuple(
        motion.Zone(name, tuple((x * sx, y * sy) for x, y in polygon))
        for name, polygon in (("bed", BED_640), ("floor", FLOOR_640))
    )


def last_level_cache_bytes() -> int | None:
    """The largest CPU cache of cpu0 (Linux sysfs), or None when it cannot be read."""
    best = None
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        scale = {"K": 1024, "M": 1024 * 1024}.get(text[-1:], 1)
        size = int(text.rstrip("KM")) * scale
        best = size if best is None else max(best, size)
    return best


# -- timing ------------------------------------------------------------------------------------


#: CPU time of this thread: on a shared machine, time spent descheduled does not count
CLOCK = time.thread_time
Step = Callable[[U8, float], object]
Make = Callable[[int, int], Step]


def timer_overhead_s(samples: int = 20_000) -> float:
    """What two clock reads around a call that does nothing cost, per frame."""
    noop: Step = lambda f, t: None  # noqa: E731
    frame = np.zeros((2, 2), np.uint8)
    best = float("inf")
    for _ in range(3):
        total = 0.0
        for i in range(samples):
            t0 = CLOCK()
            noop(frame, i)
            total += CLOCK() - t0
        best = min(best, total / samples)
    return best


def one_pass(make: Make, clips: Sequence[Clip], *, hot: bool = False) -> dict[str, float]:
    """CPU seconds per frame, per kind, over every clip in order with a fresh state each.
    ``hot``: the whole frame is read (untimed) just before it is handed over."""
    total = dict.fromkeys(KINDS, 0.0)
    count = dict.fromkeys(KINDS, 0)
    for clip in clips:
        height, width = clip.frames[0].shape
        fn = make(width, height)
        for i, (frame, kind) in enumerate(zip(clip.frames, clip.kinds, strict=True)):
            if hot:
                np.max(frame)
            t0 = CLOCK()
            fn(frame, i / FPS)
            took = CLOCK() - t0
            if i >= WARM_FRAMES:
                total[kind] += took
                count[kind] += 1
    return {k: total[k] / count[k] for k in KINDS if count[k]}


def best_per_frame(
    makers: dict[str, tuple[Make, bool]], clips: Sequence[Clip], passes: int
) -> dict[str, dict[str, dict[str, float]]]:
    """Per pipeline and kind: the best and the median pass, the pipelines interleaved pass by
    pass so that they share the machine's conditions."""
    times: dict[str, dict[str, list[float]]] = {name: {} for name in makers}
    for _ in range(passes):
        for name, (make, hot) in makers.items():
            for kind, s in one_pass(make, clips, hot=hot).items():
                times[name].setdefault(kind, []).append(s)
    return {
        name: {k: {"best_s": min(t), "median_s": statistics.median(t)} for k, t in kinds.items()}
        for name, kinds in times.items()
    }


def kernel_step(width: int, height: int) -> Step:
    state = motion.MotionState(width, height, zones_for(width, height))
    return lambda f, t: motion.step(state, f, t)


def frigate_step(blur: str) -> Make:
    def make(width: int, height: int) -> Step:
        detector = FrigateAsWritten(width, height, blur)
        return lambda f, t: detector.detect(f)

    return make


def lite_step(width: int, height: int) -> Step:
    detector = FrigateLite(width, height)
    return lambda f, t: detector.detect(f)


def touched_rows_step(width: int, height: int) -> Step:
    """Read exactly the rows the kernel reads: every ``step``-th, whole (``np.max``)."""
    rows = max(1, round(height / motion.DEFAULT_THRESHOLDS.work_height))
    return lambda f, t: np.max(f[::rows])


def kernel_figures(clips: Sequence[Clip], passes: int, overhead_s: float) -> dict[str, Any]:
    """Kernel, Frigate as written, Frigate-lite and the touched-bytes floor on one size's pool."""
    height, width = clips[0].frames[0].shape
    frigate_blur = "scipy" if has_scipy() else "opencv"
    timed = best_per_frame(
        {
            "kernel": (kernel_step, False),
            "frigate_as_written": (frigate_step(frigate_blur), False),
            "frigate_lite": (lite_step, False),
            "kernel_hot": (kernel_step, True),
            "floor_cold": (touched_rows_step, False),
            "floor_hot": (touched_rows_step, True),
        },
        clips,
        passes,
    )

    def us(name: str, kind: str, which: str = "best_s") -> float:
        return round(max(timed[name][kind][which] - overhead_s, 1e-9) * 1e6, 2)

    frames = sum(len(c.frames) for c in clips)
    pool_bytes = sum(f.nbytes for c in clips for f in c.frames)
    llc = last_level_cache_bytes()
    step = max(1, round(height / motion.DEFAULT_THRESHOLDS.work_height))
    out: dict[str, Any] = {
        "size": f"{width}x{height}",
        "frames": frames,
        "frames_by_kind": {k: sum(c.kinds.count(k) for c in clips) for k in KINDS},
        "clips": len(clips),
        "pool_bytes": pool_bytes,
        "last_level_cache_bytes": llc,
        "pool_exceeds_cache": None if llc is None else pool_bytes > llc,
        "rows_read_every": step,
        "touched_bytes_per_frame": len(range(0, height, step)) * width,
        "frigate_blur": frigate_blur,
    }
    for kind in KINDS:
        if kind not in timed["kernel"]:
            continue
        k = us("kernel", kind)
        fw, fl = us("frigate_as_written", kind), us("frigate_lite", kind)
        kh, fc, fh = us("kernel_hot", kind), us("floor_cold", kind), us("floor_hot", kind)
        out[kind] = {
            "kernel_us": k,
            "kernel_median_us": us("kernel", kind, "median_s"),
            "frigate_as_written_us": fw,
            "frigate_as_written_median_us": us("frigate_as_written", kind, "median_s"),
            "frigate_lite_us": fl,
            "frigate_lite_median_us": us("frigate_lite", kind, "median_s"),
            "speedup_vs_frigate_as_written": round(fw / k, 2),
            "speedup_vs_frigate_lite": round(fl / k, 2),
            "kernel_hot_us": kh,
            "floor_cold_us": fc,
            "floor_hot_us": fh,
            "times_floor_cold": round(k / fc, 2),
            "times_floor_hot": round(kh / fh, 2),
        }
    return out


# -- probes per core ---------------------------------------------------------------------------


def encode_stream(codec: str, pictures: Sequence[U8]) -> list[bytes]:
    """One encoded frame per picture (Y of the pool, grey chroma), as a camera running aiortc
    sends it: aiortc's own encoder (``Vp8Encoder``: libvpx realtime, CBR; ``H264Encoder``:
    libx264, constrained baseline, ``zerolatency``, so no B-frames), its RTP payloads joined back
    into frames as aiortc's receiver does (``vp8_depayload`` / ``h264_depayload``). Not timed."""
    from aiortc.codecs.h264 import H264Encoder, h264_depayload
    from aiortc.codecs.vpx import Vp8Encoder, vp8_depayload

    encoder = Vp8Encoder() if codec == "vp8" else H264Encoder()
    depayload = vp8_depayload if codec == "vp8" else h264_depayload
    height, width = pictures[0].shape
    chroma = np.full((height // 2, width), 128, np.uint8)  # U and V planes, stacked as I420
    out: list[bytes] = []
    for i, y in enumerate(pictures):
        frame = av.VideoFrame.from_ndarray(np.vstack([y, chroma]), format="yuv420p")
        frame.pts = i
        frame.time_base = Fraction(1, round(FPS))
        payloads, _ = encoder.encode(frame, force_keyframe=i == 0)
        data = b"".join(depayload(p) for p in payloads)
        if data:
            out.append(data)
    return out


def probe_figures(
    codec: str, streams: int, pictures: Sequence[U8], overhead_s: float
) -> dict[str, Any]:
    """N aiortc decoders + kernels fed round-robin: CPU per frame split into decode, Y-plane view
    (as the probe takes it, :func:`supervision.probe.luma_view`), kernel."""
    from aiortc.codecs.h264 import H264Decoder
    from aiortc.codecs.vpx import Vp8Decoder
    from aiortc.jitterbuffer import JitterFrame

    from supervision.probe import luma_view

    encoded = encode_stream(codec, pictures)
    height, width = pictures[0].shape
    decoders = [Vp8Decoder() if codec == "vp8" else H264Decoder() for _ in range(streams)]
    states = [motion.MotionState(width, height, zones_for(width, height)) for _ in range(streams)]
    decode_s = luma_s = kernel_s = gray_s = 0.0
    frames = 0
    for i, data in enumerate(encoded):
        for s in range(streams):
            packet = JitterFrame(data, timestamp=i * 18_000)  # 90 kHz clock at 5 fps
            t0 = CLOCK()
            decoded = decoders[s].decode(packet)
            decode_s += CLOCK() - t0 - overhead_s
            for frame in decoded:
                t1 = CLOCK()
                y = luma_view(frame)
                t2 = CLOCK()
                motion.step(states[s], y, i / FPS)
                t3 = CLOCK()
                if s == 0:
                    frame.to_ndarray(format="gray")
                    gray_s += CLOCK() - t3
                luma_s += t2 - t1 - overhead_s
                kernel_s += t3 - t2 - overhead_s
                frames += 1
    per_frame = (decode_s + luma_s + kernel_s) / frames
    return {
        "codec": codec,
        "decoder": "aiortc Vp8Decoder (libvpx)" if codec == "vp8" else "aiortc H264Decoder (h264)",
        "encoder": (
            "aiortc Vp8Encoder (libvpx realtime)"
            if codec == "vp8"
            else "aiortc H264Encoder (libx264 constrained baseline, zerolatency: no B-frames)"
        ),
        "source": f"{width}x{height} pool at 5 fps, grey chroma",
        "streams": streams,
        "frames": frames,
        "encoded_bytes_per_frame": round(sum(map(len, encoded)) / len(encoded)),
        "decode_us": round(decode_s / frames * 1e6, 1),
        "y_plane_view_us": round(luma_s / frames * 1e6, 2),
        "to_ndarray_gray_us": round(gray_s / max(1, frames // streams) * 1e6, 1),
        "kernel_us": round(kernel_s / frames * 1e6, 1),
        "per_frame_us": round(per_frame * 1e6, 1),
        "kernel_share": round(kernel_s / (decode_s + luma_s + kernel_s), 3),
        "streams_per_core_at_5fps_computed": int(1 / (per_frame * FPS)),
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
    passes = 1 if quick else 5
    overhead = timer_overhead_s(2_000 if quick else 20_000)
    report: dict[str, Any] = {
        "core": core,
        "load_average": _load_average(),
        "timer_overhead_us": round(overhead * 1e6, 3),
        "frigate_as_written": (
            "Frigate's improved motion detector as Frigate writes it (np.percentile, scipy blur)"
            if has_scipy()
            else "Frigate's improved motion detector with cv2.GaussianBlur (scipy not installed)"
        ),
        "frigate_lite": "the same steps with a histogram + cv2.LUT stretch and cv2.GaussianBlur",
        "pools": {},
        "kernel": [],
    }
    pool_320: list[Clip] = []
    for width, height in SIZES:
        clips, source = pool_for(width, height, quick)
        report["pools"][f"{width}x{height}"] = source
        report["kernel"].append(kernel_figures(clips, passes, overhead))
        if (width, height) == (320, 240):
            pool_320 = clips
    pictures = [f for c in pool_320 for f in c.frames][: round((3 if quick else 40) * FPS)]
    report["probes"] = [
        probe_figures(codec, streams, pictures, overhead) for codec in ("vp8", "h264")
    ]
    if live > 0:
        vp8 = next(p for p in report["probes"] if p["codec"] == "vp8")
        found = asyncio.run(
            live_figures(
                live, 1.0 if quick else 15.0, round(vp8["decode_us"] + vp8["y_plane_view_us"], 1)
            )
        )
        found["streams_per_core_at_5fps_computed"] = found.pop("streams_per_core_at_5fps")
        report["live"] = found
    return report


def print_report(report: dict[str, Any]) -> None:
    print(f"motion kernel, one core ({report['core']}), load average {report['load_average']}")
    print(f"timer overhead {report['timer_overhead_us']} us per frame (subtracted)")
    for size, source in report["pools"].items():
        print(f"pool {size}: {source}")
    print(
        f"{'size':>8}{'kind':>8}{'kernel':>9}{'as written':>12}{'lite':>8}{'vs written':>12}"
        f"{'vs lite':>9}{'floor cold':>12}{'x cold':>8}{'hot':>7}{'floor hot':>11}{'x hot':>7}"
    )
    for k in report["kernel"]:
        for kind in KINDS:
            if kind not in k:
                continue
            r = k[kind]
            print(
                f"{k['size']:>8}{kind:>8}{r['kernel_us']:>9}{r['frigate_as_written_us']:>12}"
                f"{r['frigate_lite_us']:>8}{r['speedup_vs_frigate_as_written']:>11}x"
                f"{r['speedup_vs_frigate_lite']:>8}x{r['floor_cold_us']:>12}"
                f"{r['times_floor_cold']:>7}x{r['kernel_hot_us']:>7}{r['floor_hot_us']:>11}"
                f"{r['times_floor_hot']:>6}x"
            )
    print("\nprobe decoding: 320x240 at 5 fps, decode + Y plane + kernel per frame (us)")
    for p in report["probes"]:
        print(
            f"{p['codec']:>5} x{p['streams']}: decode {p['decode_us']}, Y view "
            f"{p['y_plane_view_us']}, kernel {p['kernel_us']} ({p['kernel_share']:.1%}); "
            f"{p['streams_per_core_at_5fps_computed']} streams per core (computed)"
        )
    live = report.get("live")
    if live:
        print(
            f"\nlive over aiortc ({live['core']}): {live['streams']} streams, "
            f"{live['delivered_share']:.0%} of frames arrived, {live['cpu_share_of_core']:.0%} of "
            f"a core; {live['cpu_per_frame_us']} us CPU per frame; "
            f"{live['streams_per_core_at_5fps_computed']} streams per core (computed)"
        )


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
