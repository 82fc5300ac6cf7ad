"""``GET /api/recipients/{recipient_id}/extract``: the brukare's log extract (GDPR art. 15).

For case officers (administrators) and auditors (``read_extracts``). The query: ``from`` and
``to`` (local dates ``YYYY-MM-DD``, both included; default the year up to today), ``format``
(``json`` or ``html``; without it a browser's ``Accept: text/html`` gets the page), ``lang``
(``sv``, ``en`` or ``fi``, of the page) and ``why`` (the caller's reason, kept in the audit
entry). A brukare the caller's organisation or teams do not cover is 404 as if absent; a bad
value is 422 naming its field, and nothing is read or logged. Each extract made is one audit entry
(``extract.made``), never folded.
"""

from __future__ import annotations

import asyncpg
import structlog
from aiohttp import web

from consent.errors import NotFound
from kernel import access
from kernel.access import CLOCK, caller
from kernel.permissions import Permission, route
from kernel.roles import Route
from supervision import extract as ex
from supervision import extract_store

log = structlog.get_logger(__name__)

POOL: web.AppKey[asyncpg.Pool] = web.AppKey("extract_pool")
"""The service's pool (each acquire runs in the caller's scope); set by the composition root."""


def _format(request: web.Request) -> str:
    fmt = request.query.get("format")
    if fmt is None and "text/html" in request.headers.get("Accept", ""):
        return "html"
    return ex.choose(fmt, ("json", "html"), "format")


async def recipient_extract(request: web.Request) -> web.Response:
    """Every look at the brukare in the period (who, by name, when, how long, for which check or
    why), their consents, pauses, bindings and suspensions, in time order, with totals."""
    who = caller(request)
    why = access.why(request)
    first = ex.parse_date(request.query.get("from"), "from")
    last = ex.parse_date(request.query.get("to"), "to")
    fmt = _format(request)
    lang = ex.choose(request.query.get("lang"), ex.LANGUAGES, "lang")
    rid = request.match_info["recipient_id"]
    now = request.app[CLOCK]()
    async with request.app[POOL].acquire() as conn:
        found = await extract_store.recipient(conn, rid)
        if found is None or not who.covers(found.team_id):
            raise NotFound("care recipient", rid, "recipient_id")
        data: dict[str, str] = {"route": "GET /api/recipients/{recipient_id}/extract"}
        if why is not None:
            data["why"] = why
        built = await extract_store.make(
            conn, found, first, last, actor=who.staff_id, fmt=fmt, lang=lang, now=now, more=data
        )
    log.info(
        "extract_made",
        staff_id=who.staff_id,
        recipient_id=rid,
        format=fmt,
        looks=built.totals.looks,
    )
    if fmt == "html":
        return web.Response(
            text=ex.render_html(built, zone=found.zone, lang=lang),
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "no-store"},
        )
    return web.json_response(ex.to_json(built), headers={"Cache-Control": "no-store"})


def routes() -> list[Route]:
    return [
        route(
            "GET",
            "/api/recipients/{recipient_id}/extract",
            recipient_extract,
            Permission.READ_EXTRACTS,
            "The brukare's log extract (GDPR art. 15): every look with staff name, time, "
            "duration and check or reason, consents, pauses, bindings and suspensions "
            "(?from=&to=&format=html|json&lang=sv|en|fi); audited",
            tags=("consent",),
        ),
    ]
