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
            (Outcome("op1", OutcomeKind.OK), 85),
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
    r = report.build(NIGHT, checks, f1 + f2 + f3 + f4 + f5 + f6 + f7 + f8 + f9, generated_at=at)

    t = r["totals"]
    assert (t["planned"], t["performed"], t["cleared"], t["open"]) == (6, 3, 1, 0)
    assert (t["escalated"], t["deviations"]) == (0, 3)  # nobody took lost's or dark's visit
    assert t["cleared_share"] == round(1 / 6, 4)
    assert t["cleared_share_of_seen"] == 0.5  # one cleared, one documented
    assert t["views"] == 2
    assert t["view_seconds"] == 25.0 + 30.0
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
    assert ops["op2"]["view_seconds"] == 30.0
    assert (ops["patrol1"]["patrol_acknowledged"], ops["patrol1"]["patrol_visited"]) == (1, 1)

    page = report.render_html(r)
    assert page.startswith("<!doctype html>")
    assert "Nattrapport" in page
    assert "camera_dark" in page
    text = report.render_text(r)
    assert "6 planned, 3 performed (1 cleared without a human" in text


def test_an_empty_night_reports_zeros() -> None:
    at = datetime(2025, 6, 11, 13, 0, tzinfo=STHLM)
    r = report.build(NIGHT, [], [], generated_at=at)
    assert r["totals"]["planned"] == 0
    assert r["totals"]["cleared_share"] == 0.0
    assert r["recipients"] == []
    assert r["operators"] == []
    assert "Nattrapport" in report.render_html(r)
