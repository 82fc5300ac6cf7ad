"""The motion kernel: one luma frame in, per-region motion levels and frame health out. Pure.

Frigate's improved motion detector is the model: luma only, about 100 px high, contrast stretch,
light blur, difference against a running-average background, threshold, dilate, blob area, and a
recalibration when the whole picture changes (lamp, IR switch). What a night check adds:

- **Regions**: zones (``bed``, ``floor``, ...) given as polygons in frame pixels, rasterised once
  into masks at the working size, plus ``elsewhere`` (outside every zone; the whole view when
  there are no zones). Each gets three levels per frame, each a share 0..1 of its pixels:
  *changed* (differs from the running background: Frigate's motion, which leaves a ghost for a
  while where a person was), *moving* (differs from the picture about ``moving_lag_s`` earlier: no
  ghosts) and *active* (moving pixels in the region at least ``active_share`` of the working
  picture, a person's size rather than the zone's, for ``min_motion_s``, gaps up to ``max_gap_s``
  forgiven), so one-frame glitches never count as activity.
- **Frame health** is judged by what the picture can show, not by its brightness alone.
  *Detail* is the picture's structure: the mean luma gradient of the blurred working picture
  less what its sensor noise alone would give (edges of a bed, a duvet's pattern, a face; not
  grain). Dark is a dim picture (low mean luma) *without* detail: lights off with no night
  vision, or black frames; a dim infrared picture of a bed has plenty and is not dark. Flat
  (covered or badly blurred) is a picture with no more variance than a few times the noise, or
  with no detail at any brightness (a hand or tape over the lens, light leaking round it).
  Repeat is a picture nearly identical to the previous working picture: a mean absolute
  difference of at most ``repeat_max_mad``; live sensor noise always moves a picture by more,
  while a stuck camera, even behind a live encoder, soon does not.
- **Light changes** (a whole-frame change or a jump of the mean luma) re-learn the background at
  once; the next ``settle_s`` are *settling* and the verdict does not take them as evidence.
- **Noise**: the threshold follows the contrast stretch (Frigate's 30 on the stretched scale) and
  never drops below ``noise_k`` standard deviations of the difference of two noisy frames, with
  the sensor noise estimated from single pictures (Immerkaer's Laplacian estimator), so IR grain
  and dark sensor noise do not become motion, a flat picture is told by its noise, and grain is
  not taken for detail.

Cost: the stretch is folded into the threshold instead of being applied to the picture (a stretch
by gain ``g`` multiplies every difference by ``g``, so comparing stretched differences with 30 is
comparing raw ones with ``30 / g``; only the clipped 8 % extremes differ), its percentiles come
from a histogram every ``contrast_every`` frames (and so do the noise and the detail, at the
first frame and at every light change too, so a lens covered or a light switched off is seen at
once), downscaling is a strided copy (every n-th row
first, then every n-th column of those), and every buffer is allocated when the state is made (or
the frame size changes). Per frame only scalars and the result object are allocated. Per frame
cost is mostly the fixed cost of each OpenCV call on a ~100-row picture, so the kernel makes few:
values that change only with the stretch (threshold, flat limit) are computed when it changes,
the rounded background only when the background moves, buffers are swapped instead of copied, a
zone's levels are a mean over its bounding box, ``elsewhere`` is the rest of the picture's count
(zones that do not overlap), and a frame with no changed pixel skips dilation and region levels.

Use::

    state = MotionState(width=640, height=480, zones=(Zone("bed", ((142, 210), ...)),))
    for luma, t_s in frames:  # uint8 H x W, e.g. the decoder's Y plane without a copy
        result = step(state, luma, t_s)

``step`` reads no clock and does no I/O; bad input raises :class:`MotionInputError` and leaves the
state as it was. A frame of another size restarts the state at that size with the zones scaled
(``is_reset`` in the result); a size with another aspect ratio is an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from vision.verdict import DEFAULT_THRESHOLDS, ELSEWHERE, Thresholds

U8 = npt.NDArray[np.uint8]
_UINT8 = np.dtype(np.uint8)
_ZoneBoxes = list[tuple[U8, U8, int]]  # per zone: a change mask's box, the zone's box, its area
MIN_SIDE = 16  # smallest frame side the kernel accepts, pixels
_ASPECT_TOLERANCE = 0.02
_TIME_SLACK_S = 1e-3  # timestamps are rounded; 0.6 - 0.2 must count as 0.4
_SUBPIXEL_BITS = 4  # fillPoly fixed-point precision for zone vertices
_ROWS_FIRST_STEP = 4  # downscale steps from which rows are copied first, then columns


class MotionInputError(ValueError):
    """A frame, zone or timestamp the kernel cannot use. The state is left unchanged."""


@dataclass(frozen=True, slots=True)
class Zone:
    """A named polygon in frame pixel coordinates ``(x, y)``; x to the right, y down."""

    name: str
    polygon: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if not self.name or self.name == ELSEWHERE:
            raise MotionInputError(f"zone name must be non-empty and not {ELSEWHERE!r}")
        if len(self.polygon) < 3:
            raise MotionInputError(f"zone {self.name!r} needs at least 3 vertices")
        for point in self.polygon:
            if len(point) != 2 or not all(math.isfinite(float(v)) for v in point):
                raise MotionInputError(f"zone {self.name!r} has a bad vertex {point!r}")
        twice_area = sum(
            x0 * y1 - x1 * y0
            for (x0, y0), (x1, y1) in zip(
                self.polygon, (*self.polygon[1:], self.polygon[0]), strict=True
            )
        )
        if abs(twice_area) < 1e-9:
            raise MotionInputError(f"zone {self.name!r} has no area")


@dataclass(frozen=True, slots=True)
class FrameResult:
    """What the kernel saw in one frame. Region tuples follow :attr:`regions`."""

    t_s: float
    regions: tuple[str, ...]  # zone names in the order given, then "elsewhere"
    changed: tuple[float, ...]  # share 0..1 of each region differing from the background
    moving: tuple[float, ...]  # share 0..1 of each region differing from ~moving_lag_s ago
    active: tuple[bool, ...]  # region moving for at least min_motion_s
    changed_frac: float  # whole frame, 0..1
    moving_frac: float  # whole frame, 0..1
    mean_luma: float  # 0..255
    std_luma: float  # of the blurred working picture, 0..~128
    noise: float  # estimated sensor noise standard deviation, luma levels
    detail: float  # structure: mean luma gradient beyond the noise's, luma levels per pixel
    threshold: float  # luma difference counted as change in this frame
    is_dark: bool
    is_flat: bool
    is_repeat: bool
    is_light_change: bool  # the background was re-learned at this frame
    is_settling: bool  # within settle_s after a light change (or this is a reset frame)
    is_reset: bool  # first frame of the stream or of a new frame size

    def level(self, region: str) -> float:
        """The moving share of one region by name."""
        return self.moving[self.regions.index(region)]


class MotionState:
    """Buffers and running values of one stream. Make one per stream; feed it with :func:`step`."""

    __slots__ = (
        "_active",
        "_bg",
        "_bg_u8",
        "_blur_gain",
        "_blurred",
        "_cum",
        "_delta",
        "_detail",
        "_detail_gain",
        "_elsewhere",
        "_flat_limit",
        "_frames",
        "_grad",
        "_hi",
        "_hist",
        "_kernel",
        "_ksize",
        "_lag_ref",
        "_lag_t",
        "_lap",
        "_last_on",
        "_last_t",
        "_lo",
        "_luma_ref",
        "_mask",
        "_mask2",
        "_mean",
        "_motion_frames",
        "_moving",
        "_moving_frac",
        "_noise",
        "_on_px",
        "_prev",
        "_ref_size",
        "_region_areas",
        "_region_masks",
        "_rows",
        "_run_start",
        "_settle_until",
        "_size",
        "_small",
        "_std",
        "_step",
        "_threshold",
        "_zero_levels",
        "_zone_rois",
        "regions",
        "thresholds",
        "zones",
    )

    def __init__(
        self,
        width: int,
        height: int,
        zones: Sequence[Zone] = (),
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
    ) -> None:
        _check_size(width, height)
        names = [z.name for z in zones]
        if len(set(names)) != len(names):
            raise MotionInputError("zone names must be unique")
        for zone in zones:
            for x, y in zone.polygon:
                if not (0.0 <= x <= width and 0.0 <= y <= height):
                    raise MotionInputError(
                        f"zone {zone.name!r} vertex ({x}, {y}) is outside the {width}x{height} "
                        "frame"
                    )
        self.zones = tuple(zones)
        self.thresholds = thresholds
        self.regions = (*names, ELSEWHERE)
        self._ref_size = (width, height)
        self._allocate(width, height)

    @property
    def size(self) -> tuple[int, int]:
        """Frame size ``(width, height)`` the buffers are made for."""
        return self._size

    @property
    def work_size(self) -> tuple[int, int]:
        """Working picture size ``(width, height)`` after downscaling."""
        return self._small.shape[1], self._small.shape[0]

    def _allocate(self, width: int, height: int) -> None:
        th = self.thresholds
        step = max(1, round(height / th.work_height))
        hs, ws = len(range(0, height, step)), len(range(0, width, step))
        masks = _rasterise(self.zones, self._ref_size, (width, height), step, (hs, ws))
        self._size = (width, height)
        self._step = step
        # every step-th row first (whole rows: a plain copy), then every step-th column of those
        # in cache; one strided 2-D copy is slower once the rows are far apart
        self._rows = np.zeros((hs, width), np.uint8) if step >= _ROWS_FIRST_STEP else None
        self._small = np.zeros((hs, ws), np.uint8)
        self._prev = np.zeros((hs, ws), np.uint8)
        self._blurred = np.zeros((hs, ws), np.uint8)
        self._lag_ref = np.zeros((hs, ws), np.uint8)
        self._bg = np.zeros((hs, ws), np.float32)
        self._bg_u8 = np.zeros((hs, ws), np.uint8)  # the background rounded, kept with _bg
        self._delta = np.zeros((hs, ws), np.uint8)
        self._mask = np.zeros((hs, ws), np.uint8)
        self._mask2 = np.zeros((hs, ws), np.uint8)
        self._hist = np.zeros((256, 1), np.float32)
        self._cum = np.zeros(256, np.float32)
        self._mean = np.zeros((1, 1), np.float64)
        self._std = np.zeros((1, 1), np.float64)
        self._kernel = np.ones((3, 3), np.uint8)
        self._ksize = (th.blur_ksize, th.blur_ksize)
        self._lap = np.zeros((hs, ws), np.int16)
        self._grad = np.zeros((hs, ws), np.int16)
        # how the blur scales white noise: sqrt of the sum of the squared 2-D weights
        weights = cv2.getGaussianKernel(th.blur_ksize, 0)
        self._blur_gain = float(np.sum(weights**2))
        # the detail that white noise of standard deviation 1 alone gives: the blur and the
        # Sobel derivative make one linear filter, whose output is normal with a standard
        # deviation of the filter's L2 norm; its mean absolute value is that times sqrt(2/pi);
        # Sobel's weights sum to 4 on each side, so /4 is luma levels per pixel
        sobel = np.outer([1.0, 2.0, 1.0], [-1.0, 0.0, 1.0])
        impulse = np.outer(weights[:, 0], weights[:, 0])
        padded = np.pad(impulse, 2)
        response = cv2.filter2D(padded, cv2.CV_64F, sobel, borderType=cv2.BORDER_CONSTANT)
        self._detail_gain = math.sqrt(2.0 / math.pi) * float(np.sqrt(np.sum(response**2))) / 4.0
        self._region_masks = masks
        self._region_areas = [max(1, cv2.countNonZero(m)) for m in masks]
        self._on_px = max(1.0, th.active_share * hs * ws)
        # each zone's levels are means over its bounding box only: views made once, of the
        # change masks (_mask2: changed, _mask: moving) and of the zone's own mask
        self._zone_rois: tuple[_ZoneBoxes, _ZoneBoxes] = ([], [])
        for zone_mask, area in zip(masks[:-1], self._region_areas[:-1], strict=True):
            x, y, w, h = cv2.boundingRect(zone_mask)
            box = (slice(y, y + h), slice(x, x + w))
            self._zone_rois[0].append((self._mask2[box], zone_mask[box], area))
            self._zone_rois[1].append((self._mask[box], zone_mask[box], area))
        self._zero_levels = (0.0,) * len(masks)
        # when the zones do not overlap, elsewhere's count is the frame's count less the zones'
        self._elsewhere = (
            sum(self._region_areas[:-1]) + self._region_areas[-1] == hs * ws
            and cv2.countNonZero(masks[-1]) == self._region_areas[-1]
        )
        self._restart()

    def _restart(self) -> None:
        k = len(self.regions)
        self._frames = 0
        self._last_t = -math.inf
        self._lo, self._hi = 0.0, 255.0
        self._luma_ref = 0.0
        self._noise = 0.0
        self._detail = 0.0
        self._threshold = 0.0
        self._flat_limit = 0.0
        self._settle_until = -math.inf
        self._motion_frames = 0
        self._lag_t = -math.inf
        self._moving = (0.0,) * k
        self._moving_frac = 0.0
        self._run_start = [math.nan] * k
        self._last_on = [-math.inf] * k
        self._active = [False] * k

    def _restart_runs(self) -> None:
        k = len(self.regions)
        self._run_start = [math.nan] * k
        self._last_on = [-math.inf] * k
        self._active = [False] * k


def step(state: MotionState, frame: U8, t_s: float) -> FrameResult:  # noqa: PLR0915 (one pass, kept together)
    """Feed one ``uint8`` H x W luma frame taken at stream time ``t_s`` (seconds).

    Strided views (a decoder plane with padding) are fine. Timestamps should not decrease; when
    they do, activity runs restart.
    """
    if type(frame) is not np.ndarray or frame.dtype != _UINT8 or frame.ndim != 2:
        _check_frame(frame)  # raises, unless an ndarray subclass that is fine
    if not math.isfinite(t_s):
        raise MotionInputError(f"timestamp must be finite, got {t_s!r}")
    height, width = frame.shape
    if (width, height) != state._size:  # (the state's own size is known to be valid)
        _check_frame(frame)
        _resize(state, width, height)
    th = state.thresholds
    is_reset = state._frames == 0
    if t_s < state._last_t:
        state._restart_runs()
        state._lag_t = -math.inf
    # OpenCV calls take their arguments by position: parsing keywords costs ~0.2 us a call
    small = state._small
    stride = state._step
    rows = state._rows
    if rows is None:
        small[...] = frame[::stride, ::stride]
    else:
        rows[...] = frame[::stride]
        small[...] = rows[:, ::stride]
    n = small.size

    change = 255.0 if is_reset else cv2.norm(small, state._prev, cv2.NORM_L1) / n
    blurred = state._blurred
    cv2.GaussianBlur(small, state._ksize, 0, blurred)
    cv2.meanStdDev(blurred, state._mean, state._std)
    mean_luma = min(255.0, max(0.0, state._mean.item()))  # float sums may overshoot
    std_luma = state._std.item()

    if is_reset:
        _calibrate(state, mean_luma, t_s)
        state._settle_until = t_s
    elif state._frames % th.contrast_every == 0:
        _update_contrast(state, reset=False)
    threshold = state._threshold

    # changed: against the running background (Frigate), dilated to fill holes
    mask2 = state._mask2
    mask = state._mask
    delta = state._delta
    cv2.absdiff(blurred, state._bg_u8, delta)
    cv2.threshold(delta, threshold, 255, cv2.THRESH_BINARY, mask)
    if cv2.countNonZero(mask):
        cv2.dilate(mask, state._kernel, mask2)
        changed_count = cv2.countNonZero(mask2)
        changed = _region_levels(state, mask2, changed_count, 0)
    else:  # nothing changed (most of a quiet night): nothing to dilate or count per region
        changed_count = 0
        changed = state._zero_levels
    changed_frac = changed_count / n

    is_light_change = not is_reset and (
        changed_frac >= th.light_change_frac
        or abs(mean_luma - state._luma_ref) >= th.light_change_luma
    )
    if is_light_change:
        _calibrate(state, mean_luma, t_s)
        state._settle_until = t_s + th.settle_s
        state._restart_runs()
    else:
        state._luma_ref += th.luma_alpha * (mean_luma - state._luma_ref)
    is_settling = t_s <= state._settle_until

    if not (is_reset or is_light_change):
        _follow_background(state, changed_count, is_settling)
        if t_s - state._lag_t >= th.moving_lag_s - _TIME_SLACK_S:
            _update_moving(state, threshold, t_s)
    _update_runs(state, t_s)

    state._frames += 1
    state._last_t = t_s
    # this picture is the next one's previous: swap the buffers instead of copying
    state._small, state._prev = state._prev, small
    return FrameResult(  # by position: 18 keyword arguments cost ~0.8 us a frame
        t_s,
        state.regions,
        changed,
        state._moving,  # moving
        tuple(state._active),  # active
        changed_frac,
        state._moving_frac,  # moving_frac
        mean_luma,
        std_luma,
        state._noise,  # noise
        state._detail,  # detail
        threshold,
        mean_luma <= th.dark_luma and state._detail <= th.dark_detail,  # is_dark
        std_luma <= state._flat_limit or state._detail <= th.flat_detail,  # is_flat
        not is_reset and change <= th.repeat_max_mad,  # is_repeat
        is_light_change,
        is_settling,
        is_reset,
    )


def _calibrate(state: MotionState, mean_luma: float, t_s: float) -> None:
    """Start over from the current picture: background, stretch, luma level, moving reference."""
    np.copyto(state._bg, state._blurred)
    np.copyto(state._bg_u8, state._blurred)
    np.copyto(state._lag_ref, state._blurred)
    state._lag_t = t_s
    state._luma_ref = mean_luma
    state._motion_frames = 0
    state._moving = (0.0,) * len(state._moving)
    state._moving_frac = 0.0
    _update_contrast(state, reset=True)


def _update_contrast(state: MotionState, *, reset: bool) -> None:
    """Stretch percentiles from a histogram, the sensor noise and the detail from one picture;
    then the values that follow from them (the change threshold, the flat limit) until the next
    update."""
    th = state.thresholds
    small = state._small
    cv2.calcHist([small], [0], None, [256], [0, 256], state._hist)
    cum = state._cum
    np.add.accumulate(state._hist[:, 0], out=cum)  # np.cumsum, without its dispatch
    lo = float(cum.searchsorted(th.contrast_low * small.size))
    hi = float(cum.searchsorted(th.contrast_high * small.size))
    # Immerkaer (1996): sigma = sqrt(pi/2) / (6 (W-2)(H-2)) * sum |I * N|, N the outer product
    # of [1, -2, 1] with itself: exactly Sobel's second derivative in x and y (ksize 3)
    cv2.Sobel(small, cv2.CV_16S, 2, 2, state._lap, 3)
    h, w = small.shape
    inner = state._lap[1:-1, 1:-1]
    noise = math.sqrt(math.pi / 2) * cv2.norm(inner, cv2.NORM_L1) / (6 * (w - 2) * (h - 2))
    if reset:
        state._lo, state._hi, state._noise = lo, hi, noise
    else:
        state._lo += th.contrast_alpha * (lo - state._lo)
        state._hi += th.contrast_alpha * (hi - state._hi)
        state._noise += th.noise_alpha * (noise - state._noise)
    # detail: the mean absolute Sobel gradient (x and y) of the blurred picture, in luma levels
    # per pixel, less what this picture's noise alone gives; not smoothed, so a picture that
    # loses its structure (lights off, a lens covered: both re-learn at once) shows it at once
    grad = state._grad
    blurred = state._blurred
    cv2.Sobel(blurred, cv2.CV_16S, 1, 0, grad, 3)
    gradient = cv2.norm(grad, cv2.NORM_L1)
    cv2.Sobel(blurred, cv2.CV_16S, 0, 1, grad, 3)
    gradient += cv2.norm(grad, cv2.NORM_L1)
    gradient /= 8.0 * blurred.size  # the mean of |gx| / 4 and |gy| / 4
    state._detail = max(0.0, gradient - state._detail_gain * noise)
    span = max(state._hi - state._lo, th.min_contrast_span)
    noise_diff = state._noise * state._blur_gain * math.sqrt(2.0)  # of two blurred frames
    state._threshold = max(th.diff_threshold * span / 255.0, th.noise_k * noise_diff, th.min_diff)
    state._flat_limit = max(th.flat_std, th.flat_noise_k * state._noise * state._blur_gain)


def _follow_background(state: MotionState, changed_count: int, is_settling: bool) -> None:
    th = state.thresholds
    if is_settling:
        alpha = th.settle_alpha
    elif changed_count > 0:
        state._motion_frames += 1
        if state._motion_frames < th.absorb_after:
            return  # the background (and so its rounded copy) stays as it is
        alpha = th.bg_alpha
    else:
        state._motion_frames = 0
        alpha = th.bg_alpha
    cv2.accumulateWeighted(state._blurred, state._bg, alpha)
    cv2.convertScaleAbs(state._bg, state._bg_u8)


def _update_moving(state: MotionState, threshold: float, t_s: float) -> None:
    """Compare with the picture of ``moving_lag_s`` ago."""
    delta = state._delta
    mask = state._mask
    cv2.absdiff(state._blurred, state._lag_ref, delta)
    cv2.threshold(delta, threshold, 255, cv2.THRESH_BINARY, mask)
    count = cv2.countNonZero(mask)
    levels = _region_levels(state, mask, count, 1) if count else state._zero_levels
    state._moving = levels
    state._moving_frac = count / delta.size
    # this picture is the next reference: swap the buffers (the next blur overwrites the other)
    state._lag_ref, state._blurred = state._blurred, state._lag_ref
    state._lag_t = t_s
    _mark_runs(state, levels, t_s)


def _mark_runs(state: MotionState, levels: Sequence[float], t_s: float) -> None:
    max_gap_s = state.thresholds.max_gap_s
    on_px = state._on_px
    areas = state._region_areas
    run_start = state._run_start
    last_on = state._last_on
    for r, level in enumerate(levels):
        if level * areas[r] >= on_px:
            if math.isnan(run_start[r]) or t_s - last_on[r] > max_gap_s:
                run_start[r] = t_s
            last_on[r] = t_s


def _update_runs(state: MotionState, t_s: float) -> None:
    th = state.thresholds
    max_gap_s, min_motion_s = th.max_gap_s, th.min_motion_s
    active = state._active
    for r, (start, last) in enumerate(zip(state._run_start, state._last_on, strict=True)):
        active[r] = (
            not math.isnan(start) and t_s - last <= max_gap_s and last - start >= min_motion_s
        )


def _region_levels(state: MotionState, mask: U8, count: int, which: int) -> tuple[float, ...]:
    """Share of each region's pixels set in ``mask`` (0 or 255; ``count`` of them in the whole
    picture; ``which``: 0 for ``_mask2``, 1 for ``_mask``), as ``cv2.mean`` over the region / 255.

    Each zone is averaged over its bounding box only; ``elsewhere`` (outside every zone) is, when
    the zones do not overlap, the picture's count less the zones', divided as ``cv2.mean`` does
    (sum times the reciprocal of the area), so the result is the same to the last bit.
    """
    if len(state._zero_levels) == 1:  # no zones: the whole picture
        return (count / mask.size,)
    levels = []
    rest = count
    for roi, zone, area in state._zone_rois[which]:
        level = cv2.mean(roi, zone)[0] / 255.0
        rest -= round(level * area)
        levels.append(min(1.0, level))
    if state._elsewhere:
        levels.append(min(1.0, 255.0 * rest * (1.0 / state._region_areas[-1]) / 255.0))
    else:
        levels.append(min(1.0, cv2.mean(mask, mask=state._region_masks[-1])[0] / 255.0))
    # a list first: tuple(generator) over-allocates and parks the result in a free list
    return tuple(levels)


def _resize(state: MotionState, width: int, height: int) -> None:
    """Restart at a new frame size; zones scale with it. Raises before changing anything."""
    _check_size(width, height)
    ref_w, ref_h = state._ref_size
    if abs((width / height) / (ref_w / ref_h) - 1.0) > _ASPECT_TOLERANCE:
        raise MotionInputError(
            f"frame size changed to {width}x{height}, another aspect ratio than the "
            f"{ref_w}x{ref_h} the zones were drawn for"
        )
    state._allocate(width, height)


def _rasterise(
    zones: Sequence[Zone],
    ref_size: tuple[int, int],
    size: tuple[int, int],
    step: int,
    work_shape: tuple[int, int],
) -> list[U8]:
    """Region masks (0 or 255) at the working size: each zone, then everything outside them."""
    scale_x = size[0] / ref_size[0] / step
    scale_y = size[1] / ref_size[1] / step
    one = 1 << _SUBPIXEL_BITS
    masks: list[U8] = []
    union = np.zeros(work_shape, np.uint8)
    for zone in zones:
        mask = np.zeros(work_shape, np.uint8)
        points = np.array(
            [[round(x * scale_x * one), round(y * scale_y * one)] for x, y in zone.polygon],
            np.int32,
        )
        cv2.fillPoly(mask, [points], 255, cv2.LINE_8, _SUBPIXEL_BITS)
        if cv2.countNonZero(mask) == 0:
            raise MotionInputError(f"zone {zone.name!r} covers no pixel at the working size")
        masks.append(mask)
        cv2.bitwise_or(union, mask, dst=union)
    outside: U8 = np.asarray(cv2.bitwise_not(union), dtype=np.uint8)
    masks.append(outside)
    return masks


def _check_size(width: int, height: int) -> None:
    if width < MIN_SIDE or height < MIN_SIDE:
        raise MotionInputError(f"frame {width}x{height} is smaller than {MIN_SIDE}x{MIN_SIDE}")


def _check_frame(frame: Any) -> None:
    if not isinstance(frame, np.ndarray):
        raise MotionInputError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise MotionInputError(f"frame must be uint8 luma, got {frame.dtype}")
    if frame.ndim != 2:
        raise MotionInputError(f"frame must be 2-D (H x W luma), got shape {frame.shape}")
    if frame.size == 0:
        raise MotionInputError("frame is empty")
    _check_size(frame.shape[1], frame.shape[0])
