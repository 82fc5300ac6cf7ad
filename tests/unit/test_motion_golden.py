"""The motion kernel still computes what it computed before it was made faster.

``motion_golden.json`` holds every number of every :class:`FrameResult` of a few streams (the
simulators' scenes with a lamp switch, IR grain and compression at three sizes, overlapping
zones, and two real clips), written by the kernel as it was before its per-frame overhead was cut
(commit 056b6ea), rewritten when the kernel learnt to measure detail (issue 19: darkness and
flatness judged by structure, not mean brightness alone). A change in what the kernel computes
shows here frame by frame; a deliberate change rewrites the file::

    .venv/bin/python -m tests.unit.test_motion_golden --write

The thresholds are stored with the numbers, so a change of ``DEFAULT_THRESHOLDS`` does not
break this test; the verdict's own tests cover those.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt
import pytest

from simulators.scenes import Scene, SceneKind
from vision import motion
from vision.motion import FrameResult, MotionState, Zone, step
from vision.verdict import DEFAULT_THRESHOLDS, Thresholds

U8 = npt.NDArray[np.uint8]
GOLDEN = Path(__file__).with_name("motion_golden.json")
CLIPS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "video"
REL, ABS = 1e-6, 1e-9  # the file keeps 10 significant digits


def scene_stream(
    scene: Scene, size: tuple[int, int], seconds: float, fps: float, zones: tuple[Zone, ...]
) -> tuple[tuple[Zone, ...], Iterator[tuple[float, U8]]]:
    times = [round(i / fps, 6) for i in range(round(seconds * fps))]
    return zones, ((t, scene.luma(t, *size)) for t in times)


def scene_zones(scene: Scene, size: tuple[int, int]) -> tuple[Zone, ...]:
    return tuple(Zone(n, p) for n, p in scene.zones(*size).items())


def clip_stream(
    name: str, max_s: float, every: int
) -> tuple[tuple[Zone, ...], Iterator[tuple[float, U8]]]:
    """Y planes (strided views, as a probe gets them) of a real clip, every ``every``-th frame."""
    labels = json.loads((CLIPS / "labels.json").read_text())
    clip = next(c for c in labels["clips"] if c["file"] == name)
    zones = tuple(
        Zone(n, tuple((float(x), float(y)) for x, y in p)) for n, p in clip.get("zones", {}).items()
    )

    def frames() -> Iterator[tuple[float, U8]]:
        with av.open(str(CLIPS / name)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                t_s = index / float(clip["fps"])
                if t_s > max_s:
                    break
                if index % every:
                    continue
                plane = frame.planes[0]
                y = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)
                yield round(t_s, 6), y[:, : frame.width]

    return zones, frames()


def streams() -> dict[str, tuple[tuple[Zone, ...], Iterator[tuple[float, U8]]]]:
    """Name -> (zones, frames). Clips only when ../shared/data/video is there."""
    lamp = Scene(SceneKind.RESTLESS, seed=3, lamp_switch_s=3.0)
    leaves = Scene(SceneKind.LEAVES_BED, seed=4, ir=True, noise=4.0, compression=16)
    frozen = Scene(SceneKind.FROZEN, seed=6, compression=16)
    asleep = Scene(SceneKind.ASLEEP, seed=5)
    bed = scene_zones(asleep, (1280, 720))[0]
    beside = Zone("beside", ((500.0, 250.0), (900.0, 250.0), (900.0, 600.0), (500.0, 600.0)))
    out = {
        "restless_lamp_320x240_5fps": scene_stream(
            lamp, (320, 240), 8.0, 5.0, scene_zones(lamp, (320, 240))
        ),
        "leaves_bed_ir_compressed_640x480_5fps": scene_stream(
            leaves, (640, 480), 8.0, 5.0, scene_zones(leaves, (640, 480))
        ),
        "frozen_320x240_5fps": scene_stream(
            frozen, (320, 240), 6.0, 5.0, scene_zones(frozen, (320, 240))
        ),
        "asleep_1280x720_10fps_no_zones": scene_stream(asleep, (1280, 720), 5.0, 10.0, ()),
        "asleep_1280x720_5fps_overlapping_zones": scene_stream(
            asleep, (1280, 720), 6.0, 5.0, (bed, beside)
        ),
    }
    if (CLIPS / "labels.json").exists():
        out["clip_fall_12_15fps"] = clip_stream("gmdcsa24_S2_Fall_12.mp4", 12.5, 1)
        out["clip_dark_light_5fps"] = clip_stream("beweging_dark-light.h264", 12.5, 5)
    return out


def record(result: FrameResult) -> list[Any]:
    """One frame as a flat list: floats, then the flags as a bit string."""
    floats = [
        result.t_s,
        *result.changed,
        *result.moving,
        result.changed_frac,
        result.moving_frac,
        result.mean_luma,
        result.std_luma,
        result.noise,
        result.threshold,
        result.detail,
    ]
    flags = (
        *result.active,
        result.is_dark,
        result.is_flat,
        result.is_repeat,
        result.is_light_change,
        result.is_settling,
        result.is_reset,
    )
    return [float(f"{v:.10g}") for v in floats] + ["".join("1" if f else "0" for f in flags)]


def run_stream(
    zones: tuple[Zone, ...], frames: Iterator[tuple[float, U8]], thresholds: Thresholds
) -> list[list[Any]]:
    state: MotionState | None = None
    out = []
    for t_s, luma in frames:
        if state is None:
            state = MotionState(luma.shape[1], luma.shape[0], zones, thresholds)
        out.append(record(step(state, luma, t_s)))
    return out


def load_golden() -> dict[str, Any]:
    return dict(json.loads(GOLDEN.read_text()))


def test_golden_file_covers_the_streams() -> None:
    golden = load_golden()
    assert set(streams()) <= set(golden["streams"])
    assert all(len(frames) >= 25 for frames in golden["streams"].values())


@pytest.mark.parametrize("name", sorted(streams()))
def test_kernel_results_match_the_golden_numbers(name: str) -> None:
    golden = load_golden()
    thresholds = Thresholds(**golden["thresholds"])
    zones, frames = streams()[name]
    got = run_stream(zones, frames, thresholds)
    want = golden["streams"][name]
    assert len(got) == len(want)
    for index, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g[-1] == w[-1], f"{name} frame {index}: flags {g[-1]} != {w[-1]}"
        for k, (a, b) in enumerate(zip(g[:-1], w[:-1], strict=True)):
            assert math.isclose(a, b, rel_tol=REL, abs_tol=ABS), (
                f"{name} frame {index} value {k}: {a} != {b}"
            )


@pytest.mark.parametrize("overlapping", [False, True])
def test_region_levels_are_exactly_the_plain_masked_means(overlapping: bool) -> None:
    """Zone levels over bounding boxes and elsewhere as the rest of the count are, to the last
    bit, ``cv2.mean(mask, mask=region) / 255`` over the whole picture, as the kernel had them."""
    bed = Zone("bed", ((40.0, 100.0), (200.0, 100.0), (210.0, 180.0), (35.0, 175.0)))
    other = (
        Zone("chair", ((150.0, 60.0), (260.0, 60.0), (260.0, 140.0), (150.0, 140.0)))
        if overlapping
        else Zone("floor", ((0.0, 190.0), (319.0, 185.0), (319.0, 239.0), (0.0, 239.0)))
    )
    state = MotionState(320, 240, (bed, other))
    assert state._elsewhere is not overlapping
    rng = np.random.default_rng(3)
    for share in (0.001, 0.05, 0.5, 1.0):
        for which, mask in ((0, state._mask2), (1, state._mask)):
            mask[...] = np.where(rng.random(mask.shape) < share, 255, 0)
            count = cv2.countNonZero(mask)
            want = tuple(min(1.0, cv2.mean(mask, mask=r)[0] / 255.0) for r in state._region_masks)
            assert motion._region_levels(state, mask, count, which) == want


def write() -> None:
    thresholds = DEFAULT_THRESHOLDS
    compact = {"separators": (",", ":")}
    parts = [
        json.dumps(name)
        + ":[\n"
        + ",\n".join(json.dumps(frame, **compact) for frame in run_stream(z, f, thresholds))
        + "]"
        for name, (z, f) in streams().items()
    ]
    thresholds_json = json.dumps(dataclasses.asdict(thresholds), **compact)
    text = '{"thresholds":' + thresholds_json + ',\n"streams":{\n' + ",\n".join(parts) + "}}\n"
    GOLDEN.write_text(text)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.unit.test_motion_golden --write")
    write()
