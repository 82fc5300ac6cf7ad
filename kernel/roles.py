"""Staff roles, the authenticated principal, and route declarations (pure).

Every HTTP route declares who may call it; the HTTP layer refuses everything else (default deny).
A route with ``roles=PUBLIC`` needs no login (health checks, the login form, static files).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kernel.tenancy import Scope


class Role(StrEnum):
    OPERATOR = "operator"
    ADMINISTRATOR = "administrator"
    TECHNICIAN = "technician"
    PATROL = "patrol"  # the night patrol: its own tasks only; no cameras, no care plans
    SHIFT_LEAD = "shift_lead"  # every alarm of the night, reassigns, gets the escalations
    AUDITOR = "auditor"  # reads the audit log and its extracts, nothing else
    SYSTEM = "system"  # the backend itself (probes, rounds); never a login


PUBLIC: frozenset[Role] = frozenset()
STAFF = frozenset({Role.OPERATOR, Role.ADMINISTRATOR, Role.TECHNICIAN})
OPERATORS = frozenset({Role.OPERATOR, Role.ADMINISTRATOR})
ADMINS = frozenset({Role.ADMINISTRATOR})
DEVICE_STAFF = frozenset({Role.ADMINISTRATOR, Role.TECHNICIAN})
NIGHT_STAFF = frozenset({Role.PATROL, Role.SHIFT_LEAD})
LOGINS = STAFF | NIGHT_STAFF | {Role.AUDITOR}
"""Every role a person or integration may log in with (``STAFF`` are the day roles). What each
may do is the role matrix, :data:`kernel.permissions.MATRIX`; routes take their roles from it."""
ROUND_LEADS = frozenset({Role.SHIFT_LEAD, Role.ADMINISTRATOR})
"""Who reassigns checks and patrol tasks and reads the escalations."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a staff account (pseudonymous ``staff_id``) with one role, and what they
    may see: ``orgs`` (the database scope) and ``teams`` (whose brukare). ``None`` is every one:
    the system only. A principal read from a session or token carries what ``staff_scope`` in the
    database gave at that request."""

    staff_id: str
    role: Role
    via: str = "session"  # "session" (cookie) or "token" (bearer)
    session_id: str | None = None
    orgs: frozenset[str] | None = frozenset()
    teams: frozenset[str] | None = frozenset()

    @property
    def scope(self) -> Scope:
        return Scope(orgs=self.orgs)

    def covers(self, team_id: str | None) -> bool:
        """Is this brukare's team one of the caller's (granted teams included)?"""
        return self.teams is None or (team_id is not None and team_id in self.teams)


SYSTEM_PRINCIPAL = Principal(
    staff_id="system", role=Role.SYSTEM, via="internal", orgs=None, teams=None
)


@dataclass(frozen=True, slots=True)
class Route:
    """One HTTP route: ``roles`` empty means public; otherwise the caller's role must be in it.

    ``permission`` names the permission of the role matrix (:mod:`kernel.permissions`) that
    ``roles`` was derived from (:func:`kernel.permissions.route` sets both); ``None`` for public
    routes and test routes.

    ``body`` is the Struct (a :class:`kernel.body.Fields`) the handler decodes its body into; the
    OpenAPI document publishes its JSON Schema. ``response`` is a JSON-schema fragment.
    ``query`` names the optional query parameters the handler reads, each with a one-line
    description, as ``(name, description)`` pairs (published as strings).
    """

    method: str
    path: str
    handler: Callable[..., Any]
    roles: frozenset[Role]
    summary: str
    body: type[Any] | None = None
    response: dict[str, Any] | None = None
    tags: tuple[str, ...] = field(default=())
    permission: str | None = None
    query: tuple[tuple[str, str], ...] = field(default=())

    @property
    def is_public(self) -> bool:
        return not self.roles

    def allows(self, principal: Principal | None) -> bool:
        if self.is_public:
            return True
        return principal is not None and principal.role in self.roles
