"""Does a frozen camera read ``frozen`` at the probe's rate? The devices' probe encoder against
libvpx alone, on the simulated frozen camera and live still scenes.

Each scene (``frozen``: one picture repeated; ``asleep`` and ``empty_bed``: live, sensor noise)
is encoded by :class:`homeside.encoder.Vp8AtRate` (a key frame first and every 2 s) at each rate,
at 320x240 and 160x120, 5 and 2 fps, decoded by libvpx as aiortc's receiver does, and one 8 s
window goes through the probe's kernel and verdict. The baseline, in the same run, is the same
encoder with ``exact_repeats=False`` (libvpx alone, which keeps refining a stuck picture). Per
case: the verdict, the repeat share (``frozen_frac`` is the limit) and the median mean absolute
difference of consecutive received pictures. Writes ``bench/results/frozen_rate.json``.

    .venv/bin/python -m bench.frozen_rate
"""

from __future__ import annotations

import fractions
import itertools
import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av
import numpy as np

from homeside.encoder import Vp8AtRate
from simulators.scenes import Scene, SceneKind
from supervision.probe import luma_view
from vision import motion
from vision.verdict import DEFAULT_THRESHOLDS, decide

RESULTS = Path(__file__).resolve().parent / "results" / "frozen_rate.json"
CLOCK = 90_000
TIME_BASE = fractions.Fraction(1, CLOCK)
RATES_KBPS = (64, 100, 150, 250, 500)
SIZES = ((320, 240), (160, 120))
FPS = (5.0, 2.0)
SCENES = (SceneKind.FROZEN, SceneKind.ASLEEP, SceneKind.EMPTY_BED)
WINDOW_S = 8.0


def window(
    kind: SceneKind, kbps: int, size: tuple[int, int], fps: float, *, exact_repeats: bool
) -> dict[str, Any]:
    width, height = size
    scene = Scene(kind, seed=1)
    encoder = Vp8AtRate(kbps, exact_repeats=exact_repeats)
    decoder = av.CodecContext.create("libvpx", "r")
    zones = tuple(motion.Zone(n, p) for n, p in scene.zones(width, height).items())
    state = motion.MotionState(width, height, zones)
    results: list[motion.FrameResult] = []
    lumas: list[np.ndarray] = []
    for i in range(round(WINDOW_S * fps)):
        t_s = i / fps
        frame = av.VideoFrame.from_ndarray(scene.yuv420(t_s, width, height), format="yuv420p")
        frame.pts, frame.time_base = round(t_s * CLOCK), TIME_BASE
        packet = encoder.encode(frame)
        decoded = decoder.decode(packet) if packet is not None else []
        if not decoded:
            continue
        luma = luma_view(decoded[-1])
        results.append(motion.step(state, luma, t_s))
        lumas.append(luma.astype(np.float32))
    verdict = decide(results, window_s=WINDOW_S)
    mads = [float(np.abs(b - a).mean()) for a, b in itertools.pairwise(lumas)]
    return {
        "verdict": verdict.kind.value,
        "device_trouble": verdict.reason.value == "device_trouble",
        "repeat_frac": round(verdict.numbers.repeat_frac, 2),
        "mad_median": round(float(np.median(mads)), 3),
        "kbit_s_sent": round(encoder.bytes * 8 / (encoder.frames / fps) / 1000, 1),
    }


def run() -> dict[str, Any]:
    rows = []
    for size in SIZES:
        for fps in FPS:
            for kbps in RATES_KBPS:
                for kind in SCENES:
                    row = {"size": f"{size[0]}x{size[1]}", "fps": fps, "kbps": kbps}
                    row["scene"] = kind.value
                    row["device"] = window(kind, kbps, size, fps, exact_repeats=True)
                    row["baseline_libvpx_alone"] = window(
                        kind, kbps, size, fps, exact_repeats=False
                    )
                    rows.append(row)
    frozen = [r for r in rows if r["scene"] == "frozen"]
    live = [r for r in rows if r["scene"] != "frozen"]
    return {
        "frozen_frac_limit": DEFAULT_THRESHOLDS.frozen_frac,
        "frozen_read_frozen": sum(r["device"]["verdict"] == "frozen" for r in frozen),
        "frozen_read_frozen_baseline": sum(
            r["baseline_libvpx_alone"]["verdict"] == "frozen" for r in frozen
        ),
        "frozen_cases": len(frozen),
        "live_read_trouble": sum(r["device"]["device_trouble"] for r in live),
        "live_cases": len(live),
        "rows": rows,
    }


def main() -> int:
    result = run()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    for r in result["rows"]:
        d, b = r["device"], r["baseline_libvpx_alone"]
        print(
            f"{r['size']:>7} {r['fps']:g} fps {r['kbps']:>3} kbit/s {r['scene']:>9}: "
            f"{d['verdict']:>7} repeats {d['repeat_frac']:.2f} (libvpx alone {b['verdict']:>7} "
            f"{b['repeat_frac']:.2f}, mad {b['mad_median']:.2f})"
        )
    print(
        f"frozen read frozen {result['frozen_read_frozen']}/{result['frozen_cases']} "
        f"(libvpx alone {result['frozen_read_frozen_baseline']}); live read as trouble "
        f"{result['live_read_trouble']}/{result['live_cases']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
