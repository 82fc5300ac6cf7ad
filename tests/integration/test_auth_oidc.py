"""OpenID Connect login (authorization code + PKCE) against a local test provider on loopback:
a good login opens a session for the mapped staff account, also after the provider rotates its
key; a forged (``none``, HMAC with the public key, another key), expired, not yet valid, replayed,
incomplete or misaddressed ID token, a wrong state or an unknown person is refused, audited and
changes no session; tokens naming unknown keys refetch the provider's JWKS at most once a minute."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import jwt
import pytest
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from structlog.testing import capture_logs

from identity import login as auth
from identity import oidc
from identity import store as staff_store
from identity.staff import FAST_HASHING, PasswordHasher
from kernel.audit import store as audit_store
from kernel.roles import Role
from services.app import oidc_config
from services.settings import Settings
from services.web import http
from tests.oidc_provider import TAMPERS, OidcProvider

pytestmark = pytest.mark.integration


@pytest.fixture
async def provider() -> AsyncIterator[OidcProvider]:
    async with OidcProvider() as p:
        yield p


@pytest.fixture
async def accounts(pool: asyncpg.Pool) -> dict[str, str]:
    hasher = PasswordHasher(FAST_HASHING)
    out = {}
    async with pool.acquire() as conn:
        for username, role, active in [
            ("natt1", Role.OPERATOR, True),
            ("admin1", Role.ADMINISTRATOR, True),
            ("gone1", Role.OPERATOR, False),
        ]:
            acc = await staff_store.create_staff(
                conn, username=username, role=role, password=None, hasher=hasher
            )
            if not active:
                await staff_store.set_active(
                    conn, staff_id=acc.staff_id, is_active=False, actor="system"
                )
            out[username] = acc.staff_id
    return out


@pytest.fixture
async def server(
    pool: asyncpg.Pool, provider: OidcProvider, accounts: dict[str, str]
) -> AsyncIterator[TestServer]:
    settings = Settings(
        oidc_issuer=provider.issuer,
        oidc_client_id=provider.client_id,
        oidc_client_secret=provider.client_secret,
        oidc_username_claim="hsa_user",
        session_secret="a test secret of enough length",
    )
    app = http.make_app(max_body_bytes=4096)
    auth.install(app, auth.make_authenticator(pool, hasher=PasswordHasher(FAST_HASHING)))
    found = oidc.install(app, oidc_config(settings), session_secret=settings.session_secret)
    assert found is not None
    app.on_cleanup.append(lambda _app: found.close())
    http.add_routes(app, [*auth.routes(), *oidc.routes()])
    test_server = TestServer(app)
    async with test_server:
        yield test_server


async def walk(server: TestServer) -> tuple[aiohttp.ClientResponse, aiohttp.ClientSession]:
    """The browser's part: start, follow the provider's redirect, land on the callback."""
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    start = await session.get(server.make_url("/api/login/oidc"), allow_redirects=False)
    assert start.status == 302, await start.text()
    authorize = await session.get(start.headers["Location"], allow_redirects=False)
    assert authorize.status == 302, await authorize.text()
    callback = await session.get(authorize.headers["Location"], allow_redirects=False)
    return callback, session


async def logins(pool: asyncpg.Pool) -> list[tuple[str, dict[str, Any]]]:
    async with pool.acquire() as conn:
        rows = await audit_store.entries(conn, limit=1000)
        assert (await audit_store.verify(conn)).ok
    return [(e.action, dict(e.data)) for e in rows if e.action.startswith("login.")]


async def sessions(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM staff_sessions"))


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256"])
async def test_login_maps_the_claim_to_a_staff_account(
    server: TestServer,
    provider: OidcProvider,
    pool: asyncpg.Pool,
    accounts: dict[str, str],
    alg: str,
) -> None:
    provider.alg = alg
    provider.claims = {"hsa_user": "Admin1", "name": "Ada Admin"}
    callback, session = await walk(server)
    async with session:
        assert callback.status == 302
        assert callback.headers["Location"] == "/"
        cookies = {c.key: c for c in session.cookie_jar}
        assert "hc_session" in cookies
        assert "hc_csrf" in cookies
        assert "hc_oidc" not in cookies  # the flow cookie is spent
        me = await session.get(server.make_url("/api/me"))
        assert me.status == 200
        body = await me.json()
        assert (body["staff_id"], body["role"], body["via"]) == (
            accounts["admin1"],
            "administrator",
            "session",
        )
        # The same session needs the CSRF header for a state change, like a password login.
        csrf = {"X-CSRF-Token": cookies["hc_csrf"].value}
        assert (await session.post(server.make_url("/api/logout"))).status == 403
        assert (await session.post(server.make_url("/api/logout"), headers=csrf)).status == 200
    [(action, data)] = await logins(pool)
    assert action == "login.succeeded"
    assert data["via"] == "oidc"
    assert "Ada" not in str(data)


REFUSED_BY = {
    "signature": "InvalidSignatureError",
    "issuer": "InvalidIssuerError",
    "audience": "InvalidAudienceError",
    "two_audiences": "authorized party",
    "nonce": "nonce",
    "expired": "ExpiredSignatureError",
    "not_yet_valid": "ImmatureSignatureError",
    "no_sub": "MissingRequiredClaimError",
    "no_exp": "MissingRequiredClaimError",
    "no_iat": "MissingRequiredClaimError",
    "alg_none": "algorithm 'none' not accepted",
    "hmac": "algorithm 'HS256' not accepted",  # although the provider publishes it
    "unknown_kid": "unknown key",
}
"""Which check refuses each spoilt token (the error message names it)."""


@pytest.mark.parametrize("tamper", TAMPERS)
async def test_bad_id_tokens_are_refused(
    server: TestServer, provider: OidcProvider, pool: asyncpg.Pool, tamper: str
) -> None:
    provider.claims = {"hsa_user": "natt1"}
    provider.tamper = tamper
    callback, session = await walk(server)
    async with session:
        assert callback.status == 401
        error = (await callback.json())["error"]
        assert error["code"] == "oidc_token_invalid"
        assert error["message"] == f"ID token refused: {REFUSED_BY[tamper]}"
        assert "hc_session" not in {c.key for c in session.cookie_jar}
    assert provider.tokens_issued == 1
    assert provider.jwks_fetches == (2 if tamper == "unknown_kid" else 1)
    assert await sessions(pool) == 0
    assert await logins(pool) == []


async def test_a_rotated_key_is_fetched_and_accepted(
    server: TestServer, provider: OidcProvider, pool: asyncpg.Pool
) -> None:
    provider.claims = {"hsa_user": "natt1"}
    for _ in range(2):
        callback, session = await walk(server)
        await session.close()
        assert callback.status == 302, await callback.text()
        assert provider.jwks_fetches == 1  # cached while the key is known
    provider.rotate()
    callback, session = await walk(server)
    await session.close()
    assert callback.status == 302, await callback.text()
    assert provider.jwks_fetches == 2
    assert await sessions(pool) == 3


async def test_a_flood_of_unknown_key_ids_fetches_the_keys_once(
    server: TestServer, provider: OidcProvider, pool: asyncpg.Pool
) -> None:
    provider.claims = {"hsa_user": "natt1"}
    provider.tamper = "unknown_kid"
    for _ in range(20):
        callback, session = await walk(server)
        await session.close()
        assert callback.status == 401
        assert (await callback.json())["error"]["code"] == "oidc_token_invalid"
    assert (provider.tokens_issued, provider.jwks_fetches) == (20, 2)
    provider.tamper = None  # the known key still works
    callback, session = await walk(server)
    await session.close()
    assert callback.status == 302
    assert provider.jwks_fetches == 2
    assert await sessions(pool) == 1


async def test_key_refetches_are_spaced_by_the_interval(provider: OidcProvider) -> None:
    """Concurrent tokens with made-up key ids share one refetch; the next comes only after
    ``KEYS_REFETCH_INTERVAL_S``, so a rotation right after a flood waits that long."""
    now_s = [1000.0]
    config = oidc.OidcConfig(issuer=provider.issuer, client_id=provider.client_id)
    relying = oidc.Oidc(config, signing_key=b"k" * 32, clock=lambda: now_s[0])
    try:
        assert (await relying.verify(provider.id_token("n1"), nonce="n1"))["nonce"] == "n1"
        provider.tamper = "unknown_kid"
        flood = [relying.verify(provider.id_token("n1"), nonce="n1") for _ in range(30)]
        with capture_logs() as logs:
            refused = await asyncio.gather(*flood, return_exceptions=True)
        assert all(isinstance(e, oidc.OidcError) for e in refused)
        assert {str(e) for e in refused} == {"ID token refused: unknown key"}
        assert provider.jwks_fetches == 2
        assert [e["event"] for e in logs].count("oidc_keys_refetch_limited") == 1
        provider.tamper = None
        provider.rotate()
        with pytest.raises(oidc.OidcError, match="unknown key"):
            await relying.verify(provider.id_token("n2"), nonce="n2")
        assert provider.jwks_fetches == 2
        now_s[0] += oidc.KEYS_REFETCH_INTERVAL_S
        assert (await relying.verify(provider.id_token("n3"), nonce="n3"))["nonce"] == "n3"
        assert provider.jwks_fetches == 3
    finally:
        await relying.close()


@pytest.mark.parametrize("who", ["nobody9", "gone1", None])
async def test_unknown_or_inactive_people_are_refused_and_audited(
    server: TestServer, provider: OidcProvider, pool: asyncpg.Pool, who: str | None
) -> None:
    provider.claims = {"hsa_user": who} if who else {}
    callback, session = await walk(server)
    await session.close()
    assert callback.status == 401
    assert (await callback.json())["error"]["code"] == "bad_credentials"
    assert await sessions(pool) == 0
    [(action, data)] = await logins(pool)
    assert action == "login.failed"
    assert data["via"] == "oidc"
    assert data["reason"] == ("inactive" if who == "gone1" else "unknown_user")


async def test_state_must_match_and_the_code_works_once(
    server: TestServer, provider: OidcProvider, pool: asyncpg.Pool
) -> None:
    provider.claims = {"hsa_user": "natt1"}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        start = await s.get(server.make_url("/api/login/oidc"), allow_redirects=False)
        authorize = await s.get(start.headers["Location"], allow_redirects=False)
        location = authorize.headers["Location"]
        forged = location.rsplit("state=", 1)[0] + "state=forged"
        resp = await s.get(forged, allow_redirects=False)
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "oidc_state"
        # The code was never redeemed; now it is, once.
        assert (await s.get(location, allow_redirects=False)).status == 302
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
        # Another browser replaying the callback has no flow cookie.
        replay = await other.get(location, allow_redirects=False)
        assert replay.status == 400
    assert await sessions(pool) == 1


async def test_callback_without_a_flow_and_provider_errors(
    server: TestServer, pool: asyncpg.Pool
) -> None:
    async with aiohttp.ClientSession() as s:
        for query in ("", "?code=x&state=y", "?error=access_denied&state=y"):
            resp = await s.get(server.make_url(f"{oidc.CALLBACK_PATH}{query}"))
            assert resp.status == 400
            assert (await resp.json())["error"]["code"] == "oidc_state"
    assert await sessions(pool) == 0


async def test_not_configured_is_a_clear_404(pool: asyncpg.Pool) -> None:
    app = http.make_app(max_body_bytes=4096)
    auth.install(app, auth.make_authenticator(pool))
    assert oidc.install(app, oidc_config(Settings()), session_secret="") is None
    http.add_routes(app, oidc.routes())
    async with TestServer(app) as s, aiohttp.ClientSession() as c:
        resp = await c.get(s.make_url("/api/login/oidc"), allow_redirects=False)
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "oidc_not_configured"
        methods = await (await c.get(s.make_url("/api/login/methods"))).json()
        assert (methods["password"], methods["oidc"]) == (True, False)


async def test_login_methods_name_oidc_when_configured(server: TestServer) -> None:
    async with aiohttp.ClientSession() as c:
        methods = await (await c.get(server.make_url("/api/login/methods"))).json()
    assert methods == {"password": True, "oidc": True, "oidc_start": "/api/login/oidc"}


def test_verify_refuses_structural_garbage() -> None:
    for token in ["", "a.b", "a.b.c", "e30.e30.", "x" * 30_000, "e30.e30.e30.e30"]:
        with pytest.raises(oidc.OidcError):
            oidc.verify_id_token(
                token,
                keys=[],
                algorithms=oidc.ALGORITHMS,
                issuer="http://x",
                client_id="c",
                nonce="n",
            )


def test_only_asymmetric_algorithms_the_provider_publishes_are_accepted() -> None:
    published = ["RS256", "ES256", "HS256", "HS512", "none", "PS512", 7]
    assert oidc.accepted_algorithms(published) == {"RS256", "ES256", "PS512"}
    assert oidc.accepted_algorithms(None) == {"RS256"}  # Discovery's default
    assert oidc.accepted_algorithms(["HS256", "none"]) == set()


async def test_a_provider_offering_only_symmetric_or_no_signatures_is_refused(
    provider: OidcProvider,
) -> None:
    provider.published_algorithms = ("HS256", "none")
    config = oidc.OidcConfig(issuer=provider.issuer, client_id=provider.client_id)
    relying = oidc.Oidc(config, signing_key=b"k" * 32)
    try:
        with pytest.raises(oidc.OidcError) as refused:
            await relying.metadata()
    finally:
        await relying.close()
    assert (refused.value.code, refused.value.http_status) == ("oidc_provider", 502)


def _rsa_jwk(key: rsa.RSAPrivateKey, **extra: str) -> dict[str, Any]:
    return RSAAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": "k1", **extra}


@pytest.mark.parametrize("case", ["es256_on_rsa", "rs256_on_ec", "ps256_on_rs256", "rsa_1024"])
def test_the_tokens_algorithm_must_fit_its_key(case: str) -> None:
    """The header's algorithm binds the key only when it fits: key type, curve, declared
    ``alg`` and size (RSA keys under 2048 bits are refused)."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_jwk = ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True) | {"kid": "k1"}
    signer: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = rsa_key
    match case:
        case "es256_on_rsa":
            signer, alg, jwk = ec_key, "ES256", _rsa_jwk(rsa_key)
        case "rs256_on_ec":
            alg, jwk = "RS256", ec_jwk
        case "ps256_on_rs256":
            alg, jwk = "PS256", _rsa_jwk(rsa_key, alg="RS256")
        case _:
            signer = rsa.generate_private_key(public_exponent=65537, key_size=1024)
            alg, jwk = "RS256", _rsa_jwk(signer)
    claims = {"iss": "http://x", "aud": "c", "sub": "s", "iat": 0, "exp": 2**40, "nonce": "n"}
    with warnings.catch_warnings():  # PyJWT warns when it signs with a short key
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        token = jwt.encode(claims, signer, algorithm=alg, headers={"kid": "k1"})
    with pytest.raises(oidc.OidcError) as refused:
        oidc.verify_id_token(
            token,
            keys=[jwk],
            algorithms=oidc.ALGORITHMS,
            issuer="http://x",
            client_id="c",
            nonce="n",
        )
    assert refused.value.code == "oidc_token_invalid"
    good = jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "k1"})
    claims_ok = oidc.verify_id_token(
        good,
        keys=[_rsa_jwk(rsa_key)],
        algorithms=oidc.ALGORITHMS,
        issuer="http://x",
        client_id="c",
        nonce="n",
    )
    assert claims_ok["sub"] == "s"
