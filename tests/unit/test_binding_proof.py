"""consent.rules.confirm_refusal: four eyes and proof from the device (issue 17), decided purely."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from consent import rules
from consent.model import (
    BindingAction,
    BindingConfirmation,
    BindingProof,
    BindingRequest,
    ButtonPress,
    CareRecipient,
)

T0 = datetime(2026, 1, 12, 20, 0, tzinfo=UTC)
ASTRID = CareRecipient("r-1", display_name="Astrid Lindqvist", home="Storgatan 1, lgh 1101")


def request(proof: BindingProof, **kw: object) -> BindingRequest:
    base = BindingRequest(
        request_id="breq-1",
        action=BindingAction.BIND,
        device_id="cam-0001" if proof is BindingProof.BUTTON else "phone-0001",
        recipient_id="r-1",
        requested_by="staff-tech01",
        requested_at=T0,
        expires_at=T0 + timedelta(minutes=15),
        proof=proof,
    )
    if proof is BindingProof.CODE:
        base = replace(
            base,
            code_hash=rules.bind_code_hash("breq-1", "482913"),
            code_expires_at=T0 + rules.PROOF_WINDOW,
        )
    return replace(base, **kw)  # type: ignore[arg-type]


def typed(**kw: str | None) -> BindingConfirmation:
    fields: dict[str, str | None] = {
        "name": "Astrid Lindqvist",
        "address": "Storgatan 1",
        "code": None,
    } | kw
    return BindingConfirmation("r-1", **fields)  # type: ignore[arg-type]


def decide(
    req: BindingRequest,
    confirmation: BindingConfirmation,
    *,
    by: str = "staff-admin01",
    button: ButtonPress | None = None,
    at: datetime = T0 + timedelta(minutes=2),
) -> rules.ConfirmRefusal | None:
    return rules.confirm_refusal(
        req, confirmation, confirmer=by, recipient=ASTRID, button=button, at=at
    )


def reason(refusal: rules.ConfirmRefusal | None) -> tuple[int, str, str] | None:
    return None if refusal is None else (refusal.status, refusal.code, refusal.reason)


PRESSED = ButtonPress("cam-0001", T0 + timedelta(minutes=1))


def test_the_requester_cannot_confirm_four_eyes() -> None:
    for req, proof in (
        (request(BindingProof.CODE), typed(code="482913")),
        (request(BindingProof.BUTTON), typed()),
        (request(BindingProof.NONE, action=BindingAction.UNBIND), typed()),
    ):
        refused = decide(req, proof, by="staff-tech01", button=PRESSED)
        assert reason(refused) == (409, "four_eyes", "same_person")
        assert refused is not None
        assert not refused.counts
        assert decide(req, proof, button=PRESSED) is None  # a second person may


def test_a_video_phone_needs_its_code() -> None:
    req = request(BindingProof.CODE)
    assert decide(req, typed(code="482913")) is None
    wrong = decide(req, typed(code="482914"))
    assert reason(wrong) == (422, "device_proof", "wrong_code")
    assert wrong is not None
    assert wrong.counts
    assert not wrong.voids
    assert wrong.field == "code"
    assert "4 attempt(s) left" in wrong.message
    missing = decide(req, typed(code=None))
    assert reason(missing) == (422, "device_proof", "code_missing")
    assert missing is not None
    assert not missing.counts


def test_an_expired_code_is_refused_even_when_right() -> None:
    req = request(BindingProof.CODE)
    at = T0 + rules.PROOF_WINDOW
    assert at < req.expires_at  # the request is still open: the code alone expired
    refused = decide(req, typed(code="482913"), at=at)
    assert reason(refused) == (422, "device_proof", "code_expired")
    assert refused is not None
    assert not refused.counts


def test_attempts_are_limited_and_the_last_voids_the_request() -> None:
    req = request(BindingProof.CODE, code_attempts=rules.MAX_CODE_ATTEMPTS - 1)
    last = decide(req, typed(code="000000"))
    assert reason(last) == (422, "device_proof", "attempts_exhausted")
    assert last is not None
    assert last.counts
    assert last.voids
    spent = request(BindingProof.CODE, code_attempts=rules.MAX_CODE_ATTEMPTS)
    # even the right code is refused once the attempts are spent
    assert reason(decide(spent, typed(code="482913"))) == (
        422,
        "device_proof",
        "attempts_exhausted",
    )


def test_the_code_is_salted_with_its_request() -> None:
    assert rules.bind_code_hash("breq-1", "482913") != rules.bind_code_hash("breq-2", "482913")
    other = request(BindingProof.CODE, code_hash=rules.bind_code_hash("breq-2", "482913"))
    assert reason(decide(other, typed(code="482913"))) == (422, "device_proof", "wrong_code")


@pytest.mark.parametrize(
    ("button", "expected"),
    [
        (None, "no_button"),
        (ButtonPress("cam-0002", T0 + timedelta(minutes=1)), "no_button"),  # another device
        (ButtonPress("cam-0001", T0 - timedelta(seconds=1)), "button_before_request"),
        (ButtonPress("cam-0001", T0 + timedelta(minutes=10, seconds=1)), "button_too_late"),
    ],
)
def test_a_camera_needs_its_own_button_after_the_request(
    button: ButtonPress | None, expected: str
) -> None:
    at = T0 + timedelta(minutes=12)
    refused = decide(request(BindingProof.BUTTON), typed(), button=button, at=at)
    assert reason(refused) == (422, "device_proof", expected)
    assert refused is not None
    assert not refused.counts


def test_a_camera_button_within_ten_minutes_of_the_request_is_proof() -> None:
    req = request(BindingProof.BUTTON)
    for offset in (timedelta(0), timedelta(minutes=5), rules.PROOF_WINDOW):
        press = ButtonPress("cam-0001", T0 + offset)
        assert decide(req, typed(), button=press, at=T0 + timedelta(minutes=11)) is None


def test_the_details_are_compared_with_the_record() -> None:
    req = request(BindingProof.BUTTON)
    for name in ("Astrid Lindqvist", "  astrid   LINDQVIST ", "Lindqvist"):
        assert decide(req, typed(name=name), button=PRESSED) is None, name
    for address in ("Storgatan 1", "storgatan 1, LGH 1101", "Storgatan  1."):
        assert decide(req, typed(address=address), button=PRESSED) is None, address
    for bad in ({"name": "Astrid"}, {"name": ""}, {"name": "Lindqvist Astrid"}):
        refused = decide(req, typed(**bad), button=PRESSED)
        assert reason(refused) == (422, "details_mismatch", "name"), bad
    refused = decide(req, typed(address="Storgatan 11"), button=PRESSED)
    assert reason(refused) == (422, "details_mismatch", "address")
    assert refused is not None
    assert refused.field == "address"
    # no address on record: the name alone is compared
    homeless = replace(ASTRID, home="")
    assert (
        rules.confirm_refusal(
            req,
            typed(address=""),
            confirmer="staff-admin01",
            recipient=homeless,
            button=PRESSED,
            at=T0 + timedelta(minutes=2),
        )
        is None
    )


def test_the_proof_comes_before_the_details_and_four_eyes_before_both() -> None:
    req = request(BindingProof.CODE)
    both_wrong = typed(code="111111", name="Någon Annan")
    assert reason(decide(req, both_wrong)) == (422, "device_proof", "wrong_code")
    assert reason(decide(req, both_wrong, by="staff-tech01")) == (409, "four_eyes", "same_person")
    assert reason(decide(req, typed(code="482913", name="Fel"))) == (
        422,
        "details_mismatch",
        "name",
    )


def test_closed_and_expired_requests_and_another_brukare() -> None:
    req = request(BindingProof.BUTTON)
    assert reason(decide(replace(req, cancelled_at=T0), typed(), button=PRESSED)) == (
        409,
        "request_closed",
        "closed",
    )
    late = decide(req, typed(), button=PRESSED, at=req.expires_at)
    assert reason(late) == (409, "request_expired", "expired")
    other = replace(typed(), recipient_id="r-2")
    assert reason(decide(req, other, button=PRESSED)) == (
        409,
        "recipient_mismatch",
        "recipient_mismatch",
    )


def test_an_unbinding_needs_four_eyes_only() -> None:
    req = request(BindingProof.NONE, action=BindingAction.UNBIND)
    assert decide(req, BindingConfirmation("r-1")) is None


def test_the_proof_a_request_needs() -> None:
    assert rules.proof_for(BindingAction.BIND, "video_phone") is BindingProof.CODE
    assert rules.proof_for(BindingAction.BIND, "camera") is BindingProof.BUTTON
    assert rules.proof_for(BindingAction.BIND, None) is BindingProof.BUTTON
    assert rules.proof_for(BindingAction.UNBIND, "video_phone") is BindingProof.NONE
    bind_without_proof = request(BindingProof.NONE)
    assert reason(decide(bind_without_proof, typed())) == (422, "device_proof", "no_proof")
