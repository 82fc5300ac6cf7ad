"""The device's own VP8 for a probe: the rate an offer asks, bounded, and key frames on a clock."""

from __future__ import annotations

import itertools

import av
import numpy as np
import pytest

from devices import envelope as env
from homeside.encoder import MAX_KBPS, MIN_KBPS, Vp8AtRate, asked_kbps, offers_vp8
from homeside.media import VIDEO_TIME_BASE
from homeside.peer import Refused, probe_kbps
from simulators.scenes import Scene, SceneKind
from vision.verdict import DEFAULT_THRESHOLDS

VIDEO = [
    "m=video 9 UDP/TLS/RTP/SAVPF 97 98",
    "c=IN IP4 0.0.0.0",
    "{b}",
    "a=recvonly",
    "a=rtpmap:97 VP8/90000",
    "a=rtpmap:98 rtx/90000",
    "a=fmtp:98 apt=97",
]
HEAD = ["v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0"]


def sdp(b: str = "b=AS:64", *, session: str = "", audio_b: str = "") -> str:
    audio = ["m=audio 9 UDP/TLS/RTP/SAVPF 0", "c=IN IP4 0.0.0.0", audio_b, "a=recvonly"]
    lines = [*HEAD, session, *audio, *(line.format(b=b) for line in VIDEO)]
    return "\r\n".join(line for line in lines if line) + "\r\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (sdp("b=AS:64"), 64),
        (sdp("b=AS:150"), 150),
        (sdp("b=AS:0"), MIN_KBPS),  # bounded below (0 would be no video at all)
        (sdp("b=AS:5"), MIN_KBPS),
        (sdp("b=AS:100000"), MAX_KBPS),  # bounded above
        (sdp("b=TIAS:64000"), None),  # only b=AS is read
        (sdp("a=framerate:5"), None),  # no rate asked: the camera sends what it has
        (sdp("a=framerate:5", audio_b="b=AS:32"), None),  # the audio section's is not video's
        (sdp("a=framerate:5", session="b=AS:200"), 200),  # the session's, for every section
        (sdp("b=AS:80", session="b=AS:200"), 80),  # the video section's wins
    ],
)
def test_the_asked_rate_is_the_video_sections_b_as_bounded(text: str, expected: int | None) -> None:
    assert asked_kbps(text) == expected


@pytest.mark.parametrize("bad", ["b=AS:lots", "b=AS:", "b=AS:-64", "b=AS:6.4", "b=AS:６４"])
def test_a_b_as_that_is_no_number_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="b=AS"):
        asked_kbps(sdp(bad))
    offer = env.Offer("p-bad", sdp=sdp(bad), stream=env.ProbeStream(w=320, h=240, fps=5))
    with pytest.raises(Refused) as e:
        probe_kbps(offer)
    assert e.value.code == "bad_offer"


def test_only_a_probes_offer_with_vp8_gets_the_devices_own_encoder() -> None:
    stream = env.ProbeStream(w=320, h=240, fps=5)
    assert probe_kbps(env.Offer("p-1", sdp=sdp(), stream=stream)) == 64
    assert probe_kbps(env.Offer("v-1", sdp=sdp())) is None  # a view: aiortc's path
    no_rate = sdp("a=framerate:5")
    assert probe_kbps(env.Offer("p-2", sdp=no_rate, stream=stream)) is None
    h264 = sdp().replace("VP8/90000", "H264/90000")
    assert offers_vp8(sdp())
    assert not offers_vp8(h264)
    assert probe_kbps(env.Offer("p-3", sdp=h264, stream=stream)) is None


def frames(n: int, fps: float) -> list[av.VideoFrame]:
    scene = Scene(SceneKind.WALKING, seed=5)
    out = []
    for i in range(n):
        frame = av.VideoFrame.from_ndarray(scene.yuv420(i / fps, 160, 120), format="yuv420p")
        frame.pts = round(i / fps * 90_000)
        frame.time_base = VIDEO_TIME_BASE
        out.append(frame)
    return out


def test_key_frames_come_first_and_then_every_interval_of_stream_time() -> None:
    encoder = Vp8AtRate(64, key_interval_s=1.0)
    packets = [encoder.encode(f) for f in frames(16, fps=5)]  # 3 s of stream
    keys = [i for i, p in enumerate(packets) if p is not None and not bytes(p)[0] & 1]
    assert keys == [0, 5, 10, 15]
    assert encoder.key_frames == 4
    assert encoder.frames == 16
    first = packets[0]
    assert first is not None
    assert (first.pts, first.time_base) == (0, VIDEO_TIME_BASE)  # aiortc's RTP time from these


def received_changes(encoder: Vp8AtRate, pictures: list[av.VideoFrame]) -> list[float]:
    """The mean absolute luma difference of each received picture from the one before."""
    decoder = av.CodecContext.create("libvpx", "r")
    shown = []
    for picture in pictures:
        packet = encoder.encode(picture)
        assert packet is not None
        shown.append(decoder.decode(packet)[-1].to_ndarray()[:120].astype(np.float32))
    return [float(np.abs(b - a).mean()) for a, b in itertools.pairwise(shown)]


def test_a_stuck_picture_arrives_as_repeats_at_any_rate() -> None:
    """A camera that repeats its picture must read ``frozen`` (hard rule 7): libvpx alone keeps
    refining a stuck picture at a low rate, so the receiver's pictures go on changing."""
    live = frames(10, fps=5)
    stuck = []  # the camera sticks at its 6th picture for 2 s, then is live again
    for i in range(10):
        frame = av.VideoFrame.from_ndarray(live[5].to_ndarray(), format="yuv420p")
        frame.pts, frame.time_base = round((2 + i / 5) * 90_000), VIDEO_TIME_BASE
        stuck.append(frame)
    after = frames(25, fps=5)[20:]  # 4-4.8 s: live, after the 4 s key frame
    repeat = DEFAULT_THRESHOLDS.repeat_max_mad
    for kbps in (64, 500):
        encoder = Vp8AtRate(kbps)
        changes = received_changes(encoder, [*live, *stuck, *after])
        assert max(changes[10:19]) <= repeat / 4, kbps  # every stuck picture repeats
        assert min(changes[:10] + changes[19:]) > repeat, kbps  # live ones never
        assert encoder.repeats == 9
        baseline = Vp8AtRate(kbps, exact_repeats=False)
        changes = received_changes(baseline, [*live, *stuck, *after])
        assert max(changes[10:19]) > repeat, kbps  # what the rule is for: libvpx alone


def test_the_encoder_refuses_what_it_cannot_do() -> None:
    for kbps in (MIN_KBPS - 1, MAX_KBPS + 1):
        with pytest.raises(ValueError, match="kbps"):
            Vp8AtRate(kbps)
    with pytest.raises(ValueError, match="key_interval_s"):
        Vp8AtRate(64, key_interval_s=0.0)
    untimed = av.VideoFrame(160, 120, "yuv420p")
    with pytest.raises(ValueError, match="pts"):
        Vp8AtRate(64).encode(untimed)
