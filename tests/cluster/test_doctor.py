"""``galerakv cluster doctor`` on a real 3-node cluster: one fault at a time, on both transports
(``local``: nodes on 127.0.0.91-93; ``ssh``: one node per test host, 127.0.0.61-63, whose files
the doctor reads on the host).

One cluster serves the whole module, in order: healthy; faults that need no
restart (schema, accounts, desync, wsrep_on at runtime, config files edited
under running nodes); one restart with skip_name_resolve OFF; one node killed
with kill -9, then file and port faults on it while it is down, which ``up``
must refuse; and last every node killed, which leaves nobody safe to bootstrap.
Each test undoes its fault, so a failure does not cascade beyond its step.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from galerakv import config
from galerakv.cluster.operations import lifecycle
from galerakv.cluster.transport import make_transport
from galerakv.cluster.transport.base import Transport
from tests.support.local_cluster import LocalCluster, make_local_cluster, make_ssh_cluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture(scope="module", params=["local", "ssh"])
def c(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    made = (make_local_cluster(3, "127.0.0.91", "doctor") if request.param == "local" else
            make_ssh_cluster(request.getfixturevalue("ssh_test_hosts"), "doctor"))
    with made as cluster:
        cluster.ok("up")
        yield cluster


def offline(c: LocalCluster) -> tuple[str, ...]:
    """The doctor's flag for reading files only: ``--offline`` never contacts an ssh host, so on
    ssh hosts the files are read there, by the online doctor."""
    return ("--offline",) if c.hosts is None else ()


def doctor(c: LocalCluster, *extra: str) -> tuple[int, dict[str, Any]]:
    result = c.cli("doctor", "--json", *extra)
    assert "Traceback" not in result.stderr, result.stderr
    print(result.stdout)
    return result.returncode, json.loads(result.stdout)


def found(report: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["code"] == code]


def nodes_with(report: dict[str, Any], code: str) -> set[str | None]:
    return {f["node"] for f in found(report, code)}


def transport(c: LocalCluster) -> Transport:
    return make_transport(config.load(c.config))


def kill9(c: LocalCluster, name: str) -> None:
    """kill -9 by the PID galerakv recorded, only if it still runs this node's mariadbd."""
    c.kill9(name)


def test_healthy_cluster_has_no_critical_finding(c: LocalCluster) -> None:
    code, report = doctor(c)
    assert code == 0 and report["ok"] is True
    assert report["counts"]["critical"] == 0
    assert report["findings"] == [], report["findings"]
    text = c.ok("doctor")
    assert "no problem found" in text


def test_myisam_and_missing_primary_key(c: LocalCluster) -> None:
    c.sql("db1", "CREATE TABLE galerakv.doc_legacy (id INT PRIMARY KEY) ENGINE=MyISAM; "
                 "CREATE TABLE galerakv.doc_events (v INT) ENGINE=InnoDB")
    try:
        code, report = doctor(c)
        # DDL replicates: every node has both tables, so each is one cluster-wide finding
        assert code == 0
        (myisam,) = found(report, "myisam-tables")
        assert "`galerakv`.`doc_legacy` (MyISAM)" in myisam["evidence"][0]
        assert "db1, db2, db3" in myisam["evidence"][0]
        (nopk,) = found(report, "no-primary-key")
        assert "`galerakv`.`doc_events`" in nopk["evidence"][0]
    finally:
        c.sql("db1", "DROP TABLE galerakv.doc_legacy, galerakv.doc_events")


def test_root_with_an_empty_password_and_anonymous_users(c: LocalCluster) -> None:
    c.sql("db1", "CREATE USER 'root'@'127.0.0.1' IDENTIFIED BY ''; CREATE USER ''@'localhost'")
    try:
        code, report = doctor(c)
        assert code == 1
        assert nodes_with(report, "root-password") == {"db1", "db2", "db3"}
        evidence = " ".join(found(report, "root-password")[0]["evidence"])
        assert "'root'@'127.0.0.1' has an empty password" in evidence
        assert "as root with no password succeeded" in evidence  # a real TCP login
        assert nodes_with(report, "anonymous-users") == {"db1", "db2", "db3"}
    finally:
        c.sql("db1", "DROP USER 'root'@'127.0.0.1'; DROP USER ''@'localhost'")
    assert doctor(c)[0] == 0


def test_desynced_node(c: LocalCluster) -> None:
    c.sql("db2", "SET GLOBAL wsrep_desync = ON")
    try:
        code, report = doctor(c)
        assert nodes_with(report, "donor-desynced") == {"db2"}
        assert "wsrep_desync = ON" in found(report, "donor-desynced")[0]["evidence"][0]
        assert code == 0  # a warning: the node still works, but should leave the balancer
    finally:
        c.sql("db2", "SET GLOBAL wsrep_desync = OFF")


def test_wsrep_off_at_runtime(c: LocalCluster) -> None:
    c.sql("db3", "SET GLOBAL wsrep_on = OFF")
    try:
        code, report = doctor(c)
        assert code == 1
        assert nodes_with(report, "wsrep-off") == {"db3"}
        assert "SHOW GLOBAL VARIABLES" in found(report, "wsrep-off")[0]["evidence"][0]
    finally:
        c.sql("db3", "SET GLOBAL wsrep_on = ON")


def config_faults(c: LocalCluster) -> list[tuple[str, str, str]]:
    """(pattern in db2's cluster.cnf, replacement, code)."""
    nodes = config.load(c.config).cluster.nodes
    return [
        (r"wsrep_cluster_name = .*", "wsrep_cluster_name = not_doctor", "cluster-name-mismatch"),
        (r"wsrep_cluster_address = .*",
         "wsrep_cluster_address = gcomm://" + ",".join(f"{n.address}:4567" for n in nodes[:2]),
         "cluster-address-incomplete"),
        (r"wsrep_on = ON", "wsrep_on = OFF", "wsrep-off"),
        (r"bind-address = .*", "bind-address = 0.0.0.0", "bind-all"),
        (r"\[mysqld\]", "[mysqld]\nwsrep-new-cluster", "bootstrap-in-config"),
    ]


def test_config_files_of_a_running_node(c: LocalCluster) -> None:
    """Edits not yet applied by a restart: --offline reads the files, nothing else (on ssh hosts
    the online doctor reads them on the host)."""
    cnf = c.node_dir("db2") / "cluster.cnf"
    original = cnf.read_text()
    faults = config_faults(c)
    try:
        text = original
        for pattern, replacement, _ in faults:
            text, n = re.subn(pattern, replacement, text, count=1, flags=re.M)
            assert n == 1, pattern
        cnf.write_text(text)
        code, report = doctor(c, *offline(c))
        assert code == 1
        for _, _, fault in faults:
            assert nodes_with(report, fault) == {"db2"}, fault
    finally:
        cnf.write_text(original)
    assert doctor(c, *offline(c))[1]["findings"] == []


def test_skip_name_resolve_off_after_a_restart(c: LocalCluster) -> None:
    """The file is fixed again after the restart: only the running server still says OFF."""
    settings = config.load(c.config)
    t = transport(c)
    node = settings.cluster.node("db3")
    cnf = c.node_dir("db3") / "cluster.cnf"
    original = cnf.read_text()
    t.stop(node, 60)
    try:
        cnf.write_text(original.replace("skip_name_resolve = ON", "skip_name_resolve = OFF"))
        t.start(node, bootstrap=False)
        lifecycle.wait_synced(t, node, print, 120)
    finally:
        cnf.write_text(original)
    code, report = doctor(c)
    assert code == 0
    (f,) = found(report, "name-resolve")
    assert f["node"] == "db3" and f["evidence"] == [
        "running server (SHOW GLOBAL VARIABLES): skip_name_resolve = OFF"]


def test_quorum_lost_non_primary(c: LocalCluster) -> None:
    """db2 and db3 frozen with SIGSTOP (a partition, as Patroni's tests fake one): db1 alone
    is non-Primary; once they resume, the three re-form the Primary component by themselves."""
    settings = config.load(c.config)
    t = transport(c)
    db1 = settings.cluster.node("db1")
    pids = [c.pid(n) for n in ("db2", "db3")]  # checked: each runs its node's mariadbd
    with ExitStack() as undo:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
            undo.callback(os.kill, pid, signal.SIGCONT)
        deadline = time.monotonic() + 60
        while t.status(db1, 5).primary:
            assert time.monotonic() < deadline, "db1 stayed Primary without its peers"
            time.sleep(0.5)
        code, report = doctor(c)
        assert code == 1
        assert nodes_with(report, "non-primary") == {"db1"}
        assert "wsrep_ready = OFF" in found(report, "non-primary")[0]["evidence"][0]
        assert nodes_with(report, "node-down") == {"db2", "db3"}  # running, not answering
    deadline = time.monotonic() + 90
    while lifecycle.status(settings, t).verdict.verdict != "healthy":
        assert time.monotonic() < deadline, "the cluster did not re-form after SIGCONT"
        time.sleep(0.5)


def test_killed_node_then_faults_up_refuses(c: LocalCluster) -> None:
    kill9(c, "db3")  # also ends the skip_name_resolve = OFF run of the previous test
    code, report = doctor(c)
    assert nodes_with(report, "node-down") == {"db3"}
    assert "name-resolve" not in {f["code"] for f in report["findings"]}
    status = c.cli("status")
    assert status.returncode == 1 and "galerakv cluster doctor" in status.stdout

    datadir = c.node_dir("db3") / "data"
    db3 = config.load(c.config).cluster.node("db3")
    owner = datadir.stat()
    leftover = datadir / "sst_in_progress"
    with ExitStack() as undo:
        # a datadir owned by root before the joiner starts
        os.chown(datadir, 0, 0)
        undo.callback(os.chown, datadir, owner.st_uid, owner.st_gid)
        # a state transfer that never finished
        leftover.write_text("")
        undo.callback(leftover.unlink)
        # another program on the node's SST port
        squatter = socket.socket()
        undo.callback(squatter.close)
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((db3.address, 4444))
        squatter.listen()

        code, report = doctor(c, *offline(c))
        assert code == 1
        for fault in ("datadir-permissions", "sst-leftovers", "port-in-use"):
            assert nodes_with(report, fault) == {"db3"}, fault
        if offline(c):
            assert "node-down" not in {f["code"] for f in report["findings"]}  # offline: not asked
        (perm,) = found(report, "datadir-permissions")
        # the node's folder, as its host names it
        assert f"chown -R mysql:mysql {c.state_dir / 'db3'}" == perm["fix"]

        refused = c.cli("up", "--no-install")
        assert refused.returncode == 1
        for fault in ("datadir-permissions db3", "sst-leftovers db3", "port-in-use db3"):
            assert fault in refused.stderr
        assert not transport(c).is_running(config.load(c.config).cluster.node("db3"))

    out = c.ok("up", "--no-install")
    assert "db3: Synced" in out
    assert doctor(c)[0] == 0


def test_every_node_killed_nobody_safe_to_bootstrap(c: LocalCluster) -> None:
    for name in ("db3", "db2", "db1"):
        kill9(c, name)
    code, report = doctor(c, *offline(c))
    assert code == 1
    (f,) = found(report, "not-bootstrapped")
    assert f["node"] is None and len(f["evidence"]) == 3
    assert all("safe_to_bootstrap 0" in e for e in f["evidence"])
    code, report = doctor(c)
    assert code == 1 and nodes_with(report, "node-down") == {"db1", "db2", "db3"}
    # `up` applies the recovery rule by itself (issue 7): the most advanced node first
    out = c.ok("up", "--no-install")
    assert "applying the recovery rule" in out and "decision: bootstrap" in out
    assert doctor(c)[0] == 0


def test_doctor_never_writes_into_state_dir(c: LocalCluster) -> None:
    """Neither on this machine nor in a node's folder (on its host)."""
    folders = [Path(c.state_dir), *(c.node_dir(n) for n in c.names)]

    def listing() -> list[str]:
        return sorted(str(p) for folder in folders for p in folder.rglob("*"))

    before = listing()
    doctor(c)
    doctor(c, "--offline")
    assert listing() == before
