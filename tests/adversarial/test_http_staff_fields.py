"""Issue 13, finding 13: staff routes refuse unknown fields (422 ``unknown_field`` naming it), so a
typo such as ``is_activ`` never silently does nothing; nothing changes and nothing is audited."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from tests.integration.test_auth_admin_api import Client, bearer
from tests.integration.test_auth_admin_api import setup as setup  # the fixture

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/staff", {"username": "ny1", "role": "operator", "rol": "administrator"}, "rol"),
        ("/api/staff/{me}/active", {"is_active": True, "is_activ": False}, "is_activ"),
        ("/api/staff/{me}/password", {"password": "lång nog lösen 1", "old": "x"}, "old"),
        ("/api/staff/{me}/tokens", {"label": "ci", "role": "administrator"}, "role"),
    ],
)
async def test_unknown_fields_on_staff_routes_are_refused(
    setup: tuple[Client, dict[str, str]],
    pool: asyncpg.Pool,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    client, tokens = setup
    me = await pool.fetchval("SELECT staff_id FROM staff WHERE username = 'admin1'")
    audited = await pool.fetchval("SELECT count(*) FROM audit_log")
    resp = await client.post(path.format(me=me), json=body, headers=bearer(tokens["admin1"]))
    err = (await resp.json())["error"]
    assert (resp.status, err["code"], err["field"]) == (422, "unknown_field", field)
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == audited
