"""Synthetic night scenes for simulated cameras and the motion check's evaluation. Pure.

A :class:`Scene` renders the view of a camera high in the corner of a bedroom (wall, door, floor,
a bed with pillow and blanket) at any size and any time ``t`` (seconds), as ``uint8`` luma
(:meth:`Scene.luma`) or as a whole ``yuv420p`` picture (:meth:`Scene.yuv420`, ready for
``av.VideoFrame.from_ndarray(..., format="yuv420p")``). What happens is the :class:`SceneKind`;
what makes life hard for a motion check is added on top:

- ``noise``: sensor noise, standard deviation in luma levels (default 2);
- ``ir``: night vision: grey picture, flat contrast, vignetting, heavy grain;
- ``lamp_switch_s``: the bedside lamp toggles at that time (a 0.4 s ramp), dimming or
  brightening the whole room, non-uniformly;
- ``compression``: a starved encoder: 8x8 blocks with their means quantised to this many
  levels; between key frames (every 2 s) blocks that did not change beyond the noise are
  skipped (kept from the key frame), the rest re-coded, so static parts go clean and blocky,
  moving parts flicker, and each key frame jumps everything a little at once.

Everything is a function of ``(kind, seed, nuisances, t, size)``: the same arguments give the
same picture, bit for bit. :attr:`Scene.truth` says what a perfect check would answer, and
:meth:`Scene.zones` gives the ``bed`` and ``floor`` polygons in pixels of the size asked for.
No I/O; nothing is cached beyond a few per-size backgrounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
_SHIFT = 4  # sub-pixel bits for cv2 drawing
_ONE = 1 << _SHIFT
_KEY_INTERVAL_S = 2.0  # key frame interval of the simulated encoder
_IR_GRAIN = 6.0
_RECODE_SHARE = 0.05  # blocks the simulated encoder re-codes although nothing changed


class SceneKind(StrEnum):
    ASLEEP = "asleep"  # lying in bed, breathing, the odd small head move
    RESTLESS = "restless"  # tossing and turning in bed
    WALKING = "walking"  # up and walking about the room
    FALL = "fall"  # standing by the bed, falls to the floor at ~2.5 s, lies there
    FALLEN = "fallen"  # lying on the floor the whole time, one arm moving weakly
    LEAVES_BED = "leaves_bed"  # gets up, walks out of the door; then the room is empty
    EMPTY_BED = "empty_bed"  # nobody there
    LIGHTS_OFF = "lights_off"  # dark room, no night vision
    FROZEN = "frozen"  # the camera repeats one picture
    COVERED = "covered"  # something (a hand, tape) over the lens


@dataclass(frozen=True, slots=True)
class SceneTruth:
    """What a perfect check answers. ``expected`` is a verdict kind name (activity, still,
    empty, dark, frozen, covered); ``where`` the region of the movement, if any."""

    expected: str
    is_dangerous: bool  # must never be cleared without a human
    is_clearable: bool  # a good check clears it: movement, all of it in bed
    where: str | None


_TRUTH = {
    SceneKind.ASLEEP: SceneTruth("still", False, True, "bed"),
    SceneKind.RESTLESS: SceneTruth("activity", False, True, "bed"),
    SceneKind.WALKING: SceneTruth("activity", False, False, "floor"),
    SceneKind.FALL: SceneTruth("activity", True, False, "floor"),
    SceneKind.FALLEN: SceneTruth("activity", True, False, "floor"),
    SceneKind.LEAVES_BED: SceneTruth("activity", True, False, "floor"),
    SceneKind.EMPTY_BED: SceneTruth("empty", True, False, None),
    SceneKind.LIGHTS_OFF: SceneTruth("dark", True, False, None),
    SceneKind.FROZEN: SceneTruth("frozen", True, False, None),
    SceneKind.COVERED: SceneTruth("covered", True, False, None),
}

# The room in normalised coordinates: x 0..1 to the right, y 0..1 down.
BED_POLYGON = ((0.08, 0.42), (0.62, 0.42), (0.66, 0.74), (0.04, 0.74))
FLOOR_POLYGON = ((0.0, 0.78), (0.70, 0.78), (0.70, 0.46), (1.0, 0.46), (1.0, 1.0), (0.0, 1.0))
_WALL_BOTTOM = 0.40
_LAMP = (0.70, 0.34)  # bedside lamp, centre of its light pool

# colours: (luma, u, v)
_SKIN = (125, 112, 150)
_CLOTHES = (70, 140, 118)
_BLANKET_SHADE = (140, 150, 120)
_ARM = (115, 112, 148)


@dataclass(frozen=True, slots=True)
class _Ellipse:
    cx: float
    cy: float
    ax: float  # half axes, as shares of width and height
    ay: float
    angle: float  # degrees
    colour: tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class _Stick:
    x0: float
    y0: float
    x1: float
    y1: float
    width: float  # as a share of height
    colour: tuple[int, int, int]


_Shape = _Ellipse | _Stick


class Scene:
    """One simulated camera view. Deterministic given its arguments; see the module docstring."""

    def __init__(
        self,
        kind: SceneKind | str,
        *,
        seed: int = 0,
        noise: float = 2.0,
        ir: bool = False,
        lamp_switch_s: float | None = None,
        compression: int | None = None,
    ) -> None:
        if noise < 0 or not math.isfinite(noise):
            raise ValueError("noise must be a finite standard deviation >= 0")
        if compression is not None and not 2 <= compression <= 64:
            raise ValueError("compression must be 2..64 quantisation levels")
        self.kind = SceneKind(kind)
        self.seed = seed
        self.noise = noise
        self.ir = ir
        self.lamp_switch_s = lamp_switch_s
        self.compression = compression
        rng = np.random.default_rng(seed)
        self._dx = float(rng.uniform(-0.03, 0.03))  # where exactly the person lies or walks
        self._breath_s = float(rng.uniform(3.2, 4.8))  # breathing period
        self._phase = float(rng.uniform(0, 2 * math.pi))
        self._pace = float(rng.uniform(0.8, 1.2))
        self._backdrops: dict[tuple[int, int], _Backdrop] = {}
        # last key frame when compressing: time, size, before and after coding
        self._key: tuple[float, int, int, F32, F32] | None = None

    @property
    def truth(self) -> SceneTruth:
        return _TRUTH[self.kind]

    def zones(self, width: int, height: int) -> dict[str, tuple[tuple[float, float], ...]]:
        """``bed`` and ``floor`` polygons in pixels of a ``width`` x ``height`` picture."""
        _check_size(width, height)

        def scale(poly: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
            return tuple((x * (width - 1), y * (height - 1)) for x, y in poly)

        return {"bed": scale(BED_POLYGON), "floor": scale(FLOOR_POLYGON)}

    def luma(self, t_s: float, width: int, height: int) -> U8:
        """The Y plane at time ``t_s``: ``uint8``, ``height`` x ``width``, video range."""
        return self._render(t_s, width, height, with_chroma=False)[0]

    def yuv420(self, t_s: float, width: int, height: int) -> U8:
        """The whole picture as one I420 array (``height * 3 // 2`` x ``width``): Y, then U,
        then V at half resolution. Width and height must be even."""
        if width % 2 or height % 2:
            raise ValueError("yuv420 needs an even width and height")
        y, u, v = self._render(t_s, width, height, with_chroma=True)
        if u is None or v is None:  # with_chroma=True always draws both planes
            raise AssertionError("chroma planes missing")
        out = np.empty((height * 3 // 2, width), np.uint8)
        out[:height] = y
        quarter = (height // 2) * (width // 2)
        out[height:].reshape(-1)[:quarter] = u.reshape(-1)
        out[height:].reshape(-1)[quarter:] = v.reshape(-1)
        return out

    # -- rendering ---------------------------------------------------------------------------

    def _render(
        self, t_s: float, width: int, height: int, *, with_chroma: bool
    ) -> tuple[U8, U8 | None, U8 | None]:
        _check_size(width, height)
        if not math.isfinite(t_s):
            raise ValueError("t_s must be finite")
        if self.kind is SceneKind.FROZEN:
            t_s = 0.0
        if self.kind is SceneKind.COVERED:
            return self._covered(t_s, width, height, with_chroma)
        backdrop = self._backdrop(width, height)
        shapes = self._figures(t_s)
        y = backdrop.y.copy()
        for shape in shapes:
            _draw(y, shape, 0, width, height)
        yf = (y.astype(np.float32) - 16.0) * self._light(t_s, backdrop) + 16.0
        if self.kind is SceneKind.LIGHTS_OFF:
            yf = (yf - 16.0) * 0.04 + 18.0
        elif self.ir:
            yf = (yf - 16.0) * 0.55 * backdrop.vignette + 40.0
        self._add_noise(yf, t_s)
        if self.compression:
            yf = self._encode(yf, t_s, width, height)
        luma = np.clip(yf + 0.5, 0, 255).astype(np.uint8)
        if not with_chroma:
            return luma, None, None
        if self.ir or self.kind is SceneKind.LIGHTS_OFF:
            grey = np.full((height // 2, width // 2), 128, np.uint8)
            return luma, grey, grey.copy()
        u, v = backdrop.u.copy(), backdrop.v.copy()
        for shape in shapes:
            _draw(u, shape, 1, width // 2, height // 2)
            _draw(v, shape, 2, width // 2, height // 2)
        return luma, u, v

    def _figures(self, t: float) -> list[_Shape]:
        kind, dx = self.kind, self._dx
        if kind in (SceneKind.ASLEEP, SceneKind.FROZEN, SceneKind.LIGHTS_OFF):
            return _lying_in_bed(dx, self._breath(t), head_turn=3.0 * math.sin(0.5 * t))
        if kind is SceneKind.RESTLESS:
            sway = math.sin(2 * math.pi * t / 2.6 + self._phase)
            shapes = _lying_in_bed(dx + 0.03 * sway, self._breath(t), head_turn=25.0 * sway)
            reach = 0.5 + 0.5 * math.sin(2 * math.pi * t / 1.7)
            shapes.append(
                _Stick(0.30 + dx, 0.55, 0.22 + dx + 0.12 * reach, 0.47 + 0.08 * reach, 0.025, _ARM)
            )
            return shapes
        if kind is SceneKind.WALKING:
            x = 0.92 - 0.7 * _triangle(t * self._pace / 8.0)
            return _standing(x, 0.94, t * self._pace)
        if kind is SceneKind.FALL:
            return _falling(0.78 + dx, t * self._pace)
        if kind is SceneKind.FALLEN:
            return _on_floor(0.45 + dx, t)
        if kind is SceneKind.LEAVES_BED:
            return _leaving(dx, t * self._pace, self._breath(t))
        return []

    def _encode(self, yf: F32, t_s: float, width: int, height: int) -> F32:
        """Block quantisation, with unchanged blocks skipped against the last key frame."""
        assert self.compression is not None
        raw = yf.copy()
        _blocky(yf, self.compression)
        key_t = math.floor(t_s / _KEY_INTERVAL_S) * _KEY_INTERVAL_S
        if key_t == t_s:
            self._key = (key_t, width, height, raw, yf.copy())
            return yf
        if self._key is None or self._key[:3] != (key_t, width, height):
            self._render(key_t, width, height, with_chroma=False)  # stores the key frame
        assert self._key is not None
        key_raw, key_coded = self._key[3], self._key[4]
        bh, bw = height // 8, width // 8
        if bh == 0 or bw == 0:
            return yf
        core = (slice(0, bh * 8), slice(0, bw * 8))
        sad = cv2.resize(np.abs(raw[core] - key_raw[core]), (bw, bh), interpolation=cv2.INTER_AREA)
        skip = sad <= 2.0 * (self.noise + (_IR_GRAIN if self.ir else 0.0)) + 2.0
        skip &= self._rng(t_s + 0.5e-3).random(skip.shape) >= _RECODE_SHARE  # rate control
        keep = cv2.resize(
            skip.astype(np.uint8), (bw * 8, bh * 8), interpolation=cv2.INTER_NEAREST
        ).astype(bool)
        yf[core][keep] = key_coded[core][keep]
        return yf

    def _breath(self, t: float) -> float:
        return math.sin(2 * math.pi * t / self._breath_s + self._phase)

    def _backdrop(self, width: int, height: int) -> _Backdrop:
        cached = self._backdrops.get((width, height))
        if cached is None:
            cached = _room(width, height, is_made=self.kind is SceneKind.EMPTY_BED)
            if len(self._backdrops) > 4:
                self._backdrops.clear()
            self._backdrops[(width, height)] = cached
        return cached

    def _light(self, t: float, backdrop: _Backdrop) -> F32:
        """Illumination gain map: room light plus the lamp's pool, ramped at a switch."""
        lamp_on = 1.0
        if self.lamp_switch_s is not None:
            lamp_on = 1.0 - min(1.0, max(0.0, (t - self.lamp_switch_s) / 0.4))
        return backdrop.pool * np.float32(0.25 * lamp_on) + np.float32(0.55 + 0.30 * lamp_on)

    def _add_noise(self, yf: F32, t_s: float) -> None:
        sigma = self.noise + (_IR_GRAIN if self.ir else 0.0)
        if sigma > 0:
            yf += self._rng(t_s).standard_normal(yf.shape, dtype=np.float32) * np.float32(sigma)

    def _rng(self, t_key: float) -> np.random.Generator:
        return np.random.default_rng([self.seed & 0xFFFFFFFF, round(t_key * 1000) & 0xFFFFFFFF])

    def _covered(
        self, t_s: float, width: int, height: int, with_chroma: bool
    ) -> tuple[U8, U8 | None, U8 | None]:
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        level = 200.0 if self.ir else 95.0
        yf = level + 6.0 * (xx / width) - 4.0 * (yy / height) + 1.5 * math.sin(0.7 * t_s)
        yf = np.asarray(yf, np.float32)
        self._add_noise(yf, t_s)
        luma = np.clip(yf + 0.5, 0, 255).astype(np.uint8)
        if not with_chroma:
            return luma, None, None
        u = np.full((height // 2, width // 2), 128 if self.ir else 115, np.uint8)
        v = np.full((height // 2, width // 2), 128 if self.ir else 148, np.uint8)
        return luma, u, v


# -- people ----------------------------------------------------------------------------------


def _lying_in_bed(dx: float, breath: float, head_turn: float) -> list[_Shape]:
    chest = 0.075 + 0.016 * breath
    return [
        _Ellipse(0.38 + dx, 0.58, 0.21, chest, 0.0, _BLANKET_SHADE),
        _Ellipse(0.38 + dx, 0.58 - chest * 0.5, 0.16, 0.012, 0.0, (115, 150, 118)),  # a fold
        _Ellipse(0.15 + dx * 0.5, 0.53, 0.035, 0.055, head_turn, _SKIN),
    ]


def _standing(x: float, feet_y: float, t: float) -> list[_Shape]:
    swing = 0.04 * math.sin(2 * math.pi * t * 0.9)
    hip_y, shoulder_y = feet_y - 0.20, feet_y - 0.38
    return [
        _Stick(x, hip_y, x + swing, feet_y, 0.03, _CLOTHES),
        _Stick(x, hip_y, x - swing, feet_y, 0.03, _CLOTHES),
        _Ellipse(x, (hip_y + shoulder_y) / 2, 0.045, 0.11, 0.0, _CLOTHES),
        _Stick(x, shoulder_y + 0.02, x - swing, hip_y, 0.022, _ARM),
        _Ellipse(x, shoulder_y - 0.05, 0.028, 0.045, 0.0, _SKIN),
    ]


def _on_floor(x: float, t: float) -> list[_Shape]:
    wave = math.sin(2 * math.pi * t * 0.35)
    return [
        _Ellipse(x, 0.88, 0.17, 0.045, 3.0, _CLOTHES),
        _Ellipse(x - 0.19, 0.87, 0.04, 0.04, 0.0, _SKIN),
        _Stick(x - 0.05, 0.86, x - 0.02 + 0.05 * wave, 0.79 + 0.03 * wave, 0.02, _ARM),
        _Stick(x + 0.15, 0.89, x + 0.27, 0.90 + 0.01 * wave, 0.025, _CLOTHES),
    ]


def _falling(x: float, t: float) -> list[_Shape]:
    if t < 2.5:
        return _standing(x, 0.90, 0.15 * math.sin(t))  # swaying on the spot
    tilt = min(1.0, (t - 2.5) / 0.8)  # 0 standing .. 1 lying
    if tilt < 1.0:
        angle = tilt * math.pi / 2
        top_x, top_y = x - 0.40 * math.sin(angle), 0.90 - 0.45 * math.cos(angle)
        return [
            _Stick(x, 0.90, top_x, top_y, 0.06, _CLOTHES),
            _Ellipse(top_x, top_y, 0.03, 0.045, math.degrees(angle), _SKIN),
        ]
    return _on_floor(x - 0.2, t)


def _leaving(dx: float, t: float, breath: float) -> list[_Shape]:
    if t < 1.0:
        return _lying_in_bed(dx, breath, head_turn=0.0)
    if t < 2.0:  # sits up on the edge of the bed
        rise = t - 1.0
        return [
            _Ellipse(0.55, 0.62, 0.06, 0.08 + 0.04 * rise, 0.0, _CLOTHES),
            _Ellipse(0.55, 0.50 - 0.08 * rise, 0.028, 0.045, 0.0, _SKIN),
        ]
    x = 0.72 + 0.25 * min(1.0, (t - 2.0) / 3.0)  # walks to the door and out
    if t > 5.5:
        return []
    return _standing(x, 0.60 + 0.1 * min(1.0, t - 2.0), t)


def _triangle(u: float) -> float:
    """0 -> 1 -> 0 over each unit of ``u``."""
    frac = u - math.floor(u)
    return 2 * frac if frac < 0.5 else 2 * (1 - frac)


# -- drawing ---------------------------------------------------------------------------------


def _draw(img: U8, shape: _Shape, channel: int, width: int, height: int) -> None:
    colour = shape.colour[channel]
    if isinstance(shape, _Ellipse):
        centre = (round(shape.cx * width * _ONE), round(shape.cy * height * _ONE))
        axes = (max(1, round(shape.ax * width * _ONE)), max(1, round(shape.ay * height * _ONE)))
        cv2.ellipse(img, centre, axes, shape.angle, 0, 360, colour, -1, cv2.LINE_AA, _SHIFT)
    else:
        p0 = (round(shape.x0 * width * _ONE), round(shape.y0 * height * _ONE))
        p1 = (round(shape.x1 * width * _ONE), round(shape.y1 * height * _ONE))
        thickness = max(1, round(shape.width * height))
        cv2.line(img, p0, p1, colour, thickness, cv2.LINE_AA, _SHIFT)


@dataclass(frozen=True, slots=True)
class _Backdrop:
    """The static room at one size: luma, half-size chroma, the lamp's light pool (0..1) and the
    night-vision vignette."""

    y: U8
    u: U8
    v: U8
    pool: F32
    vignette: F32


def _room(width: int, height: int, *, is_made: bool) -> _Backdrop:
    """The static room: luma at full size and chroma at half size."""
    planes = []
    for channel, (w, h) in enumerate(
        ((width, height), (width // 2, height // 2), (width // 2, height // 2))
    ):
        wall, floor, bed, frame, pillow, door = (
            (150, 120, 138),
            (100, 108, 150),
            (185, 150, 118),
            (60, 115, 140),
            (215, 125, 130),
            (120, 112, 145),
        )
        img = np.empty((max(1, h), max(1, w)), np.uint8)
        wall_rows = round(_WALL_BOTTOM * h)
        img[:wall_rows] = wall[channel]
        img[wall_rows:] = floor[channel]
        if channel == 0:  # shading and plank lines, in luma only
            ramp = np.linspace(-8, 8, max(1, wall_rows), dtype=np.float32)[:, None]
            img[:wall_rows] = np.clip(img[:wall_rows] + ramp, 0, 255).astype(np.uint8)
            for k in range(1, 9):
                y = round((_WALL_BOTTOM + k * 0.07) * h)
                cv2.line(img, (0, y), (w - 1, y + round(0.05 * h)), 82, 1, cv2.LINE_AA)
        _fill(img, ((0.84, 0.06), (0.97, 0.06), (0.97, 0.55), (0.84, 0.55)), door[channel], w, h)
        _fill(img, ((0.66, 0.10), (0.80, 0.10), (0.80, 0.25), (0.66, 0.25)), frame[channel], w, h)
        _fill(img, BED_POLYGON, frame[channel], w, h)
        inner = ((0.10, 0.44), (0.60, 0.44), (0.63, 0.71), (0.07, 0.71))
        _fill(img, inner, bed[channel], w, h)
        _fill(img, ((0.09, 0.45), (0.21, 0.45), (0.21, 0.62), (0.09, 0.62)), pillow[channel], w, h)
        if channel == 0 and is_made:  # a made, empty bed: one straight fold
            cv2.line(
                img,
                (round(0.22 * w), round(0.52 * h)),
                (round(0.58 * w), round(0.52 * h)),
                160,
                1,
                cv2.LINE_AA,
            )
        planes.append(img)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    xx /= width
    yy /= height
    pool = np.exp(-((xx - _LAMP[0]) ** 2 + (yy - _LAMP[1]) ** 2) / 0.08).astype(np.float32)
    vignette = (1.0 - 0.5 * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2)).astype(np.float32)
    return _Backdrop(planes[0], planes[1], planes[2], pool, vignette)


def _fill(img: U8, poly: tuple[tuple[float, float], ...], colour: int, w: int, h: int) -> None:
    points = np.array([[round(x * w * _ONE), round(y * h * _ONE)] for x, y in poly], np.int32)
    cv2.fillPoly(img, [points], colour, cv2.LINE_AA, _SHIFT)


def _blocky(yf: F32, levels: int) -> None:
    """Quantise each 8x8 block's mean to ``levels`` steps of 256, in place (like a starved
    encoder's DC coefficients); blocks flip between steps as the picture changes."""
    h, w = yf.shape
    bh, bw = h // 8, w // 8
    if bh == 0 or bw == 0:
        return
    core = yf[: bh * 8, : bw * 8]
    means = cv2.resize(core, (bw, bh), interpolation=cv2.INTER_AREA)
    q = 256.0 / levels
    shift = np.round(means / q) * q - means
    core += cv2.resize(shift, (bw * 8, bh * 8), interpolation=cv2.INTER_NEAREST)


def _check_size(width: int, height: int) -> None:
    if width < 16 or height < 16 or width > 8192 or height > 8192:
        raise ValueError(f"size {width}x{height} is out of range 16..8192")
