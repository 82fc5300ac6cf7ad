"""The night round in PostgreSQL: checks, transitions, alarms and duties (plain SQL, asyncpg).

Every change goes through :func:`supervision.checks.apply` on a row locked ``FOR UPDATE`` and is
written in one transaction with its ``round_transitions`` row and its audit entry
(``kernel.audit.store.append``, appended last so the audit lock is held briefly). The
``(check_id, version)`` key of ``round_transitions`` makes a second write of the same step
impossible, so no check is done twice even if two processes race. Planning is the exception for
speed (tens of thousands of checks at once): checks go in with one ``INSERT ... unnest`` in their
planned state, the moves made at planning (to patrol or deviation) with one more, and the audit
gets one ``round.settled`` entry per :data:`SETTLED_PER_ENTRY` of those moves, listing each.

Workers share the queue with ``SELECT ... FOR UPDATE SKIP LOCKED``: :meth:`RoundStore.open_due`
opens checks whose window (or retry time) has come, :meth:`RoundStore.claim` hands a due check
to one worker for ``Timing.probe_timeout_s``; a claim that outlives that (a crashed worker) is
claimable again, and the late worker's result is then refused (:meth:`RoundStore.finish`).
All instants come from the caller's clock; SQL never calls ``now()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from consent import records
from kernel.audit import store as audit_store
from supervision import checks as ch
from supervision import handover as hv
from supervision import ladder, relay
from supervision import teams as tm
from supervision.checks import (
    Alarm,
    AlarmKind,
    Check,
    Policy,
    Rejected,
    State,
    Step,
    Transition,
)
from supervision.errors import (
    AlreadyOnDuty,
    BadAssignee,
    NotOnDuty,
    NotYourTask,
    TransitionRefused,
    UnknownAlarm,
    UnknownCheck,
)
from supervision.ports import AlarmRaised, Looks
from supervision.schedule import NightPlan, joined
from supervision.sessions import PgLooks

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = (
        "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
    )

Audit = Callable[..., Awaitable[object]]
"""``kernel.audit.store.append``-shaped: ``(conn, *, actor, action, subject, data, at)``."""

COLUMNS = (
    "check_id, recipient_id, device_id, night, agreed, agreed_at, window_start, window_end,"
    " policy::text AS policy, state, since, deadline, attempt, ladder_step, reason, holder,"
    " verdict, version"
)
INSERT_COLUMNS = (
    "check_id", "recipient_id", "device_id", "night", "agreed", "agreed_at", "window_start",
    "window_end", "policy", "state", "since", "deadline", "attempt", "ladder_step", "reason",
    "holder", "verdict",
)  # fmt: skip
"""The columns :func:`_columns` gives, in its order."""
INSERT_PLANNED_SQL = (
    "INSERT INTO round_checks (check_id, recipient_id, device_id, night, agreed, agreed_at,"
    " window_start, window_end, policy, state, since, deadline, attempt, ladder_step, reason,"
    " holder, verdict, version, planned_at, organisation_id, team_id)"
    " SELECT i.check_id, i.recipient_id, i.device_id, i.night, i.agreed, i.agreed_at,"
    " i.window_start, i.window_end, p.policies[i.policy], i.state, i.since, i.deadline,"
    " i.attempt, i.ladder_step, i.reason, i.holder, i.verdict, i.version, $19, r.organisation_id,"
    " r.team_id"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::time[], $6::timestamptz[],"
    " $7::timestamptz[], $8::timestamptz[], $9::int[], $10::text[], $11::timestamptz[],"
    " $12::timestamptz[], $13::int[], $14::int[], $15::text[], $16::text[], $17::text[],"
    " $18::int[]) AS i(check_id, recipient_id, device_id, night, agreed, agreed_at, window_start,"
    " window_end, policy, state, since, deadline, attempt, ladder_step, reason, holder, verdict,"
    " version)"
    " CROSS JOIN (SELECT array_agg(x::jsonb ORDER BY o) AS policies"
    " FROM unnest($20::text[]) WITH ORDINALITY AS u(x, o)) AS p"
    " LEFT JOIN care_recipients r ON r.recipient_id = i.recipient_id"
    " ON CONFLICT (check_id) DO NOTHING RETURNING check_id, organisation_id"
)
"""Planned checks in one statement, from one array per column: each row's organisation and team
are its brukare's, joined here once for all rows (the per-row triggers of migration 0014 then
find them set and look nothing up; a brukare this scope cannot see leaves them to the triggers,
as before). The checks' terms (``policy``) go once per distinct value (``$20``, parsed once)
and each row names its own by position (``$9``, from 1): a night of thousands of brukare has a
handful of distinct terms. A check id already stored is left as it is (a re-run, or another
process)."""
SETTLED_PER_ENTRY = 40
"""Planning transitions listed per ``round.settled`` audit entry (entries hold at most 8 KiB)."""
Teams = Collection[str] | None
"""Whose checks a read or step may touch: these teams' (``None``: every team the database scope
shows, the system's and an installation's own reads). A check of another team is as unknown as
one that does not exist (404 ``unknown_check``)."""
IN_TEAMS = "($%d::text[] IS NULL OR %steam_id = ANY($%d::text[]))"
"""``IN_TEAMS % (n, alias, n)``: the row's team is one of parameter ``$n`` (NULL: any)."""


async def _each(parts: Iterable[NightPlan] | AsyncIterable[NightPlan]) -> AsyncIterator[NightPlan]:
    """The parts, planned (and read) as they are asked for, whichever kind of iterable."""
    if isinstance(parts, AsyncIterable):
        async for part in parts:
            yield part
    else:
        for part in parts:
            yield part


def _teams(teams: Teams) -> list[str] | None:
    return None if teams is None else sorted(teams)


REPORT_WAIT_S = 3.0
"""How long an outcome ``ok`` waits for a look's device to report its video (``await_video``)."""


@functools.lru_cache(maxsize=256)
def policy_json(p: Policy) -> str:
    return json.dumps(
        {
            "view_cap_s": p.view_cap_s,
            "may_clear_without_human": p.may_clear_without_human,
            "retry_interval_s": p.retry_interval_s,
            "ladder": [s.value for s in p.ladder],
            "paused_visit": p.paused_visit,
            "deadlines": records.deadlines_json(p.deadlines),
        }
    )


def policy_from(raw: str) -> Policy:
    d = json.loads(raw)
    return Policy(
        view_cap_s=d["view_cap_s"],
        may_clear_without_human=d["may_clear_without_human"],
        retry_interval_s=d["retry_interval_s"],
        ladder=tuple(Step(s) for s in d["ladder"]),
        paused_visit=d["paused_visit"],
        deadlines=records.deadlines_from_json(d.get("deadlines", {})),  # older checks: defaults
    )


def check_from(row: asyncpg.Record) -> Check:
    return Check(
        check_id=row["check_id"],
        recipient_id=row["recipient_id"],
        device_id=row["device_id"],
        night=row["night"],
        agreed=row["agreed"],
        agreed_at=row["agreed_at"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        policy=policy_from(row["policy"]),
        state=State(row["state"]),
        since=row["since"],
        deadline=row["deadline"],
        attempt=row["attempt"],
        ladder_step=row["ladder_step"],
        reason=row["reason"],
        holder=row["holder"],
        verdict=row["verdict"],
        version=row["version"],
    )


def _actor(raw: str) -> str:
    """An audit actor id: lowercase, safe characters only."""
    clean = "".join(ch_ if ch_.isalnum() or ch_ in "._:-" else "-" for ch_ in raw.lower())
    return clean[:128] or "system"


@dataclass(frozen=True, slots=True)
class TransitionRow:
    """One stored transition, as the report reads it."""

    check_id: str
    version: int
    at: datetime
    from_state: State
    to_state: State
    event: str
    actor: str
    reason: str | None
    verdict: str | None
    note: str | None


class RoundStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        timing: ch.Timing = ch.DEFAULT_TIMING,
        audit: Audit = audit_store.append,
        origin: str | None = None,
        looks: Looks | None = None,
    ) -> None:
        """``origin``: this process's name; when set, every step and alarm is also sent to the
        other processes (:mod:`supervision.relay`). ``looks``: the views and calls with the
        video they delivered (default: signalling's sessions in the same database)."""
        self.pool = pool
        self.timing = timing
        self._audit = audit
        self.origin = origin
        self.looks: Looks = looks if looks is not None else PgLooks(pool)

    # ------------------------------------------------------------------ writing one step

    async def _write(
        self,
        conn: Connection,
        tr: Transition,
        *,
        note: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        new, actor = tr.check, ch.actor_of(tr.event)
        status = await conn.execute(
            "UPDATE round_checks SET state=$2, since=$3, deadline=$4, attempt=$5, ladder_step=$6,"
            " reason=$7, holder=$8, verdict=$9, version=$10 WHERE check_id=$1 AND version=$11",
            new.check_id,
            new.state.value,
            new.since,
            new.deadline,
            new.attempt,
            new.ladder_step,
            new.reason,
            new.holder,
            new.verdict,
            new.version,
            new.version - 1,
        )
        if status != "UPDATE 1":
            raise RuntimeError(f"check {new.check_id} changed under its row lock")
        unassigned = None
        if new.state is State.PATROL and tr.before not in ch.PATROL_STATES:
            # a patrol task is a patrol's: an operator who had the check (a look given to them,
            # their outcome, a cancel) gives it to every patrol (their list shows its own and
            # unassigned tasks); a patrol it was given to keeps it
            unassigned = await conn.fetchval(
                "UPDATE round_checks c SET assignee=NULL, assigned_at=NULL"
                " FROM round_checks o WHERE c.check_id=$1 AND o.check_id=c.check_id"
                " AND o.assignee IS NOT NULL AND NOT EXISTS (SELECT 1 FROM staff s"
                " WHERE s.staff_id=o.assignee AND s.role='patrol') RETURNING o.assignee",
                new.check_id,
            )
        await self._record(conn, tr, actor=actor, note=note, detail=detail, unassigned=unassigned)

    async def _record(
        self,
        conn: Connection,
        tr: Transition,
        *,
        actor: str,
        note: str | None,
        detail: Mapping[str, Any] | None = None,
        unassigned: str | None = None,
    ) -> None:
        new = tr.check
        await conn.execute(
            "INSERT INTO round_transitions (check_id, version, at, from_state, to_state, event,"
            " actor, reason, verdict, note, verdict_detail)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11::jsonb)",
            new.check_id,
            new.version,
            tr.at,
            tr.before.value,
            new.state.value,
            ch.event_name(tr.event),
            actor,
            new.reason,
            new.verdict,
            note,
            None if detail is None else json.dumps(dict(detail)),
        )
        await self._audit(
            conn,
            actor=_actor(actor),
            action=f"check.{new.state.value}",
            subject=new.check_id,
            at=tr.at,
            data={
                "recipient_id": new.recipient_id,
                "device_id": new.device_id,
                "from": tr.before.value,
                "event": ch.event_name(tr.event),
                "reason": new.reason,
                "verdict": new.verdict,
                "version": new.version,
                "has_note": note is not None,
                **_seen_of(tr.event),
                **_outcome_of(tr.event),
                **({} if unassigned is None else {"unassigned": unassigned}),
            },
        )
        if self.origin is not None:
            await relay.notify(conn, self.origin, relay.changed(tr))

    async def _locked(self, conn: Connection, check_id: str, teams: Teams = None) -> Check:
        row = await conn.fetchrow(
            f"SELECT {COLUMNS} FROM round_checks WHERE check_id=$1 AND {IN_TEAMS % (2, '', 2)}"
            " FOR UPDATE",
            check_id,
            _teams(teams),
        )
        if row is None:
            raise UnknownCheck(check_id)
        return check_from(row)

    async def transition(
        self,
        check_id: str,
        event: ch.Event,
        *,
        at: datetime,
        note: str | None = None,
        holder: str | None = None,
        on_duty: bool = False,
        detail: Mapping[str, Any] | None = None,
        teams: Teams = None,
    ) -> Transition:
        """Apply one event to one check; raise :class:`TransitionRefused` if it does not fit.

        ``holder``: refuse unless the check is still held by it (a worker finishing its claim).
        ``on_duty``: the event's operator must be on duty at ``at`` (operator outcomes).
        ``teams``: the caller's teams; a check of another team is :class:`UnknownCheck`.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            check = await self._locked(conn, check_id, teams)
            if on_duty:
                operator = ch.actor_of(event)
                if not await self._is_on_duty(conn, operator, at):
                    raise NotOnDuty(operator)
            if holder is not None and check.holder != holder:
                raise TransitionRefused(
                    Rejected(check_id, check.state, ch.event_name(event), ch.Refusal.CLAIMED)
                )
            if isinstance(event, ch.Outcome) and event.kind is ch.OutcomeKind.OK:
                looks = await self.looks.of_check(check_id, event.operator_id)
                since = await self._look_since(conn, check)
                event = dataclasses.replace(event, video_s=ch.seen_video_s(looks, since=since))
            result = ch.apply(check, event, at=at, timing=self.timing)
            if isinstance(result, Rejected):
                raise TransitionRefused(result)
            await self._write(conn, result, note=note, detail=detail)
            return result

    # ------------------------------------------------------------------ what was seen

    async def _look_since(self, conn: Connection, check: Check) -> datetime:
        """When the check's current attempt became due: its looks count from then on."""
        since: datetime | None = await conn.fetchval(
            "SELECT max(at) FROM round_transitions WHERE check_id = $1 AND to_state = 'due'",
            check.check_id,
        )
        return since or check.window_start

    async def await_video(
        self,
        check_id: str,
        staff_id: str,
        *,
        at: datetime,
        wait_s: float = REPORT_WAIT_S,
        poll_s: float = 0.1,
    ) -> None:
        """Wait (at most ``wait_s`` seconds) while a look of ``staff_id`` for the check's current
        attempt has not yet delivered a second of video but may still report it: a device reports
        as its side ends, just after the ``bye`` that lets the operator document."""
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            looks = await self.looks.of_check(check_id, staff_id)
            async with self.pool.acquire() as conn:
                since = await self._look_since(conn, await self._check(conn, check_id))
            if ch.has_seen(ch.seen_video_s(looks, since=since)) or not ch.awaits_report(
                looks, since=since, at=at, wait_s=wait_s
            ):
                return
            if asyncio.get_running_loop().time() >= deadline:
                return
            await asyncio.sleep(poll_s)

    async def _check(self, conn: Connection, check_id: str, teams: Teams = None) -> Check:
        row = await conn.fetchrow(
            f"SELECT {COLUMNS} FROM round_checks WHERE check_id=$1 AND {IN_TEAMS % (2, '', 2)}",
            check_id,
            _teams(teams),
        )
        if row is None:
            raise UnknownCheck(check_id)
        return check_from(row)

    async def night_looks(
        self, night: date, *, since: datetime, until: datetime, teams: Teams = None
    ) -> list[ch.Look]:
        """The views and calls of ``night``: those of its checks, and those naming no check that
        started in ``[since, until)`` (extra looks, calls), with the video they delivered.
        ``teams``: only those of these teams' checks and brukare."""
        ids = await self.pool.fetch(
            f"SELECT check_id FROM round_checks WHERE night=$1 AND {IN_TEAMS % (2, '', 2)}",
            night,
            _teams(teams),
        )
        looks = await self.looks.of_night([r["check_id"] for r in ids], since=since, until=until)
        if teams is None:
            return looks
        theirs = {
            r["recipient_id"]
            for r in await self.pool.fetch(
                "SELECT recipient_id FROM care_recipients WHERE team_id = ANY($1::text[])",
                _teams(teams),
            )
        }
        mine = {r["check_id"] for r in ids}
        return [x for x in looks if x.check_id in mine or x.recipient_id in theirs]

    async def apply_many(
        self, events: Iterable[tuple[str, ch.Event]], *, at: datetime
    ) -> tuple[list[Transition], list[Rejected]]:
        """Apply events to several checks in one transaction; refusals are returned, not raised."""
        done: list[Transition] = []
        refused: list[Rejected] = []
        async with self.pool.acquire() as conn, conn.transaction():
            for check_id, event in sorted(events, key=lambda e: e[0]):
                result = ch.apply(
                    await self._locked(conn, check_id), event, at=at, timing=self.timing
                )
                if isinstance(result, Rejected):
                    refused.append(result)
                else:
                    await self._write(conn, result)
                    done.append(result)
        return done, refused

    # ------------------------------------------------------------------ planning

    async def save_plan(self, plan: NightPlan, *, at: datetime, actor: str = "system") -> int:
        """Insert the plan's checks that do not exist yet, with their planning transitions.

        Idempotent: a check id already stored is left as it is. Returns the number inserted.
        """
        _, inserted = await self.save_plan_parts(plan.night, (plan,), at=at, actor=actor)
        return inserted

    async def save_plan_parts(
        self,
        night: date,
        parts: Iterable[NightPlan] | AsyncIterable[NightPlan],
        *,
        at: datetime,
        actor: str = "system",
    ) -> tuple[NightPlan, int]:
        """:meth:`save_plan` of the parts joined (:func:`supervision.schedule.joined`), which
        it returns with the number inserted. ``parts`` may be lazy (planned as they are asked
        for, :func:`supervision.schedule.plan_parts`; asynchronous when they wait for their
        bases to be read, ``supervision.watchdog.Watchdog.plan``): the checks planned so far go
        to the database in one statement while the next parts are planned, so the server
        inserts on one core while the planner runs on the other. One transaction, as before:
        all the night's checks, transitions, audit entries and the night's row, or none.
        """
        got: list[NightPlan] = []
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await self._insert_pipelined(conn, parts, got, at)
            plan = joined(night, got)
            if not plan.checks:
                await self._mark_planned(conn, night, at, {"checks": 0})
                return plan, 0
            fresh = {r["check_id"]: r["organisation_id"] for r in inserted}
            moved = [t for t in plan.transitions if t.check.check_id in fresh]
            orgs = [fresh[t.check.check_id] for t in moved]
            await self._record_planning(conn, night, moved, actor=actor, orgs=orgs)
            counts: dict[str, int] = {"checks": len(fresh)}
            for c in plan.checks:
                if c.check_id in fresh:
                    counts[c.state.value] = counts.get(c.state.value, 0) + 1
            counts["problems"] = len(plan.problems)
            await self._mark_planned(conn, night, at, counts)
            if fresh:
                await self._audit(
                    conn,
                    actor=_actor(actor),
                    action="round.planned",
                    subject=None,
                    at=at,
                    data={"night": night.isoformat(), **counts},
                )
        return plan, len(fresh)

    async def _insert_pipelined(
        self,
        conn: Connection,
        parts: Iterable[NightPlan] | AsyncIterable[NightPlan],
        got: list[NightPlan],
        at: datetime,
    ) -> list[asyncpg.Record]:
        """Insert the checks of ``parts`` (appended to ``got`` as they come): whenever the
        connection is free, the checks gathered since go in one statement, sent without waiting
        for it while the next part is asked for. Returns the new checks' ids and organisations.
        """
        inserted: list[asyncpg.Record] = []
        waiting: list[Check] = []
        sent: asyncio.Future[list[asyncpg.Record]] | None = None
        try:
            # the next part is read and planned here, while the server inserts
            async for part in _each(parts):
                got.append(part)
                waiting.extend(part.checks)
                if sent is not None and sent.done():
                    inserted.extend(sent.result())
                    sent = None
                if sent is None and waiting:
                    sent = asyncio.ensure_future(self._insert_checks(conn, waiting, at))
                    waiting = []
                await asyncio.sleep(0)  # the statement goes out; a finished one is read
            if sent is not None:
                inserted.extend(await sent)
                sent = None
            if waiting:
                inserted.extend(await self._insert_checks(conn, waiting, at))
        finally:
            if sent is not None:  # a part failed to plan: the connection free for the rollback
                with contextlib.suppress(Exception):
                    await sent
        return inserted

    async def _insert_checks(
        self, conn: Connection, rows: Sequence[Check], at: datetime
    ) -> list[asyncpg.Record]:
        """Insert the checks (in their planned state) that no process inserted before, in one
        statement (:data:`INSERT_PLANNED_SQL`); returns the new ones' ids and organisations."""
        policies: dict[int, tuple[int, str]] = {}
        cols = _columns(rows, policies)
        cols[INSERT_COLUMNS.index("policy")] = [policies[id(r.policy)][0] for r in rows]
        distinct = sorted(policies.values())
        return await conn.fetch(
            INSERT_PLANNED_SQL, *cols, [r.version for r in rows], at, [j for _, j in distinct]
        )

    async def _record_planning(
        self,
        conn: Connection,
        night: date,
        moved: Sequence[Transition],
        *,
        actor: str,
        orgs: Sequence[str | None],
    ) -> None:
        """Store the planning transitions in one statement and audit them in batches: one
        ``round.settled`` entry lists up to :data:`SETTLED_PER_ENTRY` of them. ``orgs``: each
        transition's organisation, as its check was stored (its per-row trigger then looks
        nothing up)."""
        if not moved:
            return
        await conn.execute(
            "INSERT INTO round_transitions (check_id, version, at, from_state, to_state, event,"
            " actor, reason, verdict, organisation_id) SELECT * FROM unnest($1::text[],"
            " $2::int[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[],"
            " $8::text[], $9::text[], $10::text[])",
            [t.check.check_id for t in moved],
            [t.check.version for t in moved],
            [t.at for t in moved],
            [t.before.value for t in moved],
            [t.check.state.value for t in moved],
            [ch.event_name(t.event) for t in moved],
            [ch.actor_of(t.event) for t in moved],
            [t.check.reason for t in moved],
            [t.check.verdict for t in moved],
            list(orgs),
        )
        entries = [
            audit_store.NewEntry(
                actor=_actor(actor),
                action="round.settled",
                subject=None,
                at=batch[0].at,
                data={
                    "night": night.isoformat(),
                    "transitions": [
                        [
                            t.check.check_id,
                            t.check.version,
                            t.before.value,
                            t.check.state.value,
                            t.check.reason,
                        ]
                        for t in batch
                    ],
                },
            )
            for batch in (
                moved[i : i + SETTLED_PER_ENTRY] for i in range(0, len(moved), SETTLED_PER_ENTRY)
            )
        ]
        if self._audit is audit_store.append:  # the chain itself: every batch in one INSERT
            await audit_store.append_many(conn, entries)
            return
        for e in entries:  # an audit of the caller's own: one call per entry
            await self._audit(
                conn, actor=e.actor, action=e.action, subject=e.subject, data=e.data, at=e.at
            )

    async def _mark_planned(
        self, conn: Connection, night: date, at: datetime, counts: Mapping[str, int]
    ) -> None:
        await conn.execute(
            "INSERT INTO round_nights (night, planned_at, summary) VALUES ($1, $2, $3::jsonb)"
            " ON CONFLICT (night) DO NOTHING",
            night,
            at,
            json.dumps(dict(counts)),
        )

    async def planned_nights(self) -> dict[date, datetime | None]:
        """Planned nights and when each was reconciled (None: not yet)."""
        rows = await self.pool.fetch("SELECT night, reconciled_at FROM round_nights")
        return {r["night"]: r["reconciled_at"] for r in rows}

    # ------------------------------------------------------------------ the queue

    async def _batch(
        self, sql: str, args: Sequence[object], make: Callable[[Check], ch.Event], at: datetime
    ) -> list[Transition]:
        done: list[Transition] = []
        async with self.pool.acquire() as conn, conn.transaction():
            for row in await conn.fetch(sql, *args):
                check = check_from(row)
                result = ch.apply(check, make(check), at=at, timing=self.timing)
                if isinstance(result, Transition):
                    await self._write(conn, result)
                    done.append(result)
        return done

    async def open_due(self, at: datetime, *, limit: int = 500) -> list[Transition]:
        """Open planned checks whose window started and retries whose interval passed."""
        return await self._batch(
            f"SELECT {COLUMNS} FROM round_checks WHERE state IN ('planned', 'retry_wait')"
            " AND deadline <= $1 ORDER BY deadline LIMIT $2 FOR UPDATE SKIP LOCKED",
            (at, limit),
            lambda c: ch.Open() if c.state is State.PLANNED else ch.RetryDue(),
            at,
        )

    async def claim(
        self, worker_id: str, at: datetime, *, limit: int = 1, after_s: float = 0.0
    ) -> list[Check]:
        """Give up to ``limit`` due checks (or expired claims) to ``worker_id``."""
        claimed = await self.claim_transitions(worker_id, at, limit=limit, after_s=after_s)
        return [t.check for t in claimed]

    async def claim_transitions(
        self, worker_id: str, at: datetime, *, limit: int = 1, after_s: float = 0.0
    ) -> list[Transition]:
        """:meth:`claim`, returning the claim transitions. ``after_s``: take only checks due for
        at least that long (a worker that cannot probe leaves them to one that can first)."""
        return await self._batch(
            f"SELECT {COLUMNS} FROM round_checks WHERE (state = 'due' AND since <= $3)"
            " OR (state = 'probing' AND deadline <= $1)"
            " ORDER BY window_start, check_id LIMIT $2 FOR UPDATE SKIP LOCKED",
            (at, limit, at - timedelta(seconds=after_s)),
            lambda c: ch.Claim(worker_id),
            at,
        )

    async def finish(
        self,
        check: Check,
        event: ch.Event,
        *,
        at: datetime,
        detail: Mapping[str, Any] | None = None,
    ) -> Transition:
        """A worker's result for a check it claimed; refused if the claim was taken over.
        ``detail``: the motion check's numbers, stored with the transition (never audited)."""
        if check.holder is None:
            raise ValueError("finish() needs a claimed check")
        return await self.transition(
            check.check_id, event, at=at, holder=check.holder, detail=detail
        )

    # ------------------------------------------------------------------ reads

    async def get(self, check_id: str, *, teams: Teams = None) -> Check:
        """One check (:class:`UnknownCheck` if none, or of none of ``teams``)."""
        async with self.pool.acquire() as conn:
            return await self._check(conn, check_id, teams)

    async def agreed_instants(
        self, recipient_id: str, *, since: datetime, until: datetime
    ) -> list[datetime]:
        """The agreed instants of the brukare's checks in ``[since, until]``, in order (hard rule
        8 counts a camera offline at consecutive ones)."""
        rows = await self.pool.fetch(
            "SELECT DISTINCT agreed_at FROM round_checks WHERE recipient_id = $1"
            " AND agreed_at BETWEEN $2 AND $3 ORDER BY agreed_at",
            recipient_id,
            since,
            until,
        )
        return [r["agreed_at"] for r in rows]

    async def verdict_details(self, check_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The motion check's numbers last stored with each check's steps (``verdict_detail``:
        verdict, confidence, reason, numbers), by check id; checks never probed are absent."""
        rows = await self.pool.fetch(
            "SELECT DISTINCT ON (check_id) check_id, verdict_detail::text AS detail"
            " FROM round_transitions WHERE check_id = ANY($1::text[])"
            " AND verdict_detail IS NOT NULL ORDER BY check_id, version DESC",
            list(check_ids),
        )
        return {r["check_id"]: json.loads(r["detail"]) for r in rows}

    async def night_checks(self, night: date, *, teams: Teams = None) -> list[Check]:
        rows = await self.pool.fetch(
            f"SELECT {COLUMNS} FROM round_checks WHERE night=$1 AND {IN_TEAMS % (2, '', 2)}"
            " ORDER BY agreed_at, check_id",
            night,
            _teams(teams),
        )
        return [check_from(r) for r in rows]

    async def open_checks(
        self,
        *,
        recipient_id: str | None = None,
        device_id: str | None = None,
        states: Sequence[State] | None = None,
        teams: Teams = None,
    ) -> list[Check]:
        """Unfinished checks, optionally of one brukare or device, in some states, of some
        teams."""
        rows = await self.pool.fetch(
            f"SELECT {COLUMNS} FROM round_checks WHERE deadline IS NOT NULL"
            " AND ($1::text IS NULL OR recipient_id=$1) AND ($2::text IS NULL OR device_id=$2)"
            f" AND ($3::text[] IS NULL OR state = ANY($3)) AND {IN_TEAMS % (4, '', 4)}"
            " ORDER BY deadline, check_id",
            recipient_id,
            device_id,
            [s.value for s in states] if states is not None else None,
            _teams(teams),
        )
        return [check_from(r) for r in rows]

    async def transitions(self, night: date, *, teams: Teams = None) -> list[TransitionRow]:
        rows = await self.pool.fetch(
            "SELECT t.* FROM round_transitions t JOIN round_checks c USING (check_id)"
            f" WHERE c.night=$1 AND {IN_TEAMS % (2, 'c.', 2)} ORDER BY t.at, t.check_id, t.version",
            night,
            _teams(teams),
        )
        return [
            TransitionRow(
                r["check_id"],
                r["version"],
                r["at"],
                State(r["from_state"]),
                State(r["to_state"]),
                r["event"],
                r["actor"],
                r["reason"],
                r["verdict"],
                r["note"],
            )
            for r in rows
        ]

    # ------------------------------------------------------------------ alarms

    async def watch_deadlines(
        self, at: datetime, *, limit: int = 500
    ) -> tuple[list[Alarm], list[Transition]]:
        """Climb the escalation ladder (:func:`supervision.ladder.owed`) of every check whose
        deadline passed or whose next rung came: raise the alarms owed (a repeat numbered by its
        place), send an unanswered view or call to the patrol (:class:`~supervision.checks.
        Escalate`), tell the shift lead; a patrol that reported its arrival is owed no more
        alarms for it. Returns the alarms raised and the escalations made.

        The ladder's progress in a step is stored with the check (``alarmed_version``: the
        version it describes; ``alarm_count``, ``lead_alerted``, ``next_rung_at``), under the
        row lock, in one transaction with the alarms, their audit entries and the steps, so two
        watchdogs never raise the same alarm or escalate twice."""
        raised: list[Alarm] = []
        escalated: list[Transition] = []
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT {COLUMNS}, alarmed_version, alarm_count, lead_alerted,"
                " patrol_arrived_at IS NOT NULL AS arrived FROM round_checks"
                " WHERE deadline IS NOT NULL AND ((deadline <= $1"
                " AND alarmed_version IS DISTINCT FROM version) OR next_rung_at <= $1)"
                " ORDER BY deadline LIMIT $2 FOR UPDATE SKIP LOCKED",
                at,
                limit,
            )
            for row in rows:
                check = check_from(row)
                done = (
                    ladder.Raised(row["alarm_count"], row["lead_alerted"])
                    if row["alarmed_version"] == check.version
                    else ladder.Raised()
                )
                owed = ladder.owed(check, at, self.timing, done, arrived=row["arrived"])
                for alarm in owed.alarms:
                    await self._raise(conn, alarm, at)
                raised += owed.alarms
                await conn.execute(
                    "UPDATE round_checks SET alarmed_version=$2, alarm_count=$3,"
                    " lead_alerted=$4, next_rung_at=$5 WHERE check_id=$1",
                    check.check_id,
                    check.version,
                    owed.raised.alarms,
                    owed.raised.lead_alerted,
                    owed.next_at,
                )
                if owed.escalate:
                    result = ch.apply(check, ch.Escalate(), at=at, timing=self.timing)
                    if isinstance(result, Transition):
                        # whoever the look was given to did not act: every patrol sees the
                        # task (_write unassigns an operator on the way into patrol)
                        await self._write(conn, result)
                        escalated.append(result)
        return raised, escalated

    async def _raise(self, conn: Connection, alarm: Alarm, at: datetime) -> None:
        await conn.execute(
            "INSERT INTO round_alarms (check_id, version, state, deadline, raised_at, repeat,"
            " kind, addressed_to) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT DO NOTHING",
            alarm.check_id,
            alarm.version,
            alarm.state.value,
            alarm.deadline,
            at,
            alarm.repeat,
            alarm.kind.value,
            alarm.to.value,
        )
        await self._audit(
            conn,
            actor="system",
            action="check.alarm_raised"
            if alarm.kind is AlarmKind.ALARM
            else "check.alarm_escalated",
            subject=alarm.check_id,
            at=at,
            data={
                "recipient_id": alarm.recipient_id,
                "state": alarm.state.value,
                "version": alarm.version,
                "late_s": round(alarm.late_s),
                "repeat": alarm.repeat,
                "to": alarm.to.value,
            },
        )
        if self.origin is not None:
            await relay.notify(conn, self.origin, AlarmRaised(alarm, at))

    async def alarms(
        self, night: date, *, open_only: bool = False, teams: Teams = None
    ) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT a.*, c.recipient_id FROM round_alarms a JOIN round_checks c USING (check_id)"
            " WHERE c.night=$1 AND (NOT $2 OR a.acknowledged_at IS NULL)"
            f" AND {IN_TEAMS % (3, 'c.', 3)} ORDER BY a.raised_at, a.check_id",
            night,
            open_only,
            _teams(teams),
        )
        return [dict(r) for r in rows]

    async def acknowledge_alarm(
        self, check_id: str, version: int, *, staff_id: str, at: datetime, teams: Teams = None
    ) -> None:
        """Acknowledge every open alarm of a check's step (its repeats and its escalation). A
        step still undone raises its next repeat all the same: acknowledging is not doing.
        ``teams``: an alarm of another team's check is as unknown as none."""
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "UPDATE round_alarms SET acknowledged_at=$3, acknowledged_by=$4"
                " WHERE check_id=$1 AND version=$2 AND acknowledged_at IS NULL"
                " AND EXISTS (SELECT 1 FROM round_checks c WHERE c.check_id=$1"
                f" AND {IN_TEAMS % (5, 'c.', 5)})",
                check_id,
                version,
                at,
                staff_id,
                _teams(teams),
            )
            if status == "UPDATE 0":
                raise UnknownAlarm(f"no open alarm for {check_id} version {version}")
            await self._audit(
                conn,
                actor=_actor(staff_id),
                action="check.alarm_acknowledged",
                subject=check_id,
                at=at,
                data={"version": version, "alarms": int(status.split()[-1])},
            )

    # ------------------------------------------------------------------ duty

    async def _is_on_duty(self, conn: Connection, staff_id: str, at: datetime) -> bool:
        found = await conn.fetchval(
            "SELECT 1 FROM round_duty WHERE staff_id=$1 AND started_at <= $2"
            " AND (ended_at IS NULL OR ended_at > $2)",
            staff_id,
            at,
        )
        return found is not None

    async def is_on_duty(self, staff_id: str, at: datetime) -> bool:
        async with self.pool.acquire() as conn:
            return await self._is_on_duty(conn, staff_id, at)

    async def start_duty(
        self, staff_id: str, *, at: datetime, teams: Collection[str] | None = None
    ) -> None:
        """Go on duty, covering ``teams`` (``None``: every team of the operator's, as it is
        whenever asked; stored as given, audited)."""
        chosen = _teams(teams)
        async with self.pool.acquire() as conn, conn.transaction():
            try:
                await conn.execute(
                    "INSERT INTO round_duty (staff_id, started_at, teams) VALUES ($1,$2,$3)",
                    staff_id,
                    at,
                    chosen,
                )
            except asyncpg.UniqueViolationError as e:
                raise AlreadyOnDuty(f"{staff_id} is already on duty") from e
            await self._audit(
                conn,
                actor=_actor(staff_id),
                action="round.duty_started",
                subject=None,
                at=at,
                data={} if chosen is None else {"teams": chosen},
            )

    async def end_duty(self, staff_id: str, *, at: datetime) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "UPDATE round_duty SET ended_at=$2 WHERE staff_id=$1 AND ended_at IS NULL"
                " AND started_at < $2",
                staff_id,
                at,
            )
            if status != "UPDATE 1":
                return False
            await self._audit(
                conn,
                actor=_actor(staff_id),
                action="round.duty_ended",
                subject=None,
                at=at,
                data={},
            )
            return True

    async def on_duty(self, at: datetime, *, teams: Teams = None) -> list[str]:
        """Who is on duty at ``at`` (covering one of ``teams``, when given)."""
        return list(await self.duty_teams(at, teams=teams))

    async def duty_teams(self, at: datetime, *, teams: Teams = None) -> dict[str, list[str]]:
        """Who is on duty at ``at`` and the teams each covers (the teams they chose going on
        duty, else every team their account covers now); with ``teams``, only those covering
        one of them, and only those teams shown."""
        rows = await self.pool.fetch(
            "SELECT d.staff_id, coalesce(d.teams,"
            " (staff_scope(d.staff_id, s.role, $1)).teams) AS teams"
            " FROM round_duty d LEFT JOIN staff s USING (staff_id) WHERE d.started_at <= $1"
            " AND (d.ended_at IS NULL OR d.ended_at > $1) ORDER BY d.staff_id",
            at,
        )
        found = {r["staff_id"]: list(r["teams"] or ()) for r in rows}
        if teams is None:
            return found
        return {
            staff_id: shown
            for staff_id, covered in found.items()
            if (shown := [t for t in covered if t in teams])
        }

    # ------------------------------------------------------------------ morning

    async def reconcile(self, night: date, *, at: datetime) -> list[Transition]:
        """Close the night: every open check ends as a deviation or escalated."""
        done = await self._batch(
            f"SELECT {COLUMNS} FROM round_checks WHERE night=$1 AND deadline IS NOT NULL"
            " ORDER BY check_id FOR UPDATE",
            (night,),
            lambda c: ch.Reconcile(),
            at,
        )
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO round_nights (night, planned_at, reconciled_at) VALUES ($1,$2,$2)"
                " ON CONFLICT (night) DO UPDATE SET reconciled_at=$2"
                " WHERE round_nights.reconciled_at IS NULL",
                night,
                at,
            )
            await self._audit(
                conn,
                actor="system",
                action="round.reconciled",
                subject=None,
                at=at,
                data={"night": night.isoformat(), "closed": len(done)},
            )
        return done

    # ------------------------------------------------------------------ patrol tasks, assignment

    async def _locked_task(
        self, conn: Connection, check_id: str, *, patrol: str | None = None, teams: Teams = None
    ) -> tuple[Check, asyncpg.Record]:
        """The check locked for update, with its task columns. ``patrol``: the calling patrol's
        staff id; a task assigned to another patrol is refused (:class:`NotYourTask`).
        ``teams``: a check of none of them is :class:`UnknownCheck`."""
        row = await conn.fetchrow(
            f"SELECT {COLUMNS}, assignee, patrol_arrived_at, patrol_outcome, team_id"
            f" FROM round_checks WHERE check_id=$1 AND {IN_TEAMS % (2, '', 2)} FOR UPDATE",
            check_id,
            _teams(teams),
        )
        if row is None:
            raise UnknownCheck(check_id)
        if patrol is not None and row["assignee"] not in (None, patrol):
            raise NotYourTask(f"check {check_id} is assigned to another patrol")
        return check_from(row), row

    async def patrol_step(
        self,
        check_id: str,
        event: ch.PatrolAcknowledged | ch.PatrolVisited,
        *,
        at: datetime,
        is_patrol: bool,
        note: str | None = None,
        teams: Teams = None,
    ) -> Transition | Check:
        """The patrol takes a task or reports from the home; returns the transition, or the
        check unchanged when the same report was already made (a retried request).

        ``is_patrol``: the caller has the patrol role, so the task must be assigned to them or
        to nobody (else :class:`NotYourTask`); a patrol taking an unassigned task is assigned
        it (an operator acknowledging for the patrol assigns nobody).
        A visit stores its outcome; ``not_home`` makes the task unassigned again.
        """
        staff_id = event.staff_id
        async with self.pool.acquire() as conn, conn.transaction():
            check, row = await self._locked_task(
                conn, check_id, patrol=staff_id if is_patrol else None, teams=teams
            )
            if _already_reported(check, row, event):
                return check
            result = ch.apply(check, event, at=at, timing=self.timing)
            if isinstance(result, Rejected):
                raise TransitionRefused(result)
            if isinstance(event, ch.PatrolAcknowledged):
                if is_patrol:
                    await conn.execute(
                        "UPDATE round_checks SET assignee=$2, assigned_at=$3"
                        " WHERE check_id=$1 AND assignee IS NULL",
                        check_id,
                        staff_id,
                        at,
                    )
            elif result.check.state is State.PATROL:  # not home: the task is open to all again
                await conn.execute(
                    "UPDATE round_checks SET assignee=NULL, assigned_at=NULL,"
                    " patrol_arrived_at=NULL WHERE check_id=$1",
                    check_id,
                )
            elif event.outcome is not None:
                await conn.execute(
                    "UPDATE round_checks SET patrol_outcome=$2 WHERE check_id=$1",
                    check_id,
                    event.outcome.value,
                )
            await self._write(conn, result, note=note)
            return result

    async def patrol_arrived(
        self, check_id: str, *, staff_id: str, at: datetime, is_patrol: bool, teams: Teams = None
    ) -> datetime:
        """The patrol is at the door of a task it took; returns the arrival instant (the first
        one reported: a retried report changes nothing). Audited, not a transition."""
        async with self.pool.acquire() as conn, conn.transaction():
            check, row = await self._locked_task(
                conn, check_id, patrol=staff_id if is_patrol else None, teams=teams
            )
            if check.state is not State.PATROL_ACKED:
                refusal = ch.Refusal.FINISHED if check.is_finished else ch.Refusal.NOT_IN_STATE
                raise TransitionRefused(Rejected(check_id, check.state, "patrol_arrived", refusal))
            arrived: datetime | None = row["patrol_arrived_at"]
            if arrived is not None:
                return arrived
            arrived = await conn.fetchval(
                "UPDATE round_checks SET patrol_arrived_at=$2 WHERE check_id=$1"
                " RETURNING patrol_arrived_at",
                check_id,
                at,
            )
            await self._audit(
                conn,
                actor=_actor(staff_id),
                action="check.patrol_arrived",
                subject=check_id,
                at=at,
                data={"recipient_id": check.recipient_id, "version": check.version},
            )
            return arrived

    async def assign(
        self, check_id: str, assignee: str | None, *, by: str, at: datetime, teams: Teams = None
    ) -> tuple[Check, str | None]:
        """Give an open check to an operator or a patrol task to a patrol (``None``: to nobody),
        audited; returns the check and the assignee it had before.

        The assignee must be an active staff account of a fitting role (:data:`ASSIGNABLE`)
        whose teams cover the check's brukare's (422 ``bad_assignee``); a task the patrol
        already took is refused (409 ``not_in_state``): it comes back when the patrol reports
        ``not_home``. ``teams``: the caller's; a check of another team is unknown (404).
        """
        async with self.pool.acquire() as conn, conn.transaction():
            check, row = await self._locked_task(conn, check_id, teams=teams)
            if check.is_finished:
                raise TransitionRefused(
                    Rejected(check_id, check.state, "assign", ch.Refusal.FINISHED)
                )
            if check.state is State.PATROL_ACKED:
                refused = Rejected(check_id, check.state, "assign", ch.Refusal.NOT_IN_STATE)
                raise TransitionRefused(refused)
            if assignee is not None:
                found = await conn.fetchrow(
                    "SELECT role, $2::text = ANY((staff_scope(staff_id, role, $3)).teams)"
                    " AS covers FROM staff WHERE staff_id=$1 AND is_active",
                    assignee,
                    row["team_id"],
                    at,
                )
                wanted = ASSIGNABLE[check.state in ch.PATROL_STATES]
                if found is None or found["role"] not in wanted:
                    raise BadAssignee(
                        f"{assignee} is not an active {' or '.join(sorted(wanted))} account"
                    )
                if not found["covers"]:
                    raise BadAssignee(f"{assignee} does not cover this brukare's team")
            before: str | None = row["assignee"]
            await conn.execute(
                "UPDATE round_checks SET assignee=$2, assigned_at=$3 WHERE check_id=$1",
                check_id,
                assignee,
                None if assignee is None else at,
            )
            await self._audit(
                conn,
                actor=_actor(by),
                action="check.assigned",
                subject=check_id,
                at=at,
                data={
                    "recipient_id": check.recipient_id,
                    "state": check.state.value,
                    "version": check.version,
                    "from": before,
                    "to": assignee,
                },
            )
            return check, before

    async def patrol_tasks(
        self, *, visible_to: str | None = None, teams: Teams = None
    ) -> list[dict[str, Any]]:
        """Open patrol tasks (``patrol``, ``patrol_acked``), oldest deadline first, with what the
        patrol needs at the door: the home, the door-code reference (never the code) and the
        care plan's instruction. ``visible_to``: only the tasks of that patrol and unassigned
        ones; ``teams``: of these teams only. Names and homes are personal data: for the
        patrol's screen, never a log."""
        rows = await self.pool.fetch(
            TASKS_SQL, [s.value for s in ch.PATROL_STATES], visible_to, _teams(teams)
        )
        return [dict(r) for r in rows]

    async def assignees(self, check_ids: Sequence[str]) -> dict[str, str]:
        """The assignee of each of these checks that has one."""
        rows = await self.pool.fetch(
            "SELECT check_id, assignee FROM round_checks WHERE check_id = ANY($1::text[])"
            " AND assignee IS NOT NULL",
            list(check_ids),
        )
        return {r["check_id"]: r["assignee"] for r in rows}

    async def assignable_staff(self, at: datetime, *, teams: Teams = None) -> list[dict[str, Any]]:
        """The people a check may be given to (:data:`ASSIGNABLE`'s roles, active, not service
        accounts): ``staff_id``, ``display_name`` (the username when it has none), ``role``,
        whether they are ``on_duty`` at ``at`` and the ``teams`` they cover (of ``teams`` only,
        when given: someone covering none of them is left out); on duty first, then by role and
        name."""
        rows = await self.pool.fetch(
            "SELECT staff_id, display_name, role, on_duty, ARRAY(SELECT t FROM unnest(covered) t"
            " WHERE $3::text[] IS NULL OR t = ANY($3::text[]) ORDER BY t) AS teams FROM ("
            " SELECT s.staff_id, coalesce(s.display_name, s.username) AS display_name, s.role,"
            " EXISTS (SELECT 1 FROM round_duty d WHERE d.staff_id = s.staff_id"
            " AND d.started_at <= $2 AND (d.ended_at IS NULL OR d.ended_at > $2)) AS on_duty,"
            " (staff_scope(s.staff_id, s.role, $2)).teams AS covered"
            " FROM staff s WHERE s.is_active AND NOT s.is_service AND s.role = ANY($1::text[])"
            ") x WHERE $3::text[] IS NULL OR covered && $3::text[]"
            " ORDER BY on_duty DESC, role, display_name, staff_id",
            sorted(ASSIGNABLE[True] | ASSIGNABLE[False]),
            at,
            _teams(teams),
        )
        return [{**dict(r), "teams": list(r["teams"])} for r in rows]

    async def lead_alarms(
        self, night: date, *, open_only: bool = False, teams: Teams = None
    ) -> list[dict[str, Any]]:
        """The alarms and escalations of a night addressed to the shift lead (each repeat its
        own row), oldest first; ``open_only``: those not acknowledged; ``teams``: of these."""
        rows = await self.pool.fetch(
            "SELECT a.check_id, c.recipient_id, a.version, a.kind, a.repeat, a.state,"
            " a.deadline, a.raised_at, a.acknowledged_at, a.acknowledged_by, c.state AS now,"
            " c.assignee, c.team_id FROM round_alarms a JOIN round_checks c USING (check_id)"
            " WHERE c.night=$1 AND a.addressed_to='shift_lead'"
            f" AND (NOT $2 OR a.acknowledged_at IS NULL) AND {IN_TEAMS % (3, 'c.', 3)}"
            " ORDER BY a.raised_at, a.check_id, a.version, a.repeat",
            night,
            open_only,
            _teams(teams),
        )
        return [dict(r) for r in rows]

    # ------------------------------------------------------------------ handover

    async def handover_facts(
        self, night: date, *, start: datetime, end: datetime, teams: Teams = None
    ) -> hv.Facts:
        """What the handover summarises: the night's checks (with assignees and patrol facts),
        its alarms, the suspensions active or begun in ``[start, end)`` and the pauses that
        overlap it (reason codes only: a pause's note stays in consent); of ``teams`` only,
        when given."""
        chosen = _teams(teams)
        async with self.pool.acquire() as conn:
            checks = await conn.fetch(
                f"SELECT {COLUMNS}, assignee, patrol_arrived_at, patrol_outcome FROM round_checks"
                f" WHERE night=$1 AND {IN_TEAMS % (2, '', 2)} ORDER BY agreed_at, check_id",
                night,
                chosen,
            )
            alarms = await conn.fetch(
                "SELECT a.check_id, a.version, a.state, a.deadline, a.raised_at,"
                " a.acknowledged_at, a.acknowledged_by, c.recipient_id, a.kind, a.repeat,"
                " a.addressed_to FROM round_alarms a JOIN round_checks c USING (check_id)"
                f" WHERE c.night=$1 AND {IN_TEAMS % (2, 'c.', 2)}"
                " ORDER BY a.raised_at, a.check_id, a.version, a.repeat",
                night,
                chosen,
            )
            suspensions = await conn.fetch(
                "SELECT s.recipient_id, s.device_id, s.event_type, s.started_at, s.event_count,"
                " s.lifted_at FROM suspensions s JOIN care_recipients r USING (recipient_id)"
                " WHERE s.started_at < $2 AND (s.lifted_at IS NULL OR s.lifted_at >= $1)"
                f" AND {IN_TEAMS % (3, 'r.', 3)} ORDER BY s.started_at, s.recipient_id",
                start,
                end,
                chosen,
            )
            pauses = await conn.fetch(
                "SELECT p.recipient_id, p.starts_at, p.ends_at, p.source, p.reason FROM pauses p"
                " JOIN care_recipients r USING (recipient_id)"
                " WHERE p.starts_at < $2 AND (p.ends_at IS NULL OR p.ends_at > $1)"
                f" AND {IN_TEAMS % (3, 'r.', 3)} ORDER BY p.starts_at, p.recipient_id",
                start,
                end,
                chosen,
            )
            reconciled_at = await conn.fetchval(
                "SELECT reconciled_at FROM round_nights WHERE night=$1", night
            )
        return hv.Facts(
            night=night,
            checks=tuple(
                hv.CheckFact(
                    check=check_from(r),
                    assignee=r["assignee"],
                    arrived_at=r["patrol_arrived_at"],
                    patrol_outcome=r["patrol_outcome"],
                )
                for r in checks
            ),
            alarms=tuple(hv.AlarmFact(**dict(r)) for r in alarms),
            suspensions=tuple(hv.SuspensionFact(**dict(r)) for r in suspensions),
            pauses=tuple(hv.PauseFact(**dict(r)) for r in pauses),
            reconciled_at=reconciled_at,
        )

    # ------------------------------------------------------------------ teams

    async def night_teams(
        self, night: date, *, teams: Teams = None
    ) -> tuple[dict[str, str], dict[str, tm.Place]]:
        """The team of each check of ``night`` (of ``teams`` only, when given) and where each
        of those teams sits (its unit and organisation, with names), for the roll-ups."""
        rows = await self.pool.fetch(
            "SELECT c.check_id, c.team_id, t.name AS team_name, t.unit_id, u.name AS unit_name,"
            " t.organisation_id, o.name AS organisation_name FROM round_checks c"
            " JOIN teams t USING (team_id) JOIN units u ON u.unit_id = t.unit_id"
            " JOIN organisations o ON o.organisation_id = t.organisation_id"
            f" WHERE c.night=$1 AND {IN_TEAMS % (2, 'c.', 2)}",
            night,
            _teams(teams),
        )
        places = {
            r["team_id"]: tm.Place(
                r["team_id"],
                r["team_name"],
                r["unit_id"],
                r["unit_name"],
                r["organisation_id"],
                r["organisation_name"],
            )
            for r in rows
        }
        return {r["check_id"]: r["team_id"] for r in rows}, places


ASSIGNABLE: dict[bool, frozenset[str]] = {
    True: frozenset({"patrol"}),  # a patrol task goes to a patrol
    False: frozenset({"operator", "shift_lead", "administrator"}),  # a look, to an operator
}
"""Who a check may be assigned to, by whether it is a patrol task (staff roles' values)."""

#: The instruction of the care plan in force at a check's agreed time (``c`` is the check's row),
#: as a select-list column: the patrol's task list and the night sheet both show it.
PLAN_INSTRUCTION_SQL = """
       coalesce((SELECT p.instruction FROM care_plans p
                  WHERE p.recipient_id = c.recipient_id AND p.valid_from <= c.agreed_at
                    AND (p.valid_until IS NULL OR p.valid_until > c.agreed_at)
                    AND (p.ended_at IS NULL OR p.ended_at > c.agreed_at)
                  ORDER BY p.valid_from DESC LIMIT 1), '') AS instruction"""

TASKS_SQL = f"""
SELECT c.check_id, c.recipient_id, c.night, c.agreed, c.agreed_at, c.state, c.reason, c.since,
       c.deadline, c.holder, c.version, c.assignee, c.assigned_at, c.patrol_arrived_at,
       coalesce(r.display_name, '') AS display_name, coalesce(r.home, '') AS home,
       coalesce(r.door_code_ref, '') AS door_code_ref,
       {PLAN_INSTRUCTION_SQL.strip()}
  FROM round_checks c LEFT JOIN care_recipients r USING (recipient_id)
 WHERE c.state = ANY($1::text[]) AND ($2::text IS NULL OR c.assignee IS NULL OR c.assignee = $2)
   AND ($3::text[] IS NULL OR c.team_id = ANY($3::text[]))
 ORDER BY c.deadline, c.check_id
"""
"""Open patrol tasks with the home, the door-code reference and the plan's instruction."""


def _already_reported(
    check: Check, row: asyncpg.Record, event: ch.PatrolAcknowledged | ch.PatrolVisited
) -> bool:
    """Whether ``event`` repeats what this staff member already reported (a retried request)."""
    if isinstance(event, ch.PatrolAcknowledged):
        return check.state is State.PATROL_ACKED and check.holder == event.staff_id
    if event.outcome is ch.PatrolOutcome.NOT_HOME:
        return check.state is State.PATROL and check.reason == "not_home" and not row["assignee"]
    return (
        check.state is State.VISITED
        and check.holder == event.staff_id
        and row["patrol_outcome"] == (event.outcome.value if event.outcome else None)
    )


def _outcome_of(event: ch.Event) -> dict[str, str]:
    """A patrol's reported outcome, for the audit entry of its step."""
    if isinstance(event, ch.PatrolVisited) and event.outcome is not None:
        return {"outcome": event.outcome.value}
    return {}


def _seen_of(event: ch.Event) -> dict[str, float]:
    """The seconds of video an ``ok`` rests on, for the audit entry of its step."""
    if isinstance(event, ch.Outcome) and event.kind is ch.OutcomeKind.OK:
        return {"video_s": round(event.video_s, 1)}
    return {}


def _columns(
    rows: Sequence[Check], policies: dict[int, tuple[int, str]] | None = None
) -> list[list[Any]]:
    """One list per column of :data:`INSERT_COLUMNS`. ``policies`` (given empty) is filled with
    each distinct policy object's position (from 1) and JSON, by ``id``."""
    seen: dict[int, tuple[int, str]] = {} if policies is None else policies
    for r in rows:  # the planner shares one Policy object among the checks of the same terms
        if id(r.policy) not in seen:
            seen[id(r.policy)] = (len(seen) + 1, policy_json(r.policy))
    return [
        [r.check_id for r in rows],
        [r.recipient_id for r in rows],
        [r.device_id for r in rows],
        [r.night for r in rows],
        [r.agreed for r in rows],
        [r.agreed_at for r in rows],
        [r.window_start for r in rows],
        [r.window_end for r in rows],
        [seen[id(r.policy)][1] for r in rows],
        [r.state.value for r in rows],
        [r.since for r in rows],
        [r.deadline for r in rows],
        [r.attempt for r in rows],
        [r.ladder_step for r in rows],
        [r.reason for r in rows],
        [r.holder for r in rows],
        [r.verdict for r in rows],
    ]
