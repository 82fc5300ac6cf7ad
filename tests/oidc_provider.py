"""A small OpenID Connect provider on loopback for tests: discovery, JWKS, authorize, token.

The "user" is whoever the test says (``provider.claims``); ``/authorize`` logs them in at once and
redirects back with a one-time code. ``/token`` checks the code, the client, the redirect URI and
the PKCE verifier (S256), then issues an ID token signed with an RSA key (RS256) or, with
``alg="ES256"``, a P-256 key. ``tamper`` makes the next tokens wrong in one way, so a test can show
the relying party refuses each: ``"signature"`` (signed by a key not in the JWKS), ``"issuer"``,
``"audience"``, ``"nonce"``, ``"expired"``, ``"alg_none"``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _int_b64(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


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
    issuer: str = ""
    _grants: dict[str, _Grant] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    def __post_init__(self) -> None:
        self._rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
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

    def jwks(self) -> dict[str, Any]:
        rsa_pub = self._rsa.public_key().public_numbers()
        ec_pub = self._ec.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "kid": "rsa-1",
                    "use": "sig",
                    "alg": "RS256",
                    "n": _int_b64(rsa_pub.n),
                    "e": _int_b64(rsa_pub.e),
                },
                {
                    "kty": "EC",
                    "kid": "ec-1",
                    "use": "sig",
                    "crv": "P-256",
                    "x": b64url(ec_pub.x.to_bytes(32, "big")),
                    "y": b64url(ec_pub.y.to_bytes(32, "big")),
                },
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
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
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
            | {"id_token": self.id_token(grant)}
        )

    def id_token(self, grant: _Grant) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": "sub-" + secrets.token_hex(4),
            "aud": grant.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": grant.nonce,
            **grant.claims,
        }
        match self.tamper:
            case "issuer":
                claims["iss"] = self.issuer + "/other"
            case "audience":
                claims["aud"] = "someone-else"
            case "nonce":
                claims["nonce"] = "replayed-" + grant.nonce
            case "expired":
                claims["iat"], claims["exp"] = now - 3600, now - 1800
        alg = "none" if self.tamper == "alg_none" else self.alg
        kid = "ec-1" if alg == "ES256" else "rsa-1"
        header = b64url(json.dumps({"alg": alg, "typ": "JWT", "kid": kid}).encode())
        body = b64url(json.dumps(claims).encode())
        signed = f"{header}.{body}".encode()
        if alg == "none":
            return f"{header}.{body}."
        if alg == "ES256":
            r, s = decode_dss_signature(self._ec.sign(signed, ec.ECDSA(hashes.SHA256())))
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        else:
            key = self._other_rsa if self.tamper == "signature" else self._rsa
            sig = key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
        return f"{header}.{body}.{b64url(sig)}"
