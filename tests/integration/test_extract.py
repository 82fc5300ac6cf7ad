"""The brukare's log extract (issue 18, item 1) after a simulated night with real sessions: the
command ``homecare extract`` and ``GET /api/recipients/{id}/extract`` list each view with the
staff member's name, the minute, the seconds and the check it served; each extract is one audit
entry ``extract.made``; a brukare of another organisation is 404; bad input (dates, from after
to, an unknown brukare, a bad format or language) is a clear 4xx or exit 2 and writes nothing."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from identity import org_store
from identity import store as staff_store
from kernel.audit import store as audit_store
from kernel.roles import Role
from services import app
from services.settings import load
from tools import cli, night_sim

pytestmark = pytest.mark.integration

NIGHT = date(2026, 3, 14)
ZONE = ZoneInfo("Europe/Stockholm")
ACCOUNTS = {"staff-sim-op1": "staff-simop01", "staff-sim-op2": "staff-simop02"}
NAMES = {"staff-simop01": "Olle Operatör", "staff-simop02": "Lisa <Natt> Åberg"}
PERIOD = {"from": "2026-03-13", "to": "2026-03-15"}  # seeded the day before


@dataclasses.dataclass
class Night:
    url: str
    recipient_id: str  # a brukare an operator looked at
    views: list[asyncpg.Record]


@pytest.fixture
async def night(database_url: str, owner: asyncpg.Connection) -> Night:
    """Four simulated homes through one night (the round, its checks and the operators' views
    as signalling stores them); the simulated operators get accounts with display names.

    The simulation's operators have ids no account can have (``staff-sim-op1``); as the owner,
    their sessions are given the ids of two accounts made for them."""
    result = await night_sim.NightSim(database_url, n_homes=4, night=NIGHT).run()
    assert result.ok, night_sim.render(result)
    for sim_id, staff_id in ACCOUNTS.items():
        await owner.execute(
            "UPDATE signal_sessions SET staff_id = $2 WHERE staff_id = $1", sim_id, staff_id
        )
    for staff_id, name in NAMES.items():
        await owner.execute(
            "INSERT INTO staff (staff_id, username, display_name, role, created_at)"
            " VALUES ($1, $2, $3, 'operator', now())",
            staff_id,
            staff_id.removeprefix("staff-"),
            name,
        )
    rid = await owner.fetchval(
        "SELECT recipient_id FROM signal_sessions WHERE purpose = 'view' AND video_s >= 1"
        " GROUP BY recipient_id ORDER BY count(*) DESC, recipient_id LIMIT 1"
    )
    assert rid is not None, "the simulated night opened no view"
    views = await owner.fetch(
        "SELECT s.session_id, s.staff_id, s.check_id, s.started_at, s.ended_at, s.video_s,"
        " c.agreed_at FROM signal_sessions s JOIN round_checks c USING (check_id)"
        " WHERE s.recipient_id = $1 AND s.purpose = 'view' ORDER BY s.started_at",
        rid,
    )
    return Night(database_url, rid, views)


async def _extracts(owner: asyncpg.Connection) -> list[audit_store.AuditEntry]:
    return await audit_store.entries(owner, action="extract.made")


def _run(argv: list[str], url: str) -> Any:
    args = cli.parser().parse_args(argv)
    settings = dataclasses.replace(load({}), database_url=url)
    return args.run(args, settings)


def _assert_views_listed(page: str, n: Night) -> None:
    rows = page.split("<tr")
    for v in n.views:
        minute = (
            f"{v['started_at'].astimezone(night_sim.ZoneInfo('Europe/Stockholm')):%Y-%m-%d %H:%M}"
        )
        row = next((r for r in rows if v["check_id"] in r and minute in r), None)
        assert row is not None, (v, minute)
        name = NAMES[v["staff_id"]].replace("<", "&lt;").replace(">", "&gt;")
        assert f"{name} ({v['staff_id']})" in row
        seconds = (v["ended_at"] - v["started_at"]).total_seconds()
        assert f"<td>{seconds:.1f}</td>" in row
        assert f"<td>{v['video_s']:.1f}</td>" in row
        agreed = v["agreed_at"].astimezone(ZONE)
        assert f"planerad {agreed:%H:%M}" in row
    assert "<Natt>" not in page
    assert "<script" not in page


async def test_the_command_lists_each_view_with_name_minute_seconds_and_check(
    night: Night, owner: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["extract", night.recipient_id, "--from", PERIOD["from"], "--to", PERIOD["to"]]
    assert await _run([*argv, "--format", "html"], night.url) == 0
    page = capsys.readouterr().out
    assert page.startswith("<!doctype html>")
    assert "Registerutdrag" in page
    _assert_views_listed(page, night)
    assert await _run([*argv, "--format", "json", "--lang", "en"], night.url) == 0
    doc = json.loads(capsys.readouterr().out)
    views = [e for e in doc["entries"] if e["kind"] == "check_view"]
    assert [e["session_id"] for e in views] == [v["session_id"] for v in night.views]
    assert {e["staff_name"] for e in views} <= set(NAMES.values())
    assert doc["totals"]["video_seconds"] >= sum(v["video_s"] or 0 for v in night.views) - 0.01
    # the brukare's consents and the camera's binding of that evening are there too
    kinds = {e["kind"] for e in doc["entries"]}
    assert {"consent_given", "device_bound"} <= kinds
    made = await _extracts(owner)
    assert [(e.actor, e.subject, e.data["format"], e.data["via"]) for e in made] == [
        ("system", night.recipient_id, "html", "cli"),
        ("system", night.recipient_id, "json", "cli"),
    ]
    assert made[0].data["from"] == PERIOD["from"]
    assert made[0].data["looks"] == doc["totals"]["looks"]


BAD_DATES = [
    ["--from", "2026-3-14"],
    ["--to", "tomorrow"],
    ["--from", "2026-03-15", "--to", "2026-03-14"],
]


async def test_the_command_refuses_bad_dates_and_writes_nothing(
    night: Night, owner: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in BAD_DATES:  # one night for every case: the night is the costly part
        assert await _run(["extract", night.recipient_id, *argv], night.url) == 2, argv
        captured = capsys.readouterr()
        assert captured.out == "", argv
        assert "homecare extract:" in captured.err, argv
    assert await _extracts(owner) == []


async def test_the_command_refuses_an_unknown_brukare_and_a_bad_format(
    night: Night, owner: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _run(["extract", "r-nobody"], night.url) == 2
    assert "no brukare 'r-nobody'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.parser().parse_args(["extract", night.recipient_id, "--format", "pdf"])
    assert e.value.code == 2
    assert await _extracts(owner) == []


@pytest.fixture
async def composed(
    night: Night, mqtt_url: str, topic_prefix: str
) -> AsyncIterator[tuple[TestClient, dict[str, tuple[str, dict[str, str]]]]]:  # type: ignore[type-arg]
    """The service on the night's database, with an administrator, an auditor and an operator of
    the default organisation, and an administrator of another one."""
    settings = dataclasses.replace(
        load({}),
        database_url=night.url,
        mqtt_url=mqtt_url,
        mqtt_topic_prefix=topic_prefix,
        http_rate_per_s=100_000,
        http_rate_burst=100_000,
    )
    async with app.runtime(settings) as rt:
        who: dict[str, tuple[str, dict[str, str]]] = {}
        async with rt.pool.acquire() as conn:
            await org_store.create_organisation(
                conn, organisation_id="kommun-b", name="Kommun B", kind="municipality",
                actor="system", at=rt.clock(),
            )  # fmt: skip
            for name, role, org in (
                ("admin", Role.ADMINISTRATOR, None),
                ("auditor", Role.AUDITOR, None),
                ("operator", Role.OPERATOR, None),
                ("other", Role.ADMINISTRATOR, "kommun-b"),
            ):
                account = await staff_store.create_staff(
                    conn,
                    username=f"extract-{name}",
                    role=role,
                    password=None,
                    is_service=True,
                    organisation_id=org,
                )
                token = await staff_store.create_token(
                    conn, staff_id=account.staff_id, role=role, ttl_s=600, label="extract"
                )
                who[name] = (account.staff_id, {"Authorization": f"Bearer {token}"})
        async with TestClient(TestServer(rt.app)) as client:
            yield client, who


async def test_the_route_for_case_officers_and_auditors(
    night: Night,
    owner: asyncpg.Connection,
    composed: tuple[TestClient, dict[str, tuple[str, dict[str, str]]]],  # type: ignore[type-arg]
) -> None:
    client, who = composed
    url = f"/api/recipients/{night.recipient_id}/extract"
    admin_id, admin = who["admin"]
    resp = await client.get(url, params={**PERIOD, "format": "html"}, headers=admin)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/html"
    _assert_views_listed(await resp.text(), night)
    auditor_id, auditor = who["auditor"]
    resp = await client.get(url, params={**PERIOD, "why": "begäran 2026-03-16"}, headers=auditor)
    assert resp.status == 200
    doc = await resp.json()
    assert doc["recipient"]["recipient_id"] == night.recipient_id
    views = [e for e in doc["entries"] if e["kind"] == "check_view"]
    assert [e["check_id"] for e in views] == [v["check_id"] for v in night.views]
    en = await client.get(url, params={**PERIOD, "format": "html", "lang": "en"}, headers=admin)
    assert "View for a check" in await en.text()
    made = await _extracts(owner)
    assert [(e.actor, e.subject, e.data["format"]) for e in made] == [
        (admin_id, night.recipient_id, "html"),
        (auditor_id, night.recipient_id, "json"),
        (admin_id, night.recipient_id, "html"),
    ]
    assert made[1].data["why"] == "begäran 2026-03-16"
    assert made[1].data["route"] == "GET /api/recipients/{recipient_id}/extract"


REFUSED: list[tuple[str, dict[str, str], int, str | None]] = [
    ("admin", {"from": "2026-3-14"}, 422, "bad_date"),
    ("admin", {"to": "2026-02-30"}, 422, "bad_date"),
    ("admin", {"from": "2026-03-15", "to": "2026-03-14"}, 422, "bad_period"),
    ("admin", {"format": "pdf"}, 422, "bad_value"),
    ("admin", {"lang": "de"}, 422, "bad_value"),
    ("admin", {"why": " "}, 400, "bad_query"),
    ("operator", {}, 403, None),  # the night's staff read no extracts
    ("other", {}, 404, "not_found"),  # another organisation's brukare does not exist
]


async def test_the_route_refuses_and_writes_nothing(
    night: Night,
    owner: asyncpg.Connection,
    composed: tuple[TestClient, dict[str, tuple[str, dict[str, str]]]],  # type: ignore[type-arg]
) -> None:
    client, who = composed
    for who_, query, status, code in REFUSED:  # one night for every case
        resp = await client.get(
            f"/api/recipients/{night.recipient_id}/extract", params=query, headers=who[who_][1]
        )
        assert resp.status == status, (who_, query, await resp.text())
        if code is not None:
            error = (await resp.json())["error"]
            assert error["code"] == code, (who_, query)
            field = {"bad_date": next(iter(query), None)}.get(code, error["field"])
            assert error["field"] == field, (who_, query)
    unknown = await client.get("/api/recipients/r-nobody/extract", headers=who["admin"][1])
    assert unknown.status == 404
    assert await _extracts(owner) == []
