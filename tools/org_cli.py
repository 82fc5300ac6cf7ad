"""``homecare org add``: a new organisation (a municipality or a care provider), installation-level.

Creating an organisation is no administrator's act (an administrator manages their own
organisation through the API): it is done by whoever runs the installation, as the system,
with the database URL's own rights. Optionally the organisation's first unit and team, and its
first administrator (a password-less account in that organisation and team; a bearer token is
printed once on stdout, with which the administrator sets a password and creates the rest).
Everything in one transaction: a refusal leaves nothing behind.
"""

from __future__ import annotations

import sys

import asyncpg

from consent.errors import ConsentError
from identity import org_store
from identity import store as staff_store
from kernel.errors import InvalidInput
from kernel.roles import Role

ACTOR = "system"
FIRST_TOKEN_TTL_S = 7 * 24 * 3600
"""The first administrator's token lasts a week: long enough to set up, short enough to lapse."""


def split_pair(value: str | None, option: str) -> tuple[str, str] | None:
    """``ID:NAME`` of ``--unit``/``--team``; 422-like :class:`InvalidInput` naming the option."""
    if value is None:
        return None
    ident, sep, name = value.partition(":")
    if not sep or not ident or not name.strip():
        raise InvalidInput(option, "bad_value", f"{option} is ID:NAME")
    return ident, name


def _pairs(
    unit: str | None, team: str | None
) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    unit_pair = split_pair(unit, "--unit")
    team_pair = split_pair(team, "--team")
    if team_pair is not None and unit_pair is None:
        raise InvalidInput("--team", "bad_value", "--team needs --unit (its unit)")
    return unit_pair, team_pair


async def org_add_command(
    database_url: str,
    *,
    organisation_id: str,
    name: str,
    kind: str = "municipality",
    unit: str | None = None,
    team: str | None = None,
    admin: str | None = None,
) -> int:
    """Exit 0 (done; the token, if any, on stdout), 2 (a bad value or a taken id), 3 (no
    database)."""
    try:
        unit_pair, team_pair = _pairs(unit, team)
    except InvalidInput as e:
        sys.stderr.write(f"org add: {e}\n")
        return 2
    try:
        conn = await asyncpg.connect(database_url, timeout=10, command_timeout=60)
    except (OSError, asyncpg.PostgresError) as e:
        sys.stderr.write(f"org add: cannot connect to the database: {type(e).__name__}\n")
        return 3
    token = None
    try:
        now = await conn.fetchval("SELECT now()")
        async with conn.transaction():
            await org_store.create_organisation(
                conn, organisation_id=organisation_id, name=name, kind=kind, actor=ACTOR, at=now
            )
            if unit_pair is not None:
                await org_store.create_unit(
                    conn,
                    organisation_id=organisation_id,
                    unit_id=unit_pair[0],
                    name=unit_pair[1],
                    actor=ACTOR,
                    at=now,
                )
            if team_pair is not None and unit_pair is not None:
                await org_store.create_team(
                    conn,
                    organisation_id=organisation_id,
                    unit_id=unit_pair[0],
                    team_id=team_pair[0],
                    name=team_pair[1],
                    actor=ACTOR,
                    at=now,
                )
            if admin is not None:
                account = await staff_store.create_staff(
                    conn,
                    username=admin,
                    role=Role.ADMINISTRATOR,
                    password=None,
                    actor=ACTOR,
                    now=now,
                    organisation_id=organisation_id,
                    teams=[team_pair[0]] if team_pair is not None else [],
                )
                token = await staff_store.create_token(
                    conn,
                    staff_id=account.staff_id,
                    role=Role.ADMINISTRATOR,
                    ttl_s=FIRST_TOKEN_TTL_S,
                    label="first administrator",
                    actor=ACTOR,
                    now=now,
                )
    except (ConsentError, InvalidInput) as e:
        sys.stderr.write(f"org add: {e.field}: {e}\n")
        return 2
    finally:
        await conn.close()
    sys.stderr.write(f"organisation {organisation_id} created\n")
    if token is not None:
        sys.stderr.write(f"administrator {admin}'s bearer token, valid 7 days; shown once:\n")
        sys.stdout.write(token + "\n")
        sys.stdout.flush()
    return 0
