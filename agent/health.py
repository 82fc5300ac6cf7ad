"""The health of a real video source, pure: from the frames that arrived lately and what each
picture showed, the ``health.video`` a device reports (:class:`devices.topics.VideoHealth`).

=============  ======================================================================
state          when
=============  ======================================================================
``no_frames``  no frame arrived within :attr:`VideoLimits.stale_s` (a camera unplugged,
               an RTSP camera or its network gone, a file that cannot be read)
``covered``    at least :attr:`VideoLimits.covered_share` of the recent pictures are flat
               as the motion check judges a picture flat: no more variance than a few times
               its sensor noise, or no *detail* (structure beyond sensor grain) at any
               brightness: a lens covered, even with light leaking round the hand
``ok``         anything else
=============  ======================================================================

Each picture is measured by the motion kernel itself (:class:`PictureMeter` runs
:func:`vision.motion.step`), so the agent and the motion check agree on what a covered lens is:
a dim infrared picture of a bed has detail and is ``ok``; a hand over the lens with light
leaking round it has variance but no detail and is ``covered``.

``fps`` is measured: the frames that arrived in the last :attr:`VideoLimits.window_s`, over the
time they span; ``luma`` is the newest picture's mean luma (exposure, as sent: video-range I420,
black is 16; a dim infrared picture is ``ok`` here, as the motion check judges darkness on its
own).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from devices.topics import VideoHealth, VideoState
from vision import motion
from vision.verdict import DEFAULT_THRESHOLDS, Thresholds


@dataclass(frozen=True, slots=True)
class Picture:
    """What one arriving picture showed: when (monotonic s), its mean luma (0..255), its detail
    (:attr:`vision.motion.FrameResult.detail`, luma levels per pixel) and whether the motion
    kernel found it flat (:attr:`vision.motion.FrameResult.is_flat`)."""

    at: float
    luma: float
    detail: float
    is_flat: bool


@dataclass(frozen=True, slots=True)
class VideoLimits:
    window_s: float = 5.0  # fps and covered are judged over the pictures of this long
    stale_s: float = 3.0  # no picture for this long is no_frames
    covered_share: float = 0.8  # this share of recent pictures flat is covered
    #: The motion check's numbers; its ``flat_std``, ``flat_noise_k`` and ``flat_detail`` say
    #: what a flat picture is.
    thresholds: Thresholds = DEFAULT_THRESHOLDS

    def __post_init__(self) -> None:
        if not 0 < self.stale_s <= self.window_s:
            raise ValueError("stale_s must be positive and at most window_s")
        if not 0 < self.covered_share <= 1:
            raise ValueError("covered_share must be in (0, 1]")


DEFAULT_LIMITS = VideoLimits()


class PictureMeter:
    """Measures each arriving picture with the motion kernel (no zones), one state for the
    stream: its noise estimate follows the stream as the motion check's does, and a picture of
    another size starts a new one. Pure: no clock (``at`` is passed in), no I/O."""

    def __init__(self, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> None:
        self.thresholds = thresholds
        self._state: motion.MotionState | None = None

    def measure(self, luma: motion.U8, at: float) -> Picture:
        """The :class:`Picture` of one ``uint8`` H x W luma plane that arrived at ``at``
        (monotonic s, not decreasing); raises :class:`vision.motion.MotionInputError` for a
        plane the kernel cannot use."""
        height, width = luma.shape
        if self._state is None or self._state.size != (width, height):
            self._state = motion.MotionState(width, height, (), self.thresholds)
        result = motion.step(self._state, luma, at)
        return Picture(at, result.mean_luma, result.detail, result.is_flat)


def assess(
    pictures: Sequence[Picture], now: float, limits: VideoLimits = DEFAULT_LIMITS
) -> VideoHealth:
    """``health.video`` at ``now`` from the pictures that arrived (oldest first)."""
    recent = [p for p in pictures if now - limits.window_s < p.at <= now]
    if not recent or now - recent[-1].at > limits.stale_s:
        return VideoHealth(state=VideoState.NO_FRAMES, fps=0.0)
    span = recent[-1].at - recent[0].at
    fps = (len(recent) - 1) / span if len(recent) > 1 and span > 0 else 0.0
    flat = sum(p.is_flat for p in recent)
    covered = flat >= limits.covered_share * len(recent)
    return VideoHealth(
        state=VideoState.COVERED if covered else VideoState.OK,
        fps=round(min(fps, 240.0), 2),
        luma=round(min(max(recent[-1].luma, 0.0), 255.0), 1),
    )
