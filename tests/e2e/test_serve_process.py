"""``homecare serve`` as a real process with simulated devices as real processes.

Measures what issue 2 asks for: a killed device is offline within 1.5 x keepalive + 1 s, a frozen
one once the broker's keepalive check notices it; a device comes back online after a restart, and
a client none of us wrote (mosquitto_pub) can announce a quarantined device while garbage changes
nothing and /readyz stays green.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest

from tests.procs import die_with_parent
from tools.embedded import free_port

pytestmark = pytest.mark.e2e

KEEPALIVE_S = 2
HOMECARE = [sys.executable, "-m", "tools.cli"]


def _env(database_url: str, mqtt_url: str, prefix: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMECARE_")}
    env.update(
        HOMECARE_DATABASE_URL=database_url,
        HOMECARE_MQTT_URL=mqtt_url,
        HOMECARE_MQTT_TOPIC_PREFIX=prefix,
        HOMECARE_HTTP_PORT=str(port),
        HOMECARE_MQTT_KEEPALIVE_S=str(KEEPALIVE_S),
        HOMECARE_LOG_FORMAT="json",
    )
    return env


@pytest.fixture
def served(
    database_url: str, mqtt_url: str, topic_prefix: str, tmp_path: Path
) -> Iterator[tuple[str, dict[str, str]]]:
    port = free_port()
    env = _env(database_url, mqtt_url, topic_prefix, port)
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*HOMECARE, "serve"],
            env=env,
            stderr=log,
            cwd=Path(__file__).parents[2],
            preexec_fn=die_with_parent,
        )
        try:
            yield f"http://127.0.0.1:{port}", env
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, log_path.read_text()[-2000:]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


async def _ready(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(300):
            try:
                async with s.get(f"{url}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("service never became ready")


async def _presence(db: asyncpg.Connection, device_id: str, want: str, timeout_s: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if await db.fetchval("SELECT presence FROM devices WHERE device_id=$1", device_id) == want:
            return time.monotonic() - start
        await asyncio.sleep(0.02)
    raise AssertionError(f"{device_id} not {want} within {timeout_s} s")


async def _api_shows_online(url: str, env: dict[str, str], device_id: str) -> None:
    """GET /api/devices with a bearer token made by ``homecare token create``."""
    token = (
        subprocess.run(
            [*HOMECARE, "token", "create", "--role", "operator"],
            env=env,
            capture_output=True,
            check=True,
            timeout=30,
        )
        .stdout.decode()
        .strip()
    )
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{url}/api/devices") as r:
            assert r.status == 401
        async with s.get(f"{url}/api/devices", headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200
            devices = {d["id"]: d for d in (await r.json())["devices"]}
    assert devices[device_id]["presence"] == "online"
    assert devices[device_id]["quarantined"] is True


def _device(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*HOMECARE, "simulate", "--homes", "1", "--device", "cam-0001"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("how", ["SIGKILL", "SIGSTOP"])
async def test_device_death_is_seen_within_the_keepalive_bound(
    served: tuple[str, dict[str, str]], db: asyncpg.Connection, how: str
) -> None:
    url, env = served
    await _ready(url)
    device = _device(env)
    try:
        await _presence(db, "cam-0001", "online", 20)
        await _api_shows_online(url, env, "cam-0001")
        device.send_signal(getattr(signal, how))
        # A killed device's socket closes and the broker sends its will at once. A frozen one
        # is noticed by the broker's keepalive check: 1.5 x keepalive after the device's last
        # packet, which may be up to one keepalive before it froze, plus Mosquitto's whole-second
        # check granularity (RECIPES.md measured 10.1-10.7 s at 5 s). The behaviour checked here
        # is that the will comes at all (amqtt never sends it); the bound leaves room for a
        # loaded CI machine (8.1 s seen there) and bench.presence measures the timing.
        bound = 1.5 * KEEPALIVE_S + 1 if how == "SIGKILL" else 4 * KEEPALIVE_S + 5
        took = await _presence(db, "cam-0001", "offline", bound + 2)
        print(f"\n{how}: offline after {took:.2f} s (bound {bound:.1f} s)")
        assert took <= bound
    finally:
        device.kill()
        device.wait()
    again = _device(env)
    try:
        await _presence(db, "cam-0001", "online", 20)
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(10) == 0
    await _presence(db, "cam-0001", "stopped", 5)


@pytest.mark.skipif(
    shutil.which("mosquitto_pub") is None and not os.environ.get("CI"),
    reason="mosquitto_pub not installed (./run test installs it)",
)
async def test_foreign_client_birth_and_garbage(
    served: tuple[str, dict[str, str]], db: asyncpg.Connection, mqtt_url: str, topic_prefix: str
) -> None:
    url, _ = served
    await _ready(url)
    broker = urlsplit(mqtt_url)

    def pub(topic: str, message: str) -> None:
        subprocess.run(
            [
                "mosquitto_pub",
                "-h",
                broker.hostname or "127.0.0.1",
                "-p",
                str(broker.port or 1883),
                "-q",
                "1",
                "-t",
                f"{topic_prefix}/{topic}",
                "-m",
                message,
            ],
            check=True,
            timeout=10,
        )

    pub("dev/cam-foreign/status", '{"state":"online","session":1}')
    await _presence(db, "cam-foreign", "online", 5)
    assert await db.fetchval("SELECT quarantined FROM devices WHERE device_id='cam-foreign'")
    before = await db.fetch("SELECT * FROM devices ORDER BY device_id")
    for topic, garbage in [
        ("dev/cam-foreign/status", "{{{"),
        ("dev/cam-foreign/meta", "[]"),
        ("dev/cam-x/status", '{"state":"online"}'),
        ("dev/../status", "x"),
    ]:
        pub(topic, garbage)
    await asyncio.sleep(0.5)
    assert await db.fetch("SELECT * FROM devices ORDER BY device_id") == before
    async with aiohttp.ClientSession() as s, s.get(f"{url}/readyz") as r:
        assert r.status == 200
        metrics = await (await s.get(f"{url}/metrics")).text()
    assert 'homecare_mqtt_rejected_total{reason="bad_json"}' in metrics
