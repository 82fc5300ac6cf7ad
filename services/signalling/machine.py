"""The signalling session machine (pure): what a live view, call or probe may do, and when it ends.

::

    request ─decide_request─▶ Deny(reason)
                           └▶ Grant ─▶ granted (view, probe) ─device answer─▶ connected
                                    └▶ ringing (call) ─answered─▶ connected ─▶ …
    any open state ─bye / timer at the deadline / gate denied / device lost / device error /
                    client gone / declined / shutdown / indicator not acked─▶ closed

    the device's indicator (issue 15, "the home knows"):
    view, probe: granted ─Started─▶ indicator on ─ack─▶ the held offer goes to the device
    call:        answered ─────────▶ indicator on ─ack─▶ the held offer goes to the device
    no ack within indicator_ack_s ─▶ bye device_lost (the client: error indicator_not_acked;
                                     the check the view is owed to: a physical visit)
    closed, however ─▶ indicator off (if it was asked on)

A request is decided in :mod:`services.signalling.decide`; the :class:`Session` a grant opens
lives here. :func:`apply` is the only way to change a :class:`Session`: it looks the event
(:mod:`services.signalling.events`) up in :data:`TABLE` and returns the new session and the
effects the interpreter (:mod:`services.signalling.interpreter`) must perform, in order. Refusals
are effects too (:class:`Refuse`), never exceptions. Nothing here reads a clock: ``now`` is
passed in.

The rules decided here (hard rule 5 and issue 13): the view cap (``bye timeout`` at the
deadline), extensions only with a reason and at most ``max_extensions`` per check (an extra look
none), ``bye withdrawn`` when the gate turns to deny, a call rings first and ends ``no_answer``
at the ring timeout or ``declined``, a call is capped (an auto-answered one at its plan's call
cap, :func:`call_limit_s`) and answered only after its announcement (:func:`is_announced`),
``drive`` only in an accepted call while the caller's video is fresh, each valid on the phone
for at most ``DRIVE_VALID_MS`` and never past the moment that video turns stale (the phone's
dead man stops it then; :func:`drive_valid_ms`), ``dock`` in an accepted call, the device
shows that a look is live before any frame can flow (its ``indicator`` acked; nothing reaches
the device before, not even the offer) and is told when it ends, an offer's media must fit the
purpose (:mod:`.sdp`), a device's ``error`` ends its session ``device_lost`` and tells the
client the device's code, and who the audit names as the actor of an ending (the operator,
``device:<id>`` or ``system``).

The events and effects (and :class:`State`, :class:`Terms`) are re-exported here, so callers
may keep using ``machine.<name>``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from devices import envelope as env
from devices.topics import DRIVE_VALID_MS, CommandOp
from services.signalling import sdp
from services.signalling.decide import DEFAULT_TERMS, NO_USE, CheckUse, Grant, State, Terms
from services.signalling.events import (
    DEVICE_ERROR_RE,
    GENERIC_DEVICE_ERROR,
    ArmTimer,
    CallAnswered,
    CallDeclined,
    CheckTrouble,
    ClientBye,
    ClientCandidate,
    ClientDock,
    ClientDrive,
    ClientExtend,
    ClientGone,
    ClientOffer,
    ClientVideo,
    Closed,
    Command,
    DeviceAnswer,
    DeviceBye,
    DeviceCandidate,
    DeviceError,
    DeviceLost,
    Dock,
    Drive,
    Effect,
    Event,
    Extended,
    GateDenied,
    Indicate,
    IndicatorAcked,
    IndicatorNotAcked,
    MarkConnected,
    Refuse,
    Ring,
    RingFailed,
    Shutdown,
    Started,
    TimerFired,
    ToClient,
    ToDevice,
    UnitReported,
    device_error_code,
)

__all__ = [
    "DEVICE_ERROR_RE",
    "GENERIC_DEVICE_ERROR",
    "MAX_HELD",
    "NOT_ANNOUNCED",
    "TABLE",
    "ArmTimer",
    "CallAnswered",
    "CallDeclined",
    "CheckTrouble",
    "ClientBye",
    "ClientCandidate",
    "ClientDock",
    "ClientDrive",
    "ClientExtend",
    "ClientGone",
    "ClientOffer",
    "ClientVideo",
    "Closed",
    "Command",
    "DeviceAnswer",
    "DeviceBye",
    "DeviceCandidate",
    "DeviceError",
    "DeviceLost",
    "Dock",
    "Drive",
    "Effect",
    "Event",
    "Extended",
    "GateDenied",
    "Indicate",
    "IndicatorAcked",
    "IndicatorNotAcked",
    "Light",
    "MarkConnected",
    "Refuse",
    "Result",
    "Ring",
    "RingFailed",
    "Session",
    "Shutdown",
    "Started",
    "State",
    "Terms",
    "TimerFired",
    "ToClient",
    "ToDevice",
    "UnitReported",
    "actor_of",
    "apply",
    "call_limit_s",
    "close",
    "device_error_code",
    "drive_valid_ms",
    "is_announced",
    "open_session",
    "remaining_s",
    "stop_op",
]

MAX_HELD = 64
"""Messages held per session (an offer and candidates until the indicator is on; early device
candidates)."""
NOT_ANNOUNCED = "not_announced"
"""The client's ``error`` code (and the audit's ``detail``) when a phone answered an auto-answered
call before its announcement could be over: the call ends ``device_lost`` before any offer
reached the phone (issue 15)."""


class Light(StrEnum):
    """The device's indicator as this session asked for it: ``off`` (not asked), ``asked``
    (``indicator on`` sent, no ack yet: the offer is held) and ``on`` (acked)."""

    OFF = "off"
    ASKED = "asked"
    ON = "on"


# --------------------------------------------------------------------------- the session


@dataclass(frozen=True, slots=True)
class Session:
    """One live session as a value. ``cap_s`` is the view cap (the ring timeout for a call)."""

    session_id: str
    device_id: str
    purpose: env.Purpose
    staff_id: str
    recipient_id: str | None
    state: State
    started_at: datetime
    deadline: datetime
    cap_s: float
    check_use: CheckUse = NO_USE  # spent by earlier sessions of the same check
    extensions: int = 0  # taken in this session
    max_extensions: int | None = None  # None: ``Terms.max_extensions``; 0: an extra look
    auto_answer: bool = False
    call_cap_s: float | None = None  # an auto-answered call's cap (the plan's); see call_limit_s
    announce_s: float | None = None  # an auto-answered call's announcement before video
    answered: bool = False  # the device's answer reached the client
    offer_sent: bool = False  # the client's offer reached the device
    held: tuple[env.Offer | env.Candidate, ...] = ()
    device_candidates: tuple[env.Candidate, ...] = ()
    last_frames: int = 0
    last_frame_at: datetime | None = None
    end_reason: env.ByeReason | None = None
    light: Light = Light.OFF  # the device's indicator for this session
    countdown: bool = True  # a view's indicator carries the seconds left (the plan's choice)

    @property
    def is_open(self) -> bool:
        return self.state is not State.CLOSED

    @property
    def has_offer(self) -> bool:
        return self.offer_sent or any(isinstance(m, env.Offer) for m in self.held)


def open_session(
    grant: Grant,
    *,
    session_id: str,
    device_id: str,
    purpose: env.Purpose,
    staff_id: str,
    now: datetime,
    countdown: bool = True,
) -> Session:
    return Session(
        session_id=session_id,
        device_id=device_id,
        purpose=purpose,
        staff_id=staff_id,
        recipient_id=grant.recipient_id,
        state=grant.state,
        started_at=now,
        deadline=grant.deadline,
        cap_s=grant.cap_s,
        check_use=grant.check_use,
        auto_answer=grant.auto_answer,
        call_cap_s=grant.call_cap_s,
        announce_s=grant.announce_s,
        max_extensions=grant.max_extensions,
        countdown=countdown,
    )


Result = tuple[Session, tuple[Effect, ...]]


# --------------------------------------------------------------------------- ending


def actor_of(session: Session, reason: env.ByeReason) -> str:
    """Who ended a session, for the audit log."""
    if reason is env.ByeReason.OPERATOR:
        return session.staff_id
    if reason in {env.ByeReason.DECLINED, env.ByeReason.DEVICE_LOST}:
        return f"device:{session.device_id}"
    return "system"


def stop_op(purpose: env.Purpose, reason: env.ByeReason) -> CommandOp | None:
    """What the device is told to do after a session ends (nothing if it is gone or declined)."""
    if reason is env.ByeReason.DEVICE_LOST:
        return None
    if purpose is env.Purpose.CALL:
        return None if reason is env.ByeReason.DECLINED else CommandOp.HANGUP
    return CommandOp.SLEEP


def close(
    s: Session,
    reason: env.ByeReason,
    now: datetime,
    *,
    detail: str | None = None,
    tell_device: bool = True,
) -> Result:
    """End ``s`` once: ``bye`` to the device (media stops at the source), the stop command, the
    row and its audit entry, then ``bye`` to the client (so a new request right after succeeds)."""
    ended = dataclasses.replace(
        s, state=State.CLOSED, held=(), device_candidates=(), end_reason=reason, light=Light.OFF
    )
    effects: list[Effect] = []
    if tell_device:
        effects.append(ToDevice(env.Bye(s.session_id, reason)))
    op = stop_op(s.purpose, reason)
    if op is not None:
        effects.append(Command(op))
    if s.light is not Light.OFF:  # however it ends, even if the device seems gone
        effects.append(Indicate(on=False))
    effects.append(Closed(reason, actor_of(s, reason), detail, now))
    effects.append(ToClient(env.Bye(s.session_id, reason)))
    return ended, tuple(effects)


# --------------------------------------------------------------------------- handlers


def _refuse(s: Session, code: str, message: str) -> Result:
    return s, (Refuse(code, message),)


def _hold(s: Session, message: env.Offer | env.Candidate) -> Result:
    if len(s.held) >= MAX_HELD:
        return _refuse(s, "too_many_candidates", "candidate limit reached")
    return dataclasses.replace(s, held=(*s.held, message)), ()


def _client_offer(s: Session, e: ClientOffer, now: datetime, t: Terms) -> Result:
    if s.has_offer:
        return _refuse(s, "duplicate_offer", "this session has an offer already")
    problem = sdp.check_offer(s.purpose, e.offer.sdp)
    if problem is not None:
        return _refuse(s, "bad_offer", f"{sdp.MESSAGES[problem]} ({problem.value})")
    if s.light is not Light.ON:  # held until the device shows the look (a call: answered)
        return _hold(s, e.offer)
    return dataclasses.replace(s, offer_sent=True), (ToDevice(e.offer),)


def _client_candidate(s: Session, e: ClientCandidate, now: datetime, t: Terms) -> Result:
    if not s.has_offer:
        return _refuse(s, "no_offer", "send the offer before candidates")
    if s.light is not Light.ON:
        return _hold(s, e.candidate)
    return s, (ToDevice(e.candidate),)


def _client_bye(s: Session, e: ClientBye, now: datetime, t: Terms) -> Result:
    return close(s, env.ByeReason.OPERATOR, now)


def _client_gone(s: Session, e: ClientGone, now: datetime, t: Terms) -> Result:
    return close(s, env.ByeReason.OPERATOR, now, detail="disconnected")


def _client_extend(s: Session, e: ClientExtend, now: datetime, t: Terms) -> Result:
    if s.purpose is env.Purpose.CALL:
        return _refuse(s, "not_extendable", "calls have no view cap")
    if s.max_extensions == 0:
        return _refuse(s, "not_extendable", "an extra look is capped at the plan's cap")
    limit = t.max_extensions if s.max_extensions is None else s.max_extensions
    if s.extensions + s.check_use.extensions >= limit:
        return _refuse(s, "extension_limit", "no more extensions for this view")
    if not e.gate.allowed:
        detail = e.gate.reason.value if e.gate.reason else None
        return close(s, env.ByeReason.WITHDRAWN, now, detail=detail)
    deadline = max(s.deadline, now) + timedelta(seconds=s.cap_s)
    extended = dataclasses.replace(s, deadline=deadline, extensions=s.extensions + 1)
    granted = env.Granted(
        s.session_id,
        device_id=s.device_id,
        purpose=s.purpose,
        deadline=deadline.timestamp(),
        cap_s=s.cap_s,
    )
    effects: list[Effect] = [
        Extended(s.staff_id, e.reason.value, deadline, now),
        ArmTimer(deadline),
        ToClient(granted),
    ]
    if s.light is not Light.OFF and s.countdown:  # the home's countdown learns the new end
        effects.append(Indicate(on=True, remaining_s=remaining_s(extended, now)))
    return extended, tuple(effects)


def _client_video(s: Session, e: ClientVideo, now: datetime, t: Terms) -> Result:
    if e.frames <= s.last_frames:
        return s, ()
    return dataclasses.replace(s, last_frames=e.frames, last_frame_at=now), ()


def drive_valid_ms(s: Session, now: datetime, t: Terms) -> int:
    """How long a ``drive`` sent at ``now`` may hold the phone's wheels, milliseconds: the
    unit's dead-man window (:data:`~devices.topics.DRIVE_VALID_MS`), cut short so it never
    outlasts the caller's fresh video (the last decoded-frame report plus ``stale_video_s``);
    0 when the video is stale already."""
    if s.last_frame_at is None:
        return 0
    fresh = timedelta(seconds=t.stale_video_s) - (now - s.last_frame_at)  # exact to the µs
    return max(0, min(DRIVE_VALID_MS, fresh // timedelta(milliseconds=1)))


def _in_call(s: Session) -> bool:
    return s.purpose is env.Purpose.CALL and s.state is State.CONNECTED


def _client_drive(s: Session, e: ClientDrive, now: datetime, t: Terms) -> Result:
    if not _in_call(s):
        return _refuse(s, "not_in_call", "drive only during an accepted call")
    valid_ms = drive_valid_ms(s, now, t)
    if valid_ms < 1:
        return _refuse(s, "video_stale", "no fresh video from the phone; not driving")
    return s, (Drive(e.linear, e.angular, valid_ms),)


def _client_dock(s: Session, e: ClientDock, now: datetime, t: Terms) -> Result:
    """Back to the charger: the phone drives there by itself (no fresh video needed: it is
    what the caller asks for when the picture is gone)."""
    if not _in_call(s):
        return _refuse(s, "not_in_call", "dock only during an accepted call")
    return s, (Dock(),)


def _unit_reported(s: Session, e: UnitReported, now: datetime, t: Terms) -> Result:
    """What the phone says of itself reaches the caller while the call is up."""
    if not _in_call(s):
        return s, ()
    return s, (ToClient(e.report),)


def _device_answer(s: Session, e: DeviceAnswer, now: datetime, t: Terms) -> Result:
    if s.answered:
        return s, ()  # QoS 1 may deliver twice: the first answer wins
    effects: list[Effect] = [ToClient(e.answer), *(ToClient(c) for c in s.device_candidates)]
    state = s.state
    if state is State.GRANTED:
        state = State.CONNECTED
        effects.append(MarkConnected(now, None, is_audited=False))
    return dataclasses.replace(s, answered=True, device_candidates=(), state=state), tuple(effects)


def _device_candidate(s: Session, e: DeviceCandidate, now: datetime, t: Terms) -> Result:
    if s.answered:
        return s, (ToClient(e.candidate),)
    if len(s.device_candidates) >= MAX_HELD:
        return s, ()
    return dataclasses.replace(s, device_candidates=(*s.device_candidates, e.candidate)), ()


_DEVICE_BYE_REASONS = frozenset(
    {env.ByeReason.DECLINED, env.ByeReason.DEVICE_LOST, env.ByeReason.NO_ANSWER}
)


def _device_bye(s: Session, e: DeviceBye, now: datetime, t: Terms) -> Result:
    reason = e.reason if e.reason in _DEVICE_BYE_REASONS else env.ByeReason.DEVICE_LOST
    return close(s, reason, now, tell_device=False)


def _device_error(s: Session, e: DeviceError, now: datetime, t: Terms) -> Result:
    """The device refused the session's signalling and closed its side: the client learns the
    device's code, then the session ends ``device_lost`` (no ``bye`` or stop command back, so
    two sides never trade messages about a session one of them has dropped)."""
    told = ToClient(
        env.Error(code=e.code, message="the device refused the session", session_id=s.session_id)
    )
    ended, effects = close(s, env.ByeReason.DEVICE_LOST, now, detail=e.code, tell_device=False)
    return ended, (told, *effects)


def call_limit_s(s: Session, t: Terms) -> float:
    """How long a call may last once answered, seconds: an auto-answered call its plan's call
    cap (issue 15: nobody pressed anything, so it ends by itself, ``bye timeout``); a call the
    brukare answered by pressing *Svara* ``Terms.max_call_s``, as before."""
    if s.auto_answer and s.call_cap_s is not None:
        return min(s.call_cap_s, t.max_call_s)
    return t.max_call_s


def is_announced(s: Session, now: datetime) -> bool:
    """Whether a call may be answered at ``now``: always, unless it answers by itself and its
    announcement (``ring.announce_s``, which the phone runs after the ring that went out when the
    session opened) cannot be over yet (issue 15: no video before the chime and the name)."""
    if not s.auto_answer or s.announce_s is None:
        return True
    return now >= s.started_at + timedelta(seconds=s.announce_s)


def _call_answered(s: Session, e: CallAnswered, now: datetime, t: Terms) -> Result:
    if not is_announced(s, now):  # the phone skipped its announcement: no video for it
        told = ToClient(
            env.Error(
                code=NOT_ANNOUNCED,
                message="the phone answered before it announced the call",
                session_id=s.session_id,
            )
        )
        ended, effects = close(s, env.ByeReason.DEVICE_LOST, now, detail=NOT_ANNOUNCED)
        return ended, (told, *effects)
    deadline = now + timedelta(seconds=call_limit_s(s, t))
    connected = dataclasses.replace(s, state=State.CONNECTED, deadline=deadline, light=Light.ASKED)
    return connected, (
        ArmTimer(deadline),
        MarkConnected(now, deadline, is_audited=True),
        Indicate(on=True),  # the held offer goes to the phone once it shows the call
    )


def _call_declined(s: Session, e: CallDeclined, now: datetime, t: Terms) -> Result:
    return close(s, env.ByeReason.DECLINED, now)


def _ring_failed(s: Session, e: RingFailed, now: datetime, t: Terms) -> Result:
    return close(s, env.ByeReason.DEVICE_LOST, now, detail="ring_failed")


def _timer_fired(s: Session, e: TimerFired, now: datetime, t: Terms) -> Result:
    if now < s.deadline:  # an old timer (the deadline moved): wait for the new one
        return s, (ArmTimer(s.deadline),)
    reason = env.ByeReason.NO_ANSWER if s.state is State.RINGING else env.ByeReason.TIMEOUT
    return close(s, reason, now)


def _gate_denied(s: Session, e: GateDenied, now: datetime, t: Terms) -> Result:
    return close(s, env.ByeReason.WITHDRAWN, now, detail=e.reason)


def _device_lost(s: Session, e: DeviceLost, now: datetime, t: Terms) -> Result:
    return close(s, env.ByeReason.DEVICE_LOST, now, detail=e.detail, tell_device=False)


def _shutdown(s: Session, e: Shutdown, now: datetime, t: Terms) -> Result:
    return close(s, env.ByeReason.TIMEOUT, now, detail="shutdown")


def remaining_s(s: Session, now: datetime) -> float | None:
    """What ``indicator on`` says is left of the look: a view's seconds to its deadline when
    its plan shows the countdown, else nothing (a probe, a call: a plain indicator)."""
    if s.purpose is not env.Purpose.VIEW or not s.countdown:
        return None
    return round(max(0.0, (s.deadline - now).total_seconds()), 1)


def _started(s: Session, e: Started, now: datetime, t: Terms) -> Result:
    """Granted: a view or probe asks the device for its indicator at once (the client's offer
    waits for the ack, and the client builds its offer meanwhile); a call asks when answered."""
    if s.purpose is env.Purpose.CALL or s.light is not Light.OFF:
        return s, ()
    return dataclasses.replace(s, light=Light.ASKED), (
        Indicate(on=True, remaining_s=remaining_s(s, now)),
    )


def _indicator_acked(s: Session, e: IndicatorAcked, now: datetime, t: Terms) -> Result:
    """The device shows the look: what the client sent meanwhile goes to the device, in order."""
    if s.light is not Light.ASKED:
        return s, ()
    lit = dataclasses.replace(s, light=Light.ON, held=(), offer_sent=s.has_offer)
    return lit, tuple(ToDevice(m) for m in s.held)


def _indicator_not_acked(s: Session, e: IndicatorNotAcked, now: datetime, t: Terms) -> Result:
    """Device trouble (hard rule 7): the look ends ``device_lost`` before anything flowed (or,
    for a countdown update, at once), and the client learns why."""
    told = ToClient(
        env.Error(
            code=env.INDICATOR_NOT_ACKED,
            message="the device did not show that the look is live",
            session_id=s.session_id,
        )
    )
    ended, effects = close(s, env.ByeReason.DEVICE_LOST, now, detail=env.INDICATOR_NOT_ACKED)
    return ended, (told, CheckTrouble(env.INDICATOR_NOT_ACKED), *effects)


Handler = Callable[[Session, Any, datetime, Terms], Result]
_OPEN = (State.GRANTED, State.RINGING, State.CONNECTED)
_ANY_OPEN: dict[type, Handler] = {
    ClientOffer: _client_offer,
    ClientCandidate: _client_candidate,
    ClientBye: _client_bye,
    ClientExtend: _client_extend,
    ClientVideo: _client_video,
    ClientDrive: _client_drive,
    ClientDock: _client_dock,
    ClientGone: _client_gone,
    DeviceAnswer: _device_answer,
    DeviceCandidate: _device_candidate,
    DeviceBye: _device_bye,
    DeviceError: _device_error,
    CallDeclined: _call_declined,
    RingFailed: _ring_failed,
    TimerFired: _timer_fired,
    GateDenied: _gate_denied,
    DeviceLost: _device_lost,
    Shutdown: _shutdown,
    Started: _started,
    IndicatorAcked: _indicator_acked,
    IndicatorNotAcked: _indicator_not_acked,
    UnitReported: _unit_reported,
}
TABLE: dict[tuple[State, type], Handler] = {
    **{(state, kind): h for state in _OPEN for kind, h in _ANY_OPEN.items()},
    (State.RINGING, CallAnswered): _call_answered,
}
"""(state, event type) -> handler; a pair not here changes nothing (a closed session, a call
answered twice, a decline of a view)."""

_CLIENT_EVENTS = (ClientOffer, ClientCandidate, ClientExtend, ClientDrive, ClientDock)


def apply(session: Session, event: Event, now: datetime, terms: Terms = DEFAULT_TERMS) -> Result:
    """Apply ``event`` to ``session`` at ``now``: the new session and the effects, in order."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if isinstance(event, CallAnswered | CallDeclined) and session.purpose is not env.Purpose.CALL:
        return session, ()
    handler = TABLE.get((session.state, type(event)))
    if handler is None:
        if session.state is State.CLOSED and isinstance(event, _CLIENT_EVENTS):
            return _refuse(session, "session_closed", "the session has ended")
        return session, ()
    return handler(session, event, now, terms)
