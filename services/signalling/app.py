"""Signalling in the composition root: one call builds it, serves ``/ws/signal`` and tears it down.

``services/app.py`` does::

    sig = await stack.enter_async_context(
        signalling_app.installed(app, settings, pool=pool, link=rt.mqtt, gate=gate,
                                 commands=rt.commands, instance_id=instance, clock=clock,
                                 config=signalling_config(rt.timing),
                                 guard=rt.supervisor.guard))

The signalling service runs where the process has the ``signalling`` or the ``probes`` role (the
in-process probe uses :meth:`Signalling.connect`); it serves ``GET /ws/signal`` and takes its
share of device messages only with the ``signalling`` role. It uses the process's one broker
connection (``link``). Everything it holds is closed in reverse: clients get ``GOING_AWAY`` on
``app.on_shutdown``, then its subscriptions and timers end with the context.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from kernel.clock import SYSTEM_CLOCK, Clock, ClockPort
from services.mqtt import Guard, MqttLink
from services.settings import Settings
from services.signalling.http import SIGNALLING, on_shutdown, routes
from services.signalling.ports import (
    ChecksPort,
    CommandsPort,
    GatePort,
    Latencies,
    SignallingConfig,
)
from services.signalling.service import Signalling, logged
from services.signalling.turn import TurnConfig
from services.web import http


@contextlib.asynccontextmanager
async def installed(
    app: web.Application,
    settings: Settings,
    *,
    pool: asyncpg.Pool,
    link: MqttLink,
    gate: GatePort,
    commands: CommandsPort,
    instance_id: str,
    clock: Clock | ClockPort = SYSTEM_CLOCK,
    config: SignallingConfig | None = None,
    guard: Guard = logged,
    latencies: Latencies | None = None,
    checks: ChecksPort | None = None,
) -> AsyncIterator[Signalling]:
    """Run signalling for the life of the block; ``app`` must not be frozen yet. ``guard`` is the
    process's supervisor (its loops crash loudly); ``latencies`` the process's histograms;
    ``checks`` the night round's side of a view (default: over ``pool``, publishing nothing)."""
    serves = "signalling" in settings.roles
    sig = Signalling(
        pool=pool,
        link=link,
        prefix=settings.mqtt_topic_prefix,
        instance_id=instance_id,
        gate=gate,
        commands=commands,
        turn=TurnConfig(settings.turn_urls, settings.turn_secret, settings.turn_ttl_s),
        config=config,
        handle_devices=serves,
        clock=clock,
        guard=guard,
        latencies=latencies,
        checks=checks,
    )
    async with sig:
        app[SIGNALLING] = sig
        app.on_shutdown.append(on_shutdown)
        if serves:
            http.add_routes(app, routes())
        yield sig
