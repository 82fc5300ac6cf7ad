"""One service process of ``tests/e2e/test_scale_out.py``: the real composition root
(``services.app.runtime``) and its HTTP server, on a sped-up clock that every process of the test
shares: ``simulated = T0 + (wall - W0) * speed``. The clock stands still at ``T0`` until the test
writes ``W0`` (a Unix time) into ``--start-file``, so every process starts the night together once
the test is ready. Settings come from ``HOMECARE_*`` as for ``homecare serve``; SIGTERM stops it.

    python -m tests.e2e.scale_out_node --t0 2026-11-23T17:59:00+01:00 --start-file F --speed 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from aiohttp import web

from services import app, logs
from services.settings import load


def sped_clock(t0: datetime, start_file: Path, speed: float) -> app.Clock:
    w0: list[float] = []

    def now() -> datetime:
        if not w0:
            try:
                w0.append(float(start_file.read_text()))
            except (OSError, ValueError):
                return t0
        return t0 + timedelta(seconds=max(0.0, time.time() - w0[0]) * speed)

    return now


def _dump_tasks() -> None:
    for task in asyncio.all_tasks():
        task.print_stack(limit=6, file=sys.stderr)
    sys.stderr.flush()


async def serve(t0: datetime, start_file: Path, speed: float) -> None:
    settings = load()
    logs.configure(settings.log_level, settings.log_format)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)  # kill -USR1: where is every task?
    async with app.runtime(settings, clock=sped_clock(t0, start_file, speed)) as rt:
        runner = web.AppRunner(rt.app, handle_signals=False, shutdown_timeout=5)
        await runner.setup()
        await web.TCPSite(runner, settings.http_host, settings.http_port).start()
        sys.stdout.write(f"ready {settings.instance_id} {','.join(settings.roles)}\n")
        sys.stdout.flush()
        try:
            await stop.wait()
        finally:
            await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--t0", type=datetime.fromisoformat, required=True)
    p.add_argument("--start-file", type=Path, required=True)
    p.add_argument("--speed", type=float, required=True)
    args = p.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.t0, args.start_file, args.speed))


if __name__ == "__main__":
    main()
