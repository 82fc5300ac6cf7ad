"""Builders for night-round tests: brukare with plans, consents and a bound camera."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Collection, Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from consent import rules
from consent.model import (
    Basis,
    Binding,
    CarePlan,
    CareRecipient,
    CheckTime,
    Consent,
    Decision,
    Purpose,
    RecipientBasis,
)
from kernel.clock import ScaledClock
from kernel.timing import Timing
from supervision.ports import LinkDown, ProbeResult

STHLM = ZoneInfo("Europe/Stockholm")
LONG_AGO = datetime(2024, 1, 1, tzinfo=UTC)


def fast(poll_s: float = 0.05, **changes: float) -> Timing:
    """The production timing policy with fast polling (and any other field changed)."""
    return Timing(poll_s=poll_s, **changes)


def at_local(d: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(d.year, d.month, d.day, hh, mm, ss, tzinfo=STHLM)


def consent(rid: str, purpose: Purpose, *, withdrawn_at: datetime | None = None) -> Consent:
    return Consent(
        consent_id=f"c-{rid}-{purpose}",
        recipient_id=rid,
        cohabitant_id=None,
        purpose=purpose,
        version=1,
        basis=Basis.INFORMED_CONSENT,
        given_at=LONG_AGO,
        valid_from=LONG_AGO,
        informed_by="staff-abcdef",
        withdrawn_at=withdrawn_at,
    )


def basis(
    rid: str,
    *,
    times: tuple[time, ...] = (time(22, 0),),
    tolerance: int = 15,
    motion: bool = True,
    camera: bool = True,
    device: str | None = None,
    plan: dict[str, Any] | None = None,
) -> RecipientBasis:
    care = CarePlan(
        plan_id=f"plan-{rid}",
        recipient_id=rid,
        decision_ref="dec-1",
        valid_from=LONG_AGO,
        checks=tuple(CheckTime(t, tolerance) for t in times),
        **(plan or {}),
    )
    consents = []
    if camera:
        consents.append(consent(rid, Purpose.CAMERA_CHECK))
    if motion:
        consents.append(consent(rid, Purpose.MOTION_ANALYSIS))
    binding = Binding(
        binding_id=f"b-{rid}",
        device_id=device or f"cam-{rid}",
        recipient_id=rid,
        bound_at=LONG_AGO,
        requested_by="a",
        bound_by="b",
        device_kind="camera",
    )
    return RecipientBasis(
        recipient=CareRecipient(rid, "Namn"),
        plans=(care,),
        consents=tuple(consents),
        bindings=(binding,),
    )


# --------------------------------------------------------------------------- fakes of the ports


class BasisGate:
    """The consent rules over bases held in memory (a fake of the gate and bases ports)."""

    def __init__(self, bases: dict[str, RecipientBasis]) -> None:
        self.data = bases
        self.calls: list[tuple[str, str]] = []

    async def decide(self, *, device_id: str, purpose: Purpose, at: datetime) -> Decision:
        self.calls.append((device_id, str(purpose)))
        found = next(
            (b for b in self.data.values() if any(x.device_id == device_id for x in b.bindings)),
            None,
        )
        return rules.decide(found, device_id=device_id, purpose=purpose, at=at)

    async def bases(
        self, recipient_ids: Collection[str] | None = None
    ) -> dict[str, RecipientBasis]:
        return {k: v for k, v in self.data.items() if recipient_ids is None or k in recipient_ids}

    async def bases_in_parts(self, size: int) -> AsyncGenerator[list[RecipientBasis], None]:
        every = [self.data[k] for k in sorted(self.data)]
        for i in range(0, len(every), size):
            yield every[i : i + size]


class FakeDevices:
    """Presence as the registry has it (``offline``) and cameras that do not answer a wake
    command although the registry has them online (``unresponsive``)."""

    def __init__(self, known: Collection[str] = (), offline: set[str] | None = None) -> None:
        self.all_online = set(known)
        self.offline = offline or set()
        self.unresponsive: set[str] = set()
        self.woken: list[str] = []
        self.link_down_for = 0  # the next this many wakes find this process's own link down
        self.video: dict[str, str] = {}  # device -> the patrol reason its own health gives

    async def wake(self, device_id: str) -> bool:
        self.woken.append(device_id)
        if self.link_down_for > 0:
            self.link_down_for -= 1
            raise LinkDown("the MQTT broker is not connected")
        return device_id not in self.offline and device_id not in self.unresponsive

    async def online(self, device_ids: Collection[str] | None = None) -> set[str]:
        if device_ids is None:
            return self.all_online - self.offline
        return {d for d in device_ids if d not in self.offline}

    async def video_trouble(self, device_id: str) -> str | None:
        return self.video.get(device_id)


class TableProber:
    """Answers each device's verdict from a table (default: activity, no human needed)."""

    def __init__(
        self, verdicts: dict[str, tuple[str, bool]] | None = None, delay_s: float = 0.0
    ) -> None:
        self.verdicts = verdicts or {}
        self.delay_s = delay_s
        self.probed: list[str] = []

    async def probe(self, *, device_id: str, check_id: str, window_s: float) -> ProbeResult:
        self.probed.append(check_id)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        verdict = self.verdicts.get(device_id, ("activity", False))
        if verdict[0] == "raise":
            raise RuntimeError("probe broke")
        return ProbeResult(
            verdict[0], verdict[1], frames=40, detail={"verdict": verdict[0], "frames": 40}
        )


def fixed_clock(at: datetime) -> ScaledClock:
    """The one clock (``kernel.clock``) standing at ``at`` until the test moves it (``set``,
    ``advance``); a deadline's ``sleep`` jumps it forwards instead of waiting."""
    return ScaledClock(0, at)


async def delivered(
    pool: Any,
    check_id: str | None,
    staff_id: str,
    *,
    started_at: datetime,
    open_s: float,
    video_s: float | None,
    purpose: str = "view",
    device_id: str = "cam-r1",
    extra: tuple[str, str] | None = None,
) -> str:
    """A closed look as signalling stores it (``signal_sessions``): a view (or call) of
    ``staff_id`` for ``check_id`` (or, with ``extra`` = (reason, note), an extra look) whose
    device reported ``video_s`` seconds of video (``None``: no report). The brukare is the device
    id's suffix (``cam-r1``, ``phone-r1``: r1), whose organisation the row takes, as signalling
    records the bound brukare. Returns its session id."""
    session_id = f"s-{abs(hash((check_id, staff_id, started_at, purpose))) % 10**12:012d}"
    ended = started_at + timedelta(seconds=open_s)
    look = "extra" if extra else ("check" if check_id and purpose == "view" else None)
    await pool.execute(
        "INSERT INTO signal_sessions (session_id, device_id, purpose, staff_id, recipient_id,"
        " instance_id, state, started_at, deadline, ended_at, end_reason, check_id, look,"
        " look_reason, look_note, frames_sent, video_s)"
        " VALUES ($1, $2, $3, $4, $5, 'test', 'closed', $6, $7, $7, 'operator', $8, $9, $10,"
        " $11, $12, $13)",
        session_id,
        device_id,
        purpose,
        staff_id,
        device_id.partition("-")[2],  # cam-r1 and phone-r1 are r1's
        started_at,
        ended,
        check_id,
        look,
        extra[0] if extra else None,
        extra[1] if extra else None,
        None if video_s is None else int(video_s * 10),
        video_s,
    )
    return session_id


async def seed_recipients(pool: asyncpg.Pool, recipient_ids: Iterable[str]) -> None:
    """The brukare rows a fake gate's bases stand for (default team), so that checks planned
    through the HTTP API, in a staff member's scope, belong to an organisation the caller sees."""
    await pool.executemany(
        "INSERT INTO care_recipients (recipient_id, display_name, created_at, created_by)"
        " VALUES ($1, $1, now(), 'system') ON CONFLICT DO NOTHING",
        [(rid,) for rid in recipient_ids],
    )


async def seed_staff(pool: asyncpg.Pool, staff: Iterable[tuple[str, str]]) -> None:
    """Staff rows (default organisation and team) for the ``(staff_id, role)`` a test's fake
    logins name, so what they write about themselves (going on duty) has an organisation."""
    rows = [(sid, sid.removeprefix("staff-"), role) for sid, role in staff]
    await pool.executemany(
        "INSERT INTO staff (staff_id, username, role, created_at) VALUES ($1, $2, $3, now())"
        " ON CONFLICT DO NOTHING",
        rows,
    )
    await pool.executemany(
        "INSERT INTO staff_teams (staff_id, team_id) VALUES ($1, 'default') ON CONFLICT DO NOTHING",
        [(sid,) for sid, _, _ in rows],
    )
