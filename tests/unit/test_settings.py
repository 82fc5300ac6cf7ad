"""Settings: defaults, parsing, and one clear error for anything bad or unknown."""

from __future__ import annotations

import pytest

from services.settings import SettingsError, load
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
