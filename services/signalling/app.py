"""Signalling in the composition root: one call builds it, serves ``/ws/signal`` and tears it down.

``services/app.py`` does::

    rt.signalling = await stack.enter_async_context(
        signalling_app.installed(app, settings, pool=pool, gate=gate, commands=commands,
                                 instance_id=instance, clock=clock))

The signalling service always runs (the in-process probe uses :meth:`Signalling.connect`); it
serves ``GET /ws/signal`` and takes its share of device messages only when the process has the
``signalling`` role. Everything it holds is closed in reverse: clients get ``GOING_AWAY`` on
``app.on_shutdown``, then the broker connection and timers end with the context.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from services.settings import Settings
from services.signalling.http import SIGNALLING, on_shutdown, routes
from services.signalling.ports import (
    Clock,
    CommandsPort,
    GatePort,
    SignallingConfig,
    system_clock,
)
from services.signalling.service import Signalling
from services.signalling.turn import TurnConfig
from services.web import http


@contextlib.asynccontextmanager
async def installed(
    app: web.Application,
    settings: Settings,
    *,
    pool: asyncpg.Pool,
    gate: GatePort,
    commands: CommandsPort,
    instance_id: str,
    clock: Clock = system_clock,
    config: SignallingConfig | None = None,
) -> AsyncIterator[Signalling]:
    """Run signalling for the life of the block; ``app`` must not be frozen yet."""
    if settings.mqtt_url is None:
        raise RuntimeError("signalling needs an MQTT URL")
    serves = "signalling" in settings.roles
    sig = Signalling(
        pool=pool,
        mqtt_url=settings.mqtt_url,
        prefix=settings.mqtt_topic_prefix,
        instance_id=instance_id,
        gate=gate,
        commands=commands,
        turn=TurnConfig(settings.turn_urls, settings.turn_secret, settings.turn_ttl_s),
        config=config,
        keepalive_s=settings.mqtt_keepalive_s,
        handle_devices=serves,
        clock=clock,
    )
    async with sig:
        app[SIGNALLING] = sig
        app.on_shutdown.append(on_shutdown)
        if serves:
            http.add_routes(app, routes())
        yield sig
