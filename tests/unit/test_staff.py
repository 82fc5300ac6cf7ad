"""Pure staff rules: usernames, password policy, argon2id, lockout, token and cookie formats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from identity.staff import (
    FAST_HASHING,
    LockoutPolicy,
    PasswordHasher,
    PasswordHashing,
    PasswordPolicy,
    PasswordProblem,
    Throttle,
    after_failure,
    check_ttl,
    format_token,
    normalise_username,
    parse_bearer,
    parse_token,
    require_login_role,
    secret_hash,
    session_cookie_ok,
    staff_id_from,
    username_key,
)
from kernel.errors import InvalidInput
from kernel.roles import Role

T0 = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
POLICY = LockoutPolicy(max_failures=5, window_s=900, lock_s=900)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Nattpersonal", "nattpersonal"),
        ("  anna.s_2-x ", "anna.s_2-x"),
        ("ab", None),
        ("-abc", None),
        ("anna svensson", None),
        ("åsa", None),
        ("a" * 64, "a" * 64),
        ("a" * 65, None),
        (None, None),
        (42, None),
    ],
)
def test_normalise_username(raw: object, expected: str | None) -> None:
    assert normalise_username(raw) == expected


def test_username_key_is_case_insensitive_and_hides_the_name() -> None:
    assert username_key("Anna") == username_key(" anna ")
    assert "anna" not in username_key("anna")
    assert len(username_key("not a valid name at all!")) == 64


@pytest.mark.parametrize(
    "role", ["operator", "administrator", "technician", "patrol", "shift_lead"]
)
def test_login_roles(role: str) -> None:
    assert require_login_role(role) == Role(role)


@pytest.mark.parametrize("role", ["system", "root", "", None])
def test_no_login_as_system_or_unknown(role: object) -> None:
    with pytest.raises(InvalidInput) as info:
        require_login_role(role)
    assert info.value.field == "role"


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short", PasswordProblem.TOO_SHORT),
        ("x" * 257, PasswordProblem.TOO_LONG),
        (None, PasswordProblem.NOT_TEXT),
        ("abc\x00defghijklm", PasswordProblem.NOT_TEXT),
        ("my-nattpersonal-pw", PasswordProblem.SAME_AS_USERNAME),
        ("Password1234", PasswordProblem.TOO_COMMON),
        ("abababababababab", PasswordProblem.TOO_REPETITIVE),
        ("correct horse battery", None),
        ("Blåbär i natt 22:30", None),
    ],
)
def test_password_policy(password: object, problem: PasswordProblem | None) -> None:
    assert PasswordPolicy().problem(password, username="nattpersonal") == problem


def test_password_policy_raises_naming_the_field() -> None:
    with pytest.raises(InvalidInput) as info:
        PasswordPolicy().require("short", username="x")
    assert (info.value.field, info.value.code) == ("password", "password_too_short")


def test_hasher_verifies_argon2id() -> None:
    hasher = PasswordHasher(FAST_HASHING)
    h = hasher.hash("correct horse battery")
    assert h.startswith("$argon2id$")
    assert hasher.verify(h, "correct horse battery")
    assert not hasher.verify(h, "correct horse batterx")
    assert not hasher.verify("not a hash", "correct horse battery")
    assert not hasher.verify(None, "not a password of anyone; equalises timing")
    assert not hasher.needs_rehash(h)
    assert PasswordHasher(PasswordHashing(time_cost=2, memory_cost_kib=1024)).needs_rehash(h)


def test_hashing_parameters_checked() -> None:
    with pytest.raises(ValueError):
        PasswordHashing(time_cost=0)


def test_lockout_after_five_failures_within_the_window() -> None:
    state: Throttle | None = None
    for i in range(4):
        state = after_failure(state, T0 + timedelta(minutes=i), POLICY)
        assert not state.is_locked(T0 + timedelta(minutes=i))
    state = after_failure(state, T0 + timedelta(minutes=4), POLICY)
    assert state.failures == 5
    assert state.locked_until == T0 + timedelta(minutes=19)
    assert state.is_locked(T0 + timedelta(minutes=18, seconds=59))
    assert state.retry_after_s(T0 + timedelta(minutes=18, seconds=59)) == 1
    assert not state.is_locked(T0 + timedelta(minutes=19))
    assert state.retry_after_s(T0 + timedelta(minutes=19)) == 0


def test_failures_outside_the_window_start_over() -> None:
    state: Throttle | None = None
    for i in range(4):
        state = after_failure(state, T0 + timedelta(minutes=5 * i), POLICY)
    assert state is not None
    assert state.failures == 1  # the fourth came 15 min after the first
    assert state.locked_until is None


def test_a_failure_while_locked_does_not_extend_the_lock() -> None:
    state: Throttle | None = None
    for i in range(5):
        state = after_failure(state, T0 + timedelta(seconds=i), POLICY)
    assert state is not None
    until = state.locked_until
    state = after_failure(state, T0 + timedelta(minutes=10), POLICY)
    assert state.locked_until == until


def test_a_failure_after_the_lock_starts_a_new_window() -> None:
    state: Throttle | None = None
    for i in range(5):
        state = after_failure(state, T0 + timedelta(seconds=i), POLICY)
    state = after_failure(state, T0 + timedelta(minutes=16), POLICY)
    assert (state.failures, state.locked_until) == (1, None)


@given(st.lists(st.integers(min_value=0, max_value=3600), min_size=1, max_size=30))
def test_never_locked_without_enough_recent_failures(gaps_s: list[int]) -> None:
    state: Throttle | None = None
    now = T0
    times: list[datetime] = []
    for gap in gaps_s:
        now += timedelta(seconds=gap)
        times.append(now)
        state = after_failure(state, now, POLICY)
        if state.is_locked(now):
            recent = [
                t for t in times if now - t < timedelta(seconds=POLICY.window_s + POLICY.lock_s)
            ]
            assert len(recent) >= POLICY.max_failures


def test_staff_id_format() -> None:
    sid = staff_id_from(bytes(range(10)))
    assert sid.startswith("staff-")
    assert len(sid) == 22
    with pytest.raises(ValueError):
        staff_id_from(b"short")


def test_token_round_trip_and_bearer_parsing() -> None:
    token = format_token("abcdefghij234567", bytes(32))
    assert token.startswith("hct_abcdefghij234567_")
    assert parse_token(token) == ("abcdefghij234567", token)
    assert parse_bearer(f"Bearer {token}") == token
    assert parse_bearer(f"bearer   {token} ") == token
    assert secret_hash(token) != token
    assert len(secret_hash(token)) == 64


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer hct_",
        "Bearer hct_abc_short",
        "Bearer xyz_abcdefghij234567_" + "A" * 43,
        "Bearer hct_ABCDEFGHIJ_" + "A" * 43,
        "Bearer hct_abcdefghij234567_" + "A" * 300,
    ],
)
def test_bad_bearer_headers(header: str) -> None:
    assert parse_bearer(header) is None


def test_session_cookie_shape() -> None:
    assert session_cookie_ok("A" * 43)
    assert not session_cookie_ok("short")
    assert not session_cookie_ok("A" * 42 + ";")
    assert not session_cookie_ok("Å" * 43)


@pytest.mark.parametrize("ttl", [59, 367 * 24 * 3600, True, 1.5, "60"])
def test_bad_token_ttl(ttl: object) -> None:
    with pytest.raises(InvalidInput) as info:
        check_ttl(ttl)
    assert info.value.field == "ttl_s"
