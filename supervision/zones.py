"""A camera's zones (bed, floor, door) as an administrator draws them: reading and checking. Pure.

Zones are polygons in the pixel coordinates of a reference picture of ``width`` x ``height``
(x to the right, y down); the motion probe scales them to whatever size the camera streams, so
one drawing serves every resolution of the same aspect ratio. Only numbers are ever stored: a
zone is never a picture of the room.

The wire shape (``PUT /api/devices/{id}/zones`` and its answer)::

    {"width": 320, "height": 240,
     "zones": [{"name": "bed", "polygon": [[26, 100], [198, 100], [210, 177], [13, 177]]},
               {"name": "floor", "polygon": [...]}]}

Names are ``bed``, ``floor`` and ``door``, each at most once; an empty list removes every zone
(the motion check then never clears a check by itself). The zone values and the final check (a
polygon with area, inside the picture, covering at least one pixel of the kernel's working
picture) are :mod:`supervision.motion`'s own, so what is accepted here is what the kernel runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devices.errors import DeviceError
from supervision import motion
from supervision.verdict import BED, FLOOR

DOOR = "door"
ZONE_NAMES = (BED, FLOOR, DOOR)
MIN_SIDE = motion.MIN_SIDE  # pixels
MAX_SIDE = 8192  # pixels
MAX_VERTICES = 64
_KEYS = frozenset({"width", "height", "zones"})
_ZONE_KEYS = frozenset({"name", "polygon"})


class ZoneError(DeviceError, ValueError):
    """A zones body the kernel could not use; names the field. Nothing is stored."""

    http_status = 422

    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.code = code


@dataclass(frozen=True, slots=True)
class CameraZones:
    """One camera's zones, drawn on a ``width`` x ``height`` reference picture."""

    width: int
    height: int
    zones: tuple[motion.Zone, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "zones": [
                {"name": z.name, "polygon": [[x, y] for x, y in z.polygon]} for z in self.zones
            ],
        }


def from_json(body: Mapping[str, Any]) -> CameraZones:
    """Read and check a zones body; :class:`ZoneError` names the first bad field."""
    unknown = sorted(set(body) - _KEYS)
    if unknown:
        raise ZoneError(unknown[0], "unknown_field", f"unknown field {unknown[0]!r}")
    width = _side(body, "width")
    height = _side(body, "height")
    raw = body.get("zones")
    if not isinstance(raw, list):
        raise ZoneError("zones", "required", "zones is a list of {name, polygon}")
    if len(raw) > len(ZONE_NAMES):
        raise ZoneError("zones", "too_many", f"at most {len(ZONE_NAMES)} zones: one of each")
    zones: list[motion.Zone] = []
    for i, item in enumerate(raw):
        zones.append(_zone(item, f"zones[{i}]", width, height))
    names = [z.name for z in zones]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ZoneError(f"zones[{i}].name", "duplicate", f"zone {name!r} is given twice")
    try:  # the kernel's own last word: each zone must cover a pixel of its working picture
        motion.MotionState(width, height, zones)
    except motion.MotionInputError as e:
        raise ZoneError("zones", "unusable_zone", str(e)) from None
    return CameraZones(width, height, tuple(zones))


def _side(body: Mapping[str, Any], key: str) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_SIDE <= value <= MAX_SIDE:
        raise ZoneError(
            key,
            "out_of_range",
            f"{key} is the reference picture's {key} in pixels, {MIN_SIDE}..{MAX_SIDE}",
        )
    return value


def _zone(item: object, field: str, width: int, height: int) -> motion.Zone:
    if not isinstance(item, dict):
        raise ZoneError(field, "invalid_zone", f"{field} is an object {{name, polygon}}")
    unknown = sorted(set(item) - _ZONE_KEYS)
    if unknown:
        raise ZoneError(f"{field}.{unknown[0]}", "unknown_field", f"unknown field {unknown[0]!r}")
    name = item.get("name")
    if name not in ZONE_NAMES:
        raise ZoneError(
            f"{field}.name", "invalid_name", f"{field}.name is one of {', '.join(ZONE_NAMES)}"
        )
    polygon = item.get("polygon")
    if not isinstance(polygon, list) or not 3 <= len(polygon) <= MAX_VERTICES:
        raise ZoneError(
            f"{field}.polygon",
            "invalid_polygon",
            f"{field}.polygon is a list of 3..{MAX_VERTICES} points [x, y]",
        )
    points: list[tuple[float, float]] = []
    for j, point in enumerate(polygon):
        where = f"{field}.polygon[{j}]"
        if not isinstance(point, list) or len(point) != 2 or not all(_number(v) for v in point):
            raise ZoneError(where, "invalid_point", f"{where} is a point [x, y] of two numbers")
        x, y = float(point[0]), float(point[1])
        if not (0.0 <= x <= width and 0.0 <= y <= height):
            raise ZoneError(
                where,
                "outside_picture",
                f"{where} ({x:g}, {y:g}) is outside the {width}x{height} picture",
            )
        points.append((x, y))
    try:
        return motion.Zone(str(name), tuple(points))
    except motion.MotionInputError as e:  # no area
        raise ZoneError(f"{field}.polygon", "invalid_polygon", str(e)) from None


def _number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) <= MAX_SIDE  # a huge int would overflow float()
    return isinstance(value, float) and math.isfinite(value)
