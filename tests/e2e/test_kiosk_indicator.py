"""The home knows it is looked at (issue 15), in headless Chromium.

The composed service (real consent records and gate, the real round, PostgreSQL, Mosquitto) with
a simulated camera and video phone in one home (aiortc media) and their own screens
(:mod:`simulators.kiosk`). The operator opens the camera for the home's due check over
``/ws/signal`` (``tools.view.View``). Chromium shows the phone's screen and the camera's own
page: both show *Hemtjänsten tittar* with the seconds left, counting down, while the view lasts,
and nothing once it has ended.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from devices.topics import DeviceKind
from simulators.kiosk import serving
from tests.e2e import browser as b
from tests.integration.signalling_home import due_check, seed_home, served
from tests.integration.signalling_support import wait_for
from tools.view import View

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

async_api = pytest.importorskip("playwright.async_api")
CAM, PHONE = "cam-0171", "phone-0171"
LEFT = re.compile(r"^(\d+) s kvar$")


async def test_the_home_sees_a_view_with_the_seconds_left(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    async with served(
        database_url,
        mqtt_url,
        topic_prefix,
        [(CAM, DeviceKind.CAMERA), (PHONE, DeviceKind.VIDEO_PHONE)],
    ) as s:
        await seed_home(s, "rec-0171", [CAM, PHONE])
        check_id = await due_check(s, CAM)
        async with (
            serving({CAM: s.peers[CAM], PHONE: s.peers[PHONE]}, 0) as kiosk,
            s.channel() as channel,
            async_api.async_playwright() as p,
        ):
            chromium = await b.launch(p)
            try:
                context = await chromium.new_context(locale="sv-SE")
                errors: list[str] = []
                phone, camera = await context.new_page(), await context.new_page()
                for page, unit in ((phone, PHONE), (camera, CAM)):
                    page.on("pageerror", lambda e: errors.append(str(e)))
                    await page.goto(f"{kiosk}/kiosk/{unit}")
                    await page.locator('body[data-state="idle"]').wait_for(timeout=20_000)
                    assert await page.locator("#live").is_hidden()
                assert await camera.locator("#what").text_content() == "Ingen tittar just nu"

                view = View(channel, CAM, check_id=check_id)
                task = asyncio.create_task(view.run())
                await asyncio.wait_for(view.first_frame.wait(), 30)
                counts = []
                for page in (phone, camera):
                    await page.locator('body[data-live="view"]').wait_for(timeout=10_000)
                    assert await page.locator("#live-text").text_content() == "Hemtjänsten tittar"
                    left = await page.locator("#live-left").text_content()
                    found = LEFT.match(left or "")
                    assert found, left
                    counts.append(int(found.group(1)))
                assert 0 < min(counts) <= max(counts) <= 30  # the plan's 30 s cap
                # the screen counts down: a lower number within a few seconds
                await phone.wait_for_function(
                    """(n) => {
                        const m = /^(\\d+) s kvar$/.exec(
                            document.querySelector('#live-left').textContent);
                        return m !== null && Number(m[1]) < n;
                    }""",
                    arg=counts[0],
                    timeout=5_000,
                )
                await view.hang_up()
                result = await asyncio.wait_for(task, 10)
                for page in (phone, camera):
                    await page.locator('body[data-live=""]').wait_for(timeout=10_000)
                    assert await page.locator("#live").is_hidden()
            finally:
                await chromium.close()
        await wait_for(lambda: s.peers[CAM].live() is None, what="the camera's light off")
    assert result.bye == "operator"
    assert result.frames > 0
    assert not errors, errors
    seen = s.peers[CAM].stats.seen
    assert seen[:2] == ["indicator_on", "offer"]
    assert sorted(seen[2:]) == ["bye", "indicator_off"]
