"""OpenID Connect staff login: authorization code flow with PKCE (S256), configured by settings.

For the regional identity provider (SITHS eID through OIDC in production). Enabled when
``HOMECARE_OIDC_ISSUER`` and ``HOMECARE_OIDC_CLIENT_ID`` are set.

1. ``GET /api/login/oidc`` redirects to the provider's authorization endpoint with a random
   ``state``, ``nonce`` and PKCE ``code_challenge``. Those three (and the verifier) travel in the
   short-lived ``hc_oidc`` cookie, HMAC-signed with ``HOMECARE_SESSION_SECRET`` (a per-process
   random key when unset: then the login must come back to the same process).
2. ``GET /api/login/oidc/callback?code&state`` checks ``state``, redeems the code at the token
   endpoint with the verifier, and verifies the ID token: signature (RS256 or ES256, key from the
   provider's JWKS by ``kid``; ``none`` and HMAC algorithms are refused), ``iss``, ``aud`` (and
   ``azp`` with several audiences), ``exp``/``iat`` (60 s leeway) and ``nonce``.
3. The claim ``HOMECARE_OIDC_USERNAME_CLAIM`` (default ``preferred_username``) names the staff
   account; its role is the account's. An unknown or inactive account is refused and audited like
   a failed password login. Success opens the same session as a password login (``via=oidc`` in
   the audit entry) and redirects to the console.

Every wait on the provider has a timeout. Claim values are never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
import yarl
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from identity import login as auth_service
from identity.staff import normalise_username
from kernel.roles import PUBLIC, Route

log = structlog.get_logger(__name__)

FLOW_COOKIE = "hc_oidc"
FLOW_TTL_S = 600
LEEWAY_S = 60
HTTP_TIMEOUT_S = 10.0
CALLBACK_PATH = "/api/login/oidc/callback"
ALGORITHMS = ("RS256", "ES256")


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


def _b64_int(text: object) -> int:
    if not isinstance(text, str):
        raise TypeError("JWK number missing")
    return int.from_bytes(b64url_decode(text), "big")


def _verify_signature(alg: str, jwk: dict[str, Any], signed: bytes, signature: bytes) -> None:
    """Raise ``InvalidSignature`` or ``ValueError`` unless ``signature`` is valid."""
    if alg == "RS256" and jwk.get("kty") == "RSA":
        rsa_key = rsa.RSAPublicNumbers(_b64_int(jwk.get("e")), _b64_int(jwk.get("n"))).public_key()
        rsa_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        return
    if alg == "ES256" and jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
        if len(signature) != 64:
            raise InvalidSignature("ES256 signature must be 64 bytes")
        ec_key = ec.EllipticCurvePublicNumbers(
            _b64_int(jwk.get("x")), _b64_int(jwk.get("y")), ec.SECP256R1()
        ).public_key()
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        ec_key.verify(encode_dss_signature(r, s), signed, ec.ECDSA(hashes.SHA256()))
        return
    raise ValueError("key does not fit the token's algorithm")


def verify_id_token(
    token: str,
    *,
    keys: list[dict[str, Any]],
    issuer: str,
    client_id: str,
    nonce: str,
    now_s: float,
) -> dict[str, Any]:
    """The claims of a valid ID token; :class:`OidcError` (``oidc_token_invalid``) otherwise."""

    def bad(why: str) -> OidcError:
        return OidcError("oidc_token_invalid", f"ID token refused: {why}")

    parts = token.split(".") if isinstance(token, str) and len(token) < 20_000 else []
    if len(parts) != 3:
        raise bad("not a compact JWS")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise bad("unreadable") from e
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise bad("unreadable")
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise bad(f"algorithm {str(alg)[:10]!r} not accepted")
    kid = header.get("kid")
    candidates = [k for k in keys if isinstance(k, dict) and (kid is None or k.get("kid") == kid)]
    if not candidates:
        raise bad("unknown key")
    signed = f"{parts[0]}.{parts[1]}".encode("ascii")
    for jwk in candidates:
        try:
            _verify_signature(str(alg), jwk, signed, signature)
            break
        except (InvalidSignature, ValueError, TypeError):
            continue
    else:
        raise bad("signature")
    if claims.get("iss") != issuer:
        raise bad("issuer")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if client_id not in audiences:
        raise bad("audience")
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise bad("authorized party")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or isinstance(exp, bool) or exp + LEEWAY_S < now_s:
        raise bad("expired")
    if not isinstance(iat, int | float) or isinstance(iat, bool) or iat - LEEWAY_S > now_s:
        raise bad("issued in the future")
    if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(
        str(claims["nonce"]).encode(), nonce.encode()
    ):
        raise bad("nonce")
    return claims


class Oidc:
    """The provider's metadata and keys (cached), the flow cookie, and the two handlers' logic."""

    def __init__(self, config: OidcConfig, *, signing_key: bytes) -> None:
        self.config = config
        self._key = signing_key
        self._http: aiohttp.ClientSession | None = None
        self._metadata: dict[str, Any] | None = None
        self._keys: list[dict[str, Any]] = []

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
            self._metadata = found
        return self._metadata

    async def keys(self, *, refresh: bool = False) -> list[dict[str, Any]]:
        if refresh or not self._keys:
            jwks = await self._get_json(str((await self.metadata())["jwks_uri"]))
            found = jwks.get("keys")
            self._keys = (
                [k for k in found if isinstance(k, dict)] if isinstance(found, list) else []
            )
        return self._keys

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
        token, nonce = str(body["id_token"]), str(flow.get("nonce", ""))
        options = {"issuer": self.config.issuer, "client_id": self.config.client_id}
        try:
            return verify_id_token(
                token, keys=await self.keys(), nonce=nonce, now_s=now_s, **options
            )
        except OidcError as e:
            if "unknown key" not in str(e):
                raise
        keys = await self.keys(refresh=True)  # the provider may have rotated its keys
        return verify_id_token(token, keys=keys, nonce=nonce, now_s=time.time(), **options)


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
