"""structlog set-up: JSON off a TTY, readable console on one. Pseudonymous ids only.

A processor drops keys that must never reach a log (names, personal numbers, SDP, frames) so a
careless call site cannot leak them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

FORBIDDEN_KEYS = frozenset(
    {
        "name",
        "display_name",
        "caller",
        "personal_number",
        "personnummer",
        "sdp",
        "frame",
        "image",
        "password",
        "token",
        "secret",
        "note",
    }
)


def _scrub(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in FORBIDDEN_KEYS.intersection(event):
        event[key] = "[removed]"
    return event


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    """A logger on ``sys.stderr`` as it is when the event is logged, not when logging was
    configured (a harness that swapped and closed stderr must not break later events)."""
    return structlog.PrintLogger(sys.stderr)


def configure(level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog for the process; safe to call more than once."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _scrub,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
