"""The one retry policy (``kernel.retry``): its waits as a table, and the loop on a fake clock."""

from __future__ import annotations

import asyncio
import math

import pytest

from kernel.retry import Backoff, Retry, retry


class FakeTime:
    """Monotonic seconds that move only when something sleeps (no real time passes)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


MQTT = Backoff(first_s=0.2, factor=2.0, max_s=5.0)


@pytest.mark.parametrize(
    ("policy", "failures", "draw", "expected_s"),
    [
        (MQTT, 1, 0.0, 0.2),
        (MQTT, 2, 0.0, 0.4),
        (MQTT, 3, 0.0, 0.8),
        (MQTT, 5, 0.0, 3.2),
        (MQTT, 6, 0.0, 5.0),  # 6.4 capped
        (MQTT, 10_000, 0.0, 5.0),  # no overflow however long the outage
        (Backoff(first_s=1.0, factor=1.0, max_s=30.0), 50, 0.0, 1.0),  # constant
        (Backoff(first_s=2.0, factor=3.0, max_s=2.0), 4, 0.0, 2.0),  # first == max
        (Backoff(first_s=0.5, factor=3.0, max_s=100.0), 3, 0.0, 4.5),
        (Backoff(first_s=1.0, max_s=8.0, jitter=0.5), 4, 0.0, 8.0),  # draw 0: the whole wait
        (Backoff(first_s=1.0, max_s=8.0, jitter=0.5), 4, 0.5, 6.0),  # a quarter off
        (Backoff(first_s=1.0, max_s=8.0, jitter=0.5), 4, 0.999, 4.004),  # nearly half off
        (Backoff(first_s=1.0, max_s=8.0, jitter=1.0), 1, 0.75, 0.25),  # full jitter
    ],
)
def test_the_wait_after_each_failure(
    policy: Backoff, failures: int, draw: float, expected_s: float
) -> None:
    assert policy.delay(failures, draw) == pytest.approx(expected_s)


@pytest.mark.parametrize(
    ("give_up_s", "failures", "elapsed_s", "expected_s"),
    [
        (None, 100, 1e9, 5.0),  # never gives up
        (10.0, 1, 0.0, 0.2),
        (10.0, 6, 4.8, 5.0),  # ends at 9.8: still within
        (10.0, 6, 5.0, 5.0),  # ends exactly at the limit: within
        (10.0, 6, 5.1, None),  # would end at 10.1: give up
        (0.0, 1, 0.0, None),  # no retries at all
    ],
)
def test_give_up_when_the_next_wait_would_end_past_the_limit(
    give_up_s: float | None, failures: int, elapsed_s: float, expected_s: float | None
) -> None:
    policy = Backoff(first_s=0.2, max_s=5.0, give_up_s=give_up_s)
    assert policy.next_delay(failures, elapsed_s) == expected_s


@pytest.mark.parametrize(
    "kwargs",
    [
        {"first_s": 0},
        {"first_s": -1},
        {"first_s": 2, "max_s": 1},
        {"first_s": 1, "max_s": math.inf},
        {"first_s": 1, "factor": 0.5},
        {"first_s": 1, "factor": math.nan},
        {"first_s": 1, "jitter": -0.1},
        {"first_s": 1, "jitter": 1.5},
        {"first_s": 1, "give_up_s": -1},
        {"first_s": math.nan},
    ],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


def test_failures_count_from_one() -> None:
    with pytest.raises(ValueError):
        MQTT.delay(0)


async def test_retry_waits_by_the_policy_until_the_attempt_succeeds() -> None:
    fake = FakeTime()
    outcomes: list[Exception | str] = [OSError("down"), TimeoutError(), OSError("down"), "done"]
    told: list[tuple[str, int, float]] = []

    async def attempt() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    result = await retry(
        attempt,
        MQTT,
        retry_on=(OSError, TimeoutError),
        on_retry=lambda e, n, wait_s: told.append((type(e).__name__, n, wait_s)),
        sleep=fake.sleep,
        clock=fake,
    )
    assert result == "done"
    assert fake.slept == pytest.approx([0.2, 0.4, 0.8])
    assert told == [("OSError", 1, 0.2), ("TimeoutError", 2, 0.4), ("OSError", 3, 0.8)]


async def test_retry_gives_up_with_the_last_error_at_the_deadline() -> None:
    fake = FakeTime()
    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        fake.now += 0.1  # each attempt takes a while, and that counts
        raise OSError(f"down {calls}")

    with pytest.raises(OSError, match="down 4"):
        await retry(
            attempt,
            Backoff(first_s=0.5, max_s=2.0, give_up_s=5.0),
            retry_on=(OSError,),
            sleep=fake.sleep,
            clock=fake,
        )
    # attempts fail 0.1, 0.7, 1.8 and 3.9 s after the start; after the fourth a wait of 2 s
    # would end at 5.9 s, past the 5 s: the fourth error is raised
    assert fake.slept == [0.5, 1.0, 2.0]
    assert calls == 4


async def test_other_errors_are_not_retried() -> None:
    fake = FakeTime()

    async def attempt() -> None:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        await retry(attempt, MQTT, retry_on=(OSError,), sleep=fake.sleep, clock=fake)
    assert fake.slept == []


async def test_a_cancellation_is_not_swallowed() -> None:
    async def attempt() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await retry(attempt, MQTT, retry_on=(OSError,), sleep=FakeTime().sleep)


async def test_a_loop_starts_again_from_the_first_wait_after_a_success() -> None:
    fake = FakeTime()
    loop = Retry(MQTT, sleep=fake.sleep, clock=fake)
    for _ in range(3):
        assert await loop.failed()
    loop.reset()
    assert await loop.failed()
    assert fake.slept == pytest.approx([0.2, 0.4, 0.8, 0.2])
    assert loop.failures == 1


async def test_the_deadline_counts_from_the_last_reset() -> None:
    fake = FakeTime()
    loop = Retry(Backoff(first_s=1.0, max_s=1.0, give_up_s=2.5), sleep=fake.sleep, clock=fake)
    assert [await loop.failed() for _ in range(3)] == [True, True, False]
    loop.reset()
    assert await loop.failed()
    assert fake.slept == [1.0, 1.0, 1.0]


def test_jitter_draws_from_the_injected_source() -> None:
    draws = iter([0.0, 0.5, 0.9])
    loop = Retry(Backoff(first_s=1.0, max_s=1.0, jitter=1.0), random=lambda: next(draws))
    assert [loop.next_delay() for _ in range(3)] == pytest.approx([1.0, 0.5, 0.1])


def test_no_draw_without_jitter() -> None:
    def no_draw() -> float:
        raise AssertionError("a policy without jitter draws nothing")

    assert Retry(MQTT, random=no_draw).next_delay() == 0.2
