"""The in-home unit's own screen: the call screen of a video phone (big Svara / Avvisa, who calls,
shown and spoken, in the brukare's language), the live indicator and a binding's code.

Served by the device agent for its one unit (shown full screen by Chromium in kiosk mode:
:func:`browser_command`) and by the simulated homes for theirs (``simulators.kiosk``). Bind it to
loopback: it is the unit's own screen and has no login.

Routes (``{id}`` a unit of ``peers``):

- ``GET /``: the unit's screen when there is one unit, else a list of them.
- ``GET /kiosk/{id}``: the screen (``homeside/static/screen.html``), which polls
- ``GET /kiosk/{id}/state``: ``kind``, ``call_state``, ``session_id``, ``caller`` (who calls, as
  the ring named them, or null), ``announce_s``, ``frames_received`` (the caller's video frames
  the phone decoded, counted, not kept), ``live`` (what the indicator shows, or null),
  ``bind_code`` (``{"code", "expires_at"}`` or null), ``lang`` (the screen's language: the last
  ring's, else the screen's default, or null: the page's own) and ``speech`` (whether the name
  can be spoken here).
- ``GET /kiosk/texts.json``: every text of the screen, one table per language
  (``homeside/static/screen-texts.json``; ``{n}`` and ``{name}`` are filled in).
- ``GET /kiosk/{id}/spoken``: who calls, spoken in the call's language by espeak-ng as a WAV made
  in memory and streamed to the page, which plays it; never written to disk. 404 when nothing
  rings, 503 ``speech_unavailable`` when espeak-ng is missing or fails (the page then shows the
  name only). The name is in neither the URL nor any log line, and reaches espeak-ng on its
  standard input, not its command line.
- ``POST /kiosk/{id}/answer`` and ``/decline`` (a phone: decline while ringing, hang up in a
  call); ``POST /kiosk/{id}/bind-button`` presses the unit's bind button.

Why the page plays the name rather than the agent's own audio: the page already sounds the ring
and the chime, so the name comes in the same place, stops when the screen leaves the ringing
state, and works the same on a real unit (Chromium's audio output is the unit's) and in the demo
(the screen in any browser); no sound device is needed by the agent itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import shutil
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import aiomqtt
from aiohttp import ClientError, ClientSession, ClientTimeout, web

from devices.topics import ScreenLanguage
from homeside.peer import CallState, DevicePeer

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
PAGE = STATIC / "screen.html"
TEXTS = STATIC / "screen-texts.json"

#: espeak-ng's voice for each screen language.
VOICES: Mapping[ScreenLanguage, str] = {
    ScreenLanguage.SV: "sv",
    ScreenLanguage.EN: "en-gb",
    ScreenLanguage.FI: "fi",
}
SPEECH_TIMEOUT_S = 5.0
SPEECH_WPM = 140  # a little slower than espeak-ng's 175: spoken for older ears

#: Chromium's flags for the unit's screen: full screen with no browser around it, no first-run or
#: other prompts, sound without a tap first (the ring and the spoken name), no "allow camera?"
#: question (the unit's own page; calls use the agent's camera, not the page's).
KIOSK_FLAGS = (
    "--kiosk",
    "--noerrdialogs",
    "--disable-infobars",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-session-crashed-bubble",
    "--disable-translate",
    "--disable-features=Translate",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
    "--disable-pinch",
    "--overscroll-history-navigation=0",
    "--check-for-update-interval=31536000",
)


def browser_command(url: str, chromium: str = "chromium") -> list[str]:
    """The command that shows the screen at ``url`` in Chromium's kiosk mode."""
    return [chromium, *KIOSK_FLAGS, f"--app={url}"]


@contextlib.asynccontextmanager
async def kiosk_browser(
    url: str,
    chromium: str = "chromium",
    *,
    extra_flags: tuple[str, ...] = (),
    ready_timeout_s: float = 30.0,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Show the screen at ``url`` in Chromium's kiosk mode once it answers (within
    ``ready_timeout_s``); the browser is ended when the block ends. ``OSError`` when there is no
    such browser, ``TimeoutError`` when the screen never answered."""
    await _answering(url, ready_timeout_s)
    proc = await asyncio.create_subprocess_exec(
        *browser_command(url, chromium)[:-1],
        *extra_flags,
        f"--app={url}",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    log.info("screen_browser_started pid=%d", proc.pid)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _answering(url: str, timeout_s: float) -> None:
    """Wait until ``url`` answers an HTTP GET (the agent's screen has started)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with ClientSession() as http:
        while True:
            try:
                async with http.get(url, timeout=ClientTimeout(total=2.0)) as r:
                    if r.status < 500:
                        return
            except (ClientError, TimeoutError):
                pass
            if loop.time() >= deadline:
                raise TimeoutError(f"the screen at {url} did not answer")
            await asyncio.sleep(0.2)


@cache
def texts() -> dict[str, dict[str, str]]:
    """Every text of the screen, one table per language (:data:`TEXTS`)."""
    table: dict[str, dict[str, str]] = json.loads(TEXTS.read_text(encoding="utf-8"))
    return table


class SpeechUnavailable(Exception):
    """No speech here: espeak-ng is missing, failed or took too long (``reason``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Speech:
    """espeak-ng, run with the text on its standard input, its WAV read from its standard output
    into memory. ``executable=None``: none on this unit (the screen shows the name only)."""

    executable: str | None

    @classmethod
    def find(cls) -> Speech:
        return cls(shutil.which("espeak-ng"))

    @property
    def is_available(self) -> bool:
        return self.executable is not None

    async def wav(self, text: str, lang: ScreenLanguage) -> bytes:
        """``text`` spoken with the voice of ``lang``, as WAV bytes (RIFF sizes filled in)."""
        if self.executable is None:
            raise SpeechUnavailable("not_installed")
        args = ["-v", VOICES[lang], "-s", str(SPEECH_WPM), "--stdin", "--stdout"]
        try:
            proc = await asyncio.create_subprocess_exec(
                self.executable,
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError:
            raise SpeechUnavailable("not_installed") from None
        try:
            out, _ = await asyncio.wait_for(
                proc.communicate(text.encode("utf-8")), SPEECH_TIMEOUT_S
            )
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise SpeechUnavailable("timeout") from None
        if proc.returncode != 0 or not out.startswith(b"RIFF"):
            raise SpeechUnavailable("failed")
        return _sized(out)


def _sized(wav: bytes) -> bytes:
    """espeak-ng streams its WAV with unknown sizes (0x7ffff...); write the real ones."""
    data = wav.find(b"data", 12)
    if data < 0:
        return wav
    riff = (len(wav) - 8).to_bytes(4, "little")
    body = (len(wav) - data - 8).to_bytes(4, "little")
    return wav[:4] + riff + wav[8 : data + 4] + body + wav[data + 8 :]


PEERS: web.AppKey[Mapping[str, DevicePeer]] = web.AppKey("screen_peers")
NEIGHBOURS: web.AppKey[Callable[[str], object]] = web.AppKey("screen_homes")
SPEECH: web.AppKey[Speech] = web.AppKey("screen_speech")
LANG: web.AppKey[ScreenLanguage | None] = web.AppKey("screen_lang")


def _phone(request: web.Request) -> DevicePeer:
    peer = request.app[PEERS].get(request.match_info["device_id"])
    if peer is None or not peer.is_phone:
        raise web.HTTPNotFound(text="no such video phone")
    return peer


def _unit(request: web.Request) -> DevicePeer:
    peer = request.app[PEERS].get(request.match_info["device_id"])
    if peer is None:
        raise web.HTTPNotFound(text="no such unit")
    return peer


def _live(app: web.Application, peer: DevicePeer) -> dict[str, object] | None:
    """The unit's own indicator, else (a phone) that of a camera in the same home."""
    own = peer.live()
    if own is not None or not peer.is_phone:
        return own
    home_of = app[NEIGHBOURS]
    home = home_of(peer.device.spec.device_id)
    for device_id, other in sorted(app[PEERS].items()):
        if other is not peer and not other.is_phone and home_of(device_id) == home:
            shown = other.live()
            if shown is not None:
                return shown
    return None


def _lang(app: web.Application, peer: DevicePeer) -> ScreenLanguage | None:
    return peer.lang or app[LANG]


async def index(request: web.Request) -> web.StreamResponse:
    units = sorted(request.app[PEERS].keys())
    if len(units) == 1:
        raise web.HTTPFound(f"/kiosk/{units[0]}")
    items = "".join(
        f'<li><a href="/kiosk/{html.escape(d)}">{html.escape(d)}</a></li>' for d in units
    )
    return web.Response(
        text=f'<!doctype html><meta charset="utf-8"><title>Enheter</title><ul>{items}</ul>',
        content_type="text/html",
    )


async def screen(request: web.Request) -> web.FileResponse:
    _unit(request)
    return web.FileResponse(PAGE, headers={"Cache-Control": "no-cache"})


async def texts_json(request: web.Request) -> web.Response:
    return web.json_response(texts(), headers={"Cache-Control": "no-cache"})


async def state(request: web.Request) -> web.Response:
    peer = _unit(request)
    return web.json_response(
        {
            "kind": "video_phone" if peer.is_phone else "camera",
            "call_state": peer.call_state.value,
            "session_id": peer.ringing_session,
            "caller": peer.caller,  # the display name the ring carried, or null
            "announce_s": peer.announce_s,  # an auto-answered call's announcement, or null
            # callers' video frames this phone has decoded since it started (counted, not kept)
            "frames_received": peer.stats.frames_received,
            "live": _live(request.app, peer),  # what the indicator shows, or null
            "bind_code": _bind_code(peer),  # a binding's one-time code on screen, or null
            "lang": _lang(request.app, peer),  # the brukare's language, or null: the page's
            "speech": request.app[SPEECH].is_available,  # the name can be spoken here
        }
    )


def spoken_text(caller: str | None, lang: ScreenLanguage) -> str:
    """What the unit says when it rings: who calls (the team when the ring named nobody)."""
    table = texts()[lang.value]
    return table["spoken"].replace("{name}", caller or table["someone"])


async def spoken(request: web.Request) -> web.Response:
    """Who calls, spoken (WAV from memory); the name is never logged."""
    peer = _phone(request)
    device_id = peer.device.spec.device_id
    if peer.call_state not in {CallState.RINGING, CallState.ANNOUNCING}:
        raise web.HTTPNotFound(text="nothing rings")
    lang = _lang(request.app, peer) or ScreenLanguage.SV
    try:
        wav = await request.app[SPEECH].wav(spoken_text(peer.caller, lang), lang)
    except SpeechUnavailable as e:
        log.warning(
            "speech_unavailable device_id=%s lang=%s reason=%s; the name is shown only",
            device_id,
            lang.value,
            e.reason,
        )
        return web.json_response({"error": "speech_unavailable", "reason": e.reason}, status=503)
    log.info("caller_spoken device_id=%s lang=%s bytes=%d", device_id, lang.value, len(wav))
    return web.Response(body=wav, content_type="audio/wav", headers={"Cache-Control": "no-store"})


def _bind_code(peer: DevicePeer) -> dict[str, object] | None:
    shown = peer.device.shown_bind_code()
    if shown is None:
        return None
    return {"code": shown.code, "expires_at": shown.expires_at}


async def bind_button(request: web.Request) -> web.Response:
    """The unit's bind button, pressed (by the installer; a test or the demo here)."""
    device = _unit(request).device
    try:
        await device.press_bind_button()
    except aiomqtt.MqttError:
        return web.json_response({"ok": False}, status=503)
    return web.json_response({"ok": True, "presses": device.bind_presses})


async def answer(request: web.Request) -> web.Response:
    ok = await _phone(request).answer()
    return web.json_response({"ok": ok}, status=200 if ok else 409)


async def decline(request: web.Request) -> web.Response:
    ok = await _phone(request).decline()
    return web.json_response({"ok": ok}, status=200 if ok else 409)


def _one_home(device_id: str) -> object:
    return None  # every unit of the screen is in the same home (the agent's one unit)


def screen_app(
    peers: Mapping[str, DevicePeer],
    *,
    home_of: Callable[[str], object] = _one_home,
    speech: Speech | None = None,
    lang: ScreenLanguage | None = None,
) -> web.Application:
    """The screen of ``peers``' units. ``home_of`` tells which units share a home (a phone shows
    its home's camera's indicator); ``speech`` speaks the caller's name (default: espeak-ng if
    installed); ``lang`` is the screen's language until a ring names the brukare's."""
    app = web.Application()
    app[PEERS] = peers
    app[NEIGHBOURS] = home_of
    app[SPEECH] = Speech.find() if speech is None else speech
    app[LANG] = lang
    app.router.add_get("/", index)
    app.router.add_get("/kiosk/texts.json", texts_json)
    app.router.add_get("/kiosk/{device_id}", screen)
    app.router.add_get("/kiosk/{device_id}/state", state)
    app.router.add_get("/kiosk/{device_id}/spoken", spoken)
    app.router.add_post("/kiosk/{device_id}/answer", answer)
    app.router.add_post("/kiosk/{device_id}/decline", decline)
    app.router.add_post("/kiosk/{device_id}/bind-button", bind_button)
    return app


@contextlib.asynccontextmanager
async def serving(
    peers: Mapping[str, DevicePeer],
    port: int,
    host: str = "127.0.0.1",
    *,
    home_of: Callable[[str], object] = _one_home,
    speech: Speech | None = None,
    lang: ScreenLanguage | None = None,
) -> AsyncIterator[str]:
    """Serve the screens on ``host:port`` (0: any free port); yields the base URL. The options
    are :func:`screen_app`'s."""
    app = screen_app(peers, home_of=home_of, speech=speech, lang=lang)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()
