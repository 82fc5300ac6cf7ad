"""Live views through the composed service: real gate and consent records, PostgreSQL, Mosquitto,
and simulated cameras answering with real aiortc media."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import re
import time
from datetime import time as local_time
from datetime import timedelta

import aiohttp
import numpy as np
import pytest
from av import VideoFrame

from consent.enrol import consent_id
from consent.model import Basis, BindingAction, BindingConfirmation, Consent, Purpose
from devices import envelope as env
from devices.topics import CommandOp, DeviceKind, EventType
from homeside.peer import AnswerPolicy
from services import app
from tests.integration.signalling_home import ADMIN, ADMIN2, Served, due_check, seed_home, served
from tests.integration.signalling_support import audit_actions, wait_for
from tools.view import View, view_command

pytestmark = pytest.mark.integration
NOTE = "testet tittar extra"  # an extra look's note (kept in its row, never logged)


async def test_view_through_the_app_runs_to_the_cap_and_stops_the_camera(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    async with served(database_url, mqtt_url, topic_prefix, [("cam-0001", DeviceKind.CAMERA)]) as s:
        await seed_home(s, "rec-0001", ["cam-0001"], view_cap_s=10)
        check_id = await due_check(s, "cam-0001")
        async with s.channel() as channel:
            view = View(channel, "cam-0001", check_id=check_id)
            began = asyncio.get_running_loop().time()
            task = asyncio.create_task(view.run())
            await asyncio.wait_for(view.first_frame.wait(), 10)
            await wait_for(lambda: view.result.frames >= 10, what="10 decoded frames")
            assert not task.done()
            s.clock.advance(10)  # to the cap on the service's clock, without waiting for it
            result = await asyncio.wait_for(task, 5)
            real_s = asyncio.get_running_loop().time() - began  # the clock also ran this long
        peer = s.peers["cam-0001"]
        await wait_for(lambda: peer.pc is None, what="the camera's peer closed")
        assert peer.stats.byes == 1
        await wait_for(
            lambda: _has_command(s, "cam-0001", "sleep"), what="sleep command to the camera"
        )
        actions = await audit_actions(s.rt.pool, view.session_id)
    assert result.granted
    assert result.bye == "timeout"
    assert result.frames >= 10
    assert [a for a, _ in actions] == ["view.started", "view.ended"]
    started_data, ended_data = actions[0][1], actions[1][1]
    assert started_data["device_id"] == "cam-0001"
    assert started_data["cap_s"] == 10
    assert ended_data["reason"] == "timeout"
    # The cap on the service's clock: the 10 s jump plus the real time the test itself took.
    assert 10.0 <= ended_data["duration_s"] <= 10.0 + real_s, (ended_data, real_s)


async def _has_command(s: Served, device_id: str, op: str) -> bool:
    n = await s.rt.pool.fetchval(
        "SELECT count(*) FROM device_commands WHERE device_id = $1 AND op = $2", device_id, op
    )
    return bool(n)


async def test_denied_with_a_reason_and_audited(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    cams = [("cam-0011", "rec-0011"), ("cam-0012", "rec-0012"), ("cam-0013", None)]
    async with served(
        database_url, mqtt_url, topic_prefix, [(c, DeviceKind.CAMERA) for c, _ in cams]
    ) as s:
        await seed_home(s, "rec-0011", ["cam-0011"], purposes=(Purpose.MOTION_ANALYSIS,))
        await seed_home(s, "rec-0012", ["cam-0012"], check_at=local_time(3, 0))
        await s.rt.pool.execute("DELETE FROM devices WHERE device_id = 'cam-0099'")
        expected = {
            "cam-0011": "no_consent",
            "cam-0012": "outside_window",
            "cam-0013": "device_not_bound",
            "cam-0099": "device_offline",
        }
        async with s.channel() as channel:
            for device_id, reason in expected.items():
                # an extra look (no check is due for these homes): the gate decides it
                look = View(channel, device_id, reason=env.LookReason.ALARM, note=NOTE)
                result = await asyncio.wait_for(look.run(), 10)
                assert result.denied == reason, (device_id, result)
                assert not result.granted
        rows = await s.rt.pool.fetch(
            "SELECT data->>'device_id' AS device_id, data->>'reason' AS reason FROM audit_log"
            " WHERE action = 'view.denied' ORDER BY seq"
        )
        open_rows = await s.rt.pool.fetchval("SELECT count(*) FROM signal_sessions")
    assert {r["device_id"]: r["reason"] for r in rows} == expected
    assert open_rows == 0


async def test_withdrawal_closes_the_view_within_one_second(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    async with served(database_url, mqtt_url, topic_prefix, [("cam-0021", DeviceKind.CAMERA)]) as s:
        await seed_home(s, "rec-0021", ["cam-0021"])
        check_id = await due_check(s, "cam-0021")
        async with s.channel() as channel:
            view = View(channel, "cam-0021", check_id=check_id)
            task = asyncio.create_task(view.run())
            await wait_for(lambda: view.result.frames >= 5, what="5 decoded frames")
            t0 = time.perf_counter()
            await s.rt.consent.withdraw_consent(
                consent_id("rec-0021", Purpose.CAMERA_CHECK),
                withdrawn_at=s.clock(),
                reason=None,
                actor=ADMIN,
                at=s.clock(),
            )
            result = await asyncio.wait_for(task, 5)
            teardown_s = time.perf_counter() - t0
        peer = s.peers["cam-0021"]
        await wait_for(lambda: peer.pc is None, what="the camera's peer closed")
        actions = await audit_actions(s.rt.pool, view.session_id)
    print(f"withdrawal -> bye at the client: {teardown_s * 1000:.0f} ms")
    assert result.bye == "withdrawn"
    assert teardown_s < 1.0
    assert [a for a, _ in actions] == ["view.started", "view.ended"]
    assert actions[1][1]["reason"] == "withdrawn"


async def test_call_rings_and_auto_answers_only_under_consent(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    phone_id = "phone-0033"
    async with served(
        database_url,
        mqtt_url,
        topic_prefix,
        [(phone_id, DeviceKind.VIDEO_PHONE)],
        policy=AnswerPolicy.parse("never"),
    ) as s:
        s.rt.signalling.config = dataclasses.replace(s.rt.signalling.config, ring_timeout_s=1.5)
        # a call's video needs the camera check's basis too (issue 13, finding 4)
        await seed_home(
            s, "rec-0033", [phone_id], purposes=(Purpose.VIDEO_CALL, Purpose.CAMERA_CHECK)
        )
        phone = s.peers[phone_id]
        async with s.channel() as channel:
            unanswered = await asyncio.wait_for(
                View(channel, phone_id, purpose=env.Purpose.CALL).run(), 10
            )
            assert unanswered.bye == "no_answer"
            assert phone.stats.offers == 0
            await s.rt.consent.record_consent(
                Consent(
                    consent_id=consent_id("rec-0033", Purpose.AUTO_ANSWER),
                    recipient_id="rec-0033",
                    cohabitant_id=None,
                    purpose=Purpose.AUTO_ANSWER,
                    version=0,
                    basis=Basis.INFORMED_CONSENT,
                    given_at=s.clock() - timedelta(days=1),
                    valid_from=s.clock() - timedelta(days=1),
                    informed_by=ADMIN,
                    informed_how="samtal i hemmet",
                ),
                actor=ADMIN,
                at=s.clock(),
            )
            call = View(channel, phone_id, purpose=env.Purpose.CALL)
            task = asyncio.create_task(call.run())
            await wait_for(lambda: call.result.frames >= 5, what="the phone's video at the caller")
            await wait_for(lambda: phone.stats.frames_received >= 5, what="caller's video")
            await call.hang_up()
            answered = await asyncio.wait_for(task, 5)
        await wait_for(lambda: phone.pc is None, what="phone hung up")
        actions = await audit_actions(s.rt.pool, call.session_id)
    assert answered.bye == "operator"
    assert [a for a, _ in actions] == ["call.started", "call.answered", "call.ended"]
    assert actions[0][1]["auto_answer"] is True


async def test_camera_scene_changes_at_run_time(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    means: list[float] = []

    def luma(frame: VideoFrame) -> None:
        plane = frame.planes[0]
        rows = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)
        means.append(float(rows[:, : frame.width].mean()))

    async with served(database_url, mqtt_url, topic_prefix, [("cam-0041", DeviceKind.CAMERA)]) as s:
        await seed_home(s, "rec-0041", ["cam-0041"])
        check_id = await due_check(s, "cam-0041")
        async with s.channel() as channel:
            view = View(channel, "cam-0041", on_picture=luma, check_id=check_id)
            task = asyncio.create_task(view.run())
            await wait_for(lambda: len(means) >= 5, what="frames of the walking scene")
            lit = sum(means[-3:]) / 3
            ack = await s.rt.commands.send("cam-0041", CommandOp.SCENE, {"scene": "lights_off"})
            assert ack.ok
            switched = len(means)
            await wait_for(lambda: len(means) >= switched + 8, what="frames after the switch")
            dark = sum(means[-3:]) / 3
            bad = await s.rt.commands.send("cam-0041", CommandOp.SCENE, {"scene": "disco"})
            await view.hang_up()
            await asyncio.wait_for(task, 5)
    assert not bad.ok
    assert dark < lit - 20, (lit, dark)


async def test_two_service_processes_share_device_messages(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    """Two runtimes (as two ``homecare serve`` processes) on one database and broker: the
    device's messages reach either one (a shared subscription); the other routes them on.

    The broker hands the group's messages out in turn, and a view the operator hangs up sends
    two (``answer``, then ``stats``), which would bring every answer to the same process; so
    every other view is ended by the camera (``bye device_lost``, a third message), and the
    answers of the next ones reach the process that does not hold the operator's socket."""
    async with served(database_url, mqtt_url, topic_prefix, [("cam-0061", DeviceKind.CAMERA)]) as s:
        await seed_home(s, "rec-0061", ["cam-0061"])
        check_id = await due_check(s, "cam-0061")
        camera = s.peers["cam-0061"]
        other = dataclasses.replace(s.rt.settings, instance_id="app-other")
        async with app.runtime(other, clock=s.clock) as rt_b:
            await rt_b.signalling.wait_ready()
            frames, byes = [], []
            async with s.channel() as channel:
                for i in range(6):  # re-opens of one check, sharing its budget
                    view = View(channel, "cam-0061", check_id=check_id)
                    task = asyncio.create_task(view.run())
                    await asyncio.wait_for(view.first_frame.wait(), 10)
                    byes_at_camera = camera.stats.byes
                    if i % 2 == 0:
                        await view.hang_up()  # operator -> A -> the camera's webrtc/in
                    else:  # the camera's webrtc/out -> A or B -> A -> the operator
                        bye = env.Bye(view.session_id, env.ByeReason.DEVICE_LOST)
                        await camera.device.send_signal(env.as_json(bye))
                    result = await asyncio.wait_for(task, 5)
                    if i % 2 == 0:
                        await wait_for(
                            lambda n=byes_at_camera: camera.stats.byes > n,
                            what="the operator's bye at the camera",
                        )
                    else:
                        await camera.close()  # its own side; its stats go out
                    frames.append(result.frames)
                    byes.append(result.bye)
                    await wait_for(
                        lambda n=i + 1: len(camera.stats.reported) == n, what="camera closed"
                    )
                # every session's stats, stored by whichever process took them
                await wait_for(lambda: _stats_recorded(s, rt_b) == 6, what="stats of 6 views")
            routed_out = rt_b.signalling.counters["routed_out"]
            routed_in = s.rt.signalling.counters["routed_in"]
            stored_by_b = rt_b.signalling.counters["device_stats_recorded"]
            owners = await s.rt.pool.fetch(
                "SELECT DISTINCT instance_id FROM signal_sessions WHERE check_id = $1", check_id
            )
    assert all(n >= 1 for n in frames)
    assert byes == ["operator", "device_lost"] * 3
    assert [r["instance_id"] for r in owners] == [s.rt.settings.instance_id]
    assert routed_out >= 1  # the other process handled some answers or byes ...
    assert routed_in == routed_out  # ... and every one reached the owner
    assert stored_by_b >= 1  # and stored stats of sessions it does not hold


def _stats_recorded(s: Served, rt_b: app.Runtime) -> int:
    counters = (s.rt.signalling.counters, rt_b.signalling.counters)
    return sum(c["device_stats_recorded"] for c in counters)


async def test_unbinding_the_camera_ends_the_view(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    async with served(database_url, mqtt_url, topic_prefix, [("cam-0071", DeviceKind.CAMERA)]) as s:
        await seed_home(s, "rec-0071", ["cam-0071"])
        check_id = await due_check(s, "cam-0071")
        async with s.channel() as channel:
            view = View(channel, "cam-0071", check_id=check_id)
            task = asyncio.create_task(view.run())
            await wait_for(lambda: view.result.frames >= 3, what="frames")
            t0 = time.perf_counter()
            req = await s.rt.consent.request_binding(
                request_id="breq-unbind-0071",
                action=BindingAction.UNBIND,
                device_id="cam-0071",
                recipient_id="rec-0071",
                actor=ADMIN,
                at=s.clock(),
            )
            await s.rt.consent.confirm_binding(
                req.request_id, BindingConfirmation("rec-0071"), actor=ADMIN2, at=s.clock()
            )
            result = await asyncio.wait_for(task, 5)
            teardown_s = time.perf_counter() - t0
            extra = View(channel, "cam-0071", reason=env.LookReason.FOLLOW_UP, note=NOTE)
            again = await asyncio.wait_for(extra.run(), 10)
    assert result.bye == "withdrawn"
    assert teardown_s < 1.0
    assert again.denied == "device_not_bound"


async def test_homecare_view_prints_frames_and_why_it_ended(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    async with served(database_url, mqtt_url, topic_prefix, [("cam-0081", DeviceKind.CAMERA)]) as s:
        await seed_home(s, "rec-0081", ["cam-0081"], view_cap_s=10)
        check_id = await due_check(s, "cam-0081")
        base = str(s.server.make_url("/"))
        out = io.StringIO()
        owed_nothing = io.StringIO()
        bare = await view_command(url=base, device_id="cam-0081", token=s.token, out=owed_nothing)

        async def cap_after_frames() -> None:  # jump to the cap once enough frames went out
            await wait_for(lambda: s.peers["cam-0081"].frames_sent >= 25, what="25 frames sent")
            s.clock.advance(10)

        jump = asyncio.create_task(cap_after_frames())
        code = await view_command(
            url=base, device_id="cam-0081", token=s.token, out=out, check_id=check_id
        )
        await jump
        denied = io.StringIO()
        refused = await view_command(url=base, device_id="cam-0082", token=s.token, out=denied)
    lines = out.getvalue().splitlines()
    assert code == 0
    assert re.fullmatch(r"\d+ frames", lines[0])
    assert int(lines[0].split()[0]) >= 20
    assert lines[1] == "ended: timeout"
    assert refused == 2
    assert denied.getvalue().strip() == "denied: device_offline"
    # a view that names neither a due check nor an extra look's reason and note
    assert bare == 2
    assert owed_nothing.getvalue().strip() == "denied: no_due_check"


async def test_tamper_on_the_camera_suspends_and_ends_the_view(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    async with served(database_url, mqtt_url, topic_prefix, [("cam-0091", DeviceKind.CAMERA)]) as s:
        await seed_home(s, "rec-0091", ["cam-0091"])
        check_id = await due_check(s, "cam-0091")
        async with s.channel() as channel:
            view = View(channel, "cam-0091", check_id=check_id)
            task = asyncio.create_task(view.run())
            await wait_for(lambda: view.result.frames >= 3, what="frames")
            t0 = time.perf_counter()
            await s.peers["cam-0091"].device.send_event(EventType.TAMPER)
            result = await asyncio.wait_for(task, 5)
            teardown_s = time.perf_counter() - t0
            extra = View(channel, "cam-0091", reason=env.LookReason.FOLLOW_UP, note=NOTE)
            again = await asyncio.wait_for(extra.run(), 10)
        actions = await audit_actions(s.rt.pool, view.session_id)
    assert result.bye == "withdrawn"
    assert teardown_s < 1.0
    assert again.denied == "suspended"
    assert actions[-1][1]["reason"] == "withdrawn"
    assert actions[-1][1]["detail"] == "suspended"


async def test_the_reference_viewer_page_is_served(
    database_url: str, mqtt_url: str, topic_prefix: str
) -> None:
    """``/viewer/`` and its files (the browser tests' page) come from ``services/web/static``."""
    async with served(database_url, mqtt_url, topic_prefix, []) as s, aiohttp.ClientSession() as h:
        for path, kind in [
            ("/viewer/", "text/html"),
            ("/viewer/viewer.js", "text/javascript"),
            ("/viewer/viewer.css", "text/css"),
        ]:
            async with h.get(s.server.make_url(path)) as response:
                assert (response.status, response.content_type) == (200, kind), path
        async with h.get(s.server.make_url("/viewer/nothing.js")) as response:
            assert response.status == 404
