"""Real Galera clusters on loopback addresses, driven through the ``galerakv`` command.

State lives under /var/tmp/galerakv-tests/<random>/ (mode 0755, see state_dirs.py):
mariadbd runs as the mysql user, which cannot enter pytest's own 0700 temporary
directory. Teardown (``LocalCluster.destroy``) runs ``galerakv cluster down``; if a node
still runs after that, it is killed by the PID galerakv recorded for it (and
only if that PID still runs mariadbd with that node's my.cnf), then the
directory is removed (kept when GALERAKV_KEEP_TEST_STATE is set, to read the
nodes' logs).

Everything here needs root and an installed MariaDB + Galera; the tests that
use it are marked ``cluster``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from galerakv import config
from galerakv.cluster import balancer as cluster_balancer
from galerakv.cluster import starter
from galerakv.cluster.transport.local import runs_mariadbd
from tests.support.ssh_hosts import SSH_BALANCER_ADDRESS, SshHosts
from tests.support.state_dirs import state_root

COMMAND_TIMEOUT = 400


def skip_reason() -> str | None:
    """Why real cluster tests cannot run on this machine, or None when they can."""
    if os.geteuid() != 0:
        return "real cluster tests run as root (mariadbd drops to the mysql user)"
    if not Path("/usr/sbin/mariadbd").exists() or not Path("/usr/lib/galera/libgalera_smm.so").exists():
        return "MariaDB/Galera not installed: run `galerakv cluster install`"
    return None


@dataclass
class LocalCluster:
    config: Path
    state_dir: Path
    names: list[str]
    # with the ssh transport: the test hosts (tests/support/ssh_hosts.py); each node's files are then
    # in its host's private state_dir, which the controller reads at ``hosts.private(...)``
    hosts: SshHosts | None = None
    addresses: dict[str, str] = field(default_factory=dict)  # ssh: node -> its host (nodes added later too)

    @classmethod
    def create(cls, count: int, first_address: str, *, cluster_name: str, prefix: str,
               balancer: str = "none") -> LocalCluster:
        """A starter galerakv.toml for ``count`` nodes from ``first_address`` in a fresh state root; not started."""
        root = state_root(prefix)
        path = root / "galerakv.toml"
        path.write_text(starter.starter_toml(count, first_address, cluster_name=cluster_name, state_dir="state",
                                             balancer_kind=balancer))
        return cls(path, root / "state", [f"db{i}" for i in range(1, count + 1)])

    @classmethod
    def create_ssh(cls, hosts: SshHosts, *, cluster_name: str, prefix: str,
                   balancer: str = "none") -> LocalCluster:
        """A galerakv.toml with ``transport = "ssh"`` for one node per test host (root, key login,
        the hosts' keys checked); ``state_dir`` is the one every host keeps private. With
        ``balancer = "haproxy"``, HAProxy and its checks run on the balancer's host, with this
        run's galerakv (the hosts share this machine's /usr and the test's virtualenv)."""
        root = state_root(prefix)
        path = root / "galerakv.toml"
        names = [f"db{i}" for i in range(1, len(hosts.addresses) + 1)]
        data = {"cluster": {"name": cluster_name, "transport": "ssh", "state_dir": str(hosts.state_dir),
                            "nodes": [{"name": n, "address": a} for n, a in zip(names, hosts.addresses,
                                                                                strict=True)]},
                "ssh": {**hosts.ssh_table(), "galerakv": str(Path(sys.executable).parent / "galerakv")},
                "balancer": {"kind": "none"}}
        if balancer != "none":
            data["balancer"] = {"kind": balancer, "address": SSH_BALANCER_ADDRESS}
        # the nodes as [[cluster.nodes]] tables, as `cluster init` writes them (add-node edits those)
        cluster = dict(data.pop("cluster"))
        nodes = cluster.pop("nodes")
        path.write_text(tomli_w.dumps({"cluster": cluster})
                        + "".join("\n[[cluster.nodes]]\n" + tomli_w.dumps(n) for n in nodes)
                        + "\n" + tomli_w.dumps(data))
        return cls(path, hosts.state_dir, names, hosts, dict(zip(names, hosts.addresses, strict=True)))

    def node_dir(self, node: str) -> Path:
        """Where ``node``'s folder (state_dir/<node>) is, as this machine sees it."""
        if self.hosts is None:
            return self.state_dir / node
        return self.hosts.hosts[self.addresses[node]].private(self.state_dir) / node

    def my_cnf(self, node: str) -> Path:
        """The node's my.cnf as its mariadbd was given it (``--defaults-file``): the path on its host."""
        return self.state_dir / node / "my.cnf"

    def cli(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "galerakv.cli.main", "cluster", *args, "--config",
                str(self.config)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL)

    def ok(self, *args: str) -> str:
        """Run a verb that must succeed; its standard output."""
        began = time.monotonic()
        result = self.cli(*args)
        elapsed = time.monotonic() - began
        print(f"$ galerakv cluster {' '.join(args)}  ({elapsed:.1f} s)\n{result.stdout}{result.stderr}")
        assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr
        return result.stdout

    def status(self) -> tuple[int, dict[str, Any]]:
        result = self.cli("status", "--json")
        return result.returncode, json.loads(result.stdout)

    def sql(self, node: str, statement: str) -> str:
        return self.ok("sql", "--node", node, "-e", statement)

    def pid(self, node: str) -> int:
        """The PID galerakv recorded for ``node``'s mariadbd (checked: it runs that node's my.cnf)."""
        node_dir = self.node_dir(node)
        pid = int((node_dir / "galerakv.pid").read_text())
        assert runs_mariadbd(pid, self.my_cnf(node)), f"{node}: PID {pid} does not run its mariadbd"
        return pid

    def kill9(self, node: str) -> None:
        """kill -9 ``node``'s mariadbd (by the PID galerakv recorded) and wait until it is gone."""
        pid = self.pid(node)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while runs_mariadbd(pid, self.my_cnf(node)):
            assert time.monotonic() < deadline, f"{node} (PID {pid}) still runs 30 s after SIGKILL"
            time.sleep(0.05)

    def grastate(self, node: str) -> str:
        return (self.node_dir(node) / "data" / "grastate.dat").read_text()

    def data(self) -> dict[str, Any]:
        """The parsed galerakv.toml, with ``cluster.state_dir`` made absolute (for a server's config)."""
        data = tomllib.loads(self.config.read_text())
        data["cluster"]["state_dir"] = str(self.state_dir)
        return data

    def kill_leftovers(self) -> None:
        # health checks and HAProxy, by the PIDs galerakv recorded (a no-op without a balancer)
        with contextlib.suppress(Exception):
            cluster_balancer.stop(config.load(self.config), lambda _line: None)
        for name in self.names:
            node_dir = self.node_dir(name)
            try:
                pid = int((node_dir / "galerakv.pid").read_text())
            except (FileNotFoundError, ValueError):
                continue
            if runs_mariadbd(pid, self.my_cnf(name)):
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 30
                while runs_mariadbd(pid, self.my_cnf(name)) and time.monotonic() < deadline:
                    time.sleep(0.1)

    def destroy(self) -> None:
        """``down``, kill what still runs, remove the state root (unless GALERAKV_KEEP_TEST_STATE)."""
        try:
            self.cli("down", timeout=300)
        finally:
            self.kill_leftovers()
            if not os.environ.get("GALERAKV_KEEP_TEST_STATE"):
                shutil.rmtree(self.config.parent, ignore_errors=True)
                if self.hosts is not None:  # the hosts outlive this cluster: empty their state_dirs
                    self.hosts.empty_state()


@contextlib.contextmanager
def make_local_cluster(count: int, first_address: str, name: str,
                       balancer: str = "none") -> Iterator[LocalCluster]:
    """A cluster outside the ``make_cluster`` fixture (for session-scoped use); stopped on exit.

    ``balancer`` is the ``[balancer] kind``; with "haproxy" ``up`` also starts the
    health checks and HAProxy on the address just below the first node's.

    Not skipped when MariaDB is missing: the test command installs it, so a
    missing package is a failure to see, not a reason to pass quietly.
    """
    if os.geteuid() != 0:
        pytest.fail("real Galera nodes need root (mariadbd drops to the mysql user); run the tests as root")
    cluster = LocalCluster.create(count, first_address, cluster_name=name, prefix=f"{name}-", balancer=balancer)
    try:
        yield cluster
    finally:
        cluster.destroy()


@contextlib.contextmanager
def make_ssh_cluster(hosts: SshHosts, name: str, balancer: str = "none") -> Iterator[LocalCluster]:
    """:func:`make_local_cluster` on the ssh test hosts: one node per host (``balancer = "haproxy"``:
    HAProxy and its checks on the balancer's host); stopped on exit, the hosts' state emptied."""
    cluster = LocalCluster.create_ssh(hosts, cluster_name=name, prefix=f"{name}-ssh-", balancer=balancer)
    try:
        yield cluster
    finally:
        cluster.destroy()
