"""Staff identity (pure): usernames, the password policy, argon2id hashing, lockout, token format.

Staff accounts give the audit log a real "who". An account has a pseudonymous ``staff_id``
(``staff-`` and lowercase base32), a login ``username``, an optional display name (personal data:
never logged, never audited) and exactly one :class:`~kernel.roles.Role`.

Secrets (session cookies, bearer tokens) are random, shown once, and stored only as SHA-256.
A bearer token reads ``hct_<token_id>_<secret>`` so a leaked one is recognisable and its
``token_id`` can be revoked without knowing the secret.

Lockout: ``max_failures`` failed logins for one username within ``window_s`` lock it for
``lock_s``. It applies to unknown usernames exactly as to real ones, so it reveals nothing.

No I/O, no logging, no clock reads; hashing is CPU only (run it off the event loop).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cached_property

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from kernel.errors import InvalidInput
from kernel.roles import LOGINS, Role

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
STAFF_ID_RE = re.compile(r"^staff-[a-z0-9]{6,32}$")
TOKEN_ID_RE = re.compile(r"^[a-z0-9]{10,32}$")
SESSION_COOKIE_RE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
TOKEN_PREFIX = "hct_"  # noqa: S105 - a public prefix, not a secret
LOGIN_ROLES = LOGINS
MAX_TOKEN_TTL_S = 366 * 24 * 3600
SESSION_TTL_S = 12 * 3600
"""A session lasts one night shift at most; then the operator logs in again."""

_COMMON_PASSWORDS = frozenset(
    {
        "password1234",
        "123456789012",
        "qwertyuiopas",
        "lösenord1234",
        "losenord1234",
        "sommar2024!!",
        "vinter2024!!",
        "hemtjanst123",
        "hemtjänst123",
        "nattillsyn12",
        "passwordpassword",
        "1234567890123",
    }
)


@dataclass(frozen=True, slots=True)
class StaffAccount:
    """A staff member as the rest of the system sees them (never the password hash)."""

    staff_id: str
    username: str
    role: Role
    display_name: str | None
    is_active: bool
    is_service: bool
    has_password: bool
    created_at: datetime

    def to_json(self) -> dict[str, object]:
        return {
            "staff_id": self.staff_id,
            "username": self.username,
            "role": str(self.role),
            "display_name": self.display_name,
            "is_active": self.is_active,
            "is_service": self.is_service,
            "has_password": self.has_password,
            "created_at": self.created_at.isoformat(),
        }


def normalise_username(raw: object) -> str | None:
    """The canonical username (trimmed, lowercase), or ``None`` if it cannot be one."""
    if not isinstance(raw, str) or len(raw) > 200:
        return None
    name = raw.strip().lower()
    return name if USERNAME_RE.match(name) else None


def require_username(raw: object) -> str:
    name = normalise_username(raw)
    if name is None:
        raise InvalidInput(
            "username",
            "invalid_username",
            "username must be 3-64 characters: a-z, 0-9, '.', '_' or '-'",
        )
    return name


def require_login_role(raw: object) -> Role:
    """A role a person or integration may log in with (never ``system``)."""
    try:
        role = Role(str(raw))
    except ValueError:
        role = Role.SYSTEM
    if role not in LOGIN_ROLES:
        raise InvalidInput(
            "role",
            "invalid_role",
            "role must be operator, administrator, technician, patrol or shift_lead",
        )
    return role


def username_key(raw: str) -> str:
    """SHA-256 of the normalised username: the throttle key, also for names that cannot exist."""
    name = normalise_username(raw) or raw.strip().lower()
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()


class PasswordProblem(StrEnum):
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    NOT_TEXT = "not_text"
    SAME_AS_USERNAME = "same_as_username"
    TOO_COMMON = "too_common"
    TOO_REPETITIVE = "too_repetitive"


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """Length over composition rules (NIST SP 800-63B): long enough, not common, not trivial."""

    min_length: int = 12
    max_length: int = 256

    def problem(self, password: object, *, username: str) -> PasswordProblem | None:
        if not isinstance(password, str) or "\x00" in password:
            return PasswordProblem.NOT_TEXT
        if len(password) < self.min_length:
            return PasswordProblem.TOO_SHORT
        if len(password) > self.max_length:
            return PasswordProblem.TOO_LONG
        low = password.lower()
        if username and username.lower() in low:
            return PasswordProblem.SAME_AS_USERNAME
        if low in _COMMON_PASSWORDS:
            return PasswordProblem.TOO_COMMON
        if len(set(password)) < 4:
            return PasswordProblem.TOO_REPETITIVE
        return None

    def require(self, password: object, *, username: str) -> str:
        found = self.problem(password, username=username)
        if found is not None:
            messages = {
                PasswordProblem.TOO_SHORT: f"password needs at least {self.min_length} characters",
                PasswordProblem.TOO_LONG: f"password may have at most {self.max_length} characters",
                PasswordProblem.NOT_TEXT: "password must be text",
                PasswordProblem.SAME_AS_USERNAME: "password must not contain the username",
                PasswordProblem.TOO_COMMON: "password is too common",
                PasswordProblem.TOO_REPETITIVE: "password needs more different characters",
            }
            raise InvalidInput("password", f"password_{found}", messages[found])
        assert isinstance(password, str)
        return password


DEFAULT_PASSWORD_POLICY = PasswordPolicy()


@dataclass(frozen=True, slots=True)
class PasswordHashing:
    """argon2id parameters. The default is OWASP's (19 MiB, 2 passes, 1 lane): ~60 ms here."""

    time_cost: int = 2
    memory_cost_kib: int = 19456
    parallelism: int = 1

    def __post_init__(self) -> None:
        if (
            self.time_cost < 1
            or self.memory_cost_kib < 8 * self.parallelism
            or self.parallelism < 1
        ):
            raise ValueError("argon2 parameters out of range")


DEFAULT_HASHING = PasswordHashing()
FAST_HASHING = PasswordHashing(time_cost=1, memory_cost_kib=1024, parallelism=1)
"""For tests only: cheap, still argon2id."""


class PasswordHasher:
    """argon2id over :class:`PasswordHashing`; verifies in the same time whether or not a hash
    exists (``verify(None, ...)`` checks against a dummy hash and returns ``False``)."""

    def __init__(self, hashing: PasswordHashing = DEFAULT_HASHING) -> None:
        self.hashing = hashing
        self._hasher = argon2.PasswordHasher(
            time_cost=hashing.time_cost,
            memory_cost=hashing.memory_cost_kib,
            parallelism=hashing.parallelism,
            type=argon2.Type.ID,
        )

    @cached_property
    def _dummy(self) -> str:
        return self._hasher.hash("not a password of anyone; equalises timing")

    def hash(self, password: str) -> str:
        return str(self._hasher.hash(password))

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            # surrogatepass: a password with a lone surrogate is checked (and fails), not an error
            secret = password.encode("utf-8", "surrogatepass")
            return bool(self._hasher.verify(password_hash or self._dummy, secret)) and (
                password_hash is not None
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return bool(self._hasher.check_needs_rehash(password_hash))
        except (InvalidHashError, ValueError):
            return True


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    max_failures: int = 5
    window_s: int = 15 * 60
    lock_s: int = 15 * 60


@dataclass(frozen=True, slots=True)
class Throttle:
    """Failed logins of one username: ``failures`` since ``window_start``, locked until when."""

    failures: int
    window_start: datetime
    locked_until: datetime | None = None

    def is_locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def retry_after_s(self, now: datetime) -> int:
        if self.locked_until is None or now >= self.locked_until:
            return 0
        return max(1, int((self.locked_until - now).total_seconds() + 0.999))


DEFAULT_LOCKOUT = LockoutPolicy()


def after_failure(state: Throttle | None, now: datetime, policy: LockoutPolicy) -> Throttle:
    """The throttle after one more failed login at ``now``."""
    window = timedelta(seconds=policy.window_s)
    if (
        state is None
        or now - state.window_start >= window
        or (state.locked_until is not None and now >= state.locked_until)
    ):
        state = Throttle(failures=0, window_start=now)
    failures = state.failures + 1
    locked = state.locked_until
    if failures >= policy.max_failures and not state.is_locked(now):
        locked = now + timedelta(seconds=policy.lock_s)
    return Throttle(failures=failures, window_start=state.window_start, locked_until=locked)


def secret_hash(secret: str) -> str:
    """SHA-256 hex of a session or token secret: what the database stores."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def staff_id_from(raw: bytes) -> str:
    """``staff-`` and 16 base32 characters from 10 random bytes."""
    if len(raw) != 10:
        raise ValueError("staff id needs 10 random bytes")
    return f"staff-{b32(raw)}"


def format_token(token_id: str, secret: bytes) -> str:
    if not TOKEN_ID_RE.match(token_id) or len(secret) < 24:
        raise ValueError("token id or secret malformed")
    return f"{TOKEN_PREFIX}{token_id}_{base64.urlsafe_b64encode(secret).decode().rstrip('=')}"


def parse_token(token: str) -> tuple[str, str] | None:
    """``(token_id, token)`` for a well-formed bearer token, else ``None``."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    token_id, sep, rest = token[len(TOKEN_PREFIX) :].partition("_")
    if not sep or not TOKEN_ID_RE.match(token_id) or len(rest) < 32:
        return None
    return token_id, token


def parse_bearer(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else ``None``."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    value = value.strip()
    return value if parse_token(value) is not None else None


def csrf_token(session_secret: str) -> str:
    """The CSRF token of a session: SHA-256 of the (HttpOnly) session secret, domain-separated.

    Sent to the browser in the readable ``hc_csrf`` cookie and echoed back in ``X-CSRF-Token``
    on every state-changing request (a double-submit bound to the session, so a cookie planted
    by another site cannot be matched). Knowing it does not reveal the session secret.
    """
    raw = session_secret.encode("utf-8", "surrogatepass")
    return hashlib.sha256(b"hc-csrf\0" + raw).hexdigest()


def session_cookie_ok(value: str) -> bool:
    """A cookie value that could be a session secret (43 url-safe base64 characters)."""
    return SESSION_COOKIE_RE.match(value) is not None


def check_ttl(ttl_s: object) -> int:
    if not isinstance(ttl_s, int) or isinstance(ttl_s, bool) or not 60 <= ttl_s <= MAX_TOKEN_TTL_S:
        raise InvalidInput(
            "ttl_s", "invalid_ttl", f"ttl_s must be whole seconds between 60 and {MAX_TOKEN_TTL_S}"
        )
    return ttl_s
