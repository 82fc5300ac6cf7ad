"""The process's background tasks in one supervised group.

Every long-running task of the process (the consent listener, the round, the relay, the MQTT
link's loops, ...) runs until it is cancelled at shutdown. One that ends before that, by raising
or by returning, has failed: the failure is logged with its traceback (``task_crashed`` or
``task_ended``), counted in :attr:`Supervisor.crashes` (``/metrics``), and named in
:attr:`Supervisor.failed`, which makes the process unready (``/readyz`` answers 503 naming it).
A failed task is not restarted: the orchestrator replaces an unready process.

:meth:`Supervisor.spawn` starts a task the supervisor owns: it is cancelled when the supervisor
closes, the last started first. :meth:`Supervisor.guard` only watches a coroutine whose task
another object owns and cancels itself (the MQTT link publishes ``stopped`` before it ends its
loops), so the shutdown order stays with the composition root.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class Supervisor:
    """An ``asyncio.TaskGroup`` whose tasks report a crash instead of taking the group down."""

    def __init__(self) -> None:
        self.crashes: Counter[str] = Counter()  # name -> failures (crashed or ended)
        self.failed: dict[str, str] = {}  # name -> what ended it, while the process runs
        self._group = asyncio.TaskGroup()
        self._owned: list[asyncio.Task[None]] = []
        self._open = False

    @property
    def healthy(self) -> bool:
        return not self.failed

    @property
    def running(self) -> list[str]:
        """Names of the owned tasks still running."""
        return [t.get_name() for t in self._owned if not t.done()]

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The owned tasks, in the order they were started."""
        return list(self._owned)

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` as the supervised task ``name`` until the supervisor closes."""
        if not self._open:
            coro.close()
            raise RuntimeError("the supervisor is not running")
        task = self._group.create_task(self.guard(name, coro), name=name)
        self._owned.append(task)
        return task

    async def guard(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro``; a crash or an early end is logged, counted and makes the process
        unready. Cancellation passes through."""
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the task's boundary
            log.exception("task_crashed", task=name)
            self._fail(name, type(e).__name__)
        else:
            log.error("task_ended", task=name)
            self._fail(name, "ended")

    def _fail(self, name: str, what: str) -> None:
        self.crashes[name] += 1
        self.failed[name] = what

    async def __aenter__(self) -> Supervisor:
        await self._group.__aenter__()
        self._open = True
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Cancel the owned tasks one by one, the last started first, then leave the group."""
        self._open = False
        for task in reversed(self._owned):
            task.cancel()
            await asyncio.wait({task})
        # Every task has ended: the block's own exception (if any) propagates unchanged, not
        # wrapped in an ExceptionGroup.
        await self._group.__aexit__(None, None, None)
