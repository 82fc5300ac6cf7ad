"""A simulated night (``tools.night_sim``) on the real database: every check documented as seen
rests on a look of its operator that delivered video, and the morning report's views and seconds
are the sessions' delivered seconds (issue 15)."""

from __future__ import annotations

from datetime import date

import asyncpg
import pytest

from supervision.checks import MIN_SEEN_VIDEO_S, State
from tools import night_sim

pytestmark = pytest.mark.integration


async def test_the_report_says_what_the_sessions_delivered(
    database_url: str, pool: asyncpg.Pool
) -> None:
    sim = night_sim.NightSim(database_url, n_homes=20, night=date(2026, 6, 10))
    result = await sim.run()
    assert result.ok, night_sim.render(result)
    assert result.seconds_match
    looks = await pool.fetch(
        "SELECT purpose, check_id, staff_id, video_s, frames_sent FROM signal_sessions"
        " WHERE purpose IN ('view', 'call')"
    )
    assert looks
    assert all(r["video_s"] is not None for r in looks)  # every device reported
    t = result.report["totals"]
    views = [r for r in looks if r["purpose"] == "view"]
    calls = [r for r in looks if r["purpose"] == "call"]
    assert (t["views"], t["calls"]) == (len(views), len(calls))
    assert t["view_seconds"] == pytest.approx(sum(r["video_s"] for r in views), abs=0.051)
    assert t["call_seconds"] == pytest.approx(sum(r["video_s"] for r in calls), abs=0.051)
    assert t["view_seconds"] > 0
    per_check = sum(x["seconds"] for r in result.report["recipients"] for x in r["checks"])
    assert per_check == pytest.approx(t["view_seconds"] + t["call_seconds"], abs=0.5)
    documented = [
        row
        for row in await pool.fetch("SELECT check_id, holder, state FROM round_checks")
        if row["state"] == State.DOCUMENTED.value
    ]
    assert documented
    for row in documented:
        seen = [
            r["video_s"]
            for r in looks
            if r["check_id"] == row["check_id"] and r["staff_id"] == row["holder"]
        ]
        assert max(seen, default=0.0) >= MIN_SEEN_VIDEO_S, row
