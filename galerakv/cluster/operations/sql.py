"""``galerakv cluster sql``: the mariadb client as the admin, on a node or through the balancer.

The password is read by the client from a 0600 option file, never typed or
shown. With a statement the client runs in batch mode (tab-separated, with a
header line), exactly as ``mariadb --batch -e`` prints it.
"""

from __future__ import annotations

import socket
import subprocess
from typing import Literal

from galerakv.cluster.transport.base import QueryFailed, Transport
from galerakv.config import NodeSettings, Settings
from galerakv.errors import ClusterError, GalerakvError
from galerakv.paths import StatePaths, TlsPaths
from galerakv.secrets import (
    ADMIN_TCP_USER,
    Account,
    client_option_file,
    load,
    write_private,
)

Via = Literal["rw", "ro"]
PROBE_SQL = "SHOW GLOBAL STATUS LIKE 'wsrep_ready';"  # answered even outside the Primary component


def target(settings: Settings, node_name: str | None) -> NodeSettings:
    """The node ``--node`` names, the root node by default."""
    nodes = settings.cluster.nodes
    if not nodes:
        raise ClusterError("the metadata file lists no [[cluster.nodes]]")
    if node_name is None:
        return nodes[0]
    try:
        return settings.cluster.node(node_name)
    except KeyError as exc:
        raise ClusterError(str(exc.args[0])) from exc


def node_argv(settings: Settings, transport: Transport, node_name: str | None,
              statement: str | None) -> list[str]:
    extra = ("-e", statement) if statement is not None else ()
    return transport.client_argv(target(settings, node_name), batch=statement is not None, extra=extra)


def on_node(settings: Settings, transport: Transport, node_name: str | None, statement: str | None) -> int:
    """Run the client on a node; its exit status. When it failed because the node cannot be
    reached (the client printed its own ERROR 2002 or 2003), raise with what to do."""
    node = target(settings, node_name)
    code = run(node_argv(settings, transport, node.name, statement))
    if code != 0:
        problem = unreachable(transport, node)
        if problem is not None:
            raise ClusterError(problem)
    return code


def unreachable(transport: Transport, node: NodeSettings) -> str | None:
    """Why ``node`` cannot be reached, with the commands that help; None when it answers
    (then a failure was the statement's own: the client said why)."""
    try:
        transport.query(node, PROBE_SQL, timeout=10)
        return None
    except QueryFailed as exc:
        if not exc.unreachable:
            return None  # it answers (non-Primary, access denied, ...): the client's error says it all
        detail = exc.detail
    try:
        running = transport.is_running(node)
    except (GalerakvError, OSError):
        running = True  # cannot tell: say only that it does not answer
    what = "is not running" if not running else f"does not answer ({detail})"
    return (f"{node.name} {what}: `galerakv cluster status` shows every node; "
            "`galerakv cluster up` starts the ones that are down")


def balancer_argv(settings: Settings, via: Via, statement: str | None) -> list[str]:
    b = settings.balancer
    if b.kind == "none":
        raise ClusterError('no balancer is configured (balancer.kind = "none"); '
                           "use --node NAME, or configure [balancer]")
    port = b.rw_port if via == "rw" else b.ro_port
    try:
        with socket.create_connection((b.address, port), timeout=2):
            pass
    except OSError as exc:
        raise ClusterError(f"the {b.kind} balancer is not running at {b.address}:{port} "
                           f"({exc.strerror or exc}); use --node NAME") from exc
    secrets = load(StatePaths.of(settings).secrets)
    if secrets is None:
        raise ClusterError(f"no credentials at {StatePaths.of(settings).secrets}; run `galerakv cluster up`")
    option_file = StatePaths.of(settings).admin_tcp_cnf
    extra = {"host": b.address, "port": str(port), "protocol": "tcp"}
    if settings.cluster.tls:  # the account requires TLS; the balancer's (or node's) certificate is checked
        extra.update({"ssl-ca": str(TlsPaths.of(settings).ca_cert), "ssl-verify-server-cert": "1"})
    write_private(option_file, client_option_file(
        Account(ADMIN_TCP_USER, secrets.admin_tcp.password or secrets.admin.password), extra))
    argv = ["mariadb", f"--defaults-file={option_file}"]
    return [*argv, "--batch", "-e", statement] if statement is not None else argv


def run(argv: list[str]) -> int:
    """Run the client attached to this terminal; its exit status."""
    try:
        return subprocess.run(argv, check=False).returncode
    except OSError as exc:
        raise ClusterError(f"cannot run {argv[0]}: {exc.strerror}; "
                           "run `galerakv cluster install`") from exc
