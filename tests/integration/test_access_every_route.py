"""Default deny, proven over the whole composed application: every route that is not public
names a permission of the role matrix (``kernel.permissions.MATRIX``), refuses a caller without a
login (401), refuses every login role the matrix does not give that permission (403
``forbidden``) and lets through every role it does (whatever the handler then answers, never
403 ``forbidden``). And every route with
a body publishes in ``/api/openapi.json`` exactly what its handler decodes: the same fields,
required fields, defaults and closed objects, and a field it does not define is refused with 422
naming it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
from aiohttp.test_utils import TestClient, TestServer

from identity import store as staff_store
from kernel.body import has_required_fields
from kernel.permissions import Permission, may, roles_with
from kernel.roles import LOGINS, Role, Route
from services import app
from services.settings import load
from services.web import http

pytestmark = pytest.mark.integration


@pytest.fixture
async def composed(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> AsyncIterator[tuple[TestClient, dict[Role, str]]]:  # type: ignore[type-arg]
    settings = dataclasses.replace(
        load({}),
        database_url=database_url,
        mqtt_url=mqtt_url,
        mqtt_topic_prefix=topic_prefix,
        http_rate_per_s=100_000,
        http_rate_burst=100_000,
    )
    async with app.runtime(settings) as rt:
        tokens: dict[Role, str] = {}
        async with rt.pool.acquire() as conn:
            for role in LOGINS:
                account = await staff_store.create_staff(
                    conn, username=f"probe-{role.value}", role=role, password=None, is_service=True
                )
                tokens[role] = await staff_store.create_token(
                    conn, staff_id=account.staff_id, role=role, ttl_s=600, label="route walk"
                )
        async with TestClient(TestServer(rt.app)) as client:
            yield client, tokens


def _concrete(path: str) -> str:
    return "/".join("x-0001" if p.startswith("{") else p for p in path.split("/"))


async def test_every_route_follows_the_role_matrix(
    composed: tuple[TestClient, dict[Role, str]],
) -> None:  # type: ignore[type-arg]
    client, tokens = composed
    routes: list[Route] = client.app[http.ROUTES]  # type: ignore[index]
    assert len(routes) >= 6
    assert set(tokens) == set(LOGINS)
    assert Role.AUDITOR in tokens
    unauthenticated = allowed = 0
    for route in routes:
        if route.is_public:
            assert route.permission is None, route.path
            continue
        where = f"{route.method} {route.path}"
        assert route.permission is not None, f"{where} names no permission"
        permission = Permission(route.permission)
        assert route.roles == roles_with(permission), where
        url = _concrete(route.path)
        resp = await client.request(route.method, url)
        assert resp.status == 401, f"{where} without login: {resp.status}"
        unauthenticated += 1
        for role, token in tokens.items():
            resp = await client.request(
                route.method, url, headers={"Authorization": f"Bearer {token}"}
            )
            if route.method == "GET" and route.path.startswith("/ws/"):
                refused = resp.status == 403
            else:
                refused = resp.status == 403 and (await resp.json())["error"]["code"] == "forbidden"
            assert refused is not may(role, permission), f"{where} as {role}: {resp.status}"
            allowed += not refused
    assert unauthenticated >= 3
    assert allowed >= len(routes) // 2


async def test_a_technician_reads_devices_and_homes_and_no_care_record(
    composed: tuple[TestClient, dict[Role, str]],
) -> None:  # type: ignore[type-arg]
    """Issue 17: a technician sees devices and installation addresses, never a care plan, a
    consent, a pause or a note (403 on the brukare, the gate, the round and the reports)."""
    client, tokens = composed
    tech = {"Authorization": f"Bearer {tokens[Role.TECHNICIAN]}"}
    homes = await client.get("/api/installations", headers=tech)
    assert homes.status == 200
    assert (await homes.json()) == {"installations": []}
    assert (await client.get("/api/devices", headers=tech)).status == 200
    for path in (
        "/api/recipients",
        "/api/recipients/rec-0001",  # plans, consents, pauses, cohabitants
        "/api/suspensions",
        "/api/gate?device_id=cam-0001&purpose=camera_check",
        "/api/rounds/queue",
        "/api/checks/chk-0001",  # a check's history and its notes
        "/api/nights/2030-01-01/report",
        "/api/rounds/2030-01-01/handover",
        "/api/patrol/tasks",
        "/api/audit",
    ):
        resp = await client.get(path, headers=tech)
        assert resp.status == 403, path
        assert (await resp.json())["error"]["code"] == "forbidden"
    for path in ("/api/recipients/rec-0001/care-plans", "/api/recipients/rec-0001/consents"):
        resp = await client.post(path, json={}, headers=tech)
        assert resp.status == 403, path


async def test_an_auditor_reads_the_audit_log_and_extracts_only(
    composed: tuple[TestClient, dict[Role, str]],
) -> None:  # type: ignore[type-arg]
    client, tokens = composed
    auditor = {"Authorization": f"Bearer {tokens[Role.AUDITOR]}"}
    assert (await client.get("/api/audit", headers=auditor)).status == 200
    assert (await client.get("/api/audit/verify", headers=auditor)).status == 200
    assert (await client.get("/api/register", headers=auditor)).status == 200
    assert (await client.get("/api/me", headers=auditor)).status == 200
    for path in ("/api/recipients", "/api/devices", "/api/rounds/queue", "/api/staff"):
        assert (await client.get(path, headers=auditor)).status == 403, path


async def test_a_patrol_reaches_its_tasks_and_no_brukare(
    composed: tuple[TestClient, dict[Role, str]],
) -> None:  # type: ignore[type-arg]
    """The night patrol sees its patrol tasks and nothing of the care records: no brukare, no
    care plan, no queue of camera looks."""
    client, tokens = composed
    patrol = {"Authorization": f"Bearer {tokens[Role.PATROL]}"}
    tasks = await client.get("/api/patrol/tasks", headers=patrol)
    assert tasks.status == 200
    assert (await tasks.json())["tasks"] == []
    for path in ("/api/recipients", "/api/recipients/rec-0001", "/api/rounds/queue"):
        resp = await client.get(path, headers=patrol)
        assert resp.status == 403, path
        assert (await resp.json())["error"]["code"] == "forbidden"


async def test_public_routes_are_only_the_expected_ones(
    composed: tuple[TestClient, dict[Role, str]],
) -> None:  # type: ignore[type-arg]
    client, _ = composed
    routes: list[Route] = client.app[http.ROUTES]  # type: ignore[index]
    public = {r.path for r in routes if r.is_public}
    allowed_prefixes = (
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/openapi.json",
        "/api/login",
        "/api/logout",
        "/static/",
        "/console",
        "/kiosk",
        "/viewer",
    )
    for path in public:
        assert path == "/" or path.startswith(allowed_prefixes), f"unexpected public {path}"
    assert not any(
        p.startswith(("/api/devices", "/api/recipients", "/api/register", "/ws/")) for p in public
    )


async def test_every_state_change_by_cookie_needs_the_csrf_header(
    composed: tuple[TestClient, dict[Role, str]],
) -> None:  # type: ignore[type-arg]
    """A logged-in browser's cookie alone changes nothing anywhere (no cross-site forgery):
    every non-GET route refuses it without ``X-CSRF-Token`` before its handler runs."""
    client, _ = composed
    routes: list[Route] = client.app[http.ROUTES]  # type: ignore[index]
    pool = client.app[app.RUNTIME].pool  # type: ignore[index]
    password = "ett långt lösenord för test"
    for role in LOGINS:
        async with pool.acquire() as conn:
            await staff_store.create_staff(
                conn, username=f"csrf-{role.value}", role=role, password=password
            )
    audit_before = await pool.fetchval("SELECT count(*) FROM audit_log")
    checked = 0
    for role in LOGINS:
        client.session.cookie_jar.clear()
        login = await client.post(
            "/api/login", json={"username": f"csrf-{role.value}", "password": password}
        )
        assert login.status == 200
        for route in routes:
            if route.is_public or route.method in {"GET", "HEAD"} or role not in route.roles:
                continue
            resp = await client.request(route.method, _concrete(route.path), json={})
            assert resp.status == 403, f"{route.method} {route.path} as {role}: {resp.status}"
            assert (await resp.json())["error"]["code"] == "csrf_failed"
            checked += 1
    assert checked >= 10
    logins = await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'login.succeeded'")
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == audit_before + logins


def _agree(schema: dict[str, Any], kind: mi.Type, where: str) -> int:
    """Assert ``schema`` says what the decoder of ``kind`` accepts; how many objects it checked."""
    if isinstance(kind, mi.Metadata):
        return _agree(schema, kind.type, where)
    if isinstance(kind, mi.UnionType):  # X | None: anyOf [X, null], in the union's order
        members = [t for t in kind.types if not isinstance(t, mi.NoneType)]
        options = [o for o in schema.get("anyOf", [schema]) if o.get("type") != "null"]
        assert len(members) == len(options), where
        return sum(_agree(o, t, where) for o, t in zip(options, members, strict=True))
    if isinstance(kind, mi.ListType | mi.VarTupleType):
        return _agree(schema["items"], kind.item_type, f"{where}[]")
    if not isinstance(kind, mi.StructType):
        return 0
    assert kind.forbid_unknown_fields, where
    assert schema["type"] == "object", where
    assert schema["additionalProperties"] is False, where
    assert set(schema["properties"]) == {f.encode_name for f in kind.fields}, where
    assert sorted(schema["required"]) == sorted(f.encode_name for f in kind.fields if f.required)
    checked = 1
    for f in kind.fields:
        node = schema["properties"][f.encode_name]
        if f.default is not msgspec.NODEFAULT:
            assert node["default"] == msgspec.json.decode(msgspec.json.encode(f.default))
        checked += _agree(node, f.type, f"{where}.{f.name}")
    return checked


async def test_every_body_is_published_as_it_is_decoded(
    composed: tuple[TestClient, dict[Role, str]],
) -> None:  # type: ignore[type-arg]
    """The OpenAPI document and the decoder come from one Struct per body: they agree field by
    field (nested objects too), and a field the body does not define is 422 ``unknown_field``
    naming it, before the handler looks anything up (the path's ids here name nothing)."""
    client, tokens = composed
    routes: list[Route] = client.app[http.ROUTES]  # type: ignore[index]
    doc = await (await client.get("/api/openapi.json")).json()
    with_body = [r for r in routes if r.body is not None]
    assert len(with_body) >= 20
    objects = 0
    for route in with_body:
        op = doc["paths"][route.path][route.method.lower()]
        body = op["requestBody"]
        assert body["required"] is has_required_fields(route.body), route.path
        schema = body["content"]["application/json"]["schema"]
        objects += _agree(schema, mi.type_info(route.body), f"{route.method} {route.path}")
        role = min(route.roles, default=None)
        headers = {} if role is None else {"Authorization": f"Bearer {tokens[role]}"}
        resp = await client.request(
            route.method, _concrete(route.path), json={"zz_typo": 1}, headers=headers
        )
        error = (await resp.json())["error"]
        assert (resp.status, error["code"], error["field"]) == (422, "unknown_field", "zz_typo"), (
            route.method,
            route.path,
            error,
        )
    assert objects > len(with_body)  # the nested objects (checks, windows, zones) were walked
