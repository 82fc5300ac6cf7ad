"""Organisations, units, teams and night-centre grants as the administration sees them (pure).

An organisation (a municipality or a care provider) has units (districts), a unit has teams, a
brukare belongs to one team and staff belong to teams (``services/migrations/0014``). A night
centre's team covers a team of another organisation (or of its own) by an explicit, dated grant
that the organisation owning the covered team gives and can revoke at once.

This module holds the values and the rules the administration routes check before they touch the
database; ``identity/org_store.py`` carries them out and audits each change. No I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from kernel.errors import InvalidInput

ORG_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}\Z")
"""An organisation, unit or team id (the tables' own CHECK)."""
GRANT_ID_RE = re.compile(r"^grant-[a-z0-9]{6,32}\Z")
MAX_NAME = 200
MAX_AGREEMENT_REF = 200


class OrgKind(StrEnum):
    MUNICIPALITY = "municipality"
    CARE_PROVIDER = "care_provider"


def require_id(field: str, value: str) -> str:
    """An organisation, unit or team id, else 422 naming ``field``."""
    if not isinstance(value, str) or not ORG_ID_RE.match(value):
        raise InvalidInput(field, "invalid_id", f"{field} is 1..64 of a-z, 0-9 and '-'")
    return value


def require_name(field: str, value: str, *, limit: int = MAX_NAME) -> str:
    """A printable name of 1..``limit`` characters (stripped), else 422 naming ``field``."""
    text = value.strip() if isinstance(value, str) else ""
    if not 1 <= len(text) <= limit or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InvalidInput(field, "invalid_name", f"{field} is 1..{limit} printable characters")
    return text


def require_grant_id(value: str) -> str:
    if not isinstance(value, str) or not GRANT_ID_RE.match(value):
        raise InvalidInput("grant_id", "invalid_id", "not a grant id")
    return value


def grant_period(valid_from: datetime, valid_until: datetime | None) -> None:
    """A grant's period: tz-aware instants, ``valid_until`` (if any) after ``valid_from``."""
    if valid_from.tzinfo is None:
        raise InvalidInput("valid_from", "bad_value", "valid_from needs a time zone")
    if valid_until is not None:
        if valid_until.tzinfo is None:
            raise InvalidInput("valid_until", "bad_value", "valid_until needs a time zone")
        if valid_until <= valid_from:
            raise InvalidInput("valid_until", "bad_period", "valid_until must be after valid_from")


@dataclass(frozen=True, slots=True)
class Unit:
    unit_id: str
    organisation_id: str
    name: str

    def to_json(self) -> dict[str, object]:
        return {"unit_id": self.unit_id, "organisation_id": self.organisation_id, "name": self.name}


@dataclass(frozen=True, slots=True)
class Team:
    """A team and its members' staff ids (pseudonymous)."""

    team_id: str
    unit_id: str
    organisation_id: str
    name: str
    members: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "team_id": self.team_id,
            "unit_id": self.unit_id,
            "organisation_id": self.organisation_id,
            "name": self.name,
            "members": list(self.members),
        }


@dataclass(frozen=True, slots=True)
class Grant:
    """``grantee_team_id`` (a night centre's team) covers ``team_id`` from ``valid_from`` until
    ``valid_until`` (open-ended when ``None``) unless revoked."""

    grant_id: str
    team_id: str
    team_organisation_id: str
    grantee_team_id: str
    grantee_organisation_id: str
    agreement_ref: str
    valid_from: datetime
    valid_until: datetime | None
    granted_by: str
    granted_at: datetime
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    def is_active(self, at: datetime) -> bool:
        """What ``staff_scope`` in the database decides: not revoked, and ``at`` in the period."""
        return (
            self.revoked_at is None
            and self.valid_from <= at
            and (self.valid_until is None or at < self.valid_until)
        )

    def to_json(self, at: datetime) -> dict[str, object]:
        def iso(t: datetime | None) -> str | None:
            return None if t is None else t.isoformat()

        return {
            "grant_id": self.grant_id,
            "team_id": self.team_id,
            "team_organisation_id": self.team_organisation_id,
            "grantee_team_id": self.grantee_team_id,
            "grantee_organisation_id": self.grantee_organisation_id,
            "agreement_ref": self.agreement_ref,
            "valid_from": iso(self.valid_from),
            "valid_until": iso(self.valid_until),
            "granted_by": self.granted_by,
            "granted_at": iso(self.granted_at),
            "revoked_at": iso(self.revoked_at),
            "revoked_by": self.revoked_by,
            "active": self.is_active(at),
        }
