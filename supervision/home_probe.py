"""The motion check at home: probe a device that runs the kernel itself, over MQTT.

A device whose meta has ``home_probe`` (``devices.topics.Capability.HOME_PROBE``: the device
agent, ``homeside.home_probe``) is probed without video leaving the home; every other device keeps
the WebRTC probe (:mod:`supervision.probe`). :class:`ProbeRouter` picks the path per device from
its stored capabilities; both are :class:`supervision.ports.Prober` s and return the same
:class:`~supervision.ports.ProbeResult` (verdict, numbers, device trouble).

A home probe (:meth:`HomeProber.watch`), under the same rules as the WebRTC probe:

1. **consent**: the gate for ``motion_analysis`` (which needs the camera consents too) at the
   instant it starts; refused -> ``no_signal`` with ``ended`` ``denied:<reason>`` and nothing
   is sent to the device (hard rule 3);
2. **audit**: ``probe.started`` / ``probe.ended`` by ``system``, the subject the brukare, with
   the session, device and check ids and ``path: home`` (pseudonymous ids only);
3. **the live indicator**: ``indicator on`` (purpose ``probe``, the probe's session) and its ack
   within ``indicator_ack_s`` before anything else; no ack -> ``device_trouble``
   ``indicator_not_acked``, a physical visit (hard rule 7), and no ``probe`` is sent. ``off``
   is sent when the probe ends, however it ends (a missing ack of ``off`` is only logged);
4. ``probe`` with the window, the small slow stream's size and rate (``ProbeConfig``'s) and the
   camera's zones; a refusal (``ok: false``) or no ack -> ``no_signal``;
5. the answer on the device's ``probe`` channel (:meth:`HomeProber.handle`, which the MQTT link
   calls; every backend process hears every answer and the one waiting takes it) within the
   window and ``answer_grace_s``; none -> ``no_signal`` (``no_answer``: device trouble, a
   visit, as a camera sending no frames); the gate is asked again every ``recheck_s`` while it
   waits: withdrawn -> ``sleep`` for the probe's session and ``no_signal`` (``withdrawn``), so
   nothing is cleared (hard rule 2);
6. an answer is decoded strictly (``devices.topics.decode_probe_answer``), then held to the
   verdict's vocabulary and its own consistency (a known kind and reason, ``needs_human`` false
   only for ``cleared_activity_in_bed`` of ``activity`` or ``still``, ``frames`` as the
   numbers say, from the device the probe went to); a refused answer raises
   :class:`~devices.errors.PayloadError` (the link counts it by reason) and changes nothing:
   the probe keeps waiting and ends ``no_answer`` unless a good answer comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
import structlog

from consent.model import Purpose
from devices import store as device_store
from devices import topics
from devices.errors import PayloadError
from kernel import codec
from kernel.audit import store as audit_store
from kernel.timing import Timing
from supervision.ports import ConsentGate, Prober, ProbeResult
from supervision.probe import ProbeConfig, ViewZones, ZoneLookup, no_zones, verdict_detail
from vision.verdict import Reason, VerdictKind, no_signal

log = structlog.get_logger(__name__)
INDICATOR_NOT_ACKED = "indicator_not_acked"


class CommandPort(Protocol):
    """``devices.commands.Commands`` as the home probe uses it (``CommandTimeout``, a
    ``TimeoutError``, when no ack comes in time)."""

    async def send(
        self,
        device_id: str,
        op: topics.CommandOp,
        args: dict[str, Any] | None = None,
        timeout_s: float = 5.0,
    ) -> topics.CommandAck: ...


Audit = Callable[[str, str | None, Mapping[str, Any], datetime], Awaitable[object]]
"""Append one audit entry by ``system``: ``(action, subject, data, at)``."""


def pg_audit(pool: asyncpg.Pool) -> Audit:
    """Audit entries in the hash-chained log (``kernel.audit.store.append``)."""

    async def append(
        action: str, subject: str | None, data: Mapping[str, Any], at: datetime
    ) -> None:
        async with pool.acquire() as conn:
            await audit_store.append(
                conn, actor="system", action=action, subject=subject, data=data, at=at
            )

    return append


@dataclass(frozen=True, slots=True)
class HomeProbeConfig:
    """Seconds of real time. The stream asked for is the WebRTC probe's (``ProbeConfig``)."""

    stream: ProbeConfig = field(default_factory=ProbeConfig)
    indicator_ack_s: float = topics.INDICATOR_ACK_S
    command_timeout_s: float = 3.0  # the ``probe`` command's ack
    answer_grace_s: float = 4.0  # beyond the window, for a slow device and the broker
    recheck_s: float = 0.5  # the gate is asked again this often while the device looks

    def __post_init__(self) -> None:
        if min(self.indicator_ack_s, self.command_timeout_s, self.recheck_s) <= 0:
            raise ValueError("timeouts must be positive")
        if self.answer_grace_s < 0:
            raise ValueError("answer_grace_s must be 0 or more")


@dataclass(frozen=True, slots=True)
class HomeOutcome:
    """What one home probe came to (no picture ever reached the backend)."""

    session_id: str
    result: ProbeResult
    ended: str  # window | denied:<reason> | indicator_not_acked | refused:<detail> | unacked
    #           | no_answer | withdrawn | failed
    answer: topics.ProbeAnswer | None = None


def check_answer(answer: topics.ProbeAnswer) -> tuple[VerdictKind, Reason]:
    """Hold a decoded answer to the verdict's vocabulary and its own consistency;
    ``PayloadError`` (``bad_value``) naming the field otherwise."""
    try:
        kind = VerdictKind(answer.verdict)
    except ValueError:
        raise PayloadError("bad_value", "not a verdict of the motion check", "verdict") from None
    try:
        reason = Reason(answer.reason)
    except ValueError:
        raise PayloadError("bad_value", "not a reason of the motion check", "reason") from None
    clears = reason is Reason.CLEARED_ACTIVITY_IN_BED
    if answer.needs_human == clears:
        raise PayloadError("bad_value", "needs_human contradicts the reason", "needs_human")
    if clears and kind not in (VerdictKind.ACTIVITY, VerdictKind.STILL):
        raise PayloadError("bad_value", "only activity or still in bed can clear", "verdict")
    if answer.numbers.get("frames", answer.frames) != answer.frames:
        raise PayloadError("bad_value", "frames differs from the numbers' frames", "frames")
    return kind, reason


def _result(answer: topics.ProbeAnswer, kind: VerdictKind, reason: Reason) -> ProbeResult:
    detail: dict[str, Any] = {
        "verdict": kind.value,
        "confidence": answer.confidence,
        "reason": reason.value,
        "where": answer.where,
        "ended": answer.ended.value,
        "numbers": dict(answer.numbers),
        "path": "home",
    }
    return ProbeResult(
        kind.value, answer.needs_human, answer.confidence, answer.frames, detail=detail
    )


def _no_signal(ended: str) -> ProbeResult:
    verdict = no_signal(0)
    detail = verdict_detail(verdict, ended=ended)
    detail["path"] = "home"
    return ProbeResult(
        verdict.kind.value,
        True,
        verdict.confidence,
        0,
        detail=detail,
        device_trouble=ended if ended == INDICATOR_NOT_ACKED else None,
    )


def probe_zones(zones: ViewZones | None) -> topics.ProbeZones | None:
    """The camera's zones as the contract carries them; ``None`` (nothing can be cleared) for
    none or zones the contract cannot carry."""
    if zones is None or not zones.zones:
        return None
    raw = {
        "w": zones.width,
        "h": zones.height,
        "zones": [{"name": z.name, "polygon": [list(p) for p in z.polygon]} for z in zones.zones],
    }
    try:
        return codec.convert(raw, topics.ProbeZones)
    except codec.CodecError as e:
        log.warning("home_probe_zones_unusable", reason=e.reason, field=e.field)
        return None


class HomeProber:
    """:class:`supervision.ports.Prober` over MQTT for devices with ``home_probe``."""

    def __init__(
        self,
        commands: CommandPort,
        gate: ConsentGate,
        *,
        zones: ZoneLookup = no_zones,
        audit: Audit | None = None,
        config: HomeProbeConfig | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.commands = commands
        self.gate = gate
        self.zones = zones
        self.audit = audit
        self.config = config or HomeProbeConfig()
        self.clock = clock
        self.refused = 0  # answers refused by this process (for tests; the link counts too)
        # probe id -> (the device it went to, the waiter for its answer)
        self._waiting: dict[str, tuple[str, asyncio.Future[topics.ProbeAnswer]]] = {}

    # ------------------------------------------------------------ answers

    async def handle(self, topic: topics.Topic, payload: bytes) -> None:
        """The MQTT link's handler of ``dev/+/probe``; raises ``PayloadError`` for a bad answer
        (the link counts and logs it) and changes nothing then."""
        try:
            answer = topics.decode_probe_answer(payload, topic.device_id)
            check_answer(answer)
        except PayloadError:
            self.refused += 1
            raise
        pending = self._waiting.get(answer.probe_id)
        if pending is not None and pending[0] != topic.device_id:
            self.refused += 1
            raise PayloadError("wrong_device", "answer for a probe of another device", "id")
        if pending is None or pending[1].done():
            return  # another process's probe, or late: not ours to act on
        pending[1].set_result(answer)

    # ------------------------------------------------------------ probing

    async def probe(self, *, device_id: str, check_id: str, window_s: float) -> ProbeResult:
        return (await self.watch(device_id, check_id=check_id, window_s=window_s)).result

    async def watch(
        self, device_id: str, *, check_id: str | None = None, window_s: float | None = None
    ) -> HomeOutcome:
        """Probe ``device_id`` at home; never raises for anything the device, the broker or
        the consent does."""
        window = self.config.stream.window_s if window_s is None else window_s
        window = min(max(window, 1.0), topics.MAX_PROBE_WINDOW_S)
        session_id = "h-" + secrets.token_urlsafe(12)
        decision = await self.gate.decide(
            device_id=device_id, purpose=Purpose.MOTION_ANALYSIS, at=self.clock()
        )
        if not decision.allowed:
            reason = decision.reason.value if decision.reason else "no_consent"
            ended = f"denied:{reason}"
            log.info("home_probe_denied", check_id=check_id, device_id=device_id, reason=reason)
            return HomeOutcome(session_id, _no_signal(ended), ended)
        subject = decision.recipient_id or device_id
        ids: dict[str, Any] = {"session_id": session_id, "device_id": device_id, "path": "home"}
        if check_id is not None:
            ids["check_id"] = check_id
        started_at = self.clock()
        started = time.perf_counter()
        await self._audit("probe.started", subject, ids, started_at)
        log.info("probe_started", check_id=check_id, device_id=device_id, session_id=session_id)
        answer: topics.ProbeAnswer | None = None
        ended = "failed"
        try:
            ended, answer = await self._run(device_id, session_id, window)
        except (OSError, TimeoutError, LookupError, ConnectionError) as e:
            log.warning(
                "home_probe_failed",
                check_id=check_id,
                session_id=session_id,
                error=type(e).__name__,
            )
        finally:  # however it ended (also unacked: in case the light did come on)
            await self._indicator(device_id, session_id, on=False)
        if answer is not None:
            kind, reason = check_answer(answer)
            result = _result(answer, kind, reason)
        else:
            result = _no_signal(ended)
        ended_at = self.clock()
        await self._audit(
            "probe.ended",
            subject,
            {
                **ids,
                "reason": ended,
                "duration_s": round(max(0.0, (ended_at - started_at).total_seconds()), 3),
                "verdict": result.verdict,
            },
            ended_at,
        )
        log.info(
            "probe_finished",
            check_id=check_id,
            device_id=device_id,
            session_id=session_id,
            verdict=result.verdict,
            needs_human=result.needs_human,
            ended=ended,
            frames_analysed=result.frames,
            path="home",
            took_s=round(time.perf_counter() - started, 3),
        )
        return HomeOutcome(session_id, result, ended, answer)

    async def _run(
        self, device_id: str, session_id: str, window_s: float
    ) -> tuple[str, topics.ProbeAnswer | None]:
        """``(how it ended, the answer)``."""
        if not await self._indicator(device_id, session_id, on=True):
            return INDICATOR_NOT_ACKED, None
        stream = self.config.stream
        zones = probe_zones(await self._zones(device_id))
        probe = topics.Probe(
            probe_id=session_id,
            window_s=window_s,
            width=stream.max_width - stream.max_width % 2,
            height=stream.max_height - stream.max_height % 2,
            fps=min(max(stream.max_fps, 0.5), 30.0),
            zones=zones,
        )
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[topics.ProbeAnswer] = loop.create_future()
        self._waiting[session_id] = (device_id, waiter)  # before the command: it may be quick
        try:
            try:
                ack = await self.commands.send(
                    device_id,
                    topics.CommandOp.PROBE,
                    probe.args(),
                    timeout_s=self.config.command_timeout_s,
                )
            except TimeoutError:
                return "unacked", None
            if not ack.ok:
                return f"refused:{ack.detail or 'no_detail'}", None
            deadline = loop.time() + window_s + self.config.answer_grace_s
            while not waiter.done():
                left = deadline - loop.time()
                if left <= 0:
                    await self._stop(device_id, session_id)
                    return "no_answer", None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(waiter), min(left, self.config.recheck_s))
                if waiter.done():
                    break
                decision = await self.gate.decide(
                    device_id=device_id, purpose=Purpose.MOTION_ANALYSIS, at=self.clock()
                )
                if not decision.allowed:  # withdrawal wins at once: stop looking
                    await self._stop(device_id, session_id)
                    return "withdrawn", None
            return "window", waiter.result()
        finally:
            self._waiting.pop(session_id, None)
            if not waiter.done():
                waiter.cancel()

    async def _indicator(self, device_id: str, session_id: str, *, on: bool) -> bool:
        """``indicator on``/``off`` for the probe's session; ``True`` when acked ``ok``."""
        args = topics.Indicator(on=on, session_id=session_id, purpose=topics.LivePurpose.PROBE)
        try:
            ack = await self.commands.send(
                device_id,
                topics.CommandOp.INDICATOR,
                args.args(),
                timeout_s=self.config.indicator_ack_s,
            )
        except (OSError, TimeoutError, LookupError, ConnectionError) as e:
            log.warning(
                "home_probe_indicator_unacked",
                device_id=device_id,
                session_id=session_id,
                on=on,
                error=type(e).__name__,
            )
            return False
        return ack.ok

    async def _stop(self, device_id: str, session_id: str) -> None:
        """``sleep`` for the probe's session: the device stops looking (best effort)."""
        with contextlib.suppress(OSError, TimeoutError, LookupError, ConnectionError):
            await self.commands.send(
                device_id,
                topics.CommandOp.SLEEP,
                {"session_id": session_id},
                timeout_s=self.config.command_timeout_s,
            )

    async def _zones(self, device_id: str) -> ViewZones | None:
        try:
            found = self.zones(device_id)
            if inspect.isawaitable(found):
                found = await found
        except (OSError, TimeoutError, LookupError) as e:
            log.warning("probe_zones_unavailable", device_id=device_id, error=type(e).__name__)
            return None
        return found

    async def _audit(
        self, action: str, subject: str | None, data: Mapping[str, Any], at: datetime
    ) -> None:
        if self.audit is not None:
            await self.audit(action, subject, data, at)


Caps = Callable[[str], Awaitable[Collection[str]]]
"""A device's capabilities as its meta last said (``devices.store``)."""


def caps_of(pool: asyncpg.Pool) -> Caps:
    async def lookup(device_id: str) -> Collection[str]:
        record = await device_store.get(pool, device_id)
        return () if record is None else tuple(c.value for c in record.caps)

    return lookup


class ProbeRouter:
    """The round's :class:`~supervision.ports.Prober`: the home probe for a device whose meta
    says ``home_probe``, else the WebRTC probe."""

    def __init__(self, webrtc: Prober, home: HomeProber, caps: Caps) -> None:
        self.webrtc = webrtc
        self.home = home
        self.caps = caps
        self.routed: dict[str, int] = {"home": 0, "webrtc": 0}

    async def path(self, device_id: str) -> str:
        try:
            caps = await self.caps(device_id)
        except (OSError, TimeoutError, LookupError) as e:
            log.warning("probe_caps_unavailable", device_id=device_id, error=type(e).__name__)
            return "webrtc"
        return "home" if topics.Capability.HOME_PROBE.value in caps else "webrtc"

    async def probe(self, *, device_id: str, check_id: str, window_s: float) -> ProbeResult:
        path = await self.path(device_id)
        self.routed[path] += 1
        prober: Prober = self.home if path == "home" else self.webrtc
        return await prober.probe(device_id=device_id, check_id=check_id, window_s=window_s)


__all__ = [
    "HomeOutcome",
    "HomeProbeConfig",
    "HomeProber",
    "ProbeRouter",
    "caps_of",
    "check_answer",
    "pg_audit",
    "probe_zones",
]


class ProbeChannel(Protocol):
    """``services.mqtt.MqttLink.subscribe`` as the home probe uses it."""

    def subscribe(
        self,
        channel: topics.Channel,
        handler: Callable[[topics.Topic, bytes], Awaitable[None]],
    ) -> None: ...


def routed(
    webrtc: Prober,
    *,
    link: ProbeChannel,
    commands: CommandPort,
    gate: ConsentGate,
    pool: asyncpg.Pool,
    zones: ZoneLookup,
    timing: Timing,
    clock: Callable[[], datetime],
) -> ProbeRouter:
    """The composition root's prober: the WebRTC probe, and the home probe for devices that say
    ``home_probe``, whose answers this process hears on ``dev/+/probe`` (every process hears
    every answer; the one waiting takes it). ``clock`` is the service's: the gate is asked, and
    the audit entries stamped, at the night's time (a sped-up or stepped night included)."""
    config = HomeProbeConfig(
        indicator_ack_s=timing.indicator_ack_s, command_timeout_s=timing.command_timeout_s
    )
    home = HomeProber(commands, gate, zones=zones, audit=pg_audit(pool), config=config, clock=clock)
    link.subscribe(topics.Channel.PROBE, home.handle)
    return ProbeRouter(webrtc, home, caps_of(pool))
