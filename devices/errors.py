"""Errors of the device slice.

DeviceError
├── PayloadError        a topic or payload breaks the wire contract (reason: a stable code)
└── UnknownDevice       no device with that id is registered
"""

from __future__ import annotations


class DeviceError(Exception):
    """Root of the device slice's errors."""


class PayloadError(DeviceError, ValueError):
    """A message breaks the wire contract. ``reason`` is a stable code used in logs and counters."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class UnknownDevice(DeviceError, LookupError):
    """No device with that id is registered."""
