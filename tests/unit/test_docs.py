"""Nothing goes undocumented: every problem code and every configuration key is in docs/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from galerakv import config
from galerakv.server.problems import CODES

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_problem_code_is_documented(code: str) -> None:
    text = (DOCS / "api.md").read_text()
    status = CODES[code][0]
    assert re.search(rf"^\| `{code}` \| {status} \|", text, re.M), f"{code} missing from docs/api.md"


def test_no_documented_code_is_unknown() -> None:
    text = (DOCS / "api.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \| \d{3} \|", text, re.M))
    assert documented == set(CODES)


# Configuration keys: each is declared once, as a field of its table's dataclass in galerakv/config.py
# (name, type, default, meaning); docs/configuration.md must show every one of them as that declaration says.

TABLES = list(config._tables())
TABLE_OF = {path: cls for path, cls, _ in TABLES}
KEYS = [(path, is_array, name) for path, cls, is_array in TABLES for name in config._declared(cls)]


def _block(text: str, path: str, is_array: bool) -> str:
    """The part of docs/configuration.md about one table, up to the next table."""
    start = text.index(f"\nEach `[[{path}]]`:" if is_array else f"\n## `[{path}]`")
    ends = [i for i in (text.find("\n## ", start + 1), text.find("\nEach `[[", start + 1)) if i > 0]
    return text[start: min(ends, default=len(text))]


def _row(name: str, key: config._Declared) -> str:
    """The table row that documents a key, from its declaration."""
    if key.key.shown:
        default = key.key.shown
    elif key.required:
        default = "required"
    else:
        value = key.default()
        if value == ():
            default = "none"
        elif isinstance(value, bool):
            default = f"`{str(value).lower()}`"
        elif isinstance(value, (str, Path)):
            default = f'`"{value}"`'
        else:
            default = f"`{value}`"
    return f"| `{name}` | {default} | {key.key.doc} |"


def test_the_key_list_comes_from_the_declaration() -> None:
    assert [path for path, _, _ in TABLES] == ["cluster", "cluster.nodes", "balancer", "ssh", "database", "server",
                                               "limits", "watch", "backup", "ui", "auth", "auth.tokens"]
    assert {name for path, _, name in KEYS if path == "server"} >= {"host", "port", "backend", "sqlite_path"}
    assert ("cluster.nodes", True, "address") in KEYS
    assert ("auth.tokens", True, "token_sha256") in KEYS


@pytest.mark.parametrize(("path", "is_array", "name"), KEYS)
def test_every_config_key_is_documented(path: str, is_array: bool, name: str) -> None:
    text = (DOCS / "configuration.md").read_text()
    key = config._declared(TABLE_OF[path])[name]
    assert key.key.doc, f"{path}.{name} has no doc in galerakv/config.py"
    row = _row(name, key)
    assert row in _block(text, path, is_array), f"docs/configuration.md lacks, under {path}:\n{row}"


@pytest.mark.parametrize(("path", "cls", "is_array"), TABLES)
def test_no_documented_config_key_is_unknown(path: str, cls: type, is_array: bool) -> None:
    documented = re.findall(r"^\| `([a-z0-9_]+)` \|", _block((DOCS / "configuration.md").read_text(), path, is_array),
                            re.M)
    assert documented == list(config._declared(cls)), f"keys documented under {path} differ from galerakv/config.py"
