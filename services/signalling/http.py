"""``GET /ws/signal``: the WebSocket transport of signalling, its route and shutdown hook.

JSON text frames both ways, one envelope each; a frame over
:data:`devices.envelope.MAX_MESSAGE_BYTES` closes the socket (1009). A client that floods is closed
with 1008, every client with 1001 when the server stops, a client whose access was taken away
with 4401 or 4403 (:mod:`identity.revocations`). The handler only moves text;
:class:`services.signalling.service.Signalling` decides.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import structlog
from aiohttp import WSMsgType, web

from devices import envelope as env
from identity.revocations import REVOCATIONS, Revocations, Unverifiable
from identity.standing import Cutoff
from kernel.access import caller
from kernel.permissions import Permission, route
from kernel.roles import PUBLIC, Principal, Route
from services.signalling.session import ClientConnection, Closing
from services.web.console import SECURITY_HEADERS, STATIC_ROOT, resolve_static

if TYPE_CHECKING:
    from services.signalling.service import Signalling

log = structlog.get_logger(__name__)

WS_GOING_AWAY = 1001
VIEWER_ROOT = STATIC_ROOT.parent / "viewer"  # services/web/static/viewer
VIEWER_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
}
SIGNALLING: web.AppKey[Signalling] = web.AppKey("homecare_signalling")


async def ws_signal(request: web.Request) -> web.StreamResponse:
    """``GET /ws/signal``: one client's envelopes, both ways, as JSON text frames.

    Access ends when it is taken away (issue 13): the socket is watched by the process's
    revocation feed (closed with 4401/4403 the moment its token or session is revoked, its
    account deactivated or its role changed, or its credential expires), and every ``request``
    is preceded by a fresh check of the credential, so that even a lost notification cannot
    start a view: a refused request gets ``denied`` with the cause, then the close.
    """
    sig = request.app[SIGNALLING]
    who = caller(request)
    feed = request.app.get(REVOCATIONS)
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=env.MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    async with sig.connect(who) as conn, _watched(feed, who, conn):
        writer = asyncio.get_running_loop().create_task(_pump(conn, ws))
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    asked = _request_in(msg.data) if feed is not None else None
                    if asked is None or not await _refused(feed, conn, asked):
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


@contextlib.asynccontextmanager
async def _watched(
    feed: Revocations | None, who: Principal, conn: ClientConnection
) -> AsyncIterator[None]:
    """Close ``conn`` with the cutoff's code the moment the feed says its access ended."""
    if feed is None:  # an app without identity (tests with a fake authenticator)
        yield
        return

    def cut(cutoff: Cutoff) -> None:
        conn.close(cutoff.code, cutoff.reason)

    async with feed.watch(who, cut):
        yield


def _request_in(data: str) -> env.Request | None:
    """The ``request`` (a view, call, probe or extension: a use of the caller's right) that
    ``data`` holds, else ``None``. A cheap look first; anything else is the service's to judge."""
    if '"request"' not in data:
        return None
    try:
        message = env.decode(data, allowed=env.CLIENT_TYPES)
    except env.EnvelopeError:
        return None
    return message if isinstance(message, env.Request) else None


async def _refused(feed: Revocations | None, conn: ClientConnection, request: env.Request) -> bool:
    """Re-check the caller's credential before a ``request``: ``True`` (and the client told)
    if it must not reach the service: ``denied`` with the cause and the close when the right is
    gone, ``error`` when it cannot be checked now."""
    if feed is None:
        return False
    try:
        cutoff = await feed.check(conn.principal)
    except Unverifiable:
        conn.send(
            env.Error(
                code="unavailable",
                message="cannot verify the login now; try again",
                session_id=request.session_id,
            )
        )
        return True
    if cutoff is None:
        return conn.is_closed  # cut by the feed meanwhile
    log.info(
        "signal_request_refused",
        conn_id=conn.conn_id,
        staff_id=conn.principal.staff_id,
        cause=cutoff.cause.value,
        session_id=request.session_id,
    )
    conn.send(env.Denied(request.session_id, reason=cutoff.cause.value))
    conn.close(cutoff.code, cutoff.reason)
    return True


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
        route(
            "GET",
            "/ws/signal",
            ws_signal,
            Permission.SIGNAL,
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
