"""The change feed under write load: galerakv's /watch (server-sent events) beside etcd's watch.

While wrk PUTs over the preloaded keys (as `bench/run.py`'s PUT workload), W watchers follow
the whole key range (galerakv: `GET /v1/ns/bench/watch`; etcd: `POST /v3/watch` on the
range bench/..bench0 through its v3 JSON gateway), and a probe writer (not wrk) writes new
keys `probe-NNNNNN` at `--probe-rate` writes/s. Measured for W = 0 (the baseline) and each
of `--watchers`:

- PUT req/s and p99 of wrk, and the ratio to W = 0 (the feed's cost on writes);
- events/s received per watcher (median over the watchers) and by all watchers together,
  while wrk runs, and that rate over the write rate (wrk's + the probe's);
- write -> event latency: for every probe write and every watcher, the time the watcher
  received the probe's event minus the time the probe writer got the write's 2xx (one
  CLOCK_MONOTONIC, two processes; negative when the event beats the answer, kept as is);
  p50/p99 over all (probe, watcher) pairs of a run;
- after the load: one more write (the fence) and the time until every watcher has received it
  (catch-up), and how many revisions each watcher was behind when wrk stopped (backlog);
- checks: every watcher follows every key of the namespace, and every write takes the next
  revision, so a watcher must receive exactly (last revision - start revision) events, in
  revision order, and each probe's event at the revision its write answered. Misses,
  duplicates, reordering, unseen probes, wrong revisions and watcher errors are reported and
  make the exit status 1.

The watchers run in one child process (`--child`: asyncio on uvloop, one raw TCP
connection each, HTTP/1.1 chunked decoding, events counted with bytes.count: no per-event
Python work except for probe events). Rounds alternate galerakv and etcd for each W. Every
server is started here on loopback (reusing bench/run.py), every loop is bounded in count and
time, and only processes started here are stopped, by PID.

    python bench/watch.py                                   # SQLite vs 1 etcd member
    python bench/watch.py --runs 3 --duration 6 --output bench/results/watch.md
    python bench/watch.py --backend galera --runs 3 --duration 6   # a fresh 3-node cluster vs 3 etcd members
    python bench/watch.py --backend galera --galera-config <running cluster>/galerakv.toml
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import http.client
import json
import math
import os
import queue
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run
from galera import GaleraCluster
from wrkbench import Owned, WrkResult, process_tree, run_wrk

NS = run.NS
PROBE = "probe-"  # the probe writer's keys: probe-NNNNNN (galerakv), bench/probe-NNNNNN (etcd)
PROBE_B64 = base64.b64encode(f"{NS}/{PROBE}".encode()).decode()  # 12 bytes: a whole base64 prefix
assert len(f"{NS}/{PROBE}") % 3 == 0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ====================================================================== the watcher child


class Watcher(asyncio.Protocol):
    """One watch stream on a raw connection: HTTP/1.1 head, chunked decoding, counting.

    galerakv: SSE blocks end with a blank line; an event is `id: R`, `event: put|delete`,
    `data: {...}`. etcd: one JSON message a line, `{"result": {"header": ..., "events":
    [{"kv": {"key": b64, "mod_revision": "R", ...}}]}}`.
    """

    def __init__(self, kind: str, request: bytes) -> None:
        self.kind = kind
        self.request = request
        self.sse = kind == "galerakv"
        self.sep = b"\n\n" if self.sse else b"\n"
        self.raw = bytearray()
        self.payload = bytearray()
        self.head_done = False
        self.chunked = False
        self.chunk_left = 0
        self.need_crlf = False
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.start_rev: int | None = None
        self.events = 0
        self.last_rev = 0
        self.order_errors = 0
        self.errors: list[str] = []
        self.probes: dict[int, tuple[float, int]] = {}  # probe number -> (time received, revision)
        self.target_rev = 0  # the fence: time when last_rev reached it
        self.caught_up: float | None = None
        self.closing = False

    # ---------------------------------------------------------------- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            self.fail(f"connection closed by the server after {self.events} events ({exc or 'EOF'})")

    def fail(self, why: str) -> None:
        if len(self.errors) < 10:
            self.errors.append(why)
        if not self.ready.done():
            self.ready.set_exception(RuntimeError(why))

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if not self.head_done:
            self.raw += data
            end = self.raw.find(b"\r\n\r\n")
            if end < 0:
                if len(self.raw) > 65536:
                    self.fail("no end of the response head in 64 KiB")
                return
            head = bytes(self.raw[:end]).decode("latin-1").split("\r\n")
            data = bytes(self.raw[end + 4 :])
            self.raw.clear()
            self.head_done = True
            if not head[0].startswith("HTTP/1.1 200"):
                self.fail(f"{head[0]!r}: {data[:300]!r}")
                return
            for line in head[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "transfer-encoding" and "chunked" in value.lower():
                    self.chunked = True
                elif name == "x-galerakv-revision":
                    self.start_rev = int(value)
        if not self.chunked:
            self.feed(data, now)
            return
        buf = self.raw
        buf += data
        pos = 0
        out: list[bytes] = []
        while True:  # bounded: every pass consumes input or stops
            if self.chunk_left:
                take = min(self.chunk_left, len(buf) - pos)
                if take == 0:
                    break
                out.append(bytes(buf[pos : pos + take]))
                pos += take
                self.chunk_left -= take
                if self.chunk_left:
                    break
                self.need_crlf = True
            if self.need_crlf:
                if len(buf) - pos < 2:
                    break
                pos += 2
                self.need_crlf = False
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
            pos = eol + 2
            if size == 0:
                if not self.closing:
                    self.fail(f"the stream ended after {self.events} events")
                break
            self.chunk_left = size
        del buf[:pos]
        if out:
            self.feed(b"".join(out), now)

    # ---------------------------------------------------------------- the events

    def feed(self, data: bytes, now: float) -> None:
        self.payload += data
        end = self.payload.rfind(self.sep)
        if end < 0:
            return
        end += len(self.sep)
        block = bytes(self.payload[:end])
        del self.payload[:end]
        if self.sse:
            self.sse_block(block, now)
        else:
            self.etcd_block(block, now)
        if self.target_rev and self.caught_up is None and self.last_rev >= self.target_rev:
            self.caught_up = now

    def advance(self, n: int, first: int, last: int) -> None:
        if first <= self.last_rev or last < first:
            self.order_errors += 1
        self.events += n
        self.last_rev = last

    def sse_block(self, block: bytes, now: float) -> None:
        if not self.ready.done():
            if block.startswith(b"retry:") and self.start_rev is not None:
                self.last_rev = self.start_rev
                self.ready.set_result(None)
            else:
                self.fail(f"unexpected start of the event stream: {block[:200]!r}")
                return
        n = block.count(b"\nevent: put\n") + block.count(b"\nevent: delete\n")
        if block.count(b"event: ") != n:
            self.fail(f"unexpected event: {block[block.find(b'event: ') :][:300]!r}")
        if not n:
            return
        a = 0 if block.startswith(b"id: ") else block.find(b"\n\nid: ") + 2
        b = block.rfind(b"\n\nid: ")
        b = a if b < a else b + 2
        first = int(block[a + 4 : block.index(b"\n", a)])
        last = int(block[b + 4 : block.index(b"\n", b)])
        self.advance(n, first, last)
        i = block.find(b'"key":"' + PROBE.encode())
        while i >= 0:  # only probe events are parsed: a few per second
            j = i + 7 + len(PROBE)
            num = int(block[j : block.index(b'"', j)])
            rev = block.rfind(b"id: ", 0, i)
            self.probes.setdefault(num, (now, int(block[rev + 4 : block.index(b"\n", rev)])))
            i = block.find(b'"key":"' + PROBE.encode(), j)

    def etcd_block(self, block: bytes, now: float) -> None:
        if not self.ready.done():
            first_line = block.split(b"\n", 1)[0]
            msg = json.loads(first_line)
            result = msg.get("result", {})
            if not result.get("created"):
                self.fail(f"unexpected first watch message: {first_line[:300]!r}")
                return
            self.start_rev = self.last_rev = int(result["header"]["revision"])
            self.ready.set_result(None)
            block = block[len(first_line) + 1 :]
        if b'"error"' in block or b'"canceled":true' in block:
            self.fail(f"watch error: {block[:300]!r}")
        n = block.count(b'"kv":{')
        if not n:
            return
        tag = b'"mod_revision":"'
        a = block.find(tag) + len(tag)
        b = block.rfind(tag) + len(tag)
        self.advance(n, int(block[a : block.index(b'"', a)]), int(block[b : block.index(b'"', b)]))
        pat = b'"key":"' + PROBE_B64.encode()
        i = block.find(pat)
        while i >= 0:
            j = i + len(pat)
            num = int(base64.b64decode(block[j : j + 8]))  # 6 digits = 8 base64 characters
            r = block.find(tag, j) + len(tag)
            self.probes.setdefault(num, (now, int(block[r : block.index(b'"', r)])))
            i = block.find(pat, j)

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def report(self) -> dict[str, Any]:
        start = self.start_rev or 0
        return {
            "start_rev": start,
            "last_rev": self.last_rev,
            "events": self.events,
            "missed": (self.last_rev - start) - self.events,  # < 0: duplicates
            "order_errors": self.order_errors,
            "errors": self.errors,
            "caught_up": self.caught_up,
            "probes": {str(k): v for k, v in self.probes.items()},
        }


def watch_request(kind: str, port: int, keys_only: bool) -> bytes:
    host = f"Host: 127.0.0.1:{port}\r\n"
    if kind == "galerakv":
        query = "?keys_only=true" if keys_only else ""
        return f"GET /v1/ns/{NS}/watch{query} HTTP/1.1\r\n{host}Accept: text/event-stream\r\n\r\n".encode()
    create = {"key": run.b64(f"{NS}/".encode()), "range_end": run.b64(f"{NS}0".encode())}  # values always come
    body = json.dumps({"create_request": create}).encode()
    return (
        f"POST /v3/watch HTTP/1.1\r\n{host}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def child_main(spec: dict[str, Any]) -> int:
    """Commands on stdin, one a line: begin, end (snapshots), drain REV SECONDS (wait until
    every watcher has REV, then the report and exit). Answers on stdout, one JSON a line."""
    loop = asyncio.get_running_loop()
    hard = loop.time() + float(spec["max_seconds"])
    request = watch_request(spec["kind"], int(spec["port"]), bool(spec["keys_only"]))
    watchers = [Watcher(spec["kind"], request) for _ in range(int(spec["watchers"]))]

    async def connect(w: Watcher) -> None:
        await loop.create_connection(lambda: w, "127.0.0.1", int(spec["port"]))
        await w.ready

    try:
        await asyncio.wait_for(asyncio.gather(*(connect(w) for w in watchers)), float(spec["connect_timeout"]))
    except (TimeoutError, OSError, RuntimeError) as exc:
        emit({"error": f"watchers did not start: {exc!r}", "errors": [e for w in watchers for e in w.errors][:10]})
        return 1
    commands: asyncio.Queue[str] = asyncio.Queue()
    pending = bytearray()

    def on_stdin() -> None:
        data = os.read(sys.stdin.fileno(), 4096)
        if not data:
            loop.remove_reader(sys.stdin.fileno())
            commands.put_nowait("eof")
            return
        pending.extend(data)
        while b"\n" in pending:
            line, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            commands.put_nowait(line.decode().strip())

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    emit({"ready": True, "start_revs": [w.start_rev for w in watchers]})
    marks: dict[str, dict[str, Any]] = {}
    status = 0
    try:
        for _ in range(100):  # a handful of commands are expected
            left = hard - loop.time()
            try:
                cmd = await asyncio.wait_for(commands.get(), max(left, 0.001))
            except TimeoutError:
                emit({"error": "the child's time limit passed"})
                return 1
            word, *rest = cmd.split()
            if word in ("begin", "end"):
                marks[word] = {
                    "t": time.monotonic(),
                    "cpu": cpu_self(),
                    "events": [w.events for w in watchers],
                    "last_rev": [w.last_rev for w in watchers],
                }
                emit({"ok": word})
            elif word == "drain":
                target, seconds = int(rest[0]), float(rest[1])
                for w in watchers:
                    w.target_rev = target
                    if w.last_rev >= target and w.caught_up is None:
                        w.caught_up = time.monotonic()
                until = min(loop.time() + seconds, hard)
                while loop.time() < until and any(w.caught_up is None and not w.errors for w in watchers):
                    await asyncio.sleep(0.005)
                emit({"marks": marks, "watchers": [w.report() for w in watchers]})
                return 0
            else:  # eof or unknown: stop
                emit({"error": f"unexpected command {cmd!r}"})
                return 1
        status = 1
    finally:
        for w in watchers:
            w.close()
        await asyncio.sleep(0)
    return status


def child(spec_json: str) -> int:
    spec = json.loads(spec_json)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    result: int = runner(child_main(spec))
    return result


class WatcherProcess:
    """The child process holding the watchers (its own session; stopped by its PID)."""

    def __init__(self, spec: dict[str, Any], log_path: Path) -> None:
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        argv = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, start_new_session=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[bytes] | None) -> None:
        assert stream is not None
        for line in stream:
            self.lines.put(line.decode())
        self.lines.put("")

    def answer(self, timeout: float) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"watcher process {self.proc.pid}: no answer in {timeout:g} s") from None
        if not line:
            raise RuntimeError(f"watcher process {self.proc.pid} exited (rc {self.proc.poll()})")
        msg: dict[str, Any] = json.loads(line)
        if "error" in msg:
            raise RuntimeError(f"watcher process: {msg}")
        return msg

    def send(self, cmd: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd.encode() + b"\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(OSError):
                if self.proc.stdin is not None:
                    self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)  # its own group: our child's PID
                self.proc.wait(10)
        self._reader.join(5)
        self._log.close()


# ====================================================================== the probe writer


@dataclass
class Probe:
    num: int
    t_ok: float | None = None  # CLOCK_MONOTONIC when the 2xx was read
    revision: int | None = None
    error: str | None = None


class ProbeWriter:
    """Writes new keys probe-NNNNNN one at a time on one keep-alive connection."""

    def __init__(self, kind: str, port: int) -> None:
        self.kind = kind
        self.port = port
        self.conn: http.client.HTTPConnection | None = None
        self.next_num = 0

    def write(self) -> Probe:
        self.next_num += 1
        p = Probe(self.next_num)
        if self.kind == "galerakv":
            method, path = "PUT", f"/v1/ns/{NS}/kv/{PROBE}{p.num:06d}"
            body = b"probe"
            headers = {"Content-Type": "application/octet-stream"}
        else:
            method, path = "POST", "/v3/kv/put"
            key = f"{NS}/{PROBE}{p.num:06d}".encode()
            body = json.dumps({"key": run.b64(key), "value": run.b64(b"probe")}).encode()
            headers = {"Content-Type": "application/json"}
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            self.conn.request(method, path, body=body, headers=headers)
            resp = self.conn.getresponse()
            data = resp.read()
            p.t_ok = time.monotonic()
            if not 200 <= resp.status < 300:
                p.t_ok = None
                p.error = f"{resp.status} {data[:200]!r}"
            elif self.kind == "galerakv":
                p.revision = int(resp.getheader("X-Galerakv-Revision") or "0") or None
            else:
                p.revision = int(json.loads(data)["header"]["revision"])
            if p.t_ok is not None and p.revision is None:
                p.error = "no revision in the answer"
        except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
            p.error = repr(exc)
            self.close()
        return p

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def during(self, rate: float, stop: threading.Event, limit: int, out: list[Probe]) -> None:
        """`rate` writes/s until `stop` is set (at most `limit` writes)."""
        t0 = time.monotonic()
        for i in range(limit):
            if stop.wait(max(0.0, t0 + i / rate - time.monotonic())):
                return
            out.append(self.write())


# ====================================================================== one measurement


def cpu_ticks(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def server_watchers(t: Target) -> int | None:
    """Watch streams the server holds now: galerakv's /v1/status watch.watchers (of the worker
    that answers), etcd's etcd_debugging_mvcc_watcher_total gauge from /metrics."""
    try:
        if t.name == "galerakv":
            status, data = run.http_call(t.port, "GET", "/v1/status", None, {})
            return int(json.loads(data)["watch"]["watchers"]) if status == 200 else None
        status, data = run.http_call(t.port, "GET", "/metrics", None, {})
        for line in data.decode().splitlines():
            if line.startswith("etcd_debugging_mvcc_watcher_total "):
                return int(float(line.split()[1]))
    except (OSError, http.client.HTTPException, ValueError, KeyError):
        return None
    return None


def pct(xs: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(xs)
    return s[max(0, math.ceil(q / 100 * len(s)) - 1)]


@dataclass(frozen=True)
class Target:
    name: str  # galerakv or etcd
    port: int
    pids: tuple[int, ...]  # the server's processes (for CPU time)
    put_lua: str


@dataclass
class Measure:
    target: str
    watchers: int
    wrk: WrkResult
    window: float = 0.0
    eps: list[float] = field(default_factory=list)  # events/s of each watcher during wrk
    lat_ms: list[float] = field(default_factory=list)  # write 2xx -> event, every (probe, watcher)
    spread_ms: list[float] = field(default_factory=list)  # per probe: last watcher's event - first watcher's
    probes: int = 0
    probe_errors: list[str] = field(default_factory=list)
    unseen: int = 0  # (probe, watcher) pairs whose event never came
    wrong_rev: int = 0  # probe events at another revision than the write answered
    missed: int = 0  # events missing (or < 0: duplicated), all watchers
    order_errors: int = 0
    watcher_errors: list[str] = field(default_factory=list)
    backlog: list[int] = field(default_factory=list)  # revisions behind when wrk stopped, per watcher
    catch_up: float | None = None  # ms from the fence's 2xx until every watcher had it
    held: tuple[int | None, int | None, int | None] = (None, None, None)  # server's watchers before/during/after
    first_rev: int | None = None  # the store's revision when the load began (first probe's)
    server_cpu: float = 0.0  # % of one CPU during wrk
    client_cpu: float = 0.0
    load: float = 0.0

    @property
    def write_rate(self) -> float:
        return self.wrk.rps + (self.probes / self.window if self.window else 0.0)

    @property
    def leaked(self) -> int:
        """Watch streams the server still held 5 s after the watchers closed them."""
        before, _, after = self.held
        return max(0, after - before) if before is not None and after is not None else 0

    @property
    def problems(self) -> int:
        return (
            self.wrk.non2xx
            + self.wrk.sock_errors
            + len(self.probe_errors)
            + self.unseen
            + self.wrong_rev
            + abs(self.missed)
            + self.order_errors
            + len(self.watcher_errors)
            + self.leaked
        )


def measure(t: Target, watchers: int, args: argparse.Namespace, work: Path) -> Measure:
    wp: WatcherProcess | None = None
    prober = ProbeWriter(t.name, t.port)
    before = server_watchers(t)
    during: int | None = None
    try:
        if watchers:
            spec = {
                "kind": t.name,
                "port": t.port,
                "watchers": watchers,
                "keys_only": args.keys_only,
                "connect_timeout": 30.0,
                "max_seconds": args.duration + args.drain + 90.0,
            }
            wp = WatcherProcess(spec, work / "watchers.log")
            wp.answer(40.0)
            during = server_watchers(t)
        probes: list[Probe] = []
        stop = threading.Event()
        thread = threading.Thread(
            target=prober.during,
            args=(args.probe_rate, stop, int(args.probe_rate * (args.duration + 30)) + 1, probes),
            daemon=True,
        )
        pids = process_tree(t.pids[0]) if t.name == "galerakv" else list(t.pids)
        if wp is not None:
            wp.send("begin")
            wp.answer(10.0)
        c0, t0 = cpu_ticks(pids), time.monotonic()
        thread.start()
        try:
            res = run_wrk(
                f"http://127.0.0.1:{t.port}/",
                t.put_lua,
                threads=args.threads,
                connections=args.connections,
                duration=args.duration,
                workdir=work,
            )
        finally:
            stop.set()
            thread.join(15)
        c1, t1 = cpu_ticks(pids), time.monotonic()
        m = Measure(t.name, watchers, res, load=os.getloadavg()[0])
        m.server_cpu = 100.0 * (c1 - c0) / CLK_TCK / (t1 - t0)
        m.first_rev = next((p.revision for p in probes if p.revision is not None), None)
        m.probes = len(probes)
        m.probe_errors = [f"probe {p.num}: {p.error}" for p in probes if p.error]
        if wp is None:
            m.window = t1 - t0
            m.held = (before, None, server_watchers(t))
            return m
        wp.send("end")
        wp.answer(10.0)
        fence = prober.write()
        if fence.error or fence.revision is None:
            raise RuntimeError(f"{t.name}: the fence write failed: {fence.error}")
        wp.send(f"drain {fence.revision} {args.drain}")
        report = wp.answer(args.drain + 30.0)
    finally:
        prober.close()
        if wp is not None:
            wp.stop()
    after = server_watchers(t)
    for _ in range(50):  # the server may take a moment to notice the closed streams: up to 5 s
        if after is None or before is None or after <= before:
            break
        time.sleep(0.1)
        after = server_watchers(t)
    m.held = (before, during, after)
    marks, ws = report["marks"], report["watchers"]
    m.window = marks["end"]["t"] - marks["begin"]["t"]
    m.client_cpu = 100.0 * (marks["end"]["cpu"] - marks["begin"]["cpu"]) / m.window
    m.eps = [(e1 - e0) / m.window for e0, e1 in zip(marks["begin"]["events"], marks["end"]["events"], strict=True)]
    m.backlog = [fence.revision - 1 - r for r in marks["end"]["last_rev"]]
    caught = [w["caught_up"] for w in ws]
    if fence.t_ok is not None and all(c is not None for c in caught):
        m.catch_up = (max(caught) - fence.t_ok) * 1000
    for p in probes:
        times = [got[0] for w in ws if (got := w["probes"].get(str(p.num))) is not None]
        if len(times) > 1:
            m.spread_ms.append((max(times) - min(times)) * 1000)
    for w in ws:
        m.missed += w["missed"]
        m.order_errors += w["order_errors"]
        m.watcher_errors += w["errors"]
        seen = w["probes"]
        for p in probes:
            if p.t_ok is None:
                continue
            got = seen.get(str(p.num))
            if got is None:
                m.unseen += 1
                continue
            m.lat_ms.append((got[0] - p.t_ok) * 1000)
            if got[1] != p.revision:
                m.wrong_rev += 1
    return m


# ====================================================================== report


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def num(x: float | None, fmt: str = ",.0f") -> str:
    return "-" if x is None or math.isnan(x) else format(x, fmt)


def table(results: dict[tuple[str, int], list[Measure]], counts: list[int], names: list[str]) -> str:
    head = [
        "watchers",
        "server",
        "PUT req/s",
        "vs 0 watchers",
        "PUT p99 ms",
        "events/s per watcher",
        "events/s all watchers",
        "received/written",
        "write->event p50 ms",
        "p99 ms",
        "backlog at end (max revs)",
        "catch-up ms",
        "problems",
    ]
    lines = ["| " + " | ".join(head) + " |", "|---:|---|" + "---:|" * (len(head) - 3) + "---|"]
    for w in counts:
        for n in names:
            ms = results.get((n, w))
            if not ms:
                continue
            base = results.get((n, 0))
            rps = med([m.wrk.rps for m in ms])
            vs = "1.00" if w == 0 else (f"{rps / med([m.wrk.rps for m in base]):.2f}" if base else "-")
            if w:
                per = med([med(m.eps) for m in ms])
                total = med([sum(m.eps) for m in ms])
                frac = med([med(m.eps) / m.write_rate for m in ms if m.write_rate])
                p50 = med([pct(m.lat_ms, 50) for m in ms if m.lat_ms])
                p99 = med([pct(m.lat_ms, 99) for m in ms if m.lat_ms])
                backlog = med([max(m.backlog) for m in ms if m.backlog])
                cus = [m.catch_up for m in ms]
                cu = num(med([c for c in cus if c is not None]), ".1f") + (
                    ""
                    if all(c is not None for c in cus)
                    else f" ({sum(c is None for c in cus)} runs: not all within --drain)"
                )
                extra = [num(per), num(total), num(frac, ".2f"), num(p50, ".1f"), num(p99, ".1f"), num(backlog), cu]
            else:
                extra = ["-"] * 7
            problems = sum(m.problems for m in ms)
            lines.append(
                "| "
                + " | ".join(
                    [
                        str(w),
                        n,
                        num(rps),
                        vs,
                        num(med([m.wrk.p99_ms for m in ms]), ".2f"),
                        *extra,
                        str(problems) if problems else "none",
                    ]
                )
                + " |"
            )
    return "\n".join(lines)


def spread(m: Measure) -> str:
    if not m.spread_ms:
        return ""
    return (
        f"; one probe's event from the first to the last watcher: p50 {pct(m.spread_ms, 50):.1f}, "
        f"max {max(m.spread_ms):.1f} ms"
    )


def per_run(results: dict[tuple[str, int], list[Measure]], counts: list[int], names: list[str]) -> str:
    out = []
    for w in counts:
        for n in names:
            for i, m in enumerate(results.get((n, w), []), 1):
                s = (
                    f"- {w} watchers, {n}, round {i}: PUT {m.wrk.rps:,.0f} req/s "
                    f"(p50 {m.wrk.p50_ms:.2f} / p99 {m.wrk.p99_ms:.2f} ms)"
                )
                s += f", server CPU {m.server_cpu:.0f} %"
                if w:
                    s += (
                        f", watcher process CPU {m.client_cpu:.0f} %; events/s per watcher median {med(m.eps):,.0f} "
                        f"(min {min(m.eps):,.0f}, max {max(m.eps):,.0f}), all {sum(m.eps):,.0f}; "
                        f"latency p50 {num(pct(m.lat_ms, 50) if m.lat_ms else None, '.1f')}, "
                        f"p99 {num(pct(m.lat_ms, 99) if m.lat_ms else None, '.1f')}, "
                        f"min {num(min(m.lat_ms) if m.lat_ms else None, '.1f')}, "
                        f"max {num(max(m.lat_ms) if m.lat_ms else None, '.1f')} ms over {len(m.lat_ms)} "
                        f"(probe, watcher) pairs{spread(m)}; "
                        f"backlog at end median {med(m.backlog):,.0f} max {max(m.backlog):,} revs; "
                        f"catch-up {num(m.catch_up, '.1f')} ms"
                    )
                held = "/".join("?" if x is None else str(x) for x in m.held)
                s += f"; server's watch streams before/during/after {held}"
                s += f"; store at revision {num(m.first_rev)} when the load began; 1-min load {m.load:.1f}"
                bad = []
                if m.wrk.non2xx or m.wrk.sock_errors:
                    bad.append(f"wrk non-2xx {m.wrk.non2xx}, socket errors {m.wrk.sock_errors}")
                if m.probe_errors:
                    bad.append(f"probe errors {len(m.probe_errors)} (first: {m.probe_errors[0]})")
                if m.unseen:
                    bad.append(f"probe events never received {m.unseen}")
                if m.wrong_rev:
                    bad.append(f"probe events at another revision {m.wrong_rev}")
                if m.missed:
                    bad.append(f"events missed {m.missed}" if m.missed > 0 else f"events duplicated {-m.missed}")
                if m.order_errors:
                    bad.append(f"out-of-order blocks {m.order_errors}")
                if m.leaked:
                    bad.append(f"watch streams still held by the server 5 s after closing {m.leaked}")
                if m.watcher_errors:
                    bad.append(f"watcher errors {len(m.watcher_errors)} (first: {m.watcher_errors[0]})")
                if bad:
                    s += "; PROBLEMS: " + "; ".join(bad)
                out.append(s)
    return "\n".join(out)


# ====================================================================== main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--backend",
        choices=["sqlite", "galera"],
        default="sqlite",
        help="galerakv on SQLite vs 1 etcd member, or on a local 3-node Galera cluster vs 3 members",
    )
    ap.add_argument(
        "--galera-config",
        type=Path,
        default=None,
        help="with --backend galera: the galerakv.toml of a running cluster (left running)",
    )
    ap.add_argument("--galera-nodes", type=int, default=3)
    ap.add_argument("--galera-first-address", default="127.0.0.41")
    ap.add_argument("--route", choices=["nodes", "balancer"], default="nodes", help="with --backend galera")
    ap.add_argument(
        "--engine",
        choices=["granian", "uvicorn"],
        default=None,
        help="with --backend galera: server.engine (default: the server's)",
    )
    ap.add_argument("--etcd-members", type=int, default=None, help="default: 1 (sqlite), 3 (galera)")
    ap.add_argument("--workers", type=int, default=1, help="galerakv worker processes")
    ap.add_argument("--runs", type=int, default=3, help="rounds (medians are quoted)")
    ap.add_argument("--duration", type=int, default=10, help="seconds of wrk PUT load per measurement")
    ap.add_argument("--watchers", default="1,100", help="watcher counts measured besides 0 (comma-separated)")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections (the writers)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--probe-rate", type=float, default=20.0, help="probe writes/s (new keys) during the load")
    ap.add_argument(
        "--drain",
        type=float,
        default=15.0,
        help="seconds to wait after the load for every watcher to receive the fence write",
    )
    ap.add_argument("--keys-only", action="store_true", help="galerakv watchers with keys_only=true")
    ap.add_argument("--only", choices=["galerakv", "etcd"], default=None, help="one side alone (smoke test)")
    ap.add_argument("--output", type=Path, default=None, help="also write the report here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        return child(args.child)
    try:
        counts = [0, *sorted({int(x) for x in args.watchers.split(",") if x.strip()} - {0})]
    except ValueError:
        ap.error("--watchers: whole numbers separated by commas, e.g. 1,100")
    if any(c < 0 or c > 5000 for c in counts):
        ap.error("--watchers: from 1 to 5000")
    if args.probe_rate <= 0 or args.probe_rate > 1000:
        ap.error("--probe-rate: more than 0, at most 1000")
    if args.value_size < 16:
        ap.error("--value-size must be >= 16")
    galera_mode = args.backend == "galera"
    if args.galera_config is not None and not galera_mode:
        ap.error("--galera-config is for --backend galera")
    names = [args.only] if args.only else ["galerakv", "etcd"]
    etcd_members = args.etcd_members or (3 if galera_mode else 1)
    per_measure = args.duration + args.drain + 60
    budget = int(
        120
        + 2 * len(names) * 30
        + args.runs * len(counts) * len(names) * per_measure
        + (2 * 300 + 60 if galera_mode else 0)
    )
    command = "python bench/watch.py " + shlex.join(sys.argv[1:])
    work = Path(tempfile.mkdtemp(prefix="galerakv-watch-"))
    owned: list[Owned] = []
    cluster: GaleraCluster | None = None
    results: dict[tuple[str, int], list[Measure]] = {}
    descs: dict[str, str] = {}
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()[0]
    try:
        with run.deadline(budget):
            targets: list[Target] = []
            if galera_mode and "galerakv" in names:
                cluster = run.open_cluster(args)
                cluster.start()
            for name in names:
                if name == "galerakv":
                    g, gport = run.start_galerakv(
                        work, args.workers, None, "galerakv", cluster, args.engine, args.route
                    )
                    owned.append(g)
                    log(f"galerakv pid {g.pid} on 127.0.0.1:{gport}")
                    run.preload_galerakv(gport, args.keys, args.value_size)
                    _, put = run.galerakv_requests(args.keys, args.value_size)
                    targets.append(Target("galerakv", gport, (g.pid,), put.lua()))
                else:
                    es, eport, edesc = run.start_etcd(work, etcd_members)
                    owned.extend(es)
                    descs["etcd"] = f"{edesc}, v3 JSON gateway: PUT /v3/kv/put, watch POST /v3/watch"
                    log(f"etcd pids {[e.pid for e in es]}, {edesc}, on 127.0.0.1:{eport}")
                    run.preload_etcd(eport, args.keys, args.value_size)
                    _, put = run.etcd_requests(args.keys, args.value_size, False)
                    targets.append(Target("etcd", eport, tuple(e.pid for e in es), put.lua()))
            log(f"preloaded {args.keys} keys of {args.value_size} bytes")
            for t in targets:  # warm-up, not counted
                run_wrk(
                    f"http://127.0.0.1:{t.port}/",
                    t.put_lua,
                    threads=args.threads,
                    connections=args.connections,
                    duration=2,
                    workdir=work,
                )
            for r in range(args.runs):
                for w in counts:
                    for t in targets:
                        m = measure(t, w, args, work)
                        results.setdefault((t.name, w), []).append(m)
                        lat = (
                            f", latency p50 {pct(m.lat_ms, 50):.1f} p99 {pct(m.lat_ms, 99):.1f} ms" if m.lat_ms else ""
                        )
                        log(
                            f"round {r + 1}/{args.runs} {t.name} {w} watchers: PUT {m.wrk.rps:,.0f} req/s, "
                            f"events/s per watcher {num(med(m.eps))}{lat}, problems {m.problems}, "
                            f"load {m.load:.1f}"
                        )
    except (run.Timeout, KeyboardInterrupt) as exc:
        log(f"aborted: {exc!r}")
        return 2
    finally:
        run.tear_down(owned, cluster, work, args.keep)

    if galera_mode:
        n_nodes = len(cluster.nodes) if cluster is not None else args.galera_nodes
        descs["galerakv"] = (
            f"MariaDB Galera, {n_nodes} nodes on loopback, route={args.route}, "
            f"{args.workers} worker(s), engine {args.engine or 'default'}"
        )
    else:
        descs["galerakv"] = f"SQLite, {args.workers} worker(s)"
    descs.setdefault("etcd", f"{etcd_members} member(s)")
    header = " vs ".join(f"{n} ({descs[n]})" for n in names)
    mariadb = f", MariaDB {cluster.mariadb_version()}" if cluster is not None else ""
    loads = [m.load for ms in results.values() for m in ms]
    load = f"1-min load average {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    if loads:
        load += f" ({min(loads):.1f}-{max(loads):.1f} after each measurement)"
    problems = sum(m.problems for ms in results.values() for m in ms)
    watch_kind = "keys_only=true" if args.keys_only else "with values"
    lines = [
        f"{header}, {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Writers: wrk -t{args.threads} -c{args.connections} -d{args.duration}s PUT over {args.keys} keys of "
        f"{args.value_size} bytes, plus a probe writer at {args.probe_rate:g} writes/s of new keys. Watchers: "
        f"one child process, asyncio on raw sockets, each watcher on its own connection following the whole "
        f"namespace ({watch_kind}; galerakv GET /v1/ns/{NS}/watch, etcd watch of {NS}/..{NS}0). Medians of "
        f"{args.runs} rounds alternating galerakv and etcd for each watcher count.",
        "",
        table(results, counts, names),
        "",
        "Columns: vs 0 watchers = PUT req/s over the same server's with no watcher (the feed's cost); "
        "events/s per watcher = median over the watchers of the events each received while wrk ran; "
        "received/written = that over the write rate (wrk + probe); write->event = time a watcher received a "
        "probe write's event minus the time the probe writer read the write's 2xx, over every (probe, watcher) "
        "pair of a run (negative: the event came first); backlog at end = revisions the furthest-behind "
        "watcher still had to receive when wrk stopped; catch-up = from the 2xx of one more write after the "
        "load until every watcher had its event; problems = wrk errors + probe errors + missed, duplicated or "
        "out-of-order events + probe events never received or at the wrong revision + watcher errors "
        "+ watch streams the server still held 5 s after the watchers closed them.",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {run.versions()}{mariadb}. wrk, the watchers and the servers share the CPUs; {load}.",
        "",
        "Per run:",
        "",
        per_run(results, counts, names),
        "",
        f"Problems: {problems}.",
    ]
    run.emit("\n".join(lines), args.output)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
