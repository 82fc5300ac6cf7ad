"""The whole service (``services.app.runtime``) with simulated homes and real consent records.

:func:`served` runs the composed application on a test server with a *night clock* (tonight
22:00 in Stockholm, advancing in real time), so agreed windows hold whenever the suite runs.
:func:`seed_home` writes a brukare, a care plan, consents and bindings through the real
consent store; the real gate then decides every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp.test_utils import TestServer

from consent import enrol
from consent.model import (
    DEFAULT_ANNOUNCE_S,
    DEFAULT_CALL_CAP_S,
    CarePlan,
    CareRecipient,
    CheckTime,
    Purpose,
)
from devices import envelope as env
from devices.topics import DeviceKind
from homeside.device import DeviceClient, DeviceSpec
from homeside.peer import AnswerPolicy, DevicePeer
from identity import store as staff_store
from kernel.roles import Role
from kernel.tenancy import DEFAULT_TEAM
from kernel.timing import Timing
from services import app
from services.settings import load
from simulators.homes import attach
from simulators.scenes import Scene, SceneKind
from tests.integration.signalling_support import JumpClock, wait_for
from tools.view import WebSocketChannel

STHLM = ZoneInfo("Europe/Stockholm")
ADMIN = "staff-admin01"
ADMIN2 = "staff-admin02"


def night_clock(hour: int = 22) -> JumpClock:
    """Tonight ``hour``:00 local time, then real time passing, plus whatever
    :meth:`~tests.integration.signalling_support.JumpClock.advance` added."""
    today = date.today()
    return JumpClock(datetime(today.year, today.month, today.day, hour, 0, tzinfo=STHLM))


@dataclass
class Served:
    rt: app.Runtime
    server: TestServer
    token: str
    peers: dict[str, DevicePeer]
    clock: JumpClock

    @property
    def ws_url(self) -> str:
        return str(self.server.make_url("/ws/signal"))

    @contextlib.asynccontextmanager
    async def channel(self, token: str | None = None) -> AsyncIterator[WebSocketChannel]:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        async with (
            aiohttp.ClientSession(headers=headers) as http,
            http.ws_connect(self.ws_url, max_msg_size=env.MAX_MESSAGE_BYTES * 2) as ws,
        ):
            yield WebSocketChannel(ws)


async def _staff_token(
    rt: app.Runtime, username: str, role: Role, *, on_duty_at: datetime | None = None
) -> str:
    """A bearer token; ``on_duty_at``: the account starts its duty then (a view needs it)."""
    async with rt.pool.acquire() as conn:
        account = await staff_store.create_staff(
            conn, username=username, role=role, password=None, is_service=True
        )
        token = await staff_store.create_token(
            conn, staff_id=account.staff_id, role=role, ttl_s=600, label="signalling test"
        )
    if on_duty_at is not None:
        assert rt.rounds is not None
        await rt.rounds.store.start_duty(account.staff_id, at=on_duty_at)
    return token


async def due_check(s: Served, device_id: str, *, timeout_s: float = 15.0) -> str:
    """The id of the real round's check of ``device_id`` once it waits for a human view
    (``needs_view``: a home seeded without motion consent goes there as soon as its check is
    claimed), which is what a view must be owed to."""
    found: list[str] = []

    async def queued() -> bool:
        check_id = await s.rt.pool.fetchval(
            "SELECT check_id FROM round_checks WHERE device_id = $1 AND state = 'needs_view'"
            " ORDER BY agreed_at LIMIT 1",
            device_id,
        )
        if check_id is not None:
            found.append(check_id)
        return check_id is not None

    await wait_for(queued, timeout_s=timeout_s, what=f"a check of {device_id} needing a view")
    return found[0]


@contextlib.asynccontextmanager
async def served(
    database_url: str,
    mqtt_url: str,
    prefix: str,
    devices: Iterable[tuple[str, DeviceKind]],
    *,
    policy: AnswerPolicy | None = None,
    scene: SceneKind = SceneKind.WALKING,
    instance_id: str | None = None,
    timing: Timing | None = None,
) -> AsyncIterator[Served]:
    """The composed service plus simulated devices with real media, all online (``timing``:
    another timing policy, e.g. a shorter probe window)."""
    settings = dataclasses.replace(
        load({}),
        database_url=database_url,
        mqtt_url=mqtt_url,
        mqtt_topic_prefix=prefix,
        instance_id=instance_id or f"app-{uuid.uuid4().hex[:8]}",
    )
    if timing is not None:
        settings = dataclasses.replace(settings, timing=timing)
    clock = night_clock()
    async with app.runtime(settings, clock=clock) as rt:
        await rt.signalling.wait_ready()
        # the test operator is on duty: every view needs it (issue 15)
        token = await _staff_token(rt, "op-signal", Role.OPERATOR, on_duty_at=clock())
        server = TestServer(rt.app, host="127.0.0.1")
        await server.start_server()
        peers: dict[str, DevicePeer] = {}
        stop = asyncio.Event()
        tasks = []
        for device_id, kind in devices:
            spec = DeviceSpec(device_id, kind, width=320, height=240, fps=10.0)
            sim = DeviceClient(spec, mqtt_url, prefix=prefix, health_interval_s=3600)
            peers[device_id] = attach(sim, scene=Scene(scene, seed=7), policy=policy)
            tasks.append(asyncio.create_task(sim.run(stop)))
        try:
            for device_id in peers:
                await wait_for(lambda d=device_id: _online(rt, d), what=f"{device_id} online")
            yield Served(rt, server, token, peers, clock)
        finally:
            stop.set()
            for peer in peers.values():
                await peer.close()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.close()


async def _online(rt: app.Runtime, device_id: str) -> bool:
    value = await rt.pool.fetchval(
        "SELECT presence = 'online' AND kind IS NOT NULL FROM devices WHERE device_id = $1",
        device_id,
    )
    return value is True


async def seed_home(
    s: Served,
    recipient_id: str,
    device_ids: Iterable[str],
    *,
    purposes: Iterable[Purpose] = (Purpose.CAMERA_CHECK,),
    check_at: time = time(22, 5),  # after the bindings (the night clock starts at 22:00)
    view_cap_s: int = 30,
    call_cap_s: int = DEFAULT_CALL_CAP_S,
    announce_s: int = DEFAULT_ANNOUNCE_S,
    team_id: str = DEFAULT_TEAM,
    display_name: str = "Testperson",
) -> None:
    """A brukare of ``team_id`` with consents, bound devices and a plan (one check, ±60 min; the
    call terms given); the real round then plans tonight's check (:func:`due_check`)."""
    store, now = s.rt.consent, s.clock()
    since = now - timedelta(days=2)
    await store.add_recipient(
        CareRecipient(recipient_id=recipient_id, display_name=display_name, team_id=team_id),
        actor=ADMIN,
        at=now,
    )
    await enrol.grant(
        store,
        recipient_id,
        purposes,
        given_at=since,
        informed_by=ADMIN,
        informed_how="samtal i hemmet",
        actor=ADMIN,
        at=now,
    )
    for device_id in device_ids:
        await enrol.bind(store, device_id, recipient_id, actor=ADMIN, at=now, confirmed_by=ADMIN2)
    # the plan last: the round plans its check with the consents and devices in place
    await store.add_plan(
        CarePlan(
            plan_id=f"plan-{recipient_id}",
            recipient_id=recipient_id,
            decision_ref="SN-TEST",
            valid_from=since,
            checks=(CheckTime(check_at, 60),),
            view_cap_s=view_cap_s,
            call_cap_s=call_cap_s,
            announce_s=announce_s,
        ),
        actor=ADMIN,
        at=now,
    )
