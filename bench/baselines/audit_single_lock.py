"""Baseline for ``bench.audit``: the audit append as it was before lanes (commit 0fad7fb).

A frozen copy of ``kernel.audit.store.append`` with one advisory lock over the whole chain
(``AUDIT_LOCK_KEY``), held through the caller's COMMIT: read the head, insert the next entry (the
chain's form 1, :func:`kernel.audit.chain.next_entry`). Only the table and the head function are
parameters, so the benchmark runs it against a real table of its own (``audit_log_single``, made
by :func:`create_table` with the same indexes, organisation trigger, append-only triggers and
row-level security as ``audit_log``) beside the lanes in the same run. Nothing imports it but the
benchmark. Do not edit it to make it faster: it is the fair baseline, named as such.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from kernel.audit.chain import GENESIS_HASH, AuditEntry, next_entry

AUDIT_LOCK_KEY = 0x68635F617564  # "hc_aud"
TABLE = "audit_log_single"

CREATE = f"""
CREATE TABLE {TABLE} (LIKE audit_log INCLUDING DEFAULTS INCLUDING INDEXES);
ALTER TABLE {TABLE} DROP COLUMN lane, DROP COLUMN lane_seq;
CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER {TABLE}_org BEFORE INSERT ON {TABLE} FOR EACH ROW
    EXECUTE FUNCTION homecare_fill_org('care_recipients', 'recipient_id', 'subject',
                                       'round_checks', 'check_id', 'subject',
                                       'devices', 'device_id', 'subject',
                                       'staff', 'staff_id', 'subject',
                                       'staff', 'staff_id', 'actor');
ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY;
CREATE POLICY {TABLE}_read ON {TABLE} FOR SELECT USING (homecare_sees(organisation_id));
CREATE POLICY {TABLE}_append ON {TABLE} FOR INSERT WITH CHECK (true);
GRANT SELECT, INSERT ON {TABLE} TO homecare_service;
CREATE FUNCTION {TABLE}_head(OUT seq bigint, OUT hash text) LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = public AS $$
    SELECT seq, hash FROM {TABLE} ORDER BY seq DESC LIMIT 1
$$;
"""


async def create_table(owner: asyncpg.Connection) -> None:
    """The baseline's own real table (as the schema's owner, after the migrations)."""
    await owner.execute(CREATE)


async def append(
    conn: Any,
    *,
    actor: str,
    action: str,
    subject: str | None,
    data: Mapping[str, Any],
    at: datetime,
) -> AuditEntry:
    """One entry under the chain's one lock, in the caller's transaction (open one first)."""
    next_entry(
        prev_seq=0,
        prev_hash=GENESIS_HASH,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        data=data,
    )
    await conn.execute("SELECT pg_advisory_xact_lock($1)", AUDIT_LOCK_KEY)
    head = await conn.fetchrow(f"SELECT seq, hash FROM {TABLE}_head()")
    prev_seq, prev_hash = (
        (head["seq"], head["hash"]) if head and head["seq"] is not None else (0, GENESIS_HASH)
    )
    entry = next_entry(
        prev_seq=prev_seq,
        prev_hash=prev_hash,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        data=data,
    )
    await conn.execute(
        f"INSERT INTO {TABLE} (seq, at, actor, action, subject, data, prev_hash, hash)"
        " VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8)",
        entry.seq,
        entry.at,
        entry.actor,
        entry.action,
        entry.subject,
        json.dumps(entry.data, ensure_ascii=False),
        entry.prev_hash,
        entry.hash,
    )
    return entry
