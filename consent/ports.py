"""The consent store's port: what the gate, the API and the demo need from storage.

Two adapters implement it: :class:`consent.store.PgConsentStore` (PostgreSQL) and
:class:`consent.fake.FakeConsentStore` (memory, for tests); ``tests/contract`` runs one suite
against both. Every write takes the acting staff id (``actor``) and the instant of the change
(``at``, from the injected clock); it validates first (raising :mod:`consent.errors`), then
stores the change and its audit entry atomically, then publishes a
:class:`~consent.model.ConsentChange`. A failed write changes nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from consent.model import (
    BehaviourEvent,
    Binding,
    BindingAction,
    BindingRequest,
    CarePlan,
    CareRecipient,
    Cohabitant,
    Consent,
    ConsentChange,
    Pause,
    RecipientBasis,
    Suspension,
)

Publish = Callable[[ConsentChange], None]
BINDING_REQUEST_TTL = timedelta(minutes=15)


def new_id(prefix: str) -> str:
    """A fresh pseudonymous id like ``plan-3f9a0c2b1d4e``."""
    return f"{prefix}-{secrets.token_hex(6)}"


@dataclass(frozen=True, slots=True)
class RegisterRow:
    """One camera (or video phone) binding in the municipality's camera register.

    ``location`` is the home as registered; ``purposes`` are the brukare's consents in force at
    the end of the binding (or now); ``legal_basis`` is ``informed_consent`` or
    ``other_legal_basis: <ref>`` for camera checks (empty when none).
    """

    device_id: str
    device_kind: str
    recipient_id: str
    location: str
    purposes: tuple[str, ...]
    legal_basis: str
    decision_ref: str
    start: datetime
    end: datetime | None


class ConsentStore(Protocol):
    # --- reads --------------------------------------------------------------------------
    async def list_recipients(self) -> list[CareRecipient]: ...

    async def basis(self, recipient_id: str) -> RecipientBasis:
        """Everything about one brukare (history included); raises ``NotFound``."""
        ...

    async def basis_for_device(self, device_id: str, at: datetime) -> RecipientBasis | None:
        """The brukare of the device's latest binding made at or before ``at``."""
        ...

    async def bases(
        self, recipient_ids: Collection[str] | None = None
    ) -> dict[str, RecipientBasis]:
        """Bases of many (default all) brukare, for planning a night in one go."""
        ...

    async def binding_requests(self, *, device_id: str | None = None) -> list[BindingRequest]: ...

    async def transitions(self, *, after: datetime, until: datetime) -> list[tuple[str, datetime]]:
        """``(recipient_id, instant)`` of every :func:`consent.rules.transitions` instant of any
        brukare in ``(after, until]``, sorted by instant."""
        ...

    async def register(self, *, actor: str, at: datetime) -> list[RegisterRow]:
        """The camera register at ``at``; the export itself is audited."""
        ...

    # --- writes -------------------------------------------------------------------------
    async def add_recipient(
        self, recipient: CareRecipient, *, actor: str, at: datetime
    ) -> CareRecipient: ...

    async def add_cohabitant(
        self, cohabitant: Cohabitant, *, actor: str, at: datetime
    ) -> Cohabitant: ...

    async def end_cohabitant(
        self, cohabitant_id: str, *, moved_out_at: datetime, actor: str, at: datetime
    ) -> Cohabitant: ...

    async def add_plan(self, plan: CarePlan, *, actor: str, at: datetime) -> CarePlan: ...

    async def end_plan(
        self, plan_id: str, *, ended_at: datetime, actor: str, at: datetime
    ) -> CarePlan: ...

    async def record_consent(self, consent: Consent, *, actor: str, at: datetime) -> Consent:
        """Append a new version of the series; ``version`` and ``recorded_*`` are assigned."""
        ...

    async def withdraw_consent(
        self,
        consent_id: str,
        *,
        withdrawn_at: datetime,
        reason: str | None,
        actor: str,
        at: datetime,
    ) -> Consent:
        """Withdraw the series the version belongs to, from ``withdrawn_at``."""
        ...

    async def add_pause(self, pause: Pause, *, actor: str, at: datetime) -> Pause: ...

    async def end_pause(
        self, pause_id: str, *, ended_at: datetime, actor: str, at: datetime
    ) -> Pause: ...

    async def request_binding(
        self,
        *,
        request_id: str,
        action: BindingAction,
        device_id: str,
        recipient_id: str | None,
        actor: str,
        at: datetime,
    ) -> BindingRequest: ...

    async def confirm_binding(
        self, request_id: str, *, recipient_id: str, actor: str, at: datetime
    ) -> Binding:
        """Second step: ``recipient_id`` must name the brukare of the request."""
        ...

    async def record_device_event(
        self, *, device_id: str, event_type: BehaviourEvent, at: datetime, threshold: int
    ) -> Suspension | None:
        """Count a behaviour event; return the suspension it started, if any."""
        ...

    async def reverify(
        self, recipient_id: str, *, actor: str, at: datetime
    ) -> tuple[Suspension, ...]:
        """Lift the brukare's suspensions after a human re-verified consent."""
        ...
