"""Driving safely (issue 19): the dead man, the video stall, contacts, docking and the battery,
as pure functions with time passed in; and the ``drive``/``dock`` arguments on the wire."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices import topics as t
from devices.errors import PayloadError
from homeside import drive as d

SID = "call-0001"


def held(now: float = 10.0, valid_s: float = 0.5, linear: float = 0.5) -> d.Motion:
    return d.command(d.STILL, linear=linear, angular=0.0, valid_s=valid_s, session_id=SID, now=now)


# --------------------------------------------------------------------------- the dead man


@given(
    st.floats(0.001, 0.5),
    st.lists(st.floats(0.0, 0.6), min_size=1, max_size=12),
)
def test_the_unit_moves_only_within_the_window_of_its_last_command(
    valid_s: float, gaps: list[float]
) -> None:
    """A naive model: commands at the given gaps; the unit moves at ``now`` exactly when the
    last command before ``now`` was less than ``valid_s`` ago."""
    now, m, last = 0.0, d.STILL, None
    for gap in gaps:
        probe = now + gap
        m = d.due(m, probe)
        assert m.is_moving == (last is not None and probe < last + valid_s)
        now = probe
        m = d.command(m, linear=0.4, angular=0.1, valid_s=valid_s, session_id=SID, now=now)
        last = now
    assert d.due(m, now + valid_s).stopped is d.StopReason.EXPIRED


def test_a_command_expires_at_its_validity_never_later() -> None:
    m = held(now=10.0, valid_s=0.3)
    assert d.due(m, 10.299).is_moving
    stopped = d.due(m, 10.3)
    assert not stopped.is_moving
    assert stopped.stopped is d.StopReason.EXPIRED
    assert (stopped.linear, stopped.angular) == (0.0, 0.0)


def test_validity_is_capped_at_half_a_second_and_zero_stops() -> None:
    assert held(now=1.0, valid_s=5.0).until == pytest.approx(1.0 + d.MAX_VALID_S)
    assert d.command(held(), linear=0, angular=0, valid_s=0.5, session_id=SID, now=1).stopped is (
        d.StopReason.RELEASED
    )
    assert not held(valid_s=0.0).is_moving
    nan = d.command(d.STILL, linear=math.nan, angular=2.0, valid_s=0.5, session_id=SID, now=0)
    assert (nan.linear, nan.angular) == (0.0, 1.0)  # NaN is no speed, 2 is the top speed


def test_the_end_of_the_call_stops_a_drive_but_not_docking() -> None:
    assert d.call_ended(held(), SID).stopped is d.StopReason.CALL_ENDED
    assert d.call_ended(held(), None).stopped is d.StopReason.CALL_ENDED
    assert d.call_ended(held(), "another-call").is_moving  # not this unit's call
    docking = d.dock(held(), session_id=SID)
    assert d.call_ended(docking, SID).mode is d.Mode.DOCKING
    assert d.due(docking, 1e9).mode is d.Mode.DOCKING  # no dead man: nobody holds a key
    taken_back = d.command(docking, linear=0.2, angular=0, valid_s=0.5, session_id=SID, now=3)
    assert taken_back.mode is d.Mode.DRIVING


def test_halt_keeps_the_first_reason() -> None:
    stopped = d.halt(held(), d.StopReason.BUMPED)
    assert d.halt(stopped, d.StopReason.EXPIRED).stopped is d.StopReason.BUMPED


# --------------------------------------------------------------------------- video stall


@pytest.mark.parametrize(
    ("connected", "for_s", "report_age", "frame_age", "stalled"),
    [
        (True, 10.0, 0.8, 0.1, False),
        (False, 10.0, 0.8, 0.1, True),  # ICE/DTLS left connected
        (True, 10.0, d.RR_SILENCE_S + 0.1, 0.1, True),  # the caller stopped reporting
        (True, 1.0, None, 0.1, False),  # no report yet, within the grace
        (True, d.FIRST_REPORT_GRACE_S + 0.1, None, 0.1, True),
        (True, 10.0, 0.5, d.FRAME_SILENCE_S + 0.1, True),  # our own camera stopped
        (True, 10.0, 0.5, None, True),
    ],
)
def test_video_stall_from_what_the_unit_sees(
    connected: bool, for_s: float, report_age: float | None, frame_age: float | None, stalled: bool
) -> None:
    assert (
        d.video_stalled(
            is_connected=connected,
            connected_for_s=for_s,
            report_age_s=report_age,
            frame_age_s=frame_age,
        )
        is stalled
    )


# --------------------------------------------------------------------------- the room


ROOM = d.Room()


def test_driving_forward_moves_at_top_speed_and_turning_turns() -> None:
    start = d.Pose(2.0, 1.5, 0.0)
    ahead, contact = d.advance(start, 1.0, 0.0, 1.0, ROOM)
    assert contact is None
    assert ahead.x == pytest.approx(2.0 + d.MAX_LINEAR_M_S)
    turned, _ = d.advance(start, 0.0, 1.0, 1.0, ROOM)
    assert (turned.x, turned.y) == (2.0, 1.5)
    assert turned.heading == pytest.approx(d.MAX_ANGULAR_RAD_S)


def test_a_wall_bumps_and_the_unit_stays_before_it() -> None:
    near = d.Pose(ROOM.width - d.BODY_RADIUS_M - 0.01, 1.0, 0.0)
    pose, contact = d.advance(near, 1.0, 0.0, 0.5, ROOM)
    assert contact is d.Contact.BUMPED
    assert not ROOM.hits_wall(pose.x, pose.y)
    back, contact = d.advance(pose, -1.0, 0.0, 0.2, ROOM)  # backing off is free
    assert contact is None
    assert back.x < pose.x


def test_the_stairwell_edge_stops_the_unit_before_it() -> None:
    x0, y0, _, _ = ROOM.cliff
    towards = d.Pose(x0 - 0.5, y0 + 0.3, 0.0)
    pose, contact = d.advance(towards, 1.0, 0.0, 2.0, ROOM)
    assert contact is d.Contact.CLIFF
    assert pose.x + d.BODY_RADIUS_M < x0  # the body never got over the edge


def test_the_way_home_ends_on_the_charger() -> None:
    for start in (d.Pose(3.0, 2.0, 0.0), d.Pose(0.5, 2.5, -2.0), d.Pose(2.5, 0.5, math.pi)):
        pose, t_s = start, 0.0
        while (steer := d.steer_to_dock(pose, ROOM)) is not None:
            pose, contact = d.advance(pose, *steer, 0.05, ROOM)
            assert contact is None
            t_s += 0.05
            assert t_s < 30, "never got home"
        assert d.is_docked(pose, ROOM)


def test_the_battery_drains_driving_and_charges_docked() -> None:
    driving = d.battery_after(50.0, dt_s=100, is_moving=True, is_docked=False)
    idle = d.battery_after(50.0, dt_s=100, is_moving=False, is_docked=False)
    assert driving < idle < 50.0
    assert d.battery_after(50.0, dt_s=100, is_moving=False, is_docked=True) > 50.0
    assert d.battery_after(99.9, dt_s=1e6, is_moving=False, is_docked=True) == 100.0
    assert d.battery_after(0.1, dt_s=1e6, is_moving=True, is_docked=False) == 0.0


# --------------------------------------------------------------------------- the wire


def command(**args: object) -> t.Command:
    return t.decode_command(json.dumps({"id": "c1", **args}).encode())


def test_drive_arguments_round_trip_with_the_default_window_on_the_wire() -> None:
    order = t.decode_drive(command(op="drive", session_id=SID, linear=0.5, angular=-1))
    assert (order.linear, order.angular, order.valid_ms) == (0.5, -1.0, t.DRIVE_VALID_MS)
    sent = json.loads(order.command("c2").encode())
    assert sent == {
        "id": "c2",
        "op": "drive",
        "session_id": SID,
        "linear": 0.5,
        "angular": -1.0,
        "valid_ms": 500,
    }
    assert t.decode_drive(command(**sent | {"valid_ms": 1})).valid_ms == 1


@pytest.mark.parametrize(
    ("args", "reason", "field"),
    [
        ({"linear": 1.01, "angular": 0}, "out_of_range", "linear"),
        ({"linear": 0, "angular": -2}, "out_of_range", "angular"),
        ({"linear": True, "angular": 0}, "wrong_type", "linear"),
        ({"linear": "0.5", "angular": 0}, "wrong_type", "linear"),
        ({"linear": 0.1, "angular": 0, "valid_ms": 0}, "out_of_range", "valid_ms"),
        ({"linear": 0.1, "angular": 0, "valid_ms": 501}, "out_of_range", "valid_ms"),
        ({"linear": 0.1, "angular": 0, "valid_ms": 250.5}, "wrong_type", "valid_ms"),
        ({"linear": 0.1, "angular": 0, "valid_ms": None}, "wrong_type", "valid_ms"),
        ({"linear": 0.1}, "missing_field", "angular"),
        ({"linear": 0.1, "angular": 0, "speed": 1}, "unknown_field", "speed"),
        ({"linear": 0.1, "angular": 0, "session_id": ""}, "out_of_range", "session_id"),
        ({"linear": 0.1, "angular": 0, "session_id": None}, "wrong_type", "session_id"),
    ],
)
def test_bad_drive_arguments_are_refused_with_the_field(
    args: dict[str, object], reason: str, field: str
) -> None:
    with pytest.raises(PayloadError) as refused:
        t.decode_drive(command(op="drive", **({"session_id": SID} | args)))
    assert (refused.value.reason, refused.value.field) == (reason, field)


def test_dock_arguments() -> None:
    assert t.decode_dock(command(op="dock")).session_id is None
    assert t.decode_dock(command(op="dock", session_id=SID)).session_id == SID
    with pytest.raises(PayloadError) as refused:
        t.decode_dock(command(op="dock", to="kitchen"))
    assert refused.value.reason == "unknown_field"
    with pytest.raises(PayloadError):
        t.decode_dock(command(op="drive", session_id=SID, linear=0, angular=0))


def test_events_of_a_rolling_unit_carry_its_battery() -> None:
    sent = t.Event(type=t.EventType.BUMPED, session_id=SID, battery_pct=81.5).encode()
    assert t.decode_event(sent) == t.Event(t.EventType.BUMPED, None, SID, 81.5)
    for kind in ("bumped", "cliff", "docked"):
        assert t.decode_event(json.dumps({"type": kind}).encode()).type == kind
    with pytest.raises(PayloadError) as refused:
        t.decode_event(b'{"type": "cliff", "battery_pct": 101}')
    assert refused.value.field == "battery_pct"
