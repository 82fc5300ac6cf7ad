"""Round workers: claim due checks, re-check the gate, wake the camera, probe, apply the verdict.

One :class:`Runner` per process (``--roles rounds``), any number of processes per night: the
store hands each due check to one worker (``FOR UPDATE SKIP LOCKED``) and takes a claim back when
it expires, so a crashed worker's checks are done by another, and a worker whose claim was taken
over has its late result refused. The runner talks to ports only (:mod:`supervision.ports`).

For each claimed check, at the instant the work starts:

1. the check's own agreed window (a first look claimed after it ends is not taken) and the gate
   for ``camera_check`` (hard rule 1). Refused: paused -> dropped or visited as the plan says;
   outside the agreed window (a retry or a late claim) -> the ladder continues without a look
   (call or patrol); anything else -> a physical visit with the gate's reason;
2. the camera's presence in the registry: offline -> a physical visit (hard rule 7);
3. the gate for ``motion_analysis`` (hard rule 3). Refused, or no prober in this process (no
   ``probes`` role, or the probe is not installed) -> straight to a human view;
4. wake the camera. No acknowledgement -> a physical visit (``wake_failed``, hard rule 7). This
   process's own broker link down (:class:`~supervision.ports.LinkDown`) is not the camera's
   fault: the worker keeps its claim and starts again from step 1 every ``link_retry_s`` for up
   to ``link_wait_s``; after that the claim lapses and the check is claimed again (too late for
   its agreed window -> the ladder goes on);
5. the probe watches ``probe_window_s`` and its verdict is applied per care plan; a camera that
   did not ack its live indicator (:attr:`~supervision.ports.ProbeResult.device_trouble`) is
   device trouble: a physical visit (hard rule 7), whatever the verdict.

Every interval (``poll_s``, ``probe_window_s``, ``link_retry_s``, ``link_wait_s``) comes from the
one :class:`~kernel.timing.Timing` the composition root built; tests pass a fast one. The wait for
the link is a deadline of the night (it must end before the claim does, ``probe_timeout_s`` on the
same clock), so it is measured and slept on the injected clock (``kernel.clock.sleep_of``): a
sped-up clock shortens it with the claim. ``poll_s`` is a poll interval and waits in loop time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from consent.model import Purpose, Reason
from kernel.clock import Clock, ClockPort, sleep_of
from kernel.listen import CONNECTION_LOST, FAILOVER_RETRY
from kernel.retry import Backoff, retry
from kernel.timing import DEFAULT_TIMING, Timing
from supervision import checks as ch
from supervision import relay
from supervision.checks import Check, Transition
from supervision.errors import TransitionRefused
from supervision.ports import ConsentGate, Devices, LinkDown, Prober, Publish
from supervision.store import RoundStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    """What this worker does; its intervals are the timing policy's (seconds of real time)."""

    worker_id: str
    concurrency: int = 8  # checks probed at once by this worker
    open_checks: bool = True  # this worker also opens checks whose window started
    claim_after_s: float = 0.0  # take a due check only once it has waited this long
    timing: Timing = DEFAULT_TIMING  # poll_s, probe_window_s, link_retry_s, link_wait_s


def publish_transition(publish: Publish | None, tr: Transition) -> None:
    if publish is not None:
        publish(relay.changed(tr))


def log_transition(tr: Transition) -> None:
    c = tr.check
    log.info(
        "check_transitioned",
        check_id=c.check_id,
        recipient_id=c.recipient_id,
        before=tr.before.value,
        state=c.state.value,
        step=ch.event_name(tr.event),
        reason=c.reason,
        version=c.version,
    )


class Runner:
    def __init__(
        self,
        store: RoundStore,
        *,
        gate: ConsentGate,
        prober: Prober | None,
        devices: Devices,
        clock: Clock | ClockPort,
        config: RunnerConfig,
        publish: Publish | None = None,
    ) -> None:
        self.store = store
        self.gate = gate
        self.prober = prober
        self.devices = devices
        self.clock = clock
        self._sleep = sleep_of(clock)  # deadlines of the night (the link wait)
        self.config = config
        self.publish = publish
        self.processed = 0  # checks this worker finished (for tests and metrics)
        self.lost_claims = 0  # results refused because another worker took over
        self.link_retries = 0  # checks started again because this process's link was down
        self._inflight = 0
        self._details: dict[str, Mapping[str, Any]] = {}  # check id -> the probe's numbers

    def _emit(self, tr: Transition) -> None:
        log_transition(tr)
        publish_transition(self.publish, tr)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; in-flight checks finish (or their claims expire)."""
        async with asyncio.TaskGroup() as tasks:
            while not stop.is_set():
                try:
                    claimed = await self.tick(tasks)
                except CONNECTION_LOST as e:  # the database away (a failover): the next poll
                    log.warning(
                        "round_tick_unavailable",
                        worker=self.config.worker_id,
                        error=type(e).__name__,
                    )
                    claimed = 0
                except Exception:  # a task boundary
                    log.exception("round_tick_failed", worker=self.config.worker_id)
                    claimed = 0
                if claimed == 0:  # a poll interval: loop time
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.config.timing.poll_s)

    async def tick(self, tasks: asyncio.TaskGroup) -> int:
        """Open due checks, claim as many as there are free slots, start them; return claimed."""
        now = self.clock()
        if self.config.open_checks:
            for tr in await self.store.open_due(now):
                self._emit(tr)
        free = self.config.concurrency - self._inflight
        if free <= 0:
            return 0
        claimed = await self.store.claim_transitions(
            self.config.worker_id, now, limit=free, after_s=self.config.claim_after_s
        )
        for tr in claimed:
            self._emit(tr)
            self._inflight += 1
            tasks.create_task(self._guarded(tr.check))
        return len(claimed)

    async def _guarded(self, check: Check) -> None:
        try:
            await self.process(check)
        except asyncio.CancelledError:
            raise
        except Exception:  # a task boundary: the claim expires and another worker retries
            log.exception("check_processing_failed", check_id=check.check_id)
        finally:
            self._inflight -= 1

    async def process(self, check: Check) -> Transition | None:
        """Do one claimed check; return the transition stored, or None if the claim was lost."""
        event = await self.decide(check)
        detail = self._details.pop(check.check_id, None)
        at = self.clock()

        def unavailable(e: BaseException, failures: int, wait_s: float) -> None:
            log.warning(
                "check_result_retried",
                check_id=check.check_id,
                worker=self.config.worker_id,
                error=type(e).__name__,
                failures=failures,
            )

        try:
            # Tried again while the database is away (a failover): the result is a compare-and-
            # set on the claim (holder and version), so a second write after a COMMIT whose
            # answer was lost is refused (TransitionRefused below) and nothing is done twice.
            tr = await retry(
                lambda: self.store.finish(check, event, at=at, detail=detail),
                FAILOVER_RETRY,
                retry_on=CONNECTION_LOST,
                on_retry=unavailable,
            )
        except TransitionRefused as e:
            self.lost_claims += 1
            log.warning(
                "check_claim_lost",
                check_id=check.check_id,
                worker=self.config.worker_id,
                refusal=e.code,
            )
            return None
        self.processed += 1
        self._emit(tr)
        return tr

    async def decide(self, check: Check) -> ch.Event:
        """The event that ends the probing state of ``check`` (gate, wake, probe); started again
        while this process's own link is down, up to ``link_wait_s`` (then ``LinkDown``)."""
        timing = self.config.timing

        def waiting(e: BaseException, _failures: int, _wait_s: float) -> None:
            self.link_retries += 1
            log.warning(
                "check_waits_for_link",
                check_id=check.check_id,
                worker=self.config.worker_id,
                error=str(e),
            )

        # On the clock, as the claim's expiry is: a sped-up night shortens both alike. Past
        # ``link_wait_s`` the LinkDown is raised: the claim lapses and the check is claimed again.
        return await retry(
            lambda: self._decide(check),
            Backoff(
                first_s=timing.link_retry_s,
                factor=1.0,
                max_s=timing.link_retry_s,
                give_up_s=timing.link_wait_s,
            ),
            retry_on=(LinkDown,),
            on_retry=waiting,
            sleep=self._sleep,
            clock=lambda: self.clock().timestamp(),
        )

    async def _decide(self, check: Check) -> ch.Event:
        if check.device_id is None:
            return ch.Cancel(str(Reason.DEVICE_NOT_BOUND))
        device = check.device_id
        now = self.clock()
        if check.attempt == 1 and not check.window_start <= now <= check.window_end:
            return ch.LookRefused("outside_window")  # claimed too late for its agreed window
        camera = await self.gate.decide(
            device_id=device, purpose=Purpose.CAMERA_CHECK, at=self.clock()
        )
        if not camera.allowed:
            reason = camera.reason or Reason.NO_CONSENT
            if reason is Reason.OUTSIDE_WINDOW:
                return ch.LookRefused(str(reason))
            if reason is Reason.PAUSED:
                return ch.Cancel("paused", visit=check.policy.paused_visit)
            return ch.Cancel(str(reason))
        if device not in await self.devices.online([device]):
            return ch.DeviceLost("device_offline")  # hard rule 7: no look at a dead camera
        if (trouble := await self.devices.video_trouble(device)) is not None:
            return ch.DeviceLost(trouble)  # hard rule 7: the camera itself says it shows nothing
        motion = await self.gate.decide(
            device_id=device, purpose=Purpose.MOTION_ANALYSIS, at=self.clock()
        )
        if not motion.allowed:
            return ch.ProbeSkipped("no_motion_consent")
        if self.prober is None:  # this process has no probes role: a human looks
            return ch.ProbeSkipped("no_prober")
        try:
            awake = await self.devices.wake(device)
        except LinkDown:
            raise
        except (OSError, TimeoutError, LookupError) as e:
            log.warning(
                "camera_wake_failed",
                check_id=check.check_id,
                device_id=device,
                error=type(e).__name__,
            )
            awake = False
        if not awake:
            return ch.DeviceLost("wake_failed")
        try:
            result = await self.prober.probe(
                device_id=device,
                check_id=check.check_id,
                window_s=self.config.timing.probe_window_s,
            )
        except asyncio.CancelledError:
            raise
        except Exception:  # a broken probe must not clear anything: a human looks instead
            log.exception("probe_failed", check_id=check.check_id, device_id=device)
            return ch.ProbeSkipped("probe_failed")
        log.info(
            "probe_finished",
            check_id=check.check_id,
            device_id=device,
            verdict=result.verdict,
            needs_human=result.needs_human,
            frames=result.frames,
        )
        if result.detail is not None:
            self._details[check.check_id] = result.detail
        if result.device_trouble is not None:
            return ch.DeviceLost(result.device_trouble)
        return ch.ProbeDone(result.verdict, result.needs_human)
