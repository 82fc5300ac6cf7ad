"""The demo's brukare, care plans, consents, pauses and bindings (``homecare demo``).

One brukare per simulated home (:func:`recipient_id` ``r-NNNN`` for ``cam-NNNN``; every third
home also has ``phone-NNNN``), with a *demo night* that begins now: each care plan's agreed times
are placed relative to ``now`` (the first home's first check is due at once, the next homes'
a few minutes apart, then about every 85 minutes), so checks fall due within minutes whatever
the time of day. Everything goes through the consent store, so every change is validated,
audited and published like an administrator's.

The homes, in a cycle of six (so the default six homes show every case):

=====  =====================================================================================
home   basis
=====  =====================================================================================
1      everything in order: all purposes consented
2      no ``motion_analysis`` consent: the motion check may not run, a human looks
3      a cohabitant who has consented too (video phone in this home)
4      paused: in hospital for three days (checks become physical visits)
5      ``camera_check`` consent withdrawn an hour ago
6      a cohabitant who has *not* consented: no camera checks (video phone in this home)
=====  =====================================================================================

Every camera gets zones (:func:`demo_zones`: where :mod:`simulators.scenes` draws the bed and
the floor), so the motion check can clear a sleeper where the plan allows it (homes 1 and 3).

Idempotent: a brukare that exists keeps its consents, cohabitants and pauses; only a demo care
plan whose agreed times belong to an earlier demo night is ended and replaced, and unbound
devices are bound again; a camera that has zones keeps them.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

import asyncpg

from consent import enrol, rules
from consent.errors import Conflict, raise_first
from consent.model import (
    DEFAULT_VIEW_CAP_S,
    DEFAULT_ZONE,
    CarePlan,
    CareRecipient,
    CheckTime,
    Cohabitant,
    Pause,
    PauseReason,
    PauseSource,
    Purpose,
)
from consent.ports import ConsentStore, new_id
from kernel.tenancy import DEFAULT_TEAM
from simulators.scenes import Scene, SceneKind
from supervision import zone_store
from supervision.zones import CameraZones, from_json

ACTOR = "system:demo"
"""The audit log's "who" for everything the demo seeds."""
DECISION_PREFIX = "DEMO-SN-"
TOLERANCE_MIN = 10
FIRST_STAGGER_MIN = 3
"""Minutes between the first checks of successive homes."""
LATER_CHECKS_MIN = (85, 170, 255, 340)
"""The later checks of each home's demo night, in minutes after its first check."""

NAMES = (
    "Astrid Lindqvist",
    "Gunnar Holm",
    "Margareta Berg",
    "Sven Åkesson",
    "Ingrid Nyström",
    "Karl-Erik Sandberg",
    "Elsa Wikström",
    "Bertil Engström",
    "Maj-Britt Lundin",
    "Rune Forsberg",
    "Gun Hedlund",
    "Lennart Öberg",
)
COHABITANTS = ("Rolf Berg", "Ulla Sandberg")
CASES = (
    "alla samtycken",
    "utan samtycke till rörelseanalys",
    "sambo som samtyckt",
    "uppehåll (sjukhusvistelse)",
    "samtycke återkallat",
    "sambo utan samtycke",
)


def recipient_id(home: int) -> str:
    return f"r-{home:04d}"


def camera_id(home: int) -> str:
    return f"cam-{home:04d}"


def phone_id(home: int) -> str:
    return f"phone-{home:04d}"


def has_phone(home: int) -> bool:
    return home % 3 == 0


@dataclass
class Seeded:
    """What the seed did: brukare ids in home order, and one printable line per home."""

    recipients: list[str] = field(default_factory=list)
    created: int = 0
    replanned: int = 0
    bound: int = 0
    zoned: int = 0  # cameras given zones
    lines: list[str] = field(default_factory=list)


def demo_checks(home: int, now: datetime, zone_name: str) -> tuple[CheckTime, ...]:
    """The agreed times of ``home``'s demo night: the first due ``2 + (home - 1) * 3`` minutes
    from now (so the first home's window is open at once), then :data:`LATER_CHECKS_MIN` later.

    A window that would cross local noon (where one night ends and the next begins) is moved
    past it, keeping the checks in order and apart."""
    local = now.astimezone(rules.zone_of(zone_name))
    first = local + timedelta(minutes=2 + ((home - 1) % 20) * FIRST_STAGGER_MIN)
    out: list[CheckTime] = []
    for offset in (0, *LATER_CHECKS_MIN):
        at = first + timedelta(minutes=offset)
        wall = time(at.hour, at.minute)
        minute = rules.night_minute(wall)
        if minute < TOLERANCE_MIN or minute > 24 * 60 - TOLERANCE_MIN:
            at += timedelta(minutes=2 * TOLERANCE_MIN + 1)
            wall = time(at.hour, at.minute)
        out.append(CheckTime(wall, TOLERANCE_MIN))
    # keep only checks that stay apart in night order (a later check may wrap past noon)
    kept: list[CheckTime] = []
    for c in rules.sorted_checks(out):
        if kept and rules.night_minute(c.at) - rules.night_minute(kept[-1].at) <= 2 * TOLERANCE_MIN:
            continue
        kept.append(c)
    return tuple(kept)


async def _grant(
    store: ConsentStore,
    home: int,
    purposes: tuple[Purpose, ...],
    now: datetime,
    person: str | None = None,
) -> None:
    given = now - timedelta(days=30)
    await enrol.grant(
        store,
        recipient_id(home),
        purposes,
        given_at=given,
        informed_by="demo-handlaggare",
        informed_how="Muntlig och skriftlig information vid hembesök",
        actor=ACTOR,
        at=now,
        cohabitant_id=person,
        document_ref=f"DEMO-DOK-{home:04d}",
        ids={p: new_id("cons") for p in purposes},
    )


def _purposes(home: int) -> tuple[Purpose, ...]:
    case = (home - 1) % 6
    purposes = [Purpose.CAMERA_CHECK, Purpose.VIDEO_CALL]
    if case != 1:
        purposes.append(Purpose.MOTION_ANALYSIS)
    if has_phone(home):
        purposes.append(Purpose.AUTO_ANSWER)
    return tuple(purposes)


async def _new_recipient(
    store: ConsentStore, home: int, now: datetime, zone_name: str, team_id: str
) -> CareRecipient:
    rid = recipient_id(home)
    name = NAMES[(home - 1) % len(NAMES)]
    if home > len(NAMES):
        name = f"{name} {home}"
    return await store.add_recipient(
        CareRecipient(
            recipient_id=rid,
            display_name=name,
            home=f"Demogatan {home}, lgh {1000 + home}",
            time_zone=zone_name,
            team_id=team_id,
        ),
        actor=ACTOR,
        at=now,
    )


async def _basis_records(store: ConsentStore, home: int, now: datetime) -> None:
    """The new brukare's consents, cohabitant and pause (each demo case differs here)."""
    rid = recipient_id(home)
    case = (home - 1) % 6
    await _grant(store, home, _purposes(home), now)
    if case in (2, 5):
        co = await store.add_cohabitant(
            Cohabitant(
                cohabitant_id=f"co-{home:04d}",
                recipient_id=rid,
                display_name=COHABITANTS[0 if case == 2 else 1],
                moved_in_at=now - timedelta(days=365),
            ),
            actor=ACTOR,
            at=now,
        )
        if case == 2:
            purposes = (Purpose.CAMERA_CHECK, Purpose.MOTION_ANALYSIS)
            await _grant(store, home, purposes, now, co.cohabitant_id)
    if case == 3:
        await store.add_pause(
            Pause(
                pause_id=new_id("pause"),
                recipient_id=rid,
                starts_at=now - timedelta(hours=2),
                ends_at=now + timedelta(days=3),
                source=PauseSource.HOSPITAL,
                reason=PauseReason.HOSPITAL_STAY,
                note="Inlagd på sjukhus (demo)",
            ),
            actor=ACTOR,
            at=now,
        )
    if case == 4:
        basis = await store.basis(rid)
        camera = next(c for c in basis.consents if c.purpose is Purpose.CAMERA_CHECK)
        await store.withdraw_consent(
            camera.consent_id,
            withdrawn_at=now - timedelta(hours=1),
            reason="Brukaren vill inte längre ha kameratillsyn (demo)",
            actor=ACTOR,
            at=now,
        )


async def _plan(
    store: ConsentStore, home: int, now: datetime, zone_name: str, view_cap_s: int
) -> bool:
    """Make sure the brukare's demo plan has this demo night's times (and view cap); ``True`` if
    (re)planned."""
    rid = recipient_id(home)
    checks = demo_checks(home, now, zone_name)
    basis = await store.basis(rid)
    current = [p for p in basis.plans if p.is_active(now)]
    if any(p.checks == checks and p.view_cap_s == view_cap_s for p in current):
        return False
    if any(not p.decision_ref.startswith(DECISION_PREFIX) for p in current):
        return False  # a real plan: the demo does not touch it
    plan = CarePlan(
        plan_id=new_id("plan"),
        recipient_id=rid,
        decision_ref=f"{DECISION_PREFIX}{home:04d}",
        valid_from=now,
        checks=checks,
        motion_may_clear=home % 2 == 1,
        view_cap_s=view_cap_s,
        instruction="Om brukaren inte ligger i sängen: ring först, sedan nattpatrull.",
    )
    # Check the new plan before ending the old one: a bad plan never leaves the home without any.
    raise_first(rules.validate_plan(plan, zone_name=zone_name))
    for p in current:
        await store.end_plan(p.plan_id, ended_at=now, actor=ACTOR, at=now)
    later = [p for p in basis.plans if p.valid_from > now and p.ended_at is None]
    for p in later:
        await store.end_plan(p.plan_id, ended_at=p.valid_from, actor=ACTOR, at=now)
    await store.add_plan(plan, actor=ACTOR, at=now)
    return True


async def _bind(store: ConsentStore, device_id: str, rid: str, now: datetime) -> bool:
    """Bind as seeding does (at once, as the system, audited ``binding.seeded``: the demo's
    devices have nobody on site to read a code or press a button); ``False`` if already bound
    to this brukare."""
    basis = await store.basis(rid)
    if any(b.device_id == device_id and b.unbound_at is None for b in basis.bindings):
        return False
    try:
        await enrol.bind(store, device_id, rid, actor=ACTOR, at=now)
    except Conflict:
        return False  # bound to someone else by an administrator: leave it
    return True


ZONE_SIZE = (320, 240)
"""The reference picture of the demo zones: the simulated cameras' stream size."""


def demo_zones() -> CameraZones:
    """The bed and floor of the simulated bedroom (every scene has the same room)."""
    width, height = ZONE_SIZE
    polygons = Scene(SceneKind.ASLEEP).zones(width, height)
    return from_json(
        {
            "width": width,
            "height": height,
            "zones": [
                {"name": n, "polygon": [list(p) for p in poly]} for n, poly in polygons.items()
            ],
        }
    )


async def _zones(pool: asyncpg.Pool, device_id: str, now: datetime) -> bool:
    """Give the camera the demo zones unless it has zones; ``True`` if it got them."""
    if await zone_store.get(pool, device_id) is not None:
        return False
    await zone_store.put(pool, device_id, demo_zones(), actor=ACTOR, at=now)
    return True


async def seed_consent(
    store: ConsentStore,
    pool: asyncpg.Pool,
    *,
    homes: int,
    now: datetime,
    zone_name: str = DEFAULT_ZONE,
    view_cap_s: int = DEFAULT_VIEW_CAP_S,
    team_of: Callable[[int], str] | None = None,
) -> Seeded:
    """Seed (or refresh) the demo for homes ``1..homes``; see the module docstring.
    ``view_cap_s`` is the demo plans' live-view cap (``homecare demo --view-cap``); ``team_of``
    gives a new home's team (``homecare demo --orgs N``, :mod:`tools.demo_orgs`; default: the
    default team)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    devices = []
    for home in range(1, homes + 1):
        devices.append((camera_id(home), "camera"))
        if has_phone(home):
            devices.append((phone_id(home), "video_phone"))
    # the registry stores a device when it first announces itself; the demo may bind first
    await pool.executemany(
        "INSERT INTO devices (device_id, kind) VALUES ($1, $2) ON CONFLICT (device_id) DO NOTHING",
        devices,
    )
    existing = {r.recipient_id for r in await store.list_recipients()}
    out = Seeded()
    for home in range(1, homes + 1):
        rid = recipient_id(home)
        # Order matters while the rounds run: every write re-plans tonight, and a check sent to
        # the patrol stays there. So devices and the basis come first, the plan last.
        new = rid not in existing
        if new:
            team = team_of(home) if team_of is not None else DEFAULT_TEAM
            await _new_recipient(store, home, now, zone_name, team)
            out.created += 1
        out.bound += await _bind(store, camera_id(home), rid, now)
        out.zoned += await _zones(pool, camera_id(home), now)
        if has_phone(home):
            out.bound += await _bind(store, phone_id(home), rid, now)
        if new:
            await _basis_records(store, home, now)
        out.replanned += await _plan(store, home, now, zone_name, view_cap_s)
        out.recipients.append(rid)
        basis = await store.basis(rid)
        plan = next((p for p in basis.plans if p.is_active(now)), None)
        times = " ".join(c.at.strftime("%H:%M") for c in plan.checks) if plan else "-"
        team = "" if basis.recipient.team_id == DEFAULT_TEAM else f" [{basis.recipient.team_id}]"
        out.lines.append(
            f"{rid} ({camera_id(home)}){team}: {CASES[(home - 1) % 6]}; tillsyn {times}"
        )
    return out


# --- when to seed, and a deployment's own topics --------------------------------------------


def devices_awaited(
    expected: Iterable[str],
    registry: Iterable[tuple[str, str, datetime | None]],
    *,
    since: datetime,
) -> frozenset[str]:
    """The devices of ``expected`` not yet online in this run, from the registry's current rows
    ``(device_id, presence, last_seen)``: online, and heard from at or after ``since`` (the demo's
    start). A row left ``online`` by an earlier run that stopped uncleanly does not count until
    the device is heard again, and a device that re-announces while already ``online`` (no change
    event) counts at once: the demo seeds from the registry's state, not from change events."""
    online = {
        device_id
        for device_id, presence, last_seen in registry
        if presence == "online" and last_seen is not None and last_seen >= since
    }
    return frozenset(expected) - online


def deployment_prefix(base: str, *, host: str, database_url: str) -> str:
    """A topic prefix of this demo deployment, ``demo-<8 hex>/<base>``, stable across restarts on
    the same host and database: two demos sharing a broker never share topics, and (as the
    simulated devices' client ids carry a hash of the prefix) never take over each other's
    connections."""
    digest = zlib.crc32(f"{host} {database_url}".encode())
    return f"demo-{digest:08x}/{base}"
