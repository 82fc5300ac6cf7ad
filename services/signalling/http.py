"""``GET /ws/signal``: the WebSocket transport of signalling, its route and shutdown hook.

JSON text frames both ways, one envelope each; a frame over
:data:`devices.envelope.MAX_MESSAGE_BYTES` closes the socket (1009). A client that floods is closed
with 1008, every client with 1001 when the server stops. The handler only moves text;
:class:`services.signalling.service.Signalling` decides.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from devices import envelope as env
from kernel.access import caller
from kernel.roles import OPERATORS, PUBLIC, Role, Route
from services.signalling.session import ClientConnection, Closing
from services.web.console import SECURITY_HEADERS, resolve_static

if TYPE_CHECKING:
    from services.signalling.service import Signalling

WS_GOING_AWAY = 1001
VIEWER_ROOT = Path(__file__).parent / "static" / "viewer"
VIEWER_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
}
SIGNALLING: web.AppKey[Signalling] = web.AppKey("homecare_signalling")


async def ws_signal(request: web.Request) -> web.StreamResponse:
    """``GET /ws/signal``: one client's envelopes, both ways, as JSON text frames."""
    sig = request.app[SIGNALLING]
    who = caller(request)
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=env.MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    async with sig.connect(who) as conn:
        writer = asyncio.get_running_loop().create_task(_pump(conn, ws))
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await sig.handle_client(conn, msg.data)
                elif msg.type is WSMsgType.BINARY:
                    sig.reject(conn, "bad_encoding", "send JSON text frames", None)
                if conn.is_closed:
                    break
        finally:
            if conn.is_closed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(writer), 2.0)
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer
    if not ws.closed:
        await ws.close(code=WS_GOING_AWAY)
    return ws


async def _pump(conn: ClientConnection, ws: web.WebSocketResponse) -> None:
    while True:
        item = await conn.outbox.get()
        if isinstance(item, Closing):
            await ws.close(code=item.code, message=item.reason.encode())
            return
        try:
            await ws.send_str(env.encode(item))
        except ConnectionError:
            return


async def viewer_file(request: web.Request) -> web.StreamResponse:
    """``GET /viewer/`` and its files: the reference viewer page (holds no data; the WebSocket
    it opens needs a staff login)."""
    path = resolve_static(VIEWER_ROOT, request.match_info.get("name") or "index.html")
    if path is None or path.suffix not in VIEWER_TYPES:
        raise web.HTTPNotFound(reason="no such viewer file")
    response = web.FileResponse(path, headers=SECURITY_HEADERS)
    response.content_type = VIEWER_TYPES[path.suffix]
    response.charset = "utf-8"
    return response


async def on_shutdown(app: web.Application) -> None:
    """``app.on_shutdown`` hook: WebSockets close before the HTTP server waits for handlers."""
    sig = app.get(SIGNALLING)
    if sig is not None:
        await sig.close_clients()


def routes() -> list[Route]:
    return [
        Route(
            "GET",
            "/ws/signal",
            ws_signal,
            OPERATORS | {Role.SYSTEM},
            "Signalling WebSocket: live views, calls and probes (JSON envelopes)",
            tags=("signalling",),
        ),
        Route("GET", "/viewer/", viewer_file, PUBLIC, "Reference viewer", tags=("signalling",)),
        Route(
            "GET",
            "/viewer/{name:[a-z]+\\.(?:js|css|html)}",
            viewer_file,
            PUBLIC,
            "Reference viewer page files",
            tags=("signalling",),
        ),
    ]
