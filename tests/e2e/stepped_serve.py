"""``homecare serve`` on a clock the test moves: the real composition root
(``services.app.runtime``) and its HTTP server, as ``services.app.serve`` runs them, on a
:class:`kernel.clock.ScaledClock` at real speed that the test jumps forwards, so a deadline of the
night (an alarm's repeat a minute later) comes at once instead of after a real wait.

The test holds a :class:`Steps`: :meth:`Steps.advance` writes the seconds added so far into a
file (replaced whole, so the service never reads half of it) and :class:`SteppedClock` adds them
on its next reading. Only forwards: a total lower than the one applied is ignored. Settings come
from ``HOMECARE_*`` as for ``homecare serve``; SIGTERM stops it.

    python -m tests.e2e.stepped_serve --steps FILE
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web

from kernel.clock import ScaledClock
from services import app, logs
from services.settings import load
from services.web import http


class SteppedClock(ScaledClock):
    """Real speed from its start, plus the seconds the test has added (the number in ``steps``),
    read at each reading of the clock."""

    def __init__(self, steps: Path) -> None:
        super().__init__(1.0)
        self.steps = steps
        self.added = 0.0

    def now(self) -> datetime:
        with contextlib.suppress(OSError, ValueError):
            total = float(self.steps.read_text())
            if total > self.added:
                self.set(super().now() + timedelta(seconds=total - self.added))
                self.added = total
        return super().now()


@dataclass
class Steps:
    """The test's side: how far it has moved the service's clock, and the command to start it."""

    path: Path
    added: float = 0.0

    def program(self) -> list[str]:
        """The process to run in place of ``homecare serve``."""
        return [sys.executable, "-m", "tests.e2e.stepped_serve", "--steps", str(self.path)]

    def advance(self, seconds: float) -> None:
        """Move the service's clock forwards by ``seconds`` (it applies it on its next reading)."""
        if seconds <= 0:
            raise ValueError("the clock only moves forwards")
        self.added += seconds
        partial = self.path.with_name(f"{self.path.name}.partial")
        partial.write_text(repr(self.added))
        os.replace(partial, self.path)

    def now(self) -> datetime:
        """The service's time now (its clock started at real time, plus what was added)."""
        return datetime.now(UTC) + timedelta(seconds=self.added)


async def serve(steps: Path) -> None:
    settings = load()
    logs.configure(settings.log_level, settings.log_format)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with app.runtime(settings, clock=SteppedClock(steps)) as rt:
        runner = web.AppRunner(
            rt.app,
            handle_signals=False,
            shutdown_timeout=5,
            **http.server_options(header_timeout_s=settings.http_header_timeout_s),
        )
        await runner.setup()
        await web.TCPSite(runner, settings.http_host, settings.http_port).start()
        try:
            await stop.wait()
        finally:
            await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=Path, required=True)
    args = p.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.steps))


if __name__ == "__main__":
    main()
