"""The consent API through aiohttp's test client on the real database: roles, the whole flow from
registration to withdrawal, binding in two steps, suspension, the register."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from consent import api, register
from consent.ports import ConsentStore
from consent.store import PgConsentStore, on_device_event
from kernel.clock import ScaledClock
from services.web import http
from tests.header_auth import header_authenticator

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 12, 20, 0, tzinfo=UTC)  # 21:00 in Stockholm
Client = TestClient[web.Request, web.Application]
ADMIN = {"X-Test-Role": "administrator", "X-Test-Staff": "staff-admin01"}
ADMIN2 = {"X-Test-Role": "administrator", "X-Test-Staff": "staff-admin02"}
OPERATOR = {"X-Test-Role": "operator", "X-Test-Staff": "staff-oper01"}
TECH = {"X-Test-Role": "technician", "X-Test-Staff": "staff-tech01"}


@pytest.fixture
def clock() -> ScaledClock:
    return ScaledClock(0, T0)


@pytest.fixture
async def client(pool: asyncpg.Pool, clock: ScaledClock) -> AsyncIterator[Client]:
    app = http.make_app(max_body_bytes=65536)
    store: ConsentStore = PgConsentStore(pool)
    app[api.STORE] = store
    now: api.Clock = clock
    app[api.CLOCK] = now
    app[http.AUTHENTICATOR] = header_authenticator
    http.add_routes(app, api.routes())
    await pool.execute(
        "INSERT INTO devices (device_id, kind) VALUES ('cam-0001', 'camera'),"
        " ('cam-0002', 'camera')"
    )
    async with TestClient(TestServer(app)) as c:
        yield c


async def ok(resp: Any, status: int = 200) -> dict[str, Any]:
    body = await resp.json()
    assert resp.status == status, body
    return dict(body)


async def error(resp: Any, status: int) -> dict[str, Any]:
    body = await resp.json()
    assert resp.status == status, body
    return dict(body["error"])


PLAN = {
    "decision_ref": "SN-2026-0042",
    "valid_from": "2026-01-01T12:00:00+01:00",
    "checks": [{"at": "22:00", "tolerance_min": 15}, {"at": "02:00"}, {"at": "05:30"}],
    "instruction": "Om hon inte ligger i sängen: ring först.",
}


async def seed(client: Client) -> None:
    """A brukare with plan, camera consent and a bound camera (steps as the UI would take)."""
    await ok(
        await client.post(
            "/api/recipients",
            json={"recipient_id": "r-1", "display_name": "Astrid Lindqvist", "home": "Storg. 1"},
            headers=ADMIN,
        ),
        201,
    )
    await ok(await client.post("/api/recipients/r-1/care-plans", json=PLAN, headers=ADMIN), 201)
    await ok(
        await client.post(
            "/api/recipients/r-1/consents",
            json={
                "person": "recipient",
                "purpose": "camera_check",
                "basis": "informed_consent",
                "informed_by": "staff-admin01",
                "informed_how": "samtal i hemmet, skriftlig information",
                "given_at": "2026-01-10T14:00:00+01:00",
            },
            headers=ADMIN,
        ),
        201,
    )
    req = await ok(
        await client.post(
            "/api/devices/cam-0001/binding-requests", json={"recipient_id": "r-1"}, headers=TECH
        ),
        201,
    )
    assert req["proof"] == "button"
    # the installer presses the camera's bind button (what the MQTT handler stores on its event)
    assert await client.app[api.STORE].record_bind_button("cam-0001", T0)
    await ok(
        await client.post(
            f"/api/binding-requests/{req['request_id']}/confirm",
            json={"recipient_id": "r-1", "name": "Astrid Lindqvist", "address": "storg 1"},
            headers=ADMIN,
        )
    )


async def gate(client: Client, at: str = "2026-01-12T22:05:00+01:00") -> dict[str, Any]:
    return await ok(
        await client.get(
            "/api/gate",
            params={"device_id": "cam-0001", "purpose": "camera_check", "at": at},
            headers=OPERATOR,
        )
    )


async def test_login_and_roles_are_required(client: Client) -> None:
    assert (await client.get("/api/recipients")).status == 401
    resp = await client.post("/api/recipients", json={"display_name": "X"}, headers=OPERATOR)
    assert (await error(resp, 403))["code"] == "forbidden"
    resp = await client.get("/api/register", headers=OPERATOR)
    assert resp.status == 403
    resp = await client.post(
        "/api/binding-requests/breq-x/confirm", json={"recipient_id": "r-1"}, headers=TECH
    )
    assert resp.status == 403


async def test_flow_from_registration_to_withdrawal(client: Client, pool: asyncpg.Pool) -> None:
    await seed(client)
    assert not await pool.fetchval("SELECT quarantined FROM devices WHERE device_id = 'cam-0001'")
    allowed = await gate(client)
    assert allowed["allowed"] is True
    assert allowed["view_cap_s"] == 30
    # the plan's call terms, defaults here (issue 15), come with the gate's answer
    assert (allowed["call_cap_s"], allowed["announce_s"], allowed["live_countdown"]) == (
        300,
        3,
        True,
    )
    assert (await gate(client, "2026-01-12T23:00:00+01:00"))["reason"] == "outside_window"
    detail = await ok(await client.get("/api/recipients/r-1", headers=OPERATOR))
    assert detail["recipient"]["display_name"] == "Astrid Lindqvist"
    assert detail["gate"]["motion_analysis"]["reason"] == "no_consent"
    consent_id = detail["consents"][0]["consent_id"]
    withdrawn = await ok(
        await client.post(
            f"/api/consents/{consent_id}/withdraw", json={"reason": "vill inte"}, headers=OPERATOR
        )
    )
    assert withdrawn["withdrawn_by"] == "staff-oper01"
    assert (await gate(client))["reason"] == "withdrawn"
    actions = [r["action"] for r in await pool.fetch("SELECT action FROM audit_log ORDER BY seq")]
    assert actions == [
        "recipient.created",
        "care_plan.created",
        "consent.recorded",
        "binding.bind_requested",
        "binding.bind_confirmed",
        "consent.withdrawn",
    ]
    actors = [r["actor"] for r in await pool.fetch("SELECT actor FROM audit_log ORDER BY seq")]
    assert actors[3:] == ["staff-tech01", "staff-admin01", "staff-oper01"]
    text = " ".join(r["d"] for r in await pool.fetch("SELECT data::text AS d FROM audit_log"))
    assert "Astrid" not in text
    assert "vill inte" not in text
    assert "samtal" not in text


async def test_confirm_must_name_the_right_brukare(
    client: Client, pool: asyncpg.Pool, clock: ScaledClock
) -> None:
    await seed(client)
    clock.advance(timedelta(minutes=1))
    await ok(
        await client.post(
            "/api/recipients", json={"recipient_id": "r-2", "display_name": "B"}, headers=ADMIN
        ),
        201,
    )
    req = await ok(
        await client.post(
            "/api/devices/cam-0001/binding-requests", json={"action": "unbind"}, headers=TECH
        ),
        201,
    )
    assert req["recipient_id"] == "r-1"
    err = await error(
        await client.post(
            f"/api/binding-requests/{req['request_id']}/confirm",
            json={"recipient_id": "r-2"},
            headers=ADMIN,
        ),
        409,
    )
    assert (err["code"], err["field"]) == ("recipient_mismatch", "recipient_id")
    assert (await gate(client))["allowed"] is True
    await ok(
        await client.post(
            f"/api/binding-requests/{req['request_id']}/confirm",
            json={"recipient_id": "r-1"},
            headers=ADMIN2,
        )
    )
    assert (await gate(client))["reason"] == "device_not_bound"
    assert await pool.fetchval("SELECT quarantined FROM devices WHERE device_id = 'cam-0001'")
    listed = await ok(
        await client.get("/api/binding-requests", params={"device_id": "cam-0001"}, headers=TECH)
    )
    assert [r["action"] for r in listed["requests"]] == ["bind", "unbind"]
    err = await error(
        await client.post(
            "/api/devices/cam-9999/binding-requests", json={"recipient_id": "r-1"}, headers=TECH
        ),
        404,
    )
    assert err["field"] == "device_id"


async def test_suspension_by_behaviour_and_reverification(
    client: Client, pool: asyncpg.Pool
) -> None:
    await seed(client)
    at = T0  # the clock's now: suspended from here on
    assert await on_device_event(pool, device_id="cam-0001", event_type="button", at=at) is None
    s = await on_device_event(pool, device_id="cam-0001", event_type="privacy_switch", at=at)
    assert s is not None
    assert (await gate(client))["reason"] == "suspended"
    detail = await ok(await client.get("/api/recipients/r-1", headers=OPERATOR))
    assert detail["suspensions"][0]["lifted_at"] is None
    assert detail["gate"]["camera_check"]["reason"] == "suspended"
    err = await error(
        await client.post("/api/recipients/r-1/reverify", json={}, headers=ADMIN), 422
    )
    assert err["field"] == "people"
    asked = {
        "people": [
            {
                "person_id": "r-1",
                "how": "visit",
                "spoken_at": at.isoformat(),
                "answers": {"camera_check": "consents"},
            }
        ]
    }
    resp = await client.post("/api/recipients/r-1/reverify", json=asked, headers=OPERATOR)
    assert resp.status == 403
    lifted = await ok(await client.post("/api/recipients/r-1/reverify", json=asked, headers=ADMIN))
    assert lifted["lifted"][0]["lifted_by"] == "staff-admin01"
    assert lifted["lifted"][0]["reason"] == "possible_withdrawal"
    record = lifted["reverification"]
    assert (record["outcome"], record["verified_by"]) == ("lifted", "staff-admin01")
    assert record["people"] == [
        {
            "person_id": "r-1",
            "how": "visit",
            "spoken_at": at.isoformat(),
            "answers": {"camera_check": "consents"},
        }
    ]
    stored = await pool.fetchval("SELECT outcome FROM reverifications WHERE recipient_id = 'r-1'")
    assert stored == "lifted"
    assert (await gate(client))["allowed"] is True


async def test_pauses_by_operators(client: Client, clock: ScaledClock) -> None:
    await seed(client)
    pause = await ok(
        await client.post(
            "/api/recipients/r-1/pauses",
            json={
                "starts_at": "2026-01-12T18:00",
                "ends_at": "2026-01-14T12:00",
                "source": "hospital",
                "reason": "hospital_stay",
                "note": "Inlagd på avd 12",
            },
            headers=OPERATOR,
        ),
        201,
    )
    assert pause["starts_at"] == "2026-01-12T17:00:00+00:00"
    assert (await gate(client))["reason"] == "paused"
    clock.set(datetime(2026, 1, 12, 21, 0, tzinfo=UTC))
    ended = await ok(await client.post(f"/api/pauses/{pause['pause_id']}/end", headers=OPERATOR))
    assert ended["ends_at"] == "2026-01-12T21:00:00+00:00"
    assert (await gate(client))["allowed"] is True


async def test_register_as_json_and_csv(client: Client, pool: asyncpg.Pool) -> None:
    await seed(client)
    await pool.execute("UPDATE care_recipients SET home = '=HYPERLINK(\"x\")' WHERE true")
    data = await ok(await client.get("/api/register", headers=ADMIN))
    assert [(c["device_id"], c["recipient_id"], c["legal_basis"]) for c in data["cameras"]] == [
        ("cam-0001", "r-1", "informed_consent")
    ]
    assert data["cameras"][0]["purposes"] == ["camera_check"]
    resp = await client.get("/api/register", params={"format": "csv"}, headers=ADMIN)
    assert resp.status == 200
    assert resp.content_type == "text/csv"
    rows = list(csv.reader(io.StringIO(await resp.text())))
    assert rows[0] == list(register.CSV_COLUMNS)
    assert rows[1][:5] == ["cam-0001", "camera", "r-1", '\'=HYPERLINK("x")', "camera_check"]
    assert rows[1][6:] == ["SN-2026-0042", T0.isoformat(), ""]
    err = await error(
        await client.get("/api/register", params={"format": "xml"}, headers=ADMIN), 422
    )
    assert err["field"] == "format"
    exports = await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'register.exported'"
    )
    assert exports == 2


async def test_cohabitant_must_consent_too(client: Client) -> None:
    await seed(client)
    co = await ok(
        await client.post(
            "/api/recipients/r-1/cohabitants",
            json={"display_name": "Bo Lindqvist", "moved_in_at": "2026-01-01T00:00:00Z"},
            headers=ADMIN,
        ),
        201,
    )
    assert (await gate(client))["reason"] == "cohabitant_missing"
    await ok(
        await client.post(
            "/api/recipients/r-1/consents",
            json={
                "person": co["cohabitant_id"],
                "purpose": "camera_check",
                "basis": "informed_consent",
                "informed_by": "staff-admin01",
                "informed_how": "samtal",
                "given_at": "2026-01-11T10:00:00Z",
            },
            headers=ADMIN,
        ),
        201,
    )
    assert (await gate(client))["allowed"] is True


def test_routes_are_documented() -> None:
    doc = http.openapi(api.routes(), title="t", version="1")
    plan = doc["paths"]["/api/recipients/{recipient_id}/care-plans"]["post"]
    assert plan["x-roles"] == ["administrator"]
    assert "checks" in plan["requestBody"]["content"]["application/json"]["schema"]["required"]
    assert doc["paths"]["/api/consents/{consent_id}/withdraw"]["post"]["x-roles"] == [
        "administrator",
        "operator",
    ]
