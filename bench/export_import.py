"""Export and import rates of `galerakv export` / `galerakv import`, in keys per second.

A SQLite store of `--keys` keys (`--value-size` random bytes each, keys key-NNNN in one
namespace) is made in a temp dir. Then, for `--runs` rounds, for each target (an empty SQLite
store; with `--galera` also a real Galera cluster, emptied of the namespace before each round):

- export: `dump.export` of the source to a file, in this process (no process start-up);
- import: `dump.load` of that file into the target (the whole file checked first, then written
  500 keys a batch, as `galerakv import --in FILE` does);
- re-export: `dump.export` of the target to a file;
- pipe: the wall time of `galerakv export --config source | galerakv import --config target`
  (two processes, their start-up included), and its keys/s.

Prints a markdown table of medians with the per-run numbers. With `--galera` the cluster is made
with `galerakv cluster init/up` under /var/tmp/galerakv-bench and taken down at the end (see
bench/galera.py), or `--galera-config` names a running one (left running, its namespace
`--ns` emptied before each round). Only processes started here are stopped; the temp dir is
removed at the end (kept with --keep).

    python bench/export_import.py                          # SQLite -> SQLite, 10,000 keys of 1 KiB
    python bench/export_import.py --keys 100000 --runs 1
    python bench/export_import.py --galera                 # also SQLite -> a fresh 3-node Galera cluster
    python bench/export_import.py --galera --galera-config <running cluster>/galerakv.toml
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run
from galera import GaleraCluster, galerakv_exe

from galerakv import config
from galerakv.backend import Store, create_store, dump
from galerakv.backend.base import Op

T = TypeVar("T")
PIPE_TIMEOUT = 600


@dataclass(frozen=True)
class Round:
    export: float  # keys/s
    load: float
    reexport: float
    pipe_seconds: float


def on_store(cfg: Path, work: Callable[[Store], Awaitable[T]]) -> T:
    async def go() -> T:
        store = create_store(config.load(cfg))
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(go())


def sqlite_config(path: Path) -> Path:
    cfg = path.with_suffix(".toml")
    cfg.write_text(f'[server]\nbackend = "sqlite"\nsqlite_path = "{path}"\n')
    return cfg


def make_source(work: Path, ns: str, keys: int, size: int) -> Path:
    cfg = sqlite_config(work / "source.sqlite3")
    rnd = random.Random(16)

    async def fill(store: Store) -> None:
        for at in range(0, keys, 500):
            ops = [Op("put", run.key_name(i), rnd.randbytes(size)) for i in range(at, min(at + 500, keys))]
            await store.batch(ns, ops)

    on_store(cfg, fill)
    return cfg


def export_rate(cfg: Path, out: Path, keys: int) -> float:
    with out.open("wb") as f:
        summary = on_store(cfg, lambda store: dump.export(store, f.write))
    if summary.keys != keys:
        raise RuntimeError(f"exported {summary.keys} keys of {cfg}, expected {keys}")
    return summary.keys_per_second


def load_rate(cfg: Path, source: Path, keys: int) -> float:
    settings = config.load(cfg)
    with source.open("rb") as f:
        summary = on_store(cfg, lambda store: dump.load(store, f, settings.limits))
    if summary.keys != keys:
        raise RuntimeError(f"imported {summary.keys} keys into {cfg}, expected {keys}")
    return summary.keys_per_second


def pipe_seconds(source: Path, target: Path) -> float:
    """Wall seconds of `galerakv export --config source | galerakv import --config target`."""
    began = time.monotonic()
    exporter = subprocess.Popen([*galerakv_exe(), "export", "--config", str(source)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert exporter.stdout is not None
    try:
        importer = subprocess.run([*galerakv_exe(), "import", "--config", str(target)], stdin=exporter.stdout,
                                  capture_output=True, text=True, timeout=PIPE_TIMEOUT, check=False)
        exporter.stdout.close()
        exporter.wait(timeout=PIPE_TIMEOUT)
    finally:
        if exporter.poll() is None:
            exporter.kill()
            exporter.wait()
    if exporter.returncode != 0 or importer.returncode != 0:
        raise RuntimeError(f"pipe failed (export {exporter.returncode}, import {importer.returncode}): "
                           f"{importer.stderr}")
    return time.monotonic() - began


def empty(target: Path, cluster: GaleraCluster | None, ns: str) -> None:
    """Make the target hold nothing of the namespace: a new SQLite file, or a DELETE on Galera."""
    if cluster is None:
        for suffix in ("", "-wal", "-shm", "-writer.lock"):
            Path(str(target.with_suffix(".sqlite3")) + suffix).unlink(missing_ok=True)
        return
    on_store(target, Store.revision)  # the schema exists once the store has been opened and read
    done = subprocess.run([*galerakv_exe(), "cluster", "sql", "--config", str(cluster.config), "--node",
                           cluster.nodes[0], "-e", f"DELETE FROM {cluster.database}.kv WHERE ns = '{ns}'"],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"emptying {ns} on the cluster failed: {done.stdout}{done.stderr}")


def measure(source: Path, target: Path, cluster: GaleraCluster | None, work: Path, ns: str, keys: int) -> Round:
    dumped = work / "source.ndjson"
    exported = export_rate(source, dumped, keys)
    empty(target, cluster, ns)
    loaded = load_rate(target, dumped, keys)
    reexported = export_rate(target, work / "target.ndjson", keys)
    empty(target, cluster, ns)
    return Round(exported, loaded, reexported, pipe_seconds(source, target))


def table(results: dict[str, list[Round]], keys: int) -> str:
    rows = ["| target | export keys/s | import keys/s | re-export keys/s | pipe s (keys/s) |",
            "|---|---:|---:|---:|---:|"]
    for name, rounds in results.items():
        pipe = statistics.median(r.pipe_seconds for r in rounds)
        rows.append(f"| {name} | {statistics.median(r.export for r in rounds):,.0f} "
                    f"| {statistics.median(r.load for r in rounds):,.0f} "
                    f"| {statistics.median(r.reexport for r in rounds):,.0f} | {pipe:.2f} ({keys / pipe:,.0f}) |")
    return "\n".join(rows)


def per_run(results: dict[str, list[Round]]) -> str:
    lines = []
    for name, rounds in results.items():
        runs = "; ".join(f"{r.export:,.0f} / {r.load:,.0f} / {r.reexport:,.0f} / {r.pipe_seconds:.2f} s"
                         for r in rounds)
        lines.append(f"- {name}: {runs}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--value-size", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3, help="rounds (medians are quoted)")
    ap.add_argument("--ns", default=run.NS, help="the namespace of the keys")
    ap.add_argument("--galera", action="store_true", help="also import into (and export from) a Galera cluster")
    ap.add_argument("--galera-config", type=Path, default=None,
                    help="with --galera: the galerakv.toml of a running cluster (not started or stopped here)")
    ap.add_argument("--galera-nodes", type=int, default=3)
    ap.add_argument("--galera-first-address", default="127.0.0.41")
    ap.add_argument("--max-seconds", type=int, default=1800, help="the whole run, at most")
    ap.add_argument("--output", type=Path, default=None, help="also write the report here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()

    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="galerakv-export-"))
    cluster: GaleraCluster | None = None
    results: dict[str, list[Round]] = {}
    try:
        with run.deadline(args.max_seconds):
            source = make_source(work, args.ns, args.keys, args.value_size)
            run.log(f"source: {args.keys} keys of {args.value_size} bytes in {source}")
            targets: dict[str, tuple[Path, GaleraCluster | None]] = {
                "SQLite -> SQLite": (sqlite_config(work / "target.sqlite3"), None)}
            if args.galera:
                cluster = run.open_cluster(args)
                cluster.start()
                targets["SQLite -> Galera"] = (cluster.serve_config(run.free_port(), 1), cluster)
            for r in range(args.runs):
                for name, (target, on) in targets.items():
                    result = measure(source, target, on, work, args.ns, args.keys)
                    results.setdefault(name, []).append(result)
                    run.log(f"round {r + 1}/{args.runs} {name}: {result}")
    except (run.Timeout, KeyboardInterrupt) as exc:
        run.log(f"aborted: {exc!r}")
        return 2
    finally:
        run.tear_down([], cluster, work, args.keep)

    galera = f", MariaDB Galera {len(cluster.nodes)} nodes on loopback (route=nodes)" if cluster else ""
    lines = [
        f"galerakv export / import, {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"{args.keys} keys of {args.value_size} random bytes in one namespace; medians of {args.runs} rounds. "
        "export, import, re-export: in process (dump.export to a file, dump.load of that file: checked whole, "
        "then written 500 keys a batch); pipe: `galerakv export --config source | galerakv import --config "
        "target`, wall time with both processes' start-up.",
        "",
        table(results, args.keys),
        "",
        f"Command: `python {' '.join(sys.argv)}`",
        "",
        f"Machine: Python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}{galera}; 1-min load average {load_before:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end.",
        "",
        "Per run (export / import / re-export keys/s / pipe s):",
        "",
        per_run(results),
    ]
    run.emit("\n".join(lines), args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
