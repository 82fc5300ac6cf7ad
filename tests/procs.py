"""Child processes that tests start end with the test run, even when pytest itself is killed.

Pass ``preexec_fn=die_with_parent`` to ``subprocess.Popen`` or
``asyncio.create_subprocess_exec``: Linux then sends the child SIGTERM when the process that
started it dies (``prctl(PR_SET_PDEATHSIG)``), so a killed or timed-out run leaves no service
node, worker, broker or TURN server behind. Elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys

_PR_SET_PDEATHSIG = 1


# Resolved once in the parent: the child, between fork and exec, only makes one system call.
_LIBC = (
    ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if sys.platform.startswith("linux")
    else None
)


def die_with_parent() -> None:
    """Runs in the child between fork and exec: ask for SIGTERM when the parent dies."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
