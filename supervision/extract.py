"""The brukare's log extract (GDPR art. 15, pure): who looked, when, how long and why.

For one brukare and a period of local dates, :func:`build` turns the rows the store read (the
sessions of ``signal_sessions`` and the consent slice's consents, pauses, bindings and
suspensions) into one :class:`Extract`: every look in time order (a view for a check, an extra
look with its reason and note, the automated motion probe, a video call), each with the staff
member's id **and** display name (the brukare's right is to know who looked, not a pseudonym),
the check it served, its start, end, duration and the video seconds its device reported; between
them the consents given and withdrawn, pauses, bindings and unbindings of devices, suspensions and
their lifting. Totals count the looks and their seconds.

What is in the period: a look that *started* in it (so two adjacent periods never list a look
twice), an event whose instant falls in it. The period is half-open in the brukare's zone: from
the first date's midnight to the midnight after the last date.

Audit entries are not read: a check's steps are filed under the check id, not the brukare, so the
domain tables are the complete source. The extract itself is audited (:data:`ACTION`) by whoever
makes it. :func:`to_json` and :func:`render_html` (Swedish or English, printable, escaped, no
script) are its two forms.

No I/O.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Any

from supervision.errors import BadRequest

ACTION = "extract.made"
"""The audit action of a made extract: actor, subject the recipient id, data the period,
format and counts (never folded: each extract leaves the system)."""
FORMAT = "homecare-extract/1"
FORMATS = ("html", "json")
LANGUAGES = ("sv", "en", "fi")
DEFAULT_DAYS = 365
"""Without ``from``, the extract covers the year up to ``to`` (default: today)."""
SYSTEM = "system"


class LookKind(StrEnum):
    CHECK_VIEW = "check_view"  # a live view owed to an agreed check
    EXTRA_LOOK = "extra_look"  # a view with no due check: a reason and a note
    PROBE = "probe"  # the automated motion analysis (no human saw a picture)
    CALL = "call"  # a video call


class EventKind(StrEnum):
    CONSENT_GIVEN = "consent_given"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    PAUSE_STARTED = "pause_started"
    PAUSE_ENDED = "pause_ended"
    DEVICE_BOUND = "device_bound"
    DEVICE_UNBOUND = "device_unbound"
    SUSPENDED = "suspended"
    SUSPENSION_LIFTED = "suspension_lifted"


# -- the rows the store reads ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One ``signal_sessions`` row of the brukare, with the check it served (if any)."""

    session_id: str
    purpose: str  # view | call | probe
    staff_id: str
    device_id: str
    started_at: datetime
    ended_at: datetime | None
    video_s: float | None = None
    check_id: str | None = None
    check_agreed_at: datetime | None = None
    look: str | None = None  # check | extra | None
    reason: str | None = None
    note: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class ConsentRow:
    consent_id: str
    purpose: str
    version: int
    basis: str | None
    given_at: datetime
    valid_from: datetime
    valid_until: datetime | None
    recorded_by: str
    withdrawn_at: datetime | None = None
    withdrawn_by: str | None = None
    withdrawal_reason: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class PauseRow:
    pause_id: str
    starts_at: datetime
    ends_at: datetime | None
    source: str
    reason: str
    note: str = field(default="", repr=False)
    created_by: str = ""
    ended_by: str | None = None


@dataclass(frozen=True, slots=True)
class BindingRow:
    binding_id: str
    device_id: str
    bound_at: datetime
    bound_by: str
    unbound_at: datetime | None = None
    unbound_by: str | None = None


@dataclass(frozen=True, slots=True)
class SuspensionRow:
    suspension_id: str
    device_id: str
    event_type: str
    started_at: datetime
    event_count: int
    lifted_at: datetime | None = None
    lifted_by: str | None = None


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the store read about one brukare (rows may reach outside the period)."""

    recipient_id: str
    display_name: str
    sessions: Sequence[SessionRow] = ()
    consents: Sequence[ConsentRow] = ()
    pauses: Sequence[PauseRow] = ()
    bindings: Sequence[BindingRow] = ()
    suspensions: Sequence[SuspensionRow] = ()
    names: Mapping[str, str] = field(default_factory=dict)
    """Staff display names by staff id (ids missing here are shown as the id)."""


# -- the period ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    first: date
    last: date
    start: datetime  # the first date's local midnight (in UTC)
    end: datetime  # the local midnight after the last date (excluded; in UTC)

    def holds(self, at: datetime) -> bool:
        return self.start <= at < self.end


def parse_date(text: str | None, name: str) -> date | None:
    """``YYYY-MM-DD`` (``None`` when not given); anything else is 422 ``bad_date``."""
    if text is None:
        return None
    bad = BadRequest(f"{name} is a date YYYY-MM-DD", field=name, code="bad_date")
    if len(text) != 10:
        raise bad
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise bad from None


def period(first: date | None, last: date | None, *, today: date, zone: tzinfo) -> Period:
    """The extract's period in ``zone``: ``last`` defaults to ``today``, ``first`` to
    :data:`DEFAULT_DAYS` before ``last``; ``first`` after ``last`` is 422 ``bad_period``."""
    last = last or today
    first = first or last - timedelta(days=DEFAULT_DAYS)
    if first > last:
        raise BadRequest("from is after to", field="from", code="bad_period")
    start = datetime.combine(first, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return Period(first=first, last=last, start=start, end=end)


def choose(value: str | None, allowed: Sequence[str], name: str) -> str:
    """A query's or option's choice (the first of ``allowed`` when not given); 422 otherwise."""
    if value is None:
        return allowed[0]
    if value not in allowed:
        raise BadRequest(f"{name} is one of {', '.join(allowed)}", field=name, code="bad_value")
    return value


# -- the extract --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LookEntry:
    at: datetime
    kind: LookKind
    session_id: str
    staff_id: str
    staff_name: str
    device_id: str
    ended_at: datetime | None
    video_s: float | None
    check_id: str | None
    check_agreed_at: datetime | None
    reason: str | None
    note: str | None = field(default=None, repr=False)

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end; ``None`` while the look has no end."""
        if self.ended_at is None:
            return None
        return max(0.0, (self.ended_at - self.at).total_seconds())


@dataclass(frozen=True, slots=True)
class EventEntry:
    at: datetime
    kind: EventKind
    ref: str  # the row's own id (consent, pause, binding, suspension)
    by: str | None  # the staff id (or system / device) who did it
    by_name: str | None
    detail: Mapping[str, Any] = field(default_factory=dict, repr=False)


Entry = LookEntry | EventEntry


@dataclass(frozen=True, slots=True)
class Totals:
    looks: int  # every look: views, extra looks, probes, calls
    human_looks: int  # views, extra looks and calls: a person saw a picture
    by_kind: Mapping[str, int]
    open_looks: int  # no end yet
    seconds: float  # summed duration of the looks that ended
    video_seconds: float  # summed video the devices reported
    events: int


@dataclass(frozen=True, slots=True)
class Extract:
    recipient_id: str
    display_name: str
    period: Period
    generated_at: datetime
    entries: tuple[Entry, ...]
    totals: Totals

    @property
    def looks(self) -> tuple[LookEntry, ...]:
        return tuple(e for e in self.entries if isinstance(e, LookEntry))


def look_kind(s: SessionRow) -> LookKind:
    if s.purpose == "probe":
        return LookKind.PROBE
    if s.purpose == "call":
        return LookKind.CALL
    return LookKind.EXTRA_LOOK if s.look == "extra" else LookKind.CHECK_VIEW


def _name(names: Mapping[str, str], who: str | None) -> str | None:
    if who is None:
        return None
    return names.get(who) or who


def _events(f: Facts) -> Iterable[EventEntry]:
    n = f.names
    for c in f.consents:
        d = {"purpose": c.purpose, "version": c.version, "basis": c.basis}
        yield EventEntry(
            c.given_at,
            EventKind.CONSENT_GIVEN,
            c.consent_id,
            c.recorded_by,
            _name(n, c.recorded_by),
            {**d, "valid_from": c.valid_from, "valid_until": c.valid_until},
        )
        if c.withdrawn_at is not None:
            yield EventEntry(
                c.withdrawn_at,
                EventKind.CONSENT_WITHDRAWN,
                c.consent_id,
                c.withdrawn_by,
                _name(n, c.withdrawn_by),
                {**d, "reason": c.withdrawal_reason},
            )
    for p in f.pauses:
        d = {"source": p.source, "reason": p.reason, "note": p.note}
        yield EventEntry(
            p.starts_at,
            EventKind.PAUSE_STARTED,
            p.pause_id,
            p.created_by,
            _name(n, p.created_by),
            d,
        )
        if p.ends_at is not None:
            yield EventEntry(
                p.ends_at, EventKind.PAUSE_ENDED, p.pause_id, p.ended_by, _name(n, p.ended_by), d
            )
    for b in f.bindings:
        d = {"device_id": b.device_id}
        yield EventEntry(
            b.bound_at, EventKind.DEVICE_BOUND, b.binding_id, b.bound_by, _name(n, b.bound_by), d
        )
        if b.unbound_at is not None:
            yield EventEntry(
                b.unbound_at,
                EventKind.DEVICE_UNBOUND,
                b.binding_id,
                b.unbound_by,
                _name(n, b.unbound_by),
                d,
            )
    for s in f.suspensions:
        d = {"device_id": s.device_id, "event_type": s.event_type, "event_count": s.event_count}
        yield EventEntry(s.started_at, EventKind.SUSPENDED, s.suspension_id, SYSTEM, None, d)
        if s.lifted_at is not None:
            yield EventEntry(
                s.lifted_at,
                EventKind.SUSPENSION_LIFTED,
                s.suspension_id,
                s.lifted_by,
                _name(n, s.lifted_by),
                d,
            )


def _look(s: SessionRow, names: Mapping[str, str]) -> LookEntry:
    kind = look_kind(s)
    return LookEntry(
        at=s.started_at,
        kind=kind,
        session_id=s.session_id,
        staff_id=s.staff_id,
        staff_name=names.get(s.staff_id) or s.staff_id,
        device_id=s.device_id,
        ended_at=s.ended_at,
        video_s=s.video_s,
        check_id=s.check_id,
        check_agreed_at=s.check_agreed_at,
        reason=s.reason if kind is LookKind.EXTRA_LOOK else None,
        note=s.note if kind is LookKind.EXTRA_LOOK else None,
    )


def _order(e: Entry) -> tuple[datetime, int, str, str]:
    if isinstance(e, EventEntry):
        return (e.at, 0, e.kind.value, e.ref)
    return (e.at, 1, e.session_id, "")


def build(facts: Facts, p: Period, *, generated_at: datetime) -> Extract:
    """The extract of ``facts`` for period ``p``: entries in the period in time order (an event
    before a look at the same instant, then by id), and their totals."""
    looks = [_look(s, facts.names) for s in facts.sessions if p.holds(s.started_at)]
    events = [e for e in _events(facts) if p.holds(e.at)]
    entries: list[Entry] = [*events, *looks]
    entries.sort(key=_order)
    by_kind = {k.value: sum(1 for x in looks if x.kind is k) for k in LookKind}
    durations = [d for d in (x.duration_s for x in looks) if d is not None]
    totals = Totals(
        looks=len(looks),
        human_looks=len(looks) - by_kind[LookKind.PROBE],
        by_kind=by_kind,
        open_looks=sum(1 for x in looks if x.ended_at is None),
        seconds=round(sum(durations), 3),
        video_seconds=round(sum(x.video_s or 0.0 for x in looks), 3),
        events=len(events),
    )
    return Extract(
        recipient_id=facts.recipient_id,
        display_name=facts.display_name,
        period=p,
        generated_at=generated_at,
        entries=tuple(entries),
        totals=totals,
    )


# -- JSON ---------------------------------------------------------------------------------------


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _plain(v: Any) -> Any:
    return _iso(v) if isinstance(v, datetime) else v


def entry_json(e: Entry) -> dict[str, Any]:
    if isinstance(e, LookEntry):
        return {
            "type": "look",
            "kind": e.kind.value,
            "at": _iso(e.at),
            "ended_at": _iso(e.ended_at),
            "duration_s": None if e.duration_s is None else round(e.duration_s, 3),
            "video_s": e.video_s,
            "staff_id": e.staff_id,
            "staff_name": e.staff_name,
            "device_id": e.device_id,
            "check_id": e.check_id,
            "check_agreed_at": _iso(e.check_agreed_at),
            "reason": e.reason,
            "note": e.note,
            "session_id": e.session_id,
        }
    return {
        "type": "event",
        "kind": e.kind.value,
        "at": _iso(e.at),
        "ref": e.ref,
        "by": e.by,
        "by_name": e.by_name,
        **{k: _plain(v) for k, v in e.detail.items()},
    }


def to_json(x: Extract) -> dict[str, Any]:
    t = x.totals
    return {
        "format": FORMAT,
        "recipient": {"recipient_id": x.recipient_id, "display_name": x.display_name},
        "period": {
            "from": x.period.first.isoformat(),
            "to": x.period.last.isoformat(),
            "start": _iso(x.period.start),
            "end": _iso(x.period.end),
        },
        "generated_at": _iso(x.generated_at),
        "totals": {
            "looks": t.looks,
            "human_looks": t.human_looks,
            "by_kind": dict(t.by_kind),
            "open_looks": t.open_looks,
            "seconds": t.seconds,
            "video_seconds": t.video_seconds,
            "events": t.events,
        },
        "entries": [entry_json(e) for e in x.entries],
    }


# -- the printable page -------------------------------------------------------------------------

_TEXT: dict[str, dict[str, str]] = {
    "sv": {
        "title": "Registerutdrag: tillsyn med kamera",
        "intro": "Utdrag enligt artikel 15 i dataskyddsförordningen (GDPR) för",
        "period": "Period",
        "made": "Framtaget",
        "looks_h": "Tittar och samtal",
        "events_h": "Samtycken, pauser, enheter och avbrott",
        "timeline_h": "Allt i tidsordning",
        "totals_h": "Summering",
        "when": "Tid",
        "what": "Vad",
        "who": "Vem",
        "why": "Varför",
        "ended": "Slut",
        "duration": "Längd (s)",
        "video": "Video (s)",
        "device": "Enhet",
        "none": "Inget under perioden.",
        "no_end": "pågår / inget slut registrerat",
        "check": "tillsyn",
        "check_at": "planerad",
        "looks": "Tittar totalt",
        "human_looks": "varav där en person såg bild",
        "open_looks": "utan registrerat slut",
        "seconds": "Sekunder totalt (start till slut)",
        "video_seconds": "Sekunder video enligt enheten",
        "events": "Händelser",
        "system": "Systemet (automatisk)",
        "note": "anteckning",
        "check_view": "Tittning för tillsyn",
        "extra_look": "Extra tittning",
        "probe": "Automatisk rörelsekontroll",
        "call": "Videosamtal",
        "consent_given": "Samtycke lämnat",
        "consent_withdrawn": "Samtycke återkallat",
        "pause_started": "Paus börjar",
        "pause_ended": "Paus slutar",
        "device_bound": "Enhet kopplad",
        "device_unbound": "Enhet frånkopplad",
        "suspended": "Tillsynen avbruten",
        "suspension_lifted": "Avbrott upphävt",
        "footer": "Ingen bild eller video spelas in; detta är loggen över vem som tittade, när, "
        "hur länge och varför.",
    },
    "en": {
        "title": "Log extract: camera supervision",
        "intro": "Extract under Article 15 of the GDPR for",
        "period": "Period",
        "made": "Made",
        "looks_h": "Looks and calls",
        "events_h": "Consents, pauses, devices and suspensions",
        "timeline_h": "Everything in time order",
        "totals_h": "Totals",
        "when": "Time",
        "what": "What",
        "who": "Who",
        "why": "Why",
        "ended": "Ended",
        "duration": "Length (s)",
        "video": "Video (s)",
        "device": "Device",
        "none": "Nothing in the period.",
        "no_end": "ongoing / no end recorded",
        "check": "check",
        "check_at": "agreed",
        "looks": "Looks in all",
        "human_looks": "of which a person saw a picture",
        "open_looks": "with no end recorded",
        "seconds": "Seconds in all (start to end)",
        "video_seconds": "Seconds of video the device reported",
        "events": "Events",
        "system": "The system (automated)",
        "note": "note",
        "check_view": "View for a check",
        "extra_look": "Extra look",
        "probe": "Automated motion check",
        "call": "Video call",
        "consent_given": "Consent given",
        "consent_withdrawn": "Consent withdrawn",
        "pause_started": "Pause starts",
        "pause_ended": "Pause ends",
        "device_bound": "Device bound",
        "device_unbound": "Device unbound",
        "suspended": "Supervision suspended",
        "suspension_lifted": "Suspension lifted",
        "footer": "No picture or video is recorded; this is the log of who looked, when, for "
        "how long and why.",
    },
    "fi": {
        "title": "Rekisteriote: kameravalvonta",
        "intro": "Tietosuoja-asetuksen (GDPR) 15 artiklan mukainen ote henkilölle",
        "period": "Ajanjakso",
        "made": "Laadittu",
        "looks_h": "Katselut ja puhelut",
        "events_h": "Suostumukset, tauot, laitteet ja keskeytykset",
        "timeline_h": "Kaikki aikajärjestyksessä",
        "totals_h": "Yhteenveto",
        "when": "Aika",
        "what": "Mitä",
        "who": "Kuka",
        "why": "Miksi",
        "ended": "Päättyi",
        "duration": "Kesto (s)",
        "video": "Video (s)",
        "device": "Laite",
        "none": "Ei mitään ajanjaksolla.",
        "no_end": "käynnissä / päättymistä ei kirjattu",
        "check": "valvonta",
        "check_at": "sovittu",
        "looks": "Katseluja yhteensä",
        "human_looks": "joista henkilö näki kuvan",
        "open_looks": "ilman kirjattua päättymistä",
        "seconds": "Sekunteja yhteensä (alusta loppuun)",
        "video_seconds": "Videosekunteja laitteen ilmoittamana",
        "events": "Tapahtumat",
        "system": "Järjestelmä (automaattinen)",
        "note": "huomautus",
        "check_view": "Valvontaan kuuluva katselu",
        "extra_look": "Ylimääräinen katselu",
        "probe": "Automaattinen liiketarkistus",
        "call": "Videopuhelu",
        "consent_given": "Suostumus annettu",
        "consent_withdrawn": "Suostumus peruttu",
        "pause_started": "Tauko alkaa",
        "pause_ended": "Tauko päättyy",
        "device_bound": "Laite yhdistetty",
        "device_unbound": "Laite irrotettu",
        "suspended": "Valvonta keskeytetty",
        "suspension_lifted": "Keskeytys purettu",
        "footer": "Kuvaa tai videota ei tallenneta; tämä on loki siitä, kuka katsoi, milloin, "
        "kuinka kauan ja miksi.",
    },
}


def _local(at: datetime | None, zone: tzinfo) -> str:
    return "" if at is None else at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(v: float | None) -> str:
    return "" if v is None else f"{v:.1f}"


def _who(name: str | None, ident: str | None, w: Mapping[str, str]) -> str:
    if ident is None:
        return ""
    if ident == SYSTEM:
        return w["system"]
    return ident if name in (None, ident) else f"{name} ({ident})"


def _why_look(e: LookEntry, zone: tzinfo, w: Mapping[str, str]) -> str:
    if e.check_id is not None:
        agreed = (
            f", {w['check_at']} {e.check_agreed_at.astimezone(zone):%H:%M}"
            if e.check_agreed_at
            else ""
        )
        return f"{w['check']} {e.check_id}{agreed}"
    if e.reason is not None:
        return e.reason + (f"; {w['note']}: {e.note}" if e.note else "")
    return ""


def _why_event(e: EventEntry, w: Mapping[str, str]) -> str:
    d = e.detail
    parts = [
        str(d[k])
        for k in ("purpose", "basis", "device_id", "event_type", "source", "reason", "note")
        if d.get(k) not in (None, "")
    ]
    return "; ".join(parts)


def _row(cells: Iterable[str], cls: str = "") -> str:
    e = html.escape
    attr = f' class="{cls}"' if cls else ""
    return f"<tr{attr}>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>"


def render_html(x: Extract, *, zone: tzinfo, lang: str = "sv") -> str:
    """A printable page of the extract; times in ``zone``; ``lang`` sv, en or fi. Every value is
    escaped; the page has no script."""
    if lang not in LANGUAGES:
        raise ValueError(f"lang must be one of {', '.join(LANGUAGES)}")
    w, e = _TEXT[lang], html.escape
    looks = x.looks
    head = (
        f"<tr><th>{e(w['when'])}</th><th>{e(w['what'])}</th><th>{e(w['who'])}</th>"
        f"<th>{e(w['why'])}</th><th>{e(w['ended'])}</th><th>{e(w['duration'])}</th>"
        f"<th>{e(w['video'])}</th><th>{e(w['device'])}</th></tr>"
    )
    rows = []
    for entry in x.entries:
        if isinstance(entry, LookEntry):
            rows.append(
                _row(
                    (
                        _local(entry.at, zone),
                        w[entry.kind.value],
                        _who(entry.staff_name, entry.staff_id, w),
                        _why_look(entry, zone, w),
                        _local(entry.ended_at, zone) if entry.ended_at else w["no_end"],
                        _seconds(entry.duration_s),
                        _seconds(entry.video_s),
                        entry.device_id,
                    ),
                    f"look {entry.kind.value}",
                )
            )
        else:
            rows.append(
                _row(
                    (
                        _local(entry.at, zone),
                        w[entry.kind.value],
                        _who(entry.by_name, entry.by, w),
                        _why_event(entry, w),
                        "",
                        "",
                        "",
                        str(entry.detail.get("device_id") or ""),
                    ),
                    f"event {entry.kind.value}",
                )
            )
    table = f"<table>{head}{''.join(rows)}</table>" if rows else f"<p>{e(w['none'])}</p>"
    t = x.totals
    kinds = "".join(
        f"<tr><th>{e(w[k.value])}</th><td>{t.by_kind.get(k.value, 0)}</td></tr>" for k in LookKind
    )
    totals = (
        f"<table class=totals><tr><th>{e(w['looks'])}</th><td>{t.looks}</td></tr>"
        f"<tr><th>{e(w['human_looks'])}</th><td>{t.human_looks}</td></tr>{kinds}"
        f"<tr><th>{e(w['open_looks'])}</th><td>{t.open_looks}</td></tr>"
        f"<tr><th>{e(w['seconds'])}</th><td>{t.seconds:.1f}</td></tr>"
        f"<tr><th>{e(w['video_seconds'])}</th><td>{t.video_seconds:.1f}</td></tr>"
        f"<tr><th>{e(w['events'])}</th><td>{t.events}</td></tr></table>"
    )
    period = f"{x.period.first.isoformat()} – {x.period.last.isoformat()}"
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<title>{e(w["title"])} – {e(x.recipient_id)}</title>
<style>
body{{font:11pt/1.4 system-ui,sans-serif;margin:2em}}
table{{border-collapse:collapse;margin:.5em 0}}
th,td{{border:1px solid #999;padding:.2em .5em;text-align:left;vertical-align:top}}
th{{background:#eee}} tr.look td:first-child{{white-space:nowrap}}
h2{{font-size:13pt;margin-top:1.2em}} @media print{{body{{margin:0}}}}
</style></head><body>
<h1>{e(w["title"])}</h1>
<p>{e(w["intro"])} <strong>{e(x.display_name)}</strong> ({e(x.recipient_id)}).</p>
<p>{e(w["period"])}: {e(period)}. {e(w["made"])}: {e(_local(x.generated_at, zone))}.</p>
<h2>{e(w["totals_h"])}</h2>
{totals}
<h2>{e(w["timeline_h"])} ({len(x.entries)}; {e(w["looks_h"].lower())}: {len(looks)})</h2>
{table}
<p><small>{e(w["footer"])}</small></p>
</body></html>
"""
