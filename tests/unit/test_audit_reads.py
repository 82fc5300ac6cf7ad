"""Audited reads (pure part): the caller's reason and when a read folds into the last entry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel.audit import reads

T0 = datetime(2030, 1, 1, 2, 0, tzinfo=UTC)


def test_a_reason_is_stripped_bounded_and_printable() -> None:
    assert reads.reason(None) is None
    assert reads.reason("  larm 02:10 ") == "larm 02:10"
    assert reads.reason("å" * reads.MAX_WHY) == "å" * reads.MAX_WHY
    for bad in ("", "   ", "x" * (reads.MAX_WHY + 1), "a\nb", "a\x00", "\x7f", "a\ud800"):
        with pytest.raises(reads.BadReason) as refused:
            reads.reason(bad)
        assert (refused.value.http_status, refused.value.code, refused.value.field) == (
            400,
            "bad_query",
            "why",
        )


@given(
    st.integers(min_value=-10_000 * int(reads.FOLD_S), max_value=10_000 * int(reads.FOLD_S)),
    st.sampled_from([None, "a", "b"]),
    st.sampled_from([None, "a", "b"]),
)
def test_a_read_folds_only_with_the_same_reason_inside_the_window(
    after_ms: int, last_why: str | None, why: str | None
) -> None:
    last = reads.read_data("GET /x", last_why)
    now = reads.read_data("GET /x", why)
    at = T0 + timedelta(milliseconds=after_ms)
    expected = last_why == why and 0 <= after_ms < 1000 * reads.FOLD_S
    assert reads.folds(T0, last, at=at, data=now) is expected
    assert reads.folds(None, None, at=at, data=now) is False


def test_read_data_names_the_route_and_the_reason_only_when_given() -> None:
    assert reads.read_data("GET /api/x", None, count=2) == {"route": "GET /api/x", "count": 2}
    assert reads.read_data("GET /api/x", "w") == {"route": "GET /api/x", "why": "w"}
