"""Is this the install it looks like? The top-level package names are generic, so check them.

The distribution ``homecare-night`` installs its packages under plain top-level names
(``kernel``, ``services``, ``devices``, ``tools``, ...; see ``TOP_LEVEL``). Another distribution
in the same environment that claims one of those names would have its files merged into ours by
pip without a word, or shadow ours on ``sys.path``. ``homecare`` refuses to start in either case
(``tools/cli.py`` calls :func:`problems` first) rather than run a mixture; the cure is an
environment of its own (``./run`` keeps one in ``.venv``). ``docs/operations.md`` says the same for
operators.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

DISTRIBUTION = "homecare-night"
TOP_LEVEL = (
    "kernel",
    "identity",
    "services",
    "supervision",
    "devices",
    "consent",
    "vision",
    "homeside",
    "simulators",
    "agent",
    "tools",
)
"""Our top-level packages, as ``[tool.setuptools.packages.find]`` in pyproject.toml installs
them (a unit test keeps the two equal)."""

ROOT = Path(__file__).resolve().parent.parent
"""The folder that holds our top-level packages: the source tree, or site-packages."""


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def foreign_claims(
    claims: Mapping[str, Iterable[str]],
    *,
    ours: Iterable[str] = TOP_LEVEL,
    distribution: str = DISTRIBUTION,
) -> dict[str, list[str]]:
    """Each of ``ours`` that another distribution claims too, with those distributions (sorted).

    ``claims`` maps an import name to the distributions that provide it, as
    ``importlib.metadata.packages_distributions()`` does."""
    me = _normal(distribution)
    found: dict[str, list[str]] = {}
    for name in ours:
        others = sorted({d for d in claims.get(name, ()) if _normal(d) != me})
        if others:
            found[name] = others
    return found


def _shadowed(ours: Iterable[str], root: Path) -> dict[str, str]:
    """Each of ``ours`` that the import system would take from somewhere else than ``root``."""
    found: dict[str, str] = {}
    for name in ours:
        spec = importlib.util.find_spec(name)
        origin = None if spec is None else spec.origin
        if origin is None or Path(origin).resolve().parent.parent != root:
            found[name] = "nowhere" if origin is None else str(Path(origin).parent)
    return found


def problems(root: Path = ROOT) -> list[str]:
    """What is wrong with this install, one sentence each; empty when it is sound."""
    out = [
        f"the package name {name!r} is also installed by {', '.join(others)}"
        for name, others in foreign_claims(importlib.metadata.packages_distributions()).items()
    ]
    out += [
        f"{name!r} is imported from {where}, not from {root}"
        for name, where in _shadowed(TOP_LEVEL, root).items()
    ]
    return out
