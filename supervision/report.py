"""The morning report (pure): planned vs done per brukare and per operator, from stored facts.

Built from the night's checks and transitions (and alarms): per brukare planned, performed,
escalated, deviations and still open; views and their durations (from a view's start to the
step that ended it, usually the outcome, so at least the time the feed was open); checks cleared
without a human; escalations, deviations and device problems with their reasons; per operator
the views, their seconds and the outcomes documented. :func:`render_html` prints it as a page
for paper (Swedish UI), :func:`render_text` for a terminal. Pseudonymous ids only.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from supervision.checks import Category, Check, State

DEVICE_REASONS = ("camera_", "device_", "wake_failed", "technical")


class TransitionFact(Protocol):
    @property
    def check_id(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def from_state(self) -> State: ...
    @property
    def to_state(self) -> State: ...
    @property
    def event(self) -> str: ...
    @property
    def actor(self) -> str: ...
    @property
    def reason(self) -> str | None: ...


def is_device_problem(reason: str | None) -> bool:
    return reason is not None and reason.startswith(DEVICE_REASONS)


@dataclass(slots=True)
class _Recipient:
    planned: int = 0
    performed: int = 0
    cleared: int = 0
    escalated: int = 0
    deviations: int = 0
    open: int = 0
    views: list[dict[str, Any]] = field(default_factory=list)
    escalations: list[dict[str, Any]] = field(default_factory=list)
    deviation_list: list[dict[str, Any]] = field(default_factory=list)
    device_problems: list[dict[str, Any]] = field(default_factory=list)


def build(
    night: date,
    checks: Sequence[Check],
    transitions: Iterable[TransitionFact],
    *,
    generated_at: datetime,
    reconciled_at: datetime | None = None,
    alarms: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The report as JSON-ready data."""
    per: dict[str, _Recipient] = defaultdict(_Recipient)
    by_id = {c.check_id: c for c in checks}
    for chk in checks:
        r = per[chk.recipient_id]
        r.planned += 1
        cat = chk.category
        if cat is Category.PERFORMED:
            r.performed += 1
            r.cleared += chk.state is State.CLEARED
        elif cat is Category.ESCALATED:
            r.escalated += 1
        elif cat is Category.DEVIATION:
            r.deviations += 1
            r.deviation_list.append({"check_id": chk.check_id, "reason": chk.reason})
        else:
            r.open += 1
    operators: dict[str, Counter[str]] = defaultdict(Counter)
    view_seconds: dict[str, float] = defaultdict(float)
    view_start: dict[str, tuple[datetime, str]] = {}
    problems_seen: set[tuple[str, str]] = set()
    for t in sorted(transitions, key=lambda t: (t.at, t.check_id)):
        c = by_id.get(t.check_id)
        if c is None:
            continue
        r = per[c.recipient_id]
        if t.to_state is State.VIEWING:
            view_start[t.check_id] = (t.at, t.actor)
        elif t.from_state is State.VIEWING and t.check_id in view_start:
            started, operator = view_start.pop(t.check_id)
            seconds = round((t.at - started).total_seconds(), 1)
            r.views.append(
                {
                    "check_id": t.check_id,
                    "operator": operator,
                    "started_at": started.isoformat(),
                    "seconds": seconds,
                }
            )
            operators[operator]["views"] += 1
            view_seconds[operator] += seconds
        if t.event.startswith("outcome_"):
            operators[t.actor][t.event] += 1
        if t.event in ("patrol_acknowledged", "patrol_visited"):
            operators[t.actor][t.event] += 1
        if t.to_state is State.PATROL:
            r.escalations.append(
                {"check_id": t.check_id, "reason": t.reason, "at": t.at.isoformat()}
            )
        if is_device_problem(t.reason) and (t.check_id, t.reason or "") not in problems_seen:
            problems_seen.add((t.check_id, t.reason or ""))
            r.device_problems.append(
                {"check_id": t.check_id, "reason": t.reason, "at": t.at.isoformat()}
            )
    totals = Counter[str]()
    for r in per.values():
        totals.update(
            {
                "planned": r.planned,
                "performed": r.performed,
                "cleared": r.cleared,
                "escalated": r.escalated,
                "deviations": r.deviations,
                "open": r.open,
                "views": len(r.views),
                "device_problems": len(r.device_problems),
                "patrol_tasks": len(r.escalations),
            }
        )
    camera_done = totals["cleared"] + sum(1 for c in checks if c.state is State.DOCUMENTED)
    return {
        "night": night.isoformat(),
        "generated_at": generated_at.isoformat(),
        "reconciled_at": reconciled_at.isoformat() if reconciled_at else None,
        "totals": {
            **{
                k: totals[k]
                for k in (
                    "planned",
                    "performed",
                    "cleared",
                    "escalated",
                    "deviations",
                    "open",
                    "views",
                    "patrol_tasks",
                    "device_problems",
                )
            },
            "cleared_share": _share(totals["cleared"], totals["planned"]),
            "cleared_share_of_seen": _share(totals["cleared"], camera_done),
            "view_seconds": round(sum(view_seconds.values()), 1),
            "alarms": len(alarms),
            "alarms_open": sum(1 for a in alarms if a.get("acknowledged_at") is None),
        },
        "recipients": [
            {
                "recipient_id": rid,
                "planned": r.planned,
                "performed": r.performed,
                "cleared": r.cleared,
                "escalated": r.escalated,
                "deviations": r.deviations,
                "open": r.open,
                "views": r.views,
                "escalations": r.escalations,
                "deviation_list": r.deviation_list,
                "device_problems": r.device_problems,
            }
            for rid, r in sorted(per.items())
        ],
        "operators": [
            {
                "staff_id": op,
                "views": n["views"],
                "view_seconds": round(view_seconds[op], 1),
                "outcomes": {
                    k.removeprefix("outcome_"): v
                    for k, v in sorted(n.items())
                    if k.startswith("outcome_")
                },
                "patrol_acknowledged": n["patrol_acknowledged"],
                "patrol_visited": n["patrol_visited"],
            }
            for op, n in sorted(operators.items())
        ],
    }


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


# --------------------------------------------------------------------------- rendering

_SV = {
    "planned": "Planerade",
    "performed": "Utförda",
    "cleared": "Klara utan personal",
    "escalated": "Eskalerade",
    "deviations": "Avvikelser",
    "open": "Öppna",
    "views": "Tittningar",
    "patrol_tasks": "Patrulluppdrag",
    "device_problems": "Tekniska fel",
    "view_seconds": "Tittad tid (s)",
    "alarms": "Larm",
    "alarms_open": "Ej kvitterade larm",
    "cleared_share": "Andel klara utan personal",
    "cleared_share_of_seen": "Andel av utförda kameratillsyner",
}


def render_text(report: Mapping[str, Any]) -> str:
    t = report["totals"]
    lines = [
        f"Night {report['night']}: {t['planned']} planned, {t['performed']} performed "
        f"({t['cleared']} cleared without a human, {t['cleared_share']:.1%} of planned), "
        f"{t['escalated']} escalated, {t['deviations']} deviations, {t['open']} open",
        f"views {t['views']} ({t['view_seconds']} s), patrol tasks {t['patrol_tasks']}, "
        f"device problems {t['device_problems']}, alarms {t['alarms']} "
        f"({t['alarms_open']} not acknowledged)",
    ]
    for op in report["operators"]:
        outcomes = ", ".join(f"{k} {v}" for k, v in op["outcomes"].items()) or "-"
        lines.append(
            f"  {op['staff_id']}: {op['views']} views, {op['view_seconds']} s; "
            f"{outcomes}; patrol ack {op['patrol_acknowledged']}, "
            f"visited {op['patrol_visited']}"
        )
    return "\n".join(lines)


def render_html(report: Mapping[str, Any]) -> str:
    e = html.escape
    t = report["totals"]
    rows = "".join(
        f"<tr><td>{e(r['recipient_id'])}</td><td>{r['planned']}</td><td>{r['performed']}</td>"
        f"<td>{r['cleared']}</td><td>{r['escalated']}</td><td>{r['deviations']}</td>"
        f"<td>{len(r['views'])}</td><td>{sum(v['seconds'] for v in r['views']):.0f}</td>"
        f"<td>{e('; '.join(str(d['reason']) for d in r['deviation_list']))}</td>"
        f"<td>{e('; '.join(str(d['reason']) for d in r['device_problems']))}</td></tr>"
        for r in report["recipients"]
    )
    ops = "".join(
        f"<tr><td>{e(o['staff_id'])}</td><td>{o['views']}</td><td>{o['view_seconds']:.0f}</td>"
        f"<td>{e(', '.join(f'{k}: {v}' for k, v in o['outcomes'].items()))}</td>"
        f"<td>{o['patrol_acknowledged']}</td><td>{o['patrol_visited']}</td></tr>"
        for o in report["operators"]
    )
    summary = "".join(
        f"<tr><th>{e(_SV.get(k, k))}</th><td>{e(_fmt(k, v))}</td></tr>" for k, v in t.items()
    )
    return f"""<!doctype html>
<html lang="sv"><head><meta charset="utf-8">
<title>Nattrapport {e(report["night"])}</title>
<style>
body{{font:11pt/1.4 system-ui,sans-serif;margin:2em}} table{{border-collapse:collapse;margin:1em 0}}
th,td{{border:1px solid #999;padding:.2em .5em;text-align:left}} th{{background:#eee}}
@media print{{body{{margin:0}} h2{{page-break-before:auto}}}}
</style></head><body>
<h1>Nattrapport – natten {e(report["night"])}</h1>
<p>Skapad {e(report["generated_at"])}; avstämd {e(str(report["reconciled_at"] or "ej ännu"))}.</p>
<table>{summary}</table>
<h2>Per brukare</h2>
<table><tr><th>Brukare</th><th>Planerade</th><th>Utförda</th><th>Klara utan personal</th>
<th>Eskalerade</th><th>Avvikelser</th><th>Tittningar</th><th>Tittad tid (s)</th>
<th>Avvikelseorsak</th><th>Tekniska fel</th></tr>{rows}</table>
<h2>Per operatör</h2>
<table><tr><th>Operatör</th><th>Tittningar</th><th>Tittad tid (s)</th><th>Dokumenterat</th>
<th>Patrull kvitterad</th><th>Patrull besökt</th></tr>{ops}</table>
</body></html>
"""


def _fmt(key: str, v: object) -> str:
    if isinstance(v, float):
        return f"{v:.1%}" if "share" in key else f"{v:.1f}"
    return str(v)
