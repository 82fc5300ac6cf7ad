"""Who is calling an HTTP route: the request key every slice's ``api.py`` reads.

The HTTP layer (``services/web/http.py``) authenticates with the :data:`AUTHENTICATOR` that
identity installs, and stores the caller under :data:`PRINCIPAL`;
route handlers read it with :func:`caller`. Kept here, beside the roles, so that slices need not
import ``services``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from kernel.audit import reads
from kernel.clock import Clock
from kernel.roles import Principal, Route

Authenticator = Callable[[web.Request], Awaitable[Principal | None]]
"""Finds the caller of a request (session cookie or bearer token), or ``None``."""

PRINCIPAL = web.RequestKey("homecare_principal", Principal)
ROUTE = web.RequestKey("homecare_route", Route)
AUTHENTICATOR: web.AppKey[Authenticator] = web.AppKey("homecare_authenticator")
CLOCK: web.AppKey[Clock] = web.AppKey("homecare_clock")
"""The service clock for handlers (audit times); the composition root sets it."""

ReadLog = Callable[[Principal, reads.Read, str | None, Mapping[str, Any]], Awaitable[None]]
"""Writes one audited read (``kernel.audit.store.append_read``: folded, hash-chained)."""
READ_LOG: web.AppKey[ReadLog] = web.AppKey("homecare_read_log")
"""How handlers log a read; the composition root (``services.app``) sets it."""


def caller(request: web.Request) -> Principal:
    """The authenticated caller of a non-public route (401 if there is none)."""
    found: Principal | None = request.get(PRINCIPAL)
    if found is None:
        raise web.HTTPUnauthorized(reason="login required")
    return found


def why(request: web.Request) -> str | None:
    """The caller's reason for a read (``?why=``), checked before anything is read (400)."""
    return reads.reason(request.query.get("why"))


async def audit_read(
    request: web.Request,
    action: reads.Read,
    subject: str | None,
    reason: str | None,
    **more: Any,
) -> None:
    """Log that the caller read ``subject`` (after the read succeeded, before it is answered):
    the route's method and path, the reason if given and ``more`` (pseudonymous ids only).

    An app without :data:`READ_LOG` (a unit's own test app, never the composed service: a test
    holds that) logs nothing."""
    log = request.app.get(READ_LOG)
    if log is None:
        return
    found = request.get(ROUTE)
    route = f"{found.method} {found.path}" if found else f"{request.method} {request.path}"
    await log(caller(request), action, subject, reads.read_data(route, reason, **more))
