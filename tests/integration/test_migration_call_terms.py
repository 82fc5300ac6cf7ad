"""Migration 0010: care plans stored before it get the call terms' defaults (an auto-answered
call capped at 300 s, announced for 3 s, the live countdown on), which the service then reads,
and the database refuses terms outside the validator's ranges."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from consent import rows
from services import db

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)


def _migration_0010() -> str:
    return next(sql for version, _, sql in db.migrations() if version == 10)


async def test_existing_plans_get_the_defaults_and_the_ranges_hold(
    owner: asyncpg.Connection,
) -> None:
    """As the schema's owner, as migrations run (DDL)."""
    conn = owner
    await conn.execute(
        "ALTER TABLE care_plans DROP COLUMN call_cap_s, DROP COLUMN announce_s,"
        " DROP COLUMN live_countdown"
    )
    await conn.execute(
        "INSERT INTO care_recipients (recipient_id, display_name, created_at, created_by)"
        " VALUES ('r-1', 'R', $1, 'test')",
        T0,
    )
    await conn.execute(
        "INSERT INTO care_plans (plan_id, recipient_id, decision_ref, valid_from, checks,"
        " view_cap_s, motion_may_clear, retry_interval_s, escalation, paused_checks,"
        " created_at, created_by) VALUES ('p-old', 'r-1', 'd', $1,"
        ' \'[{"at": "22:00", "tolerance_min": 15}]\', 30, false, 900, \'{patrol}\','
        " 'drop', $1, 'test')",
        T0,
    )

    await conn.execute(_migration_0010())

    plan = rows.plan(await conn.fetchrow("SELECT * FROM care_plans"))
    assert (plan.call_cap_s, plan.announce_s, plan.live_countdown) == (300, 3, True)
    for bad in ("call_cap_s = 59", "call_cap_s = 901", "announce_s = 2", "announce_s = 16"):
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(f"UPDATE care_plans SET {bad}")
    with pytest.raises(asyncpg.NotNullViolationError):
        await conn.execute("UPDATE care_plans SET live_countdown = NULL")
    await conn.execute("UPDATE care_plans SET call_cap_s = 60, announce_s = 15")
    assert await conn.fetchval("SELECT call_cap_s + announce_s FROM care_plans") == 75
