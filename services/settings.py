"""Settings: one frozen value built from the environment at start.

Each setting is one field of :class:`Settings`, defined once with :func:`setting`: its default, its
rule (:class:`services.setting_rules.Rule`: how the text of the variable is read, which values are
allowed), whether it is a secret, and a one-line description. Its variable is ``HOMECARE_`` and the
field's name in capitals. From these alone come the parsing of the environment (:func:`load`), the
check of every value however it was built (``__post_init__``: the environment, the ``overrides``
of :func:`load`, ``Settings(...)`` and ``dataclasses.replace``), the ``repr`` that hides secrets,
and ``docs/configuration.md`` (:func:`markdown_reference`, ``homecare config --markdown``).

An unknown ``HOMECARE_*`` variable or a bad value raises :class:`SettingsError` with one clear
message naming the variable and never the value of a secret; the CLI turns that into exit 2.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from kernel import timing
from kernel.timing import DEFAULT_TIMING, Timing
from services import setting_rules as rules

PREFIX = "HOMECARE_"
ROLES = ("api", "signalling", "rounds", "probes")
TOOL_VARIABLES = ("HOMECARE_TOKEN",)
"""Read by the command-line clients (``homecare view``), not by the service."""
TOOL_PREFIXES = ("HOMECARE_TEST_", "HOMECARE_BENCH_", "HOMECARE_FUZZ_")
"""Servers and budgets of the test suite and the benchmarks: not settings of the service."""


class SettingsError(ValueError):
    """A configuration value is missing, unknown or malformed."""


# --- the settings -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spec:
    """What :func:`setting` keeps in a field's metadata."""

    rule: rules.Rule
    help: str
    secret: bool
    default_text: str


def setting(
    default: object, rule: rules.Rule, help: str, *, secret: bool = False, default_text: str = ""
) -> Any:  # the field's own annotation states its type
    """A field of :class:`Settings`: ``help`` is one line in English for the docs;
    ``default_text`` says what an empty default means (else the default is shown as it is)."""
    spec = Spec(rule, help, secret, default_text)
    return dataclasses.field(default=default, metadata={"setting": spec})


def spec(f: dataclasses.Field[Any]) -> Spec:
    """The :class:`Spec` of one field of :class:`Settings`."""
    found: Spec = f.metadata["setting"]
    return found


def variable(f: dataclasses.Field[Any]) -> str:
    """The environment variable of one field: ``http_port`` is ``HOMECARE_HTTP_PORT``."""
    return PREFIX + f.name.upper()


@dataclass(frozen=True, slots=True, repr=False)
class Settings:
    """Process configuration. Durations are seconds. Every value is checked when it is built."""

    database_url: str | None = setting(
        None,
        rules.url("postgresql", "postgres"),
        "PostgreSQL server and database, e.g. `postgresql://user@host:5432/db`; a Patroni pair: "
        "`postgresql://user@pg-a:5432,pg-b:5432/db?target_session_attrs=read-write` "
        "(`homecare demo` starts an embedded one when unset)",
        default_text="none (the demo: embedded)",
    )
    mqtt_url: str | None = setting(
        None,
        rules.url("mqtt", "mqtts"),
        "MQTT broker of the devices, e.g. `mqtt://user:pass@host:1883` or `mqtts://...` "
        "(`homecare demo` starts an embedded one when unset)",
        default_text="none (the demo: embedded)",
    )
    http_host: str = setting(
        "127.0.0.1",
        rules.HOST,
        "address where the API, the console and signalling listen",
    )
    http_port: int = setting(
        8080, rules.integer(0, 65535), "port of the API, console and signalling (`serve --port`)"
    )
    mqtt_keepalive_s: int = setting(
        5, rules.integer(1, 3600), "MQTT keepalive of the backend and of simulated devices"
    )
    mqtt_topic_prefix: str = setting(
        "hc/v1",
        rules.TOPIC_PREFIX,
        "topic prefix of the device contract",
    )
    roles: tuple[str, ...] = setting(
        ROLES,
        rules.listing(", ".join(ROLES), lambda r: r in ROLES, at_least_one=True),
        "what this process runs (`serve --roles`): `api` (HTTP API and console), `signalling` "
        "(`/ws/signal`), `rounds` (planner, watchdog, a worker), `probes` (a worker with the "
        "motion probe); split processes: [deploy/README.md](../deploy/README.md)",
    )
    time_zone: str = setting(
        "Europe/Stockholm",
        rules.TIME_ZONE,
        "local time of care plans and nights",
    )
    log_format: str = setting(
        "auto", rules.choice("auto", "json", "console"), "`auto`: JSON off a TTY, console on one"
    )
    log_level: str = setting(
        "info", rules.choice("debug", "info", "warning", "error"), "least level of the logs written"
    )
    instance_id: str = setting(
        "",
        rules.INSTANCE_ID,
        "names this process in MQTT client ids and logs",
        default_text="random",
    )
    turn_urls: tuple[str, ...] = setting(
        (),
        rules.ICE_URLS,
        "ICE servers handed to viewers and devices, e.g. `turn:host:3478?transport=udp`",
    )
    turn_secret: str = setting(
        "",
        rules.ANY_TEXT,
        "coturn's REST secret (`static-auth-secret`) that short-lived TURN credentials are "
        "made with",
        secret=True,
    )
    turn_ttl_s: int = setting(600, rules.integer(30, 86400), "lifetime of a TURN credential")
    session_secret: str = setting(
        "",
        rules.ANY_TEXT,
        "signs the OIDC login's short-lived state cookie; give every process that serves logins "
        "the same one",
        secret=True,
        default_text="random per process",
    )
    cookie_secure: bool = setting(
        False, rules.BOOLEAN, "adds `Secure` to every cookie (behind TLS)"
    )
    tamper_suspend_threshold: int = setting(
        1,
        rules.integer(1, 100),
        "privacy-switch events within 7 days before supervision is suspended (tamper and "
        "unplugged suspend at once)",
    )
    plan_hour: int = setting(
        18,
        rules.integer(12, 23),
        "local hour when tonight's round is planned and begins; it ends at noon (`homecare demo` "
        "uses 12 unless set)",
    )
    max_body_bytes: int = setting(
        65536, rules.integer(1024, 16 * 1024 * 1024), "largest HTTP body accepted (bytes; else 413)"
    )
    oidc_issuer: str = setting(
        "",
        rules.url("https", "http"),
        "OpenID Connect issuer of staff login; login by OIDC is on when this and the client id "
        "are set",
        default_text="none (password login only)",
    )
    oidc_client_id: str = setting("", rules.SHORT_TEXT, "OIDC client id of this service")
    oidc_client_secret: str = setting("", rules.SHORT_TEXT, "OIDC client secret", secret=True)
    oidc_redirect_url: str = setting(
        "",
        rules.url("https", "http"),
        "public URL of the OIDC callback",
        default_text="derived from the request",
    )
    oidc_username_claim: str = setting(
        "preferred_username",
        rules.SHORT_TEXT,
        "the ID token claim that names the staff account",
    )
    http_rate_per_s: int = setting(
        50, rules.integer(1, 100_000), "HTTP requests per second per client address (then 429)"
    )
    http_rate_burst: int = setting(
        200, rules.integer(1, 1_000_000), "HTTP requests per client address in a burst"
    )
    timing: Timing = setting(  # noqa: RUF009 (a field like dataclasses.field; Timing is frozen)
        DEFAULT_TIMING,
        rules.TIMING,
        "overrides single deadlines and intervals of the one timing policy, e.g. "
        "`ring_timeout_s=5,document_grace_s=20`",
        default_text="the defaults of `kernel/timing.py`",
    )
    http_header_timeout_s: float = setting(
        15.0,
        rules.seconds(0.1, 3600.0),
        "a request's headers (and an idle kept-alive connection) must arrive within this; else "
        "the connection is closed",
    )
    http_body_timeout_s: float = setting(
        30.0, rules.seconds(0.1, 3600.0), "a request's body must arrive within this; else 408"
    )
    trust_proxy: bool = setting(
        False,
        rules.BOOLEAN,
        "a reverse proxy in front sets `X-Forwarded-Host`: only then does it count as this "
        "service's host for the WebSocket origin check",
    )
    metrics_token: str = setting(
        "",
        rules.text("at least 16 characters", lambda r: len(r) >= 16),
        "`/metrics` for clients beyond loopback that send `Authorization: Bearer <token>`",
        secret=True,
        default_text="none (loopback only)",
    )
    audit_anchor_key: str = setting(
        "",
        rules.text("a path to a file", lambda r: bool(r.strip()) and "\x00" not in r),
        "Ed25519 private key (PEM, from `homecare audit keygen`) that signs the audit chain's "
        "head; keep it where database administrators cannot read it. Anchoring is on when this "
        "and `HOMECARE_AUDIT_ANCHOR_DIR` are set",
        default_text="none (no anchors)",
    )
    audit_anchor_dir: str = setting(
        "",
        rules.text("a path to a directory", lambda r: bool(r.strip()) and "\x00" not in r),
        "directory of the append-only anchor files (`anchors-YYYY-MM-DD.jsonl`, one signed "
        "head per line); `homecare audit verify --anchors DIR` reads them",
        default_text="none (no anchors)",
    )
    audit_anchor_interval_s: float = setting(
        60.0,
        rules.seconds(1.0, 60.0),
        "how often the chain's head is anchored while entries are written (not when nothing "
        "changed), and once more at a clean shutdown",
    )
    # Retention per data class (issue 18; docs/operations.md#retention-and-erasure says why each
    # default; a municipality sets its own from its document-management plan).
    retention_view_log_days: int = setting(
        1826,
        rules.integer(30, 36_500),
        "days a look (view, call, probe: who, when, how long) is kept after it ended, then deleted",
    )
    retention_check_days: int = setting(
        1826,
        rules.integer(30, 36_500),
        "days a night's check records (checks, steps, alarms, duty, behaviour events) are kept, "
        "then deleted",
    )
    retention_note_days: int = setting(
        365,
        rules.integer(1, 36_500),
        "days operators' free-text notes (a check's steps, extra looks, pauses) are kept, then "
        "blanked; the record they belong to stays",
    )
    retention_device_health_days: int = setting(
        90,
        rules.integer(1, 36_500),
        "days a device's last health report and its command history are kept",
    )
    retention_session_days: int = setting(
        30,
        rules.integer(1, 3650),
        "days an ended or expired login session, API token or login throttle row is kept",
    )
    retention_ended_recipient_days: int = setting(
        1826,
        rules.integer(0, 36_500),
        "days after a brukare's service ended until their name, home, door-code reference, "
        "notes and free text are erased (pseudonymous records stay)",
    )
    retention_batch_rows: int = setting(
        1000, rules.integer(10, 100_000), "rows the retention job deletes or blanks per transaction"
    )
    retention_hour: int = setting(
        3,
        rules.integer(0, 23),
        "local hour at which the daily retention job runs (in the process with the `rounds` role)",
    )

    def __post_init__(self) -> None:
        """The one check of every value, however the settings were built."""
        for f in FIELDS:
            value = getattr(self, f.name)
            if _is_default(f, value):
                continue  # the default is allowed; an empty one means unset
            try:
                spec(f).rule.check(value)
            except (ValueError, TypeError) as e:
                raise SettingsError(f"{variable(f)} {e}") from None
        if bool(self.audit_anchor_key) != bool(self.audit_anchor_dir):
            raise SettingsError(
                "HOMECARE_AUDIT_ANCHOR_KEY and HOMECARE_AUDIT_ANCHOR_DIR are set together "
                "(anchoring needs both) or not at all"
            )

    def __repr__(self) -> str:
        shown = self.shown()  # a secret and a URL's password hidden
        parts = (
            f"{f.name}={shown[f.name]!r}"
            if isinstance(getattr(self, f.name), str)
            else f"{f.name}={getattr(self, f.name)!r}"
            for f in FIELDS
        )
        return f"Settings({', '.join(parts)})"

    def shown(self) -> dict[str, str | None]:
        """Each field's value as its variable's text, fit to print: a secret as ``***``, a URL
        without its password; ``None`` when unset."""
        out: dict[str, str | None] = {}
        for f in FIELDS:
            s, value = spec(f), getattr(self, f.name)
            if value is None:
                out[f.name] = None
            elif s.secret:
                out[f.name] = "***" if value else ""
            else:
                out[f.name] = s.rule.show(value)
        return out

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


def _is_default(f: dataclasses.Field[Any], value: object) -> bool:
    return value is f.default or (type(value) is type(f.default) and value == f.default)


FIELDS = dataclasses.fields(Settings)
_BY_VARIABLE = {variable(f): f for f in FIELDS}
_BY_NAME = {f.name: f for f in FIELDS}


def _is_tool_variable(key: str) -> bool:
    return key in TOOL_VARIABLES or key.startswith(TOOL_PREFIXES)


def _read(f: dataclasses.Field[Any], value: object) -> object:
    """``value`` for field ``f``: text is parsed as the variable's; the check comes after."""
    if not isinstance(value, str):
        return value
    try:
        return spec(f).rule.parse(value)
    except ValueError as e:
        raise SettingsError(f"{variable(f)} {e}") from None


def load(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, object] | None = None
) -> Settings:
    """Build settings from ``environ`` (default ``os.environ``), then apply ``overrides``.

    ``overrides`` maps field names (``http_port``) to values, as text (read like the variable)
    or as the field's type; they are checked like the environment. Nothing is changed on error.
    """
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for key, raw in sorted(env.items()):
        if not key.startswith(PREFIX) or _is_tool_variable(key):
            continue
        f = _BY_VARIABLE.get(key)
        if f is None:
            raise SettingsError(f"unknown setting {key}")
        values[f.name] = _read(f, raw)
    for name, value in (overrides or {}).items():
        f = _BY_NAME.get(name)
        if f is None:
            raise SettingsError(f"unknown setting {PREFIX}{name.upper()}")
        values[name] = _read(f, value)
    return Settings(**values)  # type: ignore[arg-type]


# --- the reference: docs/configuration.md -------------------------------------------------


def _cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _default_text(f: dataclasses.Field[Any]) -> str:
    s, value = spec(f), f.default
    if s.default_text:
        return s.default_text
    if value is None or value in ("", ()):
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return f"`{','.join(value)}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def _timing_notes() -> dict[str, str]:
    """The comment beside each field of ``kernel.timing.Timing``: its one description."""
    source = inspect.getsource(Timing)
    found = re.findall(r"^\s+(\w+): [\w |]+ = [^#\n]*#\s*(.+)$", source, re.MULTILINE)
    return {name: note.replace("``", "`") for name, note in found}


def markdown_reference() -> str:
    """The text of ``docs/configuration.md``, made from the fields (a test keeps them equal)."""
    notes = _timing_notes()
    emptied = ", ".join(f"`{variable(f)}`" for f in FIELDS if f.default in ("", ()))
    lines = [
        "# Configuration",
        "",
        "<!-- Generated by `homecare config --markdown` from `services/settings.py`; "
        "do not edit by hand. -->",
        "",
        "Every setting comes from an environment variable, is checked once at start, and a bad "
        "value or an unknown `HOMECARE_*` variable stops the command with exit status 2 and one "
        "line naming the variable (never the value of a secret). Command-line options that set "
        "the same thing (`homecare serve --port`, `--roles`) are checked the same way. "
        "`homecare config` prints the settings in effect, secrets hidden.",
        "",
        f"An empty value is the same as unset for {emptied}. Secrets are marked *secret*: they "
        "are never printed, logged or shown in errors.",
        "",
        "| variable | default | allowed values | what it does |",
        "|---|---|---|---|",
    ]
    for f in FIELDS:
        s = spec(f)
        what = s.help + (" (*secret*)" if s.secret else "")
        cells = (f"`{variable(f)}`", _default_text(f), s.rule.allowed, what)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += [
        "",
        "## Deadlines and intervals (`HOMECARE_TIMING`)",
        "",
        "`HOMECARE_TIMING` names single fields of the one timing policy, `kernel.timing.Timing`; "
        "the others keep these defaults (seconds). An unknown name or a number that is not "
        "positive stops the command with exit status 2. `link_wait_s` must stay shorter than "
        "`probe_timeout_s`.",
        "",
        "| name | default (s) | what it bounds |",
        "|---|---|---|",
        *(
            f"| `{name}` | {getattr(DEFAULT_TIMING, name):g} | {_cell(notes.get(name, ''))} |"
            for name in timing.FIELDS
        ),
        "",
        "## Variables of the tools",
        "",
        "These are not settings and the service ignores them: `HOMECARE_TOKEN` (the bearer "
        "token `homecare view` uses when `--token` is not given), `HOMECARE_TEST_*` (the servers "
        "of the test suite: `HOMECARE_TEST_DATABASE_URL`, `HOMECARE_TEST_MQTT_URL`), "
        "`HOMECARE_BENCH_*` and `HOMECARE_FUZZ_*` (servers of the benchmarks, the fuzzing "
        "budget). Any other unknown `HOMECARE_*` name is refused.",
        "",
    ]
    return "\n".join(lines)
