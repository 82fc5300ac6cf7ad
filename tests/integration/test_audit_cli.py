"""``homecare audit verify`` on a real database: ok, broken (exit 1 naming the seq), unreachable."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime

import asyncpg
import pytest

from kernel.audit import store as audit_store
from kernel.audit.chain import lane_of
from tools.audit_cli import audit_verify_command

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 30, 2, 30, tzinfo=UTC)


async def fill(database_url: str, n: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for i in range(n):
            await audit_store.append(
                conn,
                actor="system",
                action="check.planned",
                subject=f"rcp-{i}",
                data={"i": i},
                at=T0,
            )
    finally:
        await conn.close()


async def test_intact_chain_exits_0(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    await fill(database_url, 4)
    assert await audit_verify_command(database_url) == 0
    assert capsys.readouterr().out == "audit chain ok: 4 entries verified in 4 lanes\n"


async def test_broken_chain_exits_1_and_names_the_seq(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await fill(database_url, 4)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only;"
            "UPDATE audit_log SET subject = 'rcp-x' WHERE seq = 3;"
            "ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only"
        )
    finally:
        await conn.close()
    assert await audit_verify_command(database_url) == 1
    out = capsys.readouterr().out
    lane = lane_of(subject="rcp-2", actor="system")  # seq 3's lane: its first entry
    assert out.startswith(f"audit chain BROKEN in lane {lane} at lane seq 1: hash_mismatch")
    assert out.count("\n") == 1


async def test_unreachable_database_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert await audit_verify_command("postgresql://postgres@127.0.0.1:1/none") == 3
    assert "cannot connect" in capsys.readouterr().err


async def test_the_homecare_command(database_url: str) -> None:
    await fill(database_url, 2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMECARE_")}
    env |= {"HOMECARE_DATABASE_URL": database_url, "HOMECARE_LOG_FORMAT": "json"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.cli",
        "audit",
        "verify",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert out.decode() == "audit chain ok: 2 entries verified in 2 lanes\n"
