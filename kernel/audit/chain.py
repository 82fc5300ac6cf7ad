"""The audit chain (pure): canonical JSON, SHA-256 links, and verification of a run of entries.

Every audited fact is one :class:`AuditEntry`. Its ``hash`` is the SHA-256 (hex) of the canonical
JSON of all its other fields, ``prev_hash`` included, so changing, removing or reordering any entry
breaks every link after it. The first entry links to :data:`GENESIS_HASH`.

Lanes: the log is :data:`LANES` chains ("lanes") side by side, so that writers of different lanes
never wait for each other (each lane has its own lock in the store). An entry's lane is
:func:`lane_of` its subject (else its actor): one brukare's, one device's or one check's entries
stay in one lane, in order. Each lane counts its own ``lane_seq`` from 1 without gaps and links
each entry to the one before it in the lane; ``seq`` is a unique id across lanes (from a database
sequence: it has gaps where a transaction rolled back, and it says nothing about order between
lanes). A laned entry's hash (:func:`lane_entry_hash`, form 2) also covers ``seq``, ``lane`` and
``lane_seq``, so moving an entry to another lane or renumbering it breaks it. The entries written
before lanes (form 1, :func:`entry_hash`, ``lane_seq`` ``None``) are lane 0's beginning, unchanged:
their lane seq is their seq, and lane 0's first laned entry links to the last of them.

Canonical JSON: keys sorted, no insignificant whitespace, UTF-8, no NaN/Infinity, and ``at`` as a
UTC ISO 8601 string with microseconds. ``data`` is normalised first (:func:`normalise_data`) so
that it survives a round trip through PostgreSQL ``jsonb`` unchanged: integral floats become ints,
tuples become lists, ``datetime`` values become UTC ISO strings, ``StrEnum`` values plain strings.

No I/O, no logging, no clock reads: the store (``kernel.audit.store``) feeds rows in.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

GENESIS_HASH = "0" * 64
LANES = 16
"""Lanes new entries are spread over (a transaction's entries all go to the lane of its first
one; see ``kernel.audit.store``). Changing it only changes where new entries go: every lane
present in the table is verified and anchored, whatever this number was when it was written."""
MAX_LANE = 255
"""The highest lane number the table accepts (migration 0027)."""
ANONYMOUS_ACTOR = "anonymous"
MAX_DATA_BYTES = 8192
"""Upper bound of one entry's canonical ``data``: the audit log holds facts, not documents."""

FORBIDDEN_DATA_KEYS = frozenset(
    {
        "name",
        "display_name",
        "personal_number",
        "personnummer",
        "password",
        "token",
        "secret",
        "sdp",
        "frame",
        "image",
        "audio",
        "note",
    }
)
"""Keys that would put personal data, secrets or media into the permanent log; refused."""

_ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_ACTOR = re.compile(r"^[a-z0-9][a-z0-9._:-]{0,127}$")
_SUBJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")


class AuditDataError(ValueError):
    """An entry cannot be written: a bad actor, action, subject or ``data`` value."""

    http_status = 422
    code = "invalid_audit_entry"

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class BreakReason(StrEnum):
    """Why verification stopped at an entry."""

    SEQ_GAP = "seq_gap"  # an entry is missing or out of order
    PREV_HASH_MISMATCH = "prev_hash_mismatch"  # the link to the previous entry is wrong
    HASH_MISMATCH = "hash_mismatch"  # the entry's content changed after it was written
    UNREADABLE = "unreadable"  # the stored row cannot be turned back into an entry
    FORM_MISMATCH = "form_mismatch"  # an entry of the form before lanes where none may be


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One link of a lane. ``seq`` is a unique id; ``lane_seq`` counts the lane from 1 without
    gaps (``None``: an entry written before lanes, in lane 0, whose lane seq is its ``seq``)."""

    seq: int
    at: datetime
    actor: str
    action: str
    subject: str | None
    data: Mapping[str, Any]
    prev_hash: str
    hash: str
    lane: int = 0
    lane_seq: int | None = None

    @property
    def position(self) -> int:
        """The entry's place in its lane (its lane seq)."""
        return self.seq if self.lane_seq is None else self.lane_seq

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "lane": self.lane,
            "lane_seq": self.lane_seq,
            "at": format_at(self.at),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "data": dict(self.data),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of walking the lanes: ``checked`` entries were read, each lane in order.
    When broken, ``lane`` and ``first_broken_seq`` (a lane seq; before lanes, the seq) say
    where."""

    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str | None = None
    lane: int | None = None
    lanes: int = 0

    def summary(self) -> str:
        if self.ok:
            within = f" in {self.lanes} lane{'s' if self.lanes != 1 else ''}" if self.lanes else ""
            return f"audit chain ok: {self.checked} entries verified{within}"
        return (
            f"audit chain BROKEN in lane {self.lane} at lane seq {self.first_broken_seq}: "
            f"{self.reason} ({self.checked} entries read)"
        )


def format_at(at: datetime) -> str:
    """``at`` as UTC ISO 8601 with microseconds; refuses naive datetimes."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise AuditDataError("audit time must be timezone-aware", "at")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _where(path: tuple[Any, ...]) -> str:
    """The dotted path of :func:`_normalise`'s ``path`` (built only for an error message)."""
    steps: list[str] = []
    while len(path) == 2:
        path, step = path
        steps.append(f"[{step}]" if isinstance(step, int) else f".{step}")
    return str(path[0]) + "".join(reversed(steps))


def _normalise(value: Any, path: tuple[Any, ...]) -> Any:
    """``value`` as plain JSON; ``path`` is ``(name,)`` or ``(parent path, key or index)``, so
    nothing is formatted for the thousands of values that are fine (a night's planning audits
    every transition)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise AuditDataError(f"{_where(path)} contains a NUL character", _where(path))
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise AuditDataError(f"{_where(path)} is not valid Unicode", _where(path)) from None
        return str(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AuditDataError(f"{_where(path)} is not a finite number", _where(path))
        return int(value) if value.is_integer() else value
    if isinstance(value, datetime):
        return format_at(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise AuditDataError(f"{_where(path)} has a non-string key", _where(path))
            if key.lower() in FORBIDDEN_DATA_KEYS:
                where = _where((path, key))
                raise AuditDataError(f"{where} may not be stored in the audit log", where)
            out[_normalise(key, path)] = _normalise(item, (path, key))
        return out
    if isinstance(value, list | tuple):
        return [_normalise(item, (path, i)) for i, item in enumerate(value)]
    raise AuditDataError(
        f"{_where(path)} has a value of type {type(value).__name__}, not JSON", _where(path)
    )


def normalise_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` as plain JSON values that round-trip through ``jsonb`` unchanged."""
    if not isinstance(data, Mapping):
        raise AuditDataError("data must be a JSON object", "data")
    out: dict[str, Any] = _normalise(data, ("data",))
    if len(canonical_json(out)) > MAX_DATA_BYTES:
        raise AuditDataError(f"data is larger than {MAX_DATA_BYTES} bytes", "data")
    return out


def canonical_json(value: Any) -> bytes:
    """Sorted keys, compact separators, UTF-8, no NaN: one byte string per value."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def check_fields(*, actor: str, action: str, subject: str | None) -> None:
    """Refuse an actor, action or subject that is not a short pseudonymous identifier."""
    if not isinstance(actor, str) or not _ACTOR.match(actor):
        raise AuditDataError(
            "actor must be a pseudonymous id like 'system', 'device:cam-1' or a staff id", "actor"
        )
    if not isinstance(action, str) or not _ACTION.match(action):
        raise AuditDataError("action must look like 'consent.withdrawn'", "action")
    if subject is not None and (not isinstance(subject, str) or not _SUBJECT.match(subject)):
        raise AuditDataError("subject must be a pseudonymous id", "subject")


def entry_hash(
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subject: str | None,
    data: Mapping[str, Any],
    prev_hash: str,
) -> str:
    """SHA-256 hex over the canonical JSON of the entry's fields (``data`` already normalised)."""
    body = {
        "seq": seq,
        "at": format_at(at),
        "actor": actor,
        "action": action,
        "subject": subject,
        "data": data,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


def lane_of(*, subject: str | None, actor: str, lanes: int = LANES) -> int:
    """The lane of a new entry: a stable hash of its subject, else of its actor."""
    if not 1 <= lanes <= MAX_LANE + 1:
        raise ValueError(f"lanes must be 1 to {MAX_LANE + 1}")
    key = f"s:{subject}" if subject is not None else f"a:{actor}"
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % lanes


def lane_entry_hash(
    *,
    seq: int,
    lane: int,
    lane_seq: int,
    at: datetime,
    actor: str,
    action: str,
    subject: str | None,
    data: Mapping[str, Any],
    prev_hash: str,
) -> str:
    """Form 2: SHA-256 hex over the canonical JSON of a laned entry's fields, ``v``, ``lane`` and
    ``lane_seq`` included (``data`` already normalised)."""
    body = {
        "v": 2,
        "seq": seq,
        "lane": lane,
        "lane_seq": lane_seq,
        "at": format_at(at),
        "actor": actor,
        "action": action,
        "subject": subject,
        "data": data,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


def checked_data(
    *, at: datetime, actor: str, action: str, subject: str | None, data: Mapping[str, Any]
) -> dict[str, Any]:
    """Refuse a bad entry (:class:`AuditDataError`); its ``data`` normalised when it is good."""
    check_fields(actor=actor, action=action, subject=subject)
    format_at(at)
    return normalise_data(data)


def next_lane_entry(
    *,
    seq: int,
    lane: int,
    prev_lane_seq: int,
    prev_hash: str,
    at: datetime,
    actor: str,
    action: str,
    subject: str | None,
    data: Mapping[str, Any],
) -> AuditEntry:
    """The laned entry (form 2) with id ``seq`` that follows ``(prev_lane_seq, prev_hash)`` in
    ``lane``; ``prev_lane_seq`` is 0 for an empty lane."""
    if not 0 <= lane <= MAX_LANE:
        raise AuditDataError(f"lane must be 0 to {MAX_LANE}", "lane")
    clean = checked_data(at=at, actor=actor, action=action, subject=subject, data=data)
    lane_seq = prev_lane_seq + 1
    digest = lane_entry_hash(
        seq=seq,
        lane=lane,
        lane_seq=lane_seq,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        data=clean,
        prev_hash=prev_hash,
    )
    return AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        data=clean,
        prev_hash=prev_hash,
        hash=digest,
        lane=lane,
        lane_seq=lane_seq,
    )


def next_entry(
    *,
    prev_seq: int,
    prev_hash: str,
    at: datetime,
    actor: str,
    action: str,
    subject: str | None,
    data: Mapping[str, Any],
) -> AuditEntry:
    """Form 1, the chain before lanes: the entry that follows ``(prev_seq, prev_hash)``;
    ``prev_seq`` is 0 for an empty log. New entries are laned (:func:`next_lane_entry`)."""
    clean = checked_data(at=at, actor=actor, action=action, subject=subject, data=data)
    seq = prev_seq + 1
    digest = entry_hash(
        seq=seq, at=at, actor=actor, action=action, subject=subject, data=clean, prev_hash=prev_hash
    )
    return AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        data=clean,
        prev_hash=prev_hash,
        hash=digest,
    )


class ChainVerifier:
    """Checks one lane's entries one at a time, in lane order, and remembers the first break.

    Feed every entry of the lane with :meth:`feed` (it returns ``False`` once broken; later
    entries are ignored), then read :meth:`result`. Memory use is constant, so a caller can
    stream a table. Entries of the form before lanes may only begin lane 0.
    """

    __slots__ = ("_broken", "_checked", "_lane", "_laned", "_prev_hash", "_prev_seq", "_reason")

    def __init__(self, lane: int = 0) -> None:
        self._lane = lane
        self._laned = False  # a form-2 entry was seen: no form-1 entry may follow
        self._prev_seq = 0
        self._prev_hash = GENESIS_HASH
        self._checked = 0
        self._broken: int | None = None
        self._reason: str | None = None

    @property
    def is_broken(self) -> bool:
        return self._broken is not None

    @property
    def head(self) -> tuple[int, str]:
        """The last good entry's ``(lane_seq, hash)``; ``(0, GENESIS_HASH)`` before any."""
        return self._prev_seq, self._prev_hash

    def fail(self, seq: int, reason: BreakReason, detail: str = "") -> None:
        """Record a break found outside :meth:`feed` (e.g. a row that cannot be decoded)."""
        if self._broken is None:
            self._broken = seq
            self._reason = f"{reason}: {detail}" if detail else str(reason)

    def _expected(self, entry: AuditEntry) -> str:
        data = normalise_data(entry.data)
        if entry.lane_seq is None:
            return entry_hash(
                seq=entry.seq,
                at=entry.at,
                actor=entry.actor,
                action=entry.action,
                subject=entry.subject,
                data=data,
                prev_hash=entry.prev_hash,
            )
        return lane_entry_hash(
            seq=entry.seq,
            lane=entry.lane,
            lane_seq=entry.lane_seq,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            subject=entry.subject,
            data=data,
            prev_hash=entry.prev_hash,
        )

    def feed(self, entry: AuditEntry) -> bool:
        if self._broken is not None:
            return False
        self._checked += 1
        position = entry.position
        if entry.lane != self._lane:
            self.fail(position, BreakReason.FORM_MISMATCH, f"an entry of lane {entry.lane}")
            return False
        if entry.lane_seq is None and (self._lane != 0 or self._laned):
            self.fail(
                position,
                BreakReason.FORM_MISMATCH,
                "an entry of the form before lanes after a laned one or outside lane 0",
            )
            return False
        if position != self._prev_seq + 1:
            self.fail(
                self._prev_seq + 1,
                BreakReason.SEQ_GAP,
                f"expected seq {self._prev_seq + 1}, found {position}",
            )
            return False
        if entry.prev_hash != self._prev_hash:
            self.fail(position, BreakReason.PREV_HASH_MISMATCH)
            return False
        try:
            expected = self._expected(entry)
        except AuditDataError as e:
            self.fail(position, BreakReason.UNREADABLE, str(e))
            return False
        if not _HASH.match(entry.hash) or entry.hash != expected:
            self.fail(position, BreakReason.HASH_MISMATCH)
            return False
        self._laned = self._laned or entry.lane_seq is not None
        self._prev_seq = position
        self._prev_hash = entry.hash
        return True

    def result(self) -> VerifyResult:
        return VerifyResult(
            ok=self._broken is None,
            checked=self._checked,
            first_broken_seq=self._broken,
            reason=self._reason,
            lane=self._lane if self._broken is not None else None,
            lanes=1 if self._checked else 0,
        )


class LanesVerifier:
    """Every lane's :class:`ChainVerifier`: entries are fed in any interleaving of lanes, each
    lane in its own order (the store streams one lane after another). Stops at the first
    break in any lane."""

    __slots__ = ("_broken", "_lanes")

    def __init__(self) -> None:
        self._lanes: dict[int, ChainVerifier] = {}
        self._broken: ChainVerifier | None = None

    def _lane(self, lane: int) -> ChainVerifier:
        verifier = self._lanes.get(lane)
        if verifier is None:
            verifier = self._lanes[lane] = ChainVerifier(lane)
        return verifier

    @property
    def is_broken(self) -> bool:
        return self._broken is not None

    def fail(self, lane: int, seq: int, reason: BreakReason, detail: str = "") -> None:
        """A break found outside :meth:`feed` (a row of ``lane`` that cannot be decoded)."""
        verifier = self._lane(lane)
        verifier.fail(seq, reason, detail)
        self._broken = self._broken or verifier

    def feed(self, entry: AuditEntry) -> bool:
        if self._broken is not None:
            return False
        verifier = self._lane(entry.lane)
        if not verifier.feed(entry):
            self._broken = verifier
            return False
        return True

    def heads(self) -> dict[int, tuple[int, str]]:
        """Each lane's last good ``(lane_seq, hash)``."""
        return {lane: v.head for lane, v in sorted(self._lanes.items())}

    def result(self) -> VerifyResult:
        checked = sum(v.result().checked for v in self._lanes.values())
        lanes = sum(1 for v in self._lanes.values() if v.result().checked)
        if self._broken is None:
            return VerifyResult(ok=True, checked=checked, lanes=lanes)
        broken = self._broken.result()
        return VerifyResult(
            ok=False,
            checked=checked,
            first_broken_seq=broken.first_broken_seq,
            reason=broken.reason,
            lane=broken.lane,
            lanes=lanes,
        )


def verify_chain(entries: Iterable[AuditEntry]) -> VerifyResult:
    """Verify an iterable of entries, each lane in its order (the whole log, from the start)."""
    verifier = LanesVerifier()
    for entry in entries:
        if not verifier.feed(entry):
            break
    return verifier.result()
