"""``homecare night-sheet``: tonight's physical-visit list from a read-only database, from its last
export when the database is gone, and from the care plans when tonight was never planned.

The command runs as a real process. The database is made read-only for everyone
(``default_transaction_read_only``), as a hot-standby replica is.
"""

from __future__ import annotations

import json
import os
import stat
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
FINAL = {"cleared", "documented", "visited", "escalated", "deviation"}


def _at(hhmm: str) -> datetime:
    h, m = map(int, hhmm.split(":"))
    day = NIGHT if h >= 12 else NIGHT + timedelta(days=1)
    return datetime(day.year, day.month, day.day, h, m, tzinfo=ZONE)


async def _recipient(conn: asyncpg.Connection, rid: str, name: str, home: str, checks: str) -> None:
    await conn.execute(
        "INSERT INTO care_recipients (recipient_id, display_name, home, created_at, created_by)"
        " VALUES ($1, $2, $3, $4, 'staff-admin')",
        rid,
        name,
        home,
        T0,
    )
    await conn.execute(
        "INSERT INTO care_plans (plan_id, recipient_id, decision_ref, valid_from, checks,"
        " view_cap_s, motion_may_clear, retry_interval_s, escalation, instruction, paused_checks,"
        " created_at, created_by) VALUES ($1, $2, 'BB-1', $3, $4::jsonb, 30, true, 900,"
        " '{call,patrol}', $5, 'drop', $3, 'staff-admin')",
        f"plan-{rid}",
        rid,
        T0,
        checks,
        f"Nyckel i nyckelgömma för {rid}",
    )


async def _check(conn: asyncpg.Connection, rid: str, hhmm: str, state: str) -> None:
    at = _at(hhmm)
    await conn.execute(
        "INSERT INTO round_checks (check_id, recipient_id, device_id, night, agreed, agreed_at,"
        " window_start, window_end, policy, state, since, deadline, attempt, ladder_step, version,"
        " planned_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '{}'::jsonb, $9, $10, $11, 1, 0, 0,"
        " $10)",
        f"{NIGHT:%Y%m%d}.{hhmm.replace(':', '')}.{rid}",
        rid,
        f"cam-{rid}",
        NIGHT,
        at.timetz().replace(tzinfo=None),
        at,
        at - timedelta(minutes=15),
        at + timedelta(minutes=15),
        state,
        T0,
        None if state in FINAL else at + timedelta(minutes=15),
    )


async def _seed(url: str, *, planned: bool) -> None:
    conn = await asyncpg.connect(url)
    try:
        await _recipient(conn, "rcp-anna", "Anna Andersson", "Storgatan 1", '[{"at": "22:30"}]')
        await _recipient(
            conn, "rcp-bo", "Bo Berg", "Lillgatan 2", '[{"at": "21:00"}, {"at": "02:00"}]'
        )
        await _recipient(conn, "rcp-cia", "Cia Ceder", "Torget 3", '[{"at": "23:00"}]')
        await conn.execute(
            "INSERT INTO pauses (pause_id, recipient_id, starts_at, ends_at, source, reason,"
            " created_at, created_by) VALUES ('p-1', 'rcp-cia', $1, $2, 'staff', 'hospital',"
            " $1, 'staff-admin')",
            _at("18:00"),
            _at("10:00"),
        )
        if planned:
            await _check(conn, "rcp-anna", "22:30", "planned")
            await _check(conn, "rcp-bo", "21:00", "documented")
            await _check(conn, "rcp-bo", "02:00", "patrol")
            await _check(conn, "rcp-cia", "23:00", "deviation")
        name = url.rpartition("/")[2]
        # from now on the database refuses writes, as a streaming replica does
        await conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    finally:
        await conn.close()


def _sheet(*args: str, database_url: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMECARE_")}
    env["HOMECARE_LOG_FORMAT"] = "json"
    if database_url is not None:
        env["HOMECARE_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", "night-sheet", "--night", NIGHT.isoformat(), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _visit_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.rstrip().endswith("[  ]")]


async def test_from_a_read_only_database_then_from_its_export(
    database_url: str, tmp_path: Path
) -> None:
    await _seed(database_url, planned=True)
    export = tmp_path / "night-sheet.json"

    done = _sheet("--export", str(export), database_url=database_url)
    assert done.returncode == 0, done.stderr
    lines = _visit_lines(done.stdout)
    # still to visit, in time order; documented and deviation are not on the list
    assert [line.split()[0] for line in lines] == ["22:30", "02:00"]
    assert "Anna Andersson (rcp-anna)" in lines[0]
    assert "Storgatan 1" in lines[0]
    assert "Nyckel i nyckelgömma" in lines[0]
    assert "nattpatrull" in lines[1]
    assert "planerad" in lines[0]
    assert "Att besöka: 2   Redan utförda: 1   Ska inte besökas: 1" in done.stdout
    assert "databasen (skrivskyddad)" in done.stdout
    assert "Cia Ceder" in done.stdout.split("Ska inte besökas (avvikelse / uppehåll):")[1]
    assert stat.S_IMODE(export.stat().st_mode) == 0o600
    saved = json.loads(export.read_text())
    assert saved["format"] == "homecare-night-sheet/1"
    assert len(saved["visits"]) == 4
    # the log names no brukare
    assert "Anna" not in done.stderr

    # the database is gone: the same command prints the last export and says so
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    down = _sheet("--export", str(export), database_url=dead)
    assert down.returncode == 0, down.stderr
    assert "SENASTE EXPORT" in down.stdout
    assert "Databasen kunde inte nås" in down.stdout
    assert _visit_lines(down.stdout) == lines
    assert json.loads(export.read_text()) == saved  # an export is never overwritten from itself

    # and with no database configured at all, in English, as printable HTML
    html = tmp_path / "sheet.html"
    offline = _sheet(
        "--from-export", str(export), "--lang", "en", "--format", "html", "--out", str(html),
        database_url=None,
    )  # fmt: skip
    assert offline.returncode == 0, offline.stderr
    page = html.read_text()
    assert page.startswith("<!doctype html>")
    assert "PHYSICAL VISITS" in page
    assert page.index("Anna Andersson") < page.index("Bo Berg")
    assert "Bo Berg" in page


async def test_an_unplanned_night_comes_from_the_care_plans(database_url: str) -> None:
    await _seed(database_url, planned=False)
    done = _sheet("--lang", "en", database_url=database_url)
    assert done.returncode == 0, done.stderr
    lines = _visit_lines(done.stdout)
    # Bo at 21:00 and 02:00, Anna at 22:30; Cia's pause drops her check
    assert [line.split()[0] for line in lines] == ["21:00", "22:30", "02:00"]
    assert "the care plans (tonight was not planned)" in done.stdout
    assert "Cia" not in done.stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ('{"format": "something-else"}', "not a night-sheet export"),
        ('{"format": "homecare-night-sheet/1", "night": "2026-11-20"}', "lacks the field"),
        (
            '{"format": "homecare-night-sheet/1", "night": "2026-11-20",'
            ' "zone": "Europe/Stockholm", "generated_at": "2026-11-20T20:00:00",'
            ' "source": "database", "visits": []}',
            "time without a zone",
        ),
    ],
)
def test_a_bad_export_is_refused_clearly(tmp_path: Path, content: str, message: str) -> None:
    export = tmp_path / "bad.json"
    export.write_text(content)
    done = _sheet("--from-export", str(export), database_url=None)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""
    assert export.read_text() == content


async def test_an_export_of_another_night_is_not_printed_as_tonight(
    database_url: str, tmp_path: Path
) -> None:
    await _seed(database_url, planned=True)
    export = tmp_path / "night-sheet.json"
    assert _sheet("--export", str(export), database_url=database_url).returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMECARE_")}
    old = subprocess.run(
        [sys.executable, "-m", "tools.cli", "night-sheet", "--from-export", str(export)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert old.returncode == 2
    assert f"the export is of the night {NIGHT}" in old.stderr
    assert f"--night {NIGHT} prints it anyway" in old.stderr
    assert old.stdout == ""


def test_no_database_and_no_export_is_a_clear_error(tmp_path: Path) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    done = _sheet(database_url=dead)
    assert done.returncode == 2
    assert "cannot be reached" in done.stderr
    assert "--export" in done.stderr
