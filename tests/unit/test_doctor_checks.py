# ruff: noqa: E501  (recorded log lines are kept as the server wrote them)
"""Every doctor code from recorded inputs: status snapshots, variables, log excerpts, files.

The checks are pure functions of frozen facts, so each case builds the facts a
real cluster would give (the snapshots below were recorded on MariaDB 10.11 /
Galera 4 nodes, trimmed to the variables that matter) and asserts the code on
the right node. ``test_every_code_has_a_recorded_case`` keeps the table whole.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from galerakv import tls
from galerakv.cluster.balancer.clustercheck import Maintenance
from galerakv.cluster.doctor import DoctorReport, diagnose
from galerakv.cluster.doctor.catalogue import CATALOGUE
from galerakv.cluster.doctor.facts import (
    AccountFact,
    BackupFacts,
    ConfigFacts,
    Facts,
    FileFacts,
    LiveFacts,
    LogFacts,
    NodeFacts,
    Option,
    PortFact,
    Table,
    TlsFacts,
    parse_log,
)
from galerakv.galera.log import START_MARKER
from galerakv.galera.position import GraState
from galerakv.galera.status import parse_status_rows

UUID = "672b085e-e985-11f1-8a73-46d596c18f25"
OTHER_UUID = "9171d88f-e985-11f1-a98d-73f2352e8f52"
NAME = "doctor_test"
NOW_2026_12_04 = 1796364000.0  # 2026-12-04 06:00 UTC: the recorded certificates' "now"
_NOW = dt.datetime.fromtimestamp(NOW_2026_12_04, dt.UTC)
CA, _CA_KEY = tls.issue_ca("galerakv_test", now=_NOW)
OTHER_CA, _OTHER_KEY = tls.issue_ca("someone else", now=_NOW)
OTHER_LEAF = tls.issue_leaf(OTHER_CA, _OTHER_KEY, "db1", ["127.0.0.11"], now=_NOW)[0]
NODE_CERTS = {n: tls.issue_leaf(CA, _CA_KEY, n, [n], days=200, now=_NOW)[0] for n in ("db1", "db2", "db3")}
ADDRESSES = {"db1": "127.0.0.91", "db2": "127.0.0.92", "db3": "127.0.0.93"}

# SHOW GLOBAL STATUS of a Synced member of a healthy 3-node cluster (trimmed)
HEALTHY_STATUS = parse_status_rows("""\
Uptime\t3600
wsrep_cluster_conf_id\t3
wsrep_cluster_size\t3
wsrep_cluster_state_uuid\t672b085e-e985-11f1-8a73-46d596c18f25
wsrep_cluster_status\tPrimary
wsrep_connected\tON
wsrep_flow_control_paused\t0
wsrep_flow_control_sent\t0
wsrep_incoming_addresses\t127.0.0.91:3306,127.0.0.92:3306,127.0.0.93:3306
wsrep_local_bf_aborts\t0
wsrep_local_cert_failures\t0
wsrep_local_commits\t120
wsrep_local_recv_queue_avg\t0
wsrep_local_state\t4
wsrep_local_state_comment\tSynced
wsrep_ready\tON
wsrep_received_bytes\t48000
wsrep_replicated_bytes\t24000
""")


def healthy_variables(node: str) -> dict[str, str]:
    return {
        "bind_address": ADDRESSES[node], "binlog_format": "ROW", "default_storage_engine": "InnoDB",
        "innodb_autoinc_lock_mode": "2", "skip_name_resolve": "ON", "wsrep_on": "ON",
        "wsrep_provider": "/usr/lib/galera/libgalera_smm.so", "wsrep_cluster_name": NAME,
        "wsrep_cluster_address": "gcomm://" + ",".join(f"{a}:4567" for a in ADDRESSES.values()),
        "wsrep_node_address": ADDRESSES[node], "wsrep_sst_method": "rsync", "wsrep_sst_auth": "",
        "wsrep_desync": "OFF",
        "wsrep_provider_options": "base_port = 4567; gcache.size = 64M; pc.bootstrap = NO; ",
    }


def healthy_config(node: str) -> ConfigFacts:
    where = f"{node}/cluster.cnf"
    return ConfigFacts(f"/state/{node}/my.cnf",
                       {k: Option(v, f"{where}:{i}") for i, (k, v)
                        in enumerate(healthy_variables(node).items(), 1) if k != "wsrep_desync"})


def node(name: str, *, status: dict[str, str] | None = None, variables: dict[str, str] | None = None,
         config: dict[str, str | None] | None = None, log: str = "", flags: tuple[Option, ...] = (),
         **kw: Any) -> NodeFacts:
    """A running, healthy node, with the given differences."""
    base_config = healthy_config(name)
    options = dict(base_config.options)
    for key, value in (config or {}).items():
        if value is None:
            options.pop(key, None)
        else:
            options[key] = Option(value, f"{name}/cluster.cnf:9")
    live = LiveFacts({**HEALTHY_STATUS, **(status or {})},
                     {**healthy_variables(name), **(variables or {})}, (), (), False)
    defaults: dict[str, Any] = dict(
        running=True, config=dataclasses.replace(base_config, options=options, flags=flags),
        files=FileFacts(f"/state/{name}", f"/state/{name}/data", True, "mysql"),
        grastate=GraState(UUID, -1, False), live=live,
        log=parse_log(log, START_MARKER) if log else LogFacts(),
        ports=(PortFact(3306, "client", "open"), PortFact(4567, "gcomm", "open")),
    )
    defaults.update(kw)
    return NodeFacts(name, ADDRESSES[name], 3306, **defaults)


def stopped(name: str, grastate: GraState | None, **kw: Any) -> NodeFacts:
    return node(name, **{"running": False, "live": None, "live_error": "not running",
                         "grastate": grastate, "ports": (), **kw})


def cluster(*nodes: NodeFacts, **kw: Any) -> Facts:
    nodes = nodes or tuple(node(n) for n in ADDRESSES)
    return Facts(NAME, "local", kw.pop("sst_method", "rsync"), nodes, **kw)


def healthy_but(name: str, **kw: Any) -> Facts:
    return cluster(*(node(n, **kw) if n == name else node(n) for n in ADDRESSES))


# --------------------------------------------------------------------------- recorded log excerpts

HANDSHAKE_LOG = f"""\
{START_MARKER} db3
2026-11-26 10:39:04 0 [Note] WSREP: gcomm: connecting to group 'other_name', peer '127.0.0.91:4567,127.0.0.92:4567,127.0.0.93:4567'
2026-11-26 10:39:05 0 [Note] WSREP: handshake failed, my group: 'other_name', peer group: '{NAME}'
2026-11-26 10:39:05 0 [Note] WSREP: No nodes coming from primary view, primary view is not possible
"""
PEER_HANDSHAKE_LOG = f"""\
2026-11-26 10:39:04 0 [Note] WSREP: handshake failed, my group: '{NAME}', peer group: 'other_name'
"""
PERMISSION_LOG = f"""\
{START_MARKER} db2
2026-11-26 11:02:13 0 [ERROR] mariadbd: Can't create/write to file '/state/db2/data/aria_log_control' (Errcode: 13 "Permission denied")
2026-11-26 11:02:13 0 [ERROR] Aborting
"""
RSYNC_DONOR_LOG = """\
rsync: [receiver] mkstemp "/state/db3/data/.ibdata1.Xy1" failed: Permission denied (13)
WSREP_SST: [ERROR] rsync returned code 23: (20261126 11:05:41.113)
"""
INCONSISTENCY_LOG = """\
2026-11-26 12:00:01 2 [ERROR] Slave SQL: Could not execute Delete_rows_v1 event on table shop.orders; Can't find record in 'orders', Error_code: 1032
2026-11-26 12:00:01 2 [ERROR] WSREP: Inconsistency detected: Inconsistent by consensus on 672b085e-e985-11f1-8a73-46d596c18f25:41
"""
WRITESET_LOG = """\
2026-11-26 12:10:44 17 [Warning] WSREP: transaction size limit (2147483647) exceeded: 2147487744
2026-11-26 12:10:44 17 [ERROR] WSREP: Maximum writeset size exceeded
"""
SST_AUTH_DONOR_LOG = """\
WSREP_SST: [INFO] Streaming with mbstream (20261126 12:20:01.101)
[00] 2026-11-26 12:20:01 Connecting to MariaDB server host: localhost, user: galerakv_sst, password: set, port: not set
mariabackup: Got error: 1045: Access denied for user 'galerakv_sst'@'localhost' (using password: YES)
WSREP_SST: [ERROR] mariabackup finished with error: 1. Check /state/db1/data/mariabackup.backup.log (20261126 12:20:01.332)
"""
SST_MAGIC_JOINER_LOG = """\
WSREP_SST: [ERROR] Possible timeout in receiving first data from donor in gtid stage: exit codes: 124 0 (20261126 12:21:41.520)
WSREP_SST: [ERROR] Did not find the magic file xtrabackup_galera_info (20261126 12:21:41.530)
"""
CLIENT_DENIED_LOG = """\
2026-11-26 10:38:57 14 [Warning] Access denied for user 'root'@'127.0.0.1' (using password: NO)
"""
RECOVERED_LOG = f"""\
---- galerakv: mariadbd --wsrep-recover db2
2026-11-26 13:00:00 0 [Note] WSREP: Recovered position: {UUID}:57
"""

# --------------------------------------------------------------------------- the table

Case = tuple[str, Callable[[], Facts], "str | None", str]  # code, facts, node, severity

CASES: list[Case] = [
    ("cluster-name-mismatch", lambda: healthy_but("db3", config={"wsrep_cluster_name": "other"}),
     "db3", "critical"),
    ("cluster-name-mismatch", lambda: cluster(node("db1", log=PEER_HANDSHAKE_LOG), node("db2"),
                                              node("db3", log=HANDSHAKE_LOG)), "db3", "critical"),
    ("cluster-address-incomplete",
     lambda: healthy_but("db2", config={"wsrep_cluster_address": "gcomm://127.0.0.91,127.0.0.92"}),
     "db2", "warning"),
    ("cluster-address-incomplete", lambda: healthy_but("db1", variables={"wsrep_cluster_address":
                                                                         "gcomm://"}), "db1", "critical"),
    ("bootstrap-in-config", lambda: healthy_but("db1", config={"wsrep_provider_options":
                                                               "gcache.size=64M;pc.bootstrap=YES"}),
     "db1", "critical"),
    ("bootstrap-in-config", lambda: cluster(node("db1"), node("db2"), node("db3", flags=(
        Option("wsrep-new-cluster", "db3/cluster.cnf:4"),))), "db3", "critical"),
    ("node-address-wrong", lambda: healthy_but("db2", variables={"wsrep_node_address": "10.0.0.7"}),
     "db2", "critical"),
    ("node-address-wrong", lambda: healthy_but("db2", config={"wsrep_node_address": None}),
     "db2", "warning"),
    ("node-address-wrong", lambda: healthy_but("db1", status={
        "wsrep_incoming_addresses": "127.0.0.91:3306,172.17.0.2:3306,127.0.0.93:3306"}), "db1", "critical"),
    ("wsrep-off", lambda: healthy_but("db1", variables={"wsrep_on": "OFF"}), "db1", "critical"),
    ("wsrep-off", lambda: healthy_but("db3", config={"wsrep_on": None}), "db3", "critical"),
    ("provider-missing", lambda: healthy_but("db2", variables={"wsrep_provider": "none"}), "db2",
     "critical"),
    ("provider-missing", lambda: cluster(provider_exists={"/usr/lib/galera/libgalera_smm.so": False}),
     "db1", "critical"),
    ("mandatory-settings", lambda: healthy_but("db2", config={"binlog_format": "MIXED"}), "db2",
     "critical"),
    ("mandatory-settings", lambda: healthy_but("db3", variables={"innodb_autoinc_lock_mode": "1"}),
     "db3", "critical"),
    ("bind-all", lambda: healthy_but("db1", config={"bind_address": "0.0.0.0"}), "db1", "warning"),
    ("name-resolve", lambda: healthy_but("db3", variables={"skip_name_resolve": "OFF"}), "db3",
     "warning"),
    ("even-node-count", lambda: cluster(node("db1"), node("db2")), None, "warning"),
    ("too-few-nodes", lambda: cluster(node("db1"), node("db2")), None, "warning"),
    ("datadir-permissions", lambda: healthy_but("db2", files=FileFacts(
        "/state/db2", "/state/db2/data", True, "mysql", ("/state/db2/data (owner root:root, mode 0700)",))),
     "db2", "critical"),
    ("datadir-permissions", lambda: healthy_but("db2", log=PERMISSION_LOG), "db2", "critical"),
    ("datadir-permissions", lambda: healthy_but("db1", log=RSYNC_DONOR_LOG), "db1", "critical"),
    ("sst-leftovers", lambda: cluster(node("db1"), node("db2"), stopped(
        "db3", GraState(UUID, -1, False), files=FileFacts(
            "/state/db3", "/state/db3/data", True, "mysql", sst_leftovers=("/state/db3/data/sst_in_progress",)))),
     "db3", "critical"),
    ("port-in-use", lambda: cluster(node("db1"), node("db2"), stopped(
        "db3", GraState(UUID, 10, False), ports=(PortFact(4444, "SST", "in-use", "127.0.0.93:4444 is "
                                                          "already in use by another program"),))),
     "db3", "critical"),
    ("not-bootstrapped", lambda: cluster(*(stopped(n, GraState(UUID, -1, False)) for n in ADDRESSES)),
     None, "critical"),
    ("unsafe-bootstrap-choice", lambda: cluster(
        stopped("db1", GraState(UUID, 40, True)), stopped("db2", GraState(UUID, 41, False)),
        stopped("db3", GraState(UUID, 39, False))), "db1", "critical"),
    ("unsafe-bootstrap-choice", lambda: cluster(
        stopped("db1", GraState(UUID, 40, True)), stopped("db2", GraState(UUID, -1, False),
                                                          log=RECOVERED_LOG),
        stopped("db3", GraState(UUID, 39, False))), "db1", "critical"),
    ("history-diverged", lambda: cluster(
        stopped("db1", GraState(UUID, 40, True)), stopped("db2", GraState(OTHER_UUID, 3, True)),
        stopped("db3", GraState(UUID, 39, False))), None, "critical"),
    ("inconsistency", lambda: healthy_but("db3", files=FileFacts(
        "/state/db3", "/state/db3/data", True, "mysql", gra_logs=("/state/db3/data/GRA_1_41_v2.log",))), "db3",
     "warning"),
    ("inconsistency", lambda: healthy_but("db3", log=INCONSISTENCY_LOG), "db3", "critical"),
    ("sst-auth", lambda: healthy_but("db1", log=SST_AUTH_DONOR_LOG), "db1", "critical"),
    ("sst-auth", lambda: healthy_but("db2", log=SST_MAGIC_JOINER_LOG), "db2", "critical"),
    ("sst-auth", lambda: cluster(*(node(n, variables={"wsrep_sst_method": "mariabackup"},
                                        config={"wsrep_sst_method": "mariabackup"})
                                   for n in ADDRESSES), sst_method="mariabackup"), "db1", "critical"),
    ("sst-auth", lambda: cluster(sst_method="mariabackup", tools_missing=("socat",)), None, "critical"),
    ("node-down", lambda: cluster(node("db1"), node("db2"), stopped("db3", GraState(UUID, -1, False))),
     "db3", "warning"),
    ("node-down", lambda: healthy_but("db2", live=None, live_error="ERROR 2002 (HY000): Can't connect"),
     "db2", "warning"),
    ("node-joining", lambda: healthy_but("db3", live=None, live_error="ERROR 2002",
                                         log=f"{START_MARKER} db3\n[Note] WSREP: Server status change "
                                             "connected -> joiner\n"), "db3", "info"),
    ("ports-closed", lambda: healthy_but("db2", ports=(PortFact(3306, "client", "open"), PortFact(
        4567, "gcomm", "closed", "connect from 127.0.0.91: Connection refused"))), "db2", "critical"),
    ("non-primary", lambda: healthy_but("db3", status={"wsrep_cluster_status": "non-Primary",
                                                       "wsrep_ready": "OFF", "wsrep_cluster_size": "1"}),
     "db3", "critical"),
    ("split-brain", lambda: cluster(
        node("db1", status={"wsrep_cluster_size": "2", "wsrep_cluster_conf_id": "7"}),
        node("db2", status={"wsrep_cluster_size": "2", "wsrep_cluster_conf_id": "7"}),
        node("db3", status={"wsrep_cluster_size": "1", "wsrep_cluster_conf_id": "9"})), "db3", "critical"),
    ("donor-desynced", lambda: healthy_but("db2", status={"wsrep_local_state": "2",
                                                          "wsrep_local_state_comment": "Donor/Desynced"},
                                           variables={"wsrep_desync": "ON"}), "db2", "warning"),
    ("node-in-maintenance", lambda: healthy_but("db2", maintenance=Maintenance(
        "db2", "/state/db2/maintenance", 1.7e9, "drained by `galerakv cluster maintenance`")), "db2", "warning"),
    ("flow-control", lambda: cluster(
        node("db1", status={"wsrep_flow_control_paused": "0.87"}),
        node("db2", status={"wsrep_flow_control_paused": "0.87"}),
        node("db3", status={"wsrep_flow_control_paused": "0.86", "wsrep_flow_control_sent": "5213",
                            "wsrep_local_recv_queue_avg": "143.2"})), "db3", "warning"),
    ("gcache-small", lambda: healthy_but("db1", status={"Uptime": "7200", "wsrep_replicated_bytes":
                                                        str(200 << 20), "wsrep_received_bytes":
                                                        str(400 << 20)}), "db1", "warning"),
    ("cert-conflicts", lambda: healthy_but("db2", status={"wsrep_local_cert_failures": "37",
                                                          "wsrep_local_bf_aborts": "12",
                                                          "wsrep_local_commits": "2104"}), "db2", "warning"),
    ("writeset-too-large", lambda: healthy_but("db1", log=WRITESET_LOG), "db1", "warning"),
    ("myisam-tables", lambda: cluster(*(node(n, live=dataclasses.replace(
        node(n).live, tables=(Table("shop", "legacy", "MyISAM", True),))) for n in ADDRESSES)), None,
     "warning"),
    ("myisam-tables", lambda: healthy_but("db2", live=dataclasses.replace(
        node("db2").live, tables=(Table("shop", "legacy", "Aria", True),))), "db2", "warning"),
    ("no-primary-key", lambda: healthy_but("db1", live=dataclasses.replace(
        node("db1").live, tables=(Table("shop", "events", "InnoDB", False),))), "db1", "warning"),
    ("root-password", lambda: healthy_but("db2", live=dataclasses.replace(
        node("db2").live, accounts=(AccountFact("root", "%", "mysql_native_password", True),))),
     "db2", "critical"),
    ("root-password", lambda: healthy_but("db3", live=dataclasses.replace(
        node("db3").live, root_login_without_password=True, root_login_detail="root@127.0.0.1")),
     "db3", "critical"),
    ("anonymous-users", lambda: healthy_but("db1", live=dataclasses.replace(
        node("db1").live, accounts=(AccountFact("", "localhost", "mysql_native_password", True),))),
     "db1", "warning"),
    ("tls-expiring", lambda: tls_cluster(db2={"status": {"ssl_server_not_after": "Dec 14 06:00:00 2026 GMT"}}),
     "db2", "warning"),
    ("tls-mismatch", lambda: tls_cluster(node_ca={"db3": OTHER_CA}), "db3", "critical"),
    ("tls-off", lambda: tls_cluster(db1={"variables": {"have_ssl": "DISABLED"}}), "db1", "critical"),
    ("account-without-ssl", lambda: tls_cluster(db1={"live_accounts": (
        AccountFact("reports", "10.0.%", "mysql_native_password", False, ssl=False),)}), None, "warning"),
    ("backup-old", lambda: cluster(backups=BackupFacts("/b", 26, 1e9, 1, "/b/1", 1e9 - 30 * 3600, "/b/1",
                                                       "complete")), None, "warning"),
    ("backup-failed", lambda: cluster(backups=BackupFacts("/b", 26, 1e9, 2, "/b/1", 1e9 - 3600, "/b/2",
                                                          "failed", "No space left on device")), None, "warning"),
]


def tls_cluster(node_ca: dict[str, str] | None = None, **per_node: dict[str, Any]) -> Facts:
    """A healthy TLS cluster (certificates from its own CA, 200 days left), with the given differences."""
    nodes = []
    for n in ADDRESSES:
        diff = per_node.get(n, {})
        made = node(n, status={"ssl_server_not_after": "Jun 21 06:00:00 2027 GMT", **diff.get("status", {})},
                    variables={"have_ssl": "YES", "require_secure_transport": "ON",
                               "wsrep_provider_options": "base_port = 4567; socket.ssl = YES; ",
                               **diff.get("variables", {})},
                    config={"ssl_cert": f"/state/{n}/tls-server.crt", "ssl_key": f"/state/{n}/tls-server.key",
                            "ssl_ca": f"/state/{n}/tls-ca.crt"})
        if "live_accounts" in diff:
            made = dataclasses.replace(made, live=dataclasses.replace(made.live, accounts=diff["live_accounts"]))
        nodes.append(made)
    node_cas = {n: CA for n in ADDRESSES} | (node_ca or {})
    return cluster(*nodes, tls=TlsFacts(CA, node_cas, NODE_CERTS, NOW_2026_12_04))


def _id(case: Case) -> str:
    return f"{case[0]}@{case[2] or 'cluster'}"


def test_every_code_has_a_recorded_case() -> None:
    assert {c[0] for c in CASES} == set(CATALOGUE)


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{_id(c)}" for i, c in enumerate(CASES)])
def test_code_found_on_the_right_node(case: Case) -> None:
    code, facts, where, severity = case
    report = diagnose(facts())
    found = [f for f in report.findings if f.code == code and f.node == where]
    assert found, f"{code} not found on {where}: " + repr([(f.code, f.node) for f in report.findings])
    assert found[0].severity == severity
    assert found[0].evidence and found[0].fix
    assert report.ok == (not any(f.severity == "critical" for f in report.findings))


def test_a_healthy_cluster_has_no_finding() -> None:
    assert diagnose(cluster()).findings == ()
    assert diagnose(tls_cluster()).findings == ()


def test_tls_findings_say_what_and_when() -> None:
    expiring = [f for f in diagnose(tls_cluster(db2={"status": {"ssl_server_not_after": "Dec 14 06:00:00 2026 GMT"}}))
                .findings if f.code == "tls-expiring"]
    assert expiring[0].summary == "db2's certificate expires in 10 days"
    assert "Ssl_server_not_after" in expiring[0].evidence[0] and "--renew" in expiring[0].fix
    # localhost accounts (socket logins) and MariaDB's own are not reported
    quiet = tls_cluster(db1={"live_accounts": (AccountFact("root", "localhost", "", False, ssl=False),
                                               AccountFact("mariadb.sys", "localhost", "", True, ssl=False))})
    assert "account-without-ssl" not in diagnose(quiet).codes()
    # a node certificate another CA signed, with the right CA file beside it
    signed_elsewhere = tls_cluster()
    certs_ = dict(signed_elsewhere.tls.node_cert)  # type: ignore[union-attr]
    certs_["db1"] = OTHER_LEAF
    report = diagnose(dataclasses.replace(signed_elsewhere, tls=dataclasses.replace(
        signed_elsewhere.tls, node_cert=certs_)))  # type: ignore[arg-type]
    assert [f.node for f in report.findings if f.code == "tls-mismatch"] == ["db1"]


def test_peers_of_a_misnamed_node_are_not_blamed() -> None:
    report = diagnose(cluster(node("db1", log=PEER_HANDSHAKE_LOG), node("db2"), node("db3")))
    assert "cluster-name-mismatch" not in report.codes()


def test_client_login_failures_are_not_sst_failures() -> None:
    assert diagnose(healthy_but("db1", log=CLIENT_DENIED_LOG)).findings == ()


def test_a_clean_stop_is_not_a_fault_offline() -> None:
    facts = cluster(stopped("db1", GraState(UUID, 57, True)), stopped("db2", GraState(UUID, 57, False)),
                    stopped("db3", GraState(UUID, 56, False)), offline=True)
    assert diagnose(facts).findings == ()


def test_offline_reports_only_offline_codes() -> None:
    facts = dataclasses.replace(healthy_but("db2", status={"wsrep_local_state": "2"},
                                            config={"wsrep_on": "OFF"}), offline=True)
    report = diagnose(facts)
    assert report.codes("db2") == {"wsrep-off"}
    assert all(CATALOGUE[f.code].offline for f in report.findings)


def test_config_and_running_evidence_merge_into_one_finding() -> None:
    report = diagnose(healthy_but("db3", config={"skip_name_resolve": "OFF"},
                                  variables={"skip_name_resolve": "OFF"}))
    (f,) = [f for f in report.findings if f.code == "name-resolve"]
    assert any("cluster.cnf" in e for e in f.evidence)
    assert any("SHOW GLOBAL VARIABLES" in e for e in f.evidence)


def test_a_fixed_name_with_a_stale_failed_run_is_history() -> None:
    facts = cluster(node("db1"), node("db2"), stopped("db3", GraState(UUID, -1, False),
                                                      log=HANDSHAKE_LOG))
    assert "cluster-name-mismatch" not in diagnose(facts).codes()


STALE_LIST = {"wsrep_cluster_address": "gcomm://127.0.0.91:4567,127.0.0.92:4567"}


def _address_finding(facts: Facts, name: str) -> Any:
    (f,) = [f for f in diagnose(facts).findings if f.code == "cluster-address-incomplete"]
    assert f.node == name
    assert "galerakv cluster render" not in f.fix  # it only prints: it clears nothing
    return f


def test_after_add_node_only_the_running_list_is_old_and_that_is_info() -> None:
    """add-node rewrites every file; running nodes read the new list at their next start."""
    f = _address_finding(healthy_but("db2", variables=STALE_LIST), "db2")
    assert f.severity == "info"
    assert "running server" in f.summary and "127.0.0.93" in f.summary
    assert f.fix.startswith("nothing is needed now") and "galerakv cluster restart --rolling" in f.fix


@pytest.mark.parametrize(("facts", "severity", "fix"), [
    # the file misses a node (edited by hand), the running server does not: rewrite and restart
    (lambda: healthy_but("db2", config=STALE_LIST), "warning",
     "`galerakv cluster restart --rolling` rewrites each node's configuration"),
    # both: the file's finding decides the fix
    (lambda: healthy_but("db2", config=STALE_LIST, variables=STALE_LIST), "warning",
     "`galerakv cluster restart --rolling` rewrites each node's configuration"),
    # a running list that is wrong, with no file to read (ssh hosts)
    (lambda: cluster(node("db1"), dataclasses.replace(node("db2", variables=STALE_LIST), config=None),
                     node("db3")), "warning",
     "`galerakv cluster restart --rolling`: it restarts the nodes one at a time"),
    # a stopped node: `up` writes its configuration before it starts it
    (lambda: cluster(node("db1"), node("db2"), stopped("db3", GraState(UUID, 10, False),
                                                       config=STALE_LIST)), "warning",
     "`galerakv cluster up`: it rewrites the node's configuration"),
], ids=["file", "file-and-running", "running-no-file", "stopped"])
def test_a_wrong_gcomm_list_names_what_clears_it(facts: Callable[[], Facts], severity: str, fix: str) -> None:
    name = "db3" if facts().node("db3").running is False else "db2"
    f = _address_finding(facts(), name)
    assert f.severity == severity
    assert f.fix.startswith(fix), f.fix


def test_a_node_in_maintenance_says_how_to_end_it() -> None:
    m = Maintenance("db2", "/state/db2/maintenance", 1.7e9, "drained by `galerakv cluster maintenance`")
    report = diagnose(healthy_but("db2", maintenance=m))
    (f,) = report.findings
    assert (f.code, f.node, f.severity) == ("node-in-maintenance", "db2", "warning")
    assert m.since_text in f.summary
    assert f.evidence == ("/state/db2/maintenance: drained by `galerakv cluster maintenance`",)
    assert f.fix.endswith("`galerakv cluster maintenance --node db2 off`")
    assert report.ok  # a warning: the node was drained on purpose


def test_report_json_shape() -> None:
    report: DoctorReport = diagnose(healthy_but("db1", variables={"wsrep_on": "OFF"}))
    data = report.to_dict()
    assert data["ok"] is False and data["counts"]["critical"] == 1
    assert data["findings"][0]["code"] == "wsrep-off" and data["findings"][0]["node"] == "db1"
    assert set(data["findings"][0]) == {"code", "severity", "node", "summary", "evidence", "fix", "title"}
