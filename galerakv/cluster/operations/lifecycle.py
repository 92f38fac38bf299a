"""Bring the cluster up and down, and report its state, on any transport.

``up`` follows the procedure an operator would: install what is missing,
check everything that can be checked before starting anything, render the
configuration, bootstrap one node with ``--wsrep-new-cluster`` (the root node
the first time, afterwards the one ``grastate.dat`` marks safe, or after an
unclean full stop the one :mod:`galerakv.cluster.operations.recovery` picks), wait until it
is Primary and Synced, create the database and accounts, then join the other
nodes one at a time, each waiting for Synced. ``down`` stops the nodes in
reverse order so the root node, stopped last, is the one safe to bootstrap.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from galerakv.cluster import balancer, certs, doctor
from galerakv.cluster.operations import recovery
from galerakv.cluster.render.node import render_all
from galerakv.cluster.transport.base import Report, Transport
from galerakv.config import NodeSettings, Settings
from galerakv.errors import ClusterError, NodeError
from galerakv.galera.log import last_status_change
from galerakv.galera.position import GraState
from galerakv.galera.status import ClusterVerdict, NodeStatus, cluster_verdict
from galerakv.paths import StatePaths
from galerakv.secrets import ADMIN_TCP_USER, Secrets, ensure, load

BOOTSTRAP_TIMEOUT = 90.0
JOIN_TIMEOUT = 300.0
STOP_TIMEOUT = 120.0
LEAVE_TIMEOUT = 30.0
POLL_INTERVAL = 0.25


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class ClusterReport:
    """Every node's status and the verdict on the whole."""

    name: str
    nodes: tuple[NodeStatus, ...]
    verdict: ClusterVerdict

    def to_dict(self) -> dict[str, Any]:
        return {"cluster": self.name, "verdict": self.verdict.verdict,
                "reasons": list(self.verdict.reasons),
                "nodes": [n.to_dict() for n in self.nodes]}



def status(settings: Settings, transport: Transport) -> ClusterReport:
    nodes = tuple(transport.each(settings.cluster.nodes, transport.status))
    return ClusterReport(settings.cluster.name, nodes,
                         cluster_verdict(nodes, len(settings.cluster.nodes)))


def grastates(transport: Transport, nodes: tuple[NodeSettings, ...]) -> dict[str, GraState | None]:
    return dict(zip((n.name for n in nodes), transport.each(nodes, transport.grastate), strict=True))


# --------------------------------------------------------------------------- checks


def node_count_problems(count: int, allow_small: bool) -> tuple[list[str], list[str]]:
    """(errors, warnings) about the number of nodes."""
    errors: list[str] = []
    warnings: list[str] = []
    if count == 0:
        errors.append("the metadata file lists no [[cluster.nodes]]; "
                      "run `galerakv cluster init --local 3` for a starter file")
    elif count < 3 and not allow_small:
        errors.append(f"{count} node{'s' if count > 1 else ''}: a Galera cluster needs at least 3 "
                      "to survive the loss of one (pass --allow-small to run it anyway)")
    elif count < 3:
        warnings.append(f"only {count} node{'s' if count > 1 else ''}: "
                        "losing one stops the cluster (too-few-nodes)")
    if count and count % 2 == 0:
        warnings.append(f"{count} nodes is an even number: a 50/50 network split leaves no "
                        "Primary component; add a node or run an arbitrator (garbd) (even-node-count)")
    return errors, warnings


# --------------------------------------------------------------------------- up


@dataclass(frozen=True)
class UpResult:
    changed: bool
    started: tuple[str, ...]
    bootstrapped: str | None
    report: ClusterReport
    seconds: float


def up(settings: Settings, transport: Transport, report: Report, *, allow_small: bool = False,
       bootstrap_timeout: float = BOOTSTRAP_TIMEOUT, join_timeout: float = JOIN_TIMEOUT,
       install: bool = True, recover: bool = False, force: str | None = None) -> UpResult:
    """Start every stopped node; see the module docstring for the order.

    When every node is stopped and none is marked safe to bootstrap (an
    unclean stop), or when ``recover`` or ``force`` asks for it, the recovery
    rule (:mod:`galerakv.cluster.operations.recovery`) picks the node first.
    """
    began = time.monotonic()
    nodes = settings.cluster.nodes
    errors, warnings = node_count_problems(len(nodes), allow_small)
    if errors:
        raise ClusterError("; ".join(errors))
    for warning in warnings:
        report(f"warning: {warning}")

    if install:
        install_missing(settings, transport, report)
    balancer_pre = balancer.preflight(settings)
    for warning in balancer_pre.warnings:
        report(f"warning: {warning}")

    alive = transport.each(nodes, transport.is_running)
    running = dict(zip((n.name for n, up in zip(nodes, alive, strict=True) if up),
                       transport.each([n for n, up in zip(nodes, alive, strict=True) if up], transport.status),
                       strict=True))
    if len(running) == len(nodes):
        current = ClusterReport(settings.cluster.name, tuple(running[n.name] for n in nodes),
                                cluster_verdict(list(running.values()), len(nodes)))
        if current.verdict.healthy:
            if balancer_pre.errors:
                raise ClusterError("cannot start the balancer:\n"
                                   + "\n".join(f"  - {e}" for e in balancer_pre.errors))
            report(f"cluster {settings.cluster.name} is already up and healthy "
                   f"({len(nodes)}/{len(nodes)} Synced); nothing to do")
            balancer.start(settings, transport, report)
            return UpResult(False, (), None, current, time.monotonic() - began)
        raise ClusterError("every node runs but the cluster is "
                           f"{current.verdict.verdict}: " + "; ".join(current.verdict.reasons)
                           + "; see `galerakv cluster status`")

    stopped = tuple(n for n in nodes if n.name not in running)
    # the offline checks; raise on a critical finding (the bootstrap findings are left to
    # the decision below, which gives its own refusals with the evidence)
    doctor.check_before_start(settings, transport, stopped, tolerate=BOOTSTRAP_FINDINGS)
    pre = transport.preflight(stopped)
    for warning in pre.warnings:
        report(f"warning: {warning}")
    if pre.errors or balancer_pre.errors:
        raise ClusterError("cannot start the cluster:\n"
                           + "\n".join(f"  - {e}" for e in (*pre.errors, *balancer_pre.errors)))
    # certificates: a missing one is made, a bad one (expired, other names, another CA) stops
    # here, before anything starts
    certs.ensure(settings, report)

    plan = recovery.plan(settings, transport, report, force, running,
                         explain=recover or force is not None)
    if plan.bootstrap is not None:
        recovery.apply(transport, settings, plan, report)
    initialized = [n.name for n, done in zip(stopped, transport.each(stopped, transport.is_initialized),
                                             strict=True) if done]
    if initialized and load(StatePaths.of(settings).secrets) is None:
        raise ClusterError(f"{', '.join(initialized)} already hold data but the secrets file "
                           f"{StatePaths.of(settings).secrets} is missing, so galerakv cannot log in; "
                           "restore it, or remove the state directory to start afresh")
    secrets, created = ensure(settings)
    if created:
        report(f"generated credentials in {StatePaths.of(settings).secrets} (mode 0600)")

    rendered = render_all(settings, transport.ctx)
    transport.each(stopped, lambda node: transport.write_config(node, rendered[node.name], secrets))
    report(f"plan: {plan.reason}")

    def start(node: NodeSettings, bootstrap: bool) -> None:
        position = plan.start_positions.get(node.name)
        if position is not None:
            report(f"{node.name}: starting from its recovered position {position} "
                   "(--wsrep-start-position), so the cluster keeps its history")
        transport.start(node, bootstrap=bootstrap, position=position)

    started: list[str] = []
    if plan.bootstrap is not None:
        node = settings.cluster.node(plan.bootstrap)
        if not transport.is_initialized(node):
            report(f"{node.name}: creating the system tables")
            transport.initialize(node, secrets)
        report(f"{node.name}: bootstrapping a new Primary component (--wsrep-new-cluster)")
        start(node, bootstrap=True)
        started.append(node.name)
        wait_synced(transport, node, report, bootstrap_timeout)
        ensure_accounts(settings, transport, node, secrets)
        report(f"{node.name}: database {settings.database.name!r} and accounts ready")
    for name in plan.join:
        node = settings.cluster.node(name)
        if not transport.is_initialized(node):
            transport.prepare_empty(node)
        report(f"{node.name}: starting, joining the cluster")
        start(node, bootstrap=False)
        started.append(node.name)
        wait_synced(transport, node, report, join_timeout)

    balancer.start(settings, transport, report)
    final = status(settings, transport)
    return UpResult(True, tuple(started), plan.bootstrap, final, time.monotonic() - began)


def install_missing(settings: Settings, transport: Transport, report: Report) -> list[str]:
    """Install what the nodes' hosts lack (this machine, or each host over ssh), then what the
    balancer needs where it runs; returns what the nodes' hosts got."""
    with ThreadPoolExecutor(max_workers=1) as pool:  # the balancer's host is asked meanwhile
        for_balancer = pool.submit(balancer.missing_packages, settings)
        missing = transport.missing_packages()
        balancer_missing = for_balancer.result()
    if missing:
        report("installing missing packages: " + " ".join(missing))
        transport.install_packages(missing, report)
    if settings.cluster.transport == "local":  # the nodes' packages went to this machine too
        balancer_missing = [p for p in balancer_missing if p not in missing]
    balancer.install_packages(settings, balancer_missing, report)
    return missing


BOOTSTRAP_FINDINGS = ("not-bootstrapped", "unsafe-bootstrap-choice", "history-diverged")


def recover(settings: Settings, transport: Transport, report: Report, *,
            force: str | None = None, join_timeout: float = JOIN_TIMEOUT) -> UpResult | None:
    """``galerakv cluster recover``: after a full outage, bootstrap the right node, join the rest.

    Returns None (and says so) when the cluster runs and is healthy; refuses
    when part of it runs (``up`` joins the stopped nodes then).
    """
    nodes = settings.cluster.nodes
    if not nodes:
        raise ClusterError("the metadata file lists no [[cluster.nodes]]")
    if force is not None and force not in {n.name for n in nodes}:
        raise ClusterError(f"--force {force}: no node of that name (known: "
                           + ", ".join(n.name for n in nodes) + ")")
    running = [n for n in nodes if transport.is_running(n)]
    if running:
        current = status(settings, transport)
        if current.verdict.healthy:
            report(f"cluster {settings.cluster.name} runs and is healthy ({len(nodes)}/{len(nodes)} "
                   "Synced, Primary); nothing to recover")
            return None
        primary = [s.name for s in current.nodes if s.reachable and s.primary]
        names = ", ".join(n.name for n in running)
        if primary:
            raise ClusterError(f"the cluster runs (Primary component on {', '.join(primary)}): "
                               "nothing to recover; `galerakv cluster up` joins the stopped nodes")
        raise ClusterError(f"{names} run but none is in a Primary component; stop them with "
                           "`galerakv cluster down`, then run `galerakv cluster recover`")
    saved = grastates(transport, nodes)
    if force is None and all(g is None or g.never_joined for g in saved.values()):
        raise ClusterError("no node ever joined a cluster: nothing to recover; "
                           "`galerakv cluster up` creates it")
    return up(settings, transport, report, install=False, recover=True, force=force,
              join_timeout=join_timeout)


def wait_synced(transport: Transport, node: NodeSettings, report: Report, timeout: float) -> float:
    """Wait until ``node`` is Synced in a Primary component; show each state it passes."""
    began = time.monotonic()
    shown = ""
    while True:
        elapsed = time.monotonic() - began
        st = transport.running_status(node, 5)
        if st is None:
            raise NodeError(node.name, f"mariadbd exited while starting (after {elapsed:.1f} s)",
                            transport.log_tail(node))
        if st.reachable and st.synced and st.primary and st.ready:
            report(f"  {node.name}: Synced, Primary, cluster size {st.cluster_size} "
                   f"({elapsed:.1f} s)")
            return elapsed
        phase = _phase(transport, node, st)
        if phase != shown:
            report(f"  {node.name}: {phase} ({elapsed:.1f} s)")
            shown = phase
        if elapsed > timeout:
            raise NodeError(node.name, f"not Synced after {timeout:.0f} s (last state: {phase})",
                            transport.log_tail(node))
        time.sleep(POLL_INTERVAL)


_PHASES = {
    "connected": "connected to the group",
    "joiner": "Joiner: receiving a state transfer",
    "initializing": "state received, initializing storage",
    "initialized": "initialized",
    "joined": "Joined, catching up",
}


def _phase(transport: Transport, node: NodeSettings, st: NodeStatus) -> str:
    if st.reachable:
        return f"{st.state or 'starting'}, {st.cluster_status or 'no component'}"
    change = last_status_change(transport.log_tail(node, 200))
    return _PHASES.get(change or "", "starting (not answering yet)")


def client_host(settings: Settings) -> str:
    """Host part of the accounts used over TCP: loopback for local nodes."""
    return "127.%" if settings.cluster.transport == "local" else "%"


def admin_tcp_host(settings: Settings) -> str | None:
    """Where ``galerakv_admin`` may log in from: it serves only `cluster sql --via`, through the
    balancer, so on real hosts only the balancer's address (None: no balancer, no account)."""
    if settings.cluster.transport == "local":
        return "127.%"
    return settings.balancer.address if settings.balancer.kind != "none" else None


def accounts_sql(settings: Settings, secrets: Secrets) -> str:
    """Idempotent statements creating the database and every account (passwords and the TLS
    requirement set again on accounts that exist: a rerun brings them in line)."""
    host = client_host(settings)
    db = settings.database.name
    require = certs.require_clause(settings)

    def pw(value: str) -> str:
        return value.replace("\\", "\\\\").replace("'", "\\'")

    def account(user: str, account_host: str, password: str, require: str) -> list[str]:
        who = f"'{user}'@'{account_host}'"
        return [f"CREATE USER IF NOT EXISTS {who} IDENTIFIED BY '{pw(password)}' {require}",
                f"ALTER USER {who} IDENTIFIED BY '{pw(password)}' {require}"]

    statements = [
        f"CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        *account(secrets.app.user, host, secrets.app.password, require),
        f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON `{db}`.* "
        f"TO '{secrets.app.user}'@'{host}'",
        *account(secrets.monitor.user, host, secrets.monitor.password, require),
    ]
    admin_host = admin_tcp_host(settings)
    if admin_host is not None:
        statements += [
            *account(ADMIN_TCP_USER, admin_host, secrets.admin_tcp.password or secrets.admin.password, require),
            f"GRANT ALL PRIVILEGES ON *.* TO '{ADMIN_TCP_USER}'@'{admin_host}' WITH GRANT OPTION",
        ]
    if admin_host != "%":  # an older galerakv made it for any host on real hosts
        statements.append(f"DROP USER IF EXISTS '{ADMIN_TCP_USER}'@'%'")
    if settings.cluster.sst_method == "mariabackup":
        statements += [  # over the node's socket: no TLS needed
            *account(secrets.sst.user, "localhost", secrets.sst.password, "REQUIRE NONE"),
            f"GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.* "
            f"TO '{secrets.sst.user}'@'localhost'",
        ]
    return ";\n".join(statements) + ";\n"


def ensure_accounts(settings: Settings, transport: Transport, node: NodeSettings,
                    secrets: Secrets) -> None:
    transport.query(node, accounts_sql(settings, secrets), timeout=60)


# --------------------------------------------------------------------------- down


def down(settings: Settings, transport: Transport, report: Report,
         timeout: float = STOP_TIMEOUT) -> tuple[str, ...]:
    """Stop every running node, last node first; returns the names stopped."""
    balancer.stop(settings, report)  # first: no new connections to nodes that are leaving
    stopped: list[str] = []
    nodes = settings.cluster.nodes
    running = [n for n, up in zip(nodes, transport.each(nodes, transport.is_running), strict=True) if up]
    for node in reversed(nodes):
        if node not in running:
            report(f"{node.name}: not running")
            continue
        began = time.monotonic()
        report(f"{node.name}: stopping")
        transport.stop(node, timeout)
        running.remove(node)
        report(f"  {node.name}: stopped ({time.monotonic() - began:.1f} s)")
        stopped.append(node.name)
        if running:
            wait_for_leave(transport, running, report)
    if stopped:
        safe = [n for n, g in grastates(transport, settings.cluster.nodes).items()
                if g is not None and g.safe_to_bootstrap]
        if safe:
            report(f"safe to bootstrap next time: {', '.join(safe)}")
    return tuple(stopped)


def wait_for_leave(transport: Transport, remaining: list[NodeSettings], report: Report,
                   timeout: float = LEAVE_TIMEOUT) -> None:
    """Wait until the nodes still running agree the cluster has shrunk to them.

    Stopping the next node while the group is still reforming its membership can
    leave that node hanging in shutdown (gcomm "GATHER -> CLOSED"), so each stop
    waits for the previous leave to settle.
    """
    began = time.monotonic()
    while True:
        sizes = [transport.status(n, 5) for n in remaining]
        if all(s.reachable and s.primary and s.cluster_size == len(remaining) for s in sizes):
            return
        if time.monotonic() - began > timeout:
            seen = ", ".join(f"{s.name}: size {s.cluster_size} {s.cluster_status or '?'}"
                             for s in sizes)
            report(f"  warning: the remaining nodes did not settle within {timeout:.0f} s ({seen})")
            return
        time.sleep(POLL_INTERVAL)
