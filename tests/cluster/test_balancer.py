"""Real HAProxy in front of a real 3-node cluster, on both transports.

``local``: nodes 127.0.0.81-83, HAProxy and a health check per node beside them
(balancer 127.0.0.80). ``ssh``: the nodes on three test hosts (127.0.0.61-63,
tests/support/ssh_hosts.py) and HAProxy with every health check on a host of its
own (127.0.0.65), all started over ssh. One cluster per transport for the module
(``kind = "haproxy"``, checks every 1 s, 2 failures to leave, 2 passes to
return); each test leaves it healthy. HAProxy's own view (its stats socket)
says when a node leaves or re-enters rotation; the times are printed (run with
``-s``) and bounded.
"""

from __future__ import annotations

import os
import pwd
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from galerakv.cluster import balancer
from galerakv.cluster.balancer import remote
from galerakv.cluster.render.balancer import FALL, RISE
from galerakv.cluster.supervise import Program, cmdline
from galerakv.cluster.transport import make_transport
from galerakv.paths import BalancerPaths
from tests.support.balanced import ThroughBalancer
from tests.support.local_cluster import LocalCluster, make_local_cluster, make_ssh_cluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

# leaving takes FALL failed checks, each up to one interval apart plus the check's own timeout
LEAVE_BOUND = 1.0 * (FALL + 2) + 1.0
RETURN_BOUND = 1.0 * (RISE + 2) + 1.0


class Bench(ThroughBalancer):
    """The module's cluster, seen through HAProxy."""

    def __init__(self, cluster: LocalCluster) -> None:
        super().__init__(cluster)
        self.transport = make_transport(self.settings)
        self.remote = cluster.hosts is not None  # HAProxy on the balancer's own host

    def states(self) -> dict[tuple[str, str], str]:
        st = balancer.status(self.settings)
        assert st is not None
        return {(s.listener, s.server): s.status for s in st.servers}

    def wait(self, what: str, predicate: Callable[[dict[tuple[str, str], str]], bool],
             timeout: float) -> float:
        """Seconds until HAProxy's view satisfies ``predicate``; fails after ``timeout``."""
        began = time.monotonic()
        while True:
            states = self.states()
            if predicate(states):
                elapsed = time.monotonic() - began
                print(f"  {what}: {elapsed:.2f} s")
                return elapsed
            if time.monotonic() - began > timeout:
                raise AssertionError(f"{what}: not within {timeout:.0f} s; HAProxy says {states}")
            time.sleep(0.05)

    def out_of_rotation(self, node: str, timeout: float = LEAVE_BOUND) -> float:
        return self.wait(f"{node} leaves rotation", lambda s: s[("rw", node)] == "DOWN"
                         and s[("ro", node)] == "DOWN", timeout)

    def in_rotation(self, node: str, timeout: float = RETURN_BOUND) -> float:
        return self.wait(f"{node} back in rotation", lambda s: s[("rw", node)] == "UP"
                         and s[("ro", node)] == "UP", timeout)

    def all_up(self, timeout: float = 30) -> None:
        self.wait("every server UP", lambda s: bool(s) and all(v == "UP" for v in s.values()), timeout)

    def mariadbd_pid(self, node: str) -> int:
        return self.c.pid(node)

    def on_balancer_host(self, path: Path) -> Path:
        """Where ``path`` on the balancer's host is, as this machine sees it."""
        if self.c.hosts is None:
            return path
        return self.c.hosts.hosts[self.settings.balancer.address].private(path)

    def programs(self) -> list[Program]:
        """HAProxy, then every health check, wherever they run."""
        if self.remote:
            return remote.programs(self.settings)
        return [balancer.haproxy_program(self.settings),
                *(balancer.clustercheck_program(self.settings, n) for n in self.settings.cluster.nodes)]

    def pid(self, program: Program) -> int | None:
        """The PID galerakv recorded for ``program``, if it runs that program (read on its host)."""
        try:
            pid = int(self.on_balancer_host(program.pid_file).read_text())
        except (FileNotFoundError, ValueError):
            return None
        argv = cmdline(pid)
        return pid if argv and all(m in argv for m in program.marks) else None


@pytest.fixture(scope="module", params=["local", "ssh"])
def bench(request: pytest.FixtureRequest) -> Iterator[Bench]:
    local = request.param == "local"
    made = (make_local_cluster(3, "127.0.0.81", "galerakv_bal", balancer="haproxy") if local else
            make_ssh_cluster(request.getfixturevalue("ssh_test_hosts"), "galerakv_bal", balancer="haproxy"))
    with made as cluster:
        if not local:
            # install asks every host over ssh (apt-get there); the test hosts share this machine's packages
            out = cluster.ok("install")
            assert "every node's host has MariaDB" in out and "the balancer's host 127.0.0.65 has" in out
        out = cluster.ok("up")
        address = "127.0.0.80" if local else "127.0.0.65"
        assert f"haproxy on {address}: writes :3306, reads :3307" in out
        if not local:
            assert "clustercheck for db3 on 127.0.0.65" in out
        b = Bench(cluster)
        b.all_up()
        yield b


@pytest.fixture
def healthy(bench: Bench) -> Iterator[Bench]:
    """Each test starts and ends with every node Synced and every server UP."""
    bench.all_up()
    yield bench
    bench.c.ok("up")
    bench.all_up(timeout=90)


def test_reads_spread_and_writes_go_to_one_node(healthy: Bench) -> None:
    b = healthy
    # the cluster sql verb goes through the balancer too
    assert b.c.ok("sql", "--via", "ro", "-e", "select @@wsrep_node_name").splitlines()[-1] in ("db1", "db2", "db3")
    readers = {b.value("ro", "select @@wsrep_node_name") for _ in range(12)}
    print(f"  reads through :3307 reached {sorted(readers)}")
    assert len(readers) >= 2

    b.value("rw", "CREATE TABLE IF NOT EXISTS galerakv.lb_writes (id INT AUTO_INCREMENT PRIMARY KEY, "
                  "who VARCHAR(16)) ENGINE=InnoDB")
    for _ in range(10):
        b.value("rw", "INSERT INTO galerakv.lb_writes (who) SELECT @@wsrep_node_name")
    writers = b.value("ro", "SELECT DISTINCT who FROM galerakv.lb_writes")
    assert writers.split() == ["db1"]

    code, st = b.c.status()
    assert code == 0 and st["balancer"]["running"] and not st["balancer"]["problems"]
    assert {(s["listener"], s["server"], s["backup"]) for s in st["balancer"]["servers"]} == {
        ("rw", "db1", False), ("rw", "db2", True), ("rw", "db3", True),
        ("ro", "db1", False), ("ro", "db2", False), ("ro", "db3", False)}


def _ids(pid: int) -> tuple[list[str], list[str], str]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return status["Uid"].split(), status["Gid"].split(), status["Groups"].strip()


def test_haproxy_and_health_checks_run_unprivileged(healthy: Bench) -> None:
    """HAProxy binds as root, then runs as the haproxy user, confined to an empty directory;
    the health check responders run as the user mariadbd runs as (beside local nodes) or as
    HAProxy's (on the balancer's own host), with no extra groups. On ssh hosts the balancer's
    host holds the monitor account's password only, not the secrets file."""
    haproxy_program, *checks = healthy.programs()
    pid = healthy.pid(haproxy_program)
    assert pid is not None
    haproxy = pwd.getpwnam("haproxy")
    uids, gids, _ = _ids(pid)
    assert uids == [str(haproxy.pw_uid)] * 4 and gids == [str(haproxy.pw_gid)] * 4, (uids, gids)
    chroot = healthy.on_balancer_host(BalancerPaths.of(healthy.settings).haproxy_chroot)
    assert os.readlink(f"/proc/{pid}/root").endswith("/balancer/haproxy-chroot")
    assert list(chroot.iterdir()) == [] and chroot.stat().st_uid == 0
    user = pwd.getpwnam("haproxy" if healthy.remote else "mysql")
    for program in checks:
        check = healthy.pid(program)
        assert check is not None, program.label
        assert _ids(check) == ([str(user.pw_uid)] * 4, [str(user.pw_gid)] * 4, ""), program.label
    if healthy.remote:
        state = healthy.on_balancer_host(healthy.settings.state_dir)
        assert not (state / "secrets.toml").exists()
        monitor = state / "balancer" / "monitor.cnf"
        assert monitor.stat().st_mode & 0o777 == 0o600 and "galerakv_monitor" in monitor.read_text()
        assert not (state / "tls" / "ca.key").exists() and not (state / "tls" / "db1.key").exists()
    healthy.all_up()  # its health checks and stats socket still work from there


def test_desynced_node_leaves_and_returns(healthy: Bench) -> None:
    b = healthy
    b.c.sql("db2", "SET GLOBAL wsrep_desync=ON")
    b.out_of_rotation("db2")
    assert "db2" not in {b.value("ro", "select @@wsrep_node_name") for _ in range(6)}
    code, st = b.c.status()
    assert code == 1 and "haproxy ro: db2 is DOWN" in st["balancer"]["problems"]
    b.c.sql("db2", "SET GLOBAL wsrep_desync=OFF")
    b.in_rotation("db2")


def test_maintenance_switch_drains_a_node(healthy: Bench) -> None:
    b = healthy
    b.c.ok("maintenance", "--node", "db3", "on")
    b.out_of_rotation("db3")
    # drained on purpose: no problem, a healthy verdict and exit 0, and the way back named
    code, st = b.c.status()
    assert (code, st["verdict"], st["balancer"]["problems"]) == (0, "healthy", []), st
    assert st["balancer"]["drained"] == ["db3"]
    assert [m["end"] for m in st["maintenance"]] == ["galerakv cluster maintenance --node db3 off"]
    b.c.ok("maintenance", "--node", "db3", "off")
    b.in_rotation("db3")


def test_sigstopped_node_leaves_and_returns(healthy: Bench) -> None:
    b = healthy
    pid = b.mariadbd_pid("db3")
    os.kill(pid, signal.SIGSTOP)
    try:
        b.out_of_rotation("db3")
        assert "db3" not in {b.value("ro", "select @@wsrep_node_name") for _ in range(6)}
    finally:
        os.kill(pid, signal.SIGCONT)
    # it may have been evicted from the group meanwhile: back once it is Synced again
    b.in_rotation("db3", timeout=90)


def test_stopped_node_leaves_and_returns(healthy: Bench) -> None:
    b = healthy
    b.transport.stop(b.settings.cluster.node("db2"), 60)
    b.out_of_rotation("db2")
    b.c.ok("up")  # rejoins the running Primary component
    b.in_rotation("db2")


def test_writes_continue_through_a_backup_when_the_writer_dies(healthy: Bench) -> None:
    b = healthy
    b.value("rw", "CREATE TABLE IF NOT EXISTS galerakv.lb_failover (id INT AUTO_INCREMENT PRIMARY KEY, "
                  "who VARCHAR(16)) ENGINE=InnoDB")
    insert = "INSERT INTO galerakv.lb_failover (who) SELECT @@wsrep_node_name"
    assert b.value("rw", insert + "; SELECT @@wsrep_node_name") == "db1"
    os.kill(b.mariadbd_pid("db1"), signal.SIGKILL)
    began = time.monotonic()
    failures = 0
    while True:
        result = b.query("rw", insert + "; SELECT @@wsrep_node_name", timeout=10)
        if result.returncode == 0:
            break
        failures += 1
        assert time.monotonic() - began < LEAVE_BOUND + 5, result.stderr
        time.sleep(0.1)
    print(f"  first write after kill -9 of the writer: {time.monotonic() - began:.2f} s "
          f"({failures} failed attempts), on {result.stdout.strip()}")
    assert result.stdout.strip() == "db2"  # the first backup, in metadata order
    for _ in range(5):
        assert b.value("rw", insert + "; SELECT @@wsrep_node_name") == "db2"
    b.c.ok("up")  # db1 rejoins
    b.in_rotation("db1", timeout=60)
    assert b.value("rw", "SELECT @@wsrep_node_name") == "db1"  # writes return to the root node


def test_down_stops_haproxy_and_checks(bench: Bench, tmp_path: Path) -> None:
    """Last in the module: down stops everything galerakv started for the balancer, by PID."""
    programs = bench.programs()
    pids = [bench.pid(p) for p in programs]
    assert all(pids)
    out = bench.c.ok("down")
    assert "haproxy: stopped" in out and "clustercheck for db3: stopped" in out
    assert all(bench.pid(p) is None for p in programs)
    code, st = bench.c.status()
    assert code == 1 and not st["balancer"]["running"]
