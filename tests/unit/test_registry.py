"""Pure registry state changes: presence by session, quarantine, metadata, health."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from devices import registry as r
from devices import topics as t

T0 = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)


def online(session: int) -> t.Status:
    return t.Status(t.Presence.ONLINE, session)


def test_first_birth_creates_a_quarantined_online_device() -> None:
    out = r.apply_status(None, "cam-1", online(5), T0)
    assert out.record is not None
    assert out.record.quarantined
    assert out.record.presence is r.Stored.ONLINE
    assert out.change == r.PresenceChanged("cam-1", r.Stored.ONLINE, r.Stored.UNKNOWN, 5, T0)


def test_late_will_of_an_older_session_changes_nothing() -> None:
    rec = r.apply_status(None, "cam-1", online(5), T0).record
    rec = r.apply_status(rec, "cam-1", online(6), T0 + timedelta(seconds=1)).record
    late = r.apply_status(rec, "cam-1", t.Status(t.Presence.OFFLINE, 5), T0 + timedelta(seconds=2))
    assert late.record is None
    assert late.change is None
    assert late.rejected == "stale_will"


def test_old_session_birth_is_stale() -> None:
    rec = r.apply_status(None, "cam-1", online(6), T0).record
    assert r.apply_status(rec, "cam-1", online(5), T0).rejected == "stale_session"


def test_will_of_the_current_session_marks_offline() -> None:
    rec = r.apply_status(None, "cam-1", online(5), T0).record
    out = r.apply_status(rec, "cam-1", t.Status(t.Presence.OFFLINE, 5), T0 + timedelta(seconds=9))
    assert out.record is not None
    assert out.record.presence is r.Stored.OFFLINE
    assert out.record.last_seen == T0
    assert out.change is not None
    assert out.change.previous is r.Stored.ONLINE


def test_repeated_birth_only_refreshes_last_seen() -> None:
    rec = r.apply_status(None, "cam-1", online(5), T0).record
    out = r.apply_status(rec, "cam-1", online(5), T0 + timedelta(seconds=3))
    assert out.change is None
    assert out.record is not None
    assert out.record.last_seen == T0 + timedelta(seconds=3)
    assert out.record.presence_since == T0


def test_repeated_offline_changes_nothing() -> None:
    rec = r.apply_status(None, "cam-1", online(5), T0).record
    rec = r.apply_status(rec, "cam-1", t.Status(t.Presence.STOPPED, 5), T0).record
    assert r.apply_status(rec, "cam-1", t.Status(t.Presence.STOPPED, 5), T0).record is None


def test_reconnect_with_newer_session_goes_online() -> None:
    rec = r.apply_status(None, "cam-1", online(5), T0).record
    rec = r.apply_status(rec, "cam-1", t.Status(t.Presence.OFFLINE, 5), T0).record
    out = r.apply_status(rec, "cam-1", online(9), T0)
    assert out.record is not None
    assert out.record.presence is r.Stored.ONLINE
    assert out.record.session == 9


def test_meta_sets_kind_once() -> None:
    meta = t.Meta(t.DeviceKind.CAMERA, "1.0", (t.Capability.VIDEO,))
    rec = r.apply_meta(None, "cam-1", meta, T0).record
    assert rec is not None
    assert rec.kind is t.DeviceKind.CAMERA
    assert rec.quarantined
    phone = t.Meta(t.DeviceKind.VIDEO_PHONE, "1.0", (t.Capability.VIDEO,))
    assert r.apply_meta(rec, "cam-1", phone, T0).rejected == "kind_changed"


def test_health_needs_a_known_device() -> None:
    health = t.Health(uptime_s=10, battery_pct=50)
    assert r.apply_health(None, "cam-1", health, T0).rejected == "unknown_device"
    rec = r.apply_status(None, "cam-1", online(1), T0).record
    out = r.apply_health(rec, "cam-1", health, T0)
    assert out.record is not None
    assert out.record.health == {"uptime_s": 10, "battery_pct": 50, "tamper": False}


def test_silent_device_is_swept_offline_after_reconnect() -> None:
    rec = r.apply_status(None, "cam-1", online(5), T0).record
    assert rec is not None
    since = T0 + timedelta(seconds=10)
    out = r.mark_silent(rec, since, since + timedelta(seconds=4))
    assert out.record is not None
    assert out.record.presence is r.Stored.OFFLINE
    assert out.record.session == 5
    heard = r.apply_status(rec, "cam-1", online(5), since + timedelta(seconds=1)).record
    assert heard is not None
    assert r.mark_silent(heard, since, since + timedelta(seconds=4)).record is None
