"""Zones make the motion check able to clear: the composed service (every role) with two
simulated cameras showing a sleeper over real MQTT and WebRTC, both brukare with plans that allow
clearing without a human. An administrator sets the first camera's zones over HTTP (where the
scene's bed and floor are); the round's worker wakes each camera, the probe watches 8 s, and the
check with zones is ``cleared`` while the one without goes to a human (``needs_view``, verdict
reason ``no_bed_zone``). The verdict's numbers, stored with the step, are in the round API:
the queue (the check a human must look at) and the check itself (the cleared one)."""

from __future__ import annotations

import asyncio
from datetime import time, timedelta
from typing import Any

import aiohttp
import pytest

from consent import enrol
from consent.model import CarePlan, CareRecipient, CheckTime, Purpose
from devices.topics import DeviceKind
from kernel.roles import Role
from simulators.scenes import Scene, SceneKind
from supervision import api as rounds_api
from supervision.checks import State
from tests.integration.signalling_home import ADMIN, Served, _staff_token, served

pytestmark = pytest.mark.integration
W, H = 320, 240  # what signalling_home's cameras send
FINAL = {State.CLEARED, State.NEEDS_VIEW, State.PATROL}


async def seed(s: Served, rid: str, device_id: str) -> None:
    store, now = s.rt.consent, s.clock()
    since = now - timedelta(days=2)
    await store.add_recipient(CareRecipient(rid, "Testperson"), actor=ADMIN, at=since)
    await enrol.grant(
        store,
        rid,
        (Purpose.CAMERA_CHECK, Purpose.MOTION_ANALYSIS),
        given_at=since,
        informed_by=ADMIN,
        informed_how="samtal i hemmet",
        actor=ADMIN,
        at=now,
    )
    await enrol.bind(store, device_id, rid, actor=ADMIN, at=since, confirmed_by="staff-admin02")
    # the plan last: a plan whose brukare has no bound camera yet is planned as visits at once
    await store.add_plan(
        CarePlan(
            plan_id=f"plan-{rid}",
            recipient_id=rid,
            decision_ref="SN-TEST",
            valid_from=since,
            checks=(CheckTime(time(22, 0), 60),),
            motion_may_clear=True,
        ),
        actor=ADMIN,
        at=now,
    )


def scene_zones() -> dict[str, Any]:
    polygons = Scene(SceneKind.ASLEEP).zones(W, H)
    return {
        "width": W,
        "height": H,
        "zones": [{"name": n, "polygon": [list(p) for p in poly]} for n, poly in polygons.items()],
    }


async def test_a_sleeper_is_cleared_with_zones_and_goes_to_a_human_without(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    cameras = [("cam-0001", DeviceKind.CAMERA), ("cam-0002", DeviceKind.CAMERA)]
    async with served(database_url, mqtt_url, topic_prefix, cameras, scene=SceneKind.ASLEEP) as s:
        await seed(s, "r-zones", "cam-0001")
        await seed(s, "r-nozones", "cam-0002")
        admin = await _staff_token(s.rt, "admin-zones", Role.ADMINISTRATOR)
        base = str(s.server.make_url(""))
        async with aiohttp.ClientSession(
            base, headers={"Authorization": f"Bearer {admin}"}
        ) as http:
            resp = await http.put("/api/devices/cam-0001/zones", json=scene_zones())
            assert resp.status == 200, await resp.text()
            watchdog = s.rt.app[rounds_api.WATCHDOG]
            await watchdog.plan(watchdog.tonight(s.clock()))
            async with asyncio.timeout(90):
                while True:
                    rows = await s.rt.pool.fetch(
                        "SELECT check_id, device_id, state, reason, verdict FROM round_checks"
                        " ORDER BY device_id"
                    )
                    if len(rows) == 2 and all(r["state"] in FINAL for r in rows):
                        break
                    await asyncio.sleep(0.2)
            got = {r["device_id"]: (r["state"], r["reason"], r["verdict"]) for r in rows}
            assert got["cam-0001"] == (State.CLEARED, "motion_still", "still"), got
            assert got["cam-0002"] == (State.NEEDS_VIEW, "motion_still", "still"), got

            # the verdict's numbers, stored with the step, through the round API
            queue = await (await http.get("/api/rounds/queue")).json()
            queued = {c["device_id"]: c for c in queue["checks"]}
            assert set(queued) == {"cam-0002"}  # a cleared check leaves the queue
            human = queued["cam-0002"]["motion"]
            assert (human["verdict"], human["reason"]) == ("still", "no_bed_zone")
            assert human["numbers"]["frames"] >= 16
            assert "bed_active_s" not in human["numbers"]  # no zones: the whole view only
            cleared_id = next(r["check_id"] for r in rows if r["device_id"] == "cam-0001")
            check = await (await http.get(f"/api/checks/{cleared_id}")).json()
            motion = check["motion"]
            assert (motion["verdict"], motion["reason"]) == ("still", "cleared_activity_in_bed")
            assert 0.0 < motion["confidence"] <= 1.0
            numbers = motion["numbers"]
            assert numbers["bed_active_s"] >= 1.6  # the verdict's own clearing bar
            assert numbers["floor_active_s"] == 0.0
            assert numbers["dark_frac"] == numbers["flat_frac"] == 0.0
            assert all(isinstance(v, float | int) for v in numbers.values())
