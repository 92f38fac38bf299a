"""docs/cluster.md's tutorial (the sh block at its top), run as written on real nodes.

Every command of the block, in the document's order, in a fresh directory
under /var/tmp/galerakv-tests (mode 0755: mariadbd runs as the mysql user and
must enter it; tests/support/state_dirs.py), with the ``galerakv`` of this
checkout first on PATH and ``sudo`` left out: the suite runs as root, and
``sudo`` need not be installed (the doc says how ``sudo galerakv`` works). The
nodes are on the doc's own addresses, 127.0.0.11-14 with HAProxy on
127.0.0.10, which tests/cluster/test_lifecycle.py also uses, never at the same
time (one pytest process runs one test at a time). Whatever happens, every
node is stopped at the end (``galerakv cluster down``, then whatever still
runs is killed by the PID galerakv recorded: ``LocalCluster.destroy``) and the
directory removed. About a minute and a half, most of it the rolling restart.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest

from tests.support.doc_shell import DocShell
from tests.support.local_cluster import LocalCluster
from tests.support.markdown import read_blocks
from tests.support.state_dirs import state_root

DOC = Path(__file__).resolve().parents[2] / "docs" / "cluster.md"

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_the_tutorial_runs_as_written() -> None:
    block = read_blocks(DOC, "docs/cluster.md")[0]
    texts = [c.text for c in block.commands]
    assert texts[0] == "galerakv cluster init --local 3", f"{block.doc}:{block.line}: the tutorial starts with init"
    assert block.not_run is None
    root = state_root("doc-tutorial-")
    cluster = LocalCluster(root / "galerakv.toml", root / ".galerakv", ["db1", "db2", "db3", "db4"])
    shell = DocShell(root, drop_sudo=True)
    try:
        for command in block.commands:
            ran = shell.check(command, timeout=400)
            print(f"$ {ran.text}  ({ran.seconds:.1f} s)\n{ran.stdout}{ran.stderr}")
        # what the block leaves: four healthy nodes, at once (add-node waits until HAProxy has db4 UP)
        code, status = cluster.status()
        assert (code, status["verdict"]) == (0, "healthy"), json.dumps(status, indent=1)
        assert [(n["name"], n["cluster_size"]) for n in status["nodes"]] == [(f"db{i}", 4) for i in range(1, 5)]
    finally:
        started = _recorded_pids(cluster.state_dir)
        cluster.destroy()
    assert not [pid for pid in started if str(root) in _cmdline(pid)], "a process outlived the test"
    assert os.environ.get("GALERAKV_KEEP_TEST_STATE") or not root.exists()


def _recorded_pids(state_dir: Path) -> list[int]:
    """The PIDs galerakv recorded for the nodes, their health checks and HAProxy."""
    pids = []
    for path in [*state_dir.glob("*/galerakv.pid"), *state_dir.glob("*/clustercheck.pid"),
                 *state_dir.glob("balancer/haproxy.pid")]:
        with contextlib.suppress(OSError, ValueError):
            pids.append(int(path.read_text()))
    return pids


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
