"""An in-memory transport for unit tests of the operations (up, recover, rolling, membership).

It keeps per node: running or not, desynced or not, a grastate.dat text and
the position ``--wsrep-recover`` would find; it answers the status query the
way a Galera node would (cluster size = the nodes running, Donor/Desynced while
desynced). Every step is recorded in :attr:`FakeTransport.steps`, so a test
checks the order of operations without a database.
"""

from __future__ import annotations

from galerakv.cluster.render.node import RenderContext
from galerakv.cluster.transport.base import STATUS_SQL, Preflight, QueryFailed, Report, Transport
from galerakv.config import NodeSettings, Settings
from galerakv.errors import ClusterError, NodeError
from galerakv.galera.log import RECOVER_MARKER
from galerakv.galera.position import Position, parse_grastate
from galerakv.paths import CheckPaths
from galerakv.secrets import Secrets

FAKE_UUID = "b1cad595-e97e-11f1-95a0-a24f95a70e4b"


class FakeTransport(Transport):
    """Nodes that exist only in memory; every node starts running, Synced, initialized."""

    def __init__(self, settings: Settings, recovered: dict[str, int] | None = None,
                 uuid: str = FAKE_UUID) -> None:
        super().__init__(settings, RenderContext())
        self.uuid = uuid
        self.running = {n.name: True for n in settings.cluster.nodes}
        self.desynced: set[str] = set()
        self.steps: list[str] = []
        self.recovered = recovered or {}
        self.grastates: dict[str, str | None] = {
            n.name: f"version: 2.1\nuuid: {uuid}\nseqno: -1\nsafe_to_bootstrap: 0\n"
            for n in settings.cluster.nodes}
        self.logs: dict[str, str] = {n.name: "" for n in settings.cluster.nodes}

    def _maint(self, node: NodeSettings) -> str:
        return " (maintenance)" if CheckPaths.of(self.settings, node).maintenance.exists() else ""

    def preflight(self, nodes: tuple[NodeSettings, ...]) -> Preflight:
        return Preflight()

    def missing_packages(self) -> list[str]:
        return []

    def install_packages(self, packages: list[str], report: Report) -> None:
        raise AssertionError("the fake transport installs nothing")

    def write_config(self, node: NodeSettings, files: dict[str, str], secrets: Secrets) -> None:
        self.steps.append(f"config {node.name}")

    def is_initialized(self, node: NodeSettings) -> bool:
        return True

    def initialize(self, node: NodeSettings, secrets: Secrets) -> None:
        raise AssertionError("the fake transport's nodes are initialized")

    def prepare_empty(self, node: NodeSettings) -> None:
        self.steps.append(f"empty {node.name}")

    def start(self, node: NodeSettings, bootstrap: bool, position: Position | None = None) -> None:
        self.steps.append(f"start {node.name}{' bootstrap' if bootstrap else ''}"
                          + (f" from {position.seqno}" if position is not None else ""))
        self.running[node.name] = True
        self.desynced.discard(node.name)

    def is_running(self, node: NodeSettings) -> bool:
        return self.running.get(node.name, False)

    def stop(self, node: NodeSettings, timeout: float) -> None:
        self.steps.append(f"stop {node.name}{' desynced' if node.name in self.desynced else ''}"
                          + self._maint(node))
        self.running[node.name] = False

    def _grastate_text(self, node: NodeSettings) -> str | None:
        return self.grastates.get(node.name)

    def _write_grastate_text(self, node: NodeSettings, text: str) -> None:
        self.steps.append(f"grastate {node.name} safe={int(parse_grastate(text).safe_to_bootstrap)}")
        self.grastates[node.name] = text

    def log_tail(self, node: NodeSettings, lines: int = 30) -> str:
        return "\n".join(self.logs.get(node.name, "").splitlines()[-lines:])

    def _wsrep_recover_log(self, node: NodeSettings, timeout: float) -> str:
        self.steps.append(f"recover {node.name}")
        if node.name not in self.recovered:
            raise NodeError(node.name, "mariadbd --wsrep-recover exited with 1")
        text = (f"{RECOVER_MARKER} {node.name}\n"
                f"[Note] WSREP: Recovered position: {self.uuid}:{self.recovered[node.name]}\n")
        self.logs[node.name] = self.logs.get(node.name, "") + text
        return text

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
        if sql == STATUS_SQL:
            size = sum(self.running.values())
            desynced = node.name in self.desynced
            return "\n".join(f"{k}\t{v}" for k, v in {
                "wsrep_local_state_comment": "Donor/Desynced" if desynced else "Synced",
                "wsrep_local_state": "2" if desynced else "4",
                "wsrep_cluster_size": str(size), "wsrep_cluster_status": "Primary",
                "wsrep_ready": "ON", "wsrep_connected": "ON", "wsrep_cluster_state_uuid": self.uuid,
                "wsrep_cluster_conf_id": "7"}.items()) + "\n"
        return ""

    def client_argv(self, node: NodeSettings, batch: bool, extra: tuple[str, ...] = ()) -> list[str]:
        if not self.running.get(node.name):  # as the mariadb client fails on a stopped node
            return ["sh", "-c", "echo \"ERROR 2002 (HY000): Can't connect to local server\" >&2; exit 1"]
        return ["true"]

    def script_argv(self, node: NodeSettings, script: str) -> list[str]:
        raise ClusterError("the in-memory transport runs no scripts (backups need real nodes)")
