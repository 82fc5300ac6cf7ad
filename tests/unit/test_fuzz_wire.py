"""Fuzzing the wire parsers with hypothesis: MQTT topics and payloads (``devices.topics``) and
signalling envelopes (``devices.envelope``). Whatever arrives, a parser either returns a value or
raises its own refusal (``PayloadError`` / ``EnvelopeError``) - never anything else, never hangs.

Complements ``test_topics.py`` and ``test_envelope_fuzz.py`` with structured hostile JSON: deep
nesting (which once escaped as ``RecursionError``), huge numbers, NaN/Infinity literals, duplicate
keys, lone surrogates, and hostile values in every known field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import envelope as env
from devices import topics as t
from devices.errors import PayloadError

DECODERS: list[Callable[[bytes], object]] = [
    lambda p: t.decode_status(p, "cam-0001"),
    lambda p: t.decode_meta(p, "cam-0001"),
    lambda p: t.decode_health(p, "cam-0001"),
    lambda p: t.decode_event(p, "cam-0001"),
    t.decode_ack,
    t.decode_command,
    t.decode_server_status,
    env.decode,
    lambda p: env.decode(p, allowed=env.DEVICE_TYPES),
]

FIELDS = [
    "state", "session", "ts", "kind", "fw", "caps", "video", "w", "h", "fps", "uptime_s",
    "battery_pct", "shutter", "tamper", "link", "type", "id", "op", "ok", "detail",
    "session_id", "sdp", "candidate", "sdpMid", "sdpMLineIndex", "reason", "purpose",
    "device_id", "code", "message", "ice_servers", "deadline",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["online", "offline", "camera", "offer", "answer", "bye", "v=0\r\n", ""])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=20,
)
objects = st.dictionaries(st.sampled_from(FIELDS), values, max_size=8)


def refused_or_parsed(payload: bytes) -> None:
    reasons = []
    for decode in DECODERS:
        try:
            decode(payload)
        except PayloadError as e:
            reasons.append(e.reason)
    assert all(reasons), "a refusal names its reason"


@settings(max_examples=300, deadline=None)
@given(objects)
def test_hostile_objects_in_known_fields(obj: dict[str, Any]) -> None:
    refused_or_parsed(json.dumps(obj).encode())


@settings(max_examples=100, deadline=None)
@given(objects, st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-0", "1" * 400]))
def test_nonstandard_numbers(obj: dict[str, Any], literal: str) -> None:
    raw = json.dumps(obj)
    for key in FIELDS[:12]:
        raw2 = raw[:-1] + (", " if obj else "") + f'"{key}": {literal}' + "}"
        refused_or_parsed(raw2.encode())


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=200))
def test_valid_json_with_garbage_around(head: bytes, tail: bytes) -> None:
    refused_or_parsed(head + b'{"state": "online", "session": 1}' + tail)


@pytest.mark.parametrize("depth", [10, 1_000, 5_000, 30_000])
@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_deep_nesting_is_refused_not_a_crash(depth: int, opener: bytes) -> None:
    closer = b"]" if opener == b"[" else b"}"
    payload = opener * depth + b"1" + closer * depth
    refused_or_parsed(payload)
    refused_or_parsed(b'{"state": "online", "session": 1, "x": ' + payload + b"}")


@pytest.mark.parametrize(
    "payload",
    [
        b'{"state": "online", "session": 1, "session": 2}',
        b'{"state": "\\ud800", "session": 1}',
        b'{"type": "offer", "session_id": "s-1", "sdp": "\\udfff"}',
        b"\xef\xbb\xbf{}",  # a byte order mark
        b"",
        b"null",
        b"\x00" * 64,
        b'{"type": "offer", "session_id": "s-1", "sdp": "' + b"a=x\\r\\n" * 20_000 + b'"}',
    ],
)
def test_odd_payloads(payload: bytes) -> None:
    refused_or_parsed(payload)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_topic_names(name: str) -> None:
    for prefix in ("hc/v1", "t1/hc/v1"):
        for candidate in (name, f"{prefix}/{name}", f"{prefix}/dev/{name}"):
            try:
                found = t.parse_topic(prefix, candidate)
            except PayloadError:
                continue
            assert t.is_device_id(found.device_id)
            assert candidate == t.topic(prefix, found.device_id, found.channel)


REASONS = {
    "too_large", "bad_encoding", "bad_json", "unknown_type", "unexpected_type", "missing_field",
    "unknown_field", "wrong_type", "bad_value", "out_of_range", "bad_session_id",
    "sdp_too_large", "bad_sdp", "bad_candidate",
}  # fmt: skip
sdp_lines = st.lists(
    st.sampled_from(
        ["v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "m=video 9 UDP/TLS/RTP/SAVPF 96"]
    )
    | st.text(max_size=60),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["offer", "answer"]), sdp_lines, st.sampled_from(["\r\n", "\n", "\r", ""]))
def test_malformed_sdp_in_offers_and_answers(kind: str, lines: list[str], sep: str) -> None:
    raw = json.dumps({"type": kind, "session_id": "s-fuzz1", "sdp": sep.join(lines)}).encode()
    try:
        message = env.decode(raw)
    except env.EnvelopeError as e:
        message = e.reason
    assert isinstance(message, env.Offer | env.Answer) or message in REASONS
