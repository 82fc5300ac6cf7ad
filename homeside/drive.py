"""Driving a rolling video phone safely: the dead-man rule and a motion model. Pure.

Every unit that moves, simulated or real, decides with these functions; the adapters
(:mod:`homeside.wheels` and the motor drivers behind it) only read the clock and the sensors
and carry out what comes back. Time is passed in (seconds, any monotonic origin).

The rules (issue 19, docs/device-contract.md "Driving"):

- **Dead man.** A ``drive`` command holds its speeds for its ``valid_ms`` (at most
  :data:`devices.topics.DRIVE_VALID_MS`) from the moment the unit took it; without a newer
  command by then the unit stops by itself (:func:`due`, reason ``expired``). ``0, 0`` stops
  at once (``released``).
- **Video stall.** While a caller drives, the unit stops when its video to the caller has
  stalled as far as the unit can tell (:func:`video_stalled`: the connection left
  ``connected``, the caller's RTCP receiver reports stopped, or its own camera stopped giving
  frames), and when the call ends (``call_ended``).
- **Contact.** A bumper that touches something (``bumped``) or an edge ahead (``cliff``) stops
  the unit at once; it reports the event. The next command may drive away from it.
- **Dock.** ``dock`` hands the wheels to the unit's own way home (:func:`steer_to_dock` for the
  simulated unit); a ``drive`` takes them back; the unit reports ``docked`` on the charger.

The motion model (:class:`Pose`, :class:`Room`, :func:`advance`) is what the simulated unit
drives in: a rectangular room with walls, a stairwell edge and a charger, a differential drive
with top speeds :data:`MAX_LINEAR_M_S` and :data:`MAX_ANGULAR_RAD_S`, and a battery
(:func:`battery_after`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import StrEnum

#: The longest (and default) validity of a drive command, seconds.
MAX_VALID_S = 0.5
#: No RTCP receiver report from the caller for this long while connected: video stalled.
RR_SILENCE_S = 2.5
#: The unit's own camera gave no frame for this long: video stalled.
FRAME_SILENCE_S = 1.0
#: A connection gets this long to deliver its first receiver report.
FIRST_REPORT_GRACE_S = 3.0


class Mode(StrEnum):
    IDLE = "idle"  # still, wheels off
    DRIVING = "driving"  # a caller's command holds the wheels until ``until``
    DOCKING = "docking"  # on its own way to the charger


class StopReason(StrEnum):
    """Why the wheels stopped (kept for the log and the tests; the events say the rest)."""

    EXPIRED = "expired"  # no fresh command within the dead-man window
    RELEASED = "released"  # the caller let go: a 0, 0 command
    VIDEO_STALLED = "video_stalled"
    CALL_ENDED = "call_ended"
    BUMPED = "bumped"
    CLIFF = "cliff"
    DOCKED = "docked"


@dataclass(frozen=True, slots=True)
class Motion:
    """What the wheels should do: ``linear`` and ``angular`` as shares of the top speeds
    (-1..1) while ``mode`` is driving, until ``until`` (seconds); ``stopped`` says why the last
    motion ended; ``session_id`` is the call that drives (or asked to dock)."""

    mode: Mode = Mode.IDLE
    linear: float = 0.0
    angular: float = 0.0
    until: float = 0.0
    session_id: str | None = None
    stopped: StopReason | None = None

    @property
    def is_moving(self) -> bool:
        return self.mode is not Mode.IDLE


STILL = Motion()


def command(
    m: Motion, *, linear: float, angular: float, valid_s: float, session_id: str, now: float
) -> Motion:
    """A fresh ``drive``: hold ``linear``/``angular`` for ``valid_s`` (clamped to
    0..:data:`MAX_VALID_S`) from ``now``. ``0, 0`` (or no validity) stops at once. It takes the
    wheels back from docking."""
    valid_s = min(max(valid_s, 0.0), MAX_VALID_S)
    linear, angular = _clamp(linear), _clamp(angular)
    if (linear == 0.0 and angular == 0.0) or valid_s == 0.0:
        return halt(m, StopReason.RELEASED)
    return Motion(Mode.DRIVING, linear, angular, now + valid_s, session_id, None)


def dock(m: Motion, *, session_id: str | None) -> Motion:
    """Head for the charger (the unit's own steering drives; no dead man: nobody holds a key)."""
    return Motion(Mode.DOCKING, 0.0, 0.0, math.inf, session_id, None)


def halt(m: Motion, reason: StopReason) -> Motion:
    """Stop now for ``reason`` (idle stays idle, keeping the earlier reason)."""
    if m.mode is Mode.IDLE:
        return m
    return Motion(Mode.IDLE, 0.0, 0.0, 0.0, m.session_id, reason)


def due(m: Motion, now: float) -> Motion:
    """The dead man: a drive whose window has passed at ``now`` is stopped (``expired``)."""
    if m.mode is Mode.DRIVING and now >= m.until:
        return halt(m, StopReason.EXPIRED)
    return m


def call_ended(m: Motion, session_id: str | None) -> Motion:
    """The call ``session_id`` ended (``None``: whatever call it was): a caller's drive stops.
    Docking goes on: the charger is the safe place, and no caller is needed to get there."""
    if m.mode is Mode.DRIVING and (session_id is None or m.session_id == session_id):
        return halt(m, StopReason.CALL_ENDED)
    return m


def video_stalled(
    *,
    is_connected: bool,
    connected_for_s: float,
    report_age_s: float | None,
    frame_age_s: float | None,
) -> bool:
    """Whether the unit's video to its caller has stalled, from what the unit can observe:
    the WebRTC connection is not ``connected``; or no RTCP receiver report from the caller for
    :data:`RR_SILENCE_S` (``report_age_s``; ``None``: none yet, allowed for
    :data:`FIRST_REPORT_GRACE_S` after connecting); or its own camera gave no frame for
    :data:`FRAME_SILENCE_S` (``frame_age_s``; ``None``: none yet)."""
    if not is_connected:
        return True
    if report_age_s is None:
        if connected_for_s > FIRST_REPORT_GRACE_S:
            return True
    elif report_age_s > RR_SILENCE_S:
        return True
    return frame_age_s is None or frame_age_s > FRAME_SILENCE_S


def _clamp(x: float) -> float:
    if math.isnan(x):
        return 0.0
    return min(1.0, max(-1.0, x))


# --------------------------------------------------------------------------- the motion model

#: Top speeds of the simulated unit (a Giraff-like base): forward and turning.
MAX_LINEAR_M_S = 0.5
MAX_ANGULAR_RAD_S = 1.5
#: The unit's footprint: a circle of this radius, metres.
BODY_RADIUS_M = 0.2
#: How far ahead of its rim the cliff sensors look, metres.
CLIFF_LOOKAHEAD_M = 0.05
#: Within this distance of the charger's contacts the unit is docked, metres.
DOCK_TOLERANCE_M = 0.05


class Contact(StrEnum):
    BUMPED = "bumped"
    CLIFF = "cliff"


@dataclass(frozen=True, slots=True)
class Pose:
    """Position (metres; ``x`` right, ``y`` into the room) and ``heading`` (radians, 0 along
    +x, counter-clockwise)."""

    x: float
    y: float
    heading: float


@dataclass(frozen=True, slots=True)
class Room:
    """A ``width`` x ``depth`` room with walls all round, a stairwell (an edge: the floor ends)
    in the rectangle ``cliff`` (x0, y0, x1, y1), and the charger at ``dock``."""

    width: float = 4.0
    depth: float = 3.0
    cliff: tuple[float, float, float, float] = (3.2, 2.2, 4.0, 3.0)
    dock: Pose = Pose(1.0, BODY_RADIUS_M + 0.02, math.pi / 2)

    def hits_wall(self, x: float, y: float) -> bool:
        r = BODY_RADIUS_M
        return not (r <= x <= self.width - r and r <= y <= self.depth - r)

    def over_edge(self, pose: Pose) -> bool:
        """Whether the cliff sensors, just ahead of the rim, see no floor."""
        reach = BODY_RADIUS_M + CLIFF_LOOKAHEAD_M
        x = pose.x + reach * math.cos(pose.heading)
        y = pose.y + reach * math.sin(pose.heading)
        x0, y0, x1, y1 = self.cliff
        return x0 <= x <= x1 and y0 <= y <= y1


def advance(
    pose: Pose, linear: float, angular: float, dt_s: float, room: Room
) -> tuple[Pose, Contact | None]:
    """Where the unit is after ``dt_s`` at ``linear``/``angular`` (shares of the top speeds),
    in steps of at most 20 ms; it stops at the first contact (the pose before it) and says which.
    Turning in place never bumps; an edge is seen only when moving towards it."""
    steps = max(1, math.ceil(dt_s / 0.02))
    step_s = dt_s / steps
    v = _clamp(linear) * MAX_LINEAR_M_S
    w = _clamp(angular) * MAX_ANGULAR_RAD_S
    for _ in range(steps):
        heading = (pose.heading + w * step_s + math.pi) % (2 * math.pi) - math.pi
        x = pose.x + v * step_s * math.cos(heading)
        y = pose.y + v * step_s * math.sin(heading)
        moved = Pose(x, y, heading)
        if v != 0.0 and room.hits_wall(x, y):
            return dataclasses.replace(pose, heading=heading), Contact.BUMPED
        if v > 0.0 and room.over_edge(moved):
            return dataclasses.replace(pose, heading=heading), Contact.CLIFF
        pose = moved
    return pose, None


def is_docked(pose: Pose, room: Room) -> bool:
    return math.hypot(pose.x - room.dock.x, pose.y - room.dock.y) <= DOCK_TOLERANCE_M


def steer_to_dock(pose: Pose, room: Room) -> tuple[float, float] | None:
    """The simulated unit's way home: turn its nearer end (front or back) towards the charger,
    then drive to it, slowing near it; ``None`` once docked."""
    dx, dy = room.dock.x - pose.x, room.dock.y - pose.y
    distance = math.hypot(dx, dy)
    if distance <= DOCK_TOLERANCE_M:
        return None
    error = _wrap(math.atan2(dy, dx) - pose.heading)
    direction = 1.0
    if abs(error) > math.pi / 2:  # the charger is behind: back into it
        direction, error = -1.0, _wrap(error - math.pi)
    turn = max(-1.0, min(1.0, 2.0 * error))
    if abs(error) > 0.25:
        return 0.0, turn
    return direction * max(0.1, min(1.0, distance / 0.4)), turn


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


#: Battery: what driving, standing and charging do to it, percentage points per second.
DRAIN_DRIVING_PCT_S = 0.02  # about 80 minutes of driving from full
DRAIN_IDLE_PCT_S = 0.001
CHARGE_PCT_S = 0.05


def battery_after(pct: float, *, dt_s: float, is_moving: bool, is_docked: bool) -> float:
    """The charge after ``dt_s``: charging on the dock, draining (more while moving) off it."""
    rate = CHARGE_PCT_S if is_docked else -(DRAIN_DRIVING_PCT_S if is_moving else DRAIN_IDLE_PCT_S)
    return min(100.0, max(0.0, pct + rate * dt_s))
