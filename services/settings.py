"""Settings: one frozen value built from the environment at start.

Every variable starts with ``HOMECARE_``. An unknown ``HOMECARE_*`` variable or a bad value raises
:class:`SettingsError` with one clear message naming the variable; the CLI turns that into exit 2.
Secrets are never part of ``repr``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kernel import timing
from kernel.timing import DEFAULT_TIMING, Timing

PREFIX = "HOMECARE_"
ROLES = ("api", "signalling", "rounds", "probes")


class SettingsError(ValueError):
    """A configuration value is missing, unknown or malformed."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Process configuration. Durations are seconds."""

    database_url: str | None = None
    mqtt_url: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    mqtt_keepalive_s: int = 5
    mqtt_topic_prefix: str = "hc/v1"
    roles: tuple[str, ...] = ROLES
    time_zone: str = "Europe/Stockholm"
    log_format: str = "auto"
    log_level: str = "info"
    instance_id: str = ""
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = field(default="", repr=False)
    turn_ttl_s: int = 600
    session_secret: str = field(default="", repr=False)
    cookie_secure: bool = False
    tamper_suspend_threshold: int = 1
    plan_hour: int = 18
    max_body_bytes: int = 65536
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = field(default="", repr=False)
    oidc_redirect_url: str = ""
    oidc_username_claim: str = "preferred_username"
    http_rate_per_s: int = 50
    http_rate_burst: int = 200
    timing: Timing = DEFAULT_TIMING  # every deadline and interval (HOMECARE_TIMING="name=s,...")
    http_header_timeout_s: float = 15.0
    http_body_timeout_s: float = 30.0
    trust_proxy: bool = False
    metrics_token: str = field(default="", repr=False)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


def _int(name: str, raw: str, lo: int, hi: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name} must be a whole number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{PREFIX}{name} must be between {lo} and {hi}, got {value}")
    return value


def _seconds(name: str, raw: str, lo: float, hi: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{PREFIX}{name} must be a number of seconds, got {raw!r}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{PREFIX}{name} must be between {lo} and {hi}, got {value}")
    return value


def _bool(name: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{PREFIX}{name} must be true or false, got {raw!r}")


def _url(name: str, raw: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in schemes:
        raise SettingsError(
            f"{PREFIX}{name} must be a URL like {schemes[0]}://host:port/..., got a value with "
            f"scheme {parts.scheme!r}"
        )
    # PostgreSQL may name a Unix socket directory instead: postgresql://user@/db?host=/run/postgresql
    socket_dir = parts.scheme.startswith("postgres") and any(
        key == "host" and value.startswith("/") for key, value in parse_qsl(parts.query)
    )
    if not parts.hostname and not socket_dir:
        raise SettingsError(
            f"{PREFIX}{name} names no host: use {schemes[0]}://host:port/..."
            + (" or ?host=/socket/dir" if parts.scheme.startswith("postgres") else "")
        )
    try:
        _ = parts.port
    except ValueError:
        raise SettingsError(f"{PREFIX}{name} has an invalid port") from None
    return raw


def _host(name: str, raw: str) -> str:
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        if not raw or not all(c.isalnum() or c in "-." for c in raw):
            raise SettingsError(f"{PREFIX}{name} must be an IP address or host name") from None
    return raw


def _timing(name: str, raw: str) -> Timing:
    try:
        return timing.parse(raw)
    except ValueError as e:
        raise SettingsError(f"{PREFIX}{name} {e}") from None


def _parse(name: str, raw: str) -> object:
    match name:
        case "DATABASE_URL":
            return _url(name, raw, ("postgresql", "postgres"))
        case "MQTT_URL":
            return _url(name, raw, ("mqtt", "mqtts"))
        case "HTTP_HOST":
            return _host(name, raw)
        case "HTTP_PORT":
            return _int(name, raw, 0, 65535)
        case "MQTT_KEEPALIVE_S":
            return _int(name, raw, 1, 3600)
        case "MQTT_TOPIC_PREFIX":
            if not raw or raw.startswith("/") or raw.endswith("/") or any(c in raw for c in "#+"):
                raise SettingsError(f"{PREFIX}{name} must be a plain topic prefix like hc/v1")
            return raw
        case "ROLES":
            roles = tuple(r.strip() for r in raw.split(",") if r.strip())
            bad = [r for r in roles if r not in ROLES]
            if bad or not roles:
                raise SettingsError(f"{PREFIX}{name} takes a comma list of {', '.join(ROLES)}")
            return roles
        case "TIME_ZONE":
            try:
                ZoneInfo(raw)
            except (ZoneInfoNotFoundError, ValueError):
                raise SettingsError(f"{PREFIX}{name} is not a known time zone: {raw!r}") from None
            return raw
        case "LOG_FORMAT":
            if raw not in {"auto", "json", "console"}:
                raise SettingsError(f"{PREFIX}{name} must be auto, json or console")
            return raw
        case "LOG_LEVEL":
            if raw.lower() not in {"debug", "info", "warning", "error"}:
                raise SettingsError(f"{PREFIX}{name} must be debug, info, warning or error")
            return raw.lower()
        case "INSTANCE_ID":
            if not raw or not all(c.isalnum() or c == "-" for c in raw):
                raise SettingsError(f"{PREFIX}{name} must be letters, digits and dashes")
            return raw
        case "TURN_URLS":
            return tuple(u.strip() for u in raw.split(",") if u.strip())
        case "TURN_SECRET" | "SESSION_SECRET":
            return raw
        case "TURN_TTL_S":
            return _int(name, raw, 30, 86400)
        case "COOKIE_SECURE":
            return _bool(name, raw)
        case "TAMPER_SUSPEND_THRESHOLD":
            return _int(name, raw, 1, 100)
        case "PLAN_HOUR":  # the round runs from this hour to the next noon
            return _int(name, raw, 12, 23)
        case "MAX_BODY_BYTES":
            return _int(name, raw, 1024, 16 * 1024 * 1024)
        case "HTTP_RATE_PER_S":
            return _int(name, raw, 1, 100_000)
        case "HTTP_RATE_BURST":
            return _int(name, raw, 1, 1_000_000)
        case "HTTP_HEADER_TIMEOUT_S" | "HTTP_BODY_TIMEOUT_S":
            return _seconds(name, raw, 0.1, 3600.0)
        case "TRUST_PROXY":  # a reverse proxy in front sets X-Forwarded-Host; else it is ignored
            return _bool(name, raw)
        case "METRICS_TOKEN":  # /metrics beyond loopback needs "Authorization: Bearer <this>"
            if raw and len(raw) < 16:
                raise SettingsError(f"{PREFIX}{name} must be at least 16 characters")
            return raw
        case "TIMING":  # overrides of single deadlines: "ring_timeout_s=5,document_grace_s=20"
            return _timing(name, raw)
        case "OIDC_ISSUER":
            return _url(name, raw, ("https", "http"))
        case "OIDC_REDIRECT_URL":
            return _url(name, raw, ("https", "http"))
        case "OIDC_CLIENT_ID" | "OIDC_CLIENT_SECRET" | "OIDC_USERNAME_CLAIM":
            if not raw or len(raw) > 512:
                raise SettingsError(f"{PREFIX}{name} must be 1-512 characters")
            return raw
    raise SettingsError(f"unknown setting {PREFIX}{name}")


TOOL_VARIABLES = ("HOMECARE_TOKEN",)
"""Read by the command-line clients (``homecare view``), not by the service."""
TOOL_PREFIXES = ("HOMECARE_TEST_", "HOMECARE_BENCH_", "HOMECARE_FUZZ_")
"""Servers and budgets of the test suite and the benchmarks: not settings of the service."""


def _is_tool_variable(key: str) -> bool:
    return key in TOOL_VARIABLES or key.startswith(TOOL_PREFIXES)


def load(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, object] | None = None
) -> Settings:
    """Build settings from ``environ`` (default ``os.environ``), then apply ``overrides``."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for key, raw in env.items():
        if not key.startswith(PREFIX) or _is_tool_variable(key):
            continue
        name = key.removeprefix(PREFIX)
        values[name.lower()] = _parse(name, raw)
    values.update(overrides or {})
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SettingsError(f"unknown setting {PREFIX}{unknown[0].upper()}")
    return Settings(**values)  # type: ignore[arg-type]
