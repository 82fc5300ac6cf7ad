"""The clock port: what time it is, tz-aware; injected everywhere so a night can run faster."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

Clock = Callable[[], datetime]
"""Returns the current instant, tz-aware (UTC in the service)."""
