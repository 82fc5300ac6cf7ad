"""Errors of the night round, drawn as a tree; the HTTP layer maps ``http_status`` and ``code``.

::

    RoundError
    ├── UnknownCheck        (LookupError)      404 unknown_check
    ├── TransitionRefused                      409 <refusal>: the check's state does not accept it
    ├── NotOnDuty           (PermissionError)  403 not_on_duty: operator outcomes need a duty
    ├── AlreadyOnDuty                          409 already_on_duty
    ├── UnknownAlarm        (LookupError)      404 unknown_alarm
    ├── NotYourTask         (PermissionError)  403 not_your_task: a patrol task assigned elsewhere
    ├── BadAssignee                            422 bad_assignee: no active staff of a fitting role
    └── BadRequest          (ValueError)       422 <code>, naming the field
"""

from __future__ import annotations

from supervision.checks import Rejected


class RoundError(Exception):
    http_status = 500
    code = "round_error"
    field: str | None = None


class UnknownCheck(RoundError, LookupError):
    http_status = 404
    code = "unknown_check"

    def __init__(self, check_id: str) -> None:
        super().__init__(f"no check {check_id}")
        self.check_id = check_id


class TransitionRefused(RoundError):
    """The event does not fit the check's state; nothing changed."""

    http_status = 409

    def __init__(self, rejected: Rejected) -> None:
        super().__init__(rejected.message)
        self.rejected = rejected
        self.code = str(rejected.refusal)


class NotOnDuty(RoundError, PermissionError):
    http_status = 403
    code = "not_on_duty"

    def __init__(self, staff_id: str) -> None:
        super().__init__(f"{staff_id} is not on duty tonight; start a duty first")


class AlreadyOnDuty(RoundError):
    http_status = 409
    code = "already_on_duty"


class UnknownAlarm(RoundError, LookupError):
    http_status = 404
    code = "unknown_alarm"


class NotYourTask(RoundError, PermissionError):
    """A patrol acted on a task assigned to another patrol; nothing changed."""

    http_status = 403
    code = "not_your_task"


class BadAssignee(RoundError):
    """A check cannot be assigned to that staff id (unknown, inactive, or the wrong role)."""

    http_status = 422
    code = "bad_assignee"
    field = "assignee"


class BadRequest(RoundError, ValueError):
    http_status = 422

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid") -> None:
        super().__init__(message)
        self.field = field
        self.code = code
