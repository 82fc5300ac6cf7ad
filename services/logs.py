"""structlog set-up: JSON off a TTY, readable console on one. Pseudonymous ids only.

A processor drops keys that must never reach a log (names, personal numbers, SDP, frames) so a
careless call site cannot leak them, and another removes the user and password of any URL in an
event's text (``rtsp://user:password@camera/...``).

:func:`route_stdlib` sends the standard library's records (the device agent's and ``homeside``'s
modules log through :mod:`logging`, as do aiortc, aioice and aiomqtt) through the same processors
to the same stderr, so ``homecare agent`` writes one stream of events like ``homecare serve``.
"""

from __future__ import annotations

import logging
import re
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


#: ``scheme://user:password@`` (or ``scheme://user@``) in a URL: all before the authority's last
#: ``@`` goes (a password may hold an ``@`` of its own).
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/]+@")


def _redact(text: str) -> str:
    return _URL_CREDENTIALS.sub(r"\1[removed]@", text)


def _scrub_urls(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """No URL's credentials in any text of the event (a message formatted by a library)."""
    for key, value in event.items():
        if isinstance(value, str) and "@" in value:
            event[key] = _redact(value)
    return event


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    """A logger on ``sys.stderr`` as it is when the event is logged, not when logging was
    configured (a harness that swapped and closed stderr must not break later events)."""
    return structlog.PrintLogger(sys.stderr)


def _renderer(fmt: str) -> Any:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    return structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()


def configure(level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog for the process; safe to call more than once."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _scrub,
            structlog.processors.format_exc_info,
            _scrub_urls,
            _renderer(fmt),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


class _StderrHandler(logging.StreamHandler[Any]):
    """A handler on ``sys.stderr`` as it is when a record is emitted (as ``_stderr_logger``)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def route_stdlib(level: str = "info", fmt: str = "auto") -> None:
    """Render the standard library's log records as events: at ``level`` and above, in the
    format :func:`configure` uses (JSON off a TTY), with the same scrubbing, the module that
    logged as ``logger``; replaces what an earlier call installed (safe to call again)."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _scrub,
            structlog.processors.format_exc_info,
            _scrub_urls,
            _renderer(fmt),
        ],
    )
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.getLevelNamesMapping()[level.upper()])
