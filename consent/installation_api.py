"""The technician's view of the brukare's homes: installation addresses and the devices bound
there, nothing of the care record (no name, plan, consent, pause or note).

``GET /api/installations`` is the one route a technician reads homes through (the role matrix,
:mod:`kernel.permissions`, gives it ``read_installations`` and not ``read_care_record``, so the
brukare routes answer it 403). One audited read (``installation.listed``) per call."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from consent import api_context as ctx
from consent import records
from consent.model import RecipientBasis
from kernel import access
from kernel.audit.reads import Read


def installation_json(basis: RecipientBasis) -> dict[str, Any]:
    """Where the devices of one home are: its address and its bound devices (pseudonymous ids)."""
    r = basis.recipient
    return {
        "recipient_id": r.recipient_id,
        "home": r.home,
        "devices": [
            {
                "device_id": b.device_id,
                "device_kind": b.device_kind,
                "bound_at": records.iso(b.bound_at),
            }
            for b in basis.bindings
            if b.unbound_at is None
        ],
    }


async def list_installations(request: web.Request) -> web.Response:
    """Every home's installation address and bound devices, ordered by recipient id."""
    why = access.why(request)
    bases = await ctx.store(request).bases()
    found = [installation_json(bases[rid]) for rid in sorted(bases)]
    await access.audit_read(request, Read.INSTALLATIONS_LISTED, None, why, count=len(found))
    return ctx.answer({"installations": found})
