"""The agent's motor hook: what makes a real video phone roll, under the same rules as the
simulated one.

The rules live in :mod:`homeside.drive` (pure: the dead man, the video stall, contacts) and are
carried out by :class:`homeside.wheels.Wheels`, the same code the simulated phone runs; the agent
adds only a driver behind the :class:`~homeside.wheels.MotorDriver` protocol:

- :class:`FakeDriver`: no hardware; records what it was told and reports the sensors a test sets
  (``homecare agent --motors fake``, and the tests).
- :class:`MotorHatDriver`: a Raspberry Pi with an Adafruit DC & Stepper Motor HAT (or Bonnet)
  driving the left and right wheels' DC motors, and optionally GPIO switches for a bumper, a
  cliff sensor and the charger's contacts (``--motors motorhat:left=1,right=2,bump=17,
  cliff=27,dock=22``). Its libraries (``adafruit-circuitpython-motorkit``, ``gpiozero``) are
  imported only when it is made, on the Pi: they are not dependencies of this project, and this
  driver is **not tested here** (no HAT on the build machine); :func:`wheel_throttles`, the only
  arithmetic in it, is.

A bare motor HAT cannot find its charger (that takes a dock beacon or odometry), so ``dock`` is
acked ``ok: false`` with ``cannot_dock`` on such a unit; it still reports ``docked`` when its dock
switch closes. It reads no battery (health carries none).

:func:`parse` turns ``--motors`` into a driver; :func:`homeside.peer.attach` takes it as
``driver=`` (``agent.app.Agent(motors=...)``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from homeside.wheels import MotorDriver, Sensors

__all__ = ["FakeDriver", "MotorDriver", "MotorHatDriver", "Sensors", "parse", "wheel_throttles"]


@dataclass
class FakeDriver:
    """A driver without hardware: ``calls`` lists ``("speeds", l, a)``, ``("stop",)`` and
    ``("dock",)`` in order; ``sensed`` is what ``sensors()`` reports (a test changes it);
    ``can_dock`` whether ``dock()`` starts a way home."""

    sensed: Sensors = field(default_factory=Sensors)
    can_dock: bool = False
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    linear: float = 0.0
    angular: float = 0.0

    def set_speeds(self, linear: float, angular: float) -> None:
        self.linear, self.angular = linear, angular
        self.calls.append(("speeds", linear, angular))

    def stop(self) -> None:
        self.linear = self.angular = 0.0
        self.calls.append(("stop",))

    def sensors(self) -> Sensors:
        return self.sensed

    def dock(self) -> bool:
        self.calls.append(("dock",))
        return self.can_dock

    @property
    def is_moving(self) -> bool:
        return self.linear != 0.0 or self.angular != 0.0


def wheel_throttles(linear: float, angular: float) -> tuple[float, float]:
    """A differential drive's (left, right) throttles, each -1..1, for ``linear`` forward and
    ``angular`` to the left: the sum scaled down so neither wheel exceeds full throttle (a turn
    while driving keeps its shape instead of clipping one side)."""
    left, right = linear - angular, linear + angular
    biggest = max(1.0, abs(left), abs(right))
    return left / biggest, right / biggest


@dataclass(frozen=True, slots=True)
class HatPins:
    """Which HAT motor terminals (1-4) drive the wheels, and the BCM GPIO pins of the switches
    (``None``: the base has no such switch)."""

    left: int = 1
    right: int = 2
    bump: int | None = None
    cliff: int | None = None
    dock: int | None = None


class MotorHatDriver:
    """Adafruit Motor HAT wheels plus optional gpiozero switches (see the module docstring).
    Imports its libraries here, so a unit without the HAT never needs them."""

    def __init__(self, pins: HatPins) -> None:
        motorkit = importlib.import_module("adafruit_motorkit")
        kit = motorkit.MotorKit()
        self._left = getattr(kit, f"motor{pins.left}")
        self._right = getattr(kit, f"motor{pins.right}")
        self._switches: dict[str, Any] = {}
        wanted = {"bump": pins.bump, "cliff": pins.cliff, "dock": pins.dock}
        if any(pin is not None for pin in wanted.values()):
            gpiozero = importlib.import_module("gpiozero")
            for name, pin in wanted.items():
                if pin is not None:
                    self._switches[name] = gpiozero.Button(pin)  # closed: pressed
        self.stop()

    def set_speeds(self, linear: float, angular: float) -> None:
        left, right = wheel_throttles(linear, angular)
        self._left.throttle = left
        self._right.throttle = right

    def stop(self) -> None:
        self._left.throttle = 0.0  # 0 brakes; None would let the wheels coast
        self._right.throttle = 0.0

    def _pressed(self, name: str) -> bool:
        switch = self._switches.get(name)
        return bool(switch is not None and switch.is_pressed)

    def sensors(self) -> Sensors:
        return Sensors(
            bumped=self._pressed("bump"),
            cliff=self._pressed("cliff"),
            docked=self._pressed("dock"),
        )

    def dock(self) -> bool:
        return False  # a bare HAT has no way to find its charger


def parse(text: str) -> MotorDriver:
    """``fake`` or ``motorhat[:left=N,right=N,bump=PIN,cliff=PIN,dock=PIN]``; ``ValueError``
    naming the problem otherwise (a ``motorhat`` off a Pi fails when its library is missing)."""
    head, _, rest = text.strip().partition(":")
    if head == "fake":
        if rest:
            raise ValueError("--motors fake takes no options")
        return FakeDriver()
    if head != "motorhat":
        raise ValueError(
            "--motors is fake or motorhat[:left=N,right=N,bump=PIN,cliff=PIN,dock=PIN]"
        )
    values: dict[str, int] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or key not in {"left", "right", "bump", "cliff", "dock"}:
            raise ValueError(f"--motors motorhat: unknown option {item!r}")
        if key in values:
            raise ValueError(f"--motors motorhat: {key} given twice")
        if not value.isdigit():
            raise ValueError(f"--motors motorhat: {key} must be a number")
        values[key] = int(value)
    pins = HatPins(**values)
    if not (1 <= pins.left <= 4 and 1 <= pins.right <= 4) or pins.left == pins.right:
        raise ValueError("--motors motorhat: left and right are two of the HAT's motors 1-4")
    for name in ("bump", "cliff", "dock"):
        pin = getattr(pins, name)
        if pin is not None and not 0 <= pin <= 27:
            raise ValueError(f"--motors motorhat: {name} is a BCM GPIO pin 0-27")
    try:
        return MotorHatDriver(pins)
    except ImportError as e:
        raise ValueError(
            f"--motors motorhat needs {e.name} (pip install adafruit-circuitpython-motorkit "
            "gpiozero, on the Pi)"
        ) from e
