"""Administrators' routes for their own organisation: units, teams, team members, a brukare's
team and night-centre grants (issue 17).

Everything is scoped to the caller's own organisation (the one that employs them,
:func:`identity.org_store.own_organisation`), never to an organisation a grant lets them see.
Creating an organisation is an installation-level act (``homecare org add``), not a route. Each
change is audited by the store in its transaction with the caller as actor; a refusal changes
nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from aiohttp import web
from msgspec import Meta

from consent import api_context as consent_ctx
from consent import rules as consent_rules
from identity import org_store
from identity.login import service
from identity.org import MAX_AGREEMENT_REF, MAX_NAME, require_grant_id, require_id
from identity.staff import STAFF_ID_RE
from kernel.access import caller
from kernel.body import END, NOT_BLANK, Fields, Id, Instant, instant, read_body
from kernel.errors import InvalidInput
from kernel.permissions import Permission, route
from kernel.roles import Route

if TYPE_CHECKING:
    from kernel.audit.store import Connection

Name = Annotated[str, Meta(max_length=MAX_NAME, pattern=NOT_BLANK)]

_UNIT = {
    "type": "object",
    "properties": {
        "unit_id": {"type": "string"},
        "organisation_id": {"type": "string"},
        "name": {"type": "string"},
    },
}
_TEAM = {
    "type": "object",
    "properties": {
        "team_id": {"type": "string"},
        "unit_id": {"type": "string"},
        "organisation_id": {"type": "string"},
        "name": {"type": "string"},
        "members": {"type": "array", "items": {"type": "string"}},
    },
}
_GRANT = {
    "type": "object",
    "properties": {
        "grant_id": {"type": "string"},
        "team_id": {"type": "string"},
        "team_organisation_id": {"type": "string"},
        "grantee_team_id": {"type": "string"},
        "grantee_organisation_id": {"type": "string"},
        "agreement_ref": {"type": "string"},
        "valid_from": {"type": "string", "format": "date-time"},
        "valid_until": {"type": ["string", "null"], "format": "date-time"},
        "granted_by": {"type": "string"},
        "granted_at": {"type": "string", "format": "date-time"},
        "revoked_at": {"type": ["string", "null"], "format": "date-time"},
        "revoked_by": {"type": ["string", "null"]},
        "active": {"type": "boolean"},
    },
}


def _path_id(request: web.Request, name: str) -> str:
    return require_id(name, request.match_info[name])


def _path_staff_id(request: web.Request) -> str:
    staff_id = request.match_info["staff_id"]
    if not STAFF_ID_RE.match(staff_id):
        raise InvalidInput("staff_id", "invalid_staff_id", "not a staff id")
    return staff_id


async def _org(conn: Connection, request: web.Request) -> str:
    return await org_store.own_organisation(conn, caller(request).staff_id)


# --- units and teams -----------------------------------------------------------------------


class NewUnit(Fields, kw_only=True):
    """A unit (district) of the caller's organisation; an id is made up when unit_id is absent."""

    unit_id: Id | None = None
    name: Name


async def create_unit(request: web.Request) -> web.Response:
    b = await read_body(request, NewUnit)
    auth = service(request)
    async with auth.pool.acquire() as conn:
        unit = await org_store.create_unit(
            conn,
            organisation_id=await _org(conn, request),
            unit_id=b.unit_id,
            name=b.name,
            actor=caller(request).staff_id,
            at=auth.clock(),
        )
    return web.json_response(unit.to_json(), status=201)


async def list_units(request: web.Request) -> web.Response:
    async with service(request).pool.acquire() as conn:
        units = await org_store.list_units(conn, await _org(conn, request))
    return web.json_response({"units": [u.to_json() for u in units]})


class NewTeam(Fields, kw_only=True):
    """A team of one of the organisation's units; an id is made up when team_id is absent."""

    team_id: Id | None = None
    unit_id: Id
    name: Name


async def create_team(request: web.Request) -> web.Response:
    b = await read_body(request, NewTeam)
    auth = service(request)
    async with auth.pool.acquire() as conn:
        team = await org_store.create_team(
            conn,
            organisation_id=await _org(conn, request),
            team_id=b.team_id,
            unit_id=b.unit_id,
            name=b.name,
            actor=caller(request).staff_id,
            at=auth.clock(),
        )
    return web.json_response(team.to_json(), status=201)


async def list_teams(request: web.Request) -> web.Response:
    async with service(request).pool.acquire() as conn:
        teams = await org_store.list_teams(conn, await _org(conn, request))
    return web.json_response({"teams": [t.to_json() for t in teams]})


class NewMember(Fields):
    """A staff member of the organisation to add to the team."""

    staff_id: Annotated[str, Meta(pattern=rf"^staff-[a-z0-9]{{6,32}}{END}")]


async def add_member(request: web.Request) -> web.Response:
    b = await read_body(request, NewMember)
    team_id = _path_id(request, "team_id")
    auth = service(request)
    async with auth.pool.acquire() as conn:
        team = await org_store.add_member(
            conn,
            organisation_id=await _org(conn, request),
            team_id=team_id,
            staff_id=b.staff_id,
            actor=caller(request).staff_id,
            at=auth.clock(),
        )
    return web.json_response(team.to_json())


async def remove_member(request: web.Request) -> web.Response:
    team_id = _path_id(request, "team_id")
    staff_id = _path_staff_id(request)
    auth = service(request)
    async with auth.pool.acquire() as conn:
        team = await org_store.remove_member(
            conn,
            organisation_id=await _org(conn, request),
            team_id=team_id,
            staff_id=staff_id,
            actor=caller(request).staff_id,
            at=auth.clock(),
        )
    return web.json_response(team.to_json())


# --- a brukare's team ----------------------------------------------------------------------


class TeamMove(Fields):
    """The team of the brukare's own organisation that cares for them from now on."""

    team_id: Id


async def move_recipient(request: web.Request) -> web.Response:
    b = await read_body(request, TeamMove)
    recipient_id = _path_id(request, "recipient_id")
    auth = service(request)
    async with auth.pool.acquire() as conn:
        old, new = await org_store.move_recipient(
            conn,
            organisation_id=await _org(conn, request),
            recipient_id=recipient_id,
            team_id=b.team_id,
            actor=caller(request).staff_id,
            at=auth.clock(),
        )
    return web.json_response({"recipient_id": recipient_id, "from_team_id": old, "team_id": new})


# --- night-centre grants -------------------------------------------------------------------


class NewGrant(Fields, kw_only=True):
    """The caller's team ``team_id`` is covered by ``grantee_team_id`` (a night centre's team, of
    any organisation) by the agreement ``agreement_ref``, from ``valid_from`` (now when absent)
    until ``valid_until`` (open-ended when absent)."""

    team_id: Id
    grantee_team_id: Id
    agreement_ref: Annotated[str, Meta(max_length=MAX_AGREEMENT_REF, pattern=NOT_BLANK)]
    valid_from: Instant | None = None
    valid_until: Instant | None = None


async def create_grant(request: web.Request) -> web.Response:
    b = await read_body(request, NewGrant)
    zone = request.app.get(consent_ctx.ZONE) or consent_rules.zone_of("Europe/Stockholm")
    auth = service(request)
    now = auth.clock()
    valid_from = instant(b.valid_from, "valid_from", zone) or now
    valid_until = instant(b.valid_until, "valid_until", zone)
    async with auth.pool.acquire() as conn:
        grant = await org_store.create_grant(
            conn,
            organisation_id=await _org(conn, request),
            team_id=b.team_id,
            grantee_team_id=b.grantee_team_id,
            agreement_ref=b.agreement_ref,
            valid_from=valid_from,
            valid_until=valid_until,
            actor=caller(request).staff_id,
            at=now,
        )
    return web.json_response(grant.to_json(now), status=201)


async def list_grants(request: web.Request) -> web.Response:
    auth = service(request)
    now = auth.clock()
    async with auth.pool.acquire() as conn:
        grants = await org_store.list_grants(conn, await _org(conn, request))
    return web.json_response({"grants": [g.to_json(now) for g in grants]})


async def revoke_grant(request: web.Request) -> web.Response:
    grant_id = require_grant_id(request.match_info["grant_id"])
    auth = service(request)
    now = auth.clock()
    async with auth.pool.acquire() as conn:
        grant = await org_store.revoke_grant(
            conn,
            organisation_id=await _org(conn, request),
            grant_id=grant_id,
            actor=caller(request).staff_id,
            at=now,
        )
    return web.json_response(grant.to_json(now))


def routes() -> list[Route]:
    tags = ("organisation",)
    manage = Permission.MANAGE_ORGANISATION
    return [
        route(
            "GET",
            "/api/units",
            list_units,
            manage,
            "The units (districts) of the caller's organisation",
            tags=tags,
            response={"type": "object", "properties": {"units": {"type": "array", "items": _UNIT}}},
        ),
        route(
            "POST",
            "/api/units",
            create_unit,
            manage,
            "Create a unit of the caller's organisation",
            tags=tags,
            body=NewUnit,
            response=_UNIT,
        ),
        route(
            "GET",
            "/api/teams",
            list_teams,
            manage,
            "The teams of the caller's organisation, with their members",
            tags=tags,
            response={"type": "object", "properties": {"teams": {"type": "array", "items": _TEAM}}},
        ),
        route(
            "POST",
            "/api/teams",
            create_team,
            manage,
            "Create a team in a unit of the caller's organisation",
            tags=tags,
            body=NewTeam,
            response=_TEAM,
        ),
        route(
            "POST",
            "/api/teams/{team_id}/members",
            add_member,
            manage,
            "Add a staff member of the organisation to the team",
            tags=tags,
            body=NewMember,
            response=_TEAM,
        ),
        route(
            "DELETE",
            "/api/teams/{team_id}/members/{staff_id}",
            remove_member,
            manage,
            "Take a staff member out of the team",
            tags=tags,
            response=_TEAM,
        ),
        route(
            "POST",
            "/api/recipients/{recipient_id}/team",
            move_recipient,
            Permission.MANAGE_CARE_RECORD,
            "Move a brukare to another team of their organisation",
            tags=tags,
            body=TeamMove,
        ),
        route(
            "GET",
            "/api/team-grants",
            list_grants,
            manage,
            "Night-centre grants the organisation gave or holds",
            tags=tags,
            response={
                "type": "object",
                "properties": {"grants": {"type": "array", "items": _GRANT}},
            },
        ),
        route(
            "POST",
            "/api/team-grants",
            create_grant,
            manage,
            "Let a night centre's team cover one of the organisation's teams (audited)",
            tags=tags,
            body=NewGrant,
            response=_GRANT,
        ),
        route(
            "DELETE",
            "/api/team-grants/{grant_id}",
            revoke_grant,
            manage,
            "Revoke a grant the organisation gave, at once (audited)",
            tags=tags,
            response=_GRANT,
        ),
    ]
