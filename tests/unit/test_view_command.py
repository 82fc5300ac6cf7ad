"""``homecare view DEVICE --check ID`` or ``--reason CODE --note TEXT`` (issue 15): what a look is
owed to, parsed and checked before anything is asked of the server (exit 2 with the reason);
``tests/integration/test_signalling_app.py`` has the server's ``denied: no_due_check``."""

from __future__ import annotations

import asyncio
import io

import pytest

from devices import envelope as env
from services.settings import load
from tools.cli import cmd_view, parser
from tools.view import view_command

UNREACHABLE = "http://127.0.0.1:9"  # nothing listens: a request that got through would say so


def test_a_view_names_its_check_or_an_extra_look() -> None:
    check = parser().parse_args(["view", "cam-0001", "--check", "20261206.2200.r-0001"])
    assert (check.check, check.reason, check.note) == ("20261206.2200.r-0001", None, None)
    extra = parser().parse_args(["view", "cam-0001", "--reason", "alarm", "--note", "larmet gick"])
    assert (extra.check, extra.reason, extra.note) == (None, "alarm", "larmet gick")


@pytest.mark.parametrize(
    "argv",
    [
        ["--check", "20261206.2200.r-0001", "--reason", "alarm"],  # owed to one thing
        ["--reason", "curiosity", "--note", "x"],  # not a reason code
    ],
)
def test_a_look_owed_to_two_things_or_to_no_known_reason_exits_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(["view", "cam-0001", *argv])
    assert exit_info.value.code == 2
    assert "--reason" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--reason", "alarm"],  # no note
        ["--reason", "alarm", "--note", "   "],  # a blank note
        ["--note", "just looking"],  # a note without a reason
    ],
)
def test_an_extra_look_needs_a_reason_and_a_note(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    args = parser().parse_args(["view", "cam-0001", "--url", UNREACHABLE, *argv])
    assert asyncio.run(cmd_view(args, load({}))) == 2
    assert "needs both --reason and --note" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("check_id", "field"),
    [("r-0001", "check_id"), ("20261206.2200.R-0001", "check_id")],
)
def test_a_malformed_check_id_is_refused_before_connecting(check_id: str, field: str) -> None:
    out = io.StringIO()
    code = asyncio.run(
        view_command(url=UNREACHABLE, device_id="cam-0001", token=None, out=out, check_id=check_id)
    )
    assert code == 2
    assert out.getvalue().strip() == f"homecare view: {field}: bad_value"


def test_a_note_too_long_is_refused_before_connecting() -> None:
    out = io.StringIO()
    code = asyncio.run(
        view_command(
            url=UNREACHABLE,
            device_id="cam-0001",
            token=None,
            out=out,
            reason=env.LookReason.ALARM,
            note="x" * (env.MAX_NOTE_CHARS + 1),
        )
    )
    assert code == 2
    assert out.getvalue().strip() == "homecare view: note: out_of_range"
