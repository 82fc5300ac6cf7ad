"""Nobody falls through (issue 16): whole simulated nights where nobody works the queue
(``homecare simulate-night --operators idle``) or the patrol never answers (``--patrol idle``),
on real PostgreSQL through the service's bootstrap. The escalation ladder must send every check
that waits for a person to the patrol within its plan's deadlines, tell the shift lead of every
patrol task nobody takes, and repeat its alarms at the plan's interval; the morning report then
has no check that ended without a person seeing the brukare or a patrol being sent.

Small nights (10 and 5 homes) keep it fast; the note's night is
``homecare simulate-night --homes 100 --speed 120 --operators idle``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date

import pytest

from tools import night_sim

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

NIGHT = date(2025, 6, 10)


async def test_with_nobody_at_the_queue_every_check_reaches_the_patrol_in_time(
    database_url: str,
) -> None:
    sim = night_sim.NightSim(database_url, n_homes=10, night=NIGHT, operators_idle=True)
    result = await sim.run()
    assert result.ok, night_sim.render(result)
    ladder = result.ladder
    assert ladder.needed_person > 0
    assert ladder.patrol_tasks == ladder.needed_person  # every one, none seen by an operator
    assert ladder.escalated_to_patrol > 0  # the queued views went by the ladder
    assert (ladder.never_patrol, ladder.late, ladder.doubled) == ([], [], [])
    assert ladder.escalations["shift_lead"] == ladder.escalated_to_patrol
    assert ladder.repeats > 0
    assert ladder.off_interval == []
    assert "view_opened" not in result.staff_actions  # nobody worked the queue
    totals = result.report["totals"]
    assert totals["unattended"] == 0
    assert totals["views"] == 0
    assert (result.lost, result.doubled) == ([], [])
    reasons = {e["reason"] for r in result.report["recipients"] for e in r["escalations"]}
    assert "unanswered" in reasons


async def test_a_patrol_that_never_answers_reaches_the_shift_lead(database_url: str) -> None:
    sim = night_sim.NightSim(
        database_url, n_homes=5, night=NIGHT, operators_idle=True, patrol_idle=True
    )
    result = await sim.run()
    assert result.ok, night_sim.render(result)
    ladder = result.ladder
    # every patrol task: the shift lead told once; its alarms go on every 5 minutes until noon
    assert ladder.escalations["shift_lead"] == ladder.escalated_to_patrol + ladder.patrol_tasks
    assert ladder.alarms_to["shift_lead"] > 100 * ladder.patrol_tasks
    assert (ladder.lead_not_told, ladder.off_interval) == ([], [])
    totals = result.report["totals"]
    assert totals["unattended"] == 0  # a patrol was sent, though nobody came
    assert totals["deviations"] == ladder.patrol_tasks  # patrol_not_acknowledged, in the morning
    assert totals["alarm_repeats"] == ladder.repeats


def test_the_command_prints_the_ladder_and_passes(pg_admin_url: str) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HOMECARE_")},
        "HOMECARE_DATABASE_URL": pg_admin_url,
        "HOMECARE_LOG_LEVEL": "warning",
    }
    done = subprocess.run(
        [
            *(sys.executable, "-m", "tools.cli", "simulate-night", "--homes", "10"),
            *("--operators", "idle", "--night", NIGHT.isoformat()),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert out.rstrip().endswith("PASS")
    m = re.search(r"needing a person: (\d+); patrol tasks: (\d+) \((\d+) sent by the ladder", out)
    assert m is not None, out
    needed, tasks, by_ladder = map(int, m.groups())
    assert needed == tasks > by_ladder > 0
    assert "never a patrol task nor seen: 0; late: 0; sent twice: 0" in out
    assert "ended without a person seeing the brukare or a patrol sent: 0" in out
