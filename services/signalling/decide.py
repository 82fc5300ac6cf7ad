"""Signalling requests (pure): who may open which session, on what basis, for how long.

:func:`decide_request` decides a ``request`` from values the interpreter gathered
(:class:`RequestFacts`: the caller's role, the device's presence and kind, the gate's decisions,
the view budget already spent in the agreed window) and returns a :class:`Grant` (the state the
session opens in, its cap and deadline) or a :class:`Deny` with a stable reason. The session that
a grant opens lives in :mod:`services.signalling.machine`. Nothing here reads a clock: ``now`` is
passed in.

The rules decided here (hard rule 5 and issue 13): the role for each purpose, a purpose only for
its device kind (no view of a video phone, no call to a camera), every consent purpose the
session needs (a call's video needs the camera check's basis too), and the view budget of an
agreed window shared by every view in it (:func:`view_budget_s`).
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
from kernel.roles import OPERATORS, Role

#: Who may open each kind of session.
ROLES_FOR: dict[env.Purpose, frozenset[Role]] = {
    env.Purpose.VIEW: OPERATORS,
    env.Purpose.CALL: OPERATORS,
    env.Purpose.PROBE: frozenset({Role.SYSTEM}),
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


@dataclass(frozen=True, slots=True)
class WindowUse:
    """What earlier views of the device spent in the current agreed window."""

    used_s: float = 0.0
    extensions: int = 0


NO_USE = WindowUse()
"""Nothing spent yet (a new window, a probe, a call)."""
DEFAULT_TERMS = Terms()


def view_budget_s(cap_s: float, use: WindowUse) -> float:
    """Seconds of view left in a window: the cap plus one cap per extension taken, less what
    was used (may be negative). One pure function so the budget can be re-keyed (per check)."""
    return cap_s * (1 + use.extensions) - use.used_s


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
    window_use: WindowUse = WindowUse()
    phone_view_allowed: bool = False  # no care plan says a phone may be viewed (yet)


@dataclass(frozen=True, slots=True)
class Grant:
    state: State
    cap_s: float  # the view cap (an extension adds this much); the ring timeout for a call
    deadline: datetime
    recipient_id: str | None
    plan_id: str | None
    auto_answer: bool
    window_use: WindowUse
    call_cap_s: float | None = None  # an auto-answered call's cap; None: ``Terms.max_call_s``
    announce_s: float | None = None  # an auto-answered call's announcement before video


@dataclass(frozen=True, slots=True)
class Deny:
    reason: str
    recipient_id: str | None = None


def call_terms(auto_answer: bool, decision: Decision) -> tuple[float | None, float | None]:
    """An auto-answered call's cap and announcement, seconds: the plan's (issue 15; the defaults
    when the decision names none). ``(None, None)`` for a call the brukare answers by pressing
    *Svara*: it keeps today's rules (rings, lasts at most ``Terms.max_call_s``)."""
    if not auto_answer:
        return None, None
    cap_s = decision.call_cap_s or DEFAULT_CALL_CAP_S
    return float(cap_s), float(decision.announce_s or DEFAULT_ANNOUNCE_S)


def may_request(role: Role, purpose: env.Purpose) -> bool:
    return role in ROLES_FOR[purpose]


def decide_request(facts: RequestFacts, now: datetime, terms: Terms) -> Grant | Deny:
    """Grant or deny a request: role, presence, device kind, every gate purpose, view budget."""
    purpose = facts.purpose
    if not may_request(facts.role, purpose):
        return Deny("forbidden")
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
    first: Decision | None = None
    for gate_purpose in GATE_PURPOSES[purpose]:
        decision = facts.decisions.get(gate_purpose)
        if decision is None or not decision.allowed:
            reason = decision.reason.value if decision and decision.reason else "no_consent"
            return Deny(reason, decision.recipient_id if decision else None)
        first = first or decision
    assert first is not None
    if purpose is env.Purpose.CALL:
        cap_s = terms.ring_timeout_s
        call_cap_s, announce_s = call_terms(facts.auto_answer, first)
        return Grant(
            State.RINGING,
            cap_s,
            now + timedelta(seconds=cap_s),
            first.recipient_id,
            first.plan_id,
            facts.auto_answer,
            WindowUse(),
            call_cap_s=call_cap_s,
            announce_s=announce_s,
        )
    cap_s = float(first.view_cap_s or terms.default_cap_s)
    use = facts.window_use if purpose is env.Purpose.VIEW else WindowUse()
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
    )
