"""The supervised task group: a crash is logged, counted and named; shutdown cancels in order and
never swallows the caller's cancellation."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from services.supervisor import Supervisor


async def forever(log: list[str], name: str) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        log.append(name)


async def test_a_crash_is_logged_counted_and_named_and_the_others_run_on() -> None:
    ended: list[str] = []
    crashed = asyncio.Event()

    async def boom() -> None:
        crashed.set()
        raise RuntimeError("bug")

    with capture_logs() as logs:
        async with Supervisor() as sup:
            sup.spawn("steady", forever(ended, "steady"))
            sup.spawn("boom", boom())
            await crashed.wait()
            await asyncio.wait({sup.tasks[1]})
            assert not sup.healthy
            assert sup.failed == {"boom": "RuntimeError"}
            assert sup.crashes["boom"] == 1
            assert sup.running == ["steady"]
    crash = [e for e in logs if e["event"] == "task_crashed"]
    assert [e["task"] for e in crash] == ["boom"]
    assert crash[0]["log_level"] == "error"
    assert crash[0].get("exc_info") is True  # log.exception: the traceback goes with it
    assert ended == ["steady"]


async def test_a_task_that_returns_has_failed_too() -> None:
    async def quits() -> None:
        return None

    async with Supervisor() as sup:
        task = sup.spawn("quits", quits())
        await asyncio.wait({task})
        assert sup.failed == {"quits": "ended"}


async def test_shutdown_cancels_the_last_started_first() -> None:
    ended: list[str] = []
    async with Supervisor() as sup:
        for name in ("listen", "covered", "rounds"):
            sup.spawn(name, forever(ended, name))
        await asyncio.sleep(0)
    assert ended == ["rounds", "covered", "listen"]
    assert sup.healthy  # cancelled at shutdown is not a failure


async def test_the_block_s_own_error_propagates_unwrapped() -> None:
    ended: list[str] = []

    async def fails_inside() -> None:
        async with Supervisor() as sup:
            sup.spawn("steady", forever(ended, "steady"))
            await asyncio.sleep(0)
            raise KeyError("x")

    with pytest.raises(KeyError):
        await fails_inside()
    assert ended == ["steady"]


async def test_cancelling_the_process_is_not_swallowed() -> None:
    ready = asyncio.Event()

    async def process() -> None:
        async with Supervisor() as sup:
            sup.spawn("steady", forever([], "steady"))
            ready.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(process())
    await ready.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_spawn_outside_the_block_is_refused() -> None:
    sup = Supervisor()
    with pytest.raises(RuntimeError):
        sup.spawn("late", forever([], "late"))
