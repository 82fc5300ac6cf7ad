"""coturn REST credentials: the documented scheme, checked against an independent computation."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from devices.envelope import IceServer
from services.signalling.turn import TurnConfig, credential, ice_servers

NOW = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)


def test_username_is_expiry_colon_user_and_password_is_hmac_sha1() -> None:
    config = TurnConfig(
        urls=("stun:t.example.org:3478", "turn:t.example.org:3478"), secret="s3cret", ttl_s=600
    )
    stun, turn = ice_servers(config, "staff-abc123", NOW)
    assert stun == IceServer(("stun:t.example.org:3478",))
    expiry = int(NOW.timestamp()) + 600
    assert turn.username == f"{expiry}:staff-abc123"
    expected = base64.b64encode(hmac.new(b"s3cret", turn.username.encode(), hashlib.sha1).digest())
    assert turn.credential == expected.decode()
    assert turn.urls == ("turn:t.example.org:3478",)


def test_known_vector() -> None:
    # echo -n "1700000000:alice" | openssl dgst -sha1 -hmac secret -binary | base64
    assert credential("secret", "1700000000:alice") == "d8soP47RbdIKLDUOpnJPVQyq5Ts="


def test_no_secret_means_no_turn_and_no_urls_means_nothing() -> None:
    assert ice_servers(TurnConfig(urls=("turn:t.example.org",)), "u", NOW) == ()
    assert ice_servers(TurnConfig(), "u", NOW) == ()


def test_secret_is_not_in_repr() -> None:
    assert "s3cret" not in repr(TurnConfig(secret="s3cret"))


@pytest.mark.parametrize("urls", [("http://t.example.org",), ("t.example.org:3478",)])
def test_bad_urls_are_refused(urls: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="stun:"):
        TurnConfig(urls=urls)
