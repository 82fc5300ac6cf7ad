"""The revocation feed: close a WebSocket the moment the credential it rode on is taken away.

Every change that ends a credential's right (a token revoked, a session ended by logout or a new
password, an account deactivated, removed or given another role) is announced by a trigger in the
same transaction (``services/migrations/0007_revocation_feed.sql``) on PostgreSQL's
:data:`identity.standing.CHANNEL`. :meth:`Revocations.listen` runs ``LISTEN`` on one pooled
connection in every process; each notification is matched against the sockets this process holds
(:meth:`Revocations.watch`) by :func:`identity.standing.cutoff_for`, and each one hit is told at
once through its ``on_cutoff`` callback (the socket closes with 4401 or 4403).

Three more ways a socket learns that its access ended, so that nothing rests on one notification:

- :meth:`Revocations.watch` reads the credential when the watch starts (a revocation between the
  handshake and the watch is not missed) and arms a timer for its expiry (``session expired``);
- :meth:`Revocations.check`, the cheap re-check a handler runs before using a right (a ``request``
  on ``/ws/signal``): one indexed read, judged by :func:`identity.standing.judge`;
- after the listening connection was lost and comes back, every watched socket is re-checked,
  since notifications may have been missed meanwhile.

Logs carry ``staff_id`` and the kind of change only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from identity import store as staff_store
from identity.standing import (
    CHANNEL,
    Cause,
    Cutoff,
    Revocation,
    cutoff_for,
    decode,
    is_revocable,
    judge,
)
from kernel import listen as kernel_listen
from kernel.clock import Clock
from kernel.listen import DB_ERRORS, LISTEN_BACKOFF
from kernel.retry import Backoff
from kernel.roles import Principal

log = structlog.get_logger(__name__)

OnCutoff = Callable[[Cutoff], None]


def _system_clock() -> datetime:
    return datetime.now(UTC)


class Unverifiable(Exception):
    """The credential could not be read (the database did not answer): use no right now."""


class Watch:
    """One socket's watch on its principal; :meth:`cut` tells the socket once."""

    def __init__(self, principal: Principal, on_cutoff: OnCutoff) -> None:
        self.principal = principal
        self.cutoff: Cutoff | None = None
        self._on_cutoff = on_cutoff

    @property
    def is_cut(self) -> bool:
        return self.cutoff is not None

    def cut(self, cutoff: Cutoff) -> None:
        if self.cutoff is not None:
            return
        self.cutoff = cutoff
        log.info(
            "access_cut",
            staff_id=self.principal.staff_id,
            cause=cutoff.cause.value,
            code=cutoff.code,
        )
        self._on_cutoff(cutoff)


class Revocations:
    """The feed of one process: its watched sockets, the re-check and the ``LISTEN`` loop."""

    def __init__(self, pool: asyncpg.Pool, *, clock: Clock = _system_clock) -> None:
        self.pool = pool
        self.clock = clock
        self._watches: dict[str, set[Watch]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------ sockets

    @contextlib.asynccontextmanager
    async def watch(self, principal: Principal, on_cutoff: OnCutoff) -> AsyncIterator[Watch]:
        """Watch ``principal``'s credential for the life of the block; ``on_cutoff`` is called
        (at most once, from the event loop) when access ends, possibly before the block starts."""
        watch = Watch(principal, on_cutoff)
        if not is_revocable(principal):
            yield watch
            return
        mine = self._watches.setdefault(principal.staff_id, set())
        mine.add(watch)  # first, so that a revocation from here on is not missed
        timer: asyncio.TimerHandle | None = None
        try:
            try:
                cutoff, expires_at = await self._read(principal)
            except Unverifiable:
                log.warning("access_check_unavailable", staff_id=principal.staff_id)
            else:
                if cutoff is not None:
                    watch.cut(cutoff)
                elif expires_at is not None:
                    delay_s = max(0.0, (expires_at - self.clock()).total_seconds())
                    expired = Cutoff(
                        Cause.TOKEN_EXPIRED if principal.via == "token" else Cause.SESSION_EXPIRED
                    )
                    timer = asyncio.get_running_loop().call_later(delay_s, watch.cut, expired)
            yield watch
        finally:
            if timer is not None:
                timer.cancel()
            mine.discard(watch)
            if not mine:
                self._watches.pop(principal.staff_id, None)

    async def check(self, principal: Principal) -> Cutoff | None:
        """Does ``principal``'s credential still stand now? ``None`` if it does; raises
        :class:`Unverifiable` when the database does not answer."""
        if not is_revocable(principal):
            return None
        cutoff, _ = await self._read(principal)
        return cutoff

    async def _read(self, principal: Principal) -> tuple[Cutoff | None, datetime | None]:
        try:
            async with self.pool.acquire() as conn:
                found = await staff_store.credential(conn, principal)
        except DB_ERRORS as e:
            raise Unverifiable(type(e).__name__) from e
        return judge(principal, found, self.clock()), found.expires_at if found else None

    @property
    def watched(self) -> int:
        """How many sockets this process watches."""
        return sum(len(w) for w in self._watches.values())

    # ------------------------------------------------------------ the feed

    def publish(self, revocation: Revocation) -> None:
        """Tell every watched socket this ``revocation`` ends (in this process)."""
        for watch in list(self._watches.get(revocation.staff_id, ())):
            cutoff = cutoff_for(revocation, watch.principal)
            if cutoff is not None:
                watch.cut(cutoff)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            revocation = decode(str(payload))
        except ValueError:
            log.warning("revocation_unreadable", channel=CHANNEL)
            return
        self.publish(revocation)

    async def resync(self) -> None:
        """Re-check every watched socket (after notifications may have been missed)."""
        for watch in [w for ws in list(self._watches.values()) for w in ws]:
            if watch.is_cut:
                continue
            try:
                cutoff = await self.check(watch.principal)
            except Unverifiable:
                log.warning("revocation_resync_unavailable")
                return
            if cutoff is not None:
                watch.cut(cutoff)

    async def listen(
        self,
        *,
        ready: asyncio.Event | None = None,
        backoff: Backoff = LISTEN_BACKOFF,
        ping_s: float = 30.0,
    ) -> None:
        """``LISTEN`` until cancelled on one pooled connection (:func:`kernel.listen.listen`:
        pinged every ``ping_s`` seconds, listened to again after a loss by ``backoff``), and
        after a loss re-check every watched socket. Sets ``ready`` once listening."""
        await kernel_listen.listen(
            self.pool,
            CHANNEL,
            self._on_notify,
            name="revocation",
            on_listening=self._on_listening,
            ready=ready,
            backoff=backoff,
            ping_s=ping_s,
        )

    async def _on_listening(self, resumed: bool) -> None:
        if resumed:
            log.info("revocation_listener_resumed")
            await self.resync()


REVOCATIONS = web.AppKey("homecare_revocations", Revocations)
"""The process's feed, for the WebSocket handlers (``/ws/signal``, ``/ws/console``)."""


def install(
    app: web.Application, pool: asyncpg.Pool, *, clock: Clock = _system_clock
) -> Revocations:
    """Give ``app``'s WebSocket handlers the feed; the caller runs :meth:`Revocations.listen`
    for the life of the app. The clock must be the one the authenticator uses (expiry)."""
    feed = Revocations(pool, clock=clock)
    app[REVOCATIONS] = feed
    return feed
