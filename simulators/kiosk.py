"""The simulated units' own screens: the in-home unit's screen (:mod:`homeside.screen`, the same
page the device agent serves) for every simulated camera and video phone, on one local server.

``GET /`` lists the units; ``GET /kiosk/{id}`` is one unit's screen; the routes are
:mod:`homeside.screen`'s. A phone's screen shows its home's camera being looked at (the units of
one simulated home share its number: :func:`simulators.homes.home_of`). Bind it to loopback: it
is the simulated units' own screen and has no login.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

from aiohttp import web

from homeside import screen
from homeside.peer import DevicePeer
from homeside.screen import Speech
from simulators.homes import home_of


def kiosk_app(peers: Mapping[str, DevicePeer], *, speech: Speech | None = None) -> web.Application:
    """The screens of the simulated units ``peers`` (``speech``: espeak-ng when installed)."""
    return screen.screen_app(peers, home_of=home_of, speech=speech)


@contextlib.asynccontextmanager
async def serving(
    peers: Mapping[str, DevicePeer], port: int, host: str = "127.0.0.1"
) -> AsyncIterator[str]:
    """Serve the screens on ``host:port`` (0: any free port); yields the base URL."""
    async with screen.serving(peers, port, host, home_of=home_of) as url:
        yield url
