"""The gate (pure): every reason, the order of reasons, both DST nights, behaviour policy, and a
property test against a deliberately naive model written without the module's helpers."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent import rules
from consent.errors import StoreUnavailable
from consent.model import (
    Basis,
    BehaviourEvent,
    Binding,
    CarePlan,
    CareRecipient,
    CheckTime,
    Cohabitant,
    Consent,
    Pause,
    PauseReason,
    PauseSource,
    Purpose,
    Reason,
    RecipientBasis,
    Suspension,
    TimeWindow,
)
from kernel import values

STHLM = ZoneInfo("Europe/Stockholm")
LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)
DEVICE = "cam-0001"
AT_22 = datetime(2026, 1, 12, 21, 0, tzinfo=UTC)  # 22:00 in Stockholm


def consent(
    purpose: Purpose, person: str | None = None, version: int = 1, **over: object
) -> Consent:
    c = Consent(
        consent_id=f"c-{purpose.value}-{person}-{version}",
        recipient_id="r-1",
        cohabitant_id=person,
        purpose=purpose,
        version=version,
        basis=Basis.INFORMED_CONSENT,
        informed_by="staff-1",
        informed_how="samtal",
        given_at=LONG_AGO,
        valid_from=LONG_AGO,
    )
    return dataclasses.replace(c, **over)  # type: ignore[arg-type]


def plan(*checks: str, **over: object) -> CarePlan:
    p = CarePlan(
        plan_id="plan-1",
        recipient_id="r-1",
        decision_ref="SN-1",
        valid_from=LONG_AGO,
        checks=tuple(CheckTime(time.fromisoformat(c), 15) for c in checks or ("22:00",)),
    )
    return dataclasses.replace(p, **over)  # type: ignore[arg-type]


def basis(**over: object) -> RecipientBasis:
    """Everything in order: camera checks allowed at 22:00 local, every purpose consented."""
    b = RecipientBasis(
        recipient=CareRecipient(recipient_id="r-1", display_name="Test"),
        plans=(plan(),),
        consents=tuple(consent(p) for p in Purpose),
        bindings=(Binding("b-1", DEVICE, "r-1", LONG_AGO, "staff-1", "staff-2"),),
    )
    return dataclasses.replace(b, **over)  # type: ignore[arg-type]


def reason(
    b: RecipientBasis | None, at: datetime = AT_22, p: Purpose = Purpose.CAMERA_CHECK
) -> Reason | None:
    return rules.decide(b, device_id=DEVICE, purpose=p, at=at).reason


COHAB = Cohabitant("co-1", "r-1", "Sambo", moved_in_at=LONG_AGO)
PAUSE = Pause(
    "p-1", "r-1", AT_22 - timedelta(hours=1), None, PauseSource.HOSPITAL, PauseReason.HOSPITAL_STAY
)
SUSP = Suspension("s-1", "r-1", DEVICE, BehaviourEvent.TAMPER, AT_22 - timedelta(hours=1), 1)


def without(purpose: Purpose) -> tuple[Consent, ...]:
    return tuple(consent(p) for p in Purpose if p is not purpose)


@pytest.mark.parametrize(
    ("name", "b", "at", "expected"),
    [
        ("all in order", basis(), AT_22, None),
        ("never bound", None, AT_22, Reason.DEVICE_NOT_BOUND),
        ("bound elsewhere", basis(bindings=()), AT_22, Reason.DEVICE_NOT_BOUND),
        (
            "unbound",
            basis(
                bindings=(
                    Binding(
                        "b-1",
                        DEVICE,
                        "r-1",
                        LONG_AGO,
                        "s",
                        "s",
                        unbound_at=AT_22 - timedelta(seconds=1),
                    ),
                )
            ),
            AT_22,
            Reason.DEVICE_NOT_BOUND,
        ),
        ("suspended", basis(suspensions=(SUSP,)), AT_22, Reason.SUSPENDED),
        ("no plan", basis(plans=()), AT_22, Reason.PLAN_INACTIVE),
        (
            "plan ended",
            basis(plans=(plan(ended_at=AT_22 - timedelta(minutes=1)),)),
            AT_22,
            Reason.PLAN_INACTIVE,
        ),
        (
            "plan not yet valid",
            basis(plans=(plan(valid_from=AT_22 + timedelta(days=1)),)),
            AT_22,
            Reason.PLAN_INACTIVE,
        ),
        ("no consent", basis(consents=without(Purpose.CAMERA_CHECK)), AT_22, Reason.NO_CONSENT),
        (
            "withdrawn",
            basis(
                consents=(consent(Purpose.CAMERA_CHECK, withdrawn_at=AT_22 - timedelta(seconds=1)),)
            ),
            AT_22,
            Reason.WITHDRAWN,
        ),
        (
            "withdrawal takes effect at its instant",
            basis(consents=(consent(Purpose.CAMERA_CHECK, withdrawn_at=AT_22),)),
            AT_22,
            Reason.WITHDRAWN,
        ),
        (
            "no legal basis",
            basis(consents=(consent(Purpose.CAMERA_CHECK, basis=None),)),
            AT_22,
            Reason.NO_LEGAL_BASIS,
        ),
        (
            "other basis without its reference",
            basis(consents=(consent(Purpose.CAMERA_CHECK, basis=Basis.OTHER_LEGAL_BASIS),)),
            AT_22,
            Reason.NO_LEGAL_BASIS,
        ),
        (
            "other basis with its reference",
            basis(
                consents=(
                    consent(
                        Purpose.CAMERA_CHECK, basis=Basis.OTHER_LEGAL_BASIS, basis_ref="LSS 9 §"
                    ),
                )
            ),
            AT_22,
            None,
        ),
        (
            "expired",
            basis(consents=(consent(Purpose.CAMERA_CHECK, valid_until=AT_22),)),
            AT_22,
            Reason.EXPIRED,
        ),
        (
            "outside the consent's own window",
            basis(
                consents=(consent(Purpose.CAMERA_CHECK, windows=(TimeWindow(time(23), time(6)),)),)
            ),
            AT_22,
            Reason.OUTSIDE_WINDOW,
        ),
        (
            "cohabitant without consent",
            basis(cohabitants=(COHAB,)),
            AT_22,
            Reason.COHABITANT_MISSING,
        ),
        (
            "cohabitant consented",
            basis(
                cohabitants=(COHAB,),
                consents=(consent(Purpose.CAMERA_CHECK), consent(Purpose.CAMERA_CHECK, "co-1")),
            ),
            AT_22,
            None,
        ),
        (
            "cohabitant withdrew",
            basis(
                cohabitants=(COHAB,),
                consents=(
                    consent(Purpose.CAMERA_CHECK),
                    consent(Purpose.CAMERA_CHECK, "co-1", withdrawn_at=AT_22 - timedelta(hours=1)),
                ),
            ),
            AT_22,
            Reason.WITHDRAWN,
        ),
        (
            "cohabitant moved out",
            basis(
                cohabitants=(dataclasses.replace(COHAB, moved_out_at=AT_22 - timedelta(days=1)),)
            ),
            AT_22,
            None,
        ),
        ("paused", basis(pauses=(PAUSE,)), AT_22, Reason.PAUSED),
        ("pause over", basis(pauses=(dataclasses.replace(PAUSE, ends_at=AT_22),)), AT_22, None),
        (
            "outside the agreed window",
            basis(),
            AT_22 + timedelta(minutes=15),
            Reason.OUTSIDE_WINDOW,
        ),
        ("window start is inside", basis(), AT_22 - timedelta(minutes=15), None),
        (
            "a newer version replaces a withdrawn-free older one",
            basis(
                consents=(
                    consent(Purpose.CAMERA_CHECK),
                    consent(
                        Purpose.CAMERA_CHECK,
                        version=2,
                        basis=None,
                        valid_from=AT_22 - timedelta(days=1),
                    ),
                )
            ),
            AT_22,
            Reason.NO_LEGAL_BASIS,
        ),
        (
            "a future version is not yet in force",
            basis(
                consents=(
                    consent(Purpose.CAMERA_CHECK),
                    consent(
                        Purpose.CAMERA_CHECK,
                        version=2,
                        basis=None,
                        valid_from=AT_22 + timedelta(days=1),
                    ),
                )
            ),
            AT_22,
            None,
        ),
        (
            "reasons in order: suspended before no consent",
            basis(suspensions=(SUSP,), consents=()),
            AT_22,
            Reason.SUSPENDED,
        ),
        (
            "reasons in order: consent before pause before window",
            basis(consents=(), pauses=(PAUSE,)),
            AT_22 + timedelta(hours=3),
            Reason.NO_CONSENT,
        ),
    ],
)
def test_camera_check_reasons(
    name: str, b: RecipientBasis | None, at: datetime, expected: Reason | None
) -> None:
    assert reason(b, at) is expected, name


def test_motion_analysis_needs_its_own_consent_and_the_camera_consent() -> None:
    """Hard rule 3: automated analysis is processing too."""
    assert reason(basis(), p=Purpose.MOTION_ANALYSIS) is None
    assert (
        reason(basis(consents=without(Purpose.MOTION_ANALYSIS)), p=Purpose.MOTION_ANALYSIS)
        is Reason.NO_CONSENT
    )
    assert (
        reason(basis(consents=without(Purpose.CAMERA_CHECK)), p=Purpose.MOTION_ANALYSIS)
        is Reason.NO_CONSENT
    )
    assert (
        reason(basis(consents=without(Purpose.MOTION_ANALYSIS))) is None
    )  # the camera check itself


def test_video_call_needs_only_the_brukares_call_consent_and_a_binding() -> None:
    late = AT_22 + timedelta(hours=5)
    b = basis(plans=(), pauses=(PAUSE,), suspensions=(SUSP,), cohabitants=(COHAB,))
    assert reason(b, late, Purpose.VIDEO_CALL) is None
    assert reason(b, late, Purpose.AUTO_ANSWER) is Reason.SUSPENDED
    assert (
        reason(basis(consents=without(Purpose.VIDEO_CALL)), late, Purpose.VIDEO_CALL)
        is Reason.NO_CONSENT
    )
    assert reason(basis(bindings=()), late, Purpose.VIDEO_CALL) is Reason.DEVICE_NOT_BOUND


def test_auto_answer_needs_an_agreed_window() -> None:
    """Issue 15: an auto-answered call opens the camera with nobody pressing anything, so it
    keeps to the agreed windows like a view; the brukare's own video call does not need one."""
    at_03 = AT_22 + timedelta(hours=5)  # 03:00 in Stockholm, no agreed check near
    assert rules.REQUIREMENTS[Purpose.AUTO_ANSWER].needs_window
    assert reason(basis(), AT_22, Purpose.AUTO_ANSWER) is None
    assert reason(basis(), at_03, Purpose.AUTO_ANSWER) is Reason.OUTSIDE_WINDOW
    assert reason(basis(), at_03, Purpose.CAMERA_CHECK) is Reason.OUTSIDE_WINDOW
    assert reason(basis(), at_03, Purpose.VIDEO_CALL) is None
    inside = rules.decide(basis(), device_id=DEVICE, purpose=Purpose.AUTO_ANSWER, at=AT_22)
    assert inside.window_start is not None
    assert inside.window_end is not None
    assert inside.window_start <= AT_22 < inside.window_end


def test_allowed_decision_carries_the_plans_call_terms() -> None:
    b = basis(plans=(plan(call_cap_s=120, announce_s=5, live_countdown=False),))
    for purpose in (Purpose.AUTO_ANSWER, Purpose.CAMERA_CHECK, Purpose.VIDEO_CALL):
        d = rules.decide(b, device_id=DEVICE, purpose=purpose, at=AT_22)
        assert (d.allowed, d.call_cap_s, d.announce_s, d.live_countdown) == (True, 120, 5, False)
    default = rules.decide(basis(), device_id=DEVICE, purpose=Purpose.AUTO_ANSWER, at=AT_22)
    assert (default.call_cap_s, default.announce_s, default.live_countdown) == (300, 3, True)
    no_plan = rules.decide(basis(plans=()), device_id=DEVICE, purpose=Purpose.VIDEO_CALL, at=AT_22)
    assert no_plan.allowed
    assert (no_plan.call_cap_s, no_plan.announce_s, no_plan.live_countdown) == (None, None, None)


def test_allowed_decision_names_plan_and_cap() -> None:
    d = rules.decide(
        basis(plans=(plan(view_cap_s=45),)),
        device_id=DEVICE,
        purpose=Purpose.CAMERA_CHECK,
        at=AT_22,
    )
    assert (d.allowed, d.recipient_id, d.plan_id, d.view_cap_s) == (True, "r-1", "plan-1", 45)


def test_store_unavailable_is_transient() -> None:
    """The MQTT link retries handlers on OSError: a behaviour event during a database outage is
    retried, not dropped (hard rule 8)."""
    err = StoreUnavailable("down")
    assert isinstance(err, OSError)
    assert (err.http_status, err.code) == (503, "store_unavailable")


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        rules.decide(
            basis(), device_id=DEVICE, purpose=Purpose.CAMERA_CHECK, at=datetime(2026, 1, 12, 22)
        )


# --- the DST nights ---------------------------------------------------------------------------


def test_march_night_the_skipped_hour() -> None:
    """29 March 2026: 02:00 CET becomes 03:00 CEST inside the round. 02:30 does not exist and is
    read with the offset before the jump (01:30 UTC = 03:30 CEST); the others keep their
    wall-clock time; every window keeps its 30 minutes."""
    b = basis(plans=(plan("22:00", "02:30", "05:00"),))
    windows = rules.night_windows(b.plans[0], date(2026, 3, 28), STHLM)
    assert [w.at for w in windows] == [
        datetime(2026, 3, 28, 21, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
        datetime(2026, 3, 29, 3, 0, tzinfo=UTC),
    ]
    assert all(w.end - w.start == timedelta(minutes=30) for w in windows)
    assert reason(b, datetime(2026, 3, 29, 1, 30, tzinfo=UTC)) is None
    assert reason(b, datetime(2026, 3, 29, 0, 30, tzinfo=UTC)) is Reason.OUTSIDE_WINDOW  # 01:30 CET
    assert reason(b, datetime(2026, 3, 29, 3, 0, tzinfo=UTC)) is None  # 05:00 CEST
    assert (
        reason(b, datetime(2026, 3, 29, 4, 0, tzinfo=UTC)) is Reason.OUTSIDE_WINDOW
    )  # 05:00 CET would be


def test_october_night_the_repeated_hour() -> None:
    """25 October 2026: 03:00 CEST becomes 02:00 CET. 02:30 happens at its first occurrence
    only (00:30 UTC), never twice."""
    b = basis(plans=(plan("22:00", "02:30", "05:00"),))
    windows = rules.night_windows(b.plans[0], date(2026, 10, 24), STHLM)
    assert [w.at for w in windows] == [
        datetime(2026, 10, 24, 20, 0, tzinfo=UTC),
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 4, 0, tzinfo=UTC),
    ]
    assert reason(b, datetime(2026, 10, 25, 0, 30, tzinfo=UTC)) is None
    assert (
        reason(b, datetime(2026, 10, 25, 1, 30, tzinfo=UTC)) is Reason.OUTSIDE_WINDOW
    )  # 02:30 again
    assert reason(b, datetime(2026, 10, 25, 4, 0, tzinfo=UTC)) is None  # 05:00 CET


def test_dst_local_times_are_classified() -> None:
    assert values.local_kind(datetime(2026, 3, 29, 2, 30), STHLM) is values.LocalKind.NONEXISTENT
    assert values.local_kind(datetime(2026, 10, 25, 2, 30), STHLM) is values.LocalKind.AMBIGUOUS
    assert values.local_kind(datetime(2026, 10, 25, 3, 30), STHLM) is values.LocalKind.EXISTS
    assert isinstance(
        values.resolve_local(datetime(2026, 3, 29, 2, 30), STHLM, "f"), values.Problem
    )
    assert isinstance(
        values.resolve_local(datetime(2026, 10, 25, 2, 30), STHLM, "f"), values.Problem
    )


def test_plan_validation_catches_windows_that_collide_only_on_a_dst_night() -> None:
    problems = rules.validate_checks(
        [CheckTime(time(2, 30), 10), CheckTime(time(3, 30), 10)],
        zone_name="Europe/Stockholm",
        valid_from=datetime(2026, 1, 1, tzinfo=UTC),
        valid_until=None,
    )
    assert [(p.field, p.code) for p in problems] == [("checks[1]", "dst_overlap")]


# --- hard rule 8: the behaviour policy -------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "history", "threshold", "expected"),
    [
        (BehaviourEvent.TAMPER, 0, 5, True),
        (BehaviourEvent.UNPLUGGED, 0, 5, True),
        (BehaviourEvent.PRIVACY_SWITCH, 0, 1, True),
        (BehaviourEvent.PRIVACY_SWITCH, 0, 2, False),
        (BehaviourEvent.PRIVACY_SWITCH, 1, 2, True),
        (BehaviourEvent.COVERED, 1, 1, False),
        (BehaviourEvent.COVERED, 2, 1, True),
    ],
)
def test_behaviour_policy(
    event: BehaviourEvent, history: int, threshold: int, expected: bool
) -> None:
    at = AT_22
    recent = [(event, at - timedelta(hours=i + 1)) for i in range(history)] + [(event, at)]
    assert (
        rules.should_suspend(
            event_type=event, recent=recent, at=at, threshold=threshold, is_suspended=False
        )
        is expected
    )
    assert not rules.should_suspend(
        event_type=event, recent=recent, at=at, threshold=threshold, is_suspended=True
    )


def test_old_behaviour_no_longer_counts() -> None:
    at = AT_22
    old = at - rules.BEHAVIOUR_WINDOW
    recent = [
        (BehaviourEvent.COVERED, old),
        (BehaviourEvent.COVERED, old + timedelta(days=1)),
        (BehaviourEvent.COVERED, at),
    ]
    assert not rules.should_suspend(
        event_type=BehaviourEvent.COVERED, recent=recent, at=at, threshold=1, is_suspended=False
    )


# --- the gate against a naive model ----------------------------------------------------------

NIGHTS = [date(2026, 3, 28), date(2026, 10, 24), date(2026, 1, 12), date(2026, 6, 20)]
CHECK_TIMES = ["21:00", "22:30", "00:00", "01:45", "02:30", "03:15", "05:00", "06:30"]


def naive_allowed(b: RecipientBasis, at: datetime) -> bool:
    """Camera check allowed? Written straight from hard rule 1, without the module's helpers."""
    if not any(
        x.device_id == DEVICE and x.bound_at <= at and (x.unbound_at is None or at < x.unbound_at)
        for x in b.bindings
    ):
        return False
    if any(s.started_at <= at and (s.lifted_at is None or at < s.lifted_at) for s in b.suspensions):
        return False
    active = []
    for p in b.plans:
        ends = [t for t in (p.valid_until, p.ended_at) if t is not None]
        if p.valid_from <= at and (not ends or at < min(ends)):
            active.append(p)
    if not active:
        return False
    people: list[str | None] = [None] + [
        c.cohabitant_id
        for c in b.cohabitants
        if c.moved_in_at <= at and (c.moved_out_at is None or at < c.moved_out_at)
    ]
    for person in people:
        versions = [
            c
            for c in b.consents
            if c.cohabitant_id == person
            and c.purpose is Purpose.CAMERA_CHECK
            and c.valid_from <= at
        ]
        if not versions:
            return False
        c = max(versions, key=lambda v: v.version)
        if c.withdrawn_at is not None and c.withdrawn_at <= at:
            return False
        if c.basis is None or (c.basis is Basis.INFORMED_CONSENT and not c.informed_by):
            return False
        if c.valid_until is not None and at >= c.valid_until:
            return False
    if any(p.starts_at <= at and (p.ends_at is None or at < p.ends_at) for p in b.pauses):
        return False
    local_day = at.astimezone(STHLM).date()
    for p in active:
        for check in p.checks:
            for d in (local_day - timedelta(days=1), local_day, local_day + timedelta(days=1)):
                when = datetime.combine(d, check.at).replace(tzinfo=STHLM, fold=0).astimezone(UTC)
                tol = timedelta(minutes=check.tolerance_min)
                if when - tol <= at < when + tol:
                    return True
    return False


FAULTS = (
    "plan_end",
    "plan_from",
    "moved_out",
    "versions",
    "basis",
    "consent_from",
    "expiry",
    "withdrawal",
    "co_versions",
    "co_basis",
    "co_consent_from",
    "co_expiry",
    "co_withdrawal",
    "pause",
    "pause_end",
    "device",
    "bound_at",
    "unbound",
    "suspension",
    "lifted",
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[RecipientBasis, datetime]:
    """Mostly-valid bases (so that both answers are common) around an instant near a check."""

    faults = draw(
        st.one_of(
            st.just(frozenset[str]()),
            st.sampled_from(FAULTS).map(lambda f: frozenset({f})),  # one fault: its own reason
            st.frozensets(st.sampled_from(FAULTS), max_size=3),
        )
    )

    def usually(fault: str, value: object, other: st.SearchStrategy[object]) -> object:
        """``value``, or a draw from ``other`` when this scenario breaks ``fault``."""
        return draw(other) if fault in faults else value

    night = draw(st.sampled_from(NIGHTS))
    times = draw(st.lists(st.sampled_from(CHECK_TIMES), min_size=1, max_size=3, unique=True))
    times.sort(key=lambda t: rules.night_minute(time.fromisoformat(t)))
    if draw(st.sampled_from([True, True, True, False])):  # mostly near an agreed time
        t = time.fromisoformat(draw(st.sampled_from(times)))
        day = night if t >= time(12) else night + timedelta(days=1)
        wall = datetime.combine(day, t).replace(tzinfo=STHLM, fold=0).astimezone(UTC)
        at = wall + timedelta(minutes=draw(st.integers(-20, 20)))
    else:
        start = datetime.combine(night, time(12), tzinfo=STHLM).astimezone(UTC)
        at = start + timedelta(minutes=draw(st.integers(0, 24 * 60 - 1)))
    near = st.integers(-180, 180).map(lambda m: at + timedelta(minutes=m))
    mostly_before = st.integers(-180, 30).map(lambda m: at + timedelta(minutes=m))

    def maybe_near(fault: str) -> datetime | None:
        return usually(fault, None, near)  # type: ignore[return-value]

    p = plan(
        *times,
        ended_at=maybe_near("plan_end"),
        valid_from=usually("plan_from", LONG_AGO, st.just(at + timedelta(hours=1))),
    )
    cohabitants = tuple(
        Cohabitant(
            f"co-{i}", "r-1", "Sambo", moved_in_at=LONG_AGO, moved_out_at=maybe_near("moved_out")
        )
        for i in range(draw(st.integers(0, 2)))
    )
    consents = []
    for person in [None] + [c.cohabitant_id for c in cohabitants]:
        who = "" if person is None else "co_"  # the brukare's and the cohabitants' own faults
        versions = 0 if f"{who}versions" in faults else draw(st.sampled_from([1, 2]))
        for version in range(1, versions + 1):
            # an older version differs at random from the newest: only the newest may count
            older = version < versions
            consents.append(
                consent(
                    Purpose.CAMERA_CHECK,
                    person,
                    version,
                    basis=draw(st.sampled_from([Basis.INFORMED_CONSENT, None]))
                    if older
                    else usually(f"{who}basis", Basis.INFORMED_CONSENT, st.none()),
                    valid_from=usually(
                        f"{who}consent_from",
                        LONG_AGO,
                        st.sampled_from([at - timedelta(minutes=30), at + timedelta(minutes=30)]),
                    ),
                    valid_until=maybe_near(f"{who}expiry"),
                    withdrawn_at=maybe_near(f"{who}withdrawal"),
                )
            )
    pauses = tuple(
        Pause(
            "p-1",
            "r-1",
            draw(mostly_before),
            maybe_near("pause_end"),
            PauseSource.STAFF,
            PauseReason.VISITORS,
        )
        for _ in range(1 if "pause" in faults else 0)
    )
    pauses = tuple(x for x in pauses if x.ends_at is None or x.ends_at > x.starts_at)
    bindings = (
        Binding(
            "b-1",
            usually("device", DEVICE, st.just("cam-0002")),  # type: ignore[arg-type]
            "r-1",
            usually("bound_at", LONG_AGO, st.just(at + timedelta(minutes=5))),  # type: ignore[arg-type]
            "s",
            "s",
            unbound_at=usually("unbound", None, st.just(at)),  # type: ignore[arg-type]
        ),
    )
    suspensions = (
        (
            Suspension(
                "s-1",
                "r-1",
                DEVICE,
                BehaviourEvent.TAMPER,
                draw(mostly_before),
                1,
                lifted_at=maybe_near("lifted"),
            ),
        )
        if "suspension" in faults
        else ()
    )
    b = basis(
        plans=(p,),
        cohabitants=cohabitants,
        consents=tuple(consents),
        pauses=pauses,
        bindings=bindings,
        suspensions=suspensions,
    )
    return b, at


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_gate_agrees_with_a_naive_model(scenario: tuple[RecipientBasis, datetime]) -> None:
    b, at = scenario
    decision = rules.decide(b, device_id=DEVICE, purpose=Purpose.CAMERA_CHECK, at=at)
    assert decision.allowed is naive_allowed(b, at)
    assert decision.allowed == (decision.reason is None)
