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


SECTIONS = {
    "cluster": config._CLUSTER, "cluster.nodes": config._NODE, "balancer": config._BALANCER,
    "database": config._DATABASE, "server": config._SERVER, "limits": config._LIMITS,
    "auth": config._AUTH, "auth.tokens": config._TOKEN,
}


@pytest.mark.parametrize(("section", "key"), [(s, k) for s, keys in SECTIONS.items() for k in sorted(keys)])
def test_every_config_key_is_documented(section: str, key: str) -> None:
    text = (DOCS / "configuration.md").read_text()
    heading = f"[[{section}]]" if section in ("cluster.nodes", "auth.tokens") else f"[{section}]"
    start = text.index(f"`{heading}`")
    nxt = text.find("\n## ", start)
    block = text[start: nxt if nxt > 0 else len(text)]
    assert f"| `{key}` |" in block, f"{section}.{key} is not documented in docs/configuration.md"


def test_documented_defaults_match_the_code() -> None:
    text = (DOCS / "configuration.md").read_text()
    limits = config.LimitsSettings()
    for name in config._LIMITS:
        assert f"| `{name}` | `{getattr(limits, name)}` |" in text, name
