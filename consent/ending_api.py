"""``POST /api/recipients/{recipient_id}/end``: a brukare's service ends (discharged, deceased,
moved). A case officer (``manage_care_record``) records it; :class:`consent.ending.Endings`
unbinds and quarantines the devices, ends the plans and pauses, and audits it
(``recipient.ended``). Bad input is 422 with its field and changes nothing; a brukare outside the
caller's teams is 404 as if absent; one already ended is 409 ``already_ended``."""

from __future__ import annotations

import structlog
from aiohttp import web

from consent import api_context as ctx
from consent.ending import Endings
from consent.ending_rules import EndReason
from kernel.access import caller
from kernel.body import Fields, Instant, instant, read_body
from kernel.permissions import Permission, route
from kernel.roles import Route

log = structlog.get_logger("consent.ending_api")

ENDINGS: web.AppKey[Endings] = web.AppKey("consent_endings")
"""The adapter that ends a service; set by the composition root."""


class EndService(Fields, kw_only=True):
    """Why and when the brukare's service ended (``ended_at`` now when absent; never in the
    future). Devices are unbound and quarantined, plans and pauses end; the personal data is
    erased after the retention period (``retention_ended_recipient_days``)."""

    reason: EndReason
    ended_at: Instant | None = None


async def end_service(request: web.Request) -> web.Response:
    who = caller(request)
    rid = request.match_info["recipient_id"]
    b = await read_body(request, EndService)
    now = ctx.now(request)
    zone = await ctx.recipient_zone(request, rid)  # 404 unless the caller covers the brukare
    ended_at = instant(b.ended_at, "ended_at", zone) or now
    done = await request.app[ENDINGS].end(
        rid, reason=b.reason, ended_at=ended_at, actor=who.staff_id, at=now, teams=who.teams
    )
    log.info(
        "recipient_ended",
        recipient_id=rid,
        reason=b.reason.value,
        devices_unbound=len(done.devices_unbound),
        staff_id=who.staff_id,
    )
    return ctx.answer(done.json())


def routes() -> list[Route]:
    return [
        route(
            "POST",
            "/api/recipients/{recipient_id}/end",
            end_service,
            Permission.MANAGE_CARE_RECORD,
            "A brukare's service ends (discharged, deceased, moved): devices unbound and "
            "quarantined, plans and pauses ended; erased after the retention period",
            body=EndService,
            tags=("consent",),
        )
    ]
