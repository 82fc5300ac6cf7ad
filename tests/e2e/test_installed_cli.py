"""``homecare`` as an installed program: a mixed install refuses, ``bench`` needs the clone.

Each case runs the real command in a child process against a real environment built in a
temporary folder: a second distribution's metadata claiming one of our package names, or our
packages copied as an install lays them out (site-packages has no ``bench/`` and no
pyproject.toml).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools import install
from tools.cli import EXIT_BAD_INSTALL
from tools.ops_cli import EXIT_NEEDS_SOURCE

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent.parent


def _homecare(args: list[str], *, cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMECARE_")}
    env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_distribution_claiming_our_name_makes_homecare_refuse(tmp_path: Path) -> None:
    other = tmp_path / "site" / "handy_tools-1.0.dist-info"
    other.mkdir(parents=True)
    (other / "METADATA").write_text("Metadata-Version: 2.1\nName: handy-tools\nVersion: 1.0\n")
    (other / "top_level.txt").write_text("tools\n")
    proc = _homecare(["migrate"], cwd=ROOT, pythonpath=tmp_path / "site")
    assert proc.returncode == EXIT_BAD_INSTALL, proc.stderr
    assert "refusing to start: the package name 'tools' is also installed by handy-tools" in (
        proc.stderr
    )
    assert "docs/operations.md" in proc.stderr
    assert proc.stdout == ""


def test_bench_from_an_installed_package_says_it_needs_the_source_tree(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    for name in install.TOP_LEVEL:
        shutil.copytree(ROOT / name, site / name, ignore=shutil.ignore_patterns("__pycache__"))
    proc = _homecare(["bench", "--quick"], cwd=tmp_path, pythonpath=site)
    assert proc.returncode == EXIT_NEEDS_SOURCE, proc.stderr
    assert "homecare bench needs the source tree" in proc.stderr
    assert str(site) in proc.stderr
    assert not (site / "bench").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site-packages"]
