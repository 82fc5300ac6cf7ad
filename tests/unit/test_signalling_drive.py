"""Driving in a call, in the pure session machine (issue 19): every ``drive`` carries its
validity, never past the caller's fresh video; ``dock`` in an answered call; what the phone
reports of itself reaches the caller while the call is up."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices import envelope as env
from devices.topics import DRIVE_VALID_MS
from services.signalling import machine as m

T0 = datetime(2026, 1, 15, 21, 0, tzinfo=UTC)
S = timedelta(seconds=1)
TERMS = m.Terms(
    default_cap_s=30, ring_timeout_s=30, max_call_s=3600, max_extensions=2, stale_video_s=1.0
)


def call(state: m.State = m.State.CONNECTED, **changes: object) -> m.Session:
    s = m.Session(
        session_id="s-0001",
        device_id="phone-0001",
        purpose=env.Purpose.CALL,
        staff_id="staff-op0001",
        recipient_id="rec-0001",
        state=state,
        started_at=T0,
        deadline=T0 + 3600 * S,
        cap_s=30.0,
    )
    return dataclasses.replace(s, **changes)  # type: ignore[arg-type]


@given(st.integers(0, 2_000_000))
def test_a_drive_is_valid_for_the_window_or_what_is_left_of_the_fresh_video(age_us: int) -> None:
    """A naive model: valid for min(500 ms, the time until the video turns stale), refused when
    nothing is left; never longer than the window."""
    s = call(last_frame_at=T0)
    now = T0 + timedelta(microseconds=age_us)
    left_ms = (1_000_000 - age_us) // 1000  # stale_video_s is 1 s
    _, effects = m.apply(s, m.ClientDrive(0.5, 0.0), now, TERMS)
    if left_ms < 1:
        assert [e.code for e in effects if isinstance(e, m.Refuse)] == ["video_stale"]
    else:
        [drive] = effects
        assert isinstance(drive, m.Drive)
        assert drive.valid_ms == min(DRIVE_VALID_MS, left_ms)
        assert 1 <= drive.valid_ms <= DRIVE_VALID_MS


def test_a_held_key_sends_fresh_windows_while_the_video_is_reported() -> None:
    """The console re-sends every 200 ms and reports decoded frames every 300 ms: each drive
    gets the whole window; when the reports stop, the windows shrink and then stop."""
    s = call()
    windows = []
    frames = 0
    for tick in range(15):  # 3 s of a held key
        now = T0 + timedelta(milliseconds=200 * tick)
        if tick < 8 and tick % 2 == 0:  # reports until 1.4 s, then the video stalls
            frames += 10
            s, _ = m.apply(s, m.ClientVideo(frames), now, TERMS)
        s, effects = m.apply(s, m.ClientDrive(0.5, 0.0), now, TERMS)
        windows.append(effects[0].valid_ms if isinstance(effects[0], m.Drive) else 0)
    assert windows[:8] == [DRIVE_VALID_MS] * 8
    # the last report at 1.2 s: fresh until 2.2 s; 1.8 s leaves 400 ms, 2.0 s 200 ms, then none
    assert windows[8:] == [DRIVE_VALID_MS, 400, 200, 0, 0, 0, 0]


@pytest.mark.parametrize(
    "s",
    [
        call(m.State.RINGING),
        dataclasses.replace(call(), purpose=env.Purpose.VIEW),
    ],
)
def test_dock_only_in_an_answered_call(s: m.Session) -> None:
    _, effects = m.apply(s, m.ClientDock(), T0, TERMS)
    assert [e.code for e in effects if isinstance(e, m.Refuse)] == ["not_in_call"]


def test_dock_needs_no_fresh_video() -> None:
    _, effects = m.apply(call(), m.ClientDock(), T0, TERMS)  # no frame reported at all
    assert effects == (m.Dock(),)


def test_a_closed_call_refuses_drive_and_dock() -> None:
    ended, _ = m.apply(call(), m.ClientBye(), T0, TERMS)
    for event in (m.ClientDock(), m.ClientDrive(0.1, 0.0)):
        _, effects = m.apply(ended, event, T0, TERMS)
        assert [e.code for e in effects if isinstance(e, m.Refuse)] == ["session_closed"]


def test_the_unit_s_reports_reach_the_caller_only_while_the_call_is_up() -> None:
    report = env.Unit("s-0001", event=env.UnitEvent.BUMPED, battery_pct=64.5)
    assert m.apply(call(), m.UnitReported(report), T0, TERMS)[1] == (m.ToClient(report),)
    assert m.apply(call(m.State.RINGING), m.UnitReported(report), T0, TERMS)[1] == ()
    ended, _ = m.apply(call(), m.ClientBye(), T0, TERMS)
    assert m.apply(ended, m.UnitReported(report), T0, TERMS)[1] == ()
