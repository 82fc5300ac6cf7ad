"""The HTTP rate limiter's token buckets: per client, refill over time, bounded memory."""

from __future__ import annotations

import pytest

from kernel.ratelimit import RateLimiter, _pseudonym


class Ticks:
    """Monotonic seconds for the rate limiter (not a :data:`kernel.clock.Clock` of instants)."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_burst_then_refill_at_the_rate() -> None:
    clock = Ticks()
    limiter = RateLimiter(2.0, 3, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("a")
    assert wait == pytest.approx(0.5)
    clock.t += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    clock.t += 100
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]  # never more than the burst
    assert limiter.take("a") > 0
    assert limiter.refused == 3


def test_clients_do_not_share_a_bucket() -> None:
    limiter = RateLimiter(1.0, 1, clock=Ticks())
    assert limiter.take("10.0.0.1") == 0.0
    assert limiter.take("10.0.0.1") > 0
    assert limiter.take("10.0.0.2") == 0.0


def test_memory_is_bounded_by_max_clients() -> None:
    limiter = RateLimiter(1.0, 1, max_clients=100, clock=Ticks())
    for i in range(10_000):
        limiter.take(f"c{i}")
    assert len(limiter) == 100


@pytest.mark.parametrize(("rate", "burst", "clients"), [(0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_nonsense_parameters_are_refused(rate: float, burst: float, clients: int) -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate, burst, max_clients=clients)


def test_logs_name_a_network_not_an_address() -> None:
    assert _pseudonym("192.168.7.42") == "192.168.7.0/24"
    assert _pseudonym("2001:db8:1:2::7") == "2001:db8:1::/48"
    assert _pseudonym("unknown") == "other"
