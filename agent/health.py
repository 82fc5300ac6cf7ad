"""The health of a real video source, pure: from the frames that arrived lately and what each
picture showed, the ``health.video`` a device reports (:class:`devices.topics.VideoHealth`).

=============  ======================================================================
state          when
=============  ======================================================================
``no_frames``  no frame arrived within :attr:`VideoLimits.stale_s` (a camera unplugged,
               an RTSP camera or its network gone, a file that cannot be read)
``covered``    at least :attr:`VideoLimits.covered_share` of the recent pictures are flat
               (no more structure than the motion check's ``flat_std``): a covered lens
``ok``         anything else
=============  ======================================================================

``fps`` is measured: the frames that arrived in the last :attr:`VideoLimits.window_s`, over the
time they span; ``luma`` is the newest picture's mean luma (exposure; a dim infrared picture is
``ok`` here, as the motion check judges darkness on its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from devices.topics import VideoHealth, VideoState
from vision.verdict import DEFAULT_THRESHOLDS


@dataclass(frozen=True, slots=True)
class Picture:
    """What one arriving picture showed: when (monotonic s), its mean luma and the standard
    deviation of its blurred luma (structure)."""

    at: float
    luma: float
    std: float


@dataclass(frozen=True, slots=True)
class VideoLimits:
    window_s: float = 5.0  # fps and covered are judged over the pictures of this long
    stale_s: float = 3.0  # no picture for this long is no_frames
    flat_std: float = DEFAULT_THRESHOLDS.flat_std  # as flat as the motion check's "covered"
    covered_share: float = 0.8  # this share of recent pictures flat is covered

    def __post_init__(self) -> None:
        if not 0 < self.stale_s <= self.window_s:
            raise ValueError("stale_s must be positive and at most window_s")
        if not 0 < self.covered_share <= 1:
            raise ValueError("covered_share must be in (0, 1]")


DEFAULT_LIMITS = VideoLimits()


def assess(
    pictures: Sequence[Picture], now: float, limits: VideoLimits = DEFAULT_LIMITS
) -> VideoHealth:
    """``health.video`` at ``now`` from the pictures that arrived (oldest first)."""
    recent = [p for p in pictures if now - limits.window_s < p.at <= now]
    if not recent or now - recent[-1].at > limits.stale_s:
        return VideoHealth(state=VideoState.NO_FRAMES, fps=0.0)
    span = recent[-1].at - recent[0].at
    fps = (len(recent) - 1) / span if len(recent) > 1 and span > 0 else 0.0
    flat = sum(p.std <= limits.flat_std for p in recent)
    covered = flat >= limits.covered_share * len(recent)
    return VideoHealth(
        state=VideoState.COVERED if covered else VideoState.OK,
        fps=round(min(fps, 240.0), 2),
        luma=round(min(max(recent[-1].luma, 0.0), 255.0), 1),
    )
