"""The morning report (pure): built from the checks and the transitions the state machine made."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from supervision import checks as c
from supervision import report
from supervision.checks import (
    Check,
    Claim,
    DeviceLost,
    Look,
    Open,
    Outcome,
    OutcomeKind,
    PatrolAcknowledged,
    PatrolVisited,
    Policy,
    ProbeDone,
    Reconcile,
    State,
    Transition,
    ViewOpened,
)

STHLM = ZoneInfo("Europe/Stockholm")
NIGHT = date(2025, 6, 10)
SEC = timedelta(seconds=1)


@dataclass(frozen=True)
class Fact:
    check_id: str
    at: datetime
    from_state: State
    to_state: State
    event: str
    actor: str
    reason: str | None


def planned(rid: str, *, may_clear: bool = True) -> Check:
    at = datetime(2025, 6, 10, 22, 0, tzinfo=STHLM)
    return c.planned(
        check_id=f"20250610.2200.{rid}",
        recipient_id=rid,
        device_id=f"cam-{rid}",
        night=NIGHT,
        agreed=time(22, 0),
        agreed_at=at,
        window_start=at - timedelta(minutes=15),
        window_end=at + timedelta(minutes=15),
        policy=Policy(may_clear_without_human=may_clear),
        at=at - timedelta(hours=4),
    )


def run(check: Check, steps: list[tuple[c.Event, int]]) -> tuple[Check, list[Fact]]:
    """Apply ``(event, seconds after the window start)`` in turn; the facts as the store keeps."""
    facts = []
    for event, s in steps:
        at = check.window_start + timedelta(seconds=s)
        tr = c.apply(check, event, at=at)
        assert isinstance(tr, Transition), tr
        check = tr.check
        facts.append(
            Fact(
                check.check_id,
                at,
                tr.before,
                check.state,
                c.event_name(event),
                c.actor_of(event),
                check.reason,
            )
        )
    return check, facts


def test_the_report_accounts_for_every_check_views_and_operators() -> None:
    cleared, f1 = run(
        planned("a"), [(Open(), 0), (Claim("w1"), 1), (ProbeDone("activity", False), 9)]
    )
    seen, f2 = run(
        planned("b", may_clear=False),
        [
            (Open(), 0),
            (Claim("w1"), 1),
            (ProbeDone("still", True), 9),
            (ViewOpened("op1"), 60),
            (Outcome("op1", OutcomeKind.OK, video_s=24.0), 85),
        ],
    )
    fallen, f3 = run(
        planned("c"),
        [
            (Open(), 0),
            (Claim("w2"), 1),
            (ProbeDone("empty", True), 9),
            (ViewOpened("op2"), 40),
            (Outcome("op2", OutcomeKind.PATROL, "fallen"), 70),
            (PatrolAcknowledged("patrol1"), 200),
            (PatrolVisited("patrol1"), 1400),
        ],
    )
    dark, f4 = run(planned("d"), [(Open(), 0), (Claim("w2"), 1), (ProbeDone("dark", True), 9)])
    lost, f5 = run(planned("e"), [(DeviceLost("device_offline"), -600)])
    forgotten, f6 = run(
        planned("f"), [(Open(), 0), (Claim("w1"), 1), (ProbeDone("still", True), 9)]
    )
    forgotten, f7 = run(forgotten, [(Reconcile(), 50000)])
    dark, f8 = run(dark, [(Reconcile(), 50000)])
    lost, f9 = run(lost, [(Reconcile(), 50000)])
    checks = [cleared, seen, fallen, dark, lost, forgotten]
    at = datetime(2025, 6, 11, 13, 0, tzinfo=STHLM)
    looks = [  # what signalling stored: b's view delivered 24 s, c's 29.5 s
        look(seen, "op1", 60, open_s=25, video_s=24.0),
        look(fallen, "op2", 40, open_s=30, video_s=29.5),
    ]
    r = report.build(
        NIGHT,
        checks,
        f1 + f2 + f3 + f4 + f5 + f6 + f7 + f8 + f9,
        generated_at=at,
        looks=looks,
    )

    t = r["totals"]
    assert (t["planned"], t["performed"], t["cleared"], t["open"]) == (6, 3, 1, 0)
    assert (t["escalated"], t["deviations"]) == (0, 3)  # nobody took lost's or dark's visit
    assert t["cleared_share"] == round(1 / 6, 4)
    assert t["cleared_share_of_seen"] == 0.5  # one cleared, one documented
    assert t["views"] == 2
    assert t["view_seconds"] == 24.0 + 29.5  # delivered, from the sessions
    assert t["patrol_tasks"] == 3  # fallen, dark, lost
    assert t["device_problems"] == 2  # dark camera, camera offline
    by = {x["recipient_id"]: x for x in r["recipients"]}
    assert by["c"]["escalations"][0]["reason"] == "fallen"
    assert [d["reason"] for d in by["d"]["device_problems"]] == ["camera_dark"]
    assert [d["reason"] for d in by["f"]["deviation_list"]] == ["unfinished_needs_view"]
    assert by["b"]["views"][0]["operator"] == "op1"
    ops = {o["staff_id"]: o for o in r["operators"]}
    assert ops["op1"]["outcomes"] == {"ok": 1}
    assert ops["op2"]["outcomes"] == {"patrol": 1}
    assert ops["op2"]["view_seconds"] == 29.5
    assert (ops["patrol1"]["patrol_acknowledged"], ops["patrol1"]["patrol_visited"]) == (1, 1)

    page = report.render_html(r)
    assert page.startswith("<!doctype html>")
    assert "Nattrapport" in page
    assert "camera_dark" in page
    text = report.render_text(r)
    assert "6 planned, 3 performed (1 cleared without a human" in text


def look(
    check: Check | None,
    staff_id: str,
    s: float,
    *,
    open_s: float,
    video_s: float | None,
    purpose: str = "view",
    extra: tuple[str, str] | None = None,
) -> Look:
    """A stored look ``s`` seconds after 22:00 (or after the check's window start)."""
    start = (check.window_start if check else datetime(2025, 6, 10, 22, 0, tzinfo=STHLM)) + (
        s * SEC
    )
    return Look(
        session_id=f"s-{staff_id}-{int(s):06d}",
        purpose=purpose,
        staff_id=staff_id,
        device_id=check.device_id or "cam-x" if check else "cam-x",
        recipient_id=check.recipient_id if check else "x",
        check_id=check.check_id if check and not extra else None,
        started_at=start,
        ended_at=start + open_s * SEC,
        video_s=video_s,
        is_extra=extra is not None,
        reason=extra[0] if extra else None,
        note=extra[1] if extra else None,
    )


def test_views_calls_and_extra_looks_come_from_the_sessions() -> None:
    seen, facts = run(
        planned("b", may_clear=False),
        [
            (Open(), 0),
            (Claim("w1"), 1),
            (ProbeDone("still", True), 9),
            (ViewOpened("op1"), 60),
            (Outcome("op1", OutcomeKind.OK, video_s=9.0), 85),
        ],
    )
    looks = [
        look(seen, "op1", 60, open_s=3, video_s=None),  # the camera never reported: 0 s
        look(seen, "op1", 70, open_s=10, video_s=9.0),
        look(None, "op2", 3600, open_s=30, video_s=27.5, extra=("alarm", "larmet gick")),
        look(None, "op2", 7200, open_s=120, video_s=110.0, purpose="call"),
    ]
    at = datetime(2025, 6, 11, 13, 0, tzinfo=STHLM)
    r = report.build(NIGHT, [seen], facts, generated_at=at, looks=looks)
    t = r["totals"]
    assert (t["views"], t["extra_looks"], t["calls"]) == (3, 1, 1)
    assert t["view_seconds"] == sum(x.delivered_s for x in looks if x.purpose == "view")
    assert t["call_seconds"] == 110.0
    assert t["deviations"] == 0  # checks only; the extra look is listed as its own deviation
    by = {x["recipient_id"]: x for x in r["recipients"]}
    assert by["b"]["checks"] == [
        {
            "check_id": seen.check_id,
            "agreed": "22:00",
            "state": "documented",
            "views": 2,
            "calls": 0,
            "seconds": 9.0,
        }
    ]
    assert [v["reported"] for v in by["b"]["views"]] == [False, True]
    (extra,) = r["extra_looks"]
    assert (extra["operator"], extra["reason"], extra["note"], extra["open_s"]) == (
        "op2",
        "alarm",
        "larmet gick",
        30.0,
    )
    assert by["x"]["deviation_list"] == [{"kind": "extra_look", **extra}]
    ops = {o["staff_id"]: o for o in r["operators"]}
    assert (ops["op2"]["views"], ops["op2"]["extra_looks"], ops["op2"]["calls"]) == (1, 1, 1)
    assert "larmet gick" in report.render_html(r)
    assert "extra look" in report.render_text(r)


def test_an_empty_night_reports_zeros() -> None:
    at = datetime(2025, 6, 11, 13, 0, tzinfo=STHLM)
    r = report.build(NIGHT, [], [], generated_at=at)
    assert r["totals"]["planned"] == 0
    assert r["totals"]["cleared_share"] == 0.0
    assert r["recipients"] == []
    assert r["operators"] == []
    assert "Nattrapport" in report.render_html(r)
