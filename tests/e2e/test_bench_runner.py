"""``homecare bench --quick``: the runner end to end with tiny sizes, through the real CLI.

Behaviour only: every chosen benchmark runs in its own process against the real PostgreSQL and a
private mosquitto, the JSON has the documented shape, every figure is a real finite number and a
ratio is value / baseline; a benchmark module that does not exist is reported missing, never
filled in. No speed is asserted (performance belongs in ``bench/``).
"""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
from html import escape
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent.parent
#: Every benchmark the runner knows, in its order, so a change that breaks one fails here, not on
#: release day.
OWN = [
    "motion", "saturation", "signalling", "presence", "reconnect", "planning", "registry",
    "region", "codecs", "audit", "home_probe", "tenancy", "gate",
]  # fmt: skip
#: Benchmarks whose quick run alone is a minute or more (live probe streams, 10,000 device
#: connections, probed homes): the suite's 300 s cannot hold them, so here only their entry
#: point is checked (it exists and takes the quick arguments); ``homecare bench --quick`` runs them.
HEAVY = ["saturation", "region", "home_probe"]
#: Benchmarks that are a test of the suite at full size: the suite runs them at its own size.
SUITE_AT_FULL_SIZE = ["scale_out"]  # tests/e2e/test_scale_out.py


def _number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _runner() -> Any:
    sys.path.insert(0, str(ROOT))
    try:
        from bench import run as runner
    finally:
        sys.path.remove(str(ROOT))
    return runner


def _quick(pg_admin_url: str, out: Path, names: list[str]) -> tuple[str, dict[str, Any]]:
    """``homecare bench --quick --only ...`` through the real CLI: its output and its JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMECARE_")}
    env["HOMECARE_DATABASE_URL"] = pg_admin_url  # the server for the scratch databases
    cmd = [sys.executable, "-m", "tools.cli", "bench", "--quick", "--out", str(out)]
    for name in names:
        cmd += ["--only", name]
    # run from elsewhere: the command must find bench/ in the source tree by itself
    proc = subprocess.run(
        cmd, cwd=out, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, json.loads((out / "bench.json").read_text())


def _figures_are_real(report: dict[str, Any], names: list[str]) -> None:
    for name in names:
        entry = report["benches"][name]
        assert entry["status"] == "ok"
        assert isinstance(entry["result"], dict)
        assert entry["ignored_args"] == []
    figures = report["figures"]
    assert {f["bench"] for f in figures} == set(names)
    for f in figures:
        assert _number(f["value"]), f
        if f["baseline_value"] is not None:
            assert _number(f["baseline_value"]), f
            assert f["baseline_value"] > 0, f
            assert f["ratio"] == pytest.approx(f["value"] / f["baseline_value"], rel=1e-2)
        if f["target"] is not None:
            assert isinstance(f["target_met"], bool)
    with_baseline = [f for f in figures if f["ratio"] is not None]
    assert {f["bench"] for f in with_baseline} == set(names)


def test_every_benchmark_is_known_to_the_runner() -> None:
    assert [b.name for b in _runner().BENCHES] == OWN + SUITE_AT_FULL_SIZE


def test_the_heavy_benchmarks_take_their_quick_arguments() -> None:
    runner = _runner()
    for bench in runner.BENCHES:
        if bench.name in HEAVY:
            sys.path.insert(0, str(ROOT))
            try:
                module = importlib.import_module(f"bench.{bench.name}")
            finally:
                sys.path.remove(str(ROOT))
            _, ignored = runner.accepted(module.run, bench.quick)
            assert ignored == [], bench.name
            _, ignored = runner.accepted(module.run, bench.full)
            assert ignored == [], bench.name


def test_bench_quick_writes_json_and_chart(pg_admin_url: str, tmp_path: Path) -> None:
    """The runner end to end on two quick benchmarks: progress, JSON and chart."""
    names = ["audit", "gate"]
    stdout, report = _quick(pg_admin_url, tmp_path, names)
    for i in range(1, len(names) + 1):  # progress is shown as it goes
        assert f"[{i}/{len(names)}] " in stdout
    for name in names:
        assert f"] {name}: " in stdout
    assert report["quick"] is True
    assert set(report["benches"]) == set(names)
    assert report["summary"]["ok"] == sorted(names)
    assert _number(report["total_s"])
    _figures_are_real(report, names)
    html = (tmp_path / "bench.html").read_text()
    assert html.startswith("<!doctype html>")
    assert "<svg" in html
    assert "<script" not in html
    assert all(escape(f["name"]) in html for f in report["figures"])


@pytest.mark.parametrize("name", [n for n in OWN if n not in ("audit", "gate", *HEAVY)])
def test_each_benchmark_runs_quick_with_real_figures(
    pg_admin_url: str, tmp_path: Path, name: str
) -> None:
    """Each benchmark in its own test (each well under 30 s), so a broken one is named."""
    _, report = _quick(pg_admin_url, tmp_path, [name])
    assert report["summary"]["ok"] == [name]
    _figures_are_real(report, [name])
    if name == "registry":
        assert report["benches"]["registry"]["result"]["messages"] == 5 * 4  # the quick sizes


def test_a_missing_benchmark_is_reported_not_faked(tmp_path: Path) -> None:
    runner = _runner()
    ghost = runner.Bench("no_such_bench", "a benchmark nobody wrote", {}, {}, 5, runner._audit)
    report = runner.collect(quick=True, out_dir=tmp_path, benches_known=(ghost,))
    assert report["benches"] == {
        "no_such_bench": {"status": "missing", "what": "a benchmark nobody wrote"}
    }
    assert report["figures"] == []
    assert report["summary"]["missing"] == ["no_such_bench"]
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["summary"] == report["summary"]
