"""The scale-out night at full size: ``tests/e2e/test_scale_out.py`` with 500 homes.

The suite runs that test with 40 homes, enough to prove that three processes with split roles
share one night and do every check exactly once. Here the same test (same assertions) runs with
``homes`` homes in a child pytest, and its figures are the benchmark's result: how long seeding
and the sped-up night took in real time, and how the claims were shared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/e2e/test_scale_out.py"
MARK = "scale-out-json: "


def run(homes: int = 500) -> dict[str, Any]:
    env = dict(os.environ, HOMECARE_BENCH_SCALE_HOMES=str(homes))
    cmd = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", TEST]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the scale-out test failed at {homes} homes:\n{proc.stdout[-4000:]}")
    line = next((x for x in proc.stdout.splitlines() if x.startswith(MARK)), None)
    if line is None:
        raise RuntimeError("the scale-out test printed no figures")
    result: dict[str, Any] = json.loads(line.removeprefix(MARK))
    result["checks_per_s"] = round(homes / result["night_s"], 1) if result["night_s"] else 0.0
    return result
