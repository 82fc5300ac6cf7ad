"""The motion check's verdict over one window of frames, and every threshold of the check. Pure.

A check watches a few seconds (default 8 s) of one camera. :func:`decide` turns the kernel's
per-frame results (:class:`vision.motion.FrameResult`) into one :class:`Verdict`:

=============  ==========================================================================
kind           meaning
=============  ==========================================================================
``no_signal``  no frames, or too few to cover the window
``dark``       too dark to see a person: a dim picture without detail (lights off and no
               night vision, black frames); a dim infrared picture with structure is not dark
``covered``    the picture is flat, no detail at any brightness: lens covered, taped or
               badly out of focus
``frozen``     the same picture over and over (a stuck encoder or camera); also a picture
               that often repeats while nothing moves
``activity``   someone moved, person-sized (at least ``activity_share`` of the picture), for at
               least ``activity_min_s`` (``where`` says in which region)
``still``      a little movement where the person is expected (breathing, a hand), less than
               activity
``empty``      no person-like change where the person is expected (bed, else the whole view)
=============  ==========================================================================

Differencing cannot tell a person lying perfectly still from an empty bed, so ``empty`` always
needs a human, and so does ``still`` unless the bed's small movement (breathing) was sustained.
``needs_human`` is ``False`` only when all of these hold: the view has a zone named ``bed``; the
kind is ``activity`` or ``still``; the bed was *active* (moving, not just
different from the background, so a person who left leaves no ghost) for at least
``clear_bed_active_s`` in frames that were not settling after a light change; no other zone (the
floor) was active and nothing in it appeared; movement elsewhere was small beside the bed's; and
the picture was healthy (no dark, flat or repeated frames). With no bed zone nothing is clearable,
and a light change alone can never clear: its frames are not evidence. Whether a cleared check
really goes without a human is the care plan's decision (the rounds code), not this module's.

Camera trouble is judged by what the picture can show (its *detail*: structure beyond the
sensor noise, measured by the kernel), by its noise and by its change over time (repeats), never
by brightness alone: an infrared camera at night gives a dim picture (mean luma ~30) that shows a
person in bed perfectly well.

All numbers that decide anything live in :class:`Thresholds` below (kernel and verdict alike);
:data:`DEFAULT_THRESHOLDS` is what production uses, tuned on ``bench/motion_eval.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vision.motion import FrameResult

#: Region names with a meaning for the verdict. Zones may have other names (``door``); every
#: zone other than ``bed`` counts as "not in bed".
BED = "bed"
FLOOR = "floor"
#: The region outside every zone; with no zones it is the whole view.
ELSEWHERE = "elsewhere"


class VerdictKind(StrEnum):
    ACTIVITY = "activity"
    STILL = "still"
    EMPTY = "empty"
    DARK = "dark"
    FROZEN = "frozen"
    COVERED = "covered"
    NO_SIGNAL = "no_signal"


class Reason(StrEnum):
    """Why the verdict needs (or does not need) a human; a stable code for logs and counters."""

    CLEARED_ACTIVITY_IN_BED = "cleared_activity_in_bed"  # sustained movement in bed, nowhere else
    NO_SIGNAL = "no_signal"
    DEVICE_TROUBLE = "device_trouble"  # dark, covered or frozen frames in the window
    NO_BED_ZONE = "no_bed_zone"
    NOT_ACTIVITY = "not_activity"  # empty: no movement where the person is expected
    ACTIVITY_OUT_OF_BED = "activity_out_of_bed"
    TOO_LITTLE_IN_BED = "too_little_in_bed"
    TOO_LITTLE_EVIDENCE = "too_little_evidence"  # mostly light-change settling frames
    NOT_LOCALISED = "not_localised"  # movement everywhere alike: noise, flicker, camera shake


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Every number of the motion check, in one place. Luma levels are 0..255 (video-range black
    is 16); fractions are 0..1; times are seconds of stream time (the frames' own timestamps)."""

    # -- kernel: working picture ---------------------------------------------------------------
    work_height: int = 100  # rows after downscaling by slicing (Frigate: 100)
    blur_ksize: int = 3  # Gaussian blur kernel side at the working size, odd
    contrast_low: float = 0.04  # percentiles of the contrast stretch (Frigate: 4 % and 96 %)
    contrast_high: float = 0.96
    contrast_every: int = 8  # frames between updates of the stretch and the noise estimate
    contrast_alpha: float = 0.1  # smoothing of the stretch (Frigate averages 50 frames)
    min_contrast_span: float = 40.0  # caps the stretch gain at 255/40, so noise is not blown up
    # -- kernel: change detection --------------------------------------------------------------
    diff_threshold: float = 30.0  # on the stretched 0..255 scale (Frigate: 30)
    noise_k: float = 5.0  # and at least this many standard deviations of the noise difference
    noise_alpha: float = 0.3  # smoothing of the noise estimate (every contrast_every frames)
    min_diff: float = 4.0  # and never below this many raw luma levels
    bg_alpha: float = 0.01  # running background per frame (Frigate frame_alpha)
    settle_alpha: float = 0.2  # background following during settling (Frigate calibrating)
    absorb_after: int = 10  # frames of continuous change before the background absorbs it
    moving_lag_s: float = 0.4  # "moving" compares with the picture this long ago
    light_change_frac: float = 0.5  # whole-frame changed share that means a light change
    light_change_luma: float = 12.0  # or a jump of the mean luma from its recent level
    luma_alpha: float = 0.1  # smoothing of that recent level, per frame
    settle_s: float = 1.0  # after a light change, frames are settling for this long
    # -- kernel: region activity ---------------------------------------------------------------
    active_share: float = 0.001  # moving pixels in a region, as a share of the whole picture,
    # for the region to count as on (a person's size, not the zone's): the smallest movement a
    # person in bed makes that counts, a head turned on the pillow seen from above the bed or a
    # hand gesturing seen across the room (0.1-0.9 % of the picture in the shared real clips);
    # grain stays out by the noise threshold, glitches by min_motion_s
    min_motion_s: float = 0.8  # on for at least this long before a region is active
    max_gap_s: float = 1.0  # an off gap up to this long does not end a run
    # -- kernel: frame health ------------------------------------------------------------------
    # detail (FrameResult.detail) is the mean luma gradient of the blurred working picture less
    # what its noise alone gives, luma levels per pixel: what the picture can show. Measured on
    # the shared real clips: black or unlit frames 0.0-0.5; infrared night pictures of a bed
    # (mean luma ~30) 1.3-2.2; lit rooms 1.5-12; synthetic IR 1.3-1.5, lights off and covered
    # lenses (any noise) at most 0.15. 0.8 sits between (about their geometric middle).
    dark_luma: float = 35.0  # mean luma at or below this is dim ...
    dark_detail: float = 0.8  # ... and dim with no more detail than this is dark: a dim
    # picture with structure (an infrared camera at night) shows the person and is not dark
    flat_std: float = 6.0  # blurred luma standard deviation at or below this is flat ...
    flat_noise_k: float = 3.0  # ... or at or below this many times the blurred noise ...
    flat_detail: float = 0.8  # ... or no more detail than this, at any brightness (a hand
    # or tape over the lens with light leaking round it: smooth, so some variance, no edges)
    repeat_max_mad: float = 0.1  # mean absolute difference (luma levels) of two consecutive
    # working pictures at or below which the second is a repeat: live sensor noise always moves
    # a picture by more; a stuck camera behind a live encoder shows only the encoder's refining
    # -- verdict -------------------------------------------------------------------------------
    min_frames: int = 3  # fewer frames in the window is no_signal
    min_coverage: float = 0.5  # frames must span at least this share of the window
    dark_frac: float = 0.25  # this share of dark frames makes the verdict dark
    covered_frac: float = 0.5  # this share of flat frames makes it covered
    frozen_frac: float = 0.6  # this share of repeated frames makes it frozen; so does more
    # than repeat_veto_frac with nothing moving (a live encoder refines a stuck picture for
    # seconds, and again after each rate change, before its output stops changing)
    health_veto_frac: float = 0.05  # more dark or flat frames than this: never clear
    repeat_veto_frac: float = 0.3  # more repeated frames than this: never clear
    activity_min_s: float = 1.0  # a region active this long makes the verdict activity ...
    activity_share: float = 0.015  # ... if at its peak this share of the picture was moving;
    # smaller sustained movement (a sleeper's breathing) is still
    still_level: float = 0.002  # moving share in the expected zone that counts as a little change
    clear_bed_active_s: float = 1.6  # the bed must be active at least this long to clear
    clear_other_active_s: float = 0.0  # other zones (floor) active longer than this: never clear
    clear_other_changed: float = 0.05  # or changed from the background by more than this share
    clear_elsewhere_ratio: float = 1.0  # elsewhere active at most this times the bed's time
    clear_bed_contrast: float = 3.0  # the bed's mean moving share at least this times any other
    # region's: movement must stand out, not be noise or compression flicker spread everywhere
    clear_min_evidence: float = 0.5  # non-settling frames must be at least this share

    def __post_init__(self) -> None:
        if self.work_height < 8:
            raise ValueError("work_height must be at least 8")
        if self.blur_ksize < 1 or self.blur_ksize % 2 == 0:
            raise ValueError("blur_ksize must be a positive odd number")
        if not 0.0 <= self.contrast_low < self.contrast_high <= 1.0:
            raise ValueError("contrast percentiles must satisfy 0 <= low < high <= 1")
        if self.contrast_every < 1 or self.absorb_after < 0 or self.min_frames < 1:
            raise ValueError("frame counts must be positive")
        for name in ("contrast_alpha", "bg_alpha", "settle_alpha", "luma_alpha", "noise_alpha"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1]")
        for name in ("moving_lag_s", "settle_s", "min_motion_s", "max_gap_s", "activity_min_s"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("dark_detail", "flat_detail"):
            if math.isnan(getattr(self, name)):
                raise ValueError(f"{name} must be a number (infinities switch it off)")
        if not 0.0 < self.active_share <= 1.0:
            raise ValueError("active_share must be in (0, 1]")
        if not 0.0 < self.min_contrast_span <= 255.0:
            raise ValueError("min_contrast_span must be in (0, 255]")


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True, slots=True)
class RegionNumbers:
    """What one region (a zone or ``elsewhere``) did during the window."""

    name: str
    active_s: float  # time it was active (moving, sustained), evidence frames only
    moving_peak: float  # highest moving share, 0..1
    changed_peak: float  # highest share changed from the background, 0..1
    moving_mean: float  # mean moving share over evidence frames, 0..1


@dataclass(frozen=True, slots=True)
class VerdictNumbers:
    """The numbers behind a verdict (no pictures, nothing personal)."""

    frames: int
    span_s: float  # first to last frame timestamp
    evidence_frames: int  # frames not settling after a light change or start
    light_changes: int
    dark_frac: float
    flat_frac: float
    repeat_frac: float
    mean_luma: float
    moving_peak: float = 0.0  # highest moving share of the whole picture, evidence frames, 0..1
    regions: tuple[RegionNumbers, ...] = field(default=())

    def region(self, name: str) -> RegionNumbers | None:
        return next((r for r in self.regions if r.name == name), None)

    def measures(self) -> dict[str, float]:
        """The numbers as one flat mapping (each region's seconds active and peak moving share
        under ``<region>_active_s`` / ``<region>_moving_peak``): what the backend's probe stores
        with a check and what a device's home probe answers, the same names both ways."""
        out: dict[str, float] = {
            "frames": self.frames,
            "span_s": self.span_s,
            "evidence_frames": self.evidence_frames,
            "light_changes": self.light_changes,
            "dark_frac": self.dark_frac,
            "flat_frac": self.flat_frac,
            "repeat_frac": self.repeat_frac,
            "mean_luma": self.mean_luma,
            "moving_peak": self.moving_peak,
        }
        for r in self.regions:
            out[f"{r.name}_active_s"] = r.active_s
            out[f"{r.name}_moving_peak"] = r.moving_peak
        return out


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: VerdictKind
    confidence: float  # 0..1, how clearly the numbers say ``kind``
    needs_human: bool
    reason: Reason
    where: str | None  # the most active region for activity/still, else None
    numbers: VerdictNumbers


def no_signal(frames: int = 0, span_s: float = 0.0) -> Verdict:
    """The verdict for a window in which (almost) nothing arrived."""
    numbers = VerdictNumbers(
        frames=frames,
        span_s=span_s,
        evidence_frames=0,
        light_changes=0,
        dark_frac=0.0,
        flat_frac=0.0,
        repeat_frac=0.0,
        mean_luma=0.0,
    )
    return Verdict(VerdictKind.NO_SIGNAL, 1.0, True, Reason.NO_SIGNAL, None, numbers)


def decide(
    frames: Sequence[FrameResult],
    *,
    window_s: float | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Verdict:
    """The verdict for one window of consecutive kernel results of one stream.

    ``window_s`` is how long the check watched; when given, frames spanning less than
    ``min_coverage`` of it make ``no_signal``. Frames must come from one :class:`MotionState`
    (same regions, timestamps not decreasing).
    """
    th = thresholds
    n = len(frames)
    if n == 0:
        return no_signal()
    span_s = max(0.0, frames[-1].t_s - frames[0].t_s)
    step_s = span_s / (n - 1) if n > 1 else 0.0
    covered_s = span_s + step_s
    if n < th.min_frames or (window_s is not None and covered_s < th.min_coverage * window_s):
        return no_signal(n, span_s)

    dark = sum(f.is_dark for f in frames) / n
    flat = sum(f.is_flat and not f.is_dark for f in frames) / n
    repeat = sum(f.is_repeat for f in frames[1:]) / (n - 1)
    light_changes = sum(f.is_light_change for f in frames)
    mean_luma = sum(f.mean_luma for f in frames) / n
    evidence = [i for i, f in enumerate(frames) if not (f.is_settling or f.is_light_change)]
    regions = _region_numbers(frames, evidence)
    moving_peak = max((frames[i].moving_frac for i in evidence), default=0.0)
    numbers = VerdictNumbers(
        frames=n,
        span_s=span_s,
        evidence_frames=len(evidence),
        light_changes=light_changes,
        dark_frac=dark,
        flat_frac=flat,
        repeat_frac=repeat,
        mean_luma=mean_luma,
        moving_peak=moving_peak,
        regions=regions,
    )

    health = (
        (VerdictKind.DARK, dark, th.dark_frac),
        (VerdictKind.COVERED, flat, th.covered_frac),
        (VerdictKind.FROZEN, repeat, th.frozen_frac),
    )
    for kind, share, limit in health:
        if share >= limit:
            return Verdict(kind, share, True, Reason.DEVICE_TROUBLE, None, numbers)

    kind, confidence, where = _motion_kind(regions, moving_peak, th)
    if kind is VerdictKind.EMPTY and repeat > th.repeat_veto_frac:
        # nothing moves and the picture often repeats: most likely a stuck camera whose
        # encoder is still refining the last picture, not an empty room
        return Verdict(VerdictKind.FROZEN, repeat, True, Reason.DEVICE_TROUBLE, None, numbers)
    reason = _clear_reason(kind, numbers, th)
    return Verdict(
        kind, confidence, reason is not Reason.CLEARED_ACTIVITY_IN_BED, reason, where, numbers
    )


def _region_numbers(
    frames: Sequence[FrameResult], evidence: list[int]
) -> tuple[RegionNumbers, ...]:
    names = frames[0].regions
    out: list[RegionNumbers] = []
    for r, name in enumerate(names):
        active_s = 0.0
        moving_sum = 0.0
        for i in evidence:
            f = frames[i]
            moving_sum += f.moving[r]
            if f.active[r] and i > 0:
                active_s += f.t_s - frames[i - 1].t_s
        out.append(
            RegionNumbers(
                name=name,
                active_s=active_s,
                moving_peak=max((frames[i].moving[r] for i in evidence), default=0.0),
                changed_peak=max((frames[i].changed[r] for i in evidence), default=0.0),
                moving_mean=moving_sum / len(evidence) if evidence else 0.0,
            )
        )
    return tuple(out)


def _motion_kind(
    regions: tuple[RegionNumbers, ...], moving_peak: float, th: Thresholds
) -> tuple[VerdictKind, float, str | None]:
    most = max(regions, key=lambda r: (r.active_s, r.moving_peak))
    if most.active_s >= th.activity_min_s and moving_peak >= th.activity_share:
        confidence = min(
            _ramp(most.active_s, th.activity_min_s), _ramp(moving_peak, th.activity_share)
        )
        return VerdictKind.ACTIVITY, confidence, most.name
    expected = next((r for r in regions if r.name == BED), None)
    candidates = (expected,) if expected is not None else regions
    stirring = max(candidates, key=lambda r: r.moving_peak)
    if stirring.moving_peak >= th.still_level or stirring.active_s > 0.0:
        return VerdictKind.STILL, _ramp(stirring.moving_peak, th.still_level), stirring.name
    quiet = 1.0 - stirring.moving_peak / th.still_level if th.still_level > 0 else 1.0
    return VerdictKind.EMPTY, max(0.0, min(1.0, quiet)), None


def _clear_reason(kind: VerdictKind, numbers: VerdictNumbers, th: Thresholds) -> Reason:
    """``CLEARED_ACTIVITY_IN_BED`` when nobody needs to look, else why somebody must."""
    if (
        max(numbers.dark_frac, numbers.flat_frac) > th.health_veto_frac
        or numbers.repeat_frac > th.repeat_veto_frac
    ):
        return Reason.DEVICE_TROUBLE
    bed = numbers.region(BED)
    if bed is None:
        return Reason.NO_BED_ZONE
    if kind not in (VerdictKind.ACTIVITY, VerdictKind.STILL):
        return Reason.NOT_ACTIVITY
    if numbers.evidence_frames < th.clear_min_evidence * numbers.frames:
        return Reason.TOO_LITTLE_EVIDENCE
    if bed.active_s < th.clear_bed_active_s:
        return Reason.TOO_LITTLE_IN_BED
    for region in numbers.regions:
        if region.name == BED:
            continue
        if bed.moving_mean < th.clear_bed_contrast * region.moving_mean:
            return Reason.NOT_LOCALISED
        if region.name == ELSEWHERE:
            if region.active_s > th.clear_elsewhere_ratio * bed.active_s:
                return Reason.ACTIVITY_OUT_OF_BED
        elif region.active_s > th.clear_other_active_s or (
            region.changed_peak > th.clear_other_changed
        ):
            return Reason.ACTIVITY_OUT_OF_BED
    return Reason.CLEARED_ACTIVITY_IN_BED


def _ramp(value: float, limit: float) -> float:
    """Confidence that grows from 0.5 at ``limit`` to 1.0 at twice ``limit``."""
    if limit <= 0.0 or not math.isfinite(value):
        return 1.0
    return max(0.0, min(1.0, 0.5 * value / limit))
