"""The handover (pure): each check lands in the one list the day staff act on, alarms only while
unacknowledged, hospital transfers first, nights noon to noon across DST, a printable page in
Swedish or English that shows no more than the JSON."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from supervision import checks as c
from supervision import handover as hv
from supervision.checks import Check, Policy, State

STHLM = ZoneInfo("Europe/Stockholm")
NIGHT = date(2025, 6, 10)
AT = datetime(2025, 6, 10, 20, 0, tzinfo=UTC)
MORNING = datetime(2025, 6, 11, 5, 0, tzinfo=UTC)
SEC = timedelta(seconds=1)


def check(n: int, state: State, *, reason: str | None = None, holder: str | None = None) -> Check:
    base = c.planned(
        check_id=f"20250610.2200.r{n}",
        recipient_id=f"r{n}",
        device_id=f"cam-{n}",
        night=NIGHT,
        agreed=time(22, 0),
        agreed_at=AT,
        window_start=AT - 900 * SEC,
        window_end=AT + 900 * SEC,
        policy=Policy(),
        at=AT - 3600 * SEC,
    )
    deadline = None if state in c.TERMINAL else AT + 600 * SEC
    return dataclasses.replace(
        base, state=state, reason=reason, holder=holder, deadline=deadline, since=AT
    )


def fact(n: int, state: State, **kw: object) -> hv.CheckFact:
    extra = {k: kw.pop(k) for k in ("assignee", "arrived_at", "patrol_outcome") if k in kw}
    return hv.CheckFact(check(n, state, **kw), **extra)  # type: ignore[arg-type]


def alarm(
    n: int, version: int, *, acknowledged: bool, repeat: int = 1, kind: str = "alarm"
) -> hv.AlarmFact:
    return hv.AlarmFact(
        check_id=f"20250610.2200.r{n}",
        recipient_id=f"r{n}",
        version=version,
        state="needs_view",
        deadline=AT,
        raised_at=AT + (version * 60 + repeat * 120) * SEC,
        acknowledged_at=AT + 3600 * SEC if acknowledged else None,
        acknowledged_by="staff-lead01" if acknowledged else None,
        kind=kind,
        repeat=repeat,
        addressed_to="shift_lead" if kind == "escalation" else "operator",
    )


FACTS = hv.Facts(
    night=NIGHT,
    checks=(
        fact(1, State.DOCUMENTED),
        fact(2, State.CLEARED),
        fact(3, State.PATROL, reason="not_home"),
        fact(4, State.PATROL_ACKED, reason="camera_dark", assignee="staff-bil1", arrived_at=AT),
        fact(5, State.ESCALATED, reason="visit_not_reported"),
        fact(6, State.VISITED, reason="no_consent", holder="staff-bil1", patrol_outcome="helped"),
        fact(7, State.VISITED, holder="staff-bil2", patrol_outcome="taken_to_hospital"),
        fact(8, State.DEVIATION, reason="unfinished_needs_view"),
        fact(9, State.NEEDS_VIEW, reason="motion_none", assignee="staff-op1"),
    ),
    alarms=(
        alarm(9, 3, acknowledged=False, repeat=2),
        alarm(9, 3, acknowledged=False),
        alarm(9, 3, acknowledged=False, kind="escalation"),
        alarm(8, 2, acknowledged=True),
        alarm(8, 2, acknowledged=True, repeat=2),
    ),
    suspensions=(hv.SuspensionFact("r3", "cam-3", "covered", AT + 60 * SEC, 2),),
    pauses=(hv.PauseFact("r2", AT - 86400 * SEC, None, "hospital", "hospital_stay"),),
)


def test_each_check_lands_in_the_list_the_day_staff_act_on() -> None:
    h = hv.build(FACTS, generated_at=MORNING)
    assert h["format"] == hv.FORMAT
    assert h["night"] == "2025-06-10"
    assert [t["recipient_id"] for t in h["open_patrol_tasks"]] == ["r3", "r4", "r5"]
    assert h["open_patrol_tasks"][1]["assignee"] == "staff-bil1"
    assert h["open_patrol_tasks"][1]["arrived_at"] == AT.isoformat()
    assert h["open_patrol_tasks"][0]["reason"] == "not_home"
    assert [(r["recipient_id"], r["outcome"]) for r in h["patrol_reports"]] == [
        ("r7", "taken_to_hospital"),  # the hospital transfer first
        ("r6", "helped"),
    ]
    assert h["patrol_reports"][1]["patrol"] == "staff-bil1"
    assert [x["recipient_id"] for x in h["open_checks"]] == ["r9"]
    assert [(x["recipient_id"], x["reason"]) for x in h["deviations"]] == [
        ("r8", "unfinished_needs_view")
    ]
    # one line per alarm and step: its repeats counted, the escalation to the lead on its own
    assert [
        (a["check_id"], a["version"], a["kind"], a["repeats"], a["addressed_to"])
        for a in h["alarms_not_acknowledged"]
    ] == [
        ("20250610.2200.r9", 3, "escalation", 1, "shift_lead"),
        ("20250610.2200.r9", 3, "alarm", 2, "operator"),
    ]
    assert h["counts"] == {
        "checks": 9,
        "open_patrol_tasks": 3,
        "patrol_reports": 2,
        "taken_to_hospital": 1,
        "open_checks": 1,
        "deviations": 1,
        "alarms_not_acknowledged": 2,
        "suspensions": 1,
        "pauses": 1,
    }
    # every check is in at most one list; the performed ones without a patrol in none
    listed = [
        x["check_id"]
        for key in ("open_patrol_tasks", "patrol_reports", "open_checks", "deviations")
        for x in h[key]
    ]
    assert len(listed) == len(set(listed)) == 7


def test_an_empty_night_hands_over_nothing() -> None:
    h = hv.build(hv.Facts(night=NIGHT, checks=()), generated_at=MORNING)
    assert set(h["counts"].values()) == {0}
    page = hv.render_html(h, zone=STHLM)
    assert page.count("Inga.") == 7


def test_generated_at_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        hv.build(FACTS, generated_at=datetime(2025, 6, 11, 7, 0))


@pytest.mark.parametrize(
    ("night", "hours"),
    [(date(2025, 6, 10), 24), (date(2025, 3, 29), 23), (date(2025, 10, 25), 25)],
)
def test_a_night_runs_noon_to_noon_local_across_dst(night: date, hours: int) -> None:
    start, end = hv.night_bounds(night, STHLM)
    assert start.astimezone(STHLM).time() == end.astimezone(STHLM).time() == time(12)
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=hours)


def test_the_page_is_swedish_english_or_finnish_with_local_times_and_escaped_text() -> None:
    odd = dataclasses.replace(
        FACTS, checks=(fact(1, State.PATROL, reason="<script>", assignee="staff-bil1"),)
    )
    h = hv.build(odd, generated_at=MORNING)
    sv = hv.render_html(h, zone=STHLM)
    assert '<html lang="sv">' in sv
    assert "Överlämning – natten 2025-06-10" in sv
    assert "Öppna patrulluppdrag (1)" in sv
    assert "Skapad 2025-06-11 07:00" in sv  # 05:00 UTC is 07:00 in Stockholm in June
    assert "<script>" not in sv
    assert "&lt;script&gt;" in sv
    en = hv.render_html(hv.build(FACTS, generated_at=MORNING), zone=STHLM, lang="en")
    assert "Open patrol tasks (3)" in en
    assert "taken to hospital" in en
    assert "not home" in en
    assert "shift lead" in en
    assert "eskalering" in hv.render_html(hv.build(FACTS, generated_at=MORNING), zone=STHLM)
    fi = hv.render_html(hv.build(FACTS, generated_at=MORNING), zone=STHLM, lang="fi")
    assert '<html lang="fi">' in fi
    assert "Raportti – yö 2025-06-10" in fi
    assert "Avoimet partiotehtävät (3)" in fi
    assert "sairaalaan" in fi
    assert "vuorovastaava" in fi
    assert all(hv._TEXT[lang].keys() == hv._TEXT["sv"].keys() for lang in hv.LANGUAGES)
    with pytest.raises(ValueError, match="lang"):
        hv.render_html(h, zone=STHLM, lang="de")
