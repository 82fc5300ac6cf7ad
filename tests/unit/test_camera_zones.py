"""Camera zones as the API reads them (``supervision.zones``): round trip, and any JSON gives either
zones the kernel accepts or a :class:`ZoneError` naming a field, never anything else."""

from __future__ import annotations

from typing import Any, get_args

from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.scenes import Scene, SceneKind
from supervision.zones import ZONE_NAMES, CameraZones, ZoneError, ZoneName, from_json
from vision import motion


def test_the_scenes_zones_round_trip_and_the_kernel_runs_them() -> None:
    polygons = Scene(SceneKind.ASLEEP).zones(320, 240)
    body = {
        "width": 320,
        "height": 240,
        "zones": [{"name": n, "polygon": [list(p) for p in poly]} for n, poly in polygons.items()],
    }
    zones = from_json(body)
    assert [z.name for z in zones.zones] == ["bed", "floor"]
    assert from_json(zones.to_json()) == zones
    state = motion.MotionState(zones.width, zones.height, zones.zones)
    assert state.regions == ("bed", "floor", "elsewhere")


def test_the_zone_name_type_is_the_zone_names() -> None:
    assert get_args(ZoneName) == ZONE_NAMES


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=40,
)
_point = st.lists(st.integers(-5, 400) | st.floats(allow_nan=True), min_size=1, max_size=3)
_zone = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["bed", "floor", "door", "sofa"]),
        "polygon": st.lists(_point, max_size=6),
    }
)
_body = st.fixed_dictionaries(
    {
        "width": st.integers(0, 10_000) | _json,
        "height": st.integers(0, 10_000) | _json,
        "zones": st.lists(_zone | _json, max_size=4),
    }
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_body, st.dictionaries(st.text(max_size=8), _json, max_size=4)))
def test_any_json_is_either_usable_zones_or_a_named_error(body: dict[str, Any]) -> None:
    error: ZoneError | None = None
    try:
        zones = from_json(body)
    except ZoneError as e:
        error = e
    if error is not None:
        assert isinstance(error.field, str)
        assert error.code
        assert str(error)
        assert error.http_status == 422
        return
    assert isinstance(zones, CameraZones)
    motion.MotionState(zones.width, zones.height, zones.zones)
