"""Recovery and lifecycle on one real 3-node cluster with writes flowing, on both transports:
``local`` (nodes 127.0.0.101-105, HAProxy on .109) and ``ssh`` (nodes on the test hosts
127.0.0.61-63, added ones on .66-.67, HAProxy and its health checks on a host of their own,
.65; tests/support/ssh_hosts.py).

Drills, each with a bounded write loop through a real ``galerakv serve``
(route = "nodes") that reports writes acknowledged, acknowledged writes found
afterwards on every node, failed requests and the time to recover (run with
``-s`` to see them):

- ``certs --renew`` and ``restart --rolling`` under writes (TLS rotation): no request may fail;
- TLS on real nodes: encrypted connections, a plain one refused, and the doctor's TLS codes;
- SIGSTOP of one node (a minority cut off): no request may fail;
- kill -9 of the server's writer, then ``up``: no request may fail;
- SIGSTOP of two of three nodes: the last one goes non-Primary and the server
  answers 503; after SIGCONT the cluster heals by itself;
- kill -9 of every node in the middle of writes: ``up`` picks the most
  advanced node by itself;
- grow 3 -> 5 and shrink 5 -> 3 with ``add-node`` / ``remove-node``.

Plus the bad input of those verbs. The cluster is shared by the module (and
the tests run in file order) to keep the wall time low.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from galerakv import config, tls
from galerakv.cluster.render.node import RenderContext
from galerakv.cluster.transport import make_transport
from galerakv.cluster.transport.local import runs_mariadbd
from galerakv.cluster.transport.ssh import ShellRunner, SshTransport
from galerakv.galera.log import START_MARKER
from galerakv.galera.position import parse_grastate, parse_recovered
from galerakv.secrets import client_option_file, load, write_private
from tests.support.faults import FaultCluster, Tally, WriteLoop, check
from tests.support.local_cluster import LocalCluster, make_local_cluster, make_ssh_cluster
from tests.support.server import writer_of
from tests.support.ssh_hosts import SSH_BALANCER_ADDRESS, SSH_SPARE_ADDRESSES

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

FIRST = "127.0.0.101"
BALANCER_DEFAULT = "127.0.0.100"  # what `init` would pick, outside this module's addresses
BALANCER = "127.0.0.109"
REQUEST_TIMEOUT = 30.0
HEAL_TIMEOUT = 90.0


def _config_data(cluster: LocalCluster) -> dict[str, object]:
    data = tomllib.loads(cluster.config.read_text())
    data["cluster"]["state_dir"] = str(cluster.state_dir)
    return data


@pytest.fixture(scope="module", params=["local", "ssh"])
def fc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultCluster]:
    local = request.param == "local"
    made = (make_local_cluster(3, FIRST, "galerakv_recovery", balancer="haproxy") if local else
            make_ssh_cluster(request.getfixturevalue("ssh_test_hosts"), "galerakv_recovery", balancer="haproxy"))
    with made as cluster:
        # HAProxy in front too (its maintenance switch and restarts are exercised), locally on an
        # address of this module's range; the server itself routes to the nodes
        default, address = (BALANCER_DEFAULT, BALANCER) if local else (SSH_BALANCER_ADDRESS, SSH_BALANCER_ADDRESS)
        # checks every 0.5 s: a drained node leaves HAProxy's rotation sooner, so the
        # rolling restart waits less per node
        cluster.config.write_text(cluster.config.read_text().replace(
            f'address = "{default}"', f'address = "{address}"\ncheck_interval = 0.5'))
        cluster.ok("up")
        fault = FaultCluster(cluster, _config_data(cluster), tmp_path_factory.mktemp(f"recovery-{request.param}"))
        try:
            yield fault
        finally:
            fault.stop_servers()


def spare_addresses(c: LocalCluster) -> list[str]:
    """Two addresses for add-node: local ones of this module's range, or the spare test hosts."""
    return ["127.0.0.104", "127.0.0.105"] if c.hosts is None else SSH_SPARE_ADDRESSES


def wait_healthy(cluster: LocalCluster, timeout: float = HEAL_TIMEOUT) -> float:
    began = time.monotonic()
    while True:
        code, report = cluster.status()
        if code == 0:
            return time.monotonic() - began
        assert time.monotonic() - began < timeout, f"not healthy after {timeout:.0f} s: {report}"
        time.sleep(0.5)


def pids(fc: FaultCluster, names: list[str]) -> dict[str, int]:
    return {n: fc.pid(n) for n in names}


def this_run(cluster: LocalCluster, name: str) -> str:
    """The node's error log since its last start."""
    log = (cluster.node_dir(name) / "mysqld.log").read_text(errors="replace")
    return log.rpartition(START_MARKER)[2]


def assert_no_full_transfer(cluster: LocalCluster, name: str) -> str:
    """The node rejoined with IST (or nothing to send), not a copy of the whole datadir."""
    run = this_run(cluster, name)
    assert "rsync SST completed" not in run and "IST uuid:00000000" not in run, \
        f"{name} got a full state transfer:\n" + "\n".join(
            line for line in run.splitlines() if "SST" in line or "IST" in line)
    transfer = [line for line in run.splitlines() if "Receiving IST:" in line or "IST received" in line]
    return transfer[0].split("WSREP: ")[-1] if transfer else "no transfer needed"


def position(cluster: LocalCluster) -> tuple[str, int]:
    """The cluster state UUID and the highest last committed seqno any node reports."""
    _, report = cluster.status()
    nodes = [n for n in report["nodes"] if n["reachable"]]
    return nodes[0]["cluster_state_uuid"], max(n["last_committed"] for n in nodes)


# --------------------------------------------------------------------------- bad input


def test_bad_input_changes_nothing(fc: FaultCluster) -> None:
    c = fc.cluster
    before = c.config.read_text()

    out = c.ok("recover")
    assert "runs and is healthy" in out and "nothing to recover" in out

    db2 = fc.address("db2")
    for args, message in [
        (("add-node", "db2", spare_addresses(c)[0]), "the name 'db2' is already taken"),
        (("add-node", "db9", db2), f"the address {db2}:3306 is already taken by node db2"),
        *([(("add-node", "db9", "10.1.2.3"), "local nodes must use a loopback address")] if c.hosts is None else []),
        (("remove-node", "db3"), "pass --force"),
        (("remove-node", "db7"), "no node named 'db7'"),
        (("restart",), "only --rolling"),
        (("recover", "--force", "db9"), "--force db9: no node of that name"),
    ]:
        result = c.cli(*args)
        assert result.returncode != 0, args
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert c.config.read_text() == before
    assert not (c.state_dir / "db9").exists() and not (c.node_dir("db2").parent / "db9").exists()
    assert c.status()[0] == 0


# --------------------------------------------------------------------------- rolling restart


def loaded_not_after(fc: FaultCluster, node: str) -> str:
    """``Ssl_server_not_after`` of the certificate ``node``'s running server loaded."""
    out = fc.cluster.sql(node, "SHOW GLOBAL STATUS LIKE 'Ssl_server_not_after'")
    return out.strip().splitlines()[-1].split("\t")[1]


def doctor_codes(cluster: LocalCluster) -> dict[str, list[str | None]]:
    result = cluster.cli("doctor", "--json")
    assert "Traceback" not in result.stderr, result.stderr
    found: dict[str, list[str | None]] = {}
    for f in json.loads(result.stdout)["findings"]:
        found.setdefault(f["code"], []).append(f["node"])
    return found


def test_certificate_rotation_by_rolling_restart_loses_no_request(fc: FaultCluster) -> None:
    """``certs --renew`` then ``restart --rolling`` under writes (the server talks TLS to every
    node): every node loads its new certificate, no request fails, no write is lost."""
    server = fc.server()
    with WriteLoop(server.url, "r-rolling") as loop:
        loop.wait_for_acks(20)
        before = {n: fc.pid(n) for n in fc.names}
        old_certs = {n: loaded_not_after(fc, n) for n in fc.names}
        renewed = fc.cluster.ok("certs", "--renew", "--days", "20")
        assert "next: `galerakv cluster restart --rolling`" in renewed
        began = time.monotonic()
        out = fc.cluster.ok("restart", "--rolling")
        took = time.monotonic() - began
        loop.wait_for_acks(loop.acked_so_far() + 20)
    tally = loop.tally()
    assert out.index("db3: stopping") < out.index("db2: stopping") < out.index("db1: stopping")
    assert "balancer maintenance on" in out
    after = {n: fc.pid(n) for n in fc.names}
    assert all(after[n] != before[n] for n in fc.names), "every node got a new process"
    for n in fc.names:
        new = tls.info((fc.cluster.node_dir(n) / "tls-server.crt").read_text()).not_after
        assert loaded_not_after(fc, n) != old_certs[n]
        assert loaded_not_after(fc, n) == f"{new:%b} {new.day:2d} {new:%H:%M:%S %Y} GMT", n
    print(f"\n[rotation: certs --renew, restart --rolling] took {took:.1f} s")
    check(fc, "certificate rotation", "r-rolling", tally, fc.names)
    fc.stop_servers()
    # 20 days left: the doctor warns about every node, with the command that renews
    assert sorted(doctor_codes(fc.cluster).get("tls-expiring", [])) == ["db1", "db2", "db3"]
    assert "the first certificate to expire" in fc.cluster.ok("status") and "renew now" in fc.cluster.ok("status")


def test_tls_on_real_nodes(fc: FaultCluster) -> None:
    """Every connection is encrypted and a plain one refused; replication and state transfers
    use TLS; the doctor's TLS codes come from real nodes."""
    c = fc.cluster
    secrets = load(c.state_dir / "secrets.toml")
    assert secrets is not None
    ca = c.state_dir / "tls" / "ca.crt"
    app = c.config.parent / "app.cnf"
    write_private(app, client_option_file(secrets.app, {"host": fc.address("db2"), "port": "3306"}))

    def client(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["mariadb", f"--defaults-file={app}", "--batch", "--skip-column-names", *args],
                              capture_output=True, text=True, timeout=30, check=False)

    # the application's account: TLS checked against the cluster's CA, and never without it
    verified = client(f"--ssl-ca={ca}", "--ssl-verify-server-cert", "-e", "SHOW STATUS LIKE 'Ssl_cipher'")
    assert verified.returncode == 0 and verified.stdout.split("\t")[1].strip(), verified
    plain = client("--skip-ssl", "-e", "SELECT 1")
    assert plain.returncode != 0 and ("insecure transport" in plain.stderr or "Access denied" in plain.stderr), plain
    # the admin's account, through HAProxy (TLS passes through to a node)
    cipher = c.ok("sql", "--via", "rw", "-e", "SHOW STATUS LIKE 'Ssl_cipher'")
    assert cipher.strip().splitlines()[-1].split("\t")[1].startswith("TLS_"), cipher
    for node in fc.names:
        options = c.sql(node, "SELECT @@wsrep_provider_options")
        assert "socket.ssl = YES" in options, node
        log = (c.node_dir(node) / "mysqld.log").read_text(errors="replace")
        assert "ssl://" in log, f"{node}: gcomm did not use TLS"
    joined = (c.node_dir("db2") / "mysqld.log").read_text(errors="replace")
    assert "Using stunnel for SSL encryption" in joined, "db2's state transfer was not encrypted"
    assert doctor_codes(c).keys().isdisjoint({"tls-mismatch", "tls-off", "account-without-ssl"})

    # an account made by hand without REQUIRE SSL
    c.sql("db1", "CREATE USER 'plain_app'@'127.%' IDENTIFIED BY 'plain-pw-123'")
    try:
        assert doctor_codes(c)["account-without-ssl"] == [None]
    finally:
        c.sql("db1", "DROP USER 'plain_app'@'127.%'")
    # db3 given another CA's files (as a hand-copied certificate would): the doctor names db3
    node_dir = c.node_dir("db3")
    saved = {name: (node_dir / name).read_text() for name in ("tls-ca.crt", "tls-server.crt", "cluster.cnf")}
    other_ca, other_key = tls.issue_ca("someone else")
    try:
        (node_dir / "tls-ca.crt").write_text(other_ca)
        (node_dir / "tls-server.crt").write_text(tls.issue_leaf(other_ca, other_key, "db3", [fc.address("db3")])[0])
        # and its configuration without the server's TLS settings
        cnf = node_dir / "cluster.cnf"
        cnf.write_text("".join(line for line in saved["cluster.cnf"].splitlines(keepends=True)
                               if not line.startswith(("ssl-cert", "ssl-key"))))
        found = doctor_codes(c)
        assert found["tls-mismatch"] == ["db3"] and found["tls-off"] == ["db3"], found
    finally:
        for name, text in saved.items():
            (node_dir / name).write_text(text)
    assert doctor_codes(c).keys().isdisjoint({"tls-mismatch", "tls-off"})


# --------------------------------------------------------------------------- minority cut off


def test_one_node_frozen_loses_no_request(fc: FaultCluster) -> None:
    """SIGSTOP of db3 (a minority cut off) for longer than evs.suspect_timeout, under writes."""
    server = fc.server()
    with WriteLoop(server.url, "r-minority") as loop, contextlib.ExitStack() as undo:
        loop.wait_for_acks(20)
        pid = fc.pid("db3")
        os.kill(pid, signal.SIGSTOP)
        undo.callback(os.kill, pid, signal.SIGCONT)
        time.sleep(8.0)
        during = loop.acked_so_far()
        undo.close()  # SIGCONT
        healed = wait_healthy(fc.cluster)
        loop.wait_for_acks(loop.acked_so_far() + 20)
    tally = loop.tally()
    print(f"\n[SIGSTOP db3 8 s] healthy {healed:.1f} s after SIGCONT; {during} writes "
          "acknowledged by the end of the freeze")
    check(fc, "SIGSTOP of one node", "r-minority", tally, fc.names)
    fc.stop_servers()


# --------------------------------------------------------------------------- writer killed


def test_kill9_of_the_writer_then_up(fc: FaultCluster) -> None:
    """kill -9 of the server's writer: writes move on; `up` brings the node back (IST)."""
    server = fc.server()
    with WriteLoop(server.url, "r-writer") as loop:
        loop.wait_for_acks(20)
        writer = writer_of(server)
        acked_before = loop.acked_so_far()
        fc.kill9(writer)
        killed_at = time.monotonic()
        loop.wait_for_acks(acked_before + 20)
        moved = time.monotonic() - killed_at
        out = fc.cluster.ok("up", "--no-install")
        assert f"{writer}: starting, joining the cluster" in out and "bootstrapping" not in out
        # its position was recovered from InnoDB and given to it: it asks for IST, not SST
        assert f"{writer}: starting from its recovered position" in out, out
        transfer = assert_no_full_transfer(fc.cluster, writer)
        healed = wait_healthy(fc.cluster) + (time.monotonic() - killed_at)
        loop.wait_for_acks(loop.acked_so_far() + 20)
    print(f"\n[kill -9 of writer {writer}] writes acknowledged again {moved:.1f} s after the kill "
          f"(new writer {writer_of(server)}); healthy {healed:.1f} s after the kill; "
          f"rejoined by {transfer}")
    check(fc, f"kill -9 of writer {writer}", "r-writer", loop.tally(), fc.names)
    fc.stop_servers()


# --------------------------------------------------------------------------- quorum lost


def test_two_of_three_frozen_then_healed(fc: FaultCluster) -> None:
    server = fc.server()
    frozen = ["db2", "db3"]
    with WriteLoop(server.url, "r-quorum") as loop, contextlib.ExitStack() as undo:
        loop.wait_for_acks(20)
        for pid in pids(fc, frozen).values():
            os.kill(pid, signal.SIGSTOP)
            undo.callback(os.kill, pid, signal.SIGCONT)
        stopped_at = time.monotonic()
        deadline = stopped_at + 60
        while True:
            st = next(n for n in fc.cluster.status()[1]["nodes"] if n["name"] == "db1")
            if st["reachable"] and not st["primary"]:
                break
            assert time.monotonic() < deadline, f"db1 stayed Primary without its peers: {st}"
            time.sleep(0.5)
        non_primary_after = time.monotonic() - stopped_at
        refused = httpx.put(server.url + "/v1/ns/r-quorum/kv/while-non-primary", content=b"x",
                            timeout=REQUEST_TIMEOUT)
        assert refused.status_code == 503, refused.text
        assert fc.cluster.cli("status").returncode == 1
        undo.close()  # SIGCONT
        resumed = time.monotonic()
        healed = wait_healthy(fc.cluster)
        first_write = None
        while first_write is None:
            ok = [o for o in list(loop.outcomes)[-20:] if 200 <= o.status < 300]
            if ok and time.monotonic() - resumed > 1:
                first_write = time.monotonic() - resumed
            assert time.monotonic() - resumed < HEAL_TIMEOUT, "no write succeeded after SIGCONT"
            time.sleep(0.2)
        loop.wait_for_acks(loop.acked_so_far() + 20)
    tally = loop.tally()
    failed = tally.failed
    assert all(o.status == 503 for o in failed), [o for o in failed if o.status != 503][:3]
    print(f"\n[SIGSTOP db2+db3] db1 non-Primary after {non_primary_after:.1f} s; after SIGCONT: "
          f"healthy in {healed:.1f} s, writes flowing within {first_write:.1f} s; "
          f"{len(failed)} requests answered 503 while quorum was lost (slowest after "
          f"{max((o.latency for o in failed), default=0):.1f} s)")
    check(fc, "SIGSTOP 2 of 3", "r-quorum",
          Tally([o for o in tally.outcomes if o.status != 503], tally.seconds), fc.names)
    fc.stop_servers()


# --------------------------------------------------------------------------- full outage


def test_kill9_every_node_then_up_recovers(fc: FaultCluster) -> None:
    c = fc.cluster
    server = fc.server()
    uuid_before, _ = position(c)
    # every node dies: requests in flight then can only fail, so the clients wait less for them
    with WriteLoop(server.url, "r-outage", timeout=5.0) as loop:
        loop.wait_for_acks(50)
        victims = pids(fc, fc.names)
        for pid in victims.values():
            os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        deadline = killed_at + 30
        for name, pid in victims.items():
            while runs_mariadbd(pid, c.my_cnf(name)):
                assert time.monotonic() < deadline, f"{name} survived SIGKILL"
                time.sleep(0.05)
        time.sleep(1.0)  # the server notices: writes now fail with 503
    tally = loop.tally()
    for name in fc.names:
        g = c.grastate(name)
        assert "seqno:   -1" in g and "safe_to_bootstrap: 0" in g, g

    began = time.monotonic()
    out = c.ok("up", "--no-install")
    took = time.monotonic() - began
    assert "applying the recovery rule" in out and "decision: bootstrap" in out
    recovered = {}
    for name in fc.names:
        log = (c.node_dir(name) / "mysqld.log").read_text(errors="replace")
        section = log.rpartition("---- galerakv: mariadbd --wsrep-recover")[2]
        pos = parse_recovered(section.partition("---- galerakv: starting")[0])
        assert pos is not None, name
        recovered[name] = pos.seqno
        if os.environ.get("GALERAKV_RECORD_RECOVER"):
            Path(os.environ["GALERAKV_RECORD_RECOVER"], f"{name}.log").write_text(
                section.partition("---- galerakv: starting")[0])
    chosen = out.split("decision: bootstrap ")[1].split(":")[0]
    assert recovered[chosen] == max(recovered.values()), (chosen, recovered)
    assert f"{chosen}: bootstrapping" in out
    wait_healthy(c, 30)  # HAProxy marks the nodes up after two passing checks
    # the cluster keeps its history: same state UUID, the seqno goes on from where it was
    uuid_after, seqno_after = position(c)
    assert uuid_after == uuid_before, (uuid_before, uuid_after)
    assert seqno_after >= max(recovered.values()), (seqno_after, recovered)
    assert "history reset" not in this_run(c, chosen)
    transfers = {n: assert_no_full_transfer(c, n) for n in fc.names if n != chosen}
    print(f"\n[kill -9 of every node] recovered positions {recovered}; up bootstrapped {chosen} "
          f"and was healthy {took:.1f} s after it started ({time.monotonic() - killed_at:.1f} s "
          f"after the kill); {len(tally.failed)} requests failed while every node was down; "
          f"state UUID kept, seqno {seqno_after}; joiners: {transfers}")
    acked = Tally([o for o in tally.outcomes if 200 <= o.status < 300], tally.seconds)
    check(fc, "kill -9 of every node", "r-outage", acked, fc.names)
    fc.stop_servers()


# --------------------------------------------------------------------------- membership


def test_grow_to_five_then_shrink_to_three(fc: FaultCluster) -> None:
    c = fc.cluster
    original = c.config.read_text()
    a4, a5 = spare_addresses(c)
    c.addresses.update({"db4": a4, "db5": a5})
    out = c.ok("add-node", "db4", a4)
    assert "even number" in out and "db4: Synced" in out
    out = c.ok("add-node", "db5", a5)
    assert "even number" not in out
    text = c.config.read_text()
    assert set(original.splitlines()) <= set(text.splitlines()) and 'name = "db5"' in text  # comments kept
    assert f"{a5}:4567" in (c.node_dir("db1") / "cluster.cnf").read_text()
    c.names[:] = ["db1", "db2", "db3", "db4", "db5"]
    wait_healthy(c, 30)  # HAProxy too: its new servers pass their checks
    code, st = c.status()
    assert code == 0 and [n["cluster_size"] for n in st["nodes"]] == [5] * 5
    assert sorted({s["server"] for s in st["balancer"]["servers"]}) == c.names
    assert "verify: ok" in c.ok("verify")

    out = c.ok("remove-node", "db5")
    assert "even number" in out
    c.ok("remove-node", "db4")
    assert c.config.read_text() == original
    assert a4 not in (c.node_dir("db1") / "cluster.cnf").read_text()
    for gone in ("db4", "db5"):
        pid_file = c.node_dir(gone) / "galerakv.pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        assert pid is None or not runs_mariadbd(pid, c.my_cnf(gone))
    c.names[:] = ["db1", "db2", "db3"]
    wait_healthy(c, 30)
    code, st = c.status()
    assert code == 0 and [n["cluster_size"] for n in st["nodes"]] == [3] * 3
    assert sorted({s["server"] for s in st["balancer"]["servers"]}) == c.names
    assert "verify: ok" in c.ok("verify")


# --------------------------------------------------------------------------- recover


def test_recover_refuses_contradicting_evidence_then_recovers(fc: FaultCluster) -> None:
    c = fc.cluster
    victims = pids(fc, fc.names)
    for pid in victims.values():
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    for name, pid in victims.items():
        while runs_mariadbd(pid, c.my_cnf(name)):
            assert time.monotonic() < deadline, f"{name} survived SIGKILL"
            time.sleep(0.05)
    grastate = c.node_dir("db2") / "data" / "grastate.dat"
    saved = grastate.read_text()

    # the ssh transport's scripts for the same two steps: on the ssh hosts, or here with `sh -c`
    settings = config.load(c.config)
    ssh = (SshTransport(settings, RenderContext(run_as="mysql"), runner=ShellRunner()) if c.hosts is None
           else make_transport(settings))
    pos = ssh.wsrep_recover(settings.cluster.node("db2"), 120)
    assert pos is not None and pos.uuid in saved
    before = grastate.stat()
    ssh.set_safe_to_bootstrap(settings.cluster.node("db2"), True)
    after = grastate.stat()
    assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid, before.st_mode)
    rewritten = parse_grastate(grastate.read_text())
    assert rewritten.safe_to_bootstrap and rewritten.seqno == -1 and rewritten.uuid == pos.uuid
    # another cluster's history on db2 (as if somebody had bootstrapped it alone)
    grastate.write_text("# GALERA saved state\nversion: 2.1\n"
                        "uuid:    e9e9ec8d-e97d-11f1-8e63-ca76314157b6\nseqno:   5\n"
                        "safe_to_bootstrap: 0\n")
    try:
        refused = c.cli("recover")
        assert refused.returncode == 1, refused.stdout
        assert "different cluster histories" in refused.stderr and "--force NODE" in refused.stderr
        assert "db2: grastate.dat uuid e9e9ec8d" in refused.stdout
        assert not any(fc.running(n) for n in fc.names)
    finally:
        grastate.write_text(saved)

    began = time.monotonic()
    out = c.ok("recover")
    took = time.monotonic() - began
    for name in fc.names:
        assert f"  {name}: grastate.dat uuid" in out and "--wsrep-recover:" in out
    positions = {line.split(":")[0].strip(): int(line.rsplit("-> position ", 1)[1])
                 for line in out.splitlines() if "-> position " in line}
    chosen = out.split("decision: bootstrap ")[1].split(":")[0]
    assert sorted(positions) == fc.names and positions[chosen] == max(positions.values())
    assert f"{chosen}: grastate.dat safe_to_bootstrap set to 1" in out
    wait_healthy(c, 30)
    print(f"\n[recover after kill -9 of every node] healthy after {took:.1f} s")
