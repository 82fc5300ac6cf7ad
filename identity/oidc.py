"""OpenID Connect staff login: authorization code flow with PKCE (S256), configured by settings.

For the regional identity provider (SITHS eID through OIDC in production). Enabled when
``HOMECARE_OIDC_ISSUER`` and ``HOMECARE_OIDC_CLIENT_ID`` are set.

1. ``GET /api/login/oidc`` redirects to the provider's authorization endpoint with a random
   ``state``, ``nonce`` and PKCE ``code_challenge``. Those three (and the verifier) travel in the
   short-lived ``hc_oidc`` cookie, HMAC-signed with ``HOMECARE_SESSION_SECRET`` (a per-process
   random key when unset: then the login must come back to the same process).
2. ``GET /api/login/oidc/callback?code&state`` checks ``state``, redeems the code at the token
   endpoint with the verifier, and has PyJWT verify the ID token: the signature with the key the
   header names by ``kid`` in the provider's JWKS, by an algorithm the provider publishes and we
   accept (asymmetric only: ``none`` and HMAC are refused whatever it publishes); ``iss``,
   ``aud``, ``sub``, ``exp`` and ``iat`` are required (60 s leeway). ``azp`` (with several
   audiences) and ``nonce`` are checked here. A ``kid`` missing from the cached JWKS fetches it
   again (the provider rotated its keys), at most once a minute however many such tokens come.
3. The claim ``HOMECARE_OIDC_USERNAME_CLAIM`` (default ``preferred_username``) names the staff
   account; its role is the account's. An unknown or inactive account is refused and audited like
   a failed password login. Success opens the same session as a password login (``via=oidc`` in
   the audit entry) and redirects to the console.

Every wait on the provider has a timeout. Claim values are never logged.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
import structlog
import yarl
from aiohttp import web

from identity import login as auth_service
from identity.staff import normalise_username
from kernel.ratelimit import RateLimiter
from kernel.roles import PUBLIC, Route

log = structlog.get_logger(__name__)

FLOW_COOKIE = "hc_oidc"
FLOW_TTL_S = 600
LEEWAY_S = 60
HTTP_TIMEOUT_S = 10.0
CALLBACK_PATH = "/api/login/oidc/callback"
MAX_TOKEN_CHARS = 20_000
KEYS_REFETCH_INTERVAL_S = 60.0
"""A token naming an unknown ``kid`` fetches the JWKS again at most this often."""
ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)
"""The ID-token algorithms accepted when the provider publishes them: never ``none``, never HMAC
(an HMAC check keyed with the provider's public key is the classic forgery)."""
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]


class OidcError(Exception):
    """A refused OIDC login; ``code`` names why (never shows a token or claim)."""

    http_status = 401
    field = None

    def __init__(self, code: str, message: str, *, status: int = 401) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = status


@dataclass(frozen=True, slots=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str = ""
    redirect_url: str = ""
    username_claim: str = "preferred_username"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def b64url_decode(text: str) -> bytes:
    if not isinstance(text, str) or len(text) > 100_000:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def pkce_challenge(verifier: str) -> str:
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def _refused(why: str) -> OidcError:
    return OidcError("oidc_token_invalid", f"ID token refused: {why}")


def accepted_algorithms(published: object) -> frozenset[str]:
    """Of the provider's ``id_token_signing_alg_values_supported`` (``RS256`` when it names none,
    as OpenID Connect Discovery says), those in :data:`ALGORITHMS`."""
    names = published if isinstance(published, list) else ["RS256"]
    return ALGORITHMS.intersection(name for name in names if isinstance(name, str))


def signing_keys(jwks: dict[str, Any]) -> list[dict[str, Any]]:
    """The members of a JWKS meant for signatures (PyJWK checks each when it is used)."""
    found = jwks.get("keys")
    keys = found if isinstance(found, list) else []
    return [jwk for jwk in keys if isinstance(jwk, dict) and jwk.get("use", "sig") == "sig"]


def find_key(keys: list[dict[str, Any]], kid: object) -> dict[str, Any] | None:
    """The key named by ``kid``; without one, the only key (OpenID Connect Core 10.1)."""
    if kid is None:
        return keys[0] if len(keys) == 1 else None
    return next((jwk for jwk in keys if jwk.get("kid") == kid), None)


def unverified_header(token: object) -> dict[str, Any]:
    """The token's JOSE header, read but not trusted (to choose the key)."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise _refused("not a token")
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError as e:
        raise _refused("unreadable") from e


def verify_id_token(
    token: str,
    *,
    keys: list[dict[str, Any]],
    algorithms: Collection[str],
    issuer: str,
    client_id: str,
    nonce: str,
) -> dict[str, Any]:
    """The claims of a valid ID token; :class:`OidcError` (``oidc_token_invalid``) otherwise.

    The key is bound to the header's algorithm only once that is one of ``algorithms`` (all
    asymmetric) and fits the key: PyJWK refuses another key type, PyJWT another curve.
    """
    header = unverified_header(token)
    alg = header.get("alg")
    if alg not in algorithms or alg not in ALGORITHMS:
        raise _refused(f"algorithm {str(alg)[:10]!r} not accepted")
    jwk = find_key(keys, header.get("kid"))
    if jwk is None:
        raise _refused("unknown key")
    if jwk.get("alg", alg) != alg:
        raise _refused("the key is for another algorithm")
    try:
        claims = jwt.decode(
            token,
            jwt.PyJWK(jwk, algorithm=alg),
            algorithms=sorted(algorithms),
            audience=client_id,
            issuer=issuer,
            leeway=LEEWAY_S,
            options={"require": REQUIRED_CLAIMS, "enforce_minimum_key_length": True},
        )
    except jwt.PyJWTError as e:
        raise _refused(type(e).__name__) from e  # the library's name for the check that failed
    aud = claims["aud"]
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != client_id:
        raise _refused("authorized party")
    found = claims.get("nonce")
    if not isinstance(found, str) or not hmac.compare_digest(found.encode(), nonce.encode()):
        raise _refused("nonce")
    return claims


class Oidc:
    """The provider's metadata and keys (cached), the flow cookie, and the two handlers' logic."""

    def __init__(
        self,
        config: OidcConfig,
        *,
        signing_key: bytes,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._key = signing_key
        self._http: aiohttp.ClientSession | None = None
        self._metadata: dict[str, Any] | None = None
        self._keys: list[dict[str, Any]] | None = None
        self._refetch_lock = asyncio.Lock()
        self._refetches = RateLimiter(
            1 / KEYS_REFETCH_INTERVAL_S,
            1,
            max_clients=1,
            clock=clock,
            event="oidc_keys_refetch_limited",
            describe=lambda _key: {},
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S))
        return self._http

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self._session().get(url) as resp:
                if resp.status != 200:
                    raise OidcError("oidc_provider", "identity provider failed", status=502)
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise OidcError("oidc_provider", "identity provider unreachable", status=502) from e
        if not isinstance(body, dict):
            raise OidcError("oidc_provider", "identity provider answered nonsense", status=502)
        return body

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            url = f"{self.config.issuer}/.well-known/openid-configuration"
            found = await self._get_json(url)
            if found.get("issuer") != self.config.issuer:
                raise OidcError("oidc_provider", "metadata names another issuer", status=502)
            if not accepted_algorithms(found.get("id_token_signing_alg_values_supported")):
                raise OidcError("oidc_provider", "provider signs no way we accept", status=502)
            self._metadata = found
        return self._metadata

    async def _fetch_keys(self) -> list[dict[str, Any]]:
        jwks = await self._get_json(str((await self.metadata())["jwks_uri"]))
        self._keys = signing_keys(jwks)
        log.info("oidc_keys_fetched", keys=len(self._keys))
        return self._keys

    async def keys_for(self, kid: object) -> list[dict[str, Any]]:
        """The provider's signing keys, fetched again first when none is ``kid`` (it may have
        rotated them), but at most once per :data:`KEYS_REFETCH_INTERVAL_S`: tokens with made-up
        key ids cannot make us hammer the provider."""
        keys = self._keys if self._keys is not None else await self._fetch_keys()
        if find_key(keys, kid) is not None:
            return keys
        async with self._refetch_lock:  # who waited here sees what the first one fetched
            keys = self._keys if self._keys is not None else keys
            if find_key(keys, kid) is None and self._refetches.wait_s("jwks") == 0.0:
                keys = await self._fetch_keys()
        return keys

    async def verify(self, token: str, *, nonce: str) -> dict[str, Any]:
        """The claims of ``token`` if it is a valid ID token for the login that sent ``nonce``."""
        meta = await self.metadata()
        try:
            return verify_id_token(
                token,
                keys=await self.keys_for(unverified_header(token).get("kid")),
                algorithms=accepted_algorithms(meta.get("id_token_signing_alg_values_supported")),
                issuer=self.config.issuer,
                client_id=self.config.client_id,
                nonce=nonce,
            )
        except OidcError as e:
            log.info("oidc_token_refused", reason=str(e))
            raise

    def redirect_url(self, request: web.Request) -> str:
        if self.config.redirect_url:
            return self.config.redirect_url
        return str(request.url.with_path(CALLBACK_PATH).with_query(None))

    def seal(self, flow: dict[str, Any]) -> str:
        payload = b64url(json.dumps(flow, separators=(",", ":")).encode())
        mac = b64url(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())
        return f"{payload}.{mac}"

    def unseal(self, value: str, now_s: float) -> dict[str, Any]:
        payload, _, mac = value.partition(".")
        want = b64url(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())
        if not mac or not hmac.compare_digest(mac.encode(), want.encode()):
            raise OidcError("oidc_state", "login flow cookie missing or forged", status=400)
        try:
            flow = json.loads(b64url_decode(payload))
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise OidcError("oidc_state", "login flow cookie unreadable", status=400) from e
        if not isinstance(flow, dict) or not isinstance(flow.get("exp"), int | float):
            raise OidcError("oidc_state", "login flow cookie unreadable", status=400)
        if flow["exp"] < now_s:
            raise OidcError("oidc_state", "login took too long; start again", status=400)
        return flow

    async def start(self, request: web.Request) -> tuple[str, str]:
        """``(authorization URL, flow cookie value)``."""
        meta = await self.metadata()
        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        params = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": self.redirect_url(request),
            "scope": "openid profile",
            "state": state,
            "nonce": nonce,
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
        }
        url = yarl.URL(str(meta["authorization_endpoint"])).update_query(params)
        flow = {
            "state": state,
            "nonce": nonce,
            "verifier": verifier,
            "exp": time.time() + FLOW_TTL_S,
        }
        return str(url), self.seal(flow)

    async def finish(self, request: web.Request) -> dict[str, Any]:
        """Check the callback and return the verified ID token claims."""
        now_s = time.time()
        flow = self.unseal(request.cookies.get(FLOW_COOKIE, ""), now_s)
        query = request.query
        if "error" in query:
            raise OidcError("oidc_refused", "the identity provider refused the login")
        state, code = query.get("state", ""), query.get("code", "")
        if not hmac.compare_digest(state.encode(), str(flow.get("state", "")).encode()):
            raise OidcError("oidc_state", "state does not match this login", status=400)
        if not code or len(code) > 4096:
            raise OidcError("oidc_state", "no authorization code", status=400)
        meta = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_url(request),
            "client_id": self.config.client_id,
            "code_verifier": str(flow.get("verifier", "")),
        }
        if self.config.client_secret:
            form["client_secret"] = self.config.client_secret
        try:
            async with self._session().post(str(meta["token_endpoint"]), data=form) as resp:
                body = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise OidcError("oidc_provider", "token endpoint unreachable", status=502) from e
        if status != 200 or not isinstance(body, dict) or "id_token" not in body:
            raise OidcError("oidc_refused", "the identity provider did not issue a token")
        return await self.verify(str(body["id_token"]), nonce=str(flow.get("nonce", "")))


OIDC: web.AppKey[Oidc] = web.AppKey("homecare_oidc")


def _service(request: web.Request) -> Oidc:
    found = request.app.get(OIDC)
    if found is None:
        raise OidcError("oidc_not_configured", "OIDC login is not configured", status=404)
    return found


async def start_handler(request: web.Request) -> web.StreamResponse:
    oidc = _service(request)
    url, cookie = await oidc.start(request)
    response = web.Response(status=302, headers={"Location": url})
    response.set_cookie(
        FLOW_COOKIE,
        cookie,
        max_age=FLOW_TTL_S,
        path="/api/login/oidc",
        httponly=True,
        samesite="Lax",  # must come back on the provider's top-level redirect
        secure=auth_service.service(request).cookie_secure,
    )
    return response


async def callback_handler(request: web.Request) -> web.StreamResponse:
    oidc = _service(request)
    auth = auth_service.service(request)
    claims = await oidc.finish(request)
    username = normalise_username(claims.get(oidc.config.username_claim))
    result = await auth.login_external(username, via="oidc")
    response = web.Response(status=302, headers={"Location": "/"})
    auth.set_session_cookie(response, result)
    response.del_cookie(FLOW_COOKIE, path="/api/login/oidc")
    return response


async def methods_handler(request: web.Request) -> web.Response:
    """Which logins this service offers, for the console's login screen."""
    return web.json_response(
        {"password": True, "oidc": OIDC in request.app, "oidc_start": "/api/login/oidc"}
    )


def install(app: web.Application, config: OidcConfig | None, *, session_secret: str) -> Oidc | None:
    """Install OIDC login when it is configured; the routes exist either way."""
    if config is None:
        return None
    key = session_secret.encode() or secrets.token_bytes(32)
    oidc = Oidc(config, signing_key=key)
    app[OIDC] = oidc
    return oidc


def routes() -> list[Route]:
    return [
        Route(
            "GET",
            "/api/login/methods",
            methods_handler,
            PUBLIC,
            "Which logins are offered (password; OIDC when configured)",
            tags=("auth",),
            response={
                "type": "object",
                "properties": {
                    "password": {"type": "boolean"},
                    "oidc": {"type": "boolean"},
                    "oidc_start": {"type": "string"},
                },
            },
        ),
        Route(
            "GET",
            "/api/login/oidc",
            start_handler,
            PUBLIC,
            "Start an OpenID Connect login (redirects to the identity provider)",
            tags=("auth",),
        ),
        Route(
            "GET",
            CALLBACK_PATH,
            callback_handler,
            PUBLIC,
            "The identity provider's redirect back; sets the session cookie",
            tags=("auth",),
        ),
    ]
