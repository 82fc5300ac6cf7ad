"""The audit chain (pure): canonical JSON, SHA-256 links, and verification of a run of entries.

Every audited fact is one :class:`AuditEntry`. Its ``hash`` is the SHA-256 (hex) of the canonical
JSON of all its other fields, ``prev_hash`` included, so changing, removing or reordering any entry
breaks every link after it. The first entry links to :data:`GENESIS_HASH`.

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


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One link of the chain. ``seq`` starts at 1 and has no gaps."""

    seq: int
    at: datetime
    actor: str
    action: str
    subject: str | None
    data: Mapping[str, Any]
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
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
    """The outcome of walking the chain: ``checked`` entries were read, in ``seq`` order."""

    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str | None = None

    def summary(self) -> str:
        if self.ok:
            return f"audit chain ok: {self.checked} entries verified"
        return (
            f"audit chain BROKEN at seq {self.first_broken_seq}: {self.reason} "
            f"({self.checked} entries read)"
        )


def format_at(at: datetime) -> str:
    """``at`` as UTC ISO 8601 with microseconds; refuses naive datetimes."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise AuditDataError("audit time must be timezone-aware", "at")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _normalise(value: Any, path: str) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AuditDataError(f"{path} is not a finite number", path)
        return int(value) if value.is_integer() else value
    if isinstance(value, str):
        if "\x00" in value:
            raise AuditDataError(f"{path} contains a NUL character", path)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise AuditDataError(f"{path} is not valid Unicode", path) from None
        return str(value)
    if isinstance(value, datetime):
        return format_at(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise AuditDataError(f"{path} has a non-string key", path)
            if key.lower() in FORBIDDEN_DATA_KEYS:
                raise AuditDataError(
                    f"{path}.{key} may not be stored in the audit log", f"{path}.{key}"
                )
            out[_normalise(key, path)] = _normalise(item, f"{path}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [_normalise(item, f"{path}[{i}]") for i, item in enumerate(value)]
    raise AuditDataError(f"{path} has a value of type {type(value).__name__}, not JSON", path)


def normalise_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` as plain JSON values that round-trip through ``jsonb`` unchanged."""
    if not isinstance(data, Mapping):
        raise AuditDataError("data must be a JSON object", "data")
    out: dict[str, Any] = _normalise(data, "data")
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
    """The entry that follows ``(prev_seq, prev_hash)``; ``prev_seq`` is 0 for an empty log."""
    check_fields(actor=actor, action=action, subject=subject)
    format_at(at)
    clean = normalise_data(data)
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
    """Checks entries one at a time, in ``seq`` order, and remembers the first break.

    Feed every entry with :meth:`feed` (it returns ``False`` once broken; later entries are
    ignored), then read :meth:`result`. Memory use is constant, so a caller can stream a table.
    """

    __slots__ = ("_broken", "_checked", "_prev_hash", "_prev_seq", "_reason")

    def __init__(self) -> None:
        self._prev_seq = 0
        self._prev_hash = GENESIS_HASH
        self._checked = 0
        self._broken: int | None = None
        self._reason: str | None = None

    @property
    def is_broken(self) -> bool:
        return self._broken is not None

    def fail(self, seq: int, reason: BreakReason, detail: str = "") -> None:
        """Record a break found outside :meth:`feed` (e.g. a row that cannot be decoded)."""
        if self._broken is None:
            self._broken = seq
            self._reason = f"{reason}: {detail}" if detail else str(reason)

    def feed(self, entry: AuditEntry) -> bool:
        if self._broken is not None:
            return False
        self._checked += 1
        if entry.seq != self._prev_seq + 1:
            self.fail(
                self._prev_seq + 1,
                BreakReason.SEQ_GAP,
                f"expected seq {self._prev_seq + 1}, found {entry.seq}",
            )
            return False
        if entry.prev_hash != self._prev_hash:
            self.fail(entry.seq, BreakReason.PREV_HASH_MISMATCH)
            return False
        try:
            expected = entry_hash(
                seq=entry.seq,
                at=entry.at,
                actor=entry.actor,
                action=entry.action,
                subject=entry.subject,
                data=normalise_data(entry.data),
                prev_hash=entry.prev_hash,
            )
        except AuditDataError as e:
            self.fail(entry.seq, BreakReason.UNREADABLE, str(e))
            return False
        if not _HASH.match(entry.hash) or entry.hash != expected:
            self.fail(entry.seq, BreakReason.HASH_MISMATCH)
            return False
        self._prev_seq = entry.seq
        self._prev_hash = entry.hash
        return True

    def result(self) -> VerifyResult:
        return VerifyResult(
            ok=self._broken is None,
            checked=self._checked,
            first_broken_seq=self._broken,
            reason=self._reason,
        )


def verify_chain(entries: Iterable[AuditEntry]) -> VerifyResult:
    """Verify an iterable of entries in ``seq`` order (the whole log, from seq 1)."""
    verifier = ChainVerifier()
    for entry in entries:
        if not verifier.feed(entry):
            break
    return verifier.result()
