"""Retention (pure): which data class is kept how long, and what the daily job does to each.

Each :class:`DataClass` has a retention in days (settings ``retention_*_days``); the job
(:mod:`services.retention`) turns the policy and the instant into a cutoff per class
(:func:`cutoffs`) and runs that class's :data:`SWEEPS`, each a batched ``DELETE`` or ``UPDATE``
of the rows older than the cutoff, then erases the personal data of every brukare whose service
ended more than ``retention_ended_recipient_days`` ago (:func:`due_for_erasure`; the erasure
itself is the database function ``erase_recipient``, migration 0021).

The audit log is no class here: it is kept. Its chained payload holds pseudonymous ids, codes,
counts and instants only (``kernel.audit.chain`` refuses names and notes), so once a brukare is
erased their entries no longer identify anyone, and deleting a prefix would break ``homecare
audit verify``. ``docs/security.md`` (Erasure and the audit log) says why.

:data:`PERSONAL_TEXT` names every text or JSON column of the schema that can carry personal data
about a brukare and how erasure blanks it; :data:`NOT_PERSONAL_TEXT` names the rest, with the
reason. A test compares the two with the catalogue, so a new text column must be placed in one.

No I/O, no clock: the instant is an argument.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class DataClass(StrEnum):
    """What the retention policy is set for, one retention each."""

    VIEW_LOG = "view_log"  # looks: views, calls, probes (signal_sessions)
    CHECK_RECORDS = "check_records"  # round checks, steps, alarms, duty, behaviour events
    NOTES = "notes"  # operators' free text on steps, extra looks and pauses (blanked)
    DEVICE_HEALTH = "device_health"  # a device's last health report, its command history
    SESSIONS = "sessions"  # ended or expired login sessions, API tokens, login throttle
    ENDED_RECIPIENTS = "ended_recipients"  # personal data of a brukare whose service ended


class Action(StrEnum):
    DELETE = "delete"
    BLANK = "blank"  # the row stays, its free text is emptied (anonymised)


@dataclass(frozen=True, slots=True)
class Policy:
    """Days each class is kept; :meth:`of` for one."""

    days: Mapping[DataClass, int]

    def __post_init__(self) -> None:
        for c in DataClass:
            if c not in self.days:
                raise ValueError(f"no retention for {c}")
            if self.days[c] < 0:
                raise ValueError(f"retention for {c} is negative")

    def of(self, data_class: DataClass) -> int:
        return self.days[data_class]


@dataclass(frozen=True, slots=True)
class Sweep:
    """One batched statement of a class: rows of ``table`` matching ``where`` (``$1`` is the
    cutoff, a ``timestamptz``) are deleted, or have ``assign`` applied. ``key`` picks a batch."""

    data_class: DataClass
    table: str
    action: Action
    where: str
    assign: str = ""
    key: str = "ctid"


_CHECKS_BEFORE = (
    "check_id IN (SELECT check_id FROM round_checks"
    " WHERE night < ($1::timestamptz AT TIME ZONE 'UTC')::date)"
)

SWEEPS: tuple[Sweep, ...] = (
    # Notes first: a note older than its retention is blanked even where its row stays longer.
    Sweep(
        DataClass.NOTES,
        "round_transitions",
        Action.BLANK,
        "at < $1 AND note IS NOT NULL",
        "note = NULL",
    ),
    Sweep(
        DataClass.NOTES,
        "signal_sessions",
        Action.BLANK,
        "started_at < $1 AND look_note IS NOT NULL AND look_note <> ''",
        "look_note = ''",
    ),
    Sweep(
        DataClass.NOTES,
        "pauses",
        Action.BLANK,
        "ends_at < $1 AND note <> ''",
        "note = ''",
    ),
    Sweep(DataClass.VIEW_LOG, "signal_sessions", Action.DELETE, "ended_at < $1"),
    # A check's steps and alarms go before the check they belong to (foreign keys).
    Sweep(DataClass.CHECK_RECORDS, "round_transitions", Action.DELETE, _CHECKS_BEFORE),
    Sweep(DataClass.CHECK_RECORDS, "round_alarms", Action.DELETE, _CHECKS_BEFORE),
    Sweep(
        DataClass.CHECK_RECORDS,
        "round_checks",
        Action.DELETE,
        "night < ($1::timestamptz AT TIME ZONE 'UTC')::date",
    ),
    Sweep(
        DataClass.CHECK_RECORDS,
        "round_nights",
        Action.DELETE,
        "night < ($1::timestamptz AT TIME ZONE 'UTC')::date",
    ),
    Sweep(DataClass.CHECK_RECORDS, "round_duty", Action.DELETE, "ended_at < $1"),
    Sweep(DataClass.CHECK_RECORDS, "behaviour_events", Action.DELETE, "at < $1"),
    Sweep(
        DataClass.DEVICE_HEALTH,
        "devices",
        Action.BLANK,
        "health_at < $1 AND health IS NOT NULL",
        "health = NULL, health_at = NULL",
    ),
    Sweep(DataClass.DEVICE_HEALTH, "device_commands", Action.DELETE, "sent_at < $1"),
    Sweep(
        DataClass.SESSIONS,
        "staff_sessions",
        Action.DELETE,
        "(ended_at < $1 OR expires_at < $1)",
    ),
    Sweep(DataClass.SESSIONS, "api_tokens", Action.DELETE, "(revoked_at < $1 OR expires_at < $1)"),
    Sweep(
        DataClass.SESSIONS,
        "login_throttle",
        Action.DELETE,
        "window_start < $1 AND (locked_until IS NULL OR locked_until < $1)",
    ),
)
"""Every batched statement of the job, in the order it runs them."""


def cutoffs(policy: Policy, now: datetime) -> dict[DataClass, datetime]:
    """The instant before which each class is past its retention at ``now``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return {c: now - timedelta(days=policy.of(c)) for c in DataClass}


@dataclass(frozen=True, slots=True)
class EndedRecipient:
    """A brukare whose service ended; ``erased_at`` once their personal data is erased."""

    recipient_id: str
    ended_at: datetime
    erased_at: datetime | None = None


def due_for_erasure(ended: Iterable[EndedRecipient], policy: Policy, now: datetime) -> list[str]:
    """The brukare whose personal data must be erased at ``now``: service ended at least the
    retention ago and not yet erased; in the order they ended."""
    cutoff = cutoffs(policy, now)[DataClass.ENDED_RECIPIENTS]
    due = [e for e in ended if e.erased_at is None and e.ended_at <= cutoff]
    return [e.recipient_id for e in sorted(due, key=lambda e: (e.ended_at, e.recipient_id))]


def batches(total: int, size: int) -> list[int]:
    """How a job of ``total`` rows splits into transactions of at most ``size`` (a dry run's
    estimate; the job itself stops at the first short batch)."""
    if size < 1:
        raise ValueError("a batch holds at least one row")
    full, rest = divmod(max(0, total), size)
    return [size] * full + ([rest] if rest else [])


# --- what erasure blanks -----------------------------------------------------------------

PERSONAL_TEXT: Mapping[tuple[str, str], str] = {
    ("care_recipients", "display_name"): "replaced by the pseudonymous recipient_id",
    ("care_recipients", "home"): "emptied",
    ("care_recipients", "door_code_ref"): "emptied",
    ("cohabitants", "display_name"): "replaced by the pseudonymous cohabitant_id",
    ("care_plans", "instruction"): "emptied",
    ("care_plans", "decision_ref"): "replaced by '-'",
    ("consents", "basis_ref"): "NULL (append-only table: erase_recipient only)",
    ("consents", "informed_by"): "NULL (append-only table: erase_recipient only)",
    ("consents", "informed_how"): "NULL (append-only table: erase_recipient only)",
    ("consents", "document_ref"): "NULL (append-only table: erase_recipient only)",
    ("consent_withdrawals", "reason"): "NULL (append-only table: erase_recipient only)",
    ("pauses", "note"): "emptied",
    ("round_transitions", "note"): "NULL",
    ("signal_sessions", "look_note"): "emptied (an extra look keeps its reason code)",
    ("camera_zones", "zones"): "deleted with the row (zones drawn for the brukare's room)",
}
"""Every text or JSON column that can carry personal data about a brukare, and how
``erase_recipient`` (migration 0021) makes it carry none."""

NOT_PERSONAL_TEXT: Mapping[str, str] = {
    "organisation_id": "an organisation's id",
    "team_id": "a team's id",
    "recipient_id": "pseudonymous id",
    "cohabitant_id": "pseudonymous id",
    "device_id": "pseudonymous id",
    "staff_id": "pseudonymous staff id",
    "check_id": "pseudonymous id",
    "consent_id": "pseudonymous id",
    "plan_id": "pseudonymous id",
    "pause_id": "pseudonymous id",
    "session_id": "random id",
    "binding_id": "random id",
    "request_id": "random id",
    "command_id": "random id",
    "token_id": "random id",
    "suspension_id": "random id",
    "grant_id": "random id",
    "reverification_id": "random id",
    "unit_id": "a unit's id",
    "grantee_team_id": "a team's id",
    "instance_id": "a process's id",
    "secret_hash": "hash of a secret",
    "code_hash": "hash of a one-time code",
    "password_hash": "hash of a password",
    "username_key": "hash of a username",
    "prev_hash": "audit chain link",
    "hash": "audit chain link",
    "checksum": "a migration's checksum",
}
"""Columns (by name, in any table) that hold ids, hashes or codes only."""

NOT_PERSONAL_COLUMNS: Mapping[tuple[str, str], str] = {
    ("audit_log", "data"): "pseudonymous ids, codes, counts, instants (kernel.audit.chain)",
    ("audit_log", "actor"): "pseudonymous staff id, 'system' or a device",
    ("audit_log", "action"): "a code",
    ("audit_log", "subject"): "pseudonymous id",
    ("staff", "username"): "staff, not a brukare: their account's lifecycle (identity)",
    ("staff", "display_name"): "staff, not a brukare: their account's lifecycle (identity)",
    ("staff", "role"): "a code",
    ("api_tokens", "role"): "a code",
    ("api_tokens", "label"): "staff's own label for a token, removed with it (sessions class)",
    ("organisations", "name"): "an organisation",
    ("organisations", "kind"): "a code",
    ("units", "name"): "a district",
    ("teams", "name"): "a team",
    ("team_grants", "agreement_ref"): "an agreement between organisations",
    ("schema_migrations", "name"): "a file name",
    ("care_recipients", "time_zone"): "a zone name",
    ("care_recipients", "language"): "a language code",
    ("care_recipients", "end_reason"): "a code",
    ("care_recipients", "created_by"): "pseudonymous staff id",
    ("care_recipients", "ended_by"): "pseudonymous staff id",
    ("care_plans", "checks"): "times of day",
    ("care_plans", "escalation"): "codes",
    ("care_plans", "paused_checks"): "a code",
    ("care_plans", "deadlines"): "numbers",
    ("care_plans", "created_by"): "pseudonymous staff id",
    ("care_plans", "ended_by"): "pseudonymous staff id",
    ("consents", "purpose"): "a code",
    ("consents", "basis"): "a code",
    ("consents", "windows"): "times of day",
    ("consents", "recorded_by"): "pseudonymous staff id",
    ("consent_withdrawals", "withdrawn_by"): "pseudonymous staff id or 'recipient'",
    ("pauses", "source"): "a code",
    ("pauses", "reason"): "a code",
    ("pauses", "created_by"): "pseudonymous staff id",
    ("pauses", "ended_by"): "pseudonymous staff id",
    ("binding_requests", "action"): "a code",
    ("binding_requests", "requested_by"): "pseudonymous staff id",
    ("binding_requests", "confirmed_by"): "pseudonymous staff id",
    ("binding_requests", "proof"): "a code",
    ("device_bindings", "requested_by"): "pseudonymous staff id",
    ("device_bindings", "bound_by"): "pseudonymous staff id",
    ("device_bindings", "unbound_by"): "pseudonymous staff id",
    ("behaviour_events", "event_type"): "a code",
    ("suspensions", "event_type"): "a code",
    ("suspensions", "lifted_by"): "pseudonymous staff id",
    ("devices", "kind"): "a code",
    ("devices", "firmware"): "a version",
    ("devices", "caps"): "codes",
    ("devices", "video"): "numbers",
    ("devices", "presence"): "a code",
    ("devices", "health"): "a device's numbers and flags (device_health class)",
    ("device_commands", "op"): "a code",
    ("device_commands", "ack_detail"): "a device's answer (device_health class)",
    ("camera_zones", "updated_by"): "pseudonymous staff id",
    ("round_nights", "summary"): "counts",
    ("round_checks", "policy"): "numbers and codes",
    ("round_checks", "state"): "a code",
    ("round_checks", "reason"): "a code",
    ("round_checks", "holder"): "a worker's id",
    ("round_checks", "verdict"): "a code",
    ("round_checks", "assignee"): "pseudonymous staff id",
    ("round_checks", "patrol_outcome"): "a code",
    ("round_transitions", "from_state"): "a code",
    ("round_transitions", "to_state"): "a code",
    ("round_transitions", "event"): "a code",
    ("round_transitions", "actor"): "pseudonymous staff id or 'system'",
    ("round_transitions", "reason"): "a code",
    ("round_transitions", "verdict"): "a code",
    ("round_transitions", "verdict_detail"): "the motion check's numbers",
    ("round_alarms", "state"): "a code",
    ("round_alarms", "acknowledged_by"): "pseudonymous staff id",
    ("round_alarms", "kind"): "a code",
    ("round_alarms", "addressed_to"): "pseudonymous staff id or a role",
    ("round_duty", "teams"): "team ids",
    ("signal_sessions", "purpose"): "a code",
    ("signal_sessions", "state"): "a code",
    ("signal_sessions", "end_reason"): "a code",
    ("signal_sessions", "look"): "a code",
    ("signal_sessions", "look_reason"): "a code",
    ("suspensions", "reason"): "a code",
    ("reverifications", "verified_by"): "pseudonymous staff id",
    ("reverifications", "people"): "pseudonymous ids, codes and instants (migration 0023)",
    ("reverifications", "outcome"): "a code",
    ("reverifications", "suspension_ids"): "ids",
    ("reverifications", "withdrawn_consent_ids"): "ids",
    ("staff_teams", "added_by"): "pseudonymous staff id",
    ("team_grants", "granted_by"): "pseudonymous staff id",
    ("team_grants", "revoked_by"): "pseudonymous staff id",
}
"""Text or JSON columns that hold no personal data about a brukare, each with the reason."""


def unplaced(columns: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Text or JSON columns of the catalogue that are neither erased nor declared not personal:
    each must be placed before the erasure can be said to be complete."""
    return sorted(
        (t, c)
        for t, c in columns
        if (t, c) not in PERSONAL_TEXT
        and (t, c) not in NOT_PERSONAL_COLUMNS
        and c not in NOT_PERSONAL_TEXT
    )
