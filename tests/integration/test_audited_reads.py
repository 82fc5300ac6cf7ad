"""Issue 17, audited reads through the composed service: opening a brukare's record, the list of
brukare, a report and an audit extract each write one audit entry (actor, subject, route, the
reason if given); a list is one entry; the console's repeated re-reads of one record fold into
one; a bad reason is 400 and reads nothing; ``GET /api/audit?action=recipient.viewed`` lists the
reads."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from identity import store as staff_store
from kernel.roles import Role
from services import app
from services.settings import load

pytestmark = pytest.mark.integration

ROLES = (Role.ADMINISTRATOR, Role.OPERATOR, Role.AUDITOR, Role.TECHNICIAN)


@pytest.fixture
async def composed(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> AsyncIterator[tuple[TestClient, dict[Role, tuple[str, dict[str, str]]]]]:  # type: ignore[type-arg]
    settings = dataclasses.replace(
        load({}),
        database_url=database_url,
        mqtt_url=mqtt_url,
        mqtt_topic_prefix=topic_prefix,
        http_rate_per_s=100_000,
        http_rate_burst=100_000,
    )
    async with app.runtime(settings) as rt:
        who: dict[Role, tuple[str, dict[str, str]]] = {}
        async with rt.pool.acquire() as conn:
            for role in ROLES:
                account = await staff_store.create_staff(
                    conn, username=f"reader-{role.value}", role=role, password=None, is_service=True
                )
                token = await staff_store.create_token(
                    conn, staff_id=account.staff_id, role=role, ttl_s=600, label="reads"
                )
                who[role] = (account.staff_id, {"Authorization": f"Bearer {token}"})
        async with TestClient(TestServer(rt.app)) as client:
            yield client, who


async def _entries(client: TestClient, auditor: dict[str, str], **query: str) -> list[Any]:  # type: ignore[type-arg]
    resp = await client.get("/api/audit", params=query, headers=auditor)
    assert resp.status == 200, await resp.text()
    return list((await resp.json())["entries"])


async def test_reads_are_audited_and_bulk_reads_are_one_entry(
    composed: tuple[TestClient, dict[Role, tuple[str, dict[str, str]]]],  # type: ignore[type-arg]
) -> None:
    client, who = composed
    _, admin = who[Role.ADMINISTRATOR]
    operator_id, operator = who[Role.OPERATOR]
    _, auditor = who[Role.AUDITOR]
    for rid in ("r-read-1", "r-read-2", "r-read-3"):
        resp = await client.post(
            "/api/recipients", json={"recipient_id": rid, "display_name": "A"}, headers=admin
        )
        assert resp.status == 201, await resp.text()

    # One record, opened and re-read as the console does on every live change: one entry.
    for _ in range(3):
        assert (await client.get("/api/recipients/r-read-1", headers=operator)).status == 200
    # A reason is new information: its own entry, with the reason.
    why = {"why": "larm kl 02:10, kontroll av samtycke"}
    resp = await client.get("/api/recipients/r-read-1", params=why, headers=operator)
    assert resp.status == 200
    # The list of all brukare is one entry, not one per brukare.
    listed = await client.get("/api/recipients", headers=operator)
    assert len((await listed.json())["recipients"]) == 3
    # A report is one entry for the night.
    assert (await client.get("/api/nights/2030-01-01/report", headers=operator)).status == 200

    viewed = await _entries(client, auditor, action="recipient.viewed")
    assert [(e["actor"], e["subject"], e["data"].get("why")) for e in viewed] == [
        (operator_id, "r-read-1", None),
        (operator_id, "r-read-1", why["why"]),
    ]
    assert viewed[0]["data"]["route"] == "GET /api/recipients/{recipient_id}"
    [bulk] = await _entries(client, auditor, action="recipient.listed")
    assert (bulk["actor"], bulk["subject"], bulk["data"]["count"]) == (operator_id, None, 3)
    [report] = await _entries(client, auditor, action="report.viewed")
    assert (report["subject"], report["data"]["report"]) == ("2030-01-01", "morning")
    # The extracts themselves are audited, with their filters.
    extracts = await _entries(client, auditor, action="audit.exported")
    assert [e["data"]["filters"] for e in extracts] == [
        {"action": "recipient.viewed"},
        {"action": "recipient.listed"},
        {"action": "report.viewed"},
    ]


async def test_a_bad_reason_reads_nothing_and_logs_nothing(
    composed: tuple[TestClient, dict[Role, tuple[str, dict[str, str]]]],  # type: ignore[type-arg]
) -> None:
    client, who = composed
    _, admin = who[Role.ADMINISTRATOR]
    _, operator = who[Role.OPERATOR]
    pool = client.app[app.RUNTIME].pool  # type: ignore[index]
    resp = await client.post(
        "/api/recipients", json={"recipient_id": "r-read-9", "display_name": "A"}, headers=admin
    )
    assert resp.status == 201
    before = await pool.fetchval("SELECT count(*) FROM audit_log")
    for bad in ("x" * 201, "   ", "rad\nbrytning", "nul\x00"):
        resp = await client.get("/api/recipients/r-read-9", params={"why": bad}, headers=operator)
        assert resp.status == 400, bad
        error = (await resp.json())["error"]
        assert (error["code"], error["field"]) == ("bad_query", "why")
    # An unknown record or check is 404 and no read happened.
    assert (await client.get("/api/recipients/r-none", headers=operator)).status == 404
    assert (await client.get("/api/checks/chk-none", headers=operator)).status == 404
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == before


async def test_a_technician_reads_installations_not_records(
    composed: tuple[TestClient, dict[Role, tuple[str, dict[str, str]]]],  # type: ignore[type-arg]
) -> None:
    client, who = composed
    _, admin = who[Role.ADMINISTRATOR]
    tech_id, tech = who[Role.TECHNICIAN]
    _, auditor = who[Role.AUDITOR]
    resp = await client.post(
        "/api/recipients",
        json={"recipient_id": "r-read-5", "display_name": "Namn Namnsson", "home": "Storgatan 1"},
        headers=admin,
    )
    assert resp.status == 201
    homes = await client.get("/api/installations", headers=tech)
    assert homes.status == 200
    assert (await homes.json()) == {
        "installations": [{"recipient_id": "r-read-5", "home": "Storgatan 1", "devices": []}]
    }
    assert (await client.get("/api/recipients/r-read-5", headers=tech)).status == 403
    [entry] = await _entries(client, auditor, action="installation.listed")
    assert (entry["actor"], entry["data"]["count"]) == (tech_id, 1)
