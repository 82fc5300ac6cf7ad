"""Errors of the device slice.

DeviceError
├── PayloadError        a topic or payload breaks the wire contract (reason: a stable code)
└── UnknownDevice       no device with that id is registered
"""

from __future__ import annotations


class DeviceError(Exception):
    """Root of the device slice's errors."""


class PayloadError(DeviceError, ValueError):
    """A message breaks the wire contract. ``reason`` is a stable code used in logs and counters;
    ``field`` the path of the refused value when there is one (``video.fps``), else ``""``."""

    def __init__(self, reason: str, detail: str, field: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.field = field


class UnknownDevice(DeviceError, LookupError):
    """No device with that id is registered."""
