"""The one timing policy and the clock port that can sleep (kernel.timing, kernel.clock)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime, timedelta

import pytest

from devices import topics
from kernel import timing
from kernel.clock import SYSTEM_CLOCK, ClockPort, ScaledClock
from kernel.timing import DEFAULT_TIMING, Timing
from services import settings
from supervision import checks

T0 = datetime(2026, 1, 12, 21, 0, tzinfo=UTC)


def test_the_round_uses_the_one_timing_policy() -> None:
    assert checks.Timing is Timing
    assert checks.DEFAULT_TIMING is DEFAULT_TIMING
    # production defaults the design documents
    assert (DEFAULT_TIMING.document_grace_s, DEFAULT_TIMING.ring_timeout_s) == (120, 30)
    assert (DEFAULT_TIMING.wake_timeout_s, DEFAULT_TIMING.alarm_grace_s) == (5, 30)


def test_parse_overrides_single_fields_and_keeps_the_rest() -> None:
    t = timing.parse("ring_timeout_s=3, document_grace_s=4.5")
    assert (t.ring_timeout_s, t.document_grace_s) == (3.0, 4.5)
    assert t.claim_grace_s == DEFAULT_TIMING.claim_grace_s
    assert timing.parse("") == DEFAULT_TIMING


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("ring_timeout=3", "not one of"),
        ("ring_timeout_s", "name=seconds"),
        ("ring_timeout_s=soon", "number of seconds"),
        ("ring_timeout_s=0", "positive"),
        ("ring_timeout_s=-1", "positive"),
        ("ring_timeout_s=nan", "positive"),
        ("link_wait_s=90", "shorter than probe_timeout_s"),
    ],
)
def test_bad_timing_is_refused_with_a_clear_message(raw: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        timing.parse(raw)


def test_settings_carry_the_timing_policy() -> None:
    assert settings.load({}).timing == DEFAULT_TIMING
    s = settings.load({"HOMECARE_TIMING": "ring_timeout_s=2,wake_timeout_s=1"})
    assert (s.timing.ring_timeout_s, s.timing.wake_timeout_s) == (2, 1)
    with pytest.raises(settings.SettingsError, match="HOMECARE_TIMING"):
        settings.load({"HOMECARE_TIMING": "ring_timeout_s=never"})


def test_scaled_shortens_every_duration() -> None:
    fast = DEFAULT_TIMING.scaled(0.1)
    for f in dataclasses.fields(Timing):
        assert getattr(fast, f.name) == pytest.approx(getattr(DEFAULT_TIMING, f.name) * 0.1)
    with pytest.raises(ValueError):
        DEFAULT_TIMING.scaled(0)


def test_both_clocks_are_clock_ports_and_plain_clocks() -> None:
    for clock in (SYSTEM_CLOCK, ScaledClock(10, T0)):
        assert isinstance(clock, ClockPort)
        assert clock().tzinfo is not None
        assert clock.now().tzinfo is not None


def test_a_scaled_clock_runs_speed_times_real_time() -> None:
    ticks = iter([100.0, 100.0, 102.5])
    clock = ScaledClock(60, T0, monotonic=lambda: next(ticks))
    assert clock.now() == T0
    assert clock.now() == T0 + timedelta(seconds=150)


async def test_a_scaled_clock_sleeps_seconds_over_speed() -> None:
    clock = ScaledClock(200, T0)
    started = time.monotonic()
    await clock.sleep(10)  # 10 clock seconds are 50 ms of real time
    assert time.monotonic() - started < 1.0
    assert clock.now() >= T0 + timedelta(seconds=10)


async def test_a_stopped_clock_moves_only_when_told_and_sleep_moves_it() -> None:
    clock = ScaledClock(0, T0)
    await asyncio.sleep(0.01)
    assert clock.now() == T0
    await clock.sleep(90)
    assert clock.now() == T0 + timedelta(seconds=90)
    clock.set(T0)
    assert clock.advance(5) == T0 + timedelta(seconds=5)


def test_clocks_refuse_naive_times_and_negative_speed() -> None:
    with pytest.raises(ValueError):
        ScaledClock(1, datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        ScaledClock(-1, T0)


def test_every_signalling_duration_comes_from_the_timing_policy() -> None:
    """``signalling_config`` fills every duration of ``SignallingConfig`` from the field of the
    same name in ``Timing`` (rates and counts stay signalling's own)."""
    from services.app import signalling_config
    from services.signalling.ports import SignallingConfig

    durations = [
        f.name
        for f in dataclasses.fields(SignallingConfig)
        if f.name.endswith("_s") and not f.name.endswith("_per_s")  # not the rates
    ]
    assert {"close_wait_s", "pending_close_wait_s"} <= set(durations)
    odd = Timing(**{name: 7.25 for name in timing.FIELDS if name != "link_wait_s"}, link_wait_s=1)
    config = signalling_config(odd)
    for name in durations:
        assert name in timing.FIELDS, name
        assert getattr(config, name) == getattr(odd, name), name
    assert config.terms.default_cap_s == 7.25
    # the production defaults agree, and the indicator's ack is the device contract's
    assert signalling_config(DEFAULT_TIMING) == SignallingConfig()
    assert DEFAULT_TIMING.indicator_ack_s == topics.INDICATOR_ACK_S
    assert timing.parse("close_wait_s=0.5,pending_close_wait_s=4").pending_close_wait_s == 4


async def test_a_stopped_clock_moves_only_when_told_and_sleep_jumps_it() -> None:
    from kernel.clock import sleep_of

    clock = ScaledClock(0, T0)
    assert clock() == T0
    assert clock.advance(timedelta(minutes=1)) == T0 + timedelta(minutes=1)
    assert clock.advance(30) == T0 + timedelta(seconds=90)
    await sleep_of(clock)(10)  # a deadline on this clock: no real wait, the clock jumps
    assert clock() == T0 + timedelta(seconds=100)
    assert sleep_of(lambda: T0) is asyncio.sleep  # a plain callable runs at real speed
