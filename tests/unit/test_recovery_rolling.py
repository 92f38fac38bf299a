"""Rolling restart, recovery and membership orchestration on the fake transport
(:mod:`galerakv.cluster.transport.fake`): the order of operations is checked
without a database: drain before stop, the last node first, the maintenance
switch set while the node is down, ``safe_to_bootstrap`` written on the chosen
node only, every node started from its recovered position after a crash.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from galerakv import config
from galerakv.cluster import starter
from galerakv.cluster.operations import lifecycle, membership, rolling
from galerakv.cluster.transport.base import Preflight
from galerakv.cluster.transport.fake import FakeTransport
from galerakv.config import Settings
from galerakv.errors import ClusterError
from galerakv.paths import CheckPaths
from galerakv.secrets import ensure


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(rolling, "SETTLE_ROUNDS", 0.0)
    monkeypatch.setattr(lifecycle, "POLL_INTERVAL", 0.0)
    path = tmp_path / "galerakv.toml"
    path.write_text(starter.starter_toml(3, "127.0.0.101", state_dir="state", balancer_kind="haproxy"))
    s = config.load_file(path)
    ensure(s)
    return s


def test_rolling_restart_drains_then_restarts_last_node_first(settings: Settings,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("galerakv.cluster.balancer.managed", lambda _s: True)
    t = FakeTransport(settings)
    steps = rolling.rolling_restart(settings, t, lambda _line: None)
    assert [s.node for s in steps] == ["db3", "db2", "db1"]
    assert t.steps == [
        "drain db3 (maintenance)", "stop db3 desynced (maintenance)", "config db3", "start db3",
        "drain db2 (maintenance)", "stop db2 desynced (maintenance)", "config db2", "start db2",
        "drain db1 (maintenance)", "stop db1 desynced (maintenance)", "config db1", "start db1",
    ]
    assert not any(CheckPaths.of(settings, n).maintenance.exists() for n in settings.cluster.nodes)


def test_rolling_restart_refuses_a_degraded_cluster(settings: Settings) -> None:
    t = FakeTransport(settings)
    t.running["db2"] = False
    with pytest.raises(ClusterError, match="needs a healthy cluster"):
        rolling.rolling_restart(settings, t, lambda _line: None)
    assert t.steps == []


def test_up_after_a_crash_bootstraps_the_most_advanced_node(settings: Settings,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("galerakv.cluster.doctor.check_before_start", lambda *_a, **_k: None)
    monkeypatch.setattr("galerakv.cluster.balancer.start", lambda *_a: None)
    monkeypatch.setattr("galerakv.cluster.balancer.preflight", lambda _s: Preflight())
    monkeypatch.setattr(lifecycle, "ensure_accounts", lambda *_a: None)
    t = FakeTransport(settings, recovered={"db1": 10, "db2": 12, "db3": 11})
    t.running = {n: False for n in t.running}
    lines: list[str] = []
    result = lifecycle.up(settings, t, lines.append, install=False)
    assert result.bootstrapped == "db2"
    assert sorted(s for s in t.steps if s.startswith("recover")) == ["recover db1", "recover db2",
                                                                      "recover db3"]
    after = [s for s in t.steps if not s.startswith(("recover", "config"))]
    # every node starts from the position InnoDB holds: the cluster keeps its history
    assert after == ["grastate db2 safe=1", "start db2 bootstrap from 12", "start db1 from 10",
                     "start db3 from 11"]
    assert any("applying the recovery rule" in line for line in lines)


def test_remove_node_below_three_changes_nothing_without_force(settings: Settings) -> None:
    assert settings.source is not None
    before = settings.source.read_text()
    t = FakeTransport(settings)
    with pytest.raises(ClusterError, match="pass --force"):
        membership.remove_node(settings, t, lambda _line: None, "db3")
    assert settings.source.read_text() == before and t.steps == []
