"""Latency of the MariaDB statements galerakv's Galera backend sends, without HTTP or the server.

    python bench/galera_rtt.py --config /var/tmp/galerakv-bench/<dir>/galerakv.toml [--n 300]

Connects with asyncmy as the application user (password from state_dir/secrets.toml) to a
running cluster and times, one at a time on one connection (so it is latency, not load):

- the GET query: plain SELECT by primary key, and the same under
  `SET STATEMENT wsrep_sync_wait=1 FOR` (the default causal read);
- the PUT transaction as the backend runs it (BEGIN; SELECT ... FOR UPDATE;
  INSERT ... ON DUPLICATE KEY UPDATE; COMMIT) on the first node, with each statement timed,
  and the same change as one autocommit INSERT ... ON DUPLICATE KEY UPDATE;
- then with C concurrent connections (--concurrency, default 16 = the backend's pool size)
  the write throughput of both forms.

Writes go to keys `rtt-NNNN` of namespace `bench-rtt`, deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import tomllib
from pathlib import Path
from typing import Any

import asyncmy

NS = b"bench-rtt"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000


def line(name: str, xs: list[float]) -> str:
    return f"| {name} | {statistics.median(xs) * 1000:.2f} | {pct(xs, 0.9):.2f} | {pct(xs, 0.99):.2f} |"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    cfg = tomllib.loads(args.config.read_text())
    state = Path(cfg["cluster"].get("state_dir", ".galerakv"))
    state = state if state.is_absolute() else args.config.parent / state
    sec = tomllib.loads((state / "secrets.toml").read_text())["app"]
    nodes = [(n["name"], n["address"], n.get("port", 3306)) for n in cfg["cluster"]["nodes"]]
    db = cfg.get("database", {}).get("name", "galerakv")

    async def connect(addr: str, port: int) -> Any:
        return await asyncmy.connect(
            host=addr, port=port, user=sec["user"], password=sec["password"], db=db, autocommit=True
        )

    name, addr, port = nodes[0]
    conn = await connect(addr, port)
    cur = conn.cursor()
    val = b"v" * 100
    for i in range(100):
        await cur.execute(
            "INSERT INTO kv (ns, k, v, ct, ver, exp) VALUES (%s, %s, %s, %s, %s, NULL)"
            " ON DUPLICATE KEY UPDATE v = VALUES(v)",
            (NS, f"rtt-{i:04d}".encode(), val, b"application/octet-stream", i),
        )
    read = "SELECT k, v, ct, ver, exp FROM kv WHERE ns = %s AND k = %s AND (exp IS NULL OR exp > %s)"
    timings: dict[str, list[float]] = {}

    async def timed(label: str, sql: str, params: Any = None) -> None:
        t = time.perf_counter()
        await cur.execute(sql, params)
        await cur.fetchall()
        timings.setdefault(label, []).append(time.perf_counter() - t)

    other = await connect(*nodes[1][1:]) if len(nodes) > 1 else conn
    ocur = other.cursor()
    for i in range(args.n):
        key = (NS, f"rtt-{i % 100:04d}".encode(), time.time())
        await timed(f"SELECT by key on {name}", read, key)
        await timed(
            f"SET STATEMENT wsrep_sync_wait=1 FOR SELECT on {name}", "SET STATEMENT wsrep_sync_wait=1 FOR " + read, key
        )
        t = time.perf_counter()
        await ocur.execute("SET STATEMENT wsrep_sync_wait=1 FOR " + read, key)
        await ocur.fetchall()
        timings.setdefault(f"SET STATEMENT wsrep_sync_wait=1 FOR SELECT on {nodes[1][0]}", []).append(
            time.perf_counter() - t
        )
    for i in range(args.n):
        k = f"rtt-{i % 100:04d}".encode()
        t0 = time.perf_counter()
        await timed("  BEGIN", "BEGIN")
        await timed("  SELECT ... FOR UPDATE", read + " FOR UPDATE", (NS, k, time.time()))
        await timed(
            "  INSERT ... ON DUPLICATE KEY UPDATE",
            "INSERT INTO kv (ns, k, v, ct, ver, exp) VALUES (%s, %s, %s, %s, %s, NULL)"
            " ON DUPLICATE KEY UPDATE v = VALUES(v), ct = VALUES(ct), ver = VALUES(ver), exp = VALUES(exp)",
            (NS, k, val, b"application/octet-stream", 1000 + i),
        )
        await timed("  COMMIT (replication, certification, fsync)", "COMMIT")
        timings.setdefault(f"PUT transaction as the backend runs it, on {name}", []).append(time.perf_counter() - t0)
        await timed(
            f"one autocommit INSERT ... ON DUPLICATE KEY UPDATE on {name}",
            "INSERT INTO kv (ns, k, v, ct, ver, exp) VALUES (%s, %s, %s, %s, %s, NULL)"
            " ON DUPLICATE KEY UPDATE v = VALUES(v), ct = VALUES(ct), ver = VALUES(ver), exp = VALUES(exp)",
            (NS, k, val, b"application/octet-stream", 2000 + i),
        )
    await cur.execute("SHOW GLOBAL VARIABLES LIKE 'innodb_flush_log_at_trx_commit'")
    flush = (await cur.fetchone())[1]
    print(f"One connection, {args.n} sequential tries each, innodb_flush_log_at_trx_commit={flush}:\n")
    print("| statement | p50 ms | p90 ms | p99 ms |\n|---|---:|---:|---:|")
    for label, xs in timings.items():
        print(line(label, xs))

    async def load(single: bool) -> float:
        conns = [await connect(addr, port) for _ in range(args.concurrency)]
        done = 0
        stop = time.monotonic() + args.seconds

        async def worker(j: int, c: Any) -> None:
            nonlocal done
            cc = c.cursor()
            i = 0
            while time.monotonic() < stop:
                k = f"rtt-{(j * 7 + i) % 100:04d}".encode()
                i += 1
                ins = (
                    "INSERT INTO kv (ns, k, v, ct, ver, exp) VALUES (%s, %s, %s, %s, %s, NULL)"
                    " ON DUPLICATE KEY UPDATE v = VALUES(v), ver = VALUES(ver)"
                )
                if single:
                    await cc.execute(ins, (NS, k, val, b"x", i))
                else:
                    await cc.execute("BEGIN")
                    await cc.execute(read + " FOR UPDATE", (NS, k, time.time()))
                    await cc.fetchall()
                    await cc.execute(ins, (NS, k, val, b"x", i))
                    await cc.execute("COMMIT")
                done += 1

        t = time.monotonic()
        await asyncio.gather(*(worker(j, c) for j, c in enumerate(conns)), return_exceptions=False)
        for c in conns:
            c.close()
        return done / (time.monotonic() - t)

    print(f"\n{args.concurrency} connections to {name}, {args.seconds:.0f} s each (keys overlap, as in the bench):\n")
    print(f"- 4-statement transaction: {await load(False):,.0f} writes/s")
    print(f"- one autocommit upsert:  {await load(True):,.0f} writes/s")
    await cur.execute("DELETE FROM kv WHERE ns = %s", (NS,))
    conn.close()
    other.close()


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(), 300))
