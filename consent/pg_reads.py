"""The PostgreSQL consent store's reads (plain SQL over asyncpg): :class:`PgReads`, given the
shared :class:`consent.pg.PgCore`. A basis is read in one statement (:data:`BASIS_SQL`), many
bases in one snapshot (:func:`read_bases`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Collection
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from consent import rows
from consent.errors import NotFound
from consent.model import BindingRequest, CareRecipient, RecipientBasis

if TYPE_CHECKING:
    from consent.pg import Connection, PgCore

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
    """Many bases at once, in ``recipient_id`` order (:func:`read_bases_in_parts` in one part).
    For thousands of brukare this is about twice as fast as :data:`BASIS_SQL`, whose JSON the
    driver cannot decode natively."""
    return [b async for part in read_bases_in_parts(conn, recipient_ids) for b in part]


async def read_bases_in_parts(
    conn: Connection, recipient_ids: list[str] | None, size: int | None = None
) -> AsyncGenerator[list[RecipientBasis], None]:
    """Bases in ``recipient_id`` order, in parts of ``size`` brukare (``None``: one part), all
    read in one REPEATABLE READ snapshot: one plain query per table and part, grouped here.

    The queries are prepared first (one short round trip each); then each is sent before the
    rows of the one before are decoded, and a part is yielded with the next part's first query
    already under way: the server runs the next query while this process builds the models of
    the last, or plans the part just yielded (``supervision.watchdog.Watchdog.plan``), instead
    of the two taking turns."""
    if size is not None and size < 1:
        raise ValueError("size must be at least 1")
    where = "" if recipient_ids is None else " WHERE recipient_id = ANY($1::text[])"
    args: tuple[list[str], ...] = () if recipient_ids is None else (recipient_ids,)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute("SET LOCAL jit = off")
        found = await conn.fetch(
            f"SELECT * FROM care_recipients{where} ORDER BY recipient_id", *args
        )
        if not found:
            return
        step = size or len(found)
        ranges = [found[i : i + step] for i in range(0, len(found), step)]
        if len(ranges) > 1:  # each part its range of ids (one snapshot: nothing moves between)
            first = len(args) + 1
            where += (
                f"{' AND' if where else ' WHERE'} recipient_id BETWEEN ${first} AND ${first + 1}"
            )
        statements = [await conn.prepare(sql.format(w=where)) for _, sql, _ in _BULK_SQL]

        def send(n: int) -> asyncio.Future[list[asyncpg.Record]]:
            part = ranges[n // len(statements)]
            if len(ranges) > 1:
                bounds = (part[0]["recipient_id"], part[-1]["recipient_id"])
                return asyncio.ensure_future(statements[n % len(statements)].fetch(*args, *bounds))
            return asyncio.ensure_future(statements[n % len(statements)].fetch(*args))

        sent: asyncio.Future[list[asyncpg.Record]] | None = send(0)
        try:
            for n in range(len(ranges) * len(statements)):
                assert sent is not None
                got = await sent
                sent = None
                if n + 1 < len(ranges) * len(statements):
                    sent = send(n + 1)
                    await asyncio.sleep(0)  # the next query goes out before these rows decode
                part, table = ranges[n // len(statements)], n % len(statements)
                if table == 0:
                    parts: dict[str, dict[str, list[Any]]] = {r["recipient_id"]: {} for r in part}
                key, _, decode = _BULK_SQL[table]
                for row in got:
                    mine = parts.get(row["recipient_id"])
                    if mine is not None:
                        mine.setdefault(key, []).append(decode(row))
                if table == len(statements) - 1:
                    yield [
                        RecipientBasis(
                            recipient=rows.recipient(r),
                            **{k: tuple(v) for k, v in parts[r["recipient_id"]].items()},
                        )
                        for r in part
                    ]
        finally:
            if sent is not None:  # stopped early: the connection free for the rollback
                with contextlib.suppress(Exception):
                    await sent


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


TRANSITIONS_SQL = """
SELECT DISTINCT recipient_id, at FROM (
  SELECT recipient_id, starts_at AS at FROM pauses
  UNION ALL SELECT recipient_id, valid_until FROM care_plans
  UNION ALL SELECT recipient_id, ended_at FROM care_plans
  UNION ALL SELECT recipient_id, valid_from FROM consents
  UNION ALL SELECT recipient_id, valid_until FROM consents
  UNION ALL SELECT c.recipient_id, w.withdrawn_at FROM consent_withdrawals w
    JOIN consents c USING (consent_id)
  UNION ALL SELECT recipient_id, moved_in_at FROM cohabitants
) t WHERE at > $1 AND at <= $2
ORDER BY at, recipient_id
"""
"""Mirrors :func:`consent.rules.transitions` over every brukare."""


class PgReads:
    """The read half of :class:`consent.ports.ConsentStore` (``register`` aside)."""

    def __init__(self, core: PgCore) -> None:
        self._core = core

    async def list_recipients(self, *, teams: Collection[str] | None = None) -> list[CareRecipient]:
        chosen = None if teams is None else sorted(teams)
        async with self._core.conn() as conn:
            found = await conn.fetch(
                "SELECT * FROM care_recipients WHERE $1::text[] IS NULL OR team_id = ANY($1)"
                " ORDER BY recipient_id",
                chosen,
            )
        return [rows.recipient(r) for r in found]

    async def basis(self, recipient_id: str) -> RecipientBasis:
        async with self._core.conn() as conn:
            row = await conn.fetchrow(BASIS_SQL + " WHERE r.recipient_id = $1", recipient_id)
        if row is None:
            raise NotFound("care recipient", recipient_id, "recipient_id")
        return basis_of(row)

    async def basis_for_device(self, device_id: str, at: datetime) -> RecipientBasis | None:
        async with self._core.conn() as conn:
            row = await conn.fetchrow(
                BASIS_SQL + " WHERE r.recipient_id = (SELECT recipient_id FROM device_bindings"
                " WHERE device_id = $1 AND bound_at <= $2 ORDER BY bound_at DESC LIMIT 1)",
                device_id,
                at,
            )
        return None if row is None else basis_of(row)

    async def bases(
        self, recipient_ids: Collection[str] | None = None
    ) -> dict[str, RecipientBasis]:
        ids = None if recipient_ids is None else list(recipient_ids)
        async with self._core.conn() as conn:
            found = await read_bases(conn, ids)
        return {b.recipient_id: b for b in found}

    async def bases_in_parts(self, size: int) -> AsyncGenerator[list[RecipientBasis], None]:
        async with (
            self._core.conn() as conn,
            contextlib.aclosing(read_bases_in_parts(conn, None, size)) as parts,
        ):  # stopped early, the read ends (its transaction, a query under way) before the conn
            async for part in parts:
                yield part

    async def transitions(self, *, after: datetime, until: datetime) -> list[tuple[str, datetime]]:
        async with self._core.conn() as conn:
            found = await conn.fetch(TRANSITIONS_SQL, after, until)
        return [(r["recipient_id"], r["at"]) for r in found]

    async def binding_requests(self, *, device_id: str | None = None) -> list[BindingRequest]:
        async with self._core.conn() as conn:
            found = await conn.fetch(
                "SELECT r.*, b.pressed_at FROM binding_requests r"
                " LEFT JOIN device_bind_buttons b"
                " ON b.device_id = r.device_id AND b.pressed_at >= r.requested_at"
                " WHERE $1::text IS NULL OR r.device_id = $1"
                " ORDER BY r.requested_at, r.request_id",
                device_id,
            )
        return [rows.request(r, button_pressed_at=r["pressed_at"]) for r in found]
