"""Issue 17: a round is per team and rolls up per unit and organisation (``supervision.teams``),
and a caller asks only for teams they cover (``chosen``)."""

from __future__ import annotations

import dataclasses

import pytest

from supervision import teams as tm
from supervision.checks import State
from tests.unit.test_report import planned

PLACES = {
    "north": tm.Place("north", "Norr", "u-1", "Centrum", "kommun-a", "Kommun A"),
    "south": tm.Place("south", "Söder", "u-2", "Söder", "kommun-a", "Kommun A"),
    "night": tm.Place("night", "Natt", "u-9", "Nattcentral", "kommun-b", "Kommun B"),
}


def test_totals_per_team_unit_and_organisation() -> None:
    a, b, c, d = (planned(r) for r in ("r-a", "r-b", "r-c", "r-d"))
    checks = [
        a,
        dataclasses.replace(b, state=State.CLEARED, deadline=None),
        dataclasses.replace(c, state=State.PATROL),
        dataclasses.replace(d, state=State.DEVIATION, deadline=None),
    ]
    team_of = {a.check_id: "north", b.check_id: "north", c.check_id: "south", d.check_id: "night"}
    r = tm.rollup(checks, team_of, PLACES)
    assert [(t["team_id"], t["planned"], t["performed"], t["cleared"]) for t in r["teams"]] == [
        ("night", 1, 0, 0),
        ("north", 2, 1, 1),
        ("south", 1, 0, 0),
    ]
    assert r["teams"][2]["patrol_tasks"] == 1
    assert [(u["unit_id"], u["organisation_id"], u["planned"]) for u in r["units"]] == [
        ("u-1", "kommun-a", 2),
        ("u-2", "kommun-a", 1),
        ("u-9", "kommun-b", 1),
    ]
    assert [
        (o["organisation_id"], o["planned"], o["open"], o["deviations"]) for o in r["organisations"]
    ] == [("kommun-a", 3, 2, 0), ("kommun-b", 1, 0, 1)]
    # The parts add up to the whole.
    for key in tm.COUNTS:
        whole = tm.counts_of(checks)[key]
        assert sum(t[key] for t in r["teams"]) == whole
        assert sum(o[key] for o in r["organisations"]) == whole


def test_a_check_of_no_known_team_is_counted_but_rolls_up_nowhere() -> None:
    a = planned("r-a")
    r = tm.rollup([a], {}, PLACES)
    assert [(t["team_id"], t["planned"]) for t in r["teams"]] == [(None, 1)]
    assert r["units"] == r["organisations"] == []


@pytest.mark.parametrize(
    ("mine", "asked", "result"),
    [
        (frozenset({"north", "south"}), None, frozenset({"north", "south"})),
        (frozenset({"north", "south"}), ["south"], frozenset({"south"})),
        (None, ["night"], frozenset({"night"})),  # the system: any team
        (None, None, None),
    ],
)
def test_the_teams_a_caller_asks_for(
    mine: frozenset[str] | None, asked: list[str] | None, result: frozenset[str] | None
) -> None:
    assert tm.chosen(mine, asked) == result


@pytest.mark.parametrize("asked", [["night"], ["north", "night"], ["nowhere"]])
def test_a_team_not_covered_is_refused(asked: list[str]) -> None:
    with pytest.raises(tm.NotYourTeam):
        tm.chosen(frozenset({"north", "south"}), asked)
