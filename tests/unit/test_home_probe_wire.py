"""The home probe's wire (issue 19 item 5): the ``probe`` command's arguments and the device's
answer are decoded strictly, bounded, and held to the motion check's vocabulary; what a device
computes on its own frames is exactly what it sends."""

from __future__ import annotations

import json

import pytest

from devices import topics as t
from devices.errors import PayloadError
from homeside.home_probe import answer_of
from simulators.scenes import Scene, SceneKind
from supervision.home_probe import check_answer, probe_zones
from supervision.probe import zones_of
from vision import motion
from vision.verdict import Reason, VerdictKind, decide, no_signal

GOOD = {"probe_id": "h-abcdefgh", "window_s": 8.0, "width": 320, "height": 240, "fps": 5.0}


def _command(**args: object) -> t.Command:
    return t.decode_command(json.dumps({"id": "c1", "op": "probe", **args}).encode())


def test_a_probe_command_round_trips_with_zones() -> None:
    zones = t.ProbeZones(320, 240, (t.ProbeZone("bed", ((10.0, 10.0), (100.0, 10.0), (50, 90))),))
    probe = t.Probe("h-abcdefgh", 8.0, 320, 240, 5.0, zones)
    assert t.decode_probe(t.decode_command(probe.command("c1").encode())) == probe


@pytest.mark.parametrize(
    ("change", "reason", "field"),
    [
        ({"probe_id": "short"}, "bad_value", "probe_id"),
        ({"window_s": 0.5}, "out_of_range", "window_s"),
        ({"window_s": 31}, "out_of_range", "window_s"),
        ({"width": 4000}, "out_of_range", "width"),
        ({"width": 321}, "bad_value", "width"),
        ({"fps": 0}, "out_of_range", "fps"),
        ({"fps": True}, "wrong_type", "fps"),
        ({"extra": 1}, "unknown_field", "extra"),
        (
            {"zones": {"w": 320, "h": 240, "zones": [{"name": "bed", "polygon": [[0, 0]]}]}},
            "out_of_range",
            "zones.zones[0].polygon",
        ),
        (
            {
                "zones": {
                    "w": 320,
                    "h": 240,
                    "zones": [{"name": "elsewhere", "polygon": [[0, 0], [1, 0], [1, 1]]}],
                }
            },
            "bad_value",
            "zones.zones[0].name",
        ),
        (
            {
                "zones": {
                    "w": 320,
                    "h": 240,
                    "zones": [{"name": "bed", "polygon": [[0, 0], [999, 0], [1, 1]]}],
                }
            },
            "out_of_range",
            "zones.zones",
        ),
        (
            {
                "zones": {
                    "w": 320,
                    "h": 240,
                    "zones": [{"name": "bed", "polygon": [[0, 0], [9, 0], [1, 1]]}] * 2,
                }
            },
            "bad_value",
            "zones.zones",
        ),
    ],
)
def test_bad_probe_arguments_are_refused(
    change: dict[str, object], reason: str, field: str
) -> None:
    with pytest.raises(PayloadError) as e:
        t.decode_probe(_command(**{**GOOD, **change}))
    assert (e.value.reason, e.value.field) == (reason, field)


def _scene_answer(kind: SceneKind) -> t.ProbeAnswer:
    """What a device sends after watching a simulated scene with its zones for 4 s."""
    scene = Scene(kind, seed=3)
    zones = tuple(motion.Zone(n, tuple(map(tuple, p))) for n, p in scene.zones(320, 240).items())
    state = motion.MotionState(320, 240, zones)
    frames = [motion.step(state, scene.yuv420(i / 5, 320, 240)[:240], i / 5) for i in range(20)]
    return answer_of("h-abcdefgh", decide(frames, window_s=4.0), t.ProbeEnded.WINDOW)


@pytest.mark.parametrize("kind", [SceneKind.ASLEEP, SceneKind.WALKING, SceneKind.COVERED])
def test_what_a_device_computes_is_what_the_backend_takes(kind: SceneKind) -> None:
    answer = _scene_answer(kind)
    decoded = t.decode_probe_answer(answer.encode(), "cam-1")
    assert decoded == answer
    verdict, reason = check_answer(decoded)
    assert verdict.value == answer.verdict
    assert reason.value == answer.reason
    assert decoded.numbers["frames"] == decoded.frames == 20
    assert set(decoded.numbers) >= {"dark_frac", "bed_active_s", "elsewhere_moving_peak"}


def _refused(
    payload: dict[str, object] | bytes, device_id: str = "cam-1"
) -> tuple[str, str | None]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    with pytest.raises(PayloadError) as e:
        check_answer(t.decode_probe_answer(raw, device_id))
    return e.value.reason, e.value.field


def test_bad_answers_are_refused_with_a_reason() -> None:
    base = json.loads(answer_of("h-abcdefgh", no_signal(0), t.ProbeEnded.NO_FRAMES).encode())
    assert _refused(b"[1]")[0] == "bad_json"  # not an object
    assert _refused(b"{" + b" " * t.MAX_PAYLOAD_BYTES + b"}")[0] == "too_large"
    assert _refused({**base, "verdict": "asleep"}) == ("bad_value", "verdict")
    assert _refused({**base, "reason": "because"}) == ("bad_value", "reason")
    assert _refused({**base, "verdict": "Still"}) == ("bad_value", "verdict")  # the shape
    assert _refused({**base, "needs_human": False}) == ("bad_value", "needs_human")
    cleared_empty = {**base, "needs_human": False, "reason": "cleared_activity_in_bed"}
    assert _refused(cleared_empty) == ("bad_value", "verdict")  # only activity/still clears
    assert _refused({**base, "frames": 3}) == ("bad_value", "frames")
    assert _refused({**base, "confidence": 1.5}) == ("out_of_range", "confidence")
    assert _refused({**base, "numbers": {"x": -1}}) == ("out_of_range", "numbers[...]")
    too_many = {f"n{i}": 1.0 for i in range(t.MAX_PROBE_NUMBERS + 1)}
    assert _refused({**base, "numbers": too_many}) == ("out_of_range", "numbers")
    assert _refused({**base, "jpeg": "..."}) == ("unknown_field", "jpeg")
    assert _refused({**base, "ended": "later"}) == ("bad_value", "ended")
    assert _refused({**base, "id": "cam-2"}) == ("foreign_topic", "id")
    del base["numbers"]
    assert _refused(base) == ("missing_field", "numbers")


def test_every_verdict_kind_and_reason_fits_the_wire() -> None:
    for kind in VerdictKind:
        assert (
            t.decode_probe_answer(
                json.dumps(
                    {
                        **json.loads(
                            answer_of("h-abcdefgh", no_signal(0), t.ProbeEnded.WINDOW).encode()
                        ),
                        "verdict": kind.value,
                    }
                ).encode()
            ).verdict
            == kind.value
        )
    for reason in Reason:
        assert len(reason.value) <= 64


def test_zones_go_to_the_device_only_as_the_contract_carries_them() -> None:
    zones = zones_of(640, 480, {"bed": [[10, 10], [300, 10], [300, 200]]})
    carried = probe_zones(zones)
    assert carried is not None
    assert carried.w == 640
    assert carried.zones[0].name == "bed"
    assert probe_zones(None) is None
    many = zones_of(64, 48, {f"z{i}": [[0, 0], [9, 0], [9, 9]] for i in range(9)})
    assert probe_zones(many) is None  # more than the contract carries: nothing can clear
