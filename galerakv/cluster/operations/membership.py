"""Grow or shrink a running cluster: ``add-node`` and ``remove-node``.

The metadata file is edited as text, so its comments and layout stay: a new
``[[cluster.nodes]]`` table goes after the last one, a removed node's table
(and nothing else) is cut out, and the result is parsed again before it is
written; an edit that would not give exactly the intended node list is
refused with the file untouched.

Adding: every check first (name and address free, ports free, cluster
healthy), then the file, every node's rendered configuration (the gcomm://
list is read at start, so running nodes need no restart), the new node
started empty so it joins by state transfer, then the balancer. Removing: the
node is drained like in a rolling restart, stops cleanly (it leaves the group,
the others shrink the quorum), then the file, the configurations and the
balancer follow. Its datadir stays in place until removed by hand.
"""

from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass
from pathlib import Path

from galerakv.cluster import balancer
from galerakv.cluster.operations import lifecycle, rolling
from galerakv.cluster.render.node import render_all
from galerakv.cluster.transport import make_transport
from galerakv.cluster.transport.base import Report, Transport
from galerakv.config import NodeSettings, Settings, parse
from galerakv.errors import ClusterError, ConfigError, NodeError
from galerakv.paths import NodePaths, StatePaths
from galerakv.secrets import load

_HEADER_RE = re.compile(r"^\s*\[")
_NODES_RE = re.compile(r"^\s*\[\[\s*cluster\.nodes\s*\]\]")
_NAME_RE = re.compile(r"""^\s*name\s*=\s*["']([^"']*)["']""")


@dataclass(frozen=True)
class MembershipResult:
    settings: Settings
    warnings: tuple[str, ...]
    seconds: float


# --------------------------------------------------------------------------- the file


def _blocks(lines: list[str]) -> list[tuple[int, int, str | None]]:
    """(start, end, name) of every [[cluster.nodes]] table; ``end`` excludes trailing
    blank and comment lines, which belong to whatever follows."""
    found = []
    for i, line in enumerate(lines):
        if not _NODES_RE.match(line):
            continue
        j = i + 1
        while j < len(lines) and not _HEADER_RE.match(lines[j]):
            j += 1
        end = j
        while end > i + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
            end -= 1
        name = next((m.group(1) for line in lines[i + 1:end] if (m := _NAME_RE.match(line))), None)
        found.append((i, end, name))
    return found


def with_node_added(text: str, node: NodeSettings) -> str:
    """The metadata file with one more [[cluster.nodes]] table after the last one."""
    lines = text.splitlines()
    block = ["[[cluster.nodes]]", f'name = "{node.name}"', f'address = "{node.address}"']
    if node.port != 3306:
        block.append(f"port = {node.port}")
    blocks = _blocks(lines)
    if blocks:
        at = blocks[-1][1]
        lines[at:at] = ["", *block]
    else:
        lines += ["", *block]
    return "\n".join(lines) + "\n"


def with_node_removed(text: str, name: str) -> str:
    """The metadata file without the [[cluster.nodes]] table of ``name``."""
    lines = text.splitlines()
    for start, end, found in _blocks(lines):
        if found == name:
            # the blank line that separated it goes too
            if end < len(lines) and not lines[end].strip():
                end += 1
            del lines[start:end]
            return "\n".join(lines) + "\n"
    raise ClusterError(f"no [[cluster.nodes]] table with name = \"{name}\" in the file; "
                       "edit it by hand")


def _checked(settings: Settings, text: str, expected: list[str]) -> Settings:
    """Parse the edited text; refuse unless the node list is exactly ``expected``."""
    import tomllib

    assert settings.source is not None
    try:
        new = parse(tomllib.loads(text), source=settings.source)
    except (tomllib.TOMLDecodeError, ConfigError) as exc:
        tables = _blocks(settings.source.read_text().splitlines())
        inline = "" if tables else ("the nodes are an inline array (`nodes = [...]`): write each as a "
                                    "[[cluster.nodes]] table, as `galerakv cluster init` does, or ")
        raise ClusterError(f"editing {settings.source} would make it invalid ({exc}); "
                           f"nothing changed: {inline}edit it by hand") from exc
    got = [n.name for n in new.cluster.nodes]
    if got != expected:
        raise ClusterError(f"could not edit {settings.source} safely (nodes would be "
                           f"{', '.join(got)}); nothing changed, edit it by hand")
    return new


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.galerakv")
    tmp.write_text(text)
    tmp.chmod(path.stat().st_mode & 0o777)
    tmp.replace(path)


# --------------------------------------------------------------------------- checks


def new_node_problems(settings: Settings, name: str, address: str, port: int) -> list[str]:
    """Why ``name`` at ``address:port`` cannot join this cluster (empty: it can)."""
    problems = []
    for n in settings.cluster.nodes:
        if n.name == name:
            problems.append(f"the name {name!r} is already taken by a node at {n.address}")
        if n.address == address and n.port == port:
            problems.append(f"the address {address}:{port} is already taken by node {n.name}")
        elif n.address == address and settings.cluster.transport == "local":
            problems.append(f"the address {address} is already taken by node {n.name} (local "
                            "nodes each need their own address for the Galera ports)")
    if settings.balancer.kind != "none" and address == settings.balancer.address:
        problems.append(f"the address {address} is the balancer's")
    if settings.cluster.transport == "local":
        try:
            if not ipaddress.ip_address(address).is_loopback:
                problems.append(f"{address}: local nodes must use a loopback address")
        except ValueError:
            problems.append(f"{address} is not an IP address")
    return problems


def _warn_count(count: int, report: Report) -> list[str]:
    _, warnings = lifecycle.node_count_problems(count, allow_small=True)
    for warning in warnings:
        report(f"warning: {warning}")
    return warnings


def _refresh(settings: Settings, transport: Transport, report: Report) -> None:
    """Re-render every node's configuration and restart the balancer on the new list."""
    secrets = load(StatePaths.of(settings).secrets)
    if secrets is None:
        raise ClusterError(f"the secrets file {StatePaths.of(settings).secrets} is missing")
    rendered = render_all(settings, transport.ctx)
    for node in settings.cluster.nodes:
        transport.write_config(node, rendered[node.name], secrets)
    report("rendered every node's configuration (gcomm:// lists "
           + ", ".join(n.address for n in settings.cluster.nodes) + ")")
    balancer.reload(settings, transport, report)


# --------------------------------------------------------------------------- verbs


def add_node(settings: Settings, transport: Transport, report: Report, name: str, address: str,
             port: int = 3306, *, join_timeout: float = lifecycle.JOIN_TIMEOUT) -> MembershipResult:
    """Add ``name`` at ``address``: file, configurations, a state transfer, the balancer."""
    began = time.monotonic()
    if settings.source is None:
        raise ClusterError("no metadata file to add the node to; pass --config")
    problems = new_node_problems(settings, name, address, port)
    if problems:
        raise ClusterError("cannot add the node: " + "; ".join(problems) + "; nothing changed")
    text = settings.source.read_text()
    new = _checked(settings, with_node_added(text, NodeSettings(name, address, port)),
                   [*(n.name for n in settings.cluster.nodes), name])
    node = new.cluster.node(name)
    current = lifecycle.status(settings, transport)
    if not current.verdict.healthy:
        raise ClusterError(f"the cluster is {current.verdict.verdict} ("
                           + "; ".join(current.verdict.reasons)
                           + "); add a node to a healthy cluster only; nothing changed")
    new_transport = make_transport(new, transport.ctx)
    pre = new_transport.preflight((node,))
    if pre.errors:
        raise ClusterError("cannot add the node: " + "; ".join(pre.errors) + "; nothing changed")
    if new_transport.is_initialized(node):
        report(f"warning: {NodePaths.of(new, node).datadir} already holds data; the node rejoins "
               "with it (IST if the cluster still has the writes it missed, else a full SST)")
    warnings = _warn_count(len(new.cluster.nodes), report)

    _write(settings.source, with_node_added(text, node))
    report(f"{settings.source}: added {name} at {address}")
    _refresh(new, new_transport, report)
    if not new_transport.is_initialized(node):
        new_transport.prepare_empty(node)
    report(f"{name}: starting, joining by state transfer ({new.cluster.sst_method})")
    new_transport.start(node, bootstrap=False)
    try:
        lifecycle.wait_synced(new_transport, node, report, join_timeout)
    except NodeError as exc:
        first = str(exc).splitlines()[0].removeprefix(f"{name}: ")
        raise NodeError(name, f"{first}; it is in {settings.source} now: fix the cause and "
                        f"run `galerakv cluster up`, or `galerakv cluster remove-node {name} "
                        "--force` to take it out again", exc.log_tail) from exc
    balancer.wait_in_rotation(new, name, report)
    return MembershipResult(new, tuple(warnings), time.monotonic() - began)


def remove_node(settings: Settings, transport: Transport, report: Report, name: str, *,
                force: bool = False,
                stop_timeout: float = lifecycle.STOP_TIMEOUT) -> MembershipResult:
    """Make ``name`` leave cleanly, then drop it from the file, the configurations, the balancer."""
    began = time.monotonic()
    if settings.source is None:
        raise ClusterError("no metadata file to remove the node from; pass --config")
    try:
        node = settings.cluster.node(name)
    except KeyError as exc:
        raise ClusterError(str(exc.args[0])) from exc
    remaining = [n for n in settings.cluster.nodes if n.name != name]
    if len(remaining) < 3 and not force:
        raise ClusterError(f"removing {name} leaves {len(remaining)} node(s): a Galera cluster needs "
                           "at least 3 to survive the loss of one; pass --force to remove it anyway")
    if not remaining:
        raise ClusterError(f"{name} is the last node; stop the cluster with `galerakv cluster down`")
    text = settings.source.read_text()
    new_text = with_node_removed(text, name)
    new = _checked(settings, new_text, [n.name for n in remaining])
    warnings = _warn_count(len(remaining), report)

    if transport.is_running(node):
        others_running = [n for n in remaining if transport.is_running(n)]
        primary = [n for n in others_running if transport.status(n).primary]
        if not primary:
            raise ClusterError(f"no other node is in a Primary component; removing {name} now "
                               "would leave nothing to serve; nothing changed")
        rolling.drain(settings, transport, node, report)
        try:
            time.sleep(rolling.settle_seconds(settings))
            report(f"{name}: stopping; it leaves the group cleanly")
            transport.stop(node, stop_timeout)
        except BaseException:
            rolling.undrain(settings, transport, node)  # back in service, file untouched
            raise
        lifecycle.wait_for_leave(transport, others_running, report)
        balancer.stop_check(settings, node, report)
    else:
        report(f"{name}: not running")
        try:  # forget it there too: on a host with systemd its unit is disabled, or it would rejoin at boot
            transport.stop(node, stop_timeout)
        except ClusterError as exc:
            report(f"warning: {exc}; on that host, once it is back: `systemctl disable --now "
                   f"galerakv-node-{name}` if the node runs as a systemd unit there")
        balancer.stop_check(settings, node, report)
    _write(settings.source, new_text)
    report(f"{settings.source}: removed {name}")
    new_transport = make_transport(new, transport.ctx)
    _refresh(new, new_transport, report)
    report(f"{name}: its files stay in {NodePaths.of(settings, node).root}; remove them by hand "
           "when no longer needed")
    return MembershipResult(new, tuple(warnings), time.monotonic() - began)
