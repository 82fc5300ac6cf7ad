"""The motion probe's zone lookup over the ``camera_zones`` table (wired by ``services.app``).

The probe asks at the start of each watch, so zones an administrator sets apply from the next
check on. No zones (or an empty list) -> None: the probe then never clears a check by itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from supervision import zone_store
from supervision.probe import ViewZones


def lookup(pool: asyncpg.Pool) -> Callable[[str], Awaitable[ViewZones | None]]:
    """A :data:`supervision.probe.ZoneLookup` reading the device's zones from the database."""

    async def zones(device_id: str) -> ViewZones | None:
        try:
            found = await zone_store.get(pool, device_id)
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            raise LookupError(f"zones of {device_id} unreadable: {type(e).__name__}") from e
        if found is None or not found.zones:
            return None
        return ViewZones(found.width, found.height, found.zones)

    return zones
