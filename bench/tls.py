"""What TLS costs galerakv, side by side in one run: wrk GET and PUT rounds alternating the two
conditions of each comparison (the order flips every round, so drift on this shared machine hits
both), medians, the ratio TLS/plain, p99, CPU per request and the load average.

Part `https`: the HTTP API, plain HTTP vs HTTPS. Two `galerakv serve` on SQLite (`--backend
sqlite`, a file each), one plain and one with `[server] tls_cert` / `tls_key` (granian's own TLS),
the pair an ECDSA P-256 leaf for 127.0.0.1 from a private CA made with galerakv.tls in the temp
dir. wrk speaks HTTPS itself (Debian's wrk is linked with OpenSSL; it does not check the
certificate, the bench's own preload and readiness check do). wrk keeps its connections open, so
what is measured is the cost of the record layer (encryption) with 32 handshakes per run, not of a
handshake per request.

Part `db`: TLS between the server and MariaDB vs plain. Two real 3-node Galera clusters made and
started here (bench/galera.py: `galerakv cluster init --balancer none`, `cluster up`), one with
`[cluster] tls = true` on 127.0.0.171-173 and one with `tls = false` on 127.0.0.175-177; one
`galerakv serve` on each (backend mariadb, route nodes, plain HTTP in front). With tls = true
everything MariaDB sees is encrypted: the server's connections (verified against
state_dir/tls/ca.crt), Galera replication between the nodes, state transfers.

Every server and cluster is started here and stopped by PID / `galerakv cluster down` at the end;
every loop is bounded in count and the whole run in time.

    python bench/tls.py --part all --runs 5 --duration 6 --output bench/results/tls.md
    python bench/tls.py --part https --runs 3 --duration 4
    python bench/tls.py --part db --runs 3 --duration 6
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run
from galera import GaleraCluster
from wrkbench import WRK, Owned, Summary, WrkResult, process_tree, run_wrk, summarize

from galerakv import tls as certs

VALUE_SIZE = 100
CLK_TCK = os.sysconf("SC_CLK_TCK")
WORKLOADS = run.parse_mix("get,put")
PART_TITLES = {"https": "HTTP vs HTTPS API (SQLite)", "db": "TLS to MariaDB vs plain (3-node Galera)"}


def cpu_seconds(roots: list[int]) -> float:
    """utime + stime of every process in the trees of ``roots`` (processes gone are not counted)."""
    ticks = 0
    for root in roots:
        for pid in process_tree(root):
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2 :].split()  # state ppid ... utime is field 14 of the line
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


@dataclass
class Side:
    """One condition of a comparison: where wrk sends its requests and whose CPU is counted."""

    name: str  # as in the table: HTTP, HTTPS, plain, TLS
    url: str
    server: list[int]  # the galerakv serve process (its workers are in its tree)
    db: list[int] = field(default_factory=list)  # mariadbd of the cluster behind it


@dataclass
class Part:
    """The measurements of one comparison: (side, workload label) -> runs, CPU per request."""

    key: str  # https or db
    sides: tuple[str, str]  # (plain, TLS) names
    setup: list[str] = field(default_factory=list)  # lines describing what was measured
    runs: dict[tuple[str, str], list[WrkResult]] = field(default_factory=dict)
    server_us: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    db_us: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    loads: list[float] = field(default_factory=list)  # 1-min load after each wrk run
    load_start: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_end: tuple[float, float, float] = (0.0, 0.0, 0.0)
    error: str = ""


def measure(part: Part, sides: list[Side], args: argparse.Namespace, work: Path) -> None:
    """Warm-up, then --runs rounds; in each, for GET then PUT, both sides in turn, the order
    flipped every round. Fills part.runs, CPU per request and the load after each run."""
    get, put = run.galerakv_requests(args.keys, VALUE_SIZE)
    scripts = {w.label: w.script(get, put) for w in WORKLOADS}
    part.load_start = os.getloadavg()
    for side in sides:  # warm-up, not counted
        run_wrk(side.url + "/", scripts["GET"], connections=args.connections, duration=2, workdir=work)
    for i in range(args.runs):
        order = sides if i % 2 == 0 else sides[::-1]
        for w in WORKLOADS:
            for side in order:
                server0, db0 = cpu_seconds(side.server), cpu_seconds(side.db)
                res = run_wrk(
                    side.url + "/", scripts[w.label], connections=args.connections, duration=args.duration, workdir=work
                )
                server1, db1 = cpu_seconds(side.server), cpu_seconds(side.db)
                key = (side.name, w.label)
                part.runs.setdefault(key, []).append(res)
                per = 1e6 / res.requests if res.requests else float("nan")
                part.server_us.setdefault(key, []).append((server1 - server0) * per)
                if side.db:
                    part.db_us.setdefault(key, []).append((db1 - db0) * per)
                part.loads.append(os.getloadavg()[0])
                run.log(
                    f"{part.key} round {i + 1}/{args.runs} {w.label} {side.name}: {res.rps:,.0f} req/s, "
                    f"p99 {res.p99_ms:.2f} ms, load {part.loads[-1]:.2f}"
                )
    part.load_end = os.getloadavg()


def negotiated(port: int, context: ssl.SSLContext) -> str:
    """Protocol and cipher an OpenSSL client (Python's) gets from the HTTPS server."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as s,
    ):
        cipher = s.cipher()
        return f"{s.version()} {cipher[0] if cipher else '?'}"


def part_https(args: argparse.Namespace, work: Path, owned: list[Owned], part: Part) -> None:
    pki = work / "pki"
    pki.mkdir(mode=0o700)
    ca_pem, ca_key = certs.issue_ca("bench")
    cert_pem, key_pem = certs.issue_leaf(ca_pem, ca_key, "galerakv bench", ["127.0.0.1", "localhost"])
    (pki / "ca.crt").write_text(ca_pem)
    (pki / "http.crt").write_text(cert_pem)
    key = pki / "http.key"
    key.touch(mode=0o600)
    key.write_text(key_pem)
    context = certs.client_context(pki / "ca.crt")

    sides = []
    for name, https in (("HTTP", None), ("HTTPS", (pki / "http.crt", key))):
        home = work / name.lower()
        home.mkdir()
        server, port = run.start_galerakv(home, 1, None, https=https, context=context if https else None)
        owned.append(server)
        scheme = "https" if https else "http"
        run.log(f"{name}: galerakv serve pid {server.pid} on {scheme}://127.0.0.1:{port}")
        run.preload_galerakv(port, args.keys, VALUE_SIZE, context=context if https else None)
        sides.append(Side(name, f"{scheme}://127.0.0.1:{port}", [server.pid]))
        if https:
            part.setup.append(
                f"HTTPS: `[server] tls_cert` / `tls_key`, an ECDSA P-256 leaf for 127.0.0.1 signed by a private CA "
                f"(galerakv.tls); negotiated with an OpenSSL client: {negotiated(port, context)}."
            )
    part.setup.insert(
        0,
        "Two `galerakv serve` on SQLite (a file each, default engine, 1 process), one plain HTTP and one "
        "HTTPS; wrk speaks HTTPS itself (OpenSSL, keep-alive: 32 handshakes per run, then the record layer).",
    )
    measure(part, sides, args, work)


def ssl_facts(cluster: GaleraCluster) -> str:
    """have_ssl, the application account's ssl_type and the TLS handshakes accepted, on the root node."""
    user, _ = cluster.app_credentials()
    if not user.replace("_", "").isalnum():
        return f"not checked (unexpected user name {user!r})"
    out = cluster.sql(
        "SELECT @@have_ssl AS have_ssl, "
        f"(SELECT GROUP_CONCAT(DISTINCT IF(ssl_type = '', 'NONE', ssl_type)) FROM mysql.user WHERE user = '{user}') "
        "AS app_ssl_type, (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
        "WHERE VARIABLE_NAME = 'SSL_ACCEPTS') AS ssl_accepts"
    )
    rows = [line.split("\t") for line in out.strip().splitlines()]
    if len(rows) != 2 or len(rows[0]) != len(rows[1]):
        return f"unexpected answer {out.strip()!r}"
    return ", ".join(f"{k} {v}" for k, v in zip(rows[0], rows[1], strict=True))


def part_db(
    args: argparse.Namespace, work: Path, owned: list[Owned], clusters: list[GaleraCluster], part: Part
) -> None:
    sides = []
    made: dict[str, GaleraCluster] = {}
    for name, tls, first in (("plain", False, args.plain_first_address), ("TLS", True, args.tls_first_address)):
        cluster = GaleraCluster.fresh(3, first, balancer="none", tls=tls)
        clusters.append(cluster)
        made[name] = cluster
        run.log(f"{name}: cluster {cluster.config} (tls = {str(tls).lower()}, nodes {cluster.addresses})")
        cluster.start()
    for name, cluster in made.items():
        home = work / f"db-{name.lower()}"
        home.mkdir()
        server, port = run.start_galerakv(home, 1, None, galera=cluster, route="nodes")
        owned.append(server)
        pids = list(cluster.mariadbd_pids().values())
        if len(pids) != len(cluster.nodes):
            raise RuntimeError(f"{name}: {len(pids)} of {len(cluster.nodes)} mariadbd found running")
        run.log(f"{name}: galerakv serve pid {server.pid} on http://127.0.0.1:{port}, mariadbd pids {pids}")
        run.preload_galerakv(port, args.keys, VALUE_SIZE)
        sides.append(Side(name, f"http://127.0.0.1:{port}", [server.pid], pids))
    part.setup.append(
        "Two 3-node MariaDB Galera clusters made here (`cluster init --balancer none`, `cluster up`), "
        f"`tls = false` on {', '.join(a for a, _ in made['plain'].addresses)} and `tls = true` on "
        f"{', '.join(a for a, _ in made['TLS'].addresses)}; one `galerakv serve` on each (backend mariadb, "
        "route nodes, causal reads, default engine, 1 process), plain HTTP in front. MariaDB "
        f"{made['TLS'].mariadb_version()}."
    )
    for name, cluster in made.items():
        part.setup.append(f"{name} cluster, root node after the preload: {ssl_facts(cluster)}.")
    measure(part, sides, args, work)


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def render_part(part: Part, args: argparse.Namespace) -> list[str]:
    plain, tls = part.sides
    lines = [f"## {PART_TITLES[part.key]}", ""]
    for text in part.setup:
        lines += [text, ""]
    if part.error:
        lines += [f"**Failed:** {part.error}", ""]
    if not part.runs:
        return lines
    db = bool(part.db_us)
    head = [
        "workload", f"{plain} req/s", f"{tls} req/s", f"{tls}/{plain}",
        f"{plain} p99 ms", f"{tls} p99 ms", f"{tls}/{plain} p99", f"server CPU us/req {plain} / {tls}",
    ]  # fmt: skip
    if db:
        head.append(f"mariadbd CPU us/req {plain} / {tls}")
    lines += ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for w in WORKLOADS:
        a, b = part.runs.get((plain, w.label)), part.runs.get((tls, w.label))
        if not a or not b:
            continue
        sa, sb = summarize(a), summarize(b)
        cpu = f"{med(part.server_us[(plain, w.label)]):.0f} / {med(part.server_us[(tls, w.label)]):.0f}"
        row = [
            w.row, f"{sa.rps:,.0f}", f"{sb.rps:,.0f}",
            f"{run.fmt_ratio(sb.rps, sa.rps)} ({run.round_ratio(sb, sa):.2f}x)" if len(a) == len(b) else "-",
            f"{sa.p99_ms:.2f}", f"{sb.p99_ms:.2f}", run.fmt_ratio(sb.p99_ms, sa.p99_ms), cpu,
        ]  # fmt: skip
        if db:
            row.append(f"{med(part.db_us[(plain, w.label)]):.0f} / {med(part.db_us[(tls, w.label)]):.0f}")
        lines.append("| " + " | ".join(row) + " |")
    summaries: dict[tuple[str, str], Summary] = {k: summarize(v) for k, v in part.runs.items()}
    s, e = part.load_start, part.load_end
    loads = part.loads
    lines += [
        "",
        f"{tls}/{plain}: ratio of the median req/s (median of the per-round ratios in brackets, each pair "
        "measured back to back). CPU: utime + stime per request (median over runs) of the `galerakv serve` "
        "process tree" + (" and of the three mariadbd" if db else "") + ", from /proc.",
        "",
        f"Load average (1/5/15 min): {s[0]:.2f} / {s[1]:.2f} / {s[2]:.2f} at the start of the rounds, "
        f"{e[0]:.2f} / {e[1]:.2f} / {e[2]:.2f} at the end; 1-min after each wrk run "
        + (f"{min(loads):.2f}-{max(loads):.2f}, median {med(loads):.2f}." if loads else "none."),
        "",
        "Per run, req/s (p50/p99 ms), in round order:",
        "",
        run.per_run(summaries, WORKLOADS, list(part.sides)),
        "",
    ]
    return lines


def machine() -> str:
    try:
        gv = version("galerakv")
        granian = version("granian")
    except Exception:
        gv = granian = "?"
    try:  # "wrk debian/4.1.0-3+b2 [epoll] Copyright ..." (and the usage, exit status 1)
        out = subprocess.run([WRK, "-v"], capture_output=True, text=True, timeout=10, check=False)
        wrk = " ".join((out.stdout + out.stderr).split()[:2]) or "wrk ?"
    except (OSError, subprocess.TimeoutExpired):
        wrk = "wrk ?"
    return (
        f"galerakv {gv} (Python {platform.python_version()} with {ssl.OPENSSL_VERSION}, granian {granian}), "
        f"{wrk}; {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"
    )


def render(parts: list[Part], args: argparse.Namespace, command: str, started: dt.datetime) -> str:
    errors = sum(r.non2xx + r.sock_errors for p in parts for runs in p.runs.values() for r in runs)
    lines = [
        "# What TLS costs galerakv",
        "",
        f"{started:%Y-%m-%d %H:%M} UTC; `{command}`; wrk -t2 -c{args.connections} -d{args.duration}s, "
        f"{args.keys} keys, {VALUE_SIZE}-byte values; GET and PUT, {args.runs} round(s) alternating the two "
        "conditions (order flipped every round), medians. wrk runs on the same CPUs as the servers (and, "
        "for HTTPS, does its own TLS on them); the machine is shared: trust the ratios, not the absolute numbers.",
        "",
    ]
    for part in parts:
        lines += render_part(part, args)
    lines += [f"Machine: {machine()}.", "", f"Non-2xx responses and socket errors: {errors}."]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["https", "db", "all"], default="all")
    ap.add_argument("--runs", type=int, default=5, help="rounds (medians are quoted)")
    ap.add_argument("--duration", type=int, default=6, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument(
        "--backend", choices=["sqlite"], default="sqlite", help="backend of part https (SQLite: no cluster needed)"
    )
    ap.add_argument("--tls-first-address", default="127.0.0.171", help="part db: first node of the TLS cluster")
    ap.add_argument("--plain-first-address", default="127.0.0.175", help="part db: first node of the plain one")
    ap.add_argument("--output", type=Path, default=None, help="also write the report (markdown) here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (server logs)")
    args = ap.parse_args()
    if not 1 <= args.runs <= 50 or not 1 <= args.duration <= 120:
        ap.error("--runs 1..50 and --duration 1..120")
    keys = ["https", "db"] if args.part == "all" else [args.part]
    command = "python bench/tls.py " + shlex.join(sys.argv[1:])
    started = dt.datetime.now(dt.UTC)
    parts = [Part(k, ("HTTP", "HTTPS") if k == "https" else ("plain", "TLS")) for k in keys]
    status = 0
    for part in parts:
        work = Path(tempfile.mkdtemp(prefix=f"galerakv-tls-bench-{part.key}-"))
        owned: list[Owned] = []
        clusters: list[GaleraCluster] = []
        per_round = len(WORKLOADS) * 2 * (args.duration + 35)
        budget = 300 + args.runs * per_round + (4 * 300 if part.key == "db" else 0)
        try:
            with run.deadline(budget):
                if part.key == "https":
                    part_https(args, work, owned, part)
                else:
                    part_db(args, work, owned, clusters, part)
        except (Exception, run.Timeout, KeyboardInterrupt) as exc:
            part.error = f"{type(exc).__name__}: {exc}".strip()
            run.log(f"part {part.key} failed:\n{traceback.format_exc()}")
            for p in owned:
                run.log(f"{p.name} pid {p.pid} log tail:\n{p.tail()}")
            status = 2
        finally:
            for p in reversed(owned):
                p.stop()
            for cluster in reversed(clusters):
                cluster.stop()
            if args.keep:
                run.log(f"kept {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
        if part.error:
            break  # stop at the first failure
    run.emit(render(parts, args, command, started), args.output)
    errors = sum(r.non2xx + r.sock_errors for p in parts for runs in p.runs.values() for r in runs)
    return status or (1 if errors else 0)


if __name__ == "__main__":
    raise SystemExit(main())
