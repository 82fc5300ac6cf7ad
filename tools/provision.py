"""``homecare devices provision|revoke|acl``: broker credentials on disk.

The files live in one directory (``--out``, e.g. ``/etc/mosquitto/homecare``):

- ``passwd``: Mosquitto's password file, one ``user:$7$...`` hash line per device or service
  account; a password is printed once by ``provision`` and stored nowhere in clear.
- ``acl``: rendered from ``deploy/mosquitto/acl.template`` for the topic prefix and the backend
  account (written when missing, or always by ``acl``).
- ``emqx-users.csv`` (with ``--emqx``): the same accounts for EMQX's built-in database import.

Writes are atomic (a temporary file renamed over the old one, keeping its mode and owner) and
serialised by an exclusive lock on ``.provision.lock`` in the directory, so two provisioning runs
never lose each other's lines. Mosquitto reads the files again on SIGHUP.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import grp
import os
import secrets
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from devices import credentials

log = structlog.get_logger(__name__)

PASSWORD_FILE = "passwd"  # noqa: S105 (a file name, not a password)
ACL_FILE = "acl"
EMQX_FILE = "emqx-users.csv"
LOCK_FILE = ".provision.lock"
PASSWORD_BYTES = 24
"""192 random bits; ``token_urlsafe`` text needs no escaping in an ``mqtt://user:pass@`` URL."""

REPO_TEMPLATE = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto" / "acl.template"


class AlreadyProvisioned(credentials.CredentialError):
    """The username already has credentials (use ``--rotate`` to replace them)."""


class NotProvisioned(credentials.CredentialError, LookupError):
    """The username has no credentials to revoke."""


@dataclass(frozen=True, slots=True)
class Issued:
    """What ``provision`` created. ``password`` is the only clear copy there will ever be."""

    username: str
    password: str = field(repr=False)
    password_file: Path
    acl_file: Path
    rotated: bool


def acl_template(path: Path | None = None) -> str:
    """The ACL template: ``path``, else ``deploy/mosquitto/acl.template`` of the source tree."""
    source = path or REPO_TEMPLATE
    try:
        return source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise credentials.CredentialError(
            f"no ACL template at {source} (pass --template deploy/mosquitto/acl.template)"
        ) from None


def render_acl(
    prefix: str, backend_user: str = credentials.BACKEND_USER, template: Path | None = None
) -> str:
    return credentials.render(acl_template(template), credentials.acl_values(prefix, backend_user))


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def _gid(group: str | None) -> int | None:
    if group is None:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise credentials.CredentialError(f"no such group {group!r}") from None


def _write_atomic(path: Path, text: str, *, mode: int = 0o640, gid: int | None = None) -> None:
    """Replace ``path`` with ``text``; an existing file's mode and owner are kept, a new file
    gets ``mode`` and group ``gid`` (the broker's group, so it can read the file)."""
    try:
        st: os.stat_result | None = path.stat()
    except FileNotFoundError:
        st = None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, st.st_mode & 0o7777 if st is not None else mode)
        if st is not None:
            with contextlib.suppress(PermissionError):
                os.chown(tmp, st.st_uid, st.st_gid)
        elif gid is not None:
            os.chown(tmp, -1, gid)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def provision(
    username: str,
    directory: Path,
    *,
    prefix: str = "hc/v1",
    backend_user: str = credentials.BACKEND_USER,
    rotate: bool = False,
    emqx: bool = False,
    template: Path | None = None,
    group: str | None = None,
    iterations: int = credentials.DEFAULT_ITERATIONS,
) -> Issued:
    """Create (or with ``rotate`` replace) the broker credentials of ``username``.

    ``username`` is a device id or a service account name such as ``homecare_backend``. New
    files get group ``group`` (e.g. ``mosquitto``: the broker reads them after dropping root).
    """
    credentials.check_username(username)
    gid = _gid(group)
    values = credentials.acl_values(prefix, backend_user)
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    hashed = credentials.hash_password(
        password, secrets.token_bytes(credentials.SALT_BYTES), iterations
    )
    passwd_path = directory / PASSWORD_FILE
    acl_path = directory / ACL_FILE
    with _locked(directory):
        current = _read(passwd_path)
        exists = username in credentials.parse_password_file(current)
        if exists and not rotate:
            raise AlreadyProvisioned(
                f"{username!r} already has broker credentials in {passwd_path} "
                "(--rotate replaces them)"
            )
        _write_atomic(passwd_path, credentials.with_user(current, username, hashed), gid=gid)
        if not acl_path.exists():
            acl = credentials.render(acl_template(template), values)
            _write_atomic(acl_path, acl, mode=0o644, gid=gid)
        if emqx:
            emqx_path = directory / EMQX_FILE
            row = credentials.emqx_row(
                username,
                password,
                secrets.token_hex(16),
                superuser=False,
                iterations=iterations,
            )
            _write_atomic(
                emqx_path, credentials.with_emqx_row(_read(emqx_path), username, row), gid=gid
            )
    log.info(
        "broker_credentials_issued", username=username, rotated=exists, directory=str(directory)
    )
    return Issued(username, password, passwd_path, acl_path, rotated=exists)


def revoke(username: str, directory: Path) -> None:
    """Remove ``username`` from the password file (and the EMQX import file if there is one)."""
    credentials.check_username(username)
    passwd_path = directory / PASSWORD_FILE
    with _locked(directory):
        current = _read(passwd_path)
        if username not in credentials.parse_password_file(current):
            raise NotProvisioned(f"{username!r} has no broker credentials in {passwd_path}")
        _write_atomic(passwd_path, credentials.without_user(current, username))
        emqx_path = directory / EMQX_FILE
        emqx_text = _read(emqx_path)
        if emqx_text:
            kept = [
                line
                for line in emqx_text.splitlines()
                if line.strip() and line.split(",", 1)[0] != username
            ]
            _write_atomic(emqx_path, "\n".join(kept) + "\n")
    log.info("broker_credentials_revoked", username=username, directory=str(directory))


def write_acl(
    directory: Path,
    *,
    prefix: str = "hc/v1",
    backend_user: str = credentials.BACKEND_USER,
    template: Path | None = None,
    group: str | None = None,
) -> Path:
    """(Re)write ``directory/acl`` from the template."""
    text = render_acl(prefix, backend_user, template)
    gid = _gid(group)
    path = directory / ACL_FILE
    with _locked(directory):
        _write_atomic(path, text, mode=0o644, gid=gid)
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``homecare devices`` subcommands (``parser`` is the ``devices`` parser)."""
    sub = parser.add_subparsers(dest="devices_command", required=True)
    p = sub.add_parser(
        "provision",
        help="create broker credentials for a device id (or a service account such as "
        f"{credentials.BACKEND_USER}); prints the password once",
    )
    p.add_argument("id", help="device id ([a-z0-9-]) or service account (contains _)")
    p.add_argument("--rotate", action="store_true", help="replace existing credentials")
    p.add_argument("--emqx", action="store_true", help=f"also write {EMQX_FILE} for EMQX")
    p = sub.add_parser("revoke", help="remove a device's broker credentials")
    p.add_argument("id")
    p = sub.add_parser("acl", help="(re)write the broker ACL from the template")
    for p in sub.choices.values():
        p.add_argument("--out", type=Path, default=Path(), help="credentials directory (.)")
        p.add_argument(
            "--backend-user",
            default=credentials.BACKEND_USER,
            help=f"service account with full access (default {credentials.BACKEND_USER})",
        )
        p.add_argument("--template", type=Path, help="ACL template (deploy/mosquitto/acl.template)")
        p.add_argument("--group", help="group of new files, e.g. mosquitto (the broker's group)")


def run_command(args: argparse.Namespace, prefix: str) -> int:
    """Run a parsed ``homecare devices ...`` command; 0 done, 1 refused, 2 bad input."""
    out, err = sys.stdout, sys.stderr
    try:
        match args.devices_command:
            case "provision":
                issued = provision(
                    args.id,
                    args.out,
                    prefix=prefix,
                    backend_user=args.backend_user,
                    rotate=args.rotate,
                    emqx=args.emqx,
                    template=args.template,
                    group=args.group,
                )
                out.write(f"username: {issued.username}\npassword: {issued.password}\n")
                out.flush()
                err.write(
                    f"stored only a hash in {issued.password_file}; the password is not shown "
                    f"again.\nACL: {issued.acl_file}. Reload the broker to apply "
                    "(systemctl reload mosquitto, or SIGHUP).\n"
                )
            case "revoke":
                revoke(args.id, args.out)
                err.write(f"removed {args.id}; reload the broker to apply.\n")
            case "acl":
                path = write_acl(
                    args.out,
                    prefix=prefix,
                    backend_user=args.backend_user,
                    template=args.template,
                    group=args.group,
                )
                err.write(f"wrote {path}\n")
    except (AlreadyProvisioned, NotProvisioned) as e:
        err.write(f"homecare devices: {e}\n")
        return 1
    except credentials.CredentialError as e:
        err.write(f"homecare devices: {e}\n")
        return 2
    return 0
