"""Settings: defaults, parsing, and one clear error for anything bad or unknown."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from kernel import timing
from services.settings import Settings, SettingsError, load, markdown_reference
from tools.cli import main


def test_defaults() -> None:
    s = load({})
    assert s.http_port == 8080
    assert s.database_url is None
    assert s.roles == ("api", "signalling", "rounds", "probes")


def test_values_are_parsed() -> None:
    s = load(
        {
            "HOMECARE_HTTP_PORT": "9000",
            "HOMECARE_ROLES": "api, rounds",
            "HOMECARE_DATABASE_URL": "postgresql://u@h:5432/db",
            "HOMECARE_MQTT_URL": "mqtt://127.0.0.1:1883",
            "HOMECARE_COOKIE_SECURE": "yes",
        }
    )
    assert (s.http_port, s.roles, s.cookie_secure) == (9000, ("api", "rounds"), True)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"HOMECARE_HTTP_PORT": "eighty"}, "HOMECARE_HTTP_PORT must be a whole number"),
        ({"HOMECARE_HTTP_PORT": "70000"}, "between 0 and 65535"),
        ({"HOMECARE_DATABASE_URL": "mysql://x/y"}, "HOMECARE_DATABASE_URL"),
        ({"HOMECARE_MQTT_URL": "http://broker"}, "HOMECARE_MQTT_URL"),
        ({"HOMECARE_DATABASE_URL": "postgresql://u@/db"}, "names no host.*host=/socket/dir"),
        ({"HOMECARE_MQTT_URL": "mqtt:///x"}, "HOMECARE_MQTT_URL names no host"),
        ({"HOMECARE_MQTT_KEEPALIVE_S": "0"}, "HOMECARE_MQTT_KEEPALIVE_S"),
        ({"HOMECARE_ROLES": "api,coffee"}, "HOMECARE_ROLES"),
        ({"HOMECARE_TIME_ZONE": "Mars/Olympus"}, "time zone"),
        ({"HOMECARE_COOKIE_SECURE": "maybe"}, "true or false"),
        ({"HOMECARE_MQTT_TOPIC_PREFIX": "hc/#"}, "topic prefix"),
        ({"HOMECARE_COLOUR": "blue"}, "unknown setting HOMECARE_COLOUR"),
        ({"HOMECARE_PLAN_HOUR": "3"}, "HOMECARE_PLAN_HOUR must be between 12 and 23"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        load(env)


def test_variables_of_the_tools_are_not_settings() -> None:
    env = {
        "HOMECARE_TOKEN": "t",
        "HOMECARE_TEST_DATABASE_URL": "postgresql://u@h/db",
        "HOMECARE_BENCH_MQTT_URL": "mqtt://h",
        "HOMECARE_FUZZ_SECONDS": "5",
        "HOMECARE_HTTP_PORT": "9001",
    }
    assert load(env).http_port == 9001
    with pytest.raises(SettingsError, match="unknown setting HOMECARE_TOKENS"):
        load({"HOMECARE_TOKENS": "t"})


def test_database_on_a_unix_socket() -> None:
    url = "postgresql://postgres@/db?host=/run/postgresql"
    assert load({"HOMECARE_DATABASE_URL": url}).database_url == url


def test_database_pair_as_a_multi_host_url() -> None:
    """A primary and its standby: asyncpg tries the hosts in turn and keeps the writable one."""
    url = "postgresql://svc:pw@db-a:5432,db-b:5433/homecare?target_session_attrs=read-write"
    assert load({"HOMECARE_DATABASE_URL": url}).database_url == url
    assert "pw" not in repr(load({"HOMECARE_DATABASE_URL": url}))


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://u@h1:5432,h2:99999/db", "has an invalid port"),
        ("postgresql://u@h1:5432,:5433/db", "names an empty host in its host list"),
        ("postgresql://u@h1,,h2/db", "names an empty host in its host list"),
        (
            "postgresql://u@h1,h2/db?target_session_attrs=master",
            "has an unknown target_session_attrs",
        ),
    ],
)
def test_a_bad_multi_host_url_is_refused(url: str, says: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(f"HOMECARE_DATABASE_URL {says}")):
        load({"HOMECARE_DATABASE_URL": url})


def test_secrets_are_not_in_repr() -> None:
    s = load({"HOMECARE_TURN_SECRET": "hunter2", "HOMECARE_SESSION_SECRET": "s3"})
    assert "hunter2" not in repr(s)
    assert "s3" not in repr(s)


def test_cli_exits_2_with_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOMECARE_HTTP_PORT", "nope")
    assert main(["migrate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "HOMECARE_HTTP_PORT" in err[0]


# --- one definition per setting: overrides, direct construction and the docs go through it ----

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"

BAD = [
    # (field, text of the variable, the same as a typed override, what the message says)
    ("http_port", "eighty", "eighty", "HOMECARE_HTTP_PORT must be a whole number"),
    ("http_port", "70000", 70000, "HOMECARE_HTTP_PORT must be between 0 and 65535, got 70000"),
    ("plan_hour", "11", 11, "HOMECARE_PLAN_HOUR must be between 12 and 23, got 11"),
    ("http_body_timeout_s", "0", 0.0, "HOMECARE_HTTP_BODY_TIMEOUT_S must be between 0.1 and"),
    ("log_level", "loud", "loud", "HOMECARE_LOG_LEVEL must be one of debug, info, warning, error"),
    ("log_format", "xml", "xml", "HOMECARE_LOG_FORMAT must be one of auto, json, console"),
    ("roles", "api,coffee", ("api", "coffee"), "HOMECARE_ROLES takes a comma list of api,"),
    ("cookie_secure", "maybe", "maybe", "HOMECARE_COOKIE_SECURE must be true or false"),
    ("database_url", "mysql://h/db", "mysql://h/db", "HOMECARE_DATABASE_URL must be a URL like"),
    ("mqtt_url", "mqtt:///x", "mqtt:///x", "HOMECARE_MQTT_URL names no host"),
    ("oidc_issuer", "ftp://idp", "ftp://idp", "HOMECARE_OIDC_ISSUER must be a URL like https://"),
    ("turn_urls", "http://turn", ("http://turn",), "HOMECARE_TURN_URLS takes a comma list of"),
    ("time_zone", "Mars/Olympus", "Mars/Olympus", "HOMECARE_TIME_ZONE must be a known time zone"),
    ("timing", "ring_timeout_s=-1", "ring_timeout_s=-1", "HOMECARE_TIMING"),
]


@pytest.mark.parametrize(("name", "raw", "typed", "says"), BAD)
def test_a_bad_override_is_refused_like_the_variable(
    name: str, raw: str, typed: object, says: str
) -> None:
    variable = "HOMECARE_" + name.upper()
    env = {"HOMECARE_HTTP_PORT": "9000"}
    before = dict(env)
    messages = []
    for environ, overrides in (
        ({**env, variable: raw}, {}),
        (env, {name: raw}),
        (env, {name: typed}),
    ):
        with pytest.raises(SettingsError, match=re.escape(says)) as caught:
            load(environ, overrides)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]  # the override's text is read like the variable's
    assert env == before  # nothing changed


@pytest.mark.parametrize(("name", "raw", "typed", "says"), BAD)
def test_settings_built_in_code_are_checked_too(
    name: str, raw: str, typed: object, says: str
) -> None:
    base = load({"HOMECARE_HTTP_PORT": "9000"})
    variable = "HOMECARE_" + name.upper()
    change: dict[str, Any] = {name: typed}
    with pytest.raises(SettingsError, match=f"^{variable} "):
        dataclasses.replace(base, **change)
    with pytest.raises(SettingsError, match=f"^{variable} "):
        Settings(**change)
    assert base == load({"HOMECARE_HTTP_PORT": "9000"})  # the value it was to replace is untouched


def test_overrides_take_values_and_text_alike() -> None:
    s = load({}, {"http_port": 9000, "roles": "api, rounds", "cookie_secure": True})
    assert (s.http_port, s.roles, s.cookie_secure) == (9000, ("api", "rounds"), True)
    assert load({"HOMECARE_HTTP_PORT": "1"}, {"http_port": "2"}).http_port == 2  # override wins
    with pytest.raises(SettingsError, match="unknown setting HOMECARE_COLOUR"):
        load({}, {"colour": "blue"})
    with pytest.raises(SettingsError, match="HOMECARE_COOKIE_SECURE must be true or false"):
        load({}, {"cookie_secure": 1})  # a bool, not a number that looks like one
    with pytest.raises(SettingsError, match="HOMECARE_HTTP_PORT must be a whole number"):
        load({}, {"http_port": 80.0})


def test_an_empty_value_is_unset_only_where_the_default_is_empty() -> None:
    assert load({"HOMECARE_INSTANCE_ID": "", "HOMECARE_TURN_URLS": ""}) == load({})
    with pytest.raises(SettingsError, match="HOMECARE_DATABASE_URL"):
        load({"HOMECARE_DATABASE_URL": ""})
    with pytest.raises(SettingsError, match="HOMECARE_HTTP_PORT"):
        load({"HOMECARE_HTTP_PORT": ""})


SECRETS = {
    "HOMECARE_TURN_SECRET": "turn-secret-value",
    "HOMECARE_SESSION_SECRET": "session-secret-value",
    "HOMECARE_OIDC_CLIENT_SECRET": "oidc-secret-value",
    "HOMECARE_METRICS_TOKEN": "metrics-token-value",
    "HOMECARE_DATABASE_URL": "postgresql://u:db-password-value@h:5432/db",
    "HOMECARE_MQTT_URL": "mqtts://u:mqtt-password-value@h:8883",
}


def test_secrets_are_never_printed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s = load(SECRETS)
    for f in dataclasses.fields(Settings):
        if f.metadata["setting"].secret:
            assert f"HOMECARE_{f.name.upper()}" in SECRETS, "a secret this test does not try"
    for env_value in SECRETS.values():
        assert env_value.split("@")[0].split(":")[-1] not in repr(s)
    assert "postgresql://u:***@h:5432/db" in repr(s)
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    for value in SECRETS.values():
        assert value.split("@")[0].split(":")[-1] not in out
    assert "HOMECARE_SESSION_SECRET=***" in out


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HOMECARE_METRICS_TOKEN", "short-secret"),
        ("HOMECARE_OIDC_CLIENT_SECRET", "x" * 600),
        ("HOMECARE_DATABASE_URL", "postgresql://u:pass-word@/db"),
        ("HOMECARE_MQTT_URL", "mqtt://u:pass-word@h:notaport"),
    ],
)
def test_an_error_never_quotes_a_secret(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable) as caught:
        load({variable: value})
    assert "pass-word" not in str(caught.value)
    assert value not in str(caught.value)


def test_what_config_prints_reads_back_as_the_same_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {
        "HOMECARE_HTTP_PORT": "9001",
        "HOMECARE_ROLES": "rounds,probes",
        "HOMECARE_TIMING": "ring_timeout_s=5",
        "HOMECARE_TRUST_PROXY": "yes",
        "HOMECARE_TURN_URLS": "turn:t.example:3478?transport=udp,turns:t.example:5349",
        "HOMECARE_HTTP_HEADER_TIMEOUT_S": "2.5",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(dataclasses.fields(Settings))
    printed = dict(line.split("=", 1) for line in lines if not line.startswith("#"))
    assert load(printed) == load(env)


def test_every_setting_is_described_once_in_english() -> None:
    for f in dataclasses.fields(Settings):
        meta = f.metadata["setting"]
        assert meta.help, f.name
        assert "\n" not in meta.help, f.name
        assert meta.help.isascii(), f.name
        assert meta.rule.allowed, f.name
        if f.default not in (None, "", ()):
            meta.rule.check(f.default)  # a default is an allowed value
    rows = markdown_reference().split("## Deadlines")[1].split("## Variables")[0]
    for name in timing.FIELDS:  # HOMECARE_TIMING's names: the comment beside each field
        (row,) = [line for line in rows.splitlines() if line.startswith(f"| `{name}` |")]
        assert not row.endswith("|  |"), f"kernel/timing.py: {name} needs its comment"


def test_the_reference_in_docs_is_what_the_fields_say() -> None:
    """docs/configuration.md is generated; after changing a setting run
    ``homecare config --markdown > docs/configuration.md``."""
    assert DOC.read_text() == markdown_reference(), "run: homecare config --markdown > " + str(DOC)
    for f in dataclasses.fields(Settings):
        assert f"| `HOMECARE_{f.name.upper()}` |" in DOC.read_text()


def test_the_command_prints_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--markdown"]) == 0
    assert capsys.readouterr().out == markdown_reference()


def test_command_line_options_are_checked_like_the_variables(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--port", "70000"]) == 2
    assert "HOMECARE_HTTP_PORT must be between 0 and 65535" in capsys.readouterr().err
    assert main(["serve", "--roles", "api,tea"]) == 2
    assert "HOMECARE_ROLES takes a comma list" in capsys.readouterr().err
