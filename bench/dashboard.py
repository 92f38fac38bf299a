"""What an open dashboard costs the server: wrk GETs on galerakv (Galera by default) with and
without a cluster page open.

"Open" is what the page does in a browser: every second one `GET /ui/api/cluster` (the server
then reads every node, HAProxy and the doctor, at most once per `ui.cluster_refresh`) and, as
on the traffic page, one `GET /ui/api/traffic`. Rounds alternate the two conditions (the order
flips every round, so drift on this shared machine hits both); medians are quoted with the
ratio open/closed, the poller's own latencies and the load average. Every server and the
cluster are started here on loopback (bench/run.py, bench/galera.py) and stopped by PID; every
loop is bounded in count and time.

    python bench/dashboard.py --runs 5 --duration 8 --output bench/results/dashboard.md
    python bench/dashboard.py --backend sqlite --runs 5 --duration 8
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run
from galera import GaleraCluster
from wrkbench import Owned, WrkResult, run_wrk

POLL_PATHS = ("/ui/api/cluster", "/ui/api/traffic")


class Page(threading.Thread):
    """An open dashboard page: its two requests once a second until stopped (at most ``limit`` s)."""

    def __init__(self, port: int, limit: float) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.limit = limit
        self.done = threading.Event()
        self.latencies: dict[str, list[float]] = {p: [] for p in POLL_PATHS}
        self.failures = 0

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        end = time.monotonic() + self.limit
        while not self.done.is_set() and time.monotonic() < end:
            began = time.monotonic()
            for path in POLL_PATHS:
                t = time.perf_counter()
                try:
                    conn.request("GET", path)
                    response = conn.getresponse()
                    response.read()
                    if response.status != 200:
                        self.failures += 1
                except (OSError, http.client.HTTPException):
                    self.failures += 1
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                self.latencies[path].append((time.perf_counter() - t) * 1000)
            self.done.wait(max(0.0, 1.0 - (time.monotonic() - began)))
        conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--backend", choices=["galera", "sqlite"], default="galera")
    ap.add_argument("--galera-first-address", default="127.0.0.41")
    ap.add_argument("--output", type=Path, default=None)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="galerakv-dashboard-bench-"))
    owned: list[Owned] = []
    cluster: GaleraCluster | None = None
    results: dict[str, list[WrkResult]] = {"closed": [], "open": []}
    pages: list[Page] = []
    try:
        with run.deadline(900 + args.runs * 2 * (args.duration + 15)):
            if args.backend == "galera":
                cluster = GaleraCluster.fresh(3, args.galera_first_address)
                cluster.start()
            if cluster is None:
                server, port = run.start_galerakv(work, 1, None)
                owned.append(server)
            else:  # the page reads the cluster as `cluster status --config <the cluster's file>` does
                port = run.free_port()
                config = cluster.serve_config(port, 1)
                config.write_text(config.read_text() + f'\n[ui]\ncluster_config = "{cluster.config}"\n')
                server = Owned("galerakv", run.galerakv_argv(config), work / "galerakv.log", cwd=str(work),
                               env={k: v for k, v in os.environ.items() if k != "GALERAKV_CONFIG"})
                owned.append(server)
                run.wait_http(port, "/readyz", 60.0, server.proc)
            run.preload_galerakv(port, args.keys, 100)
            get_lua, _ = run.galerakv_scripts(args.keys, 100)
            url = f"http://127.0.0.1:{port}"
            for i in range(args.runs):
                for condition in (("closed", "open") if i % 2 == 0 else ("open", "closed")):
                    page = None
                    if condition == "open":
                        page = Page(port, args.duration + 10)
                        page.start()
                        time.sleep(1.0)  # the first reading is in, as with a page already open
                    result = run_wrk(url, get_lua, connections=args.connections, duration=args.duration,
                                     workdir=work)
                    if page is not None:
                        page.done.set()
                        page.join(15)
                        pages.append(page)
                    results[condition].append(result)
                    run.log(f"round {i + 1} {condition}: {result.rps:.0f} req/s, p99 {result.p99_ms:.1f} ms")
    finally:
        for p in reversed(owned):
            p.stop()
        if cluster is not None:
            cluster.stop()
    report = render(args, results, pages)
    run.emit(report, args.output)
    return 0


def render(args: argparse.Namespace, results: dict[str, list[WrkResult]], pages: list[Page]) -> str:
    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    closed, opened = results["closed"], results["open"]
    rps_c, rps_o = med([r.rps for r in closed]), med([r.rps for r in opened])
    p99_c, p99_o = med([r.p99_ms for r in closed]), med([r.p99_ms for r in opened])
    errors = sum(r.non2xx + r.sock_errors for r in closed + opened)
    polls = {p: [x for page in pages for x in page.latencies[p]] for p in POLL_PATHS}
    failures = sum(page.failures for page in pages)
    load = os.getloadavg()
    lines = [
        f"# What an open dashboard costs ({args.backend})",
        "",
        f"{dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}; `python bench/dashboard.py --backend "
        f"{args.backend} --runs {args.runs} --duration {args.duration}`; wrk GET on {args.keys} keys, "
        f"{args.connections} connections, 1 server process; load average after the run "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (2 cores).",
        "",
        "| condition | GET req/s (median) | p99 ms (median) | runs |",
        "|---|---|---|---|",
        f"| no page open | {rps_c:,.0f} | {p99_c:.1f} | {len(closed)} |",
        f"| a cluster page open (polls once a second) | {rps_o:,.0f} | {p99_o:.1f} | {len(opened)} |",
        f"| ratio open / closed | {rps_o / rps_c:.2f}x | {p99_o / p99_c:.2f}x | |",
        "",
        "The page's own requests while wrk ran (median / max ms): "
        + "; ".join(f"`{p}` {med(v):.1f} / {max(v, default=float('nan')):.1f} ({len(v)} requests)"
                    for p, v in polls.items())
        + f"; failed: {failures}. wrk errors (non-2xx or socket): {errors}.",
        "",
        "Per run (req/s): closed " + ", ".join(f"{r.rps:,.0f}" for r in closed)
        + "; open " + ", ".join(f"{r.rps:,.0f}" for r in opened) + ".",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
