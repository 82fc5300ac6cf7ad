"""The device wire contract: round trips (property-based) and every kind of bad input."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices import topics as t
from devices.errors import PayloadError

ids = st.from_regex(r"[a-z0-9-]{1,64}", fullmatch=True)
finite = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)


@given(ids, st.sampled_from(list(t.Channel)))
def test_topic_round_trip(device_id: str, channel: t.Channel) -> None:
    name = t.topic("hc/v1", device_id, channel)
    assert t.parse_topic("hc/v1", name) == t.Topic(device_id, channel)


@given(st.sampled_from(list(t.Presence)), st.integers(0, 2**53), st.none() | finite)
def test_status_round_trip(state: t.Presence, session: int, ts: float | None) -> None:
    status = t.Status(state, session, ts)
    assert t.decode_status(status.encode()) == status


@given(
    st.sampled_from(list(t.DeviceKind)),
    st.text(max_size=64),
    st.lists(st.sampled_from(list(t.Capability)), unique=True, max_size=5),
    st.none()
    | st.builds(t.VideoSpec, st.integers(16, 7680), st.integers(16, 4320), st.floats(0.1, 120)),
)
def test_meta_round_trip(
    kind: t.DeviceKind, fw: str, caps: list[t.Capability], video: t.VideoSpec | None
) -> None:
    meta = t.Meta(kind, fw, tuple(caps), video)
    assert t.decode_meta(meta.encode()) == meta


@given(
    finite,
    st.none() | st.floats(0, 100),
    st.none() | st.sampled_from(list(t.Shutter)),
    st.booleans(),
    st.none() | st.floats(0, 1),
)
def test_health_round_trip(
    uptime: float,
    battery: float | None,
    shutter: t.Shutter | None,
    tamper: bool,
    link: float | None,
) -> None:
    health = t.Health(uptime, battery, shutter, tamper, link)
    assert t.decode_health(health.encode()) == health


@given(st.binary(max_size=300))
def test_random_bytes_never_escape_as_other_errors(raw: bytes) -> None:
    for decode in (
        t.decode_status,
        t.decode_meta,
        t.decode_health,
        t.decode_event,
        t.decode_ack,
        t.decode_command,
    ):
        with contextlib.suppress(PayloadError):
            decode(raw)


@given(
    st.dictionaries(
        st.text(max_size=8),
        st.none()
        | st.booleans()
        | st.integers()
        | st.text(max_size=8)
        | st.lists(st.integers(), max_size=3),
        max_size=6,
    )
)
def test_random_objects_are_decoded_or_refused(obj: dict[str, object]) -> None:
    raw = json.dumps(obj).encode()
    reasons: set[str] = set()
    for decode in (t.decode_status, t.decode_meta, t.decode_health, t.decode_event, t.decode_ack):
        try:
            decode(raw)
        except PayloadError as e:
            reasons.add(e.reason)
    assert "" not in reasons


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "bad_json"),
        (b"\xff\xfe", "bad_encoding"),
        (b"[1, 2]", "bad_json"),
        (b'{"state": "online"}', "missing_field"),
        (b'{"state": "online", "session": "7"}', "wrong_type"),
        (b'{"state": "online", "session": true}', "wrong_type"),
        (b'{"state": "online", "session": -1}', "out_of_range"),
        (b'{"state": "sleeping", "session": 1}', "bad_value"),
        (b'{"state": "online", "session": 1, "colour": "red"}', "unknown_field"),
        (b'{"state": "online", "session": 1, "id": "cam-0002"}', "foreign_topic"),
        (b'{"state": "online", "session": 1, "id": "CAM 1"}', "foreign_topic"),
        (b'{"state": "online", "session": 1, "ts": NaN}', "bad_json"),  # not JSON, as in envelopes
        (b'{"state": "online", "session": 1, "pad": "' + b"x" * 70000 + b'"}', "too_large"),
    ],
)
def test_bad_status_payloads(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as err:
        t.decode_status(payload, "cam-0001")
    assert err.value.reason == reason


def test_own_id_in_payload_is_accepted() -> None:
    status = t.decode_status(b'{"state": "online", "session": 1, "id": "cam-0001"}', "cam-0001")
    assert status.state is t.Presence.ONLINE


@pytest.mark.parametrize(
    "name",
    [
        "hc/v1/dev/CAM/status",
        "hc/v1/dev/cam_1/status",
        "hc/v1/dev//status",
        "hc/v1/dev/a/unknown",
        "hc/v1/server/status",
        "other/dev/a/status",
        "hc/v1/dev/" + "a" * 65 + "/status",
        "hc/v1/dev/a/status/extra",
    ],
)
def test_bad_topics(name: str) -> None:
    with pytest.raises(PayloadError):
        t.parse_topic("hc/v1", name)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"kind": "toaster", "fw": "1", "caps": []}', "bad_value"),
        (b'{"kind": "camera", "fw": "1", "caps": ["xray"]}', "bad_value"),
        (b'{"kind": "camera", "fw": "1", "caps": "video"}', "wrong_type"),
        (b'{"kind": "camera", "fw": 1, "caps": []}', "wrong_type"),
        (
            b'{"kind": "camera", "fw": "1", "caps": [], "video": {"w": 1, "h": 240, "fps": 5}}',
            "out_of_range",
        ),
    ],
)
def test_bad_meta(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as err:
        t.decode_meta(payload)
    assert err.value.reason == reason


def test_command_keeps_op_arguments() -> None:
    cmd = t.Command("c1", t.CommandOp.DRIVE, {"speed": 0.2, "turn": -0.1})
    assert t.decode_command(cmd.encode()) == cmd


@given(
    st.from_regex(r"[A-Za-z0-9_-]{8,64}", fullmatch=True),
    st.booleans(),
    st.none() | st.floats(0, 86400),
    st.none() | st.text(min_size=1, max_size=t.MAX_CALLER_CHARS).filter(str.strip),
)
def test_ring_round_trip(
    session_id: str, auto_answer: bool, timeout_s: float | None, caller: str | None
) -> None:
    ring = t.Ring(session_id, auto_answer, timeout_s, caller)
    wire = ring.command("c1").encode()
    assert t.decode_ring(t.decode_command(wire)) == ring
    assert ("caller" in json.loads(wire)) is (caller is not None)  # optional on the wire


def test_ring_caller_is_kept_out_of_repr() -> None:
    assert "Karin" not in repr(t.Ring("s-12345678", caller="Karin Berg"))


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ({"session_id": "s-12345678", "caller": 42}, "wrong_type"),
        ({"session_id": "s-12345678", "caller": ["Karin"]}, "wrong_type"),
        ({"session_id": "s-12345678", "caller": "x" * (t.MAX_CALLER_CHARS + 1)}, "out_of_range"),
        ({"session_id": "s-12345678", "caller": " \t"}, "bad_value"),
        ({"session_id": "s-12345678", "auto_answer": "yes"}, "wrong_type"),
        ({"session_id": "s-12345678", "timeout_s": -1}, "out_of_range"),
        ({"session_id": "s-12345678", "colour": "blue"}, "unknown_field"),
        ({"caller": "Karin"}, "missing_field"),
        ({"session_id": 7}, "wrong_type"),
    ],
)
def test_bad_ring(args: dict[str, object], reason: str) -> None:
    payload = json.dumps({"id": "c1", "op": "ring", **args}).encode()
    with pytest.raises(PayloadError) as err:
        t.decode_ring(t.decode_command(payload))
    assert err.value.reason == reason


def test_decode_ring_refuses_other_ops() -> None:
    with pytest.raises(PayloadError):
        t.decode_ring(t.Command("c1", t.CommandOp.HANGUP, {"session_id": "s-12345678"}))


def test_encoders_write_compact_json_without_none() -> None:
    """The bytes devices and the backend publish: ``tamper`` and ``auto_answer`` always."""
    status = t.Status(t.Presence.ONLINE, 7, 1765000000.5)
    assert status.encode() == b'{"state":"online","session":7,"ts":1765000000.5}'
    assert t.Health(12.5, link=0.9).encode() == b'{"uptime_s":12.5,"tamper":false,"link":0.9}'
    meta = t.Meta(t.DeviceKind.CAMERA, "1.0", (t.Capability.VIDEO,), t.VideoSpec(320, 240, 5.0))
    assert meta.encode() == (
        b'{"kind":"camera","fw":"1.0","caps":["video"],"video":{"w":320,"h":240,"fps":5.0}}'
    )
    assert t.Event(t.EventType.TAMPER).encode() == b'{"type":"tamper"}'
    assert t.CommandAck("c1", True).encode() == b'{"id":"c1","ok":true}'
    assert t.Ring("s-12345678").command("c2").encode() == (
        b'{"id":"c2","op":"ring","session_id":"s-12345678","auto_answer":false}'
    )
    assert t.server_status(t.Presence.ONLINE, "i-1") == b'{"state":"online","instance":"i-1"}'


@pytest.mark.parametrize(
    ("payload", "reason", "field"),
    [
        (b'{"kind":"camera","fw":"1","caps":[],"video":{"w":320,"h":240,"fps":500}}',
         "out_of_range", "video.fps"),
        (b'{"kind":"camera","fw":"1","caps":["video","xray"]}', "bad_value", "caps[1]"),
        (b'{"kind":"camera","fw":"1","caps":[],"video":{"w":320,"h":240,"fps":5,"x":1}}',
         "unknown_field", "video.x"),
        (b'{"kind":"camera","caps":[]}', "missing_field", "fw"),
        (b'{"kind":"camera","fw":"1","caps":[' + b'"video",' * 16 + b'"audio"]}',
         "out_of_range", "caps"),
    ],
)  # fmt: skip
def test_a_refusal_names_its_field(payload: bytes, reason: str, field: str) -> None:
    with pytest.raises(PayloadError) as err:
        t.decode_meta(payload, "cam-0001")
    assert (err.value.reason, err.value.field) == (reason, field)
    assert "xray" not in str(err.value)  # values stay out of the error text


def test_the_payload_id_without_a_topic_must_be_a_device_id() -> None:
    with pytest.raises(PayloadError) as err:
        t.decode_status(b'{"state": "online", "session": 1, "id": "CAM 1"}')
    assert err.value.reason == "bad_device_id"
    assert t.decode_status(b'{"state": "online", "session": 1, "id": "cam-9"}').id == "cam-9"


def test_the_stored_health_leaves_out_the_repeated_id() -> None:
    health = t.decode_health(b'{"uptime_s": 1, "id": "cam-0001"}', "cam-0001")
    assert health.as_json() == {"uptime_s": 1.0, "tamper": False}


def test_meta_keeps_each_capability_once_in_order() -> None:
    meta = t.decode_meta(b'{"kind": "camera", "fw": "1", "caps": ["video", "audio", "video"]}')
    assert meta.caps == (t.Capability.VIDEO, t.Capability.AUDIO)
