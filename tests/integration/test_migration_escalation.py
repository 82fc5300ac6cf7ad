"""Migration 0013 on a database from before it: care plans get the default deadlines (the same
as ``consent.model.DEFAULT_DEADLINES``), a check already alarmed in its step counts that alarm so
the ladder goes on with the second (not the first again), older alarm rows are first alarms to
the operators, and a check stored without deadlines in its policy gets the defaults."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from consent import rows
from consent.model import DEFAULT_DEADLINES
from services import db
from supervision import checks as ch
from tests.integration.test_escalation import MIN, WS, night, to_needs_view
from tests.rounds_support import basis

pytestmark = pytest.mark.integration

BEFORE_0013 = """
ALTER TABLE care_plans DROP COLUMN deadlines;
DROP INDEX round_checks_next_rung;
ALTER TABLE round_checks DROP COLUMN alarm_count, DROP COLUMN lead_alerted,
    DROP COLUMN next_rung_at;
ALTER TABLE round_alarms DROP CONSTRAINT round_alarms_pkey, DROP COLUMN repeat,
    DROP COLUMN kind, DROP COLUMN addressed_to, ADD PRIMARY KEY (check_id, version);
"""


def _migration_0013() -> str:
    return next(sql for version, _, sql in db.migrations() if version == 13)


async def test_plans_and_a_night_under_way_carry_on(
    pool: asyncpg.Pool, owner: asyncpg.Connection
) -> None:
    await owner.execute(BEFORE_0013)  # DDL: as the schema's owner, as migrations run
    await pool.execute(
        "INSERT INTO care_recipients (recipient_id, display_name, created_at, created_by)"
        " VALUES ('r-1', 'R', $1, 'test')",
        WS,
    )
    await pool.execute(
        "INSERT INTO care_plans (plan_id, recipient_id, decision_ref, valid_from, checks,"
        " view_cap_s, motion_may_clear, retry_interval_s, escalation, paused_checks,"
        " created_at, created_by) VALUES ('p-old', 'r-1', 'd', $1,"
        ' \'[{"at": "22:00", "tolerance_min": 15}]\', 30, false, 900, \'{patrol}\','
        " 'drop', $1, 'test')",
        WS,
    )
    n = await night(pool, basis("r1"))
    queued = await to_needs_view(n, "r1", WS)
    assert queued.deadline is not None
    await pool.execute("UPDATE round_checks SET policy = policy - 'deadlines'")  # as stored then
    # the old watchdog raised the step's one alarm
    await pool.execute("UPDATE round_checks SET alarmed_version = version")
    await pool.execute(
        "INSERT INTO round_alarms (check_id, version, state, deadline, raised_at)"
        " VALUES ($1, $2, 'needs_view', $3, $4)",
        queued.check_id,
        queued.version,
        queued.deadline,
        queued.deadline + timedelta(seconds=31),
    )

    await owner.execute(_migration_0013())

    plan = rows.plan(await pool.fetchrow("SELECT * FROM care_plans"))
    assert plan.deadlines == DEFAULT_DEADLINES
    stored = await n.store.get(queued.check_id)
    assert stored.policy.deadlines == DEFAULT_DEADLINES
    old = await pool.fetchrow("SELECT repeat, kind, addressed_to FROM round_alarms")
    assert tuple(old) == (1, "alarm", "operator")
    alarms, escalated = await n.store.watch_deadlines(WS + 8 * MIN)
    assert [(a.repeat, a.kind) for a in alarms] == [(2, ch.AlarmKind.ALARM)]
    assert escalated == []
    alarms, escalated = await n.store.watch_deadlines(WS + 10 * MIN)
    assert [(a.kind, a.to.value) for a in alarms] == [(ch.AlarmKind.ESCALATION, "shift_lead")]
    assert [t.after for t in escalated] == [ch.State.PATROL]
