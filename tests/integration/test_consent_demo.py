"""The demo seed on the real database: every case answers the gate as documented, checks fall
due within minutes, the seed is idempotent and re-plans a later demo night; and its agreed times
are valid plans at any time of day, the DST nights included."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from consent import rules
from consent.model import CarePlan, ChangeKind, ConsentChange, Purpose, Reason
from consent.store import PgConsentStore
from tools import demo_seed as demo

pytestmark = pytest.mark.integration

STHLM = ZoneInfo("Europe/Stockholm")
NOW = datetime(2026, 1, 12, 15, 4, 30, tzinfo=UTC)  # 16:04 in Stockholm: daytime on purpose


async def decide(store: PgConsentStore, home: int, purpose: Purpose, at: datetime) -> Reason | None:
    basis = await store.basis_for_device(demo.camera_id(home), at)
    return rules.decide(basis, device_id=demo.camera_id(home), purpose=purpose, at=at).reason


async def audit_count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM audit_log"))


async def test_demo_seed_shows_every_case_and_is_idempotent(pool: asyncpg.Pool) -> None:
    changes: list[ConsentChange] = []
    store = PgConsentStore(pool, publish=changes.append)
    seeded = await demo.seed_consent(store, pool, homes=6, now=NOW)
    assert (seeded.created, seeded.replanned, seeded.bound) == (6, 6, 8)  # 6 cameras, 2 phones
    assert seeded.recipients == [f"r-{i:04d}" for i in range(1, 7)]
    assert len(seeded.lines) == 6

    def first_check(home: int) -> datetime:
        return NOW + timedelta(minutes=2 + (home - 1) * demo.FIRST_STAGGER_MIN)

    # the first home's window is open at once, and every home's first check is due in minutes
    assert await decide(store, 1, Purpose.CAMERA_CHECK, NOW) is None
    assert await decide(store, 1, Purpose.MOTION_ANALYSIS, NOW) is None
    expected = {
        1: None,
        2: None,
        3: None,
        4: Reason.PAUSED,
        5: Reason.WITHDRAWN,
        6: Reason.COHABITANT_MISSING,
    }
    for home, reason in expected.items():
        at = first_check(home)
        assert at - NOW < timedelta(minutes=20)
        assert await decide(store, home, Purpose.CAMERA_CHECK, at) is reason, home
    assert await decide(store, 2, Purpose.MOTION_ANALYSIS, first_check(2)) is Reason.NO_CONSENT
    assert await decide(store, 3, Purpose.MOTION_ANALYSIS, first_check(3)) is None
    # between checks nothing is allowed
    assert await decide(store, 1, Purpose.CAMERA_CHECK, NOW + timedelta(minutes=45)) is (
        Reason.OUTSIDE_WINDOW
    )
    # the demo's devices are bound (and so out of quarantine); the phones too
    quarantined = await pool.fetch("SELECT device_id FROM devices WHERE quarantined")
    assert quarantined == []
    phone = await store.basis_for_device(demo.phone_id(3), NOW)
    assert phone is not None
    assert phone.recipient_id == "r-0003"
    assert any(c.kind is ChangeKind.DEVICE_BOUND for c in changes)

    # the bulk read (one query per table) and the one-brukare read agree on every case
    bases = await store.bases()
    assert list(bases) == seeded.recipients
    for rid in seeded.recipients:
        assert bases[rid] == await store.basis(rid), rid
    assert list(await store.bases(["r-0005", "r-0002", "r-0404"])) == ["r-0002", "r-0005"]

    # again at the same instant: nothing changes, nothing is audited
    before = await audit_count(pool)
    again = await demo.seed_consent(store, pool, homes=6, now=NOW)
    assert (again.created, again.replanned, again.bound) == (0, 0, 0)
    assert await audit_count(pool) == before

    # three hours later: a new demo night, the old plans ended, the rest kept
    later = NOW + timedelta(hours=3)
    third = await demo.seed_consent(store, pool, homes=6, now=later)
    assert (third.created, third.replanned, third.bound) == (0, 6, 0)
    assert await decide(store, 1, Purpose.CAMERA_CHECK, later) is None
    assert await decide(store, 5, Purpose.CAMERA_CHECK, later + timedelta(minutes=14)) is (
        Reason.WITHDRAWN
    )
    plans = (await store.basis("r-0001")).plans
    assert len(plans) == 2
    assert sum(p.is_active(later) for p in plans) == 1


@pytest.mark.parametrize("day", [date(2026, 3, 28), date(2026, 10, 24), date(2026, 1, 12)])
def test_demo_nights_are_valid_plans_at_any_time(day: date) -> None:
    """Every 7 minutes of a day (the DST nights too): the demo's times pass plan validation and
    the first check is due when promised (or just after local noon, where nights change)."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    for minute in range(0, 24 * 60, 7):
        now = start + timedelta(minutes=minute)
        for home in (1, 6):
            checks = demo.demo_checks(home, now, "Europe/Stockholm")
            assert len(checks) >= 4, (now, home)
            problems = rules.validate_checks(
                checks, zone_name="Europe/Stockholm", valid_from=now, valid_until=None
            )
            assert problems == [], (now, home, problems)
            probe = CarePlan("p", "r", "d", valid_from=now, checks=checks)
            due = now + timedelta(minutes=2 + (home - 1) * demo.FIRST_STAGGER_MIN)
            moved = due + timedelta(minutes=2 * demo.TOLERANCE_MIN + 1)  # past local noon
            assert rules.window_at(probe, due, STHLM) or rules.window_at(probe, moved, STHLM), (
                now,
                home,
            )
