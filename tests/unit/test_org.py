"""The organisation model's pure rules (identity/org.py) and the demo's split of homes between
organisations (tools/demo_orgs.py)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from identity.org import Grant, grant_period, require_grant_id, require_id, require_name
from kernel.errors import InvalidInput
from tools.demo_orgs import demo_orgs, org_of_home

T0 = datetime(2026, 5, 1, 22, 0, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["", "-a", "A", "a_b", "a" * 65, "å", "a\n"])
def test_ids_are_lowercase_slugs(bad: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        require_id("team_id", bad)
    assert (refused.value.field, refused.value.code) == ("team_id", "invalid_id")
    assert require_id("team_id", "kommun-a-natt") == "kommun-a-natt"


@pytest.mark.parametrize("bad", ["", "   ", "x" * 201, "rad\nbrytning", "nul\x00"])
def test_names_are_short_printable_text(bad: str) -> None:
    with pytest.raises(InvalidInput):
        require_name("name", bad)
    assert require_name("name", "  Nattpatrullen ") == "Nattpatrullen"


def test_grant_ids_and_periods() -> None:
    with pytest.raises(InvalidInput):
        require_grant_id("grant-")
    assert require_grant_id("grant-abc123") == "grant-abc123"
    for until in (T0, T0 - timedelta(seconds=1)):
        with pytest.raises(InvalidInput) as refused:
            grant_period(T0, until)
        assert refused.value.code == "bad_period"
    with pytest.raises(InvalidInput):
        grant_period(T0.replace(tzinfo=None), None)
    grant_period(T0, None)
    grant_period(T0, T0 + timedelta(days=1))


def test_a_grant_is_active_in_its_period_until_revoked() -> None:
    g = Grant(
        grant_id="grant-abc123",
        team_id="kommun-b-natt",
        team_organisation_id="kommun-b",
        grantee_team_id="kommun-a-natt",
        grantee_organisation_id="kommun-a",
        agreement_ref="AVTAL-1",
        valid_from=T0,
        valid_until=T0 + timedelta(hours=8),
        granted_by="staff-abcdef",
        granted_at=T0,
    )
    assert not g.is_active(T0 - timedelta(seconds=1))
    assert g.is_active(T0)
    assert g.is_active(T0 + timedelta(hours=8) - timedelta(seconds=1))
    assert not g.is_active(T0 + timedelta(hours=8))
    revoked = dataclasses.replace(g, revoked_at=T0, revoked_by="staff-abcdef")
    assert not revoked.is_active(T0 + timedelta(hours=1))
    assert g.to_json(T0)["active"] is True


def test_the_demo_splits_its_homes_between_the_organisations_in_order() -> None:
    a, b = demo_orgs(2)
    assert (a.organisation_id, a.team_id, a.username("nattpersonal")) == (
        "kommun-a",
        "kommun-a-natt",
        "nattpersonal-a",
    )
    assert [org_of_home(h, 6, (a, b)).suffix for h in range(1, 7)] == list("aaabbb")
    assert [org_of_home(h, 5, (a, b)).suffix for h in range(1, 6)] == list("aaabb")
    assert [org_of_home(h, 1, (a, b)).suffix for h in range(1, 2)] == ["a"]
    three = demo_orgs(3)
    assert [org_of_home(h, 7, three).suffix for h in range(1, 8)] == list("aaabbbc")
    for bad in (0, 1, 5):
        with pytest.raises(ValueError):
            demo_orgs(bad)
    with pytest.raises(ValueError):
        org_of_home(7, 6, (a, b))
