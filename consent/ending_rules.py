"""A brukare's service ends (pure): why, when, and what ends with it.

When the municipality's decision ends (the brukare is discharged, has died or has moved away),
``POST /api/recipients/{id}/end`` records the end and, in the same transaction, ends everything
that would let supervision go on: every bound device is unbound and put back in quarantine, every
care plan in force or still to come ends, every open or future pause ends, and the round re-plans
(a plan no longer in force drops the remaining checks; later nights plan none). Nothing is erased
then: the record stays as it is for the retention period (``retention_ended_recipient_days``),
after which the retention job erases the personal data (:mod:`services.retention`).

The decisions here take their facts and the instant as arguments: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from kernel.values import Problem


class EndReason(StrEnum):
    """Why a brukare's service ends."""

    DISCHARGED = "discharged"  # the decision ended (no longer needs night supervision)
    DECEASED = "deceased"
    MOVED = "moved"  # moved out of the municipality or into residential care


@dataclass(frozen=True, slots=True)
class Period:
    """Something of the brukare that runs from ``start`` until ``end`` (``None``: open)."""

    ident: str
    start: datetime
    end: datetime | None


def validate_end(*, ended_at: datetime, at: datetime, created_at: datetime | None) -> list[Problem]:
    """Problems with ending at ``ended_at``, asked at ``at``: an end in the future is refused
    (the case officer records it when it has happened), as is one before the brukare was
    registered."""
    problems: list[Problem] = []
    if ended_at.tzinfo is None:
        return [Problem("ended_at", "invalid_datetime", "ended_at must be timezone-aware")]
    if ended_at > at:
        problems.append(
            Problem("ended_at", "in_future", "a service ends when it has ended, not in advance")
        )
    if created_at is not None and ended_at < created_at:
        problems.append(
            Problem(
                "ended_at", "before_registered", "ended_at is before the brukare was registered"
            )
        )
    return problems


def to_end(periods: Iterable[Period], ended_at: datetime) -> list[tuple[str, datetime]]:
    """The plans or pauses that must end, each with its end: those still open at ``ended_at`` or
    starting after it. One starting later ends at its own start (it never runs); the rest end at
    ``ended_at``. Those already over by then are left as they are."""
    found: list[tuple[str, datetime]] = []
    for p in periods:
        if p.end is not None and p.end <= ended_at:
            continue
        found.append((p.ident, max(ended_at, p.start)))
    return sorted(found)
