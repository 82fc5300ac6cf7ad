"""Issue 15's wire contract: a look names its check or its reason, the device reports what it
sent, and the ``indicator`` command tells the home a look is live."""

from __future__ import annotations

import json

import pytest

from devices import envelope as env
from devices import topics
from devices.errors import PayloadError

SID = "sess-0001"


def request(**fields: object) -> bytes:
    base = {"type": "request", "session_id": SID, "device_id": "cam-1", "purpose": "view"}
    return json.dumps({**base, **fields}).encode()


def test_a_view_names_its_check() -> None:
    msg = env.decode(request(check_id="20261206.2200.r-0001"))
    assert isinstance(msg, env.Request)
    assert (msg.check_id, msg.reason, msg.note) == ("20261206.2200.r-0001", None, None)


def test_an_extra_look_has_a_reason_and_a_note_kept_out_of_repr() -> None:
    msg = env.decode(request(reason="alarm", note="larmet gick 03:12"))
    assert isinstance(msg, env.Request)
    assert (msg.reason, msg.note) == (env.LookReason.ALARM, "larmet gick 03:12")
    assert "03:12" not in repr(msg)
    assert env.decode(env.encode_bytes(msg)) == msg


@pytest.mark.parametrize(
    ("fields", "reason", "field"),
    [
        ({"check_id": "r-0001"}, "bad_value", "check_id"),
        ({"check_id": "20261206.2200.r-0001\n"}, "bad_value", "check_id"),
        ({"reason": "alarm"}, "missing_field", "note"),
        ({"reason": "alarm", "note": "   "}, "missing_field", "note"),
        ({"note": "just looking"}, "bad_value", "reason"),
        ({"reason": "curiosity", "note": "x"}, "bad_value", "reason"),
        ({"reason": "alarm", "note": "x" * 501}, "out_of_range", "note"),
        (
            {"check_id": "20261206.2200.r-0001", "reason": "alarm", "note": "x"},
            "bad_value",
            "reason",
        ),
    ],
)
def test_a_look_is_owed_to_one_thing_and_said_plainly(
    fields: dict[str, object], reason: str, field: str
) -> None:
    with pytest.raises(env.EnvelopeError) as e:
        env.decode(request(**fields))
    assert (e.value.reason, e.value.field, e.value.session_id) == (reason, field, SID)


def test_an_extension_names_nothing_else() -> None:
    raw = json.dumps(
        {"type": "request", "session_id": SID, "extend": "unclear_image", "check_id": "x"}
    ).encode()
    with pytest.raises(env.EnvelopeError) as e:
        env.decode(raw)
    assert e.value.reason in {"bad_value"}


def test_the_device_reports_what_it_sent_and_only_the_device_may() -> None:
    raw = b'{"type":"stats","session_id":"sess-0001","frames":150,"video_s":10.2}'
    msg = env.decode(raw, allowed=env.DEVICE_TYPES)
    assert msg == env.Stats(SID, 150, 10.2)
    with pytest.raises(env.EnvelopeError) as e:
        env.decode(raw, allowed=env.CLIENT_TYPES)
    assert e.value.reason == "unexpected_type"
    with pytest.raises(env.EnvelopeError) as e:
        env.decode(b'{"type":"stats","session_id":"sess-0001","frames":-1,"video_s":1}')
    assert (e.value.reason, e.value.field) == ("out_of_range", "frames")


def test_the_indicator_command_round_trips_and_refuses_bad_arguments() -> None:
    on = topics.Indicator(True, SID, topics.LivePurpose.PROBE, remaining_s=12.5)
    command = topics.decode_command(on.command("c-1").encode())
    assert command.op is topics.CommandOp.INDICATOR
    assert topics.decode_indicator(command) == on
    bad = topics.Command("c-2", topics.CommandOp.INDICATOR, {"on": "yes", "session_id": SID})
    with pytest.raises(PayloadError) as e:
        topics.decode_indicator(bad)
    assert (e.value.reason, e.value.field) == ("wrong_type", "on")


def test_an_auto_answered_ring_says_how_long_it_announces() -> None:
    ring = topics.Ring(SID, auto_answer=True, timeout_s=30, caller="Anna", announce_s=3)
    assert topics.decode_ring(topics.decode_command(ring.command("c-3").encode())) == ring
    with pytest.raises(PayloadError) as e:
        topics.decode_ring(
            topics.Command("c-4", topics.CommandOp.RING, {"session_id": SID, "announce_s": 61})
        )
    assert (e.value.reason, e.value.field) == ("out_of_range", "announce_s")


@pytest.mark.parametrize(
    "raw",
    [
        request(device_id="cam-1\n"),
        b'{"type":"bye","session_id":"sess-0001\\n","reason":"operator"}',
        b'{"type":"denied","session_id":"sess-0001","reason":"forbidden\\n"}',
    ],
)
def test_an_id_or_code_with_a_trailing_newline_is_refused(raw: bytes) -> None:
    """msgspec matches patterns with re.search, where ``$`` also matches before a final LF."""
    with pytest.raises(env.EnvelopeError) as e:
        env.decode(raw)
    assert e.value.reason in {"bad_value", "bad_session_id"}


def test_a_payload_id_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(PayloadError):
        topics.decode_status(b'{"id":"cam-1\\n","state":"online","session":1}', "cam-1")
