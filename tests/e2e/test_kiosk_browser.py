"""The simulated video phone's own screen (``homecare simulate --kiosk-port``) in headless Chromium.

``homecare serve`` and ``homecare simulate --answer manual`` run as processes (real PostgreSQL,
Mosquitto and aiortc media). The operator is an aiortc peer in this test calling over
``/ws/signal`` (``tools.view.View``, purpose ``call``: it sends a synthetic camera and a tone
and decodes the phone's video). Chromium shows the unit's screen and presses its buttons: the
call rings the phone; Svara gives two-way media (frames decoded at both ends); Lägg på and Avvisa
end the call ``declined``; Enter and Escape do the same from the keyboard.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import pytest

from consent.store import PgConsentStore
from devices import envelope as env
from tests.e2e import browser as b
from tests.integration.signalling_support import audit_actions, wait_for
from tools.demo_homes import seed_demo_homes
from tools.embedded import free_port
from tools.view import View, WebSocketChannel

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

async_api = pytest.importorskip("playwright.async_api")
PHONE = "phone-0003"


@dataclass(frozen=True)
class Unit:
    backend: b.Backend
    kiosk_url: str


@pytest.fixture
def unit(database_url: str, mqtt_url: str) -> Iterator[Unit]:
    prefix = f"t{uuid.uuid4().hex[:10]}/hc/v1"
    kiosk_port = free_port()
    with (
        b.backend(
            database_url, mqtt_url, prefix, ready_timeout_s=60, HOMECARE_ROLES="api,signalling"
        ) as backend,
        b.homes(
            backend.env,
            *("--homes", "3", "--device", PHONE, "--answer", "manual"),
            *("--kiosk-port", str(kiosk_port), "--health-interval", "5"),
        ),
    ):
        url = f"http://127.0.0.1:{kiosk_port}/kiosk/{PHONE}"
        b.wait_until(lambda: b.http_status(url) == 200, 60, "the phone's own screen")
        yield Unit(backend, url)


@pytest.fixture
async def db_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


def _token(backend: b.Backend) -> str:
    done = subprocess.run(
        [*b.HOMECARE, "token", "create", "--role", "operator"],
        env=backend.env,
        capture_output=True,
        check=True,
        timeout=60,
        cwd=b.ROOT,
    )
    return done.stdout.decode().strip()


async def _online(pool: asyncpg.Pool) -> bool:
    presence = await pool.fetchval("SELECT presence FROM devices WHERE device_id = $1", PHONE)
    return bool(presence == "online")


CALLER = "Karin Nattsköterska"


class Phone:
    """What the unit reports about itself (its own ``/state``)."""

    def __init__(self, http: aiohttp.ClientSession, kiosk_url: str) -> None:
        self.http = http
        self.url = f"{kiosk_url}/state"

    async def state(self) -> dict[str, Any]:
        async with self.http.get(self.url) as r:
            found: dict[str, Any] = json.loads(await r.text())
            return found


async def _ringing(page: Any, call: View) -> None:
    await page.locator('body[data-state="ringing"]').wait_for(timeout=20_000)
    assert await page.locator("#title").text_content() == f"{CALLER} ringer"
    assert call.result.granted
    assert call.result.frames == 0  # nothing flows before the brukare answers


async def _in_call(page: Any, call: View, phone: Phone) -> tuple[int, int]:
    """Wait for media both ways; return (frames at the caller, new frames at the phone)."""
    before = (await phone.state())["frames_received"]
    await page.locator('body[data-state="in_call"]').wait_for(timeout=20_000)
    await asyncio.wait_for(call.first_frame.wait(), 30)
    await wait_for(
        lambda: call.result.frames >= 5, what="the phone's video at the caller", timeout_s=30
    )

    async def at_phone() -> bool:
        return bool((await phone.state())["frames_received"] - before >= 5)

    await wait_for(at_phone, what="the caller's video at the phone", timeout_s=30)
    return call.result.frames, (await phone.state())["frames_received"] - before


async def test_svara_and_avvisa_clicked_in_chromium_on_a_real_call(
    unit: Unit, db_pool: asyncpg.Pool
) -> None:
    await wait_for(lambda: _online(db_pool), what=f"{PHONE} online", timeout_s=30)
    await seed_demo_homes(PgConsentStore(db_pool), [PHONE], at=datetime.now(UTC))
    token = await asyncio.to_thread(_token, unit.backend)
    # the token's account (the only service account here) gets a name: the unit shows who calls
    await db_pool.execute("UPDATE staff SET display_name = $1 WHERE is_service", CALLER)
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            f"{unit.backend.url}/ws/signal",
            headers={"Authorization": f"Bearer {token}"},
            max_msg_size=env.MAX_MESSAGE_BYTES,
        ) as ws,
        async_api.async_playwright() as p,
    ):
        phone = Phone(http, unit.kiosk_url)
        channel = WebSocketChannel(ws)
        chromium = await p.chromium.launch(
            executable_path=b.CHROMIUM, headless=True, args=b.CHROMIUM_ARGS
        )
        try:
            page = await (await chromium.new_context(locale="sv-SE")).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(unit.kiosk_url)
            await page.locator('body[data-state="idle"]').wait_for(timeout=20_000)

            async def call() -> tuple[View, asyncio.Task[Any]]:
                view = View(channel, PHONE, purpose=env.Purpose.CALL)
                return view, asyncio.create_task(view.run())

            # 1. Svara clicked: two-way media; Lägg på clicked: the call ends `declined`.
            answered, task = await call()
            await _ringing(page, answered)
            await page.get_by_role("button", name="Svara").click()
            at_caller, at_phone = await _in_call(page, answered, phone)
            await page.get_by_role("button", name="Lägg på").click()
            first = await asyncio.wait_for(task, 15)
            await page.locator('body[data-state="idle"]').wait_for(timeout=20_000)

            # 2. Avvisa clicked while it rings: `declined`, no media.
            declined, task = await call()
            await _ringing(page, declined)
            await page.get_by_role("button", name="Avvisa").click()
            second = await asyncio.wait_for(task, 15)
            await page.locator('body[data-state="idle"]').wait_for(timeout=20_000)

            # 3. The keyboard: Enter answers, Escape hangs up; Escape declines a ringing call.
            keyed, task = await call()
            await _ringing(page, keyed)
            await page.keyboard.press("Enter")
            keyed_caller, keyed_phone = await _in_call(page, keyed, phone)
            await page.keyboard.press("Escape")
            third = await asyncio.wait_for(task, 15)
            await page.locator('body[data-state="idle"]').wait_for(timeout=20_000)
            escaped, task = await call()
            await _ringing(page, escaped)
            await page.keyboard.press("Escape")
            fourth = await asyncio.wait_for(task, 15)
            await page.locator('body[data-state="idle"]').wait_for(timeout=20_000)
        finally:
            await chromium.close()
    print(
        f"\nclicked call: {at_caller} frames at the caller, {at_phone} at the phone;"
        f" keyed call: {keyed_caller} / {keyed_phone}"
    )
    assert min(at_caller, at_phone, keyed_caller, keyed_phone) >= 5  # both ways, both calls
    assert [r.bye for r in (first, second, third, fourth)] == ["declined"] * 4
    assert second.frames == fourth.frames == 0
    assert not errors, errors
    audited = {
        r.session_id: [a for a, _ in await audit_actions(db_pool, r.session_id)]
        for r in (first, second, third, fourth)
    }
    answered_trail = ["call.started", "call.answered", "call.ended"]
    declined_trail = ["call.started", "call.ended"]
    assert audited[first.session_id] == audited[third.session_id] == answered_trail
    assert audited[second.session_id] == audited[fourth.session_id] == declined_trail
