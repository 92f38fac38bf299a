"""How long does BEGIN IMMEDIATE wait when N processes group-commit to one SQLite WAL file?

Mimics galerakv's writer (one writer thread per worker process, busy_timeout, WAL,
synchronous=NORMAL, a group of upserts per transaction) without the HTTP layer.

    python bench/stack/sqlite_lock.py --procs 1 2 --seconds 5
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path


def begin_retry(conn: sqlite3.Connection, pause: float) -> None:
    """BEGIN IMMEDIATE with our own short fixed pause instead of SQLite's busy-handler backoff."""
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            time.sleep(pause)


def writer(path: str, seconds: float, group: int, retry: float, out: mp.Queue[list[float]]) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=0 if retry else 30)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(f"PRAGMA busy_timeout = {0 if retry else 30000}")
    waits: list[float] = []
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        t0 = time.perf_counter()
        if retry:
            begin_retry(conn, retry)
        else:
            conn.execute("BEGIN IMMEDIATE")
        waits.append(time.perf_counter() - t0)
        for _ in range(group):
            i += 1
            conn.execute(
                "INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                (f"key-{i % 1000:04d}", b"x" * 100),
            )
        conn.execute("COMMIT")
    conn.close()
    out.put(waits)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--group", type=int, default=8, help="upserts per transaction")
    ap.add_argument(
        "--retry-pause-ms",
        type=float,
        default=0.0,
        help="instead of busy_timeout, retry BEGIN IMMEDIATE after this fixed pause (0: busy_timeout)",
    )
    args = ap.parse_args()
    retry = args.retry_pause_ms / 1000
    print("| writer processes | transactions/s | BEGIN wait p50 ms | p99 ms | p99.9 ms | max ms | waits > 10 ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.procs:
        with tempfile.TemporaryDirectory(prefix="galerakv-lock-") as d:
            path = str(Path(d) / "kv.sqlite3")
            setup = sqlite3.connect(path)
            setup.execute("PRAGMA journal_mode = WAL")
            setup.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB)")
            setup.commit()
            setup.close()
            q: mp.Queue[list[float]] = mp.Queue()
            procs = [mp.Process(target=writer, args=(path, args.seconds, args.group, retry, q)) for _ in range(n)]
            for p in procs:
                p.start()
            waits: list[float] = []
            for _ in procs:
                waits += q.get(timeout=args.seconds + 60)
            for p in procs:
                p.join(30)
            waits.sort()
            ms = [w * 1000 for w in waits]
            p99 = ms[int(len(ms) * 0.99)]
            p999 = ms[int(len(ms) * 0.999)]
            slow = sum(1 for m in ms if m > 10)
            print(
                f"| {n} | {len(ms) / args.seconds:,.0f} | {statistics.median(ms):.3f} | {p99:.2f} | {p999:.2f} "
                f"| {ms[-1]:.1f} | {slow} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
