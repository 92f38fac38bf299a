"""One look at the whole cluster: what ``galerakv cluster status`` prints, and the doctor's findings.

Every node's Galera status, the verdict (the nodes' :func:`~galerakv.galera.status.cluster_verdict`
with the balancer's problems, :func:`~galerakv.cluster.balancer.with_balancer`), the balancer's
view of each server, the nodes in maintenance, and, when asked, the doctor's report. ``status``
prints it once, ``status --watch`` redraws it every second, and the server's dashboard serves it
as JSON (``/ui/api/cluster``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from galerakv.cluster import balancer as _balancer
from galerakv.cluster import doctor as _doctor
from galerakv.cluster.balancer import BalancerStatus, Maintenance
from galerakv.cluster.doctor.collect import collect
from galerakv.cluster.operations import lifecycle
from galerakv.cluster.transport.base import Transport
from galerakv.config import Settings
from galerakv.errors import GalerakvError
from galerakv.galera.status import ClusterVerdict, NodeStatus, cluster_verdict, node_status, unreachable

DOCTOR_HINT = "run `galerakv cluster doctor` to find the cause (docs/troubleshooting.md)"


@dataclass(frozen=True)
class Overview:
    cluster: str
    nodes: tuple[NodeStatus, ...]
    addresses: dict[str, str]  # node name -> address:port
    verdict: ClusterVerdict  # the nodes' verdict with the balancer's problems
    balancer: BalancerStatus | None
    maintenance: dict[str, Maintenance]
    doctor: _doctor.DoctorReport | None = None
    doctor_error: str = ""  # why the doctor could not run, when it could not
    taken_at: float = field(default_factory=time.time)

    @property
    def hint(self) -> str | None:
        return None if self.verdict.healthy else DOCTOR_HINT

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``status --json`` (and, with ``doctor``, of the dashboard's cluster page)."""
        nodes = []
        for st in self.nodes:
            serving = st.serving()
            nodes.append({**st.to_dict(), "address": self.addresses.get(st.name, ""),
                          "serving": serving.ok, "serving_reason": serving.reason,
                          "maintenance": st.name in self.maintenance})
        out: dict[str, Any] = {
            "cluster": self.cluster, "verdict": self.verdict.verdict, "reasons": list(self.verdict.reasons),
            "nodes": nodes, "balancer": self.balancer.to_dict() if self.balancer else None,
            "writer": self.balancer.writer if self.balancer else None,
            "maintenance": [m.to_dict() for m in self.maintenance.values()], "hint": self.hint,
            "taken_at": round(self.taken_at, 3)}
        if self.doctor is not None or self.doctor_error:
            out["doctor"] = self.doctor.to_dict() if self.doctor else None
            out["doctor_error"] = self.doctor_error
        return out


def overview(settings: Settings, transport: Transport, *, with_doctor: bool = False) -> Overview:
    """Read every node, the balancer and (``with_doctor``) run the doctor's checks; with the doctor,
    the nodes' status comes from the doctor's own reading of them (one round of queries, not two)."""
    lb = _balancer.status(settings)
    report_doctor: _doctor.DoctorReport | None = None
    error = ""
    nodes: tuple[NodeStatus, ...] | None = None
    if with_doctor:
        try:
            facts = collect(settings, transport, offline=False)
            report_doctor = _doctor.diagnose(facts)
            nodes = tuple(node_status(nf.name, nf.live.status) if nf.live is not None
                          else unreachable(nf.name, nf.live_error or "no answer") for nf in facts.nodes)
        except (GalerakvError, OSError) as exc:  # the view still shows the nodes
            error = str(exc)
    if nodes is None:
        nodes = lifecycle.status(settings, transport).nodes
    verdict = cluster_verdict(nodes, len(settings.cluster.nodes))
    return Overview(settings.cluster.name, nodes,
                    {n.name: f"{n.address}:{n.port}" for n in settings.cluster.nodes},
                    _balancer.with_balancer(verdict, lb), lb, _balancer.maintenance(settings),
                    report_doctor, error)
