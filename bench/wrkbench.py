"""Shared helpers for the benchmarks: free ports, owned processes, wrk runs, RSS sampling."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

WRK = "/usr/bin/wrk"

# Appended to every wrk script: print one JSON line with exact numbers.
REPORT_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\"requests\": %d, \"duration_us\": %d, \"p50_us\": %d, \"p99_us\": %d, "
    .. "\"max_us\": %d, \"non2xx\": %d, \"sock_errors\": %d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    non2xx: int
    sock_errors: int


@dataclass(frozen=True)
class Summary:
    """Medians over several runs of one scenario."""

    rps: float
    p50_ms: float
    p99_ms: float
    runs: tuple[WrkResult, ...]

    @property
    def errors(self) -> int:
        return sum(r.non2xx + r.sock_errors for r in self.runs)


def summarize(runs: Sequence[WrkResult]) -> Summary:
    return Summary(
        rps=statistics.median(r.rps for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        runs=tuple(runs),
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(
    port: int, path: str, timeout: float, proc: subprocess.Popen[bytes], context: ssl.SSLContext | None = None
) -> None:
    """Wait until GET path on 127.0.0.1:port answers 2xx, or fail; over TLS with ``context``."""
    deadline = time.monotonic() + timeout
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.pid} exited with {proc.returncode} while starting")
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=1.0) as raw,
                context.wrap_socket(raw, server_hostname="127.0.0.1") if context else contextlib.nullcontext(raw) as s,
            ):
                s.sendall(request)
                head = s.recv(64).decode("latin-1")
                if head.startswith("HTTP/1.1 2") or head.startswith("HTTP/1.0 2"):
                    return
                last = head.splitlines()[0] if head else "empty reply"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise RuntimeError(f"127.0.0.1:{port}{path} not ready after {timeout}s ({last})")


class Owned:
    """A process this benchmark started, in its own process group; stopped by its PID."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log = log
        self._logf = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc: subprocess.Popen[bytes] = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdout=self._logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the group led by our child (its workers), then SIGKILL what is left.

        The leader is not reaped until the end, so its PID (= the group id) cannot be
        reused by an unrelated process while we signal the group.
        """
        if self.proc.returncode is None:
            self._signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not self._exited_unreaped():
                time.sleep(0.05)
            self._signal(signal.SIGKILL)
            self.proc.wait(10)
        self._logf.close()

    def _exited_unreaped(self) -> bool:
        info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        return info is not None

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)  # the group id is our child's PID

    def tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def run_wrk(
    url: str,
    lua: str,
    *,
    threads: int = 2,
    connections: int = 32,
    duration: int = 10,
    workdir: Path,
) -> WrkResult:
    """One wrk run; lua is the request script (REPORT_LUA is appended)."""
    fd, script = tempfile.mkstemp(suffix=".lua", dir=workdir)
    with os.fdopen(fd, "w") as f:
        f.write(lua + "\n" + REPORT_LUA)
    argv = [
        WRK,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        "5s",
        "-s",
        script,
        url,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            d = json.loads(line[len("WRKJSON ") :])
            secs = d["duration_us"] / 1e6
            return WrkResult(
                rps=d["requests"] / secs if secs else 0.0,
                p50_ms=d["p50_us"] / 1000,
                p99_ms=d["p99_us"] / 1000,
                max_ms=d["max_us"] / 1000,
                requests=d["requests"],
                non2xx=d["non2xx"],
                sock_errors=d["sock_errors"],
            )
    raise RuntimeError(f"wrk gave no result (rc={out.returncode}): {out.stdout}{out.stderr}")


def process_tree(root: int) -> list[int]:
    """root and its descendants (from each /proc/PID/stat's ppid), root first."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()  # after "pid (comm) ": state ppid ...
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = [], [root]
    while todo and len(out) < 10_000:
        pid = todo.pop(0)
        out.append(pid)
        todo.extend(sorted(children.get(pid, [])))
    return out


def vm_rss_kb(pid: int) -> int | None:
    """VmRSS of a process in kB (None when it is gone or has no memory, e.g. a zombie)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class RssMax:
    """Maximum VmRSS per process of a process tree, sampled by a thread while `during()` is open.

    Accumulates over several `during()` blocks (e.g. one per wrk run).
    """

    def __init__(self, root: int, interval: float = 0.5) -> None:
        self.root = root
        self.interval = interval
        self.max_kb: dict[int, int] = {}
        self.samples = 0

    def sample(self) -> None:
        for pid in process_tree(self.root):
            kb = vm_rss_kb(pid)
            if kb is not None and kb > self.max_kb.get(pid, -1):
                self.max_kb[pid] = kb
        self.samples += 1

    @contextlib.contextmanager
    def during(self, max_seconds: float) -> Iterator[None]:
        """Sample every `interval` s until the block ends (at most max_seconds)."""
        stop = threading.Event()

        def loop() -> None:
            deadline = time.monotonic() + max_seconds
            while not stop.is_set() and time.monotonic() < deadline:
                self.sample()
                stop.wait(self.interval)

        thread = threading.Thread(target=loop, name="rss-sampler", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(max(5.0, 10 * self.interval))

    def describe(self) -> str:
        """e.g. 'serve (pid 10) 52.1, worker (pid 11) 88.4 MB'; the root is the serve process."""
        if not self.max_kb:
            return "no samples"
        parts = [
            f"{'serve' if pid == self.root else 'worker'} (pid {pid}) {kb / 1024:.1f}"
            for pid, kb in sorted(self.max_kb.items(), key=lambda x: (x[0] != self.root, x[0]))
        ]
        return ", ".join(parts) + " MB"
