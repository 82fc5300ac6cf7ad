"""Consent wired into the running service, through the real Mosquitto and PostgreSQL: a camera that
came online quarantined is bound in two steps over the API (its bind button pressed over MQTT as
the proof), a privacy-switch event it publishes
over MQTT suspends supervision of its brukare (hard rule 8) and publishes a change, an
administrator re-verifies, and unbinding quarantines the device again and publishes a change."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import asyncpg
import pytest
import structlog.testing
from aiohttp.test_utils import TestClient, TestServer

from consent import records
from consent.gate import ChangeBus, ChangeSubscription, Gate, resync_change
from consent.model import (
    CareRecipient,
    ChangeKind,
    ConsentChange,
    Pause,
    PauseReason,
    PauseSource,
    Purpose,
    Reason,
)
from consent.pg import CHANNEL
from consent.store import PgConsentStore
from identity import store as staff_store
from kernel.audit import store as audit_store
from kernel.clock import ScaledClock
from kernel.roles import Role
from services import app
from services.mqtt import client_args
from services.settings import load
from supervision.checks import State
from supervision.ports import CheckChanged

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 12, 21, 0, tzinfo=UTC)  # 22:00 in Stockholm, inside the agreed window
DEVICE = "cam-0001"
RID = "r-0001"


@dataclasses.dataclass
class Service:
    rt: app.Runtime
    client: TestClient  # type: ignore[type-arg]
    tokens: dict[Role, str]
    clock: ScaledClock
    mqtt_url: str
    prefix: str

    async def call(self, role: Role, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        resp = await self.client.request(method, path, headers=headers, **kw)
        return resp.status, await resp.json()

    async def ok(self, role: Role, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        got, body = await self.call(role, method, path, **kw)
        assert got == status, body
        return body

    async def publish(self, channel: str, payload: bytes) -> None:
        async with aiomqtt.Client(**client_args(self.mqtt_url)) as c:  # type: ignore[arg-type]
            await c.publish(f"{self.prefix}/dev/{DEVICE}/{channel}", payload, qos=1)


@pytest.fixture
async def service(database_url: str, mqtt_url: str, topic_prefix: str) -> AsyncIterator[Service]:
    settings = dataclasses.replace(
        load({}), database_url=database_url, mqtt_url=mqtt_url, mqtt_topic_prefix=topic_prefix
    )
    clock = ScaledClock(0, T0)
    async with app.runtime(settings, clock=clock) as rt:
        await asyncio.wait_for(rt.mqtt.connected.wait(), 10)
        tokens: dict[Role, str] = {}
        async with rt.pool.acquire() as conn:
            for role in (Role.ADMINISTRATOR, Role.TECHNICIAN, Role.OPERATOR):
                account = await staff_store.create_staff(
                    conn, username=f"t-{role.value}", role=role, password=None, is_service=True
                )
                tokens[role] = await staff_store.create_token(
                    conn, staff_id=account.staff_id, role=role, ttl_s=600, label="test"
                )
        async with TestClient(TestServer(rt.app)) as client:
            yield Service(rt, client, tokens, clock, mqtt_url, topic_prefix)


async def eventually(check: Callable[[], Coroutine[Any, Any, bool]], timeout_s: float = 10) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.05)


async def next_change(sub: ChangeSubscription, kind: ChangeKind) -> ConsentChange:
    """The next change of ``kind`` (others are skipped), within a generous bound."""
    async with asyncio.timeout(10):
        while True:
            change = await sub.get()
            if change.kind is kind:
                return change


async def gate_reason(s: Service) -> Reason | None:
    d = await s.rt.gate.decide(device_id=DEVICE, purpose=Purpose.CAMERA_CHECK, at=s.clock())
    return d.reason


async def audit_actions(s: Service) -> list[str]:
    async with s.rt.pool.acquire() as conn:
        return [e.action for e in await audit_store.entries(conn)]


async def quarantined(s: Service) -> bool | None:
    value = await s.rt.pool.fetchval("SELECT quarantined FROM devices WHERE device_id = $1", DEVICE)
    return None if value is None else bool(value)


async def register_brukare(s: Service) -> None:
    admin = Role.ADMINISTRATOR
    before = (T0 - timedelta(hours=2)).isoformat()
    await s.ok(
        admin,
        "POST",
        "/api/recipients",
        201,
        json={"recipient_id": RID, "display_name": "Test Testsson", "home": "Testgatan 1"},
    )
    await s.ok(
        admin,
        "POST",
        f"/api/recipients/{RID}/care-plans",
        201,
        json={"decision_ref": "B-2026-1", "valid_from": before, "checks": [{"at": "22:00"}]},
    )
    await s.ok(
        admin,
        "POST",
        f"/api/recipients/{RID}/consents",
        201,
        json={
            "person": "recipient",
            "purpose": "camera_check",
            "basis": "informed_consent",
            "informed_by": "staff-handl01",
            "informed_how": "samtal i hemmet, skriftlig information",
            "given_at": before,
        },
    )


async def bind(s: Service, action: str = "bind") -> None:
    req = await s.ok(
        Role.TECHNICIAN,
        "POST",
        f"/api/devices/{DEVICE}/binding-requests",
        201,
        json={"action": action, "recipient_id": RID},
    )
    assert await quarantined(s) is (action == "bind")  # nothing changes before step two
    confirm = f"/api/binding-requests/{req['request_id']}/confirm"
    typed = {"recipient_id": RID, "name": "Testsson", "address": "testgatan 1"}
    if action == "bind":
        assert req["proof"] == "button"
        status, body = await s.call(Role.ADMINISTRATOR, "POST", confirm, json=typed)
        assert (status, body["error"]["code"]) == (422, "device_proof")  # not pressed yet
        # the installer presses the camera's bind button: an event over MQTT (issue 17)
        await s.publish("event", b'{"type":"bind_button"}')

        async def pressed() -> bool:
            listed = await s.ok(
                Role.ADMINISTRATOR, "GET", "/api/binding-requests", params={"device_id": DEVICE}
            )
            return listed["requests"][-1]["button_pressed_at"] is not None

        await eventually(pressed)
    await s.ok(Role.ADMINISTRATOR, "POST", confirm, json=typed)


async def test_quarantined_device_bound_suspended_by_behaviour_reverified_unbound(
    service: Service,
) -> None:
    s = service
    # the camera comes online by itself: quarantined, and the gate says not bound
    await s.publish("status", b'{"state":"online","session":1}')
    await s.publish("meta", b'{"kind":"camera","fw":"1.0","caps":["video","privacy_shutter"]}')
    await eventually(lambda: _is(quarantined(s), True))
    await register_brukare(s)
    assert await gate_reason(s) is Reason.DEVICE_NOT_BOUND

    async with s.rt.gate.changes() as sub:
        await bind(s)
        bound = await next_change(sub, ChangeKind.DEVICE_BOUND)
        assert (bound.recipient_id, bound.device_ids) == (RID, (DEVICE,))
        assert await quarantined(s) is False
        assert await gate_reason(s) is None
        got = await s.ok(
            Role.OPERATOR,
            "GET",
            "/api/gate",
            params={"device_id": DEVICE, "purpose": "camera_check"},
        )
        assert got["allowed"] is True
        for params, field in (
            ({"purpose": "camera_check"}, "device_id"),
            ({"device_id": "CAM 1"}, "device_id"),
            ({"device_id": DEVICE, "purpose": "peeking"}, "purpose"),
            ({"device_id": DEVICE, "at": "tonight"}, "at"),
            ({"device_id": DEVICE, "at": "2026-03-29T02:30"}, "at"),  # no such local time
        ):
            status, body = await s.call(Role.OPERATOR, "GET", "/api/gate", params=params)
            assert (status, body["error"]["field"]) == (422, field), params

        # a call event is not behaviour; a privacy switch is, and the threshold is 1
        await s.publish("event", b'{"type":"call_answer"}')
        await s.publish("event", b'{"type":"privacy_switch"}')
        suspended = await next_change(sub, ChangeKind.SUSPENDED)
        assert (suspended.recipient_id, suspended.device_ids) == (RID, (DEVICE,))
        assert await gate_reason(s) is Reason.SUSPENDED
        events = await s.rt.pool.fetch("SELECT event_type FROM behaviour_events")
        assert [r["event_type"] for r in events] == ["privacy_switch"]
        listed = await s.ok(Role.OPERATOR, "GET", "/api/suspensions")
        assert [(x["recipient_id"], x["event_type"]) for x in listed["suspensions"]] == [
            (RID, "privacy_switch")
        ]
        shown = await s.ok(Role.OPERATOR, "GET", f"/api/recipients/{RID}")
        assert [x["lifted_at"] for x in shown["suspensions"]] == [None]
        assert shown["gate"]["camera_check"]["reason"] == "suspended"

        # only an administrator re-verifies, and must say whom they asked
        status, _ = await s.call(Role.OPERATOR, "POST", f"/api/recipients/{RID}/reverify", json={})
        assert status == 403
        status, body = await s.call(
            Role.ADMINISTRATOR, "POST", f"/api/recipients/{RID}/reverify", json={}
        )
        assert (status, body["error"]["field"]) == (422, "people")
        assert await gate_reason(s) is Reason.SUSPENDED
        s.clock.set(T0 + timedelta(minutes=1))
        lifted = await s.ok(
            Role.ADMINISTRATOR,
            "POST",
            f"/api/recipients/{RID}/reverify",
            json={
                "people": [
                    {
                        "person_id": RID,
                        "how": "phone",
                        "spoken_at": s.clock().isoformat(),
                        "answers": {"camera_check": "consents"},
                    }
                ]
            },
        )
        assert len(lifted["lifted"]) == 1
        await next_change(sub, ChangeKind.REVERIFIED)
        assert await gate_reason(s) is None
        assert (await s.ok(Role.OPERATOR, "GET", "/api/suspensions"))["suspensions"] == []

        # unbinding, in two steps too, quarantines the device and tells live sessions
        await bind(s, "unbind")
        unbound = await next_change(sub, ChangeKind.DEVICE_UNBOUND)
        assert unbound.device_ids == (DEVICE,)
        assert await quarantined(s) is True
        assert await gate_reason(s) is Reason.DEVICE_NOT_BOUND

    actions = await audit_actions(s)
    for expected in (
        "binding.bind_requested",
        "binding.bind_confirmed",
        "device.behaviour_event",
        "supervision.suspended",
        "consent.reverified",
        "binding.unbind_requested",
        "binding.unbind_confirmed",
    ):
        assert actions.count(expected) == 1, (expected, actions)
    async with s.rt.pool.acquire() as conn:
        assert (await audit_store.verify(conn)).ok


async def test_a_change_in_another_process_reaches_this_gate(service: Service) -> None:
    """Hard rule 2 across processes: a write through another store (as from another process)
    arrives on this process's change feed through LISTEN/NOTIFY, well within a second."""
    s = service
    await register_brukare(s)
    other = PgConsentStore(s.rt.pool)  # no in-process publish: only NOTIFY can carry it
    async with s.rt.gate.changes() as sub:
        # the listener starts in the background: wait until a probe notification arrives
        async with asyncio.timeout(10):
            while True:
                probe = resync_change(T0)
                await s.rt.pool.execute(
                    "SELECT pg_notify($1, $2)", CHANNEL, json.dumps(records.change_json(probe))
                )
                with contextlib.suppress(TimeoutError):
                    if (await sub.get(0.5)).event_id == probe.event_id:
                        break
        pause = Pause(
            pause_id="pause-0001",
            recipient_id=RID,
            starts_at=T0,
            ends_at=None,
            source=PauseSource.HOSPITAL,
            reason=PauseReason.HOSPITAL_STAY,
        )
        started = time.monotonic()
        await other.add_pause(pause, actor="staff-other01", at=T0)
        change = await next_change(sub, ChangeKind.PAUSE_ADDED)
        elapsed_s = time.monotonic() - started
    assert change.recipient_id == RID
    assert elapsed_s < 1.0
    assert [p.pause_id for p in (await s.rt.gate.bases([RID]))[RID].pauses] == ["pause-0001"]


async def _is(value: Coroutine[Any, Any, object], expected: object) -> bool:
    return (await value) is expected


async def test_a_pause_that_starts_later_ends_live_sessions_when_it_starts(
    pool: asyncpg.Pool,
) -> None:
    """Hard rule 2 with nobody writing at that instant: the gate's schedule watch publishes a
    change for the brukare when a pause (entered earlier) starts, within a second of it."""
    bus = ChangeBus()
    store = PgConsentStore(pool, publish=bus.publish)
    gate = Gate(store, bus)
    now = datetime.now(UTC)
    await store.add_recipient(
        CareRecipient(recipient_id=RID, display_name="Test"), actor="staff-a", at=now
    )
    starts = datetime.now(UTC) + timedelta(seconds=1.5)
    async with gate.changes() as sub:
        watch = asyncio.create_task(gate.watch_schedule(horizon_s=5))
        try:
            await store.add_pause(
                Pause("pause-0002", RID, starts, None, PauseSource.STAFF, PauseReason.VISITORS),
                actor="staff-a",
                at=now,
            )
            await next_change(sub, ChangeKind.PAUSE_ADDED)
            change = await next_change(sub, ChangeKind.SCHEDULED)
            arrived = datetime.now(UTC)
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
    assert change.recipient_id == RID
    assert starts <= arrived < starts + timedelta(seconds=1), arrived - starts


async def test_the_running_service_announces_a_pause_when_it_starts(service: Service) -> None:
    """The composed runtime's listener task includes the schedule watch."""
    s = service
    await register_brukare(s)
    async with s.rt.gate.changes() as sub:
        await s.ok(
            Role.OPERATOR,
            "POST",
            f"/api/recipients/{RID}/pauses",
            201,
            json={
                "starts_at": (T0 + timedelta(seconds=1)).isoformat(),
                "source": "relative",
                "reason": "visitors",
            },
        )
        await next_change(sub, ChangeKind.PAUSE_ADDED)
        s.clock.set(T0 + timedelta(seconds=2))
        change = await next_change(sub, ChangeKind.SCHEDULED)
    assert change.recipient_id == RID


async def test_a_lens_covered_three_times_in_a_week_suspends(service: Service) -> None:
    """The rounds publish each check's moves on the bus; the third 'covered' verdict within a
    week for a bound camera suspends supervision (hard rule 8, covered repeatedly)."""
    s = service
    await s.publish("status", b'{"state":"online","session":1}')
    await eventually(lambda: _is(quarantined(s), True))
    await register_brukare(s)
    await bind(s)

    def covered(at: datetime) -> CheckChanged:
        return CheckChanged(
            check_id=f"chk-{at:%d%H%M}",
            recipient_id=RID,
            device_id=DEVICE,
            before=State.PROBING,
            state=State.PATROL,
            reason="camera_covered",
            deadline=None,
            at=at,
            actor="system",
            verdict="covered",
        )

    async with s.rt.gate.changes() as sub:
        for day in range(3):
            s.rt.bus.publish(covered(T0 + timedelta(days=day)))
        change = await next_change(sub, ChangeKind.SUSPENDED)
    assert change.recipient_id == RID
    found = await s.rt.pool.fetch("SELECT event_type, event_count FROM suspensions")
    assert [(r["event_type"], r["event_count"]) for r in found] == [("covered", 3)]
    events = await s.rt.pool.fetchval("SELECT count(*) FROM behaviour_events")
    assert events == 3


async def test_names_and_homes_reach_neither_the_logs_nor_the_audit_log(service: Service) -> None:
    """Pseudonymous ids only: a brukare's and a cohabitant's names, the home, free-text notes and
    reasons stay in their tables."""
    s = service
    secrets_ = ("Test Testsson", "Testgatan", "Sven Svensson", "Sjukhus X", "vill inte längre")
    with structlog.testing.capture_logs() as logs:
        await register_brukare(s)
        await s.ok(
            Role.ADMINISTRATOR,
            "POST",
            f"/api/recipients/{RID}/cohabitants",
            201,
            json={"cohabitant_id": "co-0001", "display_name": "Sven Svensson"},
        )
        await s.ok(
            Role.OPERATOR,
            "POST",
            f"/api/recipients/{RID}/pauses",
            201,
            json={"source": "hospital", "reason": "hospital_stay", "note": "Sjukhus X avd 4"},
        )
        shown = await s.ok(Role.OPERATOR, "GET", f"/api/recipients/{RID}")
        consent_id = shown["consents"][0]["consent_id"]
        await s.ok(
            Role.OPERATOR,
            "POST",
            f"/api/consents/{consent_id}/withdraw",
            json={"reason": "Hon vill inte längre ha kamera"},
        )
        await s.ok(Role.ADMINISTRATOR, "GET", "/api/register", params={"format": "json"})
    events = {e["event"] for e in logs}
    assert {"recipient_created", "cohabitant_added", "consent_withdrawn"} <= events, events
    logged = repr(logs)
    async with s.rt.pool.acquire() as conn:
        audited = repr([(e.action, e.subject, e.data) for e in await audit_store.entries(conn)])
    assert "consent.withdrawn" in audited
    for secret in secrets_:
        assert secret not in logged, secret
        assert secret not in audited, secret
