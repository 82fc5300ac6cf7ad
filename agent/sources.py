"""Real video sources for the device agent: a file (looped), an RTSP camera or a V4L2 camera.

:func:`parse_source` reads ``--source`` (``file:PATH``, ``rtsp://...``/``rtsps://...``,
``v4l2:/dev/videoN`` or ``/dev/videoN``) and refuses anything else with a :class:`SourceError`
that says what is wrong; :func:`check_file` opens a file once to see that it holds video.

:class:`VideoSource` decodes with PyAV on a thread of its own and keeps only the newest picture,
already scaled to the device's size as I420 (``yuv420p``) planes, in memory: nothing is written
anywhere. Every pixel format is converted by FFmpeg's scaler (:func:`to_i420`): packed RGB such as
the ``bgra`` of lossless clips, ``gray``, ``nv12``, ``yuyv422`` of a webcam, and full-range luma
(``yuvj420p`` of an MJPEG camera, or ``yuv420p`` an H.264 camera flags as full range) is brought
to video range (black 16, white 235), as a decoder of the stream sent expects it.
It is a :class:`homeside.media.FrameSource`: :class:`homeside.media.FrameTrack` asks it for the
newest picture at its own pace; each picture is also measured for :meth:`VideoSource.health`
by the motion kernel (:class:`agent.health.PictureMeter`). A lost source (an RTSP camera gone,
a camera unplugged, a read error) is opened again with backoff (0.5 s doubling to 10 s) until
:meth:`VideoSource.stop`; while nothing arrives the track sends black and
:meth:`VideoSource.health` says ``no_frames``. A file is paced at its own frame rate and starts
again at its end.

RTSP is read over TCP (``rtsp_transport=tcp``: no UDP ports to open through a home router) with
socket and read timeouts, so a camera that goes silent is noticed within seconds.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import av
import numpy as np
import numpy.typing as npt

from agent.health import DEFAULT_LIMITS, Picture, PictureMeter, VideoLimits, assess
from devices.topics import VideoHealth

log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]
OPEN_TIMEOUT_S = 5.0  # opening a stream (connect, describe, first packets)
READ_TIMEOUT_S = 3.0  # a stream that sends nothing this long is lost
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 10.0
BLACK_Y = 16  # video black in limited-range luma


class SourceError(ValueError):
    """A ``--source`` that cannot be used; the message says why (never a password)."""


class SourceKind(StrEnum):
    FILE = "file"
    RTSP = "rtsp"
    V4L2 = "v4l2"


@dataclass(frozen=True, slots=True)
class SourceSpec:
    kind: SourceKind
    target: str  # the path, or the URL as given (credentials and all: never logged)

    @property
    def shown(self) -> str:
        """The source for logs and messages: an RTSP URL without its user and password."""
        if self.kind is not SourceKind.RTSP:
            return f"{self.kind.value}:{self.target}"
        parts = urlsplit(self.target)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))


USAGE = "--source is file:PATH, rtsp://HOST[:PORT]/PATH or v4l2:/dev/videoN"


def parse_source(text: str) -> SourceSpec:
    """``--source`` as a :class:`SourceSpec`; :class:`SourceError` for anything unusable."""
    text = text.strip()
    if text.startswith("file:"):
        path = Path(text.removeprefix("file:"))
        if not path.name:
            raise SourceError(f"file: names no file ({USAGE})")
        if not path.is_file():
            raise SourceError(f"no such file: {path}")
        if not os.access(path, os.R_OK):
            raise SourceError(f"cannot read file: {path}")
        return SourceSpec(SourceKind.FILE, str(path))
    if text.startswith(("rtsp://", "rtsps://")):
        try:
            parts = urlsplit(text)
            _ = parts.port  # a port that is no number raises here
        except ValueError as e:
            raise SourceError(f"not a usable RTSP URL: {e}") from None
        if not parts.hostname or any(c.isspace() for c in text):
            raise SourceError(f"an RTSP URL needs a host and no spaces ({USAGE})")
        return SourceSpec(SourceKind.RTSP, text)
    if text.startswith(("v4l2:", "/dev/")):
        path = Path(text.removeprefix("v4l2:"))
        try:
            mode = path.stat().st_mode
        except OSError:
            raise SourceError(f"no such camera device: {path}") from None
        if not stat.S_ISCHR(mode):
            raise SourceError(f"not a camera device (a character device): {path}")
        return SourceSpec(SourceKind.V4L2, str(path))
    raise SourceError(USAGE)


def _open(spec: SourceSpec) -> Any:
    """The PyAV container of ``spec`` (raises PyAV's errors or ``OSError``)."""
    timeout = (OPEN_TIMEOUT_S, READ_TIMEOUT_S)
    if spec.kind is SourceKind.RTSP:
        options = {
            "rtsp_transport": "tcp",
            "timeout": str(int(READ_TIMEOUT_S * 1e6)),  # socket I/O, microseconds
            "fflags": "nobuffer",
            "analyzeduration": "500000",  # the SDP names the codec: no long probing
            "probesize": "65536",
        }
        return av.open(spec.target, options=options, timeout=timeout)
    if spec.kind is SourceKind.V4L2:
        return av.open(spec.target, format="v4l2", timeout=timeout)
    return av.open(spec.target, timeout=timeout)


def check_file(spec: SourceSpec) -> None:
    """Open a file source once: :class:`SourceError` if it holds no decodable video."""
    if spec.kind is not SourceKind.FILE:
        return
    try:
        with _open(spec) as container:
            if not container.streams.video:
                raise SourceError(f"no video stream in {spec.target}")
            stream = container.streams.video[0]
            for _ in container.decode(stream):
                return
    except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise SourceError(f"cannot decode {spec.target}: {type(e).__name__}") from None
    raise SourceError(f"no video frame in {spec.target}")


class VideoSource:
    """The newest picture of a real source, decoded on a thread (see the module docstring)."""

    def __init__(
        self,
        spec: SourceSpec,
        *,
        width: int,
        height: int,
        limits: VideoLimits = DEFAULT_LIMITS,
    ) -> None:
        if width % 2 or height % 2 or width < 16 or height < 16:
            raise ValueError("width and height must be even and at least 16")
        self.spec = spec
        self.width = width
        self.height = height
        self.limits = limits
        self.frames = 0  # decoded since start
        self.opened = 0  # times the source was opened
        self.failures = 0  # opens or reads that failed
        self._lost = False  # failed or ended since it was last opened (a file's loop is not)
        self._latest: U8 | None = None
        self._pictures: deque[Picture] = deque(maxlen=600)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._black: U8 | None = None
        self._meter = PictureMeter(limits.thresholds)  # used on the decoding thread only

    # ------------------------------------------------------------------ the FrameSource side

    def yuv420(self, t_s: float, width: int, height: int) -> U8:
        """The newest picture as I420 at ``width`` x ``height``; black while none arrives."""
        with self._lock:
            latest = self._latest
        if latest is not None and now_fresh(self._pictures, self.limits.stale_s):
            if latest.shape == (height * 3 // 2, width):
                return latest
            return _scale(latest, width, height)
        black = self._black
        if black is None or black.shape != (height * 3 // 2, width):
            black = np.full((height * 3 // 2, width), 128, np.uint8)
            black[:height] = BLACK_Y
            self._black = black
        return black

    def health(self, now: float | None = None) -> VideoHealth:
        with self._lock:
            pictures = list(self._pictures)
        return assess(pictures, time.monotonic() if now is None else now, self.limits)

    # ------------------------------------------------------------------ the decoding thread

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"video-{self.spec.kind.value}", daemon=True
            )
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        wait_s = RETRY_FIRST_S
        while not self._stop.is_set():
            try:
                got = self._read_once()
            except (av.FFmpegError, OSError) as e:
                got = False
                self.failures += 1
                # a warning when it goes; each retry after that only at debug
                level = logging.DEBUG if self._lost else logging.WARNING
                self._lost = True
                log.log(level, "video source %s failed: %s", self.spec.shown, type(e).__name__)
            except Exception:  # a thread boundary: the agent keeps running, without pictures
                got = False
                self.failures += 1
                self._lost = True
                log.exception("video source %s failed", self.spec.shown)
            else:
                if got and self.spec.kind is SourceKind.FILE:
                    wait_s = RETRY_FIRST_S
                    continue  # the file ended: from the start again
                if not self._stop.is_set():  # a camera's stream ended by itself
                    self._lost = True
                    log.warning("video source %s ended", self.spec.shown)
            if got:
                wait_s = RETRY_FIRST_S
            self._stop.wait(wait_s)
            wait_s = min(wait_s * 2, RETRY_MAX_S)

    def _read_once(self) -> bool:
        """Open the source and decode until it ends; True if any picture arrived."""
        got = False
        with _open(self.spec) as container:
            self.opened += 1
            if self.opened == 1 or self._lost:
                again = "opened again" if self.opened > 1 else "opened"
                log.info("video source %s %s", self.spec.shown, again)
                self._lost = False
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            pace = self.spec.kind is SourceKind.FILE
            began: float | None = None
            first_pts_s: float | None = None
            for frame in container.decode(stream):
                if self._stop.is_set():
                    return got
                if pace and frame.time is not None:  # a file plays at its own rate
                    if began is None or first_pts_s is None:
                        began, first_pts_s = time.monotonic(), float(frame.time)
                    ahead = began + (float(frame.time) - first_pts_s) - time.monotonic()
                    if ahead > 0 and self._stop.wait(min(ahead, 1.0)):
                        return got
                self._take(frame)
                got = True
        return got

    def _take(self, frame: av.VideoFrame) -> None:
        picture = to_i420(frame, self.width, self.height)
        seen = self._meter.measure(picture[: self.height], time.monotonic())
        with self._lock:
            self._latest = picture
            self._pictures.append(seen)
        self.frames += 1


def to_i420(frame: av.VideoFrame, width: int, height: int) -> U8:
    """``frame``, of any pixel format, as video-range I420 planes at ``width`` x ``height``: a
    ``uint8`` array of ``height * 3 // 2`` rows, Y then U then V (:class:`VideoSource`'s
    picture). The source's range is the frame's own (full for ``yuvj*``, RGB and ``gray``, or as
    the stream flags it); the result is always limited (video) range."""
    scaled = frame.reformat(width=width, height=height, format="yuv420p", dst_color_range="MPEG")
    return np.asarray(scaled.to_ndarray(), np.uint8)


def now_fresh(pictures: deque[Picture], stale_s: float) -> bool:
    """Whether the newest picture arrived within ``stale_s`` (an old one is not shown)."""
    try:
        last = pictures[-1]
    except IndexError:
        return False
    return time.monotonic() - last.at <= stale_s


def _scale(picture: U8, width: int, height: int) -> U8:
    frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
    return np.asarray(
        frame.reformat(width=width, height=height, format="yuv420p").to_ndarray(), np.uint8
    )
