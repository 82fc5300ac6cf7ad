"""Darkness and camera trouble judged by what the picture shows (issue 19), not by its mean
brightness alone: a dim infrared picture of a bed is not ``dark``; black frames, a covered lens
and a frozen encoder still are camera trouble (DESIGN's hard rule 7).

The synthetic pictures are made here; the last test runs the kernel and the verdict on real
frames of the shared clips (``../shared/data/video``; skipped when the folder is absent).
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt
import pytest

from supervision.probe import luma_view
from vision import motion
from vision.motion import FrameResult, MotionState, Zone, step
from vision.verdict import DEFAULT_THRESHOLDS, Reason, Verdict, VerdictKind, decide

U8 = npt.NDArray[np.uint8]
W, H, FPS, WINDOW_S = 320, 240, 5.0, 8.0
BED = Zone("bed", ((60.0, 40.0), (260.0, 40.0), (260.0, 200.0), (60.0, 200.0)))
CLIPS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "video"
TROUBLE = (VerdictKind.DARK, VerdictKind.COVERED, VerdictKind.FROZEN)


def bed_seen_from_above(seed: int = 2) -> npt.NDArray[np.float32]:
    """A lit room with a bed and a patterned duvet, 0..255 before any dimming."""
    rng = np.random.default_rng(seed)
    y = np.full((H, W), 60.0, np.float32)  # the floor around the bed
    cv2.rectangle(y, (60, 40), (260, 200), 190.0, -1)  # the sheet
    pattern = cv2.GaussianBlur(rng.normal(0, 120, (H, W)).astype(np.float32), (0, 0), 2.0)
    duvet = np.zeros((H, W), np.uint8)
    cv2.rectangle(duvet, (90, 70), (250, 195), 1, -1)
    y = np.where(duvet > 0, 150.0 + 3.0 * pattern, y).astype(np.float32)
    cv2.circle(y, (75, 120), 14, 110.0, -1)  # a head on the pillow
    return y


def infrared(base: npt.NDArray[np.float32], t_s: float, *, grain: float = 1.5) -> U8:
    """What a night-vision camera gives: the same scene, dim (mean luma ~30), with grain."""
    rng = np.random.default_rng(round(t_s * 1000) + 11)
    f = base * 0.3 + rng.normal(0.0, grain, base.shape)
    return np.clip(f + 0.5, 0, 255).astype(np.uint8)


def times(seconds: float = WINDOW_S) -> list[float]:
    return [round(i / FPS, 6) for i in range(round(seconds * FPS))]


def watch(frames: list[U8], zones: tuple[Zone, ...] = (BED,)) -> tuple[list[FrameResult], Verdict]:
    state = MotionState(W, H, zones)
    results = [step(state, frame, t) for t, frame in zip(times(), frames, strict=False)]
    return results, decide(results, window_s=WINDOW_S)


def test_a_dim_infrared_picture_with_structure_is_not_dark() -> None:
    base = bed_seen_from_above()
    results, verdict = watch([infrared(base, t) for t in times()])
    mean = sum(r.mean_luma for r in results) / len(results)
    assert mean <= DEFAULT_THRESHOLDS.dark_luma  # as dim as the old rule's "dark" ...
    assert min(r.detail for r in results) > 2 * DEFAULT_THRESHOLDS.dark_detail  # ... yet detailed
    assert not any(r.is_dark or r.is_flat or r.is_repeat for r in results)
    assert verdict.kind not in (*TROUBLE, VerdictKind.NO_SIGNAL)
    assert verdict.reason is not Reason.DEVICE_TROUBLE
    assert verdict.numbers.dark_frac == verdict.numbers.flat_frac == 0.0


def test_detail_is_structure_not_grain() -> None:
    """Heavy sensor noise on a dark, empty picture gives no detail; the same grain over a
    dim scene leaves the scene's detail."""
    dark = np.full((H, W), 20.0, np.float32)
    noise_only, _ = watch([infrared(dark, t, grain=8.0) for t in times(2.0)])
    scene, _ = watch([infrared(bed_seen_from_above(), t, grain=8.0) for t in times(2.0)])
    assert max(r.detail for r in noise_only) < DEFAULT_THRESHOLDS.dark_detail / 2
    assert min(r.detail for r in scene) > DEFAULT_THRESHOLDS.dark_detail


def uniform(level: float, t_s: float, *, noise: float, tilt: float = 0.0) -> U8:
    """A lens covered by something: one level, optionally light leaking in from one side
    (``tilt`` luma levels across the picture), and sensor noise."""
    rng = np.random.default_rng(round(t_s * 1000) + 5)
    ramp = np.linspace(0.0, tilt, W, dtype=np.float32)[None, :]
    f = level + ramp + rng.normal(0.0, noise, (H, W))
    return np.clip(f + 0.5, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("black", VerdictKind.DARK),  # the encoder sends black frames
        ("dark_noise", VerdictKind.DARK),  # lights off, gain turned up: noise and nothing else
        ("covered", VerdictKind.COVERED),  # a hand over the lens, lit: uniform and grainy
        ("covered_leak", VerdictKind.COVERED),  # light leaking round it: variance, no edges
        ("frozen", VerdictKind.FROZEN),  # a stuck encoder repeating a lit picture
        ("frozen_infrared", VerdictKind.FROZEN),  # ... or a dim infrared one
    ],
)
def test_cameras_that_show_nothing_are_still_trouble(name: str, expected: VerdictKind) -> None:
    lit = np.clip(bed_seen_from_above() + 0.5, 0, 255).astype(np.uint8)
    still_ir = infrared(bed_seen_from_above(), 0.0)
    make = {
        "black": lambda t: np.full((H, W), 16, np.uint8),
        "dark_noise": lambda t: uniform(20.0, t, noise=6.0),
        "covered": lambda t: uniform(95.0, t, noise=2.0),
        "covered_leak": lambda t: uniform(80.0, t, noise=2.0, tilt=60.0),
        "frozen": lambda t: lit,
        "frozen_infrared": lambda t: still_ir,
    }[name]
    results, verdict = watch([make(t) for t in times()])
    if name == "covered_leak":  # more variance than the variance rule alone calls flat
        assert min(r.std_luma for r in results) > DEFAULT_THRESHOLDS.flat_std
    assert verdict.kind is expected, (name, verdict.kind, verdict.numbers)
    assert verdict.reason is Reason.DEVICE_TROUBLE
    assert verdict.needs_human


def clip_results(name: str, frames: int, every: int = 1) -> tuple[list[FrameResult], dict]:
    """The kernel over the first ``frames`` frames of a shared clip (every ``every``-th), as the
    probe converts them (a packed RGB clip goes through ``luma_view``'s conversion)."""
    labels = json.loads((CLIPS / "labels.json").read_text())
    clip = next(c for c in labels["clips"] if c["file"] == name)
    zones = tuple(
        Zone(n, tuple((float(x), float(y)) for x, y in p)) for n, p in clip["zones"].items()
    )
    out: list[FrameResult] = []
    state: MotionState | None = None
    with av.open(str(CLIPS / name)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= frames:
                break
            if index % every:
                continue
            luma = luma_view(frame)
            if state is None:
                state = motion.MotionState(luma.shape[1], luma.shape[0], zones)
            out.append(step(state, luma, index / float(clip["fps"])))
    return out, clip


@pytest.mark.skipif(
    not (CLIPS / "labels.json").exists(), reason=f"the shared clips are not at {CLIPS}"
)
def test_real_frames_infrared_is_not_dark_and_a_head_moving_in_bed_clears() -> None:
    ir, clip = clip_results("eventsleep_s09c2_headmove.mkv", frames=1000)  # 26 frames, 6 fps
    assert all(r.mean_luma <= DEFAULT_THRESHOLDS.dark_luma for r in ir)  # dim all through
    assert not any(r.is_dark or r.is_flat for r in ir)
    verdict = decide(ir, window_s=float(clip["duration_s"]))
    assert verdict.kind not in TROUBLE
    assert not verdict.needs_human, verdict.reason  # labelled: the head moves, in bed
    lit, _ = clip_results("gmdcsa24_S3_ADL_20.mp4", frames=30, every=3)  # 2 s, 5 fps
    assert all(r.mean_luma > 100 and r.detail > 1.0 for r in lit)
    assert decide(lit).kind not in TROUBLE
