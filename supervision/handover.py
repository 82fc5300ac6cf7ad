"""The handover (pure): what the night leaves to the day staff, from stored facts.

At the end of the night the day staff need what is not finished and what they must act on,
not the whole round (that is the morning report, :mod:`supervision.report`):

- **open patrol tasks**: checks still with the patrol (``patrol``, ``patrol_acked``) and those
  closed as ``escalated`` (handed to the patrol, the visit never reported), with who has them,
  why the patrol was sent and whether it arrived; a task a patrol found ``not_home`` is here
  again with that reason;
- **patrol reports**: the visits made and what the patrol found (``taken_to_hospital`` first);
- **open checks**: any other check not finished when the handover is made;
- **deviations**: checks that ended as a deviation, with the reason;
- **alarms not acknowledged**;
- **suspensions** (camera checks stopped after device behaviour, hard rule 8) active or begun
  during the night, and **pauses** that overlap it (reason codes; a pause's note stays with
  consent).

:func:`build` returns a JSON-ready dict; :func:`render_html` prints it for paper (Swedish, or
English). Pseudonymous ids only: the day staff look names up in their own records.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from supervision.checks import PATROL_STATES, Check, State

FORMAT = "homecare-handover/1"
NIGHT_TURNS_AT = time(12)
"""A night runs from noon of its evening date to noon the next day (local time)."""
_OUTCOME_ORDER = {"taken_to_hospital": 0, "helped": 1, "found_well": 2}


@dataclass(frozen=True, slots=True)
class CheckFact:
    """One check of the night with its assignee and, for a patrol task, arrival and outcome."""

    check: Check
    assignee: str | None = None
    arrived_at: datetime | None = None
    patrol_outcome: str | None = None


@dataclass(frozen=True, slots=True)
class AlarmFact:
    check_id: str
    recipient_id: str
    version: int
    state: str
    deadline: datetime
    raised_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    kind: str = "alarm"  # or "escalation"
    repeat: int = 1  # an alarm repeats: 1, 2, ...
    addressed_to: str = "operator"  # or "patrol", "shift_lead"


@dataclass(frozen=True, slots=True)
class SuspensionFact:
    recipient_id: str
    device_id: str
    event_type: str
    started_at: datetime
    event_count: int
    lifted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PauseFact:
    recipient_id: str
    starts_at: datetime
    ends_at: datetime | None
    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything :func:`build` reads, as the store gathers it for one night."""

    night: date
    checks: tuple[CheckFact, ...]
    alarms: tuple[AlarmFact, ...] = ()
    suspensions: tuple[SuspensionFact, ...] = ()
    pauses: tuple[PauseFact, ...] = ()
    reconciled_at: datetime | None = None


def night_bounds(night: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """The night of ``night`` (its evening date) as ``[start, end)``: noon to noon, local."""
    start = datetime.combine(night, NIGHT_TURNS_AT, tzinfo=zone)
    end = datetime.combine(night + timedelta(days=1), NIGHT_TURNS_AT, tzinfo=zone)
    return start, end


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _check_row(f: CheckFact) -> dict[str, Any]:
    c = f.check
    return {
        "check_id": c.check_id,
        "recipient_id": c.recipient_id,
        "agreed": c.agreed.strftime("%H:%M"),
        "state": c.state.value,
        "reason": c.reason,
        "since": c.since.isoformat(),
        "deadline": _iso(c.deadline),
        "assignee": f.assignee,
    }


def _open_alarms(alarms: tuple[AlarmFact, ...]) -> list[dict[str, Any]]:
    """Alarms not acknowledged, one per (check, step, kind): its repeats counted, the latest
    one's time and addressee shown."""
    latest: dict[tuple[str, int, str], AlarmFact] = {}
    for a in sorted(alarms, key=lambda a: (a.raised_at, a.repeat)):
        if a.acknowledged_at is None:
            latest[(a.check_id, a.version, a.kind)] = a
    return [
        {
            "check_id": a.check_id,
            "recipient_id": a.recipient_id,
            "version": a.version,
            "kind": a.kind,
            "state": a.state,
            "deadline": a.deadline.isoformat(),
            "raised_at": a.raised_at.isoformat(),
            "repeats": a.repeat,
            "addressed_to": a.addressed_to,
        }
        for a in sorted(latest.values(), key=lambda a: (a.raised_at, a.check_id, a.version))
    ]


def build(facts: Facts, *, generated_at: datetime) -> dict[str, Any]:
    """The handover of ``facts.night`` as of ``generated_at`` (tz-aware)."""
    if generated_at.tzinfo is None or generated_at.utcoffset() is None:
        raise ValueError("generated_at must be timezone-aware")
    tasks, reports, open_checks, deviations = [], [], [], []
    for f in facts.checks:
        state = f.check.state
        if state in PATROL_STATES or state is State.ESCALATED:
            tasks.append({**_check_row(f), "arrived_at": _iso(f.arrived_at)})
        elif state is State.VISITED:
            reports.append({**_check_row(f), "patrol": f.check.holder, "outcome": f.patrol_outcome})
        elif state is State.DEVIATION:
            deviations.append(_check_row(f))
        elif not f.check.is_finished:
            open_checks.append(_check_row(f))
    tasks.sort(key=lambda t: (t["state"] == "escalated", t["deadline"] or "", t["check_id"]))
    reports.sort(key=lambda r: (_OUTCOME_ORDER.get(r["outcome"], 3), r["check_id"]))
    alarms = _open_alarms(facts.alarms)
    suspensions = [
        {
            "recipient_id": s.recipient_id,
            "device_id": s.device_id,
            "event_type": s.event_type,
            "event_count": s.event_count,
            "started_at": s.started_at.isoformat(),
            "lifted_at": _iso(s.lifted_at),
        }
        for s in sorted(facts.suspensions, key=lambda s: (s.started_at, s.recipient_id))
    ]
    pauses = [
        {
            "recipient_id": p.recipient_id,
            "starts_at": p.starts_at.isoformat(),
            "ends_at": _iso(p.ends_at),
            "source": p.source,
            "reason": p.reason,
        }
        for p in sorted(facts.pauses, key=lambda p: (p.starts_at, p.recipient_id))
    ]
    return {
        "format": FORMAT,
        "night": facts.night.isoformat(),
        "generated_at": generated_at.isoformat(),
        "reconciled_at": _iso(facts.reconciled_at),
        "counts": {
            "checks": len(facts.checks),
            "open_patrol_tasks": len(tasks),
            "patrol_reports": len(reports),
            "taken_to_hospital": sum(r["outcome"] == "taken_to_hospital" for r in reports),
            "open_checks": len(open_checks),
            "deviations": len(deviations),
            "alarms_not_acknowledged": len(alarms),
            "suspensions": len(suspensions),
            "pauses": len(pauses),
        },
        "open_patrol_tasks": tasks,
        "patrol_reports": reports,
        "open_checks": open_checks,
        "deviations": deviations,
        "alarms_not_acknowledged": alarms,
        "suspensions": suspensions,
        "pauses": pauses,
    }


# --------------------------------------------------------------------------- rendering

LANGUAGES = ("sv", "en", "fi")
_TEXT: dict[str, dict[str, str]] = {
    "sv": {
        "title": "Överlämning",
        "night": "natten",
        "made": "Skapad",
        "reconciled": "avstämd",
        "not_yet": "ej ännu",
        "open_patrol_tasks": "Öppna patrulluppdrag",
        "patrol_reports": "Patrullens besök",
        "open_checks": "Ej avslutade tillsyner",
        "deviations": "Avvikelser",
        "alarms_not_acknowledged": "Ej kvitterade larm",
        "suspensions": "Avstängda kameratillsyner",
        "pauses": "Pauser",
        "none": "Inga.",
        "check": "Tillsyn",
        "recipient": "Brukare",
        "agreed": "Avtalad tid",
        "state": "Läge",
        "reason": "Orsak",
        "assignee": "Tilldelad",
        "arrived": "Framme",
        "deadline": "Senast",
        "patrol": "Patrull",
        "outcome": "Utfall",
        "raised": "Senaste larm",
        "kind": "Slag",
        "repeats": "Gånger",
        "addressed_to": "Till",
        "alarm": "larm",
        "escalation": "eskalering",
        "operator": "operatör",
        "shift_lead": "arbetsledare",
        "device": "Enhet",
        "event": "Händelse",
        "count": "Antal",
        "started": "Började",
        "lifted": "Hävd",
        "from": "Från",
        "to": "Till",
        "source": "Anmäld av",
        "found_well": "mådde bra",
        "helped": "fick hjälp",
        "taken_to_hospital": "till sjukhus",
        "not_home": "inte hemma",
        "patrol_acked": "patrullen har tagit uppdraget",
        "escalated": "besök ej rapporterat",
    },
    "en": {
        "title": "Handover",
        "night": "night of",
        "made": "Made",
        "reconciled": "reconciled",
        "not_yet": "not yet",
        "open_patrol_tasks": "Open patrol tasks",
        "patrol_reports": "Patrol visits",
        "open_checks": "Checks not finished",
        "deviations": "Deviations",
        "alarms_not_acknowledged": "Alarms not acknowledged",
        "suspensions": "Camera checks suspended",
        "pauses": "Pauses",
        "none": "None.",
        "check": "Check",
        "recipient": "Recipient",
        "agreed": "Agreed",
        "state": "State",
        "reason": "Reason",
        "assignee": "Assigned to",
        "arrived": "Arrived",
        "deadline": "Due by",
        "patrol": "Patrol",
        "outcome": "Outcome",
        "raised": "Last raised",
        "kind": "Kind",
        "repeats": "Times",
        "addressed_to": "To",
        "alarm": "alarm",
        "escalation": "escalation",
        "operator": "operator",
        "shift_lead": "shift lead",
        "device": "Device",
        "event": "Event",
        "count": "Count",
        "started": "Started",
        "lifted": "Lifted",
        "from": "From",
        "to": "To",
        "source": "Reported by",
        "found_well": "found well",
        "helped": "helped",
        "taken_to_hospital": "taken to hospital",
        "not_home": "not home",
        "patrol_acked": "taken by the patrol",
        "escalated": "visit not reported",
    },
    "fi": {
        "title": "Raportti",
        "night": "yö",
        "made": "Koottu",
        "reconciled": "täsmäytetty",
        "not_yet": "ei vielä",
        "open_patrol_tasks": "Avoimet partiotehtävät",
        "patrol_reports": "Partion käynnit",
        "open_checks": "Päättämättömät valvonnat",
        "deviations": "Poikkeamat",
        "alarms_not_acknowledged": "Kuittaamattomat hälytykset",
        "suspensions": "Keskeytetyt kameravalvonnat",
        "pauses": "Tauot",
        "none": "Ei yhtään.",
        "check": "Valvonta",
        "recipient": "Asiakas",
        "agreed": "Sovittu aika",
        "state": "Tila",
        "reason": "Syy",
        "assignee": "Osoitettu",
        "arrived": "Perillä",
        "deadline": "Viimeistään",
        "patrol": "Partio",
        "outcome": "Tulos",
        "raised": "Viimeisin hälytys",
        "kind": "Laji",
        "repeats": "Kertoja",
        "addressed_to": "Kenelle",
        "alarm": "hälytys",
        "escalation": "eskalointi",
        "operator": "yöhoitaja",
        "shift_lead": "vuorovastaava",
        "device": "Laite",
        "event": "Tapahtuma",
        "count": "Määrä",
        "started": "Alkoi",
        "lifted": "Purettu",
        "from": "Alkaen",
        "to": "Päättyen",
        "source": "Ilmoittaja",
        "found_well": "voi hyvin",
        "helped": "autettu",
        "taken_to_hospital": "sairaalaan",
        "not_home": "ei kotona",
        "patrol_acked": "partio on ottanut tehtävän",
        "escalated": "käyntiä ei raportoitu",
    },
}
_COLUMNS: dict[str, tuple[str, ...]] = {
    "open_patrol_tasks": ("recipient_id", "agreed", "state", "reason", "assignee", "arrived_at"),
    "patrol_reports": ("recipient_id", "agreed", "outcome", "reason", "patrol"),
    "open_checks": ("recipient_id", "agreed", "state", "reason", "assignee", "deadline"),
    "deviations": ("recipient_id", "agreed", "reason"),
    "alarms_not_acknowledged": (
        "recipient_id",
        "check_id",
        "kind",
        "state",
        "repeats",
        "addressed_to",
        "raised_at",
    ),
    "suspensions": ("recipient_id", "device_id", "event_type", "event_count", "started_at"),
    "pauses": ("recipient_id", "starts_at", "ends_at", "reason", "source"),
}
_HEADINGS = {
    "recipient_id": "recipient",
    "check_id": "check",
    "arrived_at": "arrived",
    "raised_at": "raised",
    "device_id": "device",
    "event_type": "event",
    "event_count": "count",
    "started_at": "started",
    "starts_at": "from",
    "ends_at": "to",
}
_INSTANTS = frozenset({"deadline", "arrived_at", "raised_at", "started_at", "starts_at", "ends_at"})


def _cell(key: str, value: object, zone: tzinfo, words: dict[str, str]) -> str:
    if value is None:
        return ""
    if key in _INSTANTS and isinstance(value, str):
        local = datetime.fromisoformat(value).astimezone(zone)
        return local.strftime("%Y-%m-%d %H:%M")
    text = str(value)
    translated = {"state", "reason", "outcome", "kind", "addressed_to"}
    return words.get(text, text) if key in translated else text


def render_html(handover: dict[str, Any], *, zone: tzinfo, lang: str = "sv") -> str:
    """A printable page of :func:`build`'s result; times in ``zone``; ``lang`` sv, en or fi."""
    if lang not in LANGUAGES:
        raise ValueError(f"lang must be one of {', '.join(LANGUAGES)}")
    w, e = _TEXT[lang], html.escape
    made = _cell("started_at", handover["generated_at"], zone, w)
    reconciled = handover["reconciled_at"]
    reconciled_text = _cell("started_at", reconciled, zone, w) if reconciled else w["not_yet"]
    sections = []
    for name, columns in _COLUMNS.items():
        rows = handover[name]
        head = f"<h2>{e(w[name])} ({len(rows)})</h2>"
        if not rows:
            sections.append(f"{head}<p>{e(w['none'])}</p>")
            continue
        th = "".join(f"<th>{e(w[_HEADINGS.get(c, c)])}</th>" for c in columns)
        body = "".join(
            "<tr>"
            + "".join(f"<td>{e(_cell(c, r.get(c), zone, w))}</td>" for c in columns)
            + "</tr>"
            for r in rows
        )
        sections.append(f"{head}<table><tr>{th}</tr>{body}</table>")
    night = e(handover["night"])
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<title>{e(w["title"])} {night}</title>
<style>
body{{font:11pt/1.4 system-ui,sans-serif;margin:2em}}
table{{border-collapse:collapse;margin:.5em 0}}
th,td{{border:1px solid #999;padding:.2em .5em;text-align:left}} th{{background:#eee}}
h2{{font-size:13pt;margin-top:1.2em}} @media print{{body{{margin:0}}}}
</style></head><body>
<h1>{e(w["title"])} – {e(w["night"])} {night}</h1>
<p>{e(w["made"])} {e(made)}; {e(w["reconciled"])} {e(reconciled_text)}.</p>
{"".join(sections)}
</body></html>
"""
