"""``homecare audit verify``: walk the audit chain and print one line; exit 0 intact, 1 broken."""

from __future__ import annotations

import sys

import asyncpg

from kernel.audit import store as audit_store


async def audit_verify_command(database_url: str) -> int:
    """Verify the whole chain; print ``audit chain ok: N entries verified`` or where it broke.

    Exit codes: 0 intact, 1 broken, 3 the database could not be read.
    """
    try:
        conn = await asyncpg.connect(database_url, timeout=10, command_timeout=60)
    except (OSError, asyncpg.PostgresError) as e:
        sys.stderr.write(f"audit verify: cannot connect to the database: {type(e).__name__}\n")
        return 3
    try:
        result = await audit_store.verify(conn)
    except asyncpg.UndefinedTableError:
        sys.stderr.write("audit verify: no audit_log table; run `homecare migrate` first\n")
        return 3
    finally:
        await conn.close()
    sys.stdout.write(result.summary() + "\n")
    sys.stdout.flush()
    return 0 if result.ok else 1
