"""In-memory fakes of the round's ports, for tests: each implements the same protocol as the
real adapter (the contract tests run both)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from supervision.checks import Look


class FakeLooks:
    """:class:`supervision.ports.Looks` over a list (``add`` what signalling would store)."""

    def __init__(self) -> None:
        self.looks: list[Look] = []

    def add(self, look: Look) -> None:
        self.looks.append(look)

    def _sorted(self, found: list[Look]) -> list[Look]:
        return sorted(found, key=lambda x: (x.started_at, x.session_id))

    async def of_check(self, check_id: str, staff_id: str) -> list[Look]:
        return self._sorted(
            [x for x in self.looks if x.check_id == check_id and x.staff_id == staff_id]
        )

    async def of_night(
        self, check_ids: Collection[str], *, since: datetime, until: datetime
    ) -> list[Look]:
        wanted = set(check_ids)
        return self._sorted(
            [
                x
                for x in self.looks
                if x.check_id in wanted or (x.check_id is None and since <= x.started_at < until)
            ]
        )
