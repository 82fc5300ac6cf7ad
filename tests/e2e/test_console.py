"""The operator console in headless Chromium against ``homecare serve`` and simulated homes.

One backend process, one simulator process and one browser for the whole module; each test gets a
fresh browser context (its own cookies). Screenshots of the screens go to
``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e import browser as b

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

VIEWPORT = {"width": 1366, "height": 768}
HOMES = 3  # cam-0061..0063 and phone-0063
#: Device ids are MQTT client ids on the shared broker: homes numbered apart from other tests'.
FIRST_HOME = 61


@pytest.fixture(scope="module")
def database(pg_admin_url: str, template_db: str) -> Iterator[str]:
    with b.fresh_database(pg_admin_url, template_db) as url:
        yield url


@pytest.fixture(scope="module")
def accounts(database: str) -> dict[str, str]:
    return b.demo_accounts(database)


@pytest.fixture(scope="module")
def served(database: str, mqtt_url: str) -> Iterator[b.Backend]:
    prefix = f"t{int(time.time() * 1000) % 10**9}c/hc/v1"
    with b.backend(database, mqtt_url, prefix) as backend:
        yield backend


@pytest.fixture(scope="module")
def simulated(served: b.Backend) -> Iterator[b.Process]:
    args = ("--homes", str(HOMES), "--first", str(FIRST_HOME), "--health-interval", "2")
    with b.homes(served.env, *args) as process:
        yield process


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = b.launch(p)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport=VIEWPORT, locale="sv-SE")
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not errors, errors


def _device_rows(page: Any) -> Any:
    return page.locator("#device-rows tr")


def test_shell_is_public_and_strict(served: b.Backend) -> None:
    status, body = served.get("/console/")
    assert status == 200
    assert b'type="module"' in body
    for path in ("/console/../services/console.py", "/console/.hidden.js", "/console/x.py"):
        assert served.get(path)[0] == 404
    assert served.get("/ws/console")[0] == 401
    assert served.get("/api/devices")[0] == 401


def test_login_rejects_a_wrong_password_then_logs_in(
    served: b.Backend, accounts: dict[str, str], page: Any
) -> None:
    page.goto(f"{served.url}/")
    expect(page).to_have_url(re.compile(r"/console/"))
    expect(page.get_by_role("heading", name="Logga in")).to_be_visible()
    expect(page.get_by_label("Användarnamn")).to_be_focused()
    page.get_by_label("Användarnamn").fill("nattpersonal")
    page.get_by_label("Lösenord").fill("fel-lösenord")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert").filter(has_text="Fel användarnamn")).to_be_visible()
    b.screenshot(page, "login")
    page.get_by_label("Lösenord").fill(accounts["nattpersonal"])
    page.keyboard.press("Enter")
    expect(page.locator("#top")).to_be_visible()
    expect(page.locator("#who")).to_contain_text("nattpersonal")
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    cookies = page.context.cookies()
    session = next(c for c in cookies if c["name"] == "hc_session")
    assert session["httpOnly"] is True
    page.get_by_role("button", name="Logga ut").click()
    expect(page.get_by_role("heading", name="Logga in")).to_be_visible()
    expect(page.get_by_text("Du är utloggad.")).to_be_visible()

    # The login page offers the other languages too; Finnish is remembered for the console.
    page.get_by_role("button", name="Suomi").click()
    expect(page.get_by_role("heading", name="Kirjaudu sisään")).to_be_visible()
    expect(page.get_by_label("Käyttäjätunnus")).to_be_visible()
    expect(page.get_by_text("Olet kirjautunut ulos.")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "fi")
    expect(page.get_by_role("button", name="Suomi")).to_have_count(0)
    page.get_by_label("Käyttäjätunnus").fill("nattpersonal")
    page.get_by_label("Salasana").fill(accounts["nattpersonal"])
    page.keyboard.press("Enter")
    expect(page.get_by_role("navigation", name="Päävalikko")).to_contain_text("Kierros")
    assert page.title().endswith("Yövalvonta")


def test_devices_screen_shows_presence_live_and_switches_language(
    served: b.Backend, simulated: b.Process, accounts: dict[str, str], page: Any
) -> None:
    b.login(page, served.url, "tekniker", accounts["tekniker"])
    page.goto(f"{served.url}/console/#/devices")
    expect(page.get_by_role("heading", name="Enheter och status")).to_be_visible()
    rows = _device_rows(page)
    expect(rows).to_have_count(HOMES + 1, timeout=20_000)
    camera = rows.filter(has_text="cam-0061")
    expect(camera.locator(".badge")).to_have_text("Uppkopplad")
    expect(rows.filter(has_text="phone-0063")).to_contain_text("Bildtelefon")
    expect(rows.filter(has_text="phone-0063").locator("td.battery")).to_have_text(
        re.compile(r"\d+ %"), timeout=10_000
    )
    b.screenshot(page, "devices")

    # Live: a device that goes away turns "Nere" without a reload.
    marker = page.evaluate("() => (window.__marker = Math.random())")
    with b.homes(served.env, "--homes", "1", "--first", "67"):
        row7 = rows.filter(has_text="cam-0067")
        expect(row7.locator(".badge")).to_have_text("Uppkopplad", timeout=20_000)
    expect(row7.locator(".badge")).to_have_text(re.compile("Avstängd|Nere"), timeout=10_000)
    assert page.evaluate("() => window.__marker") == marker  # no reload happened
    expect(page.locator("#device-rows tr").first).to_contain_text("cam-0067")  # problems first

    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Devices and health")).to_be_visible()
    expect(camera.locator(".badge")).to_have_text("Online")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.get_by_role("button", name="Suomi").click()
    expect(page.get_by_role("heading", name="Laitteet ja tila")).to_be_visible()
    expect(camera.locator(".badge")).to_have_text("Yhteydessä")
    expect(page.locator("html")).to_have_attribute("lang", "fi")
    page.get_by_role("button", name="Svenska").click()
    expect(page.get_by_role("heading", name="Enheter och status")).to_be_visible()


def test_keyboard_only_reaches_the_menu_with_visible_focus(
    served: b.Backend, accounts: dict[str, str], page: Any
) -> None:
    page.goto(f"{served.url}/console/")
    expect(page.get_by_label("Användarnamn")).to_be_focused()
    page.keyboard.type("tekniker")
    page.keyboard.press("Tab")
    page.keyboard.type(accounts["tekniker"])
    page.keyboard.press("Enter")
    expect(page.locator("#top")).to_be_visible()
    # After a screen loads, its heading has the focus; the menu is reached backwards with
    # Shift+Tab, and the skip link (first in the page) leads back to the content.
    expect(page.locator("main h1")).to_be_focused()
    seen: list[str] = []
    for _ in range(20):
        page.keyboard.press("Shift+Tab")
        focused = page.evaluate(
            "() => { const e = document.activeElement; const s = getComputedStyle(e);"
            " return [e.id || e.textContent.trim(), s.outlineStyle, s.outlineWidth]; }"
        )
        seen.append(focused[0])
        assert focused[1] == "solid", focused  # visible focus on every control
        assert focused[2] == "3px", focused
        if focused[0] == "skip":
            break
    assert {"Enheter", "Installationer", "logout"} <= set(seen), seen
    assert "Runda" not in seen  # the round is not a technician's screen
    assert "Brukare" not in seen  # nor the care record (issue 17): the installations are
    assert seen[-1] == "skip", seen
    page.keyboard.press("Enter")
    expect(page.locator("main h1")).to_be_focused()
