"""Restart a running cluster one node at a time without losing a request.

Each node is drained before it stops: ``SET GLOBAL wsrep_desync = ON`` turns
it Donor/Desynced, which galerakv servers (route = "nodes", probing every
second) and ``galerakv clustercheck`` both read as "do not use", and with
HAProxy the maintenance switch is set too. After a pause longer than a probe
round (or two health checks), nobody starts new work on it; then it stops
cleanly (SIGTERM: it leaves the group), starts again with the configuration
rendered from galerakv.toml now, and catches up by IST. The next node waits
until it is Synced and has been seen healthy for a while.

The server's own routing keeps the first healthy node of the metadata file as
the writer, so the nodes restart in reverse order: the writer moves once, last.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

from galerakv.cluster import balancer
from galerakv.cluster.operations import lifecycle
from galerakv.cluster.render.node import render_all
from galerakv.cluster.transport.base import QueryFailed, Report, Transport
from galerakv.config import NodeSettings, Settings
from galerakv.errors import ClusterError
from galerakv.paths import StatePaths
from galerakv.secrets import load

SERVER_PROBE_INTERVAL = 1.0  # galerakv.backend.mariadb probes every node this often
SETTLE_ROUNDS = 2.5  # probe rounds (or health checks) to wait for clients to move away


@dataclass(frozen=True)
class RestartStep:
    node: str
    drained: float  # seconds spent draining
    down: float  # seconds from stop to Synced again


def settle_seconds(settings: Settings) -> float:
    """How long clients need to notice a drained (or returned) node."""
    seconds = SETTLE_ROUNDS * SERVER_PROBE_INTERVAL
    if balancer.managed(settings):
        seconds = max(seconds, SETTLE_ROUNDS * 2 * settings.balancer.check_interval)
    return seconds


def drain(settings: Settings, transport: Transport, node: NodeSettings, report: Report,
          by: str = "galerakv cluster restart --rolling") -> None:
    """Take ``node`` out of every client's rotation; it keeps running."""
    balancer.set_maintenance(settings, node, f"drained by `{by}`\n")
    transport.query(node, "SET GLOBAL wsrep_desync = ON;", timeout=30)
    report(f"{node.name}: drained (wsrep_desync = ON"
           + (", balancer maintenance on)" if balancer.managed(settings) else ")"))


def undrain(settings: Settings, transport: Transport, node: NodeSettings) -> None:
    """Undo :func:`drain` (the desync flag is gone anyway after a restart)."""
    balancer.set_maintenance(settings, node, None)
    if transport.is_running(node):
        # it may have stopped meanwhile; a restarted node is not desynced anyway
        with contextlib.suppress(QueryFailed):
            transport.query(node, "SET GLOBAL wsrep_desync = OFF;", timeout=30)


def restart_order(nodes: Sequence[NodeSettings]) -> list[NodeSettings]:
    """Last node first: the first healthy node is every server's writer, so it goes last."""
    return list(reversed(nodes))


def rolling_restart(settings: Settings, transport: Transport, report: Report, *,
                    join_timeout: float = lifecycle.JOIN_TIMEOUT,
                    stop_timeout: float = lifecycle.STOP_TIMEOUT) -> list[RestartStep]:
    """Restart every node in turn; refuse unless the cluster is healthy to begin with."""
    nodes = settings.cluster.nodes
    current = lifecycle.status(settings, transport)
    if not current.verdict.healthy:
        raise ClusterError("a rolling restart needs a healthy cluster (stopping a node of a "
                           f"{current.verdict.verdict} one may cost the quorum): "
                           + "; ".join(current.verdict.reasons)
                           + "; see `galerakv cluster status` or `galerakv cluster up`")
    if len(nodes) < 2:
        raise ClusterError("a one-node cluster cannot restart without an outage; use "
                           "`galerakv cluster down` and `galerakv cluster up`")
    secrets = load(StatePaths.of(settings).secrets)
    if secrets is None:
        raise ClusterError(f"the secrets file {StatePaths.of(settings).secrets} is missing")
    rendered = render_all(settings, transport.ctx)
    settle = settle_seconds(settings)
    steps: list[RestartStep] = []
    for node in restart_order(nodes):
        others = [n for n in nodes if n != node]
        began = time.monotonic()
        try:
            drain(settings, transport, node, report)
            time.sleep(settle)
            drained = time.monotonic() - began
            stopped_at = time.monotonic()
            report(f"{node.name}: stopping (clients moved away {drained:.1f} s ago)")
            transport.stop(node, stop_timeout)
            lifecycle.wait_for_leave(transport, others, report)
            transport.write_config(node, rendered[node.name], secrets)
            report(f"{node.name}: starting, rejoining the cluster")
            transport.start(node, bootstrap=False)
            lifecycle.wait_synced(transport, node, report, join_timeout)
        finally:
            undrain(settings, transport, node)
        down = time.monotonic() - stopped_at
        # let every client see it healthy before the next one leaves
        time.sleep(settle)
        steps.append(RestartStep(node.name, drained, down))
    return steps
