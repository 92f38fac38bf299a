"""Rolling restart, recovery and membership orchestration on a small fake transport.

The fake keeps per node: running or not, desynced or not, and a grastate.dat
text; it answers the status query the way a Galera node would (size = the
nodes running). It records every step, so the order of operations is checked
without a database: drain before stop, the last node first, the maintenance
switch set while the node is down, ``safe_to_bootstrap`` written on the chosen
node only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from galerakv import config
from galerakv.cluster import starter
from galerakv.cluster.operations import lifecycle, membership, rolling
from galerakv.cluster.render.balancer import CheckPaths
from galerakv.cluster.render.node import RenderContext
from galerakv.cluster.transport.base import Preflight, QueryFailed, Report, Transport
from galerakv.config import NodeSettings, Settings
from galerakv.errors import ClusterError
from galerakv.galera.status import parse_grastate
from galerakv.secrets import Secrets, ensure

UUID = "b1cad595-e97e-11f1-95a0-a24f95a70e4b"


class FakeTransport(Transport):
    def __init__(self, settings: Settings, recovered: dict[str, int] | None = None) -> None:
        super().__init__(settings, RenderContext())
        self.running = {n.name: True for n in settings.cluster.nodes}
        self.desynced: set[str] = set()
        self.steps: list[str] = []
        self.recovered = recovered or {}
        self.grastates = {n.name: f"version: 2.1\nuuid: {UUID}\nseqno: -1\nsafe_to_bootstrap: 0\n"
                          for n in settings.cluster.nodes}

    def _maint(self, node: NodeSettings) -> str:
        return " (maintenance)" if CheckPaths.of(self.settings, node).maintenance.exists() else ""

    def preflight(self, nodes: tuple[NodeSettings, ...]) -> Preflight:
        return Preflight()

    def missing_packages(self) -> list[str]:
        return []

    def install_packages(self, packages: list[str], report: Report) -> None:
        raise AssertionError("nothing to install")

    def write_config(self, node: NodeSettings, files: dict[str, str], secrets: Secrets) -> None:
        self.steps.append(f"config {node.name}")

    def is_initialized(self, node: NodeSettings) -> bool:
        return True

    def initialize(self, node: NodeSettings, secrets: Secrets) -> None:
        raise AssertionError("already initialized")

    def prepare_empty(self, node: NodeSettings) -> None:
        self.steps.append(f"empty {node.name}")

    def start(self, node: NodeSettings, bootstrap: bool) -> None:
        self.steps.append(f"start {node.name}{' bootstrap' if bootstrap else ''}")
        self.running[node.name] = True
        self.desynced.discard(node.name)

    def is_running(self, node: NodeSettings) -> bool:
        return self.running.get(node.name, False)

    def stop(self, node: NodeSettings, timeout: float) -> None:
        self.steps.append(f"stop {node.name}{' desynced' if node.name in self.desynced else ''}"
                          + self._maint(node))
        self.running[node.name] = False

    def grastate(self, node: NodeSettings) -> str | None:
        return self.grastates.get(node.name)

    def log_tail(self, node: NodeSettings, lines: int = 30) -> str:
        return ""

    def wsrep_recover(self, node: NodeSettings, timeout: float) -> str:
        self.steps.append(f"recover {node.name}")
        return f"[Note] WSREP: Recovered position: {UUID}:{self.recovered[node.name]}\n"

    def write_grastate(self, node: NodeSettings, text: str) -> None:
        self.steps.append(f"grastate {node.name} safe={int(parse_grastate(text).safe_to_bootstrap)}")
        self.grastates[node.name] = text

    def query(self, node: NodeSettings, sql: str, timeout: float = 30.0) -> str:
        if not self.running.get(node.name):
            raise QueryFailed(node.name, "ERROR 2002 (HY000): Can't connect", unreachable=True)
        if "wsrep_desync = ON" in sql:
            self.desynced.add(node.name)
            self.steps.append(f"drain {node.name}" + self._maint(node))
            return ""
        if "wsrep_desync = OFF" in sql:
            self.desynced.discard(node.name)
            return ""
        if sql == lifecycle.STATUS_SQL:
            size = sum(self.running.values())
            state = "Donor/Desynced" if node.name in self.desynced else "Synced"
            return "\n".join(f"{k}\t{v}" for k, v in {
                "wsrep_local_state_comment": state, "wsrep_local_state": "4",
                "wsrep_cluster_size": str(size), "wsrep_cluster_status": "Primary",
                "wsrep_ready": "ON", "wsrep_connected": "ON", "wsrep_cluster_state_uuid": UUID,
                "wsrep_cluster_conf_id": "7"}.items()) + "\n"
        return ""

    def client_argv(self, node: NodeSettings, batch: bool) -> list[str]:
        return ["true"]


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
    monkeypatch.setattr("galerakv.cluster.doctor.check_before_start", lambda *_a: None)
    monkeypatch.setattr("galerakv.cluster.operations.lifecycle._check_before_start", lambda *_a: None)
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
    assert after == ["grastate db2 safe=1", "start db2 bootstrap", "start db1", "start db3"]
    assert any("applying the recovery rule" in line for line in lines)


def test_remove_node_below_three_changes_nothing_without_force(settings: Settings) -> None:
    assert settings.source is not None
    before = settings.source.read_text()
    t = FakeTransport(settings)
    with pytest.raises(ClusterError, match="pass --force"):
        membership.remove_node(settings, t, lambda _line: None, "db3")
    assert settings.source.read_text() == before and t.steps == []
