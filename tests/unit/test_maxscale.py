"""How galerakv starts MaxScale: as root, told to drop to the unprivileged maxscale user.

The real thing (the process's user, its directories, routing, failover) is in
tests/cluster/test_maxscale.py, marked ``maxscale``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from galerakv import config
from galerakv.cluster.balancer.maxscale import maxscale_program
from galerakv.config import Settings


def _settings(tmp_path: Path) -> Settings:
    data = {"cluster": {"name": "c", "state_dir": "state",
                        "nodes": [{"name": f"db{i}", "address": f"127.0.0.{200 + i}"} for i in (1, 2, 3)]},
            "balancer": {"kind": "maxscale", "address": "127.0.0.200"}}
    return config.parse(data, source=tmp_path / "galerakv.toml")


@pytest.mark.parametrize(("euid", "user_option"), [(0, ("--user=maxscale",)), (1000, ())])
def test_maxscale_drops_to_its_own_user_when_started_by_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             euid: int, user_option: tuple[str, ...]) -> None:
    monkeypatch.setattr("os.geteuid", lambda: euid)
    program = maxscale_program(_settings(tmp_path))
    cnf = f"--config={tmp_path / 'state' / 'balancer' / 'maxscale' / 'maxscale.cnf'}"
    assert program.argv == ("maxscale", "--nodaemon", *user_option, cnf)
    assert program.marks == (cnf,)  # recognised by its configuration, whoever it runs as
