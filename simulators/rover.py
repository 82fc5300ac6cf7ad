"""The simulated video phone's wheels and what its camera sees while it rolls.

:class:`SimBody` is a :class:`homeside.wheels.MotorDriver` that moves in a
:class:`homeside.drive.Room` by the pure motion model: speeds held between calls and integrated
lazily up to the clock's now whenever it is asked (so a stopped or idle unit costs nothing),
a bumper and cliff sensors that latch while the unit presses against a wall or an edge (a move
that gets free clears them), the charger's contacts, and a battery that drains with driving and
charges on the dock. ``dock()`` starts its own way home (:func:`homeside.drive.steer_to_dock`).

:class:`RoverView` is the phone's camera: the home's scene panned with the unit's heading and
shifted with its distance from the charger wall (two ``np.roll``\\ s of the picture the scene
draws; cheap), so a caller sees the unit turn and move.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from homeside import drive
from homeside.media import FrameSource
from homeside.wheels import Sensors


class SimBody:
    """A simulated differential drive in ``room``; starts on the charger unless ``pose``."""

    def __init__(
        self,
        room: drive.Room | None = None,
        *,
        pose: drive.Pose | None = None,
        battery_pct: float = 90.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.room = room or drive.Room()
        self.pose = pose or self.room.dock
        self.battery = battery_pct
        self.clock = clock
        self.linear = 0.0
        self.angular = 0.0
        self.is_docking = False
        self.touching: drive.Contact | None = None  # the bumper or cliff sensor, latched
        self.travelled_m = 0.0
        self._at = clock()

    def _advance(self) -> None:
        now = self.clock()
        dt_s, self._at = now - self._at, now
        while dt_s > 1e-6:
            step_s = min(dt_s, 0.02)
            dt_s -= step_s
            linear, angular = self.linear, self.angular
            if self.is_docking:
                steer = drive.steer_to_dock(self.pose, self.room)
                if steer is None:
                    self.is_docking = False
                    linear = angular = 0.0
                else:
                    linear, angular = steer
            moving = linear != 0.0 or angular != 0.0
            docked = drive.is_docked(self.pose, self.room)
            self.battery = drive.battery_after(
                self.battery, dt_s=step_s, is_moving=moving, is_docked=docked and not moving
            )
            if not moving:
                continue
            before = self.pose
            self.pose, contact = drive.advance(self.pose, linear, angular, step_s, self.room)
            self.travelled_m += math.hypot(self.pose.x - before.x, self.pose.y - before.y)
            if contact is not None:  # the bumper (or the cliff sensor) cuts the motors
                self.touching = contact
                self.linear = self.angular = 0.0
                self.is_docking = False
            elif linear != 0.0:
                self.touching = None

    # ------------------------------------------------------------ MotorDriver

    def set_speeds(self, linear: float, angular: float) -> None:
        self._advance()
        self.is_docking = False
        self.linear, self.angular = linear, angular

    def stop(self) -> None:
        self._advance()
        self.is_docking = False
        self.linear = self.angular = 0.0

    def sensors(self) -> Sensors:
        self._advance()
        return Sensors(
            bumped=self.touching is drive.Contact.BUMPED,
            cliff=self.touching is drive.Contact.CLIFF,
            docked=drive.is_docked(self.pose, self.room),
            battery_pct=round(self.battery, 1),
        )

    def dock(self) -> bool:
        self._advance()
        self.linear = self.angular = 0.0
        self.is_docking = True
        return True

    @property
    def is_moving(self) -> bool:
        self._advance()
        return self.is_docking or self.linear != 0.0 or self.angular != 0.0


class RoverView:
    """A :class:`~homeside.media.FrameSource`: ``scene`` as the rolling unit's camera sees it
    from ``body``'s pose: a full turn pans the picture once round, and moving away from the
    charger wall shifts it down (nearer the floor ahead)."""

    def __init__(self, scene: FrameSource, body: SimBody) -> None:
        self.scene = scene
        self.body = body

    def yuv420(self, t_s: float, width: int, height: int) -> npt.NDArray[np.uint8]:
        picture = self.scene.yuv420(t_s, width, height)
        pose = self.body.pose
        pan = round((pose.heading - self.body.room.dock.heading) / (2 * math.pi) * width) // 2 * 2
        tilt = round((pose.y - self.body.room.dock.y) / self.body.room.depth * height / 3) // 2 * 2
        if pan == 0 and tilt == 0:
            return picture
        y = np.roll(picture[:height], (tilt, pan), axis=(0, 1))
        chroma = picture[height:].reshape(2, height // 2, width // 2)
        uv = np.roll(chroma, (tilt // 2, pan // 2), axis=(1, 2))
        return np.concatenate((y, uv.reshape(-1, width)))
