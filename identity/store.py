"""Staff accounts, sessions, API tokens and the login throttle in PostgreSQL.

Every change to an account or token is audited in the same transaction. Passwords are hashed with
argon2id in a worker thread before the transaction starts; session and token secrets are random,
returned once, and stored only as SHA-256. Functions take ``now`` (tz-aware); the default is the
wall clock, for callers without an injectable clock.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg

from consent.errors import Conflict, InvalidInput, NotFound
from identity.staff import (
    DEFAULT_HASHING,
    DEFAULT_PASSWORD_POLICY,
    SESSION_TTL_S,
    LockoutPolicy,
    PasswordHasher,
    PasswordPolicy,
    StaffAccount,
    Throttle,
    after_failure,
    b32,
    check_ttl,
    format_token,
    parse_token,
    require_login_role,
    require_username,
    secret_hash,
    session_cookie_ok,
    staff_id_from,
)
from identity.standing import Credential
from kernel.audit import store as audit_store
from kernel.roles import Principal, Role
from kernel.tenancy import DEFAULT_ORGANISATION, DEFAULT_TEAM

if TYPE_CHECKING:
    from kernel.audit.store import Connection

_DEFAULT_HASHER = PasswordHasher(DEFAULT_HASHING)
_ACCOUNT_COLUMNS = (
    "staff_id, username, role, display_name, is_active, is_service,"
    " password_hash IS NOT NULL AS has_password, created_at"
)


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def _account(row: asyncpg.Record) -> StaffAccount:
    return StaffAccount(
        staff_id=row["staff_id"],
        username=row["username"],
        role=Role(row["role"]),
        display_name=row["display_name"],
        is_active=row["is_active"],
        is_service=row["is_service"],
        has_password=row["has_password"],
        created_at=row["created_at"],
    )


def _display_name(raw: object) -> str | None:
    if raw is None:
        return None
    if (
        not isinstance(raw, str)
        or not 1 <= len(raw.strip()) <= 200
        or any(ord(c) < 32 for c in raw)
    ):
        raise InvalidInput(
            "display_name",
            "invalid_display_name",
            "display_name must be 1-200 printable characters",
        )
    return raw.strip()


async def create_staff(
    conn: Connection,
    *,
    username: str,
    role: Role,
    password: str | None,
    display_name: str | None = None,
    actor: str = "system",
    is_service: bool = False,
    now: datetime | None = None,
    hasher: PasswordHasher | None = None,
    policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY,
    organisation_id: str | None = None,
    teams: Sequence[str] | None = None,
) -> StaffAccount:
    """Create an account; ``password=None`` makes one that cannot log in (tokens only).

    The account belongs to ``organisation_id`` (default: the caller's one organisation, else the
    default one) and to ``teams`` (default: the default team, when the organisation is the
    default one; else none until an administrator adds some).

    Raises ``InvalidInput`` (422, naming the field) or ``Conflict`` (409 ``username_taken``).
    """
    name = require_username(username)
    login_role = require_login_role(role)
    shown = _display_name(display_name)
    password_hash: str | None = None
    if password is not None:
        policy.require(password, username=name)
        password_hash = await asyncio.to_thread((hasher or _DEFAULT_HASHER).hash, password)
    at = _now(now)
    staff_id = staff_id_from(secrets.token_bytes(10))
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                "INSERT INTO staff (staff_id, username, display_name, role, password_hash,"
                " is_service, created_at, password_changed_at, organisation_id)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, homecare_scope_org()))"
                f" RETURNING {_ACCOUNT_COLUMNS}, organisation_id",
                staff_id,
                name,
                shown,
                str(login_role),
                password_hash,
                is_service,
                at,
                at if password_hash else None,
                organisation_id,
            )
            assert row is not None
            joined = (
                list(teams)
                if teams is not None
                else [DEFAULT_TEAM]
                if row["organisation_id"] == DEFAULT_ORGANISATION
                else []
            )
            await conn.executemany(
                "INSERT INTO staff_teams (staff_id, team_id, added_at, added_by)"
                " VALUES ($1, $2, $3, $4)",
                [(staff_id, team, at, actor) for team in joined],
            )
            await audit_store.append(
                conn,
                actor=actor,
                action="staff.created",
                subject=staff_id,
                data={
                    "role": str(login_role),
                    "organisation_id": row["organisation_id"],
                    "teams": joined,
                    "is_service": is_service,
                    "has_password": password_hash is not None,
                },
                at=at,
            )
    except asyncpg.UniqueViolationError as e:
        raise Conflict("username_taken", "that username is already in use", "username") from e
    return _account(row)


async def get_staff(conn: Connection, staff_id: str) -> StaffAccount:
    row = await conn.fetchrow(f"SELECT {_ACCOUNT_COLUMNS} FROM staff WHERE staff_id = $1", staff_id)
    if row is None:
        raise NotFound("staff account", staff_id, "staff_id")
    return _account(row)


async def find_by_username(conn: Connection, username: str) -> StaffAccount | None:
    row = await conn.fetchrow(f"SELECT {_ACCOUNT_COLUMNS} FROM staff WHERE username = $1", username)
    return _account(row) if row else None


async def list_staff(conn: Connection) -> list[StaffAccount]:
    rows = await conn.fetch(f"SELECT {_ACCOUNT_COLUMNS} FROM staff ORDER BY username")
    return [_account(r) for r in rows]


async def login_record(conn: Connection, username: str) -> tuple[StaffAccount, str | None] | None:
    """The account and its password hash, for the login check only."""
    row = await conn.fetchrow(
        f"SELECT {_ACCOUNT_COLUMNS}, password_hash FROM staff WHERE username = $1", username
    )
    return (_account(row), row["password_hash"]) if row else None


async def set_password(
    conn: Connection,
    *,
    staff_id: str,
    password: str,
    actor: str,
    now: datetime | None = None,
    hasher: PasswordHasher | None = None,
    policy: PasswordPolicy = DEFAULT_PASSWORD_POLICY,
    end_sessions: bool = True,
) -> None:
    """Replace the password (audited); by default every open session of the account ends."""
    account = await get_staff(conn, staff_id)
    policy.require(password, username=account.username)
    password_hash = await asyncio.to_thread((hasher or _DEFAULT_HASHER).hash, password)
    await store_password_hash(
        conn,
        staff_id=staff_id,
        password_hash=password_hash,
        actor=actor,
        now=now,
        end_sessions=end_sessions,
    )


async def store_password_hash(
    conn: Connection,
    *,
    staff_id: str,
    password_hash: str,
    actor: str,
    now: datetime | None = None,
    end_sessions: bool = False,
    action: str = "staff.password_set",
) -> None:
    at = _now(now)
    async with conn.transaction():
        await conn.execute(
            "UPDATE staff SET password_hash = $2, password_changed_at = $3 WHERE staff_id = $1",
            staff_id,
            password_hash,
            at,
        )
        ended = 0
        if end_sessions:
            ended = await _end_all_sessions(conn, staff_id, at)
        await audit_store.append(
            conn,
            actor=actor,
            action=action,
            subject=staff_id,
            data={"sessions_ended": ended},
            at=at,
        )


async def set_active(
    conn: Connection, *, staff_id: str, is_active: bool, actor: str, now: datetime | None = None
) -> None:
    """Activate or deactivate an account; deactivation ends its sessions at once."""
    at = _now(now)
    async with conn.transaction():
        done = await conn.fetchval(
            "UPDATE staff SET is_active = $2 WHERE staff_id = $1 RETURNING staff_id",
            staff_id,
            is_active,
        )
        if done is None:
            raise NotFound("staff account", staff_id, "staff_id")
        ended = 0 if is_active else await _end_all_sessions(conn, staff_id, at)
        await audit_store.append(
            conn,
            actor=actor,
            action="staff.activated" if is_active else "staff.deactivated",
            subject=staff_id,
            data={"sessions_ended": ended},
            at=at,
        )


async def _end_all_sessions(conn: Connection, staff_id: str, at: datetime) -> int:
    ended = await conn.fetch(
        "UPDATE staff_sessions SET ended_at = $2 WHERE staff_id = $1"
        " AND ended_at IS NULL AND expires_at > $2 RETURNING 1",
        staff_id,
        at,
    )
    return len(ended)


async def create_token(
    conn: Connection,
    *,
    staff_id: str,
    role: Role,
    ttl_s: int,
    label: str,
    actor: str | None = None,
    now: datetime | None = None,
) -> str:
    """A bearer token acting as ``staff_id`` with ``role`` (which must be the account's role).

    Returns the secret token, shown once; only its SHA-256 is stored. Audited as
    ``token.created`` by ``actor`` (default: the account itself).
    """
    ttl = check_ttl(ttl_s)
    if not isinstance(label, str) or len(label) > 100 or any(ord(c) < 32 for c in label):
        raise InvalidInput(
            "label", "invalid_label", "label must be at most 100 printable characters"
        )
    account = await get_staff(conn, staff_id)
    if not account.is_active:
        raise Conflict("staff_inactive", "the account is deactivated", "staff_id")
    if require_login_role(role) != account.role:
        raise InvalidInput("role", "role_mismatch", f"the account's role is {account.role}")
    at = _now(now)
    token_id = b32(secrets.token_bytes(10))
    token = format_token(token_id, secrets.token_bytes(32))
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO api_tokens (token_id, secret_hash, staff_id, role, label, created_at,"
            " expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            token_id,
            secret_hash(token),
            staff_id,
            str(account.role),
            label,
            at,
            at + timedelta(seconds=ttl),
        )
        await audit_store.append(
            conn,
            actor=actor or staff_id,
            action="token.created",
            subject=staff_id,
            data={"token_id": token_id, "role": str(account.role), "ttl_s": ttl},
            at=at,
        )
    return token


async def revoke_token(
    conn: Connection, *, token_id: str, actor: str, now: datetime | None = None
) -> None:
    at = _now(now)
    async with conn.transaction():
        staff_id = await conn.fetchval(
            "UPDATE api_tokens SET revoked_at = $2 WHERE token_id = $1 AND revoked_at IS NULL"
            " RETURNING staff_id",
            token_id,
            at,
        )
        if staff_id is None:
            raise NotFound("active token", token_id, "token_id")
        await audit_store.append(
            conn,
            actor=actor,
            action="token.revoked",
            subject=staff_id,
            data={"token_id": token_id},
            at=at,
        )


async def token_principal(conn: Connection, token: str, now: datetime) -> Principal | None:
    """The principal of a live token of an active account whose role has not changed."""
    parsed = parse_token(token)
    if parsed is None:
        return None
    row = await conn.fetchrow(
        "SELECT t.token_id, t.staff_id, t.role, sc.orgs, sc.teams"
        " FROM api_tokens t JOIN staff s USING (staff_id),"
        " LATERAL staff_scope(t.staff_id, t.role, $3) sc"
        " WHERE t.secret_hash = $1 AND t.token_id = $2 AND t.revoked_at IS NULL"
        " AND t.expires_at > $3 AND s.is_active AND s.role = t.role",
        secret_hash(token),
        parsed[0],
        now,
    )
    if row is None:
        return None
    return Principal(
        staff_id=row["staff_id"],
        role=Role(row["role"]),
        via="token",
        session_id=row["token_id"],
        orgs=frozenset(row["orgs"]),
        teams=frozenset(row["teams"]),
    )


async def start_session(
    conn: Connection, *, staff_id: str, now: datetime, ttl_s: int = SESSION_TTL_S
) -> tuple[str, str, datetime]:
    """Open a session in the caller's transaction; returns ``(session_id, secret, expires_at)``."""
    session_id = f"sess-{b32(secrets.token_bytes(10))}"
    secret = secrets.token_urlsafe(32)
    expires = now + timedelta(seconds=ttl_s)
    await conn.execute(
        "INSERT INTO staff_sessions (session_id, secret_hash, staff_id, created_at, expires_at)"
        " VALUES ($1, $2, $3, $4, $5)",
        session_id,
        secret_hash(secret),
        staff_id,
        now,
        expires,
    )
    return session_id, secret, expires


async def end_session(conn: Connection, *, session_id: str, now: datetime) -> bool:
    """End one session in the caller's transaction; ``False`` if it had already ended."""
    ended = await conn.fetchval(
        "UPDATE staff_sessions SET ended_at = $2 WHERE session_id = $1"
        " AND ended_at IS NULL RETURNING 1",
        session_id,
        now,
    )
    return ended is not None


async def session_principal(conn: Connection, secret: str, now: datetime) -> Principal | None:
    if not session_cookie_ok(secret):
        return None
    row = await conn.fetchrow(
        "SELECT ss.session_id, ss.staff_id, s.role, sc.orgs, sc.teams"
        " FROM staff_sessions ss JOIN staff s USING (staff_id),"
        " LATERAL staff_scope(ss.staff_id, s.role, $2) sc"
        " WHERE ss.secret_hash = $1 AND ss.ended_at IS NULL AND ss.expires_at > $2 AND s.is_active",
        secret_hash(secret),
        now,
    )
    if row is None:
        return None
    return Principal(
        staff_id=row["staff_id"],
        role=Role(row["role"]),
        via="session",
        session_id=row["session_id"],
        orgs=frozenset(row["orgs"]),
        teams=frozenset(row["teams"]),
    )


async def credential(conn: Connection, principal: Principal) -> Credential | None:
    """The stored state of the token or session ``principal`` came by, with its account (one
    indexed read, for the re-check before each right a WebSocket uses); ``None`` if there is no
    such credential of that account."""
    if principal.session_id is None:
        return None
    if principal.via == "token":
        row = await conn.fetchrow(
            "SELECT t.staff_id, s.role AS account_role, s.is_active, t.expires_at,"
            " t.revoked_at AS ended_at, t.role AS credential_role"
            " FROM api_tokens t JOIN staff s USING (staff_id) WHERE t.token_id = $1",
            principal.session_id,
        )
    elif principal.via == "session":
        row = await conn.fetchrow(
            "SELECT ss.staff_id, s.role AS account_role, s.is_active, ss.expires_at,"
            " ss.ended_at, NULL AS credential_role"
            " FROM staff_sessions ss JOIN staff s USING (staff_id) WHERE ss.session_id = $1",
            principal.session_id,
        )
    else:
        return None
    if row is None:
        return None
    return Credential(
        staff_id=row["staff_id"],
        account_role=Role(row["account_role"]),
        is_active=row["is_active"],
        expires_at=row["expires_at"],
        ended_at=row["ended_at"],
        credential_role=Role(row["credential_role"]) if row["credential_role"] else None,
    )


async def session_expiry(conn: Connection, session_id: str) -> datetime | None:
    found: datetime | None = await conn.fetchval(
        "SELECT expires_at FROM staff_sessions WHERE session_id = $1", session_id
    )
    return found


async def throttle(conn: Connection, key: str) -> Throttle | None:
    row = await conn.fetchrow(
        "SELECT failures, window_start, locked_until FROM login_throttle WHERE username_key = $1",
        key,
    )
    if row is None:
        return None
    return Throttle(
        failures=row["failures"], window_start=row["window_start"], locked_until=row["locked_until"]
    )


async def record_failure(
    conn: Connection, key: str, now: datetime, policy: LockoutPolicy
) -> tuple[Throttle, bool]:
    """Count one failed login in the caller's transaction; ``(state, just_locked)``."""
    await conn.execute(
        "INSERT INTO login_throttle (username_key, failures, window_start)"
        " VALUES ($1, 0, $2) ON CONFLICT (username_key) DO NOTHING",
        key,
        now,
    )
    row = await conn.fetchrow(
        "SELECT failures, window_start, locked_until FROM login_throttle"
        " WHERE username_key = $1 FOR UPDATE",
        key,
    )
    assert row is not None
    before = Throttle(
        failures=row["failures"], window_start=row["window_start"], locked_until=row["locked_until"]
    )
    after = after_failure(before if before.failures else None, now, policy)
    await conn.execute(
        "UPDATE login_throttle SET failures = $2, window_start = $3,"
        " locked_until = $4 WHERE username_key = $1",
        key,
        after.failures,
        after.window_start,
        after.locked_until,
    )
    return after, after.is_locked(now) and not before.is_locked(now)


async def clear_failures(conn: Connection, key: str) -> None:
    await conn.execute("DELETE FROM login_throttle WHERE username_key = $1", key)


async def prune(conn: Connection, now: datetime, *, keep_s: int = 24 * 3600) -> None:
    """Forget long-expired sessions and old throttle rows (nothing audited lives here)."""
    cutoff = now - timedelta(seconds=keep_s)
    await conn.execute("DELETE FROM staff_sessions WHERE expires_at < $1", cutoff)
    await conn.execute(
        "DELETE FROM login_throttle WHERE window_start < $1"
        " AND (locked_until IS NULL OR locked_until < $1)",
        cutoff,
    )
