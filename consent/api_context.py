"""What the consent slice's HTTP handlers share: the typed app keys the composition root sets
(:data:`STORE`, :data:`CLOCK`, :data:`ZONE`, :data:`PLAN_HOUR`) and the helpers that read them
from a request."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from aiohttp import web

from consent import rules
from consent.model import DEFAULT_ZONE
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


async def recipient_zone(request: web.Request, recipient_id: str) -> tzinfo:
    basis = await store(request).basis(recipient_id)
    return rules.zone_of(basis.recipient.time_zone)
