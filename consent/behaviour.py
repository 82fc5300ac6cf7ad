"""Hard rule 8 at the edge: device behaviour that may mean the brukare took the camera down.

The composition root hands :meth:`BehaviourWatch.device_event` every device ``event`` the
registry accepted and :meth:`BehaviourWatch.health_flags` the health flags that turned on
(``shutter_closed``, ``tamper``); the rounds report the motion probe's ``covered`` verdicts to
:meth:`BehaviourWatch.covered` and each check they found the camera offline for to
:meth:`BehaviourWatch.offline_at_check`.
The policy (:func:`consent.rules.should_suspend`) decides; the store records the event, the
suspension and their audit entries in one transaction and publishes a ``suspended``
:class:`~consent.model.ConsentChange`, so live sessions of that brukare end at once. Camera checks
stay suspended until an administrator re-verifies consent (``POST
/api/recipients/{id}/reverify``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog

from consent.model import BehaviourEvent, Suspension
from consent.ports import ConsentStore

log = structlog.get_logger(__name__)


class BehaviourWatch:
    """Counts behaviour events of bound devices; ``threshold`` is the setting
    ``HOMECARE_TAMPER_SUSPEND_THRESHOLD`` (privacy-switch events before a suspension)."""

    def __init__(self, store: ConsentStore, *, threshold: int = 1) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self._store = store
        self._threshold = threshold

    async def device_event(
        self, device_id: str, event_type: str, at: datetime
    ) -> Suspension | None:
        """A device ``event`` of any type; those that are not behaviour (``call_answer``, ...)
        and events of unbound devices change nothing (``None``)."""
        try:
            kind = BehaviourEvent(event_type)
        except ValueError:
            return None
        if kind in (BehaviourEvent.COVERED, BehaviourEvent.OFFLINE_AT_CHECK):
            return None  # a verdict of ours, never a device's word
        return await self._record(device_id, kind, at)

    async def covered(self, device_id: str, at: datetime) -> Suspension | None:
        """The motion probe saw a covered lens on ``device_id`` during a check."""
        return await self._record(device_id, BehaviourEvent.COVERED, at)

    async def health_flags(
        self, device_id: str, flags: Sequence[str], at: datetime
    ) -> Suspension | None:
        """Health flags of ``device_id`` that turned on with this report (``shutter_closed``,
        ``tamper``); the first suspension they start, if any."""
        found = None
        for flag in flags:
            s = await self._record(device_id, BehaviourEvent(flag), at)
            found = found or s
        return found

    async def offline_at_check(
        self,
        device_id: str,
        agreed_at: datetime,
        agreed_checks: Sequence[datetime],
        *,
        observed_at: datetime,
    ) -> Suspension | None:
        """The round found ``device_id`` offline for its check agreed at ``agreed_at``;
        ``agreed_checks`` are the agreed instants of the brukare's checks around it (two in a
        row count, :data:`consent.rules.OFFLINE_CHECKS_IN_A_ROW`)."""
        return await self._record(
            device_id, BehaviourEvent.OFFLINE_AT_CHECK, agreed_at, agreed_checks, observed_at
        )

    async def _record(
        self,
        device_id: str,
        kind: BehaviourEvent,
        at: datetime,
        agreed_checks: Sequence[datetime] = (),
        observed_at: datetime | None = None,
    ) -> Suspension | None:
        found = await self._store.record_device_event(
            device_id=device_id,
            event_type=kind,
            at=at,
            threshold=self._threshold,
            agreed_checks=agreed_checks,
            observed_at=observed_at,
        )
        if found is not None:
            log.warning(
                "supervision_suspended",
                recipient_id=found.recipient_id,
                device_id=device_id,
                event_type=kind.value,
                event_count=found.event_count,
                reason=found.reason.value,
                suspension_id=found.suspension_id,
            )
        return found
