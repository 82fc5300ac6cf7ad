"""The one rate limiter (``kernel.ratelimit``): a bucket, buckets per client, bounded memory."""

from __future__ import annotations

import math

import pytest
from structlog.testing import capture_logs

from kernel.ratelimit import RateLimiter, TokenBucket, _pseudonym


class Ticks:
    """Monotonic seconds for the rate limiter (not a :data:`kernel.clock.Clock` of instants)."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_burst_then_refill_at_the_rate() -> None:
    clock = Ticks()
    limiter = RateLimiter(2.0, 3, clock=clock)
    assert [limiter.wait_s("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.wait_s("a")
    assert wait == pytest.approx(0.5)
    clock.t += 0.5
    assert limiter.wait_s("a") == 0.0
    assert limiter.wait_s("a") > 0
    clock.t += 100
    assert [limiter.wait_s("a") for _ in range(3)] == [0.0, 0.0, 0.0]  # never more than the burst
    assert limiter.wait_s("a") > 0
    assert limiter.refused == 3


def test_clients_do_not_share_a_bucket() -> None:
    limiter = RateLimiter(1.0, 1, clock=Ticks())
    assert limiter.wait_s("10.0.0.1") == 0.0
    assert limiter.wait_s("10.0.0.1") > 0
    assert limiter.wait_s("10.0.0.2") == 0.0


def test_memory_is_bounded_by_max_clients() -> None:
    limiter = RateLimiter(1.0, 1, max_clients=100, clock=Ticks())
    for i in range(10_000):
        limiter.wait_s(f"c{i}")
    assert len(limiter) == 100


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # (seconds passed before the take) -> the wait it answers; rate 2/s, burst 3
        ([0, 0, 0], [0.0, 0.0, 0.0]),  # the burst
        ([0, 0, 0, 0], [0.0, 0.0, 0.0, 0.5]),  # then half a second for the next token
        ([0, 0, 0, 0, 0.25], [0.0, 0.0, 0.0, 0.5, 0.25]),  # a refused take spends nothing
        ([0, 0, 0, 0, 0.5], [0.0, 0.0, 0.0, 0.5, 0.0]),
        ([0, 0, 0, 1000, 0, 0, 0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5]),  # never above burst
    ],
)
def test_a_bucket_answers_how_long_to_wait(steps: list[float], expected: list[float]) -> None:
    now = 50.0
    bucket = TokenBucket.full(2.0, 3, now)
    waits = []
    for step in steps:
        now += step
        waits.append(bucket.wait_s(now))
    assert waits == pytest.approx(expected)
    assert bucket.is_limited is (expected[-1] > 0)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (math.inf, 1), (1, 0.5)])
def test_nonsense_buckets_are_refused(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket.full(rate, burst, 0.0)


def test_the_first_refusal_after_an_allowed_request_is_logged_pseudonymously() -> None:
    clock = Ticks()
    limiter = RateLimiter(1.0, 1, clock=clock)
    with capture_logs() as logs:
        for _ in range(5):
            limiter.wait_s("192.168.7.42")
        clock.t += 1
        limiter.wait_s("192.168.7.42")  # allowed again
        limiter.wait_s("192.168.7.42")  # refused: logged again
    assert [(e["event"], e["client"]) for e in logs] == [
        ("http_rate_limited", "192.168.7.0/24"),
        ("http_rate_limited", "192.168.7.0/24"),
    ]
    assert limiter.refused == 5


def test_a_limiter_names_its_event_and_key() -> None:
    limiter = RateLimiter(
        1.0, 1, clock=Ticks(), event="mqtt_device_rate_limited", describe=lambda d: {"device_id": d}
    )
    with capture_logs() as logs:
        limiter.wait_s("cam-1")
        limiter.wait_s("cam-1")
    assert logs == [
        {"event": "mqtt_device_rate_limited", "device_id": "cam-1", "log_level": "warning"}
    ]


@pytest.mark.parametrize(("rate", "burst", "clients"), [(0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_nonsense_parameters_are_refused(rate: float, burst: float, clients: int) -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate, burst, max_clients=clients)


def test_logs_name_a_network_not_an_address() -> None:
    assert _pseudonym("192.168.7.42") == "192.168.7.0/24"
    assert _pseudonym("2001:db8:1:2::7") == "2001:db8:1::/48"
    assert _pseudonym("unknown") == "other"
