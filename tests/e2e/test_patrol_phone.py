"""The patrol's phone (issue 16): the console at 360x740 for the ``patrol`` role, in headless
Chromium against ``homecare serve``.

Three brukare without a camera consent get patrol tasks when the night is planned; the shift lead
gives the third to another patrol. The demo patrol ``nattpatrull`` sees only its own and the
unassigned tasks, with the address, the door-code reference, the plan's instruction and why,
behind large buttons and no camera or brukare screens. The list survives a reload while the
server cannot be reached (it comes from localStorage); a report made then waits in the outbox and
is sent when the server answers again; an acknowledgement whose answer was lost is sent again and
applied once; logging out forgets the list.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from identity import store as staff_store
from kernel.roles import Role
from tests.e2e import browser as b
from tests.e2e.test_console_round import evening_zone, next_minute

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

PHONE = {"width": 360, "height": 740}
#: The smallest touch target we accept for the patrol's buttons, CSS pixels (WCAG 2.5.5: 44).
MIN_BUTTON_PX = 48
HOMES = {
    "a": ("Astrid Lund", "Sjövägen 3, lgh 1201", "nyckelskåp 3 vid porten", "Ring på två gånger"),
    "b": ("Bo Sten", "Kyrkgatan 11", "nyckelbricka 7 i bilen", "Hörapparat på nattduksbordet"),
    "c": ("Cilla Mo", "Torget 2", "hos grannen, lgh 1002", ""),
}


@dataclass
class Night:
    backend: b.Backend
    accounts: dict[str, str]
    admin: b.Api
    tasks: dict[str, str]  # home key -> check_id
    other_patrol: str


def _other_patrol(database: str) -> str:
    async def go(conn: asyncpg.Connection) -> str:
        account = await staff_store.create_staff(
            conn, username="nattpatrull-2", role=Role.PATROL, password=None, is_service=True
        )
        return account.staff_id

    return str(b.run_db(database, go))


@pytest.fixture(scope="module")
def night(pg_admin_url: str, template_db: str, mqtt_url: str) -> Iterator[Night]:
    zone = evening_zone()
    prefix = f"t{int(time.time() * 1000) % 10**9}p/hc/v1"
    with b.fresh_database(pg_admin_url, template_db) as database:
        accounts = b.demo_accounts(database)
        other = _other_patrol(database)
        with b.backend(database, mqtt_url, prefix, HOMECARE_TIME_ZONE=zone) as backend:
            admin = b.Api(backend.url).login("handlaggare", accounts["handlaggare"])
            agreed = next_minute(datetime.now(UTC), 60).astimezone(ZoneInfo(zone))
            rids: dict[str, str] = {}
            for key, (name, home, door, instruction) in HOMES.items():
                r = admin.ok(
                    "POST",
                    "/api/recipients",
                    {"display_name": name, "home": home, "door_code_ref": door, "time_zone": zone},
                )
                rids[key] = r["recipient_id"]
                # No camera consent: the plan's checks are physical visits (patrol tasks).
                admin.ok(
                    "POST",
                    f"/api/recipients/{r['recipient_id']}/care-plans",
                    {
                        "decision_ref": f"dnr-{key}",
                        "valid_from": datetime.now(UTC).replace(hour=0).isoformat(),
                        "checks": [{"at": agreed.strftime("%H:%M"), "tolerance_min": 10}],
                        "instruction": instruction,
                    },
                )
            night_date = datetime.now(ZoneInfo(zone)).date().isoformat()
            admin.ok("POST", f"/api/nights/{night_date}/plan")

            def planned() -> dict[str, str] | None:
                listed = admin.ok("GET", "/api/patrol/tasks")["tasks"]
                by_rid = {t["recipient_id"]: t["check_id"] for t in listed}
                found = {k: by_rid[rid] for k, rid in rids.items() if rid in by_rid}
                return found if len(found) == len(rids) else None

            tasks = b.wait_until(planned, 60, "the three patrol tasks")
            lead = b.Api(backend.url).login("arbetsledare", accounts["arbetsledare"])
            lead.ok("POST", f"/api/checks/{tasks['c']}/assign", {"assignee": other})
            yield Night(backend, accounts, admin, tasks, other)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = b.launch(p)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def phone(night: Night, chromium: Any) -> Iterator[Any]:
    """One phone for the module (its localStorage carries from test to test, as on a phone)."""
    context = chromium.new_context(
        viewport=PHONE, locale="sv-SE", is_mobile=True, has_touch=True, device_scale_factor=2
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    b.login(page, night.backend.url, "nattpatrull", night.accounts["nattpatrull"])
    yield page
    context.close()
    assert not errors, errors


def card(page: Any, name: str) -> Any:
    return page.locator("#task-list > li").filter(has_text=name)


def check(night: Night, key: str) -> dict[str, Any]:
    return dict(night.admin.ok("GET", f"/api/checks/{night.tasks[key]}"))


def audit_count(night: Night, action: str, subject: str) -> int:
    async def go(conn: asyncpg.Connection) -> int:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM audit_log WHERE action=$1 AND subject=$2", action, subject
            )
        )

    # Playwright's sync API runs an event loop in this thread: the query gets its own thread.
    with ThreadPoolExecutor(1) as pool:
        return int(pool.submit(b.run_db, night.backend.database_url, go).result())


def test_the_phone_shows_only_my_tasks_with_large_buttons(night: Night, phone: Any) -> None:
    expect(phone).to_have_url(re.compile(r"#/patrol$"))
    cards = phone.locator("#task-list > li")
    expect(cards).to_have_count(2)
    for key in ("a", "b"):
        name, home, door, instruction = HOMES[key]
        task = card(phone, name)
        expect(task.locator(".home")).to_have_text(home)
        expect(task.locator(".door")).to_have_text(f"Portkod: {door}")
        expect(task.locator(".instruction")).to_have_text(instruction)
        expect(task.locator(".why")).not_to_be_empty()
        expect(task.get_by_role("button", name="Kvittera")).to_be_visible()
    expect(card(phone, HOMES["c"][0])).to_have_count(0)  # another patrol's task
    # No camera, no brukare: no such buttons or menu entries, and the routes lead back here.
    assert phone.locator("[data-action='open'], [data-action='call']").count() == 0
    for label in ("Enheter", "Brukare", "Runda"):
        expect(phone.get_by_role("link", name=label)).to_have_count(0)
    phone.goto(f"{night.backend.url}/console/#/recipients")
    expect(phone).to_have_url(re.compile(r"#/patrol$"))
    expect(cards).to_have_count(2)
    # Large buttons, and nothing wider than the phone.
    box = card(phone, HOMES["a"][0]).get_by_role("button", name="Kvittera").bounding_box()
    assert box["height"] >= MIN_BUTTON_PX, box
    assert box["width"] >= 250, box
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    b.screenshot(phone, "patrol-phone")


def test_an_acknowledgement_whose_answer_was_lost_is_applied_once(night: Night, phone: Any) -> None:
    calls: list[int] = []

    def lose_the_first_answer(route: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            route.fetch()  # the server takes it ...
            route.abort("connectionreset")  # ... and the phone never hears back
        else:
            route.continue_()

    phone.route("**/api/checks/*/patrol/ack", lose_the_first_answer)
    task = card(phone, HOMES["a"][0])
    task.get_by_role("button", name="Kvittera").click()
    expect(task.get_by_role("button", name="Framme")).to_be_visible(timeout=20_000)
    expect(task).to_have_attribute("data-pending", "0", timeout=20_000)
    phone.unroute("**/api/checks/*/patrol/ack")
    assert len(calls) == 2, calls  # sent again after the network error
    c = check(night, "a")
    assert c["state"] == "patrol_acked"
    acks = [t for t in c["transitions"] if t["to"] == "patrol_acked"]
    assert len(acks) == 1, c["transitions"]
    assert audit_count(night, "check.patrol_acked", night.tasks["a"]) == 1


def test_the_list_survives_a_reload_without_the_server_and_reports_wait(
    night: Night, phone: Any
) -> None:
    stored = phone.evaluate("() => JSON.parse(localStorage.getItem('hc.patrol.tasks'))")
    assert {t["check_id"] for t in stored["tasks"]} == {night.tasks["a"], night.tasks["b"]}
    assert set(stored["tasks"][0]) <= {
        "check_id",
        "display_name",
        "home",
        "door_code_ref",
        "instruction",
        "reason",
        "state",
        "agreed",
        "deadline",
        "assignee",
        "patrol_arrived_at",
    }

    # The server cannot be reached: no API answer, no live socket.
    phone.route("**/api/**", lambda route: route.abort("internetdisconnected"))
    cut = [True]

    def live_socket(ws: Any) -> None:
        if cut[0]:
            ws.close(code=1011, reason="unreachable")
        else:
            ws.connect_to_server()

    phone.route_web_socket(re.compile(r"/ws/"), live_socket)
    phone.reload()
    expect(phone.locator("#patrol-status")).to_have_attribute("data-source", "saved")
    expect(phone.locator("#patrol-status")).to_contain_text("Ingen kontakt med servern")
    expect(phone.locator("#task-list > li")).to_have_count(2)
    task = card(phone, HOMES["a"][0])
    expect(task.locator(".door")).to_have_text(f"Portkod: {HOMES['a'][2]}")
    b.screenshot(phone, "patrol-phone-offline")

    # At the door without a connection: the report waits in the outbox, across a reload too.
    task.get_by_role("button", name="Framme").click()
    expect(task).to_have_attribute("data-pending", "1")
    phone.reload()
    expect(card(phone, HOMES["a"][0])).to_have_attribute("data-pending", "1")
    assert phone.evaluate("() => window.homecarePatrol.pending()") == 1
    assert check(night, "a").get("state") == "patrol_acked"
    assert audit_count(night, "check.patrol_arrived", night.tasks["a"]) == 0

    # The server answers again: the report goes, once, and the outcome buttons show.
    phone.unroute("**/api/**")
    cut[0] = False
    task = card(phone, HOMES["a"][0])
    expect(task).to_have_attribute("data-pending", "0", timeout=30_000)
    expect(task.get_by_role("button", name="Välbefinnande")).to_be_visible()
    expect(phone.locator("#patrol-status")).to_have_attribute("data-source", "server")
    assert audit_count(night, "check.patrol_arrived", night.tasks["a"]) == 1
    # Back in touch: the live socket and who I am (the kept list only had my staff id).
    expect(phone.locator("#live-state")).to_have_attribute("data-state", "live", timeout=20_000)
    expect(phone.locator("#who")).to_contain_text("nattpatrull ·")


def test_the_outcome_and_logout(night: Night, phone: Any) -> None:
    task = card(phone, HOMES["a"][0])
    for label in ("Välbefinnande", "Hjälpt", "Till sjukhus", "Inte hemma"):
        box = task.get_by_role("button", name=label).bounding_box()
        assert box["height"] >= MIN_BUTTON_PX, (label, box)
    task.scroll_into_view_if_needed()
    b.screenshot(phone, "patrol-phone-outcome")
    task.get_by_role("button", name="Välbefinnande").click()
    expect(task.locator(".sent")).to_have_text("Rapporterat: Välbefinnande")

    def reported() -> bool:
        return bool(check(night, "a")["state"] == "visited")

    b.wait_until(reported, 20, "the visit to be reported")
    assert audit_count(night, "check.patrol_arrived", night.tasks["a"]) == 1
    # The next fetch no longer lists the finished task.
    phone.reload()
    expect(phone.locator("#task-list > li")).to_have_count(1, timeout=20_000)

    phone.get_by_role("button", name="Logga ut").click()
    expect(phone.get_by_role("heading", name="Logga in")).to_be_visible()
    kept = phone.evaluate(
        "() => [localStorage.getItem('hc.patrol.tasks'), localStorage.getItem('hc.patrol.outbox')]"
    )
    assert kept == [None, None]
