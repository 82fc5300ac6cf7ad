"""Run every benchmark, write one JSON and a chart: ``homecare bench [--quick] [--only NAME]``.

Each benchmark is a module ``bench/<name>.py`` with a ``run(...) -> dict`` (plain or async). It
runs in its own child process (``python -m bench.run --child NAME``) with a time budget, so one
that pins itself to a core, leaks a broker or hangs cannot disturb the others; progress is printed
as it goes. A module that does not exist is reported as ``missing``; one that fails or overruns
its budget as ``failed`` with the reason. Nothing is ever filled in for them.

Outputs (``bench/results/`` unless ``--out``):
- ``bench.json``: per benchmark its status, arguments, elapsed time and full result, plus a flat
  list of ``figures``, each beside its baseline (measured in the same run) as a ratio, and beside
  its DESIGN.md target where there is one;
- ``bench.html``: the same figures as a self-contained page with inline SVG bars.

Sizes: the full run is chosen to finish in under 40 minutes (about 25) on the 2-core machine
of this project (``--quick`` is a smoke run of seconds per benchmark with tiny sizes).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import inspect
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

Figures = Callable[[dict[str, Any]], list[dict[str, Any]]]
TOTAL_BUDGET_S = 2400.0
"""The whole run stays under 40 minutes (about 25 here: the saturation rounds, the 10,000-device
region and the home probe vs WebRTC probe are measured runs of minutes each): each benchmark gets
at most what is left of this."""


def figure(
    bench: str,
    name: str,
    value: float,
    unit: str,
    *,
    better: str = "lower",
    baseline: str | None = None,
    baseline_value: float | None = None,
    target: float | None = None,
) -> dict[str, Any]:
    """One figure; ``ratio`` is value / baseline (``better`` says which way is good)."""
    out: dict[str, Any] = {
        "bench": bench,
        "name": name,
        "value": float(value),
        "unit": unit,
        "better": better,
        "baseline": baseline,
        "baseline_value": None if baseline_value is None else float(baseline_value),
        "ratio": None,
        "target": None if target is None else float(target),
        "target_met": None,
    }
    if baseline_value:
        out["ratio"] = round(float(value) / float(baseline_value), 3)
    if target is not None:
        out["target_met"] = value <= target if better == "lower" else value >= target
    return out


# -- what each benchmark's result means --------------------------------------------------------


def _motion(r: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for k in r["kernel"]:
        for kind in ("quiet", "active"):
            if kind not in k:
                continue
            x, name = k[kind], f"kernel {k['size']} {kind} frames"
            out += [
                figure("motion", f"{name} vs Frigate as written", x["kernel_us"], "us",
                       baseline="Frigate's improved motion detector as Frigate writes it",
                       baseline_value=x["frigate_as_written_us"]),
                figure("motion", f"{name} vs Frigate-lite", x["kernel_us"], "us",
                       baseline="the same steps with histogram/LUT and cv2.GaussianBlur",
                       baseline_value=x["frigate_lite_us"]),
                figure("motion", f"{name} vs touched-bytes floor, cold", x["kernel_us"], "us",
                       baseline="numpy read of the rows the kernel reads, from the pool",
                       baseline_value=x["floor_cold_us"]),
                figure("motion", f"{name} vs touched-bytes floor, hot", x["kernel_hot_us"],
                       "us", baseline="numpy read of the rows the kernel reads, in cache",
                       baseline_value=x["floor_hot_us"]),
                # DESIGN's targets for the kernel, as the ratios they are stated in
                figure("motion", f"{name}: times faster than Frigate as written",
                       x["frigate_as_written_us"] / x["kernel_us"], "x", better="higher",
                       target=10),
                figure("motion", f"{name}: times faster than Frigate-lite",
                       x["frigate_lite_us"] / x["kernel_us"], "x", better="higher", target=2),
                figure("motion", f"{name}: times the touched-bytes floor, hot",
                       x["kernel_hot_us"] / x["floor_hot_us"], "x", target=5),
            ]  # fmt: skip
    out += [
        figure(
            "motion",
            f"probe streams per core, computed ({p['codec']}, 320x240 5 fps, aiortc decoder"
            " + kernel, one thread)",
            p["streams_per_core_at_5fps_computed"],
            "streams",
            better="higher",
        )
        for p in r["probes"]
    ]
    if "live" in r:
        live = r["live"]
        out.append(
            figure(
                "motion",
                f"live probe streams per core, computed from {live['streams']} streams' CPU",
                live["streams_per_core_at_5fps_computed"],
                "streams",
                better="higher",
            )
        )
    return out


def _pct(d: dict[str, Any], key: str) -> float:
    return float(d[key])


def _signalling(r: dict[str, Any]) -> list[dict[str, Any]]:
    first, direct = r["request_to_first_frame"], r["baseline_direct_peers_first_frame"]
    bye, hang = r["withdrawal_to_bye"], r["baseline_operator_hang_up_to_bye"]
    return [
        figure("signalling", "request -> first frame p50", _pct(first, "p50_ms"), "ms",
               baseline="two aiortc peers direct p50", baseline_value=_pct(direct, "p50_ms")),
        figure("signalling", "request -> first frame p95", _pct(first, "p95_ms"), "ms",
               baseline="two aiortc peers direct p95", baseline_value=_pct(direct, "p95_ms"),
               target=700),
        *_browser(r),
        figure("signalling", "withdrawal -> teardown p50", _pct(bye, "p50_ms"), "ms",
               baseline="operator hang-up -> bye p50", baseline_value=_pct(hang, "p50_ms")),
        figure("signalling", "withdrawal -> teardown p99", _pct(bye, "p99_ms"), "ms",
               baseline="operator hang-up -> bye p99", baseline_value=_pct(hang, "p99_ms"),
               target=1000),
    ]  # fmt: skip


def _browser(r: dict[str, Any]) -> list[dict[str, Any]]:
    """Click -> first frame painted in Chromium, beside the aiortc viewer's request -> frame."""
    browser, first = r.get("browser_click_to_first_frame"), r["request_to_first_frame"]
    if not browser:
        return []
    return [
        figure("signalling", "Chromium click -> first frame painted p50", _pct(browser, "p50_ms"),
               "ms", baseline="aiortc viewer request -> first frame p50",
               baseline_value=_pct(first, "p50_ms")),
        figure("signalling", "Chromium click -> first frame painted p95", _pct(browser, "p95_ms"),
               "ms", baseline="aiortc viewer request -> first frame p95",
               baseline_value=_pct(first, "p95_ms"), target=700),
    ]  # fmt: skip


def _presence(r: dict[str, Any]) -> list[dict[str, Any]]:
    out = [
        figure(
            "presence",
            f"{label} {p[:3]}",
            r[case]["registry"][p],
            "ms",
            baseline=f"broker delivery to a bare subscriber {p[:3]}",
            baseline_value=r[case]["broker_only"][p],
        )
        for case, label in (("online", "birth -> online"), ("killed", "killed -> offline"))
        for p in ("p50_ms", "p95_ms")
    ]
    out.append(
        figure(
            "presence",
            f"frozen -> offline p50 (keepalive {r['keepalive_s']} s)",
            r["frozen"]["registry"]["p50_ms"],
            "ms",
            baseline="broker's will to a bare subscriber p50",
            baseline_value=r["frozen"]["broker_only"]["p50_ms"],
            target=r["frozen_target_ms"],
        )
    )
    out.append(
        figure(
            "presence",
            f"frozen -> offline max (keepalive {r['keepalive_s']} s)",
            r["frozen"]["registry"]["max_ms"],
            "ms",
            baseline="broker's will to a bare subscriber max",
            baseline_value=r["frozen"]["broker_only"]["max_ms"],
            target=r["frozen_target_ms"],
        )
    )
    return out


def _reconnect(r: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        figure(
            "reconnect",
            f"{r['devices']} devices online again after broker restart",
            r["reconnect_after_restart_s"],
            "s",
            baseline="first connect burst of the same devices",
            baseline_value=r["first_connect_s"],
            target=r.get("target_s", 30.0),
        )
    ]


def _registry(r: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        figure("registry", "messages stored per second", r["registry_msgs_per_s"], "msg/s",
               better="higher", baseline="broker to a bare subscriber",
               baseline_value=r["broker_only_msgs_per_s"]),
        figure("registry", "messages stored per second (vs link only)",
               r["registry_msgs_per_s"], "msg/s", better="higher",
               baseline="backend MQTT link, no-op handler",
               baseline_value=r["link_only_msgs_per_s"]),
        figure("registry", "stored over a bare subscriber's rate",
               r["registry_over_broker_ratio"], "ratio", better="higher", target=0.5),
        *([figure("registry", "bare subscriber, 2 publishers' processes over 1 (saturated: ~1)",
                  r["broker_only_more_publishers_gain"], "ratio")]
          if "broker_only_more_publishers_gain" in r else []),
        *([figure("registry", "stored over a subscriber without a client library",
                  r["registry_over_raw_subscriber_ratio"], "ratio", better="higher")]
          if "registry_over_raw_subscriber_ratio" in r else []),
        figure("registry", "messages stored per second (vs one transaction per message)",
               r["registry_msgs_per_s"], "msg/s", better="higher",
               baseline="the registry before the intake: one transaction per message",
               baseline_value=r["registry_single_msgs_per_s"]),
        *([figure("registry", f"re-announce of {r['reannounce_devices']:,} devices after a"
                  " broker restart, until all online in the registry",
                  r["reannounce_s"], "s", target=30.0)] if "reannounce_s" in r else []),
    ]  # fmt: skip


def _region(r: dict[str, Any]) -> list[dict[str, Any]]:
    n, every = r["devices"], r["health_every_s"]
    lag = r["lag_visible"]
    return [
        figure("region", f"{n:,} devices, health every {every:g} s: publish -> stored p99",
               lag["p99_ms"], "ms", baseline="the same, p50", baseline_value=lag["p50_ms"]),
        figure("region", f"{n:,} devices: publish -> storing batch p99 (health_at)",
               r["lag_applied"]["p99_ms"], "ms"),
        figure("region", f"{n:,} devices connected and online in the registry",
               r["all_online_in_registry_s"], "s",
               baseline="every device connected (CONNACK)",
               baseline_value=r["all_connected_s"]),
        figure("region", "service RSS per 1,000 connected devices, 3 processes, computed",
               r["services_rss_mib_per_1000_devices_computed"], "MiB"),
        figure("region", "broker RSS per 1,000 connected devices, computed",
               r["broker_rss_mib_per_1000_devices_computed"], "MiB"),
        *([figure("region", "service cores per 1,000 devices at 60 s health, computed",
                  r["service_cores_per_1000_devices_at_60s_health_computed"], "cores")]
          if "service_cores_per_1000_devices_at_60s_health_computed" in r else []),
    ]  # fmt: skip


def _codecs(r: dict[str, Any]) -> list[dict[str, Any]]:
    mqtt = r["mqtt_msgs_per_s"]
    return [
        figure("codecs", "wire messages decoded per second (msgspec Structs)",
               r["msgspec_msgs_per_s"], "msg/s", better="higher",
               baseline="the hand-written decoders they replaced",
               baseline_value=r["handwritten_msgs_per_s"]),
        figure("codecs", "wire messages decoded per second (msgspec vs pydantic v2)",
               r["msgspec_msgs_per_s"], "msg/s", better="higher",
               baseline="the same definitions as pydantic v2 models",
               baseline_value=r["pydantic_msgs_per_s"]),
        figure("codecs", "MQTT payloads decoded per second (msgspec vs pydantic v2)",
               mqtt["msgspec"], "msg/s", better="higher",
               baseline="the same definitions as pydantic v2 models",
               baseline_value=mqtt["pydantic"]),
    ]  # fmt: skip


def _planning(r: dict[str, Any]) -> list[dict[str, Any]]:
    e = r["end_to_end"]
    n = int(e["recipients"])
    out = [
        figure("planning", f"plan() end to end, {n:,} brukare, {e['checks']:,} checks, "
               f"{e['history_nights']} nights stored before", e["plan_s"], "s",
               baseline=e["baseline"], baseline_value=e["baseline_s"], target=e.get("target_s")),
        figure("planning", f"of which bases read ({n:,} brukare)", e["bases_read_s"], "s",
               baseline="fetch the same rows, no model (owner)",
               baseline_value=e["read_floor_s"]),
        figure("planning", f"of which store ({e['checks']:,} checks)", e["store_s"], "s",
               baseline="COPY of the same checks into a plain table (owner)",
               baseline_value=e["write_floor_s"]),
    ]  # fmt: skip
    for row in r["sizes"]:
        n = int(row["recipients"])
        out.append(
            figure("planning", f"pure planner {n:,} brukare (no I/O)", row["plan_s"], "s",
                   baseline=row.get("baseline", "floor"), baseline_value=row["baseline_s"])
        )  # fmt: skip
    return out


def _audit(r: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        figure("audit", "audited append", r["audited_append_ms"], "ms",
               baseline="plain INSERT in its own transaction",
               baseline_value=r["plain_insert_ms"]),
        figure("audit", "chain verify", r["verify_entries_per_s"], "entries/s", better="higher"),
        figure("audit", f"appends at a night peak ({r['peak_writers']} writers, anchoring on)",
               r["peak_appends_per_s"], "appends/s", better="higher",
               baseline="plain INSERTs from the same writers",
               baseline_value=r["peak_plain_inserts_per_s"],
               target=r["needed_appends_per_s_computed"]),
        figure("audit", "night-peak appends with anchoring vs without", r["peak_appends_per_s"],
               "appends/s", better="higher", baseline="the same appends, no anchoring task",
               baseline_value=r["peak_appends_per_s_unanchored"]),
        figure("audit", "needed at 10,000 brukare's peak (computed from assumptions)",
               r["needed_appends_per_s_computed"], "appends/s"),
        figure("audit", f"audited writes from {r['processes']} processes, lanes",
               r["audited_writes_per_s_lanes"], "writes/s", better="higher",
               baseline="the single chain lock (bench/baselines/audit_single_lock.py)",
               baseline_value=r["audited_writes_per_s_single_lock"]),
    ]  # fmt: skip


def _home_probe(r: dict[str, Any]) -> list[dict[str, Any]]:
    home, rtc = r["home"], r["webrtc"]
    return [
        figure("home_probe", "backend CPU per probed home, home probe", home["cpu_per_probe_ms"],
               "ms", baseline="the WebRTC probe", baseline_value=rtc["cpu_per_probe_ms"]),
        figure("home_probe", "homes probed at once per backend core (computed), home probe",
               home["homes_probed_at_once_per_core_computed"], "homes", better="higher",
               baseline="the WebRTC probe",
               baseline_value=rtc["homes_probed_at_once_per_core_computed"]),
    ]  # fmt: skip


def _tenancy(r: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        figure("tenancy", "pool acquire + SELECT 1, same scope", r["acquire_scoped_us"], "us",
               baseline="the same without the scope step (owner)",
               baseline_value=r["acquire_plain_us"]),
        figure("tenancy", "pool acquire + SELECT 1, scope changes each time",
               r["acquire_scope_switching_us"], "us",
               baseline="the same without the scope step (owner)",
               baseline_value=r["acquire_plain_us"]),
        figure("tenancy", "one brukare by id under the policies", r["read_by_id_rls_us"], "us",
               baseline="the same read by the owner (no policies)",
               baseline_value=r["read_by_id_owner_us"]),
        figure("tenancy", "one team's brukare under the policies", r["team_list_rls_us"], "us",
               baseline="the same read by the owner (no policies)",
               baseline_value=r["team_list_owner_us"]),
    ]  # fmt: skip


def _gate(r: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        figure("gate", "pure rule, allowed", r["pure_decide_allowed_us"], "us",
               baseline="one datetime.astimezone", baseline_value=r["astimezone_baseline_us"]),
        figure("gate", "gate through PostgreSQL", r["gate_decide_db_us"], "us",
               baseline="SELECT 1 round trip", baseline_value=r["select1_baseline_us"]),
        figure("gate", "bulk gate per brukare (planner)",
               r["bulk_bases_plus_decide_per_recipient_us"], "us",
               baseline="gate per call", baseline_value=r["gate_decide_db_us"]),
    ]  # fmt: skip


def _scale_out(r: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        figure("scale_out", f"seed {r['homes']} brukare", r["seed_s"], "s"),
        figure("scale_out", f"night of {r['homes']} checks at {r['speed']:g}x", r["night_s"], "s"),
        figure("scale_out", "checks done per second", r["checks_per_s"], "checks/s",
               better="higher"),
    ]  # fmt: skip


def _saturation(r: dict[str, Any]) -> list[dict[str, Any]]:
    camera = next(r[v] for v in r["variants"] if not v.startswith("asked"))
    out = []
    for name in (v for v in r["variants"] if v.startswith("asked")):
        v = r[name]
        out += [
            figure("saturation", f"backend CPU per live probe stream, {name}",
                   v["cpu_per_stream_ms_per_s"], "ms CPU/s",
                   baseline="the camera's own stream, not asked (640x480 15 fps)",
                   baseline_value=camera["cpu_per_stream_ms_per_s"] or None),
            figure("saturation", f"largest N that keeps up, {name}", v["largest_n_keeping_up"],
                   "streams", better="higher"),
            figure("saturation", f"live probe streams per core measured, {name}",
                   v["streams_per_core_measured"], "streams", better="higher",
                   target=150 if name == "asked 320x240@5" else None),
        ]  # fmt: skip
    return out


def generic(bench: str, r: dict[str, Any]) -> list[dict[str, Any]]:
    """Top-level numbers of a result this runner has no reading for (no baseline pairing)."""
    return [
        figure(bench, k, v, "")
        for k, v in r.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]


@dataclass(frozen=True)
class Bench:
    name: str
    what: str
    full: dict[str, Any]
    quick: dict[str, Any]
    budget_s: float
    figures: Figures
    quick_budget_s: float = 120.0
    extra: dict[str, Any] = field(default_factory=dict)


BENCHES: tuple[Bench, ...] = (
    Bench("motion", "motion kernel vs Frigate (as written, lite) vs the touched-bytes floor",
          {"quick": False, "streams": 20, "live": 20}, {"quick": True, "streams": 2, "live": 1},
          150, _motion),
    Bench("saturation", "N live probe streams into one backend process: who keeps up, CPU",
          {}, {"quick": True}, 240, _saturation, quick_budget_s=60),
    Bench("signalling", "request -> first frame; withdrawal -> teardown",
          {"sessions": 40, "withdrawals": 40, "homes": 4, "browser_sessions": 20},
          {"sessions": 2, "withdrawals": 2, "homes": 2}, 150, _signalling),
    Bench("presence", "device presence latency (birth, killed, frozen)",
          {"devices": 300, "frozen": 20, "keepalive_s": 2},
          {"devices": 3, "frozen": 1, "keepalive_s": 2}, 60, _presence),
    Bench("reconnect", "reconnect storm after a broker restart",
          {"devices": 1000}, {"devices": 10}, 180, _reconnect),
    Bench("planning", "plan() end to end for 10,000 brukare; the pure planner at 1k and 10k",
          {}, {"quick": True}, 200, _planning),
    Bench("registry", "registry throughput through the real broker",
          {"devices": 300, "messages": 100},
          {"devices": 5, "messages": 4, "single_messages": 2, "reannounce_n": 200},
          240, _registry),
    Bench("region", "10,000 devices, each its own connection, into three service processes",
          {"devices": 10_000, "health_s": 6.0, "steady_s": 60.0}, {"quick": True},
          240, _region, quick_budget_s=90),
    Bench("codecs", "wire codecs: msgspec Structs vs pydantic v2 vs the hand-written decoders",
          {}, {"quick": True}, 60, _codecs, quick_budget_s=30),
    Bench("audit", "audit append and verify; a night peak with anchoring; 3 processes: lanes",
          {"entries": 1000, "writers": 4, "seconds": 4.0, "peak_writers": 8},
          {"entries": 40, "writers": 2, "seconds": 0.5, "peak_writers": 2, "processes": 2,
           "process_seconds": 0.5, "process_conns": 1, "process_rounds": 1}, 120, _audit),
    Bench("home_probe", "backend CPU per probed home: the home probe vs the WebRTC probe",
          {"homes": 10, "rounds": 2, "concurrency": 5},
          {"homes": 2, "rounds": 1, "window_s": 2.0}, 180,
          _home_probe, quick_budget_s=60),
    Bench("tenancy", "what row-level security and the per-acquire scope cost",
          {"recipients": 5000, "reads": 2000}, {"recipients": 50, "reads": 50}, 60, _tenancy),
    Bench("gate", "consent gate per call and in bulk",
          {}, {"recipients": 10, "calls": 100}, 60, _gate),
    Bench("scale_out", "three processes share a sped-up night of 500 homes, each check once",
          {"homes": 500}, {"homes": 12}, 240, _scale_out, quick_budget_s=180),
)  # fmt: skip


# -- the child: one benchmark in its own process -------------------------------------------------


def accepted(fn: Callable[..., Any], kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The keyword arguments ``fn`` takes, and the names it does not (reported, not passed)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(kwargs), []
    ok = {k: v for k, v in kwargs.items() if k in params}
    return ok, sorted(set(kwargs) - set(ok))


def child(name: str, kwargs: dict[str, Any], out: Path) -> int:
    from services import logs

    logs.configure("warning", "console")
    module = importlib.import_module(f"bench.{name}")
    fn = module.run
    args, ignored = accepted(fn, kwargs)
    result = fn(**args)
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    if not isinstance(result, dict):
        raise TypeError(f"bench.{name}.run returned {type(result).__name__}, not a dict")
    out.write_text(
        json.dumps({"args": args, "ignored_args": ignored, "result": result}, default=str)
    )
    return 0


async def _await(result: Any) -> Any:
    return await result


# -- the parent -----------------------------------------------------------------------------------


def available(name: str) -> bool:
    return importlib.util.find_spec(f"bench.{name}") is not None


def _run_child(bench: Bench, kwargs: dict[str, Any], budget_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hc-bench-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "bench.run", "--child", bench.name,
               "--kwargs", json.dumps(kwargs), "--child-out", str(out)]  # fmt: skip
        start = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        tail: list[str] = []

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                tail.append(line.rstrip())
                del tail[:-20]
                print(f"    {bench.name} | {line.rstrip()}", flush=True)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            rc = proc.wait(timeout=budget_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            reader.join(5)
            return {
                "status": "failed",
                "error": f"over its budget of {budget_s:.0f} s",
                "elapsed_s": round(time.monotonic() - start, 1),
                "output_tail": tail,
            }
        reader.join(5)
        elapsed = round(time.monotonic() - start, 1)
        if rc != 0 or not out.exists():
            return {"status": "failed", "error": f"exit status {rc}", "elapsed_s": elapsed,
                    "output_tail": tail}  # fmt: skip
        data = json.loads(out.read_text())
        return {"status": "ok", "elapsed_s": elapsed, **data}


def _kill_group(proc: subprocess.Popen[str]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def collect(
    *,
    quick: bool = False,
    only: list[str] | None = None,
    out_dir: Path = RESULTS,
    benches_known: tuple[Bench, ...] = BENCHES,
) -> dict[str, Any]:
    """Run the benchmarks (all, or ``only``), write ``bench.json`` and ``bench.html``."""
    from bench import chart

    chosen = [b for b in benches_known if not only or b.name in only]
    unknown = sorted(set(only or ()) - {b.name for b in benches_known})
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}")
    started = time.monotonic()
    benches: dict[str, Any] = {}
    figures: list[dict[str, Any]] = []
    for i, bench in enumerate(chosen, 1):
        kwargs = bench.quick if quick else bench.full
        left = TOTAL_BUDGET_S - (time.monotonic() - started)
        budget = min(bench.quick_budget_s if quick else bench.budget_s, left)
        head = f"[{i}/{len(chosen)}] {bench.name}: {bench.what}"
        if not available(bench.name):
            print(f"{head}: MISSING (no bench/{bench.name}.py)", flush=True)
            benches[bench.name] = {"status": "missing", "what": bench.what}
            continue
        if budget < 5:
            print(f"{head}: FAILED (the run's {TOTAL_BUDGET_S:.0f} s are used up)", flush=True)
            benches[bench.name] = {"status": "failed", "what": bench.what,
                                   "error": "no time left in the run's budget"}  # fmt: skip
            continue
        print(f"{head} (budget {budget:.0f} s) ...", flush=True)
        entry = _run_child(bench, kwargs, budget)
        entry["what"] = bench.what
        if entry["status"] == "ok":
            try:
                found = bench.figures(entry["result"])
            except (KeyError, TypeError, ValueError) as e:
                entry["figures_note"] = f"result shape not recognised ({e!r}); top-level numbers"
                found = generic(bench.name, entry["result"])
            figures += found
            print(f"{head}: ok in {entry['elapsed_s']} s", flush=True)
            for f in found:
                print("    " + describe(f), flush=True)
        else:
            print(f"{head}: FAILED ({entry['error']})", flush=True)
        benches[bench.name] = entry
    report = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "total_s": round(time.monotonic() - started, 1),
        "benches": benches,
        "figures": figures,
        "summary": {
            status: sorted(n for n, b in benches.items() if b["status"] == status)
            for status in ("ok", "failed", "missing")
        },
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (out_dir / "bench.html").write_text(chart.render(report))
    return report


def describe(f: dict[str, Any]) -> str:
    text = f"{f['name']}: {f['value']:g} {f['unit']}".rstrip()
    if f["ratio"] is not None:
        text += f"  ({f['ratio']:g} x {f['baseline']}: {f['baseline_value']:g})"
    if f["target"] is not None:
        text += f"  target {'<=' if f['better'] == 'lower' else '>='} {f['target']:g}"
        text += " met" if f["target_met"] else " NOT met"
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="homecare bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    p.add_argument("--only", action="append", help="run only this benchmark (repeatable)")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for bench.json/bench.html")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--kwargs", default="{}", help=argparse.SUPPRESS)
    p.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args.child, json.loads(args.kwargs), args.child_out)
    return command(quick=args.quick, only=args.only, out_dir=args.out)


def command(*, quick: bool, only: list[str] | None, out_dir: Path) -> int:
    """What ``homecare bench`` runs; exit 1 if any benchmark failed (missing ones do not fail)."""
    report = collect(quick=quick, only=only, out_dir=out_dir)
    s = report["summary"]
    print(
        f"\n{len(s['ok'])} ok, {len(s['failed'])} failed, {len(s['missing'])} missing"
        f" in {report['total_s']} s; wrote {out_dir / 'bench.json'} and {out_dir / 'bench.html'}",
        flush=True,
    )
    if s["missing"]:
        print(f"missing: {', '.join(s['missing'])}", flush=True)
    return 1 if s["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
