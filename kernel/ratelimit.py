"""Token buckets keyed by client: the one rate limiter of HTTP, WebSocket and MQTT intake."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)


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
