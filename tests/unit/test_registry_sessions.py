"""Issue 13, finding 3 (pure): a session counter from the future cannot pin a device's presence."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from devices import registry as r
from devices import topics as t

T0 = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)
NOW_MS = int(T0.timestamp() * 1000)  # what a device connecting at T0 sends (homeside.device)
PINNING = 9007199254740992  # 2**53, the largest session the wire allows
LIMIT = NOW_MS + int(r.MAX_SESSION_AHEAD.total_seconds() * 1000)


def status(state: t.Presence, session: int) -> t.Status:
    return t.Status(state, session)


def test_the_limit_is_the_clock_in_ms_plus_the_allowed_lead() -> None:
    assert r.session_limit(T0) == LIMIT
    assert r.session_limit(T0 + timedelta(seconds=1)) == LIMIT + 1000


def test_a_session_from_the_future_is_refused_and_changes_nothing() -> None:
    rec = r.apply_status(None, "cam-1", status(t.Presence.ONLINE, NOW_MS), T0).record
    out = r.apply_status(rec, "cam-1", status(t.Presence.ONLINE, PINNING), T0)
    assert out == r.Applied(None, rejected="session_in_future")
    assert r.apply_status(None, "cam-2", status(t.Presence.ONLINE, PINNING), T0) == out


def test_after_a_refused_pin_the_real_will_and_birth_still_count() -> None:
    rec = r.apply_status(None, "cam-1", status(t.Presence.ONLINE, NOW_MS), T0).record
    assert r.apply_status(rec, "cam-1", status(t.Presence.ONLINE, PINNING), T0).record is None
    later = T0 + timedelta(minutes=5)
    will = r.apply_status(rec, "cam-1", status(t.Presence.OFFLINE, NOW_MS), later)
    assert will.record is not None
    assert will.record.presence is r.Stored.OFFLINE
    birth = r.apply_status(will.record, "cam-1", status(t.Presence.ONLINE, NOW_MS + 300_000), later)
    assert birth.record is not None
    assert birth.record.presence is r.Stored.ONLINE


def test_a_session_just_inside_the_lead_is_taken() -> None:
    out = r.apply_status(None, "cam-1", status(t.Presence.ONLINE, LIMIT), T0)
    assert out.rejected is None
    assert out.record is not None
    assert out.record.session == LIMIT
    beyond = r.apply_status(None, "cam-1", status(t.Presence.ONLINE, LIMIT + 1), T0)
    assert beyond.rejected == "session_in_future"


def test_small_counters_still_work() -> None:
    """Devices that count sessions 1, 2, 3 (and the tests' raw clients) are unaffected."""
    rec = r.apply_status(None, "cam-1", status(t.Presence.ONLINE, 1), T0).record
    rec = r.apply_status(rec, "cam-1", status(t.Presence.ONLINE, 2), T0).record
    assert r.apply_status(rec, "cam-1", status(t.Presence.OFFLINE, 1), T0).rejected == "stale_will"


def test_a_record_pinned_before_the_check_is_released_by_the_real_device() -> None:
    """A row stored with a future session (before this check existed) makes nothing stale."""
    online = r.apply_status(None, "cam-1", status(t.Presence.ONLINE, NOW_MS), T0).record
    assert online is not None
    pinned = dataclasses.replace(online, session=PINNING)
    will = r.apply_status(pinned, "cam-1", status(t.Presence.OFFLINE, NOW_MS), T0)
    assert will.record is not None
    assert (will.record.presence, will.record.session) == (r.Stored.OFFLINE, NOW_MS)
    birth = r.apply_status(will.record, "cam-1", status(t.Presence.ONLINE, NOW_MS + 1), T0)
    assert birth.record is not None
    assert birth.record.presence is r.Stored.ONLINE
    # and the sweep after a reconnect can still mark such a row offline
    swept = r.mark_silent(pinned, T0 + timedelta(seconds=10), T0 + timedelta(seconds=14))
    assert swept.record is not None
    assert swept.record.presence is r.Stored.OFFLINE


@given(st.integers(0, 2**53), st.sampled_from(list(t.Presence)))
def test_no_session_beyond_the_limit_is_ever_stored(session: int, state: t.Presence) -> None:
    out = r.apply_status(None, "cam-1", status(state, session), T0)
    if session > LIMIT:
        assert out == r.Applied(None, rejected="session_in_future")
    else:
        assert out.rejected is None
        assert out.record is not None
        assert out.record.session == session
