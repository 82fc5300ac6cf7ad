"""Short-lived TURN credentials in coturn's REST scheme (``use-auth-secret``).

``username = "{expiry}:{user}"`` where ``expiry`` is a Unix time in whole seconds, and
``credential = base64(HMAC-SHA1(secret, username))``. coturn recomputes the HMAC with the shared
secret and refuses the username once ``expiry`` has passed, so nothing is stored anywhere.
Pure: the caller passes the time in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime

from devices.envelope import IceServer


@dataclass(frozen=True, slots=True)
class TurnConfig:
    """``urls`` may mix ``stun:`` and ``turn(s):`` URLs; ``ttl_s`` is the credential lifetime."""

    urls: tuple[str, ...] = ()
    secret: str = field(default="", repr=False)
    ttl_s: int = 600

    def __post_init__(self) -> None:
        if self.ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        if any(u.split(":", 1)[0] not in {"stun", "turn", "turns"} for u in self.urls):
            raise ValueError("TURN/STUN URLs must start with stun:, turn: or turns:")


def credential(secret: str, username: str) -> str:
    """The coturn REST password for ``username``."""
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def ice_servers(config: TurnConfig, user: str, now: datetime) -> tuple[IceServer, ...]:
    """ICE servers for ``user`` (a pseudonymous id), valid until ``now + ttl_s``.

    Without a secret only the ``stun:`` URLs are returned (TURN would refuse anyway); without
    URLs nothing, and peers connect directly (loopback, one LAN).
    """
    stun = tuple(u for u in config.urls if u.startswith("stun:"))
    turn = tuple(u for u in config.urls if not u.startswith("stun:"))
    servers: list[IceServer] = []
    if stun:
        servers.append(IceServer(urls=stun))
    if turn and config.secret:
        expiry = int(now.timestamp()) + config.ttl_s
        username = f"{expiry}:{user}"
        servers.append(
            IceServer(urls=turn, username=username, credential=credential(config.secret, username))
        )
    return tuple(servers)
