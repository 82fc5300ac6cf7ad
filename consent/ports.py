"""The consent store's ports.

:class:`ConsentStore` is what the gate, the API and the demo need from storage. Two adapters
implement it: :class:`consent.store.PgConsentStore` (PostgreSQL) and
:class:`consent.fake.FakeConsentStore` (memory, for tests); ``tests/contract`` runs one suite
against both. Every write takes the acting staff id (``actor``) and the instant of the change
(``at``, from the injected clock); it validates first (raising :mod:`consent.errors`), then
stores the change and its audit entry atomically, then publishes a
:class:`~consent.model.ConsentChange`. A failed write changes nothing.

Both adapters write through the one write path, :class:`consent.writes.ConsentWrites`, which
owns validation, audit and change events; an adapter only persists, through :class:`WriteTx`
(one transaction: its :class:`RecordRows` and :class:`BindingRows` parts, the brukare lock, the
audit append and the in-transaction notification). The persistence methods check nothing: they
read and write exactly what they are told, inside the transaction they were opened for.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncGenerator, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from consent.model import (
    BehaviourEvent,
    Binding,
    BindingAction,
    BindingConfirmation,
    BindingRequest,
    ButtonPress,
    CarePlan,
    CareRecipient,
    Cohabitant,
    Consent,
    ConsentChange,
    Pause,
    PersonAsked,
    Purpose,
    RecipientBasis,
    Reverification,
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
    async def list_recipients(self, *, teams: Collection[str] | None = None) -> list[CareRecipient]:
        """The brukare, of ``teams`` only when given (``None``: every team the scope shows)."""
        ...

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

    def bases_in_parts(self, size: int) -> AsyncGenerator[list[RecipientBasis], None]:
        """Every brukare's basis, in ``recipient_id`` order, in parts of ``size`` (the last may
        be smaller), all as of one moment: a night's planning plans and stores a part while the
        next is read."""
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
        self,
        cohabitant_id: str,
        *,
        moved_out_at: datetime,
        actor: str,
        at: datetime,
        teams: Collection[str] | None = None,
    ) -> Cohabitant: ...

    async def add_plan(
        self, plan: CarePlan, *, actor: str, at: datetime, plan_hour: int | None = None
    ) -> CarePlan:
        """With ``plan_hour``, every agreed window must also fall inside a night round starting
        at that local hour (:func:`consent.rules.validate_round_times`)."""
        ...

    async def end_plan(
        self,
        plan_id: str,
        *,
        ended_at: datetime,
        actor: str,
        at: datetime,
        teams: Collection[str] | None = None,
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
        teams: Collection[str] | None = None,
    ) -> Consent:
        """Withdraw the series the version belongs to, from ``withdrawn_at``."""
        ...

    async def add_pause(self, pause: Pause, *, actor: str, at: datetime) -> Pause: ...

    async def end_pause(
        self,
        pause_id: str,
        *,
        ended_at: datetime,
        actor: str,
        at: datetime,
        teams: Collection[str] | None = None,
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
        code: str | None = None,
    ) -> BindingRequest:
        """First step. Binding a video phone keeps the hash of ``code`` (the one-time code the
        caller then sends to the phone's screen; required for a phone), a camera waits for its
        ``bind_button``; see :func:`consent.rules.proof_for`."""
        ...

    async def confirm_binding(
        self, request_id: str, typed: BindingConfirmation, *, actor: str, at: datetime
    ) -> Binding:
        """Second step, by another person than the requester, with the device's proof and the
        brukare's details (:func:`consent.rules.confirm_refusal`). A wrong code is counted
        (and the fifth voids the request) although the confirmation is refused."""
        ...

    async def seed_binding(
        self,
        *,
        device_id: str,
        recipient_id: str,
        actor: str,
        at: datetime,
        bound_by: str | None = None,
    ) -> Binding:
        """Bind at once, without the two steps: for seeding a demo or a test as the system
        (audited ``binding.seeded``), never reachable from the API."""
        ...

    async def record_bind_button(self, device_id: str, at: datetime) -> bool:
        """A device's ``bind_button`` event, received at ``at``; ``False`` for no such device."""
        ...

    async def record_device_event(
        self,
        *,
        device_id: str,
        event_type: BehaviourEvent,
        at: datetime,
        threshold: int,
        agreed_checks: Sequence[datetime] = (),
        observed_at: datetime | None = None,
    ) -> Suspension | None:
        """Count a behaviour event dated ``at``; return the suspension it started, if any.
        ``agreed_checks``: for ``offline_at_check``, the agreed instants of the brukare's
        checks around this one (see :func:`consent.rules.offline_streak`); ``observed_at``
        (default ``at``): when it was found, when a suspension starts."""
        ...

    async def reverify(
        self,
        recipient_id: str,
        *,
        people: Sequence[PersonAsked],
        actor: str,
        at: datetime,
        teams: Collection[str] | None = None,
    ) -> tuple[Reverification, tuple[Suspension, ...]]:
        """Record a re-verification: withdraw what anyone refuses, and lift the suspensions
        when everyone living there was asked and nobody refuses camera checks."""
        ...


# --- persistence, for the adapters ----------------------------------------------------------


class RecordRows(Protocol):
    """Brukare, cohabitants, care plans, consents and pauses, inside one write transaction.
    ``insert_*`` returning ``bool`` answer ``False`` (and store nothing) when the id exists."""

    async def insert_recipient(self, recipient: CareRecipient, *, created_by: str) -> bool: ...

    async def cohabitant(self, cohabitant_id: str) -> Cohabitant | None: ...

    async def insert_cohabitant(self, cohabitant: Cohabitant) -> bool: ...

    async def set_moved_out(self, cohabitant_id: str, moved_out_at: datetime) -> None: ...

    async def plans_of(self, recipient_id: str) -> list[CarePlan]: ...

    async def plan(self, plan_id: str) -> CarePlan | None: ...

    async def insert_plan(self, plan: CarePlan) -> bool: ...

    async def end_plan(self, plan_id: str, *, ended_at: datetime, ended_by: str) -> None: ...

    async def consent(self, consent_id: str) -> Consent | None: ...

    async def consent_series(self, consent_id: str) -> list[Consent]:
        """Every version (withdrawals included) of the series ``consent_id`` belongs to."""
        ...

    async def next_version(
        self, recipient_id: str, cohabitant_id: str | None, purpose: Purpose
    ) -> int: ...

    async def insert_consent(self, consent: Consent) -> bool: ...

    async def withdraw(
        self,
        consent_ids: Sequence[str],
        *,
        withdrawn_at: datetime,
        withdrawn_by: str,
        reason: str | None,
        recorded_at: datetime,
    ) -> None: ...

    async def pause(self, pause_id: str) -> Pause | None: ...

    async def insert_pause(self, pause: Pause) -> bool: ...

    async def end_pause(self, pause_id: str, *, ends_at: datetime, ended_by: str) -> None: ...


class BindingRows(Protocol):
    """Devices, binding requests, bindings, behaviour events and suspensions, inside one write
    transaction."""

    async def lock_device(self, device_id: str) -> bool:
        """Lock the device's row; ``False`` if there is no such device."""
        ...

    async def device_kind(self, device_id: str) -> str | None: ...

    async def lock_request(self, request_id: str) -> BindingRequest | None:
        """The request, read after locking its device's row."""
        ...

    async def count_code_attempt(self, request_id: str, *, void_at: datetime | None) -> int:
        """Count one wrong code (cancelling the request at ``void_at`` if given); the count."""
        ...

    async def bind_button(self, device_id: str) -> ButtonPress | None:
        """The device's latest ``bind_button``."""
        ...

    async def set_bind_button(self, device_id: str, at: datetime) -> bool:
        """Keep ``at`` as the device's latest press (a later one stays); ``False`` if no device."""
        ...

    async def active_binding(self, device_id: str) -> Binding | None: ...

    async def cancel_open_requests(self, device_id: str, *, at: datetime) -> None: ...

    async def insert_request(self, request: BindingRequest) -> bool: ...

    async def confirm_request(
        self, request_id: str, *, confirmed_by: str, at: datetime
    ) -> None: ...

    async def insert_binding(self, binding: Binding) -> None: ...

    async def unbind(self, binding_id: str, *, at: datetime, unbound_by: str) -> None: ...

    async def set_quarantined(self, device_id: str, quarantined: bool) -> str | None:
        """Set the device's quarantine flag; returns its kind."""
        ...

    async def recipient_at(self, device_id: str, at: datetime) -> str | None:
        """The brukare of the device's binding in force at ``at``."""
        ...

    async def add_behaviour_event(
        self, device_id: str, recipient_id: str, event_type: BehaviourEvent, at: datetime
    ) -> None: ...

    async def behaviour_events(
        self, recipient_id: str, *, after: datetime, until: datetime
    ) -> list[tuple[BehaviourEvent, datetime]]:
        """Events of the brukare's devices in ``(after, until]``."""
        ...

    async def suspensions_of(self, recipient_id: str) -> list[Suspension]: ...

    async def insert_suspension(self, suspension: Suspension) -> None: ...

    async def lift(self, lifted: Sequence[Suspension]) -> None:
        """Store ``lifted_at`` and ``lifted_by`` of each suspension."""
        ...

    async def insert_reverification(self, record: Reverification) -> None: ...

    async def reverifications_of(self, recipient_id: str) -> list[Reverification]: ...


class WriteTx(Protocol):
    """One write transaction: committed when the ``async with`` block that opened it ends
    normally, rolled back (nothing changed, nothing notified) when it raises."""

    @property
    def records(self) -> RecordRows: ...

    @property
    def bindings(self) -> BindingRows: ...

    async def lock_recipient(self, recipient_id: str) -> CareRecipient | None:
        """Lock the brukare's row (versions and overlaps are decided one writer at a time)."""
        ...

    async def bound_devices(self, recipient_id: str) -> set[str]:
        """Devices bound to the brukare now (active bindings)."""
        ...

    async def basis(self, recipient_id: str) -> RecipientBasis:
        """Everything the gate knows of the brukare, read in this transaction."""
        ...

    async def audit(
        self,
        *,
        actor: str,
        action: str,
        subject: str | None,
        data: Mapping[str, Any],
        at: datetime,
    ) -> None:
        """Append an audit entry in this transaction."""
        ...

    async def notify(self, change: ConsentChange) -> None:
        """Send the change to other processes if and when this transaction commits."""
        ...


Begin = Callable[[], AbstractAsyncContextManager[WriteTx]]
"""Opens a write transaction (``async with begin() as tx: ...``)."""
