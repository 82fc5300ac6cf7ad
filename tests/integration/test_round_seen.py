"""Documentation matches what happened (issue 15), through the round's HTTP API on the real
database: ``ok`` needs video delivered to that operator for that check (409 ``not_viewed``
otherwise, nothing changed), and the morning report's views and seconds are the sessions'."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from tests.integration.test_round_api import (
    CHECK,
    NIGHT,
    OPERATOR,
    OTHER,
    WS,
    Rig,
    error,
    ok,
    rig,
    snapshot,
    to_needs_view,
)
from tests.rounds_support import delivered

pytestmark = pytest.mark.integration
__all__ = ["rig"]  # the fixture
OUTCOME = f"/api/checks/{CHECK}/outcome"


async def viewing(r: Rig) -> None:
    await to_needs_view(r)
    await ok(await r.client.post("/api/rounds/duty", headers=OPERATOR, json={}), 201)
    await ok(await r.client.post(f"/api/checks/{CHECK}/view", headers=OPERATOR, json={}))


async def test_ok_without_opening_the_feed_is_not_viewed(rig: Rig, pool: asyncpg.Pool) -> None:
    c = rig.client
    await viewing(rig)
    before = await snapshot(pool)
    e = await error(await c.post(OUTCOME, headers=OPERATOR, json={"outcome": "ok"}), 409)
    assert e["code"] == "not_viewed"
    assert await snapshot(pool) == before
    # another operator's look, half a second of video, or a look with no report: still not seen
    at = WS + timedelta(seconds=40)
    await delivered(pool, CHECK, "staff-oper02", started_at=at, open_s=20, video_s=19.0)
    await delivered(pool, CHECK, "staff-oper01", started_at=at, open_s=5, video_s=0.5)
    await delivered(
        pool, CHECK, "staff-oper01", started_at=at, open_s=9, video_s=None, purpose="call"
    )
    rig.clock.set(at + timedelta(minutes=1))  # long after: nothing is still to come
    before = await snapshot(pool)
    e = await error(await c.post(OUTCOME, headers=OPERATOR, json={"outcome": "ok"}), 409)
    assert e["code"] == "not_viewed"
    assert await snapshot(pool) == before
    # what the operator may document without a picture
    body = await ok(await c.post(OUTCOME, headers=OPERATOR, json={"outcome": "not_seen"}))
    assert body["state"] == "retry_wait"


async def test_a_view_of_an_earlier_attempt_does_not_document_a_later_one(
    rig: Rig, pool: asyncpg.Pool
) -> None:
    c = rig.client
    await viewing(rig)
    at = WS + timedelta(seconds=40)
    await delivered(pool, CHECK, "staff-oper01", started_at=at, open_s=20, video_s=19.0)
    await ok(await c.post(OUTCOME, headers=OPERATOR, json={"outcome": "not_seen"}))
    retry = WS + timedelta(minutes=25)
    rig.clock.set(retry)
    await rig.store.open_due(retry)
    from supervision import checks as ch

    (claimed,) = await rig.store.claim("w1", retry)
    await rig.store.finish(claimed, ch.ProbeSkipped("no_motion_consent"), at=retry)
    await ok(await c.post(f"/api/checks/{CHECK}/view", headers=OPERATOR, json={}))
    e = await error(await c.post(OUTCOME, headers=OPERATOR, json={"outcome": "ok"}), 409)
    assert e["code"] == "not_viewed"
    later = retry + timedelta(seconds=20)
    await delivered(pool, CHECK, "staff-oper01", started_at=later, open_s=12, video_s=11.0)
    body = await ok(await c.post(OUTCOME, headers=OPERATOR, json={"outcome": "ok"}))
    assert body["state"] == "documented"
    audit = await pool.fetchval(
        "SELECT data->>'video_s' FROM audit_log WHERE action = 'check.documented'"
    )
    assert float(audit) == 11.0  # what "seen" rested on, in the audit log


async def test_ok_waits_for_the_report_of_a_look_that_just_ended(
    rig: Rig, pool: asyncpg.Pool
) -> None:
    c = rig.client
    await viewing(rig)
    at = WS + timedelta(seconds=40)
    sid = await delivered(pool, CHECK, "staff-oper01", started_at=at, open_s=20, video_s=None)
    rig.clock.set(at + timedelta(seconds=20))  # the bye has just come; the camera reports now
    documenting = asyncio.create_task(c.post(OUTCOME, headers=OPERATOR, json={"outcome": "ok"}))
    await pool.execute(
        "UPDATE signal_sessions SET frames_sent = 190, video_s = 19.2 WHERE session_id = $1", sid
    )
    body = await ok(await asyncio.wait_for(documenting, 10))
    assert body["state"] == "documented"


async def test_the_report_counts_what_the_sessions_delivered(rig: Rig, pool: asyncpg.Pool) -> None:
    c = rig.client
    await viewing(rig)
    at = WS + timedelta(seconds=40)
    await delivered(pool, CHECK, "staff-oper01", started_at=at, open_s=10, video_s=8.5)
    await delivered(
        pool, CHECK, "staff-oper01", started_at=at + timedelta(seconds=30), open_s=14, video_s=12.0
    )
    await ok(await c.post(OUTCOME, headers=OPERATOR, json={"outcome": "ok"}))
    await delivered(
        pool,
        None,
        "staff-oper02",
        started_at=WS + timedelta(hours=3),
        open_s=30,
        video_s=28.25,
        device_id="cam-r2",
        extra=("alarm", "larmet gick 00:45"),
    )
    await delivered(
        pool, None, "staff-oper02", started_at=WS + timedelta(hours=4), open_s=60, video_s=55.0,
        purpose="call", device_id="phone-r2",
    )  # fmt: skip
    # a look of another night is not this night's
    await delivered(pool, None, "staff-oper02", started_at=WS + timedelta(days=1), open_s=9,
                    video_s=8.0, extra=("follow_up", "x"))  # fmt: skip
    report = await ok(await c.get(f"/api/nights/{NIGHT}/report", headers=OTHER))
    t = report["totals"]
    assert (t["views"], t["extra_looks"], t["calls"]) == (3, 1, 1)
    assert t["view_seconds"] == 48.8  # 8.5 + 12.0 + 28.25, delivered, rounded once
    assert t["call_seconds"] == 55.0
    by = {r["recipient_id"]: r for r in report["recipients"]}
    (check,) = [x for x in by["r1"]["checks"] if x["check_id"] == CHECK]
    assert (check["views"], check["seconds"]) == (2, 20.5)
    (extra,) = report["extra_looks"]
    assert (extra["operator"], extra["reason"], extra["note"]) == (
        "staff-oper02",
        "alarm",
        "larmet gick 00:45",
    )
    assert (extra["open_s"], extra["seconds"]) == (30.0, 28.2)
    assert {"kind": "extra_look"}.items() <= by["r2"]["deviation_list"][-1].items()
    ops = {o["staff_id"]: o for o in report["operators"]}
    assert (ops["staff-oper01"]["views"], ops["staff-oper01"]["view_seconds"]) == (2, 20.5)
    assert ops["staff-oper02"]["extra_looks"] == 1
    page = await c.get(f"/api/nights/{NIGHT}/report?format=html", headers=OTHER)
    assert "larmet gick 00:45" in await page.text()
