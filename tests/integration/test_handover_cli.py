"""``homecare handover`` as a real process on a read-only database: the night's summary as JSON,
the printable page in Swedish or English, and a clear exit 3 when the database is gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from tools.embedded import free_port

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("Europe/Stockholm")
NIGHT = date(2026, 11, 20)
T0 = datetime(2026, 11, 1, tzinfo=UTC)
POLICY = json.dumps(
    {
        "view_cap_s": 30,
        "may_clear_without_human": False,
        "retry_interval_s": 1200,
        "ladder": ["retry", "call", "patrol"],
        "paused_visit": True,
    }
)
FINAL = {"cleared", "documented", "visited", "escalated", "deviation"}


async def _check(conn: asyncpg.Connection, rid: str, hhmm: str, state: str, reason: str) -> None:
    h, m = map(int, hhmm.split(":"))
    day = NIGHT if h >= 12 else NIGHT + timedelta(days=1)
    at = datetime(day.year, day.month, day.day, h, m, tzinfo=ZONE)
    await conn.execute(
        "INSERT INTO round_checks (check_id, recipient_id, device_id, night, agreed, agreed_at,"
        " window_start, window_end, policy, state, since, deadline, attempt, ladder_step, reason,"
        " version, planned_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12,"
        " 1, 0, $13, 3, $11)",
        f"{NIGHT:%Y%m%d}.{hhmm.replace(':', '')}.{rid}",
        rid,
        f"cam-{rid}",
        NIGHT,
        at.timetz().replace(tzinfo=None),
        at,
        at - timedelta(minutes=15),
        at + timedelta(minutes=15),
        POLICY,
        state,
        T0,
        None if state in FINAL else at + timedelta(minutes=15),
        reason,
    )


async def _seed(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO care_recipients (recipient_id, display_name, home, created_at,"
            " created_by) VALUES ('rcp-anna', 'Anna Andersson', 'Storgatan 1', $1, 'test')",
            T0,
        )
        await _check(conn, "rcp-anna", "22:30", "documented", "seen")
        await _check(conn, "rcp-anna", "02:00", "patrol_acked", "camera_dark")
        await _check(conn, "rcp-bo", "23:00", "deviation", "unfinished_needs_view")
        await conn.execute(
            "INSERT INTO pauses (pause_id, recipient_id, starts_at, ends_at, source, reason,"
            " note, created_at, created_by) VALUES ('p-1', 'rcp-anna', $1, NULL, 'relative',"
            " 'visitors', 'barnbarn sover över', $1, 'staff-admin')",
            T0,
        )
        name = url.rpartition("/")[2]
        # the command reads on a read-only connection, as from a streaming replica
        await conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    finally:
        await conn.close()


def _handover(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMECARE_")}
    env["HOMECARE_LOG_FORMAT"] = "json"
    env["HOMECARE_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", "handover", "--night", NIGHT.isoformat(), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_handover_is_printed_from_a_read_only_database(
    database_url: str, tmp_path: Path
) -> None:
    await _seed(database_url)
    done = _handover(database_url=database_url)
    assert done.returncode == 0, done.stderr
    h = json.loads(done.stdout)
    assert h["format"] == "homecare-handover/1"
    assert h["night"] == NIGHT.isoformat()
    assert [(t["recipient_id"], t["state"]) for t in h["open_patrol_tasks"]] == [
        ("rcp-anna", "patrol_acked")
    ]
    assert [d["reason"] for d in h["deviations"]] == ["unfinished_needs_view"]
    assert [p["reason"] for p in h["pauses"]] == ["visitors"]
    assert "Anna" not in done.stdout  # pseudonymous ids only
    assert "barnbarn" not in done.stdout  # a pause's note stays with consent

    page = tmp_path / "handover.html"
    html = _handover(
        "--format", "html", "--lang", "en", "--out", str(page), database_url=database_url
    )
    assert html.returncode == 0, html.stderr
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>")
    assert "Open patrol tasks (1)" in text
    assert "Deviations (1)" in text
    sv = _handover("--format", "html", database_url=database_url)
    assert "Överlämning – natten 2026-11-20" in sv.stdout


def test_no_database_is_exit_3_with_a_clear_message() -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    done = _handover(database_url=dead)
    assert done.returncode == 3
    assert "cannot be reached" in done.stderr
    assert done.stdout == ""
