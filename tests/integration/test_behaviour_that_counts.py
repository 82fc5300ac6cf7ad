"""Hard rule 8's behaviour that counts (issue 18 item 4), through the composed service on real
PostgreSQL and Mosquitto with the injected clock: a bound simulated camera unplugged during two
agreed checks suspends supervision (``possible_withdrawal``) and the brukare's JSON that the
console draws says why; health reports over MQTT with the shutter closed or tamper on count; a
cohabitant refusing at re-verification ends supervision at once; bad bodies change nothing."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime, time, timedelta
from typing import Any

import aiomqtt
import pytest
from aiohttp.test_utils import TestClient, TestServer

from consent import enrol
from consent.model import (
    CarePlan,
    CareRecipient,
    ChangeKind,
    CheckTime,
    Cohabitant,
    Purpose,
    Reason,
)
from devices import topics
from homeside.device import DeviceClient, DeviceSpec
from identity import store as staff_store
from kernel.clock import ScaledClock
from kernel.roles import Role
from services import app
from services.mqtt import client_args
from services.settings import load
from tests.rounds_support import LONG_AGO, at_local

pytestmark = pytest.mark.integration

# The night after today's: the simulated camera's session counter is its real clock in
# milliseconds, which must not lie ahead of the service's (injected) clock.
NIGHT = date.today() + timedelta(days=1)
RID = "r-0001"
DEVICE = "cam-0001"
ADMIN = "staff-admin01"


@dataclasses.dataclass
class Home:
    rt: app.Runtime
    client: TestClient  # type: ignore[type-arg]
    clock: ScaledClock
    tokens: dict[Role, str]
    mqtt_url: str
    prefix: str

    async def call(self, role: Role, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        resp = await self.client.request(method, path, headers=headers, **kw)
        return resp.status, await resp.json()

    async def gate(self) -> Reason | None:
        d = await self.rt.gate.decide(
            device_id=DEVICE, purpose=Purpose.CAMERA_CHECK, at=self.clock()
        )
        return d.reason

    async def health(self, uptime_s: float = 10, **fields: Any) -> None:
        payload = topics.Health(uptime_s=uptime_s, **fields).encode()
        async with aiomqtt.Client(**client_args(self.mqtt_url)) as c:  # type: ignore[arg-type]
            await c.publish(f"{self.prefix}/dev/{DEVICE}/health", payload, qos=1)


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def home(
    database_url: str,
    mqtt_url: str,
    topic_prefix: str,
    *,
    start: datetime | None = None,
    cohabitant: bool = False,
) -> AsyncIterator[Home]:
    """The composed service (every role) with one brukare, checks agreed at 22:00 and 23:00,
    camera consent, and the bound camera cam-0001 (online in the registry). The clock runs at
    real speed from ``start`` (a standing clock would let the planner's wait for the next
    night jump it ahead); the test moves it with ``set``."""
    clock = ScaledClock(1.0, start or at_local(NIGHT, 22, 0))
    settings = dataclasses.replace(
        load({}), database_url=database_url, mqtt_url=mqtt_url, mqtt_topic_prefix=topic_prefix
    )
    async with app.runtime(settings, clock=clock) as rt:
        await asyncio.wait_for(rt.mqtt.connected.wait(), 10)  # type: ignore[union-attr]
        store = rt.consent
        await store.add_recipient(CareRecipient(RID, "Test Testsson"), actor=ADMIN, at=LONG_AGO)
        if cohabitant:
            await store.add_cohabitant(
                Cohabitant("co-0001", RID, "Sven", moved_in_at=LONG_AGO), actor=ADMIN, at=LONG_AGO
            )
        for person in (None, "co-0001") if cohabitant else (None,):
            await enrol.grant(
                store,
                RID,
                (Purpose.CAMERA_CHECK,),
                given_at=LONG_AGO,
                informed_by="staff-abcdef",
                informed_how="samtal i hemmet",
                actor=ADMIN,
                at=LONG_AGO,
                cohabitant_id=person,
                ids={Purpose.CAMERA_CHECK: f"cons-{person or 'brukare'}"},
            )
        await rt.pool.execute(
            "INSERT INTO devices (device_id, kind, presence) VALUES ($1, 'camera', 'online')"
            " ON CONFLICT (device_id) DO NOTHING",
            DEVICE,
        )
        await enrol.bind(store, DEVICE, RID, actor=ADMIN, at=LONG_AGO, confirmed_by=ADMIN)
        plan = CarePlan(
            plan_id="plan-1",
            recipient_id=RID,
            decision_ref="dec-1",
            valid_from=LONG_AGO,
            checks=(CheckTime(time(22, 0), 15), CheckTime(time(23, 0), 15)),
        )
        await store.add_plan(plan, actor=ADMIN, at=LONG_AGO)  # last: planned with everything
        tokens: dict[Role, str] = {}
        async with rt.pool.acquire() as conn:
            for role in (Role.ADMINISTRATOR, Role.OPERATOR):
                account = await staff_store.create_staff(
                    conn, username=f"t-{role.value}", role=role, password=None, is_service=True
                )
                tokens[role] = await staff_store.create_token(
                    conn, staff_id=account.staff_id, role=role, ttl_s=86400, label="test"
                )
        async with TestClient(TestServer(rt.app)) as client:
            yield Home(rt, client, clock, tokens, mqtt_url, topic_prefix)


async def presence(h: Home) -> str | None:
    value = await h.rt.pool.fetchval("SELECT presence FROM devices WHERE device_id = $1", DEVICE)
    return None if value is None else str(value)


async def test_unplugging_a_bound_camera_during_two_agreed_checks_suspends_supervision(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    async with home(database_url, mqtt_url, topic_prefix, start=at_local(NIGHT, 21, 30)) as h:
        camera = DeviceClient(
            DeviceSpec(DEVICE, topics.DeviceKind.CAMERA),
            mqtt_url,
            prefix=topic_prefix,
            health_interval_s=3600,
        )
        stop = asyncio.Event()
        running = asyncio.create_task(camera.run(stop))
        try:
            await asyncio.wait_for(camera.connected.wait(), 10)
            await until(lambda: _eq(presence(h), "online"))
            # the night is planned with the camera there: both checks by camera
            await until(lambda: _count(h, "SELECT count(*) FROM round_checks", 2))
            # the camera is pulled from the wall: it says nothing, it is just gone
            stop.set()
            await running
            await until(lambda: _eq(presence(h), "stopped"))
            # the 22:00 check, 30 minutes ahead, goes to the patrol: one offline check
            await until(lambda: _count(h, PATROLLED, 1))
            # one is not yet a pattern
            assert await h.rt.pool.fetchval("SELECT count(*) FROM suspensions") == 0
            # the 23:00 check finds the camera still gone: two in a row
            h.clock.set(at_local(NIGHT, 22, 46))
            await until(lambda: _count(h, PATROLLED, 2))
            await until(lambda: _count(h, "SELECT count(*) FROM suspensions", 1))
        finally:
            stop.set()
            await running
        row = await h.rt.pool.fetchrow("SELECT * FROM suspensions")
        assert (row["reason"], row["event_type"], row["event_count"]) == (
            "possible_withdrawal",
            "offline_at_check",
            2,
        )
        events = await h.rt.pool.fetch("SELECT event_type, at FROM behaviour_events ORDER BY at")
        assert [(r["event_type"], r["at"]) for r in events] == [
            ("offline_at_check", at_local(NIGHT, 22, 0)),
            ("offline_at_check", at_local(NIGHT, 23, 0)),
        ]
        await until(lambda: _eq(h.gate(), Reason.SUSPENDED), 10)  # the gate hears at once
        # what the console's brukare screen draws: the suspension, with its reason and cause
        status, shown = await h.call(Role.OPERATOR, "GET", f"/api/recipients/{RID}")
        assert status == 200, shown
        [s] = shown["suspensions"]
        assert (s["reason"], s["event_type"], s["lifted_at"]) == (
            "possible_withdrawal",
            "offline_at_check",
            None,
        )
        status, listed = await h.call(Role.OPERATOR, "GET", "/api/suspensions")
        assert [(x["recipient_id"], x["reason"]) for x in listed["suspensions"]] == [
            (RID, "possible_withdrawal")
        ]


PATROLLED = "SELECT count(*) FROM round_checks WHERE state = 'patrol' AND reason = 'device_offline'"


async def _eq(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def _count(h: Home, sql: str, n: int) -> bool:
    return await h.rt.pool.fetchval(sql) == n


@pytest.mark.parametrize(
    ("flags", "event_type"),
    [({"shutter": topics.Shutter.CLOSED}, "shutter_closed"), ({"tamper": True}, "tamper")],
)
async def test_a_health_report_with_the_shutter_closed_or_tamper_suspends(
    database_url: str,
    mqtt_url: str,
    topic_prefix: str,
    flags: dict[str, Any],
    event_type: str,
) -> None:
    async with home(database_url, mqtt_url, topic_prefix) as h:
        assert await h.gate() is None
        await h.health(uptime_s=5, shutter=topics.Shutter.OPEN)  # counts for nothing
        await until(lambda: _uptime(h, 5))
        async with h.rt.gate.changes() as sub:
            await h.health(**flags)
            async with asyncio.timeout(10):
                while (await sub.get()).kind is not ChangeKind.SUSPENDED:
                    pass
        assert await h.gate() is Reason.SUSPENDED
        row = await h.rt.pool.fetchrow("SELECT reason, event_type FROM suspensions")
        assert (row["reason"], row["event_type"]) == ("possible_withdrawal", event_type)
        # the same flag again is not a new event (it was already on); a device's reports are
        # handled in order, so once the marker (uptime 99) is stored the repeat was handled
        await h.health(**flags)
        await h.health(uptime_s=99, **flags)
        await until(lambda: _uptime(h, 99))
        kinds = await h.rt.pool.fetch("SELECT event_type FROM behaviour_events")
        assert [r["event_type"] for r in kinds] == [event_type]


async def _uptime(h: Home, uptime_s: float) -> bool:
    found = await h.rt.pool.fetchval(
        "SELECT (health->>'uptime_s')::float FROM devices WHERE device_id = $1", DEVICE
    )
    return found == uptime_s


def reverification(spoken_at: datetime, co_answer: str) -> dict[str, Any]:
    return {
        "people": [
            {
                "person_id": RID,
                "how": "visit",
                "spoken_at": spoken_at.isoformat(),
                "answers": {"camera_check": "consents"},
            },
            {
                "person_id": "co-0001",
                "how": "phone",
                "spoken_at": spoken_at.isoformat(),
                "answers": {"camera_check": co_answer},
            },
        ]
    }


async def test_a_cohabitant_who_refuses_at_reverification_ends_supervision_at_once(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    async with home(database_url, mqtt_url, topic_prefix, cohabitant=True) as h:
        assert await h.gate() is None
        await h.health(tamper=True)
        await until(lambda: _count(h, "SELECT count(*) FROM suspensions", 1))
        h.clock.set(h.clock() + timedelta(minutes=5))
        path = f"/api/recipients/{RID}/reverify"
        tables = ("reverifications", "consent_withdrawals", "suspensions")

        async def snapshot() -> list[Any]:
            # the staff's audit entries only: the device's and the system's own (the tamper
            # event's) may still be landing from before, and are not the requests' doing
            staff_entries = await h.rt.pool.fetch(
                "SELECT * FROM audit_log WHERE actor LIKE 'staff-%' ORDER BY seq"
            )
            return [
                staff_entries,
                *[await h.rt.pool.fetch(f"SELECT * FROM {t} ORDER BY 1") for t in tables],
            ]

        before = await snapshot()
        asked = h.clock() - timedelta(minutes=1)
        good = reverification(asked, "consents")["people"]
        bad: list[tuple[dict[str, Any], int, str, str | None]] = [
            ({"people": good[:1]}, 422, "person_missing", "people"),
            (
                {"people": [*good, {**good[1], "person_id": "co-9999"}]},
                422,
                "unknown_person",
                "people[2].person_id",
            ),
            (
                {"people": [{**good[0], "how": "letter"}, good[1]]},
                422,
                "bad_value",
                "people[0].how",
            ),
            (
                {"people": [good[0], good[0], good[1]]},
                422,
                "duplicate_person",
                "people[1].person_id",
            ),
            ({"consent_verified": True}, 422, "unknown_field", "consent_verified"),
        ]
        for body, status, code, field in bad:
            got, err = await h.call(Role.ADMINISTRATOR, "POST", path, json=body)
            assert (got, err["error"]["code"], err["error"]["field"]) == (status, code, field), body
        assert await snapshot() == before
        assert await h.gate() is Reason.SUSPENDED
        # an operator may not re-verify
        got, _ = await h.call(Role.OPERATOR, "POST", path, json=reverification(asked, "refuses"))
        assert got == 403

        async with h.rt.gate.changes() as sub:
            got, done = await h.call(
                Role.ADMINISTRATOR, "POST", path, json=reverification(asked, "refuses")
            )
            assert got == 200, done
            async with asyncio.timeout(10):
                while (await sub.get()).kind is not ChangeKind.CONSENT_WITHDRAWN:
                    pass
        record = done["reverification"]
        assert record["outcome"] == "withdrawn"
        assert done["lifted"] == []
        assert [p["person_id"] for p in record["people"]] == [RID, "co-0001"]
        assert len(record["withdrawn_consent_ids"]) == 1
        # the gate says no: still suspended, and the cohabitant's consent is withdrawn
        assert await h.gate() is Reason.SUSPENDED
        basis = await h.rt.consent.basis(RID)
        mine = [c for c in basis.consents if c.cohabitant_id == "co-0001"]
        stored = await h.rt.pool.fetchrow("SELECT * FROM reverifications")
        assert (stored["outcome"], stored["organisation_id"]) == ("withdrawn", "default")
        assert [c.withdrawn_at for c in mine] == [stored["recorded_at"]]
