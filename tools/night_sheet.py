"""``homecare night-sheet``: tonight's physical-visit list for when the backend is down.

The degraded-mode runbook (``deploy/README.md``): if the service, the broker or the cameras fail
during a night, the night patrol visits every brukare whose check is not yet performed. This
command prints that list (plain text or printable HTML, Swedish or English) from

- a **read-only** database connection (``default_transaction_read_only=on``; point
  ``--database-url`` at a streaming replica), reading tonight's ``round_checks`` (or, if tonight
  was never planned, the agreed times of the active care plans), or
- the **last export**: with ``--export FILE`` every successful run also writes the sheet's data
  as JSON (mode 0600, replaced atomically; a timer runs it every few minutes in production), and
  when the database cannot be reached the same command prints from that file instead, saying so
  at the top. ``--from-export FILE`` uses the file without trying the database.

The sheet names brukare and their homes: it is for the patrol's hands, never for a log.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from html import escape
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import structlog

from services.settings import Settings, SettingsError
from supervision.store import PLAN_INSTRUCTION_SQL

log = structlog.get_logger(__name__)

FORMAT = "homecare-night-sheet/1"
PERFORMED = frozenset({"cleared", "documented", "visited"})
NOT_TO_VISIT = frozenset({"deviation"})


class ExportError(ValueError):
    """The export file is missing, unreadable or not a night sheet."""


@dataclass(frozen=True, slots=True)
class Visit:
    """One agreed check of tonight. Instants are tz-aware."""

    agreed_at: datetime
    window_start: datetime
    window_end: datetime
    recipient_id: str
    display_name: str
    home: str
    instruction: str
    device_id: str | None
    state: str  # a round_checks state, or "unplanned" when read from the care plans

    @property
    def to_visit(self) -> bool:
        return self.state not in PERFORMED and self.state not in NOT_TO_VISIT


@dataclass(frozen=True, slots=True)
class Sheet:
    night: date
    zone: str
    generated_at: datetime
    source: str  # "database" | "care_plans"
    visits: tuple[Visit, ...]


# -- reading ---------------------------------------------------------------------------------

CHECKS_SQL = f"""
SELECT c.agreed_at, c.window_start, c.window_end, c.recipient_id, c.device_id, c.state,
       coalesce(r.display_name, c.recipient_id) AS display_name, coalesce(r.home, '') AS home,
       {PLAN_INSTRUCTION_SQL.strip()}
  FROM round_checks c LEFT JOIN care_recipients r USING (recipient_id)
 WHERE c.night = $1
 ORDER BY c.agreed_at, c.recipient_id
"""

PLANS_SQL = """
SELECT p.recipient_id, p.checks::text AS checks, p.instruction, p.paused_checks,
       r.display_name, r.home,
       (SELECT b.device_id FROM device_bindings b
         WHERE b.recipient_id = p.recipient_id AND b.unbound_at IS NULL LIMIT 1) AS device_id
  FROM care_plans p JOIN care_recipients r USING (recipient_id)
 WHERE p.valid_from < $2 AND (p.valid_until IS NULL OR p.valid_until > $1)
   AND (p.ended_at IS NULL OR p.ended_at > $1)
"""

PAUSED_SQL = """
SELECT recipient_id FROM pauses
 WHERE recipient_id = ANY($1::text[]) AND starts_at <= $2 AND (ends_at IS NULL OR ends_at > $2)
"""


def _local(night: date, hhmm: str, zone: ZoneInfo) -> datetime:
    t = time.fromisoformat(hhmm)
    day = night if t >= time(12) else night + timedelta(days=1)
    return datetime.combine(day, t, tzinfo=zone)


async def from_database(url: str, night: date, zone: ZoneInfo, now: datetime) -> Sheet:
    """Read tonight on a read-only connection (nothing can be written through it)."""
    conn = await asyncpg.connect(
        url, timeout=10, server_settings={"default_transaction_read_only": "on"}
    )
    try:
        rows = await conn.fetch(CHECKS_SQL, night)
        if rows:
            visits = [
                Visit(
                    agreed_at=r["agreed_at"],
                    window_start=r["window_start"],
                    window_end=r["window_end"],
                    recipient_id=r["recipient_id"],
                    display_name=r["display_name"],
                    home=r["home"],
                    instruction=r["instruction"],
                    device_id=r["device_id"],
                    state=r["state"],
                )
                for r in rows
            ]
            return Sheet(night, zone.key, now, "database", tuple(visits))
        return Sheet(
            night, zone.key, now, "care_plans", tuple(await _from_plans(conn, night, zone))
        )
    finally:
        await conn.close()


async def _from_plans(conn: asyncpg.Connection, night: date, zone: ZoneInfo) -> list[Visit]:
    """Tonight was never planned (the backend was down at planning time): the care plans'
    agreed times, less those a pause drops."""
    start = datetime.combine(night, time(12), tzinfo=zone)
    end = start + timedelta(days=1)
    plans = await conn.fetch(PLANS_SQL, start, end)
    visits = []
    for p in plans:
        for item in json.loads(p["checks"]):
            at = _local(night, str(item["at"]), zone)
            tolerance = timedelta(minutes=int(item.get("tolerance_min", 15)))
            paused = await conn.fetchval(PAUSED_SQL, [p["recipient_id"]], at)
            if paused is not None and p["paused_checks"] == "drop":
                continue
            visits.append(
                Visit(
                    agreed_at=at,
                    window_start=at - tolerance,
                    window_end=at + tolerance,
                    recipient_id=p["recipient_id"],
                    display_name=p["display_name"],
                    home=p["home"],
                    instruction=p["instruction"],
                    device_id=p["device_id"],
                    state="unplanned",
                )
            )
    visits.sort(key=lambda v: (v.agreed_at, v.recipient_id))
    return visits


# -- export ----------------------------------------------------------------------------------


def to_json(sheet: Sheet) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "night": sheet.night.isoformat(),
        "zone": sheet.zone,
        "generated_at": sheet.generated_at.isoformat(),
        "source": sheet.source,
        "visits": [
            {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(visit).items()}
            for visit in sheet.visits
        ],
    }


def from_json(obj: object) -> Sheet:
    """Parse an export; anything malformed raises :class:`ExportError` naming the field."""
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ExportError(f"not a night-sheet export (format must be {FORMAT!r})")
    try:
        zone = ZoneInfo(str(obj["zone"]))
        visits = []
        for i, v in enumerate(obj["visits"]):
            if not isinstance(v, dict):
                raise ExportError(f"visits[{i}] is not an object")
            visits.append(
                Visit(
                    agreed_at=_instant(v["agreed_at"]),
                    window_start=_instant(v["window_start"]),
                    window_end=_instant(v["window_end"]),
                    recipient_id=str(v["recipient_id"]),
                    display_name=str(v["display_name"]),
                    home=str(v["home"]),
                    instruction=str(v["instruction"]),
                    device_id=None if v["device_id"] is None else str(v["device_id"]),
                    state=str(v["state"]),
                )
            )
        return Sheet(
            night=date.fromisoformat(obj["night"]),
            zone=zone.key,
            generated_at=_instant(obj["generated_at"]),
            source=str(obj["source"]),
            visits=tuple(visits),
        )
    except KeyError as e:
        raise ExportError(f"the export lacks the field {e.args[0]!r}") from None
    except (TypeError, ValueError) as e:
        if isinstance(e, ExportError):
            raise
        raise ExportError(f"the export has a malformed value: {e}") from None


def _instant(raw: object) -> datetime:
    at = datetime.fromisoformat(str(raw))
    if at.tzinfo is None:
        raise ValueError(f"time without a zone: {raw!r}")
    return at


def write_export(sheet: Sheet, path: Path) -> None:
    """Replace ``path`` atomically; readable by its owner only (it names brukare)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".night-sheet-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(to_json(sheet), f, ensure_ascii=False, indent=1)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_export(path: Path) -> Sheet:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ExportError(f"cannot read {path}: {e.strerror}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise ExportError(f"{path} is not JSON (line {e.lineno})") from None
    return from_json(obj)


# -- rendering -------------------------------------------------------------------------------

COLUMNS: dict[str, tuple[str, ...]] = {
    "sv": ("Tid", "Fönster", "Brukare", "Adress", "Instruktion", "Status", "Klart"),
    "en": ("Time", "Window", "Brukare", "Home", "Instruction", "State", "Done"),
}
TEXT: dict[str, dict[str, str]] = {
    "sv": {
        "title": "NATTLIG TILLSYN – FYSISKA BESÖK",
        "night": "Natten",
        "printed": "Utskriven",
        "source": "Källa",
        "database": "databasen (skrivskyddad)",
        "care_plans": "genomförandeplanerna (natten var inte planerad)",
        "export": "SENASTE EXPORT, skapad",
        "export_warn": "Databasen kunde inte nås: listan kan sakna ändringar efter exporten.",
        "counts": "Att besöka: {visit}   Redan utförda: {done}   Ska inte besökas: {skip}",
        "skipped": "Ska inte besökas (avvikelse / uppehåll)",
        "overdue": "FÖRSENAD",
        "none": "Inga besök kvar i natt.",
    },
    "en": {
        "title": "NIGHT SUPERVISION – PHYSICAL VISITS",
        "night": "Night of",
        "printed": "Printed",
        "source": "Source",
        "database": "the database (read-only)",
        "care_plans": "the care plans (tonight was not planned)",
        "export": "LAST EXPORT, made",
        "export_warn": "The database could not be reached: changes after the export are missing.",
        "counts": "To visit: {visit}   Already performed: {done}   Not to visit: {skip}",
        "skipped": "Not to visit (deviation / pause)",
        "overdue": "OVERDUE",
        "none": "No visits left tonight.",
    },
}


STATES: dict[str, dict[str, str]] = {
    "sv": {
        "planned": "planerad",
        "due": "väntar",
        "probing": "kontrolleras",
        "needs_view": "ska tittas på",
        "viewing": "tittas på nu",
        "retry_wait": "nytt försök",
        "calling": "ringer",
        "patrol": "nattpatrull",
        "patrol_acked": "patrull på väg",
        "escalated": "eskalerad",
        "unplanned": "ej planerad",
    },
    "en": {
        "planned": "planned",
        "due": "due",
        "probing": "being checked",
        "needs_view": "needs a view",
        "viewing": "being viewed",
        "retry_wait": "retry",
        "calling": "calling",
        "patrol": "night patrol",
        "patrol_acked": "patrol on its way",
        "escalated": "escalated",
        "unplanned": "not planned",
    },
}


def _hm(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%H:%M")


def _header(sheet: Sheet, lang: str, export: Path | None) -> list[str]:
    t = TEXT[lang]
    zone = ZoneInfo(sheet.zone)
    printed = datetime.now(UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M")
    made = sheet.generated_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    if export is not None:
        source = f"{t['export']} {made} ({export})"
    else:
        source = t.get(sheet.source, sheet.source)
    visit = sum(v.to_visit for v in sheet.visits)
    done = sum(v.state in PERFORMED for v in sheet.visits)
    skip = sum(v.state in NOT_TO_VISIT for v in sheet.visits)
    lines = [
        f"{t['title']}",
        f"{t['night']} {sheet.night.isoformat()} ({sheet.zone})   {t['printed']} {printed}",
        f"{t['source']}: {source}",
    ]
    if export is not None:
        lines.append(t["export_warn"])
    lines.append(t["counts"].format(visit=visit, done=done, skip=skip))
    return lines


def _row(v: Visit, zone: ZoneInfo, now: datetime, lang: str) -> tuple[str, ...]:
    state = STATES[lang].get(v.state, v.state)
    if v.window_end < now:
        state += f" {TEXT[lang]['overdue']}"
    return (
        _hm(v.agreed_at, zone),
        f"{_hm(v.window_start, zone)}–{_hm(v.window_end, zone)}",
        f"{v.display_name} ({v.recipient_id})",
        v.home,
        v.instruction,
        state,
    )


def render_text(
    sheet: Sheet, *, lang: str = "sv", now: datetime, export: Path | None = None
) -> str:
    t = TEXT[lang]
    zone = ZoneInfo(sheet.zone)
    out = _header(sheet, lang, export)
    out.append("")
    todo = [v for v in sheet.visits if v.to_visit]
    if not todo:
        out.append(t["none"])
    widths = (5, 11, 30, 28, 40, 18)
    out.append("  ".join(c.ljust(w) for c, w in zip(COLUMNS[lang], (*widths, 5), strict=True)))
    for v in todo:
        cells = _row(v, zone, now, lang)
        out.append("  ".join(c[:w].ljust(w) for c, w in zip(cells, widths, strict=True)) + "  [  ]")
    skipped = [v for v in sheet.visits if v.state in NOT_TO_VISIT]
    if skipped:
        out += ["", t["skipped"] + ":"]
        out += [f"  {_hm(v.agreed_at, zone)}  {v.display_name} ({v.recipient_id})" for v in skipped]
    return "\n".join(out) + "\n"


def render_html(
    sheet: Sheet, *, lang: str = "sv", now: datetime, export: Path | None = None
) -> str:
    t = TEXT[lang]
    zone = ZoneInfo(sheet.zone)
    head = _header(sheet, lang, export)
    rows = "".join(
        "<tr>"
        + "".join(f"<td>{escape(c)}</td>" for c in _row(v, zone, now, lang))
        + "<td>☐</td></tr>"
        for v in sheet.visits
        if v.to_visit
    )
    cols = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS[lang])
    skipped = "".join(
        f"<li>{_hm(v.agreed_at, zone)} {escape(v.display_name)} ({escape(v.recipient_id)})</li>"
        for v in sheet.visits
        if v.state in NOT_TO_VISIT
    )
    info = "".join(f"<p>{escape(line)}</p>" for line in head[1:])
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{escape(head[0])}</title>
<style>
body {{ font: 12pt sans-serif; margin: 1cm; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border: 1px solid #000; padding: 4px 6px; text-align: left; vertical-align: top; }}
@media print {{ tr {{ page-break-inside: avoid; }} }}
</style></head><body>
<h1>{escape(head[0])}</h1>{info}
<table><tr>{cols}</tr>{rows or f'<tr><td colspan="7">{escape(t["none"])}</td></tr>'}</table>
{f"<h2>{escape(t['skipped'])}</h2><ul>{skipped}</ul>" if skipped else ""}
</body></html>
"""


# -- the command -----------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--night", type=date.fromisoformat, help="evening date (default: tonight)")
    p.add_argument("--database-url", help="read-only replica (default HOMECARE_DATABASE_URL)")
    p.add_argument("--export", type=Path, help="write the sheet's data here; read it if the "
                   "database cannot be reached")  # fmt: skip
    p.add_argument("--from-export", type=Path, help="print from this export; no database")
    p.add_argument("--format", choices=["text", "html"], default="text")
    p.add_argument("--lang", choices=["sv", "en"], default="sv")
    p.add_argument("--out", type=Path, help="write the sheet here instead of standard output")


async def command(args: argparse.Namespace, settings: Settings) -> int:
    zone = settings.zone
    now = datetime.now(UTC)
    night: date = args.night or _night_of(now, zone)
    used_export: Path | None = None
    if args.from_export is not None:
        sheet, used_export = read_export(args.from_export), args.from_export
    else:
        url = args.database_url or settings.database_url
        if url is None:
            raise SettingsError("night-sheet needs HOMECARE_DATABASE_URL, --database-url or "
                                "--from-export")  # fmt: skip
        try:
            sheet = await from_database(url, night, zone, now)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
            if args.export is None:
                raise ExportError(f"the database cannot be reached ({type(e).__name__}) and no "
                                  "--export file was given") from None  # fmt: skip
            log.warning("night_sheet_database_unreachable", error=type(e).__name__)
            sheet, used_export = read_export(args.export), args.export
        else:
            if args.export is not None:
                write_export(sheet, args.export)
    if sheet.night != night:
        # an old export must never pass for tonight's list
        hint = "" if args.night is not None else f" (--night {sheet.night} prints it anyway)"
        raise ExportError(f"the export is of the night {sheet.night}, not {night}{hint}")
    render = render_html if args.format == "html" else render_text
    text = render(sheet, lang=args.lang, now=now, export=used_export)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    log.info(
        "night_sheet_printed",
        night=sheet.night.isoformat(),
        source="export" if used_export else sheet.source,
        visits=sum(v.to_visit for v in sheet.visits),
    )
    return 0


def _night_of(at: datetime, zone: ZoneInfo) -> date:
    local = at.astimezone(zone)
    return local.date() if local.time() >= time(12) else local.date() - timedelta(days=1)
