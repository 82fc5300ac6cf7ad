"""The device's own VP8 encoder for a probe: the bit rate the probe asks, key frames on a clock.

aiortc's sender encodes a track's pictures itself at its default 500 kbit/s: it reads no ``b=AS``
and its encoder keeps at least 250 kbit/s even when a REMB asks for less. A track whose
``recv()`` returns an ``av.Packet`` is sent as it is (only cut into RTP packets), so for a probe
the device encodes its pictures itself (:class:`homeside.media.EncodedTrack` with a
:class:`Vp8AtRate`) at the rate the offer's ``b=AS`` asks, bounded to
:data:`MIN_KBPS`-:data:`MAX_KBPS`.

The encoder is libvpx through PyAV with aiortc's own real-time settings (CBR, one second of
buffer, ``deadline=realtime``, ``cpu-used=-6``, no look-ahead, quantizer 2-56), one thread (a
probe's stream is at most 320x240). A key frame comes first and then every
:data:`KEY_INTERVAL_S` seconds of stream time: a picture lost beyond what NACK and RTX recover
is whole again within that time. aiortc's sender answers a receiver's PLI or FIR only by
flagging its own encoder, which an encoded track does not use, and it offers no public way to
tell the track, so the periodic key frame is the recovery.

A picture byte-identical to the one before it (a stuck camera, a source that repeats its last
picture) is sent as an exact repeat of what the receiver shows: the encoder decodes its own
output and, for such a picture, encodes the decoded one instead, which VP8 codes as unchanged
(no residual), so the receiver's next picture is identical to its last. Without this, libvpx
keeps refining a stuck picture at a low rate (and again after each key frame), consecutive
received pictures differ by 0.1-1.5 luma levels, and the motion check reads a frozen camera as
``still`` or ``empty`` instead of ``frozen`` (hard rule 7: device trouble; ``bench/frozen_rate.py``
measures it). A live camera's pictures are never byte-identical (sensor noise), so it is not
affected. A clock key frame still encodes the picture itself.

:func:`asked_kbps` reads the rate from an offer (pure; it raises :class:`ValueError` on a
``b=AS`` that is not a whole number of kbit/s).
"""

from __future__ import annotations

import fractions
import re

import av
import numpy as np
from av.stream import Stream
from av.video.codeccontext import VideoCodecContext

MIN_KBPS = 32
"""The lowest rate the device encodes at, whatever ``b=AS`` asks (``b=AS:0`` included)."""
MAX_KBPS = 2000
"""The highest rate the device encodes at, whatever ``b=AS`` asks."""
KEY_INTERVAL_S = 2.0
"""Stream seconds between forced key frames."""

_B_AS = re.compile(r"^b=AS:(.*)$")
_VP8 = re.compile(r"^a=rtpmap:\d+ VP8/90000$", re.IGNORECASE)


def _video_section(sdp: str) -> tuple[list[str], list[str]]:
    """The session-level lines and those of the first ``m=video`` section."""
    session: list[str] = []
    video: list[str] = []
    where = "session"
    for line in sdp.splitlines():
        if line.startswith("m="):
            if where == "video":
                break
            where = "video" if line.startswith("m=video") else "other"
        if where == "session":
            session.append(line)
        elif where == "video":
            video.append(line)
    return session, video


def asked_kbps(sdp: str) -> int | None:
    """The ``b=AS`` of the SDP's first video section (else of the session), in kbit/s and
    bounded to :data:`MIN_KBPS`-:data:`MAX_KBPS`; ``None`` when it asks none.

    Raises :class:`ValueError` when ``b=AS`` is not a whole number."""
    session, video = _video_section(sdp)
    for lines in (video, session):
        for line in lines:
            m = _B_AS.match(line)
            if m is None:
                continue
            value = m.group(1)
            if not (value.isascii() and value.isdigit() and len(value) <= 9):
                raise ValueError("b=AS is not a whole number of kbit/s")
            return max(MIN_KBPS, min(MAX_KBPS, int(value)))
    return None


def offers_vp8(sdp: str) -> bool:
    """Whether the SDP's first video section offers VP8."""
    _, video = _video_section(sdp)
    return any(_VP8.match(line) for line in video)


class Vp8AtRate:
    """VP8 at ``kbps`` (CBR), a key frame first and every ``key_interval_s`` of stream time.

    :meth:`encode` is blocking (libvpx): call it from an executor, one call at a time."""

    def __init__(
        self, kbps: int, *, key_interval_s: float = KEY_INTERVAL_S, exact_repeats: bool = True
    ) -> None:
        if not MIN_KBPS <= kbps <= MAX_KBPS:
            raise ValueError(f"kbps must be {MIN_KBPS}-{MAX_KBPS}")
        if not key_interval_s > 0:
            raise ValueError("key_interval_s must be positive")
        self.kbps = kbps
        self.key_interval_s = key_interval_s
        #: Send a picture identical to the one before as an exact repeat (off only to measure
        #: what libvpx alone does: ``bench/frozen_rate.py``'s baseline).
        self.exact_repeats = exact_repeats
        self.frames = 0  # frames encoded
        self.key_frames = 0  # of them, key frames
        self.bytes = 0  # encoded bytes
        self.repeats = 0  # of them, pictures identical to the one before, sent as exact repeats
        self._codec: VideoCodecContext | None = None
        self._decoder: VideoCodecContext | None = None
        self._next_key_s: float | None = None
        self._last_picture: np.ndarray | None = None  # the previous picture given, I420
        self._shown: np.ndarray | None = None  # what the receiver shows now, I420

    def _open(self, frame: av.VideoFrame, time_base: fractions.Fraction) -> VideoCodecContext:
        bit_rate = self.kbps * 1000
        codec = av.CodecContext.create("libvpx", "w")
        assert isinstance(codec, VideoCodecContext)
        codec.width = frame.width
        codec.height = frame.height
        codec.pix_fmt = "yuv420p"
        codec.bit_rate = bit_rate
        codec.time_base = time_base
        codec.gop_size = 3000  # key frames come from the clock below
        codec.qmin = 2
        codec.qmax = 56
        codec.thread_count = 1
        codec.options = {  # aiortc's Vp8Encoder's real-time settings, at our rate
            "bufsize": str(bit_rate),  # one second of buffer
            "cpu-used": "-6",
            "deadline": "realtime",
            "lag-in-frames": "0",
            "minrate": str(bit_rate),  # minrate = maxrate = bit_rate: CBR
            "maxrate": str(bit_rate),
            "noise-sensitivity": "4",
            "overshoot-pct": "15",
            "partitions": "0",
            "static-thresh": "1",
            "undershoot-pct": "100",
        }
        return codec

    def encode(self, frame: av.VideoFrame) -> av.Packet[Stream] | None:
        """One picture (``yuv420p``, with ``pts`` and ``time_base``) as one VP8 frame, or
        ``None`` if the encoder dropped it. A new picture size starts a new stream (a key
        frame)."""
        pts, time_base = frame.pts, frame.time_base
        if pts is None or time_base is None:
            raise ValueError("a frame to encode needs pts and time_base")
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        codec = self._codec
        if codec is not None and (frame.width, frame.height) != (codec.width, codec.height):
            codec = None
        if codec is None:
            codec = self._codec = self._open(frame, time_base)
            self._decoder = av.CodecContext.create("libvpx", "r")
            self._next_key_s = None
            self._last_picture = self._shown = None
        picture = frame.to_ndarray()
        repeat = self._last_picture is not None and np.array_equal(picture, self._last_picture)
        self._last_picture = picture
        t_s = float(pts * time_base)
        key = self._next_key_s is None or t_s >= self._next_key_s
        if key:
            self._next_key_s = t_s + self.key_interval_s
        elif repeat and self.exact_repeats and self._shown is not None:
            # what the receiver shows, so VP8 codes no change and it shows it again exactly
            frame = av.VideoFrame.from_ndarray(self._shown, format="yuv420p")
            frame.pts, frame.time_base = pts, time_base
            self.repeats += 1
        if key:
            frame.pict_type = av.video.frame.PictureType.I
        data = b"".join(bytes(p) for p in codec.encode(frame))
        self.frames += 1
        if not data:
            return None
        packet: av.Packet[Stream] = av.Packet(data)
        packet.pts = pts
        packet.time_base = time_base
        self.bytes += len(data)
        self.key_frames += _is_key(data)
        assert self._decoder is not None
        decoded = self._decoder.decode(av.Packet(data))
        if decoded:
            self._shown = decoded[-1].reformat(format="yuv420p").to_ndarray()
        return packet


def _is_key(data: bytes) -> bool:
    """A VP8 frame's key-frame bit (RFC 6386 9.1: bit 0 of the frame tag, 0 for a key frame)."""
    return bool(data) and not data[0] & 1
