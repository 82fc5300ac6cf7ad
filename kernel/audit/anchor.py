"""Anchors of the audit chain (pure): the chain's head, signed outside the database.

The chain (:mod:`kernel.audit.chain`) proves that no entry changed *unless* someone recomputes
the links: an insider with the database's superuser rights can rewrite a suffix, or cut the
tail, and recompute every hash after it. An anchor closes that gap: the service signs the head
of the chain, ``(seq, hash)``, with an Ed25519 key that is not in the database, and writes it
where the database's administrators cannot change it (files, a retained MQTT message). Later,
``homecare audit verify --anchors DIR`` checks that the chain still holds, at each anchored seq,
exactly the hash that was signed, and that it reaches the last anchored seq.

An anchor is about ``(seq, hash)`` of one entry and nothing else, so it stays true whatever the
entry holds (erasing personal data must keep the stored hashes; see docs/security.md).

Encoding: one JSON object per anchor, ``{"v", "seq", "hash", "at", "key_id", "sig"}``; ``sig``
is the Ed25519 signature (hex) of :data:`DOMAIN` followed by the canonical JSON
(:func:`kernel.audit.chain.canonical_json`) of the other five fields. ``key_id`` is the first 16
hex digits of the SHA-256 of the raw public key.

What the comparison (:class:`AnchorCheck`) can prove: an anchor of seq ``S`` that the chain no
longer matches shows that some entry in ``P+1 .. S`` was rewritten or removed, where ``P`` is the
highest anchored seq below ``S`` that still matches (0 for none): entry ``S``'s hash covers every
entry before it, and ``P``'s agreement clears everything up to ``P``. Which entry inside that
range changed is not provable from anchors of the head alone; anchors every minute keep the range
to a minute of entries. Entries after the last anchor are not covered at all.

No I/O, no clock reads, no logging.
"""

from __future__ import annotations

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

from kernel.audit.chain import GENESIS_HASH, AuditDataError, canonical_json, format_at

VERSION = 1
DOMAIN = b"homecare-audit-anchor/v1\n"
"""Prefix of every signed message, so an anchor's signature can never stand for anything else."""

_HASH = re.compile(r"^[0-9a-f]{64}$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_SIG = re.compile(r"^[0-9a-f]{128}$")
_FIELDS = frozenset({"v", "seq", "hash", "at", "key_id", "sig"})


class AnchorError(ValueError):
    """An anchor cannot be read, or its signature does not hold."""


@dataclass(frozen=True, slots=True)
class Anchor:
    """A signed statement: at ``at`` the chain's entry ``seq`` had ``hash`` (seq 0: empty)."""

    seq: int
    hash: str
    at: str  # UTC ISO 8601 with microseconds, as the chain writes times
    key_id: str
    sig: str

    def message(self) -> bytes:
        """The bytes the signature is over."""
        return signed_message(seq=self.seq, hash=self.hash, at=self.at, key_id=self.key_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "seq": self.seq,
            "hash": self.hash,
            "at": self.at,
            "key_id": self.key_id,
            "sig": self.sig,
        }

    def encode(self) -> bytes:
        """One line of an anchor file (without its newline), also the MQTT payload."""
        return canonical_json(self.to_json())


def signed_message(*, seq: int, hash: str, at: str, key_id: str) -> bytes:
    body = {"v": VERSION, "seq": seq, "hash": hash, "at": at, "key_id": key_id}
    return DOMAIN + canonical_json(body)


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(key: Ed25519PrivateKey, *, seq: int, hash: str, at: datetime) -> Anchor:
    """The anchor of the chain's head ``(seq, hash)`` at ``at`` (timezone-aware)."""
    _check_head(seq, hash)
    try:
        when = format_at(at)
    except AuditDataError as e:
        raise AnchorError(str(e)) from None
    kid = key_id(key.public_key())
    sig = key.sign(signed_message(seq=seq, hash=hash, at=when, key_id=kid)).hex()
    return Anchor(seq=seq, hash=hash, at=when, key_id=kid, sig=sig)


def _check_head(seq: object, hash: object) -> None:
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise AnchorError("seq must be a whole number, 0 or more")
    if not isinstance(hash, str) or not _HASH.match(hash):
        raise AnchorError("hash must be 64 lower-case hex digits")
    if seq == 0 and hash != GENESIS_HASH:
        raise AnchorError("the empty chain (seq 0) has the genesis hash")


def decode(line: bytes | str) -> Anchor:
    """An anchor from its JSON text; refuses anything but the exact fields and their forms."""
    try:
        value = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise AnchorError("not JSON") from None
    if not isinstance(value, dict):
        raise AnchorError("not a JSON object")
    if set(value) != _FIELDS:
        missing, extra = _FIELDS - set(value), set(value) - _FIELDS
        raise AnchorError(f"fields differ (missing {sorted(missing)}, unknown {sorted(extra)})")
    if value["v"] != VERSION or isinstance(value["v"], bool):
        raise AnchorError(f"unknown version {value['v']!r}")
    _check_head(value["seq"], value["hash"])
    at, kid, sig = value["at"], value["key_id"], value["sig"]
    if not isinstance(at, str) or not _is_instant(at):
        raise AnchorError("at must be a UTC ISO 8601 time")
    if not isinstance(kid, str) or not _KEY_ID.match(kid):
        raise AnchorError("key_id must be 16 hex digits")
    if not isinstance(sig, str) or not _SIG.match(sig):
        raise AnchorError("sig must be 128 hex digits")
    return Anchor(seq=value["seq"], hash=value["hash"], at=at, key_id=kid, sig=sig)


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

    def summary(self) -> str:
        if self.anchors == 0:
            return "audit anchors BROKEN: no anchors found, so nothing is anchored"
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


class AnchorCheck:
    """Compares the chain's ``(seq, hash)`` pairs, fed in ``seq`` order, with signed anchors.

    Every anchor must match: the chain's entry at the anchor's seq has exactly its hash, and the
    chain reaches the last anchored seq. Memory holds the anchors, not the chain. Check each
    anchor's signature (:func:`check`) before it is given here.
    """

    __slots__ = ("_anchors", "_bad", "_good", "_i", "_last", "_n")

    def __init__(self, anchors: Iterable[Anchor]) -> None:
        self._anchors = sorted(anchors, key=lambda a: a.seq)
        self._n = len(self._anchors)
        self._i = 0
        self._good = 0  # highest anchored seq that matched
        self._last = 0  # highest seq fed
        self._bad: tuple[int, Anchor, str] | None = None
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
