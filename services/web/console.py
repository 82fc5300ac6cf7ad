"""The operator console: its static shell and the console's own live-event WebSocket.

The console is plain ES modules, HTML and CSS under ``services/web/static/console/`` (no
bundler). The
shell is public (``GET /``, ``GET /console/...``): it holds no data. Everything it shows comes from
the authenticated JSON APIs of the slices and from ``GET /ws/console`` (staff only), which forwards
the in-process event bus (:mod:`services.events`) and the consent gate's change events as small
JSON messages with pseudonymous ids only.

Each role gets only what its REST routes would show it (issue 13, finding 6): every message type
names the REST route that shows the same facts (:data:`SHOWN_BY`), and a socket is sent a message
only if that route, as this app registered it, admits the caller's role; a type that names no
route, or whose route this process does not serve, goes to nobody (default deny). A message about
a brukare or a device (``recipient_id``, ``device_id``) goes only to a caller whose teams cover
that brukare's team (:func:`concerns`, issue 17): the lookup runs in the caller's database scope,
so a brukare or device of another organisation is not found and its message not sent. The socket is
watched by the revocation feed (:mod:`identity.revocations`): it closes with 4401 or 4403 the
moment its token or session is revoked, its account deactivated or its role changed.

Static files are served from one folder with a fixed set of types; a path that leaves the folder,
names a hidden file or has another extension is a 404. Every response carries a strict
Content-Security-Policy (same origin only, no inline script).

The console calls for attention with a sound; a person at the desk may mute it for at most
:data:`MAX_MUTE_MIN` minutes (``POST /api/rounds/mute``, 422 ``out_of_range`` above), audited as
``console.muted`` (``console.unmuted`` for ``{"minutes": 0}``). The mute's state is read back
from the audit log (``GET /api/rounds/mute``), so a reload, another tab or another process sees
the same: nothing else stores it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import structlog
from aiohttp import WSMsgType, web
from msgspec import Meta

from consent.gate import ChangeSubscription
from consent.model import ConsentChange
from devices.registry import PresenceChanged
from identity.revocations import REVOCATIONS
from identity.standing import Cutoff
from kernel.access import caller
from kernel.audit import store as audit_store
from kernel.body import Fields, read_body
from kernel.permissions import Permission, route
from kernel.roles import PUBLIC, Principal, Role, Route
from services.events import EventBus
from services.web.http import ROUTES
from supervision import api as rounds_api

log = structlog.get_logger(__name__)

STATIC_ROOT = Path(__file__).parent / "static" / "console"
WS_GOING_AWAY = 1001

#: The only file types the console serves, with their content types.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "object-src 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
    "Permissions-Policy": "camera=(self), microphone=(self), geolocation=()",
}

EVENT_BUS = web.AppKey("console_event_bus", EventBus)
#: Subscribes to the consent gate's change events (``Gate.changes``), when the process has one.
ConsentChanges = Callable[[], ChangeSubscription]
CONSENT_CHANGES: web.AppKey[ConsentChanges] = web.AppKey("console_consent_changes")

#: Turns a bus event into a console message (``None``: not for the console). Slices may add
#: their own: ``app[CONSOLE_EVENT_ENCODERS].append(fn)`` in the composition root.
EventEncoder = Callable[[object], dict[str, Any] | None]
EVENT_ENCODERS: web.AppKey[list[EventEncoder]] = web.AppKey("console_event_encoders")


#: Console message types every connected staff member gets (they carry no facts).
ALWAYS_SHOWN = frozenset({"hello", "resync", "pong"})
#: For each console message type, the REST route (method, path) that shows the same facts: its
#: roles are the roles that may receive the message.
SHOWN_BY: dict[str, tuple[str, str]] = {
    "device.presence": ("GET", "/api/devices/{device_id}"),
    "consent.changed": ("GET", "/api/recipients/{recipient_id}"),
    "check.changed": ("GET", "/api/checks/{check_id}"),
    "check.alarm": ("GET", "/api/rounds/queue"),
}


def audience(routes: Iterable[Route]) -> dict[str, frozenset[Role]]:
    """Who may receive each console message type, from the routes an app serves (pure)."""
    roles = {(r.method, r.path): r.roles for r in routes}
    return {
        kind: roles[route]
        for kind, route in SHOWN_BY.items()
        if roles.get(route)  # a public route would show it to anyone: not here
    }


def may_see(shown_to: dict[str, frozenset[Role]], role: Role, kind: object) -> bool:
    """Whether a caller with ``role`` may receive a console message of type ``kind``."""
    if kind in ALWAYS_SHOWN:
        return True
    return isinstance(kind, str) and role in shown_to.get(kind, frozenset())


#: How long a console socket trusts a looked-up team of a brukare or device, seconds.
SUBJECT_TTL_S = 30.0
_UNSEEN = "-"  # a subject the caller's scope does not show


class SubjectTeams:
    """Which team a console message is about, looked up per socket in the caller's database
    scope and kept :data:`SUBJECT_TTL_S`: a brukare's team, or a device's brukare's team (a
    device bound to nobody: ``None``); :data:`_UNSEEN` when the scope does not show it."""

    def __init__(self, pool: asyncpg.Pool | None, ttl_s: float = SUBJECT_TTL_S) -> None:
        self.pool = pool
        self.ttl_s = ttl_s
        self._known: dict[tuple[str, str], tuple[float, str | None]] = {}

    async def team(self, kind: str, ident: str) -> str | None:
        now = time.monotonic()
        kept = self._known.get((kind, ident))
        if kept is not None and kept[0] > now:
            return kept[1]
        found = await self._lookup(kind, ident)
        if len(self._known) > 4096:
            self._known.clear()
        self._known[(kind, ident)] = (now + self.ttl_s, found)
        return found

    async def _lookup(self, kind: str, ident: str) -> str | None:
        if self.pool is None:
            return _UNSEEN
        if kind == "recipient_id":
            team: str | None = await self.pool.fetchval(
                "SELECT team_id FROM care_recipients WHERE recipient_id = $1", ident
            )
            return _UNSEEN if team is None else team
        row = await self.pool.fetchrow(
            "SELECT (SELECT r.team_id FROM device_bindings b JOIN care_recipients r"
            " USING (recipient_id) WHERE b.device_id = d.device_id AND b.unbound_at IS NULL"
            " ORDER BY b.bound_at DESC LIMIT 1) AS team_id FROM devices d WHERE d.device_id = $1",
            ident,
        )
        return _UNSEEN if row is None else row["team_id"]


async def concerns(who: Principal, message: dict[str, Any], subjects: SubjectTeams) -> bool:
    """Whether a console message is about a brukare (or a device of one) the caller's teams
    cover (issue 17; organisations follow, a team being of one). A message about no brukare
    (``recipient_id`` None: a resync; a device bound to nobody in the caller's scope) is
    everyone's whom its type is shown to; one about a brukare or device the caller's scope does
    not show is nobody's."""
    if who.teams is None:
        return True
    for kind in ("recipient_id", "device_id"):
        ident = message.get(kind)
        if isinstance(ident, str):
            team = await subjects.team(kind, ident)
            if team == _UNSEEN:
                return False
            return team is None or who.covers(team)
    return True


class OpenSockets:
    """The console WebSockets open in this process (closed with GOING_AWAY on shutdown)."""

    def __init__(self) -> None:
        self.open: set[web.WebSocketResponse] = set()


SOCKETS = web.AppKey("console_sockets", OpenSockets)


def resolve_static(root: Path, name: str) -> Path | None:
    """The file ``name`` names under ``root``, or ``None`` if it is not one the console serves."""
    if not name or len(name) > 200:
        return None
    parts = name.split("/")
    if any(not p or p.startswith(".") for p in parts):
        return None
    path = (root / name).resolve()
    try:
        path.relative_to(root.resolve())
    except ValueError:
        return None
    if path.suffix not in CONTENT_TYPES or not path.is_file():
        return None
    return path


def _file(path: Path) -> web.StreamResponse:
    response = web.FileResponse(path, headers=SECURITY_HEADERS)
    response.content_type = CONTENT_TYPES[path.suffix].split(";")[0]
    response.charset = "utf-8" if "charset" in CONTENT_TYPES[path.suffix] else None
    return response


async def index(request: web.Request) -> web.StreamResponse:
    """The console's single page; the hash decides the screen."""
    return _file(STATIC_ROOT / "index.html")


async def root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/console/")


async def static_file(request: web.Request) -> web.StreamResponse:
    path = resolve_static(STATIC_ROOT, request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound(reason="no such console file")
    return _file(path)


# ---------------------------------------------------------------- live events


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def presence_event(event: object) -> dict[str, Any] | None:
    """``devices.registry.PresenceChanged`` -> ``{"type": "device.presence", ...}``."""
    if not isinstance(event, PresenceChanged):
        return None
    return {
        "type": "device.presence",
        "device_id": event.device_id,
        "presence": _jsonable(event.presence),
        "previous": _jsonable(event.previous),
        "at": _jsonable(event.at),
    }


def consent_event(change: ConsentChange) -> dict[str, Any]:
    """A consent change as ``{"type": "consent.changed", ...}``: which brukare (``None``: anyone,
    after a resync), what kind, which devices; pseudonymous ids only."""
    return {
        "type": "consent.changed",
        "recipient_id": change.recipient_id,
        "kind": _jsonable(change.kind),
        "device_ids": list(change.device_ids),
        "at": _jsonable(change.at),
    }


async def _forward_consent(
    subscription: ChangeSubscription,
    ws: web.WebSocketResponse,
    who: Principal,
    subjects: SubjectTeams,
) -> None:
    async for change in subscription:
        message = consent_event(change)
        if await concerns(who, message, subjects):
            await ws.send_str(json.dumps(message))


def encode_event(encoders: list[EventEncoder], event: object) -> dict[str, Any] | None:
    for encoder in encoders:
        message = encoder(event)
        if message is not None:
            return message
    return None


async def ws_console(request: web.Request) -> web.StreamResponse:
    """``GET /ws/console``: live console events as JSON text frames, server to browser only.

    The first message is ``{"type": "hello", "staff_id", "role"}``. A client that falls behind is
    sent ``{"type": "resync"}`` (reload lists from the API) instead of the events it missed.
    """
    who = caller(request)
    bus = request.app[EVENT_BUS]
    encoders = request.app.get(EVENT_ENCODERS) or [presence_event]
    served: list[Route] = request.app.get(ROUTES) or []
    shown_to = audience(served)
    rounds = request.app.get(rounds_api.STORE)
    subjects = SubjectTeams(rounds.pool if rounds is not None else None)
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4096)
    await ws.prepare(request)
    sockets = request.app[SOCKETS].open
    sockets.add(ws)
    log.info("console_ws_connected", staff_id=who.staff_id)
    await ws.send_json({"type": "hello", "staff_id": who.staff_id, "role": str(who.role)})
    async with _watched(request, who, ws):
        with bus.subscribe() as sub:

            async def forward() -> None:
                while True:
                    event = await sub.queue.get()
                    if sub.dropped:
                        sub.dropped = 0
                        await ws.send_json({"type": "resync"})
                    message = encode_event(encoders, event)
                    if (
                        message is not None
                        and may_see(shown_to, who.role, message.get("type"))
                        and await concerns(who, message, subjects)
                    ):
                        await ws.send_str(json.dumps(message, default=_jsonable))

            loop = asyncio.get_running_loop()
            pumps = [loop.create_task(forward())]
            subscribe = request.app.get(CONSENT_CHANGES)
            is_shown = may_see(shown_to, who.role, "consent.changed")
            consent = subscribe() if subscribe is not None and is_shown else None
            if consent is not None:
                pumps.append(loop.create_task(_forward_consent(consent, ws, who, subjects)))
            try:
                async for msg in ws:
                    if msg.type is WSMsgType.TEXT and msg.data == "ping":
                        await ws.send_str('{"type":"pong"}')
            finally:
                sockets.discard(ws)
                if consent is not None:
                    consent.close()
                for pump in pumps:
                    pump.cancel()
                for pump in pumps:
                    with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                        await pump
    if not ws.closed:
        await ws.close(code=WS_GOING_AWAY)
    log.info("console_ws_disconnected", staff_id=who.staff_id, code=ws.close_code)
    return ws


@contextlib.asynccontextmanager
async def _watched(
    request: web.Request, who: Principal, ws: web.WebSocketResponse
) -> AsyncIterator[None]:
    """Close ``ws`` with the cutoff's code the moment the revocation feed says access ended."""
    feed = request.app.get(REVOCATIONS)
    if feed is None:  # an app without identity (tests with a fake authenticator)
        yield
        return
    closing: set[asyncio.Task[bool]] = set()

    def cut(cutoff: Cutoff) -> None:
        task = asyncio.get_running_loop().create_task(
            ws.close(code=cutoff.code, message=cutoff.reason.encode())
        )
        closing.add(task)
        task.add_done_callback(closing.discard)

    try:
        async with feed.watch(who, cut):
            yield
    finally:
        for task in list(closing):
            with contextlib.suppress(ConnectionError):
                await task


# ---------------------------------------------------------------- mute

#: The longest a person may silence the console's sound at a time, minutes (the server's cap).
MAX_MUTE_MIN = 5
MUTED, UNMUTED = "console.muted", "console.unmuted"


class Mute(Fields):
    """Silence my console's sound for ``minutes`` (at most :data:`MAX_MUTE_MIN`; 0: sound on)."""

    minutes: Annotated[int, Meta(ge=0, le=MAX_MUTE_MIN)]


async def _muted_until(request: web.Request, staff_id: str) -> datetime | None:
    """When the caller's last mute ends, from the audit log (``None``: not muted now)."""
    pool = request.app[rounds_api.STORE].pool
    row = await pool.fetchrow(
        "SELECT action, data->>'until' AS until FROM audit_log"
        " WHERE actor=$1 AND action = ANY($2::text[]) ORDER BY seq DESC LIMIT 1",
        staff_id,
        [MUTED, UNMUTED],
    )
    if row is None or row["action"] != MUTED or not row["until"]:
        return None
    until = datetime.fromisoformat(row["until"])
    return until if until > request.app[rounds_api.CLOCK]() else None


def _mute_json(until: datetime | None) -> dict[str, Any]:
    return {"muted_until": until.isoformat() if until else None, "max_minutes": MAX_MUTE_MIN}


async def get_mute(request: web.Request) -> web.Response:
    """``GET /api/rounds/mute``: whether my console's sound is muted, and until when."""
    return web.json_response(_mute_json(await _muted_until(request, caller(request).staff_id)))


async def set_mute(request: web.Request) -> web.Response:
    """``POST /api/rounds/mute {"minutes": N}``: mute my sound for N minutes (1 to
    :data:`MAX_MUTE_MIN`, 422 above) or turn it on again (0); audited with the actor and until."""
    who = caller(request)
    body = await read_body(request, Mute)
    now = request.app[rounds_api.CLOCK]()
    until = now + timedelta(minutes=body.minutes) if body.minutes else None
    async with request.app[rounds_api.STORE].pool.acquire() as conn:
        await audit_store.append(
            conn,
            actor=who.staff_id,
            action=MUTED if until else UNMUTED,
            subject=None,
            data={"minutes": body.minutes, "until": until.isoformat() if until else None},
            at=now,
        )
    log.info("console_muted", staff_id=who.staff_id, minutes=body.minutes)
    return web.json_response(_mute_json(until))


def routes() -> list[Route]:
    return [
        Route("GET", "/", root, PUBLIC, "Redirect to the operator console", tags=("console",)),
        Route("GET", "/console/", index, PUBLIC, "The operator console", tags=("console",)),
        Route(
            "GET",
            "/console/{name:.+}",
            static_file,
            PUBLIC,
            "The console's static files (ES modules, CSS)",
            tags=("console",),
        ),
        route(
            "GET",
            "/ws/console",
            ws_console,
            Permission.OWN_SESSION,
            "Live console events (device presence, rounds) as JSON",
            tags=("console",),
        ),
        route(
            "GET",
            "/api/rounds/mute",
            get_mute,
            Permission.MUTE,
            "Whether my console's sound is muted, and until when",
            tags=("console",),
        ),
        route(
            "POST",
            "/api/rounds/mute",
            set_mute,
            Permission.MUTE,
            f"Mute my console's sound for 1 to {MAX_MUTE_MIN} minutes (0: on again), audited",
            body=Mute,
            tags=("console",),
        ),
    ]


async def _close_sockets(app: web.Application) -> None:
    for ws in list(app[SOCKETS].open):
        await ws.close(code=WS_GOING_AWAY, message=b"server shutting down")


def install(
    app: web.Application, bus: EventBus, *, consent_changes: ConsentChanges | None = None
) -> None:
    """Give the console the process's event bus (and the consent gate's change feed, so screens
    showing consents and the gate's answers update at once); close its WebSockets on shutdown."""
    app[EVENT_BUS] = bus
    if consent_changes is not None:
        app[CONSENT_CHANGES] = consent_changes
    app[SOCKETS] = OpenSockets()
    app.setdefault(EVENT_ENCODERS, [presence_event])
    app.on_shutdown.append(_close_sockets)
