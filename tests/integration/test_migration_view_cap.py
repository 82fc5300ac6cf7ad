"""Migration 0008: plans and planned checks stored with a view cap outside 10..60 s (allowed
before) are brought into the range, so the service can still load them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import asyncpg
import pytest

from services import db
from supervision.store import policy_from

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)


def _migration_0008() -> str:
    return next(sql for version, _, sql in db.migrations() if version == 8)


async def test_caps_outside_the_range_are_clamped_and_then_refused(
    owner: asyncpg.Connection,
) -> None:
    """As the schema's owner, as migrations run (DDL)."""
    conn = owner
    await conn.execute("ALTER TABLE care_plans DROP CONSTRAINT care_plans_view_cap_range")
    await conn.execute(
        "INSERT INTO care_recipients (recipient_id, display_name, created_at, created_by)"
        " VALUES ('r-1', 'R', $1, 'test')",
        T0,
    )
    for plan_id, cap in [("p-long", 300), ("p-short", 5), ("p-ok", 30)]:
        await conn.execute(
            "INSERT INTO care_plans (plan_id, recipient_id, decision_ref, valid_from, checks,"
            " view_cap_s, motion_may_clear, retry_interval_s, escalation, paused_checks,"
            " created_at, created_by) VALUES ($1, 'r-1', 'd', $2, '[]', $3, true, 900,"
            " '{}', 'drop', $2, 'test')",
            plan_id,
            T0,
            cap,
        )
    policy = {
        "view_cap_s": 300,
        "may_clear_without_human": True,
        "retry_interval_s": 900,
        "ladder": ["patrol"],
        "paused_visit": False,
    }
    await conn.execute(
        "INSERT INTO round_checks (check_id, recipient_id, night, agreed, agreed_at,"
        " window_start, window_end, policy, state, since, deadline, attempt, ladder_step,"
        " version, planned_at) VALUES ('20261206.0000.r-1', 'r-1', '2026-12-06', '23:00',"
        " $1, $1, $1, $2::jsonb, 'planned', $1, $1, 1, 0, 0, $1)",
        T0,
        json.dumps(policy),
    )

    await conn.execute(_migration_0008())

    caps = dict(await conn.fetch("SELECT plan_id, view_cap_s FROM care_plans"))
    assert caps == {"p-long": 60, "p-short": 10, "p-ok": 30}
    raw = await conn.fetchval("SELECT policy::text FROM round_checks")
    assert policy_from(raw).view_cap_s == 60
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute("UPDATE care_plans SET view_cap_s = 61 WHERE plan_id = 'p-ok'")
