"""The PostgreSQL consent store's shared core: connections and error translation, the brukare row
lock, change notification over LISTEN/NOTIFY, and the one-statement basis read.

Connection failures become :class:`~consent.errors.StoreUnavailable` (``from`` the driver error);
unique and foreign-key violations become ``Conflict`` and ``NotFound``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from consent import records, rows
from consent.errors import Conflict, NotFound, StoreUnavailable
from consent.model import CareRecipient, ChangeKind, ConsentChange, RecipientBasis
from consent.ports import Publish

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = (
        "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
    )

CHANNEL = "homecare_consent"
"""The PostgreSQL LISTEN/NOTIFY channel carrying :class:`ConsentChange` as JSON."""

BASIS_SQL = """
SELECT row_to_json(r)::text AS recipient,
  (SELECT coalesce(json_agg(c ORDER BY c.moved_in_at), '[]')::text FROM cohabitants c
    WHERE c.recipient_id = r.recipient_id) AS cohabitants,
  (SELECT coalesce(json_agg(p ORDER BY p.valid_from), '[]')::text FROM care_plans p
    WHERE p.recipient_id = r.recipient_id) AS plans,
  (SELECT coalesce(json_agg(x ORDER BY x.purpose, x.cohabitant_id NULLS FIRST, x.version),
                   '[]')::text
     FROM (SELECT c.*, w.withdrawn_at, w.withdrawn_by, w.reason AS withdrawal_reason
             FROM consents c LEFT JOIN consent_withdrawals w USING (consent_id)
            WHERE c.recipient_id = r.recipient_id) x) AS consents,
  (SELECT coalesce(json_agg(p ORDER BY p.starts_at), '[]')::text FROM pauses p
    WHERE p.recipient_id = r.recipient_id) AS pauses,
  (SELECT coalesce(json_agg(x ORDER BY x.bound_at), '[]')::text
     FROM (SELECT b.*, d.kind AS device_kind FROM device_bindings b
             JOIN devices d USING (device_id) WHERE b.recipient_id = r.recipient_id) x
  ) AS bindings,
  (SELECT coalesce(json_agg(s ORDER BY s.started_at), '[]')::text FROM suspensions s
    WHERE s.recipient_id = r.recipient_id) AS suspensions
FROM care_recipients r
"""


_BULK_SQL = (
    ("cohabitants", "SELECT * FROM cohabitants{w} ORDER BY moved_in_at", rows.cohabitant),
    ("plans", "SELECT * FROM care_plans{w} ORDER BY valid_from", rows.plan),
    (
        "consents",
        "SELECT c.*, x.withdrawn_at, x.withdrawn_by, x.reason AS withdrawal_reason"
        " FROM consents c LEFT JOIN consent_withdrawals x USING (consent_id){w}"
        " ORDER BY c.purpose, c.cohabitant_id NULLS FIRST, c.version",
        rows.consent,
    ),
    ("pauses", "SELECT * FROM pauses{w} ORDER BY starts_at", rows.pause),
    (
        "bindings",
        "SELECT b.*, d.kind AS device_kind FROM device_bindings b JOIN devices d"
        " USING (device_id){w} ORDER BY bound_at",
        rows.binding,
    ),
    ("suspensions", "SELECT * FROM suspensions{w} ORDER BY started_at", rows.suspension),
)


async def read_bases(conn: Connection, recipient_ids: list[str] | None) -> list[RecipientBasis]:
    """Many bases at once, in ``recipient_id`` order: one plain query per table in one
    REPEATABLE READ snapshot, grouped here. For thousands of brukare this is about twice as fast
    as :data:`BASIS_SQL`, whose JSON the driver cannot decode natively."""
    where = "" if recipient_ids is None else " WHERE recipient_id = ANY($1::text[])"
    args: tuple[list[str], ...] = () if recipient_ids is None else (recipient_ids,)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute("SET LOCAL jit = off")
        found = await conn.fetch(
            f"SELECT * FROM care_recipients{where} ORDER BY recipient_id", *args
        )
        parts: dict[str, dict[str, list[Any]]] = {r["recipient_id"]: {} for r in found}
        for key, sql, decode in _BULK_SQL:
            for row in await conn.fetch(sql.format(w=where), *args):
                mine = parts.get(row["recipient_id"])
                if mine is not None:
                    mine.setdefault(key, []).append(decode(row))
    return [
        RecipientBasis(
            recipient=rows.recipient(r),
            **{k: tuple(v) for k, v in parts[r["recipient_id"]].items()},
        )
        for r in found
    ]


def basis_of(row: rows.Row) -> RecipientBasis:
    def many(key: str, decode: Any) -> tuple[Any, ...]:
        return tuple(decode(d) for d in json.loads(row[key]))

    return RecipientBasis(
        recipient=rows.recipient(json.loads(row["recipient"])),
        cohabitants=many("cohabitants", rows.cohabitant),
        plans=many("plans", rows.plan),
        consents=many("consents", rows.consent),
        pauses=many("pauses", rows.pause),
        bindings=many("bindings", rows.binding),
        suspensions=many("suspensions", rows.suspension),
    )


class PgCore:
    """Connection handling, the change notification and the brukare row lock shared by the
    PostgreSQL store's parts."""

    def __init__(self, pool: asyncpg.Pool, *, publish: Publish | None = None) -> None:
        self._pool = pool
        self._publish = publish

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[Connection]:
        try:
            async with self._pool.acquire() as conn:
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
    async def _tx(self) -> AsyncIterator[Connection]:
        async with self._conn() as conn, conn.transaction():
            yield conn

    def _after_commit(self, change: ConsentChange | None) -> None:
        if change is not None and self._publish is not None:
            self._publish(change)

    async def _notify(
        self,
        conn: Connection,
        kind: ChangeKind,
        recipient_id: str,
        at: datetime,
        extra_devices: tuple[str, ...] = (),
    ) -> ConsentChange:
        bound = await conn.fetch(
            "SELECT device_id FROM device_bindings WHERE recipient_id = $1 AND unbound_at IS NULL",
            recipient_id,
        )
        devices = {r["device_id"] for r in bound} | set(extra_devices)
        change = ConsentChange(
            event_id=uuid.uuid4().hex,
            kind=kind,
            recipient_id=recipient_id,
            device_ids=tuple(sorted(devices)),
            at=at,
        )
        await conn.execute(
            "SELECT pg_notify($1, $2)", CHANNEL, json.dumps(records.change_json(change))
        )
        return change

    async def _lock_recipient(self, conn: Connection, recipient_id: str) -> CareRecipient:
        row = await conn.fetchrow(
            "SELECT * FROM care_recipients WHERE recipient_id = $1 FOR UPDATE", recipient_id
        )
        if row is None:
            raise NotFound("care recipient", recipient_id, "recipient_id")
        return rows.recipient(row)
