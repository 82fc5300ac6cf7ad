"""The audit log's tailing cursor (pure): its text is decoded strictly, and tailing page after
page returns every entry exactly once however the lanes' transactions interleave, where tailing
by ``after_seq`` skips (the proof is in ``kernel/audit/cursor.py``; this is the model of it)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.audit import cursor as ac
from kernel.audit.chain import MAX_LANE, AuditEntry

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


_cursors = st.dictionaries(
    st.integers(0, MAX_LANE), st.integers(1, ac.MAX_POSITION), max_size=20
).map(lambda d: ac.Cursor(tuple(sorted(d.items()))))


@settings(max_examples=300, deadline=None)
@given(_cursors)
def test_a_cursor_round_trips_through_its_text(cursor: ac.Cursor) -> None:
    text = cursor.encode()
    assert ac.decode(text) == cursor
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len(text) <= ac.MAX_CURSOR_CHARS


def test_the_start_and_the_longest_cursor() -> None:
    assert ac.START.encode() == _b64("1:")
    assert ac.decode(_b64("1:0.12,3.40")) == ac.Cursor(((0, 12), (3, 40)))
    longest = ac.Cursor(tuple((lane, ac.MAX_POSITION) for lane in range(MAX_LANE + 1)))
    assert ac.decode(longest.encode()) == longest
    assert len(longest.encode()) <= ac.MAX_CURSOR_CHARS


@pytest.mark.parametrize(
    "text",
    [
        "",
        _b64("1:") + "=",  # padding
        _b64("1:0.5") + "==",
        "MS4+",  # not the url alphabet
        "MS4/",
        " " + _b64("1:"),
        _b64("1:") + "\n",
        "A",  # a length base64 cannot have
        "MT",  # "1:" with stray low bits in the last character
        _b64("2:0.5"),  # another version
        _b64("1"),
        _b64(":0.5"),
        _b64("1:0.5,"),  # trailing comma
        _b64("1:,0.5"),
        _b64("1:0.5,0.6"),  # a lane twice
        _b64("1:3.5,2.6"),  # lanes not ascending
        _b64("1:256.1"),  # lane out of range
        _b64("1:-1.1"),
        _b64("1:0.0"),  # position 0 is "not named"
        _b64("1:01.5"),  # leading zeros: not the one spelling
        _b64("1:1.05"),
        _b64(f"1:1.{ac.MAX_POSITION + 1}"),
        _b64("1:1.99999999999999999999"),
        _b64("1: 1.5"),
        _b64("1:1.5 "),
        _b64("1:1.５"),  # a fullwidth digit
        "w6k",  # not ascii ("é")
        "A" * (ac.MAX_CURSOR_CHARS + 1),
    ],
)
def test_anything_not_written_by_encode_is_refused(text: str) -> None:
    with pytest.raises(ac.CursorError) as caught:
        ac.decode(text)
    assert (caught.value.http_status, caught.value.code, caught.value.field) == (
        422,
        "bad_cursor",
        "cursor",
    )


def entry(seq: int, lane: int, position: int, subject: str) -> AuditEntry:
    return AuditEntry(
        seq=seq,
        at=T0,
        actor="system",
        action="view.ended",
        subject=subject,
        data={},
        prev_hash="0" * 64,
        hash="0" * 64,
        lane=lane,
        lane_seq=position,
    )


@dataclass
class Log:
    """The store's rules as a model: a writer draws seqs from one sequence while it holds its
    lane's lock and holds it until it commits or rolls back; only committed entries are seen."""

    next_seq: int = 1
    committed: list[AuditEntry] = field(default_factory=list)
    open: dict[int, list[AuditEntry]] = field(default_factory=dict)  # lane -> pending

    def head(self, lane: int) -> int:
        return max((e.position for e in self.committed if e.lane == lane), default=0)

    def begin(self, lane: int, count: int, subject: str) -> None:
        if lane in self.open:
            return  # the lane's lock is taken: this writer would wait
        head = self.head(lane)
        self.open[lane] = [
            entry(self.next_seq + i, lane, head + 1 + i, subject) for i in range(count)
        ]
        self.next_seq += count

    def end(self, lane: int, *, commit: bool) -> None:
        pending = self.open.pop(lane, [])
        if commit:
            self.committed += pending

    def heads(self) -> dict[int, int]:
        return {lane: self.head(lane) for lane in {e.lane for e in self.committed}}


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("begin"), st.integers(0, 3), st.integers(1, 3), st.sampled_from("ab")),
        st.tuples(st.just("commit"), st.integers(0, 3)),
        st.tuples(st.just("rollback"), st.integers(0, 3)),
        st.tuples(st.just("read"), st.integers(1, 4), st.booleans()),
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(_ops, st.sampled_from([None, "rcp-a"]))
def test_tailing_by_cursor_returns_every_entry_once(ops: list[tuple], wanted: str | None) -> None:  # type: ignore[type-arg]
    """Writers in four lanes begin, commit and roll back in any order; a reader tails between
    them (with a subject filter or none), with a commit landing between its read of the heads and
    its page at times. What it read is every committed entry it may see, once, each lane in
    order; tailing by after_seq over the same run reads a subset."""
    log = Log()
    cursor = ac.START
    read: list[AuditEntry] = []
    after_seq = 0
    by_seq: list[AuditEntry] = []

    def sees(e: AuditEntry) -> bool:
        return wanted is None or e.subject == wanted

    def tail(limit: int, commit_between: bool) -> None:
        nonlocal cursor, after_seq
        heads = log.heads()  # read before the page
        if commit_between and log.open:
            log.end(min(log.open), commit=True)
        visible = [e for e in log.committed if sees(e)]
        found = ac.page(cursor, visible, limit)
        assert [e.seq for e in found] == sorted(e.seq for e in found)
        cursor = ac.advance(cursor, found, limit=limit, heads=heads)
        read.extend(found)
        old = sorted((e for e in visible if e.seq > after_seq), key=lambda e: e.seq)[:limit]
        by_seq.extend(old)
        after_seq = old[-1].seq if old else after_seq

    for op in ops:
        if op[0] == "begin":
            log.begin(op[1], op[2], f"rcp-{op[3]}")
        elif op[0] in ("commit", "rollback"):
            log.end(op[1], commit=op[0] == "commit")
        else:
            tail(op[1], op[2])
    for lane in list(log.open):
        log.end(lane, commit=True)
    for _ in range(len(log.committed) + 1):  # drain
        before = len(read)
        tail(3, False)
        if len(read) == before:
            break
    owed = [e for e in log.committed if sees(e)]
    assert sorted(e.seq for e in read) == sorted(e.seq for e in owed)  # all of them, once
    for lane in range(4):
        positions = [e.position for e in read if e.lane == lane]
        assert positions == sorted(positions)
    assert {e.seq for e in by_seq} <= {e.seq for e in owed}


def test_after_seq_skips_an_entry_that_commits_late_and_the_cursor_does_not() -> None:
    """Lane 1 draws seq 1 and holds its transaction open; lane 2 draws seq 2 and commits; a
    reader reads; lane 1 commits. By seq the next read starts after 2: seq 1 is lost."""
    log = Log()
    log.begin(1, 1, "rcp-a")
    log.begin(2, 1, "rcp-b")
    log.end(2, commit=True)
    heads = log.heads()
    first = ac.page(ac.START, log.committed, 10)
    cursor = ac.advance(ac.START, first, limit=10, heads=heads)
    assert [e.seq for e in first] == [2]
    log.end(1, commit=True)
    by_seq = [e.seq for e in log.committed if e.seq > first[-1].seq]
    assert by_seq == []  # the hazard: seq 1 is never read by after_seq
    assert [e.seq for e in ac.page(cursor, log.committed, 10)] == [1]


def test_a_short_page_moves_every_lane_to_its_head_and_a_full_one_only_what_it_read() -> None:
    found = [entry(5, 1, 2, "rcp-a")]
    heads = {0: 7, 1: 4, 2: 9}
    short = ac.advance(ac.Cursor(((1, 1),)), found, limit=2, heads=heads)
    assert short == ac.Cursor(((0, 7), (1, 4), (2, 9)))
    full = ac.advance(ac.Cursor(((1, 1),)), found, limit=1, heads=heads)
    assert full == ac.Cursor(((1, 2),))
    assert ac.advance(ac.Cursor(((1, 6),)), found, limit=1) == ac.Cursor(((1, 6),))


def test_the_entries_before_lanes_are_lane_0_by_seq() -> None:
    old = AuditEntry(
        seq=3,
        at=T0,
        actor="system",
        action="a.b",
        subject=None,
        data={},
        prev_hash="0" * 64,
        hash="0" * 64,
    )
    assert ac.is_after(ac.Cursor(((0, 2),)), old)
    assert not ac.is_after(ac.Cursor(((0, 3),)), old)
    assert ac.advance(ac.START, [old], limit=5) == ac.Cursor(((0, 3),))
