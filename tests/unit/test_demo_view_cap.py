"""``homecare demo --view-cap N``: the demo plans' live-view cap; a bad value exits 2, says why."""

from __future__ import annotations

import pytest

from tools.cli import parser


def test_view_cap_is_parsed_with_a_default() -> None:
    assert parser().parse_args(["demo"]).view_cap == 30
    assert parser().parse_args(["demo", "--view-cap", "10"]).view_cap == 10


@pytest.mark.parametrize(
    ("value", "needle"), [("9", "10 to 60"), ("61", "10 to 60"), ("ten", "whole number")]
)
def test_bad_view_cap_exits_2_with_the_reason(
    value: str, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(["demo", "--view-cap", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--view-cap" in err
    assert needle in err
