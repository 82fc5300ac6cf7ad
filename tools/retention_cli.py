"""``homecare retention run [--dry-run]``: the daily retention job, now, once.

Runs :func:`services.retention.run` at the wall clock's now with the settings' policy
(``HOMECARE_RETENTION_*``), as the service's role in the system's scope, and prints one line per
data class with the rows deleted or blanked (or, with ``--dry-run``, that would be; nothing
changes and nothing is audited) and the number of brukare erased. Exit 0 done, 1 another process
holds the job's lock (nothing done), 2 configuration error, 3 the database could not be reached.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import asyncpg

from kernel.clock import system_now
from services import db, retention
from services.settings import Settings, SettingsError

EXIT_BUSY = 1
EXIT_NO_DATABASE = 3


def render(outcome: retention.Outcome) -> str:
    """The job's outcome as lines of text: counts only, never a name."""
    verb = "would change" if outcome.dry_run else "changed"
    lines = []
    for data_class, per in sorted(outcome.rows.items()):
        detail = ", ".join(f"{t} {n}" for t, n in sorted(per.items()) if n) or "nothing"
        lines.append(f"retention {data_class}: {verb} {sum(per.values())} rows ({detail})")
    lines.append(
        f"retention: {len(outcome.erased)} brukare "
        f"{'would be erased' if outcome.dry_run else 'erased'}"
    )
    return "".join(f"{line}\n" for line in lines)


async def cmd_retention_run(args: argparse.Namespace, settings: Settings) -> int:
    if settings.database_url is None:
        raise SettingsError("HOMECARE_DATABASE_URL is required (e.g. postgresql://user@host/db)")
    try:
        async with db.open_pool(settings.database_url, max_size=3) as pool:
            outcome = await retention.run(
                pool,
                retention.policy_of(settings),
                now=system_now(),
                batch=settings.retention_batch_rows,
                dry_run=args.dry_run,
            )
    except (OSError, asyncpg.PostgresError) as e:
        sys.stderr.write(f"retention run: cannot use the database: {type(e).__name__}\n")
        return EXIT_NO_DATABASE
    if not outcome.ran:
        sys.stderr.write("retention run: another process is running the job; nothing done\n")
        return EXIT_BUSY
    sys.stdout.write(render(outcome))
    return 0


def add_commands(sub: Any) -> None:
    """``homecare retention run [--dry-run]``."""
    s = sub.add_parser("retention", help="retention: delete or erase what is past its time")
    r_sub = s.add_subparsers(dest="retention_command", required=True)
    s = r_sub.add_parser("run", help="run the daily retention job now, once")
    s.set_defaults(run=cmd_retention_run)
    s.add_argument(
        "--dry-run", action="store_true", help="count what would be done; change nothing"
    )
