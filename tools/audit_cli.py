"""``homecare audit verify [--anchors DIR]`` and ``homecare audit keygen``.

``verify`` walks every lane of the audit chain and prints one line; with ``--anchors DIR`` it
also checks each anchor's signature and that every lane holds, at each lane seq an anchor names,
the hash that was signed, and reaches the last one (:mod:`kernel.audit.anchor`), and prints a
second line.
Exit 0 intact, 1 broken, 2 bad arguments (a key or directory that cannot be read), 3 the
database could not be read.

``keygen`` writes a new Ed25519 key for the anchors: the private key (mode 0600) and its public
half beside it (``FILE.pub``), which an auditor keeps to verify with.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kernel.audit import anchor as audit_anchor
from kernel.audit import anchoring
from kernel.audit import store as audit_store

EXIT_BROKEN = 1
EXIT_USAGE = 2
EXIT_NO_DATABASE = 3


def _err(text: str) -> None:
    sys.stderr.write(f"audit verify: {text}\n")


def public_keys(paths: Sequence[Path], anchor_key: str) -> dict[str, Ed25519PublicKey] | str:
    """Public keys by key id from ``--public-key`` files, else from the service's own key file
    (``HOMECARE_AUDIT_ANCHOR_KEY``); the problem as text when there is none or one is bad."""
    sources = list(paths) or ([Path(anchor_key)] if anchor_key else [])
    if not sources:
        return "--anchors needs --public-key FILE (or HOMECARE_AUDIT_ANCHOR_KEY)"
    keys: dict[str, Ed25519PublicKey] = {}
    for path in sources:
        try:
            key = audit_anchor.load_public(path.read_bytes())
        except OSError as e:
            return f"cannot read the key {path}: {type(e).__name__}"
        except audit_anchor.AnchorError as e:
            return f"{path} is {e}"
        keys[audit_anchor.key_id(key)] = key
    return keys


async def _chain_pairs(conn: audit_store.Connection, check: audit_anchor.LanesAnchorCheck) -> None:
    async with conn.transaction(), contextlib.aclosing(audit_store.positions(conn)) as rows:
        async for lane, seq, digest in rows:
            if not check.feed(lane, seq, digest):
                break


async def audit_verify_command(
    database_url: str,
    *,
    anchors: Path | None = None,
    public_key: Sequence[Path] = (),
    anchor_key: str = "",
) -> int:
    """Verify the whole chain; print ``audit chain ok: N entries verified`` or where it broke;
    with ``anchors``, a second line comparing the chain with the signed anchors there."""
    keys: dict[str, Ed25519PublicKey] = {}
    found: list[anchoring.Found] = []
    problems: list[str] = []
    if anchors is not None:
        got = public_keys(public_key, anchor_key)
        if isinstance(got, str):
            _err(got)
            return EXIT_USAGE
        keys = got
        try:
            found, problems = anchoring.read_dir(anchors)
        except OSError as e:
            _err(f"cannot read the anchors in {anchors}: {e}")
            return EXIT_USAGE
    try:
        conn = await asyncpg.connect(database_url, timeout=10, command_timeout=60)
    except (OSError, asyncpg.PostgresError) as e:
        _err(f"cannot connect to the database: {type(e).__name__}")
        return EXIT_NO_DATABASE
    try:
        result = await audit_store.verify(conn)
        valid: list[audit_anchor.Anchor] = []
        for item in found:
            try:
                audit_anchor.check(item.anchor, keys)
            except audit_anchor.AnchorError as e:
                problems.append(f"{item.path.name} line {item.line}: {e}")
            else:
                valid.append(item.anchor)
        check = audit_anchor.LanesAnchorCheck(valid)
        if anchors is not None:
            await _chain_pairs(conn, check)
    except asyncpg.UndefinedTableError:
        _err("no audit_log table; run `homecare migrate` first")
        return EXIT_NO_DATABASE
    finally:
        await conn.close()
    lines = [result.summary()]
    ok = result.ok
    if anchors is not None:
        compared = check.result()
        lines.append(compared.summary())
        lines += [f"audit anchors BROKEN: {p}" for p in problems]
        ok = ok and compared.ok and not problems
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    sys.stdout.flush()
    return 0 if ok else EXIT_BROKEN


def audit_keygen_command(out: Path) -> int:
    """Write a new anchor key to ``out`` (0600) and its public half to ``out.pub``; refuse to
    overwrite either. Exit 0, or 2 with nothing written."""
    pub = out.with_name(out.name + ".pub")
    for path in (out, pub):
        if path.exists():
            sys.stderr.write(f"audit keygen: {path} exists; not overwritten\n")
            return EXIT_USAGE
    if not out.parent.is_dir():
        sys.stderr.write(f"audit keygen: no directory {out.parent}\n")
        return EXIT_USAGE
    key = audit_anchor.new_key()
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        sys.stderr.write(f"audit keygen: cannot create {out}: {type(e).__name__}\n")
        return EXIT_USAGE
    try:
        os.write(fd, audit_anchor.private_pem(key))
        os.fsync(fd)
    finally:
        os.close(fd)
    pub.write_bytes(audit_anchor.public_pem(key.public_key()))
    sys.stdout.write(
        f"anchor key {audit_anchor.key_id(key.public_key())}: private {out} (set "
        f"HOMECARE_AUDIT_ANCHOR_KEY to it), public {pub} (keep a copy away from the database)\n"
    )
    return 0
