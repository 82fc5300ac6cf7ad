"""Property tests: the envelope parser fails only with EnvelopeError, and valid values survive."""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from devices import envelope as env

session_ids = st.text(string.ascii_letters + string.digits + "_-", min_size=8, max_size=64)
device_ids = st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=64)
codes = st.from_regex(r"\A[a-z][a-z0-9_]{0,20}\Z")
unit = st.floats(min_value=-1, max_value=1, allow_nan=False)
sdp_lines = st.lists(st.from_regex(r"\Aa=[ -~]{0,40}\Z"), max_size=20)
sdps = sdp_lines.map(
    lambda extra: (
        "\r\n".join(
            [
                "v=0",
                "o=- 1 1 IN IP4 127.0.0.1",
                "s=-",
                "t=0 0",
                "m=video 9 UDP/TLS/RTP/SAVPF 96",
                *extra,
            ]
        )
        + "\r\n"
    )
)
ice = st.builds(
    env.IceServer,
    urls=st.lists(
        st.sampled_from(["stun:a.example:3478", "turn:b.example:3478", "turns:c.example:5349"]),
        min_size=1,
        max_size=3,
    ).map(tuple),
    username=st.none() | st.text(max_size=20),
    credential=st.none() | st.text(max_size=20),
)
candidates = st.builds(
    lambda f, port, typ: f"candidate:{f} 1 udp 2122260223 10.0.0.{port % 250} {port} typ {typ}",
    st.integers(0, 2**32),
    st.integers(1, 65535),
    st.sampled_from(["host", "srflx", "relay"]),
)

envelopes: st.SearchStrategy[env.Envelope] = st.one_of(
    st.builds(env.Request, session_ids, device_id=device_ids, purpose=st.sampled_from(env.Purpose)),
    st.builds(env.Request, session_ids, extend=st.sampled_from(env.ExtendReason)),
    st.builds(
        env.Granted,
        session_ids,
        device_id=device_ids,
        purpose=st.sampled_from(env.Purpose),
        deadline=st.floats(0, 1e11),
        cap_s=st.floats(0, 86400),
        ice_servers=st.lists(ice, max_size=3).map(tuple),
        ring_timeout_s=st.none() | st.floats(0, 3600),
    ),
    st.builds(env.Denied, session_ids, reason=codes),
    st.builds(env.Offer, session_ids, sdp=sdps, ice_servers=st.lists(ice, max_size=2).map(tuple)),
    st.builds(env.Answer, session_ids, sdp=sdps),
    st.builds(
        env.Candidate,
        session_ids,
        candidate=candidates,
        sdp_mid=st.text(string.digits, min_size=1, max_size=2),
        sdp_mline_index=st.none() | st.integers(0, 63),
    ),
    st.builds(env.Bye, session_ids, reason=st.sampled_from(env.ByeReason)),
    st.builds(
        env.Error, code=codes, message=st.text(max_size=100), session_id=st.none() | session_ids
    ),
    st.builds(env.Drive, session_ids, linear=unit, angular=unit),
    st.builds(env.Video, session_ids, frames=st.integers(0, 2**53)),
    st.builds(env.Ack, session_ids, of=st.sampled_from(env.MessageType)),
)


@given(envelopes)
def test_valid_envelopes_round_trip(message: env.Envelope) -> None:
    assert env.decode(env.encode(message)) == message


@given(st.binary(max_size=2048))
def test_arbitrary_bytes_raise_only_envelope_errors(data: bytes) -> None:
    reason = "accepted"
    try:
        env.decode(data)
    except env.EnvelopeError as e:  # anything else propagates and fails the test
        reason = e.reason
    assert reason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(
    st.fixed_dictionaries(
        {"type": st.sampled_from([*env.MessageType, "hello", ""]) | json_values},
        optional={
            "session_id": session_ids | json_values,
            "sdp": sdps | json_values,
            "candidate": candidates | json_values,
            "reason": json_values,
            "device_id": device_ids | json_values,
            "purpose": json_values,
            "ice_servers": json_values,
            "frames": json_values,
            "linear": json_values,
            "code": json_values,
            "message": json_values,
            "extra": json_values,
        },
    )
)
@settings(max_examples=200)
def test_arbitrary_objects_raise_only_envelope_errors(obj: dict[str, Any]) -> None:
    try:
        decoded = env.decode(json.dumps(obj))
    except env.EnvelopeError as e:
        reason = e.reason
    else:  # whatever was accepted re-encodes to the same value
        reason = "accepted"
        assert env.decode(env.encode(decoded)) == decoded
    assert reason


@given(envelopes, st.data())
def test_mutated_sdp_is_refused_or_still_sdp(message: env.Envelope, data: st.DataObject) -> None:
    if not isinstance(message, env.Offer | env.Answer):
        return
    cut = data.draw(st.integers(0, len(message.sdp)))
    junk = data.draw(st.text(max_size=10))
    obj = env.as_json(message)
    obj["sdp"] = message.sdp[:cut] + junk + message.sdp[cut:]
    try:
        decoded = env.decode(json.dumps(obj))
    except env.EnvelopeError as e:
        reason = e.reason
    else:
        reason = "accepted"
        assert isinstance(decoded, env.Offer | env.Answer)
        assert decoded.sdp.startswith("v=0")
    assert reason in {"accepted", "bad_sdp", "sdp_too_large"}
