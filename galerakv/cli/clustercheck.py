"""``galerakv clustercheck``: the HTTP health responder a load balancer asks about one node."""

from __future__ import annotations

from pathlib import Path

import click

from galerakv import tls
from galerakv.cli.common import config_option, fail
from galerakv.cluster.balancer import clustercheck as _check
from galerakv.cluster.certs import RENEW
from galerakv.cluster.render.balancer import check_endpoint
from galerakv.config import Settings
from galerakv.errors import ClusterError
from galerakv.paths import CheckPaths, StatePaths, TlsPaths
from galerakv.secrets import load, read_client_option_file


@click.command("clustercheck")
@config_option
@click.option("--node", "node_name", required=True, help="The node to answer for.")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port to listen on (default: balancer.check_port on the node's address; with nodes on "
                   "ssh hosts, check_port + the node's index on the balancer's address).")
@click.option("--credentials", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A [client] option file with the monitor account's user and password (default: the "
                   "secrets file); the balancer's host gets one, not the whole secrets file.")
@click.option("--user", "run_as", default="mysql", show_default=True,
              help="The unprivileged user to run as once the port, certificate and password are read "
                   "(when started as root).")
@click.option("--donor-ok", is_flag=True, default=None,
              help="Count a Donor/Desynced node as up (default: balancer.available_when_donor).")
@click.option("--timeout", type=click.FloatRange(0.1, 30), default=1.0, show_default=True,
              help="Seconds to wait for the node's answer before saying 503.")
def clustercheck(settings: Settings, node_name: str, port: int | None, credentials: Path | None,
                 run_as: str, donor_ok: bool | None, timeout: float) -> None:
    """Answer HTTP 200 while NODE is Synced, Primary and ready, else 503.

    While the file state_dir/NODE/maintenance exists (`galerakv cluster
    maintenance --node NODE on`) the answer is 503, so the balancer drains it.
    """
    try:
        node = settings.cluster.node(node_name)
    except KeyError as exc:
        fail(str(exc.args[0]))
        return
    if credentials is not None:
        try:
            monitor = read_client_option_file(credentials)
        except ClusterError as exc:
            fail(str(exc))
            return
    else:
        secrets = load(StatePaths.of(settings).secrets)
        if secrets is None:
            fail(f"no credentials at {StatePaths.of(settings).secrets}; run `galerakv cluster up` first")
            return
        monitor = secrets.monitor
    where = check_endpoint(settings, node)
    listen = port or where.port
    server_tls = client_tls = None
    if settings.cluster.tls:  # HTTPS with the node's (or the balancer's) certificate; TLS to the node, checked
        t = TlsPaths.of(settings)
        try:
            tls.load_pair(t.cert(where.leaf), t.key(where.leaf), host=where.address, ca=t.ca_cert)
            server_tls = tls.server_context(t.cert(where.leaf), t.key(where.leaf))
            client_tls = tls.client_context(t.ca_cert)
        except tls.TlsError as exc:
            fail(f"{exc}; {RENEW}")
            return
    source = _check.NodeStatusSource(node.address, node.port, monitor.user,
                                     monitor.password, connect_timeout=timeout, tls=client_tls)
    try:
        _check.run(where.address, listen, source, run_as=run_as,
                   donor_ok=settings.balancer.available_when_donor if donor_ok is None else donor_ok,
                   maintenance=CheckPaths.of(settings, node).maintenance, timeout=timeout,
                   node=node.name, tls=server_tls)
    except OSError as exc:
        fail(f"cannot listen on {where.address}:{listen}: {exc.strerror or exc}; "
             "choose another --port (balancer.check_port)")
