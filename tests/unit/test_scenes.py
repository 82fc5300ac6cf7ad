"""The simulators' synthetic scenes (simulators.scenes): deterministic, well-formed, labelled."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulators.scenes import Scene, SceneKind


@pytest.mark.parametrize("kind", list(SceneKind))
def test_every_kind_renders_deterministic_video_range_luma(kind: SceneKind) -> None:
    a, b = Scene(kind, seed=5, compression=12), Scene(kind, seed=5, compression=12)
    for t in (0.0, 1.3, 4.0):
        ya, yb = a.luma(t, 160, 120), b.luma(t, 160, 120)
        assert ya.dtype == np.uint8
        assert ya.shape == (120, 160)
        assert np.array_equal(ya, yb)
    truth = a.truth
    assert truth.expected in {"activity", "still", "empty", "dark", "frozen", "covered"}
    assert not (truth.is_dangerous and truth.is_clearable)


def test_yuv420_holds_the_luma_and_half_size_chroma() -> None:
    scene = Scene(SceneKind.WALKING, seed=1)
    picture = scene.yuv420(2.0, 64, 48)
    assert picture.shape == (72, 64)
    assert picture.dtype == np.uint8
    assert np.array_equal(picture[:48], scene.luma(2.0, 64, 48))
    grey = Scene(SceneKind.ASLEEP, ir=True).yuv420(0.0, 64, 48)
    assert set(np.unique(grey[48:])) == {128}


def test_people_move_and_frozen_cameras_do_not() -> None:
    walking, frozen = Scene(SceneKind.WALKING, noise=0), Scene(SceneKind.FROZEN, noise=0)
    assert not np.array_equal(walking.luma(0.0, 160, 120), walking.luma(1.0, 160, 120))
    assert np.array_equal(frozen.luma(0.0, 160, 120), frozen.luma(5.0, 160, 120))


def test_nuisances_change_the_picture() -> None:
    plain = Scene(SceneKind.EMPTY_BED, seed=2).luma(5.0, 160, 120).astype(float)
    lamp = Scene(SceneKind.EMPTY_BED, seed=2, lamp_switch_s=3.0).luma(5.0, 160, 120)
    ir = Scene(SceneKind.EMPTY_BED, seed=2, ir=True).luma(5.0, 160, 120)
    dark = Scene(SceneKind.LIGHTS_OFF, seed=2).luma(5.0, 160, 120)
    assert lamp.mean() < plain.mean() - 10
    assert ir.std() < plain.std() or abs(ir.mean() - plain.mean()) > 10
    assert dark.mean() < 25


def test_zones_are_inside_the_picture() -> None:
    zones = Scene(SceneKind.ASLEEP).zones(320, 240)
    assert set(zones) == {"bed", "floor"}
    for polygon in zones.values():
        assert all(0 <= x <= 319 and 0 <= y <= 239 for x, y in polygon)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Scene("sleepwalking"), "sleepwalking"),
        (lambda: Scene(SceneKind.ASLEEP, noise=-1.0), "noise"),
        (lambda: Scene(SceneKind.ASLEEP, noise=math.inf), "noise"),
        (lambda: Scene(SceneKind.ASLEEP, compression=1), "compression"),
        (lambda: Scene(SceneKind.ASLEEP).luma(0.0, 8, 8), "out of range"),
        (lambda: Scene(SceneKind.ASLEEP).luma(math.nan, 64, 48), "finite"),
        (lambda: Scene(SceneKind.ASLEEP).yuv420(0.0, 63, 48), "even"),
    ],
)
def test_bad_arguments_raise(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]
