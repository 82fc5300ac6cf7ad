"""Migrations: numbered, applied once, safe when two processes start at the same moment."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from services import db

pytestmark = pytest.mark.integration


async def test_two_processes_migrating_at_once_apply_each_migration_once(pg_admin_url: str) -> None:
    name = f"hc_mig_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = pg_admin_url.rpartition("/")[0] + "/" + name
        a, b = await asyncpg.connect(url), await asyncpg.connect(url)
        try:
            applied_a, applied_b = await asyncio.gather(db.migrate(a), db.migrate(b))
            assert sorted(applied_a + applied_b) == sorted(n for _, n, _ in db.migrations())
            assert await a.fetchval("SELECT count(*) FROM schema_migrations") == len(
                db.migrations()
            )
            assert await db.migrate(a) == []
        finally:
            await a.close()
            await b.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
