"""Writing a brukare's basis as an administrator does, in one place.

The demo, the simulated night, the benchmarks and the tests enrol homes through these two
helpers, so they all go through the consent store (validated, audited, published) the same way:
an informed consent per purpose, and each device bound as seeding does (at once, as the system,
audited ``binding.seeded``; staff go through the two steps with the device's proof).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from consent.model import Basis, Binding, Consent, Purpose
from consent.ports import ConsentStore


def consent_id(recipient_id: str, purpose: Purpose) -> str:
    """The default id of a brukare's own consent series for ``purpose``."""
    return f"c-{recipient_id}-{purpose.value}".replace("_", "-")


async def grant(
    store: ConsentStore,
    recipient_id: str,
    purposes: Iterable[Purpose],
    *,
    given_at: datetime,
    informed_by: str,
    informed_how: str,
    actor: str,
    at: datetime,
    cohabitant_id: str | None = None,
    document_ref: str | None = None,
    ids: dict[Purpose, str] | None = None,
) -> list[Consent]:
    """Record an informed consent, valid from ``given_at``, for each purpose; ids from ``ids``
    or :func:`consent_id` (which only fits the brukare's own consents)."""
    recorded = []
    for purpose in purposes:
        cid = (ids or {}).get(purpose) or consent_id(recipient_id, purpose)
        consent = Consent(
            consent_id=cid,
            recipient_id=recipient_id,
            cohabitant_id=cohabitant_id,
            purpose=purpose,
            version=0,
            basis=Basis.INFORMED_CONSENT,
            given_at=given_at,
            valid_from=given_at,
            informed_by=informed_by,
            informed_how=informed_how,
            document_ref=document_ref,
        )
        recorded.append(await store.record_consent(consent, actor=actor, at=at))
    return recorded


async def bind(
    store: ConsentStore,
    device_id: str,
    recipient_id: str,
    *,
    actor: str,
    at: datetime,
    confirmed_by: str | None = None,
) -> Binding:
    """Bind ``device_id`` to the brukare as seeding does: at once, as the system, without the
    two steps and the device's proof (:meth:`~consent.ports.ConsentStore.seed_binding`, audited
    ``binding.seeded``); recorded as requested by ``actor`` and bound by ``confirmed_by``
    (default the same). Raises the store's ``Conflict`` if it is bound. Staff bind through the
    API: four eyes and proof from the device (docs/consent.md)."""
    return await store.seed_binding(
        device_id=device_id, recipient_id=recipient_id, actor=actor, at=at, bound_by=confirmed_by
    )
