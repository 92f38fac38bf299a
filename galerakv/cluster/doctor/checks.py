"""Checks on the configuration, the files and the saved positions: pure functions of
:class:`~galerakv.cluster.doctor.facts.Facts` to findings.

A setting is checked twice when both are known: as the node's option files
write it and as its running server uses it (``SHOW GLOBAL VARIABLES``), so a
fixed file with a restart still pending shows, and ssh hosts (no local files)
are still checked. Both give evidence to the same finding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from galerakv.cluster.doctor.catalogue import Finding, finding
from galerakv.cluster.doctor.facts import (
    Facts,
    NodeFacts,
    gcomm_hosts,
    is_on,
    provider_options,
)
from galerakv.galera.bootstrap import Evidence, decide

# what mariadbd uses when an option file does not say (MariaDB 10.11)
SERVER_DEFAULTS = {
    "wsrep_on": "OFF",
    "wsrep_provider": "none",
    "wsrep_cluster_name": "my_wsrep_cluster",
    "wsrep_cluster_address": "",
    "wsrep_node_address": "",
    "binlog_format": "MIXED",
    "innodb_autoinc_lock_mode": "1",
    "default_storage_engine": "InnoDB",
    "bind_address": "",
    "skip_name_resolve": "OFF",
    "wsrep_sst_method": "rsync",
    "wsrep_sst_auth": "",
    "wsrep_provider_options": "",
}
BACKUP_SST = ("mariabackup", "xtrabackup", "xtrabackup-v2")


@dataclass(frozen=True)
class View:
    """One way of reading a node's settings: its option files or its running server."""

    kind: str  # "config" | "running"
    get: Callable[[str], tuple[str | None, str]]  # name -> (value, evidence)


def views(nf: NodeFacts) -> list[View]:
    found: list[View] = []
    config = nf.config
    if config is not None:
        def from_config(name: str) -> tuple[str | None, str]:
            opt = config.get(name)
            if opt is not None:
                return opt.value, f"{opt.where}: {name} = {opt.value}"
            default = SERVER_DEFAULTS.get(name)
            return default, (f"{config.path}: {name} not set (server default: "
                             f"{default if default else 'empty'})")
        found.append(View("config", from_config))
    live = nf.live
    if live is not None:
        def from_server(name: str) -> tuple[str | None, str]:
            value = live.variables.get(name)
            return value, f"running server (SHOW GLOBAL VARIABLES): {name} = {value}"
        found.append(View("running", from_server))
    return found


# --------------------------------------------------------------------------- node count


def check_node_count(facts: Facts) -> list[Finding]:
    count = facts.expected_size
    found = []
    if 0 < count < 3:
        found.append(finding("too-few-nodes", None, f"{count} node{'s' if count > 1 else ''} in "
                             "galerakv.toml: losing one stops the cluster",
                             [f"galerakv.toml: {count} [[cluster.nodes]]"]))
    if count and count % 2 == 0:
        found.append(finding("even-node-count", None, f"{count} nodes is an even number: a 50/50 "
                             "split leaves no Primary component",
                             ["galerakv.toml: " + ", ".join(n.name for n in facts.nodes)]))
    return found


# --------------------------------------------------------------------------- settings


def check_settings(facts: Facts) -> list[Finding]:
    found: list[Finding] = []
    addresses = [n.address for n in facts.nodes]
    for nf in facts.nodes:
        for view in views(nf):
            found += _settings_of(facts, nf, view, addresses)
        if nf.config is not None:
            found += _config_only(facts, nf)
        if nf.live is not None:
            found += _incoming(facts, nf)
    return found


def _settings_of(facts: Facts, nf: NodeFacts, view: View, addresses: list[str]) -> list[Finding]:
    found: list[Finding] = []
    name = nf.name
    get = view.get

    value, ev = get("wsrep_on")
    if value is not None and not is_on(value):
        found.append(finding("wsrep-off", name, "replication is off (wsrep_on = OFF): the node "
                             "runs standalone", [ev]))

    value, ev = get("wsrep_provider")
    if value is not None:
        if value.strip().lower() in ("", "none"):
            found.append(finding("provider-missing", name, "no Galera library is configured", [ev]))
        elif view.kind == "config" and facts.provider_exists.get(value) is False:
            found.append(finding("provider-missing", name, f"{value} does not exist on this "
                                 "machine", [ev]))

    value, ev = get("wsrep_cluster_name")
    if value is not None and value != facts.cluster_name:
        found.append(finding("cluster-name-mismatch", name,
                             f"cluster name {value!r}, galerakv.toml says {facts.cluster_name!r}",
                             [ev, f"galerakv.toml: [cluster] name = {facts.cluster_name}"]))

    value, ev = get("wsrep_cluster_address")
    if value is not None:
        found += _cluster_address(nf, view.kind, value, ev, addresses)

    value, ev = get("wsrep_node_address")
    if value is not None:
        host = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
        if not value.strip() or value.strip().upper() == "AUTO":
            found.append(finding("node-address-wrong", name, "wsrep_node_address is not set: Galera "
                                 "guesses the address", [ev], severity="warning"))
        elif host != nf.address:
            found.append(finding("node-address-wrong", name, f"wsrep_node_address is {value}, "
                                 f"galerakv.toml says {nf.address}",
                                 [ev, f"galerakv.toml: {name}.address = {nf.address}"]))

    bad = []
    for key, wanted in (("binlog_format", "ROW"), ("innodb_autoinc_lock_mode", "2"),
                        ("default_storage_engine", "INNODB")):
        value, ev = get(key)
        if value is not None and value.strip().upper() != wanted:
            bad.append(ev)
    if bad:
        found.append(finding("mandatory-settings", name, "settings Galera requires are missing: "
                             + ", ".join(e.rsplit(": ", 1)[-1] for e in bad), bad))

    value, ev = get("bind_address")
    if value is not None and value.strip() in ("", "0.0.0.0", "::", "*"):
        found.append(finding("bind-all", name, "the server listens on every address", [ev],
                             fix=f"bind-address = {nf.address} (as galerakv renders it)"))

    value, ev = get("skip_name_resolve")
    if value is not None and not is_on(value):
        found.append(finding("name-resolve", name, "client host names are resolved "
                             "(skip_name_resolve = OFF)", [ev]))

    method, ev_method = get("wsrep_sst_method")
    if method is not None and method.strip().lower() in BACKUP_SST:
        auth, ev_auth = get("wsrep_sst_auth")
        if auth is not None and not auth.strip():
            found.append(finding("sst-auth", name, f"{method} state transfers need wsrep_sst_auth, "
                                 "which is not set", [ev_method, ev_auth]))
    return found


# how each case of a wrong gcomm:// list is cleared (`galerakv cluster render` only prints)
_ADDRESS_FIX_RUNNING = ("`galerakv cluster restart --rolling`: it restarts the nodes one at a time, each on "
                        "its configuration rendered from galerakv.toml (a running node reads "
                        "wsrep_cluster_address only at start)")
_ADDRESS_FIX_FILE = ("`galerakv cluster restart --rolling` rewrites each node's configuration from "
                     "galerakv.toml and restarts the nodes one at a time")
_ADDRESS_FIX_STOPPED = ("`galerakv cluster up`: it rewrites the node's configuration from galerakv.toml "
                        "before it starts the node")


def _complete(nf: NodeFacts, addresses: list[str]) -> bool:
    """The node's configuration file lists every node of galerakv.toml."""
    opt = nf.config.get("wsrep_cluster_address") if nf.config else None
    hosts = gcomm_hosts(opt.value) if opt is not None else None
    return hosts is not None and all(a in hosts for a in addresses)


def _cluster_address(nf: NodeFacts, kind: str, value: str, ev: str, addresses: list[str]) -> list[Finding]:
    """What is wrong with one view (``config`` or ``running``) of the node's gcomm:// list."""
    if kind == "running":
        fix = _ADDRESS_FIX_RUNNING
    else:
        fix = _ADDRESS_FIX_STOPPED if nf.running is False else _ADDRESS_FIX_FILE
    hosts = gcomm_hosts(value)
    if hosts is None:
        return [finding("cluster-address-incomplete", nf.name, "wsrep_cluster_address is not a "
                        "gcomm:// list: the node does not replicate", [ev], severity="critical", fix=fix)]
    if not hosts:
        return [finding("cluster-address-incomplete", nf.name, "wsrep_cluster_address is an empty "
                        "gcomm://: the node bootstraps a new cluster on every start", [ev],
                        severity="critical", fix=fix)]
    missing = [a for a in addresses if a not in hosts]
    if not missing:
        return []
    evidence = [ev, "galerakv.toml: " + ", ".join(addresses)]
    if kind == "running" and _complete(nf, addresses):
        # after `add-node`: the file has the new list and the next start reads it; nothing
        # is at risk meanwhile (gcomm membership does not depend on the list once joined)
        return [finding("cluster-address-incomplete", nf.name, "the running server still uses the "
                        "gcomm:// list it started with, which misses " + ", ".join(missing)
                        + "; its configuration file lists every node, so its next start uses it",
                        evidence, severity="info",
                        fix="nothing is needed now; " + _ADDRESS_FIX_RUNNING + " clears it")]
    peers = [h for h in hosts if h != nf.address]
    return [finding("cluster-address-incomplete", nf.name,
                    ("its configuration file's" if kind == "config" else "the running server's")
                    + " wsrep_cluster_address misses " + ", ".join(missing),
                    evidence, severity="warning" if peers else "critical", fix=fix)]


def _config_only(facts: Facts, nf: NodeFacts) -> list[Finding]:
    assert nf.config is not None
    found = []
    flags = list(nf.config.flags)
    opt = nf.config.get("wsrep_provider_options")
    if opt is not None and is_on(provider_options(opt.value).get("pc.bootstrap")):
        flags.append(opt)
    if flags:
        found.append(finding("bootstrap-in-config", nf.name, "a configuration file bootstraps "
                             "the node on every start",
                             [f"{f.where}: {f.value}" for f in flags]))
    if nf.config.missing_includes:
        for path in nf.config.missing_includes:
            if path.endswith("sst_auth.cnf") and facts.sst_method == "mariabackup":
                found.append(finding("sst-auth", nf.name, f"{path} (wsrep_sst_auth) is missing",
                                     [f"{nf.config.path}: !include {path}"]))
    return found


def _incoming(facts: Facts, nf: NodeFacts) -> list[Finding]:
    assert nf.live is not None
    incoming = nf.live.status.get("wsrep_incoming_addresses", "")
    known = {n.address for n in facts.nodes}
    odd = [a for a in incoming.split(",") if a.strip() and a.strip().upper() != "AUTO"
           and (a.rsplit(":", 1)[0] if a.count(":") == 1 else a).strip() not in known]
    if not odd:
        return []
    return [finding("node-address-wrong", nf.name, "members advertise addresses galerakv.toml "
                    "does not list: " + ", ".join(odd),
                    [f"{nf.name}: wsrep_incoming_addresses = {incoming}"])]


# --------------------------------------------------------------------------- files


def check_files(facts: Facts) -> list[Finding]:
    found: list[Finding] = []
    for nf in facts.nodes:
        f = nf.files
        if f is None:
            continue
        if f.wrong_owner:
            shown = list(f.wrong_owner[:5])
            if len(f.wrong_owner) > 5:
                shown.append(f"... and {len(f.wrong_owner) - 5} more")
            # the node's folder, not the datadir: before the first `up` there is no data/ to chown
            found.append(finding("datadir-permissions", nf.name, f"files of {nf.name} are not "
                                 f"owned by {f.run_as}", shown,
                                 fix=f"chown -R {f.run_as}:{f.run_as} {f.node_dir}"))
        if f.blocked_dir is not None and not f.wrong_owner:
            found.append(finding("datadir-permissions", nf.name, f"the {f.run_as} user cannot "
                                 f"enter {f.blocked_dir}", [f"{f.blocked_dir}: not enterable by "
                                 f"{f.run_as}"], fix=f"chmod o+x {f.blocked_dir}, or move "
                                 "state_dir under a directory every user can enter (/var/tmp, /srv)"))
        elif f.blocked_dir is not None:
            found.append(finding("datadir-permissions", nf.name, "", [f"{f.blocked_dir}: not "
                                 f"enterable by {f.run_as}"]))
        if f.sst_leftovers and nf.running is False:
            found.append(finding("sst-leftovers", nf.name, "a state transfer did not finish",
                                 [f"{p}: left by an unfinished state transfer"
                                  for p in f.sst_leftovers],
                                 fix="with the node stopped: rm -rf " + " ".join(f.sst_leftovers)
                                 + "; then `galerakv cluster up`"))
        if f.gra_logs:
            found.append(finding("inconsistency", nf.name, f"{len(f.gra_logs)} failed apply "
                                 "log(s) (GRA_*.log) in the datadir", list(f.gra_logs[:5]),
                                 severity="warning"))
    return found


def check_maintenance(facts: Facts) -> list[Finding]:
    """node-in-maintenance: drained on purpose, but easily forgotten once the work is done."""
    found = []
    for nf in facts.nodes:
        m = nf.maintenance
        if m is not None:
            found.append(finding("node-in-maintenance", nf.name, f"{nf.name} is in maintenance since "
                                 f"{m.since_text}: the balancer sends it nothing",
                                 [f"{m.path}: {m.note or '(empty)'}"],
                                 fix=f"once the work on {nf.name} is done: `{m.end}`"))
    return found


def check_ports_in_use(facts: Facts) -> list[Finding]:
    found = []
    for nf in facts.nodes:
        taken = [p for p in nf.ports if p.state in ("in-use", "unavailable")]
        if taken:
            found.append(finding("port-in-use", nf.name, f"{nf.name} cannot listen: "
                                 + ", ".join(f"{p.purpose} port {p.port}" for p in taken),
                                 [p.detail for p in taken]))
    return found


# --------------------------------------------------------------------------- saved positions


def check_bootstrap(facts: Facts) -> list[Finding]:
    """not-bootstrapped, unsafe-bootstrap-choice, history-diverged: only when no node runs.

    The findings are what :func:`galerakv.galera.bootstrap.decide` (the rule ``up``
    and ``recover`` follow) says about the saved positions and the last
    ``--wsrep-recover`` results in the logs.
    """
    if any(nf.running is not False for nf in facts.nodes):
        return []  # a running node (or one we cannot see) is the cluster to join
    names = [nf.name for nf in facts.nodes]
    evidence = {nf.name: Evidence(nf.name, nf.grastate, nf.log.recovered, nf.log.recovered is not None)
                for nf in facts.nodes}
    decision = decide(names, evidence)
    if decision.fresh:
        return []  # never bootstrapped: `up` starts the root node
    lines = [f"{nf.name}/grastate.dat: uuid {nf.grastate.uuid}, seqno {nf.grastate.seqno}, "
             f"safe_to_bootstrap {int(nf.grastate.safe_to_bootstrap)}"
             + (f"; recovered {nf.log.recovered}" if nf.log.recovered is not None else "")
             for nf in facts.nodes if nf.grastate is not None and not nf.grastate.never_joined]
    found = []
    if decision.problem == "history-diverged":
        found.append(finding("history-diverged", None, "stopped nodes hold different cluster "
                             "histories", lines))
    if decision.unclean:
        found.append(finding("not-bootstrapped", None, "no node runs and none is marked "
                             "safe_to_bootstrap: the cluster did not stop cleanly", lines))
    best = max((p.seqno for ev in evidence.values() if (p := ev.position()[0]) is not None),
               default=-1)
    for name in decision.unsafe:
        g = evidence[name].grastate
        seqno = g.seqno if g is not None else -1
        found.append(finding("unsafe-bootstrap-choice", name, f"{name} is marked safe_to_bootstrap "
                             f"at seqno {seqno}, but another node reached seqno {best}", lines))
    if not decision.unsafe and decision.several_safe:
        found.append(finding("unsafe-bootstrap-choice", None, "several nodes are marked "
                             "safe_to_bootstrap: " + ", ".join(decision.several_safe), lines,
                             severity="warning"))
    return found


def check_backups(facts: Facts) -> list[Finding]:
    """backup-failed when the newest backup did not complete; backup-old when the newest complete
    one is older than allowed. Silent until the backup directory holds a backup."""
    b = facts.backups
    if b is None or not b.count:
        return []
    found: list[Finding] = []
    if b.newest_state != "complete" and b.newest_state != "running":
        why = "it is marked running but its process is gone" if b.newest_state == "died" else b.newest_error
        found.append(finding("backup-failed", None, f"the newest backup did not complete: {why}",
                             [f"{b.newest}/manifest.json: status {b.newest_state}"]))
    if not b.newest_complete:
        found.append(finding("backup-old", None, f"no complete backup in {b.dir}",
                             [f"{b.count} backup(s) there, none complete"]))
    else:
        age = (b.now - b.newest_complete_at) / 3600
        if age > b.max_age_hours:
            found.append(finding("backup-old", None,
                                 f"the newest complete backup is {age:.1f} hours old "
                                 f"(max_age_hours = {b.max_age_hours:g})", [b.newest_complete]))
    return found
