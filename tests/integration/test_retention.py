"""A brukare's service ends, and after the retention period their personal data is erased
(issue 18, item 2): no name, home, door-code reference or note is left in any text or JSON column
of any table, in the logs or in their extract, while the audit chain verifies and the morning
report of their nights gives the same totals as before. Bad input to the end route changes
nothing. The job's other classes delete and blank in batches, audited by count."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import structlog
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from consent import api, ending_api
from consent.ending import Endings
from consent.store import PgConsentStore
from kernel.audit import store as audit_store
from kernel.clock import ScaledClock
from services import retention
from services import retention_rules as rr
from services.settings import load
from services.web import http
from supervision import extract as ex
from supervision import extract_store
from supervision import handover as hv
from supervision import report as rp
from supervision.store import RoundStore
from tests.header_auth import header_authenticator
from tools import cli

pytestmark = pytest.mark.integration
Client = TestClient[web.Request, web.Application]

ZONE = ZoneInfo("Europe/Stockholm")
T0 = datetime(2026, 1, 12, 11, 0, tzinfo=UTC)
NIGHT = date(2026, 1, 10)
ADMIN = {"X-Test-Role": "administrator", "X-Test-Staff": "staff-admin01"}
OPERATOR = {"X-Test-Role": "operator", "X-Test-Staff": "staff-oper01"}
POLICY = json.dumps(
    {
        "view_cap_s": 30,
        "may_clear_without_human": False,
        "retry_interval_s": 1200,
        "ladder": ["retry", "call", "patrol"],
        "paused_visit": True,
    }
)
PERSONAL = (
    "Astrid",
    "Lindqvist",
    "Storgatan",
    "4471",
    "Skövde",
    "golvet",
    "ropade",
    "vardagsrummet",
    "SN-2026-0042",
    "Samtal i hemmet",
    "DOK-AL-9",
    "vill inte",
    "staff-infor1",
)
"""Every piece of r-1's personal data the test writes, somewhere."""
KEPT = "Gunnar Holm"  # r-2, whose service goes on: erasure is about one brukare only

LONG = 3650
SHORT_POLICY = rr.Policy(
    {
        rr.DataClass.VIEW_LOG: LONG,
        rr.DataClass.CHECK_RECORDS: LONG,
        rr.DataClass.NOTES: LONG,
        rr.DataClass.DEVICE_HEALTH: LONG,
        rr.DataClass.SESSIONS: LONG,
        rr.DataClass.ENDED_RECIPIENTS: 30,
    }
)


@pytest.fixture
def clock() -> ScaledClock:
    return ScaledClock(0, T0)


@pytest.fixture
async def client(pool: asyncpg.Pool, clock: ScaledClock) -> AsyncIterator[Client]:
    app = http.make_app(max_body_bytes=4096)
    app[api.STORE] = PgConsentStore(pool)
    app[api.CLOCK] = clock
    app[ending_api.ENDINGS] = Endings(pool)
    app[http.AUTHENTICATOR] = header_authenticator
    http.add_routes(app, [*api.routes(), *ending_api.routes()])
    async with TestClient(TestServer(app)) as c:
        yield c


async def _ok(resp: ClientResponse, status: int = 201) -> dict[str, Any]:
    body = await resp.json()
    assert resp.status == status, body
    assert isinstance(body, dict)
    return body


async def _seed_record(c: Client, owner: asyncpg.Connection) -> None:
    """r-1 with every kind of personal text through the API; r-2 beside her."""
    await _ok(
        await c.post(
            "/api/recipients",
            json={
                "recipient_id": "r-1",
                "display_name": "Astrid Lindqvist",
                "home": "Storgatan 7, Hjo",
                "door_code_ref": "Nyckelskåp 4471",
            },
            headers=ADMIN,
        )
    )
    await _ok(
        await c.post(
            "/api/recipients",
            json={"recipient_id": "r-2", "display_name": KEPT, "home": "Torget 1"},
            headers=ADMIN,
        )
    )
    await _ok(
        await c.post(
            "/api/recipients/r-1/cohabitants",
            json={"cohabitant_id": "co-1", "display_name": "Sven Lindqvist"},
            headers=ADMIN,
        )
    )
    await _ok(
        await c.post(
            "/api/recipients/r-1/care-plans",
            json={
                "decision_ref": "SN-2026-0042",
                "valid_from": "2026-01-01T12:00:00Z",
                "checks": [{"at": "22:00"}],
                "instruction": "Astrid sover i vardagsrummet",
            },
            headers=ADMIN,
        )
    )
    for person, purpose in (("recipient", "camera_check"), ("co-1", "camera_check")):
        await _ok(
            await c.post(
                "/api/recipients/r-1/consents",
                json={
                    "person": person,
                    "purpose": purpose,
                    "basis": "informed_consent",
                    "informed_by": "staff-infor1",
                    "informed_how": "Samtal i hemmet med Astrid",
                    "given_at": "2026-01-02T12:00:00Z",
                    "document_ref": "DOK-AL-9",
                },
                headers=ADMIN,
            )
        )
    motion = await _ok(
        await c.post(
            "/api/recipients/r-1/consents",
            json={
                "person": "recipient",
                "purpose": "motion_analysis",
                "basis": "informed_consent",
                "informed_by": "staff-infor1",
                "informed_how": "Samtal i hemmet",
                "given_at": "2026-01-02T12:00:00Z",
            },
            headers=ADMIN,
        )
    )
    await _ok(
        await c.post(
            f"/api/consents/{motion['consent_id']}/withdraw",
            json={"reason": "Astrid vill inte bli filmad av en dator"},
            headers=ADMIN,
        ),
        200,
    )
    await _ok(
        await c.post(
            "/api/recipients/r-1/pauses",
            json={
                "starts_at": "2026-01-20T12:00:00Z",
                "source": "relative",
                "reason": "hospital_stay",
                "note": "Astrid på sjukhus i Skövde",
            },
            headers=ADMIN,
        )
    )
    # A bound camera with zones drawn for her room (as the owner: the binding's steps are not
    # what this test is about).
    await owner.execute(
        "INSERT INTO devices (device_id, kind, quarantined) VALUES ('cam-r-1', 'camera', false);"
        "INSERT INTO device_bindings (binding_id, device_id, recipient_id, bound_at,"
        " requested_by, bound_by) VALUES ('b-1', 'cam-r-1', 'r-1', '2026-01-03', 'staff-a',"
        " 'staff-b');"
        "INSERT INTO camera_zones (device_id, ref_width, ref_height, zones, updated_at,"
        " updated_by) VALUES ('cam-r-1', 640, 480,"
        " '[{\"name\": \"bed\", \"polygon\": [[0,0],[10,0],[10,10]]}]', '2026-01-03', 'staff-a')"
    )


async def _seed_night(owner: asyncpg.Connection) -> None:
    """One documented check of r-1 on NIGHT, a view with video, an extra look with a note, a
    step with a note, an alarm; and one check of r-2."""
    at = datetime(2026, 1, 10, 22, 0, tzinfo=ZONE)
    for rid, state in (("r-1", "documented"), ("r-2", "deviation")):
        await owner.execute(
            "INSERT INTO round_checks (check_id, recipient_id, device_id, night, agreed, agreed_at,"
            " window_start, window_end, policy, state, since, deadline, attempt, ladder_step,"
            " reason, version, planned_at) VALUES ($1, $2, $3, $4, '22:00', $5, $6, $7,"
            " $8::jsonb, $9, $5, NULL, 1, 0, NULL, 3, $5)",
            f"20260110.2200.{rid}",
            rid,
            f"cam-{rid}" if rid == "r-1" else None,
            NIGHT,
            at,
            at - timedelta(minutes=15),
            at + timedelta(minutes=15),
            POLICY,
            state,
        )
    await owner.execute(
        "INSERT INTO round_transitions (check_id, version, at, from_state, to_state, event, actor,"
        " note) VALUES"
        " ('20260110.2200.r-1', 2, $1, 'planned', 'due', 'window_opened', 'system', NULL),"
        " ('20260110.2200.r-1', 3, $2, 'viewing', 'documented', 'documented', 'staff-oper01',"
        "  'Astrid låg på golvet men mådde bra')",
        at,
        at + timedelta(minutes=3),
    )
    await owner.execute(
        "INSERT INTO round_alarms (check_id, version, state, deadline, raised_at)"
        " VALUES ('20260110.2200.r-1', 2, 'due', $1, $1)",
        at + timedelta(minutes=5),
    )
    await owner.execute(
        "INSERT INTO signal_sessions (session_id, device_id, purpose, staff_id, recipient_id,"
        " instance_id, state, started_at, deadline, ended_at, end_reason, check_id, look,"
        " look_reason, look_note, video_s) VALUES"
        " ('sess-view-0001', 'cam-r-1', 'view', 'staff-oper01', 'r-1', 'i-1', 'closed', $1,"
        "  $2, $2, 'client_closed', '20260110.2200.r-1', 'check', NULL, NULL, 12.5),"
        " ('sess-extra-001', 'cam-r-1', 'view', 'staff-oper01', 'r-1', 'i-1', 'closed', $3,"
        "  $4, $4, 'client_closed', NULL, 'extra', 'heard_sound', 'Astrid ropade', 8.0)",
        at + timedelta(minutes=1),
        at + timedelta(minutes=2),
        at + timedelta(hours=2),
        at + timedelta(hours=2, minutes=1),
    )


async def _report_totals(pool: asyncpg.Pool) -> dict[str, object]:
    store = RoundStore(pool)
    since, until = hv.night_bounds(NIGHT, ZONE)
    report = rp.build(
        NIGHT,
        await store.night_checks(NIGHT),
        await store.transitions(NIGHT),
        generated_at=T0,
        alarms=await store.alarms(NIGHT),
        looks=await store.night_looks(NIGHT, since=since, until=until),
    )
    totals = report["totals"]
    assert isinstance(totals, dict)
    return totals


async def _text_columns(owner: asyncpg.Connection) -> list[tuple[str, str]]:
    rows = await owner.fetch(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c"
        " JOIN information_schema.tables t USING (table_schema, table_name)"
        " WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'"
        " AND (c.data_type IN ('text', 'character varying', 'jsonb', 'json')"
        "      OR (c.data_type = 'ARRAY' AND c.udt_name IN ('_text', '_varchar')))"
        " ORDER BY 1, 2"
    )
    return [(r["table_name"], r["column_name"]) for r in rows]


async def _found(owner: asyncpg.Connection, needle: str) -> list[str]:
    """Every table.column (any text, JSON or text array column) holding ``needle``."""
    hits = []
    for table, column in await _text_columns(owner):
        n = await owner.fetchval(
            f'SELECT count(*) FROM "{table}" WHERE "{column}"::text ILIKE $1',
            f"%{needle}%",
        )
        if n:
            hits.append(f"{table}.{column}")
    return hits


async def test_every_text_column_is_placed(owner: asyncpg.Connection) -> None:
    """Every text or JSON column of the schema is either erased for an ended brukare or declared
    to hold no personal data about one: a new column must be placed (services.retention_rules)."""
    assert rr.unplaced(await _text_columns(owner)) == []


async def test_bad_input_to_the_end_route_changes_nothing(
    client: Client, pool: asyncpg.Pool, owner: asyncpg.Connection
) -> None:
    await _seed_record(client, owner)

    async def state() -> tuple[object, ...]:
        return (
            await owner.fetchval("SELECT count(*) FROM audit_log"),
            await owner.fetchval("SELECT count(*) FROM care_recipients WHERE ended_at IS NULL"),
            await owner.fetchval("SELECT count(*) FROM device_bindings WHERE unbound_at IS NULL"),
            await owner.fetchval("SELECT count(*) FROM care_plans WHERE ended_at IS NULL"),
        )

    before = await state()
    cases: list[tuple[str, dict[str, str], object, int, str | None]] = [
        ("r-1", ADMIN, {"reason": "gone"}, 422, "reason"),
        ("r-1", ADMIN, {}, 422, "reason"),
        ("r-1", ADMIN, {"reason": "moved", "extra": 1}, 422, "extra"),
        ("r-1", ADMIN, {"reason": "moved", "ended_at": "2027-01-01T00:00:00Z"}, 422, "ended_at"),
        ("r-1", ADMIN, {"reason": "moved", "ended_at": "2025-01-01T00:00:00Z"}, 422, "ended_at"),
        ("r-1", ADMIN, {"reason": "moved", "ended_at": "yesterday"}, 422, "ended_at"),
        ("r-1", OPERATOR, {"reason": "moved"}, 403, None),
        ("r-404", ADMIN, {"reason": "moved"}, 404, None),
        ("r-1", {**ADMIN, "X-Test-Teams": "other"}, {"reason": "moved"}, 404, None),
    ]
    for rid, headers, body, status, field in cases:
        resp = await client.post(f"/api/recipients/{rid}/end", json=body, headers=headers)
        got = await resp.json()
        assert resp.status == status, (body, got)
        if field is not None:
            assert got["error"]["field"] == field, got
    resp = await client.post("/api/recipients/r-1/end", data=b"reason=moved", headers=ADMIN)
    assert resp.status in (400, 415)
    assert await state() == before
    # Ended once; a second end is a conflict and changes nothing more.
    await _ok(
        await client.post("/api/recipients/r-1/end", json={"reason": "moved"}, headers=ADMIN), 200
    )
    after = await state()
    resp = await client.post("/api/recipients/r-1/end", json={"reason": "deceased"}, headers=ADMIN)
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "already_ended"
    assert await state() == after
    assert (
        await owner.fetchval("SELECT end_reason FROM care_recipients WHERE recipient_id = 'r-1'")
        == "moved"
    )


async def test_the_service_role_cannot_blank_consents_itself(
    client: Client, pool: asyncpg.Pool, owner: asyncpg.Connection
) -> None:
    """The erasure flag is not a key: the service's role setting it still cannot UPDATE the
    append-only consent tables, and erase_recipient refuses a brukare whose service goes on."""
    await _seed_record(client, owner)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('homecare.erasing', 'on', true)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE consents SET informed_how = NULL WHERE recipient_id = 'r-1'")
    with pytest.raises(asyncpg.CheckViolationError):
        await retention.erase(pool, "r-1", at=T0)
    assert (
        await owner.fetchval("SELECT count(*) FROM consents WHERE informed_how LIKE 'Samtal%'") == 3
    )


async def test_an_ended_brukare_aged_past_retention_leaves_no_trace(
    client: Client, pool: asyncpg.Pool, owner: asyncpg.Connection, clock: ScaledClock
) -> None:
    await _seed_record(client, owner)
    await _seed_night(owner)
    totals = await _report_totals(pool)
    assert totals["planned"] == 2
    assert totals["views"] == 2
    assert totals["extra_looks"] == 1
    for needle in ("Astrid", "Storgatan", "golvet", "ropade", "Skövde"):
        assert await _found(owner, needle), needle  # the scan is not vacuous

    with structlog.testing.capture_logs() as logs:
        ended = await _ok(
            await client.post(
                "/api/recipients/r-1/end",
                json={"reason": "deceased", "ended_at": "2026-01-12T11:00:00Z"},
                headers=ADMIN,
            ),
            200,
        )
        assert ended["devices_unbound"] == ["cam-r-1"]
        assert len(ended["plans_ended"]) == 1
        assert len(ended["pauses_ended"]) == 1
        device = await owner.fetchrow("SELECT quarantined FROM devices WHERE device_id = 'cam-r-1'")
        assert device["quarantined"] is True
        assert (
            await owner.fetchval(
                "SELECT count(*) FROM device_bindings"
                " WHERE recipient_id = 'r-1' AND unbound_at IS NULL"
            )
            == 0
        )
        assert (
            await owner.fetchval(
                "SELECT count(*) FROM care_plans WHERE recipient_id = 'r-1' AND ended_at IS NULL"
            )
            == 0
        )
        pause_end = await owner.fetchval("SELECT ends_at FROM pauses WHERE recipient_id = 'r-1'")
        pause_start = await owner.fetchval(
            "SELECT starts_at FROM pauses WHERE recipient_id = 'r-1'"
        )
        assert pause_end == pause_start  # a pause still to come never runs

        # Within the retention nothing is erased.
        clock.advance(timedelta(days=29))
        early = await retention.run(pool, SHORT_POLICY, now=clock(), batch=2)
        assert early.erased == []
        assert await _found(owner, "Astrid")

        clock.advance(timedelta(days=2))
        done = await retention.run(pool, SHORT_POLICY, now=clock(), batch=2)
        assert done.erased == ["r-1"]
        again = await retention.run(pool, SHORT_POLICY, now=clock(), batch=2)
        assert again.erased == []

        async with pool.acquire() as conn:
            r = await extract_store.recipient(conn, "r-1")
            assert r is not None
            built = await extract_store.make(
                conn,
                r,
                date(2026, 1, 1),
                date(2026, 1, 31),
                actor="staff-admin01",
                fmt="json",
                lang="sv",
                now=clock(),
                more={},
            )
        extract_text = json.dumps(ex.to_json(built), ensure_ascii=False)
        assert "sess-extra-001" in extract_text  # the looks are still there, pseudonymous

    for needle in PERSONAL:
        assert await _found(owner, needle) == [], needle
        assert needle.lower() not in extract_text.lower(), needle
        assert needle.lower() not in repr(logs).lower(), needle
    assert await _found(owner, KEPT) == ["care_recipients.display_name"]

    row = await owner.fetchrow("SELECT * FROM care_recipients WHERE recipient_id = 'r-1'")
    assert row["display_name"] == "r-1"
    assert row["home"] == ""
    assert row["door_code_ref"] == ""
    assert row["erased_at"] == T0 + timedelta(days=31)
    assert row["end_reason"] == "deceased"
    # The pseudonymous record stays and adds up as before.
    assert await _report_totals(pool) == totals
    verified = await audit_store.verify(owner)
    assert verified.ok, verified
    actions = [
        r["action"]
        for r in await owner.fetch(
            "SELECT action FROM audit_log WHERE action IN"
            " ('recipient.ended', 'recipient.erased', 'retention.applied') ORDER BY seq"
        )
    ]
    assert actions == ["recipient.ended", "recipient.erased", "retention.applied"]
    applied = json.loads(
        await owner.fetchval("SELECT data::text FROM audit_log WHERE action = 'retention.applied'")
    )
    assert applied["data_class"] == "ended_recipients"
    assert applied["rows"]["care_recipients"] == 1
    assert applied["rows"]["consents"] == 3


async def test_each_class_is_deleted_or_blanked_in_batches_and_audited_by_count(
    client: Client, pool: asyncpg.Pool, owner: asyncpg.Connection
) -> None:
    await _seed_record(client, owner)
    await _seed_night(owner)
    await owner.execute(
        "INSERT INTO staff (staff_id, username, role, created_at)"
        " VALUES ('staff-old001', 'old', 'operator', $1)",
        T0,
    )
    await owner.execute(
        "INSERT INTO staff_sessions (session_id, secret_hash, staff_id, created_at, expires_at)"
        " SELECT 'sess-' || i, 'hash-' || i, 'staff-old001', $1::timestamptz,"
        " $1::timestamptz + interval '1 hour'"
        "   FROM generate_series(1, 7) AS i",
        T0,
    )
    now = T0 + timedelta(days=400)
    policy = rr.Policy({**SHORT_POLICY.days, rr.DataClass.NOTES: 365, rr.DataClass.SESSIONS: 30})
    dry = await retention.run(pool, policy, now=now, batch=3, dry_run=True)
    assert dry.rows["notes"] == {"round_transitions": 1, "signal_sessions": 1, "pauses": 0}
    assert dry.rows["sessions"]["staff_sessions"] == 7
    assert await owner.fetchval("SELECT count(*) FROM staff_sessions") == 7  # dry: unchanged
    assert (
        await owner.fetchval("SELECT count(*) FROM audit_log WHERE action = 'retention.applied'")
        == 0
    )

    done = await retention.run(pool, policy, now=now, batch=3)
    assert done.rows["sessions"]["staff_sessions"] == 7  # three batches: 3 + 3 + 1
    assert await owner.fetchval("SELECT count(*) FROM staff_sessions") == 0
    assert (
        await owner.fetchval("SELECT count(*) FROM round_transitions WHERE note IS NOT NULL") == 0
    )
    assert (
        await owner.fetchval(
            "SELECT look_note FROM signal_sessions WHERE session_id = 'sess-extra-001'"
        )
        == ""
    )
    # The pause has not ended: its note stays while it runs.
    assert await owner.fetchval("SELECT note FROM pauses") == "Astrid på sjukhus i Skövde"
    entries = {
        json.loads(r["data"])["data_class"]: json.loads(r["data"])
        for r in await owner.fetch(
            "SELECT data::text AS data FROM audit_log WHERE action = 'retention.applied'"
        )
    }
    assert set(entries) == {"notes", "sessions"}
    assert entries["sessions"]["total"] == 7
    assert entries["notes"]["rows"] == {"round_transitions": 1, "signal_sessions": 1}
    assert (await audit_store.verify(owner)).ok
    # The report's counts do not rest on notes.
    totals = await _report_totals(pool)
    assert totals["planned"] == 2
    assert totals["extra_looks"] == 1


async def test_one_process_at_a_time(pool: asyncpg.Pool, owner: asyncpg.Connection) -> None:
    assert await owner.fetchval("SELECT pg_try_advisory_lock($1)", retention.RETENTION_LOCK_KEY)
    try:
        out = await retention.run(pool, SHORT_POLICY, now=T0)
        assert out.ran is False
        assert out.rows == {}
    finally:
        await owner.execute("SELECT pg_advisory_unlock($1)", retention.RETENTION_LOCK_KEY)
    assert (await retention.run(pool, SHORT_POLICY, now=T0)).ran is True


async def test_the_command_runs_the_job_and_a_dry_run_changes_nothing(
    database_url: str, owner: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    """``homecare retention run [--dry-run]``: counts per class on stdout, never a name; the dry
    run changes nothing; another process holding the lock is exit 1; no database is exit 3."""
    await owner.execute(
        "INSERT INTO staff (staff_id, username, role, created_at)"
        " VALUES ('staff-old001', 'old', 'operator', '2020-01-01')"
    )
    await owner.execute(
        "INSERT INTO staff_sessions (session_id, secret_hash, staff_id, created_at, expires_at)"
        " VALUES ('sess-old', 'hash-old', 'staff-old001', '2020-01-01', '2020-01-02')"
    )

    def run(*argv: str, url: str = database_url) -> int:
        args = cli.parser().parse_args(["retention", "run", *argv])
        settings = dataclasses.replace(load({}), database_url=url)
        status: int = asyncio.run(args.run(args, settings))
        return status

    assert await asyncio.to_thread(run, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "retention sessions: would change 1 rows (staff_sessions 1)" in out
    assert "retention: 0 brukare would be erased" in out
    assert await owner.fetchval("SELECT count(*) FROM staff_sessions") == 1

    assert await owner.fetchval("SELECT pg_try_advisory_lock($1)", retention.RETENTION_LOCK_KEY)
    try:
        assert await asyncio.to_thread(run) == 1
        assert "another process" in capsys.readouterr().err
    finally:
        await owner.execute("SELECT pg_advisory_unlock($1)", retention.RETENTION_LOCK_KEY)
    assert await owner.fetchval("SELECT count(*) FROM staff_sessions") == 1

    assert await asyncio.to_thread(run) == 0
    assert "retention sessions: changed 1 rows" in capsys.readouterr().out
    assert await owner.fetchval("SELECT count(*) FROM staff_sessions") == 0

    base, _, _ = database_url.rpartition("/")
    assert await asyncio.to_thread(run, url=f"{base}/hc_no_such_database_x") == 3


async def test_the_daily_job_runs_at_its_hour_and_never_moves_the_clock(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job looks at the service clock; it does not sleep on it (a hand-moved clock advances
    when slept on, and a daily job would carry the service's time a day forward each loop)."""
    settings = load({})
    runs: list[datetime] = []
    ran = asyncio.Event()

    async def fake_run(_pool: asyncpg.Pool, _policy: object, *, now: datetime, batch: int) -> None:
        runs.append(now)
        ran.set()

    monkeypatch.setattr(retention, "POLL_S", 0.01)
    monkeypatch.setattr(retention, "run", fake_run)
    clock = ScaledClock(0, T0)
    due = retention.next_run(T0, settings.zone, settings.retention_hour)
    task = asyncio.create_task(retention.daily(pool, settings, clock))
    try:
        for _ in range(20):  # many polls: neither a run nor a moved clock
            await asyncio.sleep(0.01)
        assert (runs, clock()) == ([], T0)
        clock.set(due + timedelta(minutes=1))
        await asyncio.wait_for(ran.wait(), 5)
        assert runs == [due + timedelta(minutes=1)]
        for _ in range(20):  # not again the same day
            await asyncio.sleep(0.01)
        assert len(runs) == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
