"""The brukare's log extract in the console (issue 18, item 1): an administrator opens a brukare,
picks the period and opens the extract; the printable page (a new tab, no script) lists each look
with the staff member's name, the minute, the seconds and the check it served.

The looks are sessions as signalling stores them, seeded as the schema's owner (the API and the
command are proven after a real simulated night in ``tests/integration/test_extract.py``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from tests.e2e import browser as b

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

ZONE = ZoneInfo("Europe/Stockholm")
STAFF = ("staff-extract01", "Nora Nattsköterska")
T = TypeVar("T")


@pytest.fixture(scope="module")
def database(pg_admin_url: str, template_db: str) -> Iterator[str]:
    with b.fresh_database(pg_admin_url, template_db) as url:
        yield url


@pytest.fixture(scope="module")
def served(database: str, mqtt_url: str) -> Iterator[b.Backend]:
    prefix = f"t{int(time.time() * 1000) % 10**9}x/hc/v1"
    with b.backend(database, mqtt_url, prefix) as backend:
        yield backend


@pytest.fixture(scope="module")
def accounts(database: str) -> dict[str, str]:
    return b.demo_accounts(database)


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` on a loop of its own (Playwright's sync API holds this thread's loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = b.launch(p)
        yield browser
        browser.close()


async def _seed_looks(url: str, rid: str, at: datetime) -> list[tuple[str, datetime, float]]:
    """A staff account with a display name and two closed views of ``rid``'s camera for two
    checks, as signalling stores them; (check id, start, seconds open) of each."""
    conn = await asyncpg.connect(url)
    looks = []
    try:
        await conn.execute(
            "INSERT INTO staff (staff_id, username, display_name, role, created_at)"
            " VALUES ($1, 'nora-natt', $2, 'operator', now())",
            *STAFF,
        )
        for i, (minutes, open_s, video_s) in enumerate(((0, 23.0, 21.5), (95, 41.0, 39.0))):
            started = at + timedelta(minutes=minutes)
            check = f"{started.astimezone(ZONE):%Y%m%d.%H%M}.{rid}"
            await conn.execute(
                "INSERT INTO signal_sessions (session_id, device_id, purpose, staff_id,"
                " recipient_id, instance_id, state, started_at, deadline, ended_at, end_reason,"
                " check_id, look, video_s) VALUES ($1, 'cam-ex1', 'view', $2, $3, 'test',"
                " 'closed', $4, $5, $5, 'operator', $6, 'check', $7)",
                f"extract-look-{i}",
                STAFF[0],
                rid,
                started,
                started + timedelta(seconds=open_s),
                check,
                video_s,
            )
            looks.append((check, started, open_s))
    finally:
        await conn.close()
    return looks


def test_an_administrator_opens_the_extract_of_a_brukare(
    served: b.Backend, database: str, accounts: dict[str, str], chromium: Any
) -> None:
    admin = b.Api(served.url).login("handlaggare", accounts["handlaggare"])
    admin_id = admin.ok("GET", "/api/me")["staff_id"]
    rid = admin.ok("POST", "/api/recipients", {"display_name": "Greta <Gran>", "home": "Rum 4"})[
        "recipient_id"
    ]
    at = (datetime.now(UTC) - timedelta(hours=3)).replace(second=5, microsecond=0)
    looks = _run(_seed_looks(database, rid, at))

    context = chromium.new_context(viewport={"width": 1366, "height": 900}, locale="sv-SE")
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        b.login(page, served.url, "handlaggare", accounts["handlaggare"])
        page.goto(f"{served.url}/console/#/recipients/{rid}")
        expect(page.locator("#recipient-name")).to_have_text("Greta <Gran>")
        form = page.locator("#extract-form")
        expect(form).to_be_visible()
        day = f"{at.astimezone(ZONE):%Y-%m-%d}"
        page.locator("#extract-from").fill(f"{(at - timedelta(days=1)).astimezone(ZONE):%Y-%m-%d}")
        with context.expect_page() as opened:
            page.get_by_role("button", name="Öppna registerutdrag").click()
        extract = opened.value
        extract.wait_for_load_state()
        assert "/api/recipients/" in extract.url
        assert "format=html" in extract.url
        expect(extract.locator("h1")).to_have_text("Registerutdrag: tillsyn med kamera")
        expect(extract.locator("body")).to_contain_text("Greta <Gran>")
        assert extract.locator("script").count() == 0
        rows = extract.locator("tr.look")
        expect(rows).to_have_count(2)
        for row, (check, started, open_s) in zip(rows.all(), looks, strict=True):
            text = row.inner_text()
            assert f"{STAFF[1]} ({STAFF[0]})" in text
            assert f"{started.astimezone(ZONE):%Y-%m-%d %H:%M}" in text
            assert f"{open_s:.1f}" in text
            assert check in text
            assert "Tittning för tillsyn" in text
        assert day in extract.locator("body").inner_text()
    finally:
        context.close()
    assert not errors, errors
    # the extract was made once, by the administrator, and logged
    made = _run(_extracts_of(database, rid))
    assert [(a, p["format"], p["lang"]) for a, p in made] == [(admin_id, "html", "sv")]


async def _extracts_of(url: str, rid: str) -> list[tuple[str, dict[str, Any]]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT actor, data::text AS data FROM audit_log"
            " WHERE action = 'extract.made' AND subject = $1 ORDER BY seq",
            rid,
        )
    finally:
        await conn.close()
    return [(r["actor"], json.loads(r["data"])) for r in rows]
