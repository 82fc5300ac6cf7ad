"""The composition root: builds every resource, wires the slices together, and tears down in order.

``runtime(settings)`` is an async context manager yielding a :class:`Runtime`; ``serve`` runs it
as a process until SIGTERM/SIGINT. Shutdown order: stop accepting HTTP, close WebSockets and peers,
cancel background tasks, publish ``offline`` and close MQTT, close the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import structlog
from aiohttp import web

from consent import api as consent_api
from consent.behaviour import BehaviourWatch
from consent.gate import ChangeBus, Gate
from consent.store import PgConsentStore
from devices import api as devices_api
from devices import topics
from devices.commands import Commands
from devices.handler import REGISTRY_CHANNELS, DeviceHandler
from identity import api as staff_api
from identity import login as auth
from identity import oidc
from kernel.roles import PUBLIC, Route
from services import db
from services.camera_zones import lookup as zones_of
from services.events import EventBus
from services.mqtt import MqttLink
from services.settings import Settings
from services.signalling import app as signalling_app
from services.signalling.service import Signalling
from services.web import console, http, limits
from services.web import metrics as ops_metrics
from supervision import api as rounds_api
from supervision import zones_api
from supervision.checks import State
from supervision.ports import CheckChanged
from supervision.probe import MotionProber
from supervision.service import RegistryDevices, Rounds, RoundsConfig, command_wake

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]

SETTINGS = web.AppKey("settings", Settings)
RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime")
VERSION = "0.1.0"


def oidc_config(settings: Settings) -> oidc.OidcConfig | None:
    """OpenID Connect login as the settings configure it, or ``None`` (password login only)."""
    if not settings.oidc_issuer or not settings.oidc_client_id:
        return None
    return oidc.OidcConfig(
        issuer=settings.oidc_issuer.rstrip("/"),
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret,
        redirect_url=settings.oidc_redirect_url,
        username_claim=settings.oidc_username_claim,
    )


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    mqtt: MqttLink
    bus: EventBus
    devices: DeviceHandler
    commands: Commands
    clock: Clock
    app: web.Application
    gate: Gate
    consent: PgConsentStore
    behaviour: BehaviourWatch
    signalling: Signalling
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    checks: dict[str, bool] = {"database": False, "broker": rt.mqtt.connected.is_set()}
    with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
        async with asyncio.timeout(2):
            checks["database"] = await rt.pool.fetchval("SELECT 1") == 1
    ok = all(checks.values())
    return web.json_response(
        {"status": "ready" if ok else "not_ready", "checks": checks}, status=200 if ok else 503
    )


async def openapi_doc(request: web.Request) -> web.Response:
    routes: list[Route] = request.app[http.ROUTES]
    return web.json_response(http.openapi(routes, title="Nattlig tillsyn API", version=VERSION))


async def metrics(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    lines = [
        "# TYPE homecare_mqtt_messages_total counter",
        f"homecare_mqtt_messages_total {rt.mqtt.messages_in}",
        "# TYPE homecare_mqtt_rejected_total counter",
    ]
    lines += [
        f'homecare_mqtt_rejected_total{{reason="{reason}"}} {n}'
        for reason, n in sorted(rt.devices.rejected.items())
    ]
    rows = await rt.pool.fetch("SELECT presence, count(*) AS n FROM devices GROUP BY presence")
    lines.append("# TYPE homecare_devices gauge")
    lines += [f'homecare_devices{{presence="{r["presence"]}"}} {r["n"]}' for r in rows]
    lines += await ops_metrics.table_gauges(rt.pool, rt.clock())
    lines.append("# TYPE homecare_signalling_total counter")  # routed_out/in, *_rejected_<code>
    lines += [
        f'homecare_signalling_total{{event="{event}"}} {n}'
        for event, n in sorted(rt.signalling.counters.items())
    ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


def core_routes() -> list[Route]:
    return [
        Route("GET", "/healthz", healthz, PUBLIC, "The process is alive", tags=("ops",)),
        Route("GET", "/readyz", readyz, PUBLIC, "Database and broker are reachable", tags=("ops",)),
        Route("GET", "/api/openapi.json", openapi_doc, PUBLIC, "This document", tags=("ops",)),
        Route(
            "GET",
            "/metrics",
            metrics,
            PUBLIC,
            "Prometheus metrics (no personal data)",
            tags=("ops",),
        ),
    ]


@contextlib.asynccontextmanager
async def runtime(settings: Settings, *, clock: Clock = system_clock) -> AsyncIterator[Runtime]:
    """Build and wire everything for one process; tear it down in reverse."""
    if settings.database_url is None or settings.mqtt_url is None:
        raise RuntimeError("runtime() needs database_url and mqtt_url (the demo fills them in)")
    instance = settings.instance_id or uuid.uuid4().hex[:8]
    bus = EventBus()
    async with contextlib.AsyncExitStack() as stack:
        pool = await stack.enter_async_context(db.open_pool(settings.database_url))
        consent_bus = ChangeBus()
        consent_store = PgConsentStore(pool, publish=consent_bus.publish)
        gate = Gate(consent_store, consent_bus, clock=clock)
        behaviour = BehaviourWatch(consent_store, threshold=settings.tamper_suspend_threshold)

        async def on_device_event(device_id: str, event: topics.Event, at: datetime) -> None:
            await behaviour.device_event(device_id, event.type.value, at)

        handler = DeviceHandler(
            pool, clock=clock, on_presence=bus.publish, on_event=on_device_event
        )
        link = MqttLink(
            settings.mqtt_url,
            prefix=settings.mqtt_topic_prefix,
            keepalive_s=settings.mqtt_keepalive_s,
            instance_id=instance,
            on_reject=handler.reject,
            on_connect=lambda: handler.link_connected(2.0 * settings.mqtt_keepalive_s + 2.0),
        )
        for channel in REGISTRY_CHANNELS:
            link.subscribe(channel, handler.handle)
        stack.push_async_callback(handler.close)
        await stack.enter_async_context(link)
        commands = Commands(pool, handler, link.publish, settings.mqtt_topic_prefix)

        app = http.make_app(max_body_bytes=settings.max_body_bytes)
        limits.install(app, settings)
        sig = await stack.enter_async_context(
            signalling_app.installed(
                app,
                settings,
                pool=pool,
                gate=gate,
                commands=commands,
                instance_id=instance,
                clock=clock,
            )
        )
        rt = Runtime(
            settings=settings,
            pool=pool,
            mqtt=link,
            bus=bus,
            devices=handler,
            commands=commands,
            clock=clock,
            app=app,
            gate=gate,
            consent=consent_store,
            behaviour=behaviour,
            signalling=sig,
        )
        rt.tasks.append(asyncio.create_task(gate.listen(pool), name="consent-listen"))
        rt.tasks.append(asyncio.create_task(report_covered(bus, behaviour), name="consent-covered"))
        app[SETTINGS] = settings
        app[RUNTIME] = rt
        app[devices_api.POOL] = pool
        auth.install(app, auth.make_authenticator(pool, cookie_secure=settings.cookie_secure))
        http.add_routes(app, core_routes())
        http.add_routes(app, auth.routes())
        if (
            login_oidc := oidc.install(
                app, oidc_config(settings), session_secret=settings.session_secret
            )
        ) is not None:
            stack.push_async_callback(login_oidc.close)
        http.add_routes(app, oidc.routes())
        http.add_routes(app, staff_api.routes())
        http.add_routes(app, [*devices_api.routes(), *zones_api.routes()])
        app[consent_api.STORE] = consent_store
        app[consent_api.CLOCK] = clock
        app[consent_api.ZONE] = settings.zone
        http.add_routes(app, consent_api.routes())
        console.install(app, bus, consent_changes=gate.changes)
        http.add_routes(app, console.routes())
        install_rounds(rt, instance)
        try:
            yield rt
        finally:
            for task in rt.tasks:
                task.cancel()
            for task in rt.tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def report_covered(bus: EventBus, behaviour: BehaviourWatch) -> None:
    """Hard rule 8, "covered repeatedly": every motion check that found the lens covered (a check
    leaving ``probing`` for a patrol with reason ``camera_covered``) counts as behaviour."""
    with bus.subscribe() as events:
        async for event in events:
            if (
                isinstance(event, CheckChanged)
                and event.before is State.PROBING
                and event.reason == "camera_covered"
                and event.device_id is not None
                and not event.relayed  # another process's step: counted there
            ):
                try:
                    await behaviour.covered(event.device_id, event.at)
                except OSError:
                    log.warning("covered_verdict_not_recorded", device_id=event.device_id)


def install_rounds(rt: Runtime, instance: str) -> None:
    """Night rounds: the API where "api" runs; the planner, watchdog and a worker where "rounds"
    runs; a worker that probes where "probes" runs (probes scale out as more processes). A worker
    without the probe sends each look to a human, and takes a due check only after 30 s, so
    that processes with the probe get every check first."""
    settings, app = rt.settings, rt.app
    roles = settings.roles
    rounds = Rounds(
        rt.pool,
        config=RoundsConfig(
            worker_id=f"{instance}-rounds",
            zone=settings.time_zone,
            plan_hour=settings.plan_hour,
            run_watchdog="rounds" in roles,
            run_workers="rounds" in roles or "probes" in roles,
            claim_after_s=0.0 if "probes" in roles else 30.0,
            share_events=True,
        ),
        gate=rt.gate,
        bases=rt.gate,
        devices=RegistryDevices(
            rt.pool,
            wake=command_wake(
                rt.commands, link=rt.mqtt, settle_s=2.0 * settings.mqtt_keepalive_s + 2.0
            ),
        ),
        clock=rt.clock,
        prober=MotionProber(rt.signalling, zones=zones_of(rt.pool)) if "probes" in roles else None,
        publish=rt.bus.publish,
    )
    app[rounds_api.STORE] = rounds.store
    app[rounds_api.CLOCK] = rt.clock
    app[rounds_api.WATCHDOG] = rounds.watchdog
    app[rounds_api.ZONE] = settings.zone
    app[consent_api.PLAN_HOUR] = settings.plan_hour  # a plan's agreed times fit a round
    app[rounds_api.PUBLISH] = rt.bus.publish
    app[console.EVENT_ENCODERS].append(rounds_api.console_event)
    if "api" in settings.roles:
        http.add_routes(app, rounds_api.routes())
        events = rounds.relay_events(rt.bus.publish)  # other processes' steps, for the console
        rt.tasks.append(asyncio.create_task(events, name="rounds-events"))
    if "rounds" in roles or "probes" in roles:
        rt.tasks.append(asyncio.create_task(run_rounds(rounds, rt.bus, rt.gate), name="rounds"))


async def run_rounds(rounds: Rounds, bus: EventBus, gate: Gate) -> None:
    """The round's tasks, fed with presence from the bus and the gate's consent changes."""
    with bus.subscribe() as presence, contextlib.closing(gate.changes()) as changes:
        await rounds.run(presence=presence, changes=changes)


async def serve(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[str, Runtime], None] | None = None,
) -> None:
    """Run the service until SIGTERM/SIGINT (or ``stop``)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with runtime(settings) as rt:
        runner = web.AppRunner(rt.app, handle_signals=False, shutdown_timeout=5)
        await runner.setup()
        site = web.TCPSite(runner, settings.http_host, settings.http_port)
        await site.start()
        url = f"http://{settings.http_host}:{_bound_port(runner, settings.http_port)}"
        log.info("http_serving", url=url, roles=",".join(settings.roles))
        if on_ready is not None:
            on_ready(url, rt)
        try:
            await stop.wait()
        finally:
            log.info("shutdown_started")
            await runner.cleanup()
    log.info("shutdown_finished")


def _bound_port(runner: web.AppRunner, fallback: int) -> int:
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    return fallback
