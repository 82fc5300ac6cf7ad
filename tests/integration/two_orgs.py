"""Two organisations in one installation, for the tests of issue 17: ``kommun-a`` and ``kommun-b``
(:func:`tools.demo_orgs.demo_orgs`), each with its unit and team, made as the demo makes them, and
staff of either with a bearer token (members of their organisation's team)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from identity import store as staff_store
from kernel.roles import Role
from tools.demo_orgs import DemoOrg, demo_orgs, ensure_orgs

A, B = demo_orgs(2)


@dataclass(frozen=True)
class Staff:
    staff_id: str
    username: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def two_orgs(pool: asyncpg.Pool, now: object) -> tuple[DemoOrg, DemoOrg]:
    await ensure_orgs(pool, (A, B), now)  # type: ignore[arg-type]
    return A, B


async def staff_of(
    pool: asyncpg.Pool,
    org: DemoOrg,
    role: Role,
    name: str | None = None,
    *,
    teams: list[str] | None = None,
) -> Staff:
    """A password-less account of ``org`` (in its team unless ``teams`` says) and its token."""
    username = f"{name or role.value.replace('_', '-')}-{org.suffix}"
    async with pool.acquire() as conn:
        account = await staff_store.create_staff(
            conn,
            username=username,
            role=role,
            password=None,
            is_service=True,
            organisation_id=org.organisation_id,
            teams=[org.team_id] if teams is None else teams,
        )
        token = await staff_store.create_token(
            conn, staff_id=account.staff_id, role=role, ttl_s=3600, label="two organisations"
        )
    return Staff(account.staff_id, username, token)
