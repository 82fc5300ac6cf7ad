"""The morning report (pure): planned vs done per brukare and per operator, from stored facts.

Built from the night's checks and transitions, its looks (the views and calls signalling stored,
:class:`supervision.checks.Look`) and alarms: per brukare planned, performed, escalated,
deviations and still open; per check its views and the seconds of video they delivered; checks
cleared without a human; escalations, deviations and device problems with their reasons. Views,
calls and their seconds come from the sessions, as the devices reported them (``video_s``: first
frame to last; a look whose device never reported counts its view with 0 s), never from the
check's steps. An extra look (a view owed to no check) is a deviation: who, when, how long (open
and delivered) and why (reason code and note). Per operator the views, calls, extra looks, their
seconds and the outcomes documented. :func:`render_html` prints it as a page for paper (Swedish
UI), :func:`render_text` for a terminal. Pseudonymous ids, and an extra look's note as written.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from supervision.checks import Category, Check, Look, State

DEVICE_REASONS = ("camera_", "device_", "wake_failed", "technical")
SEEN_OR_CLEARED = frozenset({State.CLEARED, State.DOCUMENTED, State.VISITED})


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
    calls: list[dict[str, Any]] = field(default_factory=list)
    extra_looks: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    escalations: list[dict[str, Any]] = field(default_factory=list)
    deviation_list: list[dict[str, Any]] = field(default_factory=list)
    device_problems: list[dict[str, Any]] = field(default_factory=list)
    unattended: list[dict[str, Any]] = field(default_factory=list)


def _look_json(x: Look) -> dict[str, Any]:
    """One look as the report shows it: who, when, how long it was open and what it delivered."""
    open_s = None if x.ended_at is None else round((x.ended_at - x.started_at).total_seconds(), 1)
    return {
        "session_id": x.session_id,
        "check_id": x.check_id,
        "operator": x.staff_id,
        "device_id": x.device_id,
        "started_at": x.started_at.isoformat(),
        "ended_at": x.ended_at.isoformat() if x.ended_at else None,
        "open_s": open_s,
        "seconds": round(x.delivered_s, 1),
        "reported": x.video_s is not None,
    }


def _add_looks(
    per: dict[str, _Recipient],
    checks: Sequence[Check],
    looks: Sequence[Look],
    operators: dict[str, Counter[str]],
    seconds: dict[str, dict[str, float]],
) -> None:
    """The night's views, calls and extra looks, per brukare, check and operator."""
    by_id = {c.check_id: c for c in checks}
    per_check: dict[str, list[Look]] = defaultdict(list)
    for x in sorted(looks, key=lambda x: (x.started_at, x.session_id)):
        checked = by_id.get(x.check_id) if x.check_id else None
        rid = checked.recipient_id if checked else x.recipient_id or f"device:{x.device_id}"
        r = per[rid]
        shown = _look_json(x)
        kind = "calls" if x.purpose == "call" else "views"
        operators[x.staff_id][kind] += 1
        seconds[x.staff_id][kind] += x.delivered_s
        if x.is_extra:
            operators[x.staff_id]["extra_looks"] += 1
            extra = {**shown, "reason": x.reason, "note": x.note}
            r.extra_looks.append(extra)
            r.deviation_list.append({"kind": "extra_look", **extra})
        elif x.purpose == "call":
            r.calls.append(shown)
        else:
            r.views.append(shown)
        if checked is not None:
            per_check[checked.check_id].append(x)
    for chk in checks:
        mine = per_check.get(chk.check_id, [])
        per[chk.recipient_id].checks.append(
            {
                "check_id": chk.check_id,
                "agreed": chk.agreed.strftime("%H:%M"),
                "state": chk.state.value,
                "views": sum(1 for x in mine if x.purpose == "view"),
                "calls": sum(1 for x in mine if x.purpose == "call"),
                "seconds": round(sum(x.delivered_s for x in mine), 1),
            }
        )


def build(
    night: date,
    checks: Sequence[Check],
    transitions: Iterable[TransitionFact],
    *,
    generated_at: datetime,
    reconciled_at: datetime | None = None,
    alarms: Sequence[Mapping[str, Any]] = (),
    looks: Sequence[Look] = (),
) -> dict[str, Any]:
    """The report as JSON-ready data. ``looks``: the night's views and calls
    (:meth:`supervision.store.RoundStore.night_looks`)."""
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
            r.deviation_list.append(
                {"kind": "check", "check_id": chk.check_id, "reason": chk.reason}
            )
        else:
            r.open += 1
    operators: dict[str, Counter[str]] = defaultdict(Counter)
    seconds: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))  # op -> kind
    _add_looks(per, checks, looks, operators, seconds)
    problems_seen: set[tuple[str, str]] = set()
    transitions_seen = sorted(transitions, key=lambda t: (t.at, t.check_id))
    for t in transitions_seen:
        c = by_id.get(t.check_id)
        if c is None:
            continue
        r = per[c.recipient_id]
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
                "views": len(r.views) + len(r.extra_looks),
                "calls": len(r.calls),
                "extra_looks": len(r.extra_looks),
                "device_problems": len(r.device_problems),
                "patrol_tasks": len(r.escalations),
            }
        )
    camera_done = totals["cleared"] + sum(1 for c in checks if c.state is State.DOCUMENTED)
    for c in unattended(checks, transitions_seen):
        per[c.recipient_id].unattended.append({"check_id": c.check_id, "reason": c.reason})
    ladder = [a for a in alarms if a.get("kind", "alarm") == "alarm"]
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
                    "extra_looks",
                    "calls",
                    "patrol_tasks",
                    "device_problems",
                )
            },
            "cleared_share": _share(totals["cleared"], totals["planned"]),
            "cleared_share_of_seen": _share(totals["cleared"], camera_done),
            "view_seconds": round(sum(s["views"] for s in seconds.values()), 1),
            "call_seconds": round(sum(s["calls"] for s in seconds.values()), 1),
            "alarms": len(alarms),
            "alarms_open": sum(1 for a in alarms if a.get("acknowledged_at") is None),
            "alarm_repeats": sum(1 for a in ladder if a.get("repeat", 1) > 1),
            "escalations": len(alarms) - len(ladder),
            "unattended": sum(len(r.unattended) for r in per.values()),
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
                "checks": r.checks,
                "views": r.views,
                "calls": r.calls,
                "extra_looks": r.extra_looks,
                "escalations": r.escalations,
                "deviation_list": r.deviation_list,
                "device_problems": r.device_problems,
                "unattended": r.unattended,
            }
            for rid, r in sorted(per.items())
        ],
        "extra_looks": [x for _, r in sorted(per.items()) for x in r.extra_looks],
        "operators": [
            {
                "staff_id": op,
                "views": n["views"],
                "view_seconds": round(seconds[op]["views"], 1),
                "calls": n["calls"],
                "call_seconds": round(seconds[op]["calls"], 1),
                "extra_looks": n["extra_looks"],
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


def unattended(checks: Iterable[Check], transitions: Iterable[TransitionFact]) -> list[Check]:
    """Checks that ended without a person seeing the brukare (documented, visited) or a patrol
    being sent, and that a person was needed for (not cleared by the motion check): what the
    escalation ladder exists to make none of."""
    patrolled = {t.check_id for t in transitions if t.to_state is State.PATROL}
    return [
        c
        for c in checks
        if c.is_finished and c.state not in SEEN_OR_CLEARED and c.check_id not in patrolled
    ]


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
    "extra_looks": "Extra tittningar (avvikelser)",
    "calls": "Samtal",
    "call_seconds": "Samtalstid med bild (s)",
    "patrol_tasks": "Patrulluppdrag",
    "device_problems": "Tekniska fel",
    "view_seconds": "Levererad bild (s)",
    "alarms": "Larm",
    "alarms_open": "Ej kvitterade larm",
    "alarm_repeats": "Upprepade larm",
    "escalations": "Eskaleringar till arbetsledare",
    "unattended": "Avslutade utan att någon såg brukaren eller patrull skickades",
    "cleared_share": "Andel klara utan personal",
    "cleared_share_of_seen": "Andel av utförda kameratillsyner",
}


def render_text(report: Mapping[str, Any]) -> str:
    t = report["totals"]
    lines = [
        f"Night {report['night']}: {t['planned']} planned, {t['performed']} performed "
        f"({t['cleared']} cleared without a human, {t['cleared_share']:.1%} of planned), "
        f"{t['escalated']} escalated, {t['deviations']} deviations, {t['open']} open",
        f"views {t['views']} ({t['view_seconds']} s of video, {t['extra_looks']} extra looks), "
        f"calls {t['calls']} ({t['call_seconds']} s), patrol tasks {t['patrol_tasks']}, "
        f"device problems {t['device_problems']}, alarms {t['alarms']} "
        f"({t['alarms_open']} not acknowledged, {t['alarm_repeats']} repeats, "
        f"{t['escalations']} escalations to the shift lead)",
        f"ended without a person seeing the brukare or a patrol sent: {t['unattended']}",
    ]
    for op in report["operators"]:
        outcomes = ", ".join(f"{k} {v}" for k, v in op["outcomes"].items()) or "-"
        lines.append(
            f"  {op['staff_id']}: {op['views']} views, {op['view_seconds']} s "
            f"({op['extra_looks']} extra); {op['calls']} calls, {op['call_seconds']} s; "
            f"{outcomes}; patrol ack {op['patrol_acknowledged']}, "
            f"visited {op['patrol_visited']}"
        )
    lines.extend(
        f"  extra look {x['started_at']} by {x['operator']} on {x['device_id']}: "
        f"{x['reason']}, open {x['open_s']} s, {x['seconds']} s of video"
        for x in report.get("extra_looks", [])
    )
    return "\n".join(lines)


def render_html(report: Mapping[str, Any]) -> str:
    e = html.escape
    t = report["totals"]
    rows = "".join(
        f"<tr><td>{e(r['recipient_id'])}</td><td>{r['planned']}</td><td>{r['performed']}</td>"
        f"<td>{r['cleared']}</td><td>{r['escalated']}</td><td>{r['deviations']}</td>"
        f"<td>{len(r['views']) + len(r['extra_looks'])}</td>"
        f"<td>{sum(v['seconds'] for v in [*r['views'], *r['extra_looks']]):.0f}</td>"
        f"<td>{e('; '.join(str(d['reason']) for d in r['deviation_list']))}</td>"
        f"<td>{e('; '.join(str(d['reason']) for d in r['device_problems']))}</td></tr>"
        for r in report["recipients"]
    )
    ops = "".join(
        f"<tr><td>{e(o['staff_id'])}</td><td>{o['views']}</td><td>{o['view_seconds']:.0f}</td>"
        f"<td>{o['extra_looks']}</td><td>{o['calls']}</td><td>{o['call_seconds']:.0f}</td>"
        f"<td>{e(', '.join(f'{k}: {v}' for k, v in o['outcomes'].items()))}</td>"
        f"<td>{o['patrol_acknowledged']}</td><td>{o['patrol_visited']}</td></tr>"
        for o in report["operators"]
    )
    extras = "".join(
        f"<tr><td>{e(x['operator'])}</td><td>{e(x['device_id'])}</td>"
        f"<td>{e(x['started_at'])}</td><td>{e(str(x['open_s']))}</td><td>{x['seconds']:.0f}</td>"
        f"<td>{e(str(x['reason']))}</td><td>{e(x['note'] or '')}</td></tr>"
        for x in report.get("extra_looks", [])
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
<th>Eskalerade</th><th>Avvikelser</th><th>Tittningar</th><th>Levererad bild (s)</th>
<th>Avvikelseorsak</th><th>Tekniska fel</th></tr>{rows}</table>
<h2>Extra tittningar (avvikelser)</h2>
<table><tr><th>Operatör</th><th>Kamera</th><th>Började</th><th>Öppen (s)</th>
<th>Levererad bild (s)</th><th>Skäl</th><th>Anteckning</th></tr>{extras}</table>
<h2>Per operatör</h2>
<table><tr><th>Operatör</th><th>Tittningar</th><th>Levererad bild (s)</th><th>Extra</th>
<th>Samtal</th><th>Samtalstid (s)</th><th>Dokumenterat</th>
<th>Patrull kvitterad</th><th>Patrull besökt</th></tr>{ops}</table>
</body></html>
"""


def _fmt(key: str, v: object) -> str:
    if isinstance(v, float):
        return f"{v:.1%}" if "share" in key else f"{v:.1f}"
    return str(v)
