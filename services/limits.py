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
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiohttp import web

from services.http import Handler
from services.settings import Settings

log = structlog.get_logger(__name__)

EXEMPT_PATHS = frozenset({"/healthz", "/readyz"})
LOGIN_PATHS = frozenset({"/api/login", "/api/login/oidc/callback"})
LOGIN_RATE_PER_S = 0.5
LOGIN_BURST = 30
"""Login attempts per client address on top of the general limit, against password spraying
across many usernames (which the per-username lockout cannot see): 30 at once, then one per 2 s."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float
    is_limited: bool = False


class RateLimiter:
    """Token buckets keyed by client; :meth:`take` says how long to wait (0.0: go ahead).

    The first refusal after an allowed request is logged as ``event`` (with ``describe(key)``),
    the rest only counted in :attr:`refused`, so a flood cannot flood the log.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: float,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        event: str = "http_rate_limited",
        describe: Callable[[str], dict[str, str]] | None = None,
    ) -> None:
        if rate_per_s <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("rate, burst and max_clients must be positive")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_clients = max_clients
        self.clock = clock
        self.event = event
        self.describe = describe or (lambda key: {"client": _pseudonym(key)})
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self.refused = 0

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=self.burst, at=now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate_per_s)
            bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            bucket.is_limited = False
            return 0.0
        self.refused += 1
        if not bucket.is_limited:
            bucket.is_limited = True
            log.warning(self.event, **self.describe(key))
        return (1.0 - bucket.tokens) / self.rate_per_s


def _pseudonym(key: str) -> str:
    """Log the client's network, not its full address (an IP address can be personal data)."""
    if ":" in key:
        return ":".join(key.split(":")[:3]) + "::/48"
    parts = key.split(".")
    return ".".join([*parts[:3], "0"]) + "/24" if len(parts) == 4 else "other"


LIMITER: web.AppKey[RateLimiter] = web.AppKey("homecare_rate_limiter")
LOGIN_LIMITER: web.AppKey[RateLimiter] = web.AppKey("homecare_login_rate_limiter")


def middleware(
    limiter: RateLimiter, logins: RateLimiter | None = None
) -> Callable[[web.Request, Handler], object]:
    @web.middleware
    async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in EXEMPT_PATHS:
            client = request.remote or "unknown"
            wait_s = limiter.take(client)
            if not wait_s and logins is not None and request.path in LOGIN_PATHS:
                wait_s = logins.take(client)
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
