"""The ``homecare`` command. Each subcommand builds settings once; a bad value exits 2."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from consent.model import DEFAULT_VIEW_CAP_S, MAX_VIEW_CAP_S, MIN_VIEW_CAP_S
from devices.envelope import LookReason
from kernel.roles import LOGINS
from services import logs
from services.settings import PREFIX, Settings, SettingsError, load, markdown_reference
from tools.agent_cli import add_commands as add_agent_commands
from tools.ops_cli import add_commands as add_ops_commands
from tools.retention_cli import add_commands as add_retention_commands

if TYPE_CHECKING:
    import asyncpg

log = structlog.get_logger(__name__)

Command = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from services import app

    _require(settings)
    await app.serve(settings, stop=_stop_event())
    return 0


async def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    """The settings in effect as ``HOMECARE_X=value`` lines (secrets as ``***``), or with
    ``--markdown`` the reference ``docs/configuration.md`` is made of."""
    if args.markdown:
        sys.stdout.write(markdown_reference())
        return 0
    for name, shown in settings.shown().items():
        variable = f"{PREFIX}{name.upper()}"
        print(f"# {variable} is not set" if shown is None else f"{variable}={shown}")
    return 0


async def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    import asyncpg

    from services import db

    _require(settings, mqtt=False)
    assert settings.database_url is not None
    conn = await asyncpg.connect(settings.database_url)
    try:
        applied = await db.migrate(conn)
    finally:
        await conn.close()
    print(f"{len(applied)} migration(s) applied" + (": " + ", ".join(applied) if applied else ""))
    return 0


async def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from simulators import homes

    if settings.mqtt_url is None:
        raise SettingsError("HOMECARE_MQTT_URL is required for simulate")
    specs = homes.home_devices(args.homes, first=args.first)
    if args.device:
        specs = [s for s in specs if s.device_id in set(args.device)]
        if not specs:
            raise SettingsError("--device names no device of the simulated homes")
    peers: dict[str, Any] = {}
    decorate = _media(args, peers)
    stop = _stop_event()
    print(f"simulating {len(specs)} device(s) of {args.homes} home(s)", flush=True)
    async with _kiosk(args, peers):
        await homes.run_devices(
            specs,
            mqtt_url=settings.mqtt_url,
            prefix=settings.mqtt_topic_prefix,
            keepalive_s=settings.mqtt_keepalive_s,
            stop=stop,
            health_interval_s=args.health_interval,
            decorate=decorate,
        )
    return 0


@contextlib.asynccontextmanager
async def _kiosk(args: argparse.Namespace, peers: dict[str, Any]) -> AsyncIterator[None]:
    """The video phones' Svara / Avvisa screens on ``--kiosk-port`` (loopback), if asked for."""
    if args.kiosk_port is None:
        yield
        return
    from simulators import kiosk

    async with kiosk.serving(peers, args.kiosk_port) as url:
        print(f"video phone screens (Svara / Avvisa): {url}/", flush=True)
        yield


def _media(args: argparse.Namespace, peers: dict[str, Any] | None = None) -> Callable[[Any], None]:
    """Real media for simulated devices from ``--scene`` and ``--answer`` (bad ones exit 2)."""
    from homeside.peer import AnswerPolicy
    from simulators import homes

    try:
        every, per_home = homes.parse_scenes(args.scene or [])
        policy = AnswerPolicy.parse(args.answer)
    except ValueError as e:
        raise SettingsError(str(e)) from None
    return homes.media(every=every, per_home=per_home, policy=policy, peers=peers)


async def cmd_view(args: argparse.Namespace, settings: Settings) -> int:
    """A view names its due check (``--check``) or is an extra look (``--reason`` and
    ``--note``); with neither the server answers ``denied: no_due_check`` (exit 2)."""
    from devices.envelope import Purpose
    from tools.view import view_command

    if (args.reason is None) != (args.note is None or not args.note.strip()):
        print("homecare view: an extra look needs both --reason and --note", file=sys.stderr)
        return 2
    url = args.url or f"http://{settings.http_host}:{settings.http_port}"
    return await view_command(
        url=url,
        device_id=args.device_id,
        token=args.token or os.environ.get("HOMECARE_TOKEN"),
        purpose=Purpose.CALL if args.call else Purpose.VIEW,
        duration_s=args.seconds,
        check_id=args.check,
        reason=None if args.reason is None else LookReason(args.reason),
        note=args.note,
    )


@contextlib.asynccontextmanager
async def _demo_servers(settings: Settings) -> AsyncIterator[Settings]:
    """Fill in embedded PostgreSQL / MQTT where the settings name none."""
    from tools import embedded

    with contextlib.ExitStack() as sync_stack:
        async with contextlib.AsyncExitStack() as stack:
            db_url = settings.database_url
            mqtt_url = settings.mqtt_url
            if db_url is None:
                print("no HOMECARE_DATABASE_URL: starting an embedded PostgreSQL ...", flush=True)
                db_url = await asyncio.to_thread(sync_stack.enter_context, embedded.postgres())
            if mqtt_url is None:
                if embedded.has_mosquitto():
                    print("no HOMECARE_MQTT_URL: starting a private mosquitto ...", flush=True)
                    mqtt_url = sync_stack.enter_context(embedded.mosquitto())
                else:
                    print(
                        "no HOMECARE_MQTT_URL: starting the in-process amqtt broker ...", flush=True
                    )
                    mqtt_url = await stack.enter_async_context(embedded.amqtt_broker())
            yield dataclasses.replace(settings, database_url=db_url, mqtt_url=mqtt_url)


async def _devices_online(
    pool: asyncpg.Pool,
    device_ids: list[str],
    since: datetime,
    stop: asyncio.Event,
    *,
    limit_s: float = 60.0,
) -> frozenset[str]:
    """Wait until every device is online in this run (read from the registry every 0.5 s, see
    ``demo_seed.devices_awaited``), ``stop`` is set, or ``limit_s`` passed; the devices still
    missing."""
    import time

    from tools.demo_seed import devices_awaited

    deadline = time.monotonic() + limit_s
    while True:
        rows = await pool.fetch(
            "SELECT device_id, presence, last_seen FROM devices WHERE device_id = ANY($1::text[])",
            device_ids,
        )
        missing = devices_awaited(
            device_ids, [(r["device_id"], r["presence"], r["last_seen"]) for r in rows], since=since
        )
        if not missing or stop.is_set() or time.monotonic() >= deadline:
            return missing
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def _demo_accounts(rt: Any, orgs: int) -> tuple[tuple[Any, ...], dict[str, str]]:
    """The demo's organisations (none: the default one) and its accounts with fresh passwords."""
    from identity.login import ensure_demo_accounts
    from tools import demo_orgs

    if orgs <= 1:
        return (), await ensure_demo_accounts(rt.pool)
    several = demo_orgs.demo_orgs(orgs)  # each its unit, team, homes and accounts
    await demo_orgs.ensure_orgs(rt.pool, several, rt.clock())
    return several, await demo_orgs.ensure_org_accounts(rt.pool, several)


async def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    import socket
    import time

    from services import app
    from simulators import homes
    from tools.demo_seed import deployment_prefix, seed_consent

    peers: dict[str, Any] = {}
    decorate = _media(args, peers)
    started = time.monotonic()
    stop = _stop_event()
    if "HOMECARE_PLAN_HOUR" not in os.environ:
        # the demo night begins now, so the round must cover the day too (12:00 to 12:00)
        settings = dataclasses.replace(settings, plan_hour=12)
    shared_broker = settings.mqtt_url is not None
    async with _demo_servers(settings) as filled, _kiosk(args, peers):
        settings = filled
        assert settings.mqtt_url is not None
        assert settings.database_url is not None
        mqtt_url = settings.mqtt_url
        if shared_broker and "HOMECARE_MQTT_TOPIC_PREFIX" not in os.environ:
            # a broker others may use too: this demo's devices get topics (and client ids) of
            # their own, so two demos on one broker never collide
            prefix = deployment_prefix(
                settings.mqtt_topic_prefix,
                host=socket.gethostname(),
                database_url=settings.database_url,
            )
            settings = dataclasses.replace(settings, mqtt_topic_prefix=prefix)
            print(f"MQTT topic prefix of this demo: {prefix}", flush=True)
        ready: asyncio.Queue[tuple[str, app.Runtime]] = asyncio.Queue()
        async with asyncio.TaskGroup() as tg:
            server = tg.create_task(
                app.serve(settings, stop=stop, on_ready=lambda u, r: ready.put_nowait((u, r)))
            )
            waiter = tg.create_task(ready.get())
            await asyncio.wait({server, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if server.done():
                waiter.cancel()
                return 1
            url, rt = waiter.result()
            from tools import demo_orgs

            orgs, accounts = await _demo_accounts(rt, args.orgs)
            specs = homes.home_devices(args.homes)
            print(
                f"\nNattlig tillsyn demo: {url}/  ({len(specs)} simulated devices in "
                f"{args.homes} homes; Ctrl-C stops)",
                flush=True,
            )
            for line in demo_orgs.describe(orgs, args.homes):
                print(line, flush=True)
            print("demo accounts (username / password):", flush=True)
            for username, password in accounts.items():
                print(f"  {username:16} {password}", flush=True)
            since = rt.clock()
            tg.create_task(
                homes.run_devices(
                    specs,
                    mqtt_url=mqtt_url,
                    prefix=settings.mqtt_topic_prefix,
                    keepalive_s=settings.mqtt_keepalive_s,
                    stop=stop,
                    decorate=decorate,
                )
            )
            # Seeded once the devices are online: tonight is planned from the seed at once, and a
            # camera still offline then would send its checks to the night patrol.
            missing = await _devices_online(rt.pool, [s.device_id for s in specs], since, stop)
            if stop.is_set():
                return 0  # SIGTERM/SIGINT while waiting: the server and devices are stopping
            online_s = time.monotonic() - started
            if missing:
                print(f"not online after {online_s:.0f} s: {' '.join(sorted(missing))}", flush=True)
            seeded = await seed_consent(
                rt.consent,
                rt.pool,
                homes=args.homes,
                now=rt.clock(),
                zone_name=settings.time_zone,
                view_cap_s=args.view_cap,
                team_of=(
                    (lambda h: demo_orgs.org_of_home(h, args.homes, orgs).team_id) if orgs else None
                ),
            )
            print("demo brukare (agreed times of a demo night that begins now):", flush=True)
            for line in seeded.lines:
                print(f"  {line}", flush=True)
            print(flush=True)
            print(
                f"{len(specs) - len(missing)} of {len(specs)} simulated devices online "
                f"{online_s:.1f} s after start",
                flush=True,
            )
            print(
                f"live view of a camera: {url}/viewer/?device={specs[0].device_id}"
                " (log in to the console and start your duty first; name a due check from the"
                " queue, or an extra look's reason and note)",
                flush=True,
            )
    return 0


async def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    from tools.audit_cli import audit_verify_command

    _require(settings, mqtt=False)
    assert settings.database_url is not None
    return await audit_verify_command(
        settings.database_url,
        anchors=args.anchors,
        public_key=args.public_key or (),
        anchor_key=settings.audit_anchor_key,
    )


async def cmd_audit_keygen(args: argparse.Namespace, settings: Settings) -> int:
    from tools.audit_cli import audit_keygen_command

    return audit_keygen_command(args.out)


async def cmd_token_create(args: argparse.Namespace, settings: Settings) -> int:
    from tools.token_cli import token_create_command

    _require(settings, mqtt=False)
    assert settings.database_url is not None
    return await token_create_command(
        settings.database_url,
        role=args.role,
        username=args.username,
        ttl_s=args.ttl_s,
        label=args.label,
    )


async def cmd_devices(args: argparse.Namespace, settings: Settings) -> int:
    from tools.provision import run_command

    return run_command(args, settings.mqtt_topic_prefix)


async def cmd_simulate_night(args: argparse.Namespace, settings: Settings) -> int:
    from tools import night_sim

    result = await night_sim.command(args, settings)
    print(night_sim.render(result), flush=True)
    return 0 if result.ok else 1


def _require(settings: Settings, *, mqtt: bool = True) -> None:
    if settings.database_url is None:
        raise SettingsError("HOMECARE_DATABASE_URL is required (e.g. postgresql://user@host/db)")
    if mqtt and settings.mqtt_url is None:
        raise SettingsError("HOMECARE_MQTT_URL is required (e.g. mqtt://127.0.0.1:1883)")


def _view_cap(text: str) -> int:
    """``--view-cap``: whole seconds in the plans' range (argparse exits 2 otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of seconds: {text!r}") from None
    if not MIN_VIEW_CAP_S <= value <= MAX_VIEW_CAP_S:
        raise argparse.ArgumentTypeError(
            f"the view cap must be {MIN_VIEW_CAP_S} to {MAX_VIEW_CAP_S} s"
        )
    return value


def _orgs(text: str) -> int:
    from tools.demo_orgs import MAX_ORGS

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--orgs is a whole number") from None
    if not 1 <= value <= MAX_ORGS:
        raise argparse.ArgumentTypeError(f"--orgs is 1 to {MAX_ORGS}")
    return value


def _demo_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--homes", type=int, default=6)
    s.add_argument(
        "--orgs",
        type=_orgs,
        default=1,
        help="organisations (municipalities) to split the homes between, each with its own "
        "team and demo accounts (default 1: the default organisation)",
    )
    s.add_argument("--port", type=int, help="HTTP port (default 8080)")
    s.add_argument(
        "--view-cap",
        type=_view_cap,
        default=DEFAULT_VIEW_CAP_S,
        help=f"the demo plans' live-view cap in s ({DEFAULT_VIEW_CAP_S})",
    )


def _view_parser(sub: Any) -> None:
    """``homecare view DEVICE --check ID`` or ``--reason CODE --note TEXT`` (an extra look)."""
    s = sub.add_parser("view", help="receive a live view (or --call) and print the frame count")
    s.set_defaults(run=cmd_view)
    s.add_argument("device_id", metavar="DEVICE")
    s.add_argument("--url", help="service URL (default from HOMECARE_HTTP_HOST/PORT)")
    s.add_argument("--token", help="bearer token (default $HOMECARE_TOKEN)")
    s.add_argument("--seconds", type=float, help="hang up after this long (default: the cap)")
    s.add_argument("--call", action="store_true", help="a video call instead of a view")
    owed = s.add_mutually_exclusive_group()
    owed.add_argument("--check", metavar="ID", help="the due check this view serves")
    owed.add_argument(
        "--reason",
        choices=[r.value for r in LookReason],
        help="an extra look (no due check): why; needs --note",
    )
    s.add_argument("--note", metavar="TEXT", help="an extra look: what happened (kept, not logged)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="homecare", description="Nattlig tillsyn backend")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the service (all roles unless HOMECARE_ROLES says)")
    s.set_defaults(run=cmd_serve)
    s.add_argument("--port", type=int, help="HTTP port (overrides HOMECARE_HTTP_PORT)")
    s.add_argument("--roles", help="comma list of api,signalling,rounds,probes")
    _config_command(sub)
    s = sub.add_parser("migrate", help="apply database migrations and exit")
    s.set_defaults(run=cmd_migrate)
    s = sub.add_parser("simulate", help="run simulated homes against the broker")
    s.set_defaults(run=cmd_simulate)
    s.add_argument("--homes", type=int, default=3)
    s.add_argument("--first", type=int, default=1, help="number of the first home")
    s.add_argument("--device", action="append", help="run only this device id (repeatable)")
    s.add_argument("--health-interval", type=float, default=30.0, help="seconds between health")
    _media_arguments(s)
    s = sub.add_parser("demo", help="services plus simulated homes; embedded servers if none set")
    s.set_defaults(run=cmd_demo)
    _demo_arguments(s)
    _media_arguments(s)
    _view_parser(sub)
    s = sub.add_parser("simulate-night", help="a whole night of rounds in simulated homes, fast")
    s.set_defaults(run=cmd_simulate_night)
    s.add_argument("--homes", type=int, default=200, help="simulated homes (1..20000)")
    s.add_argument("--speed", type=float, default=0.0, help="simulated s per real s (0: max)")
    s.add_argument("--night", type=date.fromisoformat, help="evening date (default: today)")
    s.add_argument("--progress", action="store_true", help="log the simulated time as it goes")
    s.add_argument(
        "--operators", choices=("work", "idle"), default="work", help="idle: nobody works the queue"
    )
    s.add_argument(
        "--patrol", choices=("work", "idle"), default="work", help="idle: the patrol never answers"
    )
    _audit_parser(sub)
    s = sub.add_parser("token", help="bearer tokens for scripts and integrations")
    token_sub = s.add_subparsers(dest="token_command", required=True)
    s = token_sub.add_parser("create", help="print a new bearer token (shown once)")
    s.set_defaults(run=cmd_token_create)
    s.add_argument("--role", required=True, choices=sorted(r.value for r in LOGINS))
    s.add_argument("--username", help="act as this account (created password-less if missing)")
    s.add_argument("--ttl-s", type=int, default=30 * 24 * 3600, help="lifetime in seconds")
    s.add_argument("--label", default="", help="what the token is for (max 100 characters)")
    _org_parser(sub)
    s = sub.add_parser("devices", help="device broker credentials (provision, revoke, acl)")
    s.set_defaults(run=cmd_devices)
    from tools.provision import add_arguments as add_devices_arguments

    add_devices_arguments(s)
    add_agent_commands(sub)
    add_ops_commands(sub)
    add_retention_commands(sub)
    return p


async def cmd_org_add(args: argparse.Namespace, settings: Settings) -> int:
    from tools.org_cli import org_add_command

    _require(settings, mqtt=False)
    assert settings.database_url is not None
    return await org_add_command(
        settings.database_url,
        organisation_id=args.organisation_id,
        name=args.name,
        kind=args.kind,
        unit=args.unit,
        team=args.team,
        admin=args.admin,
    )


def _audit_parser(sub: Any) -> None:
    """``homecare audit verify [--anchors DIR [--public-key FILE]]``, ``homecare audit keygen``."""
    s = sub.add_parser("audit", help="the audit log")
    audit_sub = s.add_subparsers(dest="audit_command", required=True)
    s = audit_sub.add_parser("verify", help="walk the hash chain; exit 1 naming the first break")
    s.set_defaults(run=cmd_audit_verify)
    s.add_argument(
        "--anchors",
        type=Path,
        metavar="DIR",
        help="also check the chain against the signed anchors in DIR (HOMECARE_AUDIT_ANCHOR_DIR)",
    )
    s.add_argument(
        "--public-key",
        type=Path,
        action="append",
        metavar="FILE",
        help="public key the anchors are signed with (repeatable; default: the public half of "
        "HOMECARE_AUDIT_ANCHOR_KEY)",
    )
    s = audit_sub.add_parser("keygen", help="write a new Ed25519 key for the audit anchors")
    s.set_defaults(run=cmd_audit_keygen)
    s.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="private key; FILE.pub beside it"
    )


def _org_parser(sub: Any) -> None:
    """``homecare org add ID --name NAME [--unit ID:NAME] [--team ID:NAME] [--admin USER]``."""
    s = sub.add_parser("org", help="organisations (installation-level, run as the system)")
    org_sub = s.add_subparsers(dest="org_command", required=True)
    s = org_sub.add_parser(
        "add", help="create an organisation, its first unit and team, and its first administrator"
    )
    s.set_defaults(run=cmd_org_add)
    s.add_argument("organisation_id", metavar="ID", help="1..64 of a-z, 0-9 and '-'")
    s.add_argument("--name", required=True, help="the organisation's name")
    s.add_argument("--kind", choices=("municipality", "care_provider"), default="municipality")
    s.add_argument("--unit", metavar="ID:NAME", help="its first unit (district)")
    s.add_argument("--team", metavar="ID:NAME", help="its first team (needs --unit)")
    s.add_argument(
        "--admin",
        metavar="USERNAME",
        help="its first administrator (password-less; a bearer token is printed once)",
    )


def _config_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("config", help="check the settings and print them (secrets hidden)")
    s.set_defaults(run=cmd_config)
    s.add_argument("--markdown", action="store_true", help="print the reference of every setting")


def _media_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--scene",
        action="append",
        metavar="[N=]KIND[:ir]",
        help="camera scene for every home, or home N (asleep, restless, walking, fall, fallen, "
        "leaves_bed, empty_bed, lights_off, frozen, covered); repeatable",
    )
    s.add_argument(
        "--answer",
        default="after:4",
        help="video phones answer calls: always, never, manual or after:N seconds",
    )
    s.add_argument(
        "--kiosk-port",
        type=int,
        help="serve the video phones' Svara / Avvisa screens on this loopback port (0: any)",
    )


EXIT_BAD_INSTALL = 3
"""``homecare`` refuses to start: another distribution claims one of our package names."""


def _refuse_a_mixed_install() -> bool:
    """Say plainly, once, why this install cannot be trusted (see ``tools/install.py``)."""
    from tools import install

    found = install.problems()
    for problem in found:
        print(f"homecare: refusing to start: {problem}", file=sys.stderr)
    if found:
        print(
            f"homecare: install {install.DISTRIBUTION} into a virtual environment of its own "
            "(see docs/operations.md, 'One environment of its own')",
            file=sys.stderr,
        )
    return bool(found)


def main(argv: list[str] | None = None) -> int:
    if _refuse_a_mixed_install():
        return EXIT_BAD_INSTALL
    args = parser().parse_args(argv)
    try:
        overrides: dict[str, object] = {}  # checked like the environment
        if getattr(args, "port", None) is not None:
            overrides["http_port"] = args.port
        if getattr(args, "roles", None):
            overrides["roles"] = args.roles  # text: read like HOMECARE_ROLES
        if getattr(args, "log_level", None):
            overrides["log_level"] = args.log_level  # homecare agent --log-level
        settings = load(os.environ, overrides)
        logs.configure(settings.log_level, settings.log_format)
        command: Command = args.run
        return asyncio.run(command(args, settings))
    except SettingsError as e:
        print(f"homecare: configuration error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
