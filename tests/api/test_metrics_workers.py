"""``/metrics`` of a real server with 2 worker processes on SQLite: the sums over both workers.

Any worker may answer a scrape, so each scrape must count the requests every worker served.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from galerakv.server import metrics
from tests.support.configs import write_config
from tests.support.server import ServerProcess

HOST = "127.0.0.61"  # this module's own loopback address: no other test listens on it
PORTS = {"granian": 18461, "uvicorn": 18462}
KEY_ROUTE = "/v1/ns/{ns}/kv/{key}"
PUTS, GETS, MISSES = 100, 60, 40
N = PUTS + GETS + MISSES


@dataclass
class _Server(ServerProcess):
    host: str = HOST

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _counts(text: str) -> dict[tuple[str, str, int], int]:
    pattern = r'^galerakv_requests_total\{method="([A-Z]+)",route="([^"]+)",status="(\d+)"\} (\d+)$'
    return {(m[1], m[2], int(m[3])): int(m[4]) for m in re.finditer(pattern, text, re.M)}


def _value(text: str, series: str) -> int | None:
    m = re.search(rf"^{re.escape(series)} (\d+)$", text, re.M)
    return int(m.group(1)) if m else None


def _per_worker(directory: Path) -> dict[int, dict[tuple[str, str, int], int]]:
    """Each worker's own request counts (pid -> series -> count), from its file."""
    out: dict[int, dict[tuple[str, str, int], int]] = {}
    for _path, series, values in metrics.read_workers(directory):
        counts = out.setdefault(values[1], {})
        for kind, labels, index in series:
            if kind == "r":
                counts[(str(labels[0]), str(labels[1]), int(labels[2]))] = values[index]
    return out


def _wait_for(directory: Path, route: str, total: int) -> None:
    """Until the workers have counted ``total`` requests on ``route``: a worker counts a request
    just after sending its response, so the client can be a moment ahead."""
    deadline = time.monotonic() + 10
    while True:
        seen = sum(n for counts in _per_worker(directory).values()
                   for (_m, r, _s), n in counts.items() if r == route)
        if seen == total or time.monotonic() > deadline:
            assert seen == total, f"{seen} requests counted on {route}, expected {total}"
            return
        time.sleep(0.01)


def _wait_for_both_workers(client: httpx.Client, directory: Path) -> None:
    """Until both workers have answered: the server answers as soon as the first one listens."""
    deadline = time.monotonic() + 30
    while True:
        assert client.get("/healthz").status_code == 200
        workers = _per_worker(directory)
        if len(workers) == 2 and all(c.get(("GET", "/healthz", 200), 0) for c in workers.values()):
            return
        assert time.monotonic() < deadline, f"the second worker did not answer: {workers}"
        time.sleep(0.01)


def _metrics_dir(pid: int) -> Path:
    found = list(metrics.directory_parent().glob(f"{metrics.DIR_PREFIX}{pid}-*"))
    assert len(found) == 1, found
    return found[0]


def _children(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


@pytest.mark.parametrize("engine", ["granian", "uvicorn"])
def test_metrics_are_summed_over_workers(engine: str, tmp_path: Path) -> None:
    port = PORTS[engine]
    config = write_config(tmp_path / "galerakv.toml", {"server": {
        "host": HOST, "port": port, "backend": "sqlite", "sqlite_path": str(tmp_path / "kv.sqlite3"),
        "workers": 2, "engine": engine}})
    server = _Server(config, port)
    server.start()
    try:
        assert server.proc is not None
        directory = _metrics_dir(server.proc.pid)
        # a fresh connection for every request: the kernel spreads connections over the workers
        fresh = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=server.url, timeout=10, limits=fresh) as c:
            _wait_for_both_workers(c, directory)
            for i in range(PUTS):
                assert c.put(f"/v1/ns/m/kv/k{i}", content=b"v").status_code == 201
            for i in range(GETS):
                assert c.get(f"/v1/ns/m/kv/k{i}").status_code == 200
            for i in range(MISSES):
                assert c.get(f"/v1/ns/m/kv/missing{i}").status_code == 404
            _wait_for(directory, KEY_ROUTE, N)

            workers = _per_worker(directory)
            assert len(workers) == 2
            assert set(workers) <= _children(server.proc.pid), "one metrics file per worker process"
            served = {pid: sum(n for (_m, r, _s), n in counts.items() if r == KEY_ROUTE)
                      for pid, counts in workers.items()}
            assert all(n > 0 for n in served.values()), f"a worker served nothing: {served}"
            assert sum(served.values()) == N

            for k in range(6):
                _wait_for(directory, "/metrics", k)  # the earlier scrapes are counted too
                r = c.get("/metrics")
                assert r.status_code == 200
                assert r.headers["content-type"].startswith("text/plain")
                text = r.text
                counts = _counts(text)
                assert counts[("PUT", KEY_ROUTE, 201)] == PUTS
                assert counts[("GET", KEY_ROUTE, 200)] == GETS
                assert counts[("GET", KEY_ROUTE, 404)] == MISSES
                assert sum(n for (_m, route, _s), n in counts.items() if route == KEY_ROUTE) == N
                assert counts.get(("GET", "/metrics", 200), 0) == k
                # everything but the /healthz polls of the start (how many is the harness's business)
                assert sum(n for (_m, route, _s), n in counts.items() if route != "/healthz") == N + k
                route = 'route="/v1/ns/{ns}/kv/{key}"'
                assert _value(text, f'galerakv_errors_total{{{route},code="not_found"}}') == MISSES
                assert _value(text, f"galerakv_request_duration_seconds_count{{{route}}}") == N
                assert _value(text, f'galerakv_request_duration_seconds_bucket{{{route},le="+Inf"}}') == N
                assert _value(text, "galerakv_ttl_purged_total") == 0
                pids = {int(p) for p in re.findall(r'^galerakv_process_start_time_seconds\{pid="(\d+)"\}', text, re.M)}
                assert pids == set(workers), "one start-time gauge per live worker"
    finally:
        server.stop()
    assert server.proc is not None and server.proc.poll() is not None
    assert not directory.exists(), "the per-worker metrics files outlived the server"


def test_a_new_run_starts_at_zero(tmp_path: Path) -> None:
    port = PORTS["granian"]
    config = write_config(tmp_path / "galerakv.toml", {"server": {
        "host": HOST, "port": port, "backend": "sqlite", "sqlite_path": str(tmp_path / "kv.sqlite3"),
        "workers": 2}})
    for _run in range(2):
        server = _Server(config, port)
        server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=10) as c:
                counts = _counts(c.get("/metrics").text)
                assert not [s for s in counts if s[1] != "/healthz"], counts  # only the start-up polls
                for i in range(5):
                    assert c.put(f"/v1/ns/m/kv/k{i}", content=b"v").status_code in (200, 201)
        finally:
            server.stop()
