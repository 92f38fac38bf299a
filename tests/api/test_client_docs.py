"""docs/client.md cannot drift: its examples run against a real server, its headings match the code.

A ```python block right after a ``<!-- example: NAME -->`` line is part of the
example program NAME; the blocks of one program are joined in order and run
as a script (``python example.py``) with ``GALERAKV_URL`` set to a fresh real
``galerakv serve`` on SQLite. Every other ```python block must at least compile.
Each method of Client and AsyncClient has a ``### `name(...)``` heading whose
parameters are the method's own, and every exception of the client is in the
error tree.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from galerakv import client
from galerakv.client import AsyncClient, Client, errors
from tests.support.configs import write_config
from tests.support.net import free_port
from tests.support.server import ServerProcess

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"
MARK = re.compile(r"^<!-- example: ([a-z0-9-]+) -->$")
RUN_TIMEOUT = 60.0


def python_blocks(text: str) -> list[tuple[str | None, str]]:
    """(example name or None, code) of every ```python block, in order."""
    blocks: list[tuple[str | None, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i] == "```python":
            mark = MARK.match(lines[i - 1]) if i > 0 else None
            end = lines.index("```", i + 1)
            blocks.append((mark.group(1) if mark else None, "\n".join(lines[i + 1:end]) + "\n"))
            i = end
        i += 1
    return blocks


def programs() -> dict[str, str]:
    out: dict[str, str] = {}
    for name, code in python_blocks(DOC.read_text()):
        if name is not None:
            out[name] = out.get(name, "") + code
    return out


def test_the_examples_the_docs_promise_are_there() -> None:
    assert {"tour", "async", "config-store", "counter", "lease", "watch"} <= set(programs())
    # no marker lost: each one is followed by a python block
    text = DOC.read_text().splitlines()
    for i, line in enumerate(text):
        if MARK.match(line):
            assert text[i + 1] == "```python", f"docs/client.md:{i + 1}: example marker not before a python block"


@pytest.mark.parametrize("index", range(len(python_blocks(DOC.read_text()))))
def test_every_python_block_compiles(index: int) -> None:
    name, code = python_blocks(DOC.read_text())[index]
    compile(code, f"docs/client.md block {index} ({name or 'not run'})", "exec")


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[ServerProcess]:
    port = free_port()
    path = write_config(tmp_path / "galerakv.toml", {"server": {
        "backend": "sqlite", "sqlite_path": str(tmp_path / "kv.sqlite3"), "host": "127.0.0.1", "port": port}})
    server = ServerProcess(path, port)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("name", sorted(programs()))
def test_example_runs(name: str, sqlite_server: ServerProcess, tmp_path: Path) -> None:
    script = tmp_path / f"example_{name.replace('-', '_')}.py"
    script.write_text(programs()[name])
    env = {**os.environ, "GALERAKV_URL": sqlite_server.url}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    assert result.returncode == 0, f"example {name!r} of docs/client.md failed:\n{result.stderr}"


def _doc_signature(name: str, method: object) -> str:
    """``name(ns, key, *, consistency="strong")`` from the method's own parameters."""
    parts: list[str] = []
    star = False
    for param in list(inspect.signature(method).parameters.values())[1:]:  # type: ignore[arg-type]
        if param.kind is inspect.Parameter.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        if param.default is inspect.Parameter.empty:
            parts.append(param.name)
        else:
            default = json.dumps(param.default) if isinstance(param.default, str) else repr(param.default)
            parts.append(f"{param.name}={default}")
    return f"{name}({', '.join(parts)})"


METHODS = sorted(n for n, _ in inspect.getmembers(Client, inspect.isfunction)
                 if not n.startswith("_") and n != "close")


def test_both_clients_have_the_same_methods() -> None:
    async_methods = sorted(n for n, _ in inspect.getmembers(AsyncClient, inspect.isfunction)
                           if not n.startswith("_") and n != "aclose")
    assert async_methods == METHODS
    assert set(METHODS) == {"get", "put", "create", "delete", "update", "list", "batch", "txn", "status",
                            "watch", "changes"}


@pytest.mark.parametrize("name", METHODS)
def test_every_method_is_documented_with_its_parameters(name: str) -> None:
    for cls in (Client, AsyncClient):
        assert _doc_signature(name, getattr(cls, name)) == _doc_signature(name, getattr(Client, name))
    heading = f"### `{_doc_signature(name, getattr(Client, name))}"
    assert heading in DOC.read_text(), f"docs/client.md lacks the heading {heading}`"


def test_every_exception_is_in_the_error_tree() -> None:
    text = DOC.read_text()
    tree = text[text.index("\nClientError\n"):]
    tree = tree[: tree.index("```")]
    exceptions = {n for n, c in inspect.getmembers(errors, inspect.isclass)
                  if issubclass(c, errors.ClientError) and c.__module__ == errors.__name__}
    assert exceptions == {n for n in exceptions if re.search(rf"\b{n}\b", tree)}
    assert exceptions <= set(client.__all__)
