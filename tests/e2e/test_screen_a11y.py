"""The in-home unit's screen in headless Chromium, in each of its languages: WCAG 2 A/AA checked
by axe-core on the idle, ringing and in-call screens, large targets, the texts of the brukare's
language, and who calls spoken (espeak-ng's WAV decoded by the page).

A real video phone (:class:`homeside.device.DeviceClient` on the test's Mosquitto, with its
:class:`homeside.peer.DevicePeer`) and its screen (:func:`homeside.screen.serving`); the ring is
the device's own ``ring`` command handler, as the backend's command would reach it (the backend's
side, ``lang`` from the care record, is ``tests/e2e/test_kiosk_announce.py``'s). axe-core is the
``axe.min.js`` the ``axe-playwright-python`` package ships, injected into the page.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from devices import topics
from homeside.device import DeviceClient, DeviceSpec
from homeside.peer import AnswerPolicy, CallState, DevicePeer
from homeside.peer import attach as attach_peer
from homeside.screen import Speech, kiosk_browser, serving
from tests.e2e import browser as b
from tests.integration.signalling_support import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

async_api = pytest.importorskip("playwright.async_api")
PHONE = "phone-0419"
CALLER = "Aino Järvinen-Virtanen"
WIDTH, HEIGHT = 1280, 800
#: WCAG 2.0, 2.1 and 2.2 at levels A and AA (axe-core's rule tags).
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
#: What each language's screen shows: the title while it rings, the two buttons, the idle line.
EXPECTED = {
    "sv": (f"{CALLER} ringer", "Svara", "Avvisa", "Lägg på", "Ingen ringer just nu"),
    "en": (f"{CALLER} is calling", "Answer", "Decline", "Hang up", "No one is calling"),
    "fi": (f"{CALLER} soittaa", "Vastaa", "Hylkää", "Lopeta puhelu", "Kukaan ei soita juuri nyt"),
}
#: What a unit's display gives Chromium and a test machine has not.
HEADLESS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")
AXE = """async (tags) => {
    const r = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
    const looked = [...r.passes, ...r.violations].map((v) => v.id);
    if (!looked.includes('color-contrast')) {
        return [{id: 'not-checked', looked}];  // axe must have looked at the texts' contrast
    }
    return r.violations.map((v) => ({id: v.id, impact: v.impact,
        nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 3)}));
}"""


@pytest.fixture
async def phone(mqtt_url: str, topic_prefix: str) -> AsyncIterator[DevicePeer]:
    spec = DeviceSpec(PHONE, topics.DeviceKind.VIDEO_PHONE, width=320, height=240, fps=5.0)
    device = DeviceClient(spec, mqtt_url, prefix=topic_prefix, keepalive_s=5)
    peer = attach_peer(device, scene=_Grey(), policy=AnswerPolicy.parse("manual"))
    stop = asyncio.Event()
    task = asyncio.create_task(device.run(stop))
    try:
        yield peer
    finally:
        stop.set()
        await peer.close()
        await asyncio.gather(task, return_exceptions=True)


class _Grey:
    """A flat grey picture (the screen test sends no video)."""

    def yuv420(self, t_s: float, width: int, height: int) -> npt.NDArray[np.uint8]:
        return np.full((height * 3 // 2, width), 128, np.uint8)


async def _ring(peer: DevicePeer, session_id: str, lang: str) -> None:
    args = {"session_id": session_id, "caller": CALLER, "lang": lang}
    ok, detail = await peer.on_ring(topics.Command("c-" + session_id, topics.CommandOp.RING, args))
    assert (ok, detail) == (True, None)


async def _axe(page: Any) -> list[dict[str, Any]]:
    if not await page.evaluate("() => typeof axe !== 'undefined'"):
        await page.add_script_tag(content=AXE_JS)
    violations: list[dict[str, Any]] = await page.evaluate(AXE, WCAG_AA)
    return violations


AXE_JS = (importlib.resources.files("axe_playwright_python") / "axe.min.js").read_text("utf-8")


async def test_every_screen_in_every_language_passes_axe_with_large_targets(
    phone: DevicePeer,
) -> None:
    assert Speech.find().is_available, "espeak-ng is a Debian package ./run test installs"
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    shown: dict[str, tuple[str, ...]] = {}
    sizes: list[tuple[float, float]] = []
    spoken: dict[str, int] = {}
    async with serving({PHONE: phone}, 0) as url, async_api.async_playwright() as p:
        chromium = await p.chromium.launch(
            executable_path=b.CHROMIUM,
            headless=True,
            args=[*b.CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            context = await chromium.new_context(viewport={"width": WIDTH, "height": HEIGHT})
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(f"{url}/")  # one unit: its screen
            body = page.locator("body")
            for lang in EXPECTED:
                said = await page.evaluate("() => window.callscreen.spoken")
                await _ring(phone, f"s-a11y-{lang}-01", lang)
                await page.locator('body[data-state="ringing"]').wait_for(timeout=10_000)
                await page.wait_for_function(f"() => window.callscreen.lang === '{lang}'")
                found[(lang, "ringing")] = await _axe(page)
                title = await page.locator("#title").text_content() or ""
                answer = await page.locator("#answer-text").text_content() or ""
                decline = await page.locator("#decline-text").text_content() or ""
                for button in (page.locator("#answer"), page.locator("#decline")):
                    box = await button.bounding_box()
                    sizes.append((box["width"], box["height"]))
                if lang == "fi":  # who calls, spoken with the Finnish voice and decoded here
                    await page.wait_for_function(
                        "(n) => window.callscreen.spoken > n || window.callscreen.speechFailed",
                        arg=said,
                    )
                    spoken[lang] = await page.evaluate("() => window.callscreen.spoken") - said
                    failed = await page.evaluate("() => window.callscreen.speechFailed")
                    assert failed == 0
                await page.locator("#answer").click()
                await page.locator('body[data-state="in_call"]').wait_for(timeout=10_000)
                found[(lang, "in_call")] = await _axe(page)
                hangup = await page.locator("#decline-text").text_content() or ""
                assert phone.call_state is CallState.IN_CALL
                await page.locator("#decline").click()
                await page.locator('body[data-state="idle"]').wait_for(timeout=10_000)
                found[(lang, "idle")] = await _axe(page)
                idle = await page.locator("#what").text_content() or ""
                html_lang = await page.evaluate("() => document.documentElement.lang")
                shown[lang] = (title.strip(), answer, decline, hangup, idle)
                assert html_lang == lang
                assert await body.get_attribute("data-state") == "idle"
        finally:
            await chromium.close()
    assert shown == EXPECTED
    assert {k: v for k, v in found.items() if v} == {}  # no WCAG A/AA violation anywhere
    assert len(found) == 9
    # far beyond WCAG's 44 x 44 CSS px: each choice about a third of the screen's height
    assert min(w for w, _ in sizes) >= 400, sizes
    assert min(h for _, h in sizes) >= 240, sizes
    assert spoken == {"fi": 1}  # the Finnish ring's name spoken once, decoded by Chromium
    assert not errors, errors


async def test_the_kiosk_browser_shows_the_screen_and_ends_with_the_block(
    phone: DevicePeer, caplog: pytest.LogCaptureFixture
) -> None:
    """:func:`homeside.screen.kiosk_browser` (what ``homecare agent --kiosk-browser`` runs): the
    real Chromium with the unit's kiosk flags (headless here: no display) loads the screen, which
    then polls its unit; leaving the block ends the browser."""
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    async with serving({PHONE: phone}, 0) as url:
        async with kiosk_browser(f"{url}/", b.CHROMIUM, extra_flags=HEADLESS) as proc:
            await wait_for(
                lambda: f"/kiosk/{PHONE}/state" in caplog.text, what="the screen polling its unit"
            )
            assert proc.returncode is None
        assert proc.returncode is not None  # ended with the block
    assert "/kiosk/texts.json" in caplog.text
