"""The signalling session machine and its interpreter, without PostgreSQL, Mosquitto or aiortc.

Each table fails when its rule breaks: the view cap, the extension limit, the withdrawal
teardown, the drive lockout, the ring timeout, the purpose <-> device kind rule, the view budget
shared across re-opens, and the offer's media against the purpose (with SDP as aiortc writes it).
The last part runs :class:`services.signalling.service.Signalling` on the fakes of
:mod:`services.signalling.fakes` with a clock that only moves when the test says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import structlog

from consent.model import Decision, Reason
from consent.model import Purpose as GP
from devices import envelope as env
from devices.topics import CommandOp, DeviceKind, EventType
from kernel.roles import Principal, Role
from services.signalling import decide as d
from services.signalling import machine as m
from services.signalling import sdp
from services.signalling.fakes import (
    FakeBus,
    FakeChecks,
    FakeClock,
    FakeCommands,
    FakeGate,
    FakePresence,
    FakeSessionStore,
)
from services.signalling.ports import SignallingConfig
from services.signalling.service import Signalling
from services.signalling.session import ClientConnection
from services.signalling.store import SessionRow
from supervision.checks import State as CheckState

T0 = datetime(2026, 1, 15, 21, 0, tzinfo=UTC)
S = timedelta(seconds=1)
TERMS = m.Terms(
    default_cap_s=30, ring_timeout_s=30, max_call_s=3600, max_extensions=2, stale_video_s=1.0
)

# --------------------------------------------------------------------------- SDP samples
# Offers as aiortc 1.x writes them (``homecare view``, the probe, a call from ``View``), cut to
# the lines that matter here; the fingerprints, ICE credentials and codecs are kept short.

_SESSION = "v=0\r\no=- 4005549681 4005549681 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"


def _section(kind: str, mid: int, direction: str | None, *, mux: bool = True) -> str:
    lines = [
        f"m={kind} 36952 UDP/TLS/RTP/SAVPF 97 98",
        "c=IN IP4 192.0.2.2",
        *([f"a={direction}"] if direction else []),
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
        f"a=mid:{mid}",
        "a=rtcp:9 IN IP4 0.0.0.0",
        *(["a=rtcp-mux"] if mux else []),
        "a=rtpmap:97 VP8/90000" if kind == "video" else "a=rtpmap:97 opus/48000/2",
        "a=candidate:f957a2332b1715da3b0ef8ba684454eb 1 udp 2130706431 192.0.2.2 36952 typ host",
        "a=end-of-candidates",
        "a=ice-ufrag:obfX",
        "a=ice-pwd:HJn80O0EdjkyvvElL0LQwo",
        "a=fingerprint:sha-256 25:04:66:E9:4E:54:8E:A2:5D:B1:8C:05:B4:6B:DB:3F",
        "a=setup:actpass",
    ]
    return "\r\n".join(lines) + "\r\n"


def offer_sdp(*sections: tuple[str, str | None], bundle: bool = True, mux: bool = True) -> str:
    mids = " ".join(str(i) for i in range(len(sections)))
    head = _SESSION + (f"a=group:BUNDLE {mids}\r\n" if bundle else "") + "a=msid-semantic:WMS *\r\n"
    body = "".join(_section(k, i, d, mux=mux) for i, (k, d) in enumerate(sections))
    return env.check_sdp(head + body)  # syntax as the envelope codec accepts it


VIEW_OFFER = offer_sdp(("video", "recvonly"))
CALL_OFFER = offer_sdp(("video", "sendrecv"), ("audio", "sendrecv"))


@pytest.mark.parametrize(
    ("purpose", "sdp_text", "problem"),
    [
        (env.Purpose.VIEW, VIEW_OFFER, None),
        (env.Purpose.PROBE, VIEW_OFFER, None),
        (env.Purpose.CALL, CALL_OFFER, None),
        # the console's call without a camera: receives both
        (env.Purpose.CALL, offer_sdp(("video", "recvonly"), ("audio", "recvonly")), None),
        # finding 3: a view that would listen
        (
            env.Purpose.VIEW,
            offer_sdp(("video", "recvonly"), ("audio", "recvonly")),
            sdp.OfferProblem.MEDIA_NOT_ALLOWED,
        ),
        (env.Purpose.PROBE, offer_sdp(("audio", "recvonly")), sdp.OfferProblem.MEDIA_NOT_ALLOWED),
        (env.Purpose.VIEW, offer_sdp(("video", "sendrecv")), sdp.OfferProblem.NOT_RECEIVE_ONLY),
        (env.Purpose.VIEW, offer_sdp(("video", "sendonly")), sdp.OfferProblem.NOT_RECEIVE_ONLY),
        (env.Purpose.VIEW, CALL_OFFER, sdp.OfferProblem.MEDIA_NOT_ALLOWED),
        # finding 2: what the devices rely on
        (
            env.Purpose.VIEW,
            offer_sdp(("video", "recvonly"), mux=False),
            sdp.OfferProblem.NO_RTCP_MUX,
        ),
        (
            env.Purpose.CALL,
            offer_sdp(("video", "sendrecv"), mux=False),
            sdp.OfferProblem.NO_RTCP_MUX,
        ),
        (
            env.Purpose.VIEW,
            offer_sdp(("video", "recvonly"), bundle=False),
            sdp.OfferProblem.NO_BUNDLE,
        ),
        (env.Purpose.VIEW, offer_sdp(("video", None)), sdp.OfferProblem.NO_DIRECTION),
        (
            env.Purpose.VIEW,
            offer_sdp(("video", "recvonly")).replace("a=recvonly", "a=recvonly\r\na=sendrecv"),
            sdp.OfferProblem.NO_DIRECTION,
        ),
        (env.Purpose.CALL, offer_sdp(("application", "sendrecv")), sdp.OfferProblem.UNKNOWN_MEDIA),
        (env.Purpose.CALL, offer_sdp(("audio", "sendrecv")), sdp.OfferProblem.NO_VIDEO),
        (env.Purpose.VIEW, _SESSION, sdp.OfferProblem.NO_MEDIA),
    ],
)
def test_offer_media_against_purpose(
    purpose: env.Purpose, sdp_text: str, problem: sdp.OfferProblem | None
) -> None:
    assert sdp.check_offer(purpose, sdp_text) is problem


def test_a_session_level_direction_counts_for_every_section() -> None:
    text = VIEW_OFFER.replace("a=recvonly\r\n", "").replace("t=0 0\r\n", "t=0 0\r\na=recvonly\r\n")
    assert sdp.check_offer(env.Purpose.VIEW, text) is None


# --------------------------------------------------------------------------- requests


def allow(cap_s: int = 30) -> Decision:
    return Decision(True, None, "rec-0001", "plan-0001", cap_s, T0 - 600 * S, T0 + 600 * S)


def deny(reason: Reason) -> Decision:
    return Decision.deny(reason, "rec-0001")


def facts(
    purpose: env.Purpose = env.Purpose.VIEW,
    *,
    role: Role = Role.OPERATOR,
    online: bool = True,
    kind: DeviceKind | None = DeviceKind.CAMERA,
    decisions: dict[GP, Decision] | None = None,
    used_s: float = 0.0,
    extensions: int = 0,
    auto_answer: bool = False,
    check: d.CheckFacts | None = None,
    check_id: str | None = "20260115.2200.rec-0001",
    extra: str | None = None,
    on_duty: bool = True,
    staff_id: str = "staff-op0001",
    found: bool = True,
    teams: frozenset[str] | None = None,
    team_id: str | None = "team-north",
) -> d.RequestFacts:
    """A request's facts; a view by default names a check queued for this camera, its earlier
    sessions having spent ``used_s`` and ``extensions``."""
    if decisions is None:
        decisions = {p: allow() for p in d.GATE_PURPOSES[purpose]}
    if check is None and check_id is not None and found:
        check = d.CheckFacts(
            CheckState.NEEDS_VIEW,
            "cam-0001",
            None,
            30.0,
            "rec-0001",
            d.CheckUse(used_s, extensions),
        )
    return d.RequestFacts(
        purpose,
        role,
        online,
        kind,
        decisions,
        auto_answer=auto_answer,
        device_id="cam-0001",
        staff_id=staff_id,
        check_id=check_id,
        check=check,
        extra_reason=extra,
        is_on_duty=on_duty,
        teams=teams,
        team_id=team_id,
    )


NORTH = frozenset({"team-north"})
SOUTH = frozenset({"team-south"})


def held(
    state: CheckState,
    holder: str | None,
    device_id: str = "cam-0001",
    *,
    cap_s: float = 30.0,
    used_s: float = 0.0,
) -> d.CheckFacts:
    return d.CheckFacts(state, device_id, holder, cap_s, "rec-0001", d.CheckUse(used_s, 0))


PHONE = DeviceKind.VIDEO_PHONE
CALL_OK = {GP.VIDEO_CALL: allow(), GP.CAMERA_CHECK: allow()}


@pytest.mark.parametrize(
    ("request_facts", "reason"),
    [
        (facts(env.Purpose.PROBE), "forbidden"),
        (facts(role=Role.TECHNICIAN), "forbidden"),
        (facts(online=False), "device_offline"),
        (facts(kind=None), "device_kind_unknown"),
        # finding 3: a view (or probe) of a video phone; no plan says it may be looked at
        (facts(kind=PHONE), "wrong_device_kind"),
        (facts(env.Purpose.PROBE, role=Role.SYSTEM, kind=PHONE), "wrong_device_kind"),
        # finding 4: a call to a camera
        (facts(env.Purpose.CALL, kind=DeviceKind.CAMERA, decisions=CALL_OK), "wrong_device_kind"),
        # finding 4: a call's video needs the camera check's basis (cohabitants, pause, window)
        (
            facts(
                env.Purpose.CALL,
                kind=PHONE,
                decisions={
                    GP.VIDEO_CALL: allow(),
                    GP.CAMERA_CHECK: deny(Reason.COHABITANT_MISSING),
                },
            ),
            "cohabitant_missing",
        ),
        (
            facts(
                env.Purpose.CALL,
                kind=PHONE,
                decisions={GP.VIDEO_CALL: allow(), GP.CAMERA_CHECK: deny(Reason.PAUSED)},
            ),
            "paused",
        ),
        (
            facts(
                env.Purpose.CALL,
                kind=PHONE,
                decisions={GP.VIDEO_CALL: allow(), GP.CAMERA_CHECK: deny(Reason.OUTSIDE_WINDOW)},
            ),
            "outside_window",
        ),
        (facts(env.Purpose.CALL, kind=PHONE, decisions={GP.VIDEO_CALL: allow()}), "no_consent"),
        (facts(decisions={GP.CAMERA_CHECK: deny(Reason.WITHDRAWN)}), "withdrawn"),
        # finding 5: the check's budget is spent by its earlier views (re-opens)
        (facts(used_s=30.0), "budget_spent"),
        (facts(used_s=29.5), "budget_spent"),
        (facts(used_s=95.0, extensions=2), "budget_spent"),
        (facts(check=held(CheckState.VIEWING, "staff-op0001", used_s=30.0)), "budget_spent"),
        # issue 15: a view is owed to a check due now, or is an extra look with a reason
        (facts(check_id=None), "no_due_check"),
        (facts(check_id="20260115.2200.rec-0009", found=False), "no_due_check"),  # no such check
        (facts(check=held(CheckState.NEEDS_VIEW, None, "cam-0002")), "no_due_check"),
        (facts(check=held(CheckState.VIEWING, "staff-op0002")), "no_due_check"),  # another's
        (facts(check=held(CheckState.PROBING, "worker-1")), "no_due_check"),
        (facts(check=held(CheckState.DOCUMENTED, None)), "no_due_check"),
        (facts(check=held(CheckState.CALLING, "staff-op0001")), "no_due_check"),
        (facts(check=held(CheckState.PLANNED, None)), "no_due_check"),
        (facts(on_duty=False), "not_on_duty"),
        (facts(check_id=None, extra="alarm", on_duty=False), "not_on_duty"),
        # the look is checked before the gate, the gate before the budget
        (
            facts(check_id=None, decisions={GP.CAMERA_CHECK: deny(Reason.OUTSIDE_WINDOW)}),
            "no_due_check",
        ),
        (
            facts(check_id=None, extra="alarm", decisions={GP.CAMERA_CHECK: deny(Reason.PAUSED)}),
            "paused",
        ),
        # issue 17: the device's brukare is of a team the caller does not cover; said before
        # anything else about that home (offline, the look, the gate, the budget)
        (facts(teams=SOUTH), "not_your_team"),
        (facts(teams=frozenset()), "not_your_team"),
        (facts(env.Purpose.CALL, kind=PHONE, decisions=CALL_OK, teams=SOUTH), "not_your_team"),
        (facts(teams=SOUTH, online=False), "not_your_team"),
        (facts(teams=SOUTH, on_duty=False, used_s=30.0), "not_your_team"),
        (
            facts(teams=SOUTH, decisions={GP.CAMERA_CHECK: deny(Reason.PAUSED)}),
            "not_your_team",
        ),
        (facts(teams=SOUTH, role=Role.TECHNICIAN), "forbidden"),  # the role first
        # bound to nobody the caller can see: the gate says so, not the team rule
        (
            facts(
                teams=SOUTH,
                team_id=None,
                decisions={GP.CAMERA_CHECK: deny(Reason.DEVICE_NOT_BOUND)},
            ),
            "device_not_bound",
        ),
    ],
)
def test_requests_denied(request_facts: d.RequestFacts, reason: str) -> None:
    outcome = d.decide_request(request_facts, T0, TERMS)
    assert isinstance(outcome, d.Deny)
    assert outcome.reason == reason


@pytest.mark.parametrize(
    ("request_facts", "state", "seconds"),
    [
        (facts(), m.State.GRANTED, 30),
        (facts(used_s=10.0), m.State.GRANTED, 20),  # re-opened: continues the check's budget
        (facts(used_s=40.0, extensions=1), m.State.GRANTED, 20),  # cap plus the extension taken
        # a re-open by the operator holding the check, with what is left of its budget
        (facts(check=held(CheckState.VIEWING, "staff-op0001", used_s=12.0)), m.State.GRANTED, 18),
        (facts(check=held(CheckState.NEEDS_VIEW, None, cap_s=20.0)), m.State.GRANTED, 20),
        (facts(check_id=None, extra="alarm"), m.State.GRANTED, 30),  # an extra look: the cap
        (facts(teams=NORTH | SOUTH), m.State.GRANTED, 30),  # one of the caller's teams
        (facts(teams=None, team_id="team-south"), m.State.GRANTED, 30),  # the system: any
        (facts(env.Purpose.PROBE, role=Role.SYSTEM, used_s=30.0), m.State.GRANTED, 30),
        (
            facts(env.Purpose.CALL, kind=PHONE, decisions=CALL_OK, check_id=None),
            m.State.RINGING,
            30,
        ),
    ],
)
def test_requests_granted(request_facts: d.RequestFacts, state: m.State, seconds: float) -> None:
    outcome = d.decide_request(request_facts, T0, TERMS)
    assert isinstance(outcome, d.Grant)
    assert outcome.state is state
    assert outcome.deadline == T0 + seconds * S


def test_a_check_view_and_an_extra_look_are_told_apart() -> None:
    check = d.decide_request(facts(), T0, TERMS)
    extra = d.decide_request(facts(check_id=None, extra="concern_reported"), T0, TERMS)
    probe = d.decide_request(facts(env.Purpose.PROBE, role=Role.SYSTEM, check_id=None), T0, TERMS)
    assert isinstance(check, d.Grant)
    assert isinstance(extra, d.Grant)
    assert isinstance(probe, d.Grant)
    assert (check.look, check.check_id, check.max_extensions) == (
        d.Look.CHECK,
        "20260115.2200.rec-0001",
        TERMS.max_extensions,
    )
    assert (extra.look, extra.check_id, extra.max_extensions) == (d.Look.EXTRA, None, 0)
    assert probe.look is None  # a probe is no human look


@pytest.mark.parametrize("found", [True, False])
def test_a_probe_records_the_check_it_serves_without_the_operators_rule(found: bool) -> None:
    """The round worker's probe names the check it holds (``probing``): recorded on the
    session, not judged by the due-check rule of an operator's view (no queue, no duty)."""
    probe = d.decide_request(
        facts(env.Purpose.PROBE, role=Role.SYSTEM, staff_id="system", on_duty=False, found=found),
        T0,
        TERMS,
    )
    assert isinstance(probe, d.Grant)
    assert (probe.check_id, probe.look) == ("20260115.2200.rec-0001", None)


def test_an_extra_look_has_no_extension() -> None:
    grant = d.decide_request(facts(check_id=None, extra="alarm"), T0, TERMS)
    assert isinstance(grant, d.Grant)
    s = m.open_session(
        grant,
        session_id="s-extra-001",
        device_id="cam-0001",
        purpose=env.Purpose.VIEW,
        staff_id="staff-op0001",
        now=T0,
    )
    after, effects = m.apply(s, m.ClientExtend(env.ExtendReason.UNCLEAR_IMAGE, allow()), T0, TERMS)
    assert after == s
    assert effects == (m.Refuse("not_extendable", "an extra look is capped at the plan's cap"),)


def test_a_check_s_extensions_count_across_its_re_opens() -> None:
    """The limit is the check's: extensions taken in earlier sessions of it count."""
    grant = d.decide_request(facts(used_s=35.0, extensions=1), T0, TERMS)
    assert isinstance(grant, d.Grant)
    assert grant.deadline == T0 + 25 * S
    s = m.open_session(
        grant,
        session_id="s-again-01",
        device_id="cam-0001",
        purpose=env.Purpose.VIEW,
        staff_id="staff-op0001",
        now=T0,
    )
    extend = m.ClientExtend(env.ExtendReason.UNCLEAR_IMAGE, allow())
    s, effects = m.apply(s, extend, T0, TERMS)
    assert s.extensions == 1  # the second of TERMS' two
    _, effects = m.apply(s, extend, T0, TERMS)
    assert effects == (m.Refuse("extension_limit", "no more extensions for this view"),)


def test_budget_is_one_function_of_cap_and_use() -> None:
    assert d.view_budget_s(30, d.NO_USE) == 30
    assert d.view_budget_s(30, d.CheckUse(12.5, 0)) == 17.5
    assert d.view_budget_s(30, d.CheckUse(45, 1)) == 15
    assert d.view_budget_s(30, d.CheckUse(31, 0)) < 0


def test_auto_answer_is_carried_into_the_call() -> None:
    outcome = d.decide_request(
        facts(env.Purpose.CALL, kind=PHONE, decisions=CALL_OK, auto_answer=True, check_id=None),
        T0,
        TERMS,
    )
    assert isinstance(outcome, d.Grant)
    assert outcome.auto_answer


# --------------------------------------------------------------------------- sessions


def session(
    purpose: env.Purpose = env.Purpose.VIEW, state: m.State | None = None, **changes: object
) -> m.Session:
    ringing = purpose is env.Purpose.CALL
    s = m.Session(
        session_id="s-0001",
        device_id="phone-0001" if ringing else "cam-0001",
        purpose=purpose,
        staff_id="staff-op0001",
        recipient_id="rec-0001",
        state=state or (m.State.RINGING if ringing else m.State.GRANTED),
        started_at=T0,
        deadline=T0 + 30 * S,
        cap_s=30.0,
    )
    return dataclasses.replace(s, **changes)  # type: ignore[arg-type]


def kinds(effects: tuple[m.Effect, ...]) -> list[type]:
    return [type(e) for e in effects]


def closed(effects: tuple[m.Effect, ...]) -> m.Closed:
    [c] = [e for e in effects if isinstance(e, m.Closed)]
    return c


OPEN_VIEW_STATES = [m.State.GRANTED, m.State.CONNECTED]


@pytest.mark.parametrize("state", OPEN_VIEW_STATES)
def test_the_cap_closes_the_view_at_its_deadline(state: m.State) -> None:
    s = session(state=state)
    early, effects = m.apply(s, m.TimerFired(), T0 + 29.9 * S, TERMS)
    assert early.is_open
    assert effects == (m.ArmTimer(s.deadline),)
    ended, effects = m.apply(s, m.TimerFired(), T0 + 30 * S, TERMS)
    assert ended.state is m.State.CLOSED
    assert effects == (
        m.ToDevice(env.Bye("s-0001", env.ByeReason.TIMEOUT)),
        m.Command(CommandOp.SLEEP),
        m.Closed(env.ByeReason.TIMEOUT, "system", None, T0 + 30 * S),
        m.ToClient(env.Bye("s-0001", env.ByeReason.TIMEOUT)),
    )


def test_extensions_need_a_reason_and_stop_at_the_limit() -> None:
    s = session()
    at = T0 + 10 * S
    reason = env.ExtendReason.UNCLEAR_IMAGE
    s, effects = m.apply(s, m.ClientExtend(reason, allow()), at, TERMS)
    assert s.deadline == T0 + 60 * S
    assert s.extensions == 1
    assert effects[0] == m.Extended("staff-op0001", "unclear_image", T0 + 60 * S, at)
    assert effects[1] == m.ArmTimer(T0 + 60 * S)
    s, _ = m.apply(s, m.ClientExtend(reason, allow()), at, TERMS)
    assert s.deadline == T0 + 90 * S
    limited, effects = m.apply(s, m.ClientExtend(reason, allow()), at, TERMS)
    assert limited == s
    assert effects == (m.Refuse("extension_limit", "no more extensions for this view"),)


def test_extensions_taken_earlier_in_the_window_count_toward_the_limit() -> None:
    s = session(check_use=d.CheckUse(used_s=50.0, extensions=2))
    _, effects = m.apply(s, m.ClientExtend(env.ExtendReason.UNCLEAR_IMAGE, allow()), T0, TERMS)
    assert kinds(effects) == [m.Refuse]


def test_an_extension_after_withdrawal_closes_instead() -> None:
    s = session()
    ended, effects = m.apply(
        s, m.ClientExtend(env.ExtendReason.UNCLEAR_IMAGE, deny(Reason.PAUSED)), T0, TERMS
    )
    assert not ended.is_open
    assert closed(effects).reason is env.ByeReason.WITHDRAWN
    assert closed(effects).detail == "paused"


def test_a_call_has_no_extension() -> None:
    s = session(env.Purpose.CALL, m.State.CONNECTED)
    _, effects = m.apply(s, m.ClientExtend(env.ExtendReason.UNCLEAR_IMAGE, allow()), T0, TERMS)
    assert effects == (m.Refuse("not_extendable", "calls have no view cap"),)


@pytest.mark.parametrize(
    ("purpose", "state"),
    [
        (env.Purpose.VIEW, m.State.GRANTED),
        (env.Purpose.VIEW, m.State.CONNECTED),
        (env.Purpose.PROBE, m.State.CONNECTED),
        (env.Purpose.CALL, m.State.RINGING),
        (env.Purpose.CALL, m.State.CONNECTED),
    ],
)
def test_withdrawal_tears_down_every_open_session(purpose: env.Purpose, state: m.State) -> None:
    s = session(purpose, state)
    ended, effects = m.apply(s, m.GateDenied("withdrawn"), T0 + S, TERMS)
    assert ended.state is m.State.CLOSED
    assert effects[0] == m.ToDevice(env.Bye("s-0001", env.ByeReason.WITHDRAWN))
    assert effects[-1] == m.ToClient(env.Bye("s-0001", env.ByeReason.WITHDRAWN))
    assert closed(effects) == m.Closed(env.ByeReason.WITHDRAWN, "system", "withdrawn", T0 + S)
    # and nothing more happens to it
    assert m.apply(ended, m.GateDenied("withdrawn"), T0 + 2 * S, TERMS) == (ended, ())


FRESH = T0 + 100 * S


@pytest.mark.parametrize(
    ("s", "code"),
    [
        (session(env.Purpose.VIEW, m.State.CONNECTED, last_frame_at=FRESH), "not_in_call"),
        (session(env.Purpose.CALL, m.State.RINGING, last_frame_at=FRESH), "not_in_call"),
        (session(env.Purpose.CALL, m.State.CONNECTED), "video_stale"),
        (
            session(env.Purpose.CALL, m.State.CONNECTED, last_frame_at=FRESH - 1.5 * S),
            "video_stale",
        ),
        (session(env.Purpose.CALL, m.State.CONNECTED, last_frame_at=FRESH - 0.5 * S), None),
    ],
)
def test_drive_only_in_an_accepted_call_with_fresh_video(s: m.Session, code: str | None) -> None:
    _, effects = m.apply(s, m.ClientDrive(0.3, -0.2), FRESH, TERMS)
    if code is None:
        assert effects == (m.Drive(0.3, -0.2, 500),)
    else:
        assert [e.code for e in effects if isinstance(e, m.Refuse)] == [code]


def test_a_frame_count_that_does_not_grow_does_not_refresh_the_video() -> None:
    s = session(env.Purpose.CALL, m.State.CONNECTED)
    s, _ = m.apply(s, m.ClientVideo(10), T0, TERMS)
    s, _ = m.apply(s, m.ClientVideo(10), T0 + 5 * S, TERMS)
    assert s.last_frame_at == T0
    _, effects = m.apply(s, m.ClientDrive(0.1, 0.0), T0 + 5 * S, TERMS)
    assert kinds(effects) == [m.Refuse]


def test_an_unanswered_call_ends_no_answer_at_the_ring_timeout() -> None:
    s = session(env.Purpose.CALL)
    ended, effects = m.apply(s, m.TimerFired(), T0 + 30 * S, TERMS)
    assert not ended.is_open
    assert closed(effects).reason is env.ByeReason.NO_ANSWER
    assert closed(effects).actor == "system"
    assert m.Command(CommandOp.HANGUP) in effects


def test_an_answered_call_relays_the_held_offer_and_is_capped() -> None:
    s = session(env.Purpose.CALL)
    offer = env.Offer("s-0001", sdp=CALL_OFFER)
    s, effects = m.apply(s, m.ClientOffer(offer), T0 + S, TERMS)
    assert effects == ()  # held while it rings
    s, effects = m.apply(s, m.CallAnswered(), T0 + 5 * S, TERMS)
    assert s.state is m.State.CONNECTED
    assert s.deadline == T0 + 5 * S + 3600 * S
    assert effects == (
        m.ArmTimer(s.deadline),
        m.MarkConnected(T0 + 5 * S, s.deadline, is_audited=True),
        m.Indicate(on=True),  # the offer waits until the phone shows the call
    )
    s, effects = m.apply(s, m.IndicatorAcked(), T0 + 5 * S, TERMS)
    assert effects == (m.ToDevice(offer),)
    _, effects = m.apply(s, m.TimerFired(), s.deadline, TERMS)
    assert closed(effects).reason is env.ByeReason.TIMEOUT


def test_a_declined_call_is_the_device_s_doing_and_needs_no_hangup() -> None:
    _, effects = m.apply(session(env.Purpose.CALL), m.CallDeclined(), T0, TERMS)
    assert closed(effects) == m.Closed(env.ByeReason.DECLINED, "device:phone-0001", None, T0)
    assert not any(isinstance(e, m.Command) for e in effects)
    # a view cannot be "declined"
    view = session()
    assert m.apply(view, m.CallDeclined(), T0, TERMS) == (view, ())


@pytest.mark.parametrize(
    ("event", "reason", "actor", "tells_device"),
    [
        (m.ClientBye(), env.ByeReason.OPERATOR, "staff-op0001", True),
        (m.ClientGone(), env.ByeReason.OPERATOR, "staff-op0001", True),
        (m.DeviceBye(env.ByeReason.DECLINED), env.ByeReason.DECLINED, "device:cam-0001", False),
        (m.DeviceBye(env.ByeReason.TIMEOUT), env.ByeReason.DEVICE_LOST, "device:cam-0001", False),
        (m.DeviceLost("offline"), env.ByeReason.DEVICE_LOST, "device:cam-0001", False),
        (m.Shutdown(), env.ByeReason.TIMEOUT, "system", True),
    ],
)
def test_bye_reasons_and_the_audit_actor(
    event: m.Event, reason: env.ByeReason, actor: str, tells_device: bool
) -> None:
    _, effects = m.apply(session(state=m.State.CONNECTED), event, T0, TERMS)
    assert closed(effects).reason is reason
    assert closed(effects).actor == actor
    assert any(isinstance(e, m.ToDevice) for e in effects) is tells_device


@pytest.mark.parametrize(
    ("purpose", "state"),
    [
        (env.Purpose.VIEW, m.State.GRANTED),
        (env.Purpose.PROBE, m.State.CONNECTED),
        (env.Purpose.CALL, m.State.RINGING),
        (env.Purpose.CALL, m.State.CONNECTED),
    ],
)
def test_a_device_error_ends_the_session_and_the_client_learns_the_code(
    purpose: env.Purpose, state: m.State
) -> None:
    """The device refused the session's signalling (e.g. the phone cannot use the call's offer):
    the client gets the device's code, then ``bye device_lost``; nothing goes back to the device
    (no ``bye``, no stop command), and the audit names the device."""
    s = session(purpose, state)
    ended, effects = m.apply(s, m.DeviceError("unexpected_offer"), T0 + S, TERMS)
    assert not ended.is_open
    assert ended.end_reason is env.ByeReason.DEVICE_LOST
    device = "phone-0001" if purpose is env.Purpose.CALL else "cam-0001"
    assert effects == (
        m.ToClient(
            env.Error("unexpected_offer", "the device refused the session", session_id="s-0001")
        ),
        m.Closed(env.ByeReason.DEVICE_LOST, f"device:{device}", "unexpected_offer", T0 + S),
        m.ToClient(env.Bye("s-0001", env.ByeReason.DEVICE_LOST)),
    )
    # a second error (QoS 1, or one per refused candidate) changes nothing and says nothing
    assert m.apply(ended, m.DeviceError("bad_candidate"), T0 + 2 * S, TERMS) == (ended, ())


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("bad_offer", "bad_offer"),
        ("unexpected_offer", "unexpected_offer"),
        ("a", "a"),
        ("x" * 32, "x" * 32),
        ("x" * 33, m.GENERIC_DEVICE_ERROR),  # bounded
        ("bad_offer2", m.GENERIC_DEVICE_ERROR),  # the envelope allows digits; we keep a-z and _
        ("Bad_offer", m.GENERIC_DEVICE_ERROR),
        ("_leading", m.GENERIC_DEVICE_ERROR),
        ("", m.GENERIC_DEVICE_ERROR),
        ("bad offer", m.GENERIC_DEVICE_ERROR),
        ("bad_offer\n", m.GENERIC_DEVICE_ERROR),
    ],
)
def test_a_device_error_code_is_a_short_code_or_the_generic_one(raw: str, kept: str) -> None:
    assert m.device_error_code(raw) == kept


@pytest.mark.parametrize("code", ["", "x" * 33, "Bad", "bad-offer", "bad offer", "é"])
def test_a_device_error_event_takes_only_a_checked_code(code: str) -> None:
    with pytest.raises(ValueError, match="a-z and _"):
        m.DeviceError(code)


@pytest.mark.parametrize("purpose", [env.Purpose.VIEW, env.Purpose.CALL])
def test_a_bad_offer_is_refused_and_nothing_is_relayed(purpose: env.Purpose) -> None:
    state = m.State.CONNECTED if purpose is env.Purpose.CALL else m.State.GRANTED
    s = session(purpose, state, light=m.Light.ON)
    bad = env.Offer("s-0001", sdp=offer_sdp(("video", "recvonly"), mux=False))
    after, effects = m.apply(s, m.ClientOffer(bad), T0, TERMS)
    assert [type(e) for e in effects] == [m.Refuse]
    assert isinstance(effects[0], m.Refuse)
    assert effects[0].code == "bad_offer"
    assert not after.has_offer  # a good offer may follow
    good = VIEW_OFFER if purpose is env.Purpose.VIEW else CALL_OFFER
    _, effects = m.apply(after, m.ClientOffer(env.Offer("s-0001", sdp=good)), T0, TERMS)
    assert kinds(effects) == [m.ToDevice]


def test_a_view_offer_that_listens_is_refused() -> None:
    listening = env.Offer("s-0001", sdp=offer_sdp(("video", "recvonly"), ("audio", "recvonly")))
    _, effects = m.apply(session(), m.ClientOffer(listening), T0, TERMS)
    assert kinds(effects) == [m.Refuse]


def test_device_answer_once_then_candidates_flow() -> None:
    s = session()
    cand = env.Candidate("s-0001", "candidate:1 1 udp 1 192.0.2.1 9 typ host", sdp_mid="0")
    s, effects = m.apply(s, m.DeviceCandidate(cand), T0, TERMS)
    assert effects == ()
    answer = env.Answer("s-0001", sdp=VIEW_OFFER.replace("recvonly", "sendonly"))
    s, effects = m.apply(s, m.DeviceAnswer(answer), T0, TERMS)
    assert s.state is m.State.CONNECTED
    assert effects == (
        m.ToClient(answer),
        m.ToClient(cand),
        m.MarkConnected(T0, None, is_audited=False),
    )
    assert m.apply(s, m.DeviceAnswer(answer), T0, TERMS) == (s, ())


def test_a_closed_session_refuses_client_messages() -> None:
    ended, _ = m.apply(session(), m.ClientBye(), T0, TERMS)
    _, effects = m.apply(ended, m.ClientOffer(env.Offer("s-0001", sdp=VIEW_OFFER)), T0, TERMS)
    assert effects == (m.Refuse("session_closed", "the session has ended"),)
    assert m.apply(ended, m.TimerFired(), T0 + 60 * S, TERMS) == (ended, ())


# --------------------------------------------------------------------------- the interpreter

CAM, PHONE_ID = "cam-0001", "phone-0001"
OPERATOR = Principal("staff-op0001", Role.OPERATOR, via="token")
CHECK = "20260115.2200.rec-0001"  # queued for a view of CAM in every rig


@dataclasses.dataclass
class Rig:
    sig: Signalling
    gate: FakeGate
    store: FakeSessionStore
    commands: FakeCommands
    clock: FakeClock
    buses: list[FakeBus]
    checks: FakeChecks

    @property
    def bus(self) -> FakeBus:
        return self.buses[0]


@contextlib.asynccontextmanager
async def running(
    store: FakeSessionStore | None = None, config: SignallingConfig | None = None
) -> AsyncIterator[Rig]:
    gate, commands, clock = FakeGate(), FakeCommands(), FakeClock(T0)
    store = store or FakeSessionStore()
    checks = FakeChecks(duty=(OPERATOR.staff_id,))
    checks.queue(CAM, check_id=CHECK)
    buses: list[FakeBus] = []

    def bus(handlers: object) -> FakeBus:
        buses.append(FakeBus(handlers))  # type: ignore[arg-type]
        return buses[-1]

    sig = Signalling(
        instance_id="unit",
        gate=gate,
        commands=commands,
        presence=FakePresence({CAM: DeviceKind.CAMERA, PHONE_ID: DeviceKind.VIDEO_PHONE}),
        sessions=store,
        checks=checks,
        bus=bus,
        clock=clock,
        config=config or SignallingConfig(max_extensions=1),
    )
    async with sig:
        yield Rig(sig, gate, store, commands, clock, buses, checks)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with running() as r:
        yield r


async def ask(rig: Rig, conn: ClientConnection, message: env.Envelope) -> env.Envelope:
    await rig.sig.handle_client(conn, env.encode(message))
    return await conn.recv(1.0)


async def test_the_view_cap_runs_on_the_injected_clock(rig: Rig) -> None:
    rig.gate.allow(CAM, cap_s=30)
    async with rig.sig.connect(OPERATOR) as conn:
        granted = await ask(
            rig, conn, env.Request("s-cap-0001", CAM, env.Purpose.VIEW, check_id=CHECK)
        )
        assert isinstance(granted, env.Granted)
        assert granted.deadline == (T0 + 30 * S).timestamp()
        await rig.clock.step(29)
        assert conn.outbox.empty()
        await rig.clock.step(1)
        assert await conn.recv(1.0) == env.Bye("s-cap-0001", env.ByeReason.TIMEOUT)
    assert rig.bus.sent(CAM, env.Bye) == [env.Bye("s-cap-0001", env.ByeReason.TIMEOUT)]
    # the indicator on at the grant, then sleep and the indicator off at the cap
    assert rig.commands.ops(CAM) == [CommandOp.INDICATOR, CommandOp.SLEEP, CommandOp.INDICATOR]
    assert rig.store.actions("s-cap-0001") == ["view.started", "view.ended"]
    ended = rig.store.audit[-1]
    assert ended[1] == "system"
    assert ended[2]["duration_s"] == 30


async def test_an_extension_moves_the_timer(rig: Rig) -> None:
    rig.gate.allow(CAM, cap_s=30)
    async with rig.sig.connect(OPERATOR) as conn:
        await ask(rig, conn, env.Request("s-ext-0001", CAM, env.Purpose.VIEW, check_id=CHECK))
        await rig.clock.step(20)
        extended = await ask(
            rig, conn, env.Request("s-ext-0001", extend=env.ExtendReason.AWAITING_MOVEMENT)
        )
        assert isinstance(extended, env.Granted)
        assert extended.deadline == (T0 + 60 * S).timestamp()
        again = await ask(
            rig, conn, env.Request("s-ext-0001", extend=env.ExtendReason.UNCLEAR_IMAGE)
        )
        assert isinstance(again, env.Error)
        assert again.code == "extension_limit"
        await rig.clock.step(15)  # past the first deadline: still open
        assert conn.outbox.empty()
        await rig.clock.step(25)
        assert await conn.recv(1.0) == env.Bye("s-ext-0001", env.ByeReason.TIMEOUT)
    assert rig.store.actions("s-ext-0001") == ["view.started", "view.extended", "view.ended"]


async def test_reopening_continues_the_checks_budget(rig: Rig) -> None:
    """Finding 5: three back-to-back views by reopening after each ``bye timeout``."""
    rig.gate.allow(CAM, cap_s=30, window=(T0 - 600 * S, T0 + 600 * S))
    async with rig.sig.connect(OPERATOR) as conn:
        first = await ask(
            rig, conn, env.Request("s-reopen-01", CAM, env.Purpose.VIEW, check_id=CHECK)
        )
        assert isinstance(first, env.Granted)
        await rig.clock.step(10)
        await rig.sig.handle_client(
            conn, env.encode(env.Bye("s-reopen-01", env.ByeReason.OPERATOR))
        )
        assert await conn.recv(1.0) == env.Bye("s-reopen-01", env.ByeReason.OPERATOR)
        second = await ask(
            rig, conn, env.Request("s-reopen-02", CAM, env.Purpose.VIEW, check_id=CHECK)
        )
        assert isinstance(second, env.Granted)
        assert second.deadline == (T0 + 10 * S + 20 * S).timestamp()  # 20 s left, not 30
        await rig.clock.step(20)
        assert await conn.recv(1.0) == env.Bye("s-reopen-02", env.ByeReason.TIMEOUT)
        third = await ask(
            rig, conn, env.Request("s-reopen-03", CAM, env.Purpose.VIEW, check_id=CHECK)
        )
        assert third == env.Denied("s-reopen-03", reason="budget_spent")
    assert rig.store.actions("s-reopen-03") == ["view.denied"]


async def test_a_granted_view_moves_its_queued_check_to_viewing_once(rig: Rig) -> None:
    """The one path: the grant moves ``needs_view -> viewing`` held by the operator; a re-open
    of the check moves nothing and its row names the check."""
    rig.gate.allow(CAM, cap_s=30)
    async with rig.sig.connect(OPERATOR) as conn:
        first = await ask(
            rig, conn, env.Request("s-step-001", CAM, env.Purpose.VIEW, check_id=CHECK)
        )
        assert isinstance(first, env.Granted)
        assert first.budget_s == 30
        await rig.clock.step(12)
        await ask(rig, conn, env.Bye("s-step-001", env.ByeReason.OPERATOR))
        again = await ask(
            rig, conn, env.Request("s-step-002", CAM, env.Purpose.VIEW, check_id=CHECK)
        )
        assert isinstance(again, env.Granted)
        assert again.budget_s == 18  # what is left of the check's 30 s, not a new cap
    assert rig.checks.opened == [(CHECK, OPERATOR.staff_id)]
    rows = [rig.store.rows[sid] for sid in ("s-step-001", "s-step-002")]
    assert {(r.check_id, r.look, r.look_reason, r.look_note) for r in rows} == {
        (CHECK, "check", None, None)
    }


async def test_a_view_naming_nothing_or_another_s_check_is_denied(rig: Rig) -> None:
    rig.gate.allow(CAM)
    other = Principal("staff-op0002", Role.OPERATOR, via="token")
    rig.checks.duty.add(other.staff_id)
    async with rig.sig.connect(OPERATOR) as conn:
        bare = await ask(rig, conn, env.Request("s-bare-001", CAM, env.Purpose.VIEW))
        assert bare == env.Denied("s-bare-001", reason="no_due_check")
        mine = await ask(
            rig, conn, env.Request("s-mine-001", CAM, env.Purpose.VIEW, check_id=CHECK)
        )
        assert isinstance(mine, env.Granted)
        await ask(rig, conn, env.Bye("s-mine-001", env.ByeReason.OPERATOR))
    async with rig.sig.connect(other) as conn:
        taken = await ask(
            rig, conn, env.Request("s-take-001", CAM, env.Purpose.VIEW, check_id=CHECK)
        )
        assert taken == env.Denied("s-take-001", reason="no_due_check")
    rig.checks.duty.clear()
    async with rig.sig.connect(OPERATOR) as conn:
        off = await ask(rig, conn, env.Request("s-off-0001", CAM, env.Purpose.VIEW, check_id=CHECK))
        assert off == env.Denied("s-off-0001", reason="not_on_duty")
    assert rig.store.actions("s-bare-001") == ["view.denied"]
    assert "s-take-001" not in rig.store.rows


async def test_an_extra_look_is_its_own_kind_with_its_reason_and_note_never_logged(
    rig: Rig,
) -> None:
    rig.gate.allow(CAM, cap_s=20)
    note = "grannen ringde 03:12, hörde ett skrik"
    with structlog.testing.capture_logs() as logs:
        async with rig.sig.connect(OPERATOR) as conn:
            request = env.Request(
                "s-extra-01",
                CAM,
                env.Purpose.VIEW,
                reason=env.LookReason.CONCERN_REPORTED,
                note=note,
            )
            granted = await ask(rig, conn, request)
            assert isinstance(granted, env.Granted)
            assert (granted.cap_s, granted.budget_s) == (20, 20)
            refused = await ask(
                rig, conn, env.Request("s-extra-01", extend=env.ExtendReason.UNCLEAR_IMAGE)
            )
            assert isinstance(refused, env.Error)
            assert refused.code == "not_extendable"
            await rig.clock.step(20)
            assert await conn.recv(1.0) == env.Bye("s-extra-01", env.ByeReason.TIMEOUT)
    row = rig.store.rows["s-extra-01"]
    assert (row.check_id, row.look, row.look_reason, row.look_note) == (
        None,
        "extra",
        "concern_reported",
        note,
    )
    assert note not in repr(row)
    assert rig.store.actions("s-extra-01") == ["view.extra", "view.ended"]
    started = rig.store.audit[[a for a, _, d in rig.store.audit].index("view.extra")][2]
    assert (started["reason"], started["has_note"]) == ("concern_reported", True)
    assert note not in repr(rig.store.audit)  # the note stays in the row
    assert rig.checks.opened == []  # an extra look moves no check
    assert logs
    assert all(note not in repr(entry) for entry in logs)


async def test_withdrawal_tears_the_view_down_through_the_change_feed(rig: Rig) -> None:
    rig.gate.allow(CAM)
    async with rig.sig.connect(OPERATOR) as conn:
        await ask(rig, conn, env.Request("s-wd-00001", CAM, env.Purpose.VIEW, check_id=CHECK))
        await asyncio.sleep(0)  # the gate watcher subscribes
        rig.gate.deny(CAM, Reason.WITHDRAWN, T0)
        assert await conn.recv(1.0) == env.Bye("s-wd-00001", env.ByeReason.WITHDRAWN)
    assert rig.bus.sent(CAM, env.Bye) == [env.Bye("s-wd-00001", env.ByeReason.WITHDRAWN)]
    assert rig.store.audit[-1][2]["reason"] == "withdrawn"


async def test_purpose_and_kind_are_checked_before_the_gate(rig: Rig) -> None:
    """Findings 3 and 4: a view of a phone, a call to a camera."""
    rig.gate.allow(PHONE_ID, GP.CAMERA_CHECK, GP.VIDEO_CALL)
    rig.gate.allow(CAM, GP.CAMERA_CHECK, GP.VIDEO_CALL)
    async with rig.sig.connect(OPERATOR) as conn:
        view = await ask(rig, conn, env.Request("s-kind-001", PHONE_ID, env.Purpose.VIEW))
        call = await ask(rig, conn, env.Request("s-kind-002", CAM, env.Purpose.CALL))
    assert view == env.Denied("s-kind-001", reason="wrong_device_kind")
    assert call == env.Denied("s-kind-002", reason="wrong_device_kind")
    assert not rig.store.rows


async def test_a_bad_offer_gets_an_error_and_reaches_no_device(rig: Rig) -> None:
    rig.gate.allow(CAM)
    async with rig.sig.connect(OPERATOR) as conn:
        await ask(rig, conn, env.Request("s-offer-01", CAM, env.Purpose.VIEW, check_id=CHECK))
        listening = offer_sdp(("video", "recvonly"), ("audio", "recvonly"))
        error = await ask(rig, conn, env.Offer("s-offer-01", sdp=listening))
        assert isinstance(error, env.Error)
        assert error.code == "bad_offer"
        assert rig.bus.sent(CAM) == []
        await rig.sig.handle_client(conn, env.encode(env.Offer("s-offer-01", sdp=VIEW_OFFER)))
        assert rig.bus.sent(CAM, env.Offer)[0].sdp == VIEW_OFFER  # type: ignore[union-attr]


async def test_a_call_rings_then_relays_the_held_offer(rig: Rig) -> None:
    rig.gate.allow(PHONE_ID, GP.VIDEO_CALL)
    rig.gate.allow(PHONE_ID, GP.CAMERA_CHECK)
    async with rig.sig.connect(OPERATOR) as conn:
        granted = await ask(rig, conn, env.Request("s-call-001", PHONE_ID, env.Purpose.CALL))
        assert isinstance(granted, env.Granted)
        await rig.sig.handle_client(conn, env.encode(env.Offer("s-call-001", sdp=CALL_OFFER)))
        await asyncio.sleep(0)
        assert rig.commands.ops(PHONE_ID) == [CommandOp.RING]
        assert rig.bus.sent(PHONE_ID, env.Offer) == []
        await rig.bus.event(PHONE_ID, EventType.CALL_ANSWER, "s-call-001")
        await rig.clock.step(0)  # the phone acks the indicator, then the offer goes
        assert rig.commands.ops(PHONE_ID) == [CommandOp.RING, CommandOp.INDICATOR]
        assert len(rig.bus.sent(PHONE_ID, env.Offer)) == 1
        await rig.clock.step(29)  # the ring timeout no longer applies
        assert conn.outbox.empty()
    assert rig.store.actions("s-call-001") == ["call.started", "call.answered", "call.ended"]


async def test_an_unanswered_call_ends_no_answer(rig: Rig) -> None:
    rig.gate.allow(PHONE_ID, GP.VIDEO_CALL)
    rig.gate.allow(PHONE_ID, GP.CAMERA_CHECK)
    async with rig.sig.connect(OPERATOR) as conn:
        await ask(rig, conn, env.Request("s-call-002", PHONE_ID, env.Purpose.CALL))
        await rig.clock.step(30)
        assert await conn.recv(1.0) == env.Bye("s-call-002", env.ByeReason.NO_ANSWER)
    assert rig.commands.ops(PHONE_ID) == [CommandOp.RING, CommandOp.HANGUP]


async def test_a_camera_that_does_not_ack_its_indicator_sends_the_check_to_the_patrol(
    rig: Rig,
) -> None:
    """The camera refuses ``indicator on``: the client learns ``indicator_not_acked``, the view
    ends ``device_lost`` before its offer reached the camera, and the check goes to a physical
    visit (hard rule 7)."""
    rig.gate.allow(CAM)
    rig.commands.refuse.add(CommandOp.INDICATOR)
    async with rig.sig.connect(OPERATOR) as conn:
        granted = await ask(
            rig, conn, env.Request("s-dark-01", CAM, env.Purpose.VIEW, check_id=CHECK)
        )
        assert isinstance(granted, env.Granted)
        await rig.clock.step(0)  # the camera answers the indicator: refused
        assert await conn.recv(1.0) == env.Error(
            "indicator_not_acked", "the device did not show that the look is live", "s-dark-01"
        )
        assert await conn.recv(1.0) == env.Bye("s-dark-01", env.ByeReason.DEVICE_LOST)
    assert rig.bus.sent(CAM, env.Offer) == []  # nothing reached the camera
    assert rig.checks.troubled == [(CHECK, "indicator_not_acked")]
    assert rig.store.audit[-1][2]["detail"] == "indicator_not_acked"


async def test_a_device_error_reaches_the_client_and_ends_the_session(rig: Rig) -> None:
    rig.gate.allow(CAM)
    async with rig.sig.connect(OPERATOR) as conn:
        await ask(rig, conn, env.Request("s-deverr-1", CAM, env.Purpose.VIEW, check_id=CHECK))
        await rig.sig.handle_client(conn, env.encode(env.Offer("s-deverr-1", sdp=VIEW_OFFER)))
        await rig.bus.device_says(
            CAM, env.Error("bad_offer", "the offer's SDP cannot be used", "s-deverr-1")
        )
        assert await conn.recv(1.0) == env.Error(
            "bad_offer", "the device refused the session", "s-deverr-1"
        )
        assert await conn.recv(1.0) == env.Bye("s-deverr-1", env.ByeReason.DEVICE_LOST)
        # the session is gone: the client's next message for it is refused as closed
        await rig.sig.handle_client(conn, env.encode(env.Offer("s-deverr-1", sdp=VIEW_OFFER)))
        closed_error = await conn.recv(1.0)
        assert isinstance(closed_error, env.Error)
        assert closed_error.code == "session_closed"
    assert rig.bus.sent(CAM, env.Bye) == []  # the device ended it: nothing said back
    assert rig.bus.sent(CAM, env.Error) == []
    assert rig.commands.ops(CAM) == [CommandOp.INDICATOR] * 2  # on at the grant, off at the end
    assert not rig.sig.sessions
    assert rig.store.actions("s-deverr-1") == ["view.started", "view.ended"]
    ended = rig.store.audit[-1]
    assert ended[1] == "device:cam-0001"
    assert ended[2]["reason"] == "device_lost"
    assert ended[2]["detail"] == "bad_offer"


async def test_a_device_error_about_no_live_session_is_counted_never_answered(rig: Rig) -> None:
    """No error ping-pong: an ``error`` for an unknown, closed or foreign session, without a
    session, or one the codec refuses, is counted and dropped; the device gets nothing back."""
    rig.gate.allow(CAM)
    rig.gate.allow(PHONE_ID, GP.VIDEO_CALL)
    rig.gate.allow(PHONE_ID, GP.CAMERA_CHECK)
    async with rig.sig.connect(OPERATOR) as conn:
        await ask(rig, conn, env.Request("s-closed-1", CAM, env.Purpose.VIEW, check_id=CHECK))
        await rig.sig.handle_client(conn, env.encode(env.Bye("s-closed-1", env.ByeReason.OPERATOR)))
        assert await conn.recv(1.0) == env.Bye("s-closed-1", env.ByeReason.OPERATOR)
        await ask(rig, conn, env.Request("s-phone-01", PHONE_ID, env.Purpose.CALL))
        sent_before = list(rig.bus.to_device)
        say = rig.bus.device_says
        await say(CAM, env.Error("unknown_session", "no such session", "s-never-01"))
        await say(CAM, env.Error("unknown_session", "no such session", "s-closed-1"))
        await say(CAM, env.Error("bad_offer", "not yours", "s-phone-01"))  # another device's
        await say(CAM, env.Error("failed", "no session named"))
        bad_code = b'{"type":"error","session_id":"s-phone-01","code":"Not A Code","message":"x"}'
        await rig.bus.handlers.device_signal(CAM, bad_code)
        await rig.bus.handlers.device_signal(CAM, b'{"type":"error","code":1}')
        assert rig.sig.counters["device_error_dropped"] == 6
        assert rig.bus.to_device == sent_before  # nothing answered
        assert "s-phone-01" in rig.sig.sessions  # the phone's call is untouched
        assert conn.outbox.empty()


class SlowStore(FakeSessionStore):
    """Closing a row fails ``failures`` times, then waits for ``release`` (a loaded database)."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__()
        self.failures = failures
        self.release = asyncio.Event()

    async def close(
        self,
        session_id: str,
        *,
        actor: str,
        reason: str,
        at: datetime,
        detail: str | None,
        frames_decoded: int | None = None,
    ) -> SessionRow | None:
        if self.failures:
            self.failures -= 1
            raise OSError("database unreachable")
        await self.release.wait()
        return await super().close(
            session_id,
            actor=actor,
            reason=reason,
            at=at,
            detail=detail,
            frames_decoded=frames_decoded,
        )


async def test_a_slow_row_close_does_not_make_the_next_request_busy() -> None:
    """The finding 2 flake: under load a row's close outlasted the 2 s the bye waits for it, was
    cancelled, and the device stayed ``busy`` (its row open) until the sweep, so the next view
    was denied. The close now goes on after the bye, and a request for the device waits for it."""
    store = SlowStore()
    async with running(store, SignallingConfig(close_wait_s=0.01)) as rig:
        rig.gate.allow(CAM)
        async with rig.sig.connect(OPERATOR) as conn:
            await ask(rig, conn, env.Request("s-slow-0001", CAM, env.Purpose.VIEW, check_id=CHECK))
            bye = await ask(rig, conn, env.Bye("s-slow-0001", env.ByeReason.OPERATOR))
            assert bye == env.Bye("s-slow-0001", env.ByeReason.OPERATOR)
            assert store.rows["s-slow-0001"].is_open  # still closing
            request = env.encode(env.Request("s-slow-0002", CAM, env.Purpose.VIEW, check_id=CHECK))
            asking = asyncio.create_task(rig.sig.handle_client(conn, request))
            await asyncio.sleep(0.05)
            assert not asking.done()  # waits for the close instead of answering busy
            store.release.set()
            await asking
            assert isinstance(await conn.recv(1.0), env.Granted)
    assert store.actions("s-slow-0001") == ["view.started", "view.ended"]


async def test_a_failed_row_close_is_tried_again() -> None:
    store = SlowStore(failures=1)
    store.release.set()
    async with running(store) as rig:
        rig.gate.allow(CAM)
        async with rig.sig.connect(OPERATOR) as conn:
            await ask(rig, conn, env.Request("s-fail-0001", CAM, env.Purpose.VIEW, check_id=CHECK))
            bye = await ask(rig, conn, env.Bye("s-fail-0001", env.ByeReason.OPERATOR))
            assert bye == env.Bye("s-fail-0001", env.ByeReason.OPERATOR)
            again = await ask(
                rig, conn, env.Request("s-fail-0002", CAM, env.Purpose.VIEW, check_id=CHECK)
            )
            assert isinstance(again, env.Granted)
    assert store.failures == 0
    assert not store.rows["s-fail-0001"].is_open
    assert store.actions("s-fail-0001") == ["view.started", "view.ended"]
