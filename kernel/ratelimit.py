"""Token buckets: the one rate limiter of HTTP, WebSocket, signalling and MQTT intake.

A :class:`TokenBucket` earns ``rate_per_s`` tokens a second, at most ``burst`` saved up; each
request spends one. :meth:`TokenBucket.wait_s` says how long to wait: ``0.0`` means go ahead, more
means refused, and the value is the seconds until a token is there (HTTP's ``Retry-After``).
:class:`RateLimiter` keeps one bucket per key (a client's address, a device id) with bounded
memory, and logs the first refusal of a key after an allowed request (the rest are only counted),
naming the key through ``describe`` (by default a network, not the client's address).

Who limits what:

- HTTP per client and logins per client (``services.web.limits``);
- MQTT intake per device (``services.mqtt.MqttLink.device_limit``);
- signalling: each client connection (a :class:`TokenBucket` of its own,
  ``services.signalling.clients``) and each device's ``webrtc/out``
  (``services.signalling.router``).

Time is injected (monotonic seconds). Login throttling beyond the rate (argon2 cost, lockouts)
is ``identity``'s own.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class TokenBucket:
    """One bucket: ``tokens`` saved up at monotonic time ``at`` (seconds)."""

    rate_per_s: float
    burst: float
    tokens: float
    at: float
    is_limited: bool = False  # the last request was refused

    def __post_init__(self) -> None:
        if not (self.rate_per_s > 0 and math.isfinite(self.rate_per_s)) or not self.burst >= 1:
            raise ValueError("a token bucket needs rate_per_s > 0 and burst >= 1")

    @classmethod
    def full(cls, rate_per_s: float, burst: float, now: float) -> TokenBucket:
        """A bucket with its whole ``burst`` to spend."""
        return cls(rate_per_s, burst, tokens=burst, at=now)

    def wait_s(self, now: float) -> float:
        """Spend a token at ``now``: ``0.0`` if there was one, else the seconds until there is."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate_per_s)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.is_limited = False
            return 0.0
        self.is_limited = True
        return (1.0 - self.tokens) / self.rate_per_s


class RateLimiter:
    """Token buckets keyed by client; :meth:`wait_s` says how long to wait (0.0: go ahead).

    The first refusal after an allowed request is logged as ``event`` (with ``describe(key)``),
    the rest only counted in :attr:`refused`, so a flood cannot flood the log. At most
    ``max_clients`` buckets are kept; the one used least recently goes first.
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
        if max_clients < 1:
            raise ValueError("max_clients must be positive")
        TokenBucket(rate_per_s, burst, tokens=burst, at=0.0)  # the same checks, at once
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_clients = max_clients
        self.clock = clock
        self.event = event
        self.describe = describe or (lambda key: {"client": _pseudonym(key)})
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self.refused = 0

    def __len__(self) -> int:
        return len(self._buckets)

    def wait_s(self, key: str) -> float:
        """Spend one of ``key``'s tokens: ``0.0`` to go ahead, else the seconds to wait."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket.full(self.rate_per_s, self.burst, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        was_limited = bucket.is_limited
        wait_s = bucket.wait_s(now)
        if wait_s > 0:
            self.refused += 1
            if not was_limited:
                log.warning(self.event, **self.describe(key))
        return wait_s


def _pseudonym(key: str) -> str:
    """Log the client's network, not its full address (an IP address can be personal data)."""
    if ":" in key:
        return ":".join(key.split(":")[:3]) + "::/48"
    parts = key.split(".")
    return ".".join([*parts[:3], "0"]) + "/24" if len(parts) == 4 else "other"
