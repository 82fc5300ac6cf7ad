"""The role matrix: what each role may do, in one pure table (hard rule 11, access follows care).

Every HTTP route names one :class:`Permission` (:func:`route`) and takes its roles from
:data:`MATRIX` (:func:`roles_with`); the signalling service asks :func:`may` whether a role may
open a live view, a call or a probe. Nothing else decides who may do what, so the table below is
the whole answer, and ``docs/security.md`` shows it (:func:`markdown_table`; a test holds the two
equal).

The least-privilege rules of issue 17 read straight off the table:

- a technician sees devices and the installation addresses they are bound to, never a care
  plan, a consent or a note (no ``read_care_record``);
- a case officer (``administrator``) manages brukare, plans and consents but opens no live view
  (no ``live_view``: a ``view`` request is ``denied forbidden``) and documents no check;
- an auditor reads the audit log and its extracts, nothing else;
- the patrol takes its visits and reads its tasks; the shift lead keeps the night's desk,
  reassigns and reads the escalations; an operator works the round (duty, live views for checks,
  calls, outcomes) and reads the brukare records the night needs.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from kernel.roles import Role, Route


class Permission(StrEnum):
    """One thing a route or a signalling request does, named for what it reveals or changes."""

    OWN_SESSION = "own_session"  # who am I, my console's live events
    READ_CARE_RECORD = "read_care_record"  # brukare, plans, consents, pauses, the gate's answer
    MANAGE_CARE_RECORD = "manage_care_record"  # register brukare, plans, consents, re-verify
    PAUSE_AND_WITHDRAW = "pause_and_withdraw"  # a pause or a withdrawal phoned in at night
    READ_INSTALLATIONS = "read_installations"  # installation addresses and their devices only
    READ_DEVICES = "read_devices"  # the device list, presence, camera zones
    MANAGE_DEVICES = "manage_devices"  # camera zones, step one of a binding
    CONFIRM_BINDING = "confirm_binding"  # step two of a binding, naming the brukare
    READ_ROUNDS = "read_rounds"  # tonight's queue and a check's history
    KEEP_WATCH = "keep_watch"  # start and end duty, acknowledge alarms
    LIVE_VIEW = "live_view"  # open a camera's live view for a check
    DOCUMENT_CHECKS = "document_checks"  # a check's outcome (ok, not_seen, call, patrol, ...)
    CALL = "call"  # a video call with the brukare
    PROBE = "probe"  # automated motion analysis (the system's own)
    SIGNAL = "signal"  # open /ws/signal: whoever holds live_view, call or probe
    PATROL_VISITS = "patrol_visits"  # take, arrive at and report a patrol visit
    READ_PATROL_TASKS = "read_patrol_tasks"  # open patrol tasks with home and instruction
    REASSIGN = "reassign"  # give checks and tasks to others, read the escalations
    PLAN_NIGHTS = "plan_nights"  # plan and close a night
    READ_REPORTS = "read_reports"  # the morning report and the handover
    MUTE = "mute"  # silence my console's sound for a few minutes
    MANAGE_STAFF = "manage_staff"  # accounts, passwords, tokens
    MANAGE_ORGANISATION = "manage_organisation"  # units, teams, members, night-centre grants
    READ_AUDIT = "read_audit"  # the audit log and its verification
    READ_EXTRACTS = "read_extracts"  # audited exports: camera register, brukare log extract


P = Permission
#: What opening ``/ws/signal`` is for: a role holds :attr:`Permission.SIGNAL` iff it holds one.
SESSION_PERMISSIONS = frozenset({P.LIVE_VIEW, P.CALL, P.PROBE})


def _grants(*permissions: Permission) -> frozenset[Permission]:
    given = frozenset(permissions)
    return given | {P.SIGNAL} if given & SESSION_PERMISSIONS else given


MATRIX: Mapping[Role, frozenset[Permission]] = {
    Role.OPERATOR: _grants(
        P.OWN_SESSION,
        P.READ_CARE_RECORD,
        P.PAUSE_AND_WITHDRAW,
        P.READ_DEVICES,
        P.READ_ROUNDS,
        P.KEEP_WATCH,
        P.LIVE_VIEW,
        P.DOCUMENT_CHECKS,
        P.CALL,
        P.PATROL_VISITS,
        P.READ_PATROL_TASKS,
        P.READ_REPORTS,
        P.MUTE,
    ),
    Role.PATROL: _grants(P.OWN_SESSION, P.PATROL_VISITS, P.READ_PATROL_TASKS, P.MUTE),
    Role.SHIFT_LEAD: _grants(
        P.OWN_SESSION,
        P.READ_ROUNDS,
        P.KEEP_WATCH,
        P.READ_PATROL_TASKS,
        P.REASSIGN,
        P.READ_REPORTS,
        P.MUTE,
    ),
    Role.ADMINISTRATOR: _grants(
        P.OWN_SESSION,
        P.READ_CARE_RECORD,
        P.MANAGE_CARE_RECORD,
        P.PAUSE_AND_WITHDRAW,
        P.READ_DEVICES,
        P.MANAGE_DEVICES,
        P.CONFIRM_BINDING,
        P.READ_ROUNDS,
        P.CALL,
        P.READ_PATROL_TASKS,
        P.REASSIGN,
        P.PLAN_NIGHTS,
        P.READ_REPORTS,
        P.MUTE,
        P.MANAGE_STAFF,
        P.MANAGE_ORGANISATION,
        P.READ_AUDIT,
        P.READ_EXTRACTS,
    ),
    Role.TECHNICIAN: _grants(P.OWN_SESSION, P.READ_INSTALLATIONS, P.READ_DEVICES, P.MANAGE_DEVICES),
    Role.AUDITOR: _grants(P.OWN_SESSION, P.READ_AUDIT, P.READ_EXTRACTS),
    Role.SYSTEM: _grants(P.PROBE),
}
"""Every role's permissions; a role or permission missing here is allowed nothing."""

#: What the care record is: a role with none of these sees no care plan, consent or note.
CARE_DATA = frozenset({P.READ_CARE_RECORD, P.MANAGE_CARE_RECORD, P.READ_ROUNDS, P.READ_REPORTS})


def may(role: Role, permission: Permission) -> bool:
    """Does the matrix give ``role`` this permission?"""
    return permission in MATRIX.get(role, frozenset())


def roles_with(permission: Permission) -> frozenset[Role]:
    """Every role the matrix gives this permission (never empty: a route would turn public)."""
    found = frozenset(role for role, granted in MATRIX.items() if permission in granted)
    if not found:
        raise ValueError(f"no role holds {permission}")
    return found


def route(
    method: str,
    path: str,
    handler: Callable[..., Any],
    permission: Permission,
    summary: str,
    **more: Any,
) -> Route:
    """A :class:`kernel.roles.Route` whose roles are the matrix's for ``permission``."""
    return Route(
        method, path, handler, roles_with(permission), summary, permission=permission, **more
    )


def markdown_table() -> str:
    """The matrix as a Markdown table, one row per permission, one column per role (``docs``)."""
    roles = list(MATRIX)
    head = "| permission | " + " | ".join(r.value for r in roles) + " |"
    rule = "|---|" + "---|" * len(roles)
    rows = [
        f"| `{p.value}` | " + " | ".join("yes" if may(r, p) else "" for r in roles) + " |"
        for p in Permission
    ]
    return "\n".join([head, rule, *rows]) + "\n"
