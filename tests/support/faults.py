"""The fault cluster: a real 3-node cluster with real servers in front, hurt by PID, checked node by node.

Faults are injected by PID, and only to PIDs galerakv recorded for a node
(``state_dir/<node>/galerakv.pid``) that still run that node's mariadbd.
Every wait here is bounded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncmy
import httpx

from galerakv import secrets
from galerakv import tls as galerakv_tls
from galerakv.cluster.transport.local import runs_mariadbd
from galerakv.paths import StatePaths
from tests.support.configs import merge, write_config
from tests.support.local_cluster import LocalCluster
from tests.support.net import free_port
from tests.support.server import ServerProcess, wait_ready

SYNC_TIMEOUT = 90.0


@dataclass
class FaultCluster:
    """The fault cluster plus what the tests need to hurt it and to check it."""

    cluster: LocalCluster
    data: dict[str, Any]
    workdir: Path
    servers: list[ServerProcess] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return self.cluster.names

    def address(self, node: str) -> str:
        return str(next(n["address"] for n in self.data["cluster"]["nodes"] if n["name"] == node))

    # -------------------------------------------------------------- servers

    def server(self, **extra: dict[str, Any]) -> ServerProcess:
        """Start a real ``galerakv serve`` on this cluster (route = "nodes") and wait until it is ready."""
        server = self.server_unready(**extra)
        wait_ready(server)
        return server

    def server_unready(self, **extra: dict[str, Any]) -> ServerProcess:
        """Start a real ``galerakv serve`` on this cluster (route = "nodes"); stopped at teardown."""
        port = free_port()
        data = merge(self.data, {"server": {"backend": "mariadb", "route": "nodes", "host": "127.0.0.1",
                                            "port": port, "log_level": "warning"}})
        data = merge(data, extra)
        path = write_config(self.workdir / f"server-{port}.toml", data)
        server = ServerProcess(path, port)
        server.start()
        self.servers.append(server)
        return server

    def stop_servers(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers.clear()

    # -------------------------------------------------------------- faults

    def pid(self, node: str) -> int:
        return self.cluster.pid(node)

    def signal(self, node: str, sig: signal.Signals) -> None:
        os.kill(self.pid(node), sig)

    def kill9(self, node: str) -> None:
        self.cluster.kill9(node)

    # -------------------------------------------------------------- health

    def wait_all_synced(self, timeout: float = SYNC_TIMEOUT) -> float:
        began = time.monotonic()
        while True:
            code, report = self.cluster.status()
            if code == 0:
                return time.monotonic() - began
            if time.monotonic() - began > timeout:
                raise AssertionError(f"cluster not healthy after {timeout:.0f} s: {report}")
            time.sleep(1)

    def running(self, node: str) -> bool:
        node_dir = self.cluster.node_dir(node)
        try:
            pid = int((node_dir / "galerakv.pid").read_text())
        except (FileNotFoundError, ValueError):
            return False
        return runs_mariadbd(pid, self.cluster.my_cnf(node))

    def restore(self) -> None:
        """Make every node Synced again before the next scenario.

        A node that was only frozen rejoins by itself (Galera reconnects it and
        sends the missed writes by IST): wait for that. Stopped nodes are
        started with ``galerakv cluster up``, which joins them to the running
        Primary component.
        """
        code, _ = self.cluster.status()
        if code == 0:
            return
        if all(self.running(n) for n in self.names):
            seconds = self.wait_all_synced()
            print(f"[restore] every node Synced again by itself after {seconds:.1f} s")
            return
        self.cluster.ok("up")
        self.wait_all_synced()

    # -------------------------------------------------------------- checks

    def tls(self) -> ssl.SSLContext | None:
        """TLS to the nodes, checked against the cluster's CA (None for a cluster with tls = false)."""
        if not self.data["cluster"].get("tls", True):
            return None
        return galerakv_tls.client_context(Path(self.data["cluster"]["state_dir"]) / "tls" / "ca.crt")

    def rows_on(self, node: str, ns: str) -> dict[str, tuple[str, bytes]]:
        """Key -> (version, value) of namespace ``ns`` as ``node`` has it (after applying all
        it was sent: ``wsrep_sync_wait``)."""
        found = secrets.load(StatePaths(self.cluster.state_dir).secrets)
        assert found is not None

        database = self.data.get("database", {}).get("name", "galerakv")

        async def fetch() -> dict[str, tuple[str, bytes]]:
            conn = await asyncmy.connect(host=self.address(node), port=3306, user=found.app.user,
                                         password=found.app.password, db=database,
                                         connect_timeout=5, ssl=self.tls())
            try:
                async with conn.cursor() as cur:
                    await asyncio.wait_for(cur.execute(
                        "SET STATEMENT wsrep_sync_wait=1 FOR SELECT k, ver, v FROM kv WHERE ns = %s",
                        (ns.encode(),)), 30)
                    return {bytes(k).decode(): (str(ver), bytes(v)) for k, ver, v in await cur.fetchall()}
            finally:
                conn.close()

        return asyncio.run(fetch())

    def versions_on(self, node: str, ns: str) -> dict[str, str]:
        """Key -> version of namespace ``ns`` as ``node`` has it."""
        return {k: ver for k, (ver, _) in self.rows_on(node, ns).items()}


# ------------------------------------------------------------------ a write load's outcomes


@dataclass(frozen=True)
class Outcome:
    key: str
    status: int          # 0: no HTTP answer
    etag: str
    latency: float
    detail: str = ""


@dataclass(frozen=True)
class Tally:
    outcomes: list[Outcome]
    seconds: float

    @property
    def acknowledged(self) -> dict[str, str]:
        return {o.key: o.etag.strip('"') for o in self.outcomes if 200 <= o.status < 300}

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not 200 <= o.status < 300]

    @property
    def max_latency(self) -> float:
        return max((o.latency for o in self.outcomes), default=0.0)


def check(fc: FaultCluster, scenario: str, ns: str, tally: Tally, nodes: list[str]) -> None:
    """Print the counts; every acknowledged write is on each of ``nodes`` with its ETag; none failed."""
    acked = tally.acknowledged
    found: dict[str, int] = {}
    missing: dict[str, list[str]] = {}
    for node in nodes:
        have = fc.versions_on(node, ns)
        lost = [k for k, v in acked.items() if have.get(k) != v]
        found[node] = len(acked) - len(lost)
        missing[node] = lost[:5]
    failures = tally.failed
    print(f"\n[{scenario}] acknowledged={len(acked)} "
          + " ".join(f"found@{n}={c}" for n, c in found.items())
          + f" failed={len(failures)} requests={len(tally.outcomes)} max_latency={tally.max_latency:.2f}s "
          f"loop={tally.seconds:.1f}s")
    for o in failures[:5]:
        print(f"  failed: {o.key} status={o.status} after {o.latency:.2f}s: {o.detail}")
    assert acked, "no write was acknowledged at all"
    assert all(not lost for lost in missing.values()), f"acknowledged writes lost or changed: {missing}"
    assert not failures, f"{len(failures)} requests failed, first: {failures[0]}"


class WriteLoop:
    """Clients PUT unique keys through the server until stopped (bounded by ``limit`` s)."""

    def __init__(self, url: str, ns: str, limit: float = 120.0, timeout: float = 30.0,
                 clients: int = 3, pause: float = 0.01) -> None:
        # pause: between one client's writes, a steady load that leaves the 2 cores some air
        self.url, self.ns, self.limit, self.timeout = url, ns, limit, timeout
        self.clients, self.pause = clients, pause
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.began = 0.0

    async def _client(self, n: int, stop_at: float) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=self.timeout) as c:
            i = 0
            while not self._stop.is_set() and time.monotonic() < stop_at:
                key = f"c{n}-{i:05d}"
                i += 1
                began = time.monotonic()
                try:
                    r = await c.put(f"/v1/ns/{self.ns}/kv/{key}", content=f"{key} value".encode())
                    self.outcomes.append(Outcome(key, r.status_code, r.headers.get("etag", ""),
                                                 time.monotonic() - began,
                                                 "" if r.is_success else r.text[:300]))
                except httpx.HTTPError as exc:
                    self.outcomes.append(Outcome(key, 0, "", time.monotonic() - began, repr(exc)))
                await asyncio.sleep(self.pause)

    async def _main(self) -> None:
        stop_at = time.monotonic() + self.limit
        await asyncio.gather(*(self._client(n, stop_at) for n in range(self.clients)))

    def __enter__(self) -> WriteLoop:
        self.began = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 10)
        assert not self._thread.is_alive(), "the write loop did not stop"

    def acked_so_far(self) -> int:
        return sum(1 for o in list(self.outcomes) if 200 <= o.status < 300)

    def wait_for_acks(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.acked_so_far() < count:
            assert time.monotonic() < deadline, f"fewer than {count} writes acknowledged in {timeout} s"
            time.sleep(0.1)

    def tally(self) -> Tally:
        return Tally(list(self.outcomes), time.monotonic() - self.began)
