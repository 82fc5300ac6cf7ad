"""Issue 13, finding 6: ``/ws/console`` sends each role only what its REST routes would show.

A technician may not read the rounds queue (``GET /api/rounds/queue`` is 403), so it must not
learn the same facts live either (which brukare, verdict ``still``, deadline); it still gets
device presence, which ``GET /api/devices/{device_id}`` shows it. Who gets what is derived from
the routes the app serves, not from a second list of roles.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from consent import api as consent_api
from devices import api as devices_api
from devices.registry import PresenceChanged, Stored
from kernel.roles import Role
from services.web import console
from supervision import api as rounds_api
from supervision.checks import State
from supervision.ports import CheckChanged
from tests.adversarial.test_revocation import staff
from tests.integration.signalling_home import Served, served

ALL_ROUTES = [*rounds_api.routes(), *devices_api.routes(), *consent_api.routes()]


@pytest.mark.parametrize(
    ("role", "kind", "shown"),
    [
        (Role.TECHNICIAN, "check.changed", False),
        (Role.TECHNICIAN, "check.alarm", False),
        (Role.TECHNICIAN, "device.presence", True),
        (Role.OPERATOR, "check.changed", True),
        (Role.OPERATOR, "check.alarm", True),
        (Role.OPERATOR, "device.presence", True),
        (Role.ADMINISTRATOR, "check.changed", True),
        (Role.TECHNICIAN, "hello", True),
        (Role.OPERATOR, "something.new", False),  # default deny: a type naming no route
        (Role.OPERATOR, None, False),
    ],
)
def test_each_message_type_goes_to_the_roles_of_its_rest_route(
    role: Role, kind: str | None, shown: bool
) -> None:
    assert console.may_see(console.audience(ALL_ROUTES), role, kind) is shown


def test_the_audience_is_the_rest_routes_roles_and_nothing_without_them() -> None:
    by_route = {(r.method, r.path): r.roles for r in ALL_ROUTES}
    shown_to = console.audience(ALL_ROUTES)
    for kind, route in console.SHOWN_BY.items():
        assert shown_to[kind] == by_route[route], kind  # every named route exists, same roles
    # A process that does not serve the rounds routes shows check events to nobody.
    assert "check.changed" not in console.audience(devices_api.routes())


def check_event() -> CheckChanged:
    now = datetime.now(UTC)
    return CheckChanged(
        check_id="chk-0001",
        recipient_id="rec-0141",
        device_id="cam-0141",
        before=State.PROBING,
        state=State.NEEDS_VIEW,
        reason="motion_still",
        deadline=now + timedelta(minutes=5),
        at=now,
        actor="system",
        verdict="still",
    )


def presence_event() -> PresenceChanged:
    return PresenceChanged(
        device_id="cam-0141",
        presence=Stored.OFFLINE,
        previous=Stored.ONLINE,
        session=1,
        at=datetime.now(UTC),
    )


@contextlib.asynccontextmanager
async def console_socket(s: Served, token: str) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
        http.ws_connect(s.server.make_url("/ws/console")) as ws,
    ):
        hello = await ws.receive_json(timeout=5)
        assert hello["type"] == "hello"
        yield ws


async def next_event(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message: dict[str, Any] = await ws.receive_json(timeout=5)
    return message


@pytest.mark.integration
@pytest.mark.timeout(60)
async def test_a_technician_gets_presence_but_no_check_events_and_an_operator_gets_both(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    async with served(database_url, mqtt_url, topic_prefix, []) as s:
        await s.rt.pool.execute(  # the brukare and camera the events are about (issue 17:
            # a console is told only of brukare and devices its caller's teams cover)
            "INSERT INTO care_recipients (recipient_id, display_name, created_at, created_by)"
            " VALUES ('rec-0141', 'Brukare', now(), 'test');"
            "INSERT INTO devices (device_id, kind) VALUES ('cam-0141', 'camera');"
            "INSERT INTO device_bindings (binding_id, device_id, recipient_id, bound_at,"
            " requested_by, bound_by) VALUES ('bind-0141', 'cam-0141', 'rec-0141', now(), 'a', 'b')"
        )
        technician = await staff(s, "roles-tech", Role.TECHNICIAN)
        operator = await staff(s, "roles-op", Role.OPERATOR)
        async with (
            console_socket(s, technician.token) as tech_ws,
            console_socket(s, operator.token) as op_ws,
        ):
            # REST says the same: the queue is the operators'.
            async with aiohttp.ClientSession() as http:
                for who, status in ((technician, 403), (operator, 200)):
                    async with http.get(
                        s.server.make_url("/api/rounds/queue"), headers=who.bearer
                    ) as resp:
                        assert resp.status == status
            s.rt.bus.publish(check_event())
            s.rt.bus.publish(presence_event())  # after the check event, on the same bus

            seen = await next_event(op_ws)
            assert seen["type"] == "check.changed"
            assert seen["verdict"] == "still"
            assert (await next_event(op_ws))["type"] == "device.presence"

            # One pump, in order: had the check event been sent, it would have come first.
            seen = await next_event(tech_ws)
            assert seen["type"] == "device.presence", seen
            assert seen["device_id"] == "cam-0141"
