"""A device's media: aiortc tracks that send pictures from any frame source, and a soft tone.

:class:`FrameTrack` paces frames at the device's ``fps`` and hands aiortc's encoder each picture
as ``yuv420p`` straight from its :class:`FrameSource` (a simulated scene, a camera, a file or an
RTSP stream; no colour conversion). :class:`EncodedTrack` paces the same pictures but encodes
them itself (a :class:`FrameEncoder`, in the event loop's default executor, so the loop is
never blocked) and hands aiortc the encoded frames, which it sends as they are: how a probe's
stream keeps to the rate the probe asks (:mod:`homeside.encoder`). The source can be changed
while a session runs (:meth:`CameraTrack.set_scene`). :class:`ToneTrack` is the
video phone's microphone: a quiet 440 Hz tone, 20 ms frames at 48 kHz. No frame or sample is
ever written anywhere.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from typing import Protocol

import av
import numpy as np
import numpy.typing as npt
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.stream import Stream

VIDEO_CLOCK_RATE = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_RATE)
AUDIO_RATE = 48_000
AUDIO_PTIME_S = 0.020


class FrameSource(Protocol):
    """Anything that draws an I420 picture (``height * 3 // 2`` x ``width`` uint8) at ``t_s``."""

    def yuv420(self, t_s: float, width: int, height: int) -> npt.NDArray[np.uint8]: ...


class CameraTrack(MediaStreamTrack):
    """A live video track of a frame source, ``width`` x ``height`` at ``fps``: the pacing and
    the counts; :class:`FrameTrack` and :class:`EncodedTrack` say what ``recv()`` gives."""

    kind = "video"

    def __init__(
        self,
        source: FrameSource,
        *,
        width: int = 320,
        height: int = 240,
        fps: float = 10.0,
    ) -> None:
        super().__init__()
        if width % 2 or height % 2 or width < 16 or height < 16:
            raise ValueError("width and height must be even and at least 16")
        if not 0.5 <= fps <= 60:
            raise ValueError("fps must be between 0.5 and 60")
        self.source: FrameSource = source
        self.width = width
        self.height = height
        self.fps = fps
        self.frames_sent = 0
        #: Monotonic seconds of the first and the last frame handed to the encoder.
        self.first_sent_s: float | None = None
        self.last_sent_s: float | None = None
        self._start: float | None = None
        self._clock_s = 0.0  # scene time of the next frame

    def set_scene(self, source: FrameSource) -> None:
        """Switch what the camera sees, from the next frame on."""
        self.source = source

    async def next_frame(self) -> av.VideoFrame:
        """The next picture, when its time comes (raises :class:`MediaStreamError` once the
        track has ended)."""
        if self.readyState != "live":
            raise MediaStreamError
        step = 1.0 / self.fps
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._clock_s += step
            wait = self._start + self._clock_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -1.0:  # fell far behind (a busy loop): skip ahead, do not burst
                self._start = time.monotonic() - self._clock_s
        picture = self.source.yuv420(self._clock_s, self.width, self.height)
        frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
        frame.pts = round(self._clock_s * VIDEO_CLOCK_RATE)
        frame.time_base = VIDEO_TIME_BASE
        self.frames_sent += 1
        self.last_sent_s = time.monotonic()
        if self.first_sent_s is None:
            self.first_sent_s = self.last_sent_s
        return frame

    @property
    def video_s(self) -> float:
        """Seconds from the first frame sent to the last (0 before two frames)."""
        if self.first_sent_s is None or self.last_sent_s is None:
            return 0.0
        return self.last_sent_s - self.first_sent_s


class FrameTrack(CameraTrack):
    """Pictures for aiortc's sender to encode (its codec, its rate: VP8 at 500 kbit/s)."""

    async def recv(self) -> av.VideoFrame:
        return await self.next_frame()


class FrameEncoder(Protocol):
    """Encodes one picture into one frame of the negotiated codec (``None``: dropped).
    Blocking; called from an executor, one call at a time."""

    def encode(self, frame: av.VideoFrame) -> av.Packet[Stream] | None: ...


class EncodedTrack(CameraTrack):
    """Pictures encoded by the device's own ``encoder``; aiortc's sender only packetises them
    (an ``av.Packet`` from ``recv()`` is not encoded again). The encoder must produce the codec
    the session negotiated."""

    def __init__(
        self,
        source: FrameSource,
        *,
        encoder: FrameEncoder,
        width: int = 320,
        height: int = 240,
        fps: float = 10.0,
    ) -> None:
        super().__init__(source, width=width, height=height, fps=fps)
        self.encoder = encoder

    async def recv(self) -> av.Packet[Stream]:
        loop = asyncio.get_running_loop()
        while True:
            frame = await self.next_frame()
            packet = await loop.run_in_executor(None, self.encoder.encode, frame)
            if packet is not None:
                return packet


class ToneTrack(MediaStreamTrack):
    """A quiet sine tone (``hz``, ``level`` 0..1 of full scale), mono 48 kHz in 20 ms frames."""

    kind = "audio"

    def __init__(self, hz: float = 440.0, level: float = 0.05) -> None:
        super().__init__()
        self.samples = int(AUDIO_RATE * AUDIO_PTIME_S)
        self._step = 2 * math.pi * hz / AUDIO_RATE
        self._level = level
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += self.samples
            wait = self._start + self._pts / AUDIO_RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        n = np.arange(self._pts, self._pts + self.samples, dtype=np.float64)
        pcm = (np.sin(n * self._step) * self._level * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.pts = self._pts
        frame.sample_rate = AUDIO_RATE
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        return frame
