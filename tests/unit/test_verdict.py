"""The motion check's verdict (vision.verdict) from synthetic scenes and hand-made results."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.scenes import Scene, SceneKind
from vision import motion
from vision.verdict import (
    DEFAULT_THRESHOLDS,
    ELSEWHERE,
    Reason,
    Thresholds,
    Verdict,
    VerdictKind,
    decide,
    no_signal,
)

W, H, FPS, WINDOW_S = 320, 240, 5.0, 8.0


def watch(
    kind: SceneKind,
    *,
    seed: int = 0,
    with_zones: bool = True,
    seconds: float = WINDOW_S,
    window_s: float | None = WINDOW_S,
    **nuisances: object,
) -> Verdict:
    """What the probe would conclude after watching a scene at 320x240, 5 fps."""
    scene = Scene(kind, seed=seed, **nuisances)  # type: ignore[arg-type]
    zones = tuple(motion.Zone(n, p) for n, p in scene.zones(W, H).items()) if with_zones else ()
    state = motion.MotionState(W, H, zones)
    results = [
        motion.step(state, scene.luma(i / FPS, W, H), i / FPS) for i in range(round(seconds * FPS))
    ]
    return decide(results, window_s=window_s)


# -- each verdict from a scene -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected", "where", "needs_human"),
    [
        (SceneKind.ASLEEP, VerdictKind.STILL, "bed", False),
        (SceneKind.RESTLESS, VerdictKind.ACTIVITY, "bed", False),
        (SceneKind.WALKING, VerdictKind.ACTIVITY, "floor", True),
        (SceneKind.LEAVES_BED, VerdictKind.ACTIVITY, None, True),
        (SceneKind.EMPTY_BED, VerdictKind.EMPTY, None, True),
        (SceneKind.LIGHTS_OFF, VerdictKind.DARK, None, True),
        (SceneKind.FROZEN, VerdictKind.FROZEN, None, True),
        (SceneKind.COVERED, VerdictKind.COVERED, None, True),
    ],
)
def test_scene_verdicts(
    kind: SceneKind, expected: VerdictKind, where: str | None, needs_human: bool
) -> None:
    v = watch(kind)
    assert v.kind is expected
    assert v.needs_human is needs_human
    if where is not None:
        assert v.where == where
    assert 0.0 <= v.confidence <= 1.0
    assert v.numbers.frames == 40
    assert v.numbers.evidence_frames > 30


@pytest.mark.parametrize("kind", [SceneKind.LIGHTS_OFF, SceneKind.FROZEN, SceneKind.COVERED])
def test_camera_trouble_is_device_trouble(kind: SceneKind) -> None:
    v = watch(kind, ir=True)
    assert v.kind.value == kind.value.replace("lights_off", "dark")
    assert v.reason is Reason.DEVICE_TROUBLE
    assert v.needs_human


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    "nuisances",
    [{}, {"noise": 6.0}, {"ir": True}, {"lamp_switch_s": 3.0}, {"compression": 12}],
    ids=["plain", "noise", "ir", "lamp", "compression"],
)
@pytest.mark.parametrize(
    "kind",
    [
        SceneKind.FALL,
        SceneKind.FALLEN,
        SceneKind.LEAVES_BED,
        SceneKind.EMPTY_BED,
        SceneKind.LIGHTS_OFF,
        SceneKind.FROZEN,
        SceneKind.COVERED,
    ],
)
def test_dangerous_scenes_are_never_cleared(
    kind: SceneKind, nuisances: dict[str, object], seed: int
) -> None:
    assert Scene(kind).truth.is_dangerous
    v = watch(kind, seed=seed, **nuisances)
    assert v.needs_human, (kind, nuisances, seed, v.kind, v.reason)


def test_without_a_bed_zone_nothing_is_cleared() -> None:
    v = watch(SceneKind.RESTLESS, with_zones=False)
    assert v.kind is VerdictKind.ACTIVITY
    assert v.where == ELSEWHERE
    assert v.needs_human
    assert v.reason is Reason.NO_BED_ZONE


def test_a_light_change_alone_never_clears() -> None:
    v = watch(SceneKind.EMPTY_BED, lamp_switch_s=2.0)
    assert v.kind is VerdictKind.EMPTY
    assert v.needs_human
    assert v.numbers.light_changes >= 1


def test_infrared_switch_in_an_empty_room_is_not_activity() -> None:
    day, night = Scene(SceneKind.EMPTY_BED, seed=3), Scene(SceneKind.EMPTY_BED, seed=3, ir=True)
    zones = tuple(motion.Zone(n, p) for n, p in day.zones(W, H).items())
    state = motion.MotionState(W, H, zones)
    results = []
    for i in range(40):
        t = i / FPS
        results.append(motion.step(state, (day if t < 4.0 else night).luma(t, W, H), t))
    v = decide(results, window_s=WINDOW_S)
    assert v.kind is VerdictKind.EMPTY
    assert v.needs_human
    assert v.numbers.light_changes == 1


# -- no signal ---------------------------------------------------------------------------------


def test_no_frames_is_no_signal() -> None:
    v = decide([], window_s=WINDOW_S)
    assert v.kind is VerdictKind.NO_SIGNAL
    assert v.needs_human
    assert v.reason is Reason.NO_SIGNAL
    assert v == no_signal()


def test_too_few_frames_is_no_signal() -> None:
    v = watch(SceneKind.RESTLESS, seconds=0.4)
    assert v.kind is VerdictKind.NO_SIGNAL
    assert v.numbers.frames == 2


def test_frames_covering_too_little_of_the_window_is_no_signal() -> None:
    assert watch(SceneKind.RESTLESS, seconds=3.0).kind is VerdictKind.NO_SIGNAL
    assert watch(SceneKind.RESTLESS, seconds=3.0, window_s=None).kind is VerdictKind.ACTIVITY


# -- numbers and thresholds --------------------------------------------------------------------


def test_numbers_say_what_happened_where() -> None:
    v = watch(SceneKind.RESTLESS)
    bed, floor = v.numbers.region("bed"), v.numbers.region("floor")
    assert bed is not None
    assert floor is not None
    assert v.numbers.region("door") is None
    assert bed.active_s >= DEFAULT_THRESHOLDS.clear_bed_active_s
    assert floor.active_s == 0.0
    assert bed.moving_mean > floor.moving_mean
    assert 7.0 < v.numbers.span_s <= 8.0
    assert v.numbers.dark_frac == v.numbers.flat_frac == v.numbers.repeat_frac == 0.0


def test_stricter_thresholds_escalate_what_defaults_clear() -> None:
    strict = dataclasses.replace(DEFAULT_THRESHOLDS, clear_bed_active_s=60.0)
    scene = Scene(SceneKind.RESTLESS)
    zones = tuple(motion.Zone(n, p) for n, p in scene.zones(W, H).items())
    state = motion.MotionState(W, H, zones, strict)
    results = [motion.step(state, scene.luma(i / FPS, W, H), i / FPS) for i in range(40)]
    v = decide(results, window_s=WINDOW_S, thresholds=strict)
    assert v.kind is VerdictKind.ACTIVITY
    assert v.needs_human
    assert v.reason is Reason.TOO_LITTLE_IN_BED


@pytest.mark.parametrize(
    "changes",
    [
        {"work_height": 4},
        {"blur_ksize": 4},
        {"blur_ksize": 0},
        {"contrast_low": 0.9, "contrast_high": 0.1},
        {"contrast_every": 0},
        {"min_frames": 0},
        {"bg_alpha": 0.0},
        {"settle_alpha": 1.5},
        {"min_motion_s": -1.0},
        {"activity_min_s": float("nan")},
        {"min_contrast_span": 0.0},
        {"dark_detail": float("nan")},
        {"flat_detail": float("nan")},
        {"active_share": 0.0},
    ],
)
def test_bad_thresholds_raise(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(DEFAULT_THRESHOLDS, **changes)  # type: ignore[arg-type]


# -- properties --------------------------------------------------------------------------------

pictures = st.sampled_from(["noise", "black", "white", "checker", "ramp", "shifted"])


def picture(kind: str, seed: int, i: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng([seed, i])
    if kind == "noise":
        return rng.integers(0, 256, (h, w), dtype=np.uint8)
    if kind == "black":
        return np.zeros((h, w), np.uint8)
    if kind == "white":
        return np.full((h, w), 255, np.uint8)
    if kind == "checker":
        yy, xx = np.mgrid[0:h, 0:w]
        return (((yy // 4 + xx // 4 + i) % 2) * 255).astype(np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    ramp = (xx * 255 // max(1, w - 1)).astype(np.uint8)
    if kind == "shifted":
        return np.roll(ramp, int(rng.integers(-w, w)), axis=1)
    return ramp


@settings(max_examples=40, deadline=None)
@given(
    kinds=st.lists(pictures, min_size=1, max_size=12),
    seed=st.integers(0, 2**16),
    size=st.sampled_from([(16, 16), (24, 32), (120, 160), (97, 131), (240, 320)]),
    dt=st.floats(0.0, 2.0),
    with_zone=st.booleans(),
)
def test_any_pictures_give_levels_in_range_and_a_verdict(
    kinds: list[str], seed: int, size: tuple[int, int], dt: float, with_zone: bool
) -> None:
    h, w = size
    zones = (motion.Zone("bed", ((0.0, 0.0), (w / 2, 0.0), (w / 2, h / 2))),) if with_zone else ()
    state = motion.MotionState(w, h, zones)
    results = []
    for i, kind in enumerate(kinds):
        r = motion.step(state, picture(kind, seed, i, h, w), i * dt)
        assert all(0.0 <= x <= 1.0 for x in (*r.changed, *r.moving, r.changed_frac, r.moving_frac))
        assert 0.0 <= r.mean_luma <= 255.0
        assert r.std_luma >= 0.0
        assert r.noise >= 0.0
        assert len(r.active) == len(r.regions) == len(zones) + 1
        results.append(r)
    v = decide(results, window_s=len(kinds) * dt or None)
    assert v.kind in set(VerdictKind)
    assert 0.0 <= v.confidence <= 1.0
    if v.kind in {VerdictKind.NO_SIGNAL, VerdictKind.EMPTY} or not with_zone:
        assert v.needs_human


@settings(max_examples=30, deadline=None)
@given(
    times=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=10),
    thresholds=st.builds(
        Thresholds,
        min_motion_s=st.floats(0.0, 3.0),
        max_gap_s=st.floats(0.0, 3.0),
        moving_lag_s=st.floats(0.0, 2.0),
        settle_s=st.floats(0.0, 3.0),
    ),
)
def test_any_timestamps_never_crash(times: list[float], thresholds: Thresholds) -> None:
    state = motion.MotionState(64, 48, (), thresholds)
    rng = np.random.default_rng(0)
    results = [motion.step(state, rng.integers(0, 256, (48, 64), dtype=np.uint8), t) for t in times]
    v = decide(results, thresholds=thresholds)
    assert 0.0 <= v.confidence <= 1.0


def test_a_stuck_picture_still_being_refined_is_frozen() -> None:
    """Behind a live encoder a stuck picture changes a little for a while (rate changes), then
    repeats: fewer repeats than frozen_frac, but with nothing moving it is still frozen."""
    scene = Scene(SceneKind.FROZEN, seed=4)
    zones = tuple(motion.Zone(n, p) for n, p in scene.zones(W, H).items())
    state = motion.MotionState(W, H, zones)
    still = scene.luma(0.0, W, H)
    rng = np.random.default_rng(1)
    results = []
    for i in range(40):
        frame = still
        if i < 20:  # the encoder's refinements: a small, spread-out change
            frame = np.clip(still + rng.integers(0, 2, still.shape), 0, 255).astype(np.uint8)
        results.append(motion.step(state, frame, i / FPS))
    v = decide(results, window_s=WINDOW_S)
    assert DEFAULT_THRESHOLDS.repeat_veto_frac < v.numbers.repeat_frac
    assert v.numbers.repeat_frac < DEFAULT_THRESHOLDS.frozen_frac
    assert v.kind is VerdictKind.FROZEN
    assert v.reason is Reason.DEVICE_TROUBLE
