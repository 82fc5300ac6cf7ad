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
picture) are :mod:`vision.motion`'s own, so what is accepted here is what the kernel runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from devices.errors import DeviceError
from kernel import codec
from kernel.codec import CodecError
from vision import motion
from vision.verdict import BED, FLOOR

DOOR = "door"
ZONE_NAMES = (BED, FLOOR, DOOR)
ZoneName = Literal["bed", "floor", "door"]  # ZONE_NAMES as a type (tests/unit/test_camera_zones)
MIN_SIDE = motion.MIN_SIDE  # pixels
MAX_SIDE = 8192  # pixels
MAX_VERTICES = 64


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


Coordinate = Annotated[float, msgspec.Meta(ge=0, le=MAX_SIDE)]
Point = tuple[Coordinate, Coordinate]


class ZoneBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One zone: its name and its polygon of 3 or more points [x, y] in reference pixels."""

    name: ZoneName
    polygon: Annotated[tuple[Point, ...], msgspec.Meta(min_length=3, max_length=MAX_VERTICES)]


class ZonesBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A camera's zones, drawn on a width x height reference picture (pixels); each name
    at most once, every point inside the picture, every polygon with an area."""

    width: Annotated[int, msgspec.Meta(ge=MIN_SIDE, le=MAX_SIDE)]
    height: Annotated[int, msgspec.Meta(ge=MIN_SIDE, le=MAX_SIDE)]
    zones: Annotated[tuple[ZoneBody, ...], msgspec.Meta(max_length=len(ZONE_NAMES))]

    def __post_init__(self) -> None:
        self.camera_zones()  # the rules between fields, each naming the field it refuses

    def camera_zones(self) -> CameraZones:
        zones: list[motion.Zone] = []
        for i, zone in enumerate(self.zones):
            if any(z.name == zone.name for z in self.zones[:i]):
                raise CodecError("duplicate", f"zones[{i}].name", f"zone {zone.name!r} is twice")
            for j, (x, y) in enumerate(zone.polygon):
                if x > self.width or y > self.height:
                    raise CodecError(
                        "outside_picture",
                        f"zones[{i}].polygon[{j}]",
                        f"the point is outside the {self.width}x{self.height} picture",
                    )
            try:
                zones.append(motion.Zone(zone.name, zone.polygon))
            except motion.MotionInputError as e:  # no area
                raise CodecError("invalid_polygon", f"zones[{i}].polygon", str(e)) from None
        try:  # the kernel's own last word: each zone must cover a pixel of its working picture
            motion.MotionState(self.width, self.height, zones)
        except motion.MotionInputError as e:
            raise CodecError("unusable_zone", "zones", str(e)) from None
        return CameraZones(self.width, self.height, tuple(zones))


def from_json(body: Mapping[str, Any]) -> CameraZones:
    """Read and check a zones body (stored, or drawn by the demo); :class:`ZoneError` names the
    first bad field."""
    try:
        return codec.convert(body, ZonesBody).camera_zones()
    except CodecError as e:
        raise ZoneError(e.field, e.reason, e.detail) from None
