"""Request rate limits per HTTP client: a token bucket per remote address.

``HOMECARE_HTTP_RATE_PER_S`` tokens per second, at most ``HOMECARE_HTTP_RATE_BURST`` saved up;
each request takes one. Over the limit a request gets 429 ``rate_limited`` with ``Retry-After``
before it reaches authentication or the database. ``/healthz`` and ``/readyz`` are exempt (load
balancers poll them). At most ``max_clients`` buckets are kept (least recently seen dropped), so
memory stays bounded whatever the number of addresses.

Behind a reverse proxy every request comes from the proxy's address: set the limit there, or
raise this one. Body size is limited separately by ``HOMECARE_MAX_BODY_BYTES`` (413
``too_large``), WebSocket messages by signalling, MQTT payloads by ``devices.topics``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import structlog
from aiohttp import web

from kernel.ratelimit import RateLimiter
from services.settings import Settings
from services.web.http import Handler

log = structlog.get_logger(__name__)

EXEMPT_PATHS = frozenset({"/healthz", "/readyz"})
LOGIN_PATHS = frozenset({"/api/login", "/api/login/oidc/callback"})
LOGIN_RATE_PER_S = 0.5
LOGIN_BURST = 30
"""Login attempts per client address on top of the general limit, against password spraying
across many usernames (which the per-username lockout cannot see): 30 at once, then one per 2 s."""


LIMITER: web.AppKey[RateLimiter] = web.AppKey("homecare_rate_limiter")
LOGIN_LIMITER: web.AppKey[RateLimiter] = web.AppKey("homecare_login_rate_limiter")


def middleware(
    limiter: RateLimiter, logins: RateLimiter | None = None
) -> Callable[[web.Request, Handler], object]:
    @web.middleware
    async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in EXEMPT_PATHS:
            client = request.remote or "unknown"
            wait_s = limiter.wait_s(client)
            if wait_s == 0.0 and logins is not None and request.path in LOGIN_PATHS:
                wait_s = logins.wait_s(client)
            if wait_s > 0:
                raise web.HTTPTooManyRequests(
                    reason="too many requests; slow down",
                    headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
                )
        return await handler(request)

    return rate_limit


def install(app: web.Application, settings: Settings) -> RateLimiter:
    """Add the rate limit right after the error middleware (so 429 has the one error shape and
    comes before authentication)."""
    limiter = RateLimiter(settings.http_rate_per_s, settings.http_rate_burst)
    logins = RateLimiter(LOGIN_RATE_PER_S, LOGIN_BURST, event="login_rate_limited")
    app[LIMITER] = limiter
    app[LOGIN_LIMITER] = logins
    app.middlewares.insert(1, middleware(limiter, logins))  # type: ignore[arg-type]
    return limiter
