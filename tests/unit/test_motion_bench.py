"""``bench.motion``'s baseline and kernel table on a few synthetic frames: what they compute,
never how fast (figures belong in the benchmark's own run)."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from bench import motion as bench
from bench.baselines.frigate import percentile_of_histogram
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


def test_frigate_lite_is_frigate_with_opencv_blur_bit_for_bit() -> None:
    """The lite baseline changes how each step is computed, not what: with the same blur as the
    as-written pipeline it finds the same boxes and keeps the same background, frame by frame."""
    scene = Scene(SceneKind.WALKING, seed=3)
    written, lite = bench.FrigateAsWritten(W, H, "opencv"), bench.FrigateLite(W, H)
    found = 0
    for i in range(40):
        frame = scene.luma(i / 5, W, H)
        boxes = written.detect(frame)
        assert lite.detect(frame) == boxes
        found += bool(boxes)
    assert found > 0
    assert np.array_equal(written.avg, lite.avg)


@pytest.mark.skipif(not bench.has_scipy(), reason="no scipy")
def test_frigate_lite_finds_the_same_block_as_frigate_as_written() -> None:
    """Against scipy's blur (which truncates where OpenCV rounds) the boxes agree within a few
    pixels."""
    written, lite = bench.FrigateAsWritten(W, H, "scipy"), bench.FrigateLite(W, H)
    for t in range(150):
        frame = noisy_room(t)
        written.detect(frame)
        lite.detect(frame)
    frame = with_block(noisy_room(151), 150)
    (a,), (b,) = written.detect(frame), lite.detect(frame)
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) <= 6


def test_histogram_percentile_is_numpys() -> None:
    rng = np.random.default_rng(5)
    for n in (1, 2, 7, 13_300):
        values = rng.integers(0, 256, n).astype(np.uint8)
        cum = np.cumsum(np.bincount(values, minlength=256)).astype(np.float32)
        for pct in (4, 50, 96):
            want = int(np.percentile(values, pct).astype(np.uint8))
            assert percentile_of_histogram(cum, n, pct) == want


def test_kernel_figures_report_every_pipeline_and_consistent_ratios() -> None:
    clips = bench.synthetic_pool(W, H, 2.0)
    k = bench.kernel_figures(clips, passes=1, overhead_s=0.0)
    assert k["size"] == f"{W}x{H}"
    assert k["rows_read_every"] == 2
    assert k["touched_bytes_per_frame"] == (H // 2) * W
    for kind in ("quiet", "active"):
        r = k[kind]
        for key in ("kernel_us", "frigate_as_written_us", "frigate_lite_us", "floor_cold_us",
                    "floor_hot_us", "kernel_hot_us"):  # fmt: skip
            assert r[key] > 0
        assert r["speedup_vs_frigate_lite"] == pytest.approx(
            r["frigate_lite_us"] / r["kernel_us"], rel=0.05
        )
        assert r["times_floor_hot"] == pytest.approx(
            r["kernel_hot_us"] / r["floor_hot_us"], rel=0.1
        )


def test_real_pool_takes_5_fps_without_start_up_and_never_upscales(tmp_path: Path) -> None:
    """A 10 fps clip of 400x300 labelled start-up, still, activity: every second frame, the
    start-up left out, each frame's kind from its label; no 640x480 pool from it."""
    with av.open(str(tmp_path / "room.mp4"), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 400, 300, "yuv420p"
        for i in range(30):
            picture = np.full((300, 400, 3), 8 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    segments = [
        {"start_s": 0.0, "end_s": 1.0, "label": "startup"},
        {"start_s": 1.0, "end_s": 2.0, "label": "still"},
        {"start_s": 2.0, "end_s": 3.0, "label": "activity"},
    ]
    clip = {"file": "room.mp4", "width": 400, "height": 300, "fps": 10.0, "segments": segments}
    (tmp_path / "labels.json").write_text(json.dumps({"clips": [clip]}))
    (pool,) = bench.real_pool(320, 240, clips_dir=tmp_path)
    assert pool.kinds == ["quiet"] * 5 + ["active"] * 5
    assert all(f.shape == (240, 320) for f in pool.frames)
    assert bench.real_pool(640, 480, clips_dir=tmp_path) == []
