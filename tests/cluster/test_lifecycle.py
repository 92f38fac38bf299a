"""Real MariaDB Galera clusters: up, status, verify, sql, down, up again.

Each test drives the ``galerakv`` command exactly as a user would; see
tests/support/local_cluster.py for where the nodes live and how they are cleaned up.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import pytest

from galerakv import config, tls
from galerakv.cluster.transport import make_transport
from tests.support.local_cluster import LocalCluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

MakeCluster = Callable[..., LocalCluster]


@pytest.mark.parametrize("transport", ["local", "ssh"])
def test_three_nodes_up_verify_down_up(make_cluster: MakeCluster, transport: str) -> None:
    """The lifecycle on local nodes, and on three ssh hosts (real sshd, files of their own)."""
    c = make_cluster(3, "127.0.0.11", transport=transport)

    # first time: the root node is bootstrapped, the others join
    out = c.ok("up")
    assert "db1 is the root node" in out and "healthy" in out
    code, st = c.status()
    assert code == 0 and st["verdict"] == "healthy"
    assert [n["cluster_size"] for n in st["nodes"]] == [3, 3, 3]
    assert all(n["state"] == "Synced" and n["primary"] for n in st["nodes"])
    assert len({n["cluster_state_uuid"] for n in st["nodes"]}) == 1

    secrets = c.state_dir / "secrets.toml"
    assert secrets.stat().st_mode & 0o777 == 0o600
    password = secrets.read_text().split('password = "')[1].split('"')[0]
    assert password not in out

    if c.hosts is not None:  # each node's files are on its own host only
        for i, name in enumerate(c.names):
            assert (c.node_dir(name) / "data" / "grastate.dat").is_file()
            assert not (c.state_dir / name).exists(), f"{name}'s folder is on the controller"
            for other in c.hosts.addresses[:i] + c.hosts.addresses[i + 1:]:
                seen = c.hosts.ssh(other, f"test -e {c.state_dir / name} && echo visible || echo absent")
                assert seen.stdout.strip() == "absent", (name, other, seen)
        # the doctor reads each node's files on its own host: a file root left in db2's datadir
        planted = c.node_dir("db2") / "data" / "left-by-root"
        planted.write_text("x")
        try:
            report = json.loads(c.cli("doctor", "--json").stdout)
        finally:
            planted.unlink()
        owners = [f for f in report["findings"] if f["code"] == "datadir-permissions"]
        assert [f["node"] for f in owners] == ["db2"], report
        on_host = c.state_dir / "db2" / "data" / "left-by-root"  # the path as db2's host has it
        assert any(str(on_host) in e and "owner root:root" in e for e in owners[0]["evidence"]), owners
        others = [f for f in report["findings"] if f["severity"] == "critical" and f["code"] != "datadir-permissions"]
        assert others == [], others  # the configuration and TLS files read on the hosts are right

    out = c.ok("verify")
    assert "verify: ok" in out and "db1 -> db3" in out
    assert "galerakv_verify" not in c.sql("db2", "SHOW DATABASES")

    # a row written on the first node is read on the last
    c.sql("db1", "CREATE TABLE galerakv.kv_check (k VARCHAR(32) PRIMARY KEY, v VARCHAR(64)) "
                 "ENGINE=InnoDB; INSERT INTO galerakv.kv_check VALUES ('greeting', 'hello galera')")
    assert "hello galera" in c.sql("db3", "SELECT v FROM galerakv.kv_check WHERE k = 'greeting'")

    # idempotent
    assert "nothing to do" in c.ok("up")

    # one node leaves: degraded; `up` lets it rejoin the running Primary, no bootstrap
    settings = config.load(c.config)
    nodes = make_transport(settings)
    nodes.stop(settings.cluster.node("db3"), 60)
    code, st = c.status()
    assert code == 1 and st["verdict"] == "degraded"
    assert any(r.startswith("db3: not reachable") for r in st["reasons"])
    out = c.ok("up")
    assert "joining the Primary component of db1" in out and "bootstrapping" not in out
    assert c.status()[0] == 0

    if transport == "local":
        # another cluster on the same addresses is refused before anything is created
        other = make_cluster(3, "127.0.0.11")
        refused = other.cli("up", "--no-install")
        assert refused.returncode == 1 and "already in use" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert not other.state_dir.exists()

    # clean stop in reverse order: the root node stops last and is safe to bootstrap
    out = c.ok("down")
    assert out.index("db3: stopping") < out.index("db2: stopping") < out.index("db1: stopping")
    assert "safe_to_bootstrap: 1" in c.grastate("db1")
    assert "safe_to_bootstrap: 0" in c.grastate("db3")
    code, st = c.status()
    assert code == 1 and st["verdict"] == "down"

    out = c.ok("up")
    assert "db1 is marked safe_to_bootstrap" in out
    assert "hello galera" in c.sql("db2", "SELECT v FROM galerakv.kv_check")

    # stop the root node first: now db2 stops last, and `up` must start from it
    nodes.stop(settings.cluster.node("db1"), 60)
    c.ok("down")
    assert "safe_to_bootstrap: 1" in c.grastate("db2")
    assert "safe_to_bootstrap: 0" in c.grastate("db1")
    out = c.ok("up")
    assert "db2 is marked safe_to_bootstrap" in out
    assert "db2: bootstrapping" in out
    code, st = c.status()
    assert code == 0 and st["verdict"] == "healthy"
    assert "hello galera" in c.sql("db1", "SELECT v FROM galerakv.kv_check")
    c.ok("down")

    # a bootstrap node that cannot start fails `up` with its log tail; nothing else starts
    assert "safe_to_bootstrap: 1" in c.grastate("db1")
    (c.node_dir("db1") / "data" / "ibdata1").write_bytes(b"not an InnoDB system tablespace")
    failed = c.cli("up")
    assert failed.returncode == 1, failed.stdout
    assert "db1: mariadbd exited while starting" in failed.stderr
    assert "--- last lines of its log ---" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert "stopped 0 nodes" in c.ok("down")


def test_five_nodes_up_verify_down(make_cluster: MakeCluster) -> None:
    c = make_cluster(5, "127.0.0.21")
    c.ok("up")
    code, st = c.status()
    assert code == 0 and [n["cluster_size"] for n in st["nodes"]] == [5] * 5
    out = c.ok("verify", "--json")
    assert '"ok": true' in out
    out = c.ok("down")
    assert "stopped 5 nodes" in out
    code, _ = c.status()
    assert code == 1


@pytest.mark.parametrize("fault", ["expired", "other-ca", "unreadable-key", "moved"])
def test_a_bad_certificate_stops_up_before_anything_starts(make_cluster: MakeCluster, fault: str) -> None:
    """One line naming the file and what is wrong; no node is initialised, nothing listens."""
    c = make_cluster(3, "127.0.0.31")
    made = c.ok("certs")
    assert all(name in made for name in ("ca ", "db1 ", "db2 ", "db3 ", "http "))
    t = c.state_dir / "tls"
    ca_pem, ca_key = (t / "ca.crt").read_text(), (t / "ca.key").read_text()
    if fault == "expired":
        long_ago = tls.utcnow() - dt.timedelta(days=30)
        cert, key = tls.issue_leaf(ca_pem, ca_key, "db2", ["127.0.0.32", "db2"], days=2, now=long_ago)
        (t / "db2.crt").write_text(cert)
        (t / "db2.key").write_text(key)
        bad, what = t / "db2.crt", "expired on"
    elif fault == "other-ca":
        other, other_key = tls.issue_ca("elsewhere")
        cert, key = tls.issue_leaf(other, other_key, "db3", ["127.0.0.33", "db3"])
        (t / "db3.crt").write_text(cert)
        (t / "db3.key").write_text(key)
        bad, what = t / "db3.crt", "was not signed by the CA"
    elif fault == "unreadable-key":
        (t / "db1.key").write_text("not a key\n")
        bad, what = t / "db1.key", "not a PEM private key"
    else:  # db2 moved to another address since its certificate was made
        c.config.write_text(c.config.read_text().replace('"127.0.0.32"', '"127.0.0.35"'))
        bad, what = t / "db2.crt", "not for 127.0.0.35"
    result = c.cli("up", "--no-install")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(bad) in lines[0] and what in lines[0], result.stderr
    assert "galerakv cluster certs --renew" in lines[0]
    assert not any((c.state_dir / n / "data").exists() for n in c.names), "a node was prepared"
    assert "mariadbd" not in result.stdout
