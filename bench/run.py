"""galerakv vs its peers (etcd's v3 JSON gateway; on Galera also a Flask + PyMySQL server), with wrk.

Default: galerakv on SQLite vs a single-member etcd. `--backend galera`: galerakv on a real
local 3-node MariaDB Galera cluster (`[server] backend = "mariadb"`, `--route nodes` (default)
or `balancer`; the cluster is made with `galerakv cluster init/up` under /var/tmp/galerakv-bench
and taken down with `galerakv cluster down` at the end, see bench/galera.py) vs a 3-member etcd
and vs "flask": bench/peers/flask_kv.py under gunicorn (4 sync workers), the hand-written
Flask + PyMySQL server storing in its own table on the cluster's first node.

Starts every server itself on loopback (free ports, temp dirs), preloads the same keys, then
runs rounds; in each round, for each workload of `--mix` (GET, PUT, or a mix such as 90/10 =
90 % GET, 10 % PUT), galerakv, etcd, flask in turn (alternating, so drift on the machine hits
all). Prints a markdown table of medians with the ratios galerakv/peer, the RSS of galerakv's
processes and the per-run numbers. It stops only the processes it started (by PID) and
removes its temp dir.

    python bench/run.py                     # 3 rounds x 10 s, 32 connections
    python bench/run.py --workers 2 --runs 3 --output bench/results/sqlite.md
    python bench/run.py --backend galera --runs 5 --output bench/results/galera.md
    python bench/run.py --backend galera --route balancer --peers etcd,flask --mix get,put,90/10,50/50
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
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent))

from galera import GaleraCluster
from wrkbench import Owned, RssMax, Summary, WrkResult, free_port, run_wrk, summarize, wait_http

NS = "bench"
ETCD = shutil.which("etcd") or "/usr/bin/etcd"
PEERS_DIR = Path(__file__).resolve().parent / "peers"
RSS_INTERVAL = 0.5  # seconds between VmRSS samples of galerakv's processes


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
class Requests:
    """One kind of request for each key: method, paths, bodies (or None), Content-Type."""

    method: str
    paths: list[str]
    bodies: list[str] | None
    ctype: str

    def lua(self) -> str:
        return lua_requests(self.method, self.paths, self.bodies, self.ctype)


def lua_mixed(get: Requests, put: Requests, get_pct: int) -> str:
    """A wrk script cycling over the keys like lua_requests, each request a GET with probability
    get_pct % and a PUT otherwise, drawn from a per-thread Park-Miller generator (deterministic:
    the same sequence for the same thread number in every run and for every target)."""
    n = len(get.paths)
    if len(put.paths) != n or not 0 < get_pct < 100:
        raise ValueError("mixed script: same number of GET and PUT requests, 0 < get_pct < 100")

    def table(xs: list[str] | None) -> str:
        return ",\n".join(lua_lit(x) for x in xs) if xs is not None else ""

    return f"""
local gpaths = {{
{table(get.paths)}
}}
local gbodies = {{
{table(get.bodies)}
}}
local ppaths = {{
{table(put.paths)}
}}
local pbodies = {{
{table(put.bodies)}
}}
local greqs = {{}}
local preqs = {{}}
local i = 0
local tid = 0
local seed = 1
setup = function(thread)
  thread:set("tid", tid)
  tid = tid + 1
end
init = function(args)
  local gh = {{["Content-Type"] = "{get.ctype}"}}
  local ph = {{["Content-Type"] = "{put.ctype}"}}
  for k = 1, {n} do
    local gb = nil
    if #gbodies > 0 then gb = gbodies[k] end
    local pb = nil
    if #pbodies > 0 then pb = pbodies[k] end
    greqs[k] = wrk.format("{get.method}", gpaths[k], gh, gb)
    preqs[k] = wrk.format("{put.method}", ppaths[k], ph, pb)
  end
  i = (tid * 379) % {n}
  seed = 12345 + tid * 7919
end
request = function()
  i = (i % {n}) + 1
  seed = (seed * 16807) % 2147483647
  if seed % 100 < {get_pct} then
    return greqs[i]
  end
  return preqs[i]
end
"""


@dataclass(frozen=True)
class Workload:
    """A row of the table: get_pct % of the requests are GETs, the rest PUTs."""

    label: str  # GET, PUT, or e.g. 90/10
    get_pct: int

    @property
    def mixed(self) -> bool:
        return 0 < self.get_pct < 100

    @property
    def row(self) -> str:
        return f"mix {self.label} GET/PUT" if self.mixed else self.label

    def script(self, get: Requests, put: Requests) -> str:
        if self.get_pct == 100:
            return get.lua()
        if self.get_pct == 0:
            return put.lua()
        return lua_mixed(get, put, self.get_pct)


def parse_mix(text: str) -> list[Workload]:
    """'get,put,90/10,50/50' -> the workloads, in that order, without duplicates."""
    out: list[Workload] = []
    for raw in text.split(","):
        item = raw.strip().lower()
        if item == "get":
            w = Workload("GET", 100)
        elif item == "put":
            w = Workload("PUT", 0)
        elif "/" in item:
            g, _, p = item.partition("/")
            if not (g.isdigit() and p.isdigit()) or int(g) + int(p) != 100 or not 0 < int(g) < 100:
                raise ValueError(f"{raw!r}: a mix is GET%/PUT% adding up to 100, e.g. 90/10")
            w = Workload(f"{int(g)}/{int(p)}", int(g))
        else:
            raise ValueError(f"{raw!r}: expected get, put or a GET%/PUT% mix such as 90/10")
        if w not in out:
            out.append(w)
    if not out:
        raise ValueError("empty --mix")
    return out


@dataclass(frozen=True)
class Target:
    name: str
    base: str
    get: Requests
    put: Requests


def galerakv_requests(keys: int, size: int, read_query: str = "") -> tuple[Requests, Requests]:
    """galerakv's key API; also the Flask peer's (same paths and bodies)."""
    paths = [f"/v1/ns/{NS}/kv/{key_name(i)}" for i in range(keys)]
    bodies = [value_for(i, size).decode("ascii") for i in range(keys)]
    get = Requests("GET", [p + read_query for p in paths], None, "application/octet-stream")
    put = Requests("PUT", paths, bodies, "application/octet-stream")
    return get, put


def galerakv_scripts(keys: int, size: int, read_query: str = "") -> tuple[str, str]:
    get, put = galerakv_requests(keys, size, read_query)
    return get.lua(), put.lua()


def etcd_requests(keys: int, size: int, serializable: bool) -> tuple[Requests, Requests]:
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
    get = Requests("POST", ["/v3/kv/range"] * keys, rng, "application/json")
    put = Requests("POST", ["/v3/kv/put"] * keys, puts, "application/json")
    return get, put


def etcd_scripts(keys: int, size: int, serializable: bool) -> tuple[str, str]:
    get, put = etcd_requests(keys, size, serializable)
    return get.lua(), put.lua()


def connect(port: int, context: ssl.SSLContext | None = None) -> http.client.HTTPConnection:
    """A connection to 127.0.0.1:port: plain HTTP, or HTTPS verified with ``context``."""
    if context is not None:
        return http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    return http.client.HTTPConnection("127.0.0.1", port, timeout=10)


def http_call(
    port: int,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    context: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    conn = connect(port, context)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def preload_galerakv(
    port: int,
    keys: int,
    size: int,
    name: str = "galerakv",
    etag: bool = True,
    context: ssl.SSLContext | None = None,
) -> None:
    """PUT the keys through galerakv's API (or the Flask peer's: name="flask", etag=False); HTTPS
    verified with ``context`` when given."""
    conn = connect(port, context)
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
                raise RuntimeError(f"{name} PUT {path}: {resp.status} {data[:200]!r}")
            if etag and resp.getheader("ETag") is None:
                raise RuntimeError(f"{name} PUT {path}: no ETag in response")
    finally:
        conn.close()
    status, data = http_call(port, "GET", f"/v1/ns/{NS}/kv/{key_name(7)}", None, {}, context)
    if status != 200 or data != value_for(7, size):
        raise RuntimeError(f"{name} GET check failed: {status} {data[:200]!r}")


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
    route: str = "nodes",
    https: tuple[Path, Path] | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[Owned, int]:
    """`galerakv serve` on SQLite in work/, or with galera: on that cluster (backend mariadb, route given).

    https: (certificate, key) for `[server] tls_cert` / `tls_key` (the server speaks HTTPS); the
    readiness check then goes through ``context`` (which must trust the certificate).
    """
    if https is not None and context is None:
        raise ValueError("start_galerakv: https needs a context to check readiness with")
    port = free_port()
    if galera is not None:
        config = galera.serve_config(port, workers, engine, route)  # next to the cluster's toml: same state_dir
    else:
        db = work / "data" / "kv.sqlite3"  # not "galerakv/": cwd is on sys.path for granian
        db.parent.mkdir()
        config = work / "galerakv.toml"
        sync = f'sqlite_synchronous = "{synchronous}"\n' if synchronous else ""
        config.write_text(
            f'[server]\nport = {port}\nhost = "127.0.0.1"\nsqlite_path = "{db}"\nworkers = {workers}\n{sync}'
        )
    if https is not None:  # both configs above end with their [server] section
        config.write_text(config.read_text() + f'tls_cert = "{https[0]}"\ntls_key = "{https[1]}"\n')
    env = dict(os.environ)
    env.pop("GALERAKV_CONFIG", None)
    argv = galerakv_argv(config)
    if server == "granian":
        env["GALERAKV_CONFIG"] = str(config)  # read by galerakv.server.run:create_app
        argv = granian_argv(config, workers, port)
    proc = Owned("galerakv", argv, work / "galerakv.log", cwd=str(work), env=env)
    try:
        wait_http(port, "/readyz" if galera is not None else "/healthz", 60.0, proc.proc, context)
    except Exception:
        log(f"galerakv did not start; log:\n{proc.tail()}")
        proc.stop()
        raise
    return proc, port


def gunicorn_exe() -> str:
    exe = Path(sys.executable).with_name("gunicorn")
    if exe.exists():
        return str(exe)
    found = shutil.which("gunicorn")
    if not found:
        raise RuntimeError("gunicorn not found: pip install -e '.[bench]'")
    return found


def start_flask(work: Path, galera: GaleraCluster, workers: int) -> tuple[Owned, int, str]:
    """bench/peers/flask_kv.py under gunicorn (sync workers) on the cluster's first node, port 3306.

    Returns the process (gunicorn's arbiter; its workers are in its process group), the HTTP
    port and a description.
    """
    port = free_port()
    host, _ = galera.addresses[0]
    db_port = 3306
    user, password = galera.app_credentials()
    env = dict(os.environ)
    env.update(
        FLASK_KV_HOST=host,
        FLASK_KV_PORT=str(db_port),
        FLASK_KV_USER=user,
        FLASK_KV_PASSWORD=password,
        FLASK_KV_DATABASE=galera.database,
    )
    argv = [
        gunicorn_exe(), "-w", str(workers), "-k", "sync", "-b", f"127.0.0.1:{port}",
        "--pythonpath", str(PEERS_DIR), "--error-logfile", "-", "--log-level", "warning",
        "flask_kv:app",
    ]  # fmt: skip
    proc = Owned("flask", argv, work / "flask.log", cwd=str(work), env=env)
    try:
        wait_http(port, "/healthz", 60.0, proc.proc)  # opens a connection, creates peer_kv if missing
    except Exception:
        log(f"flask peer did not start; log:\n{proc.tail()}")
        proc.stop()
        raise
    desc = (
        f"Flask + PyMySQL, gunicorn {workers} sync workers, REPLACE INTO / SELECT on table peer_kv "
        f"of the writer node {host}:{db_port}, one autocommit connection per worker"
    )
    return proc, port, desc


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


def open_cluster(args: argparse.Namespace) -> GaleraCluster:
    """The cluster of ``--galera-config``, or a fresh one (not started yet)."""
    if args.galera_config is not None:
        cluster = GaleraCluster.existing(args.galera_config)
    else:
        cluster = GaleraCluster.fresh(args.galera_nodes, args.galera_first_address)
    log(f"Galera cluster {cluster.config} ({'ours' if cluster.owned else 'given, left running'})")
    return cluster


def tear_down(owned: list[Owned], cluster: GaleraCluster | None, work: Path, keep: bool) -> None:
    """Stop what a run started (by PID), the cluster if it made it, and remove its directory."""
    for p in reversed(owned):
        p.stop()
    if cluster is not None:
        cluster.stop()
    if keep:
        log(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def emit(report: str, output: Path | None) -> None:
    """Print the report, and write it to ``output`` when given."""
    print(report)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(report + "\n")


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
    """Median over rounds of galerakv/peer req/s, each pair measured back to back."""
    ratios = [a.rps / b.rps for a, b in zip(g.runs, e.runs, strict=True) if b.rps]
    return statistics.median(ratios) if ratios else float("nan")


@dataclass(frozen=True)
class Goal:
    """galerakv req/s >= factor x each peer's; p99 <= p99_peer's when given."""

    factors: dict[str, float]
    p99_peer: str | None

    def text(self) -> str:
        parts = [f">= {f:g}x {peer}" for peer, f in self.factors.items()]
        if self.p99_peer:
            parts.append(f"p99 <= {self.p99_peer}")
        return ", ".join(parts)

    def verdict(self, g: Summary, peers: dict[str, Summary]) -> str:
        ok = True
        missing = []
        for peer, factor in self.factors.items():
            if peer not in peers:
                missing.append(peer)
            elif g.rps < factor * peers[peer].rps:
                ok = False
        if self.p99_peer:
            if self.p99_peer not in peers:
                missing.append(self.p99_peer)
            elif g.p99_ms > peers[self.p99_peer].p99_ms:
                ok = False
        if missing:
            rest = "the rest met" if ok else "NOT met"
            return f"{self.text()}: incomplete, {', '.join(dict.fromkeys(missing))} not run ({rest})"
        return f"{self.text()}: {'met' if ok else 'NOT met'}"


def goals_for(backend: str, route: str) -> dict[str, Goal]:
    """Goals of the GET and PUT rows (mixed workloads have none)."""
    if backend == "sqlite":  # the fast-path issue: 3x a single etcd member for GET, 2x for PUT
        return {"GET": Goal({"etcd": 3.0}, None), "PUT": Goal({"etcd": 2.0}, None)}
    # Galera: twice the afternoon's Flask + PyMySQL server on either route; 1.5x a 3-member
    # etcd with p99 no worse through galerakv's own routing, 1x through the balancer
    balancer = route == "balancer"
    goal = Goal({"etcd": 1.0 if balancer else 1.5, "flask": 2.0}, None if balancer else "etcd")
    return {"GET": goal, "PUT": goal}


def table(
    results: dict[tuple[str, str], Summary],
    workloads: list[Workload],
    names: list[str],
    goals: dict[str, Goal],
) -> str:
    """One row per workload: galerakv's req/s and p99, then for each peer its req/s, p99 and the
    ratio galerakv/peer, then the goal (GET and PUT rows)."""
    ours = "galerakv" in names
    peers = [n for n in names if n != "galerakv"]
    compare = ours and bool(peers)
    head, align = ["workload"], ["---"]
    for n in names:
        head += [f"{n} req/s", f"{n} p99 ms"]
        align += ["---:", "---:"]
        if compare and n != "galerakv":
            head.append(f"galerakv/{n}")
            align.append("---:")
    if compare:
        head.append("goal")
        align.append("---")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for w in workloads:
        row = [w.row]
        got = {n: results.get((n, w.label)) for n in names}
        g = got.get("galerakv")
        for n in names:
            s = got[n]
            row += [f"{s.rps:,.0f}", f"{s.p99_ms:.2f}"] if s else ["-", "-"]
            if compare and n != "galerakv":
                row.append(f"{fmt_ratio(g.rps, s.rps)} ({round_ratio(g, s):.2f}x)" if g and s else "-")
        if compare:
            present = {p: s for p in peers if (s := got[p]) is not None}
            goal = goals.get(w.label)
            row.append(goal.verdict(g, present) if goal and g else "-")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def per_run(results: dict[tuple[str, str], Summary], workloads: list[Workload], names: list[str]) -> str:
    out = []
    for w in workloads:
        for name in names:
            s = results.get((name, w.label))
            if s is None:
                continue
            runs = ", ".join(
                f"{r.rps:,.0f} ({r.p50_ms:.2f}/{r.p99_ms:.2f})"
                + (f" errors={r.non2xx + r.sock_errors}" if r.non2xx + r.sock_errors else "")
                for r in s.runs
            )
            out.append(f"- {name} {w.row}: {runs}")
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
        "--mix",
        default="get,put",
        help="workloads measured, comma-separated, each a row: get, put, or GET%%/PUT%% mixes such as 90/10 "
        "and 50/50 (each request a GET or a PUT, drawn per wrk thread, deterministic); default get,put",
    )
    ap.add_argument(
        "--peers",
        default=None,
        help="peers compared with galerakv, comma-separated: etcd, flask (flask: --backend galera only); "
        "default: etcd,flask with --backend galera, etcd otherwise",
    )
    ap.add_argument("--flask-workers", type=int, default=4, help="gunicorn sync workers of the Flask peer")
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
        help="galerakv on SQLite (vs 1 etcd member), or on a real 3-node MariaDB Galera cluster "
        "(vs 3 etcd members and the Flask peer)",
    )
    ap.add_argument(
        "--route",
        choices=["nodes", "balancer"],
        default=None,
        help="with --backend galera: galerakv's server.route; nodes (default): galerakv picks the nodes; "
        "balancer: through the cluster's [balancer] (HAProxy started by `galerakv cluster up`)",
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
    ap.add_argument(
        "--only", choices=["galerakv", "etcd", "flask"], default=None, help="run one side alone (smoke test)"
    )
    ap.add_argument("--output", type=Path, default=None, help="also write the report here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    args = ap.parse_args()
    if args.value_size < 16:
        ap.error("--value-size must be >= 16")

    galera_mode = args.backend == "galera"
    try:
        workloads = parse_mix(args.mix)
    except ValueError as exc:
        ap.error(f"--mix: {exc}")
    peers = [p.strip() for p in (args.peers or ("etcd,flask" if galera_mode else "etcd")).split(",") if p.strip()]
    for p in peers:
        if p not in ("etcd", "flask"):
            ap.error(f"--peers: unknown peer {p!r} (etcd, flask)")
    peers = list(dict.fromkeys(peers))
    names = [args.only] if args.only else ["galerakv", *peers]
    if "flask" in names and not galera_mode:
        ap.error("the flask peer stores in MariaDB: it needs --backend galera")
    if args.route is not None and not galera_mode:
        ap.error("--route is for --backend galera")
    route = args.route or "nodes"
    read_query = f"?consistency={args.consistency}" if args.consistency else ""
    etcd_members = args.etcd_members or (3 if galera_mode else 1)
    if galera_mode and args.server != "galerakv":
        ap.error("--backend galera runs `galerakv serve` only")
    budget = (
        120
        + args.runs * len(workloads) * len(names) * (args.duration + 35)
        + len(names) * 60
        + (2 * 300 + 60 if galera_mode else 0)
    )
    command = "python bench/run.py " + shlex.join(sys.argv[1:])
    if args.wait_load is not None:
        waited = time.monotonic()
        while os.getloadavg()[0] > args.wait_load and time.monotonic() - waited < args.wait_max:
            time.sleep(5)
        log(f"waited {time.monotonic() - waited:.0f} s for load <= {args.wait_load}: {os.getloadavg()[0]:.2f}")
    work = Path(tempfile.mkdtemp(prefix="galerakv-bench-"))
    owned: list[Owned] = []
    cluster: GaleraCluster | None = None
    descs: dict[str, str] = {}
    rss: RssMax | None = None
    results: dict[tuple[str, str], Summary] = {}
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()[0]
    loads: list[float] = []
    try:
        with deadline(budget):
            targets: list[Target] = []
            if galera_mode and ("galerakv" in names or "flask" in names):
                cluster = open_cluster(args)
                if route == "balancer" and "galerakv" in names and cluster.balancer_desc() == "none":
                    raise RuntimeError(f"--route balancer: {cluster.config} has no [balancer] (kind none)")
                cluster.start()
            for name in names:
                if name == "galerakv":
                    g, gport = start_galerakv(
                        work, args.workers, args.sqlite_synchronous, args.server, cluster, args.engine, route
                    )
                    owned.append(g)
                    rss = RssMax(g.pid, RSS_INTERVAL)
                    log(f"galerakv pid {g.pid} on 127.0.0.1:{gport}, {args.workers} worker(s)")
                    preload_galerakv(gport, args.keys, args.value_size)
                    targets.append(
                        Target(
                            "galerakv",
                            f"http://127.0.0.1:{gport}",
                            *galerakv_requests(args.keys, args.value_size, read_query),
                        )
                    )
                elif name == "etcd":
                    es, eport, edesc = start_etcd(work, etcd_members, args.etcd_target)
                    owned.extend(es)
                    read_mode = "serializable" if args.etcd_serializable else "linearizable"
                    descs["etcd"] = f"{edesc}, v3 JSON gateway, {read_mode} range"
                    log(f"etcd pids {[e.pid for e in es]}, {edesc}, on 127.0.0.1:{eport}")
                    preload_etcd(eport, args.keys, args.value_size)
                    targets.append(
                        Target(
                            "etcd",
                            f"http://127.0.0.1:{eport}",
                            *etcd_requests(args.keys, args.value_size, args.etcd_serializable),
                        )
                    )
                elif name == "flask":
                    assert cluster is not None
                    f, fport, descs["flask"] = start_flask(work, cluster, args.flask_workers)
                    owned.append(f)
                    log(f"flask peer pid {f.pid} (gunicorn) on 127.0.0.1:{fport}")
                    preload_galerakv(fport, args.keys, args.value_size, name="flask", etag=False)
                    targets.append(
                        Target("flask", f"http://127.0.0.1:{fport}", *galerakv_requests(args.keys, args.value_size))
                    )
            log(f"preloaded {args.keys} keys of {args.value_size} bytes")
            scripts = {(t.name, w.label): w.script(t.get, t.put) for t in targets for w in workloads}

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
                wrk(t, t.get.lua(), 2)
            raw: dict[tuple[str, str], list[WrkResult]] = {}
            for r in range(args.runs):
                for w in workloads:
                    for t in targets:
                        sampling = rss.during(args.duration + 40) if rss and t.name == "galerakv" else nullcontext()
                        with sampling:
                            res = wrk(t, scripts[(t.name, w.label)], args.duration)
                        raw.setdefault((t.name, w.label), []).append(res)
                        loads.append(os.getloadavg()[0])
                        log(f"round {r + 1}/{args.runs} {t.name} {w.row}: {res}")
            for k, v in raw.items():
                results[k] = summarize(v)
    except (Timeout, KeyboardInterrupt) as exc:
        log(f"aborted: {exc!r}")
        return 2
    finally:
        tear_down(owned, cluster, work, args.keep)

    errors = sum(s.errors for s in results.values())
    load = f"1-min load average {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    if loads:
        load += f" ({min(loads):.1f}-{max(loads):.1f} after each wrk run, median {statistics.median(loads):.1f})"
    on = " on granian" if args.server == "granian" else ""
    if galera_mode:
        reads = "local reads" if args.consistency == "local" else "causal reads with wsrep_sync_wait=1"
        n_nodes = len(cluster.nodes) if cluster is not None else args.galera_nodes
        route_desc = f"route={route}"
        if route == "balancer" and cluster is not None:
            route_desc += f" ({cluster.balancer_desc()})"
        descs["galerakv"] = (
            f"MariaDB Galera, {n_nodes} nodes on loopback, {route_desc}, "
            f"{reads}, {args.workers} worker(s), engine {args.engine or 'default'}"
        )
    else:
        descs["galerakv"] = f"SQLite, {args.workers} worker(s), synchronous={args.sqlite_synchronous or 'default'}"
    descs.setdefault("etcd", f"{etcd_members} member(s)")
    label = {"galerakv": f"galerakv{on}", "etcd": "etcd", "flask": "flask"}
    described = [f"{label[n]} ({descs.get(n, '')})" for n in names]
    header = described[0] + (" alone" if len(described) == 1 else " vs " + " and ".join(described[1:]))
    mariadb = f", MariaDB {cluster.mariadb_version()}" if cluster is not None else ""
    mix_note = ""
    if any(w.mixed for w in workloads):
        mix_note = (
            " Mixed workloads (mix G/P): each request is a GET with probability G %, else a PUT of the "
            "same key cycle (per-thread deterministic pseudo-random draw); they have no goal."
        )
    ratio_note = ""
    if "galerakv" in names and len(names) > 1:
        ratio_note = "galerakv/peer: ratio of the median req/s (median of the per-round ratios in brackets).\n\n"
    lines = [
        f"{header}, {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, {args.keys} keys, "
        f"{args.value_size}-byte values; medians of {args.runs} alternating rounds.{mix_note}",
        "",
        table(results, workloads, names, goals_for(args.backend, route)),
        "",
        ratio_note + f"Command: `{command}`",
        "",
    ]
    if rss is not None:
        lines += [
            f"galerakv RSS max per process: {rss.describe()} (VmRSS every {RSS_INTERVAL:g} s during the "
            f"galerakv wrk runs, {rss.samples} samples)",
            "",
        ]
    lines += [
        f"Machine: {versions()}{mariadb}. wrk runs on the same CPUs as the servers; {load}.",
        "",
        "Per run, req/s (p50/p99 ms):",
        "",
        per_run(results, workloads, names),
        "",
        f"Non-2xx responses and socket errors: {errors}.",
    ]
    emit("\n".join(lines), args.output)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
