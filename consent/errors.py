"""Errors of the consent slice. ``http_status``, ``code`` and ``field`` are shown by the HTTP layer.

ConsentError
├── InvalidInput (ValueError, 422)    a value breaks a rule; ``field`` names it
├── NotFound (LookupError, 404)       no such brukare, cohabitant, plan, consent, pause,
│                                     device or binding request
├── Conflict (409)                    the current state forbids the change (device already
│                                     bound, request expired or confirmed for someone else,
│                                     consent already withdrawn, ...)
└── StoreUnavailable (503)            the database failed; raised ``from`` the driver error;
                                      also a ConnectionError (transient: retry)
"""

from __future__ import annotations

from kernel import errors as kernel_errors
from kernel.values import Problem


class ConsentError(Exception):
    """Root of the consent slice's errors."""

    http_status = 500
    code = "consent_error"
    field: str | None = None


class InvalidInput(ConsentError, kernel_errors.InvalidInput):
    """A value breaks a rule. Nothing was stored."""

    http_status = 422

    def __init__(self, field: str, code: str, message: str) -> None:
        kernel_errors.InvalidInput.__init__(self, field, code, message)

    @classmethod
    def of(cls, problem: Problem) -> InvalidInput:
        return cls(problem.field, problem.code, problem.message)


def raise_first(problems: list[Problem]) -> None:
    """Raise :class:`InvalidInput` for the first problem, if there is one."""
    if problems:
        raise InvalidInput.of(problems[0])


class NotFound(ConsentError, LookupError):
    http_status = 404
    code = "not_found"

    def __init__(self, what: str, ident: str, field: str | None = None) -> None:
        super().__init__(f"no {what} {ident!r}")
        self.what = what
        self.field = field


class Conflict(ConsentError):
    http_status = 409

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


class StoreUnavailable(ConsentError, ConnectionError):
    """The database failed. A ``ConnectionError`` (so an ``OSError``), so that callers which
    retry transient failures (the MQTT link's handlers) retry this too."""

    http_status = 503
    code = "store_unavailable"
