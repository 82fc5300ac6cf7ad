"""Does a caller's credential still stand? The pure half of "access ends when it is taken away".

A WebSocket is authenticated once, at its handshake; what it may do afterwards depends on that
credential (a bearer token or a login session) staying valid. This module decides, without I/O:

- :func:`cutoff_for`: whether a published :class:`Revocation` (a token revoked, a session ended,
  an account deactivated, removed or given another role) ends a given principal's access;
- :func:`judge`: whether the stored state of a credential (:class:`Credential`, read fresh) still
  carries the principal, at ``now``.

Both answer a :class:`Cutoff` or ``None``. A cutoff closes the socket with
:data:`CREDENTIAL_INVALID` (4401: revoked token, logout, expiry; log in again) or
:data:`FORBIDDEN` (4403: the account is deactivated or its role changed). Default deny: a
principal that says it came by token or session but names no credential never stands.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from kernel.roles import Principal, Role

CHANNEL = "homecare_revocations"
"""The PostgreSQL NOTIFY channel (``services/migrations/0007_revocation_feed.sql`` writes it)."""

CREDENTIAL_INVALID = 4401
"""WebSocket close code: the credential is no longer valid (revoked, logged out, expired)."""
FORBIDDEN = 4403
"""WebSocket close code: the account may no longer do this (deactivated, role changed)."""

_MAX_ID_CHARS = 64


class Kind(StrEnum):
    TOKEN_REVOKED = "token_revoked"  # noqa: S105 - a kind of change; credential_id: the token id
    SESSION_ENDED = "session_ended"  # credential_id: the session id (logout, password, ...)
    STAFF_DEACTIVATED = "staff_deactivated"
    STAFF_REMOVED = "staff_removed"
    ROLE_CHANGED = "role_changed"


class Cause(StrEnum):
    """Why access ended; also the ``reason`` of a ``denied`` envelope."""

    TOKEN_REVOKED = "token_revoked"  # noqa: S105 - a cause, not a secret
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 - a cause, not a secret
    SESSION_ENDED = "session_ended"
    SESSION_EXPIRED = "session_expired"
    CREDENTIAL_UNKNOWN = "credential_unknown"
    ACCOUNT_DEACTIVATED = "account_deactivated"
    ROLE_CHANGED = "role_changed"


_FORBIDDEN_CAUSES = frozenset({Cause.ACCOUNT_DEACTIVATED, Cause.ROLE_CHANGED})
_TEXT = {
    Cause.TOKEN_REVOKED: "token revoked",
    Cause.TOKEN_EXPIRED: "token expired",
    Cause.SESSION_ENDED: "session ended",
    Cause.SESSION_EXPIRED: "session expired",
    Cause.CREDENTIAL_UNKNOWN: "credential not valid",
    Cause.ACCOUNT_DEACTIVATED: "account deactivated",
    Cause.ROLE_CHANGED: "role changed",
}


@dataclass(frozen=True, slots=True)
class Cutoff:
    """Access has ended: close the socket with :attr:`code` and :attr:`reason`."""

    cause: Cause

    @property
    def code(self) -> int:
        return FORBIDDEN if self.cause in _FORBIDDEN_CAUSES else CREDENTIAL_INVALID

    @property
    def reason(self) -> str:
        """A short close reason (WebSocket close reasons hold at most 123 bytes)."""
        return _TEXT[self.cause]


@dataclass(frozen=True, slots=True)
class Revocation:
    """One published change that may end access: ``staff_id`` names the account, and
    ``credential_id`` the token or session for :attr:`Kind.TOKEN_REVOKED` and
    :attr:`Kind.SESSION_ENDED`."""

    kind: Kind
    staff_id: str
    credential_id: str | None = None


@dataclass(frozen=True, slots=True)
class Credential:
    """The stored state of a principal's credential and account, read fresh.

    ``credential_role`` is the role a token was issued for (``None`` for a session, which acts
    with the account's current role). ``ended_at`` is a token's ``revoked_at`` or a session's
    ``ended_at``.
    """

    staff_id: str
    account_role: Role
    is_active: bool
    expires_at: datetime
    ended_at: datetime | None = None
    credential_role: Role | None = None


def decode(payload: str) -> Revocation:
    """A revocation from its NOTIFY payload; ``ValueError`` if it is not one."""
    try:
        d: Any = json.loads(payload)
        kind = Kind(d["kind"])
        staff_id = d["staff_id"]
        credential_id = d.get("credential_id")
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError("not a revocation") from e
    if not _is_id(staff_id) or not (credential_id is None or _is_id(credential_id)):
        raise ValueError("not a revocation")
    if kind in {Kind.TOKEN_REVOKED, Kind.SESSION_ENDED} and credential_id is None:
        raise ValueError("not a revocation: a revoked credential needs its id")
    return Revocation(kind, staff_id, credential_id)


def _is_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= _MAX_ID_CHARS


def is_revocable(principal: Principal) -> bool:
    """Whether ``principal`` rides on a credential that can be taken away (the backend's own
    principals, ``via="internal"``, do not)."""
    return principal.via in {"token", "session"}


def cutoff_for(revocation: Revocation, principal: Principal) -> Cutoff | None:
    """Whether ``revocation`` ends ``principal``'s access (``None``: it does not touch it)."""
    if not is_revocable(principal) or revocation.staff_id != principal.staff_id:
        return None
    match revocation.kind:
        case Kind.TOKEN_REVOKED:
            hit = principal.via == "token" and principal.session_id == revocation.credential_id
            return Cutoff(Cause.TOKEN_REVOKED) if hit else None
        case Kind.SESSION_ENDED:
            hit = principal.via == "session" and principal.session_id == revocation.credential_id
            return Cutoff(Cause.SESSION_ENDED) if hit else None
        case Kind.STAFF_DEACTIVATED | Kind.STAFF_REMOVED:
            return Cutoff(Cause.ACCOUNT_DEACTIVATED)
        case Kind.ROLE_CHANGED:
            return Cutoff(Cause.ROLE_CHANGED)


def judge(principal: Principal, found: Credential | None, now: datetime) -> Cutoff | None:
    """Whether the stored credential ``found`` (``None``: no such token or session) still
    carries ``principal`` at ``now``; ``None`` if it does."""
    if not is_revocable(principal):
        return None
    is_token = principal.via == "token"
    if found is None or principal.session_id is None or found.staff_id != principal.staff_id:
        return Cutoff(Cause.CREDENTIAL_UNKNOWN)
    if found.ended_at is not None:
        return Cutoff(Cause.TOKEN_REVOKED if is_token else Cause.SESSION_ENDED)
    if not found.is_active:
        return Cutoff(Cause.ACCOUNT_DEACTIVATED)
    if found.account_role != principal.role or (
        is_token and found.credential_role != principal.role
    ):
        return Cutoff(Cause.ROLE_CHANGED)
    if found.expires_at <= now:
        return Cutoff(Cause.TOKEN_EXPIRED if is_token else Cause.SESSION_EXPIRED)
    return None
