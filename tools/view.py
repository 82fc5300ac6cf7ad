"""A reference signalling client: an aiortc peer that asks for a view (or call) and counts frames.

Used by ``homecare view DEVICE --check ID`` (or ``--reason CODE --note TEXT``, an extra look),
the integration tests and ``bench/signalling.py``. The peer offers receive-only video for a view
or probe; for a call it also sends a synthetic camera and a tone, and reports its decoded frame
count (``video``) so the server can tell fresh video from stale. Every purpose reports its first
decoded frame at once (the backend's click -> first frame histogram). Frames are counted and
dropped, never stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TextIO

import aiohttp
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp
from av import AudioFrame, VideoFrame

from devices import envelope as env
from homeside.media import FrameTrack, ToneTrack
from simulators.scenes import Scene, SceneKind

SERVER_TYPES = frozenset(
    {
        env.MessageType.GRANTED,
        env.MessageType.DENIED,
        env.MessageType.ANSWER,
        env.MessageType.CANDIDATE,
        env.MessageType.BYE,
        env.MessageType.ERROR,
        env.MessageType.ACK,
        env.MessageType.UNIT,
    }
)


class Channel(Protocol):
    """Where envelopes go: a WebSocket or an in-process connection."""

    async def send(self, message: env.Envelope) -> None: ...

    async def recv(self) -> env.Envelope:
        """The next server message; ``ConnectionError`` when the channel is gone."""
        ...


class WebSocketChannel:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, message: env.Envelope) -> None:
        await self.ws.send_str(env.encode(message))

    async def recv(self) -> env.Envelope:
        while True:
            msg = await self.ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                return env.decode(msg.data, allowed=SERVER_TYPES)
            if msg.type in {
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            }:
                raise ConnectionError(f"signalling closed the WebSocket ({self.ws.close_code})")


def new_session_id() -> str:
    return "s-" + secrets.token_urlsafe(12)


@dataclass
class ViewResult:
    session_id: str
    granted: bool = False
    denied: str | None = None
    bye: str | None = None
    frames: int = 0
    #: Audio frames decoded (a call: the unit's microphone), counted and dropped.
    audio_frames: int = 0
    request_to_first_frame_s: float | None = None
    errors: list[str] = field(default_factory=list)
    deadline: float | None = None
    #: What a rolling phone reported during the call (``unit``), in order.
    units: list[env.Unit] = field(default_factory=list)

    @property
    def ended(self) -> str:
        return self.bye or (f"denied: {self.denied}" if self.denied else "disconnected")


class View:
    """One session from the client side; ``await view.run()`` returns when it has ended."""

    def __init__(
        self,
        channel: Channel,
        device_id: str,
        *,
        purpose: env.Purpose = env.Purpose.VIEW,
        duration_s: float | None = None,
        session_id: str | None = None,
        on_frame: Callable[[int], None] | None = None,
        on_picture: Callable[[VideoFrame], None] | None = None,
        on_sound: Callable[[AudioFrame], None] | None = None,
        on_granted: Callable[[env.Granted], Awaitable[None]] | None = None,
        report_video: bool = True,
        check_id: str | None = None,
        reason: env.LookReason | None = None,
        note: str | None = None,
    ) -> None:
        """A view names what it is owed to: ``check_id`` (a due check) or, for an extra look,
        ``reason`` and ``note``; without either the server answers ``denied no_due_check``."""
        self.channel = channel
        self.device_id = device_id
        self.purpose = purpose
        self.check_id = check_id
        self.reason = reason
        self.note = note
        self.duration_s = duration_s
        self.result = ViewResult(session_id or new_session_id())
        self.on_frame = on_frame
        self.on_picture = on_picture  # sees each decoded frame in memory; must not keep it
        self.on_sound = on_sound  # sees each decoded audio frame in memory; must not keep it
        self.on_granted = on_granted
        self.report_video = report_video
        self.first_frame = asyncio.Event()
        self.pc: RTCPeerConnection | None = None
        self._t0 = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def session_id(self) -> str:
        return self.result.session_id

    async def run(self) -> ViewResult:
        self._t0 = time.perf_counter()
        await self.channel.send(
            env.Request(
                self.session_id,
                device_id=self.device_id,
                purpose=self.purpose,
                check_id=self.check_id,
                reason=self.reason,
                note=self.note,
            )
        )
        try:
            await self._loop()
        except ConnectionError:
            pass
        finally:
            for task in self._tasks:
                task.cancel()
            if self.pc is not None:
                await self.pc.close()
        return self.result

    async def hang_up(self) -> None:
        await self.channel.send(env.Bye(self.session_id, env.ByeReason.OPERATOR))

    async def _loop(self) -> None:
        while True:
            message = await self.channel.recv()
            if message.session_id not in {self.session_id, None}:
                continue
            match message:
                case env.Granted():
                    self.result.deadline = message.deadline
                    if not self.result.granted:
                        self.result.granted = True
                        await self._offer(message)
                        if self.on_granted is not None:
                            await self.on_granted(message)
                case env.Denied():
                    self.result.denied = message.reason
                    return
                case env.Answer():
                    assert self.pc is not None
                    await self.pc.setRemoteDescription(
                        RTCSessionDescription(sdp=message.sdp, type="answer")
                    )
                case env.Candidate():
                    await self._add_candidate(message)
                case env.Bye():
                    self.result.bye = message.reason.value
                    return
                case env.Error():
                    self.result.errors.append(message.code)
                case env.Unit():
                    self.result.units.append(message)
                case _:
                    pass

    async def _offer(self, granted: env.Granted) -> None:
        servers = [
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in granted.ice_servers
        ]
        pc = self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._spawn(self._drain(track))

        if self.purpose is env.Purpose.CALL:
            pc.addTrack(FrameTrack(Scene(SceneKind.WALKING), width=320, height=240, fps=10))
            pc.addTrack(ToneTrack(hz=660))
            if self.report_video:
                self._spawn(self._report_frames())
        else:
            pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())  # every candidate inside
        await self.channel.send(env.Offer(self.session_id, sdp=pc.localDescription.sdp))
        if self.duration_s is not None:
            self._spawn(self._stop_after(self.duration_s))

    async def _add_candidate(self, message: env.Candidate) -> None:
        if self.pc is None:
            return
        if message.is_end:
            with contextlib.suppress(ValueError):
                await self.pc.addIceCandidate(None)
            return
        ice = candidate_from_sdp(message.candidate.removeprefix("candidate:"))
        ice.sdpMid = message.sdp_mid
        ice.sdpMLineIndex = message.sdp_mline_index
        with contextlib.suppress(ValueError):
            await self.pc.addIceCandidate(ice)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if track.kind == "audio":
                    self.result.audio_frames += 1
                    if self.on_sound is not None and isinstance(frame, AudioFrame):
                        self.on_sound(frame)
                if track.kind != "video":
                    continue
                if self.on_picture is not None and isinstance(frame, VideoFrame):
                    self.on_picture(frame)
                self.result.frames += 1
                if self.result.request_to_first_frame_s is None:
                    self.result.request_to_first_frame_s = time.perf_counter() - self._t0
                    self.first_frame.set()
                    if self.report_video:  # the backend's click -> first frame (/metrics)
                        with contextlib.suppress(ConnectionError):
                            await self.channel.send(env.Video(self.session_id, frames=1))
                if self.on_frame is not None:
                    self.on_frame(self.result.frames)

    async def _report_frames(self) -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                await asyncio.sleep(0.25)
                await self.channel.send(env.Video(self.session_id, frames=self.result.frames))

    async def _stop_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        with contextlib.suppress(ConnectionError):
            await self.hang_up()


async def view_command(
    *,
    url: str,
    device_id: str,
    token: str | None,
    purpose: env.Purpose = env.Purpose.VIEW,
    duration_s: float | None = None,
    out: TextIO = sys.stdout,
    check_id: str | None = None,
    reason: env.LookReason | None = None,
    note: str | None = None,
) -> int:
    """``homecare view``: 0 if frames arrived, 1 if none did, 2 if denied or unreachable (a view
    naming neither ``check_id`` nor ``reason`` and ``note`` is ``denied: no_due_check``)."""
    try:  # the request as the server will read it: a bad check id or note is refused here
        env.decode(
            env.encode_bytes(
                env.Request(
                    new_session_id(),
                    device_id=device_id,
                    purpose=purpose,
                    check_id=check_id,
                    reason=reason,
                    note=note,
                )
            )
        )
    except env.EnvelopeError as e:
        print(f"homecare view: {e.field or 'request'}: {e.reason}", file=out)
        return 2
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ws_url = url.rstrip("/") + "/ws/signal"
    try:
        async with (
            aiohttp.ClientSession(headers=headers) as http,
            http.ws_connect(ws_url, max_msg_size=env.MAX_MESSAGE_BYTES) as ws,
        ):
            view = View(
                WebSocketChannel(ws),
                device_id,
                purpose=purpose,
                duration_s=duration_s,
                check_id=check_id,
                reason=reason,
                note=note,
            )
            result = await view.run()
    except (aiohttp.ClientError, OSError) as e:
        print(f"homecare view: cannot reach {ws_url}: {e}", file=out)
        return 2
    if result.denied:
        print(f"denied: {result.denied}", file=out)
        return 2
    print(f"{result.frames} frames", file=out)
    print(f"ended: {result.ended}", file=out)
    for code in result.errors:
        print(f"error: {code}", file=out)
    return 0 if result.frames else 1
