"""A fake of the authenticator port for HTTP tests that compose a few routes without logins.

The caller's role is the header ``X-Test-Role``, their staff id ``X-Test-Staff`` (default
``staff-test01``), and what they may see is what ``staff_scope`` gives a member of the default
team: the default organisation and team, unless ``X-Test-Teams`` names others (comma-separated,
all of the default organisation). No header, no principal.
"""

from __future__ import annotations

from aiohttp import web

from kernel.roles import Principal, Role
from kernel.tenancy import DEFAULT_ORGANISATION, DEFAULT_TEAM


async def header_authenticator(request: web.Request) -> Principal | None:
    role = request.headers.get("X-Test-Role")
    if not role:
        return None
    teams = request.headers.get("X-Test-Teams", DEFAULT_TEAM)
    return Principal(
        staff_id=request.headers.get("X-Test-Staff", "staff-test01"),
        role=Role(role),
        orgs=frozenset({DEFAULT_ORGANISATION}),
        teams=frozenset(t for t in teams.split(",") if t),
    )
