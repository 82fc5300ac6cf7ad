"""The simulated units' own screens: a small local web page with big Svara / Avvisa buttons, as
a kiosk browser on a video phone would show (answer policy ``manual``), and the live indicator.

``GET /`` lists the phones and cameras; ``GET /kiosk/{id}`` is one unit's screen (Swedish;
``?lang=en``), which polls ``GET /kiosk/{id}/state`` (``call_state``, ``session_id``, ``caller``:
who calls, as the ring named them, or null, ``frames_received``: the callers' video frames the
phone has decoded, ``live``: what the home's indicator shows, or null, and ``bind_code``: a
binding request's one-time code the phone's screen shows large, ``{"code", "expires_at"}``, or
null) and presses ``POST /kiosk/{id}/answer`` or ``/decline`` (a phone: decline while ringing,
hang up in a call). ``POST /kiosk/{id}/bind-button`` presses the unit's bind button (the
installer's proof for a camera's binding: a ``bind_button`` event; the page of a camera has the
button too).

``live`` is ``{"purpose": "view" | "probe" | "call", "session_id", "remaining_s"}`` while the
unit's own indicator is on (:meth:`homeside.peer.DevicePeer.live`), or, for a phone, while its
home's camera's is (the screen in the home shows *Hemtjänsten tittar* during a view of that
camera, counting down ``remaining_s`` when the plan says so). Bind it to loopback: it is the
simulated unit's own screen and has no login.
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiomqtt
from aiohttp import web

from homeside.peer import DevicePeer
from simulators.homes import home_of

PAGE = Path(__file__).parent / "static" / "kiosk.html"
PEERS: web.AppKey[Mapping[str, DevicePeer]] = web.AppKey("kiosk_peers")


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


def _live(peers: Mapping[str, DevicePeer], peer: DevicePeer) -> dict[str, object] | None:
    """The unit's own indicator, else (a phone) that of a camera in the same home."""
    own = peer.live()
    if own is not None or not peer.is_phone:
        return own
    home = home_of(peer.device.spec.device_id)
    for device_id, other in sorted(peers.items()):
        if other is not peer and not other.is_phone and home_of(device_id) == home:
            shown = other.live()
            if shown is not None:
                return shown
    return None


async def index(request: web.Request) -> web.Response:
    units = sorted(request.app[PEERS].keys())
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
            "live": _live(request.app[PEERS], peer),  # what the indicator shows, or null
            "bind_code": _bind_code(peer),  # a binding's one-time code on screen, or null
        }
    )


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


def kiosk_app(peers: Mapping[str, DevicePeer]) -> web.Application:
    app = web.Application()
    app[PEERS] = peers
    app.router.add_get("/", index)
    app.router.add_get("/kiosk/{device_id}", screen)
    app.router.add_get("/kiosk/{device_id}/state", state)
    app.router.add_post("/kiosk/{device_id}/answer", answer)
    app.router.add_post("/kiosk/{device_id}/decline", decline)
    app.router.add_post("/kiosk/{device_id}/bind-button", bind_button)
    return app


@contextlib.asynccontextmanager
async def serving(
    peers: Mapping[str, DevicePeer], port: int, host: str = "127.0.0.1"
) -> AsyncIterator[str]:
    """Serve the screens on ``host:port`` (0: any free port); yields the base URL."""
    runner = web.AppRunner(kiosk_app(peers), handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()
