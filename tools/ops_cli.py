"""Operations subcommands of ``homecare``: ``bench``, ``night-sheet``, ``handover`` and
``extract``.

``tools/cli.py`` registers them with :func:`add_commands`; each command has the CLI's shape
``(args, settings) -> exit status``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import os
import sys
from pathlib import Path

from services.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
EXIT_NEEDS_SOURCE = 2
"""``homecare bench`` outside a clone, or without the ``bench`` extra."""
BENCH_EXTRA = ("scipy", "pydantic")
"""What the ``bench`` extra brings that the benchmarks import (playwright only with Chromium)."""


def source_tree(root: Path) -> bool:
    """Is ``root`` a clone of the repository (with ``bench/``), not site-packages?"""
    return (root / "pyproject.toml").is_file() and (root / "bench" / "run.py").is_file()


async def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``bench/run.py`` from the source tree (the benchmarks are not part of the package, so
    an installed ``homecare`` says so and exits 2).

    ``HOMECARE_DATABASE_URL`` names the PostgreSQL server on which each benchmark makes (and
    drops) its own scratch database (default: the loopback server)."""
    if not source_tree(ROOT):
        sys.stderr.write(
            "homecare bench needs the source tree: the benchmarks (bench/) are not part of the "
            f"installed package, and {ROOT} is not a clone; run it in a clone (./run bench)\n"
        )
        return EXIT_NEEDS_SOURCE
    missing = [m for m in BENCH_EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        sys.stderr.write(
            f"homecare bench needs the bench extra (missing: {', '.join(missing)}): "
            "pip install -e '.[demo,bench]', or ./run bench\n"
        )
        return EXIT_NEEDS_SOURCE
    # the benchmarks make scratch databases on this server and read these names
    if settings.database_url is not None:
        os.environ["HOMECARE_BENCH_DATABASE_URL"] = settings.database_url
    if settings.mqtt_url is not None:
        os.environ["HOMECARE_BENCH_MQTT_URL"] = settings.mqtt_url
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    runner = importlib.import_module("bench.run")
    out = args.out or ROOT / "bench" / "results"
    status: int = await asyncio.to_thread(
        runner.command, quick=args.quick, only=args.only, out_dir=out
    )
    return status


async def cmd_night_sheet(args: argparse.Namespace, settings: Settings) -> int:
    from tools import night_sheet

    try:
        return await night_sheet.command(args, settings)
    except night_sheet.ExportError as e:
        sys.stderr.write(f"homecare night-sheet: {e}\n")
        return 2


async def cmd_handover(args: argparse.Namespace, settings: Settings) -> int:
    from tools import handover_cli

    return await handover_cli.command(args, settings)


async def cmd_extract(args: argparse.Namespace, settings: Settings) -> int:
    from tools import extract_cli

    return await extract_cli.command(args, settings)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("bench", help="run every benchmark; JSON and chart in bench/results/")
    s.set_defaults(run=cmd_bench)
    s.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    s.add_argument("--only", action="append", help="run only this benchmark (repeatable)")
    s.add_argument("--out", type=Path, help="folder for bench.json and bench.html")
    s = sub.add_parser("night-sheet", help="tonight's physical-visit list (works without backend)")
    s.set_defaults(run=cmd_night_sheet)
    from tools.night_sheet import add_arguments

    add_arguments(s)
    s = sub.add_parser("handover", help="the night's handover to the day staff (JSON or HTML)")
    s.set_defaults(run=cmd_handover)
    from tools.handover_cli import add_arguments as add_handover_arguments

    add_handover_arguments(s)
    s = sub.add_parser("extract", help="a brukare's log extract, GDPR art. 15 (HTML or JSON)")
    s.set_defaults(run=cmd_extract)
    from tools.extract_cli import add_arguments as add_extract_arguments

    add_extract_arguments(s)
