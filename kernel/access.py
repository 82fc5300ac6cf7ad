"""Who is calling an HTTP route: the request key every slice's ``api.py`` reads.

The HTTP layer (``services/web/http.py``) authenticates with the :data:`AUTHENTICATOR` that
identity installs, and stores the caller under :data:`PRINCIPAL`;
route handlers read it with :func:`caller`. Kept here, beside the roles, so that slices need not
import ``services``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from kernel.clock import Clock
from kernel.roles import Principal, Route

Authenticator = Callable[[web.Request], Awaitable[Principal | None]]
"""Finds the caller of a request (session cookie or bearer token), or ``None``."""

PRINCIPAL = web.RequestKey("homecare_principal", Principal)
ROUTE = web.RequestKey("homecare_route", Route)
AUTHENTICATOR: web.AppKey[Authenticator] = web.AppKey("homecare_authenticator")
CLOCK: web.AppKey[Clock] = web.AppKey("homecare_clock")
"""The service clock for handlers (audit times); the composition root sets it."""


def caller(request: web.Request) -> Principal:
    """The authenticated caller of a non-public route (401 if there is none)."""
    found: Principal | None = request.get(PRINCIPAL)
    if found is None:
        raise web.HTTPUnauthorized(reason="login required")
    return found
