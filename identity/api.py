"""Administrators' routes for staff accounts, API tokens and the audit log.

All need the ``administrator`` role. Changes are audited by the store in the same transaction,
with the calling administrator's ``staff_id`` as actor. Reading the audit log is itself audited
(``audit.exported``: the filters and how many entries left the system).
"""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from msgspec import Meta

from identity import org_store
from identity import store as staff_store
from identity.login import service
from identity.staff import MAX_TOKEN_TTL_S, STAFF_ID_RE, TOKEN_ID_RE
from kernel import access
from kernel.access import caller
from kernel.audit import cursor as audit_cursor
from kernel.audit import store as audit_store
from kernel.audit.chain import check_fields
from kernel.audit.reads import Read, read_data
from kernel.body import Fields, Id, read_body
from kernel.errors import InvalidInput
from kernel.permissions import Permission, route
from kernel.roles import LOGINS, Role, Route

ROLE_NAMES = tuple(sorted(r.value for r in LOGINS))

_ACCOUNT = {
    "type": "object",
    "properties": {
        "staff_id": {"type": "string"},
        "username": {"type": "string"},
        "role": {"type": "string", "enum": [*ROLE_NAMES]},
        "display_name": {"type": ["string", "null"]},
        "is_active": {"type": "boolean"},
        "is_service": {"type": "boolean"},
        "has_password": {"type": "boolean"},
        "created_at": {"type": "string", "format": "date-time"},
    },
}
_ENTRY = {
    "type": "object",
    "properties": {
        "seq": {"type": "integer"},
        "lane": {"type": "integer"},
        "lane_seq": {"type": ["integer", "null"]},
        "at": {"type": "string", "format": "date-time"},
        "actor": {"type": "string"},
        "action": {"type": "string"},
        "subject": {"type": ["string", "null"]},
        "data": {"type": "object"},
        "prev_hash": {"type": "string"},
        "hash": {"type": "string"},
    },
}


def _staff_id(request: web.Request) -> str:
    staff_id = request.match_info["staff_id"]
    if not STAFF_ID_RE.match(staff_id):
        raise InvalidInput("staff_id", "invalid_staff_id", "not a staff id")
    return staff_id


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(name, "invalid", f"{name} must be a whole number") from None
    if not lo <= value <= hi:
        raise InvalidInput(name, "invalid", f"{name} must be between {lo} and {hi}")
    return value


async def list_staff(request: web.Request) -> web.Response:
    async with service(request).pool.acquire() as conn:
        accounts = await staff_store.list_staff(conn)
    return web.json_response({"staff": [a.to_json() for a in accounts]})


_POLICY = "a password the policy accepts (at least 12 characters, not common, not trivial)"


class NewStaff(Fields, kw_only=True):
    """A staff account; without a password it acts only through API tokens."""

    username: Annotated[str, Meta(max_length=200)]
    role: Literal["operator", "administrator", "technician", "patrol", "shift_lead"]
    password: Annotated[str, Meta(description=_POLICY)] | None = None
    display_name: Annotated[str, Meta(max_length=200)] | None = None
    teams: (
        Annotated[
            list[Id],
            Meta(
                max_length=50,
                description="teams of the caller's organisation the account joins (absent: the"
                " default team in the default organisation, else none)",
            ),
        ]
        | None
    ) = None


async def create_staff(request: web.Request) -> web.Response:
    b = await read_body(request, NewStaff)
    who = caller(request)
    auth = service(request)
    async with auth.pool.acquire() as conn:
        # The account belongs to the creating administrator's own organisation, and joins only
        # its teams (422 unknown_team naming teams[i] otherwise).
        organisation_id = await org_store.organisation_of(conn, who.staff_id)
        teams = None
        if b.teams is not None:
            if organisation_id is None:
                raise InvalidInput("teams", "unknown_team", "you belong to no organisation")
            teams = await org_store.require_teams(conn, organisation_id, b.teams)
        account = await staff_store.create_staff(
            conn,
            username=b.username,
            role=Role(b.role),
            password=b.password,
            display_name=b.display_name,
            actor=who.staff_id,
            now=auth.clock(),
            hasher=auth.hasher,
            organisation_id=organisation_id,
            teams=teams,
        )
    return web.json_response(account.to_json(), status=201)


class Activation(Fields):
    """Activate or deactivate the account (deactivation ends its sessions)."""

    is_active: bool


async def set_active(request: web.Request) -> web.Response:
    is_active = (await read_body(request, Activation)).is_active
    auth = service(request)
    who = caller(request)
    if not is_active and _staff_id(request) == who.staff_id:
        # Nobody locks themselves out (nor the last administrator out of the system).
        raise InvalidInput("is_active", "self_deactivation", "you cannot deactivate yourself")
    async with auth.pool.acquire() as conn:
        await staff_store.set_active(
            conn,
            staff_id=_staff_id(request),
            is_active=is_active,
            actor=who.staff_id,
            now=auth.clock(),
        )
        account = await staff_store.get_staff(conn, _staff_id(request))
    return web.json_response(account.to_json())


class NewPassword(Fields):
    """A new password for the account (its sessions end)."""

    password: Annotated[str, Meta(description=_POLICY)]


async def set_password(request: web.Request) -> web.Response:
    password = (await read_body(request, NewPassword)).password
    auth = service(request)
    async with auth.pool.acquire() as conn:
        await staff_store.set_password(
            conn,
            staff_id=_staff_id(request),
            password=password,
            actor=caller(request).staff_id,
            now=auth.clock(),
            hasher=auth.hasher,
        )
    return web.json_response({"sessions_ended": True})


class NewToken(Fields):
    """A bearer token acting as the account for ttl_s seconds; the label says what uses it."""

    label: Annotated[str, Meta(max_length=100)] = ""
    ttl_s: Annotated[int, Meta(ge=60, le=MAX_TOKEN_TTL_S)] = 30 * 24 * 3600


async def create_token(request: web.Request) -> web.Response:
    b = await read_body(request, NewToken)
    auth = service(request)
    staff_id = _staff_id(request)
    async with auth.pool.acquire() as conn:
        account = await staff_store.get_staff(conn, staff_id)
        token = await staff_store.create_token(
            conn,
            staff_id=staff_id,
            role=account.role,
            ttl_s=b.ttl_s,
            label=b.label,
            actor=caller(request).staff_id,
            now=auth.clock(),
        )
    return web.json_response(
        {"token": token, "token_id": token.split("_")[1], "role": str(account.role)}, status=201
    )


async def revoke_token(request: web.Request) -> web.Response:
    token_id = request.match_info["token_id"]
    if not TOKEN_ID_RE.match(token_id):
        raise InvalidInput("token_id", "invalid_token_id", "not a token id")
    auth = service(request)
    async with auth.pool.acquire() as conn:
        await staff_store.revoke_token(
            conn, token_id=token_id, actor=caller(request).staff_id, now=auth.clock()
        )
    return web.json_response({"revoked": token_id})


async def list_audit(request: web.Request) -> web.Response:
    """A page of the audit log in seq order. Tail it with ``cursor`` (from the last answer's
    ``next_cursor``; absent: from the start): every entry exactly once, whatever order the lanes
    commit in. ``after_seq`` pages old history by seq and may skip an entry that commits after
    the read with a lower seq; it is refused together with ``cursor``."""
    by_seq = "after_seq" in request.query
    raw_cursor = request.query.get("cursor")
    if by_seq and raw_cursor is not None:
        raise InvalidInput(
            "after_seq",
            "cursor_with_after_seq",
            "give cursor (to tail the log) or after_seq (to page old history), not both",
        )
    after_seq = _int_param(request, "after_seq", 0, 0, 2**62)
    limit = _int_param(request, "limit", 100, 1, 1000)
    cursor = audit_cursor.START if raw_cursor is None else audit_cursor.decode(raw_cursor)
    filters = {k: request.query.get(k) for k in ("subject", "action", "actor")}
    why = access.why(request)
    # The filters are written to the log below: refuse anything that is not an id (a name).
    check_fields(
        actor=filters["actor"] or "system",
        action=filters["action"] or "any.action",
        subject=filters["subject"],
    )
    where: dict[str, int | str] = (
        {"after_seq": after_seq} if by_seq else {"cursor": cursor.encode()}
    )
    auth = service(request)
    following: audit_cursor.Cursor | None = None
    async with auth.pool.acquire() as conn, conn.transaction():
        if by_seq:
            found = await audit_store.entries(conn, after_seq=after_seq, limit=limit, **filters)
        else:
            found, following = await audit_store.entries_after(conn, cursor, limit=limit, **filters)
        await audit_store.append(
            conn,
            actor=caller(request).staff_id,
            action=Read.AUDIT_EXPORTED,
            subject=None,
            data=read_data(
                "GET /api/audit",
                why,
                filters={k: v for k, v in filters.items() if v is not None},
                **where,
                count=len(found),
            ),
            at=auth.clock(),
        )
    body: dict[str, object] = {"entries": [e.to_json() for e in found]}
    if raw_cursor is None:
        body["next_after_seq"] = found[-1].seq if found else after_seq
    if following is not None:
        body["next_cursor"] = following.encode()
    return web.json_response(body)


async def verify_audit(request: web.Request) -> web.Response:
    async with service(request).pool.acquire() as conn:
        result = await audit_store.verify(conn)
    return web.json_response(
        {
            "ok": result.ok,
            "checked": result.checked,
            "first_broken_seq": result.first_broken_seq,
            "reason": result.reason,
        }
    )


def routes() -> list[Route]:
    tags = ("staff",)
    return [
        route(
            "GET",
            "/api/staff",
            list_staff,
            Permission.MANAGE_STAFF,
            "List staff accounts",
            tags=tags,
            response={
                "type": "object",
                "properties": {"staff": {"type": "array", "items": _ACCOUNT}},
            },
        ),
        route(
            "POST",
            "/api/staff",
            create_staff,
            Permission.MANAGE_STAFF,
            "Create a staff account",
            tags=tags,
            body=NewStaff,
            response=_ACCOUNT,
        ),
        route(
            "POST",
            "/api/staff/{staff_id}/active",
            set_active,
            Permission.MANAGE_STAFF,
            "Activate or deactivate an account (deactivation ends its sessions)",
            tags=tags,
            body=Activation,
            response=_ACCOUNT,
        ),
        route(
            "POST",
            "/api/staff/{staff_id}/password",
            set_password,
            Permission.MANAGE_STAFF,
            "Set a new password (ends the account's sessions)",
            tags=tags,
            body=NewPassword,
        ),
        route(
            "POST",
            "/api/staff/{staff_id}/tokens",
            create_token,
            Permission.MANAGE_STAFF,
            "Create a bearer token acting as this account; shown once",
            tags=tags,
            body=NewToken,
        ),
        route(
            "DELETE",
            "/api/tokens/{token_id}",
            revoke_token,
            Permission.MANAGE_STAFF,
            "Revoke a bearer token",
            tags=tags,
        ),
        route(
            "GET",
            "/api/audit",
            list_audit,
            Permission.READ_AUDIT,
            "Audit entries in seq order (filters: subject, action, actor; limit). Tail with"
            " cursor=next_cursor: every entry once. after_seq pages old history only (it may"
            " skip an entry that commits late); not with cursor",
            tags=("audit",),
            query=(
                ("cursor", "the last answer's next_cursor: the entries after it (absent: start)"),
                ("after_seq", "old history after this seq (not for tailing); not with cursor"),
                ("limit", "at most this many entries, 1 to 1000 (100)"),
                ("subject", "only entries about this pseudonymous id"),
                ("action", "only entries of this action, e.g. recipient.viewed"),
                ("actor", "only entries by this staff id, system or device:<id>"),
                ("why", "the reader's reason, 1 to 200 printable characters, audited"),
            ),
            response={
                "type": "object",
                "required": ["entries"],
                "properties": {
                    "entries": {"type": "array", "items": _ENTRY},
                    "next_cursor": {
                        "type": "string",
                        "pattern": "^[A-Za-z0-9_-]+$",
                        "description": "opaque; send it back as ?cursor= for the entries after"
                        " this page (absent when paging by after_seq)",
                    },
                    "next_after_seq": {
                        "type": "integer",
                        "description": "the last entry's seq (absent when tailing by cursor):"
                        " not for tailing, seq is not commit order across lanes",
                    },
                },
            },
        ),
        route(
            "GET",
            "/api/audit/verify",
            verify_audit,
            Permission.READ_AUDIT,
            "Verify the audit hash chain",
            tags=("audit",),
        ),
    ]
