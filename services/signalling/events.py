"""What happens to a signalling session, and what the interpreter must do about it (pure values).

The machine (:mod:`services.signalling.machine`) takes one **event** at a time and returns
**effects** for the interpreter (:mod:`services.signalling.interpreter`) to perform, in order:

======================  =================================================================
events from             ``Client*`` (the operator's connection), ``Device*`` (its
                        ``webrtc/out`` and presence), ``Call*`` (the phone's buttons),
                        :class:`TimerFired`, :class:`GateDenied`, :class:`RingFailed`,
                        :class:`Shutdown`, :class:`Started` and the indicator's ack
                        (:class:`IndicatorAcked`, :class:`IndicatorNotAcked`)
effects to              the client (:class:`ToClient`, :class:`Refuse`), the device
                        (:class:`ToDevice`, :class:`Command`, :class:`Ring`,
                        :class:`Drive`, :class:`Dock`, :class:`Indicate`), the timer
                        (:class:`ArmTimer`), the row and its audit entries
                        (:class:`MarkConnected`, :class:`Extended`, :class:`Closed`) and
                        the check a view is owed to (:class:`CheckTrouble`)
======================  =================================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from consent.model import Decision
from devices import envelope as env
from devices.topics import CommandOp

DEVICE_ERROR_RE = re.compile(r"[a-z][a-z_]{0,31}")
"""A device's error code as signalling keeps it: 1-32 of ``a-z`` and ``_``."""
GENERIC_DEVICE_ERROR = "device_error"
"""What a device's error code that is not such a code is kept as."""


def device_error_code(raw: str) -> str:
    """The device's error code if it is a short code (:data:`DEVICE_ERROR_RE`), else
    :data:`GENERIC_DEVICE_ERROR`: what a device says never reaches the audit log or a client
    unchecked."""
    return raw if DEVICE_ERROR_RE.fullmatch(raw) else GENERIC_DEVICE_ERROR


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class ClientOffer:
    offer: env.Offer


@dataclass(frozen=True, slots=True)
class ClientCandidate:
    candidate: env.Candidate


@dataclass(frozen=True, slots=True)
class ClientBye:
    pass


@dataclass(frozen=True, slots=True)
class ClientExtend:
    """The operator asks for more time with a reason; ``gate`` is the gate's answer now."""

    reason: env.ExtendReason
    gate: Decision


@dataclass(frozen=True, slots=True)
class ClientVideo:
    frames: int


@dataclass(frozen=True, slots=True)
class ClientDrive:
    linear: float
    angular: float


@dataclass(frozen=True, slots=True)
class ClientDock:
    """The caller sends the video phone back to its charger."""


@dataclass(frozen=True, slots=True)
class UnitReported:
    """The call's video phone reported a bump, an edge, its dock or its battery (``unit`` on
    its ``webrtc/out``)."""

    report: env.Unit


@dataclass(frozen=True, slots=True)
class ClientGone:
    pass


@dataclass(frozen=True, slots=True)
class DeviceAnswer:
    answer: env.Answer


@dataclass(frozen=True, slots=True)
class DeviceCandidate:
    candidate: env.Candidate


@dataclass(frozen=True, slots=True)
class DeviceBye:
    reason: env.ByeReason


@dataclass(frozen=True, slots=True)
class CallAnswered:
    pass


@dataclass(frozen=True, slots=True)
class CallDeclined:
    pass


@dataclass(frozen=True, slots=True)
class RingFailed:
    pass


@dataclass(frozen=True, slots=True)
class TimerFired:
    pass


@dataclass(frozen=True, slots=True)
class GateDenied:
    """The gate turned to deny (withdrawal, pause, unbinding, window end, suspension)."""

    reason: str | None


@dataclass(frozen=True, slots=True)
class DeviceLost:
    detail: str


@dataclass(frozen=True, slots=True)
class Shutdown:
    pass


@dataclass(frozen=True, slots=True)
class Started:
    """The client was told ``granted``: a view or probe lights the device's indicator now,
    before its offer can reach the device (a call lights it when it is answered)."""


@dataclass(frozen=True, slots=True)
class IndicatorAcked:
    """The device acked ``indicator on``: its light shows the look, media may flow."""


@dataclass(frozen=True, slots=True)
class IndicatorNotAcked:
    """No ack of ``indicator on`` within ``indicator_ack_s`` (or ``ok: false``, or no route to
    the device): device trouble for the look."""


@dataclass(frozen=True, slots=True)
class DeviceError:
    """The device refused a message of the session (an ``error`` envelope on its ``webrtc/out``)
    and closed its side; ``code`` is its reason (see :func:`device_error_code`)."""

    code: str

    def __post_init__(self) -> None:
        if not DEVICE_ERROR_RE.fullmatch(self.code):
            raise ValueError("a device error code is 1-32 of a-z and _")


Event = (
    ClientOffer
    | ClientCandidate
    | ClientBye
    | ClientExtend
    | ClientVideo
    | ClientDrive
    | ClientDock
    | ClientGone
    | DeviceAnswer
    | DeviceCandidate
    | DeviceBye
    | DeviceError
    | CallAnswered
    | CallDeclined
    | RingFailed
    | TimerFired
    | GateDenied
    | DeviceLost
    | Shutdown
    | Started
    | IndicatorAcked
    | IndicatorNotAcked
    | UnitReported
)

# --------------------------------------------------------------------------- effects


@dataclass(frozen=True, slots=True)
class ToClient:
    """Send to the client (the interpreter adds TURN credentials to a ``granted``)."""

    message: env.Envelope


@dataclass(frozen=True, slots=True)
class ToDevice:
    """Publish on the device's ``webrtc/in`` (the interpreter adds TURN credentials to an offer)."""

    message: env.Envelope


@dataclass(frozen=True, slots=True)
class Refuse:
    """An ``error`` envelope to the client; nothing else changed."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Command:
    """A device command whose ack only gets logged (``sleep``, ``hangup``)."""

    op: CommandOp


@dataclass(frozen=True, slots=True)
class Ring:
    """``cmd ring``; if it fails the interpreter feeds :class:`RingFailed`."""

    timeout_s: float
    auto_answer: bool


@dataclass(frozen=True, slots=True)
class Drive:
    """``cmd drive`` valid for ``valid_ms`` (the unit's dead man); the interpreter answers the
    client ``ack`` or ``error``."""

    linear: float
    angular: float
    valid_ms: int


@dataclass(frozen=True, slots=True)
class Dock:
    """``cmd dock`` for the call; the interpreter answers the client ``ack`` or ``error``."""


@dataclass(frozen=True, slots=True)
class Indicate:
    """``cmd indicator`` (:class:`devices.topics.Indicator`): ``on`` with the look's seconds
    left (``remaining_s``, a view whose plan shows the countdown) and the interpreter feeds
    :class:`IndicatorAcked` or :class:`IndicatorNotAcked` from its ack; ``off`` only logs a
    missing ack."""

    on: bool
    remaining_s: float | None = None


@dataclass(frozen=True, slots=True)
class CheckTrouble:
    """The device failed the look (``reason``, e.g. ``indicator_not_acked``): the check the
    session is owed to, if any, goes to a physical visit (hard rule 7)."""

    reason: str


@dataclass(frozen=True, slots=True)
class ArmTimer:
    """Feed :class:`TimerFired` at ``at`` (replaces the session's timer)."""

    at: datetime


@dataclass(frozen=True, slots=True)
class MarkConnected:
    """Row to ``connected`` (and audit ``{purpose}.answered`` as ``device:<id>`` if audited)."""

    at: datetime
    deadline: datetime | None
    is_audited: bool


@dataclass(frozen=True, slots=True)
class Extended:
    """Row deadline moved, audited ``{purpose}.extended`` by ``actor`` with ``reason``."""

    actor: str
    reason: str
    deadline: datetime
    at: datetime


@dataclass(frozen=True, slots=True)
class Closed:
    """Row closed, audited ``{purpose}.ended`` by ``actor``; the connection forgets the session."""

    reason: env.ByeReason
    actor: str
    detail: str | None
    at: datetime


Effect = (
    ToClient
    | ToDevice
    | Refuse
    | Command
    | Ring
    | Drive
    | Dock
    | Indicate
    | CheckTrouble
    | ArmTimer
    | MarkConnected
    | Extended
    | Closed
)
