"""The looks the round reads from signalling's sessions (``signal_sessions``, plain SQL).

A look is a view or a call: a session that showed a human a picture. Signalling writes the rows
(the check a view serves or an extra look's reason and note, migration 0009) and the device's
report of what it delivered (``video_s``, its ``stats`` message); the round only reads them, to
accept an outcome ``ok`` (:func:`supervision.checks.seen_video_s`) and to count views, seconds,
extra looks and calls in the morning report. Probes are machine looks: never read here.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import asyncpg

from supervision.checks import Look

_COLUMNS = (
    "session_id, purpose, staff_id, device_id, recipient_id, check_id, started_at, ended_at,"
    " video_s, look, look_reason, look_note"
)


def look_from(r: asyncpg.Record) -> Look:
    return Look(
        session_id=r["session_id"],
        purpose=r["purpose"],
        staff_id=r["staff_id"],
        device_id=r["device_id"],
        recipient_id=r["recipient_id"],
        check_id=r["check_id"],
        started_at=r["started_at"],
        ended_at=r["ended_at"],
        video_s=r["video_s"],
        is_extra=r["look"] == "extra",
        reason=r["look_reason"],
        note=r["look_note"],
    )


class PgLooks:
    """:class:`supervision.ports.Looks` over ``signal_sessions``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def of_check(self, check_id: str, staff_id: str) -> list[Look]:
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM signal_sessions WHERE check_id = $1 AND staff_id = $2"
            " AND purpose IN ('view', 'call') ORDER BY started_at, session_id",
            check_id,
            staff_id,
        )
        return [look_from(r) for r in rows]

    async def of_night(
        self, check_ids: Collection[str], *, since: datetime, until: datetime
    ) -> list[Look]:
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM signal_sessions WHERE purpose IN ('view', 'call') AND"
            " (check_id = ANY($1::text[])"
            "  OR (check_id IS NULL AND started_at >= $2 AND started_at < $3))"
            " ORDER BY started_at, session_id",
            list(check_ids),
            since,
            until,
        )
        return [look_from(r) for r in rows]
