"""The ssh transport's shell scripts, run on this machine against real nodes.

ShellRunner runs exactly the scripts SshTransport sends over ssh, with `sh -c`
instead of `ssh root@host sh -c`; only the ssh hop itself is not exercised.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from galerakv import config
from galerakv.cluster.operations import lifecycle, verify
from galerakv.cluster.render.node import RenderContext
from galerakv.cluster.transport.ssh import ShellRunner, SshRunner, SshTransport
from galerakv.config import Settings
from tests.support.local_cluster import skip_reason
from tests.support.state_dirs import state_root

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture
def ssh_cluster() -> Iterator[tuple[Settings, SshTransport]]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    root = state_root("ssh-")
    settings = config.parse({"cluster": {
        "name": "galerakv_ssh", "transport": "ssh", "state_dir": str(root / "state"),
        "nodes": [{"name": f"db{i}", "address": f"127.0.0.{60 + i}"} for i in (1, 2, 3)],
    }}, source=root / "galerakv.toml")
    transport = SshTransport(settings, RenderContext(run_as="mysql"), runner=ShellRunner())
    yield settings, transport
    try:
        lifecycle.down(settings, transport, lambda _line: None)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_ssh_transport_scripts_run_a_real_cluster(ssh_cluster: tuple[Settings, SshTransport]) -> None:
    settings, transport = ssh_cluster
    lines: list[str] = []
    result = lifecycle.up(settings, transport, lines.append)
    assert result.report.verdict.healthy, "\n".join(lines)
    assert result.bootstrapped == "db1"
    assert verify.verify(settings, transport, lines.append).ok, "\n".join(lines)
    assert not lifecycle.up(settings, transport, lines.append).changed
    assert "nothing to do" in lines[-1]
    assert lifecycle.down(settings, transport, lines.append) == ("db3", "db2", "db1")
    grastate = transport.grastate(settings.cluster.node("db1"))  # parsed since Transport returns values
    assert grastate is not None and grastate.safe_to_bootstrap
    assert lifecycle.status(settings, transport).verdict.verdict == "down"


def test_ssh_runner_command_lines() -> None:
    runner = SshRunner()
    argv = runner.interactive_argv("10.0.0.5", ["mariadb", "--defaults-file=/x/admin.cnf"])
    assert argv[0] == "ssh" and "root@10.0.0.5" in argv and argv[-1] == (
        "mariadb --defaults-file=/x/admin.cnf")
