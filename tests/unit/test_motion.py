"""The motion kernel (vision.motion) on synthetic frames: behaviour, not speed."""

from __future__ import annotations

import math
import tracemalloc

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from simulators.scenes import Scene, SceneKind
from vision import motion
from vision.motion import MotionInputError, MotionState, Zone, step
from vision.verdict import ELSEWHERE, Thresholds

U8 = npt.NDArray[np.uint8]
W, H, FPS = 320, 240, 5.0
BED = Zone("bed", ((40.0, 100.0), (200.0, 100.0), (200.0, 180.0), (40.0, 180.0)))
FLOOR = Zone("floor", ((0.0, 190.0), (319.0, 190.0), (319.0, 239.0), (0.0, 239.0)))


def room(seed: int = 1) -> U8:
    """A smooth, textured static picture (mid grey, contrast ~30 luma levels)."""
    rng = np.random.default_rng(seed)
    texture = rng.normal(0, 60, (H, W)).astype(np.float32)
    texture = cv2.GaussianBlur(texture, (0, 0), 6)
    return np.clip(120 + texture * 3, 20, 230).astype(np.uint8)


def noisy(base: U8, t_s: float, sigma: float = 2.0, gain: float = 1.0, offset: float = 0.0) -> U8:
    rng = np.random.default_rng(round(t_s * 1000) + 7)
    f = base.astype(np.float32) * gain + offset + rng.normal(0, sigma, base.shape)
    return np.clip(f + 0.5, 0, 255).astype(np.uint8)


def with_block(frame: U8, x: int, y: int, size: int = 24, value: int = 250) -> U8:
    out = frame.copy()
    out[y : y + size, x : x + size] = value
    return out


def times(seconds: float, fps: float = FPS) -> list[float]:
    return [round(i / fps, 6) for i in range(round(seconds * fps))]


def feed(state: MotionState, frames: list[tuple[float, U8]]) -> list[motion.FrameResult]:
    return [step(state, frame, t) for t, frame in frames]


def block_motion(move_from: float, move_to: float, seconds: float = 6.0) -> list[tuple[float, U8]]:
    """A block in the bed zone that moves only between ``move_from`` and ``move_to``."""
    base = room()
    frames = []
    for t in times(seconds):
        k = min(max(t, move_from), move_to) - move_from
        x = 60 + round(20 * k) % 100  # 20 px a second, stays inside the bed (40..200)
        frames.append((t, with_block(noisy(base, t), x, 120)))
    return frames


def scene_frames(scene: Scene, seconds: float = 8.0) -> list[tuple[float, U8]]:
    return [(t, scene.luma(t, W, H)) for t in times(seconds)]


def scene_state(scene: Scene) -> MotionState:
    zones = tuple(Zone(n, p) for n, p in scene.zones(W, H).items())
    return MotionState(W, H, zones)


# -- basic behaviour ---------------------------------------------------------------------------


def test_static_noisy_picture_has_no_motion_and_is_healthy() -> None:
    base = room()
    state = MotionState(W, H, (BED, FLOOR))
    results = feed(state, [(t, noisy(base, t)) for t in times(4.0)])
    assert results[0].is_reset
    assert results[0].is_settling
    assert state.regions == ("bed", "floor", ELSEWHERE)
    assert state.work_size == (160, 120)
    for r in results[1:]:
        assert r.moving_frac < 0.002
        assert not any(r.active)
        assert not (r.is_dark)
        assert not (r.is_flat)
        assert not (r.is_repeat)
        assert not (r.is_light_change)
        assert not (r.is_reset)
        assert 0.5 < r.noise < 4.0  # sensor sigma 2 seen through the downscale
        assert r.threshold >= Thresholds().min_diff


def test_motion_in_one_zone_is_reported_in_that_zone_only() -> None:
    state = MotionState(W, H, (BED, FLOOR))
    results = feed(state, block_motion(1.0, 6.0))
    late = results[-10:]
    assert all(r.level("bed") > 0.01 for r in late if r.moving != results[0].moving)
    assert max(r.level("floor") for r in results) == 0.0
    assert max(r.level(ELSEWHERE) for r in results) == 0.0
    assert results[-1].active == (True, False, False)


def test_zone_polygons_follow_their_shape() -> None:
    """A triangle zone gets the motion inside it; its bounding box's other half does not."""
    inside = Zone("bed", ((40.0, 100.0), (220.0, 100.0), (40.0, 200.0)))
    other = Zone("door", ((220.0, 102.0), (220.0, 200.0), (42.0, 200.0)))
    state = MotionState(W, H, (inside, other))
    base = room()
    frames = [  # a block wiggling in the upper-left corner of the triangle
        (t, with_block(noisy(base, t), 60 + round(10 * math.sin(6 * t)), 110, 16))
        for t in times(4.0)
    ]
    results = feed(state, frames)
    assert max(r.level("bed") for r in results) > 0.01
    assert max(r.level("door") for r in results) == 0.0


def test_minimum_motion_duration_ignores_short_bursts() -> None:
    short = feed(MotionState(W, H, (BED,)), block_motion(2.0, 2.4))
    assert max(r.level("bed") for r in short) > 0.0  # it was seen moving ...
    assert not any(any(r.active) for r in short)  # ... but too briefly to count
    long = feed(MotionState(W, H, (BED,)), block_motion(2.0, 5.0))
    first_active = next(r.t_s for r in long if r.active[0])
    assert 2.0 + Thresholds().min_motion_s - 0.01 <= first_active <= 3.6


def test_a_one_frame_glitch_is_not_activity() -> None:
    base = room()
    frames = [(t, noisy(base, t)) for t in times(4.0)]
    frames[10] = (frames[10][0], with_block(frames[10][1], 80, 120, 40, 0))
    results = feed(MotionState(W, H, (BED,)), frames)
    assert not any(any(r.active) for r in results)


# -- light changes and recalibration -----------------------------------------------------------


def test_light_switch_recalibrates_and_settles() -> None:
    base = room()
    frames = [(t, noisy(base, t, gain=1.0 if t < 2.0 else 0.6)) for t in times(6.0)]
    results = feed(MotionState(W, H, (BED, FLOOR)), frames)
    switch = [r for r in results if r.is_light_change]
    assert [r.t_s for r in switch] == [2.0]
    th = Thresholds()
    for r in results:
        if 2.0 <= r.t_s <= 2.0 + th.settle_s:
            assert r.is_settling
        if r.t_s > 2.0 + th.settle_s + 0.01:
            assert not r.is_settling
            assert r.changed_frac < 0.01
            assert r.moving_frac < 0.01
    assert not any(any(r.active) for r in results)


def test_infrared_switch_is_a_light_change_not_motion() -> None:
    day, night = Scene(SceneKind.EMPTY_BED, seed=3), Scene(SceneKind.EMPTY_BED, seed=3, ir=True)
    frames = [(t, (day if t < 3.0 else night).luma(t, W, H)) for t in times(8.0)]
    state = scene_state(day)
    results = feed(state, frames)
    assert [r.t_s for r in results if r.is_light_change] == [3.0]
    assert not any(any(r.active) for r in results)
    assert max(r.moving_frac for r in results if not r.is_settling) < 0.005


def test_lamp_ramp_in_the_scene_is_recalibrated() -> None:
    scene = Scene(SceneKind.EMPTY_BED, seed=2, lamp_switch_s=3.0)
    results = feed(scene_state(scene), scene_frames(scene))
    assert any(r.is_light_change for r in results)
    assert not any(any(r.active) for r in results)


# -- frame health ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "flag"),
    [
        (SceneKind.LIGHTS_OFF, "is_dark"),
        (SceneKind.COVERED, "is_flat"),
        (SceneKind.FROZEN, "is_repeat"),
    ],
)
def test_health_flags_of_broken_pictures(kind: SceneKind, flag: str) -> None:
    scene = Scene(kind, seed=1)
    results = feed(scene_state(scene), scene_frames(scene, 3.0))
    assert all(getattr(r, flag) for r in results[1:])
    healthy = feed(scene_state(Scene(SceneKind.ASLEEP)), scene_frames(Scene(SceneKind.ASLEEP), 3.0))
    assert not any(getattr(r, flag) for r in healthy[1:])


def test_black_frames_are_dark_flat_and_repeated() -> None:
    black = np.full((H, W), 16, np.uint8)
    results = feed(MotionState(W, H), [(t, black) for t in times(2.0)])
    assert all(r.is_dark and r.is_flat and r.is_repeat for r in results[1:])


# -- input handling ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (np.zeros((H, W), np.float32), "uint8"),
        (np.zeros((H, W), np.uint16), "uint8"),
        (np.zeros((H, W, 3), np.uint8), "2-D"),
        (np.zeros((H * W,), np.uint8), "2-D"),
        (np.zeros((0, W), np.uint8), "empty"),
        (np.zeros((8, 8), np.uint8), "smaller"),
        ([[0] * W] * H, "numpy array"),
        (np.zeros((300, 320), np.uint8), "aspect ratio"),
    ],
)
def test_bad_frames_raise_a_clear_error_and_leave_the_state_usable(
    frame: object, message: str
) -> None:
    base = room()
    state = MotionState(W, H, (BED,))
    step(state, noisy(base, 0.0), 0.0)
    with pytest.raises(MotionInputError, match=message):
        step(state, frame, 0.2)  # type: ignore[arg-type]
    after = step(state, noisy(base, 0.4), 0.4)
    assert not after.is_reset
    assert after.moving_frac < 0.01


def test_bad_timestamps_raise() -> None:
    state = MotionState(W, H)
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(MotionInputError, match="finite"):
            step(state, room(), bad)


@pytest.mark.parametrize(
    ("zones", "message"),
    [
        ((Zone("bed", ((0.0, 0.0), (400.0, 0.0), (0.0, 10.0))),), "outside"),
        ((Zone("bed", ((0.0, 0.0), (10.0, -1.0), (0.0, 10.0))),), "outside"),
        ((BED, Zone("bed", ((0.0, 0.0), (10.0, 0.0), (0.0, 10.0)))), "unique"),
    ],
)
def test_bad_zones_raise(zones: tuple[Zone, ...], message: str) -> None:
    with pytest.raises(MotionInputError, match=message):
        MotionState(W, H, zones)


@pytest.mark.parametrize(
    ("name", "polygon", "message"),
    [
        ("", ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0)), "non-empty"),
        (ELSEWHERE, ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0)), "non-empty"),
        ("bed", ((0.0, 0.0), (1.0, 0.0)), "3 vertices"),
        ("bed", ((0.0, 0.0), (math.nan, 0.0), (0.0, 1.0)), "bad vertex"),
        ("bed", ((0.0, 0.0), (1.0,), (0.0, 1.0)), "bad vertex"),
        ("bed", ((0.0, 0.0), (5.0, 5.0), (10.0, 10.0)), "no area"),
    ],
)
def test_bad_zone_definitions_raise(
    name: str, polygon: tuple[tuple[float, float], ...], message: str
) -> None:
    with pytest.raises(MotionInputError, match=message):
        Zone(name, polygon)


def test_too_small_state_raises() -> None:
    with pytest.raises(MotionInputError, match="smaller"):
        MotionState(8, 240)


def test_size_change_mid_stream_restarts_with_scaled_zones() -> None:
    state = MotionState(W, H, (BED,))
    big = feed(state, block_motion(0.0, 3.0, 3.0))
    assert big[-1].active[0]
    small_frames = [(3.0 + t, cv2.resize(f, (W // 2, H // 2))) for t, f in block_motion(0, 3, 3)]
    results = feed(state, small_frames)
    assert results[0].is_reset
    assert state.size == (W // 2, H // 2)
    assert results[-1].active[0]
    assert results[-1].level("bed") > 0.0
    assert max(r.level(ELSEWHERE) for r in results) == 0.0


def test_strided_view_gives_the_same_result_as_a_copy() -> None:
    """A decoder's Y plane has a stride wider than the picture; a view of it is fine."""
    frames = block_motion(0.5, 3.0, 3.0)
    padded = []
    for t, f in frames:
        plane = np.zeros((H, W + 64), np.uint8)
        plane[:, :W] = f
        padded.append((t, plane[:, :W]))
    a = feed(MotionState(W, H, (BED,)), frames)
    b = feed(MotionState(W, H, (BED,)), padded)
    assert [r.moving for r in a] == [r.moving for r in b]


def test_time_going_backwards_restarts_activity_runs() -> None:
    state = MotionState(W, H, (BED,))
    results = feed(state, block_motion(0.0, 4.0, 4.0))
    assert results[-1].active[0]
    again = step(state, with_block(noisy(room(), 9.0), 100, 120), 1.0)
    assert again.active == (False, False)


# -- cost --------------------------------------------------------------------------------------


def test_no_per_frame_allocation_after_warm_up() -> None:
    """Per frame only the small result object is new: no picture-sized temporary, and nothing
    accumulates from one pass over the frames to the next. tracemalloc counts every thread of
    the process (in the suite the test-database maker runs beside us), so the kernel's figure is
    the least of three measured passes: another thread's allocation cannot hide in all three."""
    frames = block_motion(0.0, 30.0, 30.0)
    state = MotionState(W, H, (BED, FLOOR))
    for repeat in range(6):  # warm up: buffers exist from the start; interpreter free lists fill
        feed(state, [(t + 30.0 * repeat, f) for t, f in frames])
    peaks, held = [], []
    for attempt in range(3):
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            currents = []
            for repeat in range(6 + 2 * attempt, 8 + 2 * attempt):
                for t, frame in frames:
                    step(state, frame, t + 30.0 * repeat)
                currents.append(tracemalloc.get_traced_memory()[0])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        peaks.append(peak - before)
        held.append(currents[1] - currents[0])
    work_bytes = state.work_size[0] * state.work_size[1]
    assert min(peaks) < work_bytes // 2, peaks  # a picture-sized temporary would show here
    assert min(held) < 256, held  # 150 more frames, nothing more held
