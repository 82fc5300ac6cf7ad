"""The home knows (issue 15): the session machine lights the device's indicator before any frame
can flow, and turns it off however the session ends.

Pure tables over :func:`services.signalling.machine.apply`: every way a session starts (a view
or probe when granted, a call when answered) asks for ``indicator on`` and holds the client's
offer until the device acks; every way it ends asks for ``indicator off`` once; a device that
does not ack is device trouble (``bye device_lost``, the client told ``indicator_not_acked``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consent.model import Decision, Reason
from consent.model import Purpose as GatePurpose
from devices import envelope as env
from devices.topics import CommandAck, CommandOp, DeviceKind
from kernel.roles import Principal, Role
from services.signalling import machine as m
from services.signalling.bus import BusHandlers
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
from services.signalling.store import SessionRow

T0 = datetime(2026, 1, 15, 21, 0, tzinfo=UTC)
S = timedelta(seconds=1)
TERMS = m.Terms(
    default_cap_s=30, ring_timeout_s=30, max_call_s=3600, max_extensions=2, stale_video_s=1.0
)
_MEDIA = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 97\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na={}\r\na=rtcp-mux\r\n"
    "a=ice-ufrag:u\r\na=ice-pwd:pppppppppppppppppppppp\r\na=fingerprint:sha-256 AA\r\n"
    "a=setup:actpass\r\na=rtpmap:97 VP8/90000\r\n"
)
VIEW_OFFER = _MEDIA.format("recvonly")
CALL_OFFER = _MEDIA.format("sendrecv") + (
    "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\n"
    "a=rtcp-mux\r\na=rtpmap:0 PCMU/8000\r\n"
).replace("a=group:BUNDLE 0", "a=group:BUNDLE 0 1")
PAUSED = Reason.PAUSED
CANDIDATE = env.Candidate("s-0001", "candidate:1 1 udp 1 192.0.2.1 9 typ host", sdp_mid="0")


def granted(purpose: env.Purpose = env.Purpose.VIEW, **changes: object) -> m.Session:
    is_call = purpose is env.Purpose.CALL
    s = m.Session(
        session_id="s-0001",
        device_id="phone-0001" if is_call else "cam-0001",
        purpose=purpose,
        staff_id="staff-op0001" if purpose is not env.Purpose.PROBE else "system",
        recipient_id="rec-0001",
        state=m.State.RINGING if is_call else m.State.GRANTED,
        started_at=T0,
        deadline=T0 + 30 * S,
        cap_s=30.0,
    )
    return dataclasses.replace(s, **changes)  # type: ignore[arg-type]


def indicates(effects: tuple[m.Effect, ...]) -> list[m.Indicate]:
    return [e for e in effects if isinstance(e, m.Indicate)]


def lit(purpose: env.Purpose = env.Purpose.VIEW, **changes: object) -> m.Session:
    """A session whose device acked ``indicator on`` (a call: answered first)."""
    s = granted(purpose, **changes)
    if purpose is env.Purpose.CALL:
        s, _ = m.apply(s, m.CallAnswered(), T0, TERMS)
    else:
        s, _ = m.apply(s, m.Started(), T0, TERMS)
    s, _ = m.apply(s, m.IndicatorAcked(), T0, TERMS)
    assert s.light is m.Light.ON
    return s


# --------------------------------------------------------------------------- starting


@pytest.mark.parametrize(
    ("purpose", "countdown", "on"),
    [
        (env.Purpose.VIEW, True, m.Indicate(on=True, remaining_s=28.0)),
        (env.Purpose.VIEW, False, m.Indicate(on=True, remaining_s=None)),  # the plan says no
        (env.Purpose.PROBE, True, m.Indicate(on=True, remaining_s=None)),  # a plain indicator
        (env.Purpose.CALL, True, None),  # a call lights it when answered
    ],
)
def test_a_grant_asks_for_the_indicator(
    purpose: env.Purpose, countdown: bool, on: m.Indicate | None
) -> None:
    s, effects = m.apply(granted(purpose, countdown=countdown), m.Started(), T0 + 2 * S, TERMS)
    assert effects == (() if on is None else (on,))
    assert s.light is (m.Light.OFF if on is None else m.Light.ASKED)
    # asked once only
    assert m.apply(s, m.Started(), T0 + 3 * S, TERMS) == (s, ())


def test_an_answered_call_asks_for_the_indicator() -> None:
    s, effects = m.apply(granted(env.Purpose.CALL), m.CallAnswered(), T0 + 5 * S, TERMS)
    assert s.light is m.Light.ASKED
    assert indicates(effects) == [m.Indicate(on=True)]


@pytest.mark.parametrize(
    ("purpose", "offer", "start"),
    [
        (env.Purpose.VIEW, VIEW_OFFER, m.Started()),
        (env.Purpose.PROBE, VIEW_OFFER, m.Started()),
        (env.Purpose.CALL, CALL_OFFER, m.CallAnswered()),
    ],
)
def test_nothing_reaches_the_device_before_the_indicator_is_acked(
    purpose: env.Purpose, offer: str, start: m.Event
) -> None:
    """The offer (and the candidates after it) wait for the ack; then go in order."""
    s = granted(purpose)
    sent: list[m.Effect] = []
    for event in (
        start,
        m.ClientOffer(env.Offer("s-0001", sdp=offer)),
        m.ClientCandidate(CANDIDATE),
    ):
        s, effects = m.apply(s, event, T0 + S, TERMS)
        sent += [e for e in effects if isinstance(e, m.ToDevice)]
    assert sent == []
    assert s.light is m.Light.ASKED
    s, effects = m.apply(s, m.IndicatorAcked(), T0 + 2 * S, TERMS)
    assert effects == (m.ToDevice(env.Offer("s-0001", sdp=offer)), m.ToDevice(CANDIDATE))
    assert s.light is m.Light.ON
    assert s.offer_sent
    assert s.held == ()
    # from now on the client's messages go straight through; a late second ack does nothing
    _, effects = m.apply(s, m.ClientCandidate(CANDIDATE), T0 + 3 * S, TERMS)
    assert effects == (m.ToDevice(CANDIDATE),)
    assert m.apply(s, m.IndicatorAcked(), T0 + 3 * S, TERMS) == (s, ())


def test_an_offer_after_the_ack_goes_at_once() -> None:
    s, _ = m.apply(granted(), m.Started(), T0, TERMS)
    s, effects = m.apply(s, m.IndicatorAcked(), T0, TERMS)
    assert effects == ()
    offer = env.Offer("s-0001", sdp=VIEW_OFFER)
    _, effects = m.apply(s, m.ClientOffer(offer), T0 + S, TERMS)
    assert effects == (m.ToDevice(offer),)


# --------------------------------------------------------------------------- no ack


@pytest.mark.parametrize("purpose", list(env.Purpose))
def test_no_ack_is_device_trouble_and_nothing_flows(purpose: env.Purpose) -> None:
    s = granted(purpose)
    s, _ = m.apply(s, m.CallAnswered() if purpose is env.Purpose.CALL else m.Started(), T0, TERMS)
    offer = CALL_OFFER if purpose is env.Purpose.CALL else VIEW_OFFER
    s, _ = m.apply(s, m.ClientOffer(env.Offer("s-0001", sdp=offer)), T0, TERMS)
    ended, effects = m.apply(s, m.IndicatorNotAcked(), T0 + 2 * S, TERMS)
    assert not ended.is_open
    assert ended.end_reason is env.ByeReason.DEVICE_LOST
    assert ended.light is m.Light.OFF
    assert effects[0] == m.ToClient(
        env.Error(
            env.INDICATOR_NOT_ACKED,
            "the device did not show that the look is live",
            session_id="s-0001",
        )
    )
    assert effects[1] == m.CheckTrouble("indicator_not_acked")  # its check: a physical visit
    [closed] = [e for e in effects if isinstance(e, m.Closed)]
    assert closed.detail == "indicator_not_acked"
    assert closed.actor == f"device:{s.device_id}"
    # the held offer never reaches the device; it is told bye, and off in case it did light up
    assert [e for e in effects if isinstance(e, m.ToDevice)] == [
        m.ToDevice(env.Bye("s-0001", env.ByeReason.DEVICE_LOST))
    ]
    assert indicates(effects) == [m.Indicate(on=False)]
    assert effects[-1] == m.ToClient(env.Bye("s-0001", env.ByeReason.DEVICE_LOST))


# --------------------------------------------------------------------------- ending

ENDINGS: list[tuple[env.Purpose, m.Event]] = [
    (env.Purpose.VIEW, m.ClientBye()),
    (env.Purpose.VIEW, m.ClientGone()),
    (env.Purpose.VIEW, m.TimerFired()),  # the cap
    (env.Purpose.VIEW, m.GateDenied("withdrawn")),
    (env.Purpose.VIEW, m.DeviceLost("offline")),
    (env.Purpose.VIEW, m.DeviceBye(env.ByeReason.DEVICE_LOST)),
    (env.Purpose.VIEW, m.DeviceError("bad_offer")),
    (env.Purpose.VIEW, m.Shutdown()),
    (env.Purpose.VIEW, m.ClientExtend(env.ExtendReason.UNCLEAR_IMAGE, Decision.deny(PAUSED))),
    (env.Purpose.PROBE, m.ClientBye()),
    (env.Purpose.PROBE, m.TimerFired()),
    (env.Purpose.PROBE, m.GateDenied("no_consent")),
    (env.Purpose.CALL, m.ClientBye()),
    (env.Purpose.CALL, m.CallDeclined()),  # the brukare hung up
    (env.Purpose.CALL, m.TimerFired()),  # the call cap
    (env.Purpose.CALL, m.DeviceLost("offline")),
]


@pytest.mark.parametrize(("purpose", "event"), ENDINGS)
def test_however_a_lit_session_ends_the_indicator_goes_off_once(
    purpose: env.Purpose, event: m.Event
) -> None:
    s = lit(purpose)
    at = max(s.deadline, T0 + S) if isinstance(event, m.TimerFired) else T0 + S
    ended, effects = m.apply(s, event, at, TERMS)
    assert not ended.is_open
    assert indicates(effects) == [m.Indicate(on=False)]
    assert not any(isinstance(e, m.CheckTrouble) for e in effects)  # only a missing ack is
    closed = next(i for i, e in enumerate(effects) if isinstance(e, m.Closed))
    off = effects.index(m.Indicate(on=False))
    assert off < closed  # off is asked before the row closes and the client hears bye
    # ended is ended: nothing more, no second off
    assert indicates(m.apply(ended, m.ClientBye(), at, TERMS)[1]) == []


@pytest.mark.parametrize(("purpose", "event"), ENDINGS)
def test_a_session_that_never_asked_for_the_indicator_asks_no_off(
    purpose: env.Purpose, event: m.Event
) -> None:
    s = granted(purpose)
    at = s.deadline if isinstance(event, m.TimerFired) else T0 + S
    _, effects = m.apply(s, event, at, TERMS)
    assert indicates(effects) == []


def test_an_unanswered_or_failed_ring_never_lit_anything() -> None:
    for event in (m.TimerFired(), m.RingFailed(), m.CallDeclined()):
        s = granted(env.Purpose.CALL)
        _, effects = m.apply(s, event, s.deadline, TERMS)
        assert indicates(effects) == []


def test_an_extension_moves_the_countdown_on_the_device() -> None:
    s = lit()
    at = T0 + 20 * S
    s, effects = m.apply(
        s, m.ClientExtend(env.ExtendReason.UNCLEAR_IMAGE, Decision(True, None)), at, TERMS
    )
    assert s.deadline == T0 + 60 * S
    assert indicates(effects) == [m.Indicate(on=True, remaining_s=40.0)]
    # without the countdown the device is not bothered
    quiet = lit(countdown=False)
    _, effects = m.apply(
        quiet, m.ClientExtend(env.ExtendReason.UNCLEAR_IMAGE, Decision(True, None)), at, TERMS
    )
    assert indicates(effects) == []


def test_remaining_seconds_are_never_negative() -> None:
    assert m.remaining_s(granted(), T0 + 45 * S) == 0.0
    assert m.remaining_s(granted(), T0 + 0.25 * S) == 29.8
    assert m.remaining_s(granted(env.Purpose.PROBE), T0) is None


# --------------------------------------------------------------------------- the sweep


async def test_the_sweep_turns_off_the_light_of_a_session_whose_process_vanished() -> None:
    """A row whose owner died is closed by the sweep of another process (here the one at its
    start), which tells the device ``bye`` and ``indicator off``: the machine of that session is
    gone with its owner."""
    store, commands = FakeSessionStore(), FakeCommands()
    buses: list[FakeBus] = []

    def bus(handlers: object) -> FakeBus:
        buses.append(FakeBus(handlers))  # type: ignore[arg-type]
        return buses[-1]

    clock = FakeClock(T0 + 60 * S)
    await store.open(
        SessionRow(
            session_id="s-orphan1",
            device_id="cam-0001",
            purpose=env.Purpose.VIEW,
            staff_id="staff-op0001",
            recipient_id="rec-0001",
            instance_id="gone",
            state="connected",
            started_at=T0,
            deadline=T0 + 30 * S,
        ),
        {},
    )
    sig = Signalling(
        instance_id="unit",
        gate=FakeGate(),
        commands=commands,
        presence=FakePresence({"cam-0001": DeviceKind.CAMERA}),
        sessions=store,
        checks=FakeChecks(),
        bus=bus,
        clock=clock,
        config=SignallingConfig(sweep_interval_s=0.01, sweep_grace_s=0.0),
    )
    async with sig, asyncio.timeout(5):
        while not commands.sent:
            await asyncio.sleep(0.01)  # the sweep's tasks run on loop time
    assert buses[0].sent("cam-0001") == [env.Bye("s-orphan1", env.ByeReason.TIMEOUT)]
    assert commands.sent == [
        (
            "cam-0001",
            CommandOp.INDICATOR,
            {"on": False, "session_id": "s-orphan1", "purpose": "view"},
        )
    ]
    assert store.rows["s-orphan1"].end_reason == "timeout"


# --------------------------------------------------------------------------- the plan's countdown


@pytest.mark.parametrize(
    ("live_countdown", "remaining"), [(None, 30.0), (True, 30.0), (False, None)]
)
async def test_the_plan_says_whether_the_home_sees_the_seconds_left(
    live_countdown: bool | None, remaining: float | None
) -> None:
    """A view's ``indicator on`` carries the seconds left unless the brukare's plan turns the
    countdown off (``Decision.live_countdown``; a gate without plan terms counts down)."""
    commands, checks = FakeCommands(), FakeChecks(duty=("staff-op0001",))
    gate = FakeGate()
    gate.allow("cam-0001", cap_s=30)
    key = ("cam-0001", GatePurpose.CAMERA_CHECK)
    gate.decisions[key] = dataclasses.replace(gate.decisions[key], live_countdown=live_countdown)
    check_id = checks.queue("cam-0001")
    sig = Signalling(
        instance_id="unit",
        gate=gate,
        commands=commands,
        presence=FakePresence({"cam-0001": DeviceKind.CAMERA}),
        sessions=FakeSessionStore(),
        checks=checks,
        bus=FakeBus,
        clock=FakeClock(T0),
    )
    async with sig, sig.connect(Principal("staff-op0001", Role.OPERATOR, via="token")) as conn:
        request = env.Request("s-count-01", "cam-0001", env.Purpose.VIEW, check_id=check_id)
        await sig.handle_client(conn, env.encode(request))
        assert isinstance(await conn.recv(1.0), env.Granted)
        async with asyncio.timeout(5):
            while not commands.sent:
                await asyncio.sleep(0)  # the indicator goes in its own task
    _, op, args = commands.sent[0]  # then sleep and off, as the client left
    assert op is CommandOp.INDICATOR
    assert args.get("remaining_s") == remaining
    assert args["on"] is True
    assert args["purpose"] == "view"


# --------------------------------------------------------------------------- order at the device


class _SlowCommands(FakeCommands):
    """Holds the ack of ``indicator on`` until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.ack = asyncio.Event()

    async def send(
        self,
        device_id: str,
        op: CommandOp,
        args: dict[str, Any] | None = None,
        timeout_s: float = 5.0,
    ) -> CommandAck:
        if op is CommandOp.INDICATOR and (args or {}).get("on"):
            await self.ack.wait()
        return await super().send(device_id, op, args, timeout_s)


class _BrokerBus(FakeBus):
    """A broker that takes a message at once and confirms it later (MQTT's QoS 1): the offer's
    confirmation waits until the test lets it go."""

    def __init__(self, handlers: BusHandlers, puback: asyncio.Event) -> None:
        super().__init__(handlers)
        self.puback = puback

    async def publish_to_device(self, device_id: str, payload: bytes) -> None:
        await super().publish_to_device(device_id, payload)
        if isinstance(self.to_device[-1][1], env.Offer):
            await self.puback.wait()


async def test_what_was_held_reaches_the_device_before_what_came_after() -> None:
    """The client's offer and candidates held until the device acks ``indicator on`` go to the
    device first, in order; a candidate the client sends while they are being published waits
    for them (a candidate or its end overtaking one is lost at the device, and no frame flows)."""
    commands, checks = _SlowCommands(), FakeChecks(duty=("staff-op0001",))
    gate = FakeGate()
    gate.allow("cam-0001", cap_s=30)
    check_id = checks.queue("cam-0001")
    puback = asyncio.Event()
    buses: list[_BrokerBus] = []

    def bus(handlers: BusHandlers) -> _BrokerBus:
        buses.append(_BrokerBus(handlers, puback))
        return buses[-1]

    sig = Signalling(
        instance_id="unit",
        gate=gate,
        commands=commands,
        presence=FakePresence({"cam-0001": DeviceKind.CAMERA}),
        sessions=FakeSessionStore(),
        checks=checks,
        bus=bus,
        clock=FakeClock(T0),
    )
    sid = "s-order-01"
    first = env.Candidate(sid, "candidate:1 1 udp 1 192.0.2.1 9 typ host", sdp_mid="0")
    second = env.Candidate(sid, "candidate:2 1 udp 1 192.0.2.2 9 typ host", sdp_mid="0")
    async with sig, sig.connect(Principal("staff-op0001", Role.OPERATOR, via="token")) as conn:
        request = env.Request(sid, "cam-0001", env.Purpose.VIEW, check_id=check_id)
        await sig.handle_client(conn, env.encode(request))
        assert isinstance(await conn.recv(1.0), env.Granted)
        await sig.handle_client(conn, env.encode(env.Offer(sid, VIEW_OFFER)))
        await sig.handle_client(conn, env.encode(first))
        assert buses[0].sent("cam-0001") == []  # held: the indicator is not on yet
        commands.ack.set()
        async with asyncio.timeout(5):
            while not buses[0].sent("cam-0001"):
                await asyncio.sleep(0)  # the held offer is on its way
            late = asyncio.create_task(sig.handle_client(conn, env.encode(second)))
            for _ in range(20):
                await asyncio.sleep(0)
            puback.set()
            await late
            while len(buses[0].sent("cam-0001")) < 3:
                await asyncio.sleep(0)
        sent = buses[0].sent("cam-0001")
    assert [type(m) for m in sent[:1]] == [env.Offer]
    assert sent[1:3] == [first, second]
