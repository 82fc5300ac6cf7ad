"""The pure audit chain: canonical JSON, normalisation, hashing and verification."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel.audit.chain import (
    GENESIS_HASH,
    AuditDataError,
    AuditEntry,
    BreakReason,
    canonical_json,
    entry_hash,
    next_entry,
    normalise_data,
    verify_chain,
)

T0 = datetime(2025, 3, 30, 0, 59, 59, 123456, tzinfo=UTC)


def chain(n: int) -> list[AuditEntry]:
    out: list[AuditEntry] = []
    prev_seq, prev_hash = 0, GENESIS_HASH
    for i in range(n):
        e = next_entry(
            prev_seq=prev_seq,
            prev_hash=prev_hash,
            at=T0 + timedelta(seconds=i),
            actor="staff-abc123",
            action="view.ended",
            subject=f"rcp-{i}",
            data={"duration_s": 12.5, "reason": "timeout", "i": i},
        )
        out.append(e)
        prev_seq, prev_hash = e.seq, e.hash
    return out


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert (
        canonical_json({"b": 1, "a": [1, "å"], "c": None})
        == '{"a":[1,"å"],"b":1,"c":null}'.encode()
    )


def test_canonical_json_refuses_nan() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


class Kind(StrEnum):
    A = "a"


@pytest.mark.parametrize(
    ("given_data", "expected"),
    [
        ({"x": 1.0}, {"x": 1}),
        ({"x": -0.0}, {"x": 0}),
        ({"x": 1e300}, {"x": int(1e300)}),
        ({"x": 0.1}, {"x": 0.1}),
        ({"x": (1, 2)}, {"x": [1, 2]}),
        ({"x": Kind.A}, {"x": "a"}),
        ({"x": True, "y": None}, {"x": True, "y": None}),
        (
            {"at": datetime(2025, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))},
            {"at": "2025-01-01T00:00:00.000000+00:00"},
        ),
        ({"nested": {"k": [1.5, {"z": 2.0}]}}, {"nested": {"k": [1.5, {"z": 2}]}}),
    ],
)
def test_normalise_data(given_data: dict[str, Any], expected: dict[str, Any]) -> None:
    out = normalise_data(given_data)
    assert out == expected
    assert type(out.get("x")) is type(expected.get("x"))


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"x": float("inf")}, "data.x"),
        ({"x": float("nan")}, "data.x"),
        ({"x": "a\x00b"}, "data.x"),
        ({"x": "\ud800"}, "data.x"),
        ({"x": b"frame"}, "data.x"),
        ({"x": {1: 2}}, "data.x"),
        ({"name": "Anna Svensson"}, "data.name"),
        ({"inner": {"Display_Name": "Anna"}}, "data.inner.Display_Name"),
        ({"password": "x"}, "data.password"),
        ({"x": datetime(2025, 1, 1)}, "at"),
        ({"x": "y" * 9000}, "data"),
    ],
)
def test_normalise_refuses(bad: dict[str, Any], field: str) -> None:
    with pytest.raises(AuditDataError) as info:
        normalise_data(bad)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("actor", "action", "subject", "field"),
    [
        ("", "view.ended", None, "actor"),
        ("Anna Svensson", "view.ended", None, "actor"),
        ("system", "ended", None, "action"),
        ("system", "View.Ended", None, "action"),
        ("system", "view.ended", "has space", "subject"),
        ("system", "view.ended", "", "subject"),
    ],
)
def test_bad_fields_refused(actor: str, action: str, subject: str | None, field: str) -> None:
    with pytest.raises(AuditDataError) as info:
        next_entry(
            prev_seq=0,
            prev_hash=GENESIS_HASH,
            at=T0,
            actor=actor,
            action=action,
            subject=subject,
            data={},
        )
    assert info.value.field == field


def test_naive_time_refused() -> None:
    with pytest.raises(AuditDataError):
        next_entry(
            prev_seq=0,
            prev_hash=GENESIS_HASH,
            at=datetime(2025, 1, 1),
            actor="system",
            action="a.b",
            subject=None,
            data={},
        )


def test_hash_does_not_depend_on_timezone_or_key_order() -> None:
    cet = T0.astimezone(timezone(timedelta(hours=2)))
    a = entry_hash(
        seq=1,
        at=T0,
        actor="system",
        action="a.b",
        subject=None,
        data={"x": 1, "y": 2},
        prev_hash=GENESIS_HASH,
    )
    b = entry_hash(
        seq=1,
        at=cet,
        actor="system",
        action="a.b",
        subject=None,
        data={"y": 2, "x": 1},
        prev_hash=GENESIS_HASH,
    )
    assert a == b
    assert len(a) == 64


def test_first_entry_links_to_genesis() -> None:
    first = chain(1)[0]
    assert first.seq == 1
    assert first.prev_hash == GENESIS_HASH


def test_intact_chain_verifies() -> None:
    result = verify_chain(chain(5))
    assert result.ok
    assert result.checked == 5
    assert result.first_broken_seq is None
    assert verify_chain([]).ok


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("actor", "staff-other1"),
        ("action", "view.started"),
        ("subject", "rcp-x"),
        ("subject", None),
        ("data", {"duration_s": 9999, "reason": "timeout", "i": 2}),
        ("at", T0 + timedelta(hours=1)),
    ],
)
def test_changed_field_is_caught_at_that_entry(field: str, value: Any) -> None:
    entries = chain(5)
    entries[2] = dataclasses.replace(entries[2], **{field: value})
    result = verify_chain(entries)
    assert not result.ok
    assert result.first_broken_seq == 3
    assert result.reason == BreakReason.HASH_MISMATCH


def test_rehashed_entry_breaks_the_next_link() -> None:
    entries = chain(5)
    forged = next_entry(
        prev_seq=2,
        prev_hash=entries[1].hash,
        at=T0,
        actor="system",
        action="view.ended",
        subject="rcp-2",
        data={"forged": True},
    )
    entries[2] = forged
    result = verify_chain(entries)
    assert result.first_broken_seq == 4
    assert result.reason == BreakReason.PREV_HASH_MISMATCH


def test_removed_entry_is_a_gap() -> None:
    entries = chain(5)
    del entries[1]
    result = verify_chain(entries)
    assert result.first_broken_seq == 2
    assert result.reason is not None
    assert result.reason.startswith(BreakReason.SEQ_GAP)


def test_swapped_entries_are_caught() -> None:
    entries = chain(5)
    entries[1], entries[2] = entries[2], entries[1]
    assert verify_chain(entries).first_broken_seq == 2


def test_bad_hash_format_is_caught() -> None:
    entries = chain(2)
    entries[0] = dataclasses.replace(entries[0], hash=entries[0].hash.upper())
    assert verify_chain(entries).first_broken_seq == 1


def test_summary_names_the_broken_seq() -> None:
    entries = chain(3)
    entries[1] = dataclasses.replace(entries[1], actor="system")
    assert "seq 2" in verify_chain(entries).summary()
    assert "3 entries" in verify_chain(chain(3)).summary()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{2,7}", fullmatch=True), children, max_size=4
        )
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.sampled_from(["a", "bb", "level", "zone"]), json_values, max_size=4))
def test_normalised_data_round_trips_through_json(data: dict[str, Any]) -> None:
    try:
        clean = normalise_data(data)
    except AuditDataError:
        return  # NUL, surrogates, forbidden keys, oversize: refused, never half-written
    again = normalise_data(json.loads(json.dumps(clean)))
    assert canonical_json(again) == canonical_json(clean)
    kwargs: dict[str, Any] = {
        "seq": 1,
        "at": T0,
        "actor": "system",
        "action": "a.b",
        "subject": None,
        "prev_hash": GENESIS_HASH,
    }
    assert entry_hash(data=clean, **kwargs) == entry_hash(data=again, **kwargs)
