"""Collect the facts the doctor's checks read: configs, files, logs, live state, ports.

Collection never fails because a node is down: what cannot be read stays
``None`` in the facts (and a note says why), and the checks treat it as "no
evidence". Offline collection reads only galerakv.toml, the rendered option
files, the node's files and process table, and binds (never connects to) the
ports of stopped local nodes; online collection adds SQL on every node that
runs, a TCP login attempt as root, and TCP connections between nodes.

Files and ports are read directly for the ``local`` transport; on ``ssh`` hosts
the doctor sees what the transport offers (grastate.dat, the log, SQL), and the
running servers' variables stand in for their configuration.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from galerakv import backups
from galerakv.cluster import balancer
from galerakv.cluster.doctor.facts import (
    AccountFact,
    BackupFacts,
    ConfigFacts,
    Facts,
    FileFacts,
    LiveFacts,
    LogFacts,
    NodeFacts,
    PortFact,
    Table,
    TlsFacts,
    parse_file_report,
    parse_listening,
    parse_log,
    parse_option_files,
)
from galerakv.cluster.render.node import GCOMM_PORT, IST_PORT, SST_PORT
from galerakv.cluster.transport.base import QueryFailed, Transport
from galerakv.cluster.transport.local import port_problem, untraversable
from galerakv.cluster.transport.ssh import OWNER_IGNORED_NAMES, SST_LEFTOVER_NAMES
from galerakv.config import NodeSettings, Settings
from galerakv.errors import GalerakvError
from galerakv.galera.log import START_MARKER
from galerakv.galera.position import GraState
from galerakv.galera.status import parse_status_rows
from galerakv.paths import NodePaths, TlsPaths

# files mariadbd only reads, which installers commonly leave owned by root; and what an unfinished
# state transfer leaves (one list for both transports: the ssh one looks on the host with a script)
OWNER_IGNORED = OWNER_IGNORED_NAMES
SST_LEFTOVERS = SST_LEFTOVER_NAMES
SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")
MAX_ENTRIES = 5000  # datadir entries looked at for ownership
LOG_LINES = 4000
CONNECT_TIMEOUT = 2.0
QUERY_TIMEOUT = 10.0
_VARIABLES_FOLLOW = "galerakv: variables follow"  # the row between a node's status and its variables

TABLES_SQL = (
    "SELECT 'T', t.TABLE_SCHEMA, t.TABLE_NAME, IFNULL(t.ENGINE, ''), "
    "EXISTS(SELECT 1 FROM information_schema.TABLE_CONSTRAINTS c WHERE c.TABLE_SCHEMA = "
    "t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME AND c.CONSTRAINT_TYPE = 'PRIMARY KEY') "
    "FROM information_schema.TABLES t WHERE t.TABLE_TYPE = 'BASE TABLE' AND t.TABLE_SCHEMA "
    "NOT IN (" + ", ".join(f"'{s}'" for s in SYSTEM_SCHEMAS) + ") LIMIT 2000;\n"
)
# only whether a password is empty is read, never a hash
ACCOUNTS_SQL = (
    "SELECT 'U', User, Host, IFNULL(JSON_VALUE(Priv, '$.plugin'), ''), "
    "IFNULL(JSON_VALUE(Priv, '$.authentication_string'), '') = '', "
    "IFNULL(JSON_VALUE(Priv, '$.ssl_type'), 0) <> 0 FROM mysql.global_priv "
    "WHERE IFNULL(JSON_VALUE(Priv, '$.is_role'), 0) = 0;\n"
)


def collect(settings: Settings, transport: Transport, *, offline: bool,
            planned: Mapping[str, Mapping[str, str]] | None = None) -> Facts:
    """Facts about every node in galerakv.toml.

    ``planned`` (node -> file name -> text) replaces the rendered files of those
    nodes: ``up`` checks the configuration it is about to write, not stale files.
    """
    c = settings.cluster
    local = c.transport == "local"
    drained = balancer.maintenance(settings)

    def one(n: NodeSettings) -> tuple[NodeFacts, list[str]]:
        mine: list[str] = []
        facts = _node_facts(settings, transport, n, offline=offline, local=local,
                            planned=(planned or {}).get(n.name), notes=mine)
        return replace(facts, maintenance=drained.get(n.name)), mine

    # every host at once where the transport allows (ssh: a few calls per node)
    found = transport.each(c.nodes, one)
    nodes = tuple(facts for facts, _ in found)
    notes = [note for _, mine in found for note in mine]
    providers: dict[str, bool] = {}
    tools: tuple[str, ...] = ()
    if local:
        for nf in nodes:
            opt = nf.config.get("wsrep_provider") if nf.config else None
            if opt is not None and opt.value.lower() != "none":
                providers[opt.value] = os.path.isfile(opt.value)
        if c.sst_method == "mariabackup":
            tools = tuple(t for t in ("socat", "mariabackup") if shutil.which(t) is None)
    return Facts(c.name, c.transport, c.sst_method, nodes, offline, providers, tools, tuple(notes),
                 backup_facts(settings), tls_facts(settings, transport, offline) if c.tls else None)


def tls_facts(settings: Settings, transport: Transport, offline: bool) -> TlsFacts:
    """The cluster's CA, and each node's CA and certificate files as its host has them."""
    try:
        ca: str | None = TlsPaths.of(settings).ca_cert.read_text()
    except (OSError, UnicodeDecodeError):
        ca = None
    node_ca: dict[str, str | None] = {}
    node_cert: dict[str, str | None] = {}
    if settings.cluster.transport == "local" or not offline:  # offline never contacts an ssh host
        def files(n: NodeSettings) -> tuple[str | None, str | None] | None:
            p = NodePaths.of(settings, n)
            try:
                found = transport.read_node_files(n, (str(p.tls_ca), str(p.tls_cert)))
            except (GalerakvError, OSError):
                return None
            return found[str(p.tls_ca)], found[str(p.tls_cert)]

        for n, pair in zip(settings.cluster.nodes, transport.each(settings.cluster.nodes, files), strict=True):
            if pair is not None:
                node_ca[n.name], node_cert[n.name] = pair
    return TlsFacts(ca, node_ca, node_cert, time.time())


def backup_facts(settings: Settings) -> BackupFacts:
    """What the manifests in ``[backup] dir`` say (nothing is verified: that reads whole files)."""
    found = backups.scan(settings.backup.dir)
    facts = BackupFacts(str(settings.backup.dir), settings.backup.max_age_hours, time.time(), len(found))
    if not found:
        return facts
    newest = found[-1]
    state = "died" if newest.died else newest.status
    complete = [m for m in found if m.complete]
    if complete:
        facts = replace(facts, newest_complete=str(complete[-1].path),
                        newest_complete_at=complete[-1].created_at)
    return replace(facts, newest=str(newest.path), newest_state=state, newest_error=newest.error)


def _node_facts(settings: Settings, transport: Transport, node: NodeSettings, *, offline: bool,
                local: bool, planned: Mapping[str, str] | None, notes: list[str]) -> NodeFacts:
    paths = NodePaths.of(settings, node)
    files: FileFacts | None = None
    report: str | None = None  # an ssh host's file report: owners, leftovers, listening sockets
    if local:
        config = _config_facts(paths, planned, None)
        files = file_facts(paths, transport.ctx.run_as)
    elif offline and planned is None:  # offline never contacts an ssh host
        config = None
    else:  # the host's own files, read there (before `up`: the files it is about to write instead)
        config = _config_facts(paths, planned, None) if planned is not None else None
        try:
            if planned is None:
                config = _config_facts(paths, None, lambda wanted: transport.read_node_files(node, wanted))
            report = transport.file_report(node)
            files = parse_file_report(str(paths.root), str(paths.datadir), transport.ctx.run_as,
                                      report) if report is not None else None
        except (GalerakvError, OSError) as exc:
            notes.append(f"{node.name}: cannot read its files: {exc}")
    if config is None and local:
        notes.append(f"{node.name}: no rendered configuration under {paths.root} yet")
    running: bool | None = None
    grastate: GraState | None = None
    log_text = ""
    if local or not offline or planned is not None:  # offline never contacts an ssh host (but `up` does)
        try:
            state = transport.node_state(node, LOG_LINES)
            running, grastate, log_text = state.running, state.grastate, state.log
        except (GalerakvError, OSError) as exc:
            notes.append(f"{node.name}: cannot read its state: {exc}")
    log = parse_log(log_text, START_MARKER) if log_text else LogFacts()
    if planned is not None:  # `up` rewrites the configuration: the last run's errors are history
        log = LogFacts(recovered=log.recovered, last_state_change=log.last_state_change)

    live: LiveFacts | None = None
    live_error = ""
    ports: tuple[PortFact, ...] = ()
    if running is False:
        live_error = "not running"
        if local:
            ports = bind_probe(node)
        elif report is not None:  # the sockets listening on the node's host
            ports = parse_listening(node.address, node_ports(node), report)
    elif not offline:
        live, live_error = live_facts(transport, node)
        if live is not None:  # a starting node listens only once it has its data
            source = _peer_address(settings, node) if local else None
            ports = connect_probe(node, source)
    return NodeFacts(node.name, node.address, node.port, running, config, files, grastate,
                     live, live_error, log, ports)


# --------------------------------------------------------------------------- configuration


def _config_facts(paths: NodePaths, planned: Mapping[str, str] | None,
                  remote: Callable[[tuple[str, ...]], Mapping[str, str | None]] | None) -> ConfigFacts | None:
    """The node's configuration: ``planned`` (what `up` is about to write), else its files, read
    here or (``remote``) on its host, in one call for the files galerakv writes."""
    texts: dict[str, str | None] = {}
    if planned is not None:
        texts = {str(paths.root / name): text for name, text in planned.items()}
        # written by `up` together with the configuration; its content is a secret
        texts[str(paths.sst_auth_cnf)] = "[mysqld]\nwsrep_sst_auth = (written by up)\n"
    elif remote is not None:
        texts = dict(remote((str(paths.my_cnf), str(paths.cluster_cnf), str(paths.sst_auth_cnf))))

    def read(path: str) -> str | None:
        if path in texts:
            return texts[path]
        if remote is not None:
            return remote((path,)).get(path)
        try:
            return Path(path).read_text()
        except (OSError, UnicodeDecodeError):
            return None

    for start in (paths.my_cnf, paths.cluster_cnf):
        if texts.get(str(start)) is not None or (remote is None and start.is_file()):
            return parse_option_files(str(start), read)
    return None


# --------------------------------------------------------------------------- files


def file_facts(paths: NodePaths, run_as: str) -> FileFacts:
    """Ownership, reachability and leftovers of a local node's datadir."""
    datadir = paths.datadir
    try:
        pw = pwd.getpwnam(run_as)
    except KeyError:
        return FileFacts(str(paths.root), str(datadir), datadir.is_dir(), run_as)
    groups = {g.gr_gid for g in grp.getgrall() if run_as in g.gr_mem} | {pw.pw_gid}
    target = datadir if datadir.exists() else paths.root
    blocked = untraversable(target, pw.pw_uid, groups) if target.exists() else None
    wrong: list[str] = []
    leftovers: list[str] = []
    gra: list[str] = []
    candidates = [paths.root, datadir]
    if datadir.is_dir():
        try:
            with os.scandir(datadir) as it:
                for i, entry in enumerate(it):
                    if i >= MAX_ENTRIES:
                        break
                    if entry.name not in OWNER_IGNORED:
                        candidates.append(Path(entry.path))
                    if entry.name in SST_LEFTOVERS:
                        leftovers.append(entry.path)
                    elif entry.name.startswith("GRA_") and entry.name.endswith(".log"):
                        gra.append(entry.path)
        except OSError:
            pass
    for path in candidates:
        try:
            st = path.lstat()
        except OSError:
            continue
        if st.st_uid != pw.pw_uid:
            wrong.append(f"{path} (owner {_user(st.st_uid)}:{_group(st.st_gid)}, "
                         f"mode {st.st_mode & 0o7777:04o})")
    return FileFacts(str(paths.root), str(datadir), datadir.is_dir(), run_as, tuple(wrong),
                     str(blocked) if blocked is not None else None, tuple(sorted(leftovers)),
                     tuple(sorted(gra)))


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


# --------------------------------------------------------------------------- live state


def live_facts(transport: Transport, node: NodeSettings) -> tuple[LiveFacts | None, str]:
    """Status, variables, tables and accounts of a node; (None, why) when it does not answer."""
    try:  # one client run for both (the dashboard reads them every few seconds)
        out = transport.query(node, f"SHOW GLOBAL STATUS;\nSELECT '{_VARIABLES_FOLLOW}', '';\nSHOW GLOBAL VARIABLES;\n",
                              QUERY_TIMEOUT)
    except QueryFailed as exc:
        return None, exc.detail
    status_text, _, variables_text = out.partition(f"{_VARIABLES_FOLLOW}\t")
    status, variables = parse_status_rows(status_text), parse_status_rows(variables_text)
    tables: tuple[Table, ...] | None = None
    accounts: tuple[AccountFact, ...] | None = None
    try:  # refused while the node is not ready (ERROR 1047): no evidence, not a fault
        rows = [r for r in transport.rows(node, TABLES_SQL + ACCOUNTS_SQL, QUERY_TIMEOUT) if len(r) >= 5]
        tables = tuple(Table(r[1], r[2], r[3], r[4] == "1") for r in rows if r[0] == "T")
        accounts = tuple(AccountFact(r[1], r[2], r[3], r[4] == "1", len(r) < 6 or r[5] == "1")
                         for r in rows if r[0] == "U")
    except QueryFailed:
        pass
    ok, detail = root_login(node)
    return LiveFacts(status, variables, tables, accounts, ok, detail), ""


def root_login(node: NodeSettings) -> tuple[bool | None, str]:
    """Try to log in as root over TCP with no password: (succeeded, what the client said)."""
    argv = ["mariadb", "--no-defaults", "--protocol=TCP", f"--host={node.address}",
            f"--port={node.port}", "--user=root", "--connect-timeout=3", "-N", "-B",
            "-e", "SELECT CURRENT_USER()"]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False,
                                stdin=subprocess.DEVNULL, env={"PATH": os.environ.get("PATH", "")})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    if result.returncode == 0:
        return True, f"logged in as {result.stdout.strip() or 'root'} with no password"
    err = (result.stderr.strip().splitlines() or [""])[-1]
    return (False if "ERROR 1045" in err else None), err


# --------------------------------------------------------------------------- ports


def _peer_address(settings: Settings, node: NodeSettings) -> str | None:
    others = [n.address for n in settings.cluster.nodes if n.name != node.name]
    return others[0] if others else None


def connect_probe(node: NodeSettings, source: str | None) -> tuple[PortFact, ...]:
    """Connect to a running node's client and gcomm ports, from a peer's address.

    IST and SST ports (4568, 4444) listen only during a transfer, so they are not probed.
    """
    found = []
    for port, purpose in ((node.port, "client"), (GCOMM_PORT, "gcomm")):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            if source is not None:
                sock.bind((source, 0))
            sock.connect((node.address, port))
            found.append(PortFact(port, purpose, "open"))
        except OSError as exc:
            found.append(PortFact(port, purpose, "closed",
                                  f"connect from {source or 'this machine'}: "
                                  f"{exc.strerror or exc}"))
        finally:
            sock.close()
    return tuple(found)


def node_ports(node: NodeSettings) -> tuple[tuple[int, str], ...]:
    """Every port a node listens on, and what for."""
    return ((node.port, "client"), (GCOMM_PORT, "gcomm"), (IST_PORT, "IST"), (SST_PORT, "SST"))


def bind_probe(node: NodeSettings) -> tuple[PortFact, ...]:
    """Whether a stopped local node could listen on each of its ports."""
    found = []
    for port, purpose in node_ports(node):
        problem = port_problem(node.address, port)
        if problem is None:
            found.append(PortFact(port, purpose, "free"))
        elif "in use" in problem:
            found.append(PortFact(port, purpose, "in-use", f"{node.address}:{port} {problem}"))
        else:
            found.append(PortFact(port, purpose, "unavailable", f"{node.address}:{port} {problem}"))
    return tuple(found)
