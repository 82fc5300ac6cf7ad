"""Bad input gets a clear 4xx naming the problem, and nothing is stored (hard rule 9)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from consent import api
from consent.ports import ConsentStore
from consent.store import PgConsentStore
from kernel.clock import ScaledClock
from services.web import http
from tests.integration.test_consent_api import ADMIN, OPERATOR, T0, header_authenticator

pytestmark = pytest.mark.integration
Client = TestClient[web.Request, web.Application]

TABLES = (
    "audit_log",
    "care_recipients",
    "cohabitants",
    "care_plans",
    "consents",
    "consent_withdrawals",
    "pauses",
    "binding_requests",
    "device_bindings",
    "suspensions",
    "reverifications",
)

ASKED = {
    "person_id": "r-1",
    "how": "visit",
    "spoken_at": "2026-01-12T20:00:00+00:00",
    "answers": {"camera_check": "consents"},
}


consent_ids: list[str] = []


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[Client]:
    app = http.make_app(max_body_bytes=4096)
    store: ConsentStore = PgConsentStore(pool)
    app[api.STORE] = store
    now: api.Clock = ScaledClock(0, T0)
    app[api.CLOCK] = now
    app[http.AUTHENTICATOR] = header_authenticator
    http.add_routes(app, api.routes())
    async with TestClient(TestServer(app)) as c:
        for body in (
            {"recipient_id": "r-1", "display_name": "Astrid Lindqvist"},
            {"recipient_id": "r-2", "display_name": "Gunnar Holm"},
        ):
            assert (await c.post("/api/recipients", json=body, headers=ADMIN)).status == 201
        resp = await c.post(
            "/api/recipients/r-2/cohabitants",
            json={"cohabitant_id": "co-2", "display_name": "Sven Holm"},
            headers=ADMIN,
        )
        assert resp.status == 201
        await pool.execute("INSERT INTO devices (device_id, kind) VALUES ('cam-0001', 'camera')")
        resp = await c.post(
            "/api/recipients/r-1/consents",
            json={
                "person": "recipient",
                "purpose": "camera_check",
                "basis": "informed_consent",
                "informed_by": "staff-admin01",
                "informed_how": "samtal",
                "given_at": "2026-01-10T12:00:00Z",
                "consent_id": None,
            },
            headers=ADMIN,
        )
        assert resp.status == 422  # consent_id is not a field a client may set
        resp = await c.post(
            "/api/recipients/r-1/consents",
            json={
                "person": "recipient",
                "purpose": "camera_check",
                "basis": "informed_consent",
                "informed_by": "staff-admin01",
                "informed_how": "samtal",
                "given_at": "2026-01-10T12:00:00Z",
            },
            headers=ADMIN,
        )
        assert resp.status == 201
        consent_ids.append((await resp.json())["consent_id"])
        yield c


async def counts(pool: asyncpg.Pool) -> dict[str, int]:
    return {t: await pool.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}


def plan(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "decision_ref": "SN-1",
        "valid_from": "2026-01-01T12:00:00Z",
        "checks": [{"at": "22:00", "tolerance_min": 15}, {"at": "02:00"}],
    }
    body.update(over)
    return body


def consent(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "person": "recipient",
        "purpose": "motion_analysis",
        "basis": "informed_consent",
        "informed_by": "staff-admin01",
        "informed_how": "samtal",
        "given_at": "2026-01-10T12:00:00Z",
    }
    body.update(over)
    return {k: v for k, v in body.items() if v is not None}


PLANS = "/api/recipients/r-1/care-plans"
CASES: list[tuple[str, str, Any, int, str, str | None]] = [
    # (name, path, json body or raw bytes, status, code, field)
    ("zero checks", PLANS, plan(checks=[]), 422, "out_of_range", "checks"),
    (
        "25 checks",
        PLANS,
        plan(
            checks=[
                {"at": f"{13 + i // 3}:{(i % 3) * 20:02d}", "tolerance_min": 5} for i in range(25)
            ]
        ),
        422,
        "out_of_range",
        "checks",
    ),
    (
        "overlapping windows",
        PLANS,
        plan(checks=[{"at": "22:00", "tolerance_min": 30}, {"at": "22:20"}]),
        422,
        "overlapping_windows",
        "checks[1]",
    ),
    (
        "inverted window",
        PLANS,
        plan(checks=[{"at": "22:00", "tolerance_min": -10}]),
        422,
        "inverted_window",
        "checks[0].tolerance_min",
    ),
    (
        "inverted period",
        PLANS,
        plan(valid_until="2025-12-01T00:00:00Z"),
        422,
        "inverted_period",
        "valid_until",
    ),
    ("bad time", PLANS, plan(checks=[{"at": "25:00"}]), 422, "bad_value", "checks[0].at"),
    (
        "local time that does not exist",
        PLANS,
        plan(valid_from="2026-03-29T02:30"),
        422,
        "nonexistent_local_time",
        "valid_from",
    ),
    (
        "local time that occurs twice",
        PLANS,
        plan(valid_from="2026-10-25T02:30"),
        422,
        "ambiguous_local_time",
        "valid_from",
    ),
    (
        "checks that collide on the March night",
        PLANS,
        plan(checks=[{"at": "02:30", "tolerance_min": 10}, {"at": "03:30", "tolerance_min": 10}]),
        422,
        "dst_overlap",
        "checks[1]",
    ),
    ("unknown field", PLANS, plan(colour="blue"), 422, "unknown_field", "colour"),
    ("missing field", PLANS, {"checks": [{"at": "22:00"}]}, 422, "missing_field", "decision_ref"),
    (
        "consent for an unknown person",
        "/api/recipients/r-1/consents",
        {
            "person": "co-nobody",
            "purpose": "camera_check",
            "basis": "informed_consent",
            "informed_by": "s",
            "informed_how": "h",
        },
        422,
        "unknown_person",
        "person",
    ),
    (
        "consent for another brukare's cohabitant",
        "/api/recipients/r-1/consents",
        consent(person="co-2"),
        422,
        "unknown_person",
        "person",
    ),
    (
        "consent for an unknown purpose",
        "/api/recipients/r-2/consents",
        {"person": "recipient", "purpose": "filming", "basis": "informed_consent"},
        422,
        "bad_value",
        "purpose",
    ),
    (
        "consent windows that overlap",
        "/api/recipients/r-1/consents",
        consent(windows=[{"start": "22:00", "end": "02:00"}, {"start": "01:00", "end": "03:00"}]),
        422,
        "overlapping_windows",
        "windows[1]",
    ),
    (
        "an empty consent window",
        "/api/recipients/r-1/consents",
        consent(windows=[{"start": "22:00", "end": "22:00"}]),
        422,
        "empty_window",
        "windows[0]",
    ),
    (
        "consent given in the future",
        "/api/recipients/r-1/consents",
        consent(given_at="2026-02-01T00:00:00Z"),
        422,
        "in_future",
        "given_at",
    ),
    (
        "consent that ends before it starts",
        "/api/recipients/r-1/consents",
        consent(valid_from="2026-01-10T12:00:00Z", valid_until="2026-01-09T12:00:00Z"),
        422,
        "inverted_period",
        "valid_until",
    ),
    (
        "consent without a legal basis's details",
        "/api/recipients/r-1/consents",
        consent(informed_how=None),
        422,
        "required",
        "informed_how",
    ),
    (
        "withdrawal dated in the future",
        "/api/consents/{consent_id}/withdraw",
        {"withdrawn_at": "2026-02-01T00:00:00Z"},
        422,
        "in_future",
        "withdrawn_at",
    ),
    (
        "withdrawing an unknown consent",
        "/api/consents/cons-404/withdraw",
        {},
        404,
        "not_found",
        "consent_id",
    ),
    (
        "recipient with a malformed id",
        "/api/recipients",
        {"recipient_id": "R 1", "display_name": "Test"},
        422,
        "bad_value",
        "recipient_id",
    ),
    (
        "recipient in an unknown time zone",
        "/api/recipients",
        {"display_name": "Test", "time_zone": "Mars/Olympus"},
        422,
        "unknown_time_zone",
        "time_zone",
    ),
    (
        "recipient without a name",
        "/api/recipients",
        {"display_name": "   "},
        422,
        "bad_value",
        "display_name",
    ),
    (
        "recipient id taken",
        "/api/recipients",
        {"recipient_id": "r-1", "display_name": "Test"},
        409,
        "duplicate",
        "recipient_id",
    ),
    (
        "cohabitant without a name",
        "/api/recipients/r-1/cohabitants",
        {"cohabitant_id": "co-9"},
        422,
        "missing_field",
        "display_name",
    ),
    (
        "cohabitant moving in at a local time that does not exist",
        "/api/recipients/r-1/cohabitants",
        {"display_name": "Test", "moved_in_at": "2026-03-29T02:15"},
        422,
        "nonexistent_local_time",
        "moved_in_at",
    ),
    (
        "move-out of an unknown cohabitant",
        "/api/cohabitants/co-404/move-out",
        {},
        404,
        "not_found",
        "cohabitant_id",
    ),
    (
        "move-out before moving in",
        "/api/cohabitants/co-2/move-out",
        {"moved_out_at": "2020-01-01T00:00:00Z"},
        422,
        "inverted_period",
        "moved_out_at",
    ),
    ("ending an unknown plan", "/api/care-plans/plan-404/end", {}, 404, "not_found", "plan_id"),
    (
        "a view cap beyond the limit",
        PLANS,
        plan(view_cap_s=3600),
        422,
        "out_of_range",
        "view_cap_s",
    ),
    (
        "an auto-answered call's cap beyond 15 minutes",
        PLANS,
        plan(call_cap_s=901),
        422,
        "out_of_range",
        "call_cap_s",
    ),
    ("an announcement under 3 s", PLANS, plan(announce_s=2), 422, "out_of_range", "announce_s"),
    (
        "a countdown that is not a boolean",
        PLANS,
        plan(live_countdown=1),
        422,
        "wrong_type",
        "live_countdown",
    ),
    (
        "an escalation ladder that does not end with a patrol",
        PLANS,
        plan(escalation=["retry", "call"]),
        422,
        "must_end_with_patrol",
        "escalation",
    ),
    (
        "a pause from an unknown source",
        "/api/recipients/r-1/pauses",
        {"source": "neighbour", "reason": "travel"},
        422,
        "bad_value",
        "source",
    ),
    ("ending an unknown pause", "/api/pauses/pause-404/end", {}, 404, "not_found", "pause_id"),
    (
        "re-verification without anyone asked",
        "/api/recipients/r-1/reverify",
        {"people": []},
        422,
        "out_of_range",
        "people",
    ),
    (
        "re-verification asked in an unknown way",
        "/api/recipients/r-1/reverify",
        {"people": [dict(ASKED, how="letter")]},
        422,
        "bad_value",
        "people[0].how",
    ),
    (
        "re-verification without the camera answer",
        "/api/recipients/r-1/reverify",
        {"people": [dict(ASKED, answers={"video_call": "consents"})]},
        422,
        "missing_field",
        "people[0].answers.camera_check",
    ),
    (
        "re-verification with an unknown answer",
        "/api/recipients/r-1/reverify",
        {"people": [dict(ASKED, answers={"camera_check": "maybe"})]},
        422,
        "bad_value",
        "people[0].answers.camera_check",
    ),
    (
        "re-verification with the old boolean",
        "/api/recipients/r-1/reverify",
        {"consent_verified": True},
        422,
        "unknown_field",
        "consent_verified",
    ),
    (
        "re-verification without a suspension",
        "/api/recipients/r-1/reverify",
        {"people": [ASKED]},
        409,
        "not_suspended",
        None,
    ),
    (
        "binding an unknown device",
        "/api/devices/cam-404/binding-requests",
        {"recipient_id": "r-1"},
        404,
        "not_found",
        "device_id",
    ),
    (
        "binding without naming the brukare",
        "/api/devices/cam-0001/binding-requests",
        {},
        422,
        "missing_field",
        "recipient_id",
    ),
    (
        "an unknown binding action",
        "/api/devices/cam-0001/binding-requests",
        {"action": "borrow", "recipient_id": "r-1"},
        422,
        "bad_value",
        "action",
    ),
    (
        "unbinding a device that is not bound",
        "/api/devices/cam-0001/binding-requests",
        {"action": "unbind"},
        409,
        "device_not_bound",
        None,
    ),
    (
        "confirming an unknown request",
        "/api/binding-requests/breq-404/confirm",
        {"recipient_id": "r-1"},
        404,
        "not_found",
        "request_id",
    ),
    (
        "confirming with a malformed brukare id",
        "/api/binding-requests/breq-404/confirm",
        {"recipient_id": "R1"},
        422,
        "bad_value",
        "recipient_id",
    ),
    (
        "confirming without naming the brukare",
        "/api/binding-requests/breq-404/confirm",
        {},
        422,
        "missing_field",
        "recipient_id",
    ),
    (
        "confirming with a code that is not six digits",
        "/api/binding-requests/breq-404/confirm",
        {"recipient_id": "r-1", "code": "12345"},
        422,
        "bad_value",
        "code",
    ),
    (
        "confirming with a name longer than any record's",
        "/api/binding-requests/breq-404/confirm",
        {"recipient_id": "r-1", "name": "x" * 201},
        422,
        "out_of_range",
        "name",
    ),
    (
        "other legal basis without its reference",
        "/api/recipients/r-1/consents",
        {"person": "recipient", "purpose": "camera_check", "basis": "other_legal_basis"},
        422,
        "required",
        "basis_ref",
    ),
    (
        "withdrawal dated before the consent",
        "/api/consents/{consent_id}/withdraw",
        {"withdrawn_at": "2026-01-01T00:00:00Z"},
        422,
        "before_consent",
        "withdrawn_at",
    ),
    (
        "pause that ends before it starts",
        "/api/recipients/r-1/pauses",
        {
            "starts_at": "2026-01-12T22:00",
            "ends_at": "2026-01-12T21:00",
            "source": "hospital",
            "reason": "hospital_stay",
        },
        422,
        "inverted_period",
        "ends_at",
    ),
    (
        "an agreed time outside the night round (18:00-12:00 by default)",
        PLANS,
        plan(checks=[{"at": "22:00"}, {"at": "15:00", "tolerance_min": 5}]),
        422,
        "outside_round",
        "checks[1].at",
    ),
    (
        "a window that opens before the round starts",
        PLANS,
        plan(checks=[{"at": "18:05", "tolerance_min": 10}]),
        422,
        "outside_round",
        "checks[0].at",
    ),
    (
        "an id with a final newline (Python's $ would let it through)",
        "/api/recipients",
        {"recipient_id": "r-9\n", "display_name": "Test"},
        422,
        "bad_value",
        "recipient_id",
    ),
    (
        "a NUL in a name",
        "/api/recipients",
        {"display_name": "Te\x00st"},
        422,
        "invalid_text",
        "display_name",
    ),
    (
        "a number for a name",
        "/api/recipients",
        {"display_name": 5},
        422,
        "wrong_type",
        "display_name",
    ),
    (
        "a time with a newline",
        PLANS,
        plan(checks=[{"at": "22:00\n"}]),
        422,
        "bad_value",
        "checks[0].at",
    ),
    (
        "a time in other digits",
        PLANS,
        plan(checks=[{"at": "\u0662\u0662:00"}]),
        422,
        "bad_value",
        "checks[0].at",
    ),
    (
        "a tolerance that is no whole number",
        PLANS,
        plan(checks=[{"at": "22:00", "tolerance_min": 1.5}]),
        422,
        "wrong_type",
        "checks[0].tolerance_min",
    ),
    ("non-UTF-8 body", PLANS, b'{"decision_ref": "\xff\xfe"}', 400, "bad_body", None),
    ("not JSON", PLANS, b"decision_ref=SN-1", 400, "bad_body", None),
    ("a JSON array", PLANS, b"[1, 2]", 400, "bad_body", None),
    ("oversized body", PLANS, b'{"instruction": "' + b"x" * 5000 + b'"}', 413, "too_large", None),
    (
        "unknown brukare",
        "/api/recipients/r-404/care-plans",
        plan(),
        404,
        "not_found",
        "recipient_id",
    ),
]


async def test_bad_input_is_refused_and_stores_nothing(client: Client, pool: asyncpg.Pool) -> None:
    """One database for the whole table (a fresh one per case costs ~2 s each)."""
    for name, path, body, status, code, field in CASES:
        before = await counts(pool)
        url = path.format(consent_id=consent_ids[-1])
        if isinstance(body, bytes):
            headers = {**ADMIN, "Content-Type": "application/json"}
            resp = await client.post(url, data=body, headers=headers)
        else:
            resp = await client.post(url, json=body, headers=ADMIN)
        err = (await resp.json())["error"]
        assert (resp.status, err["code"], err["field"]) == (status, code, field), (name, err)
        assert err["message"], name
        assert await counts(pool) == before, name
    # and the service keeps serving
    assert (await client.get("/api/recipients", headers=OPERATOR)).status == 200


async def test_round_times_follow_the_configured_plan_hour(pool: asyncpg.Pool) -> None:
    """With the round starting at 20:00, a 19:00 check is refused (naming it) and nothing is
    stored; 21:00 is accepted."""
    app = http.make_app(max_body_bytes=4096)
    app[api.STORE] = PgConsentStore(pool)
    app[api.CLOCK] = ScaledClock(0, T0)
    app[api.PLAN_HOUR] = 20
    app[http.AUTHENTICATOR] = header_authenticator
    http.add_routes(app, api.routes())
    async with TestClient(TestServer(app)) as c:
        body = {"recipient_id": "r-9", "display_name": "Astrid Lindqvist"}
        assert (await c.post("/api/recipients", json=body, headers=ADMIN)).status == 201
        before = await counts(pool)
        url = "/api/recipients/r-9/care-plans"
        resp = await c.post(url, json=plan(checks=[{"at": "19:00"}]), headers=ADMIN)
        err = (await resp.json())["error"]
        assert (resp.status, err["code"], err["field"]) == (422, "outside_round", "checks[0].at")
        assert "20:00-12:00" in err["message"]
        assert await counts(pool) == before
        resp = await c.post(url, json=plan(checks=[{"at": "21:00"}]), headers=ADMIN)
        assert resp.status == 201, await resp.text()
