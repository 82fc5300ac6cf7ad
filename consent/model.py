"""The consent slice's values (pure): brukare, cohabitants, care plans, consents, pauses, device
bindings, suspensions, the gate's decision and the change events.

Every datetime is timezone-aware (checked in ``__post_init__``); times of day (:class:`CheckTime`,
:class:`TimeWindow`) are naive local wall-clock times in the brukare's zone
(``CareRecipient.time_zone``, default Europe/Stockholm). Display names, homes and free text are
personal data: they are left out of ``repr`` so they cannot reach a log by accident.

A *night* is named by the date of its evening and runs from local noon to the next local noon, so a
check at 22:30 belongs to the night of that date and a check at 02:00 to the night before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from enum import StrEnum

from kernel.tenancy import DEFAULT_TEAM

DEFAULT_ZONE = "Europe/Stockholm"
DEFAULT_VIEW_CAP_S = 30
MIN_VIEW_CAP_S, MAX_VIEW_CAP_S = 10, 60
"""A live view's cap, seconds (hard rule 5: default 30 s, at most 60): the one range that the plan
validator, the check's ``Policy``, the API schema and ``homecare demo --view-cap`` all use."""
DEFAULT_CALL_CAP_S = 300
MIN_CALL_CAP_S, MAX_CALL_CAP_S = 60, 15 * 60
"""An auto-answered call's cap, seconds (issue 15: default 5 min, at most 15): the call ends by
itself (``bye timeout``) this long after the phone answered. A call the brukare answers by
pressing *Svara* is not capped by the plan."""
DEFAULT_ANNOUNCE_S = 3
MIN_ANNOUNCE_S, MAX_ANNOUNCE_S = 3, 15
"""How long an auto-answered call is announced on the unit (a chime and the caller's name on
screen) before any video flows, seconds (issue 15: at least 3)."""
DEFAULT_LIVE_COUNTDOWN = True
"""Whether the in-home screen shows *Hemtjänsten tittar* with the seconds left during a view."""
DEFAULT_RETRY_INTERVAL_S = 20 * 60
DEFAULT_TOLERANCE_MIN = 15


def _aware(value: object, *names: str) -> None:
    """Refuse a naive instant in any of the named fields of ``value`` (a stored UTC instant
    passes at the first test: a night's planning builds some 100,000 of them)."""
    for name in names:
        at = getattr(value, name)
        if at is not None and at.tzinfo is not UTC and at.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware")


class Purpose(StrEnum):
    """What a consent covers. Camera purposes see into the home without anyone answering."""

    CAMERA_CHECK = "camera_check"
    MOTION_ANALYSIS = "motion_analysis"
    VIDEO_CALL = "video_call"
    AUTO_ANSWER = "auto_answer"


class Reason(StrEnum):
    """Why the gate said no (machine-readable, stable)."""

    NO_CONSENT = "no_consent"
    COHABITANT_MISSING = "cohabitant_missing"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    OUTSIDE_WINDOW = "outside_window"
    PAUSED = "paused"
    PLAN_INACTIVE = "plan_inactive"
    DEVICE_NOT_BOUND = "device_not_bound"
    SUSPENDED = "suspended"
    NO_LEGAL_BASIS = "no_legal_basis"


class Basis(StrEnum):
    """The legal basis of a consent record. A record without one (``None``) never activates."""

    INFORMED_CONSENT = "informed_consent"  # the person's own informed consent
    OTHER_LEGAL_BASIS = "other_legal_basis"  # another documented basis; needs ``basis_ref``


class EscalationStep(StrEnum):
    RETRY = "retry"
    CALL = "call"
    PATROL = "patrol"


class HumanStep(StrEnum):
    """A step of a check that waits for a person; its deadline terms are in the care plan."""

    VIEW = "view"  # an operator opens a queued view and documents it
    CALL = "call"  # an operator's call is documented
    PATROL_ACK = "patrol_ack"  # the patrol takes the task
    PATROL_ARRIVAL = "patrol_arrival"  # the patrol reports from the home


MIN_RESPOND_S, MAX_RESPOND_S = 60, 2 * 3600
MIN_REPEAT_S, MAX_REPEAT_S = 60, 30 * 60
MIN_ESCALATE_S, MAX_ESCALATE_S = 60, 3600
MAX_TO_VISIT_S = 3600
"""Bounds of a step's deadline terms, seconds (the plan validator and the API schema use them).
A view or a call nobody answers reaches the patrol within ``MAX_TO_VISIT_S`` of its start."""


@dataclass(frozen=True, slots=True)
class StepDeadline:
    """One human step's terms, seconds: the step is due ``respond_s`` after it starts (a view
    that was opened: the view cap plus the time to document it); from then an alarm sounds every
    ``repeat_s`` while it stays undone, and ``escalate_s`` after the deadline it escalates: a view
    or a call goes to the patrol by itself, a patrol step alerts the shift lead."""

    respond_s: int
    repeat_s: int
    escalate_s: int


@dataclass(frozen=True, slots=True)
class Deadlines:
    """The escalation ladder's timing, one :class:`StepDeadline` per :class:`HumanStep`: what
    happens when nobody acts. Defaults for night care: a queued view is opened within 5 min,
    then alarms every 2 min, the patrol at 10 min; the patrol acknowledges within 10 min and
    reports from the home within 45 min, else the shift lead is alerted."""

    view: StepDeadline = StepDeadline(300, 120, 300)
    call: StepDeadline = StepDeadline(300, 120, 300)
    patrol_ack: StepDeadline = StepDeadline(600, 300, 600)
    patrol_arrival: StepDeadline = StepDeadline(2700, 600, 900)

    def of(self, step: HumanStep) -> StepDeadline:
        terms: StepDeadline = getattr(self, step.value)
        return terms


DEFAULT_DEADLINES = Deadlines()


class PausedCheckPolicy(StrEnum):
    """What a planned check becomes while a pause is in force."""

    DROP = "drop"
    PHYSICAL_VISIT = "physical_visit"


class PauseSource(StrEnum):
    """Who reported the pause."""

    RECIPIENT = "recipient"
    RELATIVE = "relative"
    STAFF = "staff"
    HOSPITAL = "hospital"
    OTHER = "other"


class PauseReason(StrEnum):
    HOSPITAL_STAY = "hospital_stay"
    TRAVEL = "travel"
    VISITORS = "visitors"
    RECIPIENT_REQUEST = "recipient_request"
    OTHER = "other"


class BehaviourEvent(StrEnum):
    """Behaviour that may mean the brukare took the camera down (hard rule 8): the device events
    ``privacy_switch``, ``tamper`` and ``unplugged``; ``covered``, the motion probe's verdict
    of a covered lens (reported by the rounds); ``offline_at_check``, the camera found offline
    when the round judged one of its agreed checks (dated at that check's agreed instant); and
    ``shutter_closed``, a health report whose privacy shutter turned closed (a health report's
    ``tamper`` turning on is recorded as ``tamper``)."""

    PRIVACY_SWITCH = "privacy_switch"
    TAMPER = "tamper"
    UNPLUGGED = "unplugged"
    COVERED = "covered"
    OFFLINE_AT_CHECK = "offline_at_check"
    SHUTTER_CLOSED = "shutter_closed"


class SuspensionReason(StrEnum):
    """Why camera checks are suspended: so far only hard rule 8's possible withdrawal."""

    POSSIBLE_WITHDRAWAL = "possible_withdrawal"


class ReverifyHow(StrEnum):
    """How a person was asked when consent was re-verified."""

    VISIT = "visit"
    PHONE = "phone"


class ReverifyAnswer(StrEnum):
    CONSENTS = "consents"
    REFUSES = "refuses"


class BindingAction(StrEnum):
    BIND = "bind"
    UNBIND = "unbind"


class BindingProof(StrEnum):
    """What proves that the physical device in the home is the one being bound (issue 17):
    a video phone shows a one-time ``code`` on its screen, a camera's bind ``button`` is
    pressed; an unbinding needs ``none`` (the device may be broken or gone)."""

    NONE = "none"
    CODE = "code"
    BUTTON = "button"


class ChangeKind(StrEnum):
    """What changed; every kind may turn an allowed look into a denied one (or back)."""

    RECIPIENT_CHANGED = "recipient_changed"
    COHABITANT_ADDED = "cohabitant_added"
    COHABITANT_REMOVED = "cohabitant_removed"
    PLAN_ADDED = "plan_added"
    PLAN_ENDED = "plan_ended"
    CONSENT_RECORDED = "consent_recorded"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    PAUSE_ADDED = "pause_added"
    PAUSE_ENDED = "pause_ended"
    DEVICE_BOUND = "device_bound"
    DEVICE_UNBOUND = "device_unbound"
    SUSPENDED = "suspended"
    REVERIFIED = "reverified"
    SCHEDULED = "scheduled"  # a dated change came into force (pause start, plan or consent end)
    RESYNC = "resync"  # events may have been missed: re-check everything


@dataclass(frozen=True, slots=True)
class CareRecipient:
    """A brukare: pseudonymous ``recipient_id``; the display name and home are never logged."""

    recipient_id: str
    display_name: str = field(repr=False)
    home: str = field(default="", repr=False)
    time_zone: str = DEFAULT_ZONE
    door_code_ref: str = field(default="", repr=False)
    """Where the patrol finds the key or the door code (a key-safe number, "at reception"): a
    reference, never the code itself. Shown on the patrol's task."""
    language: str = "sv"
    created_at: datetime | None = None
    team_id: str = DEFAULT_TEAM
    """The team that cares for the brukare (its organisation is the team's; issue 17)."""

    def __post_init__(self) -> None:
        _aware(self, "created_at")


@dataclass(frozen=True, slots=True)
class Cohabitant:
    """A relative in the same home, registered from ``moved_in_at`` until ``moved_out_at``."""

    cohabitant_id: str
    recipient_id: str
    display_name: str = field(repr=False)
    moved_in_at: datetime
    moved_out_at: datetime | None = None

    def __post_init__(self) -> None:
        _aware(self, "moved_in_at", "moved_out_at")

    def lives_there(self, at: datetime) -> bool:
        return self.moved_in_at <= at and (self.moved_out_at is None or at < self.moved_out_at)


@dataclass(frozen=True, slots=True)
class CheckTime:
    """One agreed check of the night: local wall-clock ``at`` ± ``tolerance_min`` minutes."""

    at: time
    tolerance_min: int = DEFAULT_TOLERANCE_MIN


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A daily local window ``[start, end)``; ``end < start`` crosses midnight (22:00–06:00)."""

    start: time
    end: time

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


@dataclass(frozen=True, slots=True)
class CheckWindow:
    """One check of one night resolved to instants: ``start <= t < end`` is inside."""

    index: int
    at: datetime
    start: datetime
    end: datetime

    def contains(self, t: datetime) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True, slots=True)
class CarePlan:
    """Granted night supervision (biståndsbeslut / genomförandeplan) for one brukare.

    In force from ``valid_from`` until the earlier of ``valid_until`` and ``ended_at`` (exclusive).
    ``retry_interval_s`` and ``view_cap_s`` are seconds. The call terms: ``call_cap_s``, how
    long an auto-answered call may last; ``announce_s``, how long it is announced on the unit
    before video flows; ``live_countdown``, whether the home's screen shows the seconds left of
    a view. ``deadlines``: how long each human step may wait, how often its alarm repeats and
    when it escalates (:class:`Deadlines`).
    """

    plan_id: str
    recipient_id: str
    decision_ref: str
    valid_from: datetime
    checks: tuple[CheckTime, ...]
    valid_until: datetime | None = None
    view_cap_s: int = DEFAULT_VIEW_CAP_S
    motion_may_clear: bool = False
    retry_interval_s: int = DEFAULT_RETRY_INTERVAL_S
    escalation: tuple[EscalationStep, ...] = (
        EscalationStep.RETRY,
        EscalationStep.CALL,
        EscalationStep.PATROL,
    )
    instruction: str = field(default="", repr=False)
    paused_checks: PausedCheckPolicy = PausedCheckPolicy.PHYSICAL_VISIT
    call_cap_s: int = DEFAULT_CALL_CAP_S
    announce_s: int = DEFAULT_ANNOUNCE_S
    live_countdown: bool = DEFAULT_LIVE_COUNTDOWN
    deadlines: Deadlines = DEFAULT_DEADLINES
    created_at: datetime | None = None
    created_by: str = ""
    ended_at: datetime | None = None
    ended_by: str | None = None

    def __post_init__(self) -> None:
        _aware(self, "valid_from", "valid_until", "created_at", "ended_at")

    @property
    def effective_until(self) -> datetime | None:
        if self.ended_at is None:
            return self.valid_until
        if self.valid_until is None:
            return self.ended_at
        return min(self.ended_at, self.valid_until)

    def is_active(self, at: datetime) -> bool:
        until = self.effective_until
        return self.valid_from <= at and (until is None or at < until)


@dataclass(frozen=True, slots=True)
class Consent:
    """One version of one person's consent for one purpose (append-only).

    ``cohabitant_id`` is ``None`` for the brukare's own consent. The version in force at ``t`` is
    the highest ``version`` of the series (recipient, person, purpose) with ``valid_from <= t``.
    A withdrawal (``withdrawn_at``) withdraws the whole series from that instant.
    """

    consent_id: str
    recipient_id: str
    cohabitant_id: str | None
    purpose: Purpose
    version: int
    basis: Basis | None
    given_at: datetime
    valid_from: datetime
    valid_until: datetime | None = None
    basis_ref: str | None = None
    informed_by: str | None = None
    informed_how: str | None = field(default=None, repr=False)
    windows: tuple[TimeWindow, ...] = ()
    document_ref: str | None = None
    recorded_at: datetime | None = None
    recorded_by: str = ""
    withdrawn_at: datetime | None = None
    withdrawn_by: str | None = None
    withdrawal_reason: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _aware(self, "given_at", "valid_from", "valid_until", "recorded_at", "withdrawn_at")

    @property
    def person(self) -> str:
        """``"recipient"`` or the cohabitant's id."""
        return self.cohabitant_id or "recipient"

    @property
    def has_legal_basis(self) -> bool:
        if self.basis is Basis.INFORMED_CONSENT:
            return bool(self.informed_by)
        if self.basis is Basis.OTHER_LEGAL_BASIS:
            return bool(self.basis_ref)
        return False


@dataclass(frozen=True, slots=True)
class Pause:
    """No camera checks from ``starts_at`` until ``ends_at`` (exclusive; ``None`` = until ended)."""

    pause_id: str
    recipient_id: str
    starts_at: datetime
    ends_at: datetime | None
    source: PauseSource
    reason: PauseReason
    note: str = field(default="", repr=False)
    created_at: datetime | None = None
    created_by: str = ""
    ended_by: str | None = None

    def __post_init__(self) -> None:
        _aware(self, "starts_at", "ends_at", "created_at")

    def is_active(self, at: datetime) -> bool:
        return self.starts_at <= at and (self.ends_at is None or at < self.ends_at)


@dataclass(frozen=True, slots=True)
class BindingRequest:
    """First step of binding or unbinding a device; an administrator confirms it, naming the
    brukare, before ``expires_at``."""

    request_id: str
    action: BindingAction
    device_id: str
    recipient_id: str
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    confirmed_by: str | None = None
    confirmed_at: datetime | None = None
    cancelled_at: datetime | None = None
    proof: BindingProof = BindingProof.NONE
    code_hash: str | None = field(default=None, repr=False)
    """A video phone's one-time code, hashed with the request id (the code itself is never
    stored): :func:`consent.rules.bind_code_hash`."""
    code_expires_at: datetime | None = None
    code_attempts: int = 0
    """Wrong codes typed so far; at :data:`consent.rules.MAX_CODE_ATTEMPTS` the request is void."""
    button_pressed_at: datetime | None = None
    """Read only: the device's latest ``bind_button`` at or after the request (filled by the
    reads, for the confirmer's screen; the confirmation reads it again under the lock)."""

    def __post_init__(self) -> None:
        _aware(
            self,
            "requested_at",
            "expires_at",
            "confirmed_at",
            "cancelled_at",
            "code_expires_at",
            "button_pressed_at",
        )

    @property
    def is_open(self) -> bool:
        return self.confirmed_at is None and self.cancelled_at is None


@dataclass(frozen=True, slots=True)
class BindingConfirmation:
    """What the second person types in step two: the brukare the request is for, the brukare's
    details as the installer on site reads them out (the name on the door, the street
    address) and, for a video phone, the code its screen shows. Personal data: not in ``repr``."""

    recipient_id: str
    name: str = field(default="", repr=False)
    address: str = field(default="", repr=False)
    code: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class ButtonPress:
    """A device's latest ``bind_button`` event, as the backend received it (no picture)."""

    device_id: str
    at: datetime

    def __post_init__(self) -> None:
        _aware(self, "at")


@dataclass(frozen=True, slots=True)
class Binding:
    """A device bound to a brukare's home from ``bound_at`` until ``unbound_at`` (exclusive)."""

    binding_id: str
    device_id: str
    recipient_id: str
    bound_at: datetime
    requested_by: str
    bound_by: str
    unbound_at: datetime | None = None
    unbound_by: str | None = None
    device_kind: str | None = None

    def __post_init__(self) -> None:
        _aware(self, "bound_at", "unbound_at")

    def is_active(self, at: datetime) -> bool:
        return self.bound_at <= at and (self.unbound_at is None or at < self.unbound_at)


@dataclass(frozen=True, slots=True)
class Suspension:
    """Camera checks suspended after device behaviour (hard rule 8) until an administrator
    re-verifies consent (``lifted_at``)."""

    suspension_id: str
    recipient_id: str
    device_id: str
    event_type: BehaviourEvent
    started_at: datetime
    event_count: int
    lifted_at: datetime | None = None
    lifted_by: str | None = None
    reason: SuspensionReason = SuspensionReason.POSSIBLE_WITHDRAWAL

    def __post_init__(self) -> None:
        _aware(self, "started_at", "lifted_at")

    def is_active(self, at: datetime) -> bool:
        return self.started_at <= at and (self.lifted_at is None or at < self.lifted_at)


class ReverifyOutcome(StrEnum):
    """What a re-verification did: ``lifted`` the suspension (everyone living there asked,
    nobody refused camera checks) or ``withdrawn`` (someone refused: their consent withdrawn,
    supervision ended)."""

    LIFTED = "lifted"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True, slots=True)
class PersonAsked:
    """One person asked at a re-verification: the brukare (``person_id`` is the
    ``recipient_id``) or a cohabitant (its ``cohabitant_id``); how and when, and the answer
    per purpose."""

    person_id: str
    how: ReverifyHow
    spoken_at: datetime
    answers: tuple[tuple[Purpose, ReverifyAnswer], ...]

    def __post_init__(self) -> None:
        _aware(self, "spoken_at")


@dataclass(frozen=True, slots=True)
class Reverification:
    """The record of one re-verification (hard rule 8): who (``verified_by``, staff) asked whom,
    and what it did."""

    reverification_id: str
    recipient_id: str
    verified_by: str
    recorded_at: datetime
    people: tuple[PersonAsked, ...]
    outcome: ReverifyOutcome
    suspension_ids: tuple[str, ...] = ()
    withdrawn_consent_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _aware(self, "recorded_at")


@dataclass(frozen=True, slots=True)
class RecipientBasis:
    """Everything the gate needs about one brukare, as read at one moment."""

    recipient: CareRecipient
    cohabitants: tuple[Cohabitant, ...] = ()
    plans: tuple[CarePlan, ...] = ()
    consents: tuple[Consent, ...] = ()
    pauses: tuple[Pause, ...] = ()
    bindings: tuple[Binding, ...] = ()
    suspensions: tuple[Suspension, ...] = ()

    @property
    def recipient_id(self) -> str:
        return self.recipient.recipient_id


@dataclass(frozen=True, slots=True)
class Decision:
    """The gate's answer. ``reason`` is ``None`` exactly when ``allowed``.

    When allowed, ``recipient_id``, ``plan_id`` and ``view_cap_s`` say whom and for how long;
    ``window_start``/``window_end`` the agreed window it falls in (purposes that need one), which
    the view budget of that window is counted over. ``call_cap_s``, ``announce_s`` and
    ``live_countdown`` are the plan's call terms (see :class:`CarePlan`), so signalling gets them
    with the decision; all plan fields are ``None`` without a plan in force.
    """

    allowed: bool
    reason: Reason | None
    recipient_id: str | None = None
    plan_id: str | None = None
    view_cap_s: int | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    call_cap_s: int | None = None
    announce_s: int | None = None
    live_countdown: bool | None = None

    def __post_init__(self) -> None:
        if self.allowed != (self.reason is None):
            raise ValueError("a decision is allowed exactly when it has no reason")

    @classmethod
    def deny(cls, reason: Reason, recipient_id: str | None = None) -> Decision:
        return cls(allowed=False, reason=reason, recipient_id=recipient_id)


@dataclass(frozen=True, slots=True)
class ConsentChange:
    """Something changed for ``recipient_id`` (``None``: anyone, after a resync); sessions on
    ``device_ids`` must re-ask the gate at once. ``event_id`` deduplicates deliveries."""

    event_id: str
    kind: ChangeKind
    recipient_id: str | None
    device_ids: tuple[str, ...]
    at: datetime

    def __post_init__(self) -> None:
        _aware(self, "at")
