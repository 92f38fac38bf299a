"""galerakv vs etcd (v3 JSON gateway), side by side, with wrk.

Default: galerakv on SQLite vs a single-member etcd. `--backend galera`: galerakv on a real
local 3-node MariaDB Galera cluster (`[server] backend = "mariadb"`, `route = "nodes"`; the
cluster is made with `galerakv cluster init/up` under /var/tmp/galerakv-bench and taken
down with `galerakv cluster down` at the end, see bench/galera.py) vs a 3-member etcd.

Starts both servers itself on loopback (free ports, temp dirs), preloads the same keys,
then runs rounds of: galerakv GET, etcd GET, galerakv PUT, etcd PUT (alternating, so
drift on the machine hits both), and prints a markdown table of medians with the ratios
galerakv/etcd. It stops only the processes it started (by PID) and removes its temp dir.

    python bench/run.py                     # 3 rounds x 10 s, 32 connections
    python bench/run.py --workers 2 --runs 5 --output bench/results/latest.md
    python bench/run.py --backend galera --runs 5 --output bench/results/galera.md
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import http.client
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent))

from galera import GaleraCluster
from wrkbench import Owned, Summary, WrkResult, free_port, run_wrk, summarize, wait_http

NS = "bench"
ETCD = shutil.which("etcd") or "/usr/bin/etcd"


class Timeout(Exception):
    pass


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def key_name(i: int) -> str:
    return f"key-{i:04d}"


def value_for(i: int, size: int) -> bytes:
    head = f"value-{i:04d}-".encode()
    return (head + b"x" * size)[:size]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def lua_lit(s: str) -> str:
    """A Lua long-bracket string literal (no escapes needed for JSON or paths)."""
    if "]]" in s or "\n" in s:
        raise ValueError(f"cannot embed {s!r} in a Lua long string")
    return f"[[{s}]]"


def lua_requests(method: str, paths: list[str], bodies: list[str] | None, ctype: str) -> str:
    """A wrk script cycling over pre-built requests; each thread starts at another offset."""
    n = len(paths)
    p = ",\n".join(lua_lit(x) for x in paths)
    b = ",\n".join(lua_lit(x) for x in bodies) if bodies is not None else ""
    return f"""
local paths = {{
{p}
}}
local bodies = {{
{b}
}}
local reqs = {{}}
local i = 0
local tid = 0
setup = function(thread)
  thread:set("tid", tid)
  tid = tid + 1
end
init = function(args)
  local headers = {{["Content-Type"] = "{ctype}"}}
  for k = 1, {n} do
    local body = nil
    if #bodies > 0 then body = bodies[k] end
    reqs[k] = wrk.format("{method}", paths[k], headers, body)
  end
  i = (tid * 379) % {n}
end
request = function()
  i = (i % {n}) + 1
  return reqs[i]
end
"""


@dataclass(frozen=True)
class Target:
    name: str
    base: str
    get_lua: str
    put_lua: str


def galerakv_scripts(keys: int, size: int, read_query: str = "") -> tuple[str, str]:
    paths = [f"/v1/ns/{NS}/kv/{key_name(i)}" for i in range(keys)]
    bodies = [value_for(i, size).decode("ascii") for i in range(keys)]
    get = lua_requests("GET", [p + read_query for p in paths], None, "application/octet-stream")
    put = lua_requests("PUT", paths, bodies, "application/octet-stream")
    return get, put


def etcd_scripts(keys: int, size: int, serializable: bool) -> tuple[str, str]:
    extra = {"serializable": True} if serializable else {}
    rng = [
        json.dumps({"key": b64(f"{NS}/{key_name(i)}".encode()), **extra}, separators=(",", ":")) for i in range(keys)
    ]
    puts = [
        json.dumps(
            {"key": b64(f"{NS}/{key_name(i)}".encode()), "value": b64(value_for(i, size))},
            separators=(",", ":"),
        )
        for i in range(keys)
    ]
    get = lua_requests("POST", ["/v3/kv/range"] * keys, rng, "application/json")
    put = lua_requests("POST", ["/v3/kv/put"] * keys, puts, "application/json")
    return get, put


def http_call(port: int, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def preload_galerakv(port: int, keys: int, size: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for i in range(keys):
            path = f"/v1/ns/{NS}/kv/{key_name(i)}"
            conn.request(
                "PUT",
                path,
                body=value_for(i, size),
                headers={"Content-Type": "application/octet-stream"},
            )
            resp = conn.getresponse()
            data = resp.read()
            if resp.status not in (200, 201):
                raise RuntimeError(f"galerakv PUT {path}: {resp.status} {data[:200]!r}")
            if resp.getheader("ETag") is None:
                raise RuntimeError(f"galerakv PUT {path}: no ETag in response")
    finally:
        conn.close()
    status, data = http_call(port, "GET", f"/v1/ns/{NS}/kv/{key_name(7)}", None, {})
    if status != 200 or data != value_for(7, size):
        raise RuntimeError(f"galerakv GET check failed: {status} {data[:200]!r}")


def preload_etcd(port: int, keys: int, size: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for i in range(keys):
            body = json.dumps({"key": b64(f"{NS}/{key_name(i)}".encode()), "value": b64(value_for(i, size))}).encode()
            conn.request("POST", "/v3/kv/put", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"etcd put: {resp.status} {data[:200]!r}")
    finally:
        conn.close()
    body = json.dumps({"key": b64(f"{NS}/{key_name(7)}".encode())}).encode()
    status, data = http_call(port, "POST", "/v3/kv/range", body, {"Content-Type": "application/json"})
    kvs = json.loads(data).get("kvs", []) if status == 200 else []
    if not kvs or base64.b64decode(kvs[0]["value"]) != value_for(7, size):
        raise RuntimeError(f"etcd range check failed: {status} {data[:200]!r}")


def etcd_status(port: int) -> tuple[str, str]:
    """(member id, leader id) as seen by the member on this client port."""
    status, data = http_call(port, "POST", "/v3/maintenance/status", b"{}", {"Content-Type": "application/json"})
    if status != 200:
        raise RuntimeError(f"etcd status on {port}: {status} {data[:200]!r}")
    d = json.loads(data)
    return str(d["header"]["member_id"]), str(d.get("leader", ""))


def start_etcd(work: Path, members: int = 1, target: str = "leader") -> tuple[list[Owned], int, str]:
    """etcd with `members` members on 127.0.0.1 (own data dir and ports each).

    Returns the processes, the client port wrk talks to (the leader, or a follower with
    target="follower"; with one member, that member) and a description of it.
    """
    names = [f"m{i}" if members > 1 else "bench" for i in range(1, members + 1)]
    ports = [(free_port(), free_port()) for _ in names]
    initial = ",".join(f"{n}=http://127.0.0.1:{peer}" for n, (_, peer) in zip(names, ports, strict=True))
    procs: list[Owned] = []
    try:
        for name, (client, peer) in zip(names, ports, strict=True):
            argv = [
                ETCD,
                "--name", name,
                "--data-dir", str(work / f"etcd-{name}"),
                "--listen-client-urls", f"http://127.0.0.1:{client}",
                "--advertise-client-urls", f"http://127.0.0.1:{client}",
                "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-cluster", initial,
                "--initial-cluster-token", f"galerakv-bench-{os.getpid()}",
                "--initial-cluster-state", "new",
                "--logger", "zap",
                "--log-level", "warn",
            ]  # fmt: skip
            procs.append(Owned(f"etcd-{name}", argv, work / f"etcd-{name}.log"))
        for p, (client, _) in zip(procs, ports, strict=True):
            wait_http(client, "/health", 30.0, p.proc)
        if members == 1:
            return procs, ports[0][0], "1 member"
        ids = {}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ids = {client: etcd_status(client) for client, _ in ports}
            leaders = {leader for _, leader in ids.values()}
            if len(leaders) == 1 and "" not in leaders and "0" not in leaders:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"etcd members do not agree on a leader: {ids}")
        for client, (member, leader) in ids.items():
            if (member == leader) == (target == "leader"):
                return procs, client, f"{members} members, wrk on the {target}"
        raise RuntimeError(f"no etcd {target} found: {ids}")
    except Exception:
        for p in procs:
            log(f"{p.name} log:\n{p.tail()}")
        for p in reversed(procs):
            p.stop()
        raise


def galerakv_argv(config: Path) -> list[str]:
    exe = Path(sys.executable).with_name("galerakv")
    if exe.exists():
        return [str(exe), "serve", "--config", str(config)]
    found = shutil.which("galerakv")
    if found:
        return [found, "serve", "--config", str(config)]
    return [sys.executable, "-m", "galerakv.cli.main", "serve", "--config", str(config)]


def granian_argv(config: Path, workers: int, port: int) -> list[str]:
    """Experimental: the same app factory served by granian (ASGI) instead of `galerakv serve`."""
    exe = shutil.which("granian") or str(Path(sys.executable).with_name("granian"))
    return [
        exe, "--interface", "asgi", "--factory", "--http", "1", "--loop", "uvloop", "--no-ws",
        "--workers", str(workers), "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        "galerakv.server.run:create_app",
    ]  # fmt: skip


def start_galerakv(
    work: Path,
    workers: int,
    synchronous: str | None,
    server: str = "galerakv",
    galera: GaleraCluster | None = None,
    engine: str | None = None,
) -> tuple[Owned, int]:
    """`galerakv serve` on SQLite in work/, or with galera: on that cluster (backend mariadb, route nodes)."""
    port = free_port()
    if galera is not None:
        config = galera.serve_config(port, workers, engine)  # next to the cluster's toml: same state_dir
    else:
        db = work / "data" / "kv.sqlite3"  # not "galerakv/": cwd is on sys.path for granian
        db.parent.mkdir()
        config = work / "galerakv.toml"
        sync = f'sqlite_synchronous = "{synchronous}"\n' if synchronous else ""
        config.write_text(
            f'[server]\nport = {port}\nhost = "127.0.0.1"\nsqlite_path = "{db}"\nworkers = {workers}\n{sync}'
        )
    env = dict(os.environ)
    env.pop("GALERAKV_CONFIG", None)
    argv = galerakv_argv(config)
    if server == "granian":
        env["GALERAKV_CONFIG"] = str(config)  # read by galerakv.server.run:create_app
        argv = granian_argv(config, workers, port)
    proc = Owned("galerakv", argv, work / "galerakv.log", cwd=str(work), env=env)
    try:
        wait_http(port, "/readyz" if galera is not None else "/healthz", 60.0, proc.proc)
    except Exception:
        log(f"galerakv did not start; log:\n{proc.tail()}")
        proc.stop()
        raise
    return proc, port


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Bound the whole run: SIGALRM / SIGTERM / SIGHUP raise, so cleanup still runs."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise Timeout(f"stopped by signal {signal.Signals(signum).name}")

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGALRM, signal.SIGTERM, signal.SIGHUP)}
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        for s, h in old.items():
            signal.signal(s, h)


def versions() -> str:
    etcd_v = subprocess.run([ETCD, "--version"], capture_output=True, text=True, timeout=10)
    ev = etcd_v.stdout.splitlines()[0].split(":", 1)[-1].strip() if etcd_v.stdout else "?"
    try:
        from importlib.metadata import version

        gv = version("galerakv")
    except Exception:
        gv = "?"
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"galerakv {gv} (Python {platform.python_version()}), etcd {ev}; "
        f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}"
    )


def fmt_ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def round_ratio(g: Summary, e: Summary) -> float:
    """Median over rounds of galerakv/etcd req/s, each pair measured back to back."""
    return statistics.median(a.rps / b.rps for a, b in zip(g.runs, e.runs, strict=True) if b.rps)


GOALS = {"sqlite": {"GET": 2.0, "PUT": 1.0}, "galera": {"GET": 1.5, "PUT": 1.0}}  # issue 2, issue 4


def table(results: dict[tuple[str, str], Summary], goals: dict[str, float] = GOALS["sqlite"]) -> str:
    lines = [
        "| op | galerakv req/s | etcd req/s | ratio | per-round ratio | galerakv p50 ms | etcd p50 ms "
        "| galerakv p99 ms | etcd p99 ms | goal |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for op in ("GET", "PUT"):
        g, e = results.get(("galerakv", op)), results.get(("etcd", op))
        if g is None or e is None:
            continue
        ok = g.rps >= goals[op] * e.rps and g.p99_ms <= e.p99_ms
        lines.append(
            f"| {op} | {g.rps:,.0f} | {e.rps:,.0f} | {fmt_ratio(g.rps, e.rps)} | {round_ratio(g, e):.2f}x "
            f"| {g.p50_ms:.2f} | {e.p50_ms:.2f} | {g.p99_ms:.2f} | {e.p99_ms:.2f} "
            f"| >= {goals[op]:g}x, p99 <= etcd: {'met' if ok else 'NOT met'} |"
        )
    return "\n".join(lines)


def per_run(results: dict[tuple[str, str], Summary]) -> str:
    out = []
    for (name, op), s in results.items():
        runs = ", ".join(
            f"{r.rps:,.0f} ({r.p50_ms:.2f}/{r.p99_ms:.2f})"
            + (f" errors={r.non2xx + r.sock_errors}" if r.non2xx + r.sock_errors else "")
            for r in s.runs
        )
        out.append(f"- {name} {op}: {runs}")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="rounds (medians are quoted)")
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--workers", type=int, default=1, help="galerakv worker processes (server default: 1)")
    ap.add_argument(
        "--server",
        choices=["galerakv", "granian"],
        default="galerakv",
        help="galerakv: `galerakv serve` (uvicorn); granian: experimental, the same app on granian ASGI",
    )
    ap.add_argument(
        "--sqlite-synchronous",
        choices=["normal", "full"],
        default=None,
        help="galerakv server.sqlite_synchronous (default: the server's default)",
    )
    ap.add_argument(
        "--etcd-serializable",
        action="store_true",
        help="etcd range with serializable=true (default: linearizable, as etcd does by default)",
    )
    ap.add_argument(
        "--backend",
        choices=["sqlite", "galera"],
        default="sqlite",
        help="galerakv on SQLite (vs 1 etcd member), or on a real 3-node MariaDB Galera cluster with "
        'route = "nodes" (vs 3 etcd members)',
    )
    ap.add_argument(
        "--galera-config",
        type=Path,
        default=None,
        help="with --backend galera: the galerakv.toml of a running cluster to use (not started or "
        "stopped here); default: a fresh cluster under /var/tmp/galerakv-bench, up and down in this run",
    )
    ap.add_argument(
        "--engine",
        choices=["granian", "uvicorn"],
        default=None,
        help="with --backend galera: server.engine of `galerakv serve` (default: the server's default)",
    )
    ap.add_argument(
        "--consistency",
        choices=["strong", "local"],
        default=None,
        help="galerakv GET with ?consistency=... (Galera: local skips wsrep_sync_wait; default: none given)",
    )
    ap.add_argument("--galera-nodes", type=int, default=3)
    ap.add_argument("--galera-first-address", default="127.0.0.41")
    ap.add_argument("--etcd-members", type=int, default=None, help="default: 1 (sqlite), 3 (galera)")
    ap.add_argument(
        "--etcd-target",
        choices=["leader", "follower"],
        default="leader",
        help="the etcd member wrk talks to (the leader spares etcd a forwarding hop)",
    )
    ap.add_argument(
        "--wait-load",
        type=float,
        default=None,
        help="first wait (at most --wait-max s) until the 1-min load average is at most this (shared machine)",
    )
    ap.add_argument("--wait-max", type=int, default=600)
    ap.add_argument("--only", choices=["galerakv", "etcd"], default=None)
    ap.add_argument("--output", type=Path, default=None, help="also write the report here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    args = ap.parse_args()
    if args.value_size < 16:
        ap.error("--value-size must be >= 16")

    galera_mode = args.backend == "galera"
    read_query = f"?consistency={args.consistency}" if args.consistency else ""
    etcd_members = args.etcd_members or (3 if galera_mode else 1)
    if galera_mode and args.server != "galerakv":
        ap.error("--backend galera runs `galerakv serve` only")
    budget = 120 + args.runs * 4 * (args.duration + 35) + 2 * 35 + (2 * 300 + 60 if galera_mode else 0)
    command = "python bench/run.py " + shlex.join(sys.argv[1:])
    if args.wait_load is not None:
        waited = time.monotonic()
        while os.getloadavg()[0] > args.wait_load and time.monotonic() - waited < args.wait_max:
            time.sleep(5)
        log(f"waited {time.monotonic() - waited:.0f} s for load <= {args.wait_load}: {os.getloadavg()[0]:.2f}")
    work = Path(tempfile.mkdtemp(prefix="galerakv-bench-"))
    owned: list[Owned] = []
    cluster: GaleraCluster | None = None
    etcd_desc = ""
    results: dict[tuple[str, str], Summary] = {}
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()[0]
    loads: list[float] = []
    try:
        with deadline(budget):
            targets: list[Target] = []
            if args.only in (None, "galerakv"):
                if galera_mode:
                    if args.galera_config is not None:
                        cluster = GaleraCluster.existing(args.galera_config)
                    else:
                        cluster = GaleraCluster.fresh(args.galera_nodes, args.galera_first_address)
                    log(f"Galera cluster {cluster.config} ({'ours' if cluster.owned else 'given, left running'})")
                    cluster.start()
                g, gport = start_galerakv(
                    work, args.workers, args.sqlite_synchronous, args.server, cluster, args.engine
                )
                owned.append(g)
                log(f"galerakv pid {g.pid} on 127.0.0.1:{gport}, {args.workers} worker(s)")
                preload_galerakv(gport, args.keys, args.value_size)
                gl, pl = galerakv_scripts(args.keys, args.value_size, read_query)
                targets.append(Target("galerakv", f"http://127.0.0.1:{gport}", gl, pl))
            if args.only in (None, "etcd"):
                es, eport, etcd_desc = start_etcd(work, etcd_members, args.etcd_target)
                owned.extend(es)
                log(f"etcd pids {[e.pid for e in es]}, {etcd_desc}, on 127.0.0.1:{eport}")
                preload_etcd(eport, args.keys, args.value_size)
                gl, pl = etcd_scripts(args.keys, args.value_size, args.etcd_serializable)
                targets.append(Target("etcd", f"http://127.0.0.1:{eport}", gl, pl))
            log(f"preloaded {args.keys} keys of {args.value_size} bytes")

            def wrk(t: Target, lua: str, seconds: int) -> WrkResult:
                return run_wrk(
                    t.base + "/",
                    lua,
                    threads=args.threads,
                    connections=args.connections,
                    duration=seconds,
                    workdir=work,
                )

            for t in targets:  # warm-up, not counted
                wrk(t, t.get_lua, 2)
            raw: dict[tuple[str, str], list[WrkResult]] = {}
            for r in range(args.runs):
                for op in ("GET", "PUT"):
                    for t in targets:
                        res = wrk(t, t.get_lua if op == "GET" else t.put_lua, args.duration)
                        raw.setdefault((t.name, op), []).append(res)
                        loads.append(os.getloadavg()[0])
                        log(f"round {r + 1}/{args.runs} {t.name} {op}: {res}")
            for k, v in raw.items():
                results[k] = summarize(v)
    except (Timeout, KeyboardInterrupt) as exc:
        log(f"aborted: {exc!r}")
        return 2
    finally:
        for p in reversed(owned):
            p.stop()
        if cluster is not None:
            cluster.stop()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    errors = sum(s.errors for s in results.values())
    load = f"1-min load average {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    if loads:
        load += f" ({min(loads):.1f}-{max(loads):.1f} after each wrk run, median {statistics.median(loads):.1f})"
    on = " on granian" if args.server == "granian" else ""
    read_mode = "serializable" if args.etcd_serializable else "linearizable"
    if galera_mode:
        reads = "local reads" if args.consistency == "local" else "causal reads with wsrep_sync_wait=1"
        gdesc = (
            f"galerakv (MariaDB Galera, {args.galera_nodes} nodes on loopback, route=nodes, "
            f"{reads}, {args.workers} worker(s), engine {args.engine or 'default'})"
        )
    else:
        gdesc = f"galerakv{on} (SQLite, {args.workers} worker(s), synchronous={args.sqlite_synchronous or 'default'})"
    etcd_desc = etcd_desc or f"{etcd_members} member(s)"
    mariadb = f", MariaDB {cluster.mariadb_version()}" if cluster is not None else ""
    report = "\n".join(
        [
            f"{gdesc} vs etcd ({etcd_desc}, v3 JSON gateway, {read_mode} range), {started:%Y-%m-%d %H:%M} UTC",
            "",
            f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, {args.keys} keys, "
            f"{args.value_size}-byte values; medians of {args.runs} alternating rounds.",
            "",
            table(results, GOALS[args.backend]),
            "",
            f"Command: `{command}`",
            "",
            f"Machine: {versions()}{mariadb}. wrk runs on the same CPUs as the servers; {load}.",
            "",
            "Per run, req/s (p50/p99 ms):",
            "",
            per_run(results),
            "",
            f"Non-2xx responses and socket errors: {errors}.",
        ]
    )
    print(report)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
