"""How few bits does the motion check need? Verdicts on VP8 at the probe's rate against raw frames.

The probe asks the camera for a small, slow stream (320x240 at 5 fps) and a bit rate (``b=AS``).
Fewer bits a frame are fewer RTP packets a frame, and the backend's receive path pays per
packet (SRTP, RTP parsing, the jitter buffer, statistics). This bench finds how low the rate can
go before the check's verdicts change, on the real clips of ``../shared/data/video``:

1. each clip is decoded, thinned to the probe's rate (the frame nearest each 0.2 s, as
   :func:`bench.motion_eval.thin`) and scaled to the probe's 320x240 (stretched, as a camera
   honouring the probe's stream does; the zones are scaled with it);
2. the reference is the kernel on those frames as they are (no compression);
3. per rate, the same frames are encoded once, in order, by the devices' own probe encoder
   (:class:`homeside.encoder.Vp8AtRate`: libvpx with aiortc's real-time settings at the rate
   the offer's ``b=AS`` asks, a key frame first and every 2 s of stream time: what our devices
   send a probe), decoded by ``libvpx`` as aiortc's receiver does, and the kernel runs on the
   decoded frames;
4. every window of every clip is scored as ``bench.motion_eval`` scores it (8 s windows every
   1 s, each from a fresh kernel state) and compared with the reference: the same verdict kind,
   the same "needs a human". The dangerous windows cleared must stay 0.

Per rate it reports the bytes and RTP packets a frame (aiortc's packetiser: at most 1300 bytes a
packet with the VP8 descriptor) on the same material, the agreement with the reference and the
motion_eval totals. Writes ``bench/results/probe_bitrate.json``; nothing else is written.

    .venv/bin/python -m bench.probe_bitrate [--rates 500,250,150,100,64,48,32]
"""

from __future__ import annotations

import argparse
import fractions
import json
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av
import numpy as np
from aiortc.codecs.vpx import PACKET_MAX

from bench.motion_eval import (
    DEFAULT_CLIPS,
    TROUBLE,
    WINDOW_S,
    WindowScore,
    classify,
    summarise_windows,
    window_starts,
)
from homeside.encoder import Vp8AtRate
from supervision.probe import ProbeConfig, luma_view
from vision import motion
from vision.verdict import DEFAULT_THRESHOLDS, decide

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "probe_bitrate.json"
CLOCK = 90_000
TIME_BASE = fractions.Fraction(1, CLOCK)
RATES_KBPS = (500, 250, 150, 100, 64, 48, 32)


@dataclass(frozen=True, slots=True)
class Clip:
    name: str
    labels: dict[str, Any]
    size: tuple[int, int]  # the clip's own, which its zones are drawn on
    times: list[float]
    pictures: list[av.VideoFrame]  # yuv420p at the probe's size, the probe's rate


def load(folder: Path, clip: dict[str, Any], width: int, height: int, fps: float) -> Clip:
    """The clip as the probe would receive it, before compression."""
    times: list[float] = []
    pictures: list[av.VideoFrame] = []
    next_t = 0.0
    with av.open(str(folder / clip["file"])) as container:
        stream = container.streams.video[0]
        size = (stream.width, stream.height)
        hint = float(clip.get("fps") or stream.average_rate or 25)
        for index, frame in enumerate(container.decode(stream)):
            t_s = float(frame.time) if frame.time is not None else index / hint
            if t_s + 1e-6 < next_t:
                continue
            next_t = max(next_t + 1.0 / fps, t_s)
            times.append(t_s)
            pictures.append(frame.reformat(width=width, height=height, format="yuv420p"))
    return Clip(clip["file"], clip, size, times, pictures)


def compress(clip: Clip, kbps: int) -> tuple[list[av.VideoFrame], list[int]]:
    """The clip through the devices' probe encoder at ``kbps`` and libvpx's decoder: the
    decoded frames and the encoded size of each frame (0 for a frame the encoder dropped, whose
    place the last decoded picture takes, as a receiver keeps showing it)."""
    encoder = Vp8AtRate(kbps)
    decoder = av.CodecContext.create("libvpx", "r")
    decoded: list[av.VideoFrame] = []
    sizes: list[int] = []
    for t_s, picture in zip(clip.times, clip.pictures, strict=True):
        picture.pts = round(t_s * CLOCK)
        picture.time_base = TIME_BASE
        packet = encoder.encode(picture)
        sizes.append(packet.size if packet is not None else 0)
        out = decoder.decode(packet) if packet is not None else []
        decoded.append(out[-1] if out else decoded[-1])
    return decoded, sizes


def packets(size: int) -> int:
    """RTP packets aiortc's packetiser makes of a frame of ``size`` bytes (the VP8 payload
    descriptor with a 15-bit picture id is 4 bytes)."""
    return max(1, math.ceil(size / (PACKET_MAX - 4)))


def score(clip: Clip, frames: list[av.VideoFrame]) -> list[WindowScore]:
    """Every window of the clip as bench.motion_eval scores it, on these frames."""
    labels = clip.labels
    width, height = frames[0].width, frames[0].height
    sx, sy = width / clip.size[0], height / clip.size[1]
    zones = tuple(
        motion.Zone(name, tuple((float(x) * sx, float(y) * sy) for x, y in polygon))
        for name, polygon in labels.get("zones", {}).items()
    )
    duration = float(labels["duration_s"])
    starts = window_starts(duration)
    states: dict[float, motion.MotionState] = {}
    results: dict[float, list[motion.FrameResult]] = {s: [] for s in starts}
    for t_s, frame in zip(clip.times, frames, strict=True):
        luma = luma_view(frame)
        for start in starts:
            if not start <= t_s < start + WINDOW_S:
                continue
            state = states.get(start)
            if state is None:
                state = states[start] = motion.MotionState(width, height, zones, DEFAULT_THRESHOLDS)
            results[start].append(motion.step(state, luma, t_s - start))
    scores = []
    for start in starts:
        end = min(duration, start + WINDOW_S)
        truth, dominant, light_only = classify(labels, start, end)
        verdict = decide(results[start], window_s=end - start, thresholds=DEFAULT_THRESHOLDS)
        scores.append(WindowScore(clip.name, start, end, truth, dominant, light_only, verdict))
    return scores


def agreement(reference: list[WindowScore], other: list[WindowScore]) -> dict[str, Any]:
    same_kind = sum(a.verdict.kind is b.verdict.kind for a, b in zip(reference, other, strict=True))
    same_human = sum(a.cleared == b.cleared for a, b in zip(reference, other, strict=True))
    changed = Counter(
        f"{a.clip.split('_')[0]}: {a.verdict.kind.value}->{b.verdict.kind.value}"
        for a, b in zip(reference, other, strict=True)
        if a.verdict.kind is not b.verdict.kind
    )
    n = len(reference)
    return {
        "windows": n,
        "same_verdict": same_kind,
        "same_verdict_share": round(same_kind / n, 3) if n else None,
        "same_needs_human": same_human,
        "same_needs_human_share": round(same_human / n, 3) if n else None,
        "changed": dict(changed),
    }


def run(folder: Path = DEFAULT_CLIPS, rates: tuple[int, ...] = RATES_KBPS) -> dict[str, Any]:
    config = ProbeConfig()
    width, height, fps = config.max_width, config.max_height, config.max_fps
    labels = json.loads((folder / "labels.json").read_text())
    started = time.perf_counter()
    reference: list[WindowScore] = []
    per_rate: dict[int, list[WindowScore]] = {r: [] for r in rates}
    sizes: dict[int, list[int]] = {r: [] for r in rates}
    for entry in labels["clips"]:
        clip = load(folder, entry, width, height, fps)
        reference.extend(score(clip, clip.pictures))
        for rate in rates:
            decoded, frame_sizes = compress(clip, rate)
            per_rate[rate].extend(score(clip, decoded))
            sizes[rate].extend(frame_sizes[1:])  # the first key frame apart (the 2 s ones are sent)
    out: dict[str, Any] = {
        "folder": str(folder),
        "stream": f"{width}x{height} at {fps:g} fps",
        "clips": len(labels["clips"]),
        "reference": {
            "what": "the same frames, not compressed",
            "camera_trouble_verdicts": sum(w.verdict.kind in TROUBLE for w in reference),
            **summarise_windows(reference),
        },
        "current_b_as_kbps": config.max_kbps,
        "rates": {},
        "seconds": 0.0,
    }
    for rate in rates:
        frame_bytes = sizes[rate]
        out["rates"][str(rate)] = {
            "bytes_per_frame_mean": round(float(np.mean(frame_bytes))),
            "bytes_per_frame_p95": round(float(np.percentile(frame_bytes, 95))),
            "rtp_packets_per_frame_mean": round(
                float(np.mean([packets(b) for b in frame_bytes])), 2
            ),
            "kbit_s_measured": round(float(np.mean(frame_bytes)) * 8 * fps / 1000, 1),
            "agreement_with_reference": agreement(reference, per_rate[rate]),
            "agreement_with_current": (
                agreement(per_rate[config.max_kbps], per_rate[rate])
                if config.max_kbps in per_rate
                else None
            ),
            "camera_trouble_verdicts": sum(w.verdict.kind in TROUBLE for w in per_rate[rate]),
            **summarise_windows(per_rate[rate]),
        }
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clips", type=Path, default=DEFAULT_CLIPS)
    p.add_argument("--rates", default=",".join(map(str, RATES_KBPS)), help="kbit/s, comma list")
    args = p.parse_args(argv)
    if not (args.clips / "labels.json").exists():
        print(f"no labelled clips in {args.clips}", file=sys.stderr)
        return 2
    result = run(args.clips, tuple(int(r) for r in args.rates.split(",")))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    for rate, r in result["rates"].items():
        a = r["agreement_with_reference"]
        print(
            f"{rate:>4} kbit/s: {r['bytes_per_frame_mean']:>5} B/frame "
            f"{r['rtp_packets_per_frame_mean']:.2f} packets/frame; same verdict "
            f"{a['same_verdict']}/{a['windows']}, same needs-human {a['same_needs_human']}"
            f"/{a['windows']}; dangerous cleared {r['dangerous_cleared']}, clearable cleared "
            f"{r['clearable_cleared']}/{r['clearable']}; camera trouble "
            f"{r['camera_trouble_verdicts']} {a['changed']}"
        )
    ref = result["reference"]
    print(
        f"reference (no compression): dangerous cleared {ref['dangerous_cleared']}, clearable "
        f"cleared {ref['clearable_cleared']}/{ref['clearable']}, camera trouble "
        f"{ref['camera_trouble_verdicts']}; {result['seconds']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
