"""``/metrics`` without a database: what prometheus_client writes (escaped labels, the 0.0.4 text
format), who may read it, the latency callbacks, and the table snapshot's read rate.

The runtime's parts are a small fake of :class:`services.web.metrics.RuntimeParts` over a real
:class:`services.supervisor.Supervisor` and :class:`services.events.EventBus`; the table source
is an in-memory :class:`services.web.metrics_tables.TableSource` that counts its reads."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from prometheus_client.parser import text_string_to_metric_families

from devices import envelope as env
from devices import topics
from services.events import EventBus
from services.supervisor import Supervisor
from services.web import metrics as ops_metrics
from services.web.metrics_tables import TableFacts, TableSnapshot

NOW = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
AWKWARD = 'say "hi"\\ then\nleave'  # a quote, a backslash and a newline


@dataclass
class Link:
    messages_in: int = 0


@dataclass
class Registry:
    rejected: Counter[str] = field(default_factory=Counter)
    stored: Counter[str] = field(default_factory=Counter)


@dataclass
class Sig:
    counters: Counter[str] = field(default_factory=Counter)


@dataclass
class Parts:
    supervisor: Supervisor
    bus: EventBus = field(default_factory=EventBus)
    mqtt: Link | None = None
    devices: Registry | None = None
    signalling: Sig | None = None


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as prometheus_client's own parser reads it back."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_label_values_are_escaped_and_read_back_whole() -> None:
    async with Supervisor() as sup:
        failed = asyncio.Event()

        async def broken() -> None:
            failed.set()
            raise ValueError("a bug")

        await asyncio.wait({sup.spawn(AWKWARD, broken())})
        assert failed.is_set()
        parts = Parts(
            sup,
            mqtt=Link(7),
            devices=Registry(Counter({AWKWARD: 2}), Counter({AWKWARD: 3})),
            signalling=Sig(),
        )
        m = ops_metrics.Metrics()
        m.watch(parts, None)
        text = (await m.exposition()).decode()
    # one line per sample: the newline inside the value is written as \n, the quote as \",
    # the backslash as \\
    assert 'homecare_task_failed{task="say \\"hi\\"\\\\ then\\nleave"} 1.0' in text
    assert all(not line.startswith("leave") for line in text.splitlines())
    got = samples(text)
    assert got[("homecare_task_crashes_total", (("task", AWKWARD),))] == 1
    assert got[("homecare_mqtt_rejected_total", (("reason", AWKWARD),))] == 2
    assert got[("homecare_device_messages_stored_total", (("channel", AWKWARD),))] == 3
    assert got[("homecare_mqtt_messages_total", ())] == 7


async def test_live_counters_keep_their_names_and_label_words() -> None:
    async with Supervisor() as sup:
        listening = asyncio.Event()

        async def listen() -> None:
            listening.set()
            await asyncio.Event().wait()

        sup.spawn("consent-listen", listen())
        await listening.wait()
        bus = EventBus()
        parts = Parts(sup, bus, signalling=Sig(Counter({"routed_out": 3})))
        m = ops_metrics.Metrics()
        m.watch(parts, None)
        with bus.subscribe("rounds-presence"), bus.subscribe(), bus.subscribe():
            bus.publish("an event")
            got = samples((await m.exposition()).decode())
    assert got[("homecare_signalling_total", (("event", "routed_out"),))] == 3
    assert got[("homecare_task_failed", (("task", "consent_listen"),))] == 0
    assert got[("homecare_task_crashes_total", (("task", "consent_listen"),))] == 0
    assert got[("homecare_events_pending", (("subscriber", "rounds_presence"),))] == 1
    assert got[("homecare_events_pending", (("subscriber", "console"),))] == 2  # summed
    assert got[("homecare_events_dropped_total", (("subscriber", "console"),))] == 0
    # a process without a link, registry or signalling says nothing of them
    assert not any(name.startswith("homecare_mqtt") for name, _ in got)


async def test_the_latency_callbacks_fill_their_histograms() -> None:
    m = ops_metrics.Metrics()
    m.granted(env.Purpose.VIEW, 0.04)
    m.first_frame(env.Purpose.VIEW, 0.65)
    m.first_frame(env.Purpose.VIEW, 0.75)
    m.planned("night", 1.2)
    m.device_message_handled(topics.Channel.STATUS, 0.003)
    m.device_message_handled(topics.Channel.WEBRTC_OUT, 0.003)  # signalling's, not the registry's
    text = (await m.exposition()).decode()
    got = samples(text)
    view = (("purpose", "view"),)
    assert got[("homecare_signal_grant_seconds_count", view)] == 1
    # the first-frame buckets step at the 700 ms target
    assert got[("homecare_view_first_frame_seconds_bucket", (("le", "0.7"), *view))] == 1
    assert got[("homecare_view_first_frame_seconds_bucket", (("le", "0.8"), *view))] == 2
    assert got[("homecare_round_planning_seconds_sum", (("kind", "night"),))] == 1.2
    assert got[("homecare_registry_lag_seconds_count", (("channel", "status"),))] == 1
    assert ("homecare_registry_lag_seconds_count", (("channel", "webrtc_out"),)) not in got
    assert "# TYPE homecare_view_first_frame_seconds histogram" in text


async def test_two_runtimes_in_one_process_do_not_share_a_registry() -> None:
    a, b = ops_metrics.Metrics(), ops_metrics.Metrics()
    a.granted(env.Purpose.VIEW, 0.1)
    got_b = samples((await b.exposition()).decode())
    assert not any(name == "homecare_signal_grant_seconds_count" for name, _ in got_b)


class Peer:
    """The bit of an asyncio transport aiohttp reads the client's address from."""

    def __init__(self, host: str) -> None:
        self.host = host

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self.host, 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


def _request(
    m: ops_metrics.Metrics, host: str, headers: dict[str, str] | None = None
) -> web.Request:
    app = web.Application()
    app[ops_metrics.METRICS] = m
    return make_mocked_request("GET", "/metrics", headers=headers, app=app, transport=Peer(host))


@pytest.mark.parametrize(
    ("host", "headers", "allowed"),
    [
        ("127.0.0.1", {}, True),
        ("192.0.2.7", {}, False),
        ("127.0.0.1", {"X-Forwarded-For": "192.0.2.7"}, False),
        ("192.0.2.7", {"Authorization": "Bearer wrong"}, False),
        ("192.0.2.7", {"Authorization": "Bearer s3cret-metrics-token"}, True),
    ],
)
async def test_the_scrape_answers_loopback_or_the_token_in_the_0_0_4_format(
    host: str, headers: dict[str, str], allowed: bool
) -> None:
    m = ops_metrics.Metrics(token="s3cret-metrics-token")
    request = _request(m, host, headers)
    if not allowed:
        with pytest.raises(web.HTTPForbidden):
            await ops_metrics.scrape(request)
        return
    resp = await ops_metrics.scrape(request)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert isinstance(resp.body, bytes)
    assert b"# TYPE homecare_signal_grant_seconds histogram" in resp.body


class Tables:
    """An in-memory table source that counts its reads; ``gate`` holds a read back."""

    def __init__(self) -> None:
        self.reads = 0
        self.gate: asyncio.Event | None = None
        self.error: Exception | None = None

    async def read(self, now: datetime) -> TableFacts:
        self.reads += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return TableFacts(at=now, checks={"due": self.reads}, devices={"online": 3})


async def test_two_scrapes_in_a_row_read_the_tables_once() -> None:
    source = Tables()
    m = ops_metrics.Metrics()
    m.watch(Parts(Supervisor()), TableSnapshot(source, lambda: NOW, max_age_s=60))
    first = samples((await m.exposition()).decode())
    second = samples((await m.exposition()).decode())
    assert source.reads == 1
    assert first[("homecare_checks", (("state", "due"),))] == 1
    assert second[("homecare_checks", (("state", "due"),))] == 1  # the same snapshot
    assert second[("homecare_metrics_table_reads_total", (("outcome", "ok"),))] == 1
    assert second[("homecare_metrics_table_age_seconds", ())] >= 0
    assert second[("homecare_devices", (("presence", "online"),))] == 3


async def test_a_stale_snapshot_is_read_again() -> None:
    source = Tables()
    snapshot = TableSnapshot(source, lambda: NOW, max_age_s=0)
    await snapshot.refresh()
    await snapshot.refresh()
    assert source.reads == 2
    assert snapshot.facts is not None
    assert snapshot.facts.checks == {"due": 2}


async def test_a_slow_read_is_shared_and_the_scrape_does_not_wait_for_it() -> None:
    source = Tables()
    snapshot = TableSnapshot(source, lambda: NOW, max_age_s=0, wait_s=0.05)
    await snapshot.refresh()  # a first snapshot
    source.gate = asyncio.Event()
    await snapshot.refresh()  # the read hangs: this scrape gets the old snapshot
    await snapshot.refresh()  # and so does the next, without starting another read
    assert source.reads == 2
    assert snapshot.facts is not None
    assert snapshot.facts.checks == {"due": 1}
    source.gate.set()
    await snapshot.refresh()  # the hung read finishes; max_age_s=0 starts the next at once
    assert snapshot.facts.checks["due"] >= 2
    await snapshot.close()
    await snapshot.close()  # twice is fine


async def test_a_failed_read_keeps_the_last_snapshot_and_is_counted() -> None:
    source = Tables()
    snapshot = TableSnapshot(source, lambda: NOW, max_age_s=0)
    await snapshot.refresh()
    source.error = OSError("connection refused")
    await snapshot.refresh()
    assert snapshot.facts is not None
    assert snapshot.facts.checks == {"due": 1}
    assert snapshot.reads == {"ok": 1, "failed": 1}


def test_snapshot_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="max_age_s"):
        TableSnapshot(Tables(), lambda: NOW, max_age_s=-1)
    with pytest.raises(ValueError, match="wait_s"):
        TableSnapshot(Tables(), lambda: NOW, wait_s=0)
