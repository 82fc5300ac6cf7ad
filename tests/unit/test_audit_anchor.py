"""Audit anchors (pure): the signed format, its strict reading, and the comparison with the chain
that says which entries a rewrite or a cut can be pinned to."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from kernel.audit import anchor as A
from kernel.audit.chain import GENESIS_HASH, next_entry

T0 = datetime(2026, 2, 3, 1, 2, 3, 456789, tzinfo=UTC)
KEY = A.new_key()
KEYS = {A.key_id(KEY.public_key()): KEY.public_key()}


def chain(n: int, *, salt: str = "") -> list[tuple[int, str]]:
    """(seq, hash) of ``n`` real chain entries; ``salt`` makes a different history."""
    out: list[tuple[int, str]] = []
    prev_seq, prev_hash = 0, GENESIS_HASH
    for i in range(n):
        e = next_entry(
            prev_seq=prev_seq,
            prev_hash=prev_hash,
            at=T0,
            actor="system",
            action="check.planned",
            subject=f"rcp-{i}",
            data={"i": i, "salt": salt},
        )
        out.append((e.seq, e.hash))
        prev_seq, prev_hash = e.seq, e.hash
    return out


def anchor_of(pairs: list[tuple[int, str]], seq: int) -> A.Anchor:
    digest = GENESIS_HASH if seq == 0 else dict(pairs)[seq]
    return A.sign(KEY, seq=seq, hash=digest, at=T0 + timedelta(seconds=seq))


def test_sign_encode_decode_and_check() -> None:
    pairs = chain(3)
    a = anchor_of(pairs, 3)
    assert a.seq == 3
    assert a.hash == pairs[2][1]
    assert a.at == "2026-02-03T01:02:06.456789+00:00"
    assert a.key_id == A.key_id(KEY.public_key())
    assert len(a.key_id) == 16
    line = a.encode()
    assert json.loads(line) == {
        "v": 1,
        "seq": 3,
        "hash": a.hash,
        "at": a.at,
        "key_id": a.key_id,
        "sig": a.sig,
    }
    assert b"\n" not in line
    assert b" " not in line
    again = A.decode(line)
    assert again == a
    A.check(again, KEYS)  # holds


def test_the_time_is_written_in_utc() -> None:
    cet = timezone(timedelta(hours=1))
    a = A.sign(KEY, seq=0, hash=GENESIS_HASH, at=datetime(2026, 2, 3, 2, 0, tzinfo=cet))
    assert a.at == "2026-02-03T01:00:00.000000+00:00"
    with pytest.raises(A.AnchorError):
        A.sign(KEY, seq=1, hash="a" * 64, at=datetime(2026, 2, 3))  # naive


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 4},
        {"hash": "f" * 64},
        {"at": "2026-02-03T01:02:07.456789+00:00"},
    ],
)
def test_any_changed_field_breaks_the_signature(change: dict[str, object]) -> None:
    a = anchor_of(chain(3), 3)
    forged = A.decode(json.dumps(a.to_json() | change))
    with pytest.raises(A.AnchorError, match="signature does not hold"):
        A.check(forged, KEYS)


def test_another_key_is_unknown_and_cannot_pass_as_ours() -> None:
    other = A.new_key()
    a = A.sign(other, seq=0, hash=GENESIS_HASH, at=T0)
    with pytest.raises(A.AnchorError, match="unknown key"):
        A.check(a, KEYS)
    # relabelled with our key id, the other key's signature still fails
    forged = A.decode(json.dumps(a.to_json() | {"key_id": next(iter(KEYS))}))
    with pytest.raises(A.AnchorError, match="signature"):
        A.check(forged, KEYS)


def test_the_signature_is_domain_separated() -> None:
    a = anchor_of(chain(1), 1)
    assert a.message().startswith(A.DOMAIN)
    # the same fields signed without the prefix do not verify
    bare = KEY.sign(a.message()[len(A.DOMAIN) :]).hex()
    with pytest.raises(A.AnchorError):
        A.check(A.decode(json.dumps(a.to_json() | {"sig": bare})), KEYS)


GOOD = anchor_of(chain(2), 2).to_json()


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"not json",
        b"[1]",
        json.dumps({k: v for k, v in GOOD.items() if k != "sig"}).encode(),
        json.dumps(GOOD | {"extra": 1}).encode(),
        json.dumps(GOOD | {"v": 2}).encode(),
        json.dumps(GOOD | {"v": True}).encode(),
        json.dumps(GOOD | {"seq": -1}).encode(),
        json.dumps(GOOD | {"seq": True}).encode(),
        json.dumps(GOOD | {"seq": "2"}).encode(),
        json.dumps(GOOD | {"hash": "A" * 64}).encode(),
        json.dumps(GOOD | {"hash": "a" * 63}).encode(),
        json.dumps(GOOD | {"seq": 0}).encode(),  # seq 0 has the genesis hash only
        json.dumps(GOOD | {"at": "2026-02-03T01:02:05"}).encode(),  # naive
        json.dumps(GOOD | {"at": "2026-02-03T02:02:05.456789+01:00"}).encode(),  # not UTC form
        json.dumps(GOOD | {"key_id": "xyz"}).encode(),
        json.dumps(GOOD | {"sig": "00"}).encode(),
        b"\xff\xfe",
    ],
)
def test_decode_refuses_anything_but_the_exact_form(text: bytes) -> None:
    with pytest.raises(A.AnchorError):
        A.decode(text)


def test_keys_round_trip_through_pem() -> None:
    pem = A.private_pem(KEY)
    assert A.key_id(A.load_private(pem).public_key()) == next(iter(KEYS))
    assert A.key_id(A.load_public(A.public_pem(KEY.public_key()))) == next(iter(KEYS))
    assert A.key_id(A.load_public(pem)) == next(iter(KEYS))  # the public half of a private key
    with pytest.raises(A.AnchorError):
        A.load_private(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(A.AnchorError):
        A.load_public(b"hello")


# --- the comparison -----------------------------------------------------------------------


def test_a_chain_that_matches_every_anchor() -> None:
    pairs = chain(30)
    anchors = [anchor_of(pairs, s) for s in (0, 10, 10, 20, 25)]  # a repeated head is fine
    result = A.compare(pairs, anchors)
    assert result.ok
    assert (result.anchors, result.last_anchor_seq, result.chain_last_seq) == (5, 25, 30)
    assert result.summary() == (
        "audit anchors ok: 5 anchors match the chain; last anchor at seq 25; "
        "5 entries after it not yet anchored"
    )


def test_no_anchors_is_not_a_pass() -> None:
    result = A.compare(chain(3), [])
    assert not result.ok
    assert result.reason == "none"
    assert "no anchors" in result.summary()


def rewritten(pairs: list[tuple[int, str]], first: int) -> list[tuple[int, str]]:
    """What a superuser leaves after rewriting entries ``first``.. and recomputing the links:
    every hash from ``first`` on differs."""
    other = dict(chain(len(pairs), salt="forged"))
    return [(s, h if s < first else other[s]) for s, h in pairs]


def test_a_rewritten_suffix_is_pinned_after_the_last_matching_anchor() -> None:
    pairs = chain(30)
    anchors = [anchor_of(pairs, s) for s in (10, 20, 30)]
    result = A.compare(rewritten(pairs, 21), anchors)
    assert not result.ok
    assert (result.first_bad_seq, result.anchor_seq, result.reason) == (21, 30, "rewritten")
    assert result.summary().startswith("audit anchors BROKEN from seq 21: the entry at seq 30")
    assert "matches the anchor at seq 20" in result.summary()


def test_only_the_range_between_anchors_is_provable() -> None:
    """A rewrite from seq 15 with anchors at 10 and 20: the chain agrees at 10 and not at 20, so
    the rewrite is somewhere in 11..20 and no more precise claim is made."""
    pairs = chain(30)
    result = A.compare(rewritten(pairs, 15), [anchor_of(pairs, s) for s in (10, 20, 30)])
    assert (result.first_bad_seq, result.anchor_seq) == (11, 20)
    # with an anchor of every entry the first rewritten entry is named exactly
    every = [anchor_of(pairs, s) for s in range(1, 31)]
    result = A.compare(rewritten(pairs, 15), every)
    assert (result.first_bad_seq, result.anchor_seq) == (15, 15)


def test_a_rewrite_before_the_first_anchor() -> None:
    pairs = chain(10)
    result = A.compare(rewritten(pairs, 1), [anchor_of(pairs, 5)])
    assert (result.first_bad_seq, result.anchor_seq) == (1, 5)
    assert "no earlier anchor clears it" in result.summary()


def test_a_rewrite_after_the_last_anchor_is_not_seen() -> None:
    pairs = chain(30)
    result = A.compare(rewritten(pairs, 26), [anchor_of(pairs, s) for s in (10, 25)])
    assert result.ok  # what no anchor covers, no anchor can prove


def test_a_cut_tail_names_the_first_missing_seq() -> None:
    pairs = chain(30)
    anchors = [anchor_of(pairs, s) for s in (10, 20, 30)]
    result = A.compare(pairs[:24], anchors)
    assert not result.ok
    assert (result.first_bad_seq, result.anchor_seq, result.reason) == (21, 30, "missing")
    assert result.chain_last_seq == 24
    assert result.summary().startswith(
        "audit anchors BROKEN from seq 21: the chain has no entry 30"
    )
    # cut to nothing at all
    empty = A.compare([], anchors)
    assert (empty.first_bad_seq, empty.anchor_seq, empty.reason) == (1, 10, "missing")


def test_a_cut_and_regrown_tail_is_a_rewrite() -> None:
    pairs = chain(30)
    regrown = pairs[:20] + rewritten(pairs, 21)[20:]
    result = A.compare(regrown, [anchor_of(pairs, s) for s in (20, 30)])
    assert (result.first_bad_seq, result.anchor_seq, result.reason) == (21, 30, "rewritten")


def test_an_entry_removed_at_an_anchored_seq() -> None:
    pairs = chain(10)
    gap = [p for p in pairs if p[0] != 5]
    result = A.compare(gap, [anchor_of(pairs, s) for s in (3, 5, 10)])
    assert (result.first_bad_seq, result.anchor_seq, result.reason) == (4, 5, "missing")


def test_two_anchors_of_one_seq_must_both_match() -> None:
    """A chain rewritten while the service kept anchoring leaves two signed hashes for one seq;
    whichever the chain holds now, the other disagrees."""
    pairs = chain(10)
    forged = rewritten(pairs, 8)
    anchors = [anchor_of(pairs, 5), anchor_of(pairs, 10), anchor_of(forged, 10)]
    for now in (pairs, forged):
        result = A.compare(now, anchors)
        assert (result.first_bad_seq, result.anchor_seq) == (6, 10)


def test_the_empty_chain_anchor() -> None:
    assert A.compare([], [anchor_of([], 0)]).ok
    assert A.compare(chain(2), [anchor_of([], 0)]).ok
