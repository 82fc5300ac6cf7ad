"""The role matrix (HACKING rule 11, access follows care): ``kernel.permissions`` against a naive
model written out once more by hand from issue 17, the rules the issue names, and the table in
``docs/security.md`` held equal to the module."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from kernel.permissions import (
    CARE_DATA,
    MATRIX,
    SESSION_PERMISSIONS,
    Permission,
    markdown_table,
    may,
    roles_with,
    route,
)
from kernel.roles import LOGINS, Principal, Role

DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"

# The naive model: who may do what, one line per permission, in plain words (issue 17, HACKING).
NAIVE: dict[str, set[str]] = {
    "own_session": {"operator", "patrol", "shift_lead", "administrator", "technician", "auditor"},
    "read_care_record": {"operator", "administrator"},
    "manage_care_record": {"administrator"},
    "pause_and_withdraw": {"operator", "administrator"},
    "read_installations": {"technician"},
    "read_devices": {"operator", "administrator", "technician"},
    "manage_devices": {"administrator", "technician"},
    "confirm_binding": {"administrator"},
    "read_rounds": {"operator", "shift_lead", "administrator"},
    "keep_watch": {"operator", "shift_lead"},
    "live_view": {"operator"},
    "document_checks": {"operator"},
    "call": {"operator", "administrator"},
    "probe": {"system"},
    "signal": {"operator", "administrator", "system"},
    "patrol_visits": {"operator", "patrol"},
    "read_patrol_tasks": {"operator", "patrol", "shift_lead", "administrator"},
    "reassign": {"shift_lead", "administrator"},
    "plan_nights": {"administrator"},
    "read_reports": {"operator", "shift_lead", "administrator"},
    "mute": {"operator", "patrol", "shift_lead", "administrator"},
    "manage_staff": {"administrator"},
    "manage_organisation": {"administrator"},
    "read_audit": {"administrator", "auditor"},
    "read_extracts": {"administrator", "auditor"},
}

roles = st.sampled_from(list(Role))
permissions = st.sampled_from(list(Permission))


def test_the_naive_model_names_every_permission_and_role() -> None:
    assert set(NAIVE) == {p.value for p in Permission}
    assert set(MATRIX) == set(Role)


@given(roles, permissions)
def test_the_matrix_agrees_with_a_naive_model(role: Role, permission: Permission) -> None:
    assert may(role, permission) is (role.value in NAIVE[permission.value])
    assert (role in roles_with(permission)) is may(role, permission)
    assert (permission in MATRIX[role]) is may(role, permission)


@given(roles, permissions)
def test_a_route_lets_in_exactly_the_matrix_roles(role: Role, permission: Permission) -> None:
    r = route("GET", "/api/x", lambda _: None, permission, "probe route")
    assert r.permission == permission
    assert not r.is_public
    assert r.allows(Principal(staff_id="staff-abcdef", role=role)) is may(role, permission)
    assert not r.allows(None)


def test_least_privilege_rules_of_issue_17() -> None:
    # A technician: devices and installation addresses, no care plan, consent or note.
    tech = MATRIX[Role.TECHNICIAN]
    assert {Permission.READ_DEVICES, Permission.READ_INSTALLATIONS} <= tech
    assert not tech & CARE_DATA
    # A case officer manages plans and consents and opens no live view.
    assert may(Role.ADMINISTRATOR, Permission.MANAGE_CARE_RECORD)
    assert not may(Role.ADMINISTRATOR, Permission.LIVE_VIEW)
    # An auditor reads the audit log and its extracts, nothing else.
    assert MATRIX[Role.AUDITOR] == {
        Permission.OWN_SESSION,
        Permission.READ_AUDIT,
        Permission.READ_EXTRACTS,
    }
    # The patrol never opens a camera nor reads the care record.
    assert not MATRIX[Role.PATROL] & (SESSION_PERMISSIONS | CARE_DATA | {Permission.SIGNAL})
    # The system probes and does nothing a person does; every login has its own session.
    assert MATRIX[Role.SYSTEM] == {Permission.PROBE, Permission.SIGNAL}
    assert roles_with(Permission.OWN_SESSION) == LOGINS


@given(roles)
def test_the_signalling_socket_is_for_whoever_may_open_a_session(role: Role) -> None:
    assert may(role, Permission.SIGNAL) is any(may(role, p) for p in SESSION_PERMISSIONS)


def test_every_permission_is_held_by_someone() -> None:
    for permission in Permission:
        assert roles_with(permission), permission


def test_docs_show_the_matrix_as_it_is() -> None:
    """``docs/security.md`` holds :func:`kernel.permissions.markdown_table` verbatim."""
    assert markdown_table() in DOCS.read_text(encoding="utf-8")
