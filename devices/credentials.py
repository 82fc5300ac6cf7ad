"""Per-device MQTT credentials for the broker: password-file lines, ACL rendering (pure).

A device logs in to the broker with its id as username and a random password that is shown once
when it is provisioned. The broker keeps only a salted hash:

- **Mosquitto 2.0** reads ``mosquitto_passwd``'s format, one ``username:$7$I$SALT$HASH`` line per
  user, where ``HASH = PBKDF2-HMAC-SHA512(password, salt, I iterations, 64 bytes)`` and ``SALT``
  (12 random bytes) and ``HASH`` are standard base64. :func:`hash_password` builds exactly what
  ``mosquitto_passwd`` writes, so no binary is needed to provision.
- **EMQX** (cluster) imports ``user_id,password_hash,salt,is_superuser`` CSV rows for its built-in
  database with ``password_hash_algorithm {name = pbkdf2, mac_fun = sha512}``: the hash is the
  lowercase hex of PBKDF2-HMAC-SHA512 over the *text* of the salt (EMQX treats the salt as
  bytes of the string it was given).

Usernames: a device's username is its id (``[a-z0-9-]{1,64}``, the wire contract's id), so the
ACL's ``%u`` / ``${username}`` substitution can only ever name that device's own subtree. Service
accounts (the backend) contain an underscore, which no device id can, so a device can never be
provisioned under a service account's name. The broker makes a device's username its client id;
device ids starting with :data:`RESERVED_DEVICE_PREFIX` are refused, since that is how the
backend's own client ids start (``homecare-{instance}-...``), which a device must never claim.

Nothing here reads files, clocks or randomness: callers pass salts and passwords in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field

from devices.errors import DeviceError
from devices.topics import is_device_id

HASH_TYPE = "7"
"""mosquitto_passwd's marker for PBKDF2-HMAC-SHA512."""
SALT_BYTES = 12
"""Salt length mosquitto_passwd uses (2.0.x)."""
HASH_BYTES = 64
DEFAULT_ITERATIONS = 1000
"""PBKDF2 rounds. mosquitto_passwd 2.0 writes 101; passwords here are 192 random bits, so the
rounds only slow down guessing a password nobody chose, and the broker pays them on every
connect (about a millisecond each at this count)."""
MIN_ITERATIONS = 1
MAX_ITERATIONS = 1_000_000
BACKEND_USER = "homecare_backend"
"""The service account the backend processes use (full access to the topic prefix)."""
SERVICE_USER_RE = re.compile(r"^[a-z][a-z0-9-]*_[a-z0-9_-]{1,63}$")
RESERVED_DEVICE_PREFIX = "homecare-"
"""The backend's MQTT client ids start so; no device account may (its client id is its name)."""
EMQX_CSV_HEADER = "user_id,password_hash,salt,is_superuser"


class CredentialError(DeviceError, ValueError):
    """A username, hash line, password file or template is not acceptable."""


def check_device_username(username: str) -> str:
    """Return ``username`` if it is a device id; raise :class:`CredentialError` otherwise."""
    if not is_device_id(username):
        raise CredentialError(
            f"{username!r} is not a device id (1-64 characters of a-z, 0-9 and -)"
        )
    if username.startswith(RESERVED_DEVICE_PREFIX):
        raise CredentialError(
            f"device ids may not start with {RESERVED_DEVICE_PREFIX!r} (the backend's client ids)"
        )
    return username


def check_service_username(username: str) -> str:
    """Return ``username`` if it is a service account name (has an underscore, no device id)."""
    if not SERVICE_USER_RE.fullmatch(username) or len(username) > 64:
        raise CredentialError(
            f"{username!r} is not a service account name (a-z, 0-9, - and _, with at least "
            "one _ so it can never be a device id)"
        )
    return username


def check_username(username: str) -> str:
    """A device id or a service account name."""
    if is_device_id(username) or "_" not in username:
        return check_device_username(username)
    return check_service_username(username)


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """One ``$7$`` hash: PBKDF2-HMAC-SHA512 with ``iterations`` rounds over ``salt``."""

    iterations: int
    salt: bytes = field(repr=False)
    digest: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not MIN_ITERATIONS <= self.iterations <= MAX_ITERATIONS:
            raise CredentialError(f"iterations must be {MIN_ITERATIONS}..{MAX_ITERATIONS}")
        if not self.salt:
            raise CredentialError("the salt is empty")
        if len(self.digest) != HASH_BYTES:
            raise CredentialError(f"a $7$ hash is {HASH_BYTES} bytes, got {len(self.digest)}")

    def encode(self) -> str:
        salt = base64.b64encode(self.salt).decode("ascii")
        digest = base64.b64encode(self.digest).decode("ascii")
        return f"${HASH_TYPE}${self.iterations}${salt}${digest}"

    @classmethod
    def decode(cls, text: str) -> PasswordHash:
        parts = text.split("$")
        if len(parts) != 5 or parts[0] or parts[1] != HASH_TYPE:
            raise CredentialError("not a $7$ (PBKDF2-SHA512) mosquitto password hash")
        try:
            iterations = int(parts[2])
            salt = base64.b64decode(parts[3], validate=True)
            digest = base64.b64decode(parts[4], validate=True)
        except (ValueError, binascii.Error):
            raise CredentialError("malformed $7$ mosquitto password hash") from None
        return cls(iterations, salt, digest)

    def verify(self, password: str) -> bool:
        """Whether ``password`` produces this hash (constant-time comparison)."""
        computed = hashlib.pbkdf2_hmac(
            "sha512", password.encode("utf-8"), self.salt, self.iterations, HASH_BYTES
        )
        return hmac.compare_digest(computed, self.digest)


def hash_password(password: str, salt: bytes, iterations: int = DEFAULT_ITERATIONS) -> PasswordHash:
    """The Mosquitto ``$7$`` hash of ``password`` with the given salt (normally 12 random bytes)."""
    if not password:
        raise CredentialError("the password is empty")
    if len(salt) != SALT_BYTES:
        raise CredentialError(f"the salt must be {SALT_BYTES} bytes")
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, HASH_BYTES)
    return PasswordHash(iterations, salt, digest)


def password_line(username: str, hashed: PasswordHash) -> str:
    """One password-file line (no newline)."""
    return f"{check_username(username)}:{hashed.encode()}"


def _entries(text: str) -> list[tuple[str | None, str]]:
    """(username or None for comments/blank lines, the line) for every line of a password file."""
    found: list[tuple[str | None, str]] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            found.append((None, line))
            continue
        user, sep, hashed = stripped.partition(":")
        if not sep or not user or not hashed:
            raise CredentialError(f"password file line {number} is not username:hash")
        if user in seen:
            raise CredentialError(f"password file names {user!r} twice (line {number})")
        seen.add(user)
        found.append((user, stripped))
    return found


def parse_password_file(text: str) -> dict[str, str]:
    """Username -> hash text of every entry (comments and blank lines skipped)."""
    return {user: line.partition(":")[2] for user, line in _entries(text) if user is not None}


def with_user(text: str, username: str, hashed: PasswordHash) -> str:
    """The password file ``text`` with ``username``'s line added or replaced; others untouched."""
    line = password_line(username, hashed)
    out: list[str] = []
    replaced = False
    for user, existing in _entries(text):
        if user == username:
            out.append(line)
            replaced = True
        else:
            out.append(existing)
    if not replaced:
        out.append(line)
    return "\n".join(out) + "\n"


def without_user(text: str, username: str) -> str:
    """The password file ``text`` without ``username`` (unchanged if absent)."""
    kept = [line for user, line in _entries(text) if user != username]
    return "\n".join(kept) + "\n" if kept else ""


PLACEHOLDER_RE = re.compile(r"\$(\$?)\{([a-z_][a-z0-9_]*)\}")


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill a deploy template's ``${name}`` placeholders; every placeholder must be given.

    ``$${name}`` is written out as a literal ``${name}`` (EMQX's own ``${username}``). Everything
    else passes through unchanged, including Mosquitto's ``%u`` / ``%c`` and ``$SYS``.
    """
    for name, value in values.items():
        if not value or any(c in value for c in "\n\r"):
            raise CredentialError(f"template value {name!r} must be one non-empty line")
    wanted = {m.group(2) for m in PLACEHOLDER_RE.finditer(template) if not m.group(1)}
    missing = sorted(wanted - set(values))
    if missing:
        raise CredentialError(f"the template needs a value for ${{{missing[0]}}}")

    def fill(m: re.Match[str]) -> str:
        return "${" + m.group(2) + "}" if m.group(1) else values[m.group(2)]

    return PLACEHOLDER_RE.sub(fill, template)


def acl_values(prefix: str, backend_user: str = BACKEND_USER) -> dict[str, str]:
    """Placeholder values of ``deploy/mosquitto/acl.template`` and ``deploy/emqx/acl.conf``."""
    if (
        not prefix
        or prefix.startswith("/")
        or prefix.endswith("/")
        or any(c in prefix for c in "#+ \t")
    ):
        raise CredentialError(f"{prefix!r} is not a plain topic prefix like hc/v1")
    return {"prefix": prefix, "backend_user": check_service_username(backend_user)}


def emqx_row(
    username: str,
    password: str,
    salt: str,
    *,
    superuser: bool = False,
    iterations: int = DEFAULT_ITERATIONS,
) -> str:
    """One row of EMQX's hashed user import (see the module docstring); ``salt`` is plain text."""
    if not salt or not all(c in string.hexdigits for c in salt):
        raise CredentialError("the EMQX salt must be hex text")
    digest = hashlib.pbkdf2_hmac(
        "sha512", password.encode("utf-8"), salt.encode("ascii"), iterations, HASH_BYTES
    )
    return f"{check_username(username)},{digest.hex()},{salt},{'true' if superuser else 'false'}"


def with_emqx_row(text: str, username: str, row: str) -> str:
    """The EMQX import CSV ``text`` with ``username``'s row added or replaced."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        lines = [EMQX_CSV_HEADER]
    elif lines[0] != EMQX_CSV_HEADER:
        raise CredentialError(f"EMQX user file must start with {EMQX_CSV_HEADER!r}")
    body = [line for line in lines[1:] if line.split(",", 1)[0] != username]
    return "\n".join([lines[0], *body, row]) + "\n"
