"""``homecare token create``: a bearer token for a script or integration, printed once."""

from __future__ import annotations

import secrets
import sys

import asyncpg

from consent.errors import ConsentError
from identity import store as staff_store
from identity.staff import normalise_username, require_login_role
from kernel.errors import InvalidInput


async def token_create_command(
    database_url: str,
    *,
    role: str,
    username: str | None = None,
    ttl_s: int = 30 * 24 * 3600,
    label: str = "",
) -> int:
    """``homecare token create``: print a new bearer token (only it) on stdout; exit 0.

    With ``username``, the token acts as that account (created password-less if missing; its role
    must match); without, as a new password-less service account. Exit 2 on a bad value.
    """
    try:
        want = require_login_role(role)
    except InvalidInput as e:
        sys.stderr.write(f"token create: {e}\n")
        return 2
    try:
        conn = await asyncpg.connect(database_url, timeout=10, command_timeout=60)
    except (OSError, asyncpg.PostgresError) as e:
        sys.stderr.write(f"token create: cannot connect to the database: {type(e).__name__}\n")
        return 3
    try:
        name = username or f"svc-{want}-{secrets.token_hex(3)}"
        account = await staff_store.find_by_username(conn, normalise_username(name) or name)
        if account is None:
            account = await staff_store.create_staff(
                conn, username=name, role=want, password=None, is_service=True
            )
        token = await staff_store.create_token(
            conn, staff_id=account.staff_id, role=want, ttl_s=ttl_s, label=label, actor="system"
        )
    except (ConsentError, InvalidInput) as e:
        sys.stderr.write(f"token create: {e.field}: {e}\n")
        return 2
    finally:
        await conn.close()
    sys.stderr.write(f"token for {account.staff_id} ({want}), valid {ttl_s} s; shown once:\n")
    sys.stdout.write(token + "\n")
    sys.stdout.flush()
    return 0
