"""Frigate's improved motion detector, frozen here as the motion kernel's baselines.

Two versions of the same algorithm (``frigate/motion/improved_motion.py``, re-written from its
description and steps, not copied), both with Frigate's default motion config (``frame_height``
100, ``improve_contrast``, ``threshold`` 30, ``contour_area`` 10, ``lightning_threshold`` 0.8,
``frame_alpha`` 0.01, no motion mask), without what a benchmark cannot use (live config updates,
PTZ autotracking, debug images), no zones and no frame health:

- :class:`FrigateAsWritten`: each step as Frigate writes it: nearest-neighbour resize to 100
  rows, ``np.percentile`` twice for the contrast stretch over a 50-frame history, the stretch in
  floating point over the picture, the motion mask applied, scipy's ``gaussian_filter`` (sigma 1,
  radius 1), difference against a running average, threshold, dilate, contours, their area and
  boxes, calibration and background update. ``blur="opencv"`` swaps in ``cv2.GaussianBlur``
  alone (kept for comparison with earlier runs).
- :class:`FrigateLite`: the same steps, each the cheapest way OpenCV offers: the percentiles from
  a 256-bin histogram (exactly ``np.percentile``'s linear interpolation, without its sort), the
  stretch as one 256-entry table applied with ``cv2.LUT``, ``cv2.GaussianBlur`` (same 3x3
  weights, same border), the empty mask step skipped. What a lean rival would run: the fair
  baseline of the kernel's *algorithm*. It finds the same boxes (``tests/unit/test_motion_bench``).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
Box = tuple[int, int, int, int]
HISTORY = 50  # contrast_frame_history
LOW_PCT, HIGH_PCT = 4, 96


class _Frigate:
    """What both versions share: sizes, the contrast history, and every step after the blur."""

    def __init__(self, width: int, height: int, frame_height: int = 100) -> None:
        self.size = (frame_height * width // height, frame_height)  # (w, h) as cv2 wants it
        self.resize_factor = height / frame_height
        self.avg = np.zeros((frame_height, self.size[0]), np.float32)
        self.contrast = np.zeros((HISTORY, 2), np.uint8)  # the last 50 (low, high) percentiles
        self.contrast[:, 1] = 255
        self.index = 0
        self.motion_frames = 0
        self.calibrating = True

    def _remember(self, lo: int, hi: int) -> tuple[float, float]:
        self.contrast[self.index] = [lo, hi]
        self.index = (self.index + 1) % HISTORY
        avg_lo, avg_hi = np.mean(self.contrast, axis=0)
        return float(avg_lo), float(avg_hi)

    def _after_blur(self, blurred: U8) -> list[Box]:
        delta = cv2.absdiff(blurred, cv2.convertScaleAbs(self.avg))
        thresh = cv2.threshold(delta, 30, 255, cv2.THRESH_BINARY)[1]
        dilated = cv2.dilate(thresh, None, iterations=1)
        contours = cv2.findContours(dilated, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
        boxes = []
        total_area = 0.0
        for contour in contours:
            area = cv2.contourArea(contour)
            total_area += area
            if area > 10:
                x, y, w, h = cv2.boundingRect(contour)
                f = self.resize_factor
                boxes.append((int(x * f), int(y * f), int((x + w) * f), int((y + h) * f)))
        share = total_area / (self.size[0] * self.size[1])
        if share < 0.05 and len(boxes) <= 4:
            self.calibrating = False
        if share > 0.8:  # lightning, IR switch: recalibrate
            self.calibrating = True
        alpha = 0.2 if self.calibrating else 0.01
        if boxes:  # a lasting difference joins the background after 10 frames
            self.motion_frames += 1
            if self.motion_frames >= 10:
                cv2.accumulateWeighted(blurred, self.avg, alpha)
        else:
            cv2.accumulateWeighted(blurred, self.avg, alpha)
            self.motion_frames = 0
        return boxes


class FrigateAsWritten(_Frigate):
    """Frigate's steps as Frigate writes them (``blur="scipy"``, the default)."""

    def __init__(self, width: int, height: int, blur: str = "scipy", frame_height: int = 100):
        super().__init__(width, height, frame_height)
        # the motion mask at frame size (255: watched; no masked area configured), resized once
        full = np.full((height, width), 255, np.uint8)
        small = cv2.resize(full, self.size, interpolation=cv2.INTER_AREA)
        self.masked = np.where(small == 0)
        self.blur: Callable[[U8], U8]
        if blur == "scipy":
            from scipy.ndimage import gaussian_filter  # only this baseline needs scipy

            self.blur = lambda picture: gaussian_filter(picture, sigma=1, radius=1)
        elif blur == "opencv":
            self.blur = lambda picture: cv2.GaussianBlur(
                picture, (3, 3), 1.0, borderType=cv2.BORDER_REFLECT
            )
        else:
            raise ValueError(f"blur must be 'scipy' or 'opencv', got {blur!r}")

    def detect(self, luma: U8) -> list[Box]:
        """One frame; returns the motion boxes in frame pixels, as Frigate does."""
        small = cv2.resize(luma, self.size, interpolation=cv2.INTER_NEAREST)
        lo = np.percentile(small, LOW_PCT).astype(np.uint8)
        hi = np.percentile(small, HIGH_PCT).astype(np.uint8)
        if lo < hi:  # not a single colour: stretch by the mean of the recent percentiles
            avg_lo, avg_hi = self._remember(int(lo), int(hi))
            small = np.clip(small, avg_lo, avg_hi)
            small = ((small - avg_lo) / (avg_hi - avg_lo) * 255).astype(np.uint8)
        small[self.masked] = 0
        return self._after_blur(self.blur(small))


def percentile_of_histogram(cum: npt.NDArray[np.float32], count: int, pct: float) -> int:
    """``int(np.percentile(values, pct))`` of uint8 values from their cumulative histogram:
    the same linear interpolation between the two nearest ranks, with no sort."""
    rank = pct / 100 * (count - 1)
    below = int(rank)
    frac = rank - below
    lower = int(np.searchsorted(cum, below, side="right"))
    if frac == 0:
        return lower
    upper = int(np.searchsorted(cum, below + 1, side="right"))
    return int(lower + (upper - lower) * frac)


class FrigateLite(_Frigate):
    """Frigate's steps, each done the cheapest way OpenCV offers (see the module docstring)."""

    def __init__(self, width: int, height: int, frame_height: int = 100) -> None:
        super().__init__(width, height, frame_height)
        self._values = np.arange(256, dtype=np.float64)
        self._table = np.zeros(256, np.uint8)
        self._table_for = (-1.0, -1.0)

    def detect(self, luma: U8) -> list[Box]:
        """One frame; the same boxes as :class:`FrigateAsWritten`."""
        small = cv2.resize(luma, self.size, interpolation=cv2.INTER_NEAREST)
        cum = np.cumsum(cv2.calcHist([small], [0], None, [256], [0, 256]).ravel())
        lo = percentile_of_histogram(cum, small.size, LOW_PCT)
        hi = percentile_of_histogram(cum, small.size, HIGH_PCT)
        if lo < hi:
            avg = self._remember(lo, hi)
            if avg != self._table_for:  # the same arithmetic as Frigate's, once per level
                avg_lo, avg_hi = avg
                stretched = (np.clip(self._values, avg_lo, avg_hi) - avg_lo) / (avg_hi - avg_lo)
                self._table = (stretched * 255).astype(np.uint8)
                self._table_for = avg
            small = cv2.LUT(small, self._table)
        blurred = cv2.GaussianBlur(small, (3, 3), 1.0, borderType=cv2.BORDER_REFLECT)
        return self._after_blur(blurred)
