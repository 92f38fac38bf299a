"""A node's Galera state as an immutable snapshot, and the judgements made on it.

:func:`node_status` turns what a node says (``SHOW GLOBAL STATUS LIKE 'wsrep%'``)
into a frozen :class:`NodeStatus`; :meth:`NodeStatus.serving` is the one answer
to "may this node serve requests?", used by the server's routing, the
clustercheck responder, ``status`` and the doctor; :func:`cluster_verdict`
judges the whole cluster. All pure, unit-tested without a database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Verdict = Literal["healthy", "degraded", "down"]

SYNCED = 4  # wsrep_local_state of a node in step with the cluster
DONOR = 2  # Donor/Desynced: serving a state transfer or desynced by hand


@dataclass(frozen=True)
class Serving:
    """Whether a node may serve requests, and the reason in words."""

    ok: bool
    reason: str


@dataclass(frozen=True)
class NodeStatus:
    """One node as its ``wsrep_%`` status variables describe it."""

    name: str
    reachable: bool
    state: str = ""  # wsrep_local_state_comment: Synced, Donor/Desynced, Joining, ...
    local_state: int = 0
    cluster_size: int = 0
    cluster_status: str = ""  # Primary, non-Primary, Disconnected
    ready: bool = False
    connected: bool = False
    last_committed: int = -1
    flow_control_paused: float = 0.0
    recv_queue: int = 0
    cluster_state_uuid: str = ""
    conf_id: int = -1
    error: str = ""
    cert_failures: int = 0  # wsrep_local_cert_failures: this node's writes lost to a conflicting one

    @property
    def primary(self) -> bool:
        return self.cluster_status == "Primary"

    @property
    def synced(self) -> bool:
        return self.local_state == SYNCED

    @property
    def donor(self) -> bool:
        return self.local_state == DONOR

    def serving(self, donor_ok: bool = False) -> Serving:
        """May this node serve reads and writes? Reachable, in the Primary component,
        wsrep_ready, and Synced (or Donor/Desynced when ``donor_ok``: a node serving a
        non-blocking state transfer still answers)."""
        if not self.reachable:
            return Serving(False, f"not reachable ({self.error or 'no answer'})")
        if not self.primary:
            return Serving(False, f"not in the Primary component ({self.cluster_status or '?'})")
        if not self.ready:
            return Serving(False, "wsrep_ready is OFF")
        if self.synced:
            return Serving(True, "Synced")
        if self.local_state == 0:  # not a Galera state: the variable was missing
            return Serving(False, "wsrep_local_state unknown")
        if self.donor and donor_ok:
            return Serving(True, f"{self.state or 'Donor/Desynced'} (counted as up: donor allowed)")
        return Serving(False, f"not Synced ({self.state or self.local_state})")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["primary"] = self.primary
        return data


def parse_status_rows(text: str) -> dict[str, str]:
    """``mariadb -N -B`` output of SHOW STATUS (name TAB value per line) -> dict."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("\t")
        if sep:
            values[name.strip().lower()] = value.strip()
    return values


def _int(v: str | None, default: int) -> int:
    try:
        return int(v) if v is not None else default
    except ValueError:
        return default


def _float(v: str | None) -> float:
    try:
        return float(v) if v is not None else 0.0
    except ValueError:
        return 0.0


def node_status(name: str, variables: Mapping[str, str]) -> NodeStatus:
    """Build a :class:`NodeStatus` from status variables (names in lower case)."""
    v = variables
    return NodeStatus(
        name=name,
        reachable=True,
        state=v.get("wsrep_local_state_comment", ""),
        local_state=_int(v.get("wsrep_local_state"), 0),
        cluster_size=_int(v.get("wsrep_cluster_size"), 0),
        cluster_status=v.get("wsrep_cluster_status", ""),
        ready=v.get("wsrep_ready", "").upper() == "ON",
        connected=v.get("wsrep_connected", "").upper() == "ON",
        last_committed=_int(v.get("wsrep_last_committed"), -1),
        flow_control_paused=_float(v.get("wsrep_flow_control_paused")),
        recv_queue=_int(v.get("wsrep_local_recv_queue"), 0),
        cert_failures=_int(v.get("wsrep_local_cert_failures"), 0),
        cluster_state_uuid=v.get("wsrep_cluster_state_uuid", ""),
        conf_id=_int(v.get("wsrep_cluster_conf_id"), -1),
    )


def unreachable(name: str, error: str) -> NodeStatus:
    return NodeStatus(name=name, reachable=False, error=error)


# --------------------------------------------------------------------------- verdict


@dataclass(frozen=True)
class ClusterVerdict:
    verdict: Verdict
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def healthy(self) -> bool:
        return self.verdict == "healthy"


def cluster_verdict(statuses: Sequence[NodeStatus], expected_size: int) -> ClusterVerdict:
    """healthy: every node serving (:meth:`NodeStatus.serving`), one state UUID, full size.

    down: no node is reachable, or no reachable node is in a Primary component
    (nothing can be written). degraded: anything in between; the reasons say what.
    """
    up = [s for s in statuses if s.reachable]
    primary = [s for s in up if s.primary]
    if not up:
        return ClusterVerdict("down", ("no node answers",))
    if not primary:
        return ClusterVerdict("down", ("no node is in a Primary component",))
    reasons: list[str] = []
    for s in statuses:
        serving = s.serving()
        if not serving.ok:
            reasons.append(f"{s.name}: {serving.reason}")
        if s.reachable and s.cluster_size != expected_size:
            reasons.append(f"{s.name}: sees cluster size {s.cluster_size}, expected {expected_size}")
    uuids = {s.cluster_state_uuid for s in primary}
    if len(uuids) > 1:
        reasons.append("nodes disagree on the cluster state UUID: " + ", ".join(sorted(uuids)))
    conf_ids = {s.conf_id for s in primary}
    if len(conf_ids) > 1:
        reasons.append("Primary nodes are in different memberships (possible split brain)")
    return ClusterVerdict("degraded" if reasons else "healthy", tuple(reasons))
