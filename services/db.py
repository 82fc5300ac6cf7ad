"""PostgreSQL pool and numbered plain-SQL migrations applied under an advisory lock.

Migrations are ``services/migrations/NNNN_name.sql``, applied in order, each in its own
transaction, recorded in ``schema_migrations``. A session-level advisory lock makes two processes
starting at once apply them exactly once.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import structlog

from kernel import tenancy

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

log = structlog.get_logger(__name__)

MIGRATION_LOCK_KEY = 0x68635F6D6967  # "hc_mig"
SERVICE_ROLE = "homecare_service"
"""The database role the service's queries run as (made by migration 0014): it owns no table and
cannot bypass row-level security, so the policies hold whatever user the URL logs in as."""


def migrations() -> list[tuple[int, str, str]]:
    """Return ``(version, name, sql)`` for every migration file, ordered by version."""
    found = []
    for entry in resources.files("services.migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number: {versions}")
    return found


async def migrate(conn: Conn) -> list[str]:
    """Apply pending migrations; return the names applied. Safe to run concurrently."""
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            r["version"]: r["checksum"]
            for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        for version, name, sql in migrations():
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if version in done:
                if done[version] != checksum:
                    log.warning("migration_changed_after_apply", migration=name)
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    version,
                    name,
                    checksum,
                )
            applied.append(name)
            log.info("migration_applied", migration=name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied


class ServiceConnection(asyncpg.Connection):
    """A pooled connection that remembers the scope it was last given, so handing it to a task
    of the same scope costs no round trip. The pool's reset keeps that setting (it does not run
    ``RESET ALL``); :func:`enter_scope` sets it again whenever the next task's scope differs."""

    __slots__ = ("_homecare_scope",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._homecare_scope: str | None = None

    def scope_given(self) -> str | None:
        return self._homecare_scope

    def give_scope(self, setting: str) -> None:
        self._homecare_scope = setting


RESET_SQL = "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;"
"""What asyncpg's own reset runs on release, less ``RESET ALL``: the role and the scope stay, and
the next acquire checks them (no statement of the service sets any other session setting)."""


async def enter_scope(conn: Any) -> None:  # a pool's proxy of a ServiceConnection
    """Hand a pooled connection to the task that acquired it: the service role, and the
    organisations of the scope current in that task (:mod:`kernel.tenancy`). Runs on every
    acquire; sets them (one round trip) unless the connection already holds that scope."""
    want = tenancy.current().setting
    if conn.scope_given() == want:
        return
    conn.give_scope("")  # unknown until the statement has run
    await conn.fetchval(
        "SELECT set_config('role', $1, false), set_config('homecare.orgs', $2, false)",
        SERVICE_ROLE,
        want,
    )
    conn.give_scope(want)


async def _reset(conn: Any) -> None:
    await conn.execute(RESET_SQL)


@asynccontextmanager
async def open_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10
) -> AsyncIterator[asyncpg.Pool]:
    """Run migrations (as the URL's user, who owns the schema), then create a pool whose every
    connection runs as :data:`SERVICE_ROLE` in the caller's scope; yield it, close it."""
    owner = await asyncpg.connect(dsn, command_timeout=30)
    try:
        await migrate(owner)
    finally:
        await owner.close()
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=30,
        connection_class=ServiceConnection,
        setup=enter_scope,
        reset=_reset,
    )
    try:
        yield pool
    finally:
        await pool.close()
