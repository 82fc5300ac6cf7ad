"""Shared fixtures: a fresh migrated PostgreSQL database per test and a unique MQTT prefix.

Servers come from ``HOMECARE_TEST_DATABASE_URL`` (default: the loopback PostgreSQL as
``postgres``) and ``HOMECARE_TEST_MQTT_URL`` (default: loopback Mosquitto). When they are not
reachable, ``tests/servers.py`` starts embedded ones, except under ``CI=true`` where a missing
server fails the run.

Hypothesis: under ``CI=true`` (or ``HYPOTHESIS_PROFILE=ci``) the ``ci`` profile applies: no
per-example deadline and no ``too_slow`` health check, since CI machines are loaded and a slow
example there is load, not a bug. The example counts stay as each test sets them.

Parallel runs (``./run test`` passes ``-n 4 --dist loadfile --no-loadscope-reorder`` to
pytest-xdist, the modules in :data:`SLOW_FIRST` order;
``HOMECARE_TEST_WORKERS`` changes the count): every test has its own database and topic prefix,
MQTT client ids carry a hash of the prefix, and servers take free ports, so tests do not share
state. Each module runs whole on one worker (``loadfile``), so its module fixtures (a served
backend, simulated homes, a Chromium) are built once and its tests keep their order, as the e2e
modules need.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import structlog
from hypothesis import HealthCheck, settings

from services import db
from tests import servers

# The service's own log format for a process that is not at a terminal (services.logs), without
# its level filter: structlog's default console renderer costs twice as much per event, and the
# suite logs a great many of them. Tests that look at events use structlog.testing.capture_logs.
structlog.configure(
    processors=[
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
        structlog.processors.JSONRenderer(),
    ]
)

settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
_in_ci = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if _in_ci else "default"))


@pytest.fixture(scope="session")
def test_servers() -> Iterator[servers.TestServers]:
    with servers.ensure() as found:
        yield found


@pytest.fixture(scope="session")
def pg_admin_url(test_servers: servers.TestServers) -> str:
    return test_servers.database_url


@pytest.fixture(scope="session")
def mqtt_url(test_servers: servers.TestServers) -> str:
    return test_servers.mqtt_url


def _with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> Iterator[str]:
    """A migrated template database, made once per test session."""
    name = f"hc_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def make() -> None:
        admin = await asyncpg.connect(pg_admin_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(_with_db(pg_admin_url, name))
        try:
            await db.migrate(conn)
        finally:
            await conn.close()

    asyncio.run(make())
    yield name

    async def drop() -> None:
        admin = await asyncpg.connect(pg_admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(drop())


class Clones:
    """Fresh copies of the template, made ahead and dropped afterwards on a thread of their own.

    A ``CREATE DATABASE`` costs a tenth to a third of a second here, mostly waiting on the disk;
    made while the previous test runs, it is ready when the next one asks. A ``DROP DATABASE``
    costs as much again (``WITH (FORCE)``, as before), so the thread drops on ``droppers``
    connections of their own (two drops at once take little longer than one here), beside the
    making: a test waits for neither. The thread keeps ``ahead`` copies waiting."""

    def __init__(self, admin_url: str, template: str, *, ahead: int = 2, droppers: int = 2) -> None:
        self.admin_url, self.template = admin_url, template
        self.ahead, self.droppers = ahead, droppers
        self.ready: queue.Queue[str] = queue.Queue()
        self._drops: queue.Queue[str] = queue.Queue()
        self._wake = threading.Event()  # make one now
        self._drop_wake = threading.Event()  # a copy was given back
        self._closing = False
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="db-clones", daemon=True)
        self._thread.start()

    def take(self) -> str:
        self._wake.set()
        while True:
            try:
                name = self.ready.get(timeout=1.0)
            except queue.Empty:
                if self._failed is not None:
                    raise RuntimeError("making test databases failed") from self._failed
                if not self._thread.is_alive():
                    raise RuntimeError("the thread making test databases stopped") from None
                continue
            self._wake.set()  # make the next one now
            return name

    def give_back(self, name: str) -> None:
        self._drops.put(name)
        self._drop_wake.set()

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        self._drop_wake.set()
        self._thread.join(timeout=120)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # handed to the test that waits
            self._failed = e

    async def _main(self) -> None:
        maker = asyncio.create_task(self._make())
        droppers = [asyncio.create_task(self._drop_all()) for _ in range(self.droppers)]
        tasks = {maker, *droppers}
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:  # any failing fails the next take()
                for other in tasks:
                    other.cancel()
                raise task.exception()  # type: ignore[misc]
        await asyncio.gather(*tasks)  # droppers end once closing and every copy is dropped

    async def _make(self) -> None:
        admin = await asyncpg.connect(self.admin_url)
        try:
            while not self._closing:
                self._wake.clear()
                if self.ready.qsize() < self.ahead:
                    name = f"hc_t_{uuid.uuid4().hex[:12]}"
                    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
                    self.ready.put(name)
                    continue
                await asyncio.to_thread(self._wake.wait, 1.0)
            while not self.ready.empty():
                await self._drop(admin, self.ready.get())
        finally:
            await admin.close()

    async def _drop_all(self) -> None:
        admin = await asyncpg.connect(self.admin_url)
        try:
            while True:
                self._drop_wake.clear()
                while True:
                    try:
                        name = self._drops.get_nowait()
                    except queue.Empty:
                        break
                    await self._drop(admin, name)
                if self._closing:
                    break
                await asyncio.to_thread(self._drop_wake.wait, 1.0)
        finally:
            await admin.close()

    @staticmethod
    async def _drop(admin: asyncpg.Connection, name: str) -> None:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def clones(pg_admin_url: str, template_db: str) -> Iterator[Clones]:
    made = Clones(pg_admin_url, template_db)
    yield made
    made.close()


@pytest.fixture
async def database_url(pg_admin_url: str, clones: Clones) -> AsyncIterator[str]:
    """URL of a fresh database cloned from the migrated template; dropped afterwards."""
    name = await asyncio.to_thread(clones.take)
    try:
        yield _with_db(pg_admin_url, name)
    finally:
        clones.give_back(name)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """The service's pool: every connection runs as ``homecare_service`` under row-level
    security, in the system's scope unless the test enters another (``kernel.tenancy``)."""
    async with db.open_pool(database_url, max_size=5) as p:
        yield p


@pytest.fixture
async def owner(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the schema's owner (what a superuser could do: DDL, switching triggers
    off), for tests that act outside the service's rights."""
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
def topic_prefix() -> str:
    """A unique MQTT topic prefix so tests never see each other's retained messages."""
    return f"t{uuid.uuid4().hex[:10]}/hc/v1"


#: The suite's folders, slowest first: ``./run test`` hands whole modules to the workers in this
#: order (``--no-loadscope-reorder``), so the end-to-end modules (served backends, browsers,
#: processes) start while every worker is fresh and the quick unit modules fill the gaps at the
#: end, instead of xdist's default order (most tests first), which left a few long modules to
#: start last and run on alone.
SLOW_FIRST = ("tests/e2e/", "tests/integration/", "tests/adversarial/", "tests/deploy/")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def weight(item: pytest.Item) -> int:
        return next(
            (i for i, folder in enumerate(SLOW_FIRST) if item.nodeid.startswith(folder)),
            len(SLOW_FIRST),
        )

    items.sort(key=weight)  # stable: each module's tests keep their order
