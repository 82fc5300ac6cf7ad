"""Steps every write of :mod:`consent.writes` and :mod:`consent.binding_writes` shares: the
brukare lock, and the change event told to other processes on commit."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from consent.errors import NotFound
from consent.model import CareRecipient, ChangeKind, ConsentChange
from consent.ports import WriteTx


async def locked_recipient(tx: WriteTx, recipient_id: str) -> CareRecipient:
    """Lock the brukare's row for the rest of the write; ``NotFound`` if there is none."""
    found = await tx.lock_recipient(recipient_id)
    if found is None:
        raise NotFound("care recipient", recipient_id, "recipient_id")
    return found


def covered(recipient: CareRecipient, teams: Collection[str] | None, absent: NotFound) -> None:
    """A write about something of a brukare outside the caller's ``teams`` (``None``: every
    team) is refused as if the thing did not exist: it is not confirmed that it does."""
    if teams is not None and recipient.team_id not in teams:
        raise absent


async def changed(
    tx: WriteTx,
    kind: ChangeKind,
    recipient_id: str,
    at: datetime,
    extra_devices: tuple[str, ...] = (),
) -> ConsentChange:
    """The write's change event, told to other processes if the transaction commits: it names
    the brukare's bound devices (plus ``extra_devices``, such as one just unbound)."""
    devices = await tx.bound_devices(recipient_id) | set(extra_devices)
    change = ConsentChange(
        event_id=uuid.uuid4().hex,
        kind=kind,
        recipient_id=recipient_id,
        device_ids=tuple(sorted(devices)),
        at=at,
    )
    await tx.notify(change)
    return change
