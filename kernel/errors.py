"""Errors of the shared kernel; the HTTP layer shows their ``http_status``, ``code`` and ``field``.

InvalidInput (ValueError, 422)   a value breaks a rule; ``field`` names it
BodyError (ValueError, 400)      the body cannot be read as the JSON object a route needs
  UnsupportedMediaType (415)     the body is sent as something other than application/json

A slice's own error tree may subclass these (``consent.errors.InvalidInput`` does), so that one
``except`` catches a bad value wherever it was found.
"""

from __future__ import annotations

from kernel.values import Problem


class InvalidInput(ValueError):
    """A value breaks a rule. Nothing was stored."""

    http_status = 422
    code = "invalid"
    field: str | None = None

    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.code = code

    @classmethod
    def of(cls, problem: Problem) -> InvalidInput:
        return cls(problem.field, problem.code, problem.message)


class BodyError(ValueError):
    """The request body cannot be read as the JSON object a route needs."""

    http_status = 400
    code = "bad_body"


class UnsupportedMediaType(BodyError):
    """A body was sent with a Content-Type other than ``application/json``."""

    http_status = 415
    code = "unsupported_media_type"
