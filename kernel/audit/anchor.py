"""Anchors of the audit chain (pure): the heads of its lanes, signed outside the database.

The chain (:mod:`kernel.audit.chain`) proves that no entry changed *unless* someone recomputes
the links: an insider with the database's superuser rights can rewrite a suffix, or cut the
tail, and recompute every hash after it. An anchor closes that gap: the service signs the head
of the chain, ``(seq, hash)``, with an Ed25519 key that is not in the database, and writes it
where the database's administrators cannot change it (files, a retained MQTT message). Later,
``homecare audit verify --anchors DIR`` checks that the chain still holds, at each anchored seq,
exactly the hash that was signed, and that it reaches the last anchored seq.

An anchor is about ``(seq, hash)`` of one entry and nothing else, so it stays true whatever the
entry holds (erasing personal data must keep the stored hashes; see docs/security.md).

Lanes (:mod:`kernel.audit.chain`): the log is several chains, so an anchor (version 2) signs the
join of every lane's head, ``heads``: ``[lane, lane_seq, hash]`` for each lane (lane 0 always,
the others once they hold an entry), read in one snapshot. The comparison
(:class:`LanesAnchorCheck`) holds each lane against its own heads, so a rewrite or a cut tail in
any lane is caught and named by lane. Version 1 anchors (one ``seq`` and ``hash``: the chain
before lanes) still verify: they are heads of lane 0, whose lane seqs are those seqs.

Encoding: one JSON object per anchor. Version 2: ``{"v": 2, "heads", "at", "key_id", "sig"}``,
``sig`` the Ed25519 signature (hex) of :data:`DOMAIN_V2` followed by the canonical JSON
(:func:`kernel.audit.chain.canonical_json`) of the other four fields. Version 1:
``{"v": 1, "seq", "hash", "at", "key_id", "sig"}``, signed after :data:`DOMAIN`. ``key_id`` is
the first 16 hex digits of the SHA-256 of the raw public key.

What the comparison (:class:`AnchorCheck`) can prove: an anchor of seq ``S`` that the chain no
longer matches shows that some entry in ``P+1 .. S`` was rewritten or removed, where ``P`` is the
highest anchored seq below ``S`` that still matches (0 for none): entry ``S``'s hash covers every
entry before it, and ``P``'s agreement clears everything up to ``P``. Which entry inside that
range changed is not provable from anchors of the head alone; anchors every minute keep the range
to a minute of entries. Entries after the last anchor are not covered at all.

No I/O, no clock reads, no logging.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kernel.audit.chain import GENESIS_HASH, MAX_LANE, AuditDataError, canonical_json, format_at

VERSION = 2
DOMAIN = b"homecare-audit-anchor/v1\n"
"""Prefix of every signed version 1 message, so an anchor's signature can never stand for
anything else."""
DOMAIN_V2 = b"homecare-audit-anchor/v2\n"
"""The same for version 2 (the heads of the lanes)."""

_HASH = re.compile(r"^[0-9a-f]{64}$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_SIG = re.compile(r"^[0-9a-f]{128}$")
_FIELDS = frozenset({"v", "seq", "hash", "at", "key_id", "sig"})
_FIELDS_V2 = frozenset({"v", "heads", "at", "key_id", "sig"})

Head = tuple[int, int, str]
"""A lane's head: ``(lane, lane_seq, hash)``; ``(lane, 0, GENESIS_HASH)`` for an empty lane."""


class AnchorError(ValueError):
    """An anchor cannot be read, or its signature does not hold."""


@dataclass(frozen=True, slots=True)
class Anchor:
    """A signed statement: at ``at`` each lane's last entry was ``heads`` (version 2), or the
    chain's entry ``seq`` had ``hash`` (version 1: ``heads`` is that one head of lane 0)."""

    heads: tuple[Head, ...]
    at: str  # UTC ISO 8601 with microseconds, as the chain writes times
    key_id: str
    sig: str
    v: int = VERSION

    @property
    def seq(self) -> int:
        """How many entries the anchor covers: the sum of its lanes' seqs (version 1: the
        head's seq, the same number)."""
        return sum(lane_seq for _, lane_seq, _ in self.heads)

    @property
    def hash(self) -> str:
        """Version 1: the head's hash; version 2: the join's digest (:func:`join_digest`)."""
        return self.heads[0][2] if self.v == 1 else join_digest(self.heads)

    def message(self) -> bytes:
        """The bytes the signature is over."""
        if self.v == 1:
            return signed_message(seq=self.seq, hash=self.hash, at=self.at, key_id=self.key_id)
        return signed_heads(heads=self.heads, at=self.at, key_id=self.key_id)

    def to_json(self) -> dict[str, Any]:
        if self.v == 1:
            return {
                "v": 1,
                "seq": self.seq,
                "hash": self.hash,
                "at": self.at,
                "key_id": self.key_id,
                "sig": self.sig,
            }
        return {
            "v": self.v,
            "heads": [list(h) for h in self.heads],
            "at": self.at,
            "key_id": self.key_id,
            "sig": self.sig,
        }

    def encode(self) -> bytes:
        """One line of an anchor file (without its newline), also the MQTT payload."""
        return canonical_json(self.to_json())


def signed_message(*, seq: int, hash: str, at: str, key_id: str) -> bytes:
    """What a version 1 anchor signs."""
    body = {"v": 1, "seq": seq, "hash": hash, "at": at, "key_id": key_id}
    return DOMAIN + canonical_json(body)


def signed_heads(*, heads: tuple[Head, ...], at: str, key_id: str) -> bytes:
    """What a version 2 anchor signs: the join of the lanes' heads."""
    body = {"v": 2, "heads": [list(h) for h in heads], "at": at, "key_id": key_id}
    return DOMAIN_V2 + canonical_json(body)


def join_digest(heads: tuple[Head, ...]) -> str:
    """SHA-256 hex of the heads' canonical JSON: one value that changes with any lane's head."""
    return hashlib.sha256(canonical_json([list(h) for h in heads])).hexdigest()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _when(at: datetime) -> str:
    try:
        return format_at(at)
    except AuditDataError as e:
        raise AnchorError(str(e)) from None


def sign(key: Ed25519PrivateKey, *, seq: int, hash: str, at: datetime) -> Anchor:
    """A version 1 anchor: the chain's head ``(seq, hash)`` at ``at`` (timezone-aware). The form
    before lanes; the service signs :func:`sign_heads`."""
    _check_head(seq, hash)
    when = _when(at)
    kid = key_id(key.public_key())
    sig = key.sign(signed_message(seq=seq, hash=hash, at=when, key_id=kid)).hex()
    return Anchor(heads=((0, seq, hash),), at=when, key_id=kid, sig=sig, v=1)


def sign_heads(key: Ed25519PrivateKey, *, heads: Iterable[Head], at: datetime) -> Anchor:
    """The anchor of every lane's head at ``at`` (timezone-aware)."""
    joined = _check_heads(list(heads))
    when = _when(at)
    kid = key_id(key.public_key())
    sig = key.sign(signed_heads(heads=joined, at=when, key_id=kid)).hex()
    return Anchor(heads=joined, at=when, key_id=kid, sig=sig, v=2)


def _check_head(seq: object, hash: object) -> None:
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise AnchorError("seq must be a whole number, 0 or more")
    if not isinstance(hash, str) or not _HASH.match(hash):
        raise AnchorError("hash must be 64 lower-case hex digits")
    if seq == 0 and hash != GENESIS_HASH:
        raise AnchorError("the empty chain (seq 0) has the genesis hash")


def _check_heads(heads: object) -> tuple[Head, ...]:
    """``[[lane, lane_seq, hash], ...]``: lanes ascending, each once, lane 0 among them."""
    if not isinstance(heads, list) or not heads or len(heads) > MAX_LANE + 1:
        raise AnchorError(f"heads must be a list of 1 to {MAX_LANE + 1} lanes")
    out: list[Head] = []
    for head in heads:
        if not isinstance(head, list | tuple) or len(head) != 3:
            raise AnchorError("each head is [lane, lane_seq, hash]")
        lane, seq, digest = head
        if not isinstance(lane, int) or isinstance(lane, bool) or not 0 <= lane <= MAX_LANE:
            raise AnchorError(f"a lane is a whole number from 0 to {MAX_LANE}")
        if out and lane <= out[-1][0]:
            raise AnchorError("lanes must be ascending, each once")
        _check_head(seq, digest)
        out.append((lane, seq, digest))
    if out[0][0] != 0:
        raise AnchorError("the heads name lane 0")
    return tuple(out)


def decode(line: bytes | str) -> Anchor:
    """An anchor from its JSON text; refuses anything but the exact fields and their forms."""
    try:
        value = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise AnchorError("not JSON") from None
    if not isinstance(value, dict):
        raise AnchorError("not a JSON object")
    version = value.get("v")
    if version not in (1, 2) or isinstance(version, bool):
        raise AnchorError(f"unknown version {version!r}")
    fields = _FIELDS if version == 1 else _FIELDS_V2
    if set(value) != fields:
        missing, extra = fields - set(value), set(value) - fields
        raise AnchorError(f"fields differ (missing {sorted(missing)}, unknown {sorted(extra)})")
    if version == 1:
        _check_head(value["seq"], value["hash"])
        heads: tuple[Head, ...] = ((0, value["seq"], value["hash"]),)
    else:
        heads = _check_heads(value["heads"])
    at, kid, sig = value["at"], value["key_id"], value["sig"]
    if not isinstance(at, str) or not _is_instant(at):
        raise AnchorError("at must be a UTC ISO 8601 time")
    if not isinstance(kid, str) or not _KEY_ID.match(kid):
        raise AnchorError("key_id must be 16 hex digits")
    if not isinstance(sig, str) or not _SIG.match(sig):
        raise AnchorError("sig must be 128 hex digits")
    return Anchor(heads=heads, at=at, key_id=kid, sig=sig, v=version)


def _is_instant(text: str) -> bool:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return False
    return when.tzinfo is not None and format_at(when) == text


def check(anchor: Anchor, keys: dict[str, Ed25519PublicKey]) -> None:
    """Raise :class:`AnchorError` unless one of ``keys`` (by key id) signed ``anchor``."""
    public = keys.get(anchor.key_id)
    if public is None:
        raise AnchorError(f"signed by an unknown key (id {anchor.key_id})")
    try:
        public.verify(bytes.fromhex(anchor.sig), anchor.message())
    except InvalidSignature:
        raise AnchorError("the signature does not hold") from None


# --- keys ---------------------------------------------------------------------------------


def new_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private(pem: bytes) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM (PKCS#8, unencrypted), else :class:`AnchorError`."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise AnchorError(f"not an unencrypted PEM private key ({type(e).__name__})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AnchorError("not an Ed25519 key")
    return key


def load_public(pem: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM, or the public half of a private key's PEM."""
    if b"PRIVATE KEY" in pem:
        return load_private(pem).public_key()
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as e:
        raise AnchorError(f"not a PEM public key ({type(e).__name__})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AnchorError("not an Ed25519 key")
    return key


# --- the comparison -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnchorResult:
    """How the chain compares with the anchors.

    When not ``ok``: ``first_bad_seq`` is the lowest seq that may have been rewritten or removed
    (the entry after the last anchor that still matches); ``anchor_seq`` the anchored seq the
    chain no longer matches (or, for a cut tail, the last anchored seq); ``reason`` is
    ``rewritten`` (the chain holds another hash at ``anchor_seq``), ``missing`` (the chain has
    no entry ``anchor_seq``: removed or cut) or ``none`` (there were no anchors to compare)."""

    ok: bool
    anchors: int
    chain_last_seq: int
    last_anchor_seq: int | None = None
    first_bad_seq: int | None = None
    anchor_seq: int | None = None
    anchor_at: str | None = None
    reason: str | None = None
    lane: int | None = None
    lanes: int = 0

    def summary(self) -> str:
        if self.anchors == 0:
            return "audit anchors BROKEN: no anchors found, so nothing is anchored"
        if self.ok and self.lanes:
            assert self.last_anchor_seq is not None
            after = self.chain_last_seq - self.last_anchor_seq
            tail = f"; {after} entries after it not yet anchored" if after > 0 else ""
            return (
                f"audit anchors ok: {self.anchors} anchors match the chain's {self.lanes} "
                f"lane{'s' if self.lanes != 1 else ''}; the last covers "
                f"{self.last_anchor_seq} entries{tail}"
            )
        if self.ok:
            assert self.last_anchor_seq is not None
            after = self.chain_last_seq - self.last_anchor_seq
            tail = f"; {after} entries after it not yet anchored" if after else ""
            return (
                f"audit anchors ok: {self.anchors} anchors match the chain; "
                f"last anchor at seq {self.last_anchor_seq}{tail}"
            )
        good = (self.first_bad_seq or 1) - 1
        cleared = f"it matches the anchor at seq {good}" if good else "no earlier anchor clears it"
        if self.lane is not None:
            return self._lane_summary(good, cleared)
        if self.reason == "missing":
            return (
                f"audit anchors BROKEN from seq {self.first_bad_seq}: the chain has no entry "
                f"{self.anchor_seq}, which an anchor of {self.anchor_at} names (chain ends at "
                f"seq {self.chain_last_seq}); {cleared}, so entries from seq "
                f"{self.first_bad_seq} to {self.anchor_seq} were removed or cut"
            )
        return (
            f"audit anchors BROKEN from seq {self.first_bad_seq}: the entry at seq "
            f"{self.anchor_seq} differs from its anchor of {self.anchor_at}; {cleared}, so an "
            f"entry from seq {self.first_bad_seq} to {self.anchor_seq} was rewritten or removed"
        )

    def _lane_summary(self, good: int, cleared: str) -> str:
        lane = f"lane {self.lane}"
        if self.reason == "missing":
            return (
                f"audit anchors BROKEN in {lane} from seq {self.first_bad_seq}: the lane has no "
                f"entry {self.anchor_seq}, which an anchor of {self.anchor_at} names (the lane "
                f"ends at seq {self.chain_last_seq}); {cleared}, so entries of {lane} from seq "
                f"{self.first_bad_seq} to {self.anchor_seq} were removed or cut"
            )
        return (
            f"audit anchors BROKEN in {lane} from seq {self.first_bad_seq}: the entry at seq "
            f"{self.anchor_seq} differs from its anchor of {self.anchor_at}; {cleared}, so an "
            f"entry of {lane} from seq {self.first_bad_seq} to {self.anchor_seq} was rewritten "
            "or removed"
        )


@dataclass(frozen=True, slots=True)
class Point:
    """One lane's head as one anchor names it: ``seq`` is the lane seq."""

    seq: int
    hash: str
    at: str


class AnchorCheck:
    """Compares the chain's ``(seq, hash)`` pairs, fed in ``seq`` order, with signed anchors.

    Every anchor must match: the chain's entry at the anchor's seq has exactly its hash, and the
    chain reaches the last anchored seq. Memory holds the anchors, not the chain. Check each
    anchor's signature (:func:`check`) before it is given here.
    """

    __slots__ = ("_anchors", "_bad", "_good", "_i", "_last", "_n")

    def __init__(self, anchors: Iterable[Anchor | Point]) -> None:
        self._anchors = sorted(anchors, key=lambda a: a.seq)
        self._n = len(self._anchors)
        self._i = 0
        self._good = 0  # highest anchored seq that matched
        self._last = 0  # highest seq fed
        self._bad: tuple[int, Anchor | Point, str] | None = None
        self._compare(0, GENESIS_HASH)  # anchors of the empty chain

    def _compare(self, seq: int, hash: str) -> None:
        """Every anchor of ``seq`` against the chain's ``hash``; ``seq`` counts as good only when
        all of them match."""
        while self._i < self._n and self._anchors[self._i].seq == seq:
            anchor = self._anchors[self._i]
            self._i += 1
            if anchor.hash != hash:
                self._bad = (self._good + 1, anchor, "rewritten")
                return
        self._good = seq

    def feed(self, seq: int, hash: str) -> bool:
        """One entry of the chain; ``False`` once a disagreement was found."""
        if self._bad is not None:
            return False
        self._last = max(self._last, seq)
        while self._bad is None and self._i < self._n and self._anchors[self._i].seq <= seq:
            anchor = self._anchors[self._i]
            if anchor.seq < seq:  # the chain skipped an anchored seq
                self._bad = (self._good + 1, anchor, "missing")
            else:
                self._compare(seq, hash)
        return self._bad is None

    def result(self) -> AnchorResult:
        if not self._anchors:  # nothing to hold the chain against is not a pass
            return AnchorResult(ok=False, anchors=0, chain_last_seq=self._last, reason="none")
        last_anchor = self._anchors[-1].seq
        bad = self._bad
        if bad is None and self._i < self._n:  # anchors beyond the chain's end: a cut tail
            bad = (self._good + 1, self._anchors[self._i], "missing")
        if bad is None:
            return AnchorResult(
                ok=True,
                anchors=self._n,
                chain_last_seq=self._last,
                last_anchor_seq=last_anchor,
            )
        first, anchor, reason = bad
        return AnchorResult(
            ok=False,
            anchors=self._n,
            chain_last_seq=self._last,
            last_anchor_seq=last_anchor,
            first_bad_seq=first,
            anchor_seq=anchor.seq,
            anchor_at=anchor.at,
            reason=reason,
        )


def compare(pairs: Iterable[tuple[int, str]], anchors: Iterable[Anchor]) -> AnchorResult:
    """:class:`AnchorCheck` over a whole iterable of ``(seq, hash)`` pairs."""
    checker = AnchorCheck(anchors)
    for seq, hash in pairs:
        if not checker.feed(seq, hash):
            break
    return checker.result()


class LanesAnchorCheck:
    """Compares every lane with the heads the anchors name for it: one :class:`AnchorCheck` per
    lane an anchor names, fed ``(lane, lane_seq, hash)`` in any interleaving of lanes, each lane
    in order. A lane an anchor names that the chain no longer has is a cut. Check each anchor's
    signature (:func:`check`) before it is given here."""

    __slots__ = ("_bad", "_fed", "_lanes", "_n", "_newest")

    def __init__(self, anchors: Iterable[Anchor]) -> None:
        points: dict[int, list[Point]] = {}
        self._n = 0
        self._newest: Anchor | None = None
        for anchor in anchors:
            self._n += 1
            if self._newest is None or (anchor.at, anchor.seq) > (
                self._newest.at,
                self._newest.seq,
            ):
                self._newest = anchor
            for lane, seq, digest in anchor.heads:
                points.setdefault(lane, []).append(Point(seq, digest, anchor.at))
        self._lanes = {lane: AnchorCheck(p) for lane, p in sorted(points.items())}
        self._fed: dict[int, int] = {}
        self._bad: int | None = None

    def feed(self, lane: int, seq: int, hash: str) -> bool:
        """One entry of ``lane``; ``False`` once a disagreement was found."""
        if self._bad is not None:
            return False
        self._fed[lane] = max(self._fed.get(lane, 0), seq)
        check = self._lanes.get(lane)
        if check is not None and not check.feed(seq, hash):
            self._bad = lane
            return False
        return True

    def result(self) -> AnchorResult:
        total = sum(self._fed.values())
        if self._newest is None:
            return AnchorResult(ok=False, anchors=0, chain_last_seq=total, reason="none")
        order = sorted(self._lanes, key=lambda lane: lane != self._bad)  # the broken lane first
        for lane in order:
            found = self._lanes[lane].result()
            if not found.ok:
                return dataclasses.replace(
                    found, anchors=self._n, lane=lane, lanes=len(self._lanes)
                )
        return AnchorResult(
            ok=True,
            anchors=self._n,
            chain_last_seq=total,
            last_anchor_seq=self._newest.seq,
            lanes=len(self._lanes),
        )


def compare_lanes(
    entries: Iterable[tuple[int, int, str]], anchors: Iterable[Anchor]
) -> AnchorResult:
    """:class:`LanesAnchorCheck` over a whole iterable of ``(lane, lane_seq, hash)``."""
    checker = LanesAnchorCheck(anchors)
    for lane, seq, digest in entries:
        if not checker.feed(lane, seq, digest):
            break
    return checker.result()
