"""A video phone's microphone in a call: ALSA or PulseAudio, opened for the call only.

``homecare agent --kind video_phone --audio ...`` (:func:`parse_audio`):

- ``alsa:DEVICE`` (``alsa:default``, ``alsa:plughw:1,0``, ...): an ALSA capture device;
- ``pulse:default``: the PulseAudio (or PipeWire) server, through PyAV's ``pulse`` input where
  its FFmpeg has one, else through ALSA's ``pulse`` device (Debian's ``libasound2-plugins``; the
  FFmpeg bundled with PyAV's wheels has ALSA but no PulseAudio input);
- ``none``: no microphone: the phone sends no sound (its answer's audio is receive-only, the
  brukare still hears the caller);
- no ``--audio``: :func:`choose` picks ``pulse:default`` if a PulseAudio server answers on its
  socket and opens, else ``alsa:default`` if it opens, else ``none``, and says which.

:class:`Microphone` is the :data:`homeside.peer.AudioSource` the agent gives its peer: for every
call it opens the device anew with aiortc's ``MediaPlayer`` (PyAV decoding on a thread, 20 ms
frames at 48 kHz), and the peer stops the track when the call ends, which closes the device.
A device that cannot be opened gives no track (logged; the call goes on without sound from the
unit). Nothing is recorded: samples go to the encoder and nowhere else.

PyAV's wheels carry their own ``libasound`` that looks for its configuration where it was built;
:func:`use_system_alsa_config` points it at the system's (``/usr/share/alsa/alsa.conf``) so that
``default`` and the system's plugins mean what they mean to ``arecord``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamTrack

log = logging.getLogger(__name__)

SYSTEM_ALSA_CONF = Path("/usr/share/alsa/alsa.conf")
OPEN_TIMEOUT_S = 3.0
USAGE = "--audio is alsa:DEVICE (e.g. alsa:default), pulse:default or none"


class AudioError(ValueError):
    """An ``--audio`` that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class MicSpec:
    """An input for PyAV: ``av.open(target, format=fmt)`` (``lavfi`` only in tests)."""

    fmt: str
    target: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def shown(self) -> str:
        return f"{self.fmt}:{self.target}"


NONE = "none"


def parse_audio(text: str) -> MicSpec | None:
    """``--audio`` as a :class:`MicSpec` (``None`` for ``none``); :class:`AudioError` else."""
    text = text.strip()
    if text == NONE:
        return None
    kind, _, device = text.partition(":")
    if kind == "alsa":
        if not device or any(c.isspace() for c in device) or len(device) > 128:
            raise AudioError(f"alsa: names no usable device ({USAGE})")
        return MicSpec("alsa", device)
    if kind == "pulse":
        if device not in {"", "default"}:
            raise AudioError(f"pulse takes the server's default source only ({USAGE})")
        return pulse_spec()
    raise AudioError(USAGE)


def pulse_spec() -> MicSpec:
    """The PulseAudio server's default source: PyAV's ``pulse`` input, or ALSA's ``pulse``."""
    if "pulse" in av.formats_available:
        return MicSpec("pulse", "default")
    return MicSpec("alsa", "pulse")


def use_system_alsa_config() -> None:
    """Point PyAV's own ``libasound`` at the system's ALSA configuration (unless set)."""
    if "ALSA_CONFIG_PATH" not in os.environ and SYSTEM_ALSA_CONF.is_file():
        os.environ["ALSA_CONFIG_PATH"] = str(SYSTEM_ALSA_CONF)


def pulse_answers(timeout_s: float = 1.0) -> bool:
    """Whether a PulseAudio server accepts a connection on its socket (``PULSE_SERVER``'s
    ``unix:`` path, else ``$XDG_RUNTIME_DIR/pulse/native``)."""
    server = os.environ.get("PULSE_SERVER", "")
    if server.startswith("unix:"):
        path = server.removeprefix("unix:")
    elif os.environ.get("XDG_RUNTIME_DIR"):
        path = os.path.join(os.environ["XDG_RUNTIME_DIR"], "pulse", "native")
    else:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        try:
            s.connect(path)
        except OSError:
            return False
    return True


def opens(spec: MicSpec) -> bool:
    """Whether ``spec`` opens as an audio input (opened and closed at once; nothing kept)."""
    try:
        with av.open(
            spec.target, format=spec.fmt, options=spec.options, timeout=OPEN_TIMEOUT_S
        ) as c:
            return bool(c.streams.audio)
    except (av.FFmpegError, OSError, ValueError):
        return False


def choose() -> tuple[MicSpec | None, str]:
    """The default microphone and why: pulse if a server answers, else ALSA's default if it
    opens, else none."""
    use_system_alsa_config()
    if pulse_answers():
        spec = pulse_spec()
        if opens(spec):
            return spec, "a PulseAudio server answers"
    alsa = MicSpec("alsa", "default")
    if opens(alsa):
        return alsa, "no PulseAudio server; ALSA's default opens"
    return None, "no PulseAudio server and ALSA's default does not open"


class Microphone:
    """The unit's microphone, opened anew for each call (see the module docstring)."""

    def __init__(self, spec: MicSpec) -> None:
        self.spec = spec
        self.opened = 0  # calls it was opened for
        self.failed = 0  # calls it could not be opened for

    async def __call__(self) -> MediaStreamTrack | None:
        """A live track of the device for one call, or ``None`` if it cannot be opened."""
        try:
            player = await asyncio.to_thread(self._open)
        except (av.FFmpegError, OSError, ValueError) as e:
            self.failed += 1
            log.warning(
                "microphone %s could not be opened (%s): the call has no sound from the unit",
                self.spec.shown,
                type(e).__name__,
            )
            return None
        track = player.audio
        if track is None:  # opened, but no audio in it
            self.failed += 1
            log.warning("microphone %s gives no audio: no sound from the unit", self.spec.shown)
            with contextlib.suppress(Exception):
                _close(player)
            return None
        self.opened += 1
        log.info("microphone %s opened for a call", self.spec.shown)
        return track

    def _open(self) -> MediaPlayer:
        use_system_alsa_config()
        return MediaPlayer(
            self.spec.target,
            format=self.spec.fmt,
            options=dict(self.spec.options),
            timeout=int(OPEN_TIMEOUT_S),
        )


def _close(player: Any) -> None:
    """Close a player none of whose tracks ever started (no thread yet)."""
    for track in (player.audio, player.video):
        if track is not None:
            track.stop()
