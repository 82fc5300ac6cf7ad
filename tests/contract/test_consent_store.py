"""One contract suite for the consent store, run against the in-memory fake and PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta

import asyncpg
import pytest

from consent import rules
from consent.errors import Conflict, InvalidInput, NotFound
from consent.fake import FakeConsentStore
from consent.model import (
    Basis,
    BehaviourEvent,
    BindingAction,
    BindingConfirmation,
    BindingProof,
    CarePlan,
    CareRecipient,
    ChangeKind,
    CheckTime,
    Cohabitant,
    Consent,
    ConsentChange,
    Pause,
    PauseReason,
    PauseSource,
    PersonAsked,
    Purpose,
    Reason,
    ReverifyAnswer,
    ReverifyHow,
    ReverifyOutcome,
    Suspension,
    SuspensionReason,
)
from consent.ports import ConsentStore
from consent.store import PgConsentStore

T0 = datetime(2026, 1, 12, 20, 0, tzinfo=UTC)  # a winter evening; 21:00 in Stockholm
ADMIN = "staff-admin01"
ADMIN2 = "staff-admin02"
TECH = "staff-tech01"


def on_site(rid: str = "r-1", code: str | None = None) -> BindingConfirmation:
    """What the second person types: the details of :func:`recipient` as read out on site."""
    return BindingConfirmation(rid, name="Astrid Lindqvist", address="Storgatan 1", code=code)


async def bind_camera(h: Harness, device_id: str, rid: str, at: datetime) -> None:
    """Bind a camera as staff do: the technician asks, presses its button, a second person
    confirms with the brukare's details."""
    req = await h.store.request_binding(
        request_id=f"breq-{device_id}",
        action=BindingAction.BIND,
        device_id=device_id,
        recipient_id=rid,
        actor=TECH,
        at=at,
    )
    assert await h.store.record_bind_button(device_id, at)
    await h.store.confirm_binding(req.request_id, on_site(rid), actor=ADMIN, at=at)


@dataclass
class Harness:
    store: ConsentStore
    add_device: Callable[..., Awaitable[None]]
    """``add_device(device_id, kind="camera")``."""
    is_quarantined: Callable[[str], Awaitable[bool]]
    audit_actions: Callable[[], Awaitable[list[str]]]
    changes: list[ConsentChange] = field(default_factory=list)


def _fake() -> Harness:
    changes: list[ConsentChange] = []
    fake = FakeConsentStore(publish=changes.append)

    async def add_device(device_id: str, kind: str = "camera") -> None:
        fake.add_device(device_id, kind)

    async def is_quarantined(device_id: str) -> bool:
        return fake.is_quarantined(device_id)

    async def audit_actions() -> list[str]:
        return [a[1] for a in fake.audit]

    return Harness(fake, add_device, is_quarantined, audit_actions, changes)


def _postgres(pool: asyncpg.Pool) -> Harness:
    changes: list[ConsentChange] = []

    async def add_device(device_id: str, kind: str = "camera") -> None:
        await pool.execute("INSERT INTO devices (device_id, kind) VALUES ($1, $2)", device_id, kind)

    async def is_quarantined(device_id: str) -> bool:
        return bool(
            await pool.fetchval("SELECT quarantined FROM devices WHERE device_id = $1", device_id)
        )

    async def audit_actions() -> list[str]:
        return [r["action"] for r in await pool.fetch("SELECT action FROM audit_log ORDER BY seq")]

    return Harness(
        PgConsentStore(pool, publish=changes.append),
        add_device,
        is_quarantined,
        audit_actions,
        changes,
    )


@pytest.fixture(params=["fake", pytest.param("postgres", marks=pytest.mark.integration)])
def h(request: pytest.FixtureRequest) -> Harness:
    if request.param == "fake":
        return _fake()
    return _postgres(request.getfixturevalue("pool"))


def recipient(rid: str = "r-1") -> CareRecipient:
    return CareRecipient(recipient_id=rid, display_name="Astrid Lindqvist", home="Storgatan 1")


def plan(
    pid: str = "plan-1",
    rid: str = "r-1",
    *,
    valid_from: datetime = T0 - timedelta(days=1),
    checks: tuple[CheckTime, ...] = (CheckTime(time(22, 0)), CheckTime(time(2, 0))),
    valid_until: datetime | None = None,
) -> CarePlan:
    return CarePlan(
        plan_id=pid,
        recipient_id=rid,
        decision_ref="SN-2026-0042",
        valid_from=valid_from,
        valid_until=valid_until,
        checks=checks,
    )


def consent(
    cid: str,
    purpose: Purpose = Purpose.CAMERA_CHECK,
    *,
    rid: str = "r-1",
    cohabitant_id: str | None = None,
    given_at: datetime = T0 - timedelta(days=2),
    basis: Basis | None = Basis.INFORMED_CONSENT,
) -> Consent:
    return Consent(
        consent_id=cid,
        recipient_id=rid,
        cohabitant_id=cohabitant_id,
        purpose=purpose,
        version=0,
        basis=basis,
        given_at=given_at,
        valid_from=given_at,
        informed_by="staff-admin01",
        informed_how="samtal i hemmet med broschyr",
    )


async def seeded(h: Harness) -> None:
    """A brukare with a plan, camera consent and a bound camera (allowed at 22:00 local)."""
    await h.store.add_recipient(recipient(), actor=ADMIN, at=T0)
    await h.store.add_plan(plan(), actor=ADMIN, at=T0)
    await h.store.record_consent(consent("cons-1"), actor=ADMIN, at=T0)
    await h.add_device("cam-0001")
    await bind_camera(h, "cam-0001", "r-1", T0)


AT_22 = T0 + timedelta(hours=1)  # 22:00 Stockholm


async def gate(
    h: Harness, at: datetime = AT_22, purpose: Purpose = Purpose.CAMERA_CHECK
) -> Reason | None:
    basis = await h.store.basis_for_device("cam-0001", at)
    return rules.decide(basis, device_id="cam-0001", purpose=purpose, at=at).reason


async def test_seeded_recipient_is_allowed_in_window_only(h: Harness) -> None:
    await seeded(h)
    assert await gate(h) is None
    assert await gate(h, AT_22 + timedelta(hours=1)) is Reason.OUTSIDE_WINDOW
    assert await gate(h, purpose=Purpose.MOTION_ANALYSIS) is Reason.NO_CONSENT
    assert await h.audit_actions() == [
        "recipient.created",
        "care_plan.created",
        "consent.recorded",
        "binding.bind_requested",
        "binding.bind_confirmed",
    ]


async def test_recipient_validation_and_duplicates(h: Harness) -> None:
    with pytest.raises(InvalidInput) as e:
        await h.store.add_recipient(replace(recipient(), recipient_id="Bad Id"), actor=ADMIN, at=T0)
    assert e.value.field == "recipient_id"
    with pytest.raises(InvalidInput) as e:
        await h.store.add_recipient(
            replace(recipient(), time_zone="Mars/Olympus"), actor=ADMIN, at=T0
        )
    assert e.value.field == "time_zone"
    await h.store.add_recipient(recipient(), actor=ADMIN, at=T0)
    with pytest.raises(Conflict):
        await h.store.add_recipient(recipient(), actor=ADMIN, at=T0)
    assert [r.recipient_id for r in await h.store.list_recipients()] == ["r-1"]
    assert await h.audit_actions() == ["recipient.created"]
    with pytest.raises(NotFound):
        await h.store.basis("r-nobody")


@pytest.mark.parametrize(
    ("checks", "field", "code"),
    [
        ((), "checks", "check_count"),
        (
            tuple(CheckTime(time(13 + i // 4 % 11, 15 * (i % 4)), 5) for i in range(25)),
            "checks",
            "check_count",
        ),
        (
            (CheckTime(time(22, 0), 30), CheckTime(time(22, 20), 15)),
            "checks[1]",
            "overlapping_windows",
        ),
        ((CheckTime(time(2, 30), 10), CheckTime(time(3, 30), 10)), "checks[1]", "dst_overlap"),
        ((CheckTime(time(23, 0), -5),), "checks[0].tolerance_min", "inverted_window"),
    ],
)
async def test_bad_plans_store_nothing(
    h: Harness, checks: tuple[CheckTime, ...], field: str, code: str
) -> None:
    await h.store.add_recipient(recipient(), actor=ADMIN, at=T0)
    with pytest.raises(InvalidInput) as e:
        await h.store.add_plan(plan(checks=checks), actor=ADMIN, at=T0)
    assert (e.value.field, e.value.code) == (field, code)
    assert (await h.store.basis("r-1")).plans == ()
    assert await h.audit_actions() == ["recipient.created"]
    assert h.changes == []


async def test_a_plans_call_terms_are_stored_and_reach_the_gate(h: Harness) -> None:
    """Issue 15: call_cap_s, announce_s and live_countdown round-trip through either store (the
    plan read alone and in a brukare's basis) and come with the gate's decision."""
    await h.store.add_recipient(recipient(), actor=ADMIN, at=T0)
    terms = {"call_cap_s": 61, "announce_s": 15, "live_countdown": False}
    with pytest.raises(InvalidInput) as e:
        await h.store.add_plan(replace(plan(), call_cap_s=901), actor=ADMIN, at=T0)
    assert (e.value.field, e.value.code) == ("call_cap_s", "out_of_range")
    assert (await h.store.basis("r-1")).plans == ()
    stored = await h.store.add_plan(replace(plan(), **terms), actor=ADMIN, at=T0)  # type: ignore[arg-type]
    (read,) = (await h.store.basis("r-1")).plans
    for p in (stored, read):
        assert (p.call_cap_s, p.announce_s, p.live_countdown) == (61, 15, False)
    await h.store.record_consent(consent("cons-1"), actor=ADMIN, at=T0)
    await h.add_device("cam-0001")
    await bind_camera(h, "cam-0001", "r-1", T0)
    basis = await h.store.basis_for_device("cam-0001", AT_22)
    d = rules.decide(basis, device_id="cam-0001", purpose=Purpose.CAMERA_CHECK, at=AT_22)
    assert (d.allowed, d.call_cap_s, d.announce_s, d.live_countdown) == (True, 61, 15, False)


async def test_overlapping_plans_conflict_and_ending_a_plan(h: Harness) -> None:
    await seeded(h)
    with pytest.raises(Conflict) as e:
        await h.store.add_plan(
            plan("plan-2", valid_from=T0 + timedelta(days=3)), actor=ADMIN, at=T0
        )
    assert e.value.code == "overlapping_plan"
    ended = await h.store.end_plan(
        "plan-1", ended_at=AT_22 - timedelta(minutes=1), actor=ADMIN, at=T0
    )
    assert ended.ended_by == ADMIN
    assert await gate(h) is Reason.PLAN_INACTIVE
    await h.store.add_plan(plan("plan-2", valid_from=T0 + timedelta(days=3)), actor=ADMIN, at=T0)
    with pytest.raises(Conflict):
        await h.store.end_plan("plan-1", ended_at=T0, actor=ADMIN, at=T0)
    assert [c.kind for c in h.changes][-2:] == [ChangeKind.PLAN_ENDED, ChangeKind.PLAN_ADDED]
    assert h.changes[-1].device_ids == ("cam-0001",)


async def test_consent_versions_and_withdrawal_of_the_series(h: Harness) -> None:
    await seeded(h)
    v2 = await h.store.record_consent(consent("cons-2"), actor=ADMIN, at=T0)
    assert v2.version == 2
    assert v2.recorded_by == ADMIN
    with pytest.raises(InvalidInput) as e:
        await h.store.withdraw_consent(
            "cons-2", withdrawn_at=T0 - timedelta(days=3), reason=None, actor=ADMIN, at=T0
        )
    assert e.value.field == "withdrawn_at"
    assert e.value.code == "before_consent"
    with pytest.raises(InvalidInput) as e:
        await h.store.withdraw_consent(
            "cons-2", withdrawn_at=T0 + timedelta(hours=1), reason=None, actor=ADMIN, at=T0
        )
    assert e.value.code == "in_future"
    w = await h.store.withdraw_consent(
        "cons-2", withdrawn_at=T0, reason="vill inte längre", actor=ADMIN, at=T0
    )
    assert w.withdrawn_at == T0
    assert w.withdrawn_by == ADMIN
    basis = await h.store.basis("r-1")
    assert all(c.withdrawn_at == T0 for c in basis.consents)
    assert await gate(h) is Reason.WITHDRAWN
    with pytest.raises(Conflict):
        await h.store.withdraw_consent("cons-1", withdrawn_at=T0, reason=None, actor=ADMIN, at=T0)
    assert h.changes[-1].kind is ChangeKind.CONSENT_WITHDRAWN
    assert h.changes[-1].recipient_id == "r-1"
    assert h.changes[-1].device_ids == ("cam-0001",)
    # consent given again later: a new version, in force from then
    v3 = await h.store.record_consent(
        replace(
            consent("cons-3"),
            given_at=T0 + timedelta(minutes=10),
            valid_from=T0 + timedelta(minutes=10),
        ),
        actor=ADMIN,
        at=T0 + timedelta(minutes=10),
    )
    assert v3.version == 3
    assert await gate(h) is None


async def test_consent_for_unknown_person_or_without_basis(h: Harness) -> None:
    await seeded(h)
    with pytest.raises(InvalidInput) as e:
        await h.store.record_consent(
            consent("cons-x", cohabitant_id="co-ghost"), actor=ADMIN, at=T0
        )
    assert e.value.field == "person"
    with pytest.raises(InvalidInput) as e:
        await h.store.record_consent(
            replace(consent("cons-y"), basis=Basis.OTHER_LEGAL_BASIS, basis_ref=None),
            actor=ADMIN,
            at=T0,
        )
    assert e.value.field == "basis_ref"
    await h.store.record_consent(consent("cons-z", basis=None), actor=ADMIN, at=T0)
    assert await gate(h) is Reason.NO_LEGAL_BASIS


async def test_cohabitant_needs_own_consent(h: Harness) -> None:
    await seeded(h)
    await h.store.add_cohabitant(
        Cohabitant(
            cohabitant_id="co-1", recipient_id="r-1", display_name="Bo Lindqvist", moved_in_at=T0
        ),
        actor=ADMIN,
        at=T0,
    )
    assert await gate(h) is Reason.COHABITANT_MISSING
    await h.store.record_consent(consent("cons-co", cohabitant_id="co-1"), actor=ADMIN, at=T0)
    assert await gate(h) is None
    await h.store.end_cohabitant("co-1", moved_out_at=T0 + timedelta(minutes=5), actor=ADMIN, at=T0)
    with pytest.raises(Conflict):
        await h.store.end_cohabitant("co-1", moved_out_at=T0, actor=ADMIN, at=T0)
    assert [c.kind for c in h.changes][-3:] == [
        ChangeKind.COHABITANT_ADDED,
        ChangeKind.CONSENT_RECORDED,
        ChangeKind.COHABITANT_REMOVED,
    ]


async def test_pauses(h: Harness) -> None:
    await seeded(h)
    with pytest.raises(InvalidInput) as e:
        await h.store.add_pause(
            Pause(
                pause_id="pause-0",
                recipient_id="r-1",
                starts_at=T0,
                ends_at=T0,
                source=PauseSource.HOSPITAL,
                reason=PauseReason.HOSPITAL_STAY,
            ),
            actor=ADMIN,
            at=T0,
        )
    assert e.value.field == "ends_at"
    p = await h.store.add_pause(
        Pause(
            pause_id="pause-1",
            recipient_id="r-1",
            starts_at=T0,
            ends_at=None,
            source=PauseSource.HOSPITAL,
            reason=PauseReason.HOSPITAL_STAY,
            note="Sös avd 12",
        ),
        actor=ADMIN,
        at=T0,
    )
    assert p.created_by == ADMIN
    assert await gate(h) is Reason.PAUSED
    ended = await h.store.end_pause(
        "pause-1",
        ended_at=AT_22 - timedelta(minutes=1),
        actor=ADMIN,
        at=AT_22 - timedelta(minutes=1),
    )
    assert ended.ends_at == AT_22 - timedelta(minutes=1)
    assert await gate(h) is None
    with pytest.raises(Conflict):
        await h.store.end_pause("pause-1", ended_at=AT_22, actor=ADMIN, at=AT_22)
    assert "Sös" not in str(await h.audit_actions())


async def test_binding_is_two_steps_and_names_the_recipient(h: Harness) -> None:
    await h.store.add_recipient(recipient(), actor=ADMIN, at=T0)
    await h.store.add_recipient(recipient("r-2"), actor=ADMIN, at=T0)
    await h.add_device("cam-0001")
    with pytest.raises(NotFound):
        await h.store.request_binding(
            request_id="breq-0",
            action=BindingAction.BIND,
            device_id="cam-9999",
            recipient_id="r-1",
            actor=TECH,
            at=T0,
        )
    req = await h.store.request_binding(
        request_id="breq-1",
        action=BindingAction.BIND,
        device_id="cam-0001",
        recipient_id="r-1",
        actor=TECH,
        at=T0,
    )
    assert (req.proof, req.code_hash) == (BindingProof.BUTTON, None)
    assert await h.is_quarantined("cam-0001")
    assert await h.store.basis_for_device("cam-0001", T0) is None
    assert await h.store.record_bind_button("cam-0001", T0 + timedelta(minutes=1))
    assert not await h.store.record_bind_button("cam-9999", T0)
    with pytest.raises(Conflict) as e:
        await h.store.confirm_binding(req.request_id, on_site("r-2"), actor=ADMIN, at=T0)
    assert (e.value.code, e.value.field) == ("recipient_mismatch", "recipient_id")
    assert await h.is_quarantined("cam-0001")
    at = T0 + timedelta(minutes=2)
    b = await h.store.confirm_binding(req.request_id, on_site(), actor=ADMIN2, at=at)
    assert (b.device_id, b.recipient_id, b.requested_by, b.bound_by, b.device_kind) == (
        "cam-0001",
        "r-1",
        TECH,
        ADMIN2,
        "camera",
    )
    assert not await h.is_quarantined("cam-0001")
    with pytest.raises(Conflict) as e:
        await h.store.confirm_binding(req.request_id, on_site(), actor=ADMIN, at=at)
    assert e.value.code == "request_closed"
    with pytest.raises(Conflict) as e:
        await h.store.request_binding(
            request_id="breq-2",
            action=BindingAction.BIND,
            device_id="cam-0001",
            recipient_id="r-2",
            actor=TECH,
            at=at,
        )
    assert e.value.code == "device_bound"
    assert h.changes[-1].kind is ChangeKind.DEVICE_BOUND
    # unbinding: also two steps and four eyes (no proof: the device may be gone); an expired
    # request cannot be confirmed
    t1 = T0 + timedelta(hours=1)
    old = await h.store.request_binding(
        request_id="breq-3",
        action=BindingAction.UNBIND,
        device_id="cam-0001",
        recipient_id=None,
        actor=ADMIN,
        at=t1,
    )
    assert (old.recipient_id, old.proof) == ("r-1", BindingProof.NONE)
    with pytest.raises(Conflict) as e:
        await h.store.confirm_binding(
            "breq-3", BindingConfirmation("r-1"), actor=ADMIN2, at=t1 + timedelta(hours=1)
        )
    assert e.value.code == "request_expired"
    await h.store.request_binding(
        request_id="breq-4",
        action=BindingAction.UNBIND,
        device_id="cam-0001",
        recipient_id="r-1",
        actor=ADMIN,
        at=t1,
    )
    with pytest.raises(Conflict):
        await h.store.confirm_binding("breq-3", BindingConfirmation("r-1"), actor=ADMIN2, at=t1)
    with pytest.raises(Conflict) as e:
        await h.store.confirm_binding("breq-4", BindingConfirmation("r-1"), actor=ADMIN, at=t1)
    assert e.value.code == "four_eyes"
    u = await h.store.confirm_binding("breq-4", BindingConfirmation("r-1"), actor=ADMIN2, at=t1)
    assert u.unbound_at == t1
    assert await h.is_quarantined("cam-0001")
    assert [c.kind for c in h.changes][-1] is ChangeKind.DEVICE_UNBOUND
    assert h.changes[-1].device_ids == ("cam-0001",)
    basis = await h.store.basis_for_device("cam-0001", t1)
    assert (
        rules.decide(basis, device_id="cam-0001", purpose=Purpose.CAMERA_CHECK, at=t1).reason
        is Reason.DEVICE_NOT_BOUND
    )


async def test_the_requester_cannot_confirm_and_nothing_changes(h: Harness) -> None:
    await h.store.add_recipient(recipient(), actor=ADMIN, at=T0)
    await h.add_device("cam-0001")
    req = await h.store.request_binding(
        request_id="breq-1",
        action=BindingAction.BIND,
        device_id="cam-0001",
        recipient_id="r-1",
        actor=ADMIN,
        at=T0,
    )
    await h.store.record_bind_button("cam-0001", T0)
    before = await h.audit_actions()
    with pytest.raises(Conflict) as e:
        await h.store.confirm_binding(req.request_id, on_site(), actor=ADMIN, at=T0)
    assert (e.value.code, e.value.http_status) == ("four_eyes", 409)
    assert await h.audit_actions() == before
    assert await h.is_quarantined("cam-0001")
    (still,) = await h.store.binding_requests(device_id="cam-0001")
    assert still.is_open
    await h.store.confirm_binding(req.request_id, on_site(), actor=ADMIN2, at=T0)


async def test_a_camera_needs_its_own_button_pressed_after_the_request(h: Harness) -> None:
    await h.store.add_recipient(recipient(), actor=ADMIN, at=T0)
    await h.add_device("cam-0001")
    await h.add_device("cam-0002")
    await h.store.record_bind_button("cam-0001", T0 - timedelta(seconds=5))  # before the ask
    req = await h.store.request_binding(
        request_id="breq-1",
        action=BindingAction.BIND,
        device_id="cam-0001",
        recipient_id="r-1",
        actor=TECH,
        at=T0,
    )
    (listed,) = await h.store.binding_requests(device_id="cam-0001")
    assert listed.button_pressed_at is None  # a press before the request is not shown
    at = T0 + timedelta(minutes=3)

    async def refused() -> str:
        with pytest.raises(InvalidInput) as e:
            await h.store.confirm_binding(req.request_id, on_site(), actor=ADMIN, at=at)
        assert (e.value.code, e.value.http_status) == ("device_proof", 422)
        assert await h.is_quarantined("cam-0001")
        return str(e.value)

    assert "before the request" in await refused()
    await h.store.record_bind_button("cam-0002", T0 + timedelta(minutes=1))  # the wrong camera
    assert "before the request" in await refused()
    await h.store.record_bind_button("cam-0001", T0 + timedelta(minutes=2))
    (listed,) = await h.store.binding_requests(device_id="cam-0001")
    assert listed.button_pressed_at == T0 + timedelta(minutes=2)
    with pytest.raises(InvalidInput) as e:  # right device, wrong details
        await h.store.confirm_binding(
            req.request_id,
            BindingConfirmation("r-1", name="Karin Berg", address="Storgatan 1"),
            actor=ADMIN,
            at=at,
        )
    assert (e.value.code, e.value.field) == ("details_mismatch", "name")
    b = await h.store.confirm_binding(req.request_id, on_site(), actor=ADMIN, at=at)
    assert b.bound_by == ADMIN
    assert not await h.is_quarantined("cam-0001")


async def test_a_video_phone_needs_its_code_and_wrong_codes_are_limited(h: Harness) -> None:
    await h.store.add_recipient(recipient(), actor=ADMIN, at=T0)
    await h.add_device("phone-0001", "video_phone")
    with pytest.raises(InvalidInput) as e:  # a phone's request needs a code to send it
        await h.store.request_binding(
            request_id="breq-0",
            action=BindingAction.BIND,
            device_id="phone-0001",
            recipient_id="r-1",
            actor=TECH,
            at=T0,
        )
    assert e.value.field == "code"
    req = await h.store.request_binding(
        request_id="breq-1",
        action=BindingAction.BIND,
        device_id="phone-0001",
        recipient_id="r-1",
        actor=TECH,
        at=T0,
        code="305118",
    )
    assert req.proof is BindingProof.CODE
    assert req.code_hash == rules.bind_code_hash("breq-1", "305118")
    assert req.code_expires_at == T0 + rules.PROOF_WINDOW
    before = await h.audit_actions()
    for left in range(rules.MAX_CODE_ATTEMPTS - 1, 0, -1):
        with pytest.raises(InvalidInput) as e:
            await h.store.confirm_binding(
                req.request_id, on_site(code="000000"), actor=ADMIN, at=T0
            )
        assert (e.value.code, e.value.field) == ("device_proof", "code")
        (listed,) = await h.store.binding_requests(device_id="phone-0001")
        assert listed.code_attempts == rules.MAX_CODE_ATTEMPTS - left  # counted, committed
        assert listed.is_open
    # each wrong code is audited (who typed it, for which request), nothing else changed
    assert (await h.audit_actions())[len(before) :] == ["binding.code_refused"] * 4
    assert await h.is_quarantined("phone-0001")
    with pytest.raises(InvalidInput) as e:  # the fifth wrong code voids the request
        await h.store.confirm_binding(req.request_id, on_site(code="000001"), actor=ADMIN, at=T0)
    (listed,) = await h.store.binding_requests(device_id="phone-0001")
    assert not listed.is_open
    with pytest.raises(Conflict) as e2:  # even the right code: make a new request
        await h.store.confirm_binding(req.request_id, on_site(code="305118"), actor=ADMIN, at=T0)
    assert e2.value.code == "request_closed"
    again = await h.store.request_binding(
        request_id="breq-2",
        action=BindingAction.BIND,
        device_id="phone-0001",
        recipient_id="r-1",
        actor=TECH,
        at=T0,
        code="771204",
    )
    with pytest.raises(InvalidInput) as e:  # the code has expired (the request has not)
        await h.store.confirm_binding(
            again.request_id, on_site(code="771204"), actor=ADMIN, at=T0 + rules.PROOF_WINDOW
        )
    assert "expired" in str(e.value)
    at = T0 + timedelta(minutes=4)
    b = await h.store.confirm_binding(again.request_id, on_site(code="771204"), actor=ADMIN, at=at)
    assert (b.device_id, b.device_kind, b.requested_by, b.bound_by) == (
        "phone-0001",
        "video_phone",
        TECH,
        ADMIN,
    )
    assert not await h.is_quarantined("phone-0001")


async def test_seeding_binds_at_once_as_the_system(h: Harness) -> None:
    await h.store.add_recipient(recipient(), actor=ADMIN, at=T0)
    await h.add_device("cam-0001")
    b = await h.store.seed_binding(device_id="cam-0001", recipient_id="r-1", actor="system", at=T0)
    assert (b.requested_by, b.bound_by, b.device_kind) == ("system", "system", "camera")
    assert not await h.is_quarantined("cam-0001")
    assert (await h.audit_actions())[-1] == "binding.seeded"
    assert h.changes[-1].kind is ChangeKind.DEVICE_BOUND
    with pytest.raises(Conflict):
        await h.store.seed_binding(device_id="cam-0001", recipient_id="r-1", actor="system", at=T0)


async def test_behaviour_suspends_until_reverified(h: Harness) -> None:
    await seeded(h)
    t = AT_22
    first = await h.store.record_device_event(
        device_id="cam-0001", event_type=BehaviourEvent.PRIVACY_SWITCH, at=t, threshold=2
    )
    assert first is None
    assert await gate(h, t) is None
    s = await h.store.record_device_event(
        device_id="cam-0001",
        event_type=BehaviourEvent.TAMPER,
        at=t + timedelta(seconds=1),
        threshold=2,
    )
    assert s is not None
    assert (s.event_count, s.event_type, s.recipient_id) == (2, BehaviourEvent.TAMPER, "r-1")
    assert await gate(h, t + timedelta(seconds=2)) is Reason.SUSPENDED
    assert h.changes[-1].kind is ChangeKind.SUSPENDED
    # further events while suspended start nothing new
    assert (
        await h.store.record_device_event(
            device_id="cam-0001",
            event_type=BehaviourEvent.UNPLUGGED,
            at=t + timedelta(seconds=3),
            threshold=2,
        )
        is None
    )
    record, lifted = await h.store.reverify(
        "r-1",
        people=[asked("r-1", t + timedelta(seconds=3))],
        actor=ADMIN,
        at=t + timedelta(seconds=4),
    )
    assert [x.lifted_by for x in lifted] == [ADMIN]
    assert record.outcome is ReverifyOutcome.LIFTED
    assert record.suspension_ids == (s.suspension_id,)
    assert await gate(h, t + timedelta(seconds=5)) is None
    with pytest.raises(Conflict):
        await h.store.reverify(
            "r-1", people=[asked("r-1", t)], actor=ADMIN, at=t + timedelta(seconds=5)
        )
    # the count starts again after re-verification
    assert (
        await h.store.record_device_event(
            device_id="cam-0001",
            event_type=BehaviourEvent.PRIVACY_SWITCH,
            at=t + timedelta(seconds=6),
            threshold=2,
        )
        is None
    )
    # an unbound device's events are ignored
    await h.add_device("cam-0002")
    assert (
        await h.store.record_device_event(
            device_id="cam-0002", event_type=BehaviourEvent.TAMPER, at=t, threshold=1
        )
        is None
    )
    actions = await h.audit_actions()
    assert actions.count("device.behaviour_event") == 4
    assert actions.count("supervision.suspended") == 1
    assert actions.count("consent.reverified") == 1


async def test_removal_suspends_at_once_and_covering_when_repeated(h: Harness) -> None:
    await seeded(h)
    t = AT_22
    s = await h.store.record_device_event(
        device_id="cam-0001", event_type=BehaviourEvent.UNPLUGGED, at=t, threshold=5
    )
    assert s is not None
    assert s.event_type is BehaviourEvent.UNPLUGGED
    assert await gate(h, t + timedelta(seconds=1)) is Reason.SUSPENDED
    await h.store.reverify(
        "r-1", people=[asked("r-1", t)], actor=ADMIN, at=t + timedelta(seconds=2)
    )
    assert await gate(h, t + timedelta(seconds=3)) is None
    # covered verdicts: the third within a week suspends (an old one has dropped out)
    day = timedelta(days=1)
    covered = BehaviourEvent.COVERED
    times = [t + timedelta(seconds=4), t + 8 * day, t + 9 * day, t + 10 * day]
    found = [
        await h.store.record_device_event(
            device_id="cam-0001", event_type=covered, at=at, threshold=1
        )
        for at in times
    ]
    assert found[:3] == [None, None, None]
    s = found[3]
    assert s is not None
    assert (s.event_type, s.event_count) == (covered, 3)
    assert h.changes[-1].kind is ChangeKind.SUSPENDED
    assert h.changes[-1].device_ids == ("cam-0001",)


def asked(
    person_id: str,
    at: datetime,
    camera: ReverifyAnswer = ReverifyAnswer.CONSENTS,
    how: ReverifyHow = ReverifyHow.VISIT,
    **more: ReverifyAnswer,
) -> PersonAsked:
    answers = ((Purpose.CAMERA_CHECK, camera), *((Purpose(k), v) for k, v in more.items()))
    return PersonAsked(person_id, how, at, tuple(answers))


async def test_a_camera_offline_at_two_consecutive_checks_suspends(h: Harness) -> None:
    """Hard rule 8 (issue 18): offline at two agreed checks in a row is a possible withdrawal;
    offline at two checks with one between where the camera was there is not."""
    await seeded(h)
    off = BehaviourEvent.OFFLINE_AT_CHECK
    c1, c2, c3, c4 = (AT_22 + timedelta(hours=k) for k in range(4))
    agreed = [c1, c2, c3, c4]

    async def offline(at: datetime) -> Suspension | None:
        return await h.store.record_device_event(
            device_id="cam-0001", event_type=off, at=at, threshold=1, agreed_checks=agreed
        )

    assert await offline(c1) is None
    assert await offline(c3) is None  # c2 found the camera there: no run
    assert await gate(h, c1) is None
    # c3, c4 in a row; c4 taken from the camera before its time (it was gone): the suspension
    # starts when that was found, not at c4's agreed instant
    found_at = c3 + timedelta(minutes=20)
    s = await h.store.record_device_event(
        device_id="cam-0001",
        event_type=off,
        at=c4,
        threshold=1,
        agreed_checks=agreed,
        observed_at=found_at,
    )
    assert s is not None
    assert s.started_at == found_at
    assert await gate(h, found_at + timedelta(seconds=1)) is Reason.SUSPENDED
    assert (s.event_type, s.event_count, s.reason) == (off, 2, SuspensionReason.POSSIBLE_WITHDRAWAL)
    assert h.changes[-1].kind is ChangeKind.SUSPENDED


async def test_offline_checks_recorded_out_of_order_still_count(h: Harness) -> None:
    await seeded(h)
    c1, c2 = AT_22, AT_22 + timedelta(minutes=30)
    off = BehaviourEvent.OFFLINE_AT_CHECK
    first = await h.store.record_device_event(
        device_id="cam-0001", event_type=off, at=c2, threshold=1, agreed_checks=[c1, c2]
    )
    assert first is None
    s = await h.store.record_device_event(
        device_id="cam-0001", event_type=off, at=c1, threshold=1, agreed_checks=[c1, c2]
    )
    assert s is not None
    assert s.event_count == 2


async def test_a_refusing_cohabitant_ends_supervision_at_once(h: Harness) -> None:
    await seeded(h)
    t = AT_22
    await h.store.add_cohabitant(
        Cohabitant("co-1", "r-1", "Sven", moved_in_at=T0 - timedelta(days=3)), actor=ADMIN, at=T0
    )
    await h.store.record_consent(consent("cons-co", cohabitant_id="co-1"), actor=ADMIN, at=T0)
    assert await gate(h, t) is None
    s = await h.store.record_device_event(
        device_id="cam-0001", event_type=BehaviourEvent.TAMPER, at=t, threshold=1
    )
    assert s is not None
    before = len(h.changes)
    record, lifted = await h.store.reverify(
        "r-1",
        people=[
            asked("r-1", t + timedelta(minutes=1)),
            asked("co-1", t + timedelta(minutes=1), ReverifyAnswer.REFUSES, ReverifyHow.PHONE),
        ],
        actor=ADMIN,
        at=t + timedelta(minutes=2),
    )
    assert lifted == ()
    assert record.outcome is ReverifyOutcome.WITHDRAWN
    assert record.withdrawn_consent_ids == ("cons-co",)
    kinds = [c.kind for c in h.changes[before:]]
    assert kinds == [ChangeKind.CONSENT_WITHDRAWN]
    # still suspended, and the cohabitant's consent is gone: the gate says no either way
    assert await gate(h, t + timedelta(minutes=3)) is Reason.SUSPENDED
    basis = await h.store.basis("r-1")
    co = next(c for c in basis.consents if c.consent_id == "cons-co")
    assert co.withdrawn_at == t + timedelta(minutes=2)
    assert "consent.withdrawn" in await h.audit_actions()


async def test_bad_reverifications_change_nothing(h: Harness) -> None:
    await seeded(h)
    t = AT_22
    await h.store.add_cohabitant(
        Cohabitant("co-1", "r-1", "Sven", moved_in_at=T0 - timedelta(days=3)), actor=ADMIN, at=T0
    )
    s = await h.store.record_device_event(
        device_id="cam-0001", event_type=BehaviourEvent.UNPLUGGED, at=t, threshold=1
    )
    assert s is not None
    actions = await h.audit_actions()
    changes = len(h.changes)
    at = t + timedelta(minutes=5)
    bad: list[tuple[list[PersonAsked], str]] = [
        ([asked("r-1", t)], "person_missing"),  # the cohabitant was not asked
        ([asked("r-1", t), asked("co-1", t), asked("co-9", t)], "unknown_person"),
        ([asked("r-1", t), asked("co-1", t), asked("co-1", t)], "duplicate_person"),
        ([asked("r-1", t), asked("co-1", at + timedelta(hours=1))], "in_future"),
        ([asked("r-1", t - timedelta(hours=1)), asked("co-1", t)], "before_suspension"),
    ]
    for people, code in bad:
        with pytest.raises(InvalidInput) as e:
            await h.store.reverify("r-1", people=people, actor=ADMIN, at=at)
        assert e.value.code == code, people
    assert await h.audit_actions() == actions
    assert len(h.changes) == changes
    assert await gate(h, at) is Reason.SUSPENDED
    with pytest.raises(NotFound):
        await h.store.reverify("r-9", people=[asked("r-9", t)], actor=ADMIN, at=at)


async def test_register_lists_bindings_with_basis(h: Harness) -> None:
    await seeded(h)
    await h.store.record_consent(consent("cons-m", Purpose.MOTION_ANALYSIS), actor=ADMIN, at=T0)
    rows = await h.store.register(actor=ADMIN, at=AT_22)
    assert len(rows) == 1
    row = rows[0]
    assert (row.device_id, row.device_kind, row.recipient_id, row.location) == (
        "cam-0001",
        "camera",
        "r-1",
        "Storgatan 1",
    )
    assert row.purposes == ("camera_check", "motion_analysis")
    assert row.legal_basis == "informed_consent"
    assert row.decision_ref == "SN-2026-0042"
    assert (row.start, row.end) == (T0, None)
    assert (await h.audit_actions())[-1] == "register.exported"


async def test_bases_for_planning(h: Harness) -> None:
    await seeded(h)
    await h.store.add_recipient(recipient("r-2"), actor=ADMIN, at=T0)
    bases = await h.store.bases()
    assert sorted(bases) == ["r-1", "r-2"]
    assert bases["r-1"] == await h.store.basis("r-1")
    assert list(await h.store.bases(["r-2", "r-404"])) == ["r-2"]


async def test_bases_in_parts_are_the_bases_in_order(h: Harness) -> None:
    """A night's planning reads the bases in parts (``Watchdog.plan``): joined, the parts are
    :meth:`bases` in ``recipient_id`` order, each at most the size asked; a read stopped after
    its first part leaves the store usable (the PostgreSQL read's snapshot ended)."""
    await seeded(h)
    for rid in ("r-2", "r-3", "r-4", "r-5"):
        await h.store.add_recipient(recipient(rid), actor=ADMIN, at=T0)
    every = await h.store.bases()
    for size in (1, 2, 5, 10):
        parts = [p async for p in h.store.bases_in_parts(size)]
        assert [len(p) for p in parts] == [min(size, 5 - i) for i in range(0, 5, size)]
        assert [b for p in parts for b in p] == list(every.values())
    read = h.store.bases_in_parts(2)
    assert [b.recipient_id for b in await anext(read)] == ["r-1", "r-2"]
    await read.aclose()
    assert await h.store.bases() == every
    with pytest.raises(ValueError, match="size"):
        await anext(h.store.bases_in_parts(0))


async def test_transitions_name_dated_changes_nobody_writes(h: Harness) -> None:
    """What :meth:`Gate.watch_schedule` turns into change events: a pause that starts later, a
    plan that ends later, a consent that expires, a cohabitant who moves in later."""
    await seeded(h)
    day = timedelta(days=1)
    await h.store.add_pause(
        Pause(
            pause_id="pause-1",
            recipient_id="r-1",
            starts_at=AT_22 + timedelta(hours=1),
            ends_at=AT_22 + 2 * day,
            source=PauseSource.RELATIVE,
            reason=PauseReason.TRAVEL,
        ),
        actor=ADMIN,
        at=T0,
    )
    await h.store.end_plan("plan-1", ended_at=AT_22 + 3 * day, actor=ADMIN, at=T0)
    await h.store.record_consent(
        replace(consent("cons-m", Purpose.MOTION_ANALYSIS), valid_until=AT_22 + day),
        actor=ADMIN,
        at=T0,
    )
    await h.store.add_cohabitant(
        Cohabitant("co-1", "r-1", "Sven", moved_in_at=AT_22 + timedelta(hours=2)),
        actor=ADMIN,
        at=T0,
    )
    found = await h.store.transitions(after=AT_22, until=AT_22 + 3 * day)
    assert found == [
        ("r-1", AT_22 + timedelta(hours=1)),
        ("r-1", AT_22 + timedelta(hours=2)),
        ("r-1", AT_22 + day),
        ("r-1", AT_22 + 3 * day),
    ]
    # half open: after is excluded, until included
    assert await h.store.transitions(after=AT_22 + day, until=AT_22 + 3 * day) == [
        ("r-1", AT_22 + 3 * day)
    ]
    assert await h.store.transitions(after=AT_22 + 3 * day, until=AT_22 + 9 * day) == []


async def test_a_write_that_fails_late_changes_nothing(h: Harness) -> None:
    """A write that fails after it began writing is rolled back whole, in the fake too: a
    binding request whose id exists is refused and the device's open request stays open."""
    await h.store.add_recipient(recipient(), actor=ADMIN, at=T0)
    await h.add_device("cam-0001")
    await h.add_device("cam-0002")
    for device_id in ("cam-0001", "cam-0002"):
        await h.store.request_binding(
            request_id=f"breq-{device_id}",
            action=BindingAction.BIND,
            device_id=device_id,
            recipient_id="r-1",
            actor=ADMIN,
            at=T0,
        )
    before = await h.audit_actions()
    with pytest.raises(Conflict) as e:
        await h.store.request_binding(
            request_id="breq-cam-0002",
            action=BindingAction.BIND,
            device_id="cam-0001",
            recipient_id="r-1",
            actor=ADMIN,
            at=T0 + timedelta(minutes=1),
        )
    assert (e.value.code, e.value.field) == ("duplicate", "request_id")
    found = await h.store.binding_requests(device_id="cam-0001")
    assert [(r.request_id, r.is_open) for r in found] == [("breq-cam-0001", True)]
    assert await h.audit_actions() == before


async def test_a_plan_id_is_unique_across_brukare(h: Harness) -> None:
    await h.store.add_recipient(recipient(), actor=ADMIN, at=T0)
    await h.store.add_recipient(recipient("r-2"), actor=ADMIN, at=T0)
    await h.store.add_plan(plan(), actor=ADMIN, at=T0)
    with pytest.raises(Conflict) as e:
        await h.store.add_plan(plan(rid="r-2"), actor=ADMIN, at=T0)
    assert (e.value.code, e.value.field) == ("duplicate", "plan_id")
    assert (await h.store.basis("r-2")).plans == ()
    assert [c.kind for c in h.changes] == [ChangeKind.PLAN_ADDED]


async def test_agreed_times_outside_the_round_are_refused_when_a_plan_hour_is_given(
    h: Harness,
) -> None:
    """With ``plan_hour`` (the API passes the configured one) a window outside the round is a
    422 naming it, after the plan's own checks; without it (seeding tools) no round check."""
    await h.store.add_recipient(recipient(), actor=ADMIN, at=T0)
    early = (CheckTime(time(19, 0)),)
    with pytest.raises(InvalidInput) as e:
        await h.store.add_plan(plan(checks=early), actor=ADMIN, at=T0, plan_hour=20)
    assert (e.value.field, e.value.code) == ("checks[0].at", "outside_round")
    assert "20:00-12:00" in str(e.value)
    with pytest.raises(InvalidInput) as e:  # the plan's own rules come first
        await h.store.add_plan(plan(checks=()), actor=ADMIN, at=T0, plan_hour=20)
    assert (e.value.field, e.value.code) == ("checks", "check_count")
    assert (await h.store.basis("r-1")).plans == ()
    assert await h.audit_actions() == ["recipient.created"]
    assert h.changes == []
    await h.store.add_plan(plan(checks=(CheckTime(time(21, 0)),)), actor=ADMIN, at=T0, plan_hour=20)
    await h.store.end_plan("plan-1", ended_at=T0, actor=ADMIN, at=T0)
    await h.store.add_plan(
        plan("plan-2", valid_from=T0 + timedelta(days=1), checks=early), actor=ADMIN, at=T0
    )
    assert [p.plan_id for p in (await h.store.basis("r-1")).plans] == ["plan-1", "plan-2"]
