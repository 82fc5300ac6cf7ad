"""Records for simulated homes whose care plans cover the whole day, so views and calls can be
opened at any hour: the browser test and trying things by hand (``homecare demo`` itself seeds its
demo night with :mod:`tools.demo_seed`).

For each home ``N`` (devices ``cam-000N`` and ``phone-000N``): a brukare ``rec-demo-000N``, a care
plan whose 24 agreed checks (every hour at half past, ±30 min) cover the whole day for three
days, the consents camera check, motion analysis and video call, and the home's devices bound in
two steps. Written through the consent store, so everything is validated and audited like an
administrator's work. A home that exists already is left as it is. Demo only: a real plan has a
few agreed times a night.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time, timedelta

import structlog

from consent import enrol
from consent.errors import Conflict, InvalidInput
from consent.model import CarePlan, CareRecipient, CheckTime, Purpose
from consent.ports import ConsentStore

log = structlog.get_logger(__name__)

ACTOR = "system"
PURPOSES = (Purpose.CAMERA_CHECK, Purpose.MOTION_ANALYSIS, Purpose.VIDEO_CALL)
#: Every hour at half past, ±30 min, noon to noon: windows meet but never overlap.
ALL_DAY = tuple(CheckTime(time((12 + h) % 24, 30), 30) for h in range(24))
#: Without the check of 02:30, which a spring-forward night would fold onto 03:30.
ALL_DAY_DST = tuple(c for c in ALL_DAY if c.at != time(2, 30))


def recipient_of(device_id: str) -> str:
    return "rec-demo-" + device_id.rsplit("-", 1)[-1]


async def seed_demo_homes(
    store: ConsentStore,
    device_ids: Iterable[str],
    *,
    at: datetime,
    days: int = 3,
    view_cap_s: int = 30,
) -> list[str]:
    """Seed the homes of ``device_ids`` (already known to the registry); return the new
    brukare ids. ``view_cap_s`` is the plans' view cap (``consent.model.MIN_VIEW_CAP_S`` to
    ``MAX_VIEW_CAP_S`` s)."""
    homes: dict[str, list[str]] = {}
    for device_id in device_ids:
        homes.setdefault(recipient_of(device_id), []).append(device_id)
    created = []
    for rid, devices in sorted(homes.items()):
        try:
            await store.add_recipient(
                CareRecipient(recipient_id=rid, display_name=f"Demo {rid[-4:]}"),
                actor=ACTOR,
                at=at,
            )
        except Conflict:
            continue  # seeded by an earlier demo
        await _plan(store, rid, at, days, view_cap_s)
        await enrol.grant(
            store,
            rid,
            PURPOSES,
            given_at=at,
            informed_by=ACTOR,
            informed_how="demo",
            actor=ACTOR,
            at=at,
        )
        for device_id in devices:
            try:
                await enrol.bind(store, device_id, rid, actor=ACTOR, at=at)
            except Conflict:
                log.warning("demo_binding_skipped", device_id=device_id)
        created.append(rid)
    log.info("demo_homes_seeded", homes=len(created))
    return created


async def _plan(store: ConsentStore, rid: str, at: datetime, days: int, cap_s: int) -> None:
    for checks in (ALL_DAY, ALL_DAY_DST):
        try:
            await store.add_plan(
                CarePlan(
                    plan_id=f"plan-{rid}",
                    recipient_id=rid,
                    decision_ref="DEMO",
                    valid_from=at - timedelta(minutes=1),
                    valid_until=at + timedelta(days=days),
                    checks=checks,
                    view_cap_s=cap_s,
                ),
                actor=ACTOR,
                at=at,
            )
            return
        except InvalidInput:
            if checks is ALL_DAY_DST:
                raise
