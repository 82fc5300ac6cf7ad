"""Organisations, units, teams, team membership, a brukare's team and night-centre grants in
PostgreSQL (values and rules in :mod:`identity.org`).

The tables of the organisation model (``organisations``, ``units``, ``teams``, ``team_grants``)
hold no personal data and carry no row-level policy, so every read and write here names the
caller's own organisation (:func:`own_organisation`) in its ``WHERE`` clause; staff and brukare
rows are under their policies as always. Every change is audited in its transaction. Refusals
change nothing: 422 (a value, an unknown unit or team, naming the field), 404 (no such staff
member, brukare or grant of the caller's organisation), 409 (the state forbids it).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from consent.errors import Conflict, InvalidInput, NotFound
from identity.org import Grant, OrgKind, Team, Unit, grant_period, require_id, require_name
from identity.staff import b32
from kernel.audit import store as audit_store

if TYPE_CHECKING:
    from kernel.audit.store import Connection


class NoOrganisation(PermissionError):
    """The caller is no staff member of any organisation (403): the system or an unknown id."""

    http_status = 403
    code = "no_organisation"
    field = None


async def organisation_of(conn: Connection, staff_id: str) -> str | None:
    """The organisation that employs ``staff_id`` (read under the caller's policies)."""
    found: str | None = await conn.fetchval(
        "SELECT organisation_id FROM staff WHERE staff_id = $1", staff_id
    )
    return found


async def own_organisation(conn: Connection, staff_id: str) -> str:
    """:func:`organisation_of`, or 403 ``no_organisation`` for none."""
    found = await organisation_of(conn, staff_id)
    if found is None:
        raise NoOrganisation("the caller belongs to no organisation")
    return found


# --- organisations (installation-level: the CLI, as the system) ----------------------------


async def create_organisation(
    conn: Connection,
    *,
    organisation_id: str,
    name: str,
    kind: str,
    actor: str,
    at: datetime,
) -> None:
    """A new organisation (``homecare org add``); 409 ``duplicate`` if the id is taken."""
    org = require_id("organisation_id", organisation_id)
    shown = require_name("name", name)
    try:
        org_kind = OrgKind(kind)
    except ValueError:
        raise InvalidInput("kind", "bad_value", "kind is municipality or care_provider") from None
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO organisations (organisation_id, name, kind, created_at)"
                " VALUES ($1, $2, $3, $4)",
                org,
                shown,
                str(org_kind),
                at,
            )
            await audit_store.append(
                conn,
                actor=actor,
                action="organisation.created",
                subject=org,
                data={"kind": str(org_kind)},
                at=at,
            )
    except asyncpg.UniqueViolationError as e:
        raise Conflict("duplicate", "that organisation_id exists", "organisation_id") from e


async def organisation_exists(conn: Connection, organisation_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM organisations WHERE organisation_id = $1", organisation_id
        )
    )


# --- units and teams -----------------------------------------------------------------------


def _new_id(prefix: str) -> str:
    return f"{prefix}-{b32(secrets.token_bytes(5))}"


async def create_unit(
    conn: Connection,
    *,
    organisation_id: str,
    name: str,
    actor: str,
    at: datetime,
    unit_id: str | None = None,
) -> Unit:
    unit = Unit(
        unit_id=require_id("unit_id", unit_id) if unit_id is not None else _new_id("unit"),
        organisation_id=organisation_id,
        name=require_name("name", name),
    )
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO units (unit_id, organisation_id, name, created_at)"
                " VALUES ($1, $2, $3, $4)",
                unit.unit_id,
                unit.organisation_id,
                unit.name,
                at,
            )
            await audit_store.append(
                conn,
                actor=actor,
                action="unit.created",
                subject=unit.unit_id,
                data={"organisation_id": organisation_id},
                at=at,
            )
    except asyncpg.UniqueViolationError as e:
        raise Conflict("duplicate", "that unit_id exists", "unit_id") from e
    return unit


async def list_units(conn: Connection, organisation_id: str) -> list[Unit]:
    rows = await conn.fetch(
        "SELECT unit_id, organisation_id, name FROM units WHERE organisation_id = $1"
        " ORDER BY unit_id",
        organisation_id,
    )
    return [Unit(r["unit_id"], r["organisation_id"], r["name"]) for r in rows]


async def create_team(
    conn: Connection,
    *,
    organisation_id: str,
    unit_id: str,
    name: str,
    actor: str,
    at: datetime,
    team_id: str | None = None,
) -> Team:
    team = Team(
        team_id=require_id("team_id", team_id) if team_id is not None else _new_id("team"),
        unit_id=require_id("unit_id", unit_id),
        organisation_id=organisation_id,
        name=require_name("name", name),
    )
    try:
        async with conn.transaction():
            made = await conn.fetchval(
                "INSERT INTO teams (team_id, unit_id, organisation_id, name, created_at)"
                " SELECT $1, unit_id, organisation_id, $3, $5 FROM units"
                " WHERE unit_id = $2 AND organisation_id = $4 RETURNING team_id",
                team.team_id,
                team.unit_id,
                team.name,
                organisation_id,
                at,
            )
            if made is None:
                raise InvalidInput("unit_id", "unknown_unit", "no such unit in your organisation")
            await audit_store.append(
                conn,
                actor=actor,
                action="team.created",
                subject=team.team_id,
                data={"organisation_id": organisation_id, "unit_id": team.unit_id},
                at=at,
            )
    except asyncpg.UniqueViolationError as e:
        raise Conflict("duplicate", "that team_id exists", "team_id") from e
    return team


_TEAMS_SQL = (
    "SELECT t.team_id, t.unit_id, t.organisation_id, t.name,"
    " ARRAY(SELECT st.staff_id FROM staff_teams st JOIN staff s USING (staff_id)"
    "       WHERE st.team_id = t.team_id AND s.organisation_id = t.organisation_id"
    "       ORDER BY st.staff_id) AS members"
    " FROM teams t WHERE t.organisation_id = $1"
)


def _team(r: asyncpg.Record) -> Team:
    return Team(
        team_id=r["team_id"],
        unit_id=r["unit_id"],
        organisation_id=r["organisation_id"],
        name=r["name"],
        members=tuple(r["members"]),
    )


async def list_teams(conn: Connection, organisation_id: str) -> list[Team]:
    """The organisation's teams with their members (its own staff only)."""
    rows = await conn.fetch(_TEAMS_SQL + " ORDER BY t.team_id", organisation_id)
    return [_team(r) for r in rows]


async def get_team(conn: Connection, organisation_id: str, team_id: str) -> Team:
    row = await conn.fetchrow(_TEAMS_SQL + " AND t.team_id = $2", organisation_id, team_id)
    if row is None:
        raise NotFound("team", team_id, "team_id")
    return _team(row)


async def team_ids(conn: Connection, organisation_id: str) -> set[str]:
    rows = await conn.fetch("SELECT team_id FROM teams WHERE organisation_id = $1", organisation_id)
    return {r["team_id"] for r in rows}


async def require_teams(conn: Connection, organisation_id: str, wanted: Sequence[str]) -> list[str]:
    """``wanted`` (deduplicated, in order) if every one is a team of the organisation; else 422
    ``unknown_team`` naming the first that is not (``teams[i]``)."""
    mine = await team_ids(conn, organisation_id)
    out: list[str] = []
    for i, team in enumerate(wanted):
        if team not in mine:
            raise InvalidInput(f"teams[{i}]", "unknown_team", "no such team in your organisation")
        if team not in out:
            out.append(team)
    return out


async def _staff_of(conn: Connection, organisation_id: str, staff_id: str) -> None:
    found = await conn.fetchval(
        "SELECT 1 FROM staff WHERE staff_id = $1 AND organisation_id = $2",
        staff_id,
        organisation_id,
    )
    if found is None:
        raise NotFound("staff account", staff_id, "staff_id")


async def add_member(
    conn: Connection,
    *,
    organisation_id: str,
    team_id: str,
    staff_id: str,
    actor: str,
    at: datetime,
) -> Team:
    """Add a staff member of the organisation to one of its teams (409 ``already_member``)."""
    async with conn.transaction():
        await get_team(conn, organisation_id, team_id)
        await _staff_of(conn, organisation_id, staff_id)
        added = await conn.fetchval(
            "INSERT INTO staff_teams (staff_id, team_id, added_at, added_by)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1",
            staff_id,
            team_id,
            at,
            actor,
        )
        if added is None:
            raise Conflict("already_member", "the staff member is in that team", "staff_id")
        await audit_store.append(
            conn,
            actor=actor,
            action="team.member_added",
            subject=staff_id,
            data={"team_id": team_id},
            at=at,
        )
        return await get_team(conn, organisation_id, team_id)


async def remove_member(
    conn: Connection,
    *,
    organisation_id: str,
    team_id: str,
    staff_id: str,
    actor: str,
    at: datetime,
) -> Team:
    """Take a staff member out of a team of the organisation (404 if not in it)."""
    async with conn.transaction():
        await get_team(conn, organisation_id, team_id)
        await _staff_of(conn, organisation_id, staff_id)
        removed = await conn.fetchval(
            "DELETE FROM staff_teams WHERE staff_id = $1 AND team_id = $2 RETURNING 1",
            staff_id,
            team_id,
        )
        if removed is None:
            raise NotFound("member of the team", staff_id, "staff_id")
        await audit_store.append(
            conn,
            actor=actor,
            action="team.member_removed",
            subject=staff_id,
            data={"team_id": team_id},
            at=at,
        )
        return await get_team(conn, organisation_id, team_id)


# --- a brukare's team ----------------------------------------------------------------------


async def move_recipient(
    conn: Connection,
    *,
    organisation_id: str,
    recipient_id: str,
    team_id: str,
    actor: str,
    at: datetime,
) -> tuple[str, str]:
    """Move a brukare of the organisation to another of its teams; ``(old, new)`` team.

    404 if the caller's organisation has no such brukare; 409 ``other_organisation`` for a team
    of another organisation (the database refuses it too); 422 ``unknown_team`` for no team."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT team_id FROM care_recipients WHERE recipient_id = $1 AND organisation_id = $2"
            " FOR UPDATE",
            recipient_id,
            organisation_id,
        )
        if row is None:
            raise NotFound("care recipient", recipient_id, "recipient_id")
        team_org = await conn.fetchval(
            "SELECT organisation_id FROM teams WHERE team_id = $1", team_id
        )
        if team_org is None:
            raise InvalidInput("team_id", "unknown_team", "no such team")
        if team_org != organisation_id:
            raise Conflict(
                "other_organisation",
                "a brukare moves between teams of its own organisation only",
                "team_id",
            )
        old: str = row["team_id"]
        if old == team_id:
            raise Conflict("same_team", "the brukare is already in that team", "team_id")
        try:
            await conn.execute(
                "UPDATE care_recipients SET team_id = $2 WHERE recipient_id = $1",
                recipient_id,
                team_id,
            )
        except asyncpg.CheckViolationError as e:  # the trigger's own refusal (a race)
            raise Conflict(
                "other_organisation",
                "a brukare moves between teams of its own organisation only",
                "team_id",
            ) from e
        await audit_store.append(
            conn,
            actor=actor,
            action="recipient.team_moved",
            subject=recipient_id,
            data={"from_team_id": old, "to_team_id": team_id},
            at=at,
        )
    return old, team_id


# --- night-centre grants -------------------------------------------------------------------

_GRANT_SQL = (
    "SELECT g.*, t.organisation_id AS team_organisation_id,"
    " gt.organisation_id AS grantee_organisation_id"
    " FROM team_grants g JOIN teams t ON t.team_id = g.team_id"
    " JOIN teams gt ON gt.team_id = g.grantee_team_id"
)


def _grant(r: asyncpg.Record) -> Grant:
    return Grant(
        grant_id=r["grant_id"],
        team_id=r["team_id"],
        team_organisation_id=r["team_organisation_id"],
        grantee_team_id=r["grantee_team_id"],
        grantee_organisation_id=r["grantee_organisation_id"],
        agreement_ref=r["agreement_ref"],
        valid_from=r["valid_from"],
        valid_until=r["valid_until"],
        granted_by=r["granted_by"],
        granted_at=r["granted_at"],
        revoked_at=r["revoked_at"],
        revoked_by=r["revoked_by"],
    )


async def create_grant(
    conn: Connection,
    *,
    organisation_id: str,
    team_id: str,
    grantee_team_id: str,
    agreement_ref: str,
    valid_from: datetime,
    valid_until: datetime | None,
    actor: str,
    at: datetime,
) -> Grant:
    """The organisation's team ``team_id`` is covered by ``grantee_team_id`` (any
    organisation's) by ``agreement_ref`` over the period; audited ``team_grant.created``."""
    ref = require_name("agreement_ref", agreement_ref)
    grant_period(valid_from, valid_until)
    if team_id == grantee_team_id:
        raise InvalidInput("grantee_team_id", "same_team", "a team cannot cover itself")
    async with conn.transaction():
        if team_id not in await team_ids(conn, organisation_id):
            raise InvalidInput("team_id", "unknown_team", "no such team in your organisation")
        if not await conn.fetchval("SELECT 1 FROM teams WHERE team_id = $1", grantee_team_id):
            raise InvalidInput("grantee_team_id", "unknown_team", "no such team")
        grant_id = f"grant-{b32(secrets.token_bytes(8))}"
        await conn.execute(
            "INSERT INTO team_grants (grant_id, team_id, grantee_team_id, agreement_ref,"
            " valid_from, valid_until, granted_by, granted_at) VALUES ($1, $2, $3, $4, $5, $6,"
            " $7, $8)",
            grant_id,
            team_id,
            grantee_team_id,
            ref,
            valid_from,
            valid_until,
            actor,
            at,
        )
        made = await conn.fetchrow(_GRANT_SQL + " WHERE g.grant_id = $1", grant_id)
        assert made is not None
        grant = _grant(made)
        await audit_store.append(
            conn,
            actor=actor,
            action="team_grant.created",
            subject=grant_id,
            data={
                "team_id": team_id,
                "grantee_team_id": grantee_team_id,
                "grantee_organisation_id": grant.grantee_organisation_id,
                "agreement_ref": ref,
                "valid_from": valid_from.isoformat(),
                "valid_until": None if valid_until is None else valid_until.isoformat(),
            },
            at=at,
        )
    return grant


async def list_grants(conn: Connection, organisation_id: str) -> list[Grant]:
    """Every grant the organisation gave or whose grantee team is its own."""
    rows = await conn.fetch(
        _GRANT_SQL + " WHERE t.organisation_id = $1 OR gt.organisation_id = $1"
        " ORDER BY g.granted_at, g.grant_id",
        organisation_id,
    )
    return [_grant(r) for r in rows]


async def revoke_grant(
    conn: Connection, *, organisation_id: str, grant_id: str, actor: str, at: datetime
) -> Grant:
    """End a grant the organisation gave, at once (the next request's scope no longer has it);
    404 for no grant of the organisation's, 409 ``already_revoked``."""
    async with conn.transaction():
        row = await conn.fetchrow(
            _GRANT_SQL + " WHERE g.grant_id = $1 AND t.organisation_id = $2 FOR UPDATE OF g",
            grant_id,
            organisation_id,
        )
        if row is None:
            raise NotFound("grant", grant_id, "grant_id")
        if row["revoked_at"] is not None:
            raise Conflict("already_revoked", "the grant was revoked already", "grant_id")
        await conn.execute(
            "UPDATE team_grants SET revoked_at = $2, revoked_by = $3 WHERE grant_id = $1",
            grant_id,
            at,
            actor,
        )
        await audit_store.append(
            conn,
            actor=actor,
            action="team_grant.revoked",
            subject=grant_id,
            data={"team_id": row["team_id"], "grantee_team_id": row["grantee_team_id"]},
            at=at,
        )
        revoked = await conn.fetchrow(_GRANT_SQL + " WHERE g.grant_id = $1", grant_id)
    assert revoked is not None
    return _grant(revoked)
