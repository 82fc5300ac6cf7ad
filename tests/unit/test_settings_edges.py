"""Settings of the HTTP edge (issue 13, findings 11 and 13): read timeouts, trusting a proxy's
forwarded host, and the metrics token; defaults are safe and bad values name the variable."""

from __future__ import annotations

import pytest

from services.settings import SettingsError, load


def test_safe_defaults() -> None:
    s = load({})
    assert (s.http_header_timeout_s, s.http_body_timeout_s) == (15.0, 30.0)
    assert s.trust_proxy is False
    assert s.metrics_token == ""


def test_values_are_parsed_and_the_token_stays_secret() -> None:
    s = load(
        {
            "HOMECARE_HTTP_HEADER_TIMEOUT_S": "2.5",
            "HOMECARE_HTTP_BODY_TIMEOUT_S": "10",
            "HOMECARE_TRUST_PROXY": "true",
            "HOMECARE_METRICS_TOKEN": "a-long-metrics-token",
        }
    )
    assert (s.http_header_timeout_s, s.http_body_timeout_s, s.trust_proxy) == (2.5, 10.0, True)
    assert s.metrics_token == "a-long-metrics-token"
    assert "a-long-metrics-token" not in repr(s)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"HOMECARE_HTTP_HEADER_TIMEOUT_S": "slow"}, "HOMECARE_HTTP_HEADER_TIMEOUT_S must be a"),
        ({"HOMECARE_HTTP_BODY_TIMEOUT_S": "0"}, "HOMECARE_HTTP_BODY_TIMEOUT_S must be between"),
        ({"HOMECARE_TRUST_PROXY": "perhaps"}, "HOMECARE_TRUST_PROXY must be true or false"),
        ({"HOMECARE_METRICS_TOKEN": "short"}, "HOMECARE_METRICS_TOKEN must be at least 16"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        load(env)
