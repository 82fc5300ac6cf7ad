"""A tailing cursor over the audit log's lanes (pure): what was read, and what comes next.

Why not ``seq``: ``seq`` is a unique id from one sequence shared by every lane, drawn while the
writer holds its lane's lock; transactions of different lanes commit in any order. A reader that
remembers "everything up to seq 41" and an entry 40 of another lane that commits after that read
never sees entry 40: tailing by ``after_seq`` can skip entries for ever. A :class:`Cursor`
remembers instead, for each lane, the position (lane seq) of the last entry read there.

What the store guarantees (``kernel.audit.store``, migration 0027):

F1. Within a lane, ``seq`` rises with the position. A writer draws its seqs from the one sequence
    while it holds its lane's lock, and holds the lock until its transaction ends; the next
    writer of the lane draws only after taking that lock. (The entries written before lanes are
    lane 0's beginning, with position = seq; the sequence starts past them, and lane 0's laned
    entries continue their positions.)

F2. Every snapshot sees a prefix of each lane. The entry at position ``k + 1`` was drawn after
    the writer of ``k`` released the lane's lock, and PostgreSQL releases a transaction's locks
    only after its commit is visible to new snapshots (a rolled-back writer leaves no entry and
    its position is drawn again). So a snapshot that sees ``k + 1`` sees ``k``. A reader's
    filters and its organisation's row-level security only take a subset of that prefix.

A page (:func:`page`, what ``store.entries_after`` selects in SQL): of the entries the reader
can see that lie after the cursor in their lane (position above the cursor's for that lane), the
first ``limit`` by ``seq``. The next cursor (:func:`advance`): each lane moved to the highest
position the page holds there; and when the page is short (fewer than ``limit``), each lane
moved up to its head read *before* the page (``audit_heads()``).

Claim: tailing page after page never skips an entry and never returns one twice.

Proof. No duplicate: a page takes only positions above the cursor, and the next cursor is at
least the position of every entry the page returned. No skip: let ``c`` be the cursor, ``P`` the
page, ``c'`` the next cursor, and ``e`` an entry of lane ``L`` the reader may see, with
``c[L] < pos(e) <= c'[L]``, not in ``P``. Either ``c'[L]`` is the position of some ``f`` in
``P`` (``pos(e) < pos(f)``): ``f`` was visible, so ``e`` was too (F2), and ``seq(e) < seq(f)``
(F1); ``P`` holds the first ``limit`` visible entries after ``c`` by seq and holds ``f``, so it
holds ``e``, a contradiction. Or ``c'[L]`` is the head ``h`` of ``L`` read before the page, and
the page was short: the page's snapshot is at least as new as the heads' snapshot, so it saw
every position up to ``h`` (F2), and a short page is every visible entry after ``c``; so ``e``
was in ``P``, a contradiction (an entry hidden by the filters or the organisation's scope is not
owed to this reader). Every entry after ``c'`` is left for a later page. ∎

Corollary: within each lane, a page is a run of consecutive positions right after the cursor
(what it skips inside the run it could not see), and the store may take each lane's first
``limit`` entries by position (an index range) and keep the first ``limit`` of their union by
seq: by F1 that is the same page.

The cursor's text is opaque to clients: base64url (no padding) of ``1:`` followed by
``lane.position`` pairs, lanes ascending, joined by ``,`` (``1:`` alone is the start). It is
decoded strictly (:func:`decode`): the one canonical spelling of a value, or
:class:`CursorError`.

No I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kernel.audit.chain import MAX_LANE, AuditEntry

VERSION = "1"
MAX_POSITION = 2**63 - 1
"""The largest lane seq (PostgreSQL ``bigint``)."""
_PAIR = re.compile(r"(0|[1-9][0-9]{0,2})\.([1-9][0-9]{0,18})")
_PAIR_CHARS = len(str(MAX_LANE)) + 1 + len(str(MAX_POSITION))
MAX_CURSOR_CHARS = -(-(len(VERSION) + 1 + (MAX_LANE + 1) * (_PAIR_CHARS + 1)) * 4 // 3)
"""No valid cursor is longer (every lane at the largest position); longer text is refused
before it is decoded."""
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


class CursorError(ValueError):
    """``cursor`` is not one this service gave out (422 ``bad_cursor``; nothing is read)."""

    http_status = 422
    code = "bad_cursor"
    field = "cursor"


@dataclass(frozen=True, slots=True)
class Cursor:
    """Per lane, the position of the last entry read there: ``(lane, position)`` pairs, lanes
    ascending, positions at least 1; a lane not named is at 0 (nothing read)."""

    positions: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        lanes = [lane for lane, _ in self.positions]
        if lanes != sorted(set(lanes)):
            raise ValueError("cursor lanes must be ascending and distinct")
        for lane, position in self.positions:
            if not 0 <= lane <= MAX_LANE or not 1 <= position <= MAX_POSITION:
                raise ValueError(f"cursor pair ({lane}, {position}) out of range")

    def position(self, lane: int) -> int:
        """The position of the last entry read in ``lane`` (0: none)."""
        for at, position in self.positions:
            if at == lane:
                return position
        return 0

    def encode(self) -> str:
        """The opaque text a client sends back as ``?cursor=``."""
        text = f"{VERSION}:" + ",".join(f"{lane}.{position}" for lane, position in self.positions)
        return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")


START = Cursor()
"""Nothing read yet: the first page is the log's first entries by seq."""


def decode(text: str) -> Cursor:
    """The cursor ``text`` spells; :class:`CursorError` for anything :meth:`Cursor.encode` would
    not have written (bad characters or padding, another version, lanes out of order or range,
    positions of 0, leading zeros, too long)."""
    if not isinstance(text, str) or not text:
        raise CursorError("cursor is empty")
    if len(text) > MAX_CURSOR_CHARS:
        raise CursorError(f"cursor is longer than {MAX_CURSOR_CHARS} characters")
    if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise CursorError("cursor is not base64url without padding")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        plain = raw.decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise CursorError("cursor is not base64url of a cursor") from None
    if base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=") != text:
        raise CursorError("cursor is not in its one spelling")  # stray low bits in the last char
    version, colon, body = plain.partition(":")
    if version != VERSION or not colon:
        raise CursorError("cursor is of an unknown version")
    pairs: list[tuple[int, int]] = []
    for part in body.split(",") if body else []:
        match = _PAIR.fullmatch(part)
        if match is None:
            raise CursorError("cursor holds a malformed lane position")
        lane, position = int(match[1]), int(match[2])
        if lane > MAX_LANE or position > MAX_POSITION:
            raise CursorError("cursor holds a lane or position out of range")
        if pairs and lane <= pairs[-1][0]:
            raise CursorError("cursor lanes are not ascending")
        pairs.append((lane, position))
    return Cursor(tuple(pairs))


def is_after(cursor: Cursor, entry: AuditEntry) -> bool:
    """Whether ``entry`` lies after ``cursor`` in its lane (not read yet)."""
    return entry.position > cursor.position(entry.lane)


def page(cursor: Cursor, visible: Iterable[AuditEntry], limit: int) -> list[AuditEntry]:
    """The page after ``cursor``: of the ``visible`` entries after it, the first ``limit`` by
    seq (the specification ``store.entries_after`` carries out in SQL)."""
    after = sorted((e for e in visible if is_after(cursor, e)), key=lambda e: e.seq)
    return after[: max(0, limit)]


def advance(
    cursor: Cursor,
    found: Iterable[AuditEntry],
    *,
    limit: int,
    heads: Mapping[int, int] | None = None,
) -> Cursor:
    """The cursor after the page ``found`` (asked with ``limit``): each lane at the highest
    position ``found`` holds there; when ``found`` is short of ``limit``, each lane also at least
    at its head in ``heads`` (lane -> position), which must have been read *before* the page
    (see the proof above: a head read after it may name entries the page could not see)."""
    positions = dict(cursor.positions)
    count = 0
    for entry in found:
        count += 1
        positions[entry.lane] = max(positions.get(entry.lane, 0), entry.position)
    if heads is not None and count < limit:
        for lane, head in heads.items():
            if head > 0:
                positions[lane] = max(positions.get(lane, 0), head)
    return Cursor(tuple(sorted(positions.items())))
