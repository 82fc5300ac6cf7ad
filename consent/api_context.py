"""What the consent slice's HTTP handlers share: the typed app keys the composition root sets
(:data:`STORE`, :data:`CLOCK`, :data:`ZONE`, :data:`PLAN_HOUR`) and the helpers that read them
from a request."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from aiohttp import web

from consent import rules
from consent.errors import NotFound
from consent.model import DEFAULT_ZONE, RecipientBasis
from consent.ports import ConsentStore
from kernel import access

STORE: web.AppKey[ConsentStore] = web.AppKey("consent_store")
CLOCK = access.CLOCK  # the service clock (kernel.access); set by the composition root
ZONE: web.AppKey[tzinfo] = web.AppKey("consent_zone")
"""The zone for local times on routes that name no brukare (the deployment's default)."""
PLAN_HOUR: web.AppKey[int] = web.AppKey("consent_plan_hour")
"""The hour the night round starts (settings ``plan_hour``): agreed times must fall in a round."""


def store(request: web.Request) -> ConsentStore:
    return request.app[STORE]


def now(request: web.Request) -> datetime:
    return request.app[CLOCK]()


def zone(request: web.Request) -> tzinfo:
    return request.app.get(ZONE) or rules.zone_of(DEFAULT_ZONE)


def answer(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


async def covered_basis(request: web.Request, recipient_id: str) -> RecipientBasis:
    """The brukare's record, if the caller's teams cover the brukare's team; else the same 404
    as a brukare that does not exist (it is not confirmed that one does)."""
    basis = await store(request).basis(recipient_id)
    if not access.caller(request).covers(basis.recipient.team_id):
        raise NotFound("care recipient", recipient_id, "recipient_id")
    return basis


async def recipient_zone(request: web.Request, recipient_id: str) -> tzinfo:
    """The brukare's zone, for a write about them: 404 unless the caller covers their team."""
    basis = await covered_basis(request, recipient_id)
    return rules.zone_of(basis.recipient.time_zone)
