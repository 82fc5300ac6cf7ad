"""The shift lead's console (issue 16): the Arbetsledning screen in headless Chromium against
``homecare serve``.

One brukare without a camera consent gets a patrol task when the night is planned. Nobody takes
it: the test drives the round's clock past the task's deadline and its escalation (the ladder's
own ``watch_deadlines`` at a later instant, from this process through the same database; the
alarms reach the service by NOTIFY like any other process's), so no test waits for a deadline.
The shift lead lands on the screen at login, sees the escalation live, gives the task to the
second patrol car (whose ``GET /api/patrol/tasks`` then lists it, and the first patrol's no
longer does), is refused plainly (409) when the task was already taken, and reads the night's
handover counts, which are the handover's own, and acknowledges the escalation.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from identity import store as staff_store
from kernel.roles import Role
from kernel.timing import DEFAULT_TIMING
from supervision.store import RoundStore
from tests.e2e import browser as b
from tests.e2e.test_console_round import evening_zone, next_minute

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

VIEWPORT = {"width": 1366, "height": 768}
NAME = "Greta Holm"
#: The patrol's terms: acknowledge within a minute, escalated a minute after that deadline.
RESPOND_S, ESCALATE_S = 60, 60
SECOND_CAR = ("nattpatrull-2", "Patrullbil 2")


@dataclass
class Night:
    backend: b.Backend
    accounts: dict[str, str]
    admin: b.Api
    check_id: str
    car_id: str  # the second patrol car's staff_id


def _second_car(database: str, password: str) -> str:
    async def go(conn: asyncpg.Connection) -> str:
        username, display = SECOND_CAR
        account = await staff_store.create_staff(
            conn, username=username, role=Role.PATROL, password=password, display_name=display
        )
        return account.staff_id

    return str(b.run_db(database, go))


def drive_clock(database: str, at: datetime) -> int:
    """Climb the escalation ladder as of ``at`` (the watchdog's own step, its clock ahead);
    returns the alarms raised. Run in a thread: Playwright's sync API owns this one's loop."""

    async def go() -> int:
        pool = await asyncpg.create_pool(database, min_size=1, max_size=2)
        try:
            alarms, _ = await RoundStore(pool, origin="e2e-clock").watch_deadlines(at)
            return len(alarms)
        finally:
            await pool.close()

    with ThreadPoolExecutor(1) as pool:
        return int(pool.submit(asyncio.run, go()).result())


@pytest.fixture(scope="module")
def night(pg_admin_url: str, template_db: str, mqtt_url: str) -> Iterator[Night]:
    zone = evening_zone()
    prefix = f"t{int(time.time() * 1000) % 10**9}l/hc/v1"
    with b.fresh_database(pg_admin_url, template_db) as database:
        accounts = b.demo_accounts(database)
        accounts[SECOND_CAR[0]] = secrets.token_urlsafe(18)
        car = _second_car(database, accounts[SECOND_CAR[0]])
        with b.backend(database, mqtt_url, prefix, HOMECARE_TIME_ZONE=zone) as backend:
            admin = b.Api(backend.url).login("handlaggare", accounts["handlaggare"])
            agreed = next_minute(datetime.now(UTC), 60).astimezone(ZoneInfo(zone))
            rid = admin.ok(
                "POST",
                "/api/recipients",
                {
                    "display_name": NAME,
                    "home": "Ågatan 4",
                    "door_code_ref": "nyckelskåp 9",
                    "time_zone": zone,
                },
            )["recipient_id"]
            admin.ok(
                "POST",
                f"/api/recipients/{rid}/care-plans",
                {
                    "decision_ref": "dnr-lead",
                    "valid_from": datetime.now(UTC).replace(hour=0).isoformat(),
                    "checks": [{"at": agreed.strftime("%H:%M"), "tolerance_min": 10}],
                    "deadlines": {
                        "patrol_ack": {
                            "respond_s": RESPOND_S,
                            "repeat_s": 60,
                            "escalate_s": ESCALATE_S,
                        }
                    },
                },
            )
            night_date = datetime.now(ZoneInfo(zone)).date().isoformat()
            admin.ok("POST", f"/api/nights/{night_date}/plan")

            def planned() -> str | None:
                tasks = admin.ok("GET", "/api/patrol/tasks")["tasks"]
                return next((t["check_id"] for t in tasks if t["recipient_id"] == rid), None)

            check_id = b.wait_until(planned, 20, "the patrol task")
            yield Night(backend, accounts, admin, check_id, car)


@pytest.fixture(scope="module")
def page(night: Night) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = b.launch(p)
        context = browser.new_context(viewport=VIEWPORT, locale="sv-SE")
        page = context.new_page()
        page.set_default_timeout(10_000)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        b.login(page, night.backend.url, "arbetsledare", night.accounts["arbetsledare"])
        yield page
        context.close()
        browser.close()
        assert not errors, errors


def task_card(page: Any) -> Any:
    return page.locator("#lead-checks > li").filter(has_text=NAME)


def listed(api: b.Api, check_id: str) -> bool:
    return any(t["check_id"] == check_id for t in api.ok("GET", "/api/patrol/tasks")["tasks"])


def test_the_shift_lead_lands_on_arbetsledning_with_the_round_to_read(
    night: Night, page: Any
) -> None:
    expect(page).to_have_url(re.compile(r"#/lead$"))
    expect(page.get_by_role("heading", name="Arbetsledning", level=1)).to_be_visible()
    nav = page.get_by_role("navigation")
    expect(nav.get_by_role("link", name="Arbetsledning")).to_be_visible()
    expect(nav.get_by_role("link", name="Runda")).to_be_visible()
    for other in ("Larm och patrull", "Brukare", "Enheter", "Mina uppdrag"):
        expect(nav.get_by_role("link", name=other)).to_have_count(0)
    # Runda to read: the queue is there, its look and call buttons are the operators'.
    nav.get_by_role("link", name="Runda").click()
    expect(page.get_by_role("heading", name="Nattens runda", level=1)).to_be_visible()
    expect(page.locator("#queue > li")).to_have_count(1)
    expect(page.locator("#queue [data-action='open']:visible")).to_have_count(0)
    nav.get_by_role("link", name="Arbetsledning").click()
    expect(page).to_have_url(re.compile(r"#/lead$"))
    # The task is there before anything escalated: unassigned, a patrol's to take.
    card = task_card(page)
    expect(card).to_have_attribute("data-state", "patrol")
    expect(card.locator(".assignee")).to_have_text("Inte tilldelad någon")
    expect(page.locator("#lead-alarms > li")).to_have_count(0)
    # The picker offers the patrol cars only (a patrol task goes to a patrol), by name.
    options = card.locator("select option")
    expect(options).to_have_count(3)  # nobody, nattpatrull, Patrullbil 2
    expect(options.filter(has_text=SECOND_CAR[1])).to_have_count(1)


def test_an_escalation_appears_and_the_task_is_given_to_another_car(
    night: Night, page: Any
) -> None:
    check = night.admin.ok("GET", f"/api/checks/{night.check_id}")
    deadline = datetime.fromisoformat(check["deadline"])
    # The clock past the deadline, its grace and the escalation: no one took the task.
    later = deadline + timedelta(seconds=ESCALATE_S + DEFAULT_TIMING.alarm_grace_s + 1)
    assert drive_clock(night.backend.database_url, later) >= 1
    escalation = page.locator("#lead-alarms > li[data-kind='escalation']").filter(has_text=NAME)
    expect(escalation).to_have_count(1)
    expect(escalation.locator(".what")).to_contain_text("Eskalerat: Nattpatrull")
    escalated = night.admin.ok("GET", "/api/rounds/escalations?open=1")["escalations"]
    assert (night.check_id, "escalation") in [(e["check_id"], e["kind"]) for e in escalated]

    first = b.Api(night.backend.url).login("nattpatrull", night.accounts["nattpatrull"])
    second = b.Api(night.backend.url).login(SECOND_CAR[0], night.accounts[SECOND_CAR[0]])
    assert listed(first, night.check_id)  # unassigned: every car sees it
    assert listed(second, night.check_id)
    card = task_card(page)
    card.locator("select").select_option(night.car_id)
    card.get_by_role("button", name="Ge uppdraget").click()
    expect(card.locator(".assignee")).to_have_text(f"Tilldelad: {SECOND_CAR[1]}")
    expect(card).to_have_attribute("data-assignee", night.car_id)
    assert listed(second, night.check_id)
    assert not listed(first, night.check_id)  # another car's task now

    # Nobody by that id: 422 bad_assignee, and the task stays the second car's.
    status, body = night.admin.call(
        "POST", f"/api/checks/{night.check_id}/assign", {"assignee": "staff-nobody"}
    )
    assert (status, body["error"]["code"]) == (422, "bad_assignee")
    assert listed(second, night.check_id)
    assert not listed(first, night.check_id)

    # The second car takes it; moving it then is refused, plainly, and changes nothing.
    second.ok("POST", f"/api/checks/{night.check_id}/patrol/ack")
    expect(card).to_have_attribute("data-state", "patrol_acked")
    first_id = next(
        o.get_attribute("value")
        for o in card.locator("select option").all()
        if o.get_attribute("value") not in ("", night.car_id)
    )
    card.locator("select").select_option(first_id)
    card.get_by_role("button", name="Ge uppdraget").click()
    expect(card.locator(".refusal")).to_have_text(
        "Gick inte att flytta: Det går inte i tillsynens nuvarande läge."
    )
    expect(card).to_have_attribute("data-assignee", night.car_id)
    assert listed(second, night.check_id)
    assert not listed(first, night.check_id)
    # What the shift lead reads at night meets WCAG AA contrast (the escalation's dark red too).
    ratios = {
        s: b.contrast(page.locator(s).first)
        for s in (
            "#lead-alarms [data-kind='escalation'] .what",
            "#lead-alarms [data-kind='escalation'] .when",
            "#lead-alarms .badge",
            "#lead-checks .assignee",
            "#lead-checks .why",
            "#lead-checks select",
            ".refusal",
        )
    }
    low = {k: round(v, 2) for k, v in ratios.items() if v < 4.5}
    assert not low, low


def test_the_handover_shows_the_nights_counts(night: Night, page: Any) -> None:
    page.get_by_role("button", name="Visa överlämning").click()
    counts = page.locator("#handover-counts")
    expect(counts).to_be_visible()
    night_date = page.evaluate("() => document.getElementById('lead-night').textContent")
    summary = night.admin.ok("GET", f"/api/rounds/{night_date.split()[-1]}/handover")
    assert summary["counts"]["open_patrol_tasks"] == 1
    assert summary["counts"]["alarms_not_acknowledged"] >= 1
    for key in ("checks", "open_patrol_tasks", "alarms_not_acknowledged"):
        expect(counts.locator(f"[data-count='{key}'] .stat")).to_have_text(
            str(summary["counts"][key])
        )
    link = page.get_by_role("link", name="Utskriftsvänlig överlämning")
    href = link.get_attribute("href")
    assert href is not None
    assert href.endswith("/handover?format=html&lang=sv"), href
    printable = page.request.get(f"{night.backend.url}{href}")
    assert printable.status == 200
    assert "Överlämning" in printable.text()
    # The whole screen in one picture: the menu, the escalation, the refusal, the handover.
    page.set_viewport_size({"width": VIEWPORT["width"], "height": 1000})
    page.evaluate("() => window.scrollTo(0, 0)")
    b.screenshot(page, "shift-lead-console")


def test_the_shift_lead_acknowledges_the_escalation(night: Night, page: Any) -> None:
    escalation = page.locator("#lead-alarms > li[data-kind='escalation']")
    escalation.get_by_role("button", name="Kvittera").click()
    # Acknowledging covers the step's alarms (its repeats and its escalation) at once.
    expect(page.locator("#lead-alarms > li")).to_have_count(0)
    expect(page.get_by_text("Inga okvitterade larm eller eskaleringar.")).to_be_visible()
    assert night.admin.ok("GET", "/api/rounds/escalations?open=1")["escalations"] == []
    everything = night.admin.ok("GET", "/api/rounds/escalations")["escalations"]
    lead = b.Api(night.backend.url).login("arbetsledare", night.accounts["arbetsledare"])
    assert {e["acknowledged_by"] for e in everything} == {lead.ok("GET", "/api/me")["staff_id"]}
