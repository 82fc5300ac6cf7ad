"""The composition root: one bootstrap builds every resource, wires the slices together for the
roles the process runs, and tears down in order.

``runtime(settings, clock=..., options=...)`` is an async context manager yielding a
:class:`Runtime`. It is the one bootstrap: ``serve`` runs it as a process until SIGTERM/SIGINT
(the demo runs ``serve``), ``simulate-night`` runs it on a sped-up clock with its simulated
probe and wake (:class:`Options`), and the benchmarks and tests run it as it is.

Per role (``HOMECARE_ROLES`` / ``--roles``):

- always: ``/healthz``, ``/readyz`` (PostgreSQL, the MQTT connection, every change feed the
  process listens to, every supervised task),
  ``/metrics`` (:class:`services.web.metrics.Metrics`, one registry per runtime); the pool, the
  consent gate and its listener, the device registry on the process's one MQTT connection
  (:class:`services.mqtt.MqttLink`, shared with signalling), and the behaviour that counts toward
  hard rule 8 (``consent-covered``, ``consent-offline``);
- ``api``: the HTTP API, OpenAPI, login, the console and its WebSocket, the relay of other
  processes' round steps to this process's consoles;
- ``signalling``: ``/ws/signal`` and the reference viewer, and a share of device signalling;
- ``rounds``: the planner and watchdog and a worker, and the daily retention job
  (``retention``); ``probes``: a worker with the motion probe (signalling runs in-process for it);
- with an audit anchor key (``HOMECARE_AUDIT_ANCHOR_KEY``), any role: ``audit-anchor``, which signs
  the audit chain's head when it changed and once more at a clean shutdown.

Background tasks run in one :class:`services.supervisor.Supervisor`: a crash is logged, counted
in ``/metrics`` and makes ``/readyz`` answer 503 naming the task. Besides those :func:`start_tasks`
starts, the MQTT link's loops, signalling's loops (``signal-gate``, ``signal-recheck``,
``signal-sweep``; signalling owns and ends them, the supervisor guards them) and the device
registry's ``device-sweep`` and ``device-intake`` (where the process has a link), the device
feed's ``device-feed`` (always) and ``signal-feed`` (where signalling runs) are supervised too.
Shutdown order: stop accepting HTTP and close WebSockets (``serve``, ``app.on_shutdown``), cancel
the supervised tasks (the last started first), close signalling (its peers and timers), publish
``stopped`` and close MQTT, close the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import asyncpg
import structlog
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consent import api as consent_api
from consent import binding_api as consent_binding_api
from consent import ending_api as consent_ending_api
from consent import rules as consent_rules
from consent.behaviour import BehaviourWatch
from consent.ending import Endings
from consent.gate import ChangeBus, Gate
from consent.store import PgConsentStore
from devices import api as devices_api
from devices import topics
from devices.commands import Commands
from devices.feed import DeviceFeed
from devices.handler import BATCH_CHANNELS, DeviceHandler
from devices.intake import SHARE_GROUP as INTAKE_GROUP
from devices.intake import Intake
from identity import api as staff_api
from identity import login as auth
from identity import oidc, org_api
from identity import revocations as revocation_feed
from kernel import access
from kernel import listen as kernel_listen
from kernel.audit import anchor as audit_anchor
from kernel.audit import anchoring
from kernel.audit import store as audit_store
from kernel.clock import SYSTEM_CLOCK, Clock, ClockPort
from kernel.roles import PUBLIC, Route
from kernel.timing import Timing
from services import collector, db, retention
from services.camera_zones import lookup as zones_of
from services.events import EventBus, Overflow
from services.mqtt import MqttLink
from services.settings import Settings, SettingsError
from services.signalling import app as signalling_app
from services.signalling.ports import Latencies, SignallingConfig
from services.signalling.service import Signalling
from services.supervisor import Supervisor
from services.web import console, http, limits
from services.web import metrics as ops_metrics
from services.web.metrics_tables import PgTables, TableSnapshot
from supervision import api as rounds_api
from supervision import extract_api, home_probe, zones_api
from supervision.checks import State
from supervision.looks import CheckLooks
from supervision.ports import CheckChanged, Prober
from supervision.probe import MotionProber
from supervision.runner import Runner
from supervision.service import RegistryDevices, Rounds, RoundsConfig, Wake, command_wake
from supervision.store import RoundStore

log = structlog.get_logger(__name__)

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


def signalling_config(timing: Timing) -> SignallingConfig:
    """Signalling's deadlines from the one timing policy (its rates stay its own)."""
    return dataclasses.replace(
        SignallingConfig(),
        default_cap_s=timing.default_cap_s,
        ring_timeout_s=timing.ring_timeout_s,
        max_call_s=timing.max_call_s,
        stale_video_s=timing.stale_video_s,
        recheck_interval_s=timing.recheck_interval_s,
        sweep_interval_s=timing.sweep_interval_s,
        sweep_grace_s=timing.sweep_grace_s,
        command_timeout_s=timing.command_timeout_s,
        indicator_ack_s=timing.indicator_ack_s,
        close_wait_s=timing.close_wait_s,
        pending_close_wait_s=timing.pending_close_wait_s,
    )


@dataclass(frozen=True, slots=True)
class Options:
    """How a caller other than ``serve`` runs the bootstrap (the simulated night, tests).

    ``prober`` replaces the motion probe over signalling and ``wake`` the wake command over MQTT;
    with both (or roles that need neither) the process needs no broker (``mqtt_url`` None).
    ``drive=False`` starts no task of :func:`start_tasks` (the broker link's, signalling's and
    the device sweep still run): the caller steps the round itself
    (``rt.rounds.watchdog.tick()``, ``runner.tick()`` for each of ``rt.workers``). ``workers``
    round workers, each after the first on its own pool of ``pool_max`` connections. ``timing``
    replaces the settings' timing policy."""

    prober: Prober | None = None
    wake: Wake | None = None
    drive: bool = True
    workers: int = 1
    pool_max: int = 10
    timing: Timing | None = None

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("workers is at least 1")
        if self.pool_max < 2:  # a night's planning reads on one while it stores on another
            raise ValueError("pool_max is at least 2")


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    bus: EventBus
    clock: Clock
    timing: Timing
    app: web.Application
    gate: Gate
    consent: PgConsentStore
    behaviour: BehaviourWatch
    supervisor: Supervisor
    metrics: ops_metrics.Metrics
    mqtt: MqttLink | None = None  # the process's one broker connection
    devices: DeviceHandler | None = None
    intake: Intake | None = None  # this process's share of device messages (issue 21)
    feed: DeviceFeed | None = None  # every process's presence and call answers, via NOTIFY
    commands: Commands | None = None
    signalling: Signalling | None = None
    rounds: Rounds | None = None
    workers: list[Runner] = field(default_factory=list)  # the round workers of this process
    anchorer: anchoring.Anchorer | None = None  # signs the audit chain's head (issue 18)
    # the NOTIFY feeds this process listens to, each set while it listens (``/readyz``)
    feeds: dict[str, asyncio.Event] = field(default_factory=dict)

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The supervised background tasks, in the order they were started."""
        return self.supervisor.tasks


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when every dependency of the process's roles answers and no supervised task failed:
    PostgreSQL, the MQTT connection (where the process has one), every change feed the process
    listens to (consent changes and withdrawals, revoked logins, device presence, other
    processes' round steps: until each listens, a withdrawal could miss a session this process
    holds), the background tasks."""
    rt = request.app[RUNTIME]
    checks: dict[str, bool] = {"database": False}
    if rt.mqtt is not None:
        checks["broker"] = rt.mqtt.connected.is_set()
    waiting = sorted(name for name, listening in rt.feeds.items() if not listening.is_set())
    checks["feeds"] = not waiting
    checks["tasks"] = rt.supervisor.healthy
    # red while the database is away or fails over (no host of the URL takes writes yet)
    with contextlib.suppress(*kernel_listen.DB_ERRORS):
        async with asyncio.timeout(2):
            checks["database"] = await rt.pool.fetchval("SELECT 1") == 1
    ok = all(checks.values())
    body: dict[str, object] = {"status": "ready" if ok else "not_ready", "checks": checks}
    if waiting:
        body["feeds_not_listening"] = waiting
    if rt.supervisor.failed:
        body["failed_tasks"] = sorted(rt.supervisor.failed)
    return web.json_response(body, status=200 if ok else 503)


async def openapi_doc(request: web.Request) -> web.Response:
    routes: list[Route] = request.app[http.ROUTES]
    return web.json_response(http.openapi(routes, title="Nattlig tillsyn API", version=VERSION))


def core_routes() -> list[Route]:
    """The routes of every process, whatever its roles."""
    return [
        Route("GET", "/healthz", healthz, PUBLIC, "The process is alive", tags=("ops",)),
        Route(
            "GET",
            "/readyz",
            readyz,
            PUBLIC,
            "Database, broker and background tasks are well",
            tags=("ops",),
        ),
        Route(
            "GET",
            "/metrics",
            ops_metrics.scrape,  # loopback or the metrics token, else 403
            PUBLIC,
            "Prometheus metrics (no personal data)",
            tags=("ops",),
        ),
    ]


def api_routes() -> list[Route]:
    return [Route("GET", "/api/openapi.json", openapi_doc, PUBLIC, "This document", tags=("ops",))]


def needs_broker(settings: Settings, options: Options) -> bool:
    """Whether the process's roles need the MQTT connection (see :class:`Options`)."""
    roles = set(settings.roles)
    return (
        bool(roles & {"api", "signalling"})
        or ("probes" in roles and options.prober is None)
        or ("rounds" in roles and options.wake is None)
    )


@contextlib.asynccontextmanager
async def runtime(
    settings: Settings, *, clock: Clock | ClockPort = SYSTEM_CLOCK, options: Options | None = None
) -> AsyncIterator[Runtime]:
    """Build and wire everything for one process; tear it down in reverse."""
    options = options or Options()
    if settings.database_url is None:
        raise RuntimeError("runtime() needs database_url (the demo fills it in)")
    if settings.mqtt_url is None and needs_broker(settings, options):
        raise RuntimeError(
            f"runtime() needs mqtt_url for the roles {','.join(settings.roles)}"
            " (the demo fills it in)"
        )
    roles = set(settings.roles)
    instance = settings.instance_id or uuid.uuid4().hex[:8]
    bus = EventBus()
    supervisor = Supervisor()
    async with contextlib.AsyncExitStack() as stack:
        pool = await stack.enter_async_context(
            db.open_pool(settings.database_url, max_size=options.pool_max)
        )
        consent_bus = ChangeBus()
        consent_store = PgConsentStore(pool, publish=consent_bus.publish)
        gate = Gate(consent_store, consent_bus, clock=clock)
        behaviour = BehaviourWatch(consent_store, threshold=settings.tamper_suspend_threshold)
        app = http.make_app(
            max_body_bytes=settings.max_body_bytes, body_timeout_s=settings.http_body_timeout_s
        )
        limits.install(app, settings)
        rt = Runtime(
            settings=settings,
            pool=pool,
            bus=bus,
            clock=clock,
            timing=options.timing or settings.timing,
            app=app,
            gate=gate,
            consent=consent_store,
            behaviour=behaviour,
            supervisor=supervisor,
            metrics=ops_metrics.Metrics(token=settings.metrics_token),
        )
        app[ops_metrics.METRICS] = rt.metrics
        stack.push_async_callback(rt.metrics.close)
        if settings.mqtt_url is not None:
            await _connect(rt, stack, settings.mqtt_url, instance)
        if rt.mqtt is not None and (
            "signalling" in roles or ("probes" in roles and options.prober is None)
        ):
            assert rt.commands is not None
            rt.signalling = await stack.enter_async_context(
                signalling_app.installed(
                    app,
                    settings,
                    pool=pool,
                    link=rt.mqtt,
                    gate=gate,
                    commands=rt.commands,
                    instance_id=instance,
                    clock=clock,
                    config=signalling_config(rt.timing),
                    guard=supervisor.guard,  # its loops: signal-gate, -recheck, -sweep
                    latencies=Latencies(rt.metrics.granted, rt.metrics.first_frame),
                    # a granted view moves its check to viewing: told to this process's
                    # consoles, and to the others' under the round's own origin
                    checks=CheckLooks(
                        RoundStore(pool, timing=rt.timing, origin=f"{instance}-rounds"),
                        publish=bus.publish,
                    ),
                )
            )
        for extra in range(1, options.workers):
            extra_pool = await stack.enter_async_context(
                db.open_pool(settings.database_url, max_size=options.pool_max)
            )
            rt.workers.append(
                build_rounds(rt, instance, options, pool=extra_pool, suffix=f"-{extra + 1}").runner
            )
        rt.rounds = build_rounds(rt, instance, options)
        rt.workers.insert(0, rt.rounds.runner)
        app[SETTINGS] = settings
        app[RUNTIME] = rt
        authenticator = auth.make_authenticator(
            pool, cookie_secure=settings.cookie_secure, trust_proxy=settings.trust_proxy
        )
        auth.install(app, authenticator)
        revocation_feed.install(app, pool)  # ends /ws/* sockets whose access was taken away
        http.add_routes(app, core_routes())
        if "api" in roles:
            install_api(rt, stack)
        # Entered before the supervisor, so its shutdown anchor comes after every task stopped
        # and before the broker link and the pool close.
        rt.anchorer = await _anchoring(rt, stack)
        await stack.enter_async_context(supervisor)
        start_device_tasks(rt)
        if rt.anchorer is not None:  # whatever drives the round: every process writes audit
            supervisor.spawn("audit-anchor", rt.anchorer.run())
        rt.metrics.watch(rt, TableSnapshot(PgTables(pool), clock))
        if options.drive:
            start_tasks(rt, options)
        yield rt


async def _connect(
    rt: Runtime, stack: contextlib.AsyncExitStack, mqtt_url: str, instance: str
) -> None:
    """The process's one MQTT connection, with the device registry and command acks on it."""
    settings = rt.settings

    async def on_device_event(device_id: str, event: topics.Event, at: datetime) -> None:
        if event.type is topics.EventType.BIND_BUTTON:  # proof for a binding (issue 17)
            await rt.consent.record_bind_button(device_id, at)
        await rt.behaviour.device_event(device_id, event.type.value, at)

    async def on_health_flags(device_id: str, flags: tuple[str, ...], at: datetime) -> None:
        await rt.behaviour.health_flags(device_id, flags, at)  # hard rule 8 (issue 18)

    handler = DeviceHandler(
        rt.pool,
        clock=rt.clock,
        on_presence=lambda _change: None,  # every process's bus hears it from the feed
        on_event=on_device_event,
        on_health_flags=on_health_flags,
    )
    link = MqttLink(
        mqtt_url,
        prefix=settings.mqtt_topic_prefix,
        keepalive_s=settings.mqtt_keepalive_s,
        instance_id=instance,
        on_reject=handler.reject,
        on_connect=lambda: handler.link_connected(2.0 * settings.mqtt_keepalive_s + 2.0),
        guard=rt.supervisor.guard,
    )
    # status, meta, health, event: one process of the group each, stored in batches; a command's
    # ack: every process (its sender waits for it in memory), stored once by a conditional update
    intake = Intake(handler, observe=rt.metrics.device_message_handled)
    for channel in BATCH_CHANNELS:
        link.subscribe_sink(channel, intake.offer, share_group=INTAKE_GROUP)
    link.subscribe(
        topics.Channel.CMD_ACK, handler.handle, observe=rt.metrics.device_message_handled
    )
    stack.push_async_callback(handler.acks_stored, 5.0)  # once the link is closed
    await stack.enter_async_context(link)
    rt.mqtt, rt.devices, rt.intake = link, handler, intake
    rt.commands = Commands(rt.pool, handler, link.publish, settings.mqtt_topic_prefix)


def anchor_key(settings: Settings) -> Ed25519PrivateKey:
    """The audit anchors' signing key from ``HOMECARE_AUDIT_ANCHOR_KEY``; a clear
    :class:`SettingsError` when it cannot be read or is not an Ed25519 key."""
    path = Path(settings.audit_anchor_key)
    try:
        pem = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as e:
        raise SettingsError(
            f"HOMECARE_AUDIT_ANCHOR_KEY cannot be read ({type(e).__name__}); "
            "make one with `homecare audit keygen`"
        ) from None
    try:
        key = audit_anchor.load_private(pem)
    except audit_anchor.AnchorError as e:
        raise SettingsError(f"HOMECARE_AUDIT_ANCHOR_KEY is {e}") from None
    if mode & 0o077:
        log.warning("audit_anchor_key_readable_by_others", mode=oct(mode & 0o777))
    return key


async def _anchoring(rt: Runtime, stack: contextlib.AsyncExitStack) -> anchoring.Anchorer | None:
    """The audit chain's anchors (files, and the retained MQTT topic where the process has a
    link), with the shutdown anchor on the way out; ``None`` when the settings name no key."""
    settings = rt.settings
    if not settings.audit_anchor_key:
        log.info("audit_anchoring_off")
        return None
    publish: anchoring.Publish | None = None
    if (link := rt.mqtt) is not None:
        topic = topics.audit_anchor_topic(settings.mqtt_topic_prefix)

        async def publish(payload: bytes) -> None:
            await link.publish(topic, payload, qos=1, retain=True, timeout_s=5.0)

    anchorer = anchoring.Anchorer(
        rt.pool,
        anchor_key(settings),
        anchoring.AnchorFiles(Path(settings.audit_anchor_dir)),
        clock=rt.clock,
        interval_s=settings.audit_anchor_interval_s,
        publish=publish,
    )
    return await stack.enter_async_context(anchoring.kept(anchorer))


def install_api(rt: Runtime, stack: contextlib.AsyncExitStack) -> None:
    """The HTTP API, login, the console and its WebSocket (the ``api`` role)."""
    settings, app = rt.settings, rt.app
    app[devices_api.POOL] = rt.pool
    app[access.READ_LOG] = audit_store.read_log(rt.pool, rt.clock)  # audited reads (issue 17)
    http.add_routes(app, api_routes())
    http.add_routes(app, auth.routes())
    if (
        login_oidc := oidc.install(
            app, oidc_config(settings), session_secret=settings.session_secret
        )
    ) is not None:
        stack.push_async_callback(login_oidc.close)
    http.add_routes(app, oidc.routes())
    http.add_routes(app, staff_api.routes())
    http.add_routes(app, org_api.routes())
    http.add_routes(app, [*devices_api.routes(), *zones_api.routes()])
    app[consent_api.STORE] = rt.consent
    app[consent_api.CLOCK] = rt.clock
    app[consent_api.ZONE] = settings.zone
    app[consent_api.PLAN_HOUR] = settings.plan_hour  # a plan's agreed times fit a round
    if rt.commands is not None:  # a video phone shows its binding code (issue 17)
        app[consent_binding_api.BIND_CODE_SENDER] = bind_code_sender(rt.commands)
    http.add_routes(app, consent_api.routes())
    # a brukare's service ends (issue 18): its changes reach this process's gate at once
    app[consent_ending_api.ENDINGS] = Endings(rt.pool, publish=rt.consent.published)
    http.add_routes(app, consent_ending_api.routes())
    console.install(app, rt.bus, consent_changes=rt.gate.changes)
    http.add_routes(app, console.routes())
    assert rt.rounds is not None
    app[rounds_api.STORE] = rt.rounds.store
    app[rounds_api.CLOCK] = rt.clock
    app[rounds_api.WATCHDOG] = rt.rounds.watchdog
    app[rounds_api.ZONE] = settings.zone
    app[rounds_api.PUBLISH] = rt.bus.publish
    app[console.EVENT_ENCODERS].append(rounds_api.console_event)
    http.add_routes(app, rounds_api.routes())
    app[extract_api.POOL] = rt.pool  # the brukare's log extract (issue 18)
    http.add_routes(app, extract_api.routes())


def bind_code_sender(commands: Commands) -> consent_binding_api.SendBindCode:
    """The ``bind_code`` command: a video phone shows a binding request's one-time code."""

    async def send(device_id: str, code: str, expires_at: datetime) -> bool:
        args = topics.BindCode(code=code, expires_at=expires_at.timestamp()).args()
        return (await commands.send(device_id, topics.CommandOp.BIND_CODE, args)).ok

    return send


def start_tasks(rt: Runtime, options: Options) -> None:
    """The process's background tasks, supervised; each is cancelled at shutdown."""
    roles = set(rt.settings.roles)
    sup = rt.supervisor
    sup.spawn("consent-listen", rt.gate.listen(rt.pool, ready=_feed(rt, "consent")))
    revocations = rt.app[revocation_feed.REVOCATIONS]
    sup.spawn("revocations-listen", revocations.listen(ready=_feed(rt, "revocations")))
    sup.spawn("consent-covered", report_covered(rt.bus, rt.behaviour))
    assert rt.rounds is not None
    sup.spawn("consent-offline", report_offline(rt.bus, rt.behaviour, rt.rounds.store))
    if "api" in roles:  # other processes' steps, for this process's consoles
        ready = _feed(rt, "round_events")
        sup.spawn("rounds-events", rt.rounds.relay_events(rt.bus.publish, ready=ready))
    if "rounds" in roles or "probes" in roles:
        sup.spawn("rounds", run_rounds(rt.rounds, rt.bus, rt.gate))
        for i, worker in enumerate(rt.workers[1:], start=2):
            sup.spawn(f"rounds-worker-{i}", worker.run(asyncio.Event()))
    if "rounds" in roles:  # once a day; an advisory lock keeps it to one process at a time
        sup.spawn("retention", retention.daily(rt.pool, rt.settings, rt.clock))


def _feed(rt: Runtime, name: str) -> asyncio.Event:
    """A new change feed of the process, set while it listens (``/readyz`` waits for it)."""
    listening = rt.feeds[name] = asyncio.Event()
    return listening


def start_device_tasks(rt: Runtime) -> None:
    """The device tasks of every process, whatever drives the round: the sweep and the intake
    (with the link), the device feed, and its hand-over to signalling (where it runs)."""
    sup = rt.supervisor
    if rt.devices is not None:
        sup.spawn("device-sweep", rt.devices.run_sweep())
    if rt.intake is not None:
        sup.spawn("device-intake", rt.intake.run())
    rt.feed = DeviceFeed(rt.pool, rt.bus.publish)  # presence reaches this process's bus here
    rt.feeds["devices"] = rt.feed.ready
    sup.spawn("device-feed", rt.feed.run())
    if rt.signalling is not None:
        sup.spawn("signal-feed", feed_signalling(rt.bus, rt.signalling))


async def feed_signalling(bus: EventBus, signalling: Signalling) -> None:
    """Presence changes and call answers from the device feed to this process's signalling
    (a lost device ends its sessions; a phone's answer reaches the call wherever it is held).
    Reads the bus without losing an event."""
    with bus.subscribe("signal-feed", overflow=Overflow.KEEP_ALL) as events:
        async for event in events:
            await signalling.on_feed(event)


async def report_covered(bus: EventBus, behaviour: BehaviourWatch) -> None:
    """Hard rule 8, "covered repeatedly": every motion check that found the lens covered (a check
    leaving ``probing`` for a patrol with reason ``camera_covered``) counts as behaviour. Reads
    the bus without losing an event (``KEEP_ALL``): a slow database must not drop a count."""
    with bus.subscribe("consent-covered", overflow=Overflow.KEEP_ALL) as events:
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


async def report_offline(bus: EventBus, behaviour: BehaviourWatch, store: RoundStore) -> None:
    """Hard rule 8, "offline at two consecutive agreed checks" (issue 18): every check the round
    sent to the patrol because its camera was offline (reason ``device_offline``, from the
    planner, the watchdog or a worker) counts, dated at the check's agreed instant, with the
    agreed instants of the brukare's checks around it. Reads the bus without losing an event."""
    with bus.subscribe("consent-offline", overflow=Overflow.KEEP_ALL) as events:
        async for event in events:
            if (
                isinstance(event, CheckChanged)
                and event.state is State.PATROL
                and event.reason == "device_offline"
                and event.device_id is not None
                and not event.relayed  # another process's step: counted there
            ):
                try:
                    await offline_at_check(
                        behaviour, store, event.check_id, event.device_id, event.at
                    )
                except Exception:  # a task's boundary: logged, the next check still counts
                    log.exception("offline_check_not_recorded", check_id=event.check_id)


async def offline_at_check(
    behaviour: BehaviourWatch, store: RoundStore, check_id: str, device_id: str, at: datetime
) -> None:
    """Record that the round found ``device_id`` offline at ``at`` for the check ``check_id``."""
    check = await store.get(check_id)
    span = consent_rules.BEHAVIOUR_WINDOW
    around = await store.agreed_instants(
        check.recipient_id, since=check.agreed_at - span, until=check.agreed_at + span
    )
    await behaviour.offline_at_check(device_id, check.agreed_at, around, observed_at=at)


def build_rounds(
    rt: Runtime,
    instance: str,
    options: Options,
    *,
    pool: asyncpg.Pool | None = None,
    suffix: str = "",
) -> Rounds:
    """Night rounds: the planner and watchdog where "rounds" runs; a worker where "rounds" or
    "probes" runs, that probes where "probes" runs (probes scale out as more processes). A worker
    without the probe sends each look to a human, and takes a due check only after 30 s, so
    that processes with the probe get every check first. The API (where "api" runs) reads the
    same store."""
    settings = rt.settings
    roles = settings.roles
    wake = options.wake
    if wake is None and rt.commands is not None:
        wake = command_wake(
            rt.commands,
            timeout_s=rt.timing.wake_timeout_s,
            link=rt.mqtt,
            settle_s=2.0 * settings.mqtt_keepalive_s + 2.0,
        )
    prober = options.prober
    if prober is None and "probes" in roles and rt.signalling is not None:
        prober = MotionProber(rt.signalling, zones=zones_of(rt.pool))
        if rt.commands is not None and rt.mqtt is not None:
            prober = home_probe.routed(
                prober,
                link=rt.mqtt,
                commands=rt.commands,
                gate=rt.gate,
                pool=rt.pool,
                zones=zones_of(rt.pool),
                timing=rt.timing,
                clock=rt.clock,
            )
    pool = pool or rt.pool
    return Rounds(
        pool,
        config=RoundsConfig(
            worker_id=f"{instance}-rounds{suffix}",
            zone=settings.time_zone,
            plan_hour=settings.plan_hour,
            run_watchdog="rounds" in roles,
            run_workers="rounds" in roles or "probes" in roles,
            claim_after_s=0.0 if "probes" in roles else rt.timing.no_prober_claim_after_s,
            share_events=True,
            timing=rt.timing,
        ),
        gate=rt.gate,
        bases=rt.gate,
        devices=RegistryDevices(pool, wake=wake),
        clock=rt.clock,
        prober=prober,
        publish=rt.bus.publish,
        on_planned=rt.metrics.planned,
    )


async def run_rounds(rounds: Rounds, bus: EventBus, gate: Gate) -> None:
    """The round's tasks, fed with presence from the bus (every event: hard rules 7 and 8 ride
    on presence) and the gate's consent changes."""
    with (
        bus.subscribe("rounds-presence", overflow=Overflow.KEEP_ALL) as presence,
        contextlib.closing(gate.changes()) as changes,
    ):
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
        collector.collect_less()  # start-up is done: what it made is never scanned again
        runner = web.AppRunner(
            rt.app,
            handle_signals=False,
            shutdown_timeout=5,
            **http.server_options(header_timeout_s=settings.http_header_timeout_s),
        )
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
