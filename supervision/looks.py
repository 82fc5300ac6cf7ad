"""What signalling asks the night round before it grants a view (issue 15: every look is owed to
a check): the check a view names, whether its operator is on duty, and the step ``needs_view ->
viewing`` when the view of a queued check is granted, and ``-> patrol`` when the camera fails
that view (its live indicator not acked: device trouble, hard rule 7).

:class:`CheckLooks` implements ``services.signalling.ports.ChecksPort`` over the round's store
(signalling imports this slice, never the reverse). The step goes through
:meth:`supervision.store.RoundStore.transition` like ``POST /api/checks/{id}/view``: on the
locked row, the operator on duty at that instant, written with its transition row and audit entry,
logged and published to the consoles. A granted view of a queued check is how the console moves
it to ``viewing`` (``POST /api/checks/{id}/view`` still does so, without a picture); a re-open
(``viewing`` held by the same operator) moves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from supervision import checks as ch
from supervision.errors import NotOnDuty, TransitionRefused, UnknownCheck
from supervision.ports import Publish
from supervision.runner import log_transition, publish_transition
from supervision.store import RoundStore


@dataclass(frozen=True, slots=True)
class DueCheck:
    """A check as a view request needs it. ``view_cap_s``: its plan's cap, in seconds."""

    check_id: str
    recipient_id: str
    device_id: str | None
    state: ch.State
    holder: str | None
    view_cap_s: int

    @classmethod
    def of(cls, check: ch.Check) -> DueCheck:
        return cls(
            check.check_id,
            check.recipient_id,
            check.device_id,
            check.state,
            check.holder,
            check.policy.view_cap_s,
        )


class CheckLooks:
    """The round's side of a view request, over :class:`RoundStore`."""

    def __init__(self, store: RoundStore, publish: Publish | None = None) -> None:
        self.store = store
        self.publish = publish

    async def check(self, check_id: str) -> DueCheck | None:
        """The check as stored now, or ``None`` if there is none."""
        try:
            return DueCheck.of(await self.store.get(check_id))
        except UnknownCheck:
            return None

    async def on_duty(self, staff_id: str, at: datetime) -> bool:
        return await self.store.is_on_duty(staff_id, at)

    async def view_opened(self, check_id: str, *, staff_id: str, at: datetime) -> bool:
        """``needs_view -> viewing`` held by ``staff_id`` (on duty at ``at``); ``False`` if the
        check moved meanwhile (another operator took it, it ended) or the duty ended."""
        try:
            tr = await self.store.transition(check_id, ch.ViewOpened(staff_id), at=at, on_duty=True)
        except (TransitionRefused, NotOnDuty, UnknownCheck):
            return False
        log_transition(tr)
        publish_transition(self.publish, tr)
        return True

    async def device_trouble(self, check_id: str, *, reason: str, at: datetime) -> bool:
        """The camera failed the check's view (its live indicator was not acked): the check
        goes to a physical visit (``DeviceLost``, hard rule 7); ``False`` if it could not move
        (it ended meanwhile, or is with the patrol already)."""
        try:
            tr = await self.store.transition(check_id, ch.DeviceLost(reason), at=at)
        except (TransitionRefused, UnknownCheck):
            return False
        log_transition(tr)
        publish_transition(self.publish, tr)
        return True
