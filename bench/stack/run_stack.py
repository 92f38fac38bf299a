"""Throwaway HTTP-stack comparison: raw ASGI / Starlette on uvicorn, granian ASGI / RSGI.

Usage: python bench/stack/run_stack.py [--runs 3] [--duration 10] [--only NAME ...]
Prints a markdown table of medians (req/s, p50, p99) for GET and PUT.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from wrkbench import Owned, Summary, free_port, run_wrk, summarize, wait_http  # noqa: E402

PY = sys.executable
GRANIAN = shutil.which("granian") or "granian"
PATH = "/v1/ns/bench/kv/key0001"
GET_LUA = 'wrk.method = "GET"\n'
PUT_LUA = (HERE / "put.lua").read_text()


def commands(port: int) -> dict[str, list[str]]:
    host = ["--host", "127.0.0.1", "--port", str(port)]
    uv = [
        PY,
        "-m",
        "uvicorn",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
        *host,
    ]
    gr = [GRANIAN, "--http", "1", "--loop", "uvloop", "--log-level", "warning", *host]
    out: dict[str, list[str]] = {}
    for w in (1, 2):
        out[f"uvicorn raw ASGI, {w}w"] = [*uv, "--workers", str(w), "raw_asgi:app"]
        out[f"uvicorn Starlette, {w}w"] = [*uv, "--workers", str(w), "starlette_app:app"]
        out[f"granian ASGI, {w}w"] = [
            *gr,
            "--interface",
            "asgi",
            "--workers",
            str(w),
            "raw_asgi:app",
        ]
        out[f"granian RSGI, {w}w"] = [
            *gr,
            "--interface",
            "rsgi",
            "--workers",
            str(w),
            "rsgi_app:app",
        ]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--only", nargs="*", default=None, help="substrings of stack names")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="galerakv-stack-"))
    rows: list[tuple[str, Summary, Summary]] = []
    try:
        port = free_port()
        for name, argv in commands(port).items():
            if args.only and not any(o in name for o in args.only):
                continue
            server = Owned(name, argv, work / "server.log", cwd=str(HERE))
            try:
                wait_http(port, PATH, 20.0, server.proc)
                run_wrk(f"http://127.0.0.1:{port}{PATH}", GET_LUA, duration=2, workdir=work)
                res: dict[str, Summary] = {}
                for label, lua in (("GET", GET_LUA), ("PUT", PUT_LUA)):
                    runs = [
                        run_wrk(
                            f"http://127.0.0.1:{port}{PATH}",
                            lua,
                            duration=args.duration,
                            connections=args.connections,
                            workdir=work,
                        )
                        for _ in range(args.runs)
                    ]
                    res[label] = summarize(runs)
                rows.append((name, res["GET"], res["PUT"]))
                g, p = res["GET"], res["PUT"]
                print(
                    f"{name}: GET {g.rps:.0f} req/s p50 {g.p50_ms:.2f} p99 {g.p99_ms:.2f} | "
                    f"PUT {p.rps:.0f} p50 {p.p50_ms:.2f} p99 {p.p99_ms:.2f} "
                    f"errors {g.errors + p.errors}",
                    file=sys.stderr,
                    flush=True,
                )
            except Exception:
                print(f"{name} failed; server log:\n{server.tail()}", file=sys.stderr)
                raise
            finally:
                server.stop()
                time.sleep(0.5)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nwrk -t2 -c{args.connections} -d{args.duration}s --latency; medians of {args.runs} runs\n")
    print("| stack | GET req/s | GET p50 ms | GET p99 ms | PUT req/s | PUT p50 ms | PUT p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, g, p in rows:
        print(
            f"| {name} | {g.rps:,.0f} | {g.p50_ms:.2f} | {g.p99_ms:.2f} | "
            f"{p.rps:,.0f} | {p.p50_ms:.2f} | {p.p99_ms:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
