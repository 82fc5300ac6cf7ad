"""The brukare's log extract, pure (issue 18, item 1): ordering, durations, totals, the period's
bounds, a look with no end yet, escaping, and the bad values refused."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from supervision import extract as ex
from supervision.errors import BadRequest

ZONE = ZoneInfo("Europe/Stockholm")
NOW = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)


def local(d: int, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 3, d, hh, mm, ss, tzinfo=ZONE)


def view(sid: str, at: datetime, open_s: float | None, **kw: object) -> ex.SessionRow:
    return ex.SessionRow(
        session_id=sid,
        purpose=str(kw.pop("purpose", "view")),
        staff_id=str(kw.pop("staff_id", "staff-oper01")),
        device_id="cam-r1",
        started_at=at,
        ended_at=None if open_s is None else at + timedelta(seconds=open_s),
        **kw,  # type: ignore[arg-type]
    )


CHECK = "20260314.2230.r-1"
FACTS = ex.Facts(
    recipient_id="r-1",
    display_name="Astrid <Andersson>",
    sessions=(
        view("s-3", local(15, 1, 5), 12.0, check_id=None, look="extra", reason="sound",
             note="Heard a <thud>", video_s=10.5),
        view("s-1", local(14, 22, 31, 10), 20.0, check_id=CHECK, look="check",
             check_agreed_at=local(14, 22, 30), video_s=18.5),
        view("s-2", local(14, 22, 30), 8.0, purpose="probe", staff_id="system", check_id=CHECK),
        view("s-4", local(15, 2, 0), 60.0, purpose="call", video_s=52.0),
        view("s-5", local(16, 0, 10), None, check_id="20260315.0010.r-1", look="check"),
        # outside the period: the day before, and the midnight after its last date
        view("s-0", local(13, 23, 59, 59), 5.0, check_id=None),
        view("s-9", local(17, 0, 0), 5.0, check_id=None),
    ),
    consents=(
        ex.ConsentRow("c-1", "camera_check", 1, "informed_consent", local(14, 10, 0),
                      local(14, 10, 0), None, "staff-admin01", local(15, 8, 0), "staff-admin01",
                      "changed her mind"),
    ),
    pauses=(
        ex.PauseRow("p-1", local(14, 22, 30), local(14, 23, 0), "phone", "visitor",
                    note="daughter visiting", created_by="staff-oper01", ended_by=None),
    ),
    bindings=(ex.BindingRow("b-1", "cam-r1", local(12, 9, 0), "staff-admin01",
                            local(16, 12, 0), "staff-admin01"),),
    suspensions=(ex.SuspensionRow("su-1", "cam-r1", "covered", local(15, 3, 0), 2),),
    names={"staff-oper01": "Olle Operatör", "staff-admin01": "Anna Handläggare"},
)  # fmt: skip


def extract() -> ex.Extract:
    p = ex.period(date(2026, 3, 14), date(2026, 3, 16), today=date(2026, 3, 16), zone=ZONE)
    return ex.build(FACTS, p, generated_at=NOW)


def test_everything_of_the_period_in_time_order() -> None:
    x = extract()
    order = [(e.session_id if isinstance(e, ex.LookEntry) else e.kind.value) for e in x.entries]
    assert order == [
        "consent_given",  # 14th 10:00
        "pause_started",  # 22:30:00, an event before a look at the same instant
        "s-2",  # the probe at 22:30:00
        "s-1",  # the view at 22:31:10
        "pause_ended",  # 23:00
        "s-3",  # 15th 01:05, the extra look
        "s-4",  # 02:00 the call
        "suspended",  # 03:00
        "consent_withdrawn",  # 08:00
        "s-5",  # 16th 00:10, still open
        "device_unbound",  # 12:00; bound on the 12th: before the period
    ]


def test_looks_name_staff_check_duration_and_video() -> None:
    by = {x.session_id: x for x in extract().looks}
    v = by["s-1"]
    assert (v.kind, v.staff_id, v.staff_name) == (ex.LookKind.CHECK_VIEW, "staff-oper01",
                                                  "Olle Operatör")  # fmt: skip
    assert (v.check_id, v.check_agreed_at, v.duration_s, v.video_s) == (
        CHECK, local(14, 22, 30), 20.0, 18.5)  # fmt: skip
    assert by["s-2"].kind is ex.LookKind.PROBE
    assert by["s-2"].staff_name == "system"
    assert by["s-3"].kind is ex.LookKind.EXTRA_LOOK
    assert (by["s-3"].reason, by["s-3"].note) == ("sound", "Heard a <thud>")
    assert by["s-4"].kind is ex.LookKind.CALL
    assert by["s-4"].duration_s == 60.0
    assert by["s-5"].ended_at is None
    assert by["s-5"].duration_s is None


def test_totals() -> None:
    t = extract().totals
    assert t.looks == 5
    assert t.human_looks == 4
    assert t.open_looks == 1
    assert t.by_kind == {"check_view": 2, "extra_look": 1, "probe": 1, "call": 1}
    assert t.seconds == 20.0 + 8.0 + 12.0 + 60.0  # the open look adds nothing
    assert t.video_seconds == 18.5 + 10.5 + 52.0
    assert t.events == 6


def test_the_period_is_local_and_half_open() -> None:
    p = ex.period(date(2026, 3, 14), date(2026, 3, 16), today=date(2026, 4, 1), zone=ZONE)
    assert p.start == datetime(2026, 3, 13, 23, 0, tzinfo=UTC)  # CET midnight
    assert p.holds(p.start)
    assert not p.holds(p.end)
    assert not p.holds(p.start - timedelta(microseconds=1))
    # across the spring DST change the end is still local midnight
    summer = ex.period(date(2026, 3, 29), date(2026, 3, 29), today=date(2026, 4, 1), zone=ZONE)
    assert summer.end - summer.start == timedelta(hours=23)
    # defaults: up to today, a year back
    d = ex.period(None, None, today=date(2026, 3, 16), zone=ZONE)
    assert (d.first, d.last) == (date(2025, 3, 16), date(2026, 3, 16))
    assert ex.period(None, date(2026, 1, 1), today=date(2026, 3, 16), zone=ZONE).first == date(
        2025, 1, 1
    )


@pytest.mark.parametrize("text", ["2026-3-1", "2026-02-30", "yesterday", "", "2026-03-01T00"])
def test_bad_dates_are_refused(text: str) -> None:
    with pytest.raises(BadRequest) as e:
        ex.parse_date(text, "from")
    assert (e.value.code, e.value.field, e.value.http_status) == ("bad_date", "from", 422)


def test_from_after_to_and_bad_choices_are_refused() -> None:
    with pytest.raises(BadRequest) as e:
        ex.period(date(2026, 3, 2), date(2026, 3, 1), today=date(2026, 3, 16), zone=ZONE)
    assert (e.value.code, e.value.field) == ("bad_period", "from")
    with pytest.raises(BadRequest) as e:
        ex.choose("pdf", ex.FORMATS, "format")
    assert (e.value.code, e.value.field) == ("bad_value", "format")
    assert ex.choose(None, ex.LANGUAGES, "lang") == "sv"


def test_json_is_plain_and_complete() -> None:
    doc = ex.to_json(extract())
    assert json.loads(json.dumps(doc)) == doc
    assert doc["format"] == ex.FORMAT
    assert doc["period"]["from"] == "2026-03-14"
    assert doc["period"]["to"] == "2026-03-16"
    looks = [e for e in doc["entries"] if e["type"] == "look"]
    first = next(e for e in looks if e["session_id"] == "s-1")
    assert first["staff_name"] == "Olle Operatör"
    assert first["duration_s"] == 20.0
    assert first["check_id"] == CHECK
    assert first["check_agreed_at"].startswith("2026-03-14T22:30")
    assert next(e for e in looks if e["session_id"] == "s-5")["duration_s"] is None
    withdrawn = next(e for e in doc["entries"] if e["kind"] == "consent_withdrawn")
    assert withdrawn["by_name"] == "Anna Handläggare"
    assert withdrawn["purpose"] == "camera_check"


def test_the_page_shows_who_when_how_long_and_why_escaped() -> None:
    page = ex.render_html(extract(), zone=ZONE, lang="sv")
    assert "<script" not in page
    assert "Astrid &lt;Andersson&gt;" in page
    assert "<Andersson>" not in page
    assert "Heard a &lt;thud&gt;" in page
    row = next(r for r in page.split("<tr") if "2026-03-14 22:31:10" in r)
    assert "Olle Operatör (staff-oper01)" in row
    assert CHECK in row
    assert "planerad 22:30" in row
    assert "<td>20.0</td>" in row
    assert "<td>18.5</td>" in row
    assert "Tittning för tillsyn" in row
    assert "pågår" in page  # the look with no end
    en = ex.render_html(extract(), zone=ZONE, lang="en")
    assert "Log extract" in en
    assert "View for a check" in en
    assert "agreed 22:30" in en
    fi = ex.render_html(extract(), zone=ZONE, lang="fi")
    assert '<html lang="fi">' in fi
    assert "Rekisteriote: kameravalvonta" in fi
    assert "Valvontaan kuuluva katselu" in fi
    assert "sovittu 22:30" in fi
    assert all(ex._TEXT[lang].keys() == ex._TEXT["sv"].keys() for lang in ex.LANGUAGES)
    with pytest.raises(ValueError, match="lang"):
        ex.render_html(extract(), zone=ZONE, lang="de")


def test_an_empty_period_says_so() -> None:
    p = ex.period(date(2020, 1, 1), date(2020, 1, 2), today=date(2026, 3, 16), zone=ZONE)
    x = ex.build(FACTS, p, generated_at=NOW)
    assert x.entries == ()
    assert x.totals.looks == 0
    assert x.totals.seconds == 0
    assert "Inget under perioden." in ex.render_html(x, zone=ZONE)
