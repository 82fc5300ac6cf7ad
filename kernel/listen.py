"""The one PostgreSQL ``LISTEN`` loop: hold a pooled connection, notice its loss, listen again.

Three feeds listen on a channel in every process: the revocation feed (``identity.revocations``),
the consent gate's change feed (``consent.gate``) and the round's console events
(``supervision.relay``). Each hands :func:`listen` its channel and callback; the loop

- takes one connection from the pool and ``LISTEN``s on it (``add_listener``);
- calls ``on_listening(resumed)`` once listening, ``resumed=True`` after a loss, when
  notifications may have been missed (the feed re-checks or publishes a ``resync``), then sets
  ``ready`` (cleared again while the connection is lost);
- holds the connection until it is closed or stops answering a ``SELECT 1`` sent every
  ``ping_s`` seconds (a half-dead TCP connection would otherwise listen to nothing for ever);
- after a loss logs ``{name}_listener_lost`` and waits by the :class:`~kernel.retry.Backoff`
  policy (reset once listening again) before trying again. After a failover the pool's next
  connection reaches the new primary (the multi-host URL with ``target_session_attrs=read-write``:
  asyncpg tries each host and keeps the writable one).

:data:`CONNECTION_LOST` names what losing the database raises, for the loops that try a unit of
work again across a failover (:data:`FAILOVER_RETRY`).

Runs until cancelled. Logs name the feed and the error's type only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import structlog

from kernel.retry import Backoff, Retry, Sleep

log = structlog.get_logger(__name__)

#: asyncpg's listener callback: ``(connection, pid, channel, payload)``.
OnNotify = Callable[[Any, int, str, Any], None]
#: Called once listening; ``True`` when listening again after a loss.
OnListening = Callable[[bool], Awaitable[None]]

CONNECTION_LOST: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset: the server is gone
    TimeoutError,  # no answer (a half-dead connection, a server that hangs)
    asyncpg.PostgresConnectionError,  # 08xxx: the connection died under a statement
    asyncpg.CannotConnectNowError,  # 57P03: starting up, shutting down, in recovery
    asyncpg.AdminShutdownError,  # 57P01: terminated (a fast shutdown, a demotion)
    asyncpg.CrashShutdownError,  # 57P02: another backend crashed
    asyncpg.ReadOnlySQLTransactionError,  # 25006: the server was turned into a standby
    asyncpg.TargetServerAttributeNotMatched,  # no host of the URL accepts writes (yet)
)
"""What losing the database or its failover raises (the service connects with a multi-host URL
and ``target_session_attrs=read-write``, so it finds the new primary on its next connection). A
statement that raised one of these did not commit, unless it was the ``COMMIT`` itself: then the
outcome is unknown, and only a write that is idempotent by design may be tried again."""

DB_ERRORS: tuple[type[BaseException], ...] = (
    *CONNECTION_LOST,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)
"""What a lost or unanswering connection raises, and any refusal of the ``LISTEN`` itself."""

LISTEN_BACKOFF = Backoff(first_s=0.5, factor=2.0, max_s=2.0)
"""After a lost connection: 0.5 s, 1 s, 2 s, 2 s ..., from 0.5 s again once listening, so a
feed listens again within about 2 s of the new primary after a failover (one connection
attempt per feed every 2 s while the database is away)."""

FAILOVER_RETRY = Backoff(first_s=0.25, factor=2.0, max_s=2.0, give_up_s=30.0)
"""A unit of work that may be tried again after :data:`CONNECTION_LOST` (the runner's result of
a check, the round's handling of a change): 0.25 s, 0.5 s, 1 s, then every 2 s, for up to 30 s,
which covers a failover (Patroni promotes the standby about ``ttl`` = 10 s after losing the
primary)."""

PING_TIMEOUT_S = 5.0


async def listen(
    pool: asyncpg.Pool,
    channel: str,
    on_notify: OnNotify,
    *,
    name: str,
    on_listening: OnListening | None = None,
    ready: asyncio.Event | None = None,
    backoff: Backoff = LISTEN_BACKOFF,
    ping_s: float = 30.0,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """``LISTEN`` on ``channel`` until cancelled (see the module docstring); ``name`` prefixes
    the log events (``{name}_listener_lost``)."""
    retry = Retry(backoff, sleep=sleep)
    has_listened = False
    while True:
        try:
            async with pool.acquire() as conn:
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, ev=lost: ev.set())
                await conn.add_listener(channel, on_notify)
                try:
                    if on_listening is not None:
                        await on_listening(has_listened)
                    has_listened = True
                    retry.reset()
                    if ready is not None:
                        ready.set()
                    await hold(conn, lost, ping_s)
                finally:
                    with contextlib.suppress(*DB_ERRORS):
                        await conn.remove_listener(channel, on_notify)
        except DB_ERRORS as e:
            log.warning(f"{name}_listener_lost", error=type(e).__name__)
        if ready is not None:
            ready.clear()  # not listening until the next connection is
        await retry.failed()


async def hold(conn: Any, lost: asyncio.Event, ping_s: float) -> None:
    """Return when the connection is closed (``lost`` is set) or stops answering."""
    while not lost.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ping_s):
                await lost.wait()
                return
        try:
            async with asyncio.timeout(PING_TIMEOUT_S):
                await conn.execute("SELECT 1")
        except DB_ERRORS:
            conn.terminate()
            return
