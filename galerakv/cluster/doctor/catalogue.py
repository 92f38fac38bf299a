"""The catalogue of Galera mistakes ``galerakv cluster doctor`` knows, as data.

Each :class:`Entry` has a stable code (printed by the doctor, carried by
``--json``, never renamed), the usual severity, what the user sees, how the
doctor tells, and the fix. ``docs/troubleshooting.md`` is generated from this
table (``python -m galerakv.cluster.doctor.catalogue > docs/troubleshooting.md``)
and a test holds the file to it, so no code can go undocumented.

A :class:`Finding` is one occurrence of an entry: on a node (or the whole
cluster), with the evidence that shows it and the fix for this case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["critical", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info")


@dataclass(frozen=True)
class Entry:
    code: str
    severity: Severity
    title: str
    symptom: str
    cause: str
    fix: str
    offline: bool = False  # found by ``doctor --offline`` (and checked by ``up`` before it starts)


def _e(code: str, severity: Severity, title: str, symptom: str, cause: str, fix: str,
       offline: bool = False) -> Entry:
    return Entry(code, severity, title, symptom, cause, fix, offline)


_ENTRIES = (
    # -- configuration
    _e("cluster-name-mismatch", "critical", "Nodes use different cluster names",
       "the node never joins; its log repeats `handshake failed, my group: 'A', peer group: 'B'`",
       "`wsrep_cluster_name` in a node's configuration or running server differs from "
       "`[cluster] name` in galerakv.toml (and so from its peers)",
       "use the same name on every node: `galerakv cluster render` rewrites the configuration "
       "from galerakv.toml; restart the node", offline=True),
    _e("cluster-address-incomplete", "warning", "The gcomm:// list misses nodes",
       "the node starts alone (a second cluster) or cannot find its peers after a restart",
       "`wsrep_cluster_address` in a node's configuration file or running server does not list "
       "every node of galerakv.toml, or is an empty `gcomm://` (which bootstraps a new cluster on "
       "every start); critical when it names no peer; only info when the file lists every node and "
       "the running server still has the list it started with (as after `galerakv cluster add-node`)",
       "`galerakv cluster restart --rolling`: it rewrites every node's configuration from "
       "galerakv.toml and restarts the nodes one at a time (a stopped node gets its configuration "
       "from `galerakv cluster up`); after `add-node` nothing is needed: each node reads the new "
       "list at its next start", offline=True),
    _e("bootstrap-in-config", "critical", "A configuration file bootstraps the node",
       "after a restart the node forms its own cluster instead of rejoining: two clusters, "
       "diverging data",
       "`wsrep-new-cluster` or `pc.bootstrap=YES` written into a configuration file",
       "remove it; `--wsrep-new-cluster` belongs on the command line of the one bootstrap start "
       "(`galerakv cluster up` does this)", offline=True),
    _e("node-address-wrong", "critical", "A node advertises the wrong address",
       "peers try to reach the node at an unexpected address; joins and state transfers hang",
       "`wsrep_node_address` unset (Galera guesses) or different from the node's `address` in "
       "galerakv.toml; or `wsrep_incoming_addresses` lists an address galerakv.toml does not know",
       "set `wsrep_node_address` explicitly per node (`galerakv cluster render`)", offline=True),
    _e("wsrep-off", "critical", "Replication is switched off",
       "the node runs standalone: cluster size 1 or its writes never reach the others",
       "`wsrep_on = OFF` (the default since MariaDB 10.1) in the configuration or the running "
       "server (`SET GLOBAL wsrep_on=OFF`)",
       "`wsrep_on = ON` in the configuration (`galerakv cluster render`); on a running node "
       "`SET GLOBAL wsrep_on = ON`", offline=True),
    _e("provider-missing", "critical", "No Galera library",
       "wsrep never starts; the node runs as a plain server",
       "`wsrep_provider` unset, `none`, or a path that does not exist",
       "install galera-4 (`galerakv cluster install`) and point `wsrep_provider` at "
       "libgalera_smm.so (`galerakv cluster render`)", offline=True),
    _e("mandatory-settings", "critical", "Settings Galera requires are missing",
       "odd replication errors, deadlocks on inserts with auto-increment keys, tables that do not "
       "replicate",
       "`binlog_format` is not ROW, `innodb_autoinc_lock_mode` is not 2, or the default storage "
       "engine is not InnoDB",
       "regenerate the configuration (`galerakv cluster render`) and restart the node",
       offline=True),
    _e("bind-all", "warning", "The server listens on every address",
       "the database is reachable from every network the host is on",
       "`bind-address` unset, `0.0.0.0`, `::` or `*`",
       "bind each node to its own address (`bind-address = <node address>`, as rendered); "
       "never combine with an empty password (`root-password`)", offline=True),
    _e("name-resolve", "warning", "Client host names are resolved",
       "every new connection takes tens of milliseconds, or stalls when DNS is slow",
       "`skip_name_resolve` is OFF",
       "`skip_name_resolve = ON` (rendered by galerakv) and restart the node; accounts must then "
       "use addresses, not host names", offline=True),
    _e("even-node-count", "warning", "An even number of nodes",
       "a 50/50 network split leaves no Primary component: every node stops serving",
       "the metadata file lists an even number of nodes and no arbitrator",
       "add a node or run an arbitrator (garbd)", offline=True),
    _e("too-few-nodes", "warning", "Fewer than three nodes",
       "the loss of any one node stops the cluster",
       "fewer than 3 nodes in galerakv.toml",
       "run at least 3 nodes", offline=True),
    # -- files and the machine
    _e("datadir-permissions", "critical", "The datadir is not the mysql user's",
       "mariadbd will not start, or a joiner never finishes its state transfer "
       "(rsync `Permission denied` in the donor log)",
       "the node's folder, its datadir or files in it are not owned by the user mariadbd runs as, "
       "a parent directory cannot be entered by that user, or the log shows `Permission denied` / "
       "`Errcode: 13`",
       "`chown -R mysql:mysql` the node's folder (`state_dir/<node>`, which holds the datadir "
       "once `galerakv cluster up` has made it) and make its parents enterable; prefer "
       "`sst_method = \"mariabackup\"`, which does not copy files as another user", offline=True),
    _e("sst-leftovers", "critical", "A state transfer did not finish",
       "the node refuses to start, or starts a new full state transfer every time",
       "`sst_in_progress`, `wsrep_sst.pid`, `rsync_sst.pid` or a `.sst` directory in a stopped "
       "node's datadir",
       "with the node stopped, remove those files (or the whole datadir, to rejoin by full state "
       "transfer), then `galerakv cluster up`", offline=True),
    _e("port-in-use", "critical", "Another program holds a node's port",
       "the node cannot start (`Address already in use` in its log)",
       "a port of a stopped node (client 3306, gcomm 4567, IST 4568, SST 4444) on its address "
       "is already bound by another program",
       "stop that program (`ss -ltnp` shows it), or give the node another address", offline=True),
    _e("not-bootstrapped", "critical", "Nobody may bootstrap",
       "after a full stop every node waits for peers forever (`up` applies the recovery rule by "
       "itself and refuses only on contradicting evidence)",
       "no node runs, and no node's grastate.dat says `safe_to_bootstrap: 1` (the cluster did "
       "not stop cleanly: a crash, a power loss, kill -9)",
       "`galerakv cluster recover` (by hand: `mariadbd --wsrep-recover` on every node, set "
       "`safe_to_bootstrap: 1` in the grastate.dat of the highest seqno, bootstrap it, start "
       "the others; start each with `--wsrep-start-position=<uuid>:<seqno>` as recovered, or the "
       "cluster gets a new history and every joiner a full state transfer)", offline=True),
    _e("unsafe-bootstrap-choice", "critical", "The node marked safe is not the most advanced",
       "bootstrapping it loses the transactions the other nodes committed after it",
       "a grastate.dat with `safe_to_bootstrap: 1` whose seqno is lower than another node's "
       "saved or recovered seqno, or several nodes marked safe",
       "bootstrap the node with the highest seqno: set `safe_to_bootstrap: 1` there and 0 "
       "elsewhere, or `galerakv cluster recover`", offline=True),
    _e("history-diverged", "critical", "Nodes hold different cluster histories",
       "`up` refuses; a node that does join later gets a full state transfer and loses its own "
       "changes",
       "stopped nodes' grastate.dat carry different cluster UUIDs: somebody bootstrapped "
       "twice", "decide which history to keep; wipe the datadir of the other nodes so they "
       "rejoin by full state transfer", offline=True),
    _e("inconsistency", "critical", "A node found its data differs",
       "the node aborts with `Inconsistency detected` or leaves the cluster",
       "`GRA_*.log` files (failed applies) in the datadir (a warning on their own), or the log "
       "says `Inconsistency` / `Inconsistent by consensus` (critical)",
       "resync that node: stop it, remove its datadir, `galerakv cluster up` (full state "
       "transfer); find the non-replicated write (MyISAM, wsrep_on=OFF session)", offline=True),
    _e("sst-auth", "critical", "State transfers cannot authenticate",
       "mariabackup state transfers fail: the joiner never gets its data",
       "`sst_method = \"mariabackup\"` without `wsrep_sst_auth`, socat or mariabackup not "
       "installed, or the log shows `Access denied` for the SST user / `magic file`",
       "create the SST user and set `wsrep_sst_auth` (`galerakv cluster up` does both), "
       "`galerakv cluster install` for socat and mariabackup", offline=True),
    # -- live state
    _e("node-down", "warning", "A node does not run or does not answer",
       "the cluster is smaller than galerakv.toml says; one more failure may stop it",
       "the node's mariadbd is not running (crashed, killed, never started), or runs but does "
       "not answer queries",
       "read the node's log (`state_dir/<node>/mysqld.log`; on a host where it runs as a systemd unit "
       "`journalctl -u galerakv-node-<node>`), fix what it says, then "
       "`galerakv cluster up` (it rejoins the running cluster)"),
    _e("node-joining", "info", "A node is receiving a state transfer",
       "the node does not answer yet; it is busy, not dead",
       "the log's last state change is Joiner / initializing / Joined",
       "wait; `galerakv cluster status` shows it Synced when done"),
    _e("ports-closed", "critical", "Nodes cannot reach each other",
       "a joiner hangs in Joining; nodes do not see each other",
       "a TCP connection from a peer's address to a running node's client port or gcomm port "
       "(4567) fails",
       "open 3306, 4567, 4568 and 4444 between the nodes (firewall, bind address)"),
    _e("non-primary", "critical", "A node lost the quorum",
       "queries fail with ERROR 1047 (WSREP has not yet prepared node for application use)",
       "`wsrep_cluster_status` is non-Primary, `wsrep_ready` OFF",
       "restore connectivity to the other nodes; only when the rest is truly gone, "
       "`SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'` on the most advanced node"),
    _e("split-brain", "critical", "Two groups claim to be the cluster",
       "writes on either side succeed and the data diverges",
       "several nodes are Primary in different memberships (`wsrep_cluster_conf_id` or state "
       "UUID differ) with sizes below the node count",
       "stop the smaller side, reconcile its changes by hand, then let it rejoin without "
       "bootstrap (wipe its datadir for a full state transfer)"),
    _e("donor-desynced", "warning", "A node is Donor/Desynced",
       "the node serves stale reads or blocks while it is a donor",
       "`wsrep_local_state` = 2 (Donor/Desynced) or `wsrep_desync` = ON",
       "take it out of the balancer until it is Synced again; `SET GLOBAL wsrep_desync = OFF` "
       "if someone set it by hand"),
    _e("node-in-maintenance", "warning", "A node is drained from the balancer",
       "the balancer sends the node nothing: reads are spread over fewer nodes, writes go to a "
       "backup when it is the writer; `galerakv cluster status` marks it `(maintenance)`",
       "its maintenance file `state_dir/<node>/maintenance` exists (`galerakv cluster maintenance "
       "--node <node> on`, or a rolling restart or backup that did not finish), so its health check "
       "answers 503 whatever the node's state",
       "once the work on the node is done: `galerakv cluster maintenance --node <node> off`",
       offline=True),
    _e("flow-control", "warning", "Flow control pauses the cluster",
       "the whole cluster is slow; writes stall",
       "`wsrep_flow_control_paused` near 1; the node sending flow control (`wsrep_flow_control_"
       "sent`) has a large receive queue",
       "fix or replace the slow node; raise `wsrep_slave_threads`"),
    _e("gcache-small", "warning", "The gcache holds less than an hour of writes",
       "every node that rejoins needs a full state transfer instead of an incremental one",
       "`gcache.size` divided by the write rate (`wsrep_replicated_bytes` + "
       "`wsrep_received_bytes` per second of uptime) is under an hour",
       "raise `gcache.size` in `wsrep_provider_options`"),
    _e("cert-conflicts", "warning", "Writes conflict between nodes",
       "ERROR 1213 (deadlock) at COMMIT under load",
       "`wsrep_local_cert_failures` + `wsrep_local_bf_aborts` are at least 1% of commits",
       "send writes to one node at a time (galerakv's balancer and routing do); retry on 1213"),
    _e("writeset-too-large", "warning", "A transaction is too large to replicate",
       "ERROR 1105: Maximum writeset size exceeded",
       "the log shows a writeset or transaction size limit being hit",
       "batch the work into smaller transactions; raise `wsrep_max_ws_size` with care"),
    _e("myisam-tables", "warning", "Tables Galera does not replicate",
       "rows differ between nodes",
       "non-InnoDB (MyISAM, Aria, ...) tables outside the system schemas",
       "convert them: `ALTER TABLE t ENGINE=InnoDB`"),
    _e("no-primary-key", "warning", "Tables without a primary key",
       "slow or failing replication of updates and deletes",
       "user tables without a PRIMARY KEY",
       "add one; `wsrep_mode = REQUIRED_PRIMARY_KEY` refuses new ones"),
    _e("root-password", "critical", "root logs in without a password",
       "anyone who reaches the port is the database administrator",
       "a root account with an empty password, or a successful TCP login as root with no password",
       "set a password or drop the account (`DROP USER 'root'@'<host>'`); use the generated "
       "accounts in state_dir/secrets.toml"),
    _e("anonymous-users", "warning", "Anonymous accounts exist",
       "anyone can log in with any user name and get that account's privileges",
       "accounts with an empty user name (left by some installers)",
       "`DROP USER ''@'<host>'` for each"),
    # -- backups
    # -- TLS (cluster.tls = true)
    _e("tls-expiring", "warning", "A certificate expires soon",
       "once it expires, clients, peers and state transfers refuse the node: it cannot rejoin, and "
       "HTTPS clients of the API fail",
       "a node's certificate (the one the running server loaded, `Ssl_server_not_after`, else its "
       "`tls-server.crt`) or one in `state_dir/tls` expires within 30 days",
       "`galerakv cluster certs --renew`, then `galerakv cluster restart --rolling` (no failed request); "
       "restart `galerakv serve` for a new HTTPS certificate"),
    _e("tls-mismatch", "critical", "A node trusts another CA",
       "the node cannot join (its peers drop the TLS handshake: `SSL error` / `certificate verify "
       "failed` in the logs), or state transfers to it fail",
       "the node's `tls-ca.crt` is not the cluster's CA (`state_dir/tls/ca.crt`), or its "
       "`tls-server.crt` was not signed by the cluster's CA",
       "`galerakv cluster restart --rolling` writes the cluster's CA and the node's certificate "
       "again (`galerakv cluster certs` shows them; `--ca-cert/--ca-key` for your own CA)"),
    _e("tls-off", "critical", "A node runs without TLS in a TLS cluster",
       "clients that require TLS cannot connect to it, or its data and passwords cross the network "
       "in clear",
       "the running server has `have_ssl` other than YES, Galera without `socket.ssl`, or no "
       "`require_secure_transport`; or its configuration file lacks the ssl settings",
       "`galerakv cluster restart --rolling` renders every node's configuration with TLS again and "
       "restarts them one at a time"),
    _e("account-without-ssl", "warning", "An account may connect without TLS",
       "its password and data can cross the network in clear (a server with "
       "`require_secure_transport` still refuses it, so it fails where TLS is off)",
       "an account for a host other than `localhost` was created without `REQUIRE SSL`",
       "`ALTER USER 'name'@'host' REQUIRE SSL;` (galerakv's own accounts: `galerakv cluster up` "
       "sets it again), or drop the account"),
    _e("backup-old", "warning", "No recent backup",
       "a lost cluster (or a mistaken delete that replicated everywhere) can only be restored to a "
       "point long ago",
       "the newest complete backup in `[backup] dir` is older than `[backup] max_age_hours`, or none "
       "there is complete (checked once the directory holds a backup)",
       "run `galerakv backup --config galerakv.toml` now and schedule it (docs/backup.md shows a "
       "systemd timer and a cron line); restore one now and then to know it works"),
    _e("backup-failed", "warning", "The last backup failed",
       "the backup directory's newest backup cannot be restored",
       "its manifest.json says `failed` (with the error), or still says `running` although the "
       "process that took it is gone (killed, out of disk, the machine restarted)",
       "read `error` in its manifest.json, fix the cause and run `galerakv backup` again; the failed "
       "directory is removed with the old backups once newer ones complete"),
)

CATALOGUE: dict[str, Entry] = {e.code: e for e in _ENTRIES}


@dataclass(frozen=True)
class Finding:
    """One mistake found: its code, how bad, where, what shows it, and what to do."""

    code: str
    severity: Severity
    node: str | None  # None: the whole cluster
    summary: str
    evidence: tuple[str, ...] = field(default_factory=tuple)
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "node": self.node,
                "summary": self.summary, "evidence": list(self.evidence), "fix": self.fix,
                "title": CATALOGUE[self.code].title}


def finding(code: str, node: str | None, summary: str, evidence: tuple[str, ...] | list[str] = (),
            *, fix: str | None = None, severity: Severity | None = None) -> Finding:
    """A finding of a catalogue code; severity and fix default to the catalogue's."""
    entry = CATALOGUE[code]  # a KeyError here is a programming error: unknown code
    return Finding(code, severity or entry.severity, node, summary, tuple(evidence),
                   fix or entry.fix)


# --------------------------------------------------------------------------- docs

_INTRO = """\
# Troubleshooting a Galera cluster

`galerakv cluster doctor` looks for every mistake below and prints, for each one
it finds, the code, the severity, the node, the evidence (the log line, the
variable and its value, the file and its content) and the fix:

```sh
sudo galerakv cluster doctor            # configs, live status and variables, logs, files, ports
sudo galerakv cluster doctor --offline  # galerakv.toml, rendered configs and files only: no node needed
sudo galerakv cluster doctor --json     # the same as data; codes are stable
```

It exits 1 when anything is critical, 0 otherwise. `galerakv cluster up` runs
the offline checks first (on the configuration it is about to write) and
refuses to start on a critical one; `galerakv cluster status` points here when
its verdict is not healthy.

What the doctor reads:

- **configuration**: galerakv.toml, and each node's rendered `my.cnf` /
  `cluster.cnf` (following `!include`); for running nodes also what the server
  actually uses (`SHOW GLOBAL VARIABLES`), so a restart that is still pending
  shows;
- **live state**: `SHOW GLOBAL STATUS` of every node that answers, its tables
  (engines, primary keys) and accounts (empty passwords, never hashes), and a
  TCP login attempt as root with no password;
- **logs**: the lines of the node's error log (`state_dir/<node>/mysqld.log`, or
  the journal of its systemd unit) since its last start;
- **files** (local nodes): datadir ownership, `grastate.dat`, state transfer
  leftovers, `GRA_*.log`;
- **ports**: from a peer node's address to each running node's client and gcomm
  ports; for stopped local nodes, whether another program holds their ports.

Nodes that are down are reported (`node-down`), never a reason for the doctor
itself to fail. Codes marked *offline* are found by `--offline`.

This file is generated from `galerakv/cluster/doctor/catalogue.py`
(`python -m galerakv.cluster.doctor.catalogue > docs/troubleshooting.md`); a
test fails when the two differ.

| code | severity | what |
|---|---|---|
"""


def render_markdown() -> str:
    """docs/troubleshooting.md, from the catalogue."""
    parts = [_INTRO]
    parts += [f"| [`{e.code}`](#{e.code}) | {e.severity} | {e.title} |\n" for e in _ENTRIES]
    for e in _ENTRIES:
        parts.append(
            f"\n## {e.code}\n\n"
            f"**{e.title}** — {e.severity}{', offline' if e.offline else ''}\n\n"
            f"- **Symptom:** {e.symptom}\n"
            f"- **Cause (how the doctor tells):** {e.cause}\n"
            f"- **Fix:** {e.fix}\n"
        )
    return "".join(parts)


if __name__ == "__main__":
    print(render_markdown(), end="")
