"""docs/api.md's examples, run as written against a real ``galerakv serve`` on SQLite.

Every ```` ```console ```` block of docs/api.md, in document order, in one shell
(tests/support/doc_shell.py), against one server the test starts on a free
port in an empty directory (SQLite, no configuration): ``127.0.0.1:8080`` in
the commands becomes its address, nothing else changes. Each answer shown is
compared as tests/support/shown.py says (ETags, revisions and expiry times
may be other numbers). The blocks that are requests or answers alone (```` ```json ````)
are illustrations and are not run.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.doc_shell import DocShell, serving
from tests.support.markdown import Command, read_blocks
from tests.support.net import free_port

API = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_the_examples_run_as_written(tmp_path: Path) -> None:
    blocks = [b for b in read_blocks(API, "docs/api.md") if b.lang == "console" and b.not_run is None]
    sections = {b.section for b in blocks}
    assert {"Batch: `POST /v1/ns/{ns}/batch`", "Errors"} <= sections, sections
    port = free_port()
    shell = DocShell(tmp_path, substitute={"127.0.0.1:8080": f"127.0.0.1:{port}"})
    with serving(shell, Command("docs/api.md", 0, f"galerakv serve --port {port}"), port):
        for block in blocks:
            for command in block.commands:
                shell.check(command)
