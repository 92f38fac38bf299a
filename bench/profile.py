"""Profile a galerakv server under wrk load with py-spy, and summarize where the time goes.

    python bench/profile.py [--workers 1] [--duration 15] [--op GET PUT] [--out DIR]
    python bench/profile.py --backend galera [--galera-config galerakv.toml] [--native]

Starts galerakv (SQLite, temp dir, loopback) like bench/run.py, preloads the keys, then
for each op runs wrk while `py-spy record --format raw` samples the server process(es);
writes the collapsed stacks to DIR/<op>.txt and prints the top functions (self and
inclusive) and a breakdown by component. Needs `pip install py-spy`.

With --backend galera the server runs on a real local Galera cluster (as in
`bench/run.py --backend galera`), and each op also reports the CPU seconds used by the
server, each mariadbd and wrk during the run, and the change of some MariaDB status
counters per node (statements, commits, fsyncs, wsrep flow control) per request.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contextlib

from galera import GaleraCluster, galerakv_exe
from run import deadline, galerakv_scripts, log, preload_galerakv, start_galerakv
from wrkbench import WrkResult, run_wrk

STATUS_VARS = (
    "Questions", "Com_select", "Com_insert", "Com_begin", "Com_commit", "Innodb_data_fsyncs",
    "wsrep_replicated", "wsrep_received", "wsrep_local_commits", "wsrep_local_cert_failures",
    "wsrep_local_bf_aborts", "wsrep_flow_control_sent", "wsrep_flow_control_recv",
)  # fmt: skip

COMPONENTS: tuple[tuple[str, str], ...] = (
    ("galerakv/backend/", "galerakv backend (store)"),
    ("asyncmy/", "asyncmy driver (Python/Cython frames)"),
    ("asyncmy", "asyncmy driver (Python/Cython frames)"),
    ("galerakv/server/metrics", "galerakv metrics"),
    ("galerakv/server/", "galerakv server (routing, validation, responses)"),
    ("galerakv/", "galerakv other"),
    ("uvicorn/", "uvicorn (httptools protocol, ASGI glue)"),
    ("asyncio/", "asyncio / event loop (Python side)"),
    ("sqlite3", "sqlite3"),
)


def component(frame: str) -> str:
    for needle, name in COMPONENTS:
        if needle in frame:
            return name
    return "other"


def summarize(raw: Path, top: int) -> str:
    """Aggregate py-spy raw (collapsed) output: 'f1;f2;...;leaf count' per line."""
    self_c: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    comp_self: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = stack.split(";")
        total += count
        threads[frames[0]] += count
        leaf = frames[-1]
        self_c[leaf] += count
        # Attribute the sample to the innermost frame that belongs to a known component.
        comp = "other"
        for f in reversed(frames):
            c = component(f)
            if c != "other":
                comp = c
                break
        comp_self[comp] += count
        for f in set(frames[1:]):
            incl[f] += count
    if total == 0:
        return "no samples\n"

    def pct(n: int) -> str:
        return f"{100 * n / total:5.1f} %"

    out = [f"samples: {total}", "", "by thread (root frame):"]
    out += [f"  {pct(n)}  {t}" for t, n in threads.most_common(6)]
    out += ["", "by component (innermost known frame):"]
    out += [f"  {pct(n)}  {c}" for c, n in comp_self.most_common()]
    out += ["", f"top {top} self (leaf) frames:"]
    out += [f"  {pct(n)}  {f}" for f, n in self_c.most_common(top)]
    out += ["", f"top {top} inclusive frames:"]
    out += [f"  {pct(n)}  {f}" for f, n in incl.most_common(top)]
    return "\n".join(out) + "\n"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its reaped children) from /proc, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def with_descendants(pid: int) -> list[int]:
    """pid and every process below it (granian runs its workers as child processes)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def mariadbd_pids(cluster: GaleraCluster) -> dict[str, int]:
    out = {}
    for name in cluster.nodes:
        with contextlib.suppress(OSError, ValueError):
            out[name] = int((cluster.state_dir / name / "galerakv.pid").read_text())
    return out


def node_status(cluster: GaleraCluster) -> dict[str, dict[str, float]]:
    """Some global status counters of every node, via `galerakv cluster sql`."""
    names = ",".join(f"'{v}'" for v in STATUS_VARS)
    out: dict[str, dict[str, float]] = {}
    for node in cluster.nodes:
        res = subprocess.run(
            [*galerakv_exe(), "cluster", "sql", "--config", str(cluster.config), "--node", node, "-e",
             f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        vals: dict[str, float] = {}
        for line in res.stdout.splitlines()[1:]:
            k, _, v = line.partition("\t")
            with contextlib.suppress(ValueError):
                vals[k] = float(v)
        out[node] = vals
    return out


def status_delta(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], requests: int) -> str:
    lines = ["MariaDB status counters per request (after - before) / wrk requests:", ""]
    lines.append("| counter | " + " | ".join(after) + " |")
    lines.append("|---|" + "---:|" * len(after))
    for var in STATUS_VARS:
        cells = []
        for node in after:
            d = after[node].get(var, 0.0) - before.get(node, {}).get(var, 0.0)
            cells.append(f"{d / requests:.2f}" if requests else "?")
        lines.append(f"| {var} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _collect(into: list[WrkResult], url: str, lua: str, duration: int, connections: int, work: Path) -> None:
    into.append(run_wrk(url, lua, duration=duration, connections=connections, workdir=work))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--op", nargs="+", choices=["GET", "PUT"], default=["GET", "PUT"])
    ap.add_argument("--native", action="store_true", help="py-spy --native (C frames too)")
    ap.add_argument("--idle", action="store_true", help="py-spy --idle (include waiting threads)")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--out", type=Path, default=Path("bench/results/profile"))
    ap.add_argument("--backend", choices=["sqlite", "galera"], default="sqlite")
    ap.add_argument("--galera-config", type=Path, default=None, help="a running cluster (else a fresh one)")
    ap.add_argument("--galera-first-address", default="127.0.0.41")
    ap.add_argument("--consistency", choices=["strong", "local"], default=None, help="GET ?consistency=...")
    ap.add_argument("--engine", choices=["granian", "uvicorn"], default=None, help="server.engine (galera only)")
    args = ap.parse_args()
    pyspy = shutil.which("py-spy")
    if pyspy is None:
        ap.error("py-spy not found: pip install py-spy")
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="galerakv-prof-"))
    server = None
    cluster: GaleraCluster | None = None
    tag = ("-galera" if args.backend == "galera" else "") + (f"-{args.consistency}" if args.consistency else "")
    try:
        with deadline(120 + len(args.op) * (args.duration + 90) + (660 if args.backend == "galera" else 0)):
            if args.backend == "galera":
                if args.galera_config is not None:
                    cluster = GaleraCluster.existing(args.galera_config)
                else:
                    cluster = GaleraCluster.fresh(3, args.galera_first_address)
                cluster.start()
            server, port = start_galerakv(work, args.workers, None, galera=cluster, engine=args.engine)
            log(f"galerakv pid {server.pid} on 127.0.0.1:{port}, {args.workers} worker(s)")
            preload_galerakv(port, args.keys, args.value_size)
            get_lua, put_lua = galerakv_scripts(
                args.keys, args.value_size, f"?consistency={args.consistency}" if args.consistency else ""
            )
            base = f"http://127.0.0.1:{port}/"
            run_wrk(base, get_lua, duration=2, connections=args.connections, workdir=work)
            for op in args.op:
                flags = ("-native" if args.native else "") + ("-idle" if args.idle else "")
                raw = args.out / f"{op.lower()}{tag}-w{args.workers}{flags}.txt"
                argv = [
                    pyspy,
                    "record",
                    "--pid",
                    str(server.pid),
                    "--format",
                    "raw",
                    "--output",
                    str(raw),
                    "--duration",
                    str(args.duration),
                    "--rate",
                    str(args.rate),
                    "--threads",
                ]
                if not args.native:  # py-spy cannot unwind native stacks without pausing the process
                    argv.append("--nonblocking")
                argv.append("--subprocesses")  # granian serves from a child process even with 1 worker
                if args.native:
                    argv.append("--native")
                if args.idle:
                    argv.append("--idle")
                result: list[WrkResult] = []
                lua = get_lua if op == "GET" else put_lua
                pids = {f"galerakv serve (pid {p})": p for p in with_descendants(server.pid)}
                if cluster is not None:
                    pids |= {f"mariadbd {n}": pid for n, pid in mariadbd_pids(cluster).items()}
                    status_before = node_status(cluster)
                cpu_before = {n: cpu_seconds(pid) for n, pid in pids.items()}
                t = threading.Thread(target=_collect, args=(result, base, lua, args.duration, args.connections, work))
                wall = time.monotonic()
                t.start()
                spy = subprocess.run(argv, capture_output=True, text=True, timeout=args.duration + 60, check=False)
                t.join(args.duration + 40)
                wall = time.monotonic() - wall
                cpu = {n: cpu_seconds(pid) - cpu_before[n] for n, pid in pids.items()}
                if spy.returncode != 0:
                    log(f"py-spy failed: {spy.stderr.strip()}")
                    return 1
                res = result[0] if result else None
                print(
                    f"## {op}, {args.workers} worker(s), under wrk -t2 -c{args.connections} "
                    f"-d{args.duration}s while sampled: {res}\n"
                )
                print(
                    f"CPU used during the run (wall {wall:.1f} s; 2 CPUs = {2 * wall:.0f} CPU-s available; wrk and "
                    "py-spy use the rest):"
                )
                for n, c in cpu.items():
                    print(f"  {c:6.1f} CPU-s  {100 * c / wall:5.1f} % of one core  {n}")
                print()
                if cluster is not None and res is not None:
                    print(status_delta(status_before, node_status(cluster), res.requests))
                print(summarize(raw, args.top))
    finally:
        if server is not None:
            server.stop()
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
