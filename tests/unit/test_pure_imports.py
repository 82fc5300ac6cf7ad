"""Pure cores do no I/O: importing one alone pulls in no network or database library.

The import-linter contract "Pure cores do no I/O" forbids the imports statically; this checks the
running interpreter too (a lazy or indirect import the linter cannot see would show here): each
module of that contract is imported by itself in a fresh ``python -c`` and ``sys.modules`` must
hold none of aiohttp, asyncpg, aiomqtt or aiortc afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
IO_LIBRARIES = ("aiohttp", "asyncpg", "aiomqtt", "aiortc")
CONTRACT = "Pure cores do no I/O"


def pure_modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    found = [c for c in contracts if c["name"] == CONTRACT]
    assert found, f"the import-linter contract {CONTRACT!r} is gone"
    return list(found[0]["source_modules"])


PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
io = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[2])))
print(json.dumps(io))
"""


def test_the_contract_names_the_known_pure_cores() -> None:
    modules = pure_modules()
    for core in ("supervision.checks", "consent.rules", "vision.motion", "kernel.audit.chain"):
        assert core in modules


@pytest.mark.parametrize("module", pure_modules())
def test_importing_a_pure_core_pulls_in_no_io_library(module: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, module, json.dumps(IO_LIBRARIES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == [], f"{module} pulls in {proc.stdout.strip()}"
