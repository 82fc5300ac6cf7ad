"""The audit chain in lanes (pure): each lane verifies on its own, any change in any lane is caught
and named by its lane, the chain before lanes goes on as lane 0, and anchors sign the join of
every lane's head so a rewrite or a cut tail in any lane is caught."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest

from kernel.audit import anchor as A
from kernel.audit.chain import (
    GENESIS_HASH,
    LANES,
    AuditEntry,
    BreakReason,
    lane_of,
    next_entry,
    next_lane_entry,
    verify_chain,
)

T0 = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
KEY = A.new_key()


def lanes(per_lane: dict[int, int], *, legacy: int = 0) -> list[AuditEntry]:
    """``legacy`` entries of the form before lanes, then ``per_lane[lane]`` laned entries per
    lane, written round-robin (ids interleave across lanes as they do in the database)."""
    out: list[AuditEntry] = []
    heads: dict[int, tuple[int, str]] = {}
    seq = 0
    for i in range(legacy):
        prev_seq, prev_hash = heads.get(0, (0, GENESIS_HASH))
        e = next_entry(
            prev_seq=prev_seq,
            prev_hash=prev_hash,
            at=T0,
            actor="system",
            action="check.planned",
            subject=f"rcp-old{i}",
            data={"i": i},
        )
        out.append(e)
        heads[0] = (e.seq, e.hash)
        seq = e.seq
    left = dict(per_lane)
    while any(left.values()):
        for lane in sorted(left):
            if not left[lane]:
                continue
            left[lane] -= 1
            seq += 1
            prev_seq, prev_hash = heads.get(lane, (0, GENESIS_HASH))
            e = next_lane_entry(
                seq=seq,
                lane=lane,
                prev_lane_seq=prev_seq,
                prev_hash=prev_hash,
                at=T0 + timedelta(seconds=seq),
                actor="staff-abc123",
                action="view.ended",
                subject=f"rcp-{lane}",
                data={"seq": seq},
            )
            out.append(e)
            heads[lane] = (e.position, e.hash)
    return out


def lane_order(entries: Iterable[AuditEntry]) -> list[AuditEntry]:
    """As the store streams them: lane by lane, each in its order."""
    return sorted(entries, key=lambda e: (e.lane, e.position))


def test_lane_of_is_stable_and_spreads_subjects() -> None:
    assert lane_of(subject="rcp-1", actor="a") == lane_of(subject="rcp-1", actor="b")
    assert lane_of(subject=None, actor="staff-1") == lane_of(subject=None, actor="staff-1")
    spread = {lane_of(subject=f"rcp-{i}", actor="system") for i in range(1000)}
    assert spread == set(range(LANES))
    assert lane_of(subject="rcp-1", actor="a", lanes=1) == 0
    with pytest.raises(ValueError):
        lane_of(subject="rcp-1", actor="a", lanes=0)


def test_lanes_verify_in_any_interleaving() -> None:
    entries = lanes({0: 3, 4: 5, 11: 2}, legacy=4)
    for order in (entries, lane_order(entries)):
        result = verify_chain(order)
        assert (result.ok, result.checked, result.lanes) == (True, 14, 3)
    assert "14 entries verified in 3 lanes" in verify_chain(entries).summary()


def where(entries: list[AuditEntry]) -> tuple[int | None, int | None, str]:
    result = verify_chain(lane_order(entries))
    assert not result.ok
    assert result.reason is not None
    return result.lane, result.first_broken_seq, result.reason.split(":")[0]


def at(entries: list[AuditEntry], lane: int, lane_seq: int) -> int:
    return next(i for i, e in enumerate(entries) if (e.lane, e.position) == (lane, lane_seq))


@pytest.mark.parametrize("lane", [0, 4, 11])
def test_each_change_in_any_lane_is_caught_in_that_lane(lane: int) -> None:
    base = lanes({0: 3, 4: 5, 11: 5}, legacy=2)
    second = 4 if lane == 0 else 2  # lane 0's third laned entry follows two legacy ones
    i = at(base, lane, second)

    modified = list(base)
    modified[i] = dataclasses.replace(base[i], data={"seq": 999})
    assert where(modified) == (lane, second, BreakReason.HASH_MISMATCH)

    deleted = [e for j, e in enumerate(base) if j != i]
    assert where(deleted) == (lane, second, BreakReason.SEQ_GAP)

    forged = next_lane_entry(
        seq=999,
        lane=lane,
        prev_lane_seq=base[i].position - 1,
        prev_hash=base[i].prev_hash,
        at=T0,
        actor="system",
        action="view.ended",
        subject="rcp-forged",
        data={},
    )
    inserted = [*base[:i], forged, *[_shift(e) if e.lane == lane else e for e in base[i:]]]
    assert where(inserted) == (lane, second + 1, BreakReason.PREV_HASH_MISMATCH)

    j = at(base, lane, second + 1)
    swapped = list(base)
    swapped[i], swapped[j] = (
        dataclasses.replace(base[j], lane_seq=second),
        dataclasses.replace(base[i], lane_seq=second + 1),
    )
    assert where(swapped) == (lane, second, BreakReason.PREV_HASH_MISMATCH)


def _shift(e: AuditEntry) -> AuditEntry:
    """The entry renumbered one place on (what an insertion before it would have to do)."""
    return dataclasses.replace(e, lane_seq=e.position + 1)


def test_an_entry_moved_to_another_lane_or_renumbered_breaks() -> None:
    base = lanes({4: 3, 11: 3})
    i = at(base, 4, 3)  # the last of lane 4: moved to the end of lane 11
    last11 = base[at(base, 11, 3)]
    moved = list(base)
    moved[i] = dataclasses.replace(base[i], lane=11, lane_seq=4, prev_hash=last11.hash)
    assert where(moved) == (11, 4, BreakReason.HASH_MISMATCH)
    renumbered = list(base)
    renumbered[i] = dataclasses.replace(base[i], seq=12345)
    assert where(renumbered) == (4, 3, BreakReason.HASH_MISMATCH)


def test_the_form_before_lanes_only_begins_lane_0() -> None:
    old = next_entry(
        prev_seq=0,
        prev_hash=GENESIS_HASH,
        at=T0,
        actor="system",
        action="check.planned",
        subject=None,
        data={},
    )
    assert verify_chain([old]).ok
    assert where([dataclasses.replace(old, lane=5)])[2] == BreakReason.FORM_MISMATCH
    after = lanes({0: 1})
    late = next_entry(
        prev_seq=1,
        prev_hash=after[0].hash,
        at=T0,
        actor="system",
        action="check.planned",
        subject=None,
        data={},
    )
    assert where([*after, dataclasses.replace(late, seq=2)])[2] == BreakReason.FORM_MISMATCH


# --- anchors of the join ------------------------------------------------------------------


def heads_of(entries: list[AuditEntry]) -> list[A.Head]:
    last: dict[int, tuple[int, str]] = {0: (0, GENESIS_HASH)}
    for e in entries:
        last[e.lane] = (e.position, e.hash)
    return [(lane, s, h) for lane, (s, h) in sorted(last.items())]


def positions(entries: list[AuditEntry]) -> list[tuple[int, int, str]]:
    return [(e.lane, e.position, e.hash) for e in lane_order(entries)]


def test_a_join_anchor_signs_every_lane_and_reads_back() -> None:
    entries = lanes({4: 2, 11: 1}, legacy=2)
    anchor = A.sign_heads(KEY, heads=heads_of(entries), at=T0)
    assert anchor.v == 2
    assert [(lane, s) for lane, s, _ in anchor.heads] == [(0, 2), (4, 2), (11, 1)]
    assert anchor.seq == 5  # entries covered
    assert anchor.hash == A.join_digest(anchor.heads)
    assert anchor.message().startswith(A.DOMAIN_V2)
    again = A.decode(anchor.encode())
    assert again == anchor
    A.check(again, {anchor.key_id: KEY.public_key()})
    forged = json.loads(anchor.encode()) | {"heads": [[0, 2, anchor.heads[0][2]], [4, 1, "a" * 64]]}
    with pytest.raises(A.AnchorError, match="signature"):
        A.check(A.decode(json.dumps(forged)), {anchor.key_id: KEY.public_key()})


GOOD = A.sign_heads(KEY, heads=[(0, 0, GENESIS_HASH), (3, 1, "b" * 64)], at=T0).to_json()


@pytest.mark.parametrize(
    "heads",
    [
        [],
        [[3, 1, "b" * 64]],  # no lane 0
        [[0, 0, GENESIS_HASH], [3, 1, "b" * 64], [3, 2, "c" * 64]],  # a lane twice
        [[0, 0, GENESIS_HASH], [5, 1, "b" * 64], [3, 1, "c" * 64]],  # not ascending
        [[0, 0, GENESIS_HASH], [256, 1, "b" * 64]],
        [[0, 0, GENESIS_HASH], [3, 0, "b" * 64]],  # an empty lane has the genesis hash
        [[0, 0, GENESIS_HASH], [3, 1]],
        [[0, 0, GENESIS_HASH], [True, 1, "b" * 64]],
        "0,0",
    ],
)
def test_decode_refuses_bad_heads(heads: object) -> None:
    with pytest.raises(A.AnchorError):
        A.decode(json.dumps(GOOD | {"heads": heads}))
    with pytest.raises(A.AnchorError):
        A.decode(json.dumps(GOOD | {"seq": 1}))  # fields of version 1 in version 2


def test_join_anchors_catch_a_rewrite_or_a_cut_in_any_lane() -> None:
    entries = lanes({4: 6, 11: 6}, legacy=3)
    first = A.sign_heads(KEY, heads=heads_of(entries[:9]), at=T0)  # lane 4 at 3, 11 at 3
    second = A.sign_heads(KEY, heads=heads_of(entries), at=T0 + timedelta(minutes=1))
    ok = A.compare_lanes(positions(entries), [first, second])
    assert ok.ok, ok.summary()
    assert ok.summary().startswith("audit anchors ok: 2 anchors match the chain's 3 lanes")

    # lane 11 from lane seq 5 rewritten with recomputed hashes: its own chain verifies
    rewritten = _rewrite(entries, lane=11, from_seq=5)
    assert verify_chain(rewritten).ok
    bad = A.compare_lanes(positions(rewritten), [first, second])
    assert (bad.ok, bad.lane, bad.first_bad_seq, bad.anchor_seq, bad.reason) == (
        False,
        11,
        4,
        6,
        "rewritten",
    )
    assert bad.summary().startswith("audit anchors BROKEN in lane 11 from seq 4")

    # lane 4 cut after lane seq 4: only the anchors can tell
    cut = [e for e in entries if not (e.lane == 4 and e.position > 4)]
    assert verify_chain(cut).ok
    bad = A.compare_lanes(positions(cut), [first, second])
    assert (bad.lane, bad.first_bad_seq, bad.anchor_seq, bad.reason) == (4, 4, 6, "missing")
    assert "the lane ends at seq 4" in bad.summary()

    # a whole lane gone
    gone = [e for e in entries if e.lane != 11]
    bad = A.compare_lanes(positions(gone), [first, second])
    assert (bad.lane, bad.first_bad_seq, bad.reason) == (11, 1, "missing")

    # no anchors: nothing is anchored
    assert not A.compare_lanes(positions(entries), []).ok


def test_anchors_from_before_lanes_still_hold_lane_0() -> None:
    entries = lanes({0: 2, 4: 2}, legacy=5)
    old = A.sign(KEY, seq=5, hash=entries[4].hash, at=T0)  # version 1: the old chain's head
    assert old.heads == ((0, 5, entries[4].hash),)
    new = A.sign_heads(KEY, heads=heads_of(entries), at=T0 + timedelta(minutes=1))
    assert A.compare_lanes(positions(entries), [old, new]).ok
    rewritten = _rewrite(entries, lane=0, from_seq=3)
    bad = A.compare_lanes(positions(rewritten), [old, new])
    assert (bad.lane, bad.first_bad_seq, bad.anchor_seq) == (0, 1, 5)


def _rewrite(entries: list[AuditEntry], *, lane: int, from_seq: int) -> list[AuditEntry]:
    """What an insider could do: change ``lane`` from ``from_seq`` on and recompute its hashes
    (old-form entries stay old-form)."""
    out: list[AuditEntry] = []
    prev: str | None = None
    for e in lane_order(entries):
        if e.lane != lane or e.position < from_seq:
            out.append(e)
            if e.lane == lane:
                prev = e.hash
            continue
        assert prev is not None
        if e.lane_seq is None:
            new = next_entry(
                prev_seq=e.seq - 1,
                prev_hash=prev,
                at=e.at,
                actor=e.actor,
                action=e.action,
                subject="rcp-forged",
                data=e.data,
            )
        else:
            new = next_lane_entry(
                seq=e.seq,
                lane=e.lane,
                prev_lane_seq=e.lane_seq - 1,
                prev_hash=prev,
                at=e.at,
                actor=e.actor,
                action=e.action,
                subject="rcp-forged",
                data=e.data,
            )
        out.append(new)
        prev = new.hash
    return out
