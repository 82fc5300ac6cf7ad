"""``homecare extract RECIPIENT``: the brukare's log extract (GDPR art. 15) from the database.

The same extract as ``GET /api/recipients/{id}/extract`` (:mod:`supervision.extract`): every look
(views for checks, extra looks, motion probes, calls) with the staff member's name, the minute,
the seconds and the check or reason, and the consents, pauses, bindings and suspensions of the
period, as a printable HTML page (Swedish, or ``--lang en``) or JSON. It runs as the system
against ``HOMECARE_DATABASE_URL`` (every organisation) and is audited like the route:
``extract.made`` with actor ``system`` and ``via: cli``.

The page names the brukare and staff: it is for the brukare, never for a log.

Exit status: 0 printed, 2 bad arguments (a bad date, ``--from`` after ``--to``, an unknown
brukare; nothing is written), 3 the database cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from services.settings import Settings, SettingsError
from supervision import extract as ex
from supervision import extract_store
from supervision.errors import BadRequest

EXIT_BAD_INPUT = 2
EXIT_NO_DATABASE = 3
ACTOR = "system"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipient_id", metavar="RECIPIENT", help="the brukare's id, e.g. r-0001")
    p.add_argument(
        "--from",
        dest="first",
        metavar="YYYY-MM-DD",
        help=f"first local date (default: {ex.DEFAULT_DAYS} days before --to)",
    )
    p.add_argument("--to", dest="last", metavar="YYYY-MM-DD", help="last date (default: today)")
    p.add_argument("--format", choices=list(ex.FORMATS), default="html")
    p.add_argument("--lang", choices=list(ex.LANGUAGES), default="sv", help="of the HTML page")
    p.add_argument("--out", type=Path, help="write it here instead of standard output")


def _bad(message: str) -> int:
    sys.stderr.write(f"homecare extract: {message}\n")
    return EXIT_BAD_INPUT


async def command(args: argparse.Namespace, settings: Settings) -> int:
    if settings.database_url is None:
        raise SettingsError("extract needs HOMECARE_DATABASE_URL")
    try:
        first = ex.parse_date(args.first, "from")
        last = ex.parse_date(args.last, "to")
    except BadRequest as e:
        return _bad(str(e))
    if first is not None and last is not None and first > last:
        return _bad("--from is after --to")
    try:
        conn = await asyncpg.connect(settings.database_url, timeout=10, command_timeout=60)
    except (OSError, TimeoutError, asyncpg.PostgresError) as e:
        sys.stderr.write(f"homecare extract: the database cannot be reached ({type(e).__name__})\n")
        return EXIT_NO_DATABASE
    try:
        found = await extract_store.recipient(conn, args.recipient_id)
        if found is None:
            return _bad(f"no brukare {args.recipient_id!r}")
        try:
            built = await extract_store.make(
                conn,
                found,
                first,
                last,
                actor=ACTOR,
                fmt=args.format,
                lang=args.lang,
                now=datetime.now(UTC),
                more={"via": "cli"},
            )
        except BadRequest as e:
            return _bad(str(e))
    finally:
        await conn.close()
    if args.format == "html":
        text = ex.render_html(built, zone=found.zone, lang=args.lang)
    else:
        text = json.dumps(ex.to_json(built), ensure_ascii=False, indent=2) + "\n"
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
