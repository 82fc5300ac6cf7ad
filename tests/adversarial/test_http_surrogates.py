"""Issue 13, finding 7: a lone UTF-16 surrogate in a text field is refused with 422 naming the
field, nothing is stored, and the log holds no part of the value; a login with such a password is
an audited failed login, not a codec error."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from consent import api
from consent.store import PgConsentStore
from identity import login as auth
from identity import store as staff_store
from identity.staff import FAST_HASHING, PasswordHasher
from kernel.body import not_text_at
from kernel.clock import ScaledClock
from kernel.roles import Role
from services.web import http
from tests.integration.test_consent_api import ADMIN, T0, header_authenticator

pytestmark = pytest.mark.integration
Client = TestClient[web.Request, web.Application]
JSON = {"Content-Type": "application/json"}
NAME = "Eva \udfff Lindqvist"  # the lone surrogate as json.dumps writes it: \udfff


def raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()  # ensure_ascii: the surrogate travels as "\udfff"


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"display_name": "Eva \udfff"}, "display_name"),
        ({"a": [{"ok": "fine"}, {"note": "x\ud800"}]}, "a[1].note"),
        ({"a": {"b\udc00": 1}}, "a"),
        ({"a": "emoji \U0001f600 is a valid pair"}, None),
        ({"a": [1, True, None, 2.5]}, None),
        ({"a": [{"ok": "fine"}, {"note": "x\u0000y"}]}, "a[1].note"),
    ],
)
def test_the_first_lone_surrogate_or_nul_is_named_by_its_path(
    value: Any, field: str | None
) -> None:
    assert not_text_at(json.loads(json.dumps(value))) == field


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[Client]:
    app = http.make_app(max_body_bytes=4096)
    app[api.STORE] = PgConsentStore(pool)
    app[api.CLOCK] = ScaledClock(0, T0)
    app[http.AUTHENTICATOR] = header_authenticator
    http.add_routes(app, api.routes())
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_a_surrogate_in_a_name_or_note_is_422_naming_the_field_and_never_logged(
    client: Client, pool: asyncpg.Pool
) -> None:
    headers = {**ADMIN, **JSON}
    with capture_logs() as logs:
        resp = await client.post(
            "/api/recipients",
            data=raw({"recipient_id": "r-1", "display_name": NAME}),
            headers=headers,
        )
        err = (await resp.json())["error"]
        assert (resp.status, err["code"], err["field"]) == (422, "invalid_text", "display_name")
        assert await pool.fetchval("SELECT count(*) FROM care_recipients") == 0

        ok = {"recipient_id": "r-1", "display_name": "Eva Lindqvist"}
        assert (await client.post("/api/recipients", json=ok, headers=ADMIN)).status == 201
        pause = {"source": "staff", "reason": "other", "note": "hos dotter \udfff Eva"}
        resp = await client.post("/api/recipients/r-1/pauses", data=raw(pause), headers=headers)
        err = (await resp.json())["error"]
        assert (resp.status, err["code"], err["field"]) == (422, "invalid_text", "note")
        assert await pool.fetchval("SELECT count(*) FROM pauses") == 0
    logged = repr(logs)
    for part in ("Eva \\udfff", "\udfff", "Lindqvist", "hos dotter"):
        assert part not in logged, part
    assert all(entry["log_level"] != "error" for entry in logs), logs


async def test_a_surrogate_in_a_login_password_is_an_audited_failed_login(
    pool: asyncpg.Pool,
) -> None:
    hasher = PasswordHasher(FAST_HASHING)
    async with pool.acquire() as conn:
        account = await staff_store.create_staff(
            conn,
            username="natt1",
            role=Role.OPERATOR,
            password="korrekt häst",
            hasher=hasher,
            now=T0,
        )
    app = http.make_app(max_body_bytes=2048)
    auth.install(app, auth.make_authenticator(pool, clock=ScaledClock(0, T0), hasher=hasher))
    http.add_routes(app, auth.routes())
    async with TestClient(TestServer(app)) as c:
        body = raw({"username": "natt1", "password": "korrekt h\udfffst"})
        with capture_logs() as logs:
            resp = await c.post("/api/login", data=body, headers=JSON)
        assert resp.status == 401, await resp.text()
        assert "\udfff" not in repr(logs)
        row = await pool.fetchrow(
            "SELECT action, subject FROM audit_log WHERE action LIKE 'login.%' ORDER BY seq DESC"
        )
        assert row is not None
        assert (row["action"], row["subject"]) == ("login.failed", account.staff_id)
        # a surrogate in the user name is a plain bad value: 422 naming it
        body = raw({"username": "natt\udfff", "password": "x"})
        resp = await c.post("/api/login", data=body, headers=JSON)
        err = (await resp.json())["error"]
        assert (resp.status, err["field"]) == (422, "username")
