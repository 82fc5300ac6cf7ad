"""The in-process event bus: a display feed may lose its oldest events, a hard-rule consumer
(the watchdog's presence feed, the rule-8 "covered" counter) never does."""

from __future__ import annotations

import asyncio

from services.events import DISPLAY_QUEUE, EventBus, Overflow


def test_a_display_subscriber_loses_its_oldest_events_and_counts_them() -> None:
    bus = EventBus()
    with bus.subscribe("console") as display:
        for i in range(DISPLAY_QUEUE + 5):
            bus.publish(i)
        assert display.dropped == 5
        assert display.pending == DISPLAY_QUEUE
        assert display.queue.get_nowait() == 5  # the oldest five are gone


async def test_a_slow_hard_rule_subscriber_still_sees_every_event() -> None:
    bus = EventBus()
    total = 3 * DISPLAY_QUEUE
    seen: list[object] = []
    peak = 0  # the most events the subscriber was ever behind
    started = asyncio.Event()

    async def slow_consumer() -> None:
        nonlocal peak
        with bus.subscribe("rule-8", overflow=Overflow.KEEP_ALL) as events:
            started.set()
            async for event in events:
                peak = max(peak, events.pending + 1)
                seen.append(event)
                for _ in range(3):  # slower than the publisher: it yields once per event
                    await asyncio.sleep(0)
                if len(seen) == total:
                    return

    with bus.subscribe("console") as display:
        consumer = asyncio.create_task(slow_consumer())
        await started.wait()
        for i in range(total):
            bus.publish(i)
            if i % 10 == 0:
                await asyncio.sleep(0)  # the consumer runs now and then, and falls behind
        async with asyncio.timeout(10):
            await consumer
        assert display.dropped > 0  # the display feed fell behind and lost events
    assert peak > DISPLAY_QUEUE  # so far behind that a bounded queue would have dropped some
    assert seen == list(range(total))  # in order, none lost


def test_subscriptions_are_listed_with_their_policy_and_removed_after_the_block() -> None:
    bus = EventBus()
    with bus.subscribe("a", overflow=Overflow.KEEP_ALL), bus.subscribe("b"):
        assert {(s.name, s.overflow) for s in bus.subscriptions} == {
            ("a", Overflow.KEEP_ALL),
            ("b", Overflow.DROP_OLDEST),
        }
    assert bus.subscriptions == ()
