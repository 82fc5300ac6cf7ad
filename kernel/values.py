"""Pure values every slice shares: validation problems, pseudonymous ids, local wall-clock times.

``Problem`` is one validation failure naming the request field; the slices' rules return lists of
them and the HTTP layer shows the first as a 422. Local times are resolved in a zone, refusing the
wall-clock times that do not exist or occur twice on the DST nights.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Problem:
    """One validation failure: the request field (``checks[2].at``), a stable code, a message."""

    field: str
    code: str
    message: str


class LocalKind(StrEnum):
    EXISTS = "exists"
    NONEXISTENT = "nonexistent"  # skipped when clocks go forward (March)
    AMBIGUOUS = "ambiguous"  # occurs twice when clocks go back (October)


def local_kind(wall: datetime, zone: tzinfo) -> LocalKind:
    """Whether a naive local wall-clock time exists once, never, or twice in ``zone``."""
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return LocalKind.EXISTS
    back = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    return (
        LocalKind.AMBIGUOUS if back == wall.replace(tzinfo=None, fold=0) else LocalKind.NONEXISTENT
    )


def resolve_local(wall: datetime, zone: tzinfo, field: str) -> datetime | Problem:
    """A naive local wall-clock timestamp as an instant, refusing DST gaps and repeats."""
    kind = local_kind(wall, zone)
    if kind is LocalKind.NONEXISTENT:
        return Problem(
            field,
            "nonexistent_local_time",
            f"{field}: {wall:%Y-%m-%d %H:%M} does not exist in {zone} "
            "(clocks go forward); give a UTC offset or another time",
        )
    if kind is LocalKind.AMBIGUOUS:
        return Problem(
            field,
            "ambiguous_local_time",
            f"{field}: {wall:%Y-%m-%d %H:%M} occurs twice in {zone} "
            "(clocks go back); give a UTC offset",
        )
    return wall.replace(tzinfo=zone)


_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def is_id(value: object) -> bool:
    """A pseudonymous id: 1..64 of ``[a-z0-9-]``, not starting with a dash."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= 64
        and value[0] != "-"
        and set(value) <= _ID_CHARS
    )
