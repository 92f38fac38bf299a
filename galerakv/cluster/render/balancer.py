"""Render the load balancer's configuration: ``haproxy.cfg`` and ``maxscale.cnf``.

HAProxy (``kind = "haproxy"``, run by galerakv):

- ``galerakv_rw`` on ``rw_port``: one server active, the others ``backup`` in
  the metadata order (root first). HAProxy sends to the first backup only when
  the active server is down, so writes go to one node at a time, which avoids
  Galera certification conflicts. When the active server comes back, sessions
  still open on the backup are shut (``on-marked-up shutdown-backup-sessions``)
  so two nodes never take writes for long.
- ``galerakv_ro`` on ``ro_port``: every node, ``balance leastconn``.
- Both check each node through ``galerakv clustercheck`` on ``check_port``
  (``option httpchk``): 200 only when the node is Synced, Primary and ready.
  ``option mysql-check`` is not used: it only proves that the server accepts
  connections, and a Donor or non-Primary node does.
- With ``cluster.transport = "ssh"`` HAProxy and the health checks run on
  a host of their own (the balancer's address): one responder per node there,
  on ``check_port`` + the node's index, each asking its node over the network
  (``check ... addr``), so the database hosts need nothing but MariaDB.
- A stats socket under ``state_dir/balancer/`` (``galerakv cluster status``
  reads each server's state from it).

MariaDB MaxScale (``kind = "maxscale"``; not packaged by Debian):

- one ``[server]`` section per node with ``priority`` in metadata order;
- a ``galeramon`` monitor (``use_priority``, no master failback, so the writer
  stays put when an old writer returns);
- a ``readwritesplit`` service on ``rw_port`` and a ``readconnroute`` service
  with ``router_options=synced`` on ``ro_port``;
- no REST API (``admin_enabled=false``): galerakv reads MaxScale's state from
  neither the API nor ``maxctrl``, so the default ``admin``/``mariadb`` account
  never listens anywhere;
- durations with units (``1000ms``) and ``password=`` (``passwd`` is deprecated).

Rendering is pure: the same settings (and accounts) give the same bytes, which
the golden-file tests hold to.
"""

from __future__ import annotations

from dataclasses import dataclass

from galerakv.config import NodeSettings, Settings
from galerakv.paths import BalancerPaths, TlsPaths
from galerakv.secrets import Account

BALANCER_LEAF = "balancer"  # the balancer's certificate (state_dir/tls/balancer.crt)
HAPROXY_USER = "haproxy"  # Debian's haproxy package creates it; `up` creates it when missing
FALL = 2
RISE = 2
RW_PROXY = "galerakv_rw"
RO_PROXY = "galerakv_ro"
RW_SERVICE = "rw-service"
RO_SERVICE = "ro-service"
MONITOR = "galera-monitor"


def duration(seconds: float) -> str:
    """``1s`` for whole seconds, else milliseconds: ``500ms``."""
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


# --------------------------------------------------------------------------- HAProxy


@dataclass(frozen=True)
class CheckEndpoint:
    """Where the health check of one node answers, and the certificate it answers with."""

    address: str
    port: int
    leaf: str  # the certificate's name under state_dir/tls: the node's, or "balancer"


def checks_on_balancer_host(settings: Settings) -> bool:
    """Whether the health checks run beside HAProxy on the balancer's host (nodes on ssh hosts)
    rather than one on each node's address (local nodes)."""
    return settings.cluster.transport == "ssh"


def check_endpoint(settings: Settings, node: NodeSettings) -> CheckEndpoint:
    """The one rule for where ``galerakv clustercheck`` answers for ``node``: on the node's address
    at ``check_port`` (local nodes), or on the balancer's host at ``check_port`` + the node's index
    in the metadata file (ssh hosts: the checks run beside HAProxy, one port per node)."""
    b = settings.balancer
    if not checks_on_balancer_host(settings):
        return CheckEndpoint(node.address, b.check_port, node.name)
    index = [n.name for n in settings.cluster.nodes].index(node.name)
    return CheckEndpoint(b.address, b.check_port + index, BALANCER_LEAF)


def render_haproxy_cfg(settings: Settings) -> str:
    """The whole haproxy.cfg for ``settings``."""
    b = settings.balancer
    paths = BalancerPaths.of(settings)
    inter = duration(b.check_interval)
    ssl = (f" check-ssl verify required ca-file {TlsPaths.of(settings).ca_cert}"
           if settings.cluster.tls else "")  # the health checks over HTTPS, the responder's certificate checked

    def check(node: NodeSettings) -> str:
        where = check_endpoint(settings, node)
        addr = f" addr {where.address}" if where.address != node.address else ""
        return (f"check port {where.port}{addr} inter {inter} fall {FALL} rise {RISE} "
                f"on-marked-down shutdown-sessions{ssl}")

    lines = [
        f"# galerakv: HAProxy for cluster {settings.cluster.name}; generated, do not edit.",
        "# Regenerate with `galerakv cluster render`. Health checks ask `galerakv clustercheck`",
        (f"# beside HAProxy, port {b.check_port} + the node's index: 200 only when the node is Synced,"
         if checks_on_balancer_host(settings) else
         f"# on each node's address, port {b.check_port}: 200 only when the node is Synced,"),
        "# Primary and ready. (option mysql-check cannot see a Donor or non-Primary node.)",
        *(["# TLS: the client's TLS to MariaDB passes through (mode tcp); the checks use HTTPS."]
          if settings.cluster.tls else []),
        "global",
        "    maxconn 4096",
        "    # started as root to bind, then confined to an empty directory as an unprivileged user",
        f"    chroot {paths.haproxy_chroot}",
        f"    user {HAPROXY_USER}",
        f"    group {HAPROXY_USER}",
        f"    stats socket {paths.haproxy_socket} mode 600 level admin",
        "    stats timeout 10s",
        "",
        "defaults",
        "    mode tcp",
        "    timeout connect 2s",
        "    timeout client 8h",
        "    timeout server 8h",
        f"    timeout check {inter}",
        "    retries 2",
        "    option redispatch",
        *(["    # to the nodes from the balancer's address: the accounts that may log in only through",
           "    # the balancer (galerakv_admin) are bound to it",
           f"    source {b.address}"] if checks_on_balancer_host(settings) else []),
        "",
        f"listen {RW_PROXY}",
        "    # writes: one node at a time, root first; the others wait as backups",
        f"    bind {b.address}:{b.rw_port}",
        "    option httpchk GET /",
        "    http-check expect status 200",
    ]
    for i, node in enumerate(settings.cluster.nodes):
        role = f"{check(node)} on-marked-up shutdown-backup-sessions" if i == 0 else f"{check(node)} backup"
        lines.append(f"    server {node.name} {node.address}:{node.port} {role}")
    lines += [
        "",
        f"listen {RO_PROXY}",
        "    # reads: every healthy node, the one with the fewest connections first",
        f"    bind {b.address}:{b.ro_port}",
        "    balance leastconn",
        "    option httpchk GET /",
        "    http-check expect status 200",
    ]
    for node in settings.cluster.nodes:
        lines.append(f"    server {node.name} {node.address}:{node.port} {check(node)}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- MaxScale


@dataclass(frozen=True)
class MaxScaleAccounts:
    """The monitor's and the services' database accounts."""

    monitor: Account
    service: Account


MAXSCALE_USER = "maxscale"  # the unprivileged system user MaxScale runs as
MAXSCALE_MONITOR_USER = "galerakv_mxs_monitor"
MAXSCALE_SERVICE_USER = "galerakv_mxs_service"


def render_maxscale_cnf(settings: Settings, accounts: MaxScaleAccounts) -> str:
    """The whole maxscale.cnf for ``settings``, with these accounts' passwords."""
    b = settings.balancer
    paths = BalancerPaths.of(settings)
    d = paths.maxscale_dir
    names = ",".join(n.name for n in settings.cluster.nodes)
    lines = [
        f"# galerakv: MariaDB MaxScale for cluster {settings.cluster.name}; generated, do not edit.",
        "# Regenerate with `galerakv cluster render`; `galerakv cluster up` writes it (mode 0600, owned",
        f"# by the {MAXSCALE_USER} user) and runs `maxscale --nodaemon --user={MAXSCALE_USER} "
        "--config=<this file>`.",
        "# Holds passwords: keep it private.",
        "[maxscale]",
        "threads=auto",
        f"logdir={d / 'log'}",
        f"datadir={d / 'data'}",
        f"cachedir={d / 'cache'}",
        f"piddir={d / 'run'}",
        f"persistdir={d / 'persist'}",
        "# no REST API, GUI or maxctrl: galerakv does not use them, and the default",
        "# admin/mariadb account must not listen anywhere",
        "admin_enabled=false",
        "",
    ]
    tls = TlsPaths.of(settings)
    to_nodes = (["ssl=true", f"ssl_ca={tls.ca_cert}", "ssl_verify_peer_certificate=true",
                 "ssl_verify_peer_host=true"] if settings.cluster.tls else [])
    to_clients = (["ssl=true", f"ssl_ca={tls.ca_cert}", f"ssl_cert={tls.cert('balancer')}",
                   f"ssl_key={paths.maxscale_tls_key}"] if settings.cluster.tls else [])
    for priority, node in enumerate(settings.cluster.nodes, start=1):
        lines += [f"[{node.name}]", "type=server", f"address={node.address}", f"port={node.port}",
                  f"priority={priority}", *to_nodes, ""]
    lines += [
        f"[{MONITOR}]",
        "type=monitor",
        "module=galeramon",
        f"servers={names}",
        f"user={accounts.monitor.user}",
        f"password={accounts.monitor.password}",
        f"monitor_interval={duration(b.check_interval)}",
        f"backend_connect_timeout={duration(max(1.0, b.check_interval))}",
        "# the writer is the Synced node with the lowest priority (the root node first) ...",
        "use_priority=true",
        "# ... and stays the writer when an earlier one comes back",
        "disable_master_failback=true",
        f"available_when_donor={'true' if b.available_when_donor else 'false'}",
        "",
        f"[{RW_SERVICE}]",
        "type=service",
        "router=readwritesplit",
        f"cluster={MONITOR}",
        f"user={accounts.service.user}",
        f"password={accounts.service.password}",
        "",
        f"[{RO_SERVICE}]",
        "type=service",
        "router=readconnroute",
        "router_options=synced",
        f"cluster={MONITOR}",
        f"user={accounts.service.user}",
        f"password={accounts.service.password}",
        "",
        "[rw-listener]",
        "type=listener",
        f"service={RW_SERVICE}",
        f"address={b.address}",
        f"port={b.rw_port}",
        *to_clients,
        "",
        "[ro-listener]",
        "type=listener",
        f"service={RO_SERVICE}",
        f"address={b.address}",
        f"port={b.ro_port}",
        *to_clients,
    ]
    return "\n".join(lines) + "\n"


def maxscale_grants_sql(accounts: MaxScaleAccounts, host: str, require: str = "REQUIRE NONE") -> list[str]:
    """Statements creating the MaxScale accounts with the grants MaxScale documents.

    The service account reads the user tables, so MaxScale can authenticate
    clients itself; the monitor account needs only ``REPLICATION CLIENT``
    (called ``BINLOG MONITOR`` since MariaDB 10.5) for galeramon's status queries.
    """
    def pw(value: str) -> str:
        return value.replace("\\", "\\\\").replace("'", "\\'")

    mon = f"'{accounts.monitor.user}'@'{host}'"
    svc = f"'{accounts.service.user}'@'{host}'"
    statements = [
        f"CREATE USER IF NOT EXISTS {mon} IDENTIFIED BY '{pw(accounts.monitor.password)}' {require}",
        f"ALTER USER {mon} {require}",
        f"GRANT REPLICATION CLIENT ON *.* TO {mon}",
        f"CREATE USER IF NOT EXISTS {svc} IDENTIFIED BY '{pw(accounts.service.password)}' {require}",
        f"ALTER USER {svc} {require}",
    ]
    for table in ("user", "db", "tables_priv", "columns_priv", "procs_priv", "proxies_priv",
                  "roles_mapping"):
        statements.append(f"GRANT SELECT ON mysql.{table} TO {svc}")
    statements.append(f"GRANT SHOW DATABASES ON *.* TO {svc}")
    return statements
