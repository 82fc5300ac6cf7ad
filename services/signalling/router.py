"""Device side of signalling: check each ``webrtc/out`` message and route it to its session's owner.

A device message reaches exactly one signalling process (a shared subscription). That process
rate-limits the device, decodes the envelope, finds the session (in memory, else its row in
PostgreSQL), refuses a session of another device or a closed one with an ``error`` on the
device's ``webrtc/in``, and hands the message to the process that holds the client's connection:
itself, or another one over ``{prefix}/server/signal/{instance}``.

A ``stats`` message (what the device sent in a session, once, when its side ended) needs no
owner: it is stored on the session's row at once (:meth:`DeviceRouter.on_stats`), also just after
the session closed; a second one, or one for another device's or an unknown session, gets an
``error`` (``duplicate_stats``, ``wrong_device``, ``unknown_session``) and changes nothing.

An ``error`` from a device (it refused a message of a session) is never answered, so the two
sides never trade errors: one for a live session of that device goes to the session's owner like
any other message; one without a session, for an unknown, closed or foreign session, or one that
does not decode is counted (``device_error_dropped``) and dropped.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable

import structlog

from devices import envelope as env
from devices import topics
from devices.errors import PayloadError
from kernel.ratelimit import RateLimiter
from services.signalling.bus import BusUnavailable, route_topic
from services.signalling.ports import BusPort, SessionStore
from services.signalling.store import StatsRecorded

log = structlog.get_logger(__name__)

DeviceMessage = env.Answer | env.Candidate | env.Bye | env.Error | env.Unit
#: ``(device_id, message)`` to the session's owner in this process.
Deliver = Callable[[str, DeviceMessage], Awaitable[None]]
#: The device id of an open session held by this process, else ``None``.
LocalLookup = Callable[[str], str | None]


class DeviceRouter:
    def __init__(
        self,
        *,
        store: SessionStore,
        bus: BusPort,
        instance_id: str,
        rate_per_s: float,
        burst: float,
        local: LocalLookup,
        deliver: Deliver,
        counters: Counter[str],
    ) -> None:
        self.store = store
        self.bus = bus
        self.instance_id = instance_id
        self.local = local
        self.deliver = deliver
        self.counters = counters
        # the first refusal after an allowed message is logged (signal_device_rate_limited)
        self.limit = RateLimiter(
            rate_per_s,
            burst,
            event="signal_device_rate_limited",
            describe=lambda device_id: {"device_id": device_id},
        )

    async def tell_device(self, device_id: str, message: env.Envelope) -> None:
        """Publish to the device's ``webrtc/in``; a broker outage is logged, not raised."""
        try:
            await self.bus.publish_to_device(device_id, env.encode_bytes(message))
        except BusUnavailable:
            log.warning("signal_device_unreachable", device_id=device_id, type=message.type.value)

    async def device_error(
        self, device_id: str, code: str, message: str, session_id: str | None
    ) -> None:
        log.info(
            "signal_device_message_rejected",
            device_id=device_id,
            reason=code,
            session_id=session_id,
        )
        self.counters[f"device_rejected_{code}"] += 1
        await self.tell_device(
            device_id, env.Error(code=code, message=message, session_id=session_id)
        )

    def drop_error(self, device_id: str, why: str, session_id: str | None) -> None:
        """A device's ``error`` that ends nothing: counted and logged, never answered."""
        self.counters["device_error_dropped"] += 1
        log.info("signal_device_error_dropped", device_id=device_id, why=why, session_id=session_id)

    async def on_device_signal(self, device_id: str, payload: bytes) -> None:
        """A device's ``webrtc/out`` message (this process of the share group got it)."""
        if self.limit.wait_s(device_id) > 0:
            self.counters["device_rate_limited"] += 1
            return
        try:
            message = env.decode(payload, allowed=env.DEVICE_TYPES)
        except env.EnvelopeError as e:
            if _says_error(payload):
                self.drop_error(device_id, e.reason, e.session_id)
            else:
                await self.device_error(device_id, e.reason, e.detail, e.session_id)
            return
        if isinstance(message, env.Stats):
            await self.on_stats(device_id, message)
            return
        assert isinstance(message, DeviceMessage)
        sid = message.session_id
        if sid is None:  # an error about no session: nothing here to end
            self.drop_error(device_id, "no_session", None)
            return
        is_error = isinstance(message, env.Error)
        local_device = self.local(sid)
        if local_device is not None:
            owner, owner_device, is_open = self.instance_id, local_device, True
        else:
            row = await self.store.get(sid)
            if row is None:
                if is_error:
                    self.drop_error(device_id, "unknown_session", sid)
                else:
                    await self.device_error(device_id, "unknown_session", "no such session", sid)
                return
            owner, owner_device, is_open = row.instance_id, row.device_id, row.is_open
        if owner_device != device_id:
            log.warning("signal_foreign_session", device_id=device_id, session_id=sid)
            if is_error:
                self.drop_error(device_id, "wrong_device", sid)
            else:
                await self.device_error(
                    device_id, "wrong_device", "the session belongs to another device", sid
                )
            return
        if not is_open:
            if is_error:
                self.drop_error(device_id, "session_closed", sid)
            elif not isinstance(message, env.Bye):
                await self.device_error(device_id, "session_closed", "the session has ended", sid)
            return
        if owner == self.instance_id:
            await self.deliver(device_id, message)
            return
        self.counters["routed_out"] += 1
        routed = json.dumps({"device_id": device_id, "envelope": env.as_json(message)})
        try:
            await self.bus.publish(route_topic(self.bus.prefix, owner), routed.encode())
        except BusUnavailable:
            log.warning("signal_route_failed", session_id=sid, owner=owner)

    async def on_stats(self, device_id: str, stats: env.Stats) -> None:
        """What the device sent in a session, reported when its side ended: stored on the row
        by whichever process got it (open or just closed, no owner needed); a second report, a
        foreign or unknown session gets an ``error`` and changes nothing."""
        recorded = await self.store.record_stats(
            stats.session_id, device_id, frames=stats.frames, video_s=stats.video_s
        )
        if recorded is StatsRecorded.RECORDED:
            self.counters["device_stats_recorded"] += 1
            log.info(
                "signal_stats_recorded",
                session_id=stats.session_id,
                device_id=device_id,
                frames=stats.frames,
                video_s=stats.video_s,
            )
            return
        if recorded is StatsRecorded.WRONG_DEVICE:
            log.warning("signal_foreign_session", device_id=device_id, session_id=stats.session_id)
        await self.device_error(
            device_id, recorded.value, _STATS_REFUSED[recorded], stats.session_id
        )

    async def on_routed(self, payload: bytes) -> None:
        """A device message another process checked and routed to us (the session's owner)."""
        try:
            outer = json.loads(payload)
            device_id = outer["device_id"]
            message = env.decode_object(outer["envelope"], allowed=env.DEVICE_TYPES)
        except (ValueError, KeyError, TypeError) as e:
            raise PayloadError("bad_route", "unreadable routed message") from e
        if not topics.is_device_id(device_id):
            raise PayloadError("bad_route", "routed message names no device")
        assert isinstance(message, DeviceMessage)
        self.counters["routed_in"] += 1
        await self.deliver(device_id, message)


_STATS_REFUSED = {
    StatsRecorded.UNKNOWN_SESSION: "no such session",
    StatsRecorded.WRONG_DEVICE: "the session belongs to another device",
    StatsRecorded.DUPLICATE: "the session's stats were recorded already",
}


def _says_error(payload: bytes) -> bool:
    """Whether a message the codec refused still says it is an ``error`` (never answered)."""
    if len(payload) > env.MAX_MESSAGE_BYTES:
        return False
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and obj.get("type") == env.MessageType.ERROR.value
