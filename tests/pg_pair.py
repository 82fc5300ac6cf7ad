"""A PostgreSQL pair managed by Patroni with etcd, for tests that lose the primary.

:class:`PgPair` starts one etcd member and two Patroni nodes (PostgreSQL 15 from Debian's
packages: ``patroni``, ``etcd-server``, ``postgresql-15``), each on free loopback ports in a
folder of its own, and waits until one node leads and the other streams from it. Replication is
synchronous (Patroni's ``synchronous_mode``): a commit the primary acknowledged is on the standby
too, so a failover loses no acknowledged write, and Patroni promotes only the synchronous
standby. The leader key lives ``ttl`` seconds (10, Patroni's loop 1 s), so losing the primary's
node (:meth:`PgPair.kill_primary`: SIGKILL to its Patroni and its PostgreSQL, as a machine that
dies) brings the standby up as primary about 10 s later.

:attr:`PgPair.url` is the multi-host URL a service uses
(``postgresql://postgres@h1:p1,h2:p2/postgres?target_session_attrs=read-write``): asyncpg tries
the hosts in turn and keeps the one that accepts writes.

PostgreSQL refuses to run as root, so the nodes run as the ``postgres`` user; their children
die with the test run (:func:`tests.procs.die_with_parent`, set after the user change).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
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

from tests.procs import die_with_parent

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PRIMARY_ROLES = ("master", "primary")


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
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Node:
    name: str
    pg_port: int
    api_port: int
    config: Path
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

    def is_primary(self) -> bool:
        s = self.state()
        return bool(s and s.get("role") in PRIMARY_ROLES and s.get("state") == "running")


@dataclass
class PgPair:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="homecare-pgpair-")))
    ttl_s: int = 10
    nodes: list[Node] = field(default_factory=list)
    etcd: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{n.pg_port}" for n in self.nodes)
        return f"postgresql://postgres@{hosts}/postgres?target_session_attrs=read-write"

    def start(self, timeout_s: float = 90.0) -> None:
        pg = pwd.getpwnam("postgres")
        os.chown(self.root, pg.pw_uid, pg.pw_gid)
        self.root.chmod(0o755)
        client, peer = _free_port(), _free_port()
        with (self.root / "etcd.log").open("wb") as log:  # the child keeps its own copy
            self.etcd = self._etcd(client, peer, log)
        for i in range(2):
            node = Node(f"pg{i}", _free_port(), _free_port(), self.root / f"pg{i}.yml")
            node.config.write_text(self._config(node, client))
            os.chown(node.config, pg.pw_uid, pg.pw_gid)
            self.nodes.append(node)
        for node in self.nodes:
            self._launch(node)
        self.wait(
            lambda: self._relaunch_failed(client) or (self.primary() and self.streaming()),
            timeout_s,
            "a pair",
        )

    def _relaunch_failed(self, etcd_port: int) -> bool:
        """A node whose Patroni exited while starting (on a busy machine another process may
        take a free port between its choice and Patroni's bind) starts again on new ports."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is not None:
                node.pg_port, node.api_port = _free_port(), _free_port()
                node.config.write_text(self._config(node, etcd_port))
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

    def _config(self, node: Node, etcd_port: int) -> str:
        return f"""scope: homecare-pair
name: {node.name}
restapi:
  listen: 127.0.0.1:{node.api_port}
  connect_address: 127.0.0.1:{node.api_port}
etcd3:
  host: 127.0.0.1:{etcd_port}
bootstrap:
  dcs:
    ttl: {self.ttl_s}
    loop_wait: 1
    retry_timeout: 3
    synchronous_mode: true
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: false
      parameters:
        wal_level: replica
        hot_standby: "on"
        max_wal_senders: 5
        max_replication_slots: 5
        max_connections: 200
  initdb:
  - encoding: UTF8
  - auth: trust
  pg_hba:
  - local all all trust
  - host all all 127.0.0.1/32 trust
  - host replication all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:{node.pg_port}
  connect_address: 127.0.0.1:{node.pg_port}
  data_dir: {self.root / node.name}
  bin_dir: {PG_BIN}
  pgpass: {self.root / (node.name + ".pgpass")}
  authentication:
    superuser: {{username: postgres}}
    replication: {{username: postgres}}
  parameters:
    unix_socket_directories: {self.root}
    fsync: "off"
"""

    def _launch(self, node: Node) -> None:
        with (self.root / f"{node.name}.log").open("ab") as log:  # the child keeps its own copy
            node.proc = subprocess.Popen(
                ["patroni", str(node.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                user="postgres",
                group="postgres",
                preexec_fn=die_with_parent,
            )

    def primary(self) -> Node | None:
        return next((n for n in self.nodes if n.is_primary()), None)

    def streaming(self) -> bool:
        """Whether a replica is running (and, in synchronous mode, the synchronous standby)."""
        states = [n.state() or {} for n in self.nodes]
        return any(s.get("role") == "replica" and s.get("state") == "running" for s in states)

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
