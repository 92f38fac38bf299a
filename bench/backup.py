"""Backup and restore: time and throughput for ~1 GB of values, and what a backup costs the service.

Galera (a fresh 3-node cluster on 127.0.0.41-43, `galerakv serve` with route = "nodes"):

1. load `--mb` MiB of incompressible values (`--value-kib` each) through the HTTP API;
2. the server's request rate without a backup: wrk, 90 % GET / 10 % PUT of 1 KiB values over
   1,000 keys, `--duration` s, `--runs` times;
3. the same wrk workload while `galerakv backup` runs, in 3 s slices from the backup's start to
   its end (drain, stream, bringing the node back);
4. `galerakv restore` of that backup into a second fresh cluster (127.0.0.45-47): time, MB/s.

SQLite: the same amount of values in one file, `galerakv backup` and `galerakv restore` timed.

Throughput is mariadb-backup's raw stream (or the SQLite file) over the command's wall time.
Every process is started here on loopback and stopped by PID; every loop is bounded.

    python bench/backup.py                          # ~1 GB, Galera and SQLite
    python bench/backup.py --mb 256 --runs 3 --output bench/results/backup.md
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from galera import GaleraCluster
from run import deadline, emit, galerakv_requests, log, lua_mixed, preload_galerakv, start_galerakv
from wrkbench import Owned, run_wrk

KEYS = 1000  # the wrk workload's keys (1 KiB values)
LOAD_THREADS = 4
SLICE = 3  # seconds of each wrk run while a backup runs


def galerakv(*args: str, timeout: float = 3600) -> tuple[dict[str, object], float]:
    """Run a galerakv command with --json; its JSON answer and wall time."""
    began = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "galerakv.cli.main", *args, "--json"], capture_output=True,
                         text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - began
    if out.returncode != 0:
        raise RuntimeError(f"galerakv {' '.join(args)} failed:\n{out.stderr}")
    return json.loads(out.stdout), seconds


def load(port: int, mb: int, value_kib: int) -> float:
    """PUT mb MiB of random values of value_kib KiB through the API; MiB/s."""
    count = mb * 1024 // value_kib
    began = time.monotonic()

    def worker(first: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for i in range(first, count, LOAD_THREADS):
                conn.request("PUT", f"/v1/ns/bulk/kv/v{i:06d}", body=os.urandom(value_kib * 1024),
                             headers={"Content-Type": "application/octet-stream"})
                resp = conn.getresponse()
                resp.read()
                if resp.status not in (200, 201):
                    raise RuntimeError(f"PUT v{i}: {resp.status}")
        finally:
            conn.close()

    with concurrent.futures.ThreadPoolExecutor(LOAD_THREADS) as pool:
        for f in [pool.submit(worker, n) for n in range(LOAD_THREADS)]:
            f.result()
    return mb / (time.monotonic() - began)


def versions() -> str:
    tool = subprocess.run(["mariadb-backup", "--version"], capture_output=True, text=True, timeout=30, check=False)
    line = (tool.stdout or tool.stderr).strip().splitlines()
    return (f"Python {sys.version.split()[0]}; {line[0] if line else 'mariadb-backup ?'}; "
            f"{os.cpu_count()} CPUs")


def sqlite_part(work: Path, mb: int, value_kib: int) -> dict[str, float]:
    import asyncio

    from galerakv.backend.sqlite import SQLiteStore

    db = work / "sqlite" / "kv.sqlite3"
    db.parent.mkdir(parents=True)

    async def fill() -> None:
        store = SQLiteStore(db)
        await store.open()
        try:
            for i in range(mb * 1024 // value_kib):
                await store.put("bulk", f"v{i:06d}", os.urandom(value_kib * 1024), "application/octet-stream")
        finally:
            await store.close()

    asyncio.run(fill())
    config = work / "sqlite.toml"
    config.write_text(f'[server]\nsqlite_path = "{db}"\n[backup]\ndir = "{work / "sqlite-backups"}"\n')
    manifest, b_secs = galerakv("backup", "--config", str(config))
    target = work / "sqlite-restored.toml"
    target.write_text(f'[server]\nsqlite_path = "{work / "restored" / "kv.sqlite3"}"\n')
    _, r_secs = galerakv("restore", "--config", str(target), "--from", str(manifest["path"]))
    size = float(manifest["raw_bytes"]) / 2**20  # type: ignore[arg-type]
    return {"mib": size, "backup_s": b_secs, "restore_s": r_secs}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=1024, help="MiB of values to load (default 1024)")
    ap.add_argument("--value-kib", type=int, default=512, help="size of each value (default 512 KiB)")
    ap.add_argument("--duration", type=int, default=10, help="seconds of each wrk run")
    ap.add_argument("--runs", type=int, default=3, help="wrk runs without a backup (and backups under wrk)")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--first-address", default="127.0.0.41")
    ap.add_argument("--restore-first-address", default="127.0.0.45")
    ap.add_argument("--skip-sqlite", action="store_true")
    ap.add_argument("--output", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--timeout", type=int, default=3600, help="stop everything after this many seconds")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="galerakv-bench-backup-", dir="/var/tmp"))
    work.chmod(0o755)
    owned: list[Owned] = []
    clusters: list[GaleraCluster] = []
    try:
        with deadline(args.timeout):
            source = GaleraCluster.fresh(3, args.first_address)
            clusters.append(source)
            source.start()
            server, port = start_galerakv(work, 1, None, galera=source, route="nodes")
            owned.append(server)
            log(f"loading {args.mb} MiB in {args.value_kib} KiB values")
            load_rate = load(port, args.mb, args.value_kib)
            preload_galerakv(port, KEYS, 1024)
            lua = lua_mixed(*galerakv_requests(KEYS, 1024), 90)
            url = f"http://127.0.0.1:{port}"
            backup_dir = work / "backups"
            quiet, busy, backups = [], [], []
            for run in range(args.runs):
                quiet.append(run_wrk(url, lua, connections=args.connections, duration=args.duration,
                                     workdir=work))
                log(f"run {run + 1}: without a backup {quiet[-1].rps:.0f} req/s")
                with concurrent.futures.ThreadPoolExecutor(1) as pool:
                    job = pool.submit(galerakv, "backup", "--config", str(source.serve_configs[-1]), "--to",
                                      str(backup_dir), "--keep", "1")
                    slices = []  # wrk in slices of SLICE s until the backup is over (bounded by --timeout)
                    while not job.done():
                        slices.append(run_wrk(url, lua, connections=args.connections, duration=SLICE,
                                              workdir=work))
                    backups.append(job.result())
                requests = sum(r.requests for r in slices)
                seconds = sum(r.requests / r.rps for r in slices if r.rps)
                busy.append((requests / seconds, sum(r.non2xx + r.sock_errors for r in slices), len(slices)))
                log(f"run {run + 1}: during a backup {busy[-1][0]:.0f} req/s over {len(slices)} x {SLICE} s "
                    f"(failed {busy[-1][1]}); backup {backups[-1][1]:.1f} s")
            manifest = backups[-1][0]
            raw = float(manifest["raw_bytes"]) / 2**20  # type: ignore[arg-type]
            stored = float(manifest["bytes"]) / 2**20  # type: ignore[arg-type]
            server.stop()
            owned.remove(server)

            target = GaleraCluster.fresh(3, args.restore_first_address)
            clusters.append(target)
            restored, restore_s = galerakv("restore", "--config", str(target.config), "--from", str(backup_dir))
            target.started = True
            log(f"restore: {restore_s:.1f} s, {restored['verdict']}")
            sqlite = None if args.skip_sqlite else sqlite_part(work, args.mb, args.value_kib)

        b_secs = statistics.median(s for _, s in backups)
        q_rps = statistics.median(r.rps for r in quiet)
        b_rps = statistics.median(rps for rps, _, _ in busy)
        load_avg = Path("/proc/loadavg").read_text().split()[:3]
        lines = [
            "# Backup and restore",
            "",
            f"`python bench/backup.py --mb {args.mb} --value-kib {args.value_kib} --runs {args.runs} "
            f"--duration {args.duration}`; load average at the end {' '.join(load_avg)}.",
            "",
            versions(),
            "",
            f"Loaded {args.mb} MiB of random values ({args.value_kib} KiB each) through the API at "
            f"{load_rate:.1f} MiB/s; every change is also in the history table, so InnoDB holds them twice.",
            "",
            "| what | median | runs |",
            "|---|---|---|",
            f"| Galera backup (mariadb-backup stream of {raw:.0f} MiB, stored {stored:.0f} MiB zstd) | "
            f"{b_secs:.1f} s, {raw / b_secs:.0f} MiB/s | "
            + ", ".join(f"{s:.1f}" for _, s in backups) + " |",
            f"| Galera restore into a new 3-node cluster (unpack, prepare, bootstrap, 2 joiners by SST) | "
            f"{restore_s:.1f} s, {raw / restore_s:.0f} MiB/s | 1 |",
            f"| requests/s without a backup (wrk, 90 % GET / 10 % PUT, {args.connections} connections) | "
            f"{q_rps:.0f} | " + ", ".join(f"{r.rps:.0f}" for r in quiet) + " |",
            f"| requests/s while a backup runs (the same wrk, in {SLICE} s slices from its start to its end) | "
            f"{b_rps:.0f} ({b_rps / q_rps:.2f}x) | " + ", ".join(f"{rps:.0f}" for rps, _, _ in busy) + " |",
            f"| failed requests while a backup runs (non-2xx, socket errors) | "
            f"{sum(failed for _, failed, _ in busy)} | |",
        ]
        if sqlite is not None:
            lines += [
                f"| SQLite backup ({sqlite['mib']:.0f} MiB file) | {sqlite['backup_s']:.1f} s, "
                f"{sqlite['mib'] / sqlite['backup_s']:.0f} MiB/s | 1 |",
                f"| SQLite restore | {sqlite['restore_s']:.1f} s, {sqlite['mib'] / sqlite['restore_s']:.0f} MiB/s "
                "| 1 |",
            ]
        emit("\n".join(lines), args.output)
        return 0
    finally:
        for p in reversed(owned):
            p.stop()
        for c in clusters:
            c.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
