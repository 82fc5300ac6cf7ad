"""The device agent's pure parts and hooks: health from a real source (``agent.health``), the
``health.video`` contract, ``--source`` parsing, the indicator hooks (a real script, a GPIO
directory) and ``homecare agent``'s refusals (exit 2, nothing started)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from agent.audio import AudioError, MicSpec, parse_audio
from agent.health import Picture, VideoLimits, assess
from agent.indicator import CommandLamp, GpioLamp, IndicatorError
from agent.sources import SourceError, SourceKind, parse_source
from devices import topics
from devices.errors import PayloadError
from supervision.checks import video_trouble
from tools.cli import main


def _steady(n: int, fps: float, *, std: float = 30.0, luma: float = 90.0) -> list[Picture]:
    return [Picture(i / fps, luma, std) for i in range(n)]


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
    covered = assess(_steady(50, 10.0, std=2.0, luma=20.0), now)
    assert covered.state is topics.VideoState.COVERED
    dim_ir = assess(_steady(50, 10.0, std=17.0, luma=30.0), now)
    assert dim_ir.state is topics.VideoState.OK
    # a few flat frames among structured ones are not a covered lens
    mixed = [Picture(p.at, p.luma, 2.0 if i % 3 == 0 else 30.0) for i, p in enumerate(pictures)]
    assert assess(mixed, now).state is topics.VideoState.OK
    with pytest.raises(ValueError, match="stale_s"):
        VideoLimits(window_s=2.0, stale_s=3.0)


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
