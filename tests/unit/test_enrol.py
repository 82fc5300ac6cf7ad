"""consent.enrol: the one way demo, simulation, benchmarks and tests write a home's basis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from consent import enrol
from consent.errors import Conflict
from consent.fake import FakeConsentStore
from consent.model import Basis, CareRecipient, Purpose

NOW = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
GIVEN = NOW - timedelta(days=2)


async def _store() -> FakeConsentStore:
    store = FakeConsentStore()
    await store.add_recipient(CareRecipient("r-1", "Namn"), actor="staff-a", at=NOW)
    store.add_device("cam-0001")
    store.add_device("phone-0001", "video_phone")
    return store


async def test_grant_records_an_informed_consent_per_purpose() -> None:
    store = await _store()
    purposes = (Purpose.CAMERA_CHECK, Purpose.MOTION_ANALYSIS)
    recorded = await enrol.grant(
        store,
        "r-1",
        purposes,
        given_at=GIVEN,
        informed_by="staff-a",
        informed_how="samtal i hemmet",
        actor="staff-a",
        at=NOW,
        document_ref="DOK-1",
        ids={Purpose.MOTION_ANALYSIS: "cons-own"},
    )
    assert [c.purpose for c in recorded] == list(purposes)
    assert [c.consent_id for c in recorded] == ["c-r-1-camera-check", "cons-own"]
    basis = await store.basis("r-1")
    assert {c.consent_id for c in basis.consents} == {"c-r-1-camera-check", "cons-own"}
    for c in basis.consents:
        assert (c.basis, c.given_at, c.valid_from) == (Basis.INFORMED_CONSENT, GIVEN, GIVEN)
        assert (c.cohabitant_id, c.document_ref, c.recorded_by) == (None, "DOK-1", "staff-a")


async def test_bind_seeds_at_once_as_the_system_and_refuses_a_bound_device() -> None:
    store = await _store()
    binding = await enrol.bind(store, "cam-0001", "r-1", actor="staff-a", at=NOW)
    assert (binding.requested_by, binding.bound_by) == ("staff-a", "staff-a")
    assert [a[1] for a in store.audit][-1] == "binding.seeded"  # not a staff confirmation
    assert await store.binding_requests() == []  # no request, no proof: seeding only
    phone = await enrol.bind(
        store, "phone-0001", "r-1", actor="staff-a", at=NOW, confirmed_by="staff-b"
    )
    assert (phone.requested_by, phone.bound_by) == ("staff-a", "staff-b")
    basis = await store.basis("r-1")
    assert sorted(b.device_id for b in basis.bindings) == ["cam-0001", "phone-0001"]
    with pytest.raises(Conflict):
        await enrol.bind(store, "cam-0001", "r-1", actor="staff-a", at=NOW)
    assert len((await store.basis("r-1")).bindings) == 2
