"""Signalling: live views, calls and probe sessions between clients and devices.

Clients (operator browsers over ``GET /ws/signal``, ``homecare view``, the in-process probe via
:meth:`Signalling.connect`) and devices (``{prefix}/dev/{id}/webrtc/in|out``) exchange the
envelopes of :mod:`devices.envelope`; media goes peer to peer (or via TURN), never through here.

A session: ``request`` -> the facts (presence and kind from the registry, the gate's decisions,
the view budget the check already spent) -> :func:`decide.decide_request` -> a
``signal_sessions`` row (one open per device) plus an audit entry -> ``granted`` (ICE servers,
deadline) -> the client's ``offer`` (checked against the purpose) and trickled candidates go to
the device -> its ``answer`` comes back -> ``bye`` with a reason. The process holding the client's
connection owns the session's timers; a device message reaches one process of the group (a shared
subscription), which checks it against the row and routes it to the owner over
``{prefix}/server/signal/{id}``.

Every rule (cap, extensions, withdrawal, ring, drive lockout, media, bye reasons, audit actor) is
decided by the pure :mod:`services.signalling.decide` and :mod:`services.signalling.machine`.
:class:`Signalling` is put together from three parts over one set of live sessions:

=================================================  ==========================================
:class:`~services.signalling.interpreter.Interpreter`  feeds events to :func:`machine.apply` and
                                                   performs the effects (timers, row, audit,
                                                   client, device, commands)
:class:`~services.signalling.clients.ClientSide`   connections, rate limit, decoding, requests
:class:`~services.signalling.device_side.DeviceSide`  device messages and presence, the gate's
                                                   changes, the sweep
=================================================  ==========================================

This module wires them to the ports and owns the service's life (start, shutdown). Its three
long-running loops (``signal-gate``, ``signal-recheck``, ``signal-sweep``) run through ``guard``
(the composition root passes :meth:`services.supervisor.Supervisor.guard`): a crash is logged,
counted and makes the process unready. The per-session tasks (timers, device commands, row
writes) stay in the service's own set; a failure of one is logged and counted
(``counters["task_failed"]``, ``/metrics``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Coroutine
from datetime import datetime
from types import TracebackType
from typing import Any

import asyncpg
import structlog

from kernel.audit import store as audit_store
from kernel.clock import SYSTEM_CLOCK, Clock, ClockPort, sleep_of
from services.mqtt import Guard, MqttLink
from services.signalling import machine
from services.signalling.bus import BusHandlers, SignalBus
from services.signalling.clients import WS_GOING_AWAY, ClientSide
from services.signalling.device_side import DeviceSide
from services.signalling.http import SIGNALLING, on_shutdown, routes
from services.signalling.ports import (
    BusPort,
    ChecksPort,
    CommandsPort,
    GatePort,
    Latencies,
    PresencePort,
    RegistryPresence,
    SessionStore,
    SignallingConfig,
)
from services.signalling.router import DeviceRouter
from services.signalling.session import ClientConnection, LiveSession
from services.signalling.store import AuditAppend, PgSessionStore
from services.signalling.turn import TurnConfig
from supervision.looks import CheckLooks
from supervision.store import RoundStore

__all__ = [
    "SIGNALLING",
    "CommandsPort",
    "GatePort",
    "PresencePort",
    "Signalling",
    "SignallingConfig",
    "on_shutdown",
    "routes",
]
BusFactory = Callable[[BusHandlers], BusPort]
log = structlog.get_logger(__name__)


async def logged(name: str, coro: Coroutine[Any, Any, None]) -> None:
    """The guard of a service run without a supervisor (tests): a crashed loop is logged."""
    try:
        await coro
    except asyncio.CancelledError:
        raise
    except Exception:  # the loop's boundary
        log.exception("task_crashed", task=name)


class Signalling(ClientSide, DeviceSide):
    """The signalling service of one process; an async context manager.

    Create it in the composition root, set ``app[SIGNALLING]`` and add :func:`routes`. ``store``,
    ``presence``, ``checks`` (the round's side of a view: the composition root passes one that
    publishes the check's step to the consoles) and ``bus`` default to the real adapters over
    ``pool`` and ``mqtt_url``; tests
    pass :mod:`services.signalling.fakes`. ``guard`` wraps the long-running loops (the process's
    supervisor; without one a crash is only logged). ``latencies`` is told request -> granted
    and request -> first frame (the process's ``/metrics`` histograms).
    """

    def __init__(
        self,
        *,
        pool: asyncpg.Pool | None = None,
        link: MqttLink | None = None,
        prefix: str = "hc/v1",
        instance_id: str,
        gate: GatePort,
        commands: CommandsPort,
        presence: PresencePort | None = None,
        checks: ChecksPort | None = None,
        audit: AuditAppend = audit_store.append,
        turn: TurnConfig | None = None,
        config: SignallingConfig | None = None,
        handle_devices: bool = True,
        clock: Clock | ClockPort = SYSTEM_CLOCK,
        sessions: SessionStore | None = None,
        bus: BusFactory | None = None,
        guard: Guard = logged,
        latencies: Latencies | None = None,
    ) -> None:
        self.pool = pool
        self.prefix = prefix
        self.instance_id = instance_id
        self.gate = gate
        self.commands = commands
        if presence is None or sessions is None or checks is None:
            if pool is None:
                raise ValueError("without a pool, pass the session store, presence and checks")
            presence = presence or RegistryPresence(pool)
            sessions = sessions or PgSessionStore(pool, audit)
            checks = checks or CheckLooks(RoundStore(pool, audit=audit))
        self.presence: PresencePort = presence
        self.checks: ChecksPort = checks
        self.store: SessionStore = sessions
        self.turn = turn or TurnConfig()
        self.config = config or SignallingConfig()
        self.clock = clock
        self._now, self._sleep = clock, sleep_of(clock)
        self._guard = guard
        self.latencies = latencies or Latencies()
        handlers = BusHandlers(
            self._on_device_signal, self._on_device_event, self._on_device_status, self._on_routed
        )
        if bus is not None:
            self.bus: BusPort = bus(handlers)
        elif link is not None:
            self.bus = SignalBus(
                link, instance_id=instance_id, handlers=handlers, handle_devices=handle_devices
            )
        else:
            raise ValueError("pass the process's MQTT link (or a bus factory)")
        self.sessions: dict[str, LiveSession] = {}
        self.counters: Counter[str] = Counter()  # routed_out/in, client_rejected_<code>, ...
        self.router = DeviceRouter(
            store=self.store,
            bus=self.bus,
            instance_id=instance_id,
            rate_per_s=self.config.device_rate_per_s,
            burst=self.config.device_rate_burst,
            local=self._local_device,
            deliver=self._from_device,
            counters=self.counters,
        )
        self.connections: set[ClientConnection] = set()
        self._device_sessions: dict[str, int] = {}  # last online session counter per device
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing: dict[str, asyncio.Task[Any]] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._accepting = False

    def now(self) -> datetime:
        return self._now()

    # ------------------------------------------------------------ life

    async def __aenter__(self) -> Signalling:
        closed = await self.store.sweep_overdue(
            at=self.now(), grace_s=0, instance_id=self.instance_id
        )
        await self.bus.__aenter__()
        for row in closed:
            self._spawn(self._tell_orphaned(row))
        loop = asyncio.get_running_loop()
        self._loops = [
            loop.create_task(self._guard(name, coro), name=name)
            for name, coro in (
                ("signal-gate", self._watch_gate()),
                ("signal-recheck", self._recheck_loop()),
                ("signal-sweep", self._sweep_loop()),
            )
        ]
        self._accepting = True
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close_clients()
        if self._closing:  # let the rows of the sessions just ended close (bounded)
            await asyncio.wait(set(self._closing.values()), timeout=self.config.close_wait_s)
        tasks = {*self._loops, *self._tasks}
        for task in tasks:
            task.cancel()
        if tasks:  # a failure was logged when it happened (the guard, :meth:`_task_done`)
            await asyncio.wait(tasks)
        await self.bus.__aexit__(et, e, tb)

    async def close_clients(self) -> None:
        """End every live session and close every client (``app.on_shutdown``): GOING_AWAY."""
        self._accepting = False
        for live in list(self.sessions.values()):
            await self._feed(live, machine.Shutdown())
        for conn in list(self.connections):
            conn.close(WS_GOING_AWAY, "server shutting down")

    async def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Until the broker connection is up (tests and the demo)."""
        await asyncio.wait_for(self.bus.connected.wait(), timeout_s)
