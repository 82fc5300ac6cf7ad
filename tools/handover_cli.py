"""``homecare handover``: the night's handover to the day staff, printed from the database.

The same summary as ``GET /api/rounds/{date}/handover`` (:mod:`supervision.handover`): open
patrol tasks, the patrol's reports, checks not finished, deviations, alarms not acknowledged,
suspensions and pauses. JSON (default) or a printable HTML page (``--format html``, Swedish or
``--lang en``). It reads on a read-only connection (``default_transaction_read_only=on``), so it
can be pointed at a streaming replica with ``--database-url``. Pseudonymous ids only.

Exit status: 0 printed, 2 bad arguments or settings, 3 the database cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg

from consent.rules import night_of
from services.settings import Settings, SettingsError
from supervision import handover as hv
from supervision.store import RoundStore

EXIT_NO_DATABASE = 3


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--night", type=date.fromisoformat, help="evening date, YYYY-MM-DD (default: last night)"
    )
    p.add_argument("--database-url", help="a read-only replica (default HOMECARE_DATABASE_URL)")
    p.add_argument("--format", choices=["json", "html"], default="json")
    p.add_argument("--lang", choices=list(hv.LANGUAGES), default="sv", help="of the HTML page")
    p.add_argument("--out", type=Path, help="write it here instead of standard output")


async def summary(url: str, night: date, settings: Settings, now: datetime) -> dict[str, object]:
    """Read the night on a read-only pool of one connection and summarise it."""
    pool = await asyncpg.create_pool(
        url,
        min_size=1,
        max_size=1,
        timeout=10,
        server_settings={"default_transaction_read_only": "on"},
    )
    try:
        start, end = hv.night_bounds(night, settings.zone)
        facts = await RoundStore(pool).handover_facts(night, start=start, end=end)
    finally:
        await pool.close()
    return hv.build(facts, generated_at=now)


async def command(args: argparse.Namespace, settings: Settings) -> int:
    url = args.database_url or settings.database_url
    if url is None:
        raise SettingsError("handover needs HOMECARE_DATABASE_URL or --database-url")
    now = datetime.now(UTC)
    # in the morning, "the night" is the one that just ended (nights run noon to noon)
    night: date = args.night or night_of(now, settings.zone)
    try:
        result = await summary(url, night, settings, now)
    except (OSError, TimeoutError, asyncpg.PostgresError) as e:
        sys.stderr.write(
            f"homecare handover: the database cannot be reached ({type(e).__name__})\n"
        )
        return EXIT_NO_DATABASE
    if args.format == "html":
        text = hv.render_html(result, zone=settings.zone, lang=args.lang)
    else:
        text = json.dumps(result, ensure_ascii=False, indent=2) + "\n"
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
