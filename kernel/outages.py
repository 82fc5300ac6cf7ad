"""The errors that mean a dependency is down: an outage to retry or answer 503, not a bug."""

from __future__ import annotations

import asyncpg

UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)
