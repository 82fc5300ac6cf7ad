"""The PostgreSQL consent store's shared core, the helper its parts are given: connections and
error translation (:class:`PgCore`), and one write transaction (:class:`PgTx`, implementing
:class:`consent.ports.WriteTx`): the brukare row lock, the audit append, the bound devices and
the change notification over LISTEN/NOTIFY, with the row parts
(:class:`consent.record_store.PgRecordRows`, :class:`consent.binding_store.PgBindingRows`) on
the same connection.

Connection failures become :class:`~consent.errors.StoreUnavailable` (``from`` the driver error);
unique and foreign-key violations become ``Conflict`` and ``NotFound``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from consent import records, rows
from consent.binding_store import PgBindingRows
from consent.errors import Conflict, NotFound, StoreUnavailable
from consent.model import CareRecipient, ConsentChange, RecipientBasis
from consent.pg_reads import BASIS_SQL, basis_of
from consent.record_store import PgRecordRows
from kernel.audit import store as audit_store

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = (
        "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
    )

CHANNEL = "homecare_consent"
"""The PostgreSQL LISTEN/NOTIFY channel carrying :class:`ConsentChange` as JSON."""


class PgCore:
    """The pool, with the driver's errors translated to :mod:`consent.errors`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @asynccontextmanager
    async def conn(self) -> AsyncIterator[Connection]:
        try:
            async with self.pool.acquire() as conn:
                yield conn
        except StoreUnavailable:
            raise
        except asyncpg.UniqueViolationError as e:
            raise Conflict("duplicate", "that id or version already exists") from e
        except asyncpg.ForeignKeyViolationError as e:
            raise NotFound("referenced record", e.constraint_name or "?") from e
        except (
            OSError,
            TimeoutError,
            asyncpg.PostgresConnectionError,
            asyncpg.CannotConnectNowError,
            asyncpg.InterfaceError,
        ) as e:
            raise StoreUnavailable(f"consent store failed: {type(e).__name__}") from e

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self.conn() as conn, conn.transaction():
            yield conn

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[PgTx]:
        """One write transaction (:class:`consent.ports.Begin`)."""
        async with self.transaction() as conn:
            yield PgTx(conn)


class PgTx:
    """One write transaction on one connection (implements :class:`consent.ports.WriteTx`)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.records = PgRecordRows(conn)
        self.bindings = PgBindingRows(conn)

    async def lock_recipient(self, recipient_id: str) -> CareRecipient | None:
        row = await self._conn.fetchrow(
            "SELECT * FROM care_recipients WHERE recipient_id = $1 FOR UPDATE", recipient_id
        )
        return None if row is None else rows.recipient(row)

    async def basis(self, recipient_id: str) -> RecipientBasis:
        row = await self._conn.fetchrow(BASIS_SQL + " WHERE r.recipient_id = $1", recipient_id)
        if row is None:
            raise NotFound("care recipient", recipient_id, "recipient_id")
        return basis_of(row)

    async def bound_devices(self, recipient_id: str) -> set[str]:
        bound = await self._conn.fetch(
            "SELECT device_id FROM device_bindings WHERE recipient_id = $1 AND unbound_at IS NULL",
            recipient_id,
        )
        return {r["device_id"] for r in bound}

    async def audit(
        self,
        *,
        actor: str,
        action: str,
        subject: str | None,
        data: Mapping[str, Any],
        at: datetime,
    ) -> None:
        await audit_store.append(
            self._conn, actor=actor, action=action, subject=subject, data=data, at=at
        )

    async def notify(self, change: ConsentChange) -> None:
        """``pg_notify``: PostgreSQL delivers it only if the transaction commits."""
        await self._conn.execute(
            "SELECT pg_notify($1, $2)", CHANNEL, json.dumps(records.change_json(change))
        )
