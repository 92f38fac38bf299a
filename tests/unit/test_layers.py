"""Who may import whom (ARCHITECTURE.md), held by a test: the layers and no import cycles.

Every ``import`` in galerakv/ is read with :mod:`ast` (those under
``TYPE_CHECKING`` too: a cycle for the type checker is still a knot for the
reader).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "galerakv"

# layer -> the layers it may import (its own always allowed)
ALLOWED: dict[str, set[str]] = {
    "galerakv.errors": set(),
    "galerakv.galera": set(),
    "galerakv.client": set(),  # talks HTTP only: usable without the server or the toolkit
    "galerakv.config": {"galerakv.errors"},
    "galerakv.paths": {"galerakv.config"},
    "galerakv.files": {"galerakv.errors"},  # root's writes into folders a less privileged user owns
    "galerakv.tls": {"galerakv.errors"},  # certificates: issued by the toolkit, checked by the server too
    "galerakv.secrets": {"galerakv.config", "galerakv.errors", "galerakv.paths", "galerakv.files"},
    "galerakv.backups": {"galerakv", "galerakv.errors"},  # backup manifests, for the backends, toolkit and cli
    "galerakv.backend": {"galerakv.config", "galerakv.errors", "galerakv.galera", "galerakv.paths",
                         "galerakv.secrets", "galerakv.backups", "galerakv.tls"},
    "galerakv.server": {"galerakv", "galerakv.config", "galerakv.errors", "galerakv.backend", "galerakv.tls",
                        "galerakv.paths"},
    "galerakv.cluster": {"galerakv.config", "galerakv.errors", "galerakv.galera", "galerakv.paths",
                         "galerakv.secrets", "galerakv.backups", "galerakv.files", "galerakv.tls"},
    "galerakv.cli": {"galerakv", "galerakv.config", "galerakv.errors", "galerakv.server",
                     "galerakv.cluster", "galerakv.secrets", "galerakv.paths", "galerakv.backend",
                     "galerakv.galera", "galerakv.client", "galerakv.backups",  # client: `galerakv watch`
                     "galerakv.tls"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The galerakv modules ``path`` imports (``from a.b import c`` counts a.b.c when it is one)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("galerakv")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("galerakv"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return found


FILES = sorted(PACKAGE.rglob("*.py"))
MODULES = {module_name(p) for p in FILES}
GRAPH = {module_name(p): imports(p) for p in FILES}


def layer(module: str) -> str:
    for name in sorted(ALLOWED, key=len, reverse=True):
        if module == name or module.startswith(name + "."):
            return name
    return module


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_follow_the_layers(module: str) -> None:
    own = layer(module)
    wrong = sorted(m for m in GRAPH[module] if layer(m) != own and layer(m) not in ALLOWED.get(own, set()))
    assert not wrong, f"{module} ({own}) may not import {wrong}; see ARCHITECTURE.md"


def test_no_import_cycles() -> None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(GRAPH.get(m, ())):
            # a package's own __init__ importing its submodules is not a cycle of the submodule's
            if n not in GRAPH or (m.startswith(n + ".")):
                continue
            if state.get(n) == 1:
                cycles.append([*stack[stack.index(n):], n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
