"""``homecare org add`` on a real database: an organisation with its first unit, team and
administrator (whose token is printed once and works in that organisation only); a bad value or
a taken id exits 2 and leaves nothing behind."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from identity import store as staff_store
from tools.org_cli import org_add_command

pytestmark = pytest.mark.integration


async def _counts(owner: asyncpg.Connection) -> tuple[int, ...]:
    row = await owner.fetchrow(
        "SELECT (SELECT count(*) FROM organisations), (SELECT count(*) FROM units),"
        " (SELECT count(*) FROM teams), (SELECT count(*) FROM staff),"
        " (SELECT count(*) FROM api_tokens), (SELECT count(*) FROM audit_log)"
    )
    assert row is not None
    return tuple(row)


async def test_org_add_makes_an_organisation_and_its_first_administrator(
    database_url: str, owner: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    status = await org_add_command(
        database_url,
        organisation_id="kommun-x",
        name="Kommun X",
        unit="x-centrum:Centrum",
        team="x-natt:Nattpatrullen",
        admin="admin-x",
    )
    assert status == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("hct_")
    team = await owner.fetchrow(
        "SELECT unit_id, organisation_id FROM teams WHERE team_id = 'x-natt'"
    )
    assert tuple(team) == ("x-centrum", "kommun-x")
    principal = await staff_store.token_principal(owner, token, datetime.now(UTC))
    assert principal is not None
    assert principal.role == "administrator"
    assert principal.orgs == frozenset({"kommun-x"})
    assert principal.teams == frozenset({"x-natt"})
    actions = [r["action"] for r in await owner.fetch("SELECT action FROM audit_log ORDER BY seq")]
    assert actions == [
        "organisation.created",
        "unit.created",
        "team.created",
        "staff.created",
        "token.created",
    ]


@pytest.mark.parametrize(
    "args",
    [
        {"organisation_id": "Kommun Y", "name": "Y"},
        {"organisation_id": "kommun-y", "name": "  "},
        {"organisation_id": "kommun-y", "name": "Y", "kind": "county"},
        {"organisation_id": "kommun-y", "name": "Y", "team": "y-natt:Natt"},
        {"organisation_id": "kommun-y", "name": "Y", "unit": "y-centrum"},
        {"organisation_id": "kommun-y", "name": "Y", "unit": "y:Y", "admin": "x"},  # bad username
        {"organisation_id": "default", "name": "Y", "unit": "y:Y"},  # taken
        {"organisation_id": "kommun-y", "name": "Y", "unit": "default:Y"},  # taken unit id
    ],
)
async def test_org_add_refuses_bad_values_and_leaves_nothing(
    database_url: str,
    owner: asyncpg.Connection,
    args: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = await _counts(owner)
    assert await org_add_command(database_url, **args) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith("org add:")
    assert await _counts(owner) == before


async def test_org_add_without_a_database_exits_3() -> None:
    url = "postgresql://postgres@127.0.0.1:1/none"
    assert await org_add_command(url, organisation_id="kommun-z", name="Z") == 3
