"""The README's tour and its "run the server on the cluster" step, run as written.

The tour ("A five-minute tour") runs against a real ``galerakv serve`` that the
test starts: on SQLite, in an empty directory of its own, as the README's set-up
does; on Galera (marked ``cluster``), with the galerakv.toml that ``galerakv
cluster init`` writes (the session's API cluster, ``galera_api_cluster`` in
tests/conftest.py, whose file the same starter wrote), edited by the README's own
command ("Then run the server on the cluster"), its kv table emptied first.

Two substitutions, and only these: the server listens on a free port, so
``127.0.0.1:8080`` in every command becomes its address, and ``galerakv serve``
gets ``--port`` with it. Everything else runs as the README spells it, in one
shell (tests/support/doc_shell.py: its variables, ``ETAG`` and ``REV``, carry
over), and every output shown is compared (tests/support/shown.py: ETags,
revisions and expiry times may be other numbers, as they are on Galera). The
watch, marked not run in the README (it streams until Ctrl-C), is read until it
has printed the events shown, then interrupted.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.support.doc_shell import DocShell, serving
from tests.support.markdown import Block, Command, commands_under, fences, read_blocks
from tests.support.net import free_port

README = Path(__file__).resolve().parents[2] / "README.md"
TOUR = "A five-minute tour"
CLUSTER = "The Galera cluster"


def tour() -> list[Block]:
    return commands_under(read_blocks(README), TOUR)


def serve_step() -> tuple[list[Command], Command, dict[str, Any]]:
    """The README's step to the cluster: the edit commands, the serve command, the [server] table it shows."""
    blocks = [b for b in commands_under(read_blocks(README), CLUSTER)
              if any(c.text == "galerakv serve" for c in b.commands)]
    assert len(blocks) == 1, "README.md: one sh block under 'The Galera cluster' ends with galerakv serve"
    commands = list(blocks[0].commands)
    serve = commands.pop()
    assert serve.text == "galerakv serve", f"{serve.where}: the step ends by starting the server"
    shown = [f for f in fences(README.read_text(), "README.md")
             if f.section == CLUSTER and f.lang == "toml" and f.line > blocks[0].line]
    assert shown, "README.md: the [server] table the edit gives follows the commands"
    return commands, serve, tomllib.loads("\n".join(shown[0].body))


def shell_for(directory: Path, port: int) -> DocShell:
    return DocShell(directory, substitute={"127.0.0.1:8080": f"127.0.0.1:{port}",
                                           "galerakv serve": f"galerakv serve --port {port}"})


def run_tour(shell: DocShell) -> None:
    for block in tour():
        for command in block.commands:
            if block.not_run:
                shell.check_stream(command)
            else:
                shell.check(command)


def test_the_tour_is_what_the_tests_run() -> None:
    blocks = tour()
    texts = [c.text for b in blocks for c in b.commands]
    assert any("If-Match: $ETAG" in t for t in texts)
    assert [b.not_run is not None for b in blocks] == [False, True, False]
    assert all(c.shown is not None for c in blocks[1].commands)


def test_tour_on_sqlite(tmp_path: Path) -> None:
    """The tour against ``galerakv serve`` in an empty directory: SQLite with no configuration at all."""
    port = free_port()
    shell = shell_for(tmp_path, port)
    with serving(shell, Command("README.md", 0, "galerakv serve"), port):
        run_tour(shell)
    assert (tmp_path / "galerakv-data" / "kv.sqlite3").exists()


def test_the_step_to_the_cluster_edits_what_init_wrote(tmp_path: Path) -> None:
    """``cluster init``'s file, edited by the README's command, holds the [server] table the README shows."""
    commands, _serve, shown = serve_step()
    shell = shell_for(tmp_path, free_port())
    shell.check(Command("README.md", 0, "galerakv cluster init --local 3"))
    for command in commands:
        shell.check(command)
    written = tomllib.loads((tmp_path / "galerakv.toml").read_text())
    assert written["server"] == shown["server"]
    shell.check(Command("README.md", 0, "galerakv config check"))


@pytest.mark.cluster
def test_tour_on_galera(galera_api_cluster: dict[str, Any], tmp_path: Path) -> None:
    """The README's step to the cluster on a real 3-node cluster, then the tour against that server."""
    cluster = galera_api_cluster["__cluster__"]
    text = re.sub(r'(?m)^state_dir = "[^"]*"', f'state_dir = "{cluster.state_dir}"', cluster.config.read_text())
    assert 'backend = "sqlite"' in text, "the API cluster's file is no longer the one cluster init writes"
    (tmp_path / "galerakv.toml").write_text(text)
    # every test starts on an empty table (it does not exist before the first server starts)
    cluster.cli("sql", "--node", "db1", "-e", "DELETE FROM galerakv.kv")
    commands, serve, shown = serve_step()
    port = free_port()
    shell = shell_for(tmp_path, port)
    for command in commands:
        shell.check(command)
    assert tomllib.loads((tmp_path / "galerakv.toml").read_text())["server"] == shown["server"]
    with serving(shell, serve, port) as url:
        run_tour(shell)
    assert url
