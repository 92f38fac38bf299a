"""Checks on live state, logs, schema, accounts and ports: pure functions of
:class:`~galerakv.cluster.doctor.facts.Facts` to findings.
"""

from __future__ import annotations

import contextlib
import datetime
import re
from collections import defaultdict
from collections.abc import Callable, Mapping

from galerakv import tls
from galerakv.cluster.doctor.catalogue import Finding, finding
from galerakv.cluster.doctor.checks import BACKUP_SST
from galerakv.cluster.doctor.facts import (
    Facts,
    NodeFacts,
    Table,
    is_on,
    parse_size,
    provider_options,
)
from galerakv.galera.status import NodeStatus, node_status

FC_PAUSED_WARN = 0.1  # fraction of time replication was paused by flow control
GCACHE_WINDOW = 3600.0  # seconds of writes the gcache should hold
MIN_UPTIME = 60  # below this, a write rate means little
CERT_MIN_EVENTS = 10
CERT_RATIO = 0.01
JOINING_STATES = ("joiner", "initializing", "initialized", "joined", "connected")


def _int(values: Mapping[str, str], name: str) -> int:
    try:
        return int(float(values.get(name, "0")))
    except ValueError:
        return 0


def _float(values: Mapping[str, str], name: str) -> float:
    try:
        return float(values.get(name, "0"))
    except ValueError:
        return 0.0


def _replicating(nf: NodeFacts) -> bool:
    """The node runs with Galera on (else the settings checks already said why)."""
    if nf.live is None:
        return False
    v = nf.live.variables
    return is_on(v.get("wsrep_on", "ON")) and v.get("wsrep_provider", "x").lower() != "none"


# --------------------------------------------------------------------------- liveness


def check_liveness(facts: Facts) -> list[Finding]:
    if facts.offline:
        return []
    found = []
    for nf in facts.nodes:
        if nf.live is not None:
            continue
        if nf.running is False:
            never = nf.grastate is None and (nf.files is None or not nf.files.datadir_exists)
            found.append(finding("node-down", nf.name, f"{nf.name} is not running",
                                 [f"{nf.name}: " + ("never started (no datadir)" if never else
                                                    "the process galerakv started is gone"),
                                  *_matching(nf, _FATAL)]))
        elif nf.log.last_state_change in JOINING_STATES:
            found.append(finding("node-joining", nf.name, f"{nf.name} is in a state transfer "
                                 f"({nf.log.last_state_change})",
                                 [f"{nf.name} log: last state change -> {nf.log.last_state_change}"]))
        else:
            found.append(finding("node-down", nf.name, f"{nf.name} runs but does not answer",
                                 [f"{nf.name}: {nf.live_error or 'no answer'}", *_matching(nf, _FATAL)]))
    return found


# --------------------------------------------------------------------------- membership


def check_membership(facts: Facts) -> list[Finding]:
    found: list[Finding] = []
    live = [nf for nf in facts.nodes if _replicating(nf)]
    states: dict[str, NodeStatus] = {}
    for nf in live:
        assert nf.live is not None
        st = states[nf.name] = node_status(nf.name, nf.live.status)
        if st.cluster_status and not st.primary:
            found.append(finding("non-primary", nf.name, f"{nf.name} is {st.cluster_status}: it "
                                 "refuses queries (ERROR 1047)",
                                 [f"{nf.name}: wsrep_cluster_status = {st.cluster_status}, "
                                  f"wsrep_ready = {'ON' if st.ready else 'OFF'}, "
                                  f"wsrep_cluster_size = {st.cluster_size}"]))
        desync = nf.live.variables.get("wsrep_desync", "OFF")
        if st.donor or is_on(desync):
            found.append(finding("donor-desynced", nf.name, f"{nf.name} is "
                                 f"{st.state or 'Donor/Desynced'}",
                                 [f"{nf.name}: wsrep_local_state = {st.local_state} "
                                  f"({st.state or '?'}), wsrep_desync = {desync}"]))
    primary = [nf for nf in live if states[nf.name].primary]
    groups: dict[tuple[str, str], list[NodeFacts]] = defaultdict(list)
    for nf in primary:
        st = states[nf.name]
        groups[(str(st.conf_id), st.cluster_state_uuid)].append(nf)
    if len(groups) > 1:
        sizes = {nf.name: states[nf.name].cluster_size for nf in primary}
        if any(size < facts.expected_size for size in sizes.values()):
            ordered = sorted(groups.values(), key=len)
            evidence = [f"{nf.name}: Primary, size {sizes[nf.name]}, conf_id {key[0]}, "
                        f"state uuid {key[1]}" for key, members in groups.items() for nf in members]
            found.append(finding("split-brain", ordered[0][0].name,
                                 f"{len(groups)} groups are Primary: "
                                 + " | ".join(", ".join(nf.name for nf in g) for g in groups.values()),
                                 evidence,
                                 fix=f"stop the smaller side ({', '.join(nf.name for nf in ordered[0])}), "
                                 "reconcile its changes by hand, then let it rejoin by full state "
                                 "transfer (wipe its datadir), never by bootstrap"))
    return found


# --------------------------------------------------------------------------- performance


def check_performance(facts: Facts) -> list[Finding]:
    found: list[Finding] = []
    live = [nf for nf in facts.nodes if _replicating(nf)]
    paused = [nf for nf in live if nf.live and _float(nf.live.status, "wsrep_flow_control_paused")
              >= FC_PAUSED_WARN]
    if paused:
        senders = sorted(live, key=lambda nf: (_int(nf.live.status if nf.live else {},
                                                    "wsrep_flow_control_sent"),
                                               _float(nf.live.status if nf.live else {},
                                                      "wsrep_local_recv_queue_avg")), reverse=True)
        slow = senders[0]
        assert slow.live is not None
        evidence = [f"{nf.name}: wsrep_flow_control_paused = "
                    f"{nf.live.status.get('wsrep_flow_control_paused')}" for nf in paused if nf.live]
        evidence.append(f"{slow.name}: wsrep_flow_control_sent = "
                        f"{slow.live.status.get('wsrep_flow_control_sent', '0')}, "
                        f"wsrep_local_recv_queue_avg = "
                        f"{slow.live.status.get('wsrep_local_recv_queue_avg', '0')}")
        found.append(finding("flow-control", slow.name, f"replication is paused by flow control; "
                             f"{slow.name} sends the most", evidence))
    for nf in live:
        assert nf.live is not None
        s, v = nf.live.status, nf.live.variables
        size = parse_size(provider_options(v.get("wsrep_provider_options", "")).get("gcache.size", ""))
        uptime = _int(s, "uptime")
        written = _int(s, "wsrep_replicated_bytes") + _int(s, "wsrep_received_bytes")
        if size and uptime >= MIN_UPTIME and written:
            rate = written / uptime
            window = size / rate
            if window < GCACHE_WINDOW:
                found.append(finding("gcache-small", nf.name, f"the gcache holds {window / 60:.0f} "
                                     "minutes of writes", [f"{nf.name}: gcache.size = {size} bytes, "
                                     f"{written} bytes replicated in {uptime} s "
                                     f"({rate:.0f} B/s)"],
                                     fix=f"raise gcache.size to at least {_human(rate * GCACHE_WINDOW)}"
                                     " in wsrep_provider_options"))
        conflicts = _int(s, "wsrep_local_cert_failures") + _int(s, "wsrep_local_bf_aborts")
        commits = _int(s, "wsrep_local_commits")
        if conflicts >= CERT_MIN_EVENTS and conflicts / max(1, commits + conflicts) >= CERT_RATIO:
            found.append(finding("cert-conflicts", nf.name, f"{conflicts} conflicting writes "
                                 f"against {commits} commits",
                                 [f"{nf.name}: wsrep_local_cert_failures = "
                                  f"{s.get('wsrep_local_cert_failures', '0')}, wsrep_local_bf_aborts"
                                  f" = {s.get('wsrep_local_bf_aborts', '0')}, wsrep_local_commits = "
                                  f"{commits}"]))
    return found


def _human(size: float) -> str:
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20)):
        if size >= scale:
            return f"{-(-size // scale):.0f}{unit}"
    return "1M"


# --------------------------------------------------------------------------- schema, accounts


def _not_replicated(t: Table) -> bool:
    return t.engine.lower() not in ("innodb", "sequence")


def _no_primary_key(t: Table) -> bool:
    return t.engine.lower() == "innodb" and not t.has_primary_key


def check_schema(facts: Facts) -> list[Finding]:
    found: list[Finding] = []
    answered = [nf for nf in facts.nodes if nf.live is not None and nf.live.tables is not None]
    rules: tuple[tuple[str, Callable[[Table], bool], str], ...] = (
        ("myisam-tables", _not_replicated, "tables Galera does not replicate"),
        ("no-primary-key", _no_primary_key, "tables without a primary key"),
    )
    for code, pick, what in rules:
        per_node = {nf.name: sorted(f"{t.qualified} ({t.engine})" for t in (nf.live.tables or ())
                                    if pick(t)) for nf in answered if nf.live is not None}
        per_node = {n: tables for n, tables in per_node.items() if tables}
        if not per_node:
            continue
        if len(per_node) == len(answered) and len({tuple(t) for t in per_node.values()}) == 1:
            tables = next(iter(per_node.values()))
            found.append(finding(code, None, f"{len(tables)} {what}: " + ", ".join(tables[:5]),
                                 [f"on {', '.join(per_node)}: " + ", ".join(tables[:20])]))
        else:
            for name, tables in per_node.items():
                found.append(finding(code, name, f"{len(tables)} {what} on {name}",
                                     [f"{name}: " + ", ".join(tables[:20])]))
    for nf in facts.nodes:
        live = nf.live
        if live is None:
            continue
        empty_root = [a.label for a in live.accounts or () if a.user == "root" and a.empty_password
                      and a.plugin in ("", "mysql_native_password", "mysql_old_password")]
        evidence = [f"{nf.name}: mysql.global_priv: {label} has an empty password"
                    for label in empty_root]
        if live.root_login_without_password:
            evidence.append(f"{nf.name}: TCP login to {nf.address}:{nf.port} as root with no "
                            f"password succeeded ({live.root_login_detail})")
        if evidence:
            found.append(finding("root-password", nf.name, "root logs in without a password",
                                 evidence, fix="set a password or drop the account: "
                                 + "; ".join(f"DROP USER {label}" for label in empty_root)
                                 if empty_root else None))
        anonymous = [a.label for a in live.accounts or () if a.user == ""]
        if anonymous:
            found.append(finding("anonymous-users", nf.name, "anonymous accounts exist",
                                 [f"{nf.name}: mysql.global_priv: {', '.join(anonymous)}"],
                                 fix="; ".join(f"DROP USER {label}" for label in anonymous)))
    return found


# --------------------------------------------------------------------------- ports


def check_ports_closed(facts: Facts) -> list[Finding]:
    found = []
    for nf in facts.nodes:
        closed = [p for p in nf.ports if p.state == "closed"]
        if closed:
            found.append(finding("ports-closed", nf.name, f"{nf.name} cannot be reached on "
                                 + ", ".join(f"{p.purpose} port {p.port}" for p in closed),
                                 [f"{nf.address}:{p.port}: {p.detail}" for p in closed]))
    return found


# --------------------------------------------------------------------------- logs

_FATAL = re.compile(r"\[ERROR\]|Aborting")
_HANDSHAKE = re.compile(r"handshake failed, my group: '([^']*)', peer group: '([^']*)'")
_PERMISSION = re.compile(r"Permission denied|Errcode: 13|error number 13\b", re.I)
_INCONSISTENT = re.compile(r"Inconsisten(cy detected|t by consensus)", re.I)
_WRITESET = re.compile(r"Maximum writeset size exceeded|transaction size (limit )?exceeded|"
                       r"writeset size limit", re.I)
_SST_CONTEXT = re.compile(r"WSREP_SST|mariabackup|xtrabackup|wsrep_sst|galerakv_sst", re.I)
_SST_AUTH = re.compile(r"Access denied|magic file|socat.*not found|not found.*socat", re.I)


def _matching(nf: NodeFacts, pattern: re.Pattern[str],
              context: re.Pattern[str] | None = None) -> list[str]:
    """The last few log lines of ``nf`` matching ``pattern`` (and ``context``), as evidence."""
    hits = [line for line in nf.log.lines
            if pattern.search(line) and (context is None or context.search(line))]
    return [f"{nf.name} log: {line}" for line in hits[-3:]]


def check_logs(facts: Facts) -> list[Finding]:
    found: list[Finding] = []
    for nf in facts.nodes:
        # peers log the same line with the groups swapped: only the node whose own group
        # is not galerakv.toml's name is the one to fix
        handshake = [m for line in nf.log.lines
                     if (m := _HANDSHAKE.search(line)) and m.group(1) != facts.cluster_name]
        configured = nf.config.get("wsrep_cluster_name") if nf.config else None
        if nf.running is False and configured is not None and configured.value == facts.cluster_name:
            handshake = []  # the failed run is history: its configuration has been fixed since
        if handshake:
            mine, peer = handshake[-1].group(1), handshake[-1].group(2)
            found.append(finding("cluster-name-mismatch", nf.name, f"{nf.name} is in group "
                                 f"{mine!r}, its peers in {peer!r}", _matching(nf, re.compile(
                                     "handshake failed, my group: '" + re.escape(mine)))))
        if hits := _matching(nf, _PERMISSION):
            found.append(finding("datadir-permissions", nf.name, f"{nf.name}'s log shows "
                                 "permission errors", hits))
        if hits := _matching(nf, _INCONSISTENT):
            found.append(finding("inconsistency", nf.name, f"{nf.name} detected an inconsistency",
                                 hits))
        if hits := _matching(nf, _WRITESET):
            found.append(finding("writeset-too-large", nf.name, "a transaction exceeded the "
                                 "writeset size limit", hits))
        if hits := _matching(nf, _SST_AUTH, _SST_CONTEXT):
            found.append(finding("sst-auth", nf.name, "a state transfer failed to authenticate "
                                 "or to connect", hits))
    if facts.tools_missing and facts.sst_method in BACKUP_SST:
        found.append(finding("sst-auth", None, f"{facts.sst_method} state transfers need "
                             + " and ".join(facts.tools_missing),
                             [f"not installed on this machine: {', '.join(facts.tools_missing)}"],
                             fix="galerakv cluster install"))
    return found


# --------------------------------------------------------------------------- TLS

_NOT_AFTER_FORMAT = "%b %d %H:%M:%S %Y %Z"  # Ssl_server_not_after: 'Mar  8 06:29:00 2029 GMT'
SYSTEM_ACCOUNTS = ("mariadb.sys", "PUBLIC")


def _loaded_until(nf: NodeFacts) -> float | None:
    """When the certificate the running server loaded expires (seconds since the epoch)."""
    text = (nf.live.status.get("ssl_server_not_after") if nf.live else None) or ""
    try:
        return datetime.datetime.strptime(" ".join(text.split()), _NOT_AFTER_FORMAT).replace(
            tzinfo=datetime.UTC).timestamp()
    except ValueError:
        return None


def check_tls(facts: Facts) -> list[Finding]:
    t = facts.tls
    if t is None:
        return []
    found: list[Finding] = []
    warn = tls.EXPIRY_WARNING_DAYS * 86400
    cluster_ca = tls.info(t.ca) if t.ca else None
    for nf in facts.nodes:
        # tls-off: what the running server does, else what its configuration says
        off: list[str] = []
        if nf.live is not None:
            v = nf.live.variables
            if v.get("have_ssl", "").upper() != "YES":
                off.append(f"{nf.name}: have_ssl = {v.get('have_ssl', '?')}")
            if provider_options(v.get("wsrep_provider_options", "")).get("socket.ssl", "").upper() != "YES":
                off.append(f"{nf.name}: wsrep_provider_options has no socket.ssl = YES")
            if not is_on(v.get("require_secure_transport")):
                off.append(f"{nf.name}: require_secure_transport = {v.get('require_secure_transport', '?')}")
        if nf.config is not None:
            missing = [name for name in ("ssl_cert", "ssl_key", "ssl_ca") if nf.config.get(name) is None]
            if missing:
                off.append(f"{nf.config.path}: no {', '.join(m.replace('_', '-') for m in missing)}")
        if off:
            found.append(finding("tls-off", nf.name, f"{nf.name} runs without TLS in a TLS cluster", off))
        # tls-mismatch: the node's files against the cluster's CA
        node_ca, node_cert = t.node_ca.get(nf.name), t.node_cert.get(nf.name)
        if t.ca and cluster_ca is not None:
            wrong: list[str] = []
            try:
                if node_ca is not None and tls.info(node_ca).fingerprint != cluster_ca.fingerprint:
                    wrong.append(f"{nf.name}: tls-ca.crt is {tls.info(node_ca).subject}, not the cluster's CA "
                                 f"{cluster_ca.subject}")
                if node_cert is not None and not tls.signed_by(node_cert, t.ca):
                    wrong.append(f"{nf.name}: tls-server.crt ({tls.info(node_cert).issuer}) was not "
                                 "signed by the cluster's CA")
            except ValueError:
                wrong.append(f"{nf.name}: its tls-ca.crt or tls-server.crt is not a PEM certificate")
            if wrong:
                found.append(finding("tls-mismatch", nf.name, f"{nf.name} does not use the cluster's CA", wrong))
        # tls-expiring: the certificate the server loaded, else the node's file
        until = _loaded_until(nf)
        source = "the running server's certificate (Ssl_server_not_after)"
        if until is None and node_cert is not None:
            with contextlib.suppress(ValueError):
                until, source = tls.info(node_cert).not_after.timestamp(), "its tls-server.crt"
        if until is not None and until - t.now < warn:
            days = (until - t.now) / 86400
            when = datetime.datetime.fromtimestamp(until, datetime.UTC)
            found.append(finding("tls-expiring", nf.name,
                                 f"{nf.name}'s certificate expires in {days:.0f} days" if days > 0
                                 else f"{nf.name}'s certificate has expired",
                                 [f"{nf.name}: {source} is valid until {when:%Y-%m-%d %H:%M} UTC"]))
    if cluster_ca is not None and cluster_ca.not_after.timestamp() - t.now < warn:
        found.append(finding("tls-expiring", None, "the cluster's CA expires soon",
                             [f"state_dir/tls/ca.crt is valid until {cluster_ca.not_after:%Y-%m-%d}"],
                             fix="make a new CA: `galerakv cluster certs --ca-cert FILE --ca-key FILE` "
                                 "(or remove state_dir/tls/ca.* and run `galerakv cluster certs`), then "
                                 "`galerakv cluster down` and `up`"))
    # account-without-ssl: once per account (the accounts replicate), from the first node that answered
    seen: set[tuple[str, str]] = set()
    for nf in facts.nodes:
        for account in (nf.live.accounts or ()) if nf.live else ():
            key = (account.user, account.host)
            if (account.ssl or account.host in ("localhost", "") or account.user in SYSTEM_ACCOUNTS
                    or key in seen):
                continue
            seen.add(key)
            found.append(finding("account-without-ssl", None, f"{account.label} may connect without TLS",
                                 [f"{nf.name}: {account.label} has no REQUIRE SSL"],
                                 fix=f"ALTER USER {account.label} REQUIRE SSL; (or DROP USER {account.label};)"))
    return found
