"""Anchors of the audit chain on the real PostgreSQL and Mosquitto: the lanes' heads are signed
when they changed (injected clock), written to the anchor files and the retained MQTT topic, once
more at a clean shutdown; ``homecare audit verify --anchors`` catches a rewrite with recomputed
hashes and a cut tail in one lane (not lane 0) that plain ``verify`` passes."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import stat
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import asyncpg
import pytest

from devices import topics
from kernel.audit import anchor as A
from kernel.audit import anchoring
from kernel.audit import store as audit_store
from kernel.audit.chain import GENESIS_HASH, lane_entry_hash, lane_of
from kernel.clock import ScaledClock
from services import app
from services.mqtt import client_args
from services.settings import SettingsError, load
from tools.audit_cli import audit_keygen_command, audit_verify_command

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 14, 2, 0, tzinfo=UTC)
LANES = sorted({lane_of(subject=f"rcp-{i}", actor="staff-abc123") for i in range(4)})
"""The lanes :func:`fill` writes to (one per subject here)."""
LANE = lane_of(subject="rcp-1", actor="staff-abc123")
"""The lane the tampering tests change: rcp-1's (entries 1, 5, 9, 13, 17 of a fill)."""


async def fill(pool: asyncpg.Pool, n: int, *, start: int = 0) -> None:
    """``n`` entries written as the service writes them (its role, its pool)."""
    async with pool.acquire() as conn:
        for i in range(start, start + n):
            await audit_store.append(
                conn,
                actor="staff-abc123",
                action="view.ended",
                subject=f"rcp-{i % 4}",
                data={"i": i, "duration_s": 20},
                at=T0 + timedelta(seconds=i),
            )


@pytest.fixture
def key_files(tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "keys" / "anchor.pem"
    out.parent.mkdir()
    assert audit_keygen_command(out) == 0
    return out, out.with_name("anchor.pem.pub")


def anchorer(
    pool: asyncpg.Pool, key: Path, directory: Path, clock: ScaledClock
) -> anchoring.Anchorer:
    return anchoring.Anchorer(
        pool,
        A.load_private(key.read_bytes()),
        anchoring.AnchorFiles(directory),
        clock=clock,
        interval_s=60.0,
    )


def lines(directory: Path) -> list[A.Anchor]:
    found, problems = anchoring.read_dir(directory)
    assert problems == []
    return [f.anchor for f in found]


async def test_the_head_is_anchored_when_it_changed_and_not_otherwise(
    pool: asyncpg.Pool, key_files: tuple[Path, Path], tmp_path: Path
) -> None:
    clock = ScaledClock(speed=0, start=T0)
    directory = tmp_path / "anchors"
    a = anchorer(pool, key_files[0], directory, clock)
    first = await a.tick()  # the empty chain
    assert first is not None
    assert first.heads == ((0, 0, GENESIS_HASH),)
    assert await a.tick() is None  # nothing changed: no anchor
    await fill(pool, 3)
    clock.advance(60)
    second = await a.tick()
    assert second is not None
    assert second.seq == 3  # entries covered: one in each of three lanes
    assert [(lane, seq) for lane, seq, _ in second.heads] == [(0, 0)] + [
        (lane, 1) for lane in sorted(lane_of(subject=f"rcp-{i}", actor="x") for i in range(3))
    ]
    assert second.at == "2026-01-14T02:01:00.000000+00:00"  # the injected clock's now
    async with pool.acquire() as conn:
        assert second.heads == await anchoring.heads(conn)
    clock.advance(60)
    assert await a.tick() is None
    assert lines(directory) == [first, second]
    assert [p.name for p in directory.iterdir()] == ["anchors-2026-01-14.jsonl"]
    # a restart carries on from the files: the same head is not anchored again
    again = anchorer(pool, key_files[0], directory, clock)
    assert await again.tick() is None
    await fill(pool, 1, start=3)
    clock.advance(24 * 3600)  # the next day: a new file
    third = await again.tick()
    assert third is not None
    assert third.seq == 4
    assert sorted(p.name for p in directory.iterdir()) == [
        "anchors-2026-01-14.jsonl",
        "anchors-2026-01-15.jsonl",
    ]
    keys = {
        A.key_id(A.load_public(key_files[1].read_bytes())): A.load_public(key_files[1].read_bytes())
    }
    for anchor in lines(directory):
        A.check(anchor, keys)


async def test_a_file_that_cannot_be_written_is_tried_again(
    pool: asyncpg.Pool, key_files: tuple[Path, Path], tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the directory should be")
    a = anchorer(pool, key_files[0], blocked, ScaledClock(speed=0, start=T0))
    await fill(pool, 2)
    assert await a.tick() is None
    assert a.written == 0
    blocked.unlink()
    made = await a.tick()
    assert made is not None
    assert made.seq == 2
    assert lines(blocked)[-1] == made


class _HeldFiles(anchoring.AnchorFiles):
    """Anchor files whose first write waits until ``go`` is set (on the writer's thread)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.go = threading.Event()
        self.writing = threading.Event()
        self._first = True

    def write(self, anchor: A.Anchor) -> Path:
        if self._first:
            self._first = False
            self.writing.set()
            assert self.go.wait(10)
        return super().write(anchor)


async def test_a_tick_that_read_older_heads_never_ends_after_a_newer_one(
    pool: asyncpg.Pool, key_files: tuple[Path, Path], tmp_path: Path
) -> None:
    """The periodic tick and another (the shutdown anchor) at once: the one that read the heads
    first writes and publishes first, so the newest anchor stays the last in the files, on the
    retained topic and in ``last`` (a stale one had replaced it)."""
    files = _HeldFiles(tmp_path / "anchors")
    published: list[bytes] = []

    async def publish(payload: bytes) -> None:
        published.append(payload)

    a = anchoring.Anchorer(
        pool,
        A.load_private(key_files[0].read_bytes()),
        files,
        clock=ScaledClock(speed=0, start=T0),
        publish=publish,
    )
    await fill(pool, 1)
    first = asyncio.create_task(a.tick())  # reads one entry's heads, then its write is held
    await asyncio.to_thread(files.writing.wait, 10)
    await fill(pool, 3, start=1)
    second = asyncio.create_task(a.tick())
    await asyncio.sleep(0.2)  # time for the second to run ahead, were it not held back
    files.go.set()
    older, newer = await first, await second
    assert older is not None
    assert newer is not None
    assert (older.seq, newer.seq) == (1, 4)
    assert a.last == newer
    assert lines(files.directory)[-1] == newer
    assert published[-1] == newer.encode()


async def test_run_anchors_every_interval_while_entries_are_written(
    pool: asyncpg.Pool, key_files: tuple[Path, Path], tmp_path: Path
) -> None:
    a = anchoring.Anchorer(
        pool,
        A.load_private(key_files[0].read_bytes()),
        anchoring.AnchorFiles(tmp_path / "anchors"),
        clock=ScaledClock(speed=0, start=T0),
        interval_s=0.02,
    )
    task = asyncio.create_task(a.run())
    try:
        for n in (2, 5):
            await fill(pool, n - (a.last.seq if a.last else 0), start=a.last.seq if a.last else 0)
            async with asyncio.timeout(10), a.anchored:
                await a.anchored.wait_for(lambda n=n: a.last is not None and a.last.seq == n)  # type: ignore[misc]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [x.seq for x in lines(tmp_path / "anchors")][-1] == 5


async def retained(mqtt_url: str, topic: str) -> bytes:
    async with aiomqtt.Client(**client_args(mqtt_url)) as client:  # type: ignore[arg-type]
        await client.subscribe(topic, qos=1)
        async with asyncio.timeout(10):
            async for message in client.messages:
                assert message.retain
                return bytes(message.payload)  # type: ignore[arg-type]
    raise AssertionError("no retained anchor")


async def test_the_service_anchors_to_files_and_the_retained_topic_and_at_shutdown(
    database_url: str,
    mqtt_url: str,
    topic_prefix: str,
    key_files: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    directory = tmp_path / "anchors"
    settings = dataclasses.replace(
        load({}),
        database_url=database_url,
        mqtt_url=mqtt_url,
        mqtt_topic_prefix=topic_prefix,
        roles=("api",),
        audit_anchor_key=str(key_files[0]),
        audit_anchor_dir=str(directory),
    )
    async with app.runtime(settings) as rt:
        assert rt.anchorer is not None
        assert rt.mqtt is not None
        assert "audit-anchor" in {t.get_name() for t in rt.tasks}
        async with asyncio.timeout(15):
            await rt.mqtt.connected.wait()
        await fill(rt.pool, 4)
        await rt.anchorer.tick()
        assert rt.anchorer.last is not None
        assert rt.anchorer.last.seq == 4
        assert await retained(mqtt_url, topics.audit_anchor_topic(topic_prefix)) == (
            rt.anchorer.last.encode()
        )
        await fill(rt.pool, 3, start=4)  # written after the last tick: the shutdown anchors it
    last = lines(directory)[-1]
    assert last.seq == 7
    assert await retained(mqtt_url, f"{topic_prefix}/server/audit-anchor") == last.encode()
    assert (
        await audit_verify_command(database_url, anchors=directory, public_key=[key_files[1]]) == 0
    )


def test_key_and_directory_are_set_together(key_files: tuple[Path, Path]) -> None:
    with pytest.raises(
        SettingsError, match="HOMECARE_AUDIT_ANCHOR_KEY and HOMECARE_AUDIT_ANCHOR_DIR"
    ):
        load({"HOMECARE_AUDIT_ANCHOR_KEY": str(key_files[0])})
    with pytest.raises(SettingsError, match="HOMECARE_AUDIT_ANCHOR_INTERVAL_S"):
        load({"HOMECARE_AUDIT_ANCHOR_INTERVAL_S": "61"})


async def test_a_bad_key_stops_the_start_with_a_clear_error(
    database_url: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    for key in (bad, tmp_path / "missing.pem"):
        settings = dataclasses.replace(
            load({}),
            database_url=database_url,
            roles=("rounds",),
            audit_anchor_key=str(key),
            audit_anchor_dir=str(tmp_path / "anchors"),
        )
        with pytest.raises(SettingsError, match="HOMECARE_AUDIT_ANCHOR_KEY"):
            async with app.runtime(settings, options=app.Options(wake=_no_wake)):
                pass
    assert not (tmp_path / "anchors").exists()


async def _no_wake(device_id: str) -> bool:
    return False


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "k.pem"
    assert audit_keygen_command(out) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = A.load_private(out.read_bytes())
    pub = A.load_public((tmp_path / "k.pem.pub").read_bytes())
    assert A.key_id(key.public_key()) == A.key_id(pub)
    assert A.key_id(pub) in capsys.readouterr().out
    before = out.read_bytes()
    assert audit_keygen_command(out) == 2
    assert out.read_bytes() == before
    assert "exists" in capsys.readouterr().err
    assert audit_keygen_command(tmp_path / "nowhere" / "k.pem") == 2
    assert not (tmp_path / "nowhere").exists()


# --- tampering, as a superuser would ------------------------------------------------------


async def tamper(
    conn: asyncpg.Connection, statements: list[tuple[str, tuple[object, ...]]]
) -> None:
    """Switch the append-only guard off, change history, switch it back on (as in
    test_audit_store.py)."""
    async with conn.transaction():
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        for sql, args in statements:
            await conn.execute(sql, *args)
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")


async def rewrite_last(owner: asyncpg.Connection, n: int, lane: int = LANE) -> int:
    """Rewrite the last ``n`` entries of ``lane`` (another subject) and recompute every hash
    after them, so the lane verifies again; the first rewritten lane seq."""
    rows = [e for e in await audit_store.entries(owner, limit=10_000) if e.lane == lane]
    keep, change = rows[:-n], rows[-n:]
    prev = keep[-1].hash if keep else GENESIS_HASH
    statements: list[tuple[str, tuple[object, ...]]] = []
    for e in change:
        assert e.lane_seq is not None
        digest = lane_entry_hash(
            seq=e.seq,
            lane=e.lane,
            lane_seq=e.lane_seq,
            at=e.at,
            actor=e.actor,
            action=e.action,
            subject="rcp-forged",
            data=e.data,
            prev_hash=prev,
        )
        statements.append(
            (
                "UPDATE audit_log SET subject = 'rcp-forged', prev_hash = $2, hash = $3"
                " WHERE seq = $1",
                (e.seq, prev, digest),
            )
        )
        prev = digest
    await tamper(owner, statements)
    assert change[0].lane_seq is not None
    return change[0].lane_seq


async def anchored_night(pool: asyncpg.Pool, key: Path, directory: Path) -> None:
    """20 entries in four lanes with anchors after 10 and 20, a minute apart (:data:`LANE` at
    lane seq 3 and 5)."""
    clock = ScaledClock(speed=0, start=T0)
    a = anchorer(pool, key, directory, clock)
    await fill(pool, 10)
    await a.tick()
    await fill(pool, 10, start=10)
    clock.advance(60)
    await a.tick()
    assert [x.seq for x in lines(directory)] == [10, 20]


async def test_verify_anchors_catches_a_lane_rewritten_with_recomputed_hashes(
    pool: asyncpg.Pool,
    owner: asyncpg.Connection,
    database_url: str,
    key_files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory = tmp_path / "anchors"
    await anchored_night(pool, key_files[0], directory)
    assert (
        await audit_verify_command(database_url, anchors=directory, public_key=[key_files[1]]) == 0
    )
    capsys.readouterr()
    assert LANE != 0
    assert await rewrite_last(owner, 2) == 4
    assert await owner.fetchval("SELECT count(*) FROM audit_log WHERE subject = 'rcp-forged'") == 2
    # the chain alone cannot tell
    assert await audit_verify_command(database_url) == 0
    assert capsys.readouterr().out == f"audit chain ok: 20 entries verified in {len(LANES)} lanes\n"
    # the anchors can, and name the lane and its first rewritten entry
    assert (
        await audit_verify_command(database_url, anchors=directory, public_key=[key_files[1]]) == 1
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"audit chain ok: 20 entries verified in {len(LANES)} lanes"
    assert out[1].startswith(
        f"audit anchors BROKEN in lane {LANE} from seq 4: the entry at seq 5 differs"
    )
    assert "matches the anchor at seq 3" in out[1]


async def test_verify_anchors_catches_a_cut_tail(
    pool: asyncpg.Pool,
    owner: asyncpg.Connection,
    database_url: str,
    key_files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory = tmp_path / "anchors"
    await anchored_night(pool, key_files[0], directory)
    await tamper(owner, [(f"DELETE FROM audit_log WHERE lane = {LANE} AND lane_seq > 3", ())])
    capsys.readouterr()  # the anchorer's log lines
    assert await audit_verify_command(database_url) == 0  # every lane's links intact
    assert capsys.readouterr().out == f"audit chain ok: 18 entries verified in {len(LANES)} lanes\n"
    assert (
        await audit_verify_command(database_url, anchors=directory, public_key=[key_files[1]]) == 1
    )
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith(
        f"audit anchors BROKEN in lane {LANE} from seq 4: the lane has no entry 5"
    )
    assert "the lane ends at seq 3" in out[1]


async def test_a_forged_or_unreadable_anchor_line_fails_verify(
    pool: asyncpg.Pool,
    database_url: str,
    key_files: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory = tmp_path / "anchors"
    await anchored_night(pool, key_files[0], directory)
    capsys.readouterr()  # the anchorer's log lines
    path = next(directory.iterdir())
    good = path.read_bytes()
    forged = A.sign(A.new_key(), seq=20, hash="a" * 64, at=T0).encode()
    path.write_bytes(good + forged + b"\n")
    assert (
        await audit_verify_command(database_url, anchors=directory, public_key=[key_files[1]]) == 1
    )
    assert (
        f"audit anchors BROKEN: {path.name} line 3: signed by an unknown key"
        in capsys.readouterr().out
    )
    path.write_bytes(good + b"garbage\n")
    assert (
        await audit_verify_command(database_url, anchors=directory, public_key=[key_files[1]]) == 1
    )
    assert f"{path.name} line 3: not JSON" in capsys.readouterr().out
    path.write_bytes(good + b'{"v":1,"seq":2')  # torn by a crash mid-write: skipped
    assert (
        await audit_verify_command(database_url, anchors=directory, public_key=[key_files[1]]) == 0
    )
    capsys.readouterr()
    # without a key to check against, or with an unreadable directory: bad arguments
    assert await audit_verify_command(database_url, anchors=directory) == 2
    assert "--public-key" in capsys.readouterr().err
    assert (
        await audit_verify_command(
            database_url, anchors=tmp_path / "none", public_key=[key_files[1]]
        )
        == 2
    )
    # the service's own key file serves as the public key too
    assert (
        await audit_verify_command(database_url, anchors=directory, anchor_key=str(key_files[0]))
        == 0
    )


async def test_the_homecare_command_exits_1_naming_the_first_rewritten_entry(
    pool: asyncpg.Pool,
    owner: asyncpg.Connection,
    database_url: str,
    key_files: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    directory = tmp_path / "anchors"
    await anchored_night(pool, key_files[0], directory)
    await rewrite_last(owner, 2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMECARE_")}
    env |= {"HOMECARE_DATABASE_URL": database_url, "HOMECARE_LOG_FORMAT": "json"}

    async def homecare(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tools.cli",
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode() + err.decode()

    code, out = await homecare("audit", "verify")
    assert (code, out) == (0, f"audit chain ok: 20 entries verified in {len(LANES)} lanes\n")
    code, out = await homecare(
        "audit", "verify", "--anchors", str(directory), "--public-key", str(key_files[1])
    )
    assert code == 1, out
    assert f"audit anchors BROKEN in lane {LANE} from seq 4:" in out
