"""Two (or more) organisations in one demo (``homecare demo --orgs 2``, issue 17).

Each demo organisation is a municipality with one unit and one night team; the demo's homes are
split between them in order (the first half to the first, ...), and each has its own demo
accounts: the usual five (:data:`identity.login.DEMO_ACCOUNTS`) with the organisation's suffix
(``nattpersonal-a``, ``handlaggare-b``, ...), members of its team. An operator of one sees
nothing of the other: row-level security keeps the organisations apart in the database, and the
teams decide whose brukare an operator works with.

With one organisation (the default) the demo is what it always was: the default organisation,
unit and team, and the unsuffixed accounts.

Idempotent, like the rest of the demo: an organisation, unit, team or account that exists is
kept (an account gets a new password, printed again).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from identity import org_store
from identity import store as staff_store
from identity.login import DEMO_ACCOUNTS
from identity.staff import PasswordHasher

ACTOR = "system:demo"
MAX_ORGS = 4


@dataclass(frozen=True, slots=True)
class DemoOrg:
    organisation_id: str
    name: str
    unit_id: str
    team_id: str
    suffix: str

    def username(self, base: str) -> str:
        return f"{base}-{self.suffix}"


def demo_orgs(count: int) -> tuple[DemoOrg, ...]:
    """``kommun-a``, ``kommun-b``, ... with unit ``<org>-centrum`` and team ``<org>-natt``."""
    if not 2 <= count <= MAX_ORGS:
        raise ValueError(f"a demo of several organisations has 2..{MAX_ORGS}")
    out = []
    for i in range(count):
        letter = "abcd"[i]
        org = f"kommun-{letter}"
        out.append(
            DemoOrg(
                organisation_id=org,
                name=f"Kommun {letter.upper()}",
                unit_id=f"{org}-centrum",
                team_id=f"{org}-natt",
                suffix=letter,
            )
        )
    return tuple(out)


def org_of_home(home: int, homes: int, orgs: Sequence[DemoOrg]) -> DemoOrg:
    """Homes ``1..homes`` in order, split as evenly as can be (the first gets the extra)."""
    if not 1 <= home <= homes:
        raise ValueError("home out of range")
    per = -(-homes // len(orgs))  # ceil
    return orgs[min((home - 1) // per, len(orgs) - 1)]


def describe(orgs: Sequence[DemoOrg], homes: int) -> list[str]:
    """One printable line per organisation: its team, its homes, its accounts' suffix."""
    lines = []
    for o in orgs:
        mine = [str(h) for h in range(1, homes + 1) if org_of_home(h, homes, orgs) == o]
        lines.append(
            f"organisation {o.organisation_id} (team {o.team_id}): homes "
            f"{', '.join(mine) or '-'}; its accounts end in -{o.suffix}"
        )
    return lines


async def ensure_orgs(pool: asyncpg.Pool, orgs: Sequence[DemoOrg], now: datetime) -> None:
    """Create each organisation with its unit and team, unless it exists (as the system)."""
    async with pool.acquire() as conn:
        for o in orgs:
            if await org_store.organisation_exists(conn, o.organisation_id):
                continue
            await org_store.create_organisation(
                conn,
                organisation_id=o.organisation_id,
                name=o.name,
                kind="municipality",
                actor=ACTOR,
                at=now,
            )
            await org_store.create_unit(
                conn,
                organisation_id=o.organisation_id,
                unit_id=o.unit_id,
                name=f"{o.name} centrum",
                actor=ACTOR,
                at=now,
            )
            await org_store.create_team(
                conn,
                organisation_id=o.organisation_id,
                unit_id=o.unit_id,
                team_id=o.team_id,
                name=f"Nattpatrullen {o.name}",
                actor=ACTOR,
                at=now,
            )


async def ensure_org_accounts(
    pool: asyncpg.Pool, orgs: Sequence[DemoOrg], *, hasher: PasswordHasher | None = None
) -> dict[str, str]:
    """Each organisation's demo accounts (members of its team), ``{username: password}``."""
    passwords: dict[str, str] = {}
    async with pool.acquire() as conn:
        for o in orgs:
            for base, role in DEMO_ACCOUNTS.items():
                username = o.username(base)
                password = "-".join(secrets.token_hex(3) for _ in range(4))
                existing = await staff_store.find_by_username(conn, username)
                if existing is None:
                    await staff_store.create_staff(
                        conn,
                        username=username,
                        role=role,
                        password=password,
                        hasher=hasher,
                        organisation_id=o.organisation_id,
                        teams=[o.team_id],
                    )
                else:
                    await staff_store.set_password(
                        conn,
                        staff_id=existing.staff_id,
                        password=password,
                        actor="system",
                        hasher=hasher,
                    )
                passwords[username] = password
    return passwords
