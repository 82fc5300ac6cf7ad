"""The signalling envelope codec: every type round-trips; bad input gets a stable reason."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, get_args

import pytest

from devices import envelope as env
from devices.errors import PayloadError
from kernel import codec

SID = "sess-0001abcd"
SDP = (
    "v=0\r\no=- 4611 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n"
)
CAND = "candidate:1 1 udp 2130706431 192.168.1.5 54321 typ host"

VALID: list[env.Envelope] = [
    env.Request(SID, device_id="cam-0001", purpose=env.Purpose.VIEW),
    env.Request(SID, extend=env.ExtendReason.UNCLEAR_IMAGE),
    env.Granted(
        SID,
        device_id="cam-0001",
        purpose=env.Purpose.CALL,
        deadline=1.7e9,
        cap_s=30.0,
        ring_timeout_s=25.0,
        ice_servers=(
            env.IceServer(("stun:stun.example.org:3478",)),
            env.IceServer(
                ("turn:turn.example.org:3478?transport=udp",),
                username="1700000000:staff-x",
                credential="c2Vj",
            ),
        ),
    ),
    env.Denied(SID, reason="no_consent"),
    env.Offer(SID, sdp=SDP),
    env.Offer(
        SID,
        sdp=SDP,
        ice_servers=(env.IceServer(("turns:t.example.org:5349",), username="u", credential="p"),),
    ),
    env.Offer(SID, sdp=SDP, stream=env.ProbeStream(w=160, h=120, fps=2.5)),
    env.Answer(SID, sdp=SDP.replace("recvonly", "sendonly")),
    env.Candidate(SID, candidate=CAND, sdp_mid="0", sdp_mline_index=0),
    env.Candidate(SID, candidate="", sdp_mid="0"),
    env.Bye(SID, reason=env.ByeReason.WITHDRAWN),
    env.Error(code="rate_limited", message="slow down"),
    env.Error(code="unknown_session", message="no such session", session_id=SID),
    env.Drive(SID, linear=0.5, angular=-1.0),
    env.Video(SID, frames=42),
    env.Ack(SID, of=env.MessageType.DRIVE),
]


@pytest.mark.parametrize("message", VALID, ids=lambda m: m.type.value)
def test_every_type_round_trips(message: env.Envelope) -> None:
    assert env.decode(env.encode(message)) == message
    assert env.decode(env.encode_bytes(message)) == message


def test_encoding_is_compact_json_with_type_and_session_id() -> None:
    obj = json.loads(env.encode(env.Bye(SID, env.ByeReason.TIMEOUT)))
    assert obj == {"type": "bye", "session_id": SID, "reason": "timeout"}
    assert json.loads(env.encode(env.Error(code="bad_json", message="x"))) == {
        "type": "error",
        "session_id": None,
        "code": "bad_json",
        "message": "x",
    }


def _reason(data: bytes | str, **kw: Any) -> str:
    with pytest.raises(env.EnvelopeError) as info:
        env.decode(data, **kw)
    return info.value.reason


def _obj(**fields: Any) -> str:
    return json.dumps(fields)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe", "bad_encoding"),
        (b"{not json", "bad_json"),
        (b"[1, 2]", "bad_json"),
        (b'{"type": "bye", "session_id": "sess-0001abcd", "reason": NaN}', "bad_json"),
        (_obj(session_id=SID), "missing_field"),
        (_obj(type="subscribe", session_id=SID), "unknown_type"),
        (_obj(type=7, session_id=SID), "unknown_type"),
        (_obj(type="bye", reason="timeout"), "missing_field"),
        (_obj(type="bye", session_id="short", reason="timeout"), "bad_session_id"),
        (_obj(type="bye", session_id="has space in it", reason="timeout"), "bad_session_id"),
        (_obj(type="bye", session_id=SID, reason="bored"), "bad_value"),
        (_obj(type="bye", session_id=SID, reason="timeout", extra=1), "unknown_field"),
        (_obj(type="request", session_id=SID, purpose="view"), "missing_field"),
        (_obj(type="request", session_id=SID, device_id="Cam 1", purpose="view"), "bad_value"),
        (_obj(type="request", session_id=SID, device_id="cam-1", purpose="stream"), "bad_value"),
        (_obj(type="request", session_id=SID, extend="curious"), "bad_value"),
        (_obj(type="offer", session_id=SID), "missing_field"),
        (_obj(type="offer", session_id=SID, sdp=5), "wrong_type"),
        (_obj(type="offer", session_id=SID, sdp="hello"), "bad_sdp"),
        (_obj(type="offer", session_id=SID, sdp="v=0\r\ns=-\r\n"), "bad_sdp"),
        (_obj(type="offer", session_id=SID, sdp=SDP + "a=x\x00y\r\n"), "bad_sdp"),
        (_obj(type="offer", session_id=SID, sdp=SDP + "not a line\r\n"), "bad_sdp"),
        (
            _obj(type="answer", session_id=SID, sdp=SDP + "a=" + "x" * 65536 + "\r\n"),
            "sdp_too_large",
        ),
        (_obj(type="candidate", session_id=SID, candidate="192.168.1.5 54321"), "bad_candidate"),
        (_obj(type="candidate", session_id=SID, candidate=CAND), "missing_field"),
        (
            _obj(type="candidate", session_id=SID, candidate=CAND, sdp_mline_index=99),
            "out_of_range",
        ),
        (
            _obj(type="candidate", session_id=SID, candidate=CAND + "\n", sdp_mid="0"),
            "bad_candidate",
        ),
        (_obj(type="drive", session_id=SID, linear=2, angular=0), "out_of_range"),
        (_obj(type="drive", session_id=SID, linear=True, angular=0), "wrong_type"),
        (_obj(type="video", session_id=SID, frames=-1), "out_of_range"),
        (_obj(type="video", session_id=SID, frames=1.5), "wrong_type"),
        (
            _obj(
                type="granted",
                session_id=SID,
                device_id="cam-1",
                purpose="view",
                deadline=1,
                cap_s=30,
                ice_servers=[{"urls": ["http://evil"]}],
            ),
            "bad_value",
        ),
        (_obj(type="denied", session_id=SID, reason="Not A Code"), "bad_value"),
        (_obj(type="error", code="x", message=1), "wrong_type"),
        (
            b"{" + b'"a":' * 0 + b'"type": "bye", "session_id": "' + b"s" * 200_000 + b'"}',
            "too_large",
        ),
    ],
)
def test_bad_input_has_a_stable_reason(data: bytes | str, reason: str) -> None:
    assert _reason(data) == reason


def test_session_id_is_kept_on_errors_when_readable() -> None:
    with pytest.raises(env.EnvelopeError) as info:
        env.decode(_obj(type="offer", session_id=SID, sdp="nope"))
    assert info.value.session_id == SID
    assert isinstance(info.value, PayloadError)
    assert isinstance(info.value, ValueError)


def test_error_text_never_contains_the_sdp() -> None:
    secret = SDP + "a=ice-pwd:topsecretpassword\r\n" + "a=" + "y" * 70_000 + "\r\n"
    with pytest.raises(env.EnvelopeError) as info:
        env.decode(_obj(type="offer", session_id=SID, sdp=secret))
    assert "topsecret" not in str(info.value)
    assert "topsecret" not in repr(env.Offer(SID, sdp=SDP + "a=ice-pwd:topsecret\r\n"))


def test_sdp_of_exactly_the_limit_is_accepted() -> None:
    body = SDP + "a=" + "z" * (env.MAX_SDP_BYTES - len(SDP) - 4) + "\r\n"
    assert len(body.encode()) == env.MAX_SDP_BYTES
    message = env.decode(_obj(type="answer", session_id=SID, sdp=body))
    assert isinstance(message, env.Answer)
    assert _reason(_obj(type="answer", session_id=SID, sdp=body + "a")) == "sdp_too_large"


@pytest.mark.parametrize(
    ("kind", "allowed"),
    [
        ("answer", env.CLIENT_TYPES),
        ("granted", env.CLIENT_TYPES),
        ("error", env.CLIENT_TYPES),
        ("offer", env.DEVICE_TYPES),
        ("request", env.DEVICE_TYPES),
        ("drive", env.DEVICE_TYPES),
    ],
)
def test_senders_may_only_use_their_types(kind: str, allowed: frozenset[env.MessageType]) -> None:
    message = next(m for m in VALID if m.type.value == kind)
    assert _reason(env.encode(message), allowed=allowed) == "unexpected_type"


def test_ice_server_urls_may_be_a_single_string() -> None:
    message = env.decode(
        _obj(type="offer", session_id=SID, sdp=SDP, ice_servers=[{"urls": "stun:s.example.org"}])
    )
    assert isinstance(message, env.Offer)
    assert message.ice_servers == (env.IceServer(("stun:s.example.org",)),)


def test_end_of_candidates() -> None:
    message = env.decode(_obj(type="candidate", session_id=SID, candidate=""))
    assert isinstance(message, env.Candidate)
    assert message.is_end


def test_encoders_write_the_same_bytes_as_before() -> None:
    assert env.encode_bytes(env.Bye(SID, env.ByeReason.TIMEOUT)) == (
        b'{"type":"bye","session_id":"sess-0001abcd","reason":"timeout"}'
    )
    granted = env.Granted(SID, device_id="cam-1", purpose=env.Purpose.VIEW, deadline=1.0, cap_s=30)
    assert env.encode(granted) == (  # ice_servers is listed even when empty
        '{"type":"granted","session_id":"sess-0001abcd","device_id":"cam-1","purpose":"view",'
        '"ice_servers":[],"deadline":1.0,"cap_s":30}'
    )
    assert env.as_json(env.Candidate(SID, "", sdp_mid="0")) == {
        "type": "candidate",
        "session_id": SID,
        "candidate": "",
        "sdp_mid": "0",
    }


def test_each_type_is_its_tag_on_the_wire() -> None:
    for kind in get_args(env.Envelope):
        assert kind.type == kind.__struct_config__.tag == kind.__name__.lower()
    assert {kind.type for kind in get_args(env.Envelope)} == set(env.MessageType)


def test_one_definition_gives_the_json_schema() -> None:
    schema = codec.schema(env.Envelope)
    assert schema["discriminator"]["propertyName"] == "type"
    assert set(schema["discriminator"]["mapping"]) == set(env.MessageType)


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda: env.Request(SID, device_id="cam-0001"), "missing_field"),
        (lambda: env.Offer(SID, sdp="hello"), "bad_sdp"),
        (lambda: env.Answer(SID, sdp=SDP + "a=" + "x" * 65536 + "\r\n"), "sdp_too_large"),
        (lambda: env.Candidate(SID, CAND), "missing_field"),
        (lambda: env.Candidate(SID, "not a candidate", sdp_mid="0"), "bad_candidate"),
    ],
)
def test_a_message_built_in_code_keeps_the_same_rules(
    build: Callable[[], env.Envelope], reason: str
) -> None:
    with pytest.raises(codec.CodecError) as err:
        build()
    assert err.value.reason == reason


def test_a_refusal_names_its_field_and_session() -> None:
    data = _obj(type="granted", session_id=SID, device_id="cam-1", purpose="view", deadline=1,
                cap_s=30, ice_servers=[{"urls": ["stun:a", "http://evil"]}])  # fmt: skip
    with pytest.raises(env.EnvelopeError) as info:
        env.decode(data)
    assert (info.value.reason, info.value.field) == ("bad_value", "ice_servers[0].urls[1]")
    assert info.value.session_id == SID


def test_secrets_stay_out_of_repr() -> None:
    server = env.IceServer(("turn:t.example.org",), username="u", credential="c2Vj")
    assert "c2Vj" not in repr(server)
    assert "typ host" not in repr(env.Candidate(SID, CAND, sdp_mid="0"))
    assert "o=-" not in repr(env.Answer(SID, SDP))


@pytest.mark.parametrize(
    ("stream", "reason", "field"),
    [
        ({"w": 640, "h": 480, "fps": 5}, "bad_value", "stream.w"),
        ({"w": 160, "h": 240, "fps": 5}, "bad_value", "stream.w"),
        ({"w": 320, "h": 240, "fps": 1}, "out_of_range", "stream.fps"),
        ({"w": 320, "h": 240, "fps": 5.5}, "out_of_range", "stream.fps"),
        ({"w": 320, "h": 240, "fps": True}, "wrong_type", "stream.fps"),
        ({"w": "320", "h": 240, "fps": 5}, "wrong_type", "stream.w"),
        ({"w": 320, "h": 240}, "missing_field", "stream.fps"),
        ({"w": 320, "h": 240, "fps": 5, "kbps": 100}, "unknown_field", "stream.kbps"),
        ([320, 240, 5], "wrong_type", "stream"),
    ],
)
def test_a_probe_stream_is_one_of_two_sizes_at_2_to_5_fps(
    stream: object, reason: str, field: str
) -> None:
    ok = env.decode(
        _obj(type="offer", session_id=SID, sdp=SDP, stream={"w": 320, "h": 240, "fps": 5})
    )
    assert isinstance(ok, env.Offer)
    assert ok.stream == env.ProbeStream(w=320, h=240, fps=5.0)
    with pytest.raises(env.EnvelopeError) as info:
        env.decode(_obj(type="offer", session_id=SID, sdp=SDP, stream=stream))
    assert (info.value.reason, info.value.field, info.value.session_id) == (reason, field, SID)
