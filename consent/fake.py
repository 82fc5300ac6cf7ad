"""An in-memory :class:`~consent.ports.ConsentStore` for tests. It writes through the same
:class:`consent.writes.ConsentWrites` as the PostgreSQL store (same rules, same errors, same
audit actions and change events; ``tests/contract`` proves it); only persistence differs: the
tables and write transaction of :mod:`consent.fake_rows`.

Audit entries are kept in :attr:`FakeConsentStore.audit` as ``(actor, action, subject, data)``;
devices are registered with :meth:`FakeConsentStore.add_device` (the registry's job in production).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, Collection
from datetime import datetime

from consent import rules
from consent.fake_rows import AuditRow, FakeDevice, FakeTables, basis_of
from consent.model import (
    BindingRequest,
    CareRecipient,
    RecipientBasis,
)
from consent.ports import Publish, RegisterRow
from consent.writes import ConsentWrites


class FakeConsentStore(ConsentWrites):
    """Implements :class:`consent.ports.ConsentStore` in memory; every write is
    :class:`ConsentWrites`'s own, over the fake tables."""

    def __init__(self, *, publish: Publish | None = None) -> None:
        self.tables = FakeTables()
        super().__init__(self.tables.begin, publish=publish)

    # --- test set-up ----------------------------------------------------------------------
    def add_device(self, device_id: str, kind: str | None = "camera") -> None:
        self.tables.devices.setdefault(device_id, FakeDevice(kind))

    def is_quarantined(self, device_id: str) -> bool:
        return self.tables.devices[device_id].quarantined

    @property
    def audit(self) -> list[AuditRow]:
        """The audit entries written, oldest first."""
        return self.tables.audit

    # --- reads ----------------------------------------------------------------------------
    def _basis(self, recipient_id: str) -> RecipientBasis:
        return basis_of(self.tables, recipient_id)

    async def list_recipients(self, *, teams: Collection[str] | None = None) -> list[CareRecipient]:
        found = (r for r in self.tables.recipients.values() if teams is None or r.team_id in teams)
        return sorted(found, key=lambda r: r.recipient_id)

    async def basis(self, recipient_id: str) -> RecipientBasis:
        return self._basis(recipient_id)

    async def basis_for_device(self, device_id: str, at: datetime) -> RecipientBasis | None:
        made = [
            b
            for b in self.tables.bindings.values()
            if b.device_id == device_id and b.bound_at <= at
        ]
        if not made:
            return None
        return self._basis(max(made, key=lambda b: b.bound_at).recipient_id)

    async def bases(
        self, recipient_ids: Collection[str] | None = None
    ) -> dict[str, RecipientBasis]:
        known = self.tables.recipients
        ids = known.keys() if recipient_ids is None else [i for i in recipient_ids if i in known]
        return {i: self._basis(i) for i in sorted(ids)}

    async def bases_in_parts(self, size: int) -> AsyncGenerator[list[RecipientBasis], None]:
        if size < 1:
            raise ValueError("size must be at least 1")
        every = list((await self.bases()).values())  # one moment: read before the first part
        for i in range(0, len(every), size):
            yield every[i : i + size]

    async def transitions(self, *, after: datetime, until: datetime) -> list[tuple[str, datetime]]:
        found = {
            (rid, t)
            for rid in self.tables.recipients
            for t in rules.transitions(self._basis(rid), after, until)
        }
        return sorted(found, key=lambda x: (x[1], x[0]))

    async def binding_requests(self, *, device_id: str | None = None) -> list[BindingRequest]:
        def pressed(r: BindingRequest) -> datetime | None:
            at = self.tables.buttons.get(r.device_id)
            return at if at is not None and at >= r.requested_at else None

        return sorted(
            (
                dataclasses.replace(r, button_pressed_at=pressed(r))
                for r in self.tables.requests.values()
                if device_id is None or r.device_id == device_id
            ),
            key=lambda r: (r.requested_at, r.request_id),
        )

    async def register(self, *, actor: str, at: datetime) -> list[RegisterRow]:
        bases = list((await self.bases()).values())
        return await self.export_register(bases, actor=actor, at=at)
