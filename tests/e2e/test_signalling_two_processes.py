"""Two ``homecare serve`` processes, one PostgreSQL database, one broker (issue 4, item 6).

Process A (roles ``api,signalling``) holds the operator's ``/ws/signal`` socket; process B (role
``signalling``) only takes its share of the devices' ``webrtc/out`` messages (the shared
subscription ``$share/hc-signal/...``). The camera is a simulated device in this test with real
aiortc media; the operator is an aiortc receiver in this test (``tools.view.View``) that
decodes and counts frames. Views are repeated until B has demonstrably handled a message of a
session A owns (B's ``homecare_signalling_total{event="routed_out"}`` on ``/metrics`` grew during
it); each view ends with a ``bye`` that closes both ends: the operator's hang-up (A tells the
camera, whose peer connection closes) and the camera's own ``bye`` (whichever process takes it
routes it to A, which closes the operator's side).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import asyncpg
import pytest

from consent.store import PgConsentStore
from devices import envelope as env
from devices.topics import DeviceKind
from tests.e2e import browser as b
from tests.integration.signalling_support import devices, wait_for
from tools.demo_homes import seed_demo_homes
from tools.view import View, WebSocketChannel

pytestmark = pytest.mark.e2e

CAM = "cam-0001"
MAX_VIEWS = 10
METRIC = re.compile(r'^homecare_signalling_total\{event="(\w+)"\} (\d+)\.0$', re.M)


@dataclass(frozen=True)
class Pair:
    a: b.Backend
    b: b.Backend
    a_id: str
    b_id: str


@pytest.fixture
def pair(database_url: str, mqtt_url: str) -> Iterator[Pair]:
    prefix = f"t{uuid.uuid4().hex[:10]}/hc/v1"
    tag = uuid.uuid4().hex[:6]
    a_id, b_id = f"sig-a-{tag}", f"sig-b-{tag}"
    with (
        b.backend(
            database_url,
            mqtt_url,
            prefix,
            ready_timeout_s=60,
            HOMECARE_ROLES="api,signalling",
            HOMECARE_INSTANCE_ID=a_id,
        ) as a,
        b.backend(
            database_url,
            mqtt_url,
            prefix,
            ready_timeout_s=60,
            HOMECARE_ROLES="signalling",
            HOMECARE_INSTANCE_ID=b_id,
        ) as b_,
    ):
        yield Pair(a, b_, a_id, b_id)


@pytest.fixture
async def db_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def _counters(http: aiohttp.ClientSession, backend: b.Backend) -> dict[str, int]:
    async with http.get(f"{backend.url}/metrics") as r:
        assert r.status == 200
        return {k: int(v) for k, v in METRIC.findall(await r.text())}


def _token(backend: b.Backend) -> str:
    done = subprocess.run(
        [*b.HOMECARE, "token", "create", "--role", "operator"],
        env=backend.env,
        capture_output=True,
        check=True,
        timeout=60,
        cwd=b.ROOT,
    )
    return done.stdout.decode().strip()


async def test_operator_on_a_views_a_camera_whose_messages_b_handles(
    pair: Pair, db_pool: asyncpg.Pool, mqtt_url: str
) -> None:
    token = await asyncio.to_thread(_token, pair.a)
    prefix = pair.a.env["HOMECARE_MQTT_TOPIC_PREFIX"]
    async with (
        devices(mqtt_url, prefix, db_pool, [(CAM, DeviceKind.CAMERA)]) as devs,
        aiohttp.ClientSession() as http,
    ):
        await seed_demo_homes(PgConsentStore(db_pool), [CAM], at=datetime.now(UTC), view_cap_s=60)
        bearer = {"Authorization": f"Bearer {token}"}
        async with http.post(f"{pair.a.url}/api/rounds/duty", headers=bearer, json={}) as r:
            assert r.status == 201, await r.text()  # a view needs its operator on duty
        camera = devs[CAM]
        views: list[tuple[int, str, int]] = []  # (frames, bye at the operator, B routed during)
        async with http.ws_connect(
            f"{pair.a.url}/ws/signal",
            headers={"Authorization": f"Bearer {token}"},
            max_msg_size=env.MAX_MESSAGE_BYTES,
        ) as ws:
            channel = WebSocketChannel(ws)
            for i in range(MAX_VIEWS):
                before = (await _counters(http, pair.b)).get("routed_out", 0)
                # an extra look (no round runs here): its reason and note, capped, audited
                view = View(channel, CAM, reason=env.LookReason.FOLLOW_UP, note="two processes")
                task = asyncio.create_task(view.run())
                await asyncio.wait_for(view.first_frame.wait(), 30)
                await wait_for(lambda v=view: v.result.frames >= 5, what="5 decoded frames")
                byes_at_camera = camera.peer.stats.byes
                if i % 2 == 0:
                    await view.hang_up()  # operator -> A -> camera's webrtc/in
                else:  # camera -> webrtc/out -> A or B -> A -> operator
                    await camera.sim.send_signal(
                        env.as_json(env.Bye(view.session_id, env.ByeReason.DEVICE_LOST))
                    )
                result = await asyncio.wait_for(task, 15)
                if i % 2 == 0:
                    await wait_for(
                        lambda n=byes_at_camera: camera.peer.stats.byes > n,
                        what="the operator's bye at the camera",
                    )
                else:
                    await camera.peer.close()
                await wait_for(lambda: camera.peer.pc is None, what="the camera's side closed")
                after = (await _counters(http, pair.b)).get("routed_out", 0)
                views.append((result.frames, result.ended, after - before))
                if i >= 1 and any(routed for _, _, routed in views):
                    break
        a_counts = await _counters(http, pair.a)
        b_counts = await _counters(http, pair.b)
    owners = await db_pool.fetch(
        "SELECT instance_id, state, end_reason FROM signal_sessions ORDER BY started_at"
    )
    print(f"\nviews (frames, bye, routed by B): {views}\nA {a_counts}\nB {b_counts}")
    assert all(frames >= 5 for frames, _, _ in views)
    assert [bye for _, bye, _ in views] == [
        "operator" if i % 2 == 0 else "device_lost" for i in range(len(views))
    ]
    assert any(routed for _, _, routed in views), "B never handled a device message"
    assert b_counts["routed_out"] >= 1
    assert a_counts.get("routed_out", 0) == 0  # A owns every session: it never routes out
    assert b_counts.get("routed_in", 0) == 0  # B owns none
    assert a_counts["routed_in"] == b_counts["routed_out"]  # everything B took reached A
    assert len(owners) == len(views)
    assert {r["instance_id"] for r in owners} == {pair.a_id}
    assert all(r["state"] == "closed" for r in owners)
    assert [r["end_reason"] for r in owners] == [bye for _, bye, _ in views]
