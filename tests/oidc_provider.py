"""A small OpenID Connect provider on loopback for tests: discovery, JWKS, authorize, token.

The "user" is whoever the test says (``provider.claims``); ``/authorize`` logs them in at once and
redirects back with a one-time code. ``/token`` checks the code, the client, the redirect URI and
the PKCE verifier (S256), then issues an ID token signed (with PyJWT) by its RSA key (``RS256``,
``PS256``) or, with ``alg="ES256"``, its P-256 key. :meth:`OidcProvider.rotate` replaces the RSA key
by a new one with a new ``kid``; ``jwks_fetches`` counts the JWKS requests. Discovery publishes
``HS256`` and ``none`` as well, as some providers do, so the relying party must refuse them itself.

``tamper`` makes the next tokens wrong in one way, so a test can show the relying party refuses
each: ``"signature"`` (signed by a key not in the JWKS), ``"issuer"``, ``"audience"``,
``"two_audiences"`` (no ``azp``), ``"nonce"``, ``"expired"``, ``"not_yet_valid"``, ``"no_sub"``,
``"no_exp"``, ``"no_iat"``, ``"alg_none"``, ``"hmac"`` (HS256 keyed with the RSA public key in
PEM: the algorithm-confusion forgery), ``"unknown_kid"`` (a random ``kid`` each time).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Self

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

TAMPERS = (
    "signature",
    "issuer",
    "audience",
    "two_audiences",
    "nonce",
    "expired",
    "not_yet_valid",
    "no_sub",
    "no_exp",
    "no_iat",
    "alg_none",
    "hmac",
    "unknown_kid",
)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    nonce: str
    challenge: str
    claims: dict[str, Any]


@dataclass
class OidcProvider:
    client_id: str = "homecare-test"
    client_secret: str = "test-secret-0123456789"
    alg: str = "RS256"
    claims: dict[str, Any] = field(default_factory=dict)
    tamper: str | None = None
    tokens_issued: int = 0
    jwks_fetches: int = 0
    published_algorithms: tuple[str, ...] = ("RS256", "PS256", "ES256", "HS256", "none")
    issuer: str = ""
    _grants: dict[str, _Grant] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    def __post_init__(self) -> None:
        self._rsa_kid, self._rsa = "rsa-1", _rsa_key()
        self._other_rsa = _rsa_key()
        self._ec = ec.generate_private_key(ec.SECP256R1())

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.issuer = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def rotate(self) -> None:
        """A new RSA key under a new ``kid``; the old one leaves the JWKS."""
        self._rsa_kid, self._rsa = f"rsa-{secrets.token_hex(4)}", _rsa_key()

    def jwks(self) -> dict[str, Any]:
        # The RSA key names no "alg" (as Entra ID's do), so RS256 and PS256 both use it.
        rsa_jwk = RSAAlgorithm.to_jwk(self._rsa.public_key(), as_dict=True)
        ec_jwk = ECAlgorithm.to_jwk(self._ec.public_key(), as_dict=True)
        return {
            "keys": [
                rsa_jwk | {"kid": self._rsa_kid, "use": "sig"},
                ec_jwk | {"kid": "ec-1", "use": "sig", "alg": "ES256"},
            ]
        }

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
                "id_token_signing_alg_values_supported": list(self.published_algorithms),
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        return web.json_response(self.jwks())

    async def _authorize(self, request: web.Request) -> web.Response:
        q = request.query
        if (
            q.get("response_type") != "code"
            or q.get("client_id") != self.client_id
            or q.get("code_challenge_method") != "S256"
            or not q.get("code_challenge")
            or "openid" not in q.get("scope", "").split()
        ):
            return web.json_response({"error": "invalid_request"}, status=400)
        code = secrets.token_urlsafe(24)
        self._grants[code] = _Grant(
            client_id=q["client_id"],
            redirect_uri=q["redirect_uri"],
            nonce=q.get("nonce", ""),
            challenge=q["code_challenge"],
            claims=dict(self.claims),
        )
        target = f"{q['redirect_uri']}?code={code}&state={q.get('state', '')}"
        return web.Response(status=302, headers={"Location": target})

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant = self._grants.pop(str(form.get("code", "")), None)  # one use only
        verifier = str(form.get("code_verifier", ""))
        challenge = b64url(hashlib.sha256(verifier.encode()).digest())
        if (
            grant is None
            or form.get("grant_type") != "authorization_code"
            or form.get("client_id") != grant.client_id
            or form.get("client_secret") != self.client_secret
            or form.get("redirect_uri") != grant.redirect_uri
            or challenge != grant.challenge
        ):
            return web.json_response({"error": "invalid_grant"}, status=400)
        self.tokens_issued += 1
        return web.json_response(
            {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "expires_in": 300}
            | {"id_token": self.id_token(grant.nonce, grant.claims)}
        )

    def id_token(self, nonce: str, extra: dict[str, Any] | None = None) -> str:
        """An ID token for ``client_id`` carrying ``nonce``, spoilt as ``tamper`` says."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": "sub-" + secrets.token_hex(4),
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": nonce,
            **(extra or {}),
        }
        match self.tamper:
            case "issuer":
                claims["iss"] = self.issuer + "/other"
            case "audience":
                claims["aud"] = "someone-else"
            case "two_audiences":
                claims["aud"] = [self.client_id, "someone-else"]
            case "nonce":
                claims["nonce"] = "replayed-" + nonce
            case "expired":
                claims["iat"], claims["exp"] = now - 3600, now - 1800
            case "not_yet_valid":
                claims["iat"], claims["exp"] = now + 1800, now + 3600
            case "no_sub" | "no_exp" | "no_iat":
                del claims[self.tamper.removeprefix("no_")]
        if self.tamper in ("alg_none", "hmac"):
            return self._forged(claims)
        if self.alg == "ES256":
            return jwt.encode(claims, self._ec, algorithm="ES256", headers={"kid": "ec-1"})
        key = self._other_rsa if self.tamper == "signature" else self._rsa
        kid = secrets.token_hex(8) if self.tamper == "unknown_kid" else self._rsa_kid
        return jwt.encode(claims, key, algorithm=self.alg, headers={"kid": kid})

    def _forged(self, claims: dict[str, Any]) -> str:
        """Unsigned, or HMAC-signed with the public key as the secret (PyJWT would refuse both)."""
        alg = "none" if self.tamper == "alg_none" else "HS256"
        header = {"alg": alg, "typ": "JWT", "kid": self._rsa_kid}
        signed = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        if alg == "none":
            return f"{signed}."
        secret = self._rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"{signed}.{b64url(hmac.new(secret, signed.encode(), hashlib.sha256).digest())}"
