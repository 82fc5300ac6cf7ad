"""Anchoring the audit chain: sign its lanes' heads now and then and write them outside the
database.

:class:`Anchorer` reads the head of every lane in one snapshot (``audit_heads()``, migration 0027:
each lane's last committed entry; no lane lock is taken, so anchoring never holds up a writer),
and when they changed since the last anchor, signs their join
(:func:`kernel.audit.anchor.sign_heads`) at the clock's now and writes it to the
anchor files (:class:`AnchorFiles`: one JSON line per anchor, appended and fsynced, a file per
UTC day) and to the publisher it was given (the composition root gives the retained MQTT topic
``<prefix>/server/audit-anchor``). :meth:`Anchorer.run` does that every ``interval_s`` (a poll
interval, in loop time); :meth:`Anchorer.final` once more at a clean shutdown.

Several processes may anchor the same chain: each anchor is a true, signed statement about
committed heads, so two anchors of the same heads are harmless, and a line is appended with one
``write`` on a file opened ``O_APPEND``.

:func:`read_dir` reads the anchor files back for ``homecare audit verify --anchors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kernel.audit import anchor as anchors
from kernel.audit.anchor import Anchor, AnchorError, Head
from kernel.clock import Clock

if TYPE_CHECKING:
    from kernel.audit.store import Connection

log = structlog.get_logger(__name__)

FILE_GLOB = "anchors-*.jsonl"
Publish = Callable[[bytes], Awaitable[None]]
"""Sends one anchor's JSON elsewhere (the retained MQTT message); raises ``OSError`` (e.g. the
link's ``MqttUnavailable``, a ``ConnectionError``) when it cannot."""


async def heads(conn: Connection) -> tuple[Head, ...]:
    """Every lane's last committed entry ``(lane, lane_seq, hash)``, lanes ascending, in one
    snapshot: lane 0 always (``(0, 0, GENESIS_HASH)`` when empty), the others once they hold an
    entry."""
    rows = await conn.fetch("SELECT lane, lane_seq, hash FROM audit_heads() ORDER BY lane")
    return tuple((int(r["lane"]), int(r["lane_seq"]), str(r["hash"])) for r in rows)


class AnchorFiles:
    """Append-only anchor files in one directory: ``anchors-YYYY-MM-DD.jsonl`` by the anchor's
    UTC date, one JSON line each, fsynced (and the directory too when a file is new)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, anchor: Anchor) -> Path:
        return self.directory / f"anchors-{anchor.at[:10]}.jsonl"

    def write(self, anchor: Anchor) -> Path:
        """Append ``anchor`` and make it durable (blocking: call it in a thread)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path_for(anchor)
        new = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, anchor.encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return path

    def last(self) -> Anchor | None:
        """The newest readable anchor of the newest file (where a restart carries on)."""
        for path in sorted(self.directory.glob(FILE_GLOB), reverse=True):
            with contextlib.suppress(OSError):
                for line in reversed(path.read_bytes().splitlines()):
                    with contextlib.suppress(AnchorError):
                        return anchors.decode(line)
        return None


@dataclass(frozen=True, slots=True)
class Found:
    """One anchor read from a file, with where it was."""

    path: Path
    line: int
    anchor: Anchor


def read_dir(directory: Path) -> tuple[list[Found], list[str]]:
    """Every anchor of the directory's anchor files, and the problems met: a line that cannot be
    read (a torn last line without its newline, left by a crash mid-write, is skipped with a
    note rather than counted as a problem). Raises ``OSError`` when the directory is unreadable."""
    found: list[Found] = []
    problems: list[str] = []
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory} is not a directory")
    for path in sorted(directory.glob(FILE_GLOB)):
        data = path.read_bytes()
        lines = data.split(b"\n")
        for i, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                found.append(Found(path, i, anchors.decode(line)))
            except AnchorError as e:
                torn = i == len(lines) and not data.endswith(b"\n")
                if not torn:
                    problems.append(f"{path.name} line {i}: {e}")
    return found, problems


class Anchorer:
    """Signs the lanes' heads when they changed and writes them out; see the module's
    docstring."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        key: Ed25519PrivateKey,
        files: AnchorFiles,
        *,
        clock: Clock,
        interval_s: float = 60.0,
        publish: Publish | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.pool = pool
        self.key = key
        self.files = files
        self.clock = clock
        self.interval_s = interval_s
        self.publish = publish
        self.key_id = anchors.key_id(key.public_key())
        self.written = 0  # anchors written to the files by this process
        self.last: Anchor | None = None  # the newest anchor written to the files
        self._published: Anchor | None = None  # the newest anchor the publisher took
        self._started = False
        self.anchored = asyncio.Condition()  # notified after each anchor written
        # one tick at a time: a tick that read the heads before another tick's must not write
        # or publish its older anchor after the newer one (the periodic tick, the shutdown one)
        self._ticking = asyncio.Lock()

    async def _start(self) -> None:
        if self._started:
            return
        self._started = True
        last = await asyncio.to_thread(self.files.last)
        if last is not None and last.key_id == self.key_id:
            self.last = last  # the head a previous run anchored need not be anchored again

    async def tick(self) -> Anchor | None:
        """Anchor the heads if they changed since the last anchor; the new anchor, else
        ``None``. A file that cannot be written is logged and tried again at the next tick.
        Ticks run one at a time, so the anchors go out in the order of the heads they sign."""
        async with self._ticking:
            return await self._tick()

    async def _tick(self) -> Anchor | None:
        await self._start()
        try:
            async with self.pool.acquire() as conn:
                now = await heads(conn)
        except (OSError, asyncpg.PostgresError) as e:
            log.warning("audit_anchor_head_unread", error=type(e).__name__)
            return None
        made: Anchor | None = None
        if self.last is None or self.last.heads != now:
            anchor = anchors.sign_heads(self.key, heads=now, at=self.clock())
            try:
                await asyncio.to_thread(self.files.write, anchor)
            except OSError as e:
                log.exception("audit_anchor_not_written", seq=anchor.seq, error=type(e).__name__)
                return None
            self.last, self.written, made = anchor, self.written + 1, anchor
            log.info("audit_anchored", seq=anchor.seq, lanes=len(now), key_id=self.key_id)
            async with self.anchored:
                self.anchored.notify_all()
        if self.publish is not None and self.last is not None and self._published != self.last:
            try:
                await self.publish(self.last.encode())
                self._published = self.last
            except OSError as e:  # the files hold it; the topic is retried at the next tick
                log.warning("audit_anchor_not_published", seq=self.last.seq, error=repr(e))
        return made

    async def run(self) -> None:
        """Anchor every ``interval_s`` (loop time) until cancelled."""
        while True:
            await self.tick()
            await asyncio.sleep(self.interval_s)

    async def final(self) -> Anchor | None:
        """The shutdown anchor: the heads as the process leaves them, if they changed."""
        return await self.tick()


@contextlib.asynccontextmanager
async def kept(anchorer: Anchorer) -> AsyncIterator[Anchorer]:
    """``anchorer`` with its shutdown anchor written on the way out (errors logged, not raised:
    a failed last anchor must not keep the process from stopping)."""
    try:
        yield anchorer
    finally:
        try:
            await anchorer.final()
        except Exception:  # shutdown goes on; the failure is logged with its traceback
            log.exception("audit_anchor_final_failed")
