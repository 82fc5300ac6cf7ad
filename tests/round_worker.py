"""A round worker as its own process, for the multi-process tests: ``python -m tests.round_worker``.

It runs :class:`supervision.runner.Runner` against the database named on the command line with
fakes of the gate, devices and probe (``tests/rounds_support.py``) for the brukare ``r000`` ..
``r{n-1}``, at a fixed instant (the 22:00 window of 2025-06-10 plus ``--offset-s``). SIGTERM
stops it cleanly; SIGKILL is what the tests use to crash it with claims held.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from datetime import date, timedelta

import asyncpg

from supervision.runner import Runner, RunnerConfig
from supervision.store import RoundStore
from tests.rounds_support import (
    BasisGate,
    FakeDevices,
    TableProber,
    at_local,
    basis,
    fast,
    fixed_clock,
)

NIGHT = date(2025, 6, 10)
WS = at_local(NIGHT, 21, 45)


async def main(args: argparse.Namespace) -> None:
    bases = {b.recipient_id: b for b in (basis(f"r{i:03d}") for i in range(args.recipients))}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with asyncpg.create_pool(args.database_url, min_size=1, max_size=4) as pool:
        runner = Runner(
            RoundStore(pool),
            gate=BasisGate(bases),
            prober=TableProber(delay_s=args.probe_delay_s),
            devices=FakeDevices({f"cam-{r}" for r in bases}),
            clock=fixed_clock(WS + timedelta(seconds=args.offset_s)),
            config=RunnerConfig(
                worker_id=args.worker,
                concurrency=args.concurrency,
                open_checks=False,
                timing=fast(),
            ),
        )
        print(f"worker {args.worker} running", flush=True)
        await runner.run(stop)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--database-url", required=True)
    p.add_argument("--worker", required=True)
    p.add_argument("--recipients", type=int, default=60)
    p.add_argument("--offset-s", type=float, default=0.0)
    p.add_argument("--probe-delay-s", type=float, default=0.0)
    p.add_argument("--concurrency", type=int, default=4)
    asyncio.run(main(p.parse_args()))
