"""Tenant isolation held by PostgreSQL itself (issue 17, hard rule 11).

Two organisations are seeded by the schema's owner, one row of each in every table. Then, as the
service's database role with organisation A set (exactly what the pool does for a caller of A),
no row of B is visible in any table that holds personal data, none can be written, and none can be
changed. The tables are enumerated from the catalogue: a new table that is neither protected nor
named below as holding no personal data fails here.
"""

from __future__ import annotations

import asyncpg
import pytest

from kernel import tenancy
from services import db

pytestmark = pytest.mark.integration

NOT_PERSONAL = {
    "schema_migrations": "which migrations ran",
    "organisations": "the municipality or care provider itself",
    "units": "districts of an organisation",
    "teams": "teams of a unit",
    "team_grants": "agreements between organisations; ids and dates only",
    "round_nights": "when a night was planned; counts only",
    "login_throttle": "SHA-256 of a username and failure counts; read before anyone is known",
}
"""Tables without row-level security, each with why it holds no personal data."""

SEED = """
INSERT INTO organisations (organisation_id, name, kind)
    VALUES ('org-{o}', 'Kommun {o}', 'municipality');
INSERT INTO units (unit_id, organisation_id, name) VALUES ('unit-{o}', 'org-{o}', 'Distrikt {o}');
INSERT INTO teams (team_id, unit_id, organisation_id, name)
    VALUES ('team-{o}', 'unit-{o}', 'org-{o}', 'Team {o}');
INSERT INTO staff (staff_id, username, role, created_at, organisation_id)
    VALUES ('staff-{o}{o}{o}{o}{o}{o}', 'nurse-{o}', 'operator', now(), 'org-{o}');
INSERT INTO staff_teams (staff_id, team_id) VALUES ('staff-{o}{o}{o}{o}{o}{o}', 'team-{o}');
INSERT INTO staff_sessions (session_id, secret_hash, staff_id, created_at, expires_at)
    VALUES ('sess-{o}', 'hash-{o}', 'staff-{o}{o}{o}{o}{o}{o}', now(), now() + interval '1 hour');
INSERT INTO api_tokens (token_id, secret_hash, staff_id, role, created_at, expires_at)
    VALUES ('tok-{o}', 'thash-{o}', 'staff-{o}{o}{o}{o}{o}{o}', 'operator', now(),
            now() + interval '1 hour');
INSERT INTO round_duty (staff_id, started_at) VALUES ('staff-{o}{o}{o}{o}{o}{o}', now());
INSERT INTO care_recipients (recipient_id, display_name, home, team_id, created_at, created_by)
    VALUES ('r-{o}', 'Brukare {o}', 'Gatan 1', 'team-{o}', now(), 'system');
INSERT INTO cohabitants (cohabitant_id, recipient_id, display_name, moved_in_at)
    VALUES ('c-{o}', 'r-{o}', 'Make {o}', now());
INSERT INTO devices (device_id, kind) VALUES ('cam-{o}', 'camera');
INSERT INTO device_bindings (binding_id, device_id, recipient_id, bound_at, requested_by, bound_by)
    VALUES ('b-{o}', 'cam-{o}', 'r-{o}', now(), 'staff-x', 'staff-y');
INSERT INTO binding_requests (request_id, action, device_id, recipient_id, requested_by,
                              requested_at, expires_at)
    VALUES ('req-{o}', 'unbind', 'cam-{o}', 'r-{o}', 'staff-x', now(), now() + interval '10 min');
INSERT INTO device_commands (command_id, device_id, op) VALUES ('cmd-{o}', 'cam-{o}', 'indicator');
INSERT INTO camera_zones (device_id, ref_width, ref_height, zones, updated_at, updated_by)
    VALUES ('cam-{o}', 640, 480, '[]', now(), 'staff-x');
INSERT INTO care_plans (plan_id, recipient_id, decision_ref, valid_from, checks, view_cap_s,
                        motion_may_clear, retry_interval_s, escalation, paused_checks,
                        created_at, created_by)
    VALUES ('plan-{o}', 'r-{o}', 'beslut-{o}', now(), '[]', 30, true, 60, '{{}}', 'drop',
            now(), 'staff-x');
INSERT INTO consents (consent_id, recipient_id, purpose, version, given_at, valid_from,
                      recorded_at, recorded_by)
    VALUES ('con-{o}', 'r-{o}', 'camera_check', 1, now(), now(), now(), 'staff-x');
INSERT INTO consent_withdrawals (consent_id, withdrawn_at, withdrawn_by, recorded_at)
    VALUES ('con-{o}', now(), 'staff-x', now());
INSERT INTO pauses (pause_id, recipient_id, starts_at, source, reason, created_at, created_by)
    VALUES ('p-{o}', 'r-{o}', now(), 'staff', 'hospital', now(), 'staff-x');
INSERT INTO behaviour_events (device_id, recipient_id, event_type, at)
    VALUES ('cam-{o}', 'r-{o}', 'covered', now());
INSERT INTO suspensions (suspension_id, recipient_id, device_id, event_type, started_at,
                         event_count)
    VALUES ('s-{o}', 'r-{o}', 'cam-{o}', 'covered', now(), 1);
INSERT INTO round_checks (check_id, recipient_id, device_id, night, agreed, agreed_at,
                          window_start, window_end, policy, state, since, deadline, attempt,
                          ladder_step, version, planned_at)
    VALUES ('20261206.2300.r-{o}', 'r-{o}', 'cam-{o}', '2026-12-06', '23:00', now(),
            now() - interval '5 min', now() + interval '5 min', '{{}}', 'due', now(), now(), 1, 0,
            1, now());
INSERT INTO round_transitions (check_id, version, at, from_state, to_state, event, actor)
    VALUES ('20261206.2300.r-{o}', 1, now(), 'planned', 'due', 'window_opened', 'system');
INSERT INTO round_alarms (check_id, version, state, deadline, raised_at)
    VALUES ('20261206.2300.r-{o}', 1, 'due', now(), now());
INSERT INTO signal_sessions (session_id, device_id, purpose, staff_id, recipient_id, instance_id,
                             state, started_at, deadline)
    VALUES ('sess-0000-{o}', 'cam-{o}', 'view', 'staff-{o}{o}{o}{o}{o}{o}', 'r-{o}', 'i-1',
            'granted', now(), now() + interval '30 s');
INSERT INTO device_bind_buttons (device_id, pressed_at) VALUES ('cam-{o}', now());
INSERT INTO reverifications (reverification_id, recipient_id, verified_by, recorded_at, people,
                             outcome)
    VALUES ('rever-{o}', 'r-{o}', 'staff-x', now(), '[]', 'lifted');
"""


async def _seed(owner: asyncpg.Connection) -> None:
    for o in ("a", "b"):
        await owner.execute(SEED.format(o=o))
        await owner.execute(
            "INSERT INTO audit_log (seq, lane, lane_seq, at, actor, action, subject, prev_hash,"
            " hash) VALUES ($1, 0, $1, now(), 'system', 'recipient.viewed', $2, $3, $4)",
            1 if o == "a" else 2,
            f"r-{o}",
            "0" * 64,
            ("a" if o == "a" else "b") * 64,
        )


async def _protected_tables(owner: asyncpg.Connection) -> list[str]:
    rows = await owner.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname"
    )
    return [r["relname"] for r in rows if r["relname"] not in NOT_PERSONAL]


async def test_every_personal_table_has_an_organisation_and_a_policy(
    owner: asyncpg.Connection,
) -> None:
    missing = []
    for table in await _protected_tables(owner):
        row = await owner.fetchrow(
            "SELECT c.relrowsecurity,"
            " EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid"
            "         AND a.attname = 'organisation_id' AND NOT a.attisdropped) AS has_org,"
            " (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies"
            " FROM pg_class c WHERE c.oid = $1::regclass",
            table,
        )
        if not (row["relrowsecurity"] and row["has_org"] and row["policies"] >= 1):
            missing.append(table)
    assert missing == [], f"personal-data tables without organisation_id and a policy: {missing}"


async def test_every_policy_reads_the_scope_once_per_query(owner: asyncpg.Connection) -> None:
    """A policy written with ``homecare_sees(organisation_id)`` parses the scope again for every
    row (migration 0024 measured a team's list at ~2.5x the owner's time); policies compare with
    ``(SELECT homecare_orgs())``, which the planner evaluates once."""
    per_row = await owner.fetch(
        "SELECT tablename, policyname FROM pg_policies WHERE schemaname = 'public'"
        " AND (qual LIKE '%homecare_sees(%' OR with_check LIKE '%homecare_sees(%')"
    )
    assert [tuple(r) for r in per_row] == []


async def test_the_service_role_sees_and_writes_only_its_organisation(
    pool: asyncpg.Pool, owner: asyncpg.Connection
) -> None:
    await _seed(owner)
    tables = await _protected_tables(owner)
    for table in tables:
        # Not a vacuous check: the owner sees a row of each organisation in every table.
        counts = await owner.fetchrow(
            f"SELECT count(*) FILTER (WHERE organisation_id = 'org-a') AS a,"
            f" count(*) FILTER (WHERE organisation_id = 'org-b') AS b FROM {table}"
        )
        assert counts["a"] >= 1, f"{table} has no row of A"
        assert counts["b"] >= 1, f"{table} has no row of B"
    with tenancy.scoped(tenancy.Scope(orgs=frozenset({"org-a"}))):
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT current_user") == db.SERVICE_ROLE
            for table in tables:
                seen = await conn.fetchval(
                    f"SELECT count(*) FROM {table} WHERE organisation_id = 'org-b'"
                )
                own = await conn.fetchval(
                    f"SELECT count(*) FROM {table} WHERE organisation_id = 'org-a'"
                )
                assert (table, seen) == (table, 0)
                assert own >= 1, f"{table}: A's own rows are hidden too"
            # Writing about B's brukare is refused by the policy, changing nothing.
            with pytest.raises(asyncpg.PostgresError):
                await conn.execute(
                    "INSERT INTO pauses (pause_id, recipient_id, starts_at, source, reason,"
                    " created_at, created_by) VALUES ('p-x', 'r-b', now(), 'staff', 'x', now(),"
                    " 'staff-x')"
                )
            # Changing B's rows touches none.
            assert await conn.execute("UPDATE care_recipients SET home = 'x'") == "UPDATE 1"
            assert await conn.execute("DELETE FROM pauses WHERE recipient_id = 'r-b'") == "DELETE 0"
            # Binding B's device to A's brukare is refused although the foreign key allows it.
            with pytest.raises(asyncpg.ForeignKeyViolationError):
                await conn.execute(
                    "INSERT INTO binding_requests (request_id, action, device_id, recipient_id,"
                    " requested_by, requested_at, expires_at) VALUES ('req-x', 'bind', 'cam-b',"
                    " 'r-a', 'staff-x', now(), now() + interval '10 min')"
                )
    assert await owner.fetchval("SELECT home FROM care_recipients WHERE recipient_id = 'r-b'") == (
        "Gatan 1"
    )
    assert await owner.fetchval("SELECT count(*) FROM pauses WHERE pause_id = 'p-x'") == 0


async def test_a_connection_without_a_scope_sees_nothing(
    pool: asyncpg.Pool, owner: asyncpg.Connection
) -> None:
    """The policies' default is nothing: the service role with no organisation set (a connection
    the pool did not prepare) reads no personal row at all."""
    await _seed(owner)
    await owner.execute(f"SET ROLE {db.SERVICE_ROLE}")
    try:
        for table in await _protected_tables(owner):
            seen = await owner.fetchval(
                f"SELECT count(*) FROM {table} WHERE organisation_id IS NOT NULL"
            )
            assert (table, seen) == (table, 0)
    finally:
        await owner.execute("RESET ROLE")


async def test_the_system_scope_sees_every_organisation(
    pool: asyncpg.Pool, owner: asyncpg.Connection
) -> None:
    await _seed(owner)
    async with pool.acquire() as conn:
        orgs = await conn.fetchval(
            "SELECT array_agg(DISTINCT organisation_id ORDER BY organisation_id)"
            " FROM care_recipients WHERE organisation_id LIKE 'org-%'"
        )
    assert orgs == ["org-a", "org-b"]
