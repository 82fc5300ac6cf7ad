"""The console's string tables (``services/web/static/console/strings/*.js``): every language has
every key, with the same ``{placeholders}``, and the console offers every table."""

from __future__ import annotations

import re
from pathlib import Path

CONSOLE = Path(__file__).resolve().parents[2] / "services" / "web" / "static" / "console"
STRINGS = CONSOLE / "strings"
LANGUAGES = ("sv", "en", "fi")
PLACEHOLDER = re.compile(r"\{(\w+)\}")
ENTRY = re.compile(r"  (?P<key>[a-z][a-z0-9_]*): (?P<q>['\"])(?P<text>(?:\\.|(?!(?P=q)).)*)(?P=q),")
ESCAPES = {"\\'": "'", '\\"': '"', "\\\\": "\\"}
#: Texts that are rightly the same in Finnish as in Swedish or English.
SAME_IN_FINNISH = frozenset({"seconds", "minutes", "attention_to_operator", "kind_camera"})


def table(lang: str) -> dict[str, str]:
    """Read one ``export default { key: 'text', ... };`` file, one entry a line, strictly: a
    line that is not an entry, a comment or blank fails, and so does a key given twice."""
    lines = (STRINGS / f"{lang}.js").read_text(encoding="utf-8").splitlines()
    body = [line for line in lines if line.strip() and not line.lstrip().startswith("//")]
    assert body[0] == "export default {", lang
    assert body[-1] == "};", lang
    texts: dict[str, str] = {}
    for line in body[1:-1]:
        match = ENTRY.fullmatch(line)
        assert match, (lang, line)
        raw = match["text"]
        for escaped in re.findall(r"\\.", raw):
            assert escaped in ESCAPES, (lang, line)
        text = re.sub(r"\\.", lambda m: ESCAPES[m.group()], raw)
        assert match["key"] not in texts, (lang, match["key"])
        texts[match["key"]] = text
    return texts


def test_every_language_has_every_key_with_the_same_placeholders() -> None:
    tables = {lang: table(lang) for lang in LANGUAGES}
    sv = tables["sv"]
    assert len(sv) > 500
    for lang, texts in tables.items():
        assert texts.keys() == sv.keys(), (lang, texts.keys() ^ sv.keys())
        for key, text in texts.items():
            assert bool(text.strip()) == bool(sv[key].strip()), (lang, key)
            assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(sv[key])), (lang, key)
            assert text.count("{") == text.count("}"), (lang, key)


def test_finnish_is_finnish_not_a_copy() -> None:
    sv, en, fi = (table(lang) for lang in LANGUAGES)
    same = {key for key in sv if fi[key] in (sv[key], en[key])}
    assert same == SAME_IN_FINNISH
    assert fi["nav_recipients"] == "Asiakkaat"  # brukare
    assert fi["role_patrol"] == "yöpartio"  # nattpatrull


def test_the_console_offers_every_table() -> None:
    i18n = (CONSOLE / "i18n.js").read_text(encoding="utf-8")
    imported = set(re.findall(r"^import (\w+) from '\./strings/(\w+)\.js';$", i18n, re.M))
    assert imported == {(lang, lang) for lang in LANGUAGES}
    assert {path.stem for path in STRINGS.glob("*.js")} == set(LANGUAGES)
    assert f"LANGUAGES = {{ {', '.join(LANGUAGES)} }}" in i18n
