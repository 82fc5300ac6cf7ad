"""Broker credentials (pure): Mosquitto's $7$ hash, password-file edits, ACL rendering."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices import credentials as c
from devices.topics import is_device_id

ROOT = Path(__file__).resolve().parents[2]

# Written by `mosquitto_passwd -b -c FILE alice s3cret` (Mosquitto 2.0.11).
MOSQUITTO_LINE = (
    "alice:$7$101$xG1jfUz5oL7Lfe7Z$4G4cqrepPtCK9MW37QQYAsbZNQ4wf1B99tUc8ulNCSiXmJsI78xCrr1v7HE"
    "EGVCHkxUht6anedwRwTbMm+RjMQ=="
)
SALT = bytes(range(12))


def test_hash_matches_what_mosquitto_passwd_wrote() -> None:
    user, _, text = MOSQUITTO_LINE.partition(":")
    parsed = c.PasswordHash.decode(text)
    assert (parsed.iterations, len(parsed.salt)) == (101, 12)
    assert parsed.verify("s3cret")
    assert not parsed.verify("s3cret ")
    again = c.hash_password("s3cret", parsed.salt, 101)
    assert c.password_line(user, again) == MOSQUITTO_LINE


def test_hash_is_pbkdf2_sha512_in_base64() -> None:
    h = c.hash_password("pw", SALT, 1000)
    _, kind, iterations, salt, digest = h.encode().split("$")
    assert (kind, iterations) == ("7", "1000")
    assert base64.b64decode(salt) == SALT
    assert base64.b64decode(digest) == hashlib.pbkdf2_hmac("sha512", b"pw", SALT, 1000, 64)
    assert c.PasswordHash.decode(h.encode()) == h


def test_secrets_are_not_in_repr() -> None:
    h = c.hash_password("pw", SALT)
    assert h.encode().split("$")[3] not in repr(h)
    assert h.encode().split("$")[4] not in repr(h)


@pytest.mark.parametrize(
    "text",
    [
        "$6$abc$def",
        "$7$x$AAAA$AAAA",
        "$7$10$!!$AAAA",
        "$7$10$AAAA$AAAA",
        "plain",
        "$7$0$AAAA$" + "A" * 88,
    ],
)
def test_malformed_hashes_are_refused(text: str) -> None:
    with pytest.raises(c.CredentialError):
        c.PasswordHash.decode(text)


def test_bad_salt_or_password_is_refused() -> None:
    with pytest.raises(c.CredentialError):
        c.hash_password("pw", b"short")
    with pytest.raises(c.CredentialError):
        c.hash_password("", SALT)


@pytest.mark.parametrize("name", ["cam-1", "a", "0" * 64, "homecare_backend", "ops_bridge-2"])
def test_accepted_usernames(name: str) -> None:
    assert c.check_username(name) == name


@pytest.mark.parametrize(
    "name",
    [
        *("", "Cam-1", "cam/1", "cam+", "cam#", "a" * 65, "_backend", "x:y", "cam 1"),
        *("svc_" + "a" * 70, "homecare-api-1-0badcafe", "homecare-"),  # the backend's client ids
    ],
)
def test_refused_usernames(name: str) -> None:
    with pytest.raises(c.CredentialError):
        c.check_username(name)


@given(st.from_regex(r"[a-z0-9_-]{1,64}", fullmatch=True))
def test_a_device_id_is_never_a_service_account(name: str) -> None:
    device = is_device_id(name)
    service = c.SERVICE_USER_RE.fullmatch(name) is not None
    assert not (device and service)
    assert is_device_id(c.BACKEND_USER) is False


def test_password_file_edits_keep_other_lines() -> None:
    text = "# broker users\nalice:$7$1$AAAA$BBBB\n\nbob:$7$1$CCCC$DDDD\n"
    h = c.hash_password("new", SALT, 5)
    replaced = c.with_user(text, "alice", h)
    assert replaced.splitlines() == [
        "# broker users",
        f"alice:{h.encode()}",
        "",
        "bob:$7$1$CCCC$DDDD",
    ]
    added = c.with_user(text, "cam-9", h)
    assert added.endswith(f"cam-9:{h.encode()}\n")
    assert c.parse_password_file(added).keys() == {"alice", "bob", "cam-9"}
    assert c.parse_password_file(c.without_user(added, "alice")).keys() == {"bob", "cam-9"}
    assert c.without_user("alice:$7$1$AAAA$BBBB\n", "alice") == ""
    assert c.with_user("", "cam-1", h) == f"cam-1:{h.encode()}\n"


@pytest.mark.parametrize("text", ["alice\n", "alice:\n", ":hash\n", "a:$7$x\na:$7$y\n"])
def test_malformed_password_files_are_refused(text: str) -> None:
    with pytest.raises(c.CredentialError):
        c.parse_password_file(text)


def test_render_fills_placeholders_and_keeps_broker_syntax() -> None:
    tpl = "pattern readwrite ${prefix}/dev/%u/#\ntopic $SYS/x\nemqx $${username}\n"
    out = c.render(tpl, {"prefix": "hc/v1"})
    assert out == "pattern readwrite hc/v1/dev/%u/#\ntopic $SYS/x\nemqx ${username}\n"
    with pytest.raises(c.CredentialError, match="prefix"):
        c.render(tpl, {})
    with pytest.raises(c.CredentialError):
        c.render(tpl, {"prefix": "hc/v1\nuser evil"})


@pytest.mark.parametrize("prefix", ["", "/hc", "hc/", "hc/#", "hc/+/x", "hc v1"])
def test_acl_values_refuse_bad_prefixes(prefix: str) -> None:
    with pytest.raises(c.CredentialError):
        c.acl_values(prefix)


def test_rendered_acl_grants_devices_their_subtree_only() -> None:
    template = (ROOT / "deploy" / "mosquitto" / "acl.template").read_text()
    acl = c.render(template, c.acl_values("hc/v1"))
    rules = [line.split() for line in acl.splitlines() if line and not line.startswith("#")]
    first_user = next(i for i, r in enumerate(rules) if r[0] == "user")
    # Lines before the first `user` line that say `topic` would only apply to anonymous clients.
    assert all(r[0] == "pattern" for r in rules[:first_user])
    assert ["pattern", "readwrite", "hc/v1/dev/%u/#"] in rules
    assert ["pattern", "read", "hc/v1/server/status"] in rules
    assert rules[first_user:] == [["user", "homecare_backend"], ["topic", "readwrite", "hc/v1/#"]]
    assert "${" not in acl


def test_emqx_rows() -> None:
    row = c.emqx_row("cam-1", "pw", "00ff", iterations=10)
    user, digest, salt, superuser = row.split(",")
    assert (user, salt, superuser) == ("cam-1", "00ff", "false")
    assert digest == hashlib.pbkdf2_hmac("sha512", b"pw", b"00ff", 10, 64).hex()
    text = c.with_emqx_row("", "cam-1", row)
    assert text.splitlines() == [c.EMQX_CSV_HEADER, row]
    row2 = c.emqx_row("cam-1", "pw2", "aa")
    assert c.with_emqx_row(text, "cam-1", row2).splitlines() == [c.EMQX_CSV_HEADER, row2]
    with pytest.raises(c.CredentialError):
        c.emqx_row("cam-1", "pw", "not hex")
    with pytest.raises(c.CredentialError):
        c.with_emqx_row("user,pass\n", "cam-1", row)
