"""Retention selection and erasure planning (pure): cutoffs per class, who is due for erasure,
batches, every text column placed, and what ends when a brukare's service ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent import ending_rules as er
from services import retention_rules as rr
from services.retention import next_run, policy_of
from services.settings import Settings

NOW = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)
POLICY = rr.Policy(
    {
        rr.DataClass.VIEW_LOG: 1826,
        rr.DataClass.CHECK_RECORDS: 1826,
        rr.DataClass.NOTES: 365,
        rr.DataClass.DEVICE_HEALTH: 90,
        rr.DataClass.SESSIONS: 30,
        rr.DataClass.ENDED_RECIPIENTS: 1826,
    }
)


def test_cutoffs_are_now_minus_each_retention() -> None:
    cut = rr.cutoffs(POLICY, NOW)
    assert cut[rr.DataClass.SESSIONS] == NOW - timedelta(days=30)
    assert cut[rr.DataClass.NOTES] == NOW - timedelta(days=365)
    assert set(cut) == set(rr.DataClass)
    with pytest.raises(ValueError, match="aware"):
        rr.cutoffs(POLICY, NOW.replace(tzinfo=None))


def test_a_policy_names_every_class_and_no_negative_days() -> None:
    with pytest.raises(ValueError, match="no retention"):
        rr.Policy({rr.DataClass.NOTES: 1})
    with pytest.raises(ValueError, match="negative"):
        rr.Policy({**POLICY.days, rr.DataClass.NOTES: -1})


def test_the_settings_defaults_are_the_documented_policy() -> None:
    assert policy_of(Settings()) == POLICY


def test_due_for_erasure_is_ended_long_enough_ago_and_not_yet_erased() -> None:
    day = timedelta(days=1)
    limit = NOW - 1826 * day
    ended = [
        rr.EndedRecipient("r-late", limit + day),  # not yet
        rr.EndedRecipient("r-b", limit),  # exactly the retention: due
        rr.EndedRecipient("r-a", limit - 10 * day),  # long ago: due, first
        rr.EndedRecipient("r-done", limit - 20 * day, erased_at=limit),  # already erased
    ]
    assert rr.due_for_erasure(ended, POLICY, NOW) == ["r-a", "r-b"]
    assert rr.due_for_erasure([], POLICY, NOW) == []


@given(
    ended=st.lists(
        st.tuples(st.integers(0, 4000), st.booleans()), max_size=20, unique_by=lambda t: t[0]
    ),
    days=st.integers(0, 3650),
)
def test_due_for_erasure_agrees_with_a_naive_reading(
    ended: list[tuple[int, bool]], days: int
) -> None:
    policy = rr.Policy({**POLICY.days, rr.DataClass.ENDED_RECIPIENTS: days})
    people = [
        rr.EndedRecipient(f"r-{ago}", NOW - timedelta(days=ago), NOW if erased else None)
        for ago, erased in ended
    ]
    due = set(rr.due_for_erasure(people, policy, NOW))
    assert due == {f"r-{ago}" for ago, erased in ended if not erased and ago >= days}


def test_batches_split_a_job_into_transactions() -> None:
    assert rr.batches(2500, 1000) == [1000, 1000, 500]
    assert rr.batches(1000, 1000) == [1000]
    assert rr.batches(0, 1000) == []
    with pytest.raises(ValueError):
        rr.batches(10, 0)


def test_sweeps_delete_a_checks_steps_and_alarms_before_the_check() -> None:
    order = [(s.data_class, s.table) for s in rr.SWEEPS]
    checks = order.index((rr.DataClass.CHECK_RECORDS, "round_checks"))
    assert order.index((rr.DataClass.CHECK_RECORDS, "round_transitions")) < checks
    assert order.index((rr.DataClass.CHECK_RECORDS, "round_alarms")) < checks
    # Notes are blanked before any class deletes rows (a note never outlives its own limit).
    assert all(s.action is rr.Action.BLANK for s in rr.SWEEPS[:3])
    assert {s.data_class for s in rr.SWEEPS} == set(rr.DataClass) - {rr.DataClass.ENDED_RECIPIENTS}
    for s in rr.SWEEPS:
        assert "$1" in s.where
        assert (s.action is rr.Action.BLANK) == bool(s.assign)


def test_every_text_column_must_be_placed() -> None:
    assert rr.unplaced([("care_recipients", "display_name"), ("devices", "device_id")]) == []
    assert rr.unplaced([("new_table", "free_text")]) == [("new_table", "free_text")]
    # A column cannot be both erased and declared not personal.
    assert not set(rr.PERSONAL_TEXT) & set(rr.NOT_PERSONAL_COLUMNS)
    assert not {c for _, c in rr.PERSONAL_TEXT} & set(rr.NOT_PERSONAL_TEXT)


def test_the_job_runs_at_the_hour_local_time() -> None:
    zone = ZoneInfo("Europe/Stockholm")
    at = next_run(datetime(2026, 6, 1, 0, 30, tzinfo=UTC), zone, 3)  # 02:30 local
    assert at == datetime(2026, 6, 1, 3, 0, tzinfo=zone)
    after = next_run(datetime(2026, 6, 1, 1, 0, tzinfo=UTC), zone, 3)  # 03:00 local: tomorrow
    assert after == datetime(2026, 6, 2, 3, 0, tzinfo=zone)


# --- a brukare's service ends -------------------------------------------------------------


def test_an_end_is_neither_in_the_future_nor_before_registration() -> None:
    made = NOW - timedelta(days=100)
    assert er.validate_end(ended_at=NOW, at=NOW, created_at=made) == []
    codes = [
        p.code
        for p in er.validate_end(ended_at=NOW + timedelta(seconds=1), at=NOW, created_at=made)
    ]
    assert codes == ["in_future"]
    codes = [
        p.code for p in er.validate_end(ended_at=made - timedelta(days=1), at=NOW, created_at=made)
    ]
    assert codes == ["before_registered"]
    naive = er.validate_end(ended_at=NOW.replace(tzinfo=None), at=NOW, created_at=None)
    assert [p.field for p in naive] == ["ended_at"]


def test_what_ends_with_the_service() -> None:
    h = timedelta(hours=1)
    periods = [
        er.Period("over", NOW - 10 * h, NOW - 5 * h),  # already over: left alone
        er.Period("open", NOW - 10 * h, None),  # open: ends at the end
        er.Period("later", NOW + 5 * h, None),  # still to come: ends at its own start
        er.Period("running", NOW - h, NOW + h),  # would run on: ends at the end
        er.Period("exactly", NOW - h, NOW),  # ends at that instant anyway
    ]
    assert er.to_end(periods, NOW) == [
        ("later", NOW + 5 * h),
        ("open", NOW),
        ("running", NOW),
    ]
    assert {r.value for r in er.EndReason} == {"discharged", "deceased", "moved"}
