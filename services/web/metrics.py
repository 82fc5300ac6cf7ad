"""``/metrics``: the process's Prometheus metrics, produced by prometheus_client, and who may read
them. Every metric is listed in ``docs/metrics.md``.

:class:`Metrics` is built once per runtime by the composition root (``services/app.py``) and
owns its own ``CollectorRegistry`` (never the library's global one, so several runtimes in one
process, as in the tests, do not clash). It holds:

- the latency histograms, observed through plain callbacks the adapters are given (the pure cores
  never see them): request -> granted and click -> first frame (signalling), round planning (the
  watchdog), registry lag (the MQTT link, for the registry's channels);
- :class:`LiveState`, a collector of what the process holds in memory (MQTT messages and
  refusals, signalling counters, supervised tasks, the event bus), read at each scrape;
- :class:`services.web.metrics_tables.TableSnapshot`, the aggregates of the shared tables, read
  at most every ``max_age_s`` seconds whatever the scrape rate.

The answer is the text format 0.0.4 (``text/plain; version=0.0.4; charset=utf-8``): label
values are escaped by the library, so no value can break a line.

Who may scrape: a client on loopback (a sidecar or node exporter) without proxy headers, or anyone
sending ``Authorization: Bearer <HOMECARE_METRICS_TOKEN>``. Everyone else gets 403: the counters
say how many homes, devices and sessions there are, and when staff are busy.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterator, Mapping
from typing import Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from devices import topics
from devices.handler import REGISTRY_CHANNELS
from services.events import EventBus
from services.supervisor import Supervisor
from services.web.metrics_tables import TableSnapshot

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""``text/plain; version=0.0.4; charset=utf-8`` (prometheus_client's ``CONTENT_TYPE_LATEST``
names the 1.0.0 text format since 0.22; Prometheus reads both)."""
_PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")

#: Request -> granted: a gate decision, a view-budget read and a row insert (loopback: ms).
GRANT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.35, 0.5, 0.7, 1.0, 2.0, 5.0)
#: Click -> first frame: the target is p95 < 700 ms (DESIGN.md), so fine steps around it.
FIRST_FRAME_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
#: Planning: the target is tonight for 10,000 brukare in < 2 s; a re-plan is one brukare.
PLANNING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
#: Registry lag: a message is applied in ms; a reconnect storm queues them for seconds (the
#: target: 10,000 devices re-announced within 30 s).
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def may_scrape(remote: str | None, headers: Mapping[str, str], token: str) -> bool:
    """Whether a client at ``remote`` sending ``headers`` may read ``/metrics`` (see above). A
    request relayed by a proxy on loopback is not a loopback client."""
    if token:
        sent = headers.get("Authorization", "")
        if hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return True
    if remote is None or any(h in headers for h in _PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:
        return False  # a Unix socket or something else we cannot place


def require_scraper(request: web.Request, token: str) -> None:
    """Raise 403 unless the request :func:`may_scrape`."""
    if not may_scrape(request.remote, request.headers, token):
        raise web.HTTPForbidden(reason="metrics are for loopback or the metrics token")


# --------------------------------------------------------------------------- what is in memory


class HasMessages(Protocol):
    """The MQTT link (``services.mqtt.MqttLink``)."""

    @property
    def messages_in(self) -> int: ...


class HasRejected(Protocol):
    """The device registry's adapter (``devices.handler.DeviceHandler``)."""

    @property
    def rejected(self) -> Mapping[str, int]: ...

    @property
    def stored(self) -> Mapping[str, int]: ...


class HasCounters(Protocol):
    """Signalling (``services.signalling.service.Signalling``)."""

    @property
    def counters(self) -> Mapping[str, int]: ...


class RuntimeParts(Protocol):
    """What :class:`LiveState` reads of the runtime (``services.app.Runtime``)."""

    @property
    def mqtt(self) -> HasMessages | None: ...

    @property
    def devices(self) -> HasRejected | None: ...

    @property
    def signalling(self) -> HasCounters | None: ...

    @property
    def supervisor(self) -> Supervisor: ...

    @property
    def bus(self) -> EventBus: ...


def _label(name: str) -> str:
    """Task and subscriber names as label values stay plain words: consent-listen ->
    consent_listen (what dashboards already select on)."""
    return name.replace("-", "_")


class LiveState(Collector):
    """The in-memory counters of one runtime, read at each scrape (no I/O)."""

    def __init__(self, parts: RuntimeParts) -> None:
        self._parts = parts

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        rt = self._parts
        if rt.mqtt is not None:
            yield CounterMetricFamily(
                "homecare_mqtt_messages",
                "MQTT messages received by this process",
                value=rt.mqtt.messages_in,
            )
        if rt.devices is not None:
            yield _counter(
                "homecare_mqtt_rejected",
                "Device messages refused (nothing changed), by reason",
                "reason",
                rt.devices.rejected,
            )
            yield _counter(
                "homecare_device_messages_stored",
                "Device messages this process stored (or applied), by channel: with the shared"
                " intake each message is stored by one process, so the sum over processes is"
                " the messages the devices sent",
                "channel",
                rt.devices.stored,
            )
        if rt.signalling is not None:
            yield _counter(
                "homecare_signalling",
                "Signalling events of this process: routed_out/in, client_rejected_<code>,"
                " task_failed, ...",
                "event",
                rt.signalling.counters,
            )
        sup = rt.supervisor
        names = sorted({*sup.crashes, *(t.get_name() for t in sup.tasks)})
        yield _counter(
            "homecare_task_crashes",
            "Crashes (or early ends) of each supervised background task",
            "task",
            {_label(n): sup.crashes[n] for n in names},
        )
        yield _gauge(
            "homecare_task_failed",
            "1 while a supervised task has failed (the process is then unready)",
            "task",
            {_label(n): int(n in sup.failed) for n in names},
        )
        pending: dict[str, int] = {}  # summed per name (the consoles are many, unnamed)
        dropped: dict[str, int] = {}
        for sub in rt.bus.subscriptions:
            name = _label(sub.name or "console")
            pending[name] = pending.get(name, 0) + sub.pending
            dropped[name] = dropped.get(name, 0) + sub.dropped
        yield _gauge(
            "homecare_events_pending",
            "Events published on the in-process bus and not yet taken, by subscriber",
            "subscriber",
            pending,
        )
        yield _counter(
            "homecare_events_dropped",
            "Events a display subscriber lost by falling behind, by subscriber",
            "subscriber",
            dropped,
        )


def _counter(name: str, doc: str, label: str, values: Mapping[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def _gauge(name: str, doc: str, label: str, values: Mapping[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


# --------------------------------------------------------------------------- the runtime's metrics


class Metrics:
    """The metrics of one runtime: its registry, the latency histograms and their callbacks.

    The adapters get the bound methods (:meth:`granted`, :meth:`first_frame`, :meth:`planned`,
    :meth:`device_message_handled`); :meth:`watch` adds the collectors once the runtime's parts
    exist. ``token``: ``HOMECARE_METRICS_TOKEN`` (empty: loopback only)."""

    def __init__(self, *, token: str = "") -> None:
        self.token = token
        self.registry = CollectorRegistry()
        self.grant_seconds = Histogram(
            "homecare_signal_grant_seconds",
            "From a client's request message arriving to its granted being sent, by purpose",
            ["purpose"],
            buckets=GRANT_BUCKETS,
            registry=self.registry,
        )
        self.first_frame_seconds = Histogram(
            "homecare_view_first_frame_seconds",
            "From a client's request arriving to its first video report with frames > 0"
            " (click -> first frame as the backend sees it), by purpose",
            ["purpose"],
            buckets=FIRST_FRAME_BUCKETS,
            registry=self.registry,
        )
        self.planning_seconds = Histogram(
            "homecare_round_planning_seconds",
            "Planning checks from care plans: a whole night (kind=night, read, plan, store) or"
            " one change's re-plan (kind=replan)",
            ["kind"],
            buckets=PLANNING_BUCKETS,
            registry=self.registry,
        )
        self.registry_lag_seconds = Histogram(
            "homecare_registry_lag_seconds",
            "From a device message arriving from the broker to the registry having applied it"
            " (queueing included), by channel",
            ["channel"],
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.tables: TableSnapshot | None = None
        self._lag: dict[topics.Channel, Histogram] = {}  # registry_lag_seconds by channel

    # The callbacks the adapters are given (seconds; loop or monotonic time, never the runtime
    # clock, which a test or the simulated night may run fast).

    def granted(self, purpose: str, seconds: float) -> None:
        self.grant_seconds.labels(purpose).observe(seconds)

    def first_frame(self, purpose: str, seconds: float) -> None:
        self.first_frame_seconds.labels(purpose).observe(seconds)

    def planned(self, kind: str, seconds: float) -> None:
        self.planning_seconds.labels(kind).observe(seconds)

    def device_message_handled(self, channel: topics.Channel, seconds: float) -> None:
        """The link's hook: only the registry's channels are the registry's lag."""
        lag = self._lag.get(channel)
        if lag is None:
            if channel not in REGISTRY_CHANNELS:
                return
            lag = self._lag[channel] = self.registry_lag_seconds.labels(channel.value)
        lag.observe(seconds)  # once per stored message: the label looked up once per channel

    def watch(self, parts: RuntimeParts, tables: TableSnapshot | None) -> None:
        """Add the runtime's live state and (where given) its table snapshot to the registry."""
        self.registry.register(LiveState(parts))
        if tables is not None:
            self.registry.register(tables)
            self.tables = tables

    async def close(self) -> None:
        if self.tables is not None:
            await self.tables.close()

    async def exposition(self) -> bytes:
        """The registry in the text format 0.0.4, the table snapshot refreshed if it is due."""
        if self.tables is not None:
            await self.tables.refresh()
        return generate_latest(self.registry)


METRICS = web.AppKey("metrics", Metrics)


async def scrape(request: web.Request) -> web.Response:
    """``GET /metrics`` (403 unless :func:`may_scrape`)."""
    metrics = request.app[METRICS]
    require_scraper(request, metrics.token)
    return web.Response(
        body=await metrics.exposition(),
        headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"},
    )
