"""Who is calling: session cookies and bearer tokens, login/logout/whoami, token and demo commands.

- ``Authorization: Bearer hct_...`` wins when present (a bad token is no login, never a fallback
  to the cookie); otherwise the ``hc_session`` cookie (HttpOnly, SameSite=Strict, Secure when
  ``cookie_secure``). Both are looked up by SHA-256 of the secret; a deactivated account or a
  changed role ends them at once.
- CSRF: a state-changing request (not GET/HEAD/OPTIONS) to a non-public route that is
  authenticated by the session cookie must carry ``X-CSRF-Token`` equal to the ``hc_csrf``
  cookie set at login (the SHA-256 of the session secret, see :func:`identity.staff.csrf_token`);
  otherwise 403 ``csrf_failed``. Bearer-token clients are exempt (no ambient credential). A
  cookie-authenticated WebSocket handshake must come from this service's own origin.
- ``POST /api/login`` checks the password with argon2id off the event loop. Unknown usernames take
  the same path (a dummy hash, the same throttle and audit writes), so timing and lockout reveal
  nothing. Every attempt is audited (``login.succeeded``, ``login.failed``, ``login.locked``,
  ``login.refused``); logs carry ``staff_id`` only, never usernames or display names.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
import structlog
import yarl
from aiohttp import web
from msgspec import Meta

from identity import store as staff_store
from identity.staff import (
    DEFAULT_HASHING,
    DEFAULT_LOCKOUT,
    SESSION_TTL_S,
    LockoutPolicy,
    PasswordHasher,
    StaffAccount,
    csrf_token,
    normalise_username,
    parse_bearer,
    username_key,
)
from kernel.access import AUTHENTICATOR, ROUTE, caller
from kernel.audit import store as audit_store
from kernel.audit.chain import ANONYMOUS_ACTOR
from kernel.body import Fields, read_body
from kernel.clock import Clock
from kernel.outages import UNAVAILABLE
from kernel.permissions import MATRIX, Permission, route
from kernel.roles import PUBLIC, Principal, Role, Route

log = structlog.get_logger(__name__)

SESSION_COOKIE = "hc_session"
CSRF_COOKIE = "hc_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_PASSWORD_CHARS = 1024
DEMO_ACCOUNTS = {
    "nattpersonal": Role.OPERATOR,
    "handlaggare": Role.ADMINISTRATOR,
    "tekniker": Role.TECHNICIAN,
    "nattpatrull": Role.PATROL,
    "arbetsledare": Role.SHIFT_LEAD,
}


def _system_clock() -> datetime:
    return datetime.now(UTC)


class BadCredentials(Exception):
    """Wrong username or password (the same answer for both)."""

    http_status = 401
    code = "bad_credentials"
    field = None


class CsrfFailed(PermissionError):
    """A cookie-authenticated state change without the matching ``X-CSRF-Token`` header."""

    http_status = 403
    code = "csrf_failed"
    field = None


class LockedOut(web.HTTPTooManyRequests):
    """Too many failed logins for this username; ``Retry-After`` says for how long."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            reason="too many failed logins; try again later",
            headers={"Retry-After": str(retry_after_s)},
        )


@dataclass(frozen=True, slots=True)
class LoginResult:
    principal: Principal
    secret: str
    expires_at: datetime


class Auth:
    """The :data:`kernel.access.Authenticator` plus login and logout, over one pool."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        cookie_secure: bool = False,
        trust_proxy: bool = False,
        hasher: PasswordHasher | None = None,
        clock: Clock = _system_clock,
        lockout: LockoutPolicy = DEFAULT_LOCKOUT,
        session_ttl_s: int = SESSION_TTL_S,
    ) -> None:
        self.pool = pool
        self.cookie_secure = cookie_secure
        self.trust_proxy = trust_proxy  # X-Forwarded-Host names this service (a proxy in front)
        self.hasher = hasher or PasswordHasher(DEFAULT_HASHING)
        self.clock = clock
        self.lockout = lockout
        self.session_ttl_s = session_ttl_s

    async def __call__(self, request: web.Request) -> Principal | None:
        try:
            return await self._authenticate(request)
        except UNAVAILABLE:
            route = request.get(ROUTE)
            if route is not None and route.is_public:
                return None  # /healthz, /readyz and login pages answer without the database
            raise

    async def _authenticate(self, request: web.Request) -> Principal | None:
        header = request.headers.get("Authorization")
        if header is not None:
            token = parse_bearer(header)
            if token is None:
                return None
            async with self.pool.acquire() as conn:
                return await staff_store.token_principal(conn, token, self.clock())
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        async with self.pool.acquire() as conn:
            who = await staff_store.session_principal(conn, cookie, self.clock())
        if who is not None and _needs_csrf(request):
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), csrf_token(cookie).encode()):
                log.info("csrf_refused", staff_id=who.staff_id, path=request.path)
                raise CsrfFailed("missing or wrong X-CSRF-Token header")
        if who is not None and not _same_origin_websocket(request, self.trust_proxy):
            # Cross-site WebSocket hijacking: a page elsewhere (even on a sibling subdomain, to
            # which SameSite cookies still go) must not open /ws/* with the operator's cookie.
            log.info("csrf_refused", staff_id=who.staff_id, path=request.path, why="origin")
            raise CsrfFailed("WebSocket from another origin")
        return who

    async def login(self, username: str, password: str) -> LoginResult:
        """Check a password and open a session; raise :class:`BadCredentials` or
        :class:`LockedOut`. Audited either way."""
        now = self.clock()
        key = username_key(username)
        name = normalise_username(username)
        async with self.pool.acquire() as conn:
            state = await staff_store.throttle(conn, key)
            record = await staff_store.login_record(conn, name) if name else None
        account, password_hash = record if record else (None, None)
        actor = account.staff_id if account else ANONYMOUS_ACTOR
        subject = account.staff_id if account else None
        if state is not None and state.is_locked(now):
            async with self.pool.acquire() as conn:
                await audit_store.append(
                    conn,
                    actor=actor,
                    action="login.refused",
                    subject=subject,
                    data={"reason": "locked"},
                    at=now,
                )
            log.info("login_refused", staff_id=subject, reason="locked")
            raise LockedOut(state.retry_after_s(now))
        is_match = await asyncio.to_thread(self.hasher.verify, password_hash, password)
        if account is not None and account.is_active and is_match:
            return await self._succeed(
                staff_id=account.staff_id,
                role=account.role,
                key=key,
                password_hash=password_hash,
                password=password,
                now=now,
            )
        reason = _failure_reason(account, password_hash)
        async with self.pool.acquire() as conn, conn.transaction():
            state, just_locked = await staff_store.record_failure(conn, key, now, self.lockout)
            await audit_store.append(
                conn,
                actor=actor,
                action="login.failed",
                subject=subject,
                data={"reason": reason, "failures": state.failures},
                at=now,
            )
            if just_locked:
                await audit_store.append(
                    conn,
                    actor=actor,
                    action="login.locked",
                    subject=subject,
                    data={"failures": state.failures, "locked_until": state.locked_until},
                    at=now,
                )
        log.info("login_failed", staff_id=subject, reason=reason, failures=state.failures)
        if just_locked:
            log.warning("login_locked", staff_id=subject, failures=state.failures)
            raise LockedOut(state.retry_after_s(now))
        raise BadCredentials("wrong username or password")

    async def login_external(self, username: str | None, *, via: str) -> LoginResult:
        """Open a session for a staff member an external identity provider vouched for
        (``via`` names it, e.g. ``oidc``). An unknown or inactive account is refused with
        :class:`BadCredentials`; both outcomes are audited."""
        now = self.clock()
        async with self.pool.acquire() as conn:
            account = await staff_store.find_by_username(conn, username) if username else None
        if account is not None and account.is_active and not account.is_service:
            return await self._succeed(
                staff_id=account.staff_id,
                role=account.role,
                key=username_key(account.username),
                password_hash=None,
                password="",
                now=now,
                via=via,
            )
        reason = "unknown_user" if account is None else "inactive"
        async with self.pool.acquire() as conn:
            await audit_store.append(
                conn,
                actor=account.staff_id if account else ANONYMOUS_ACTOR,
                action="login.failed",
                subject=account.staff_id if account else None,
                data={"reason": reason, "via": via},
                at=now,
            )
        log.info("login_failed", staff_id=account.staff_id if account else None, reason=reason)
        raise BadCredentials("this identity has no active staff account here")

    async def _succeed(
        self,
        *,
        staff_id: str,
        role: Role,
        key: str,
        password_hash: str | None,
        password: str,
        now: datetime,
        via: str = "password",
    ) -> LoginResult:
        async with self.pool.acquire() as conn, conn.transaction():
            await staff_store.clear_failures(conn, key)
            session_id, secret, expires = await staff_store.start_session(
                conn, staff_id=staff_id, now=now, ttl_s=self.session_ttl_s
            )
            await audit_store.append(
                conn,
                actor=staff_id,
                action="login.succeeded",
                subject=staff_id,
                data={"session_id": session_id, "via": via},
                at=now,
            )
        log.info("login_succeeded", staff_id=staff_id, session_id=session_id, via=via)
        if password_hash is not None and self.hasher.needs_rehash(password_hash):
            new_hash = await asyncio.to_thread(self.hasher.hash, password)
            async with self.pool.acquire() as conn:
                await staff_store.store_password_hash(
                    conn,
                    staff_id=staff_id,
                    password_hash=new_hash,
                    actor="system",
                    now=now,
                    action="staff.password_rehashed",
                )
        async with self.pool.acquire() as conn:
            await staff_store.prune(conn, now)
        return LoginResult(
            principal=Principal(staff_id=staff_id, role=role, via="session", session_id=session_id),
            secret=secret,
            expires_at=expires,
        )

    async def logout(self, who: Principal) -> bool:
        """End the caller's session (audited); ``False`` for a token or an ended session."""
        if who.via != "session" or who.session_id is None:
            return False
        now = self.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            ended = await staff_store.end_session(conn, session_id=who.session_id, now=now)
            if ended:
                await audit_store.append(
                    conn,
                    actor=who.staff_id,
                    action="session.ended",
                    subject=who.staff_id,
                    data={"session_id": who.session_id, "reason": "logout"},
                    at=now,
                )
        if ended:
            log.info("logout_succeeded", staff_id=who.staff_id, session_id=who.session_id)
        return ended

    def set_session_cookie(self, response: web.StreamResponse, result: LoginResult) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            result.secret,
            max_age=self.session_ttl_s,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self.cookie_secure,
        )
        response.set_cookie(
            CSRF_COOKIE,
            csrf_token(result.secret),
            max_age=self.session_ttl_s,
            path="/",
            httponly=False,  # the console reads it and echoes it in X-CSRF-Token
            samesite="Strict",
            secure=self.cookie_secure,
        )

    def clear_session_cookie(self, response: web.StreamResponse) -> None:
        response.del_cookie(
            SESSION_COOKIE, path="/", httponly=True, samesite="Strict", secure=self.cookie_secure
        )
        response.del_cookie(CSRF_COOKIE, path="/", samesite="Strict", secure=self.cookie_secure)


AUTH = web.AppKey("homecare_auth", Auth)


def _same_origin_websocket(request: web.Request, trust_proxy: bool) -> bool:
    """False for a WebSocket handshake whose ``Origin`` is not this service's host (as the
    client or, where ``trust_proxy``, a reverse proxy's ``X-Forwarded-Host`` names it); True for
    anything else."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser: browsers always send Origin on a WebSocket handshake
    host = yarl.URL(origin).raw_authority if origin != "null" else ""
    forwarded = request.headers.getall("X-Forwarded-Host", []) if trust_proxy else []
    allowed = {request.host, *forwarded}
    return bool(host) and host in allowed


def _needs_csrf(request: web.Request) -> bool:
    if request.method in SAFE_METHODS:
        return False
    route = request.get(ROUTE)
    return route is None or not route.is_public


def _failure_reason(account: StaffAccount | None, password_hash: str | None) -> str:
    if account is None:
        return "unknown_user"
    if not account.is_active:
        return "inactive"
    return "no_password" if password_hash is None else "bad_password"


def make_authenticator(pool: asyncpg.Pool, **options: Any) -> Auth:
    """The authenticator for ``app[AUTHENTICATOR]``; options as :class:`Auth` takes."""
    return Auth(pool, **options)


def install(app: web.Application, auth: Auth) -> None:
    """Make ``auth`` the app's authenticator and the one the login routes use."""
    app[AUTH] = auth
    # AUTHENTICATOR's AppKey type is not inferable yet; the value is an Authenticator.
    app[AUTHENTICATOR] = auth  # type: ignore[misc,unused-ignore]


def service(request: web.Request) -> Auth:
    """The :class:`Auth` installed in the request's app."""
    found = request.app.get(AUTH)
    if found is None:
        found = request.app.get(AUTHENTICATOR)  # type: ignore[assignment,unused-ignore]
    if not isinstance(found, Auth):
        raise TypeError("identity.login is not installed in this app")
    return found


class Credentials(Fields):
    """A username and its password."""

    username: Annotated[str, Meta(min_length=1, max_length=200)]
    password: Annotated[str, Meta(min_length=1, max_length=MAX_PASSWORD_CHARS)]


async def login_handler(request: web.Request) -> web.Response:
    # A password that is no text (a lone surrogate) is still checked: it fails and is audited.
    b = await read_body(request, Credentials, secrets=("password",))
    auth = service(request)
    result = await auth.login(b.username, b.password)
    response = web.json_response(
        {
            "staff_id": result.principal.staff_id,
            "role": str(result.principal.role),
            "expires_at": result.expires_at.isoformat(),
            "csrf_token": csrf_token(result.secret),
        }
    )
    auth.set_session_cookie(response, result)
    return response


async def logout_handler(request: web.Request) -> web.Response:
    auth = service(request)
    ended = await auth.logout(caller(request))
    response = web.json_response({"ended": ended})
    auth.clear_session_cookie(response)
    return response


async def me_handler(request: web.Request) -> web.Response:
    who = caller(request)
    auth = service(request)
    async with auth.pool.acquire() as conn:
        account = await staff_store.get_staff(conn, who.staff_id)
        expires = (
            await staff_store.session_expiry(conn, who.session_id)
            if who.via == "session" and who.session_id
            else None
        )
    return web.json_response(
        {
            "staff_id": who.staff_id,
            "username": account.username,
            "display_name": account.display_name,
            "role": str(who.role),
            "permissions": sorted(MATRIX.get(who.role, ())),
            "via": who.via,
            "expires_at": expires.isoformat() if expires else None,
        }
    )


_ME = {
    "type": "object",
    "properties": {
        "staff_id": {"type": "string"},
        "username": {"type": "string"},
        "display_name": {"type": ["string", "null"]},
        "role": {"type": "string"},
        "permissions": {
            "type": "array",
            "items": {"type": "string"},
            "description": "what the role may do (kernel.permissions.MATRIX); screens follow it",
        },
        "via": {"type": "string", "enum": ["session", "token"]},
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
    },
}


def routes() -> list[Route]:
    return [
        Route(
            "POST",
            "/api/login",
            login_handler,
            PUBLIC,
            "Log in with username and password; sets the hc_session cookie",
            body=Credentials,
            tags=("auth",),
            response={
                "type": "object",
                "properties": {
                    "staff_id": {"type": "string"},
                    "role": {"type": "string"},
                    "expires_at": {"type": "string", "format": "date-time"},
                    "csrf_token": {"type": "string"},
                },
            },
        ),
        route(
            "POST",
            "/api/logout",
            logout_handler,
            Permission.OWN_SESSION,
            "End the caller's session and clear the cookie",
            tags=("auth",),
            response={"type": "object", "properties": {"ended": {"type": "boolean"}}},
        ),
        route(
            "GET",
            "/api/me",
            me_handler,
            Permission.OWN_SESSION,
            "Who the caller is and what the role may do",
            tags=("auth",),
            response=_ME,
        ),
    ]


async def ensure_demo_accounts(
    pool: asyncpg.Pool, *, hasher: PasswordHasher | None = None
) -> dict[str, str]:
    """Demo staff (operator ``nattpersonal``, administrator ``handlaggare``, technician
    ``tekniker``, patrol ``nattpatrull``, shift lead ``arbetsledare``) with fresh random
    passwords, returned as ``{username: password}``.

    Missing accounts are created; existing ones get a new password (audited), so the printout is
    always usable. For demos only.
    """
    passwords: dict[str, str] = {}
    async with pool.acquire() as conn:
        for username, role in DEMO_ACCOUNTS.items():
            password = "-".join(secrets.token_hex(3) for _ in range(4))
            existing = await staff_store.find_by_username(conn, username)
            if existing is None:
                await staff_store.create_staff(
                    conn, username=username, role=role, password=password, hasher=hasher
                )
            else:
                await staff_store.set_password(
                    conn,
                    staff_id=existing.staff_id,
                    password=password,
                    actor="system",
                    hasher=hasher,
                )
            passwords[username] = password
    return passwords
