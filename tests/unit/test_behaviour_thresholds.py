"""Hard rule 8's thresholds (issue 18): the camera offline at consecutive agreed checks, health
flags that turned on, and the re-verification record's rules. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent import rules
from consent.model import (
    BehaviourEvent,
    CareRecipient,
    Cohabitant,
    Consent,
    PersonAsked,
    Purpose,
    RecipientBasis,
    ReverifyAnswer,
    ReverifyHow,
    ReverifyOutcome,
    Suspension,
)
from devices import registry
from devices.topics import Health, Shutter

AT = datetime(2026, 1, 12, 22, 0, tzinfo=UTC)
OFF = BehaviourEvent.OFFLINE_AT_CHECK


def naive_suspends(found_offline: list[bool], k: int) -> bool:
    """Offline at two consecutive agreed checks, read straight from the rule: do the checks up to
    and including ``k`` (in agreed order) and those after it hold two offline in a row that
    include ``k``?"""
    if not found_offline[k]:
        return False
    before = k > 0 and found_offline[k - 1]
    after = k + 1 < len(found_offline) and found_offline[k + 1]
    return before or after


@settings(max_examples=300, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=12), st.data())
def test_offline_at_two_consecutive_checks_agrees_with_a_naive_model(
    found_offline: list[bool], data: st.DataObject
) -> None:
    checks = [AT + timedelta(minutes=45 * i) for i in range(len(found_offline))]
    recent = [(OFF, t) for t, off in zip(checks, found_offline, strict=True) if off]
    k = data.draw(st.integers(0, len(checks) - 1))
    got = rules.should_suspend(
        event_type=OFF,
        recent=recent,
        at=checks[k],
        threshold=1,
        is_suspended=False,
        agreed_checks=checks,
    )
    assert got is naive_suspends(found_offline, k)


def test_one_offline_check_is_not_enough_and_a_check_between_breaks_the_run() -> None:
    c = [AT + timedelta(hours=i) for i in range(3)]

    def suspends(recent: list[tuple[BehaviourEvent, datetime]], at: datetime) -> bool:
        return rules.should_suspend(
            event_type=OFF, recent=recent, at=at, threshold=1, is_suspended=False, agreed_checks=c
        )

    assert not suspends([(OFF, c[0])], c[0])
    assert not suspends([(OFF, c[0]), (OFF, c[2])], c[2])
    assert suspends([(OFF, c[1]), (OFF, c[2])], c[2])
    # a run older than the window does not count
    long_ago = AT - rules.BEHAVIOUR_WINDOW - timedelta(hours=1)
    assert not rules.should_suspend(
        event_type=OFF,
        recent=[(OFF, long_ago), (OFF, AT)],
        at=AT,
        threshold=1,
        is_suspended=False,
        agreed_checks=[long_ago, AT],
    )
    # never while already suspended
    assert not rules.should_suspend(
        event_type=OFF,
        recent=[(OFF, c[0]), (OFF, c[1])],
        at=c[1],
        threshold=1,
        is_suspended=True,
        agreed_checks=c,
    )


def test_the_thresholds_are_data() -> None:
    t = rules.THRESHOLDS
    assert (t.offline_checks_in_a_row, t.covered, t.privacy) == (2, 3, 1)
    assert BehaviourEvent.TAMPER in t.at_once
    assert BehaviourEvent.UNPLUGGED in t.at_once
    three = rules.BehaviourThresholds(offline_checks_in_a_row=3)
    c = [AT + timedelta(hours=i) for i in range(3)]
    recent = [(OFF, c[0]), (OFF, c[1])]
    for policy, expected in ((rules.THRESHOLDS, True), (three, False)):
        got = rules.should_suspend(
            event_type=OFF,
            recent=recent,
            at=c[1],
            threshold=1,
            is_suspended=False,
            agreed_checks=c,
            thresholds=policy,
        )
        assert got is expected
    with pytest.raises(ValueError, match="at least 1"):
        rules.BehaviourThresholds(covered=0)


@pytest.mark.parametrize(
    ("event", "threshold", "expected"),
    [
        (BehaviourEvent.SHUTTER_CLOSED, 1, True),  # a closed shutter: at the default, at once
        (BehaviourEvent.SHUTTER_CLOSED, 2, False),
        (BehaviourEvent.TAMPER, 5, True),  # the health flag is recorded as tamper: at once
    ],
)
def test_health_flags_count(event: BehaviourEvent, threshold: int, expected: bool) -> None:
    got = rules.should_suspend(
        event_type=event, recent=[(event, AT)], at=AT, threshold=threshold, is_suspended=False
    )
    assert got is expected


def test_a_closed_shutter_counts_with_the_privacy_switch() -> None:
    recent = [
        (BehaviourEvent.PRIVACY_SWITCH, AT - timedelta(hours=1)),
        (BehaviourEvent.SHUTTER_CLOSED, AT),
    ]
    assert rules.should_suspend(
        event_type=BehaviourEvent.SHUTTER_CLOSED,
        recent=recent,
        at=AT,
        threshold=2,
        is_suspended=False,
    )


@pytest.mark.parametrize(
    ("before", "health", "flags"),
    [
        (None, Health(uptime_s=1, shutter=Shutter.CLOSED), ("shutter_closed",)),
        ({"shutter": "open", "tamper": False}, Health(uptime_s=1, tamper=True), ("tamper",)),
        (
            {"shutter": "closed", "tamper": True},
            Health(uptime_s=1, shutter=Shutter.CLOSED, tamper=True),
            (),
        ),
        ({"shutter": "closed"}, Health(uptime_s=1, shutter=Shutter.OPEN), ()),
        (
            {"shutter": "open", "tamper": False},
            Health(uptime_s=1, shutter=Shutter.CLOSED, tamper=True),
            ("shutter_closed", "tamper"),
        ),
        ({"uptime_s": 1}, Health(uptime_s=2), ()),
    ],
)
def test_a_health_flag_counts_when_it_turns_on(
    before: dict[str, object] | None, health: Health, flags: tuple[str, ...]
) -> None:
    assert registry.health_flags_on(before, health) == flags
    for f in flags:
        BehaviourEvent(f)  # every flag is a behaviour kind


# --- the re-verification record ---------------------------------------------------------------


def basis(*, moved_out: datetime | None = None) -> RecipientBasis:
    r = CareRecipient("r-1", "Anna", "Storgatan 1")
    co = Cohabitant(
        "co-1", "r-1", "Sven", moved_in_at=AT - timedelta(days=30), moved_out_at=moved_out
    )
    mine = Consent(
        "cons-1",
        "r-1",
        None,
        Purpose.CAMERA_CHECK,
        0,
        None,
        AT - timedelta(days=9),
        AT - timedelta(days=9),
    )
    theirs = Consent(
        "cons-2",
        "r-1",
        "co-1",
        Purpose.CAMERA_CHECK,
        0,
        None,
        AT - timedelta(days=9),
        AT - timedelta(days=9),
    )
    susp = Suspension("susp-1", "r-1", "cam-1", BehaviourEvent.TAMPER, AT - timedelta(hours=1), 1)
    return RecipientBasis(
        recipient=r, cohabitants=(co,), consents=(mine, theirs), suspensions=(susp,)
    )


def ask(pid: str, answer: ReverifyAnswer = ReverifyAnswer.CONSENTS) -> PersonAsked:
    return PersonAsked(pid, ReverifyHow.VISIT, AT, ((Purpose.CAMERA_CHECK, answer),))


def test_everyone_living_there_must_be_asked() -> None:
    b = basis()
    assert rules.people_living_there(b, AT) == ("r-1", "co-1")
    assert rules.check_reverification(b, [ask("r-1"), ask("co-1")], AT) == []
    codes = [p.code for p in rules.check_reverification(b, [ask("r-1")], AT)]
    assert codes == ["person_missing"]
    # a cohabitant who moved out is no longer asked, and is not someone to ask
    gone = basis(moved_out=AT - timedelta(days=1))
    assert rules.people_living_there(gone, AT) == ("r-1",)
    assert rules.check_reverification(gone, [ask("r-1")], AT) == []
    codes = [p.code for p in rules.check_reverification(gone, [ask("r-1"), ask("co-1")], AT)]
    assert codes == ["unknown_person"]
    no_camera = PersonAsked(
        "r-1", ReverifyHow.PHONE, AT, ((Purpose.VIDEO_CALL, ReverifyAnswer.CONSENTS),)
    )
    codes = [p.code for p in rules.check_reverification(gone, [no_camera], AT)]
    assert codes == ["answer_missing"]


def test_a_refusal_withdraws_that_persons_consent_and_keeps_the_suspension() -> None:
    b = basis()
    people = [ask("r-1"), ask("co-1", ReverifyAnswer.REFUSES)]
    assert rules.reverification_outcome(people) is ReverifyOutcome.WITHDRAWN
    refused = rules.refusals(people)
    assert refused == [("co-1", Purpose.CAMERA_CHECK)]
    assert [c.consent_id for c in rules.consents_to_withdraw(b, refused, AT)] == ["cons-2"]
    assert rules.reverification_outcome([ask("r-1"), ask("co-1")]) is ReverifyOutcome.LIFTED
    # refusing a purpose the person never consented to withdraws nothing
    assert rules.consents_to_withdraw(b, [("co-1", Purpose.VIDEO_CALL)], AT) == []
