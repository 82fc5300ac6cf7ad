"""A browser viewer receives real video from a simulated camera through ``/ws/signal``.

``homecare serve`` and ``homecare simulate`` run as processes (real PostgreSQL, Mosquitto and
aiortc media); headless Chromium opens the reference viewer page (``/viewer/``) as a logged-in
operator, decodes frames, and the page closes the picture by itself at the care plan's cap.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from consent.store import PgConsentStore
from tests.e2e import browser as b
from tools.demo_homes import seed_demo_homes
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
    prefix = f"t{int(time.time() * 1000) % 10**9}v/hc/v1"
    with b.backend(database, mqtt_url, prefix) as backend:
        yield backend


def _online(database: str, device_id: str) -> bool:
    async def work(conn: asyncpg.Connection) -> bool:
        row = await conn.fetchval("SELECT presence FROM devices WHERE device_id = $1", device_id)
        return bool(row == "online")

    return bool(b.run_db(database, work))


def _seed(database: str) -> None:
    async def go() -> None:
        pool = await asyncpg.create_pool(database, min_size=1, max_size=2)
        try:
            await seed_demo_homes(
                PgConsentStore(pool), ["cam-0001"], at=datetime.now(UTC), view_cap_s=CAP_S
            )
        finally:
            await pool.close()

    asyncio.run(go())


def _audit(database: str) -> list[tuple[str, dict[str, Any]]]:
    async def work(conn: asyncpg.Connection) -> list[tuple[str, dict[str, Any]]]:
        rows = await conn.fetch(
            "SELECT action, data::text AS data FROM audit_log"
            " WHERE action LIKE 'view.%' ORDER BY seq"
        )
        return [(r["action"], json.loads(r["data"])) for r in rows]

    found: list[tuple[str, dict[str, Any]]] = b.run_db(database, work)
    return found


def test_viewer_page_shows_camera_video_and_closes_at_the_cap(
    served: b.Backend, database: str
) -> None:
    accounts = b.demo_accounts(database)
    with b.homes(served.env, "--homes", "1", "--scene", "walking", "--health-interval", "5"):
        b.wait_until(lambda: _online(database, "cam-0001"), 20, "cam-0001 online")
        _seed(database)
        with sync_api.sync_playwright() as p:
            chromium = b.launch(p)
            try:
                context = chromium.new_context(locale="sv-SE")
                page = context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                login = context.request.post(
                    f"{served.url}/api/login",
                    data={"username": "nattpersonal", "password": accounts["nattpersonal"]},
                )
                assert login.status == 200, login.text()
                opened = time.monotonic()
                page.goto(f"{served.url}/viewer/?device=cam-0001")
                frames = b.wait_frames(page, 20, 20)
                assert page.locator("#status").get_attribute("data-state") == "live"
                assert page.locator("#status").inner_text() == "Bild visas"
                b.screenshot(page, "viewer-live")
                page.locator('#status[data-state="closed"]').wait_for(timeout=(CAP_S + 10) * 1000)
                closed_after_s = time.monotonic() - opened
                text = page.locator("#status").inner_text()
                has_video = page.evaluate("document.getElementById('video').srcObject !== null")
                session_id = page.evaluate("window.homecareSignal.last.sessionId")
                context.close()
            finally:
                chromium.close()
    assert frames >= 20
    assert "den avtalade tiden är slut" in text
    assert not has_video
    assert CAP_S - 1 <= closed_after_s <= CAP_S + 10
    assert not errors, errors
    actions = [(a, d) for a, d in _audit(database) if d.get("session_id") == session_id]
    assert [a for a, _ in actions] == ["view.started", "view.ended"]
    assert actions[1][1]["reason"] == "timeout"


def test_viewer_extends_the_view_only_with_a_reason(served: b.Backend, database: str) -> None:
    """Förläng needs a reason code; the server moves the deadline by one cap and audits why; the
    page then closes itself at the new deadline."""
    accounts = b.demo_accounts(database)
    with b.homes(served.env, "--homes", "1", "--scene", "asleep", "--health-interval", "5"):
        b.wait_until(lambda: _online(database, "cam-0001"), 20, "cam-0001 online")
        _seed(database)
        with sync_api.sync_playwright() as p:
            chromium = b.launch(p)
            try:
                context = chromium.new_context(locale="sv-SE")
                page = context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                login = context.request.post(
                    f"{served.url}/api/login",
                    data={"username": "nattpersonal", "password": accounts["nattpersonal"]},
                )
                assert login.status == 200, login.text()
                extend = page.get_by_role("button", name="Förläng")
                page.goto(f"{served.url}/viewer/?device=cam-0001")
                assert extend.is_disabled()  # nothing to extend yet
                page.locator('#status[data-state="live"]').wait_for(timeout=20_000)
                granted_at = time.monotonic()
                deadline = page.evaluate("window.homecareSignal.last.deadline")
                assert extend.is_disabled()  # no reason chosen
                page.get_by_label("Skäl att förlänga").select_option(label="Otydlig bild")
                extend.click()
                page.locator("#notice").filter(has_text="Förlängd (1)").wait_for(timeout=10_000)
                notice = page.locator("#notice").inner_text()
                extended = page.evaluate("window.homecareSignal.last.deadline")
                session_id = page.evaluate("window.homecareSignal.last.sessionId")
                page.locator('#status[data-state="closed"]').wait_for(
                    timeout=(2 * CAP_S + 10) * 1000
                )
                closed_after_s = time.monotonic() - granted_at
                text = page.locator("#status").inner_text()
                assert extend.is_disabled()
                # A second view: three extensions, then the server's limit is shown; Stäng.
                page.get_by_role("button", name="Öppna bild").click()
                page.locator('#status[data-state="live"]').wait_for(timeout=20_000)
                for n in (1, 2, 3):
                    extend.click()
                    page.locator("#notice").filter(has_text=f"Förlängd ({n})").wait_for(
                        timeout=10_000
                    )
                extend.click()
                page.locator("#notice").filter(has_text="inte förlängas").wait_for(timeout=10_000)
                limit = page.locator("#notice").inner_text()
                page.get_by_role("button", name="Stäng").click()
                page.locator('#status[data-state="closed"]').wait_for(timeout=10_000)
                context.close()
            finally:
                chromium.close()
    assert notice == "Förlängd (1): Otydlig bild"
    assert limit == "Bilden kan inte förlängas fler gånger"
    assert extended - deadline == pytest.approx(CAP_S, abs=0.5)
    assert CAP_S + 1 <= closed_after_s <= 2 * CAP_S + 10  # not at the first deadline
    assert "den avtalade tiden är slut" in text
    assert not errors, errors
    actions = [(a, d) for a, d in _audit(database) if d.get("session_id") == session_id]
    assert [a for a, _ in actions] == ["view.started", "view.extended", "view.ended"]
    assert actions[1][1]["reason"] == "unclear_image"
    assert actions[2][1]["reason"] == "timeout"


@pytest.fixture
def demo_database(pg_admin_url: str, template_db: str) -> Iterator[str]:
    with b.fresh_database(pg_admin_url, template_db) as url:
        yield url


DEMO_CAP_S = 10


def test_demo_viewer_shows_moving_video(demo_database: str, mqtt_url: str) -> None:
    """``homecare demo --view-cap 10`` as a process: log in with the printed account, open the
    printed viewer URL, see decoded frames that differ (moving video) and the page close itself
    at the cap with the reason shown; a second view is closed with Stäng."""
    port = free_port()
    prefix = f"t{int(time.time() * 1000) % 10**9}d/hc/v1"
    env = b.service_env(demo_database, mqtt_url, prefix, port)
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
                opened = time.monotonic()
                page.goto(viewer_url)
                b.wait_frames(page, 10, 30)
                first = page.evaluate(LUMA_JS)
                b.wait_frames(page, 20, 30)
                second = page.evaluate(LUMA_JS)
                left = page.locator("#left").inner_text()
                page.locator('#status[data-state="closed"]').wait_for(
                    timeout=(DEMO_CAP_S + 15) * 1000
                )
                closed_after_s = time.monotonic() - opened
                at_cap = page.locator("#status").inner_text()
                has_video = page.evaluate("document.getElementById('video').srcObject !== null")
                page.get_by_role("button", name="Öppna bild").click()
                page.locator('#status[data-state="live"]').wait_for(timeout=30_000)
                page.get_by_role("button", name="Stäng").click()
                page.locator('#status[data-state="closed"]').wait_for(timeout=10_000)
                text = page.locator("#status").inner_text()
                context.close()
            finally:
                chromium.close()
    finally:
        code = demo.stop()
    assert code == 0, demo.log_tail()
    assert first != second  # the picture moves
    assert left.endswith("s kvar")
    assert at_cap == "Bilden är stängd: den avtalade tiden är slut"
    assert not has_video
    assert DEMO_CAP_S - 1 <= closed_after_s <= DEMO_CAP_S + 15
    assert "du stängde" in text
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
