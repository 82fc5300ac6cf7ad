"""Signalling requests (pure): who may open which session, on what basis, for how long.

:func:`decide_request` decides a ``request`` from values the interpreter gathered
(:class:`RequestFacts`: the caller's role and duty, the device's presence and kind, the check a
view is owed to (:class:`CheckFacts`) or an extra look's reason, the gate's decisions) and
returns a :class:`Grant` (the state the session opens in, its cap and deadline) or a
:class:`Deny` with a stable reason. The session that a grant opens lives in
:mod:`services.signalling.machine`. Nothing here reads a clock: ``now`` is passed in.

The rules decided here (hard rule 5 and issue 13): the role for each purpose (the role matrix,
:mod:`kernel.permissions`: a case officer holds no ``live_view``), the caller's teams (issue 17:
a view or call of a device whose brukare's team the caller does not cover is ``not_your_team``,
decided before anything about that home is told), a purpose only for
its device kind (no view of a video phone, no call to a camera), every consent purpose the
session needs (a call's video needs the camera check's basis too), and issue 15's "a look":

- a **view of a check** names a ``check_id`` that is due now for the device's brukare: the check
  is ``needs_view``, or ``viewing`` held by the same operator (a re-open), the device is the
  check's, and the caller is on duty. Its budget is the check's: the cap once plus at most
  ``Terms.max_extensions`` extensions (each with a reason), shared by every re-open of the same
  check (:func:`view_budget_s` over :class:`CheckUse`, this check's earlier sessions);
- an **extra look** names a ``reason`` and a ``note`` instead: gated as any view, the caller on
  duty, capped at the plan's cap with no extension (:data:`Look.EXTRA`);
- anything else is ``no_due_check``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from consent.model import DEFAULT_ANNOUNCE_S, DEFAULT_CALL_CAP_S, Decision
from consent.model import Purpose as GatePurpose
from devices import envelope as env
from devices.topics import DeviceKind
from kernel.permissions import Permission, may, roles_with
from kernel.roles import Role
from supervision.checks import State as CheckState

#: The permission of the role matrix (:mod:`kernel.permissions`) each kind of session needs.
PERMISSION_FOR: dict[env.Purpose, Permission] = {
    env.Purpose.VIEW: Permission.LIVE_VIEW,
    env.Purpose.CALL: Permission.CALL,
    env.Purpose.PROBE: Permission.PROBE,
}
#: Who may open each kind of session: the matrix's roles for its permission.
ROLES_FOR: dict[env.Purpose, frozenset[Role]] = {
    purpose: roles_with(permission) for purpose, permission in PERMISSION_FOR.items()
}
#: The consent purposes the gate must allow, for each kind of session. A call's video needs
#: the same basis as a view (every cohabitant, no pause, inside an agreed window).
GATE_PURPOSES: dict[env.Purpose, tuple[GatePurpose, ...]] = {
    env.Purpose.VIEW: (GatePurpose.CAMERA_CHECK,),
    env.Purpose.PROBE: (GatePurpose.MOTION_ANALYSIS,),
    env.Purpose.CALL: (GatePurpose.VIDEO_CALL, GatePurpose.CAMERA_CHECK),
}
#: The device kind each purpose is for.
KIND_FOR: dict[env.Purpose, DeviceKind] = {
    env.Purpose.VIEW: DeviceKind.CAMERA,
    env.Purpose.PROBE: DeviceKind.CAMERA,
    env.Purpose.CALL: DeviceKind.VIDEO_PHONE,
}
MIN_VIEW_S = 1.0
"""A view budget with less than this left is spent."""


class State(StrEnum):
    GRANTED = "granted"  # view/probe: waiting for the client's offer and the device's answer
    RINGING = "ringing"  # call: the video phone rings; the caller's offer is held
    CONNECTED = "connected"  # answer relayed (view) or call accepted
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Terms:
    """System-wide limits (from ``SignallingConfig``). Durations in seconds."""

    default_cap_s: float = 30.0
    ring_timeout_s: float = 30.0
    max_call_s: float = 3600.0
    max_extensions: int = 3
    stale_video_s: float = 1.0


class Look(StrEnum):
    """What a view is owed to (``signal_sessions.look``)."""

    CHECK = "check"  # a due check of the night round
    EXTRA = "extra"  # an exception: a reason code and a note, no extension


#: The check states a view may be granted in (``viewing`` only to the operator holding it).
VIEWABLE = frozenset({CheckState.NEEDS_VIEW, CheckState.VIEWING})


@dataclass(frozen=True, slots=True)
class CheckUse:
    """What earlier view sessions of the same check spent: seconds (an open one up to now)
    and extensions."""

    used_s: float = 0.0
    extensions: int = 0


NO_USE = CheckUse()
"""Nothing spent yet (a check's first view, an extra look, a probe, a call)."""
DEFAULT_TERMS = Terms()


def view_budget_s(cap_s: float, use: CheckUse) -> float:
    """Seconds of view left of a check: the cap plus one cap per extension taken, less what its
    earlier sessions used (may be negative). Closing and re-opening never restarts it."""
    return cap_s * (1 + use.extensions) - use.used_s


@dataclass(frozen=True, slots=True)
class CheckFacts:
    """The check a view names, as the round stores it now, and what its earlier view sessions
    spent. ``cap_s``: the check's view cap (the plan's, copied when the night was planned)."""

    state: CheckState
    device_id: str | None
    holder: str | None
    cap_s: float
    recipient_id: str | None = None
    use: CheckUse = NO_USE

    def due_for(self, device_id: str, staff_id: str) -> bool:
        """Due now for a view of ``device_id`` by ``staff_id``: queued, or re-opened by the
        operator who holds it, on the check's own device."""
        if self.device_id != device_id or self.state not in VIEWABLE:
            return False
        return self.state is CheckState.NEEDS_VIEW or self.holder == staff_id


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """Everything a request is decided on. ``decisions`` holds the gate's answer for each of
    ``GATE_PURPOSES[purpose]`` (a missing one counts as a deny)."""

    purpose: env.Purpose
    role: Role
    is_online: bool
    device_kind: DeviceKind | None
    decisions: Mapping[GatePurpose, Decision]
    auto_answer: bool = False
    phone_view_allowed: bool = False  # no care plan says a phone may be viewed (yet)
    # What a view is owed to: ``check_id`` (with ``check`` as read, None if there is none) or an
    # extra look's ``reason``; who asks (``staff_id``) and whether they are on duty now.
    device_id: str = ""
    staff_id: str = ""
    check_id: str | None = None
    check: CheckFacts | None = None
    extra_reason: str | None = None
    is_on_duty: bool = False
    # Whose brukare: the caller's teams (``None``: every team, the system) and the team of the
    # brukare the device is bound to now (``None``: bound to none the caller can see).
    teams: frozenset[str] | None = None
    team_id: str | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    state: State
    cap_s: float  # the view cap (an extension adds this much); the ring timeout for a call
    deadline: datetime
    recipient_id: str | None
    plan_id: str | None
    auto_answer: bool
    check_use: CheckUse
    look: Look | None = None  # views only
    check_id: str | None = None
    max_extensions: int | None = None  # None: ``Terms.max_extensions``; 0 for an extra look
    call_cap_s: float | None = None  # an auto-answered call's cap; None: ``Terms.max_call_s``
    announce_s: float | None = None  # an auto-answered call's announcement before video


@dataclass(frozen=True, slots=True)
class Deny:
    reason: str
    recipient_id: str | None = None


def call_terms(auto_answer: bool, decision: Decision) -> tuple[float | None, float | None]:
    """An auto-answered call's cap and announcement, seconds: the plan's (issue 15; the defaults
    when the decision names none). ``(None, None)`` for a call the brukare answers by pressing
    *Svara*: it keeps today's rules (rings, lasts at most ``Terms.max_call_s``). An
    auto-answered call's ringing phase is its announcement plus the ring timeout."""
    if not auto_answer:
        return None, None
    cap_s = decision.call_cap_s or DEFAULT_CALL_CAP_S
    return float(cap_s), float(decision.announce_s or DEFAULT_ANNOUNCE_S)


def may_request(role: Role, purpose: env.Purpose) -> bool:
    """Does the role matrix let ``role`` open this kind of session?"""
    return may(role, PERMISSION_FOR[purpose])


def team_denied(facts: RequestFacts) -> Deny | None:
    """Issue 17: the device's brukare must be of a team the caller covers. A device bound to
    nobody the caller can see goes on to the gate (which denies ``device_not_bound``)."""
    if facts.teams is None or facts.team_id is None or facts.team_id in facts.teams:
        return None
    return Deny("not_your_team")


def look_denied(facts: RequestFacts) -> Deny | None:
    """A view's own rule: owed to a check due now for this device and caller, or an extra look
    with a reason; the caller on duty. ``None`` when the look may go on to the gate."""
    if facts.check_id is None:
        if facts.extra_reason is None:
            return Deny("no_due_check")
    else:
        check = facts.check
        if check is None or not check.due_for(facts.device_id, facts.staff_id):
            return Deny("no_due_check", check.recipient_id if check else None)
    if not facts.is_on_duty:
        return Deny("not_on_duty")
    return None


def call_serves(facts: RequestFacts, recipient_id: str | None) -> bool:
    """Whether a call may name ``facts.check_id``: the check is ``calling``, held by the caller,
    for the brukare the phone's consent names. Its session then counts for the check's ``ok``
    (the video the phone reported), as a view of the check does."""
    check = facts.check
    return (
        check is not None
        and check.state is CheckState.CALLING
        and check.holder == facts.staff_id
        and check.recipient_id is not None
        and check.recipient_id == recipient_id
    )


def decide_request(facts: RequestFacts, now: datetime, terms: Terms) -> Grant | Deny:
    """Grant or deny a request: role, the caller's teams, presence, device kind, what a view is
    owed to and the caller's duty, every gate purpose, the check's view budget."""
    purpose = facts.purpose
    if not may_request(facts.role, purpose):
        return Deny("forbidden")
    if (denied := team_denied(facts)) is not None:
        return denied
    if not facts.is_online:
        return Deny("device_offline")
    if facts.device_kind is None:
        return Deny("device_kind_unknown")
    phone_view = (
        purpose is env.Purpose.VIEW
        and facts.device_kind is DeviceKind.VIDEO_PHONE
        and facts.phone_view_allowed
    )
    if facts.device_kind is not KIND_FOR[purpose] and not phone_view:
        return Deny("wrong_device_kind")
    if purpose is env.Purpose.VIEW and (denied := look_denied(facts)) is not None:
        return denied
    first: Decision | None = None
    for gate_purpose in GATE_PURPOSES[purpose]:
        decision = facts.decisions.get(gate_purpose)
        if decision is None or not decision.allowed:
            reason = decision.reason.value if decision and decision.reason else "no_consent"
            return Deny(reason, decision.recipient_id if decision else None)
        first = first or decision
    assert first is not None
    if purpose is env.Purpose.CALL:
        if facts.check_id is not None and not call_serves(facts, first.recipient_id):
            return Deny("no_due_check", first.recipient_id)
        call_cap_s, announce_s = call_terms(facts.auto_answer, first)
        cap_s = terms.ring_timeout_s + (announce_s or 0.0)  # announced, then it may answer
        return Grant(
            State.RINGING,
            cap_s,
            now + timedelta(seconds=cap_s),
            first.recipient_id,
            first.plan_id,
            facts.auto_answer,
            NO_USE,
            check_id=facts.check_id,
            call_cap_s=call_cap_s,
            announce_s=announce_s,
        )
    cap_s = float(first.view_cap_s or terms.default_cap_s)
    if purpose is not env.Purpose.VIEW:  # the probe: the plan's cap, once; the check its
        # round worker holds is recorded, not judged (the system is no operator with a queue)
        return Grant(
            State.GRANTED,
            cap_s,
            now + timedelta(seconds=cap_s),
            first.recipient_id,
            first.plan_id,
            False,
            NO_USE,
            check_id=facts.check_id,
        )
    if facts.check is not None:  # the check's budget; a plan lowered tonight applies at once
        cap_s = min(cap_s, facts.check.cap_s)
        use, look, max_extensions = facts.check.use, Look.CHECK, terms.max_extensions
    else:
        use, look, max_extensions = NO_USE, Look.EXTRA, 0
    left_s = view_budget_s(cap_s, use)
    if left_s < MIN_VIEW_S:
        return Deny("budget_spent", first.recipient_id)
    return Grant(
        State.GRANTED,
        cap_s,
        now + timedelta(seconds=left_s),
        first.recipient_id,
        first.plan_id,
        False,
        use,
        look=look,
        check_id=facts.check_id,
        max_extensions=max_extensions,
    )
