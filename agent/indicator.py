"""The ``live`` indicator through a configurable hook: a command, or a GPIO LED.

The backend's ``indicator`` command says a look is live (``on``) or over (``off``); the agent
acks it only after its lamp has followed, so a lamp that fails (the command exits non-zero or
takes longer than :data:`HOOK_TIMEOUT_S`, the GPIO cannot be written) is acked ``ok: false``
and the backend lets no frame flow (hard rule 7: device trouble means a visit).

- :class:`CommandLamp` (``--indicator-command CMD``) runs ``CMD on|off PURPOSE`` (``PURPOSE``
  is ``view``, ``probe`` or ``call``), split like a shell line but run without one. It is
  given nothing else: no session id, no name.
- :class:`GpioLamp` (``--indicator-gpio N``) writes ``1``/``0`` to the Linux sysfs GPIO
  ``/sys/class/gpio/gpioN/value`` (exporting ``N`` and setting it to an output first). On
  kernels whose sysfs numbers GPIO lines with an offset (Raspberry Pi OS with kernel 6.6 and
  later: line 17 is ``gpio529``), give the sysfs number, or use ``--indicator-command`` with
  libgpiod's ``gpioset`` in a small script.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

HOOK_TIMEOUT_S = 1.5
"""A lamp must follow within this (the backend waits 2 s for the ack)."""
GPIO_ROOT = Path("/sys/class/gpio")


class Lamp(Protocol):
    async def set(self, on: bool, purpose: str) -> bool:
        """Light (``on``) or put out the lamp; True when it followed."""
        ...


class IndicatorError(ValueError):
    """An indicator option that cannot be used."""


@dataclass(frozen=True, slots=True)
class CommandLamp:
    argv: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> CommandLamp:
        try:
            argv = tuple(shlex.split(text))
        except ValueError as e:
            raise IndicatorError(f"--indicator-command cannot be split: {e}") from None
        if not argv:
            raise IndicatorError("--indicator-command is empty")
        return cls(argv)

    async def set(self, on: bool, purpose: str) -> bool:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv,
                "on" if on else "off",
                purpose,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as e:
            log.warning("indicator command could not start: %s", type(e).__name__)
            return False
        try:
            code = await asyncio.wait_for(proc.wait(), HOOK_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            log.warning("indicator command took longer than %.1f s", HOOK_TIMEOUT_S)
            return False
        if code != 0:
            log.warning("indicator command exited %d", code)
        return code == 0


@dataclass(frozen=True, slots=True)
class GpioLamp:
    line: int
    root: Path = GPIO_ROOT

    def __post_init__(self) -> None:
        if not 0 <= self.line <= 4095:
            raise IndicatorError("--indicator-gpio is a GPIO number 0-4095")

    def _write(self, on: bool) -> None:
        pin = self.root / f"gpio{self.line}"
        if not pin.exists():
            (self.root / "export").write_text(str(self.line))
        if (pin / "direction").read_text().strip() != "out":
            (pin / "direction").write_text("out")
        (pin / "value").write_text("1" if on else "0")

    async def set(self, on: bool, purpose: str) -> bool:
        try:
            await asyncio.wait_for(asyncio.to_thread(self._write, on), HOOK_TIMEOUT_S)
        except (OSError, TimeoutError) as e:
            log.warning("indicator GPIO %d not set: %s", self.line, type(e).__name__)
            return False
        return True
