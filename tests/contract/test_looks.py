"""The round's :class:`supervision.ports.Looks`: the in-memory fake and the PostgreSQL reader of
``signal_sessions`` answer the same questions the same way (what an ``ok`` rests on, and the
views and calls of a night)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from supervision.checks import Look
from supervision.fake import FakeLooks
from supervision.ports import Looks
from supervision.sessions import PgLooks

CHECK, OTHER_CHECK = "20250610.2200.r1", "20250610.2300.r2"
NOON = datetime(2025, 6, 10, 10, 0, tzinfo=UTC)  # 12:00 in Stockholm
NIGHT = (NOON, NOON + timedelta(days=1))
S = timedelta(seconds=1)


def look(
    sid: str,
    staff_id: str,
    check_id: str | None,
    started_h: float,
    *,
    video_s: float | None = 10.0,
    purpose: str = "view",
    extra: tuple[str, str] | None = None,
) -> Look:
    start = NOON + timedelta(hours=started_h)
    return Look(
        session_id=sid,
        purpose=purpose,
        staff_id=staff_id,
        device_id="phone-r1" if purpose == "call" else "cam-r1",
        recipient_id="r1",
        check_id=check_id,
        started_at=start,
        ended_at=start + 20 * S,
        video_s=video_s,
        is_extra=extra is not None,
        reason=extra[0] if extra else None,
        note=extra[1] if extra else None,
    )


LOOKS = [
    look("s-view-0001", "op1", CHECK, 10.0, video_s=0.5),
    look("s-view-0002", "op1", CHECK, 10.1, video_s=None),
    look("s-call-0001", "op1", CHECK, 10.2, purpose="call"),
    look("s-view-0003", "op2", CHECK, 10.3),
    look("s-view-0004", "op1", OTHER_CHECK, 11.0),
    look("s-xtra-0001", "op2", None, 14.0, extra=("alarm", "larmet gick")),
    look("s-xtra-0002", "op2", None, 30.0, extra=("follow_up", "next night")),
    look("s-call-0002", "op2", None, 15.0, purpose="call"),
]


@dataclass
class Harness:
    looks: Looks
    add: Callable[[Look], Awaitable[None]]


async def _insert(pool: asyncpg.Pool, x: Look) -> None:
    await pool.execute(
        "INSERT INTO signal_sessions (session_id, device_id, purpose, staff_id, recipient_id,"
        " instance_id, state, started_at, deadline, ended_at, end_reason, check_id, look,"
        " look_reason, look_note, video_s)"
        " VALUES ($1, $2, $3, $4, $5, 'test', 'closed', $6, $7, $7, 'operator', $8, $9, $10, $11,"
        " $12)",
        x.session_id,
        x.device_id,
        x.purpose,
        x.staff_id,
        x.recipient_id,
        x.started_at,
        x.ended_at,
        x.check_id,
        "extra" if x.is_extra else ("check" if x.check_id and x.purpose == "view" else None),
        x.reason,
        x.note,
        x.video_s,
    )


@pytest.fixture(params=["fake", pytest.param("postgres", marks=pytest.mark.integration)])
def harness(request: pytest.FixtureRequest) -> Harness:
    if request.param == "fake":
        fake = FakeLooks()

        async def add(x: Look) -> None:
            fake.add(x)

        return Harness(fake, add)
    pool: asyncpg.Pool = request.getfixturevalue("pool")

    async def insert(x: Look) -> None:
        await _insert(pool, x)

    return Harness(PgLooks(pool), insert)


async def test_what_an_ok_rests_on_is_that_operators_looks_for_that_check(
    harness: Harness,
) -> None:
    for x in LOOKS:
        await harness.add(x)
    mine = await harness.looks.of_check(CHECK, "op1")
    assert [x.session_id for x in mine] == ["s-view-0001", "s-view-0002", "s-call-0001"]
    assert mine == LOOKS[:3]  # every field as stored, the note too
    assert [x.session_id for x in await harness.looks.of_check(CHECK, "op2")] == ["s-view-0003"]
    assert await harness.looks.of_check("20250610.2200.nobody", "op1") == []


async def test_a_night_is_its_checks_looks_and_the_looks_without_a_check_in_it(
    harness: Harness,
) -> None:
    for x in reversed(LOOKS):
        await harness.add(x)
    found = await harness.looks.of_night([CHECK], since=NIGHT[0], until=NIGHT[1])
    assert [x.session_id for x in found] == [
        "s-view-0001",
        "s-view-0002",
        "s-call-0001",
        "s-view-0003",
        "s-xtra-0001",
        "s-call-0002",
    ]
    (extra,) = [x for x in found if x.is_extra]
    assert (extra.reason, extra.note, extra.check_id) == ("alarm", "larmet gick", None)
    assert await harness.looks.of_night([], since=NIGHT[1], until=NIGHT[1] + 2 * S) == []
