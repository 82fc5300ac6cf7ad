"""``homecare agent``: the device agent on a real camera or video phone (``agent/``).

``tools/cli.py`` registers it with :func:`add_commands`. Every option is checked before anything
connects: a bad ``--source`` (an unknown form, a missing or unreadable file, a file without
video, a bad RTSP URL, a path that is no camera device), a bad device id, broker URL, CA file,
size or indicator hook exits 2 with a message and changes nothing.

The broker URL comes from ``--mqtt-url`` or ``HOMECARE_MQTT_URL`` (``mqtts://ID:PASSWORD@broker:
8883`` with the device's own account, see ``deploy/mosquitto``), the topic prefix from
``--prefix`` or ``HOMECARE_MQTT_TOPIC_PREFIX``; ``SIGUSR1`` presses the unit's bind button,
``SIGTERM``/``SIGINT`` publish ``stopped`` and end it.

Logs: what the agent and the device side log (a probe answered, the bind button pressed, the
video source lost and opened again, an indicator hook that failed, ...) are events on standard
error as ``homecare serve`` writes them (:mod:`services.logs`: JSON off a TTY, readable on one;
``HOMECARE_LOG_FORMAT``), at ``--log-level`` or ``HOMECARE_LOG_LEVEL`` (``info``) and above;
device ids only, never an RTSP or broker password (a URL's credentials are removed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import ssl
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from services import logs
from services.settings import Settings, SettingsError

if TYPE_CHECKING:
    from agent.audio import Microphone
    from agent.motors import MotorDriver

SIZE_RE = re.compile(r"^(\d{2,4})x(\d{2,4})\Z")


def _size(text: str) -> tuple[int, int]:
    match = SIZE_RE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError("--size is WIDTHxHEIGHT, e.g. 640x480")
    width, height = int(match[1]), int(match[2])
    if width % 2 or height % 2 or not (16 <= width <= 1920 and 16 <= height <= 1080):
        raise argparse.ArgumentTypeError("--size: even numbers, 16x16 to 1920x1080")
    return width, height


def _fps(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--fps is a number") from None
    if not 0.5 <= value <= 30:
        raise argparse.ArgumentTypeError("--fps is 0.5 to 30")
    return value


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--health-interval is a number of seconds") from None
    if not 1 <= value <= 3600:
        raise argparse.ArgumentTypeError("--health-interval is 1 to 3600 s")
    return value


def _broker(url: str) -> str:
    """``url`` if it is a usable ``mqtt://``/``mqtts://`` URL; its form without the password."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise SettingsError(f"--mqtt-url: {e}") from None
    if parts.scheme not in {"mqtt", "mqtts"} or not parts.hostname:
        raise SettingsError("--mqtt-url is mqtt(s)://[USER:PASSWORD@]HOST[:PORT]")
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{parts.hostname}" + (f":{port}" if port else "")


def _microphone(args: argparse.Namespace) -> Microphone | None:
    """``--audio`` (a video phone's microphone), or the default :func:`agent.audio.choose`
    finds; says which on standard output."""
    from agent import audio
    from devices.topics import DeviceKind

    if args.kind != DeviceKind.VIDEO_PHONE.value:
        if args.audio is not None:
            raise SettingsError("--audio is for a video phone (--kind video_phone)")
        return None
    if args.audio is not None:
        try:
            spec = audio.parse_audio(args.audio)
        except audio.AudioError as e:
            raise SettingsError(str(e)) from None
        audio.use_system_alsa_config()
        why = "as --audio says"
    else:
        spec, why = audio.choose()
    shown = "none (no sound from the unit)" if spec is None else spec.shown
    sys.stdout.write(f"microphone: {shown}: {why}\n")
    return None if spec is None else audio.Microphone(spec)


def _motors(args: argparse.Namespace) -> MotorDriver | None:
    """``--motors``: a video phone's wheels (``agent.motors``), or none."""
    from agent import motors
    from devices.topics import DeviceKind

    if args.motors is None:
        return None
    if args.kind != DeviceKind.VIDEO_PHONE.value:
        raise SettingsError("--motors is for a video phone (--kind video_phone)")
    try:
        return motors.parse(args.motors)
    except ValueError as e:
        raise SettingsError(str(e)) from None


async def cmd_agent(args: argparse.Namespace, settings: Settings) -> int:
    from agent.app import Agent, AgentConfig
    from agent.indicator import CommandLamp, GpioLamp, IndicatorError, Lamp
    from agent.sources import SourceError, check_file, parse_source
    from devices import topics

    if not topics.is_device_id(args.id):
        raise SettingsError("--id is 1-64 characters of a-z, 0-9 and -")
    mqtt_url = args.mqtt_url or settings.mqtt_url
    if mqtt_url is None:
        raise SettingsError("--mqtt-url or HOMECARE_MQTT_URL is required for agent")
    shown_broker = _broker(mqtt_url)
    if args.ca_file is not None:
        try:
            ssl.create_default_context(cafile=args.ca_file)
        except (OSError, ssl.SSLError) as e:
            raise SettingsError(f"--ca-file {args.ca_file}: {e}") from None
        # DeviceClient verifies the broker against the default trust store, which this names
        os.environ["SSL_CERT_FILE"] = args.ca_file
    lamp: Lamp | None = None
    try:
        source = parse_source(args.source)
        await asyncio.to_thread(check_file, source)
        if args.indicator_command is not None:
            lamp = CommandLamp.parse(args.indicator_command)
        elif args.indicator_gpio is not None:
            lamp = GpioLamp(args.indicator_gpio)
    except (SourceError, IndicatorError) as e:
        raise SettingsError(str(e)) from None
    driver = _motors(args)
    microphone = await asyncio.to_thread(_microphone, args)
    width, height = args.size
    # every option is good: from here the agent's and its libraries' records are events
    logs.route_stdlib(settings.log_level, settings.log_format)
    agent = Agent(
        AgentConfig(
            device_id=args.id,
            kind=topics.DeviceKind(args.kind),
            source=source,
            mqtt_url=mqtt_url,
            prefix=args.prefix or settings.mqtt_topic_prefix,
            width=width,
            height=height,
            fps=args.fps,
            keepalive_s=settings.mqtt_keepalive_s,
            health_interval_s=args.health_interval,
            home_probe=not args.no_home_probe,
        ),
        lamp=lamp,
        motors=driver,
        microphone=microphone,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    presses: set[asyncio.Task[Any]] = set()

    def press() -> None:
        task = loop.create_task(agent.press_bind_button())
        presses.add(task)
        task.add_done_callback(presses.discard)

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGUSR1, press)
    home = " (motion check at home)" if agent.home is not None else ""
    sys.stdout.write(
        f"agent {args.id} ({args.kind}, {width}x{height} at {args.fps:g} fps)"
        f" from {source.shown} to {shown_broker}{home}\n"
    )
    sys.stdout.flush()
    await _run_with_screen(agent, args, stop)
    return 0


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--screen-port is a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError("--screen-port is 1 to 65535")
    return port


async def _run_with_screen(agent: Any, args: argparse.Namespace, stop: asyncio.Event) -> None:
    """Run the agent; with ``--screen-port`` also the unit's screen on loopback (and with
    ``--kiosk-browser`` Chromium showing it full screen, ended with the agent)."""
    if args.screen_port is None:
        if args.kiosk_browser is not None:
            raise SettingsError("--kiosk-browser needs --screen-port")
        await agent.run(stop)
        return
    from devices.topics import ScreenLanguage
    from homeside import screen as unit_screen

    lang = ScreenLanguage(args.screen_lang)

    def make(peer: Any) -> Any:
        return unit_screen.screen_app({args.id: peer}, lang=lang)

    url = f"http://127.0.0.1:{args.screen_port}/"
    sys.stdout.write(f"the unit's screen: {url}\n")
    sys.stdout.flush()
    running = asyncio.create_task(agent.run(stop, screen=make, screen_port=args.screen_port))
    if args.kiosk_browser is None:
        await running
        return
    try:
        async with unit_screen.kiosk_browser(url, args.kiosk_browser):
            await running
    except (OSError, TimeoutError) as e:  # the agent goes on; the screen is still served
        sys.stderr.write(f"the kiosk browser could not be started: {e}\n")
        await running


def add_commands(sub: Any) -> None:
    from devices.topics import DeviceKind

    s = sub.add_parser("agent", help="the device agent: a real camera or video phone")
    s.set_defaults(run=cmd_agent)
    s.add_argument(
        "--source",
        required=True,
        help="file:PATH (looped), rtsp://[USER:PASSWORD@]HOST[:PORT]/PATH or v4l2:/dev/videoN",
    )
    s.add_argument("--id", required=True, help="the device id (its broker username)")
    s.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="least level of the events on stderr (default $HOMECARE_LOG_LEVEL or info)",
    )
    s.add_argument("--kind", choices=[k.value for k in DeviceKind], default="camera")
    s.add_argument(
        "--mqtt-url", help="mqtt(s)://ID:PASSWORD@HOST:PORT (default $HOMECARE_MQTT_URL)"
    )
    s.add_argument("--prefix", help="topic prefix (default $HOMECARE_MQTT_TOPIC_PREFIX or hc/v1)")
    s.add_argument("--ca-file", help="the CA that signed the broker's certificate (mqtts)")
    s.add_argument("--size", type=_size, default=(640, 480), help="WIDTHxHEIGHT sent (640x480)")
    s.add_argument("--fps", type=_fps, default=10.0, help="frames a second sent (10)")
    s.add_argument(
        "--health-interval", type=_interval, default=30.0, help="seconds between health (30)"
    )
    s.add_argument(
        "--motors",
        metavar="DRIVER",
        help="a video phone's wheels: fake, or motorhat[:left=N,right=N,bump=PIN,cliff=PIN,"
        "dock=PIN] (a Raspberry Pi motor HAT; see docs/device-contract.md)",
    )
    s.add_argument(
        "--no-home-probe",
        action="store_true",
        help="a camera: do not run the motion check at home (the backend probes over WebRTC)",
    )
    s.add_argument(
        "--audio",
        metavar="INPUT",
        help="a video phone's microphone: alsa:DEVICE (e.g. alsa:default), pulse:default or "
        "none (default: pulse if a server answers, else alsa:default if it opens, else none)",
    )
    s.add_argument(
        "--screen-port",
        type=_port,
        metavar="N",
        help="serve the unit's screen (a video phone's call screen) on 127.0.0.1:N",
    )
    s.add_argument(
        "--screen-lang",
        choices=["sv", "en", "fi"],
        default="sv",
        help="the screen's language until a ring names the brukare's (sv)",
    )
    s.add_argument(
        "--kiosk-browser",
        metavar="PATH",
        help="also show the screen full screen in this Chromium (e.g. /usr/bin/chromium); "
        "deploy/systemd/homecare-screen.service does it as a unit of its own",
    )
    lamp = s.add_mutually_exclusive_group()
    lamp.add_argument(
        "--indicator-command", metavar="CMD", help="run CMD on|off PURPOSE for the live lamp"
    )
    lamp.add_argument(
        "--indicator-gpio", metavar="N", type=int, help="the live lamp on sysfs GPIO N"
    )
