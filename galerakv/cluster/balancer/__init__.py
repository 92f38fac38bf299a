"""The load balancer in front of the cluster: checks, start, stop, status.

One module per kind behind the small :class:`Kind` interface:
:mod:`~galerakv.cluster.balancer.haproxy` (``kind = "haproxy"``) and
:mod:`~galerakv.cluster.balancer.maxscale` (``kind = "maxscale"``);
:mod:`~galerakv.cluster.balancer.clustercheck` is the health responder HAProxy
asks about each node. Every process is a supervised
:class:`~galerakv.cluster.supervise.Program` (its own session, its PID
recorded under ``state_dir``, stopped only by that PID). Everything that can be
checked before starting (binaries, ports, socket path) is checked in
:func:`preflight`, before any node starts. With nodes on ssh hosts, HAProxy and
its health checks run on the balancer's own host
(:mod:`~galerakv.cluster.balancer.remote`); every function here picks the place.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from galerakv.cluster.balancer.clustercheck import Maintenance, read_maintenance
from galerakv.cluster.balancer.haproxy import (
    HAProxy,
    ServerState,
    clustercheck_program,
    haproxy_program,
    parse_show_stat,
    server_problems,
    server_states,
)
from galerakv.cluster.balancer.maxscale import MaxScale, ensure_maxscale_accounts, maxscale_program
from galerakv.cluster.balancer.remote import BalancerHost
from galerakv.cluster.balancer.remote import clustercheck_program as remote_clustercheck
from galerakv.cluster.supervise import Program
from galerakv.cluster.transport.base import Preflight, Report, Transport
from galerakv.cluster.transport.local import port_problem
from galerakv.config import NodeSettings, Settings
from galerakv.errors import ClusterError
from galerakv.files import write_file
from galerakv.galera.status import ClusterVerdict
from galerakv.paths import BalancerPaths, CheckPaths

__all__ = ["BalancerStatus", "Kind", "Maintenance", "ServerState", "clustercheck_program",
           "ensure_maxscale_accounts", "haproxy_program", "install", "maintenance", "managed",
           "maxscale_program", "on_own_host", "parse_show_stat", "preflight", "reload", "required_packages",
           "server_states", "set_maintenance", "start", "status", "stop", "stop_check", "with_balancer"]

STOP_TIMEOUT = 10.0


class Kind(Protocol):
    """What one balancer kind provides."""

    name: str
    packages: tuple[str, ...]  # Debian packages it needs on this machine

    def program(self, settings: Settings) -> Program:
        """The balancer process itself."""

    def programs(self, settings: Settings) -> list[Program]:
        """Every process it runs, in the order to stop them."""

    def preflight(self, settings: Settings) -> list[str]:
        """Kind-specific problems that would stop it from starting."""

    def start(self, settings: Settings, transport: Transport, report: Report) -> None:
        """Start what is not running (the nodes run); idempotent."""


KINDS: dict[str, Kind] = {"haproxy": HAProxy(), "maxscale": MaxScale()}


def kind(settings: Settings) -> Kind | None:
    return KINDS.get(settings.balancer.kind)


def required_packages(settings: Settings) -> list[str]:
    """Debian packages the balancer needs on this machine (none when it runs on a host of its own)."""
    k = kind(settings)
    return list(k.packages) if k is not None and not on_own_host(settings) else []


def managed(settings: Settings) -> bool:
    """Whether galerakv runs the balancer itself: any kind beside local nodes; HAProxy on a host of
    its own beside ssh hosts."""
    b = settings.balancer
    return b.kind != "none" and (settings.cluster.transport == "local" or b.kind == "haproxy")


def on_own_host(settings: Settings) -> bool:
    """Whether galerakv runs the balancer on its own host over ssh (nodes on ssh hosts)."""
    return managed(settings) and settings.cluster.transport == "ssh"


def missing_packages(settings: Settings) -> list[str]:
    """What the balancer lacks where it runs: on its host over ssh, or on this machine."""
    if on_own_host(settings):
        return BalancerHost(settings).missing_packages()
    from galerakv.cluster import install as _install

    return _install.missing_packages(required_packages(settings))


def install_packages(settings: Settings, missing: list[str], report: Report) -> None:
    """Install ``missing`` (:func:`missing_packages`) where the balancer runs."""
    if on_own_host(settings):
        if missing:
            report("installing missing packages on the balancer's host: " + " ".join(missing))
            BalancerHost(settings).install_packages(missing, report)
        else:
            report(f"the balancer's host {settings.balancer.address} has what HAProxy and its checks need")
        return
    from galerakv.cluster import install as _install

    if missing:
        report("installing missing packages: " + " ".join(missing))
        _install.install(missing, report)


def preflight(settings: Settings) -> Preflight:
    """Everything that would stop the balancer from starting, found before any node starts."""
    b = settings.balancer
    k = kind(settings)
    if k is None:
        return Preflight()
    if not managed(settings):
        return Preflight(warnings=(
            f"galerakv runs {b.kind} only beside local nodes; render its configuration with "
            "`galerakv cluster render` and run it yourself (balancer.kind = \"haproxy\" runs on a host "
            "of its own)",))
    if on_own_host(settings):
        return Preflight(tuple(BalancerHost(settings).preflight()))
    errors = k.preflight(settings)
    if k.program(settings).running_pid() is None:
        for port in (b.rw_port, b.ro_port):
            problem = port_problem(b.address, port)
            if problem:
                errors.append(f"balancer: {b.address}:{port} {problem}")
    return Preflight(tuple(errors))


def start(settings: Settings, transport: Transport, report: Report) -> None:
    """Start whatever part of the balancer is not running; idempotent."""
    k = kind(settings)
    if not managed(settings) or k is None:
        return
    if on_own_host(settings):
        BalancerHost(settings).start(report)
        return
    BalancerPaths.of(settings).root.mkdir(parents=True, exist_ok=True, mode=0o750)
    k.start(settings, transport, report)


def reload(settings: Settings, transport: Transport, report: Report) -> None:
    """HAProxy reads its server list at start: stop it and start it on the current list (its
    clients reconnect once; the nodes notice nothing)."""
    if not managed(settings):
        return
    if on_own_host(settings):
        host = BalancerHost(settings)
        if host.stop([haproxy_program(settings)]):
            report("haproxy: stopped to load the new server list")
        host.start(report)
        return
    if haproxy_program(settings).stop():
        report("haproxy: stopped to load the new server list")
    start(settings, transport, report)


def stop_check(settings: Settings, node: NodeSettings, report: Report) -> None:
    """Stop ``node``'s health check and end its maintenance (the node leaves the cluster)."""
    if not managed(settings) or not isinstance(kind(settings), HAProxy):
        return
    if on_own_host(settings):
        host = BalancerHost(settings)
        try:
            host.stop([remote_clustercheck(settings, node)])
            host.set_maintenance(node, None)
        except ClusterError as exc:  # HAProxy drops the node's server at its restart anyway
            report(f"warning: cannot stop {node.name}'s health check on {settings.balancer.address}: {exc}")
        return
    clustercheck_program(settings, node).stop()
    CheckPaths.of(settings, node).maintenance.unlink(missing_ok=True)


def set_maintenance(settings: Settings, node: NodeSettings, note: str | None) -> str | None:
    """Drain ``node`` from HAProxy (its health check answers 503 while the file holds ``note``), or
    bring it back (``note`` None); the file's path (on the balancer's host over ssh), None
    without a managed HAProxy."""
    if not managed(settings) or not isinstance(kind(settings), HAProxy):
        return None
    path = CheckPaths.of(settings, node).maintenance
    if on_own_host(settings):
        BalancerHost(settings).set_maintenance(node, note)
        return f"{settings.balancer.address}:{path}"
    if note is None:
        path.unlink(missing_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file(path, note, 0o644)  # the node's folder: mysql's, so no symlink followed
    return str(path)


def stop(settings: Settings, report: Report) -> list[str]:
    """Stop the balancer, then the health checks; returns what was stopped."""
    if not managed(settings):
        return []
    if on_own_host(settings):
        try:
            there = BalancerHost(settings).stop()
        except ClusterError as exc:  # a lost balancer host must not keep the nodes from stopping
            report(f"warning: cannot stop the balancer on {settings.balancer.address}: {exc}")
            return []
        for label in there:
            report(f"{label}: stopped on {settings.balancer.address}")
        return there
    stopped: list[str] = []
    # every kind's processes: a kind changed in the file must not leave the old one running
    programs = [p for k in KINDS.values() for p in k.programs(settings)]
    for program in programs:
        if program.stop(STOP_TIMEOUT):
            report(f"{program.label}: stopped")
            stopped.append(program.label)
    return stopped


def maintenance(settings: Settings) -> dict[str, Maintenance]:
    """The nodes in maintenance (``galerakv cluster maintenance --node X on``): node -> since when.

    Only HAProxy's health checks (``galerakv clustercheck``) read the maintenance file, so
    with another balancer kind, or none, no node is drained by it.
    """
    if not managed(settings) or not isinstance(kind(settings), HAProxy):
        return {}
    if on_own_host(settings):
        try:
            return BalancerHost(settings).maintenance()
        except ClusterError:  # a balancer host that does not answer: status() names it as a problem
            return {}
    found = {}
    for node in settings.cluster.nodes:
        m = read_maintenance(node.name, CheckPaths.of(settings, node).maintenance)
        if m is not None:
            found[node.name] = m
    return found


@dataclass(frozen=True)
class BalancerStatus:
    kind: str
    address: str
    rw_port: int
    ro_port: int
    running: bool
    pid: int | None
    servers: tuple[ServerState, ...] = ()
    checks: dict[str, bool] = field(default_factory=dict)  # node -> clustercheck running
    problems: tuple[str, ...] = ()
    drained: tuple[str, ...] = ()  # nodes in maintenance: out of rotation on purpose

    @property
    def writer(self) -> str | None:
        """The server the write listener sends to: its first UP server, the active one before
        the backups (HAProxy's rule for a listener with backups); None when none is UP or the
        balancer shows no servers (MaxScale)."""
        up = [s for s in self.servers if s.listener == "rw" and s.up]
        up.sort(key=lambda s: s.backup)
        return up[0].server if up else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["writer"] = self.writer
        data["servers"] = [dict(asdict(s), up=s.up) for s in self.servers]
        data["problems"] = list(self.problems)
        return data


def status(settings: Settings) -> BalancerStatus | None:
    """The balancer's processes and, for HAProxy, each server's state; None without one."""
    b = settings.balancer
    k = kind(settings)
    if not managed(settings) or k is None:
        return None
    if on_own_host(settings):
        return _remote_status(settings)
    pid = k.program(settings).running_pid()
    problems: list[str] = []
    servers: list[ServerState] = []
    checks: dict[str, bool] = {}
    if pid is None:
        problems.append(f"{b.kind} is not running (`galerakv cluster up` starts it)")
    drained = tuple(maintenance(settings))
    if isinstance(k, HAProxy):
        servers, checks, more = k.problems(settings, pid is not None, drained)
        problems += more
    return BalancerStatus(b.kind, b.address, b.rw_port, b.ro_port, pid is not None, pid,
                          tuple(servers), checks, tuple(problems), drained)


def _remote_status(settings: Settings) -> BalancerStatus:
    """:func:`status` of HAProxy on its own host: one ssh call for the processes and servers, one
    for the maintenance files."""
    b = settings.balancer
    host = BalancerHost(settings)
    try:
        found = host.state()
    except ClusterError as exc:
        return BalancerStatus(b.kind, b.address, b.rw_port, b.ro_port, False, None,
                              problems=(f"the balancer's host does not answer: {exc}",))
    pid = found.pids.get(haproxy_program(settings).label)
    problems: list[str] = []
    if pid is None:
        problems.append(f"haproxy is not running on {b.address} (`galerakv cluster up` starts it)")
    checks = {n.name: found.pids.get(remote_clustercheck(settings, n).label) is not None
              for n in settings.cluster.nodes}
    problems += [f"{name}: its health check (galerakv clustercheck on {b.address}) is not running"
                 for name, ok in checks.items() if not ok]
    drained = tuple(host.maintenance())
    if found.stat_error is not None:
        problems.append(f"haproxy's stats socket does not answer: {found.stat_error}")
    problems += server_problems(list(found.servers), drained)
    return BalancerStatus(b.kind, b.address, b.rw_port, b.ro_port, pid is not None, pid,
                          found.servers, checks, tuple(problems), drained)


def with_balancer(verdict: ClusterVerdict, lb: BalancerStatus | None) -> ClusterVerdict:
    """The verdict ``galerakv cluster status`` prints and exits on: the nodes' verdict, and
    degraded when the balancer has a problem (a healthy cluster behind a broken balancer fails
    the balancer's clients). A node in maintenance is not a problem: it was drained on purpose.
    The problems themselves are listed with the balancer (``balancer.problems``)."""
    if lb is None or not lb.problems:
        return verdict
    count = len(lb.problems)
    reason = f"balancer: {count} problem{'s' if count != 1 else ''} (listed under balancer)"
    return ClusterVerdict("degraded" if verdict.healthy else verdict.verdict, (*verdict.reasons, reason))


def wait_in_rotation(settings: Settings, node: str, report: Report, timeout: float = 30.0) -> bool:
    """Wait until HAProxy has ``node`` UP in every listener (its checks passed ``rise`` times), so
    that a verb adding a node returns once clients can reach it; False (and a warning) after
    ``timeout``. Nothing to wait for without a managed HAProxy."""
    deadline = time.monotonic() + timeout
    while True:
        st = status(settings)
        if st is None or not st.running or not isinstance(kind(settings), HAProxy):
            return True
        mine = [s for s in st.servers if s.server == node]
        if mine and all(s.status == "UP" for s in mine):
            report(f"{node}: in the balancer's rotation ({', '.join(s.listener for s in mine)})")
            return True
        if time.monotonic() > deadline:
            shown = ", ".join(f"{s.listener} {s.status}" for s in mine) or "not listed"
            report(f"warning: {node} is not UP in HAProxy after {timeout:.0f} s ({shown}); "
                   "see `galerakv cluster status`")
            return False
        time.sleep(0.25)
