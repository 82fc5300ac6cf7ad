"""The agent's motor hook (issue 19): the wheels loop (homeside.wheels) on the fake driver obeys
the dead man, stops on contact and on a stalled video, and reports; the Pi HAT's throttle
arithmetic and its option parsing. The HAT itself is not tested here (no HAT on this machine)."""

from __future__ import annotations

import asyncio

import pytest

from agent import motors
from devices import topics
from homeside import drive
from homeside.wheels import Sensors, Wheels

SID = "call-0001"


class Reports:
    def __init__(self) -> None:
        self.events: list[tuple[topics.EventType, str | None]] = []
        self.video_ok = True

    async def on_event(self, kind: topics.EventType, session_id: str | None) -> None:
        self.events.append((kind, session_id))

    async def video(self) -> bool:
        return self.video_ok


async def until(check: object, timeout_s: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():  # type: ignore[operator]
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.005)


def order(valid_ms: int, linear: float = 0.5) -> topics.Drive:
    return topics.Drive(session_id=SID, linear=linear, angular=0.0, valid_ms=valid_ms)


async def test_the_fake_driver_stops_at_the_dead_man_deadline() -> None:
    driver, reports = motors.FakeDriver(), Reports()
    wheels = Wheels(driver, on_event=reports.on_event, video_ok=reports.video)
    for _ in range(3):  # a held key: fresh commands keep it going
        wheels.drive(order(120))
        await asyncio.sleep(0.06)
        assert driver.is_moving
    last = wheels.last_command_at
    await until(lambda: not driver.is_moving)
    assert last is not None
    [(stopped_at, reason)] = wheels.stops
    assert reason is drive.StopReason.EXPIRED
    assert 0.12 <= stopped_at - last <= 0.12 + 0.08  # the window, plus a scheduling margin
    assert driver.calls[-1] == ("stop",)
    await wheels.close()


async def test_a_bump_stops_and_is_reported_once_and_the_unit_may_back_off() -> None:
    driver, reports = motors.FakeDriver(), Reports()
    wheels = Wheels(driver, on_event=reports.on_event)
    wheels.drive(order(500))
    driver.sensed = Sensors(bumped=True)
    await until(lambda: reports.events)
    assert reports.events == [(topics.EventType.BUMPED, SID)]
    assert not driver.is_moving
    assert wheels.stops[-1][1] is drive.StopReason.BUMPED
    wheels.drive(order(500, linear=-0.3))  # the bumper still pressed: backing off is allowed
    await asyncio.sleep(0.1)
    assert driver.linear == -0.3
    assert reports.events == [(topics.EventType.BUMPED, SID)]
    await wheels.close()
    assert not driver.is_moving


async def test_a_cliff_and_a_stalled_video_stop_the_unit() -> None:
    driver, reports = motors.FakeDriver(), Reports()
    wheels = Wheels(driver, on_event=reports.on_event, video_ok=reports.video)
    wheels.drive(order(500))
    driver.sensed = Sensors(cliff=True)
    await until(lambda: not driver.is_moving)
    assert reports.events == [(topics.EventType.CLIFF, SID)]
    driver.sensed = Sensors()
    wheels.drive(order(500))
    reports.video_ok = False
    await until(lambda: not driver.is_moving, timeout_s=1.0)
    assert wheels.stops[-1][1] is drive.StopReason.VIDEO_STALLED
    wheels.drive(order(500))
    wheels.call_ended(SID)
    assert not driver.is_moving
    assert wheels.stops[-1][1] is drive.StopReason.CALL_ENDED
    await wheels.close()


async def test_dock_without_a_way_home_is_refused_and_a_dock_switch_reports_docked() -> None:
    driver, reports = motors.FakeDriver(), Reports()
    wheels = Wheels(driver, on_event=reports.on_event)
    assert not wheels.dock(SID)  # a bare HAT: cannot_dock
    driver.can_dock = True
    assert wheels.dock(SID)
    driver.sensed = Sensors(docked=True)
    await until(lambda: reports.events)
    assert reports.events == [(topics.EventType.DOCKED, SID)]
    assert wheels.motion.stopped is drive.StopReason.DOCKED
    await wheels.close()


@pytest.mark.parametrize(
    ("linear", "angular", "throttles"),
    [
        (0.5, 0.0, (0.5, 0.5)),
        (0.0, 0.5, (-0.5, 0.5)),  # turning left: the left wheel backwards
        (1.0, 1.0, (0.0, 1.0)),
        (-1.0, 0.5, (-1.0, -1 / 3)),  # scaled so neither wheel exceeds full throttle
    ],
)
def test_wheel_throttles(linear: float, angular: float, throttles: tuple[float, float]) -> None:
    assert motors.wheel_throttles(linear, angular) == pytest.approx(throttles)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("servo", "fake or motorhat"),
        ("fake:x=1", "no options"),
        ("motorhat:left=5", "motors 1-4"),
        ("motorhat:left=1,right=1", "motors 1-4"),
        ("motorhat:bump=40", "BCM GPIO"),
        ("motorhat:bump=x", "a number"),
        ("motorhat:wheel=1", "unknown option"),
        ("motorhat:left=1,left=2", "twice"),
        ("motorhat", "adafruit_motorkit"),  # off a Pi: the library is missing
    ],
)
def test_bad_motor_options_are_refused_clearly(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        motors.parse(text)


def test_fake_is_a_driver() -> None:
    assert isinstance(motors.parse("fake"), motors.FakeDriver)
