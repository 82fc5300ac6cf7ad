"""``deploy/coturn/turnserver.conf`` loaded by a real ``turnserver``, and a TURN allocation with
the credentials ``services/signalling/turn.py`` hands out (coturn's REST scheme).

The config is used as shipped with only what a host adds (listen and relay address on loopback,
free ports, a certificate, the shared secret, and pid/db files in a temporary folder). coturn
must report no configuration error, grant an allocation to a fresh credential, and refuse a
credential made with another secret or one whose expiry has passed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aioice import stun, turn

from services.signalling.turn import TurnConfig, ice_servers
from tests.deploy_broker import write_test_certs
from tests.procs import die_with_parent

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
CONF = ROOT / "deploy" / "coturn" / "turnserver.conf"


def _turnserver() -> str:
    found = shutil.which("turnserver")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("turnserver is not installed (./run test installs coturn as root)")
        pytest.skip("turnserver (coturn) is not installed")
    return found


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_port() -> int:
    """A port free for both UDP and TCP (turnserver listens on both under one number)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


@dataclass(frozen=True)
class Coturn:
    port: int
    secret: str
    log: Path


def host_config(text: str, tmp: Path, port: int, tls_port: int, secret: str) -> str:
    """What an install adds to the shipped file; every shipped line is kept except ports/paths."""
    moved = {
        "listening-port": f"listening-port={port}",
        "tls-listening-port": f"tls-listening-port={tls_port}",
        "cert": f"cert={tmp}/certs/server.crt",
        "pkey": f"pkey={tmp}/certs/server.key",
    }
    out = [moved.get(line.split("=", 1)[0].strip(), line) for line in text.splitlines()]
    relay = _free_udp_port()
    out += [
        "listening-ip=127.0.0.1",
        "relay-ip=127.0.0.1",
        f"static-auth-secret={secret}",
        f"pidfile={tmp}/turnserver.pid",
        f"userdb={tmp}/turndb",
        f"min-port={relay}",
        f"max-port={relay + 20}",
    ]
    return "\n".join(out) + "\n"


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    """A real turnserver on free ports. A port found free can be taken by another test's
    connection before turnserver binds it (the suite runs in parallel): turnserver then only
    logs that it retries, so the fixture starts it again on other ports, at most three times."""
    binary = _turnserver()
    write_test_certs(tmp_path / "certs")
    secret = secrets.token_urlsafe(24)
    for attempt in range(3):
        port, tls_port = _free_port(), _free_port()
        conf = tmp_path / "turnserver.conf"
        conf.write_text(host_config(CONF.read_text(), tmp_path, port, tls_port, secret))
        log = tmp_path / f"turnserver-{attempt}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [binary, "-c", str(conf)],
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        try:
            deadline = time.monotonic() + 15
            # every listener has tried to bind once its general servers are counted
            while "Total General servers" not in (text := log.read_text()):
                assert proc.poll() is None, text[-2000:]
                assert time.monotonic() < deadline, text[-2000:]
                time.sleep(0.05)
            if "Address already in use" not in log.read_text():
                yield Coturn(port, secret, log)
                return
        finally:
            proc.terminate()
            proc.wait(10)
    pytest.fail("turnserver found its ports taken three times in a row")


async def _allocate(port: int, username: str, password: str) -> tuple[str, int]:
    transport, _ = await asyncio.wait_for(
        turn.create_turn_endpoint(
            asyncio.DatagramProtocol, ("127.0.0.1", port), username, password, lifetime=60
        ),
        10,
    )
    try:
        relayed = transport.get_extra_info("sockname")
        return str(relayed[0]), int(relayed[1])
    finally:
        transport.close()


def _credential(secret: str, port: int, now: dt.datetime) -> tuple[str, str]:
    (server,) = ice_servers(
        TurnConfig(urls=(f"turn:127.0.0.1:{port}",), secret=secret, ttl_s=600), "op-7f3a", now
    )
    assert server.username is not None
    assert server.credential is not None
    return server.username, server.credential


def test_the_shipped_config_loads_without_errors(coturn: Coturn) -> None:
    text = coturn.log.read_text()
    assert "Bad configuration format" not in text
    assert "CONFIG ERROR" not in text.upper()
    assert "Black listing: 10.0.0.0-10.255.255.255" in text  # private networks are never peers
    assert "TLS and DTLS listeners" not in text  # the certificate was taken


async def test_a_rest_credential_from_services_turn_gets_an_allocation(coturn: Coturn) -> None:
    username, password = _credential(coturn.secret, coturn.port, dt.datetime.now(dt.UTC))
    host, relayed_port = await _allocate(coturn.port, username, password)
    assert host == "127.0.0.1"
    assert relayed_port > 0


@pytest.mark.parametrize("case", ["other_secret", "expired"])
async def test_a_wrong_or_expired_credential_is_refused(coturn: Coturn, case: str) -> None:
    now = dt.datetime.now(dt.UTC)
    if case == "other_secret":
        username, password = _credential("not-the-secret", coturn.port, now)
    else:
        username, password = _credential(coturn.secret, coturn.port, now - dt.timedelta(hours=1))
    with pytest.raises(stun.TransactionFailed) as e:
        await _allocate(coturn.port, username, password)
    assert e.value.response.attributes["ERROR-CODE"][0] == 401
