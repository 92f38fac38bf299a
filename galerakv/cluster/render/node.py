"""Render each node's MariaDB/Galera configuration from the metadata file.

Two files per node:

``cluster.cnf``
    Everything Galera needs, the same shape on every transport: the mandatory
    settings (ROW binlog, InnoDB, interleaved auto-increment locks), the wsrep
    provider and addresses, the node's own bind address, and small-memory
    settings when several nodes share one machine.

``my.cnf``
    The file ``mariadbd --defaults-file`` reads: the node's own datadir,
    socket, pid file and log under ``state_dir/<node>/`` (no log file for a
    node that runs as a systemd unit: its log is the journal), then an
    ``!include`` of ``cluster.cnf``. Using ``--defaults-file`` keeps /etc/mysql out of it.
    ``ssh`` hosts use the same layout under the same ``state_dir``.

Rendering is a pure function of the settings and a :class:`RenderContext`
(provider path, server version, the OS user); the same input always gives
byte-identical output, which the golden-file tests hold to.
``--wsrep-new-cluster`` never appears here: it is a command-line flag of the
one bootstrap start.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from galerakv.config import NodeSettings, Settings
from galerakv.errors import ClusterError
from galerakv.paths import NodePaths

GCOMM_PORT = 4567
IST_PORT = 4568
SST_PORT = 4444
GALERA_PORTS = (GCOMM_PORT, IST_PORT, SST_PORT)

PROVIDER_CANDIDATES = (
    "/usr/lib/galera/libgalera_smm.so",
    "/usr/lib/galera-4/libgalera_smm.so",
    "/usr/lib64/galera-4/libgalera_smm.so",
    "/usr/lib64/galera/libgalera_smm.so",
    "/usr/lib/x86_64-linux-gnu/galera/libgalera_smm.so",
)

# a Unix socket path longer than this does not fit in sockaddr_un.sun_path
MAX_SOCKET_PATH = 107


@dataclass(frozen=True)
class RenderContext:
    """What rendering needs from the machine, passed in so output is deterministic."""

    provider: str = PROVIDER_CANDIDATES[0]
    server_version: tuple[int, int] = (10, 11)
    run_as: str = "mysql"
    local_small_memory: bool = True
    server_flavor: str = "mariadb"  # or "mysql"
    journal: bool = False  # mariadbd runs as a systemd unit: it logs to stderr, which goes to the journal


# --------------------------------------------------------------------------- machine facts


def find_provider(candidates: tuple[str, ...] = PROVIDER_CANDIDATES) -> str | None:
    """The Galera library on this machine, or None."""
    for path in candidates:
        if os.path.isfile(path):
            return path
    return None


_VERSION_RE = re.compile(r"Ver\s+(\d+)\.(\d+)\.\d+")


def parse_server_version(text: str) -> tuple[int, int] | None:
    """``mariadbd --version`` output -> (major, minor)."""
    match = _VERSION_RE.search(text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def detect_context(require_provider: bool = True) -> RenderContext:
    """The render context of this machine: provider path, server version, OS user."""
    provider = find_provider()
    if provider is None and require_provider:
        raise ClusterError(
            "the Galera library libgalera_smm.so was not found (looked in "
            + ", ".join(PROVIDER_CANDIDATES)
            + "); run `galerakv cluster install` to install galera-4"
        )
    version: tuple[int, int] = RenderContext.server_version
    flavor = RenderContext.server_flavor
    binary = server_binary()
    if binary:
        try:
            out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                                 timeout=20, check=False).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        version = parse_server_version(out) or version
        flavor = "mariadb" if "mariadb" in out.lower() or not out else "mysql"
    return RenderContext(provider=provider or PROVIDER_CANDIDATES[0], server_version=version,
                         run_as=default_run_as(), server_flavor=flavor)


def server_binary() -> str | None:
    for name in ("/usr/sbin/mariadbd", "/usr/sbin/mysqld"):
        if os.path.isfile(name):
            return name
    return shutil.which("mariadbd")


def default_run_as() -> str:
    """mariadbd runs as mysql when galerakv runs as root, else as the current user."""
    if os.geteuid() == 0:
        return "mysql"
    return pwd.getpwuid(os.geteuid()).pw_name


# --------------------------------------------------------------------------- rendering


def has_query_cache(flavor: str, version: tuple[int, int]) -> bool:
    """MariaDB keeps the query cache, MySQL 8 dropped it; Galera wants it off where it exists."""
    return flavor == "mariadb" or version < (8, 0)


def cluster_address(settings: Settings) -> str:
    """gcomm:// of every node, root first."""
    return "gcomm://" + ",".join(f"{n.address}:{GCOMM_PORT}" for n in settings.cluster.nodes)


def render_cluster_cnf(settings: Settings, node: NodeSettings, ctx: RenderContext) -> str:
    """The Galera part of one node's configuration."""
    c = settings.cluster
    p = NodePaths.of(settings, node)
    options = [
        f"gmcast.listen_addr=tcp://{node.address}:{GCOMM_PORT}",
        f"ist.recv_addr={node.address}:{IST_PORT}",
        "gcache.size=64M" if ctx.local_small_memory else "gcache.size=1G",
    ]
    if c.tls:  # replication (gcomm) and IST over TLS, peers checked against the cluster's CA
        options += [f"socket.ssl_ca={p.tls_ca}", f"socket.ssl_cert={p.tls_cert}", f"socket.ssl_key={p.tls_key}"]
    provider_options = ";".join(options)
    lines = [
        f"# galerakv: node {node.name} of cluster {c.name}; generated, do not edit.",
        "# Regenerate with `galerakv cluster render`. --wsrep-new-cluster is never written",
        "# here: it is passed on the command line of the one bootstrap start.",
        "[mysqld]",
        "# -- this node",
        f"bind-address = {node.address}",
        f"port = {node.port}",
        "skip_name_resolve = ON",
        "# a write group of galerakv (its rows and their history) goes in one statement",
        "max_allowed_packet = 64M",
        "",
        "# -- settings Galera requires",
        "binlog_format = ROW",
        "default_storage_engine = InnoDB",
        "innodb_autoinc_lock_mode = 2",
    ]
    if has_query_cache(ctx.server_flavor, ctx.server_version):
        lines += ["query_cache_type = 0", "query_cache_size = 0"]
    lines += [
        "",
        "# -- replication",
        "wsrep_on = ON",
        f"wsrep_provider = {ctx.provider}",
        f"wsrep_cluster_name = {c.name}",
        f"wsrep_cluster_address = {cluster_address(settings)}",
        f"wsrep_node_name = {node.name}",
        f"wsrep_node_address = {node.address}",
        f"wsrep_node_incoming_address = {node.address}:{node.port}",
        f"wsrep_sst_method = {c.sst_method}",
        f"wsrep_sst_receive_address = {node.address}:{SST_PORT}",
        f'wsrep_provider_options = "{provider_options}"',
        "wsrep_slave_threads = 2",
    ]
    if c.tls:
        lines += [
            "",
            "# -- TLS (galerakv cluster certs): every TCP client must use it; the state transfer",
            "# scripts read these three too and encrypt SST (rsync: stunnel; mariabackup: socat)",
            f"ssl-ca = {p.tls_ca}",
            f"ssl-cert = {p.tls_cert}",
            f"ssl-key = {p.tls_key}",
            "require_secure_transport = ON",
            "tls_version = TLSv1.2,TLSv1.3",
        ]
    sst = []
    if c.sst_method == "mariabackup":
        sst += ["# mariabackup streams with socat: bind it to this node's address, not 0.0.0.0",
                f"sockopt = bind={node.address}"]
    if c.tls:
        sst += ["# encrypted, and only to a peer whose certificate the cluster's CA signed",
                "ssl-mode = VERIFY_CA"]
    if sst:
        lines += ["", "# -- state transfers", "[sst]", *sst, "[mysqld]"]
    if ctx.local_small_memory:
        lines += [
            "",
            "# -- small memory: several nodes share one machine",
            "innodb_buffer_pool_size = 64M",
            "innodb_log_file_size = 16M",
            "innodb_log_buffer_size = 4M",
            "performance_schema = OFF",
            "max_connections = 64",
            "key_buffer_size = 1M",
            "aria_pagecache_buffer_size = 8M",
            "table_open_cache = 200",
            "thread_stack = 256K",
        ]
    return "\n".join(lines) + "\n"


def render_my_cnf(settings: Settings, node: NodeSettings, ctx: RenderContext) -> str:
    """The local node's defaults file: its own paths, then cluster.cnf."""
    p = NodePaths.of(settings, node)
    lines = [
        f"# galerakv: local node {node.name}; generated, do not edit.",
        "# mariadbd reads only this file (--defaults-file), never /etc/mysql.",
        "[mysqld]",
        f"user = {ctx.run_as}",
        f"datadir = {p.datadir}",
        f"socket = {p.socket}",
        f"pid-file = {p.pid_file}",
        # under systemd no log-error: mariadbd then logs to stderr, which the journal keeps
        *([] if ctx.journal else [f"log-error = {p.log}"]),
        f"tmpdir = {p.root}",
        "",
        "[client]",
        f"socket = {p.socket}",
        "",
        f"!include {p.cluster_cnf}",
    ]
    if settings.cluster.sst_method == "mariabackup":
        # wsrep_sst_auth carries a password, so it lives in its own 0600 file
        lines.append(f"!include {p.sst_auth_cnf}")
    return "\n".join(lines) + "\n"


def render_node(settings: Settings, node: NodeSettings, ctx: RenderContext) -> dict[str, str]:
    """File name -> content for one node."""
    return {"cluster.cnf": render_cluster_cnf(settings, node, ctx),
            "my.cnf": render_my_cnf(settings, node, ctx)}


def render_all(settings: Settings, ctx: RenderContext) -> dict[str, dict[str, str]]:
    """Node name -> (file name -> content), every node, in metadata order."""
    return {node.name: render_node(settings, node, ctx) for node in settings.cluster.nodes}


def write_rendered(rendered: dict[str, dict[str, str]], out: Path) -> list[Path]:
    """Write ``out/<node>/<file>``; returns the paths written."""
    written: list[Path] = []
    for node, files in rendered.items():
        folder = out / node
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            path = folder / name
            path.write_text(text)
            written.append(path)
    return written
