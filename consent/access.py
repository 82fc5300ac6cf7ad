"""Who is calling an HTTP route: the request key every slice's ``api.py`` reads.

The HTTP layer (``services/http.py``) authenticates and stores the caller under :data:`PRINCIPAL`;
route handlers read it with :func:`caller`. Kept here, beside the roles, so that slices need not
import ``services``.
"""

from __future__ import annotations

from aiohttp import web

from consent.roles import Principal, Route

PRINCIPAL = web.RequestKey("homecare_principal", Principal)
ROUTE = web.RequestKey("homecare_route", Route)


def caller(request: web.Request) -> Principal:
    """The authenticated caller of a non-public route (401 if there is none)."""
    found: Principal | None = request.get(PRINCIPAL)
    if found is None:
        raise web.HTTPUnauthorized(reason="login required")
    return found


def optional_caller(request: web.Request) -> Principal | None:
    return request.get(PRINCIPAL)
