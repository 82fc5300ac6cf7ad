"""Whose rows a database call may see: the caller's organisations (pure; a context variable).

PostgreSQL enforces it (row-level security, ``services/migrations/0014_organisations.sql``): the
pool gives every connection it hands out the scope current in the task that asks
(``services/db.py``). The HTTP and signalling layers enter a staff member's scope for the whole
request or socket (:func:`scoped`); work that belongs to no caller (the round planner, the MQTT
link, the deadline watch) runs in :data:`SYSTEM`, which sees every organisation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

DEFAULT_ORGANISATION = "default"
DEFAULT_TEAM = "default"
"""The organisation and team of an installation that never names one (every brukare and staff
member belongs to them until an administrator creates others)."""


@dataclass(frozen=True, slots=True)
class Scope:
    """``orgs=None`` is every organisation (the system); an empty set sees nothing."""

    orgs: frozenset[str] | None

    @property
    def setting(self) -> str:
        """The value of ``homecare.orgs`` the policies read."""
        if self.orgs is None:
            return "*"
        return ",".join(sorted(self.orgs))


SYSTEM = Scope(orgs=None)

_current: ContextVar[Scope] = ContextVar("homecare_scope", default=SYSTEM)


def current() -> Scope:
    return _current.get()


@contextmanager
def scoped(scope: Scope) -> Iterator[Scope]:
    """Run the block (and the tasks it starts) in ``scope``."""
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)
