"""Issue 21 (pure): device messages shared between processes may be applied out of arrival
order; within a session the contract orders them (a device's own offline or stopped ends its
session; an older health report changes nothing), and the sweep's offline does not end it."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from devices import registry as r
from devices import topics as t

T0 = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)
S = int(T0.timestamp() * 1000)


def run(messages: list[t.Status], start: r.DeviceRecord | None = None) -> r.DeviceRecord | None:
    rec = start
    for i, m in enumerate(messages):
        out = r.apply_status(rec, "cam-1", m, T0 + timedelta(seconds=i))
        rec = out.record or rec
    return rec


def test_a_sessions_will_wins_in_any_order_against_its_re_announces() -> None:
    online = t.Status(t.Presence.ONLINE, S)
    will = t.Status(t.Presence.OFFLINE, S)
    for order in itertools.permutations([online, online, will]):
        rec = run(list(order))
        assert rec is not None
        assert rec.presence is r.Stored.OFFLINE, order
        assert rec.session_ended


def test_an_online_of_an_ended_session_is_stale_and_a_new_session_counts() -> None:
    rec = run([t.Status(t.Presence.ONLINE, S), t.Status(t.Presence.STOPPED, S)])
    late = r.apply_status(rec, "cam-1", t.Status(t.Presence.ONLINE, S), T0)
    assert late == r.Applied(None, rejected="stale_session")
    again = r.apply_status(rec, "cam-1", t.Status(t.Presence.ONLINE, S + 1), T0)
    assert again.record is not None
    assert again.record.is_online
    assert not again.record.session_ended


def test_the_sweeps_offline_leaves_the_session_open_for_a_late_re_announce() -> None:
    rec = run([t.Status(t.Presence.ONLINE, S)])
    assert rec is not None
    swept = r.mark_silent(rec, since=T0 + timedelta(minutes=1), at=T0 + timedelta(minutes=1))
    assert swept.record is not None
    assert swept.record.presence is r.Stored.OFFLINE
    assert not swept.record.session_ended
    back = r.apply_status(swept.record, "cam-1", t.Status(t.Presence.ONLINE, S), T0)
    assert back.record is not None
    assert back.record.is_online


def test_an_older_health_report_after_a_newer_one_changes_nothing() -> None:
    rec = run([t.Status(t.Presence.ONLINE, S)])
    newer = t.Health(uptime_s=20, ts=T0.timestamp() + 20)
    older = t.Health(uptime_s=10, ts=T0.timestamp() + 10)
    after_newer = r.apply_health(rec, "cam-1", newer, T0).record
    assert after_newer is not None
    assert r.apply_health(after_newer, "cam-1", older, T0) == r.Applied(None)
    undated = r.apply_health(after_newer, "cam-1", t.Health(uptime_s=30), T0).record
    assert undated is not None
    assert undated.health == {"uptime_s": 30, "tamper": False}
