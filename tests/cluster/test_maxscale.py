"""Real MariaDB MaxScale in front of a real 3-node cluster (nodes 127.0.0.141-143, MaxScale on 127.0.0.140).

Needs a ``maxscale`` binary on PATH: MaxScale is in no package registry here, so
build it with ``scripts/build-maxscale`` (docs/maxscale.md). Without one these
tests are skipped, saying so (CI cannot build it); with one, ``pytest -m maxscale``
runs them and the API suite's ``mariadb-maxscale`` variant.

One cluster for the module (``kind = "maxscale"``: galeramon every 1 s, a
readwritesplit service on :3306, readconnroute on :3307). The tests run in file
order: the failover test, which moves the writer to db2 for good (no failback),
comes last but for ``down``.
"""

from __future__ import annotations

import os
import pwd
import signal
import stat
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from galerakv.cluster import balancer
from galerakv.cluster.render.balancer import MAXSCALE_USER
from galerakv.cluster.supervise import accepts
from galerakv.cluster.transport.local import runs_mariadbd
from galerakv.paths import BalancerPaths
from tests.support.backends import requires_maxscale
from tests.support.balanced import ThroughBalancer
from tests.support.local_cluster import make_local_cluster

pytestmark = [pytest.mark.cluster, pytest.mark.maxscale, pytest.mark.slow, requires_maxscale]

FAILOVER_BOUND = 15.0  # galeramon sees the writer gone within a few 1 s intervals


class Bench(ThroughBalancer):
    """The module's cluster, seen through MaxScale."""

    def wait_routing(self, timeout: float = 30) -> None:
        """Until both services route (the monitor has seen the nodes since MaxScale started)."""
        deadline = time.monotonic() + timeout
        while True:
            results = [self.query(via, "SELECT 1") for via in ("rw", "ro")]
            if all(r.returncode == 0 for r in results):
                return
            assert time.monotonic() < deadline, [r.stderr for r in results]
            time.sleep(0.25)

    def readers(self, connections: int = 4) -> set[str]:
        """The nodes that several read connections held open at once reached."""
        with ThreadPoolExecutor(max_workers=connections) as pool:
            return set(pool.map(lambda _: self.value("ro", "SELECT @@wsrep_node_name, SLEEP(1)").split()[0],
                                range(connections)))

    def mariadbd_pid(self, node: str) -> int:
        node_dir = self.c.state_dir / node
        pid = int((node_dir / "galerakv.pid").read_text())
        assert runs_mariadbd(pid, node_dir / "my.cnf")
        return pid


@pytest.fixture(scope="module")
def bench() -> Iterator[Bench]:
    with make_local_cluster(3, "127.0.0.141", "galerakv_mxs", balancer="maxscale") as cluster:
        out = cluster.ok("up")
        assert "maxscale on 127.0.0.140: writes :3306, reads :3307" in out
        b = Bench(cluster)
        b.wait_routing()
        yield b


def test_up_runs_maxscale_as_its_own_user_without_rest_api(bench: Bench) -> None:
    pid = balancer.maxscale_program(bench.settings).running_pid()
    assert pid is not None
    user = pwd.getpwnam(MAXSCALE_USER)
    with open(f"/proc/{pid}/status") as f:
        ids = {line.split(":")[0]: line.split()[1:] for line in f if line.startswith(("Uid:", "Gid:"))}
    assert ids["Uid"] == [str(user.pw_uid)] * 4 and ids["Gid"] == [str(user.pw_gid)] * 4, ids
    paths = BalancerPaths.of(bench.settings)
    for directory in (paths.maxscale_dir, *(paths.maxscale_dir / s for s in ("log", "data", "cache", "run",
                                                                               "persist"))):
        assert directory.stat().st_uid == user.pw_uid, directory
    cnf = paths.maxscale_cnf.stat()
    assert (cnf.st_uid, stat.S_IMODE(cnf.st_mode)) == (user.pw_uid, 0o600)
    assert "admin_enabled=false" in paths.maxscale_cnf.read_text().splitlines()
    for host in (bench.settings.balancer.address, "127.0.0.1"):
        assert not accepts(host, 8989), f"a REST API listens on {host}:8989"
    code, st = bench.c.status()
    assert code == 0 and st["balancer"]["running"] and st["balancer"]["pid"] == pid, st
    bench.c.ok("up")  # a second up leaves the running MaxScale alone
    assert balancer.maxscale_program(bench.settings).running_pid() == pid


def test_reads_spread_and_writes_go_to_one_node(bench: Bench) -> None:
    b = bench
    # readconnroute gives each new connection the reader with the fewest open ones: hold several
    readers = b.readers()
    print(f"  reads through :3307 reached {sorted(readers)}")
    assert len(readers) >= 2 and readers <= {"db1", "db2", "db3"}

    b.value("rw", "CREATE TABLE IF NOT EXISTS galerakv.mxs_writes (id INT AUTO_INCREMENT PRIMARY KEY, "
                  "who VARCHAR(16)) ENGINE=InnoDB")
    for _ in range(10):
        b.value("rw", "INSERT INTO galerakv.mxs_writes (who) SELECT @@wsrep_node_name")
    assert b.value("ro", "SELECT DISTINCT who FROM galerakv.mxs_writes").split() == ["db1"]


def test_writer_killed_and_replaced(bench: Bench) -> None:
    b = bench
    b.value("rw", "CREATE TABLE IF NOT EXISTS galerakv.mxs_failover (id INT AUTO_INCREMENT PRIMARY KEY, "
                  "who VARCHAR(16)) ENGINE=InnoDB")
    # LAST_INSERT_ID() keeps readwritesplit on the writer, so `who` names where the insert ran
    insert = ("INSERT INTO galerakv.mxs_failover (who) SELECT @@wsrep_node_name; "
              "SELECT who FROM galerakv.mxs_failover WHERE id = LAST_INSERT_ID()")
    assert b.value("rw", insert) == "db1"
    os.kill(b.mariadbd_pid("db1"), signal.SIGKILL)
    began = time.monotonic()
    failures = 0
    while True:
        result = b.query("rw", insert, timeout=10)
        if result.returncode == 0:
            break
        failures += 1
        assert time.monotonic() - began < FAILOVER_BOUND, result.stderr
        time.sleep(0.2)
    print(f"  first write after kill -9 of the writer: {time.monotonic() - began:.2f} s "
          f"({failures} failed attempts), on {result.stdout.strip()}")
    assert result.stdout.strip() == "db2"  # the next priority, in metadata order
    for _ in range(5):
        assert b.value("rw", insert) == "db2"
    b.c.ok("up")  # db1 rejoins: it takes reads again ...
    deadline = time.monotonic() + 60
    while "db1" not in b.readers():
        assert time.monotonic() < deadline, "db1 is not back among the readers"
    for _ in range(5):  # ... and the writer stays put (disable_master_failback)
        assert b.value("rw", insert) == "db2"


def test_down_stops_maxscale(bench: Bench) -> None:
    """Last in the module: down stops MaxScale by its recorded PID."""
    program = balancer.maxscale_program(bench.settings)
    assert program.running_pid() is not None
    out = bench.c.ok("down")
    assert "maxscale: stopped" in out
    assert program.running_pid() is None
