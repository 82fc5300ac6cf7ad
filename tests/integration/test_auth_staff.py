"""Staff accounts in PostgreSQL, the token command and the demo accounts."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from consent.errors import Conflict, NotFound
from identity import login as auth
from identity import store as staff_store
from identity.staff import FAST_HASHING, PasswordHasher
from kernel.audit import store as audit_store
from kernel.errors import InvalidInput
from kernel.roles import Role
from tools import token_cli

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
FAST = PasswordHasher(FAST_HASHING)


async def test_create_staff_audits_without_personal_data(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        acc = await staff_store.create_staff(
            conn,
            username="Anna.S",
            role=Role.OPERATOR,
            password="en lång lösenfras",
            display_name="Anna S",
            actor="staff-admin0001",
            hasher=FAST,
            now=T0,
        )
        assert acc.username == "anna.s"
        assert acc.has_password
        assert await staff_store.get_staff(conn, acc.staff_id) == acc
        stored = await conn.fetchval("SELECT password_hash FROM staff")
        [entry] = await audit_store.entries(conn)
    assert stored.startswith("$argon2id$")
    assert "lång" not in stored
    assert (entry.action, entry.actor, entry.subject) == (
        "staff.created",
        "staff-admin0001",
        acc.staff_id,
    )
    assert entry.data == {
        "role": "operator",
        "organisation_id": "default",
        "teams": ["default"],
        "is_service": False,
        "has_password": True,
    }


BAD_ACCOUNTS: list[tuple[dict[str, Any], str]] = [
    ({"username": "x", "role": Role.OPERATOR, "password": None}, "username"),
    ({"username": "sys1", "role": Role.SYSTEM, "password": None}, "role"),
    ({"username": "weak1", "role": Role.OPERATOR, "password": "short"}, "password"),
    ({"username": "weak2", "role": Role.OPERATOR, "password": "xx weak2 xxxxxx"}, "password"),
    (
        {"username": "name1", "role": Role.OPERATOR, "password": None, "display_name": "\n"},
        "display_name",
    ),
]


async def test_bad_accounts_store_nothing(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        for kwargs, field in BAD_ACCOUNTS:
            with pytest.raises(InvalidInput) as info:
                await staff_store.create_staff(conn, hasher=FAST, **kwargs)
            assert info.value.field == field, kwargs
        assert await conn.fetchval("SELECT count(*) FROM staff") == 0
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 0


async def test_username_taken(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await staff_store.create_staff(conn, username="natt1", role=Role.OPERATOR, password=None)
        with pytest.raises(Conflict) as info:
            await staff_store.create_staff(
                conn, username="NATT1", role=Role.ADMINISTRATOR, password=None
            )
        assert (info.value.code, info.value.field) == ("username_taken", "username")
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 1


async def test_token_rules(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        acc = await staff_store.create_staff(
            conn, username="svc1", role=Role.TECHNICIAN, password=None
        )
        with pytest.raises(InvalidInput) as info:
            await staff_store.create_token(
                conn, staff_id=acc.staff_id, role=Role.ADMINISTRATOR, ttl_s=3600, label=""
            )
        assert info.value.field == "role"
        with pytest.raises(NotFound):
            await staff_store.create_token(
                conn, staff_id="staff-nobody00", role=Role.TECHNICIAN, ttl_s=3600, label=""
            )
        await staff_store.set_active(conn, staff_id=acc.staff_id, is_active=False, actor="system")
        with pytest.raises(Conflict):
            await staff_store.create_token(
                conn, staff_id=acc.staff_id, role=Role.TECHNICIAN, ttl_s=3600, label=""
            )
        assert await conn.fetchval("SELECT count(*) FROM api_tokens") == 0


async def run_cli(database_url: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMECARE_")}
    env |= {"HOMECARE_DATABASE_URL": database_url, "HOMECARE_LOG_FORMAT": "json"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_token_create_command(database_url: str, pool: asyncpg.Pool) -> None:
    code, out, err = await run_cli(
        database_url, "token", "create", "--role", "technician", "--label", "probe fleet"
    )
    assert code == 0, err
    token = out.strip()
    assert out.count("\n") == 1
    assert token.startswith("hct_")
    assert token not in err
    async with pool.acquire() as conn:
        who = await staff_store.token_principal(conn, token, datetime.now(UTC))
        assert who is not None
        assert who.role == Role.TECHNICIAN
        acc = await staff_store.get_staff(conn, who.staff_id)
        assert acc.is_service
        assert not acc.has_password
        assert acc.username.startswith("svc-technician-")


async def test_token_create_for_an_existing_user(database_url: str, pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        acc = await staff_store.create_staff(
            conn, username="integration", role=Role.OPERATOR, password=None
        )
    code, out, _ = await run_cli(
        database_url, "token", "create", "--role", "operator", "--username", "integration"
    )
    assert code == 0
    code, out2, err = await run_cli(
        database_url, "token", "create", "--role", "administrator", "--username", "integration"
    )
    assert code == 2
    assert out2 == ""
    assert "role" in err
    async with pool.acquire() as conn:
        who = await staff_store.token_principal(conn, out.strip(), datetime.now(UTC))
    assert who is not None
    assert who.staff_id == acc.staff_id


async def test_token_create_direct_bad_values(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await token_cli.token_create_command(database_url, role="system") == 2
    assert await token_cli.token_create_command(database_url, role="operator", ttl_s=5) == 2
    unreachable = "postgresql://postgres@127.0.0.1:1/x"
    assert await token_cli.token_create_command(unreachable, role="operator") == 3
    assert capsys.readouterr().out == ""


async def test_demo_accounts_log_in_and_are_renewed(pool: asyncpg.Pool) -> None:
    first = await auth.ensure_demo_accounts(pool, hasher=FAST)
    assert set(first) == {"nattpersonal", "handlaggare", "tekniker", "nattpatrull", "arbetsledare"}
    a = auth.make_authenticator(pool, hasher=FAST)
    roles = {u: (await a.login(u, p)).principal.role for u, p in first.items()}
    assert roles == {
        "nattpersonal": Role.OPERATOR,
        "handlaggare": Role.ADMINISTRATOR,
        "tekniker": Role.TECHNICIAN,
        "nattpatrull": Role.PATROL,
        "arbetsledare": Role.SHIFT_LEAD,
    }
    second = await auth.ensure_demo_accounts(pool, hasher=FAST)
    assert second["nattpersonal"] != first["nattpersonal"]
    with pytest.raises(auth.BadCredentials):
        await a.login("nattpersonal", first["nattpersonal"])
    assert (await a.login("nattpersonal", second["nattpersonal"])).principal.role == Role.OPERATOR
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM staff") == 5
        assert (await audit_store.verify(conn)).ok


async def test_password_change_ends_sessions_and_rehash_on_login(pool: asyncpg.Pool) -> None:
    slow = PasswordHasher()  # the production parameters, once
    async with pool.acquire() as conn:
        acc = await staff_store.create_staff(
            conn, username="natt2", role=Role.OPERATOR, password="första lösenfrasen", hasher=FAST
        )
    a = auth.make_authenticator(pool, hasher=slow)
    result = await a.login("natt2", "första lösenfrasen")  # FAST hash upgraded on login
    async with pool.acquire() as conn:
        stored = await conn.fetchval("SELECT password_hash FROM staff")
        assert not slow.needs_rehash(stored)
        assert (
            await staff_store.session_principal(conn, result.secret, datetime.now(UTC)) is not None
        )
        await staff_store.set_password(
            conn,
            staff_id=acc.staff_id,
            password="andra lösenfrasen",
            actor=acc.staff_id,
            hasher=FAST,
        )
        assert await staff_store.session_principal(conn, result.secret, datetime.now(UTC)) is None
        actions = [e.action for e in await audit_store.entries(conn, subject=acc.staff_id)]
    assert actions == [
        "staff.created",
        "login.succeeded",
        "staff.password_rehashed",
        "staff.password_set",
    ]
