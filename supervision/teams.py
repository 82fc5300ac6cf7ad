"""Rounds per team, rolled up per unit and organisation (pure).

A round is for one team (the brukare's, ``round_checks.team_id``); the morning report and the
handover of a night give, beside their whole, the same totals for each team, each unit (a
district) and each organisation (a municipality or a care provider) the checks belong to.
:func:`rollup` counts; the store says which team each check is of and where each team sits
(:class:`Place`). Which teams a caller may ask for is :func:`chosen`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from supervision.checks import PATROL_STATES, Category, Check, State

#: What each roll-up row counts, in this order.
COUNTS = ("planned", "performed", "cleared", "escalated", "deviations", "open", "patrol_tasks")


@dataclass(frozen=True, slots=True)
class Place:
    """Where a team sits: its unit and organisation, with their display names."""

    team_id: str
    team_name: str
    unit_id: str
    unit_name: str
    organisation_id: str
    organisation_name: str


def counts_of(checks: Iterable[Check]) -> Counter[str]:
    """The roll-up counts of some checks: planned (all), performed (of them cleared), escalated,
    deviations, open, and open patrol tasks."""
    n: Counter[str] = Counter()
    for c in checks:
        n["planned"] += 1
        cat = c.category
        if cat is Category.PERFORMED:
            n["performed"] += 1
            n["cleared"] += c.state is State.CLEARED
        elif cat is Category.ESCALATED:
            n["escalated"] += 1
        elif cat is Category.DEVIATION:
            n["deviations"] += 1
        else:
            n["open"] += 1
        n["patrol_tasks"] += c.state in PATROL_STATES
    return n


def rollup(
    checks: Iterable[Check], team_of: Mapping[str, str], places: Mapping[str, Place]
) -> dict[str, list[dict[str, Any]]]:
    """Totals per team, per unit and per organisation, each sorted by id. ``team_of``: the
    team of each check (a check without one is counted under the team ``None``, in no unit)."""
    by_team: dict[str | None, list[Check]] = {}
    for c in checks:
        by_team.setdefault(team_of.get(c.check_id), []).append(c)
    teams: dict[str | None, Counter[str]] = {t: counts_of(cs) for t, cs in by_team.items()}
    units: dict[str, Counter[str]] = {}
    orgs: dict[str, Counter[str]] = {}
    for team_id, n in teams.items():
        place = places.get(team_id) if team_id is not None else None
        if place is None:
            continue
        units.setdefault(place.unit_id, Counter()).update(n)
        orgs.setdefault(place.organisation_id, Counter()).update(n)
    unit_place = {p.unit_id: p for p in places.values()}
    org_place = {p.organisation_id: p for p in places.values()}

    def row(ids: dict[str, Any], n: Counter[str]) -> dict[str, Any]:
        return {**ids, **{k: n[k] for k in COUNTS}}

    def team_row(t: str | None) -> dict[str, Any]:
        p = places.get(t) if t is not None else None
        return row(
            {
                "team_id": t,
                "name": p.team_name if p else None,
                "unit_id": p.unit_id if p else None,
                "organisation_id": p.organisation_id if p else None,
            },
            teams[t],
        )

    return {
        "teams": [team_row(t) for t in sorted(teams, key=lambda t: (t is None, t or ""))],
        "units": [
            row(
                {
                    "unit_id": u,
                    "name": unit_place[u].unit_name,
                    "organisation_id": unit_place[u].organisation_id,
                },
                units[u],
            )
            for u in sorted(units)
        ],
        "organisations": [
            row({"organisation_id": o, "name": org_place[o].organisation_name}, orgs[o])
            for o in sorted(orgs)
        ],
    }


class NotYourTeam(ValueError):
    """A team asked for (``?team=``, duty's ``teams``) that the caller does not cover."""


def chosen(mine: frozenset[str] | None, asked: Collection[str] | None) -> frozenset[str] | None:
    """The teams a read or a duty is for: ``asked`` (each one of ``mine``, the caller's teams;
    ``None`` is every team) or, when nothing is asked, all of ``mine``. Raises
    :class:`NotYourTeam` naming the first team asked that the caller does not cover."""
    if asked is None:
        return mine
    for team in sorted(asked):
        if mine is not None and team not in mine:
            raise NotYourTeam(team)
    return frozenset(asked)
