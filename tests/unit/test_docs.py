"""The documentation points at what exists: links, anchors and ``homecare`` commands.

Every relative link in README.md, HACKING.md, docs/*.md and deploy's READMEs names a file or
folder of this repository (never one beside it: a clone has nothing there), and a ``#anchor``
into a Markdown file names one of its headings. Every ``homecare <command>`` written in code in
those pages is a subcommand of the real argument parser (``tools.cli.parser``), down to the
second level where the command has one (``homecare audit verify``). README.md stays short.
"""

from __future__ import annotations

import argparse
import re
from functools import cache
from pathlib import Path

import pytest

from tools.cli import parser

ROOT = Path(__file__).resolve().parent.parent.parent
PAGES = sorted(
    [
        ROOT / "README.md",
        ROOT / "HACKING.md",
        *(ROOT / "docs").glob("*.md"),
        *(ROOT / "deploy").glob("**/README.md"),
    ]
)
README_LIMIT_BYTES = 12_500

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_COMMAND = re.compile(  # not a namespace of that name: kubectl -n homecare create ...
    r"(?<![\w.-])(?<!-n )(?<!--namespace )homecare[ \t]+([a-z][\w-]*)(?:[ \t]+([a-z][\w|\\-]*))?"
)
_EXTERNAL = ("http://", "https://", "mailto:")


def _page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _code(text: str) -> list[str]:
    """The code in a page: fenced blocks and inline spans."""
    blocks = [m.group(0) for m in _FENCE.finditer(text)]
    rest = _FENCE.sub("", text)
    return blocks + [m.group(2) for m in _INLINE_CODE.finditer(rest)]


def _prose(text: str) -> str:
    """A page without its code, where links are links."""
    return _INLINE_CODE.sub("", _FENCE.sub("", text))


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation gone, spaces to dashes."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[^\w\- ]", "", text.lower().replace("`", ""))
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    return frozenset(slug(h) for h in _HEADING.findall(text))


def links(path: Path) -> list[str]:
    return [
        target
        for target in _LINK.findall(_prose(path.read_text(encoding="utf-8")))
        if not target.startswith(_EXTERNAL)
    ]


def broken(path: Path, target: str) -> str | None:
    """Why a relative link from ``path`` leads nowhere, or None."""
    file_part, _, anchor = target.partition("#")
    dest = (path.parent / file_part).resolve() if file_part else path
    if not dest.is_relative_to(ROOT):
        return "leaves the repository (a clone has nothing beside it)"
    if not dest.exists():
        return "no such file"
    if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
        return f"no heading #{anchor} in {_page_id(dest)}"
    return None


def _subcommands(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in p._actions:  # argparse keeps its subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def unknown_commands(text: str, top: argparse.ArgumentParser) -> list[str]:
    """Each ``homecare X [Y]`` in the code of ``text`` that the parser does not know."""
    commands = _subcommands(top)
    found: list[str] = []
    for code in _code(text):
        for first, second in _COMMAND.findall(code):
            if first not in commands:
                found.append(f"homecare {first}")
                continue
            below = _subcommands(commands[first])
            if below and second:
                words = re.split(r"\\?\|", second)
                found += [f"homecare {first} {w}" for w in words if w and w not in below]
    return found


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_relative_link_leads_somewhere(page: Path) -> None:
    bad = [f"{t}: {why}" for t in links(page) if (why := broken(page, t)) is not None]
    assert bad == [], f"{_page_id(page)} has broken links"


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_homecare_command_named_is_real(page: Path) -> None:
    assert unknown_commands(page.read_text(encoding="utf-8"), parser()) == []


def test_the_pages_are_there_and_link_to_each_other() -> None:
    names = {_page_id(p) for p in PAGES}
    for doc in ("architecture", "device-contract", "glossary", "operations", "security"):
        assert f"docs/{doc}.md" in names
    assert "docs/benchmarks.md" in names
    readme = {t.partition("#")[0] for t in links(ROOT / "README.md")}
    assert {f"docs/{d}.md" for d in ("architecture", "device-contract", "glossary")} <= readme


def test_the_readme_stays_short() -> None:
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_LIMIT_BYTES, f"README.md is {size} bytes; move detail to docs/"


# ---------------------------------------------------------------- the checks check


def test_a_broken_link_and_a_missing_anchor_are_found(tmp_path: Path) -> None:
    page = ROOT / "docs" / "glossary.md"
    assert broken(page, "architecture.md") is None
    assert broken(page, "../HACKING.md#hard-rules-where-each-is-decided") is None
    assert broken(page, "no-such-page.md") == "no such file"
    assert broken(page, "architecture.md#no-such-heading") == (
        "no heading #no-such-heading in docs/architecture.md"
    )
    assert broken(page, "../../shared/DESIGN.md") is not None
    assert broken(page, "#people-and-roles") is None


def test_links_in_code_are_not_links_and_external_ones_are_skipped() -> None:
    text = "[a](a.md) `[b](b.md)` [c](https://example.org/c) ![img](i.png)\n```\n[d](d.md)\n```\n"
    assert _LINK.findall(_prose(text)) == ["a.md", "https://example.org/c"]


def test_a_command_that_does_not_exist_is_found() -> None:
    text = (
        "Run `homecare serve --port 1`, `.venv/bin/homecare audit verify`, "
        "`homecare devices provision\\|revoke\\|acl ...` and `homecare token create`;\n"
        "```sh\nhomecare frobnicate\nkubectl -n homecare create secret\n```\n"
        "`homecare audit erase`, `homecare-night` is a name."
    )
    assert unknown_commands(text, parser()) == ["homecare frobnicate", "homecare audit erase"]


def test_slugs_follow_github() -> None:
    assert slug("Hard rules: where each is decided") == "hard-rules-where-each-is-decided"
    assert slug("`/metrics`") == "metrics"
    assert slug("Sizing per 1,000 homes") == "sizing-per-1000-homes"
    assert slug("What is logged, and what never is") == "what-is-logged-and-what-never-is"
