"""The night round as a running service: the adapters of its ports and the tasks of one process.

The composition root (``services/app.py``) builds one :class:`Rounds` per process with the roles
it runs and hands it the consent gate, the device registry's pool, a wake function, the event
bus and the clock; :meth:`Rounds.run` then runs, until cancelled:

- the watchdog (``run_watchdog``): plans tonight at the planning hour, opens checks, raises
  alarms for missed deadlines, reconciles a finished night;
- the watchdog's reactions to changes: device presence from the in-process event bus (a camera
  offline before or during a check -> patrol at once) and consent, plan, pause and binding changes
  from the gate's feed (re-plan that brukare's remaining checks);
- one worker (``run_workers``): claims due checks (``FOR UPDATE SKIP LOCKED``) and does them; its
  prober is the motion probe when the process runs the ``probes`` role, else None (a human
  looks), and then it takes a due check only after ``claim_after_s``, so that where processes
  with probes exist they get every check first.

:meth:`Rounds.relay_events` (in processes that serve consoles) republishes the steps and alarms
of other processes on this one's bus (:mod:`supervision.relay`).

:class:`RegistryDevices` implements :class:`supervision.ports.Devices` over the ``devices`` table
(presence as the registry stored it) and a wake command.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
import structlog

from devices import topics
from kernel.clock import Clock
from kernel.timing import DEFAULT_TIMING, Timing
from supervision import checks, relay
from supervision.ports import Bases, ConsentGate, LinkDown, Prober, Publish
from supervision.runner import Runner, RunnerConfig
from supervision.store import RoundStore
from supervision.watchdog import PlanningHook, Watchdog, WatchdogConfig

log = structlog.get_logger(__name__)

Wake = Callable[[str], Awaitable[bool]]
"""Asks a device to wake; True when it acknowledged in time (False or an ``OSError``/
``TimeoutError``/``LookupError`` otherwise; :class:`~supervision.ports.LinkDown` when this
process's own broker link was down)."""


class _Sender(Protocol):
    async def send(
        self,
        device_id: str,
        op: topics.CommandOp,
        args: dict[str, Any] | None = None,
        timeout_s: float = 5.0,
    ) -> topics.CommandAck: ...


class _Link(Protocol):
    """``services.mqtt.MqttLink`` as far as a wake needs it."""

    connected: asyncio.Event
    reconnected_at: float | None  # event loop time of the last reconnect after a drop


def command_wake(
    commands: _Sender,
    *,
    timeout_s: float = DEFAULT_TIMING.wake_timeout_s,
    link: _Link | None = None,
    settle_s: float = 0.0,
) -> Wake:
    """A :data:`Wake` over ``devices.commands.Commands``: ``wake`` with an ack within
    ``timeout_s`` (the timing policy's ``wake_timeout_s``), or False.

    :class:`LinkDown` (the device is not to blame) when the command could not be sent (a
    ``ConnectionError``: the broker is not connected), or no ack came while ``link`` was down,
    reconnected, or had reconnected less than ``settle_s`` before (after a broker restart the
    devices are still reconnecting; the registry's sweep grace)."""

    async def wake(device_id: str) -> bool:
        loop = asyncio.get_running_loop()
        sent = loop.time()
        try:
            ack = await commands.send(device_id, topics.CommandOp.WAKE, timeout_s=timeout_s)
        except ConnectionError as e:
            raise LinkDown(str(e)) from e
        except TimeoutError:
            if link is not None and (
                not link.connected.is_set()
                or (link.reconnected_at is not None and link.reconnected_at > sent - settle_s)
            ):
                raise LinkDown("no ack while the broker link was down or settling") from None
            raise
        return ack.ok

    return wake


class RegistryDevices:
    """The :class:`~supervision.ports.Devices` port over the registry's table and a wake command."""

    def __init__(self, pool: asyncpg.Pool, wake: Wake | None = None) -> None:
        self._pool = pool
        self._wake = wake

    async def wake(self, device_id: str) -> bool:
        if self._wake is None:  # no command link in this process: the probe finds out
            return True
        return await self._wake(device_id)

    async def online(self, device_ids: Collection[str] | None = None) -> set[str]:
        rows = await self._pool.fetch(
            "SELECT device_id FROM devices WHERE presence = 'online'"
            " AND ($1::text[] IS NULL OR device_id = ANY($1))",
            None if device_ids is None else list(device_ids),
        )
        return {r["device_id"] for r in rows}

    async def video_trouble(self, device_id: str) -> str | None:
        state = await self._pool.fetchval(
            "SELECT health->'video'->>'state' FROM devices WHERE device_id = $1", device_id
        )
        return checks.video_trouble(state)


@dataclass(frozen=True, slots=True)
class RoundsConfig:
    """What this process does for the round; its deadlines and intervals are ``timing``'s."""

    worker_id: str
    zone: str = "Europe/Stockholm"
    plan_hour: int = 18
    run_watchdog: bool = True
    run_workers: bool = True
    concurrency: int = 8
    claim_after_s: float = 0.0  # a worker without a prober leaves due checks to probing ones
    share_events: bool = False  # send steps and alarms to other processes' consoles (relay)
    timing: Timing = DEFAULT_TIMING  # every deadline and interval of the round (kernel.timing)


class Rounds:
    """The round's objects of one process and the tasks that drive them."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        config: RoundsConfig,
        gate: ConsentGate,
        bases: Bases,
        devices: RegistryDevices,
        clock: Clock,
        prober: Prober | None = None,
        publish: Publish | None = None,
        on_planned: PlanningHook | None = None,
    ) -> None:
        """``on_planned``: told how long each planning took (the process's ``/metrics``)."""
        self.config = config
        self.pool = pool
        self.store = RoundStore(
            pool,
            origin=config.worker_id if config.share_events else None,
            timing=config.timing,
        )
        self.watchdog = Watchdog(
            self.store,
            bases=bases,
            devices=devices,
            clock=clock,
            config=WatchdogConfig(
                zone=config.zone, plan_hour=config.plan_hour, timing=config.timing
            ),
            publish=publish,
            on_planned=on_planned,
        )
        self.runner = Runner(
            self.store,
            gate=gate,
            prober=prober,
            devices=devices,
            clock=clock,
            config=RunnerConfig(
                worker_id=config.worker_id,
                concurrency=config.concurrency,
                open_checks=not config.run_watchdog,
                claim_after_s=config.claim_after_s,
                timing=config.timing,
            ),
            publish=publish,
        )

    async def run(
        self,
        *,
        presence: AsyncIterable[object] | None = None,
        changes: AsyncIterable[object] | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        """Run this process's part of the round until ``stop`` is set or the task is cancelled.

        ``presence``: the event bus subscription (``PresenceChanged`` among other events);
        ``changes``: the gate's consent change feed. Both are read by the watchdog only.
        """
        stop = stop or asyncio.Event()
        log.info(
            "rounds_started",
            worker=self.config.worker_id,
            watchdog=self.config.run_watchdog,
            workers=self.config.run_workers,
            prober=self.runner.prober is not None,
        )
        async with asyncio.TaskGroup() as tasks:
            if self.config.run_watchdog:
                tasks.create_task(self.watchdog.run(stop))
                for feed in (presence, changes):
                    if feed is not None:
                        tasks.create_task(self._watch(feed, stop))
            if self.config.run_workers:
                tasks.create_task(self.runner.run(stop))

    async def relay_events(self, publish: Publish, *, ready: asyncio.Event | None = None) -> None:
        """Publish the steps and alarms other processes made on this process's bus (for its
        consoles) until cancelled; see :mod:`supervision.relay`. ``ready`` is set while it
        listens."""
        await relay.listen(self.pool, publish, origin=self.config.worker_id, ready=ready)

    async def _watch(self, feed: AsyncIterable[object], stop: asyncio.Event) -> None:
        watcher = asyncio.ensure_future(self.watchdog.watch(feed))
        try:
            await stop.wait()
        finally:
            watcher.cancel()
            try:
                await watcher
            except asyncio.CancelledError:
                if not watcher.cancelled():
                    raise
