"""The numbers the probe hands the round with its verdict (``supervision.probe.verdict_detail``):
JSON without NaN, the verdict's own kind, reason and confidence, per-region seconds active."""

from __future__ import annotations

import json

from simulators.scenes import Scene, SceneKind
from supervision.probe import verdict_detail
from vision import motion
from vision.verdict import decide, no_signal

W, H = 320, 240


def test_a_watched_scene_gives_its_numbers() -> None:
    scene = Scene(SceneKind.WALKING, seed=3)
    zones = [motion.Zone(name, poly) for name, poly in scene.zones(W, H).items()]
    state = motion.MotionState(W, H, zones)
    frames = [motion.step(state, scene.luma(i / 5, W, H), i / 5) for i in range(40)]
    verdict = decide(frames, window_s=8.0)
    detail = verdict_detail(verdict, ended="window")
    assert json.loads(json.dumps(detail, allow_nan=False)) == detail
    assert (detail["verdict"], detail["reason"], detail["where"]) == (
        verdict.kind.value,
        verdict.reason.value,
        verdict.where,
    )
    assert detail["ended"] == "window"
    assert detail["confidence"] == round(verdict.confidence, 4)
    numbers = detail["numbers"]
    assert numbers["frames"] == 40
    assert numbers["span_s"] == 7.8
    floor = verdict.numbers.region("floor")
    assert floor is not None
    assert numbers["floor_active_s"] == round(floor.active_s, 4) > 0.0
    assert {
        f"{r}_{k}" for r in ("bed", "floor", "elsewhere") for k in ("active_s", "moving_peak")
    } <= set(numbers)
    assert len(numbers) <= 20


def test_nothing_arrived_is_no_signal_with_zero_numbers() -> None:
    detail = verdict_detail(no_signal(), ended="no_frames")
    assert detail["verdict"] == "no_signal"
    assert detail["reason"] == "no_signal"
    assert detail["numbers"]["frames"] == 0
    assert json.dumps(detail, allow_nan=False)
