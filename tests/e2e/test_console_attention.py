"""The console calls for attention (issue 16), in headless Chromium against ``homecare serve`` and
one simulated home.

The page wraps ``window.Notification`` and ``OscillatorNode.prototype.start`` in an init script,
so the test sees each notification constructed and each tone started by the page's own Web Audio
graph. Sound is off until the operator presses "Slå på ljud" (a user gesture); then the page's
``AudioContext`` runs. A check entering the queue, an alarm and its repeat, and the loss of the
connection each start a tone and construct a notification; the page title counts and the queue's
row shows the alarm. Muting is the server's: at most five minutes (422 above), audited as
``console.muted`` with the actor and until, and kept over a reload.

Home 81 (cam-0081): "Dagny Ek", a camera consent without motion analysis, so her check goes
straight to the human queue; her view is opened through the API and never documented: an alarm
after the view cap, the documentation grace and the alarm grace, repeated a minute later (the
plan's shortest alarm interval). The service runs the production timing on a clock the test moves
(``tests/e2e/stepped_serve.py``): it jumps past each of those deadlines instead of waiting for it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from kernel.timing import DEFAULT_TIMING
from tests.e2e import browser as b
from tests.e2e.stepped_serve import Steps
from tests.e2e.test_console_round import evening_zone, next_minute, press_bind_button

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

VIEWPORT = {"width": 1366, "height": 768}
FIRST_HOME = 81
CAP_S, REPEAT_S = 10, 60
#: An opened view not documented is overdue after its cap and the time to document it, and
#: alarms when the alarm grace has passed too (the production timing: the clock jumps there).
ALARM_AFTER_S = CAP_S + DEFAULT_TIMING.document_grace_s + DEFAULT_TIMING.alarm_grace_s

#: Records what the page does with the browser's attention APIs (no behaviour changed).
SPY = """
(() => {
  window.__notes = [];
  window.__asked = 0;
  window.__oscillators = 0;
  const Real = window.Notification;
  if (Real) {
    const Spy = function (title, options) {
      const o = options || {};
      window.__notes.push({ title, body: o.body || '', tag: o.tag || '' });
      return new Real(title, options);
    };
    Object.defineProperty(Spy, 'permission', { get: () => Real.permission });
    Spy.requestPermission = (...args) => {
      window.__asked += 1;
      return Real.requestPermission(...args);
    };
    window.Notification = Spy;
  }
  const start = OscillatorNode.prototype.start;
  OscillatorNode.prototype.start = function (...args) {
    window.__oscillators += 1;
    return start.apply(this, args);
  };
})();
"""


@dataclass
class Night:
    backend: b.Backend
    accounts: dict[str, str]
    admin: b.Api
    operator: b.Api
    zone: str
    operator_id: str
    clock: Steps  # the service's clock: real speed, moved forwards by the test
    check_id: str = ""


@pytest.fixture(scope="module")
def night(
    pg_admin_url: str, template_db: str, mqtt_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Night]:
    zone = evening_zone()
    prefix = f"t{int(time.time() * 1000) % 10**9}a/hc/v1"
    clock = Steps(tmp_path_factory.mktemp("attention") / "clock")
    with b.fresh_database(pg_admin_url, template_db) as database:
        accounts = b.demo_accounts(database)
        with (
            b.backend(
                database, mqtt_url, prefix, program=clock.program(), HOMECARE_TIME_ZONE=zone
            ) as backend,
            b.homes(backend.env, "--homes", "1", "--first", str(FIRST_HOME)),
        ):
            admin = b.Api(backend.url).login("handlaggare", accounts["handlaggare"])
            b.wait_until(
                lambda: any(
                    d["id"] == "cam-0081" for d in admin.ok("GET", "/api/devices")["devices"]
                ),
                30,
                "the simulated camera",
            )
            operator = b.Api(backend.url).login("nattpersonal", accounts["nattpersonal"])
            me = operator.ok("GET", "/api/me")
            yield Night(backend, accounts, admin, operator, zone, me["staff_id"], clock)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = b.launch(p)
        yield browser
        browser.close()


@dataclass
class Console:
    page: Any
    cut: list[bool]  # while True the live socket is refused (the server "unreachable")
    sockets: list[Any]


@pytest.fixture(scope="module")
def console(night: Night, chromium: Any) -> Iterator[Console]:
    """The operator's console for the module, notifications granted, the live socket routed
    through the test so it can be cut."""
    context = chromium.new_context(viewport=VIEWPORT, locale="sv-SE", permissions=["notifications"])
    context.add_init_script(SPY)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    held = Console(page, [False], [])

    def live_socket(ws: Any) -> None:
        if held.cut[0]:
            ws.close(code=1011, reason="unreachable")
            return
        ws.connect_to_server()
        held.sockets.append(ws)

    page.route_web_socket(re.compile(r"/ws/console$"), live_socket)
    b.login(page, night.backend.url, "nattpersonal", night.accounts["nattpersonal"])
    yield held
    context.close()
    assert not errors, errors


def attention(page: Any) -> dict[str, Any]:
    return dict(page.evaluate("() => window.homecareConsole.attention"))


def notes(page: Any) -> list[dict[str, str]]:
    return list(page.evaluate("() => window.__notes"))


def audit(night: Night, action: str) -> list[dict[str, Any]]:
    async def go(conn: asyncpg.Connection) -> list[dict[str, Any]]:
        rows = await conn.fetch(
            "SELECT actor, data FROM audit_log WHERE action=$1 ORDER BY seq", action
        )
        return [{"actor": r["actor"], "data": r["data"]} for r in rows]

    # Playwright's sync API runs an event loop in this thread: the query gets its own thread.
    with ThreadPoolExecutor(1) as pool:
        return list(pool.submit(b.run_db, night.backend.database_url, go).result())


def add_home_with_deadlines(night: Night) -> None:
    """Dagny: camera consent (no motion analysis), her camera bound, a check at the next minute
    and the plan's shortest alarm interval, so the test sees an alarm repeat."""
    since = night.clock.now().replace(microsecond=0).isoformat()
    admin = night.admin
    rid = admin.ok(
        "POST",
        "/api/recipients",
        {"display_name": "Dagny Ek", "home": "Ekvägen 1", "time_zone": night.zone},
    )["recipient_id"]
    admin.ok(
        "POST",
        f"/api/recipients/{rid}/consents",
        {
            "person": "recipient",
            "purpose": "camera_check",
            "basis": "informed_consent",
            "informed_by": "test",
            "informed_how": "samtal i hemmet",
            "given_at": since,
        },
    )
    camera = f"cam-{FIRST_HOME:04d}"
    # bound as staff do (issue 17): the technician asks, presses the camera's bind button, and
    # the administrator confirms with the brukare's details
    tech = b.Api(night.backend.url).login("tekniker", night.accounts["tekniker"])
    req = tech.ok(
        "POST", f"/api/devices/{camera}/binding-requests", {"action": "bind", "recipient_id": rid}
    )
    press_bind_button(night.backend, camera)
    b.wait_until(
        lambda: admin.ok("GET", f"/api/binding-requests?device_id={camera}")["requests"][-1][
            "button_pressed_at"
        ],
        15,
        "the camera's bind button",
    )
    admin.ok(
        "POST",
        f"/api/binding-requests/{req['request_id']}/confirm",
        {"recipient_id": rid, "name": "Dagny Ek", "address": "Ekvägen 1"},
    )
    agreed = next_minute(night.clock.now(), 60).astimezone(ZoneInfo(night.zone))
    admin.ok(
        "POST",
        f"/api/recipients/{rid}/care-plans",
        {
            "decision_ref": f"dnr-{rid}",
            "valid_from": since,
            "checks": [{"at": agreed.strftime("%H:%M"), "tolerance_min": 10}],
            "view_cap_s": CAP_S,
            "deadlines": {"view": {"respond_s": 300, "repeat_s": REPEAT_S, "escalate_s": 900}},
        },
    )


def test_sound_is_off_until_the_operator_turns_it_on(console: Console) -> None:
    page = console.page
    bar = page.locator("#attention")
    expect(bar).to_be_visible()
    expect(bar).to_have_attribute("data-sound", "off")
    expect(page.locator("#sound-state")).to_have_text("Ljudet är av")
    assert attention(page)["audio"] == "none"  # no AudioContext before a user gesture
    page.get_by_role("button", name="Slå på ljud").click()
    page.wait_for_function("() => window.homecareConsole.attention.audio === 'running'")
    expect(bar).to_have_attribute("data-sound", "on")
    expect(page.locator("#sound-state")).to_have_text("Ljud på")
    expect(page.get_by_role("button", name="Slå på ljud")).to_be_hidden()
    assert page.evaluate("() => Notification.permission") == "granted"


def test_the_page_asks_for_notifications(night: Night, chromium: Any) -> None:
    context = chromium.new_context(viewport=VIEWPORT, locale="sv-SE")
    context.add_init_script(SPY)
    try:
        page = context.new_page()
        b.login(page, night.backend.url, "nattpersonal", night.accounts["nattpersonal"])
        assert page.evaluate("() => window.__asked") == 0  # not before the operator's click
        page.get_by_role("button", name="Slå på ljud").click()
        page.wait_for_function("() => window.__asked === 1")
        page.wait_for_function("() => window.homecareConsole.attention.audio === 'running'")
    finally:
        context.close()


def test_a_check_entering_the_queue_sounds_and_notifies(console: Console, night: Night) -> None:
    page = console.page
    before = page.evaluate("() => window.__oscillators")
    add_home_with_deadlines(night)
    night_date = night.clock.now().astimezone(ZoneInfo(night.zone)).date().isoformat()
    night.admin.ok("POST", f"/api/nights/{night_date}/plan")
    row = page.locator("#queue > li").filter(has_text="Dagny Ek")
    expect(row).to_have_attribute("data-state", "needs_view", timeout=60_000)
    night.check_id = row.get_attribute("data-key") or ""
    page.wait_for_function(
        "() => window.homecareConsole.attention.tones.includes('needs')", timeout=10_000
    )
    assert page.evaluate("() => window.__oscillators") > before
    assert any(n["body"] == "En tillsyn väntar på dig" for n in notes(page)), notes(page)
    expect(page).to_have_title(re.compile(r"^\(1\) Nattens runda"))


def test_an_alarm_sounds_repeats_and_shows_in_the_queue(console: Console, night: Night) -> None:
    page = console.page
    assert night.check_id
    night.operator.ok("POST", "/api/rounds/duty")
    night.operator.ok("POST", f"/api/checks/{night.check_id}/view")  # opened, never documented
    row = page.locator(f"#queue > li[data-key='{night.check_id}']")
    expect(row).to_have_attribute("data-state", "viewing")
    assert row.get_attribute("data-alarm") != "yes"
    assert "alarm" not in attention(page)["tones"]

    # The service's clock jumps past the cap, the time to document and the alarm grace.
    night.clock.advance(ALARM_AFTER_S + 1)
    expect(row).to_have_attribute("data-alarm", "yes", timeout=15_000)
    page.wait_for_function(
        "() => window.homecareConsole.attention.tones.includes('alarm')", timeout=10_000
    )
    assert any(n["body"].startswith("Larm:") for n in notes(page)), notes(page)
    expect(page).to_have_title(re.compile(r"^\(1\) "))  # the open alarm
    expect(page.locator("#attention")).to_have_attribute("data-flash", "alarm")
    expect(page.locator("#attention-message")).to_have_text(re.compile(r"^Larm: Tittar "))
    b.screenshot(page, "console-alarm")

    # The alarm repeats at the plan's interval (the clock jumps to it): another tone and
    # notification, numbered.
    assert not [n for n in notes(page) if n["body"].startswith("Larmet upprepas")], notes(page)
    assert attention(page)["tones"].count("alarm") == 1
    night.clock.advance(REPEAT_S)
    page.wait_for_function(
        "() => window.__notes.some((n) => n.body.startsWith('Larmet upprepas (larm 2)'))",
        timeout=15_000,
    )
    assert attention(page)["tones"].count("alarm") == 2


def test_mute_is_capped_audited_and_kept_over_a_reload(console: Console, night: Night) -> None:
    page = console.page
    status, body = night.operator.call("POST", "/api/rounds/mute", {"minutes": 6})
    assert status == 422, body
    assert body["error"]["code"] == "out_of_range"
    assert body["error"]["field"] == "minutes"
    assert audit(night, "console.muted") == []  # the refused mute changed nothing

    page.get_by_role("button", name="Tysta 5 min").click()
    expect(page.locator("#sound-state")).to_have_text(re.compile(r"^Tyst till \d\d:\d\d$"))
    expect(page.locator("#attention")).to_have_attribute("data-sound", "muted")
    [entry] = audit(night, "console.muted")
    assert entry["actor"] == night.operator_id
    state = night.operator.ok("GET", "/api/rounds/mute")  # the operator's other session sees it
    assert state["max_minutes"] == 5
    until = datetime.fromisoformat(state["muted_until"])
    assert 280 <= (until - night.clock.now()).total_seconds() <= 300  # on the service's clock
    assert state["muted_until"] in str(entry["data"])

    page.reload()
    expect(page.locator("#sound-state")).to_have_text("Ljudet är av")  # a new page: ask again
    page.get_by_role("button", name="Slå på ljud").click()
    expect(page.locator("#sound-state")).to_have_text(re.compile(r"^Tyst till "))
    tones = len(attention(page)["tones"])
    page.get_by_role("button", name="Ljud på igen").click()
    expect(page.locator("#attention")).to_have_attribute("data-sound", "on")
    assert len(audit(night, "console.unmuted")) == 1
    assert night.operator.ok("GET", "/api/rounds/mute")["muted_until"] is None
    assert len(attention(page)["tones"]) == tones


def test_losing_the_connection_calls_for_attention(console: Console) -> None:
    page = console.page
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    before = len(notes(page))
    console.cut[0] = True
    for ws in console.sockets:
        ws.close(code=1011, reason="unreachable")
    expect(page.locator("#live-state")).to_have_attribute("data-state", "offline")
    page.wait_for_function(
        "() => window.homecareConsole.attention.tones.includes('lost')", timeout=10_000
    )
    assert any(n["body"] == "Anslutningen till servern är bruten" for n in notes(page)[before:])
    expect(page).to_have_title(re.compile(r"^⚠ "))
    console.cut[0] = False
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live", timeout=20_000)
    expect(page).not_to_have_title(re.compile(r"^⚠"))
