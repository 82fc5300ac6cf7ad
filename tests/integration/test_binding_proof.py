"""Four eyes and proof from the device (issue 17), through the running service's HTTP API with the
real PostgreSQL and Mosquitto and simulated devices: a video phone shows the one-time code the
backend sent it (``bind_code``, on its kiosk screen too), a camera's bind button is pressed (a
``bind_button`` event), and a second person confirms with the code or after the press, typing
the brukare's details. Every refusal changes nothing (but a wrong code is counted)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from consent import rules
from devices.topics import DeviceKind
from identity import store as staff_store
from kernel.clock import ScaledClock
from kernel.roles import Role
from services import app
from services.settings import load
from simulators.kiosk import kiosk_app
from tests.integration.signalling_support import devices, wait_for

pytestmark = pytest.mark.integration

PHONE, CAM, OTHER_CAM = "phone-0017", "cam-0017", "cam-0018"
RID = "r-0017"
DETAILS = {"recipient_id": RID, "name": "Lindqvist", "address": "Storgatan 1"}


@dataclasses.dataclass
class Service:
    rt: app.Runtime
    client: TestClient  # type: ignore[type-arg]
    tokens: dict[str, str]
    clock: ScaledClock

    async def call(self, who: str, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        resp = await self.client.request(method, path, headers=headers, **kw)
        return resp.status, await resp.json()

    async def ok(self, who: str, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        got, body = await self.call(who, method, path, **kw)
        assert got == status, body
        return body

    async def refused(self, who: str, path: str, body: dict[str, Any], status: int) -> Any:
        got, answer = await self.call(who, "POST", path, json=body)
        assert got == status, answer
        return answer["error"]

    async def quarantined(self, device_id: str) -> bool:
        return bool(
            await self.rt.pool.fetchval(
                "SELECT quarantined FROM devices WHERE device_id = $1", device_id
            )
        )


STAFF = {
    "tech": Role.TECHNICIAN,
    "admin1": Role.ADMINISTRATOR,
    "admin2": Role.ADMINISTRATOR,
}


@pytest.fixture
async def service(database_url: str, mqtt_url: str, topic_prefix: str) -> AsyncIterator[Service]:
    settings = dataclasses.replace(
        load({}), database_url=database_url, mqtt_url=mqtt_url, mqtt_topic_prefix=topic_prefix
    )
    # now, real time passing: the devices' sessions and the code's expiry are real times
    clock = ScaledClock(1, datetime.now(UTC))
    async with app.runtime(settings, clock=clock) as rt:
        assert rt.mqtt is not None
        await asyncio.wait_for(rt.mqtt.connected.wait(), 10)
        tokens: dict[str, str] = {}
        async with rt.pool.acquire() as conn:
            for name, role in STAFF.items():
                account = await staff_store.create_staff(
                    conn, username=f"t-{name}", role=role, password=None, is_service=True
                )
                tokens[name] = await staff_store.create_token(
                    conn, staff_id=account.staff_id, role=role, ttl_s=600, label="test"
                )
        async with TestClient(TestServer(rt.app)) as client:
            s = Service(rt, client, tokens, clock)
            await s.ok(
                "admin1",
                "POST",
                "/api/recipients",
                201,
                json={
                    "recipient_id": RID,
                    "display_name": "Astrid Lindqvist",
                    "home": "Storgatan 1, lgh 1101",
                },
            )
            yield s


async def test_a_video_phone_shows_its_code_and_a_second_person_types_it(
    service: Service, mqtt_url: str, topic_prefix: str
) -> None:
    s = service
    async with (
        devices(mqtt_url, topic_prefix, s.rt.pool, [(PHONE, DeviceKind.VIDEO_PHONE)]) as devs,
        TestClient(TestServer(kiosk_app({d: v.peer for d, v in devs.items()}))) as screen,
    ):
        phone = devs[PHONE].sim
        req = await s.ok(
            "admin1",
            "POST",
            f"/api/devices/{PHONE}/binding-requests",
            201,
            json={"recipient_id": RID},
        )
        assert (req["proof"], req["code_sent"]) == ("code", True)
        assert req["code_attempts_left"] == rules.MAX_CODE_ATTEMPTS
        assert "code" not in req
        assert "code_hash" not in req
        shown = phone.shown_bind_code()
        assert shown is not None
        assert len(shown.code) == 6
        assert shown.code.isdigit()
        assert shown.expires_at == pytest.approx(
            datetime.fromisoformat(req["code_expires_at"]).timestamp()
        )
        state = await (await screen.get(f"/kiosk/{PHONE}/state")).json()
        assert state["bind_code"]["code"] == shown.code  # what the installer reads out
        stored = await s.rt.pool.fetchrow(
            "SELECT code_hash FROM binding_requests WHERE request_id = $1", req["request_id"]
        )
        assert stored["code_hash"] == rules.bind_code_hash(req["request_id"], shown.code)
        assert shown.code not in stored["code_hash"]

        confirm = f"/api/binding-requests/{req['request_id']}/confirm"
        right = {**DETAILS, "code": shown.code}
        wrong = {**DETAILS, "code": "999999" if shown.code != "999999" else "000000"}
        # four eyes: the requester cannot confirm, even with the right code
        err = await s.refused("admin1", confirm, right, 409)
        assert err["code"] == "four_eyes"
        # a technician may ask but not confirm
        assert (await s.call("tech", "POST", confirm, json=right))[0] == 403
        # a wrong code: 422, counted; nothing else changes
        err = await s.refused("admin2", confirm, wrong, 422)
        assert (err["code"], err["field"]) == ("device_proof", "code")
        # the right code with another brukare's details: 422 details_mismatch
        err = await s.refused("admin2", confirm, {**right, "name": "Karin Berg"}, 422)
        assert (err["code"], err["field"]) == ("details_mismatch", "name")
        assert await s.quarantined(PHONE)
        (listed,) = (
            await s.ok("admin2", "GET", "/api/binding-requests", params={"device_id": PHONE})
        )["requests"]
        assert listed["code_attempts_left"] == rules.MAX_CODE_ATTEMPTS - 1
        bound = await s.ok("admin2", "POST", confirm, json=right)
        assert (bound["device_kind"], bound["bound_by"] != bound["requested_by"]) == (
            "video_phone",
            True,
        )
        assert not await s.quarantined(PHONE)
        actions = [
            r["action"]
            for r in await s.rt.pool.fetch(
                "SELECT action FROM audit_log WHERE action LIKE 'binding.%' ORDER BY seq"
            )
        ]
        assert actions == [
            "binding.bind_requested",
            "binding.code_refused",
            "binding.bind_confirmed",
        ]
        text = " ".join(
            r["d"] for r in await s.rt.pool.fetch("SELECT data::text AS d FROM audit_log")
        )
        assert shown.code not in text
        assert "Lindqvist" not in text


async def test_wrong_codes_void_the_request_and_a_new_one_sends_a_new_code(
    service: Service, mqtt_url: str, topic_prefix: str
) -> None:
    s = service
    async with devices(mqtt_url, topic_prefix, s.rt.pool, [(PHONE, DeviceKind.VIDEO_PHONE)]) as d:
        phone = d[PHONE].sim
        path = f"/api/devices/{PHONE}/binding-requests"
        req = await s.ok("tech", "POST", path, 201, json={"recipient_id": RID})
        first = phone.shown_bind_code()
        assert first is not None
        confirm = f"/api/binding-requests/{req['request_id']}/confirm"
        guesses = [f"{n:06d}" for n in range(20) if f"{n:06d}" != first.code]
        for guess in guesses[: rules.MAX_CODE_ATTEMPTS]:
            err = await s.refused("admin1", confirm, {**DETAILS, "code": guess}, 422)
            assert err["code"] == "device_proof"
        err = await s.refused("admin1", confirm, {**DETAILS, "code": first.code}, 409)
        assert err["code"] == "request_closed"  # void: even the right code is too late
        assert await s.quarantined(PHONE)
        again = await s.ok("tech", "POST", path, 201, json={"recipient_id": RID})
        second = phone.shown_bind_code()
        assert second is not None
        assert second.expires_at >= first.expires_at
        confirm = f"/api/binding-requests/{again['request_id']}/confirm"
        await s.ok("admin1", "POST", confirm, json={**DETAILS, "code": second.code})
        assert not await s.quarantined(PHONE)


async def test_a_camera_is_bound_after_its_own_button_is_pressed(
    service: Service, mqtt_url: str, topic_prefix: str
) -> None:
    s = service
    specs = [(CAM, DeviceKind.CAMERA), (OTHER_CAM, DeviceKind.CAMERA)]
    async with (
        devices(mqtt_url, topic_prefix, s.rt.pool, specs) as devs,
        TestClient(TestServer(kiosk_app({d: v.peer for d, v in devs.items()}))) as screen,
    ):
        cam, other = devs[CAM].sim, devs[OTHER_CAM].sim
        await cam.press_bind_button()  # pressed before the request: does not count
        await wait_for(lambda: _pressed(s, CAM), what="the early press stored", timeout_s=10)
        s.clock.set(s.clock() + timedelta(seconds=1))
        req = await s.ok(
            "tech",
            "POST",
            f"/api/devices/{CAM}/binding-requests",
            201,
            json={"recipient_id": RID},
        )
        assert (req["proof"], req["button_pressed_at"]) == ("button", None)
        assert "code_sent" not in req
        confirm = f"/api/binding-requests/{req['request_id']}/confirm"
        err = await s.refused("admin1", confirm, DETAILS, 422)
        assert err["code"] == "device_proof"
        await other.press_bind_button()  # another camera's button is no proof for this one
        await wait_for(lambda: _pressed(s, OTHER_CAM), what="the other camera's press")
        assert (await s.refused("admin1", confirm, DETAILS, 422))["code"] == "device_proof"
        assert await s.quarantined(CAM)
        # the installer presses the camera's own button (the simulator's hook on its kiosk page)
        pressed = await screen.post(f"/kiosk/{CAM}/bind-button")
        assert (pressed.status, (await pressed.json())["presses"]) == (200, 2)

        async def shown() -> bool:  # what the console shows the confirmer: "pressed at HH:MM"
            listed = await s.ok("admin1", "GET", "/api/binding-requests", params={"device_id": CAM})
            return listed["requests"][-1]["button_pressed_at"] is not None

        await wait_for(shown, what="the press shown to the confirmer")
        err = await s.refused("admin1", confirm, {**DETAILS, "address": "Storgatan 11"}, 422)
        assert (err["code"], err["field"]) == ("details_mismatch", "address")
        bound = await s.ok("admin1", "POST", confirm, json=DETAILS)
        assert (bound["device_id"], bound["device_kind"]) == (CAM, "camera")
        assert not await s.quarantined(CAM)
        assert await s.quarantined(OTHER_CAM)
        stored = await s.rt.pool.fetch("SELECT * FROM device_bind_buttons ORDER BY device_id")
        assert len(stored) == 2  # which device and when, no picture, no payload
        assert all(set(dict(r)) <= {"device_id", "pressed_at", "organisation_id"} for r in stored)


async def _pressed(s: Service, device_id: str) -> bool:
    return (
        await s.rt.pool.fetchval(
            "SELECT 1 FROM device_bind_buttons WHERE device_id = $1", device_id
        )
        is not None
    )
