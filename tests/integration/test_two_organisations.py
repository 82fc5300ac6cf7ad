"""Issue 17, "two organisations in one demo": with kommun-a and kommun-b in one installation
(made as ``homecare demo --orgs 2`` makes them), staff of kommun-a see nothing of kommun-b.

- Every route of ``/api/openapi.json`` (GET routes, and every route with a path parameter
  whatever its method), called with the token of each of kommun-a's roles and every path
  parameter filled with kommun-b's ids, answers without any of kommun-b's identifiers, names or
  addresses (its ids echoed back in an error about the id asked for excepted), never 2xx on
  kommun-b's objects and never 5xx.
- The database, as the service's role in kommun-a's scope, shows no row of kommun-b in any table
  that carries an organisation.
- ``/ws/signal``: kommun-a's operator on duty asking to ``view`` kommun-b's camera (for its due
  check, or as an extra look) or to ``call`` its video phone is denied, and no session opens.
- ``/ws/console``: kommun-a's consoles get no push about kommun-b's brukare, checks, devices or
  consents.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from consent.model import Pause, PauseReason, PauseSource, Purpose
from devices import envelope as env
from devices.registry import PresenceChanged, Stored
from devices.topics import DeviceKind
from kernel import tenancy
from kernel.roles import Role
from supervision.checks import State
from supervision.ports import CheckChanged
from tests.integration.signalling_home import Served, due_check, seed_home, served
from tests.integration.two_orgs import A, B, Staff, staff_of, two_orgs
from tools.view import SERVER_TYPES

pytestmark = pytest.mark.integration

A_ROLES = (
    Role.OPERATOR,
    Role.ADMINISTRATOR,
    Role.TECHNICIAN,
    Role.SHIFT_LEAD,
    Role.PATROL,
    Role.AUDITOR,
)
B_NAME = "Bertil Bergqvist"
A_NAME = "Astrid Andersson"


@dataclass
class Two:
    s: Served
    a: dict[Role, Staff]
    b: dict[Role, Staff]
    check_a: str
    check_b: str

    def b_markers(self) -> set[str]:
        """Everything that would betray kommun-b: ids, usernames, names, its organisation."""
        marks = {
            "rec-b1",
            "cam-b1",
            "phone-b1",
            self.check_b,
            B_NAME,
            B.team_id,
            B.unit_id,
            B.organisation_id,
        }
        for staff in self.b.values():
            marks |= {staff.staff_id, staff.username}
        return marks


@contextlib.asynccontextmanager
async def two(database_url: str, mqtt_url: str, prefix: str) -> AsyncIterator[Two]:
    devices = [
        ("cam-a1", DeviceKind.CAMERA),
        ("cam-b1", DeviceKind.CAMERA),
        ("phone-b1", DeviceKind.VIDEO_PHONE),
    ]
    async with served(database_url, mqtt_url, prefix, devices) as s:
        pool = s.rt.pool
        await two_orgs(pool, s.clock())
        a = {role: await staff_of(pool, A, role) for role in A_ROLES}
        b = {role: await staff_of(pool, B, role) for role in (Role.OPERATOR, Role.ADMINISTRATOR)}
        assert s.rt.rounds is not None
        for org in (a, b):
            await s.rt.rounds.store.start_duty(org[Role.OPERATOR].staff_id, at=s.clock())
        await seed_home(s, "rec-a1", ["cam-a1"], team_id=A.team_id, display_name=A_NAME)
        await seed_home(
            s,
            "rec-b1",
            ["cam-b1", "phone-b1"],
            purposes=(Purpose.CAMERA_CHECK, Purpose.VIDEO_CALL),
            team_id=B.team_id,
            display_name=B_NAME,
        )
        check_a = await due_check(s, "cam-a1")
        check_b = await due_check(s, "cam-b1")
        yield Two(s, a, b, check_a, check_b)


def _fill(path: str, w: Two, tonight: str) -> str:
    ids = {
        "recipient_id": "rec-b1",
        "device_id": "cam-b1",
        "check_id": w.check_b,
        "staff_id": w.b[Role.OPERATOR].staff_id,
        "team_id": B.team_id,
        "unit_id": B.unit_id,
        "plan_id": "plan-rec-b1",
        "night": tonight,
        "date": tonight,
    }
    return re.sub(r"\{([a-z_]+)\}", lambda m: ids.get(m.group(1), "rec-b1"), path)


async def test_an_operator_of_one_organisation_sees_nothing_of_the_other(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    async with two(database_url, mqtt_url, topic_prefix) as w:
        client = aiohttp.ClientSession(base_url=str(w.s.server.make_url("/")))
        async with client:
            spec = await (await client.get("/api/openapi.json")).json()
            tonight = w.check_b.split(".")[0]
            tonight = f"{tonight[:4]}-{tonight[4:6]}-{tonight[6:]}"
            # Sanity: kommun-a's own data is there to be seen, so empty answers prove something.
            resp = await client.get("/api/recipients", headers=w.a[Role.OPERATOR].headers)
            assert [r["recipient_id"] for r in (await resp.json())["recipients"]] == ["rec-a1"]
            resp = await client.get(f"/api/checks/{w.check_a}", headers=w.a[Role.OPERATOR].headers)
            assert resp.status == 200, await resp.text()

            markers = w.b_markers()
            walked = 0
            for template, methods in spec["paths"].items():
                if not template.startswith("/api/"):
                    continue
                path = _fill(template, w, tonight)
                segments = [p for p in re.split(r"[/?]", path) if p]
                asked = {m for m in markers if any(m in p for p in segments)}
                for method in methods:
                    if method.upper() != "GET" and "{" not in template:
                        continue  # a write that names no object of kommun-b: nothing to reach
                    for role, staff in w.a.items():
                        body = {} if method.upper() in {"POST", "PUT", "PATCH"} else None
                        resp = await client.request(
                            method.upper(), path, json=body, headers=staff.headers
                        )
                        text = await resp.text()
                        walked += 1
                        where = (method, template, role.value, resp.status)
                        assert resp.status < 500, (*where, text)
                        if asked:
                            assert resp.status >= 400, (*where, text)
                        # an error may name the id it was asked about (and what that id holds)
                        allowed = asked if resp.status >= 400 else set()
                        leaked = {m for m in markers - allowed if m in text}
                        assert not leaked, (*where, leaked, text[:500])
            assert walked > 100

        # The database itself, in kommun-a's scope, as the service's role.
        tables = [
            r["table_name"]
            for r in await w.s.rt.pool.fetch(
                "SELECT table_name FROM information_schema.columns"
                " WHERE column_name = 'organisation_id' AND table_schema = 'public'"
                " AND table_name IN (SELECT tablename FROM pg_tables WHERE rowsecurity)"
            )
        ]
        assert {"care_recipients", "round_checks", "device_bindings", "staff"} <= set(tables)
        b_rows = {}
        for table in tables:
            b_rows[table] = await w.s.rt.pool.fetchval(
                f"SELECT count(*) FROM {table} WHERE organisation_id = $1",
                B.organisation_id,
            )
        assert b_rows["care_recipients"] == 1
        assert b_rows["round_checks"] >= 1
        with tenancy.scoped(tenancy.Scope(frozenset({A.organisation_id}))):
            for table in tables:
                seen = await w.s.rt.pool.fetchval(
                    f"SELECT count(*) FROM {table} WHERE organisation_id IS DISTINCT FROM $1"
                    " AND organisation_id IS NOT NULL",
                    A.organisation_id,
                )
                assert seen == 0, table


async def test_signalling_of_one_organisation_cannot_reach_the_other(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    async with two(database_url, mqtt_url, topic_prefix) as w:
        operator = w.a[Role.OPERATOR]
        markers = w.b_markers()
        async with w.s.channel(operator.token) as channel:
            ws = channel.ws
            received: list[str] = []

            async def reply() -> env.Envelope:
                msg = await asyncio.wait_for(ws.receive(), 5)
                assert msg.type is aiohttp.WSMsgType.TEXT, msg
                received.append(msg.data)
                return env.decode(msg.data, allowed=SERVER_TYPES)

            asks = [
                env.Request(
                    "s-b-view", device_id="cam-b1", purpose=env.Purpose.VIEW, check_id=w.check_b
                ),
                env.Request(
                    "s-b-extra",
                    device_id="cam-b1",
                    purpose=env.Purpose.VIEW,
                    reason=env.LookReason.CONCERN_REPORTED,
                    note="granne ringde",
                ),
                env.Request("s-b-call", device_id="phone-b1", purpose=env.Purpose.CALL),
                # kommun-b's check named for kommun-a's own camera: no look is owed to it
                env.Request(
                    "s-b-check", device_id="cam-a1", purpose=env.Purpose.VIEW, check_id=w.check_b
                ),
            ]
            for ask in asks:
                await ws.send_str(env.encode(ask))
                answer = await reply()
                assert isinstance(answer, env.Denied), (ask, answer)
                assert answer.session_id == ask.session_id
            assert not w.s.rt.signalling.sessions  # type: ignore[union-attr]
            # What the socket said names nothing of kommun-b beyond what was asked for.
            asked = {"cam-b1", "phone-b1", w.check_b}
            for text in received:
                assert not {m for m in markers - asked if m in text}, text
            denied = await w.s.rt.pool.fetchval(
                "SELECT count(*) FROM audit_log WHERE actor = $1 AND action LIKE '%.denied'",
                operator.staff_id,
            )
            assert denied >= 3
        # kommun-b's own operator is not denied its own camera for its due check
        async with w.s.channel(w.b[Role.OPERATOR].token) as own:
            await own.ws.send_str(
                env.encode(
                    env.Request(
                        "s-b-own", device_id="cam-b1", purpose=env.Purpose.VIEW, check_id=w.check_b
                    )
                )
            )
            msg = await asyncio.wait_for(own.ws.receive(), 10)
            assert not isinstance(env.decode(msg.data, allowed=SERVER_TYPES), env.Denied), msg.data


async def test_a_console_of_one_organisation_gets_no_push_about_the_other(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    async with two(database_url, mqtt_url, topic_prefix) as w:
        rt = w.s.rt
        url = w.s.server.make_url("/ws/console")
        now = w.s.clock()

        def changed(check_id: str, rid: str, device_id: str) -> CheckChanged:
            return CheckChanged(
                check_id=check_id,
                recipient_id=rid,
                device_id=device_id,
                before=State.PROBING,
                state=State.NEEDS_VIEW,
                reason="motion_still",
                deadline=now + timedelta(minutes=5),
                at=now,
                actor="system",
            )

        sessions = [
            aiohttp.ClientSession(headers=w.a[role].headers)
            for role in (Role.OPERATOR, Role.ADMINISTRATOR)
        ]
        async with contextlib.AsyncExitStack() as stack:
            sockets = []
            for http in sessions:
                await stack.enter_async_context(http)
                ws = await stack.enter_async_context(http.ws_connect(url))
                assert (await ws.receive_json(timeout=5))["type"] == "hello"
                await ws.send_str("ping")  # answered once the socket listens to the bus
                assert (await ws.receive_json(timeout=5))["type"] == "pong"
                sockets.append(ws)
            # kommun-b's check, device and consent change, then kommun-a's check: one pump, in
            # order, so had any of kommun-b's been sent it would have come first.
            rt.bus.publish(changed(w.check_b, "rec-b1", "cam-b1"))
            rt.bus.publish(
                PresenceChanged("phone-b1", Stored.OFFLINE, Stored.ONLINE, session=1, at=now)
            )
            await rt.consent.add_pause(
                Pause(
                    pause_id="pause-b1",
                    recipient_id="rec-b1",
                    starts_at=now,
                    ends_at=now + timedelta(days=1),
                    source=PauseSource.HOSPITAL,
                    reason=PauseReason.HOSPITAL_STAY,
                ),
                actor="staff-admin01",
                at=now,
            )
            rt.bus.publish(changed(w.check_a, "rec-a1", "cam-a1"))
            # and kommun-a's own consent change after kommun-b's, on the consent stream
            await rt.consent.add_pause(
                Pause(
                    pause_id="pause-a1",
                    recipient_id="rec-a1",
                    starts_at=now,
                    ends_at=now + timedelta(days=1),
                    source=PauseSource.HOSPITAL,
                    reason=PauseReason.HOSPITAL_STAY,
                ),
                actor="staff-admin01",
                at=now,
            )
            markers = w.b_markers() | {"pause-b1"}
            for ws in sockets:
                waiting = {"check.changed", "consent.changed"}
                while waiting:
                    message: dict[str, Any] = await ws.receive_json(timeout=10)
                    text = str(message)
                    assert not {m for m in markers if m in text}, message
                    if message.get("type") in waiting:
                        assert message["recipient_id"] == "rec-a1", message
                        waiting.discard(message["type"])
