"""The consent store in PostgreSQL: :class:`PgConsentStore`, the one class implementing
:class:`consent.ports.ConsentStore` over asyncpg, assembled from parts rather than subclasses:

- :class:`consent.pg.PgCore`, the shared helper: the pool, error translation, and
  :meth:`~consent.pg.PgCore.begin` opening one write transaction (:class:`consent.pg.PgTx`: the
  brukare row lock, the audit append, ``pg_notify`` on :data:`consent.pg.CHANNEL`, and the row
  parts :class:`consent.record_store.PgRecordRows` and
  :class:`consent.binding_store.PgBindingRows` on the same connection);
- :class:`consent.pg_reads.PgReads`, the reads;
- :class:`consent.writes.ConsentWrites`, the one write path (validate with :mod:`consent.rules`,
  write, audit, notify in the transaction; publish to the in-process bus after the commit),
  shared with :class:`consent.fake.FakeConsentStore`.

PostgreSQL delivers a change's notification only if its transaction commits; ``publish`` (the
in-process bus) gets it after the commit, so local subscribers need not wait for the round trip.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Collection
from datetime import datetime

import asyncpg

from consent.model import (
    BehaviourEvent,
    BindingRequest,
    CareRecipient,
    RecipientBasis,
    Suspension,
)
from consent.pg import CHANNEL, PgCore
from consent.pg_reads import PgReads
from consent.ports import Publish, RegisterRow
from consent.writes import ConsentWrites


class PgConsentStore(ConsentWrites):
    """Implements :class:`consent.ports.ConsentStore`: reads from :class:`PgReads`; every write
    is :class:`ConsentWrites`'s own, over :meth:`PgCore.begin`."""

    def __init__(self, pool: asyncpg.Pool, *, publish: Publish | None = None) -> None:
        self._core = PgCore(pool)
        self._reads = PgReads(self._core)
        super().__init__(self._core.begin, publish=publish)

    # --- reads ----------------------------------------------------------------------------
    async def list_recipients(self, *, teams: Collection[str] | None = None) -> list[CareRecipient]:
        return await self._reads.list_recipients(teams=teams)

    async def basis(self, recipient_id: str) -> RecipientBasis:
        return await self._reads.basis(recipient_id)

    async def basis_for_device(self, device_id: str, at: datetime) -> RecipientBasis | None:
        return await self._reads.basis_for_device(device_id, at)

    async def bases(
        self, recipient_ids: Collection[str] | None = None
    ) -> dict[str, RecipientBasis]:
        return await self._reads.bases(recipient_ids)

    def bases_in_parts(self, size: int) -> AsyncGenerator[list[RecipientBasis], None]:
        return self._reads.bases_in_parts(size)

    async def transitions(self, *, after: datetime, until: datetime) -> list[tuple[str, datetime]]:
        return await self._reads.transitions(after=after, until=until)

    async def binding_requests(self, *, device_id: str | None = None) -> list[BindingRequest]:
        return await self._reads.binding_requests(device_id=device_id)

    async def register(self, *, actor: str, at: datetime) -> list[RegisterRow]:
        bases = list((await self._reads.bases()).values())
        return await self.export_register(bases, actor=actor, at=at)


async def on_device_event(
    pool: asyncpg.Pool, *, device_id: str, event_type: str, at: datetime, threshold: int = 1
) -> Suspension | None:
    """Hard rule 8, for the device MQTT handler: count a ``privacy_switch``, ``tamper`` or
    ``unplugged`` event of a bound device; at ``threshold`` events since the last re-verification,
    suspend camera checks of its brukare (audited, change published). Other event types and
    unbound devices are ignored (``None``)."""
    try:
        kind = BehaviourEvent(event_type)
    except ValueError:
        return None
    return await PgConsentStore(pool).record_device_event(
        device_id=device_id, event_type=kind, at=at, threshold=threshold
    )


__all__ = ["CHANNEL", "PgConsentStore", "on_device_event"]
