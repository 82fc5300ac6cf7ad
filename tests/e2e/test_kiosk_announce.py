"""An auto-answered call is announced on the unit before any video (issue 15), in headless Chromium,
in the brukare's language (issue 19).

The composed service (real consent records and gate, PostgreSQL, Mosquitto) with a simulated video
phone (aiortc media) and its own screen (:mod:`homeside.screen`, served by
:mod:`simulators.kiosk`); the brukare, whose care record says Finnish, has consented to
auto-answer and the plan names a 5 s announcement and a 60 s call cap. The operator calls over
``/ws/signal`` (``tools.view.View``). The backend's ``ring`` carries the record's language; Chromium
shows the unit's screen in Finnish: the chime plays once and the caller's name is on screen and
spoken (espeak-ng's Finnish voice), with no Vastaa (Svara) button and no frame at either end, for
the plan's announcement; only then is the call connected and video flows. The call then ends by
itself at the plan's cap (on the service's clock) and the screen goes back to idle.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from consent.model import Purpose
from devices import envelope as env
from devices.topics import DeviceKind
from homeside.peer import AnswerPolicy
from simulators.kiosk import serving
from tests.e2e import browser as b
from tests.integration.signalling_home import seed_home, served
from tests.integration.signalling_support import audit_actions, wait_for
from tools.view import View

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

async_api = pytest.importorskip("playwright.async_api")
PHONE = "phone-0161"
CALLER = "Karin Nattsköterska"
ANNOUNCE_S, CAP_S = 5, 60
POLL_S = 0.25  # the screen asks its unit for the state this often
ANNOUNCING_SINCE = """
new MutationObserver(() => {
    if (window.announcingSince === undefined && document.body
            && document.body.dataset.state === "announcing") {
        window.announcingSince = Date.now();
    }
}).observe(document, {attributes: true, subtree: true, attributeFilter: ["data-state"]});
"""


async def test_the_name_is_on_screen_with_a_chime_before_any_video(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    async with served(
        database_url,
        mqtt_url,
        topic_prefix,
        [(PHONE, DeviceKind.VIDEO_PHONE)],
        policy=AnswerPolicy.parse("manual"),  # nobody presses anything
    ) as s:
        purposes = (Purpose.VIDEO_CALL, Purpose.CAMERA_CHECK, Purpose.AUTO_ANSWER)
        await seed_home(
            s, "rec-0161", [PHONE], purposes=purposes, call_cap_s=CAP_S, announce_s=ANNOUNCE_S
        )
        await s.rt.pool.execute(
            "UPDATE staff SET display_name = $1 WHERE username = 'op-signal'", CALLER
        )
        # the care record's language: Finnish (a national minority language)
        await s.rt.pool.execute(
            "UPDATE care_recipients SET language = 'fi-FI' WHERE recipient_id = 'rec-0161'"
        )
        phone = s.peers[PHONE]
        async with (
            serving({PHONE: phone}, 0) as kiosk,
            s.channel() as channel,
            async_api.async_playwright() as p,
        ):
            chromium = await b.launch(p)
            try:
                page = await (await chromium.new_context(locale="sv-SE")).new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                # the page notes (wall clock) when its body first says "announcing": the test's
                # own wait can notice it late on a busy machine, which would shorten the span
                await page.add_init_script(ANNOUNCING_SINCE)
                await page.goto(f"{kiosk}/kiosk/{PHONE}")
                await page.locator('body[data-state="idle"]').wait_for(timeout=20_000)

                call = View(channel, PHONE, purpose=env.Purpose.CALL)
                task = asyncio.create_task(call.run())
                await page.locator('body[data-state="announcing"]').wait_for(timeout=20_000)
                on_screen: dict[str, Any] = await page.evaluate(
                    """() => ({
                        title: document.querySelector('#title').textContent,
                        hint: document.querySelector('#hint').textContent,
                        svara: !document.querySelector('#answer').hidden
                            && document.querySelector('#answer').offsetParent !== null,
                        avvisa: document.querySelector('#decline').offsetParent !== null,
                        chimes: window.callscreen.chimes,
                        ringing: window.callscreen.ringing,
                        lang: document.documentElement.lang,
                    })"""
                )
                frames_then = (call.result.frames, phone.stats.offers, phone.stats.frames_received)
                b.SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(b.SCREENSHOTS / "kiosk-announcing.png"))
                await asyncio.wait_for(call.first_frame.wait(), 30)
                assert call.result.request_to_first_frame_s is not None
                first_frame_wall = time.time() - (
                    time.perf_counter() - (call._t0 + call.result.request_to_first_frame_s)
                )
                announcing_since_ms = await page.evaluate("() => window.announcingSince")
                first_frame_after_s = first_frame_wall - announcing_since_ms / 1000
                spoken = await page.evaluate("() => window.callscreen.spoken")
                await page.locator('body[data-state="in_call"]').wait_for(timeout=20_000)
                await wait_for(lambda: call.result.frames >= 5, what="the phone's video")
                s.clock.advance(CAP_S)  # the plan's call cap, on the service's clock
                ended = await asyncio.wait_for(task, 10)
                await page.locator('body[data-state="idle"]').wait_for(timeout=20_000)
                chimes_at_end = await page.evaluate("() => window.callscreen.chimes")
            finally:
                await chromium.close()
        actions = await audit_actions(s.rt.pool, call.session_id)
    print(
        f"\nannounced {phone.stats.announced_s[0]:.2f} s by the phone; first frame at the caller"
        f" {first_frame_after_s:.2f} s after the screen showed the name"
    )
    assert on_screen["lang"] == "fi"  # the care record's language, carried by the ring
    assert on_screen["title"].strip() == f"{CALLER} soittaa"
    assert "yhdistyy itsestään" in on_screen["hint"]
    assert spoken == 1  # who calls, spoken while announced (before any video)
    assert (on_screen["svara"], on_screen["avvisa"]) == (False, True)  # Avvisa still stops it
    assert (on_screen["chimes"], on_screen["ringing"]) == (1, False)  # a chime, not the ring
    assert frames_then == (0, 0, 0)  # no offer at the phone, no frame either way
    assert phone.stats.announced_s[0] >= ANNOUNCE_S
    # the screen shows the state it polled, at most one poll late: the name was up for at least
    # the announcement before the first frame reached the caller
    assert first_frame_after_s >= ANNOUNCE_S - POLL_S - 0.1
    assert chimes_at_end == 1
    assert ended.bye == "timeout"
    assert [a for a, _ in actions] == ["call.started", "call.answered", "call.ended"]
    assert not errors, errors
