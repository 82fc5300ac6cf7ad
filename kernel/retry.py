"""Retrying with backoff: the one policy and the one loop every retry of the system uses.

A :class:`Backoff` is the policy, pure: the wait after the ``n``-th failure in a row is
``first_s * factor**(n - 1)``, at most ``max_s``; with ``jitter`` (0 to 1) a fraction of it is
taken off at random (``jitter=1``: anywhere in ``(0, wait]``), so that many clients that lost the
same server do not come back in step; with ``give_up_s`` the retrying stops when the next wait
would end more than ``give_up_s`` after the first attempt began. Seconds throughout.

:class:`Retry` carries one loop's state (failures in a row, when they began) and waits with an
injected ``sleep`` and ``clock``, so a test runs a retry on a fake clock instead of real time;
:meth:`Retry.reset` after a success (a reconnect loop that was up a while starts again from
``first_s``). :func:`retry` runs one attempt until it succeeds or the policy gives up.

Who retries with what (each names its policy beside the loop):

- the MQTT link's reconnect (``services.mqtt.RECONNECT``) and its handler retries while the
  database is down (:data:`DB_WRITE_RETRY`, giving up after ``MqttLink.retry_s``);
- every PostgreSQL ``LISTEN`` loop (:mod:`kernel.listen`: the revocation feed, the consent gate,
  the round relay) and the consent schedule after a failed read (``consent.gate``);
- signalling's row close (``services.signalling.interpreter.CLOSE_RETRY``) and its gate watch
  after a failure (``services.signalling.device_side.GATE_WATCH_RESTART``);
- storing a command's ack already handed to its sender (``devices.handler``, the same
  :data:`DB_WRITE_RETRY`);
- a round worker waiting for its own broker link (``supervision.runner``: ``link_retry_s``
  apart on the night's clock, given up after ``link_wait_s``);
- across a PostgreSQL failover (``kernel.listen.FAILOVER_RETRY`` on ``CONNECTION_LOST``): a round
  worker's result for a check and the watchdog's re-plan or device loss, each idempotent by design;
- the simulated device's reconnect (``homeside.device.RECONNECT``, with jitter).
"""

from __future__ import annotations

import asyncio
import math
import random as _random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]
#: Monotonic seconds (``time.monotonic``, ``loop.time``, a fake in tests).
Monotonic = Callable[[], float]
#: A draw in ``[0, 1)`` (``random.random``, a fixed value in tests).
Draw = Callable[[], float]
#: Told of each failure that will be retried: ``(error, failures in a row, wait_s)``.
OnRetry = Callable[[BaseException, int, float], None]


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait after each failure in a row (seconds; see the module docstring)."""

    first_s: float
    factor: float = 2.0
    max_s: float = 30.0
    jitter: float = 0.0  # the fraction of a wait that may be taken off at random, 0 to 1
    give_up_s: float | None = None  # stop once the next wait would end past this; None: never

    def __post_init__(self) -> None:
        if not (0 < self.first_s <= self.max_s and math.isfinite(self.max_s)):
            raise ValueError("backoff needs 0 < first_s <= max_s, finite")
        if not (self.factor >= 1 and math.isfinite(self.factor)):
            raise ValueError("backoff factor must be at least 1, finite")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter is a fraction from 0 to 1")
        if self.give_up_s is not None and not self.give_up_s >= 0:
            raise ValueError("backoff give_up_s must be 0 or more")

    def delay(self, failures: int, draw: float = 0.0) -> float:
        """The wait after ``failures`` failures in a row (1 or more); ``draw`` in ``[0, 1)``
        takes ``jitter * draw`` of it off."""
        if failures < 1:
            raise ValueError("failures counts from 1")
        if self.factor == 1 or failures - 1 >= math.log(self.max_s / self.first_s, self.factor):
            base = self.max_s if self.factor > 1 else self.first_s
        else:
            base = min(self.max_s, self.first_s * self.factor ** (failures - 1))
        return base * (1.0 - self.jitter * draw)

    def next_delay(self, failures: int, elapsed_s: float, draw: float = 0.0) -> float | None:
        """The wait after ``failures`` failures, ``elapsed_s`` after the first attempt began;
        ``None`` when the policy gives up (the wait would end past ``give_up_s``)."""
        wait_s = self.delay(failures, draw)
        if self.give_up_s is not None and elapsed_s + wait_s > self.give_up_s:
            return None
        return wait_s


DB_WRITE_RETRY = Backoff(first_s=0.2, factor=2.0, max_s=5.0, give_up_s=60.0)
"""Handling a device's message while the database is unreachable: tried again 0.2 s, 0.4 s ...
at most 5 s apart, for up to a minute, then given up (the MQTT link's handler retries, storing
a command's ack already released to its sender)."""


class Retry:
    """One retrying loop's state: failures in a row and when the first of them began."""

    def __init__(
        self,
        policy: Backoff,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Monotonic = time.monotonic,
        random: Draw = _random.random,
    ) -> None:
        self.policy = policy
        self._sleep = sleep
        self._clock = clock
        self._random = random
        self.failures = 0
        self._started = clock()

    def reset(self) -> None:
        """A success: the next failure waits ``first_s`` again, and ``give_up_s`` counts anew."""
        self.failures = 0
        self._started = self._clock()

    def next_delay(self) -> float | None:
        """Count one more failure; how long to wait before trying again, or ``None`` to stop."""
        self.failures += 1
        draw = self._random() if self.policy.jitter else 0.0
        return self.policy.next_delay(self.failures, self._clock() - self._started, draw)

    async def wait(self, wait_s: float) -> None:
        await self._sleep(wait_s)

    async def failed(self) -> bool:
        """Count one more failure and wait; ``False`` (without waiting) when giving up."""
        wait_s = self.next_delay()
        if wait_s is None:
            return False
        await self._sleep(wait_s)
        return True


async def retry(
    attempt: Callable[[], Awaitable[T]],
    policy: Backoff,
    *,
    retry_on: tuple[type[BaseException], ...],
    on_retry: OnRetry | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Monotonic = time.monotonic,
    random: Draw = _random.random,
) -> T:
    """Await ``attempt()`` until it returns; an error of ``retry_on`` waits and tries again,
    until the policy gives up: then that last error is raised. Any other error is raised at
    once (a cancellation too). ``on_retry`` is called inside the ``except`` of the error it is
    told of (``log.exception`` there logs its traceback), before the wait."""
    state = Retry(policy, sleep=sleep, clock=clock, random=random)
    while True:
        try:
            return await attempt()
        except retry_on as e:
            wait_s = state.next_delay()
            if wait_s is None:
                raise
            if on_retry is not None:
                on_retry(e, state.failures, wait_s)
        await state.wait(wait_s)
