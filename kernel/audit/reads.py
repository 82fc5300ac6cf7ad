"""Audited reads (pure): the names of read entries, the caller's reason, and when a read folds.

Opening a brukare's record, a check's history, a report or the handover, and an audit extract
each write one audit entry (:class:`Read`): the actor is the caller's staff id, the subject what
was read (a recipient id, a check id, a night's date; ``None`` for a list), and ``data`` the route
and, when the caller said why (``?why=``), the reason. A list is one entry, never one per row.
An audit extract (``GET /api/audit``) was audited before reads were (``audit.exported``, with
its filters and count, every time, unfolded: extracts are rare and each leaves the system); its
entry now carries the route and reason too. The camera register export is ``register.exported``.

Repeated reads fold: a read by the same actor of the same action, subject and reason within
:data:`FOLD_S` of the last entry written for them writes nothing, so the console's re-reads (it
reloads an open record on every live change) leave one entry per window, not one per reload. The
fold is decided here and applied by ``kernel.audit.store.append_read`` under the chain's lock;
the client has no say in it (a header marking a "refresh" would let any caller read unlogged).

No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class Read(StrEnum):
    """The audit actions of reads (``docs/security.md`` lists them)."""

    RECIPIENT_VIEWED = "recipient.viewed"  # subject: the recipient id
    RECIPIENTS_LISTED = "recipient.listed"  # the list of brukare; subject: none
    INSTALLATIONS_LISTED = "installation.listed"  # addresses and devices; subject: none
    CHECK_VIEWED = "check.viewed"  # subject: the check id; data: its recipient id
    REPORT_VIEWED = "report.viewed"  # subject: the night (date); data: morning or handover
    AUDIT_EXPORTED = "audit.exported"  # an audit extract; never folded (see below)


FOLD_S = 300.0
"""Reads of one subject by one actor (same action, same reason) within this many seconds of the
last entry written for them are one entry."""
MAX_WHY = 200
"""The longest reason a caller may give for a read (characters)."""
_WHY = re.compile(r"^[^\x00-\x1f\x7f]+\Z")


class BadReason(ValueError):
    """``?why=`` is blank, too long, or holds control characters (400, nothing is read)."""

    http_status = 400
    code = "bad_query"
    field = "why"


def reason(raw: str | None) -> str | None:
    """The caller's reason for a read from ``?why=``, stripped; ``None`` when not given."""
    if raw is None:
        return None
    text = raw.strip()
    if not text or len(text) > MAX_WHY or not _WHY.match(text) or _lone_surrogate(text):
        raise BadReason(f"why is 1 to {MAX_WHY} printable characters")
    return text


def _lone_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)


def read_data(route: str, why: str | None, **more: Any) -> dict[str, Any]:
    """The ``data`` of a read entry: the route, the reason if given, and any extra facts."""
    data: dict[str, Any] = {"route": route, **more}
    if why is not None:
        data["why"] = why
    return data


def folds(
    last_at: datetime | None,
    last_data: Mapping[str, Any] | None,
    *,
    at: datetime,
    data: Mapping[str, Any],
    fold_s: float = FOLD_S,
) -> bool:
    """Does a read at ``at`` fold into the last entry of the same actor, action and subject?

    Only with the same reason (a new reason is new information) and within ``fold_s`` after it
    (an entry from the future, a clock set back, does not swallow reads)."""
    if last_at is None or last_data is None:
        return False
    if last_data.get("why") != data.get("why"):
        return False
    return last_at <= at < last_at + timedelta(seconds=fold_s)
