"""A device's WebRTC side: answers offers from ``webrtc/in`` with real media.

:func:`attach` hooks a :class:`DevicePeer` onto a :class:`homeside.device.DeviceClient`: its
``webrtc/in`` envelopes and the ``ring``, ``hangup``, ``sleep``, ``wake``, ``drive`` and
``indicator`` commands (the unit shows that a look is live: :meth:`DevicePeer.live`, on the
kiosk page, until ``indicator off`` or the session ends on the device's side); a simulator adds
``scene`` (:func:`simulators.homes.attach`). Per offer the
peer builds an aiortc connection, sends its frame source (:class:`homeside.media.FrameTrack`,
encoded by aiortc; a probe's stream that asks ``b=AS`` is encoded by the device itself at that
rate, :class:`homeside.media.EncodedTrack` and :func:`probe_kbps`; a video phone also sends its
microphone: :data:`AudioSource`, a tone in the simulators), applies
trickled candidates, and answers on ``webrtc/out`` with every candidate inside the SDP (aiortc's
half trickle). One session at a time; a repeated offer for the current session (QoS 1) is
ignored. When a session ends (``bye``, ``sleep``/``hangup``, a refusal, a new offer) the device
reports what it sent: ``stats`` with the frames its track produced and the seconds from the
first to the last.

Nothing the backend sends can stop the device. A message the device cannot use is refused for its
session only: the device sends an ``error`` envelope (``session_id`` when it could be read) on
``webrtc/out``, closes that session's peer if it had one, and keeps serving. Codes:

=================== =================================================================
code                when
=================== =================================================================
envelope reasons    unreadable or not allowed here: ``bad_json``, ``bad_sdp``,
                    ``unexpected_type``, ... (:func:`devices.envelope.decode`)
unknown_session     a video phone's offer for a call it did not ring for; a ``bye`` for
                    a session this device never had
not_answered        a video phone's offer for a call still ringing (media only once
                    the brukare answered)
unexpected_offer    the offer lacks what the device sends (video; a phone also audio)
bad_offer           the WebRTC stack refuses the offer's SDP (no ``a=rtcp-mux``, no ICE
                    credentials, ...)
no_offer            a candidate for a session without an offer
bad_candidate       a candidate the WebRTC stack cannot parse
failed              anything else going wrong while handling the message (logged)
=================== =================================================================

An ``error`` from the backend is only counted, never answered, so two sides never trade errors.

A video phone rings on ``cmd ring`` and answers by its :class:`AnswerPolicy`: ``always``,
``never``, ``after:N`` (seconds) or ``manual`` (the kiosk page's Svara / Avvisa). When the ring
says ``auto_answer`` (the backend saw an auto-answer consent, inside an agreed window) it does not
ring: it announces the call (``announcing``: the kiosk chimes and shows the caller's name) for the
ring's ``announce_s`` (at least :data:`MIN_ANNOUNCE_S`), then answers by itself; no offer is taken
and no video flows before. Avvisa still declines it while it is announced.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import aiomqtt
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from devices import envelope as env
from devices import topics
from devices.errors import PayloadError
from homeside import drive
from homeside.device import DeviceClient
from homeside.encoder import Vp8AtRate, asked_kbps, offers_vp8
from homeside.media import CameraTrack, EncodedTrack, FrameSource, FrameTrack, ToneTrack
from homeside.wheels import MotorDriver, Wheels

log = logging.getLogger(__name__)
DEVICE_IN_TYPES = frozenset(
    {env.MessageType.OFFER, env.MessageType.CANDIDATE, env.MessageType.BYE, env.MessageType.ERROR}
)
#: Sessions that ended lately: a late ``bye`` or trickled candidate of one is expected, not refused.
RECENT_SESSIONS = 16

AudioSource = Callable[[], Awaitable[MediaStreamTrack | None]]
"""A video phone's microphone: a new live audio track for each call, or ``None`` for no sound
from the unit (its answer's audio is then receive-only). The peer stops the track when the call
ends. The simulated phones send :func:`tone`; the device agent its real microphone
(:class:`agent.audio.Microphone`)."""


async def tone() -> MediaStreamTrack | None:
    """The simulated phone's microphone: a quiet tone (:class:`homeside.media.ToneTrack`)."""
    return ToneTrack()


class Refused(Exception):
    """A message this device will not act on; ``code`` goes back in an ``error`` envelope."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def media_kinds(sdp: str) -> frozenset[str]:
    """The media kinds (``audio``, ``video``, ...) of an SDP's ``m=`` sections."""
    return frozenset(
        line[2:].split(" ", 1)[0] for line in sdp.splitlines() if line.startswith("m=")
    )


def probe_kbps(offer: env.Offer) -> int | None:
    """The rate the device encodes a probe's stream at: the offer's ``b=AS``
    (:func:`homeside.encoder.asked_kbps`, bounded) when the offer is a probe's (it carries
    ``stream``) and offers VP8; ``None`` for every other offer (a view, a call: aiortc's own
    encoder at its own rate, and its PLI handling) and for a probe's that asks no rate or no VP8.

    Raises :class:`Refused` (``bad_offer``) for a ``b=AS`` that is not a number."""
    if offer.stream is None:
        return None
    try:
        kbps = asked_kbps(offer.sdp)
    except ValueError as e:
        raise Refused("bad_offer", "the offer's b=AS is not a whole number of kbit/s") from e
    if kbps is None or not offers_vp8(offer.sdp):
        return None
    return kbps


def vp8_only() -> list[RTCRtpCodecCapability]:
    """aiortc's VP8 and RTX (its retransmissions), the codecs a probe's encoded stream uses."""
    return [
        c
        for c in RTCRtpSender.getCapabilities("video").codecs
        if c.mimeType.lower() in {"video/vp8", "video/rtx"}
    ]


class PolicyMode(StrEnum):
    ALWAYS = "always"
    NEVER = "never"
    AFTER = "after"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class AnswerPolicy:
    """How the brukare answers a ringing video phone (``after_s`` for ``after``)."""

    mode: PolicyMode = PolicyMode.MANUAL
    after_s: float = 0.0

    @classmethod
    def parse(cls, text: str) -> AnswerPolicy:
        """``always``, ``never``, ``manual`` or ``after:N`` (N seconds, 0-600)."""
        head, _, arg = text.strip().lower().partition(":")
        try:
            mode = PolicyMode(head)
        except ValueError:
            raise ValueError("answer policy is always, never, manual or after:N") from None
        if mode is PolicyMode.AFTER:
            try:
                after_s = float(arg)
            except ValueError:
                raise ValueError("after:N needs N seconds") from None
            if not 0 <= after_s <= 600:
                raise ValueError("after:N takes 0-600 seconds")
            return cls(mode, after_s)
        if arg:
            raise ValueError(f"{mode.value} takes no argument")
        return cls(mode)


class CallState(StrEnum):
    IDLE = "idle"
    RINGING = "ringing"
    ANNOUNCING = "announcing"  # auto-answered: chime and the caller's name, no video yet
    IN_CALL = "in_call"


MIN_ANNOUNCE_S = 3.0
"""How long an auto-answered call is announced when its ring names no ``announce_s``."""


@dataclass
class PeerStats:
    offers: int = 0
    answers: int = 0
    byes: int = 0
    errors: list[str] = field(default_factory=list)  # codes of the backend's error envelopes
    refused: list[str] = field(default_factory=list)  # codes this device sent back
    frames_received: int = 0
    drives: list[tuple[float, float]] = field(default_factory=list)
    #: Seconds each auto-answered call was announced before the phone answered (video after).
    announced_s: list[float] = field(default_factory=list)
    reported: list[env.Stats] = field(default_factory=list)  # the stats sent, one per session
    #: In order: ``indicator_on``/``indicator_off`` (commands), ``offer`` and ``bye`` (taken).
    seen: list[str] = field(default_factory=list)


class DevicePeer:
    """The WebRTC answerer of one simulated device. ``close()`` is safe to call twice."""

    def __init__(
        self,
        device: DeviceClient,
        *,
        scene: FrameSource,
        policy: AnswerPolicy | None = None,
        audio: AudioSource = tone,
    ) -> None:
        self.device = device
        self.scene: FrameSource = scene
        self.policy = policy or AnswerPolicy()
        self.microphone = audio
        self.stats = PeerStats()
        self.session_id: str | None = None
        self.pc: RTCPeerConnection | None = None
        self.video: CameraTrack | None = None
        self.audio: MediaStreamTrack | None = None  # a phone's microphone while a call runs
        self.call_state = CallState.IDLE
        self.ringing_session: str | None = None
        self.caller: str | None = None  # who calls, as the ring named them (shown, never logged)
        self.announce_s: float | None = None  # an auto-answered call's announcement, seconds
        #: The brukare's language as the last ring named it (kept after the call: the screen
        #: stays in it); ``None`` until a ring names one (the screen's own default).
        self.lang: topics.ScreenLanguage | None = None
        self.indicator: topics.Indicator | None = None  # the live indicator while it is on
        self._indicator_at = 0.0  # loop time it was (last) turned on
        #: A rolling phone's wheels (``attach(..., driver=...)``): ``drive`` and ``dock``.
        self.wheels: Wheels | None = None
        self._lock = asyncio.Lock()
        self._ended: deque[str] = deque(maxlen=RECENT_SESSIONS)
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def is_phone(self) -> bool:
        return self.device.spec.kind is topics.DeviceKind.VIDEO_PHONE

    @property
    def frames_sent(self) -> int:
        return 0 if self.video is None else self.video.frames_sent

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ signalling

    async def on_signal(self, payload: bytes) -> None:
        """One ``webrtc/in`` message (the device agent calls this; order is kept).

        Never raises for what the message says: a refusal or failure is answered with an
        ``error`` for that session (see the module docstring).
        """
        async with self._lock:
            session_id: str | None = None
            try:
                try:
                    message = env.decode(payload, allowed=DEVICE_IN_TYPES)
                except env.EnvelopeError as e:
                    session_id = e.session_id
                    if _says_error(payload):
                        self.stats.errors.append(e.reason)
                        return
                    raise Refused(e.reason, e.detail) from None
                session_id = message.session_id
                match message:
                    case env.Offer():
                        await self._on_offer(message)
                    case env.Candidate():
                        await self._on_candidate(message)
                    case env.Bye():
                        await self._on_bye(message)
                    case env.Error():
                        self.stats.errors.append(message.code)
            except Refused as e:
                await self._refuse(e.code, e.message, session_id)
            except Exception:
                log.exception(
                    "signal handling failed on %s (session %s)",
                    self.device.spec.device_id,
                    session_id,
                )
                await self._refuse("failed", "the device could not handle the message", session_id)

    async def _refuse(self, code: str, message: str, session_id: str | None) -> None:
        """Answer a refused message with an ``error``; close the session it named, if ours."""
        self.stats.refused.append(code)
        log.warning(
            "signal refused on %s: %s (session %s)", self.device.spec.device_id, code, session_id
        )
        if session_id is not None and session_id in {self.session_id, self.ringing_session}:
            await self.close()
        error = env.Error(code=code, message=message, session_id=session_id)
        await self.device.send_signal(env.as_json(error))

    async def _on_offer(self, offer: env.Offer) -> None:
        if offer.session_id == self.session_id:
            return  # a duplicate delivery
        if self.is_phone and offer.session_id != self.ringing_session:
            raise Refused("unknown_session", "a video phone takes offers only for a call it rang")
        if self.is_phone and self.call_state is not CallState.IN_CALL:
            raise Refused("not_answered", "the call has not been answered on the phone")
        wanted = {"audio", "video"} if self.is_phone else {"video"}
        if not wanted <= media_kinds(offer.sdp):
            raise Refused("unexpected_offer", f"the offer needs {' and '.join(sorted(wanted))}")
        kbps = probe_kbps(offer)
        servers = [
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in offer.ice_servers
        ]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._spawn(self._drain(track))

        try:
            video = self._camera(offer, pc, kbps)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
        except Exception as e:  # aiortc raises ValueError, KeyError, ... on SDP it cannot use
            await pc.close()
            raise Refused("bad_offer", "the offer's SDP cannot be used") from e
        # A usable offer: its session replaces whatever ran before (one session at a time).
        await self._close_pc()
        self.stats.offers += 1
        self.stats.seen.append("offer")
        self.pc, self.session_id = pc, offer.session_id
        self.video = video
        try:
            if kbps is None:
                pc.addTrack(video)
            if self.is_phone:
                audio = await self.microphone()
                if self.pc is not pc:  # the call ended while the microphone opened
                    if audio is not None:
                        audio.stop()
                    return
                self.audio = audio
                if audio is not None:
                    pc.addTrack(audio)
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)  # gathers every candidate (half trickle)
        except Exception as e:
            raise Refused("bad_offer", "no answer can be made to this offer") from e
        if self.pc is not pc:
            return
        await self.device.send_signal(
            env.as_json(env.Answer(offer.session_id, sdp=pc.localDescription.sdp))
        )
        self.stats.answers += 1
        if self.ringing_session == offer.session_id:
            self.call_state = CallState.IN_CALL
        if self.wheels is not None:  # the caller sees the battery from the start
            await self._tell_caller(offer.session_id, None)

    def _camera(self, offer: env.Offer, pc: RTCPeerConnection, kbps: int | None) -> CameraTrack:
        """The session's video track: the probe's size and rate if it asks (``stream``), else
        the device's. Without ``kbps`` aiortc encodes it (its codec, its rate; added after the
        offer is set); with it the device encodes VP8 at that rate and the track is added here,
        before the offer is set, with VP8 preferred, so the answer takes the codec encoded."""
        spec = self.device.spec
        w, h, fps = spec.width, spec.height, spec.fps
        if offer.stream is not None:  # a probe's ask: that size, at most that rate
            w, h, fps = offer.stream.w, offer.stream.h, min(spec.fps, offer.stream.fps)
        if kbps is None:
            return FrameTrack(self.scene, width=w, height=h, fps=fps)
        video = EncodedTrack(self.scene, encoder=Vp8AtRate(kbps), width=w, height=h, fps=fps)
        sending = pc.addTransceiver(video, direction="sendonly")
        sending.setCodecPreferences(vp8_only())
        return video

    async def _on_candidate(self, candidate: env.Candidate) -> None:
        if self.pc is None or candidate.session_id != self.session_id:
            if candidate.session_id in self._ended:
                return  # trickled after the session ended
            raise Refused("no_offer", "no offer for this session")
        if candidate.is_end:
            with contextlib.suppress(ValueError):
                await self.pc.addIceCandidate(None)
            return
        try:
            ice = candidate_from_sdp(candidate.candidate.removeprefix("candidate:"))
        except (ValueError, IndexError) as e:
            raise Refused("bad_candidate", "the candidate cannot be parsed") from e
        ice.sdpMid = candidate.sdp_mid
        ice.sdpMLineIndex = candidate.sdp_mline_index
        with contextlib.suppress(ValueError):  # names no media section of ours: ignored
            await self.pc.addIceCandidate(ice)

    async def _on_bye(self, bye: env.Bye) -> None:
        if bye.session_id in {self.session_id, self.ringing_session}:
            self.stats.byes += 1
            self.stats.seen.append("bye")
            await self.close()
        elif bye.session_id not in self._ended:
            raise Refused("unknown_session", "no such session on this device")

    async def _drain(self, track: MediaStreamTrack) -> None:
        """Receive (and count) the caller's media: aiortc's receive queue is unbounded."""
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.stats.frames_received += track.kind == "video"

    async def _close_pc(self) -> None:
        pc, self.pc = self.pc, None
        session_id, video, audio = self.session_id, self.video, self.audio
        if session_id is not None:
            self._ended.append(session_id)
        self.session_id = None
        self.video = None
        self.audio = None
        if pc is not None:
            await pc.close()
        if audio is not None:
            audio.stop()  # a real microphone is closed with it
        if session_id is not None and video is not None:
            await self._report(session_id, video)

    async def _report(self, session_id: str, video: CameraTrack) -> None:
        """Tell the backend what the session sent, once, as it ends: the frames the track
        produced and the seconds from the first to the last (``stats`` on ``webrtc/out``)."""
        stats = env.Stats(session_id, frames=video.frames_sent, video_s=round(video.video_s, 3))
        self.stats.reported.append(stats)
        try:
            await self.device.send_signal(env.as_json(stats))
        except aiomqtt.MqttError as e:  # the link went: the session's video stays unreported
            log.warning("stats of %s not sent: %s", self.device.spec.device_id, e)

    async def close(self) -> None:
        """End the media session and any ringing (and the indicator of either); a caller's
        drive stops with it."""
        if self.wheels is not None:
            self.wheels.call_ended()
        if self.indicator is not None and self.indicator.session_id in {
            self.session_id,
            self.ringing_session,
        }:
            self.indicator = None
        if self.ringing_session is not None and self.ringing_session != self.session_id:
            self._ended.append(self.ringing_session)
        self.ringing_session = None
        self.caller = None
        self.announce_s = None
        self.call_state = CallState.IDLE
        await self._close_pc()

    # ------------------------------------------------------------ calls

    async def on_ring(self, command: topics.Command) -> tuple[bool, str | None]:
        if not self.is_phone:
            return False, "not_a_phone"
        try:
            ring = topics.decode_ring(command)
        except PayloadError as e:  # refused; nothing changes (the reason names no value)
            log.warning("ring refused: %s", e.reason)
            return False, "bad_args"
        session_id = ring.session_id
        if not env.is_session_id(session_id):
            return False, "bad_session_id"
        self.ringing_session = session_id
        self.caller = ring.caller
        self.announce_s = None
        if ring.lang is not None:
            self.lang = ring.lang
        if ring.auto_answer:  # announced (chime, the caller's name) before it answers itself
            self.announce_s = max(ring.announce_s or 0.0, MIN_ANNOUNCE_S)
            self.call_state = CallState.ANNOUNCING
            self._spawn(self._answer_after(session_id, self.announce_s, CallState.ANNOUNCING))
            return True, None
        self.call_state = CallState.RINGING
        if self.policy.mode is PolicyMode.ALWAYS:
            self._spawn(self._answer_after(session_id, 0.0))
        elif self.policy.mode is PolicyMode.AFTER:
            self._spawn(self._answer_after(session_id, self.policy.after_s))
        return True, None

    async def _answer_after(
        self, session_id: str, delay_s: float, state: CallState = CallState.RINGING
    ) -> None:
        began = asyncio.get_running_loop().time()
        await asyncio.sleep(delay_s)
        if self.ringing_session == session_id and self.call_state is state:
            if state is CallState.ANNOUNCING:
                self.stats.announced_s.append(asyncio.get_running_loop().time() - began)
            await self._answered(session_id)

    async def answer(self) -> bool:
        """The brukare presses Svara (while it rings; an announced call answers itself)."""
        session_id = self.ringing_session
        if session_id is None or self.call_state is not CallState.RINGING:
            return False
        await self._answered(session_id)
        return True

    async def _answered(self, session_id: str) -> None:
        """``call_answer``: the backend may now send the caller's offer; video flows after."""
        self.call_state = CallState.IN_CALL
        await self.device.send_event(topics.EventType.CALL_ANSWER, session_id)

    async def decline(self) -> bool:
        """The brukare presses Avvisa (while ringing) or hangs up (in a call)."""
        session_id = self.ringing_session
        if session_id is None:
            return False
        await self.device.send_event(topics.EventType.CALL_DECLINE, session_id)
        await self.close()
        return True

    async def on_stop(self, command: topics.Command) -> tuple[bool, str | None]:
        """``hangup`` and ``sleep``: end whatever runs (a named session only if it is ours)."""
        sid = command.args.get("session_id")
        if sid is None or sid in {self.session_id, self.ringing_session}:
            async with self._lock:
                await self.close()
        return True, None

    async def on_drive(self, command: topics.Command) -> tuple[bool, str | None]:
        """``drive``: the wheels take the speeds for the command's ``valid_ms`` (the dead man,
        :mod:`homeside.drive`); only in a call whose video flows, for that call's session."""
        try:
            order = topics.decode_drive(command)
        except PayloadError as e:  # refused; nothing moves
            log.warning("drive refused: %s %s", e.reason, e.field)
            return False, "bad_args"
        if (
            self.call_state is not CallState.IN_CALL
            or self.pc is None
            or order.session_id != self.session_id
        ):
            return False, "not_in_call"
        self.stats.drives.append((order.linear, order.angular))
        if self.wheels is not None:
            self.wheels.drive(order)
        return True, None

    async def on_dock(self, command: topics.Command) -> tuple[bool, str | None]:
        """``dock``: back to the charger by itself (``docked`` when there)."""
        try:
            order = topics.decode_dock(command)
        except PayloadError as e:
            log.warning("dock refused: %s %s", e.reason, e.field)
            return False, "bad_args"
        if self.wheels is None:
            return False, "no_wheels"
        if not self.wheels.dock(order.session_id):
            return False, "cannot_dock"
        return True, None

    async def on_wheels_event(self, kind: topics.EventType, session_id: str | None) -> None:
        """The wheels' ``bumped``, ``cliff``, ``docked`` or ``low_battery``: an ``event`` (kept
        by the backend), and while the call it names is up a ``unit`` to its caller."""
        await self.device.send_event(kind, session_id)
        if session_id is not None and session_id == self.session_id:
            await self._tell_caller(session_id, env.UnitEvent(kind.value))

    async def _tell_caller(self, session_id: str, event: env.UnitEvent | None) -> None:
        battery = None if self.wheels is None else self.wheels.battery_pct()
        report = env.Unit(session_id, event=event, battery_pct=battery)
        try:
            await self.device.send_signal(env.as_json(report))
        except aiomqtt.MqttError as e:
            log.warning("unit report of %s not sent: %s", self.device.spec.device_id, e)

    async def video_flowing(self) -> bool:
        """Whether this unit's video still reaches its caller, as far as the unit can see
        (:func:`homeside.drive.video_stalled`): the connection, the caller's RTCP receiver
        reports of our video, and our own camera's frames."""
        pc, video = self.pc, self.video
        if pc is None or video is None or video.first_sent_s is None:
            return False
        now = time.monotonic()
        report_age_s = None
        sender = next((s for s in pc.getSenders() if s.track is video), None)
        if sender is not None:
            report = await sender.getStats()
            seen = [s.timestamp for s in report.values() if s.type == "remote-inbound-rtp"]
            if seen:
                report_age_s = (datetime.now(UTC) - max(seen)).total_seconds()
        return not drive.video_stalled(
            is_connected=pc.connectionState == "connected",
            connected_for_s=now - video.first_sent_s,
            report_age_s=report_age_s,
            frame_age_s=None if video.last_sent_s is None else now - video.last_sent_s,
        )

    async def on_indicator(self, command: topics.Command) -> tuple[bool, str | None]:
        """``indicator``: show (``on``) or stop showing (``off``, of the session shown) that a
        look is live; acked at once, as the contract asks (within two seconds)."""
        try:
            indicator = topics.decode_indicator(command)
        except PayloadError as e:
            log.warning("indicator refused: %s", e.reason)
            return False, "bad_args"
        self.stats.seen.append("indicator_on" if indicator.on else "indicator_off")
        if indicator.on:
            self.indicator = indicator
            self._indicator_at = asyncio.get_running_loop().time()
        elif self.indicator is not None and self.indicator.session_id == indicator.session_id:
            self.indicator = None
        log.info(
            "indicator %s on %s (%s, session %s)",
            "on" if indicator.on else "off",
            self.device.spec.device_id,
            indicator.purpose.value,
            indicator.session_id,
        )
        return True, None

    def live(self) -> dict[str, Any] | None:
        """What the unit shows while a look is live: ``purpose``, ``session_id`` and, for a view
        whose plan shows it, ``remaining_s`` counted down from the command; else ``None``."""
        shown = self.indicator
        if shown is None:
            return None
        remaining = None
        if shown.remaining_s is not None:
            spent_s = asyncio.get_running_loop().time() - self._indicator_at
            remaining = round(max(0.0, shown.remaining_s - spent_s), 1)
        return {
            "purpose": shown.purpose.value,
            "session_id": shown.session_id,
            "remaining_s": remaining,
        }

    def set_source(self, source: FrameSource) -> None:
        """What the camera shows from the next frame on."""
        self.scene = source
        if self.video is not None:
            self.video.set_scene(source)


def _says_error(payload: bytes) -> bool:
    """Whether a message the codec refused still says it is an ``error`` (never answered)."""
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and obj.get("type") == env.MessageType.ERROR.value


async def _ok(command: topics.Command) -> tuple[bool, str | None]:
    return True, None


def attach(
    device: DeviceClient,
    *,
    scene: FrameSource,
    policy: AnswerPolicy | None = None,
    driver: MotorDriver | None = None,
    audio: AudioSource = tone,
) -> DevicePeer:
    """Give ``device`` real media and call behaviour; returns the peer for inspection. A video
    phone with a ``driver`` rolls: ``drive`` and ``dock`` move it (:mod:`homeside.wheels`), its
    ``bumped``, ``cliff`` and ``docked`` events name the call, and its events and health carry
    the driver's battery. A video phone sends ``audio`` in a call (:data:`AudioSource`; a quiet
    tone unless told otherwise)."""
    peer = DevicePeer(device, scene=scene, policy=policy, audio=audio)
    if driver is not None and peer.is_phone:
        peer.wheels = Wheels(driver, on_event=peer.on_wheels_event, video_ok=peer.video_flowing)
        device.battery = peer.wheels.battery_pct
    device.on_signal = peer.on_signal
    device.on_command.update(
        {
            topics.CommandOp.RING: peer.on_ring,
            topics.CommandOp.HANGUP: peer.on_stop,
            topics.CommandOp.SLEEP: peer.on_stop,
            topics.CommandOp.WAKE: _ok,
            topics.CommandOp.DRIVE: peer.on_drive,
            topics.CommandOp.DOCK: peer.on_dock,
            topics.CommandOp.INDICATOR: peer.on_indicator,
        }
    )
    return peer
