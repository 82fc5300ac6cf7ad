"""A brukare's service ends, in PostgreSQL: one transaction that records the end and carries out
what :mod:`consent.ending_rules` decides (devices unbound and quarantined, plans and pauses
ended, the brukare's camera zones dropped), audited (``recipient.ended``) and told to the round
and the gate (a ``plan_ended`` change, then ``device_unbound`` per device), which re-plan: the
remaining checks of a plan no longer in force are dropped, and later nights plan none.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from consent import ending_rules as er
from consent.errors import Conflict, NotFound, raise_first
from consent.model import ChangeKind, ConsentChange
from consent.pg import PgCore, PgTx
from consent.write_steps import changed, covered, locked_recipient

if TYPE_CHECKING:
    from consent.pg import Connection


@dataclass(frozen=True, slots=True)
class Ended:
    """What ending a brukare's service did (pseudonymous ids and counts)."""

    recipient_id: str
    reason: er.EndReason
    ended_at: datetime
    devices_unbound: tuple[str, ...]
    plans_ended: tuple[str, ...]
    pauses_ended: tuple[str, ...]

    def json(self) -> dict[str, object]:
        return {
            "recipient_id": self.recipient_id,
            "reason": self.reason.value,
            "ended_at": self.ended_at.isoformat(),
            "devices_unbound": list(self.devices_unbound),
            "plans_ended": list(self.plans_ended),
            "pauses_ended": list(self.pauses_ended),
        }


class Endings:
    """Ends a brukare's service (the ``POST /api/recipients/{id}/end`` route's adapter)."""

    def __init__(
        self, pool: asyncpg.Pool, *, publish: Callable[[ConsentChange], object] | None = None
    ) -> None:
        self._core = PgCore(pool)
        self._publish = publish

    async def end(
        self,
        recipient_id: str,
        *,
        reason: er.EndReason,
        ended_at: datetime,
        actor: str,
        at: datetime,
        teams: Collection[str] | None = None,
    ) -> Ended:
        """Refuses (and changes nothing) with ``NotFound`` for a brukare outside ``teams`` or
        unknown, ``Conflict already_ended``, or ``InvalidInput`` from the rules."""
        changes: list[ConsentChange] = []
        async with self._core.transaction() as conn:
            tx = PgTx(conn)
            r = await locked_recipient(tx, recipient_id)
            covered(r, teams, NotFound("care recipient", recipient_id, "recipient_id"))
            if await conn.fetchval(
                "SELECT ended_at FROM care_recipients WHERE recipient_id = $1", recipient_id
            ):
                raise Conflict("already_ended", "the brukare's service has already ended")
            raise_first(er.validate_end(ended_at=ended_at, at=at, created_at=r.created_at))
            await conn.execute(
                "UPDATE care_recipients SET ended_at = $2, end_reason = $3, ended_by = $4"
                " WHERE recipient_id = $1",
                recipient_id,
                ended_at,
                reason.value,
                actor,
            )
            plans = await self._end_plans(conn, recipient_id, ended_at, actor)
            pauses = await self._end_pauses(conn, recipient_id, ended_at, actor)
            devices = await self._unbind(conn, tx, recipient_id, actor, at)
            await tx.audit(
                actor=actor,
                action="recipient.ended",
                subject=recipient_id,
                data={
                    "reason": reason.value,
                    "ended_at": ended_at,
                    "devices_unbound": list(devices),
                    "plans_ended": list(plans),
                    "pauses_ended": list(pauses),
                },
                at=at,
            )
            changes.append(await changed(tx, ChangeKind.PLAN_ENDED, recipient_id, at, devices))
            for device_id in devices:
                change = await changed(
                    tx, ChangeKind.DEVICE_UNBOUND, recipient_id, at, (device_id,)
                )
                changes.append(change)
        if self._publish is not None:
            for change in changes:
                self._publish(change)
        return Ended(recipient_id, reason, ended_at, devices, plans, pauses)

    @staticmethod
    async def _end_plans(
        conn: Connection, recipient_id: str, ended_at: datetime, actor: str
    ) -> tuple[str, ...]:
        rows = await conn.fetch(
            "SELECT plan_id, valid_from, coalesce(ended_at, valid_until) AS ends"
            " FROM care_plans WHERE recipient_id = $1 AND ended_at IS NULL",
            recipient_id,
        )
        todo = er.to_end(
            (er.Period(r["plan_id"], r["valid_from"], r["ends"]) for r in rows), ended_at
        )
        for plan_id, end in todo:
            await conn.execute(
                "UPDATE care_plans SET ended_at = $2, ended_by = $3 WHERE plan_id = $1",
                plan_id,
                end,
                actor,
            )
        return tuple(p for p, _ in todo)

    @staticmethod
    async def _end_pauses(
        conn: Connection, recipient_id: str, ended_at: datetime, actor: str
    ) -> tuple[str, ...]:
        rows = await conn.fetch(
            "SELECT pause_id, starts_at, ends_at FROM pauses WHERE recipient_id = $1",
            recipient_id,
        )
        todo = er.to_end(
            (er.Period(r["pause_id"], r["starts_at"], r["ends_at"]) for r in rows), ended_at
        )
        for pause_id, end in todo:
            await conn.execute(
                "UPDATE pauses SET ends_at = $2, ended_by = $3 WHERE pause_id = $1",
                pause_id,
                end,
                actor,
            )
        return tuple(p for p, _ in todo)

    @staticmethod
    async def _unbind(
        conn: Connection, tx: PgTx, recipient_id: str, actor: str, at: datetime
    ) -> tuple[str, ...]:
        """Every bound device unbound and quarantined, its pending binding requests cancelled
        and the zones drawn for this home dropped (a device bound elsewhere gets new ones)."""
        devices = tuple(sorted(await tx.bound_devices(recipient_id)))
        await conn.execute(
            "UPDATE device_bindings SET unbound_at = $2, unbound_by = $3"
            " WHERE recipient_id = $1 AND unbound_at IS NULL",
            recipient_id,
            at,
            actor,
        )
        await conn.execute(
            "UPDATE binding_requests SET cancelled_at = $2 WHERE recipient_id = $1"
            " AND confirmed_at IS NULL AND cancelled_at IS NULL",
            recipient_id,
            at,
        )
        for device_id in devices:
            await tx.bindings.set_quarantined(device_id, True)
        await conn.execute("DELETE FROM camera_zones WHERE device_id = ANY($1::text[])", devices)
        return devices
