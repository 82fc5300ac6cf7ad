"""Fault: a camera's network flaps during a live view.

The simulated camera's TCP connection to the broker is cut under it (``shutdown`` of its socket,
as a dropped Wi-Fi would): Mosquitto fires its will (``offline`` with the connection's session),
the camera reconnects by itself with a newer session. Each time, the live view ends cleanly:
the operator gets ``bye device_lost``, the session row is closed with that reason, nothing stays
open, and once the camera is back a new view works - also after several flaps in a row.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from devices import envelope as env
from devices.topics import DeviceKind
from tests.integration.signalling_home import Served, seed_home, served
from tests.integration.signalling_support import wait_for
from tools.view import View

pytestmark = pytest.mark.integration

CAMERA = "cam-0081"


def cut_network(s: Served) -> int:
    """Cut the camera's broker connection; return the session it had."""
    device = s.peers[CAMERA].device
    client = device._client  # the simulator's aiomqtt client
    assert client is not None
    sock = client._client.socket()  # paho's socket
    assert sock is not None
    sock.shutdown(socket.SHUT_RDWR)
    return device.session


NOTE = "the camera keeps dropping"  # an extra look each time: a lost camera sends the check
# itself to the patrol, so these views are owed to no check


async def test_flapping_camera_ends_the_view_cleanly_each_time(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    async with served(database_url, mqtt_url, topic_prefix, [(CAMERA, DeviceKind.CAMERA)]) as s:
        await seed_home(s, "rec-0081", [CAMERA])
        device = s.peers[CAMERA].device
        for flap in range(3):
            async with s.channel() as channel:
                view = View(channel, CAMERA, reason=env.LookReason.FOLLOW_UP, note=NOTE)
                task = asyncio.create_task(view.run())
                await wait_for(
                    lambda v=view: v.result.frames >= 3, what=f"frames before flap {flap}"
                )
                before = cut_network(s)
                async with asyncio.timeout(10):
                    result = await task
                assert result.bye == env.ByeReason.DEVICE_LOST.value, result
            # Nothing stays open: not in memory, not in the shared table.
            await wait_for(lambda: not s.rt.signalling.sessions, what="no live session in memory")
            rows = await s.rt.pool.fetch(
                "SELECT state, end_reason FROM signal_sessions WHERE device_id = $1", CAMERA
            )
            assert len(rows) == flap + 1
            assert {(r["state"], r["end_reason"]) for r in rows} == {("closed", "device_lost")}
            # The camera comes back by itself, with a newer session, and is online again.
            await wait_for(
                lambda b=before: device.session > b and device.connected.is_set(),
                what="the camera reconnected",
            )
            await wait_for(
                lambda: s.rt.pool.fetchval(
                    "SELECT presence = 'online' AND session = $2 FROM devices WHERE device_id = $1",
                    CAMERA,
                    device.session,
                ),
                what="presence online with the new session",
            )
        # After all that, a view still works end to end.
        async with s.channel() as channel:
            view = View(channel, CAMERA, reason=env.LookReason.FOLLOW_UP, note=NOTE)
            task = asyncio.create_task(view.run())
            await wait_for(lambda: view.result.frames >= 3, what="frames after the flaps")
            await view.hang_up()
            async with asyncio.timeout(10):
                await task
