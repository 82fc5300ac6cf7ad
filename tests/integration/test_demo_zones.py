"""The demo gives every simulated camera the bed and floor of its scene, once: a second seed
changes and audits nothing, and zones someone set are kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from consent.store import PgConsentStore
from simulators.scenes import Scene, SceneKind
from supervision import zone_store
from supervision.zones import from_json
from tools import demo_seed as demo

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)


async def zone_audits(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch(
        "SELECT subject FROM audit_log WHERE action = 'device.zones_set' ORDER BY seq"
    )
    return [r["subject"] for r in rows]


async def test_the_demo_seeds_each_cameras_scene_zones_once(pool: asyncpg.Pool) -> None:
    store = PgConsentStore(pool)
    mine = from_json(
        {
            "width": 64,
            "height": 48,
            "zones": [{"name": "bed", "polygon": [[0, 0], [30, 0], [0, 30]]}],
        }
    )
    await pool.execute("INSERT INTO devices (device_id, kind) VALUES ('cam-0002', 'camera')")
    await zone_store.put(pool, "cam-0002", mine, actor="staff-tech01", at=NOW)

    seeded = await demo.seed_consent(store, pool, homes=3, now=NOW)
    assert seeded.zoned == 2
    assert await zone_audits(pool) == ["cam-0002", "cam-0001", "cam-0003"]
    expected = Scene(SceneKind.ASLEEP).zones(320, 240)
    for camera in ("cam-0001", "cam-0003"):
        zones = await zone_store.get(pool, camera)
        assert zones is not None
        assert (zones.width, zones.height) == (320, 240)
        assert {z.name: z.polygon for z in zones.zones} == expected
    assert await zone_store.get(pool, "cam-0002") == mine  # set by someone: kept
    assert await zone_store.get(pool, demo.phone_id(3)) is None  # phones have none

    again = await demo.seed_consent(store, pool, homes=3, now=NOW + timedelta(minutes=1))
    assert again.zoned == 0
    assert await zone_audits(pool) == ["cam-0002", "cam-0001", "cam-0003"]
