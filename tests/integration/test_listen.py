"""The one LISTEN loop (``kernel.listen``) on a real PostgreSQL: notifications arrive, a killed
connection is listened on again (``on_listening(True)``), and the waits follow the backoff policy,
from its first wait again once listening. The loop's sleep is a fake: no real waits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from kernel.listen import listen
from kernel.retry import Backoff

pytestmark = pytest.mark.integration

CHANNEL = "homecare_test_listen"
POLICY = Backoff(first_s=7.0, factor=2.0, max_s=60.0)


class FakeSleep:
    """Records each wait and returns at once; :attr:`waited` is set after ``stop_after`` waits."""

    def __init__(self, stop_after: int = 1_000) -> None:
        self.waits: list[float] = []
        self.stop_after = stop_after
        self.waited = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if len(self.waits) >= self.stop_after:
            self.waited.set()
            await asyncio.Event().wait()  # hold here until the test cancels the loop
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def running(coro: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    task = asyncio.create_task(coro)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def listener_pids(owner: asyncpg.Connection) -> list[int]:
    """The listening backends, as the owner (the service's role sees no other session's query)."""
    rows = await owner.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND query LIKE 'LISTEN%'"
    )
    return [r["pid"] for r in rows]


async def test_a_killed_connection_is_listened_on_again_after_the_first_wait(
    pool: asyncpg.Pool, owner: asyncpg.Connection
) -> None:
    got: asyncio.Queue[str] = asyncio.Queue()
    listening: list[bool] = []
    ready = asyncio.Event()
    sleep = FakeSleep()

    async def on_listening(resumed: bool) -> None:
        listening.append(resumed)

    loop = listen(
        pool,
        CHANNEL,
        lambda _c, _pid, _ch, payload: got.put_nowait(payload),
        name="test",
        on_listening=on_listening,
        ready=ready,
        backoff=POLICY,
        sleep=sleep,
    )
    async with running(loop):
        await asyncio.wait_for(ready.wait(), 5)
        await pool.execute("SELECT pg_notify($1, 'one')", CHANNEL)
        assert await asyncio.wait_for(got.get(), 5) == "one"
        for kill in range(1, 3):
            ready.clear()
            pids = await listener_pids(owner)
            assert len(pids) == 1
            await owner.execute("SELECT pg_terminate_backend($1)", pids[0])
            await asyncio.wait_for(ready.wait(), 5)
            assert listening == [False] + [True] * kill
            assert sleep.waits == [POLICY.first_s] * kill  # listening in between: reset
        await pool.execute("SELECT pg_notify($1, 'two')", CHANNEL)
        assert await asyncio.wait_for(got.get(), 5) == "two"


async def test_an_unreachable_database_is_tried_again_ever_more_slowly() -> None:
    sleep = FakeSleep(stop_after=6)
    ready = asyncio.Event()
    # nothing listens on port 1: every acquire is refused at once
    async with asyncpg.create_pool("postgresql://postgres@127.0.0.1:1/none", min_size=0) as pool:
        with capture_logs() as logs:
            loop = listen(
                pool,
                CHANNEL,
                lambda *_: None,
                name="test",
                ready=ready,
                backoff=POLICY,
                sleep=sleep,
            )
            async with running(loop):
                await asyncio.wait_for(sleep.waited.wait(), 10)
    assert sleep.waits == [7.0, 14.0, 28.0, 56.0, 60.0, 60.0]
    assert not ready.is_set()
    lost = [e for e in logs if e["event"] == "test_listener_lost"]
    assert len(lost) == 6
    assert {e["log_level"] for e in lost} == {"warning"}
    assert {e["error"] for e in lost} <= {"ConnectionRefusedError", "OSError"}
