"""``galerakv cluster sql``: the mariadb client as the admin, on a node or through the balancer.

The password is read by the client from a 0600 option file, never typed or
shown. With a statement the client runs in batch mode (tab-separated, with a
header line), exactly as ``mariadb --batch -e`` prints it.
"""

from __future__ import annotations

import socket
import subprocess
from typing import Literal

from galerakv.cluster.transport.base import Transport
from galerakv.config import Settings
from galerakv.errors import ClusterError
from galerakv.paths import StatePaths
from galerakv.secrets import (
    ADMIN_TCP_USER,
    Account,
    client_option_file,
    load,
    write_private,
)

Via = Literal["rw", "ro"]


def node_argv(settings: Settings, transport: Transport, node_name: str | None,
              statement: str | None) -> list[str]:
    nodes = settings.cluster.nodes
    if not nodes:
        raise ClusterError("the metadata file lists no [[cluster.nodes]]")
    if node_name is None:
        node = nodes[0]
    else:
        try:
            node = settings.cluster.node(node_name)
        except KeyError as exc:
            raise ClusterError(str(exc.args[0])) from exc
    argv = transport.client_argv(node, batch=statement is not None)
    return [*argv, "-e", statement] if statement is not None else argv


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
    write_private(option_file, client_option_file(
        Account(ADMIN_TCP_USER, secrets.admin.password),
        {"host": b.address, "port": str(port), "protocol": "tcp"}))
    argv = ["mariadb", f"--defaults-file={option_file}"]
    return [*argv, "--batch", "-e", statement] if statement is not None else argv


def run(argv: list[str]) -> int:
    """Run the client attached to this terminal; its exit status."""
    try:
        return subprocess.run(argv, check=False).returncode
    except OSError as exc:
        raise ClusterError(f"cannot run {argv[0]}: {exc.strerror}; "
                           "run `galerakv cluster install`") from exc
