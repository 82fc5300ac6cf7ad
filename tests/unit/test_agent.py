"""The device agent's pure parts and hooks: health from a real source (``agent.health``: each
picture measured by the motion kernel, synthetic pictures and real infrared frames of a shared
clip), the conversion of every pixel format to the I420 it sends (``agent.sources.to_i420``), the
``health.video`` contract, ``--source`` parsing, the indicator hooks (a real script, a GPIO
directory) and ``homecare agent``'s refusals (exit 2, nothing started)."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from agent.audio import AudioError, MicSpec, parse_audio
from agent.health import Picture, PictureMeter, VideoLimits, assess
from agent.indicator import CommandLamp, GpioLamp, IndicatorError
from agent.sources import SourceError, SourceKind, parse_source, to_i420
from devices import topics
from devices.errors import PayloadError
from services import logs
from supervision.checks import video_trouble
from tests.unit.test_verdict_infrared import CLIPS, bed_seen_from_above, infrared, uniform
from tools.cli import main
from vision.verdict import DEFAULT_THRESHOLDS

U8 = npt.NDArray[np.uint8]
#: Real infrared night frames, stored as packed BGRA (lossless FFV1): 700x400 at 6 fps.
SLEEP_CLIP = CLIPS / "eventsleep_s09c2_lieup.mkv"
needs_clip = pytest.mark.skipif(not SLEEP_CLIP.is_file(), reason="../shared/data/video is absent")


def _steady(n: int, fps: float, *, flat: bool = False, luma: float = 90.0) -> list[Picture]:
    return [Picture(i / fps, luma, 0.1 if flat else 2.0, flat) for i in range(n)]


def test_health_from_the_pictures_that_arrived() -> None:
    pictures = _steady(50, 10.0)
    now = pictures[-1].at + 0.05
    ok = assess(pictures, now)
    assert ok.state is topics.VideoState.OK
    assert ok.fps == pytest.approx(10.0, abs=0.01)
    assert ok.luma == 90.0
    # nothing for longer than stale_s: no_frames, whatever came before
    gone = assess(pictures, now + VideoLimits().stale_s + 0.1)
    assert (gone.state, gone.fps, gone.luma) == (topics.VideoState.NO_FRAMES, 0.0, None)
    assert assess([], 100.0).state is topics.VideoState.NO_FRAMES
    # flat pictures (a hand over the lens, tape, black): covered; a dim structured one is ok
    covered = assess(_steady(50, 10.0, flat=True, luma=20.0), now)
    assert covered.state is topics.VideoState.COVERED
    dim_ir = assess(_steady(50, 10.0, luma=30.0), now)
    assert dim_ir.state is topics.VideoState.OK
    # a few flat frames among structured ones are not a covered lens
    mixed = [Picture(p.at, p.luma, p.detail, i % 3 == 0) for i, p in enumerate(pictures)]
    assert assess(mixed, now).state is topics.VideoState.OK
    with pytest.raises(ValueError, match="stale_s"):
        VideoLimits(window_s=2.0, stale_s=3.0)


def _health_of(
    make: Callable[[float], U8], seconds: float = 3.0, fps: float = 5.0
) -> tuple[topics.VideoHealth, list[Picture]]:
    """``health.video`` after ``seconds`` of pictures ``make(t)``, each measured as the agent's
    decoding thread measures it (by the motion kernel)."""
    meter = PictureMeter()
    pictures = [meter.measure(make(i / fps), i / fps) for i in range(round(seconds * fps))]
    return assess(pictures, pictures[-1].at + 0.01), pictures


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("lit_bed", topics.VideoState.OK),
        ("dim_infrared_bed", topics.VideoState.OK),  # as dim as "dark", but it shows the bed
        ("hand_over_lens", topics.VideoState.COVERED),  # uniform, lit, grainy
        ("hand_with_light_leaking", topics.VideoState.COVERED),  # variance, but no edges
        ("black", topics.VideoState.COVERED),  # nothing at all: no structure either
    ],
)
def test_a_covered_lens_is_told_by_its_detail_as_the_motion_check_tells_it(
    name: str, expected: topics.VideoState
) -> None:
    lit = np.clip(bed_seen_from_above() + 0.5, 0, 255).astype(np.uint8)
    make: Callable[[float], U8] = {
        "lit_bed": lambda t: lit,
        "dim_infrared_bed": lambda t: infrared(bed_seen_from_above(), t),
        "hand_over_lens": lambda t: uniform(95.0, t, noise=2.0),
        "hand_with_light_leaking": lambda t: uniform(80.0, t, noise=2.0, tilt=60.0),
        "black": lambda t: np.full((240, 320), 16, np.uint8),
    }[name]
    health, pictures = _health_of(make)
    assert health.state is expected, (name, [round(p.detail, 2) for p in pictures])
    if name == "hand_with_light_leaking":  # the variance rule alone (flat_std) called it ok
        assert float(np.std(make(0.0))) > 2 * DEFAULT_THRESHOLDS.flat_std
        assert max(p.detail for p in pictures) <= DEFAULT_THRESHOLDS.flat_detail
    if name == "dim_infrared_bed":
        assert max(p.luma for p in pictures) <= DEFAULT_THRESHOLDS.dark_luma
        assert min(p.detail for p in pictures) > DEFAULT_THRESHOLDS.flat_detail


def _sleep_frames(count: int) -> Iterator[av.VideoFrame]:
    with av.open(str(SLEEP_CLIP)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= count:
                return
            yield frame


@needs_clip
def test_real_infrared_frames_are_ok_and_their_luma_is_the_clips() -> None:
    """The agent's path for each frame of a real night clip (BGRA): to I420 at its size, then
    measured. Its luma is the clip's true luma (PyAV's own conversion to gray, full range) in
    video range, not a plane of the packed pixels taken as luma; the health is ok."""
    meter = PictureMeter()
    pictures: list[Picture] = []
    for index, frame in enumerate(_sleep_frames(12)):
        assert frame.format.name == "bgra"
        true = float(frame.to_ndarray(format="gray").mean())  # full range: black 0
        i420 = to_i420(frame, 320, 240)
        assert i420.shape == (360, 320)
        sent = float(i420[:240].mean())  # video range: black 16, white 235
        assert abs((sent - 16.0) * 255.0 / 219.0 - true) < 2.0, (index, sent, true)
        pictures.append(meter.measure(i420[:240], index / 6.0))
    assert len(pictures) == 12
    health = assess(pictures, pictures[-1].at + 0.01)
    assert health.state is topics.VideoState.OK, [round(p.detail, 2) for p in pictures]
    assert not any(p.is_flat for p in pictures)


@pytest.mark.parametrize(
    "pix_fmt",
    ["bgra", "rgb24", "gray", "nv12", "yuyv422", "yuv420p", "yuvj420p", "yuvj422p", "full_420p"],
)
def test_every_pixel_format_becomes_video_range_i420(pix_fmt: str) -> None:
    """A dim picture, two colours side by side, in the formats cameras and files give; a
    ``yuv420p`` stream flagged full range (``full_420p``, as H.264 cameras send) too."""
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, :32] = (20, 30, 90)  # a dim blue: luma ~34 (its blue channel 90)
    rgb[:, 32:] = (90, 50, 10)  # a dim orange: luma ~57 (its blue channel 10)
    original = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    true = float(original.to_ndarray(format="gray").mean())  # 0..255
    if pix_fmt == "full_420p":
        frame = original.reformat(format="yuv420p", dst_color_range="JPEG")
        assert frame.color_range == 2  # JPEG: the range a decoder reports for such a stream
    else:
        frame = original.reformat(format=pix_fmt)
    i420 = to_i420(frame, 32, 24)
    assert i420.shape == (36, 32)
    luma = float(i420[:24].mean())
    assert abs(luma - (16.0 + true * 219.0 / 255.0)) < 1.0, (pix_fmt, luma, true)
    # luma, not a colour plane: the orange half is the brighter one
    assert float(i420[:24, 16:].mean()) - float(i420[:24, :16].mean()) > 15


def test_health_video_is_strict_and_bounded() -> None:
    health = topics.decode_health(
        b'{"uptime_s": 5, "video": {"state": "no_frames", "fps": 0, "luma": 12.5}}'
    )
    assert health.video == topics.VideoHealth(topics.VideoState.NO_FRAMES, 0.0, 12.5)
    assert health.as_json()["video"] == {"state": "no_frames", "fps": 0.0, "luma": 12.5}
    assert topics.decode_health(health.encode()) == health
    refused = {
        b'{"uptime_s": 5, "video": {"state": "blurry"}}': ("bad_value", "video.state"),
        b'{"uptime_s": 5, "video": {"fps": 5}}': ("missing_field", "video.state"),
        b'{"uptime_s": 5, "video": {"state": "ok", "fps": -1}}': ("out_of_range", "video.fps"),
        b'{"uptime_s": 5, "video": {"state": "ok", "fps": 241}}': ("out_of_range", "video.fps"),
        b'{"uptime_s": 5, "video": {"state": "ok", "luma": 256}}': ("out_of_range", "video.luma"),
        b'{"uptime_s": 5, "video": {"state": "ok", "fps": true}}': ("wrong_type", "video.fps"),
        b'{"uptime_s": 5, "video": {"state": "ok", "x": 1}}': ("unknown_field", "video.x"),
        b'{"uptime_s": 5, "video": "ok"}': ("wrong_type", "video"),
    }
    for payload, (reason, field) in refused.items():
        with pytest.raises(PayloadError) as e:
            topics.decode_health(payload)
        assert (e.value.reason, e.value.field) == (reason, field), payload


def test_a_camera_that_says_it_shows_nothing_is_a_patrol() -> None:
    assert video_trouble(None) is None
    assert video_trouble("ok") is None
    assert video_trouble("no_frames") == "camera_no_signal"
    assert video_trouble("covered") == "camera_covered"
    assert video_trouble("melted") == "camera_no_signal"  # unknown: trouble, never fine


def test_sources_are_parsed_or_refused_with_a_reason(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not checked here")
    assert parse_source(f"file:{clip}").kind is SourceKind.FILE
    rtsp = parse_source("rtsp://viewer:secret@192.0.2.7:554/stream1")
    assert rtsp.kind is SourceKind.RTSP
    assert rtsp.shown == "rtsp://192.0.2.7:554/stream1"  # never the password
    assert parse_source("rtsps://cam.local/live").kind is SourceKind.RTSP
    assert parse_source("/dev/null").kind is SourceKind.V4L2  # a character device
    refusals = {
        "http://cam/": "--source is",
        "": "--source is",
        f"file:{tmp_path / 'gone.mp4'}": "no such file",
        f"file:{tmp_path}": "no such file",
        "file:": "names no file",
        "rtsp://": "needs a host",
        "rtsp://cam:port/x": "not a usable RTSP URL",
        "rtsp://cam/a b": "no spaces",
        "v4l2:/dev/video-none": "no such camera device",
        f"v4l2:{clip}": "not a camera device",
    }
    for text, message in refusals.items():
        with pytest.raises(SourceError, match=message):
            parse_source(text)


async def test_the_indicator_command_gets_on_and_off_and_failures_are_false(
    tmp_path: Path,
) -> None:
    seen = tmp_path / "lamp.txt"
    script = tmp_path / "lamp.sh"
    script.write_text(f'#!/bin/sh\necho "$1 $2" >> {seen}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    lamp = CommandLamp.parse(f"{script}")
    assert await lamp.set(True, "view")
    assert await lamp.set(False, "view")
    assert seen.read_text().splitlines() == ["on view", "off view"]
    assert not await CommandLamp.parse("/bin/false").set(True, "probe")
    assert not await CommandLamp.parse(str(tmp_path / "missing")).set(True, "probe")
    with pytest.raises(IndicatorError):
        CommandLamp.parse("  ")
    with pytest.raises(IndicatorError):
        CommandLamp.parse("'unclosed")


async def test_the_gpio_lamp_exports_and_writes_sysfs(tmp_path: Path) -> None:
    # the sysfs layout as the kernel makes it once a line is exported
    pin = tmp_path / "gpio17"
    pin.mkdir()
    (tmp_path / "export").write_text("")
    (pin / "direction").write_text("in\n")
    (pin / "value").write_text("0\n")
    lamp = GpioLamp(17, root=tmp_path)
    assert await lamp.set(True, "call")
    assert ((pin / "direction").read_text(), (pin / "value").read_text()) == ("out", "1")
    assert await lamp.set(False, "call")
    assert (pin / "value").read_text() == "0"
    assert not await GpioLamp(18, root=tmp_path / "none").set(True, "view")
    with pytest.raises(IndicatorError):
        GpioLamp(-1)


def test_audio_inputs_are_parsed_or_refused() -> None:
    assert parse_audio("none") is None
    assert parse_audio("alsa:default") == MicSpec("alsa", "default")
    assert parse_audio(" alsa:plughw:1,0 ") == MicSpec("alsa", "plughw:1,0")
    # PyAV's own FFmpeg has no PulseAudio input: the server through ALSA's pulse device
    pulse = parse_audio("pulse:default")
    assert pulse in [MicSpec("pulse", "default"), MicSpec("alsa", "pulse")]
    assert parse_audio("pulse") == pulse
    for bad in ("", "alsa", "alsa:a b", "pulse:mic2", "oss:/dev/dsp", "lavfi:sine"):
        with pytest.raises(AudioError):
            parse_audio(bad)


def test_bad_agent_options_exit_2_before_anything_connects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00" * 4096)
    broker = "--mqtt-url=mqtt://127.0.0.1:9"  # nothing listens: a start would fail differently
    cases = {
        ("--source", "ftp://cam/x"): "--source is",
        ("--source", f"file:{tmp_path / 'gone.mp4'}"): "no such file",
        ("--source", f"file:{garbage}"): "cannot decode",
        ("--source", "rtsp://:554/x"): "needs a host",
        ("--source", "v4l2:/dev/video-none"): "no such camera device",
        ("--source", "rtsp://cam/x", "--indicator-command", "'x"): "cannot be split",
        ("--source", "rtsp://cam/x", "--ca-file", str(garbage)): "--ca-file",
        ("--source", "rtsp://cam/x", "--audio", "alsa:default"): "--audio is for a video phone",
        ("--source", "rtsp://c/x", "--kind", "video_phone", "--audio", "jack:x"): "--audio is",
        ("--source", "rtsp://c/x", "--kind", "video_phone", "--audio", "alsa:"): "names no",
        ("--source", "rtsp://c/x", "--kind", "video_phone", "--audio", "pulse:x"): "pulse takes",
    }
    for extra, message in cases.items():
        assert main(["agent", "--id", "cam-agent-1", broker, *extra]) == 2, extra
        assert message in capsys.readouterr().err, extra
    assert main(["agent", "--id", "Cam_1", broker, "--source", "rtsp://cam/x"]) == 2
    assert "--id" in capsys.readouterr().err
    assert main(["agent", "--id", "cam-1", "--mqtt-url=http://x", "--source", "rtsp://c/x"]) == 2
    assert "--mqtt-url" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["agent", "--id", "cam-1", broker, "--source", "rtsp://c/x", "--size", "641x480"])
    assert e.value.code == 2


def test_the_agents_records_are_json_events_without_a_urls_credentials(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``homecare agent`` routes the standard library's records (its own, homeside's, aiortc's)
    through the service's processors: JSON off a TTY, the logger named, below the level left
    out, and no URL's user or password whatever a message holds."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        logs.route_stdlib("info", "json")
        logs.route_stdlib("info", "json")  # again: still one handler
        logging.getLogger("agent.sources").warning(
            "video source %s failed", "rtsp://viewer:p@ss-w0rd@192.0.2.7:554/stream1"
        )
        logging.getLogger("homeside.device").debug("not at info")
        logging.getLogger("agent.app").info("to mqtts://cam-1:hunter2@broker:8883 and %d", 7)
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
    err = capsys.readouterr().err
    assert "p@ss" not in err
    assert "w0rd" not in err
    assert "hunter2" not in err
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert [(e["logger"], e["level"], e["event"]) for e in events] == [
        ("agent.sources", "warning", "video source rtsp://[removed]@192.0.2.7:554/stream1 failed"),
        ("agent.app", "info", "to mqtts://[removed]@broker:8883 and 7"),
    ]
