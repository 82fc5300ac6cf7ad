"""The device agent with a file source against the composed service (issue 19): it comes online
in the registry with its meta and measured video health, is bound in two steps (a technician
asks, the agent's bind button is pressed, an administrator confirms with the brukare's details),
and a view of its due check is decoded by an aiortc receiver showing the clip's picture."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from av import VideoFrame

from agent.app import Agent, AgentConfig
from agent.sources import parse_source
from consent import enrol
from consent.model import CarePlan, CareRecipient, CheckTime, Purpose
from devices.topics import DeviceKind
from kernel.roles import Role
from tests.integration.signalling_home import (
    ADMIN,
    Served,
    _staff_token,
    due_check,
    served,
)
from tests.integration.signalling_support import wait_for
from tools.view import View

pytestmark = pytest.mark.integration

VIDEO = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "video"
CLIP = VIDEO / "gmdcsa24_S3_ADL_20.mp4"
CAM = "cam-agent-1"
RID = "r-agent1"
needs_clip = pytest.mark.skipif(not CLIP.is_file(), reason="../shared/data/video is not here")


@asynccontextmanager
async def running(
    mqtt_url: str, prefix: str, source: str, device_id: str = CAM
) -> AsyncIterator[Agent]:
    """The agent as ``homecare agent`` runs it, in this process."""
    agent = Agent(
        AgentConfig(
            device_id=device_id,
            kind=DeviceKind.CAMERA,
            source=parse_source(source),
            mqtt_url=mqtt_url,
            prefix=prefix,
            width=320,
            height=240,
            fps=10.0,
            keepalive_s=5,
        )
    )
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        yield agent
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def health(s: Served, device_id: str) -> dict[str, Any]:
    raw = await s.rt.pool.fetchval("SELECT health FROM devices WHERE device_id = $1", device_id)
    return {} if raw is None else dict(json.loads(raw))


async def online(s: Served, device_id: str) -> bool:
    row = await s.rt.pool.fetchrow(
        "SELECT presence, kind FROM devices WHERE device_id = $1", device_id
    )
    return row is not None and row["presence"] == "online" and row["kind"] is not None


@needs_clip
async def test_a_file_agent_is_bound_in_two_steps_and_viewed(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    async with (
        served(database_url, mqtt_url, topic_prefix, []) as s,
        running(mqtt_url, topic_prefix, f"file:{CLIP}") as agent,
    ):
        await wait_for(lambda: online(s, CAM), what="the agent online", timeout_s=15)
        row = await s.rt.pool.fetchrow(
            "SELECT quarantined, firmware, video FROM devices WHERE device_id = $1", CAM
        )
        assert row["quarantined"] is True
        video_spec = json.loads(row["video"])
        assert (row["firmware"], video_spec) == ("agent-1.0", {"w": 320, "h": 240, "fps": 10.0})

        async def video_ok() -> bool:
            return (await health(s, CAM)).get("video", {}).get("state") == "ok"

        await wait_for(video_ok, what="health.video ok", timeout_s=10)
        video = (await health(s, CAM))["video"]
        assert 5 < video["fps"] < 40  # measured as the first pictures arrive (the clip: 15 fps)
        assert 100 < video["luma"] < 170  # a lit bedroom

        # the brukare, then the binding in two steps by two people with proof from the device
        store, now = s.rt.consent, s.clock()
        await store.add_recipient(
            CareRecipient(recipient_id=RID, display_name="Testperson", home="Storgatan 1"),
            actor=ADMIN,
            at=now,
        )
        tech = await _staff_token(s.rt, "t-tech", Role.TECHNICIAN)
        admin = await _staff_token(s.rt, "t-admin", Role.ADMINISTRATOR)
        base = str(s.server.make_url("/api"))
        async with aiohttp.ClientSession() as http:

            async def post(token: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
                headers = {"Authorization": f"Bearer {token}"}
                async with http.post(base + path, json=body, headers=headers) as r:
                    return r.status, await r.json()

            status, req = await post(
                tech, f"/devices/{CAM}/binding-requests", {"recipient_id": RID}
            )
            assert (status, req["proof"]) == (201, "button"), req
            confirm = f"/binding-requests/{req['request_id']}/confirm"
            details = {"recipient_id": RID, "name": "Testperson", "address": "Storgatan 1"}
            status, body = await post(admin, confirm, details)
            assert (status, body["error"]["code"]) == (422, "device_proof")  # not pressed yet
            await agent.press_bind_button()

            async def pressed() -> bool:
                status, body = await post(admin, confirm, details)
                return status == 200 and body["device_id"] == CAM

            await wait_for(pressed, what="the binding confirmed after the press", timeout_s=10)
        assert not await s.rt.pool.fetchval(
            "SELECT quarantined FROM devices WHERE device_id = $1", CAM
        )

        # consent and a plan: the round plans tonight's check, which waits for a human view
        await enrol.grant(
            store,
            RID,
            (Purpose.CAMERA_CHECK,),
            given_at=now - timedelta(days=2),
            informed_by=ADMIN,
            informed_how="samtal i hemmet",
            actor=ADMIN,
            at=now,
        )
        await store.add_plan(
            CarePlan(
                plan_id=f"plan-{RID}",
                recipient_id=RID,
                decision_ref="SN-TEST",
                valid_from=now - timedelta(days=2),
                checks=(CheckTime(time(22, 5), 60),),
                view_cap_s=30,
            ),
            actor=ADMIN,
            at=now,
        )
        check_id = await due_check(s, CAM)

        lumas: list[float] = []

        def look(frame: VideoFrame) -> None:  # in memory only, never kept
            lumas.append(float(np.mean(frame.to_ndarray(format="gray"))))

        async with s.channel() as channel:
            view = View(channel, CAM, check_id=check_id, duration_s=2.5, on_picture=look)
            result = await asyncio.wait_for(view.run(), 20)
        assert result.granted, result
        assert result.frames >= 10, result
        # the clip's picture, not the black the agent sends without one
        assert len(lumas) >= 10
        assert 100 < float(np.median(lumas)) < 170
        assert agent.source.frames > 0
        assert agent.source.failures == 0
