"""Recover a cluster after a full outage: gather the evidence, apply the decision.

After a clean stop the last node to leave writes ``safe_to_bootstrap: 1`` in
its grastate.dat. After a crash (kill -9, power loss) every grastate.dat says
``seqno: -1``, ``safe_to_bootstrap: 0``: the position each node reached is
only in its InnoDB files, and ``mariadbd --wsrep-recover`` prints it.

:func:`gather` collects that evidence (running ``--wsrep-recover``, in
parallel, on the stopped nodes whose seqno is -1); the choice itself is
:func:`galerakv.galera.bootstrap.decide`, the one rule ``up``, ``recover`` and
the doctor share; :func:`apply` makes the chosen node the only one allowed to
bootstrap (``safe_to_bootstrap: 1`` only when it does not have it; with
``--force`` any other node marked safe is set back to 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from galerakv.cluster.transport.base import Report, Transport
from galerakv.config import NodeSettings, Settings
from galerakv.errors import ClusterError, NodeError
from galerakv.galera.bootstrap import Decision, Evidence, decide
from galerakv.galera.position import GraState
from galerakv.galera.status import NodeStatus

RECOVER_TIMEOUT = 180.0


# --------------------------------------------------------------------------- I/O


def gather(transport: Transport, nodes: Sequence[NodeSettings], report: Report,
           timeout: float = RECOVER_TIMEOUT) -> dict[str, Evidence]:
    """Read every stopped node's grastate.dat; ``--wsrep-recover`` (in parallel) where seqno is -1."""
    saved: dict[str, GraState | None] = dict(zip((n.name for n in nodes), transport.each(nodes, transport.grastate),
                                                 strict=True))  # every host at once
    to_recover = [n for n in nodes if (g := saved[n.name]) is not None and g.seqno < 0]
    if to_recover:
        report("running mariadbd --wsrep-recover on "
               + ", ".join(n.name for n in to_recover) + " (seqno -1: position only in InnoDB)")

    def recover(node: NodeSettings) -> Evidence:
        try:
            found = transport.wsrep_recover(node, timeout)
        except NodeError as exc:
            return Evidence(node.name, saved[node.name], None, True, str(exc).splitlines()[0])
        return Evidence(node.name, saved[node.name], found, True)

    found = {n.name: Evidence(n.name, saved[n.name]) for n in nodes}
    if to_recover:
        with ThreadPoolExecutor(max_workers=len(to_recover)) as pool:
            for ev in pool.map(recover, to_recover):
                found[ev.name] = ev
    return found


def apply(transport: Transport, settings: Settings, decision: Decision, report: Report) -> None:
    """Make the chosen node the only one allowed to bootstrap."""
    assert decision.bootstrap is not None
    for name in (*decision.clear_safe, *((decision.bootstrap,) if decision.mark_safe else ())):
        safe = name == decision.bootstrap
        transport.set_safe_to_bootstrap(settings.cluster.node(name), safe)
        report(f"{name}: grastate.dat safe_to_bootstrap set to {int(safe)}")


def plan(settings: Settings, transport: Transport, report: Report, force: str | None = None,
         running: Mapping[str, NodeStatus] | None = None, explain: bool = True) -> Decision:
    """Gather the stopped nodes' evidence and decide; raise when refused.

    The evidence and the decision are printed when ``explain`` asks, and always
    after an unclean stop or a refusal, where the operator needs them.
    """
    names = [n.name for n in settings.cluster.nodes]
    running = running or {}
    stopped = [n for n in settings.cluster.nodes if n.name not in running]
    evidence = gather(transport, stopped, report)
    decision = decide(names, evidence, force, running)
    if decision.unclean and not explain:
        report("every node is stopped and none is marked safe to bootstrap (an unclean stop): "
               "applying the recovery rule")
    show_evidence = explain or decision.unclean or not decision.ok
    if show_evidence:
        report("evidence:")
        for line in decision.evidence:
            report(f"  {line}")
    for warning in decision.warnings:
        report(f"warning: {warning}")
    if not decision.ok:
        raise ClusterError(f"refusing to bootstrap: {decision.refused}")
    if decision.bootstrap is not None and show_evidence:
        report(f"decision: bootstrap {decision.bootstrap}: {decision.reason}")
    return decision
