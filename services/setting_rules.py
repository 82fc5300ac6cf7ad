"""Rules of the settings: how the text of a ``HOMECARE_*`` variable is read and which values are
allowed, one :class:`Rule` per kind of value. ``services.settings`` gives each field one of these.

No I/O but the zoneinfo look-up of a time zone's name.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kernel import timing
from kernel.timing import Timing


@dataclass(frozen=True, slots=True)
class Rule:
    """How one setting is read and checked.

    ``parse`` turns the text of the variable into a value and ``check`` refuses a value that is
    not allowed, whatever built it; both raise ``ValueError`` (``check`` a ``TypeError`` for a
    value of the wrong type) with a reason that completes "HOMECARE_X ..." and never quotes a
    value that may be secret. ``allowed`` names the allowed values for the docs; ``show`` writes
    a value back as the variable's text (a URL without its password).
    """

    allowed: str
    parse: Callable[[str], object]
    check: Callable[[object], None]
    show: Callable[[object], str] = str


def _kind(value: object) -> str:
    return type(value).__name__


def integer(lo: int, hi: int) -> Rule:
    """A whole number from ``lo`` to ``hi``."""

    def parse(raw: str) -> int:
        try:
            return int(raw.strip())
        except ValueError:
            raise ValueError(f"must be a whole number, got {raw!r}") from None

    def check(value: object) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"must be a whole number, got a {_kind(value)}")
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}, got {value}")

    return Rule(f"{lo}–{hi}", parse, check)


def seconds(lo: float, hi: float) -> Rule:
    """A number of seconds from ``lo`` to ``hi``."""

    def parse(raw: str) -> float:
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"must be a number of seconds, got {raw!r}") from None

    def check(value: object) -> None:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise TypeError(f"must be a number of seconds, got a {_kind(value)}")
        if not (math.isfinite(value) and lo <= value <= hi):
            raise ValueError(f"must be between {lo:g} and {hi:g}, got {value:g}")

    return Rule(f"{lo:g}–{hi:g} s", parse, check)


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _parse_bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in _TRUE or low in _FALSE:
        return low in _TRUE
    raise ValueError(f"must be true or false, got {raw!r}")


def _check_bool(value: object) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"must be true or false, got a {_kind(value)}")


BOOLEAN = Rule(
    "true or false (also 1/0, yes/no, on/off)",
    _parse_bool,
    _check_bool,
    lambda value: "true" if value else "false",
)


def choice(*options: str) -> Rule:
    """One of ``options`` (the text is read in lower case)."""

    def check(value: object) -> None:
        if value not in options:
            shown = repr(value) if isinstance(value, str) else f"a {_kind(value)}"
            raise ValueError(f"must be one of {', '.join(options)}, got {shown}")

    return Rule(", ".join(f"`{o}`" for o in options), lambda raw: raw.strip().lower(), check)


def text(allowed: str, is_ok: Callable[[str], bool]) -> Rule:
    """A string for which ``is_ok`` holds; the reason names ``allowed`` and never the value."""

    def check(value: object) -> None:
        if not isinstance(value, str) or not is_ok(value):
            raise ValueError(f"must be {allowed}")

    return Rule(allowed, str, check)


def listing(allowed: str, is_ok: Callable[[str], bool], *, at_least_one: bool) -> Rule:
    """A comma-separated list of items for which ``is_ok`` holds (blanks around items dropped)."""

    def parse(raw: str) -> tuple[str, ...]:
        return tuple(item.strip() for item in raw.split(",") if item.strip())

    def check(value: object) -> None:
        items = value if isinstance(value, tuple) else ()
        if (
            not isinstance(value, tuple)
            or (at_least_one and not items)
            or not all(isinstance(i, str) and is_ok(i) for i in items)
        ):
            raise ValueError(f"takes a comma list of {allowed}")

    return Rule(f"comma list of {allowed}", parse, check, _show_list)


def _show_list(value: object) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _masked_url(value: object) -> str:
    """A URL with its password replaced by ``***`` (URLs may carry credentials)."""
    parts = urlsplit(str(value))
    if parts.password is None:
        return str(value)
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def url(*schemes: str) -> Rule:
    """A URL with one of ``schemes`` and a host (PostgreSQL: or a Unix socket directory)."""
    is_postgres = schemes[0].startswith("postgres")

    def check(value: object) -> None:
        if not isinstance(value, str):
            raise TypeError(f"must be a URL like {schemes[0]}://host:port/...")
        parts = urlsplit(value)
        if parts.scheme not in schemes:
            raise ValueError(
                f"must be a URL like {schemes[0]}://host:port/..., got a value with "
                f"scheme {parts.scheme!r}"
            )
        # PostgreSQL may name a Unix socket directory: postgresql://user@/db?host=/run/postgresql
        socket_dir = is_postgres and any(
            key == "host" and v.startswith("/") for key, v in parse_qsl(parts.query)
        )
        if not parts.hostname and not socket_dir:
            raise ValueError(
                f"names no host: use {schemes[0]}://host:port/..."
                + (" or ?host=/socket/dir" if is_postgres else "")
            )
        if is_postgres:  # a primary and its standbys: host1:port1,host2:port2
            _check_postgres_hosts(parts.netloc.rpartition("@")[2], parts.query)
            return
        try:
            _ = parts.port
        except ValueError:
            raise ValueError("has an invalid port") from None

    allowed = " or ".join(f"`{s}://`" for s in schemes) + " URL"
    return Rule(
        allowed + (" (or `?host=/socket/dir`)" if is_postgres else ""), str, check, _masked_url
    )


TARGET_SESSION_ATTRS = ("any", "primary", "standby", "prefer-standby", "read-write", "read-only")
"""What asyncpg (as libpq) accepts for ``target_session_attrs``."""


def _check_postgres_hosts(hosts: str, query: str) -> None:
    """A PostgreSQL URL may list several hosts (``h1:5432,h2:5432``): the service tries them in
    turn and keeps the first that matches ``target_session_attrs`` (``read-write``: the primary).
    """
    for one in hosts.split(",") if hosts else ():
        host = one
        if ":" in one and not one.endswith("]"):  # host:port ([::1] alone has no port)
            host, _, port = one.rpartition(":")
            if not (port.isdigit() and 0 < int(port) <= 65535):
                raise ValueError("has an invalid port")
        if not host.strip("[]"):
            raise ValueError("names an empty host in its host list")
    for key, value in parse_qsl(query):
        if key == "target_session_attrs" and value not in TARGET_SESSION_ATTRS:
            raise ValueError(
                "has an unknown target_session_attrs: use one of " + ", ".join(TARGET_SESSION_ATTRS)
            )


def _is_host(raw: str) -> bool:
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        return bool(raw) and all(c.isalnum() or c in "-." for c in raw)
    return True


def _is_zone(raw: str) -> bool:
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _is_topic_prefix(raw: str) -> bool:
    return bool(raw) and raw[0] != "/" and raw[-1] != "/" and not any(c in raw for c in "#+")


def _is_ice_url(raw: str) -> bool:
    scheme, sep, rest = raw.partition(":")
    return scheme in {"stun", "turn", "turns"} and bool(sep) and bool(rest.split("?")[0])


def _parse_timing(raw: str) -> Timing:
    return timing.parse(raw)  # its ValueError names the bad pair


def _check_timing(value: object) -> None:
    if not isinstance(value, Timing):
        raise TypeError(f"must be a kernel.timing.Timing, got a {_kind(value)}")


def _show_timing(value: object) -> str:
    """The pairs that differ from the defaults, as ``HOMECARE_TIMING`` takes them."""
    return ",".join(
        f"{name}={getattr(value, name):g}"
        for name in timing.FIELDS
        if getattr(value, name) != getattr(timing.DEFAULT_TIMING, name)
    )


TIMING = Rule(
    "`name=seconds` pairs separated by commas, each name a field of `kernel.timing.Timing` "
    "(listed below), each number positive",
    _parse_timing,
    _check_timing,
    _show_timing,
)


HOST = text("an IP address or host name", _is_host)
TIME_ZONE = text("a known time zone such as Europe/Stockholm", _is_zone)
TOPIC_PREFIX = text(
    "a plain topic prefix like hc/v1 (no leading or trailing /, no # or +)", _is_topic_prefix
)
ICE_URLS = listing("`stun:`, `turn:` or `turns:` URLs", _is_ice_url, at_least_one=False)
ANY_TEXT = text("any text", lambda _: True)
SHORT_TEXT = text("1–512 characters", lambda r: 0 < len(r) <= 512)
INSTANCE_ID = text(
    "letters, digits and dashes", lambda r: bool(r) and all(c.isalnum() or c == "-" for c in r)
)
