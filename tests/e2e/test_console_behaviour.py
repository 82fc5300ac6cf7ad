"""Hard rule 8 in the console (issue 18 item 4): the brukare screen says why supervision is
suspended, and the re-verification form asks every person living there, how and when, with the
answer per purpose; a cohabitant who refuses has their consent withdrawn and supervision ends.

The suspension is seeded as the round would leave it after the camera was offline at two agreed
checks (proven through the service in ``tests/integration/test_behaviour_that_counts.py``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import asyncpg
import pytest

from tests.e2e import browser as b

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

T = TypeVar("T")


@pytest.fixture(scope="module")
def database(pg_admin_url: str, template_db: str) -> Iterator[str]:
    with b.fresh_database(pg_admin_url, template_db) as url:
        yield url


@pytest.fixture(scope="module")
def served(database: str, mqtt_url: str) -> Iterator[b.Backend]:
    prefix = f"t{int(time.time() * 1000) % 10**9}y/hc/v1"
    with b.backend(database, mqtt_url, prefix) as backend:
        yield backend


@pytest.fixture(scope="module")
def accounts(database: str) -> dict[str, str]:
    return b.demo_accounts(database)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = b.launch(p)
        yield browser
        browser.close()


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` on a loop of its own (Playwright's sync API holds this thread's loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


async def _suspend(url: str, rid: str) -> None:
    """The camera found offline at two agreed checks in a row: a suspension as the service
    writes it (the schema's owner, as a seed)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO devices (device_id, kind) VALUES ('cam-beh1', 'camera')"
            " ON CONFLICT DO NOTHING"
        )
        await conn.execute(
            "INSERT INTO suspensions (suspension_id, recipient_id, device_id, event_type,"
            " started_at, event_count, reason) VALUES ('susp-beh1', $1, 'cam-beh1',"
            " 'offline_at_check', now() - interval '1 hour', 2, 'possible_withdrawal')",
            rid,
        )
    finally:
        await conn.close()


async def _rows(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def test_the_console_says_why_and_a_refusing_cohabitant_ends_supervision(
    served: b.Backend, database: str, accounts: dict[str, str], chromium: Any
) -> None:
    admin = b.Api(served.url).login("handlaggare", accounts["handlaggare"])
    rid = admin.ok("POST", "/api/recipients", {"display_name": "Berit Björk", "home": "Rum 7"})[
        "recipient_id"
    ]
    co = admin.ok("POST", f"/api/recipients/{rid}/cohabitants", {"display_name": "Sune Björk"})
    co_id = co["cohabitant_id"]
    for person in ("recipient", co_id):
        admin.ok(
            "POST",
            f"/api/recipients/{rid}/consents",
            {
                "person": person,
                "purpose": "camera_check",
                "basis": "informed_consent",
                "informed_by": "staff-handl01",
                "informed_how": "samtal i hemmet",
            },
        )
    _run(_suspend(database, rid))

    context = chromium.new_context(
        viewport={"width": 1366, "height": 900}, locale="sv-SE", timezone_id="Europe/Stockholm"
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: d.accept())
    try:
        b.login(page, served.url, "handlaggare", accounts["handlaggare"])
        page.goto(f"{served.url}/console/#/recipients/{rid}")
        expect(page.locator("#recipient-name")).to_have_text("Berit Björk")
        why = page.locator("#suspended")
        expect(why).to_contain_text("Möjligt återkallat samtycke")
        expect(why).to_contain_text("Kameran var avstängd vid två tillsyner i rad")
        form = page.locator("#reverify-form")
        people = form.locator("fieldset")
        expect(people).to_have_count(2)
        expect(people.nth(0).locator("legend")).to_have_text("Brukaren själv")
        expect(people.nth(1).locator("legend")).to_have_text("Sune Björk")
        people.nth(1).locator("select[id^='rv-how-']").select_option("phone")
        people.nth(1).locator("select[data-purpose='camera_check']").select_option("refuses")
        page.locator("#reverify").click()
        # the cohabitant's consent is withdrawn at once, and supervision stays off
        row = page.locator("#consent-table tr[data-consent]", has_text="Sune Björk")
        expect(row).to_contain_text("Återkallat")
        expect(page.locator("#suspended")).to_be_visible()
    finally:
        context.close()
    assert not errors, errors
    record = _run(
        _rows(
            database,
            "SELECT outcome, people::text FROM reverifications WHERE recipient_id = $1",
            rid,
        )
    )
    assert [r["outcome"] for r in record] == ["withdrawn"]
    assert '"how": "phone"' in record[0]["people"]
    withdrawn = _run(
        _rows(
            database,
            "SELECT c.cohabitant_id FROM consents c JOIN consent_withdrawals w USING (consent_id)"
            " WHERE c.recipient_id = $1",
            rid,
        )
    )
    assert [r["cohabitant_id"] for r in withdrawn] == [co_id]
    gate = admin.ok("GET", f"/api/recipients/{rid}")["gate"]["camera_check"]
    assert gate["allowed"] is False
