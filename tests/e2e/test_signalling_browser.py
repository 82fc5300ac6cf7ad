"""A browser viewer receives real video from a simulated camera through ``/ws/signal``.

``homecare serve`` and ``homecare simulate`` run as processes (real PostgreSQL, Mosquitto and
aiortc media); headless Chromium opens the reference viewer page (``/viewer/``) as a logged-in
operator on duty, decodes frames, and the page closes the picture by itself at the care plan's
cap. Every view names the check it serves (issue 15): a check waiting for a human view, written
through the round's store by the test (its backend runs no round), or in the demo's own night the
check its round queued after the probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from consent.rules import night_of
from consent.store import PgConsentStore
from supervision import checks as ch
from supervision.schedule import NightPlan
from supervision.store import RoundStore
from tests.e2e import browser as b
from tools.demo_homes import recipient_of, seed_demo_homes
from tools.embedded import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

sync_api = pytest.importorskip("playwright.sync_api")
CAP_S = 10  # the least cap a plan may have (consent.model.MIN_VIEW_CAP_S)


@pytest.fixture(scope="module")
def database(pg_admin_url: str, template_db: str) -> Iterator[str]:
    with b.fresh_database(pg_admin_url, template_db) as url:
        yield url


@pytest.fixture(scope="module")
def served(database: str, mqtt_url: str) -> Iterator[b.Backend]:
    """``homecare serve`` without the round (roles ``api,signalling``): the check a view is
    owed to is written through the round's store (:func:`_queue_check`), and no round re-plans
    it away meanwhile (the demo plans agree no such time: a replan after the seeding's consent
    changes would drop it, ``plan_changed``) or probes the camera."""
    prefix = f"t{int(time.time() * 1000) % 10**9}v/hc/v1"
    with b.backend(database, mqtt_url, prefix, HOMECARE_ROLES="api,signalling") as backend:
        yield backend


def _online(database: str, device_id: str) -> bool:
    async def work(conn: asyncpg.Connection) -> bool:
        row = await conn.fetchval("SELECT presence FROM devices WHERE device_id = $1", device_id)
        return bool(row == "online")

    return bool(b.run_db(database, work))


def _seed(database: str, device_id: str = "cam-0001") -> None:
    async def go() -> None:
        pool = await asyncpg.create_pool(database, min_size=1, max_size=2)
        try:
            await seed_demo_homes(
                PgConsentStore(pool), [device_id], at=datetime.now(UTC), view_cap_s=CAP_S
            )
        finally:
            await pool.close()

    asyncio.run(go())


def _due(database: str, device_id: str) -> str:
    """The round's check of ``device_id`` once it waits for a human view (after its probe)."""

    async def work(conn: asyncpg.Connection) -> str | None:
        found: str | None = await conn.fetchval(
            "SELECT check_id FROM round_checks WHERE device_id = $1 AND state = 'needs_view'"
            " ORDER BY agreed_at LIMIT 1",
            device_id,
        )
        return found

    found: str = b.wait_until(lambda: b.run_db(database, work), 90, f"{device_id}'s due check")
    return found


def _queue_check(database: str, device_id: str) -> str:
    """A check of ``device_id`` agreed now, written through the round's store as the round
    leaves one that waits for a human view (``needs_view``), at once: no round runs beside
    this module's backend to do it (or undo it)."""

    async def go() -> str:
        pool = await asyncpg.create_pool(database, min_size=1, max_size=2)
        try:
            store = RoundStore(pool)
            at = datetime.now(UTC)
            night = night_of(at, UTC)
            check_id = f"{night:%Y%m%d}.{at:%H%M}.{recipient_of(device_id)}"
            check = ch.planned(
                check_id=check_id,
                recipient_id=recipient_of(device_id),
                device_id=device_id,
                night=night,
                agreed=at.time().replace(second=0, microsecond=0),
                agreed_at=at,
                window_start=at - timedelta(minutes=20),
                window_end=at + timedelta(minutes=20),
                policy=ch.Policy(view_cap_s=CAP_S),
                at=at,
            )
            await store.save_plan(NightPlan(night, (check,)), at=at)
            steps = [ch.Open(), ch.Claim("e2e"), ch.ProbeSkipped("e2e")]
            done, refused = await store.apply_many([(check_id, step) for step in steps], at=at)
            assert not refused, refused
            assert [tr.check.state for tr in done][-1] is ch.State.NEEDS_VIEW
            return check_id
        finally:
            await pool.close()

    return asyncio.run(go())


def _on_duty(base: str, password: str) -> None:
    """The operator starts the duty every view needs (once; a second start is 409)."""
    status, body = b.Api(base).login("nattpersonal", password).call("POST", "/api/rounds/duty", {})
    assert status in (201, 409), (status, body)


def _audit(database: str) -> list[tuple[str, dict[str, Any]]]:
    async def work(conn: asyncpg.Connection) -> list[tuple[str, dict[str, Any]]]:
        rows = await conn.fetch(
            "SELECT action, data::text AS data FROM audit_log"
            " WHERE action LIKE 'view.%' ORDER BY seq"
        )
        return [(r["action"], json.loads(r["data"])) for r in rows]

    found: list[tuple[str, dict[str, Any]]] = b.run_db(database, work)
    return found


@contextlib.contextmanager
def _viewer(base: str, password: str) -> Iterator[tuple[Any, list[str]]]:
    """Chromium with a logged-in operator's page and the page's JavaScript errors. (Playwright's
    sync API runs an event loop: the database helpers' ``asyncio.run`` must run outside.)"""
    with sync_api.sync_playwright() as p:
        chromium = b.launch(p)
        try:
            context = chromium.new_context(locale="sv-SE")
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            login = context.request.post(
                f"{base}/api/login", data={"username": "nattpersonal", "password": password}
            )
            assert login.status == 200, login.text()
            yield page, errors
            context.close()
        finally:
            chromium.close()


SETTLED = ", ".join(f'#status[data-state="{s}"]' for s in ("live", "denied", "closed"))
BUSY = "kameran används redan"


def _settled(page: Any, timeout_s: float = 20) -> tuple[str, str]:
    """Wait until the view is live, denied or closed; its state and status text."""
    page.locator(SETTLED).wait_for(timeout=timeout_s * 1000)
    status = page.locator("#status")
    return str(status.get_attribute("data-state")), status.inner_text()


def _live_when_free(page: Any, asked: float | None = None, timeout_s: float = 30) -> float:
    """Wait until the view is live and return when it was asked for (``asked``: the page opened
    it then; None: press Öppna bild now). The round's motion probe may hold the camera
    (``busy``): like an operator, press Öppna bild again after a moment, until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        if asked is None:
            asked = time.monotonic()
            page.get_by_role("button", name="Öppna bild").click()
        state, text = _settled(page, max(1.0, deadline - time.monotonic()))
        if state == "live":
            return asked
        if BUSY not in text or time.monotonic() > deadline:
            raise AssertionError(f"the view did not open: {text}")
        asked = None
        time.sleep(0.5)


def test_viewer_page_shows_camera_video_and_closes_at_the_cap(
    served: b.Backend, database: str
) -> None:
    """The page closes by itself at the cap; the check's view budget is then spent, so Öppna
    bild again is denied ``budget_spent`` (no new cap by re-opening)."""
    accounts = b.demo_accounts(database)
    with b.homes(served.env, "--homes", "1", "--scene", "walking", "--health-interval", "5"):
        b.wait_until(lambda: _online(database, "cam-0001"), 20, "cam-0001 online")
        _seed(database)
        check_id = _queue_check(database, "cam-0001")
        _on_duty(served.url, accounts["nattpersonal"])
        with _viewer(served.url, accounts["nattpersonal"]) as (page, errors):
            opened = time.monotonic()
            page.goto(f"{served.url}/viewer/?device=cam-0001&check={check_id}")
            frames = b.wait_frames(page, 20, 20)
            assert page.locator("#status").get_attribute("data-state") == "live"
            assert page.locator("#status").inner_text() == "Bild visas"
            b.screenshot(page, "viewer-live")
            page.locator('#status[data-state="closed"]').wait_for(timeout=(CAP_S + 10) * 1000)
            closed_after_s = time.monotonic() - opened
            text = page.locator("#status").inner_text()
            has_video = page.evaluate("document.getElementById('video').srcObject !== null")
            session_id = page.evaluate("window.homecareSignal.last.sessionId")
            page.get_by_role("button", name="Öppna bild").click()
            again, again_text = _settled(page)
            again_id = page.evaluate("window.homecareSignal.last.sessionId")
    assert frames >= 20
    assert "den avtalade tiden är slut" in text
    assert not has_video
    assert CAP_S - 1 <= closed_after_s <= CAP_S + 10
    assert not errors, errors
    audit = _audit(database)
    actions = [(a, d) for a, d in audit if d.get("session_id") == session_id]
    assert [a for a, _ in actions] == ["view.started", "view.ended"]
    assert actions[1][1]["reason"] == "timeout"
    assert actions[0][1]["check_id"] == check_id
    assert again == "denied", again_text
    assert again_text == "Nekad: kontrollens tid att titta är slut"
    denied = [d for a, d in audit if d.get("session_id") == again_id]
    assert [d.get("reason") for d in denied] == ["budget_spent"]


def test_viewer_extends_the_view_only_with_a_reason(served: b.Backend, database: str) -> None:
    """Förläng needs a reason code; the server moves the deadline by one cap and audits why.
    Closing and opening again continues the check's view budget (what is left of the cap plus
    the extension), not a new one, and the extensions are counted per check too: two more, then
    the server's limit is shown. A camera of its own (cam-0002) and so a check of its own."""
    accounts = b.demo_accounts(database)
    home = ("--homes", "1", "--first", "2", "--scene", "asleep", "--health-interval", "5")
    with b.homes(served.env, *home):
        b.wait_until(lambda: _online(database, "cam-0002"), 20, "cam-0002 online")
        _seed(database, "cam-0002")
        check_id = _queue_check(database, "cam-0002")
        _on_duty(served.url, accounts["nattpersonal"])
        with _viewer(served.url, accounts["nattpersonal"]) as (page, errors):
            extend = page.get_by_role("button", name="Förläng")
            page.goto(f"{served.url}/viewer/?device=cam-0002&check={check_id}")
            assert extend.is_disabled()  # nothing to extend yet
            page.locator('#status[data-state="live"]').wait_for(timeout=20_000)
            deadline = page.evaluate("window.homecareSignal.last.deadline")
            assert extend.is_disabled()  # no reason chosen
            page.get_by_label("Skäl att förlänga").select_option(label="Otydlig bild")
            extend.click()
            page.locator("#notice").filter(has_text="Förlängd (1)").wait_for(timeout=10_000)
            notice = page.locator("#notice").inner_text()
            extended = page.evaluate("window.homecareSignal.last.deadline")
            first_id = page.evaluate("window.homecareSignal.last.sessionId")
            page.get_by_role("button", name="Stäng").click()
            page.locator('#status[data-state="closed"]').wait_for(timeout=10_000)
            closed = page.locator("#status").inner_text()
            assert extend.is_disabled()
            # Open again: the rest of this check's budget, with the extensions left in it.
            page.get_by_role("button", name="Öppna bild").click()
            page.locator('#status[data-state="live"]').wait_for(timeout=20_000)
            second_id = page.evaluate("window.homecareSignal.last.sessionId")
            allowed = 2
            page.get_by_label("Skäl att förlänga").select_option(label="Väntar på rörelse")
            for n in range(1, allowed + 1):
                extend.click()
                page.locator("#notice").filter(has_text=f"Förlängd ({n})").wait_for(timeout=10_000)
            extend.click()
            page.locator("#notice").filter(has_text="inte förlängas").wait_for(timeout=10_000)
            limit = page.locator("#notice").inner_text()
            page.get_by_role("button", name="Stäng").click()
            page.locator('#status[data-state="closed"]').wait_for(timeout=10_000)
    assert notice == "Förlängd (1): Otydlig bild"
    assert limit == "Bilden kan inte förlängas fler gånger"
    assert extended - deadline == pytest.approx(CAP_S, abs=0.5)
    assert "du stängde" in closed
    assert not errors, errors
    audit = _audit(database)
    first = [(a, d) for a, d in audit if d.get("session_id") == first_id]
    assert [a for a, _ in first] == ["view.started", "view.extended", "view.ended"]
    assert first[1][1]["reason"] == "unclear_image"
    assert first[2][1]["reason"] == "operator"
    assert first[0][1]["budget_s"] == pytest.approx(CAP_S, abs=0.5)
    second = [(a, d) for a, d in audit if d.get("session_id") == second_id]
    assert [a for a, _ in second] == ["view.started", *["view.extended"] * allowed, "view.ended"]
    started = second[0][1]
    used = started["check_used_s"]
    assert started["check_id"] == check_id
    assert 0 < used < CAP_S  # the first view's seconds count ...
    assert started["budget_s"] == pytest.approx(2 * CAP_S - used, abs=0.5)  # ... and its
    assert CAP_S < started["budget_s"] < 2 * CAP_S  # extension: neither a new cap nor more


@pytest.fixture
def demo_database(pg_admin_url: str, template_db: str) -> Iterator[str]:
    with b.fresh_database(pg_admin_url, template_db) as url:
        yield url


DEMO_CAP_S = 10
PROBE_S = 2


def test_demo_viewer_shows_moving_video(demo_database: str, mqtt_url: str) -> None:
    """``homecare demo --view-cap 10`` as a process: log in with the printed account, open the
    printed viewer URL with the check the round queued for a view after its motion probe, as an
    operator on duty; see decoded frames that differ (moving video) and close the view with
    Stäng; opened again, the view continues the check's budget and the page closes itself at
    the cap with the reason shown; a third open is denied (the budget is spent)."""
    port = free_port()
    prefix = f"t{int(time.time() * 1000) % 10**9}d/hc/v1"
    # The round's first motion probe holds the camera while the viewer asks: a short probe (the
    # timing policy) keeps the operator's wait short.
    env = b.service_env(
        demo_database, mqtt_url, prefix, port, HOMECARE_TIMING=f"probe_window_s={PROBE_S}"
    )
    demo = b.Process(
        ["demo", "--homes", "1", "--scene", "walking", "--view-cap", str(DEMO_CAP_S)], env, "demo"
    )
    demo.start()
    try:
        url_line = b.wait_until(
            lambda: _line(demo, "live view of a camera: "), 60, "the demo's viewer URL"
        )
        password = _line(demo, "  nattpersonal ").split()[-1]
        viewer_url = url_line.split(": ", 1)[1].split(" ")[0]
        base = viewer_url.split("/viewer/")[0]
        check_id = _due(demo_database, "cam-0001")
        _on_duty(base, password)
        with _viewer(base, password) as (page, errors):
            asked = time.monotonic()
            page.goto(f"{viewer_url}&check={check_id}")
            opened = _live_when_free(page, asked)
            b.wait_frames(page, 10, 30)
            first = page.evaluate(LUMA_JS)
            b.wait_frames(page, 20, 30)
            second = page.evaluate(LUMA_JS)
            left = page.locator("#left").inner_text()
            page.get_by_role("button", name="Stäng").click()
            page.locator('#status[data-state="closed"]').wait_for(timeout=10_000)
            text = page.locator("#status").inner_text()
            _live_when_free(page)
            page.locator('#status[data-state="closed"]').wait_for(timeout=(DEMO_CAP_S + 15) * 1000)
            closed_after_s = time.monotonic() - opened
            at_cap = page.locator("#status").inner_text()
            has_video = page.evaluate("document.getElementById('video').srcObject !== null")
            page.get_by_role("button", name="Öppna bild").click()
            third, third_text = _settled(page)
    finally:
        code = demo.stop()
    assert code == 0, demo.log_tail()
    assert first != second  # the picture moves
    assert left.endswith("s kvar")
    assert "du stängde" in text
    assert at_cap == "Bilden är stängd: den avtalade tiden är slut"
    assert not has_video
    # Both views together had one cap (plus the moment between them and the connecting).
    assert DEMO_CAP_S - 1 <= closed_after_s <= DEMO_CAP_S + 15
    # The demo's first agreed window is now + 2 min +- 10 min: the whole test is in it.
    assert third == "denied", third_text
    assert third_text == "Nekad: kontrollens tid att titta är slut"
    assert not errors, errors


#: A small fingerprint of the picture on screen (sums of a 16x12 grey thumbnail).
LUMA_JS = """() => {
  const v = document.getElementById('video');
  const c = document.createElement('canvas');
  c.width = 16; c.height = 12;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0, 16, 12);
  return Array.from(g.getImageData(0, 0, 16, 12).data).filter((_, i) => i % 4 === 0);
}"""


def _line(process: b.Process, start: str) -> str:
    for line in process.log_tail(20_000).splitlines():
        if line.startswith(start):
            return line
    return ""
