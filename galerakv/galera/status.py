"""Cluster state as immutable snapshots, and the pure decisions taken on them.

Parsers turn what the nodes say (``grastate.dat``, ``SHOW GLOBAL STATUS LIKE
'wsrep%'``) into frozen objects; :func:`cluster_verdict` and :func:`plan_start`
decide on those objects alone, so they are unit-tested without a database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from galerakv.errors import ClusterError

ZERO_UUID = "00000000-0000-0000-0000-000000000000"

Verdict = Literal["healthy", "degraded", "down"]


# --------------------------------------------------------------------------- grastate.dat


@dataclass(frozen=True)
class GraState:
    """A node's saved Galera position (``grastate.dat``), written when it stops."""

    uuid: str = ZERO_UUID
    seqno: int = -1
    safe_to_bootstrap: bool = False
    version: str = ""

    @property
    def never_joined(self) -> bool:
        return self.uuid == ZERO_UUID


def parse_grastate(text: str) -> GraState:
    """Parse ``grastate.dat``; unknown lines are ignored, missing ones keep defaults."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        values[key.strip()] = value.strip()
    try:
        seqno = int(values.get("seqno", "-1"))
    except ValueError:
        seqno = -1
    return GraState(
        uuid=values.get("uuid", ZERO_UUID) or ZERO_UUID,
        seqno=seqno,
        safe_to_bootstrap=values.get("safe_to_bootstrap", "0") == "1",
        version=values.get("version", ""),
    )


# --------------------------------------------------------------------------- live status


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

    @property
    def primary(self) -> bool:
        return self.cluster_status == "Primary"

    @property
    def synced(self) -> bool:
        return self.state == "Synced"

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
    """healthy: every node reachable, Synced, Primary, ready, one state UUID, full size.

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
        if not s.reachable:
            reasons.append(f"{s.name}: not reachable ({s.error or 'no answer'})")
            continue
        if not s.primary:
            reasons.append(f"{s.name}: {s.cluster_status or 'not'} Primary")
        if not s.synced:
            reasons.append(f"{s.name}: state {s.state or 'unknown'}, not Synced")
        if not s.ready:
            reasons.append(f"{s.name}: wsrep_ready is OFF")
        if s.cluster_size != expected_size:
            reasons.append(f"{s.name}: sees cluster size {s.cluster_size}, expected {expected_size}")
    uuids = {s.cluster_state_uuid for s in primary}
    if len(uuids) > 1:
        reasons.append("nodes disagree on the cluster state UUID: " + ", ".join(sorted(uuids)))
    conf_ids = {s.conf_id for s in primary}
    if len(conf_ids) > 1:
        reasons.append("Primary nodes are in different memberships (possible split brain)")
    return ClusterVerdict("degraded" if reasons else "healthy", tuple(reasons))


# --------------------------------------------------------------------------- start plan


@dataclass(frozen=True)
class StartPlan:
    """Which node to bootstrap (None: join a running Primary component) and which to join."""

    bootstrap: str | None
    join: tuple[str, ...]
    reason: str


def choose_bootstrap_node(names: Sequence[str], grastates: Mapping[str, GraState | None]) -> tuple[str, str]:
    """The node to bootstrap a stopped cluster from, and why.

    - no node has ever joined a cluster (no grastate.dat, or an all-zero UUID
      everywhere): the root node, the first in the metadata file;
    - else the node marked ``safe_to_bootstrap: 1`` (the last one to leave
      after a clean stop); if several are, the highest seqno, then metadata order;
    - else none is safe: refuse, and point at ``galerakv cluster recover``.
    """
    if not names:
        raise ClusterError("the metadata file lists no nodes")
    known = {n: g for n, g in grastates.items() if g is not None and not g.never_joined}
    if not known:
        return names[0], f"{names[0]} is the root node and the cluster was never bootstrapped"
    uuids = {g.uuid for g in known.values()}
    if len(uuids) > 1:
        raise ClusterError("nodes hold different cluster histories ("
                           + ", ".join(f"{n}: {g.uuid}" for n, g in known.items())
                           + "); refusing to bootstrap, run `galerakv cluster doctor`")
    safe = [n for n in names if (g := known.get(n)) is not None and g.safe_to_bootstrap]
    if safe:
        best = max(safe, key=lambda n: (known[n].seqno, -names.index(n)))
        g = known[best]
        return best, f"{best} is marked safe_to_bootstrap (seqno {g.seqno}): it stopped last"
    positions = ", ".join(f"{n}: seqno {known[n].seqno}" for n in names if n in known)
    raise ClusterError(
        "no node is marked safe to bootstrap (the cluster did not stop cleanly; "
        f"{positions}); run `galerakv cluster recover` to pick the most advanced node "
        "(by hand: `mariadbd --wsrep-recover` on each, then set safe_to_bootstrap: 1 in the "
        "grastate.dat of the one with the highest seqno)"
    )


def plan_start(names: Sequence[str], running: Mapping[str, NodeStatus],
               grastates: Mapping[str, GraState | None]) -> StartPlan:
    """What ``up`` does, from what runs now and what the stopped nodes saved.

    ``running`` holds the nodes whose process is alive (reachable or not).
    """
    stopped = tuple(n for n in names if n not in running)
    primary = [n for n in names if n in running and running[n].primary]
    if running:
        if primary:
            return StartPlan(None, stopped, f"joining the Primary component of {primary[0]}")
        raise ClusterError(
            "some nodes run (" + ", ".join(n for n in names if n in running)
            + ") but none is in a Primary component; stop them with `galerakv cluster down` "
            "and run `galerakv cluster up` again, or `galerakv cluster recover`"
        )
    node, reason = choose_bootstrap_node(names, grastates)
    return StartPlan(node, tuple(n for n in names if n != node), reason)


# --------------------------------------------------------------------------- log reading

_STATUS_CHANGE_RE = re.compile(r"Server status change (\w+) -> (\w+)")
START_MARKER = "---- galerakv: starting"
RECOVER_MARKER = "---- galerakv: mariadbd --wsrep-recover"


def last_status_change(log_text: str) -> str | None:
    """The node's latest wsrep status (``joiner``, ``synced``, ...) from its log.

    Only lines after the last start marker count: earlier runs are history.
    """
    _, _, current = log_text.rpartition(START_MARKER)
    matches = _STATUS_CHANGE_RE.findall(current)
    return matches[-1][1] if matches else None
