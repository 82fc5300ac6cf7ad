"""Issue 13, finding 12 (``homecare demo``), in the parts that need no running demo:

- the seeding decision reads the registry's state: a device left ``online`` by an unclean stop
  waits until it is heard again, one that re-announced while already ``online`` counts;
- two demos on one broker get their own topic prefix and so their own device client ids;
- a bad view cap is refused before the old demo plan is ended (issue 12: the home kept no plan).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consent.errors import InvalidInput
from consent.fake import FakeConsentStore
from consent.model import CareRecipient
from devices import topics
from devices.topics import DeviceKind
from homeside.device import DeviceClient, DeviceSpec
from tools import cli, demo_seed
from tools.demo_seed import deployment_prefix, devices_awaited

START = datetime(2026, 12, 6, 20, 0, tzinfo=UTC)
BEFORE, AFTER = START - timedelta(hours=3), START + timedelta(seconds=2)


@pytest.mark.parametrize(
    ("rows", "awaited"),
    [
        ([], {"cam-0001", "cam-0002"}),  # a fresh database: nobody yet
        # left online by an unclean stop, not heard since: not yet (no change event will come)
        (
            [("cam-0001", "online", BEFORE), ("cam-0002", "online", BEFORE)],
            {"cam-0001", "cam-0002"},
        ),
        # re-announced while already online (no change event): counts
        ([("cam-0001", "online", AFTER), ("cam-0002", "online", START)], set()),
        ([("cam-0001", "online", AFTER), ("cam-0002", "offline", AFTER)], {"cam-0002"}),
        ([("cam-0001", "online", None), ("cam-0002", "unknown", None)], {"cam-0001", "cam-0002"}),
        # a device of another deployment's demo in the same registry does not matter
        (
            [("cam-0001", "online", AFTER), ("cam-0002", "online", AFTER), ("x", "offline", None)],
            set(),
        ),
    ],
)
def test_the_demo_seeds_from_the_registry_state(
    rows: list[tuple[str, str, datetime | None]], awaited: set[str]
) -> None:
    assert devices_awaited(["cam-0001", "cam-0002"], rows, since=START) == awaited


def test_two_demos_on_one_broker_have_their_own_topics_and_client_ids() -> None:
    a = deployment_prefix("hc/v1", host="laptop-a", database_url="postgresql://u@h:5432/demo")
    b = deployment_prefix("hc/v1", host="laptop-b", database_url="postgresql://u@h:5432/demo")
    c = deployment_prefix("hc/v1", host="laptop-a", database_url="postgresql://u@h:5433/demo")
    assert len({a, b, c}) == 3
    assert a == deployment_prefix(  # stable across restarts of the same deployment
        "hc/v1", host="laptop-a", database_url="postgresql://u@h:5432/demo"
    )
    assert a.endswith("/hc/v1")
    assert a.startswith("demo-")
    spec = DeviceSpec("cam-0001", DeviceKind.CAMERA)  # the client id carries the prefix's hash
    devices = [DeviceClient(spec, "mqtt://127.0.0.1", prefix=p) for p in (a, b, c)]
    assert len({d.client_id for d in devices}) == 3
    assert len({topics.topic(p, "cam-0001", topics.Channel.STATUS) for p in (a, b, c)}) == 3


async def test_a_bad_view_cap_leaves_the_demo_plan_in_place() -> None:
    store = FakeConsentStore()
    rid = demo_seed.recipient_id(1)
    await store.add_recipient(
        CareRecipient(recipient_id=rid, display_name="Demo"), actor="t", at=START
    )
    assert await demo_seed._plan(store, 1, START, "Europe/Stockholm", 30)
    before = [p for p in (await store.basis(rid)).plans if p.is_active(START)]
    later = START + timedelta(minutes=1)
    with pytest.raises(InvalidInput) as refused:
        await demo_seed._plan(store, 1, later, "Europe/Stockholm", 400)
    assert refused.value.field == "view_cap_s"
    assert [p for p in (await store.basis(rid)).plans if p.is_active(later)] == before


class Registry:
    """A fake of the pool's ``fetch`` for the demo's wait: the devices' rows, changeable."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.reads = 0

    async def fetch(self, sql: str, ids: list[str]) -> list[dict[str, Any]]:
        self.reads += 1
        return [r for r in self.rows if r["device_id"] in ids]


async def test_sigterm_ends_the_wait_for_devices_that_never_come() -> None:
    """The demo once ignored SIGTERM: it waited for change events that never came."""
    stale = Registry([{"device_id": "cam-0001", "presence": "online", "last_seen": BEFORE}])
    stop = asyncio.Event()
    waiting = asyncio.create_task(
        cli._devices_online(stale, ["cam-0001"], START, stop)  # type: ignore[arg-type]
    )
    while stale.reads < 2:  # it is polling the registry
        await asyncio.sleep(0.01)
    stop.set()
    assert await asyncio.wait_for(waiting, 1.0) == {"cam-0001"}


async def test_the_wait_ends_when_the_registry_shows_the_devices_heard_again() -> None:
    registry = Registry([{"device_id": "cam-0001", "presence": "online", "last_seen": BEFORE}])
    waiting = asyncio.create_task(
        cli._devices_online(registry, ["cam-0001"], START, asyncio.Event())  # type: ignore[arg-type]
    )
    while registry.reads < 1:
        await asyncio.sleep(0.01)
    registry.rows[0]["last_seen"] = AFTER  # re-announced: no change event, still online
    assert await asyncio.wait_for(waiting, 2.0) == frozenset()
