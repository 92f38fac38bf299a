"""Profile a galerakv server under wrk load with py-spy, and summarize where the time goes.

    python bench/profile.py [--workers 1] [--duration 15] [--op GET PUT] [--out DIR]

Starts galerakv (SQLite, temp dir, loopback) like bench/run.py, preloads the keys, then
for each op runs wrk while `py-spy record --format raw` samples the server process(es);
writes the collapsed stacks to DIR/<op>.txt and prints the top functions (self and
inclusive) and a breakdown by component. Needs `pip install py-spy`.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import deadline, galerakv_scripts, log, preload_galerakv, start_galerakv
from wrkbench import WrkResult, run_wrk

COMPONENTS: tuple[tuple[str, str], ...] = (
    ("galerakv/backend/", "galerakv backend (SQLite store)"),
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
    args = ap.parse_args()
    pyspy = shutil.which("py-spy")
    if pyspy is None:
        ap.error("py-spy not found: pip install py-spy")
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="galerakv-prof-"))
    server = None
    try:
        with deadline(120 + len(args.op) * (args.duration + 60)):
            server, port = start_galerakv(work, args.workers, None)
            log(f"galerakv pid {server.pid} on 127.0.0.1:{port}, {args.workers} worker(s)")
            preload_galerakv(port, args.keys, args.value_size)
            get_lua, put_lua = galerakv_scripts(args.keys, args.value_size)
            base = f"http://127.0.0.1:{port}/"
            run_wrk(base, get_lua, duration=2, connections=args.connections, workdir=work)
            for op in args.op:
                raw = args.out / f"{op.lower()}-w{args.workers}{'-idle' if args.idle else ''}.txt"
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
                    "--nonblocking",
                ]
                if args.workers > 1:
                    argv.append("--subprocesses")
                if args.native:
                    argv.append("--native")
                if args.idle:
                    argv.append("--idle")
                result: list[WrkResult] = []
                lua = get_lua if op == "GET" else put_lua
                t = threading.Thread(target=_collect, args=(result, base, lua, args.duration, args.connections, work))
                t.start()
                spy = subprocess.run(argv, capture_output=True, text=True, timeout=args.duration + 60, check=False)
                t.join(args.duration + 40)
                if spy.returncode != 0:
                    log(f"py-spy failed: {spy.stderr.strip()}")
                    return 1
                res = result[0] if result else None
                print(
                    f"## {op}, {args.workers} worker(s), under wrk -t2 -c{args.connections} "
                    f"-d{args.duration}s while sampled: {res}\n"
                )
                print(summarize(raw, args.top))
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
