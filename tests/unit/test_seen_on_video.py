"""An outcome ``ok`` rests on video delivered (issue 15): the pure rule in ``supervision.checks``.

"Seen" needs a view or a call of that operator for that check, in the check's current attempt,
whose device reported at least a second of video; every other outcome stays open to an operator
who saw nothing (``not_seen``, ``call``, ``patrol``, ``technical``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from supervision import checks as c
from supervision.checks import Look, Outcome, OutcomeKind, Refusal, State
from tests.unit.test_checks import ok, to_state

T0 = datetime(2025, 6, 10, 20, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def look(
    started_s: float,
    *,
    video_s: float | None,
    ended_s: float | None = None,
    purpose: str = "view",
) -> Look:
    return Look(
        session_id=f"s-{started_s:08.0f}",
        purpose=purpose,
        staff_id="op1",
        device_id="cam-1",
        recipient_id="r1",
        check_id="20250610.2200.r1",
        started_at=T0 + started_s * S,
        ended_at=None if ended_s is None else T0 + ended_s * S,
        video_s=video_s,
    )


@pytest.mark.parametrize(
    ("video_s", "seen"), [(0.0, False), (0.99, False), (c.MIN_SEEN_VIDEO_S, True), (25.0, True)]
)
def test_a_second_of_video_is_what_seen_needs(video_s: float, seen: bool) -> None:
    assert c.has_seen(video_s) is seen


def test_the_best_look_of_the_current_attempt_counts() -> None:
    looks = [
        look(0, video_s=20.0, ended_s=25),  # an earlier attempt that ended not_seen
        look(1000, video_s=0.4, ended_s=1010),  # opened, but the picture never really came
        look(1100, video_s=6.5, ended_s=1110),
        look(1200, video_s=None),  # open, not reported yet
    ]
    assert c.seen_video_s(looks, since=T0 + 900 * S) == 6.5
    assert c.seen_video_s(looks, since=T0) == 20.0
    assert c.seen_video_s([], since=T0) == 0.0
    assert c.seen_video_s(looks[3:], since=T0) == 0.0  # unreported is no video


def test_a_look_that_may_still_report_is_awaited_a_few_seconds() -> None:
    at = T0 + 1000 * S
    since = T0 + 500 * S
    wait = {"since": since, "at": at, "wait_s": 3.0}
    assert c.awaits_report([look(900, video_s=None)], **wait)  # still open
    assert c.awaits_report([look(900, video_s=None, ended_s=999)], **wait)  # just ended
    assert not c.awaits_report([look(900, video_s=None, ended_s=990)], **wait)  # never will
    assert not c.awaits_report([look(900, video_s=0.0, ended_s=999)], **wait)  # reported
    assert not c.awaits_report([look(100, video_s=None)], **wait)  # an earlier attempt
    assert not c.awaits_report([], **wait)


@pytest.mark.parametrize("state", [State.VIEWING, State.CALLING])
def test_ok_without_video_is_not_viewed_and_changes_nothing(state: State) -> None:
    chk, at = to_state(state)
    for video_s in (0.0, 0.99):
        result = c.apply(chk, Outcome("op1", OutcomeKind.OK, video_s=video_s), at=at)
        assert isinstance(result, c.Rejected)
        assert result.refusal is Refusal.NOT_VIEWED
        assert "not_viewed" in result.message
    done = ok(c.apply(chk, Outcome("op1", OutcomeKind.OK, video_s=1.0), at=at))
    assert (done.state, done.reason, done.holder) == (State.DOCUMENTED, "seen", "op1")


@pytest.mark.parametrize(
    ("kind", "reason", "to"),
    [
        (OutcomeKind.NOT_SEEN, None, State.RETRY_WAIT),
        (OutcomeKind.CALL, None, State.CALLING),
        (OutcomeKind.PATROL, "fallen", State.PATROL),
        (OutcomeKind.TECHNICAL, None, State.PATROL),
    ],
)
def test_an_operator_who_saw_nothing_may_still_document_everything_else(
    kind: OutcomeKind, reason: str | None, to: State
) -> None:
    chk, at = to_state(State.VIEWING)
    assert ok(c.apply(chk, Outcome("op1", kind, reason), at=at)).state is to


def test_a_looks_note_stays_out_of_its_repr() -> None:
    extra = Look(
        "s-extra-001",
        "view",
        "op1",
        "cam-1",
        "r1",
        None,
        T0,
        T0 + 20 * S,
        12.0,
        is_extra=True,
        reason="alarm",
        note="larmet gick 03:12",
    )
    assert "03:12" not in repr(extra)
    assert extra.delivered_s == 12.0
    assert look(0, video_s=None).delivered_s == 0.0
