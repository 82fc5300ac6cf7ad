"""``bench.motion``'s baseline and kernel table on a few synthetic frames: what they compute,
never how fast (figures belong in the benchmark's own run)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from bench import motion as bench
from simulators.scenes import Scene, SceneKind

U8 = npt.NDArray[np.uint8]
W, H = 320, 240


def noisy_room(t: int) -> U8:
    rng = np.random.default_rng(t)
    base = np.tile(np.linspace(40, 200, W, dtype=np.float32), (H, 1))
    return np.clip(base + rng.normal(0, 2.0, (H, W)), 0, 255).astype(np.uint8)


def with_block(frame: U8, x: int) -> U8:
    out = frame.copy()
    out[100:160, x : x + 40] = 250
    return out


BLURS = [
    "opencv",
    pytest.param("scipy", marks=pytest.mark.skipif(not bench.has_scipy(), reason="no scipy")),
]


@pytest.mark.parametrize("blur", BLURS)
def test_frigate_baseline_finds_a_moving_block_and_nothing_in_a_still_room(blur: str) -> None:
    detector = bench.FrigateBaseline(W, H, blur)
    # Frigate settles slowly: its stretch averages 50 frames that start at (0, 255), and the
    # background follows at 0.01 once calibrated (~125 frames on this picture)
    for t in range(150):
        detector.detect(noisy_room(t))
    assert detector.detect(noisy_room(150)) == []
    boxes = detector.detect(with_block(noisy_room(151), 150))
    assert len(boxes) == 1
    x0, y0, x1, y1 = boxes[0]
    assert 0 <= x0 < x1 <= W
    assert 0 <= y0 < y1 <= H
    assert x0 <= 150 + 8  # the block, in frame pixels (within a working pixel or so)
    assert x1 >= 190 - 8


def test_frigate_baseline_rejects_an_unknown_blur() -> None:
    with pytest.raises(ValueError, match="blur"):
        bench.FrigateBaseline(W, H, "median")


def test_kernel_figures_report_every_pipeline_and_consistent_ratios() -> None:
    scene = Scene(SceneKind.RESTLESS, seed=1)
    frames = [scene.luma(i / 5, W, H) for i in range(12)]
    k = bench.kernel_figures(frames, passes=1)
    assert k["size"] == f"{W}x{H}"
    assert k["baseline_blur"] == ("scipy" if bench.has_scipy() else "opencv")
    for key in ("kernel_us", "baseline_us", "baseline_opencv_us", "memory_us"):
        assert k[key] > 0
    assert k["speedup_vs_baseline"] == pytest.approx(k["baseline_us"] / k["kernel_us"], rel=0.05)
    assert k["times_memory_bound"] == pytest.approx(k["kernel_us"] / k["memory_us"], rel=0.1)
