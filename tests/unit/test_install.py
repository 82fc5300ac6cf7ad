"""The install check: our generic top-level names, claimed by another distribution, refuse."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tools import install

ROOT = Path(__file__).resolve().parent.parent.parent


def test_top_level_names_are_what_pyproject_installs() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    assert sorted(name.rstrip("*") for name in include) == sorted(install.TOP_LEVEL)


def test_another_distribution_claiming_one_of_our_names_is_named() -> None:
    claims = {
        "tools": ["homecare-night", "some-helpers"],
        "services": ["homecare_night"],  # our own name, spelt as a wheel's file name would
        "numpy": ["numpy"],
        "kernel": ["Homecare.Night", "zeta", "alpha", "zeta"],
    }
    found = install.foreign_claims(claims)
    assert found == {"tools": ["some-helpers"], "kernel": ["alpha", "zeta"]}


def test_nothing_claimed_twice_is_no_problem() -> None:
    assert install.foreign_claims({"tools": ["homecare-night"], "numpy": ["numpy"]}) == {}
    assert install.foreign_claims({}) == {}


def test_this_environment_is_sound() -> None:
    assert install.problems() == []


def test_a_root_that_is_not_ours_names_every_package() -> None:
    found = install.problems(ROOT / "no-such-folder")
    assert len(found) == len(install.TOP_LEVEL)
    assert all("not from" in line for line in found)
