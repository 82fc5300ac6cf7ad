"""A PostgreSQL pair managed by Patroni with etcd, for tests that lose the primary.

:class:`PgPair` starts one etcd member and two Patroni nodes (PostgreSQL 15 from Debian's
packages: ``patroni``, ``etcd-server``, ``postgresql-15``), each on free loopback ports in a
folder of its own, and waits until one node leads and the other is its synchronous standby.

The nodes run the configuration ``deploy/`` ships, ``deploy/patroni/patroni.yml`` (the file
itself, linked into the folder Patroni reads), with the per-node values as the environment
variables Patroni reads over it (``PATRONI_NAME``, ``PATRONI_RESTAPI_LISTEN``,
``PATRONI_POSTGRESQL_LISTEN``, ``PATRONI_POSTGRESQL_DATA_DIR``, ``PATRONI_ETCD3_HOSTS``, the
passwords, ...: :meth:`PgPair.node_env`) and :data:`TEST_ONLY`, the one place that differs from a
site: a short leader key (``ttl`` 10 s, Patroni's loop 1 s, so a failover takes ~10 s, not
~20 s), ``fsync`` off, the nodes' sockets in their own folder, and ``post_bootstrap`` found in the
checkout rather than at ``/etc/patroni``. Replication is synchronous (``synchronous_mode`` of the
shipped file): a commit the primary acknowledged is on the standby too, so a failover loses no
acknowledged write, and Patroni promotes only the synchronous standby. Losing the primary's node
(:meth:`PgPair.kill_primary`: SIGKILL to its Patroni and its PostgreSQL, as a machine that dies)
brings the standby up as primary about ``ttl`` seconds later.

:attr:`PgPair.url` is the multi-host URL a service uses, in the form deploy names
(``postgresql://homecare:PW@h1:p1,h2:p2/homecare?target_session_attrs=read-write``): asyncpg tries
the hosts in turn and keeps the one that accepts writes. Health is read the way compose and
Kubernetes read it: Patroni's REST ``/primary`` and ``/sync`` (:data:`PRIMARY_CHECK`,
:data:`SYNC_CHECK`; ``/health``, :data:`HEALTH_CHECK`, is the containers' health check).

PostgreSQL refuses to run as root, so the nodes run as the ``postgres`` user; their children
die with the test run (:func:`tests.procs.die_with_parent`, set after the user change).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import random
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.procs import die_with_parent

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "deploy" / "patroni" / "patroni.yml"  # what deploy ships, read as it is
POST_BOOTSTRAP = CONFIG.parent / "post_bootstrap.sh"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PRIMARY_CHECK = "/primary"  # 200 only on the running primary
SYNC_CHECK = "/sync"  # 200 only on the running synchronous standby
HEALTH_CHECK = "/health"  # 200 while PostgreSQL runs, either role (the containers' check)
DATABASE = "homecare"  # made by post_bootstrap.sh
SUPERUSER = "homecare"
TTL_S = 10


def test_only(root: Path) -> dict[str, Any]:
    """What the tests run differently from a site, in one place: a short leader key and loop (a
    failover in ~10 s rather than 15-25 s), no fsync (nothing here must survive a power cut), the
    nodes' sockets in the pair's folder, ``post_bootstrap.sh`` from the checkout."""
    return {
        "bootstrap": {
            "dcs": {"ttl": TTL_S, "loop_wait": 1, "retry_timeout": 3},
            "post_bootstrap": str(POST_BOOTSTRAP),
        },
        "postgresql": {"parameters": {"fsync": "off", "unix_socket_directories": str(root)}},
    }


def available() -> str | None:
    """Why a pair cannot run here, or None when it can."""
    for tool in ("patroni", "etcd"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: patroni etcd-server)"
    if not (PG_BIN / "postgres").exists():
        return f"no PostgreSQL server binaries in {PG_BIN}"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres user to run the nodes as"
    return None


def _free_port() -> int:
    """A free port below the kernel's ephemeral range (32768 up), so no outgoing connection of
    the busy machine takes it between our choice and the node's bind."""
    while True:
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


@dataclass
class Node:
    name: str
    pg_port: int
    api_port: int
    proc: subprocess.Popen[bytes] | None = None

    def state(self) -> dict[str, Any] | None:
        """Patroni's view of this node (``role``, ``state``, ...), or None when it is down."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.api_port}/patroni", timeout=1
            ) as r:
                out: dict[str, Any] = json.load(r)
                return out
        except (OSError, ValueError):
            return None

    def answers(self, check: str) -> bool:
        """Whether Patroni's REST health check ``check`` answers 200 (any other status: no)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}{check}", timeout=1):
                return True
        except (OSError, ValueError):  # HTTPError (503) is an OSError
            return False

    def is_primary(self) -> bool:
        return self.answers(PRIMARY_CHECK)


@dataclass
class PgPair:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="homecare-pgpair-")))
    nodes: list[Node] = field(default_factory=list)
    etcd: subprocess.Popen[bytes] | None = None
    etcd_port: int = 0
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    replication_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{n.pg_port}" for n in self.nodes)
        return (
            f"postgresql://{SUPERUSER}:{self.password}@{hosts}/{DATABASE}"
            "?target_session_attrs=read-write"
        )

    @property
    def config_dir(self) -> Path:
        """The folder each node's Patroni reads: the shipped file, then the test-only one (Patroni
        reads a folder's ``*.yml`` in name order, each laid over the one before)."""
        return self.root / "patroni"

    def write_config(self) -> list[Path]:
        """The folder Patroni reads: deploy's file itself (linked), then :func:`test_only`."""
        self.config_dir.mkdir()
        shipped, tests_only = (
            self.config_dir / "10-patroni.yml",
            self.config_dir / "20-test-only.yml",
        )
        shipped.symlink_to(CONFIG)
        tests_only.write_text(yaml.safe_dump(test_only(self.root)))
        return [shipped, tests_only]

    def node_env(self, node: Node) -> dict[str, str]:
        """The per-node values, as the environment variables Patroni reads over its file."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PATRONI_")}
        env.update(
            PATRONI_NAME=node.name,
            PATRONI_RESTAPI_LISTEN=f"127.0.0.1:{node.api_port}",
            PATRONI_RESTAPI_CONNECT_ADDRESS=f"127.0.0.1:{node.api_port}",
            PATRONI_POSTGRESQL_LISTEN=f"127.0.0.1:{node.pg_port}",
            PATRONI_POSTGRESQL_CONNECT_ADDRESS=f"127.0.0.1:{node.pg_port}",
            PATRONI_POSTGRESQL_DATA_DIR=str(self.root / node.name),
            PATRONI_POSTGRESQL_PGPASS=str(self.root / f"{node.name}.pgpass"),
            PATRONI_ETCD3_HOSTS=f"127.0.0.1:{self.etcd_port}",
            PATRONI_SUPERUSER_PASSWORD=self.password,
            PATRONI_REPLICATION_PASSWORD=self.replication_password,
        )
        return env

    def start(self, timeout_s: float = 90.0) -> None:
        pg = pwd.getpwnam("postgres")
        os.chown(self.root, pg.pw_uid, pg.pw_gid)
        self.root.chmod(0o755)
        client, peer = _free_port(), _free_port()
        self.etcd_port = client
        with (self.root / "etcd.log").open("wb") as log:  # the child keeps its own copy
            self.etcd = self._etcd(client, peer, log)
        self.write_config()
        self.nodes.extend(Node(f"pg{i}", _free_port(), _free_port()) for i in range(2))
        for node in self.nodes:
            self._launch(node)
        self.wait(
            lambda: self._relaunch_failed() or (self.primary() and self.streaming()),
            timeout_s,
            "a pair",
        )

    def _relaunch_failed(self) -> bool:
        """A node whose Patroni exited while starting (on a busy machine another process may
        take a free port between its choice and Patroni's bind) starts again on new ports."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is not None:
                node.pg_port, node.api_port = _free_port(), _free_port()
                self._launch(node)
        return False

    def _etcd(self, client: int, peer: int, log: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                "etcd",
                "--name=e0",
                f"--data-dir={self.root / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{client}",
                f"--advertise-client-urls=http://127.0.0.1:{client}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=e0=http://127.0.0.1:{peer}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )

    def _launch(self, node: Node) -> None:
        with (self.root / f"{node.name}.log").open("ab") as log:  # the child keeps its own copy
            node.proc = subprocess.Popen(
                ["patroni", str(self.config_dir)],
                env=self.node_env(node),
                stdout=log,
                stderr=subprocess.STDOUT,
                user="postgres",
                group="postgres",
                preexec_fn=die_with_parent,
            )

    def primary(self) -> Node | None:
        return next((n for n in self.nodes if n.is_primary()), None)

    def streaming(self) -> bool:
        """Whether a standby runs as the primary's synchronous standby (Patroni's ``/sync``)."""
        return any(n.answers(SYNC_CHECK) for n in self.nodes)

    def wait(self, ready: Any, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if time.monotonic() > deadline:
                logs = {
                    p.name: p.read_text(errors="replace")[-2000:] for p in self.root.glob("*.log")
                }
                raise TimeoutError(f"no {what} within {timeout_s} s: {logs}")
            time.sleep(0.2)

    def kill_primary(self) -> Node:
        """SIGKILL the primary's Patroni and PostgreSQL, as a node that dies; returns it."""
        node = self.primary()
        if node is None:
            raise RuntimeError("no primary to kill")
        assert node.proc is not None
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait()
        postmaster = self.root / node.name / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            os.kill(int(postmaster.read_text().splitlines()[0]), signal.SIGKILL)
        return node

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
            postmaster = self.root / node.name / "postmaster.pid"
            with contextlib.suppress(OSError, ValueError, IndexError):
                os.kill(int(postmaster.read_text().splitlines()[0]), signal.SIGKILL)
        if self.etcd is not None:
            self.etcd.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.etcd.wait(timeout=5)
            if self.etcd.poll() is None:
                self.etcd.kill()
        shutil.rmtree(self.root, ignore_errors=True)
