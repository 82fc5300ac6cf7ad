"""Live-view latencies through the whole service on loopback, against DESIGN's targets.

The composed service (``services.app.runtime``: real consent gate, PostgreSQL, Mosquitto) on a
local port, ``--homes`` simulated cameras with real aiortc media (320x240, 10 fps), and a
receive-only aiortc viewer (:class:`tools.view.View`) over ``/ws/signal``:

- **request -> first decoded frame** over ``--sessions`` views (cameras in turn); baseline in
  the same run: two aiortc peers in this process connected directly (no signalling, no broker,
  no gate), request -> first decoded frame, as many samples as the service gets, after
  :data:`WARM_UP` connections that are not counted (the service's first views warm it up too:
  they are counted, as an operator's first view of the night would be);
- **click -> first frame painted** in headless Chromium (``--browser`` views, 20 by default in
  ``homecare bench``): the viewer page ``/viewer/`` pressing *Öppna bild*, until the page's
  first frame is on screen (the page's own ``firstFrameMs``); baseline: the same service's
  request -> first frame with the aiortc viewer above;
- **withdrawal -> teardown** over ``--withdrawals`` views: a pause is written through the consent
  store (the change reaches signalling as the store's event), timed until the viewer holds
  ``bye withdrawn``, and until the camera's peer has closed; then one real consent withdrawal per
  home. Baseline: the operator's own hang-up -> ``bye`` on the same path (no gate involved).

Targets (DESIGN.md): first frame p95 < 700 ms, withdrawal -> closed p99 < 1 s. Scratch database
on ``HOMECARE_BENCH_DATABASE_URL`` (default the loopback server), broker
``HOMECARE_BENCH_MQTT_URL`` (default ``mqtt://127.0.0.1:1883``). Writes
``bench/results/signalling.json``.

    .venv/bin/python -m bench.signalling [--sessions 50] [--withdrawals 50] [--homes 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as local_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import numpy as np
import structlog
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack

from consent import enrol
from consent.model import (
    CarePlan,
    CareRecipient,
    CheckTime,
    Pause,
    PauseReason,
    PauseSource,
    Purpose,
)
from devices import envelope as env
from devices.topics import DeviceKind
from homeside.device import DeviceClient, DeviceSpec
from homeside.media import FrameTrack
from homeside.peer import DevicePeer
from identity import store as staff_store
from kernel.roles import Role
from services import app
from services.settings import load
from simulators.homes import attach
from simulators.scenes import Scene, SceneKind
from tools.view import View, WebSocketChannel

RESULTS = Path(__file__).parent / "results"
CHROMIUM = "/usr/bin/chromium"
#: ../shared/RECIPES.md: real WebRTC in headless Chromium on loopback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
STHLM = ZoneInfo("Europe/Stockholm")
TARGET_FIRST_FRAME_P95_S = 0.700
TARGET_WITHDRAWAL_P99_S = 1.0
ADMIN, ADMIN2 = "staff-bench-admin1", "staff-bench-admin2"
WARM_UP = 3
"""Direct connections made and discarded before the baseline's samples (imports, codecs, the
first DTLS handshake of the process)."""


def _night_clock() -> Callable[[], datetime]:
    """Tonight 22:00 in Stockholm, then real time: inside the seeded plan's window."""
    today = date.today()
    base = datetime(today.year, today.month, today.day, 22, 0, tzinfo=STHLM)
    start = time.monotonic()
    return lambda: base + timedelta(seconds=time.monotonic() - start)


def _pcts(samples: list[float], *qs: int) -> dict[str, float]:
    arr = np.asarray(samples, dtype=np.float64) * 1e3
    out = {f"p{q}_ms": round(float(np.percentile(arr, q)), 1) for q in qs}
    out["mean_ms"] = round(float(arr.mean()), 1)
    out["max_ms"] = round(float(arr.max()), 1)
    out["n"] = len(samples)
    return out


async def _direct_first_frame() -> float:
    """Two peers in this process, offer/answer handed over directly: the floor."""
    viewer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    camera = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    got = asyncio.Event()
    drains: list[asyncio.Task[None]] = []

    @viewer.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        async def drain() -> None:
            with contextlib.suppress(Exception):
                await track.recv()
                got.set()
                while True:
                    await track.recv()

        drains.append(asyncio.ensure_future(drain()))

    start = time.perf_counter()
    try:
        viewer.addTransceiver("video", direction="recvonly")
        await viewer.setLocalDescription(await viewer.createOffer())
        await camera.setRemoteDescription(viewer.localDescription)
        camera.addTrack(FrameTrack(Scene(SceneKind.WALKING, seed=7), width=320, height=240))
        await camera.setLocalDescription(await camera.createAnswer())
        await viewer.setRemoteDescription(camera.localDescription)
        await asyncio.wait_for(got.wait(), 10)
        return time.perf_counter() - start
    finally:
        await viewer.close()
        await camera.close()
        for task in drains:
            task.cancel()


@contextlib.asynccontextmanager
async def _scratch_database(admin_url: str) -> AsyncIterator[str]:
    name = f"hc_bench_signal_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rpartition("/")[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _seed(rt: app.Runtime, rid: str, device_id: str, now: datetime) -> None:
    store, since = rt.consent, now - timedelta(days=2)
    await store.add_recipient(
        CareRecipient(recipient_id=rid, display_name="B"), actor=ADMIN, at=now
    )
    await store.add_plan(
        CarePlan(
            plan_id=f"plan-{rid}",
            recipient_id=rid,
            decision_ref="BENCH",
            valid_from=since,
            checks=(CheckTime(local_time(22, 0), 120),),
            view_cap_s=60,  # the most a plan may have
        ),
        actor=ADMIN,
        at=now,
    )
    await enrol.grant(
        store,
        rid,
        (Purpose.CAMERA_CHECK,),
        given_at=since,
        informed_by=ADMIN,
        informed_how="bench",
        actor=ADMIN,
        at=now,
    )
    await enrol.bind(store, device_id, rid, actor=ADMIN, at=now, confirmed_by=ADMIN2)


async def _until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.002)


class _Bench:
    def __init__(
        self,
        rt: app.Runtime,
        channel: WebSocketChannel,
        peers: dict[str, DevicePeer],
        clock: Callable[[], datetime],
    ) -> None:
        self.rt, self.channel, self.peers, self.clock = rt, channel, peers, clock

    async def open_view(self, device_id: str) -> tuple[View, asyncio.Task[Any]]:
        # an extra look (a reason and a note): the bench opens many views of one camera, more
        # than one check's budget would allow; the request path and its gate are the same
        view = View(self.channel, device_id, reason=env.LookReason.FOLLOW_UP, note="bench")
        task = asyncio.create_task(view.run())
        await asyncio.wait_for(view.first_frame.wait(), 10)
        return view, task

    async def first_frame_and_hang_up(self, device_id: str) -> tuple[float, float]:
        view, task = await self.open_view(device_id)
        assert view.result.request_to_first_frame_s is not None
        t0 = time.perf_counter()
        await view.hang_up()
        result = await asyncio.wait_for(task, 5)
        hang_up_s = time.perf_counter() - t0
        if result.bye != "operator":
            raise RuntimeError(f"view ended {result.ended}")
        await _until(lambda: self.peers[device_id].pc is None)
        return view.result.request_to_first_frame_s, hang_up_s

    async def withdrawal(self, rid: str, device_id: str, *, consent: bool) -> tuple[float, float]:
        view, task = await self.open_view(device_id)
        await _until(lambda: view.result.frames >= 3)
        peer = self.peers[device_id]
        t0 = time.perf_counter()
        now = self.clock()
        if consent:
            await self.rt.consent.withdraw_consent(
                enrol.consent_id(rid, Purpose.CAMERA_CHECK),
                withdrawn_at=now,
                reason=None,
                actor=ADMIN,
                at=now,
            )
        else:
            pause = await self.rt.consent.add_pause(
                Pause(
                    pause_id=f"p-{uuid.uuid4().hex[:10]}",
                    recipient_id=rid,
                    starts_at=now,
                    ends_at=None,
                    source=PauseSource.STAFF,
                    reason=PauseReason.VISITORS,
                ),
                actor=ADMIN,
                at=now,
            )
        result = await asyncio.wait_for(task, 5)
        closed_s = time.perf_counter() - t0
        await _until(lambda: peer.pc is None)
        device_s = time.perf_counter() - t0
        if result.bye != "withdrawn":
            raise RuntimeError(f"view ended {result.ended}, not withdrawn")
        if not consent:
            await self.rt.consent.end_pause(
                pause.pause_id, ended_at=self.clock(), actor=ADMIN, at=self.clock()
            )
        return closed_s, device_s


def _closed(peer: DevicePeer) -> Callable[[], bool]:
    return lambda: peer.pc is None


async def _browser_first_frames(
    base: str, cams: list[str], n: int, password: str, peers: dict[str, DevicePeer]
) -> list[float]:
    """The viewer page in headless Chromium: press Öppna bild -> first frame on screen."""
    from playwright.async_api import async_playwright

    found: list[float] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context()
            login = await context.request.post(
                f"{base}/api/login", data={"username": "nattpersonal", "password": password}
            )
            if login.status != 200:
                raise RuntimeError(f"login failed: {login.status}")
            page = await context.new_page()
            await page.goto(f"{base}/viewer/")
            # extra looks (no due check is queued for these homes): a reason and a note
            await page.select_option("#look-reason", "follow_up")
            await page.fill("#look-note", "bench")
            for i in range(n):
                cam = cams[i % len(cams)]
                await page.fill("#device", cam)
                await page.click("#open")
                handle = await page.wait_for_function(
                    "() => window.homecareSignal.last && window.homecareSignal.last.firstFrameMs",
                    timeout=10_000,
                )
                found.append(float(await handle.json_value()) / 1e3)
                await page.click("#close")
                await page.wait_for_selector('#status[data-state="closed"]')
                await _until(_closed(peers[cam]))
        finally:
            await browser.close()
    return found


async def run(
    sessions: int = 50,
    withdrawals: int = 50,
    homes: int = 5,
    *,
    browser_sessions: int = 0,
    database_url: str | None = None,
    mqtt_url: str | None = None,
    write: bool = True,
) -> dict[str, Any]:
    """Measure; return the figures (also written to ``bench/results/signalling.json``)."""
    admin_url = database_url or os.environ.get(
        "HOMECARE_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    broker = mqtt_url or os.environ.get("HOMECARE_BENCH_MQTT_URL", "mqtt://127.0.0.1:1883")
    for _ in range(WARM_UP):
        await _direct_first_frame()
    direct = [await _direct_first_frame() for _ in range(max(2, sessions))]
    prefix = f"bench{uuid.uuid4().hex[:8]}/hc/v1"
    cams = [f"cam-{i:04d}" for i in range(1, homes + 1)]
    clock = _night_clock()
    async with _scratch_database(admin_url) as url:
        settings = dataclasses.replace(
            load({}), database_url=url, mqtt_url=broker, mqtt_topic_prefix=prefix
        )
        async with app.runtime(settings, clock=clock) as rt:
            await rt.signalling.wait_ready()
            runner = web.AppRunner(rt.app, handle_signals=False)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            stop = asyncio.Event()
            peers: dict[str, DevicePeer] = {}
            tasks = []
            for device_id in cams:
                spec = DeviceSpec(device_id, DeviceKind.CAMERA, width=320, height=240, fps=10.0)
                sim = DeviceClient(spec, broker, prefix=prefix, health_interval_s=3600)
                peers[device_id] = attach(sim, scene=Scene(SceneKind.WALKING, seed=3))
                tasks.append(asyncio.create_task(sim.run(stop)))
            try:
                for device_id in cams:
                    for _ in range(500):
                        row = await rt.pool.fetchval(
                            "SELECT presence FROM devices WHERE device_id = $1", device_id
                        )
                        if row == "online":
                            break
                        await asyncio.sleep(0.02)
                rids = [f"rec-{c.removeprefix('cam-')}" for c in cams]
                for rid, device_id in zip(rids, cams, strict=True):
                    await _seed(rt, rid, device_id, clock())
                async with rt.pool.acquire() as conn:
                    who = await staff_store.create_staff(
                        conn, username="bench-op", role=Role.OPERATOR, password=None
                    )
                    token = await staff_store.create_token(
                        conn, staff_id=who.staff_id, role=Role.OPERATOR, ttl_s=3600, label="bench"
                    )
                assert rt.rounds is not None
                await rt.rounds.store.start_duty(who.staff_id, at=clock())  # a view needs it
                headers = {"Authorization": f"Bearer {token}"}
                async with (
                    aiohttp.ClientSession(headers=headers) as http,
                    http.ws_connect(
                        f"http://127.0.0.1:{port}/ws/signal", max_msg_size=env.MAX_MESSAGE_BYTES
                    ) as ws,
                ):
                    bench = _Bench(rt, WebSocketChannel(ws), peers, clock)
                    first, hang_ups = [], []
                    for i in range(sessions):
                        f, h = await bench.first_frame_and_hang_up(cams[i % homes])
                        first.append(f)
                        hang_ups.append(h)
                    paused, paused_device = [], []
                    for i in range(withdrawals):
                        c, d = await bench.withdrawal(
                            rids[i % homes], cams[i % homes], consent=False
                        )
                        paused.append(c)
                        paused_device.append(d)
                    browser: list[float] = []
                    if browser_sessions:
                        from identity.login import ensure_demo_accounts

                        password = (await ensure_demo_accounts(rt.pool))["nattpersonal"]
                        async with rt.pool.acquire() as conn:
                            account = await staff_store.find_by_username(conn, "nattpersonal")
                        assert account is not None
                        await rt.rounds.store.start_duty(account.staff_id, at=clock())
                        browser = await _browser_first_frames(
                            f"http://127.0.0.1:{port}", cams, browser_sessions, password, peers
                        )
                    withdrawn = []
                    for rid, device_id in zip(rids, cams, strict=True):
                        withdrawn.append((await bench.withdrawal(rid, device_id, consent=True))[0])
            finally:
                stop.set()
                for peer in peers.values():
                    await peer.close()
                await asyncio.gather(*tasks, return_exceptions=True)
                await runner.cleanup()
    first_p = _pcts(first, 50, 95)
    direct_p = _pcts(direct, 50, 95)
    teardown = paused + withdrawn
    teardown_p = _pcts(teardown, 50, 99)
    hang_p = _pcts(hang_ups, 50, 99)
    out: dict[str, Any] = {
        "sessions": sessions,
        "homes": homes,
        "video": "320x240 VP8 10 fps, loopback",
        "request_to_first_frame": first_p,
        "baseline_direct_peers_first_frame": direct_p,
        "first_frame_p95_over_direct_p95": round(first_p["p95_ms"] / direct_p["p95_ms"], 2),
        "first_frame_p95_over_target": round(
            first_p["p95_ms"] / (TARGET_FIRST_FRAME_P95_S * 1e3), 3
        ),
        "browser_click_to_first_frame": _pcts(browser, 50, 95) if browser else None,
        "browser_p95_over_aiortc_viewer_p95": (
            round(_pcts(browser, 95)["p95_ms"] / first_p["p95_ms"], 2) if browser else None
        ),
        "browser_p95_over_target": (
            round(_pcts(browser, 95)["p95_ms"] / (TARGET_FIRST_FRAME_P95_S * 1e3), 3)
            if browser
            else None
        ),
        "withdrawal_to_bye": teardown_p,
        "withdrawal_to_bye_pause": _pcts(paused, 50, 99),
        "withdrawal_to_bye_consent": _pcts(withdrawn, 50, 99),
        "withdrawal_to_camera_peer_closed": _pcts(paused_device, 50, 99),
        "baseline_operator_hang_up_to_bye": hang_p,
        "withdrawal_p99_over_hang_up_p99": round(teardown_p["p99_ms"] / hang_p["p99_ms"], 2),
        "withdrawal_p99_over_target": round(
            teardown_p["p99_ms"] / (TARGET_WITHDRAWAL_P99_S * 1e3), 3
        ),
        "targets_ms": {
            "first_frame_p95": TARGET_FIRST_FRAME_P95_S * 1e3,
            "withdrawal_p99": TARGET_WITHDRAWAL_P99_S * 1e3,
        },
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "signalling.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=50)
    p.add_argument("--withdrawals", type=int, default=50)
    p.add_argument("--homes", type=int, default=5)
    p.add_argument(
        "--browser",
        type=int,
        default=20 if Path(CHROMIUM).exists() else 0,
        help="also this many views in headless Chromium through /viewer/ (0: none)",
    )
    args = p.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    out = asyncio.run(
        run(args.sessions, args.withdrawals, args.homes, browser_sessions=args.browser)
    )
    print(json.dumps(out, indent=2))
    print(
        f"first frame p95 {out['request_to_first_frame']['p95_ms']} ms"
        f" = {out['first_frame_p95_over_target']} x target,"
        f" {out['first_frame_p95_over_direct_p95']} x direct peers;"
        f" browser click -> first frame p95"
        f" {(out['browser_click_to_first_frame'] or {}).get('p95_ms')} ms;"
        f" withdrawal p99 {out['withdrawal_to_bye']['p99_ms']} ms"
        f" = {out['withdrawal_p99_over_target']} x target,"
        f" {out['withdrawal_p99_over_hang_up_p99']} x an operator's hang-up"
    )


if __name__ == "__main__":
    main()
