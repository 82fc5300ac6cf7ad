"""The in-home unit's screen: one table of texts per language, the spoken line, Chromium's
kiosk command (:mod:`homeside.screen`)."""

from __future__ import annotations

import re
from pathlib import Path

from devices.topics import ScreenLanguage
from homeside import screen

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def test_every_language_has_every_text_with_the_same_blanks() -> None:
    tables = screen.texts()
    assert set(tables) == {lang.value for lang in ScreenLanguage}
    keys = set(tables["sv"])
    for lang, table in tables.items():
        assert set(table) == keys, lang
        for key, text in table.items():
            assert text.strip(), (lang, key)
            assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(tables["sv"][key]))
    # Finnish is Finnish, not a copy of another language
    same = {k for k in keys if tables["fi"][k] in {tables["sv"][k], tables["en"][k]}}
    assert same == set(), same


def test_what_the_unit_says_when_it_rings() -> None:
    assert screen.spoken_text("Aino Virtanen", ScreenLanguage.FI) == "Aino Virtanen soittaa."
    assert screen.spoken_text(None, ScreenLanguage.SV) == "Hemtjänsten ringer."
    assert screen.spoken_text(None, ScreenLanguage.EN) == "Home care is calling."
    assert set(screen.VOICES) == set(ScreenLanguage)


def test_chromium_shows_the_screen_full_screen_without_prompts() -> None:
    command = screen.browser_command("http://127.0.0.1:8081/", chromium="/usr/bin/chromium")
    assert command[0] == "/usr/bin/chromium"
    assert command[-1] == "--app=http://127.0.0.1:8081/"
    for flag in (
        "--kiosk",
        "--no-first-run",
        "--autoplay-policy=no-user-gesture-required",
        "--use-fake-ui-for-media-stream",
    ):
        assert flag in command


def test_the_wav_sizes_espeak_leaves_open_are_filled_in() -> None:
    streamed = b"RIFF\xff\xff\xff\x7fWAVEfmt \x10\x00\x00\x00" + bytes(16) + b"data\xff\xff\xff\x7f"
    wav = screen._sized(streamed + bytes(100))
    assert int.from_bytes(wav[4:8], "little") == len(wav) - 8
    assert int.from_bytes(wav[40:44], "little") == 100
    assert len(wav) == len(streamed) + 100


def test_the_screens_systemd_unit_runs_chromium_with_the_kiosk_flags() -> None:
    unit = ROOT / "deploy" / "systemd" / "homecare-screen.service"
    (start,) = [line for line in unit.read_text().splitlines() if line.startswith("ExecStart=")]
    chromium = start.split(" -- ", 1)[1].split()
    assert chromium == screen.browser_command("http://127.0.0.1:8081/", "/usr/bin/chromium")
