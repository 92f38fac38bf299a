"""Prometheus metrics: cheap counters on the hot path, summed over worker processes at scrape time.

Each process counts into one flat array of 64-bit integers: a request costs one dict
lookup (its (method, route, status) series gives the index of its counter and of its
route's histogram) and three in-place additions, about what plain dicts cost.

With one process the array is anonymous memory. With several worker processes (``galerakv
serve`` with ``server.workers`` > 1) :func:`shared_directory` makes a private directory for
the run (mode 0700 under :func:`directory_parent`; its path in ``$GALERAKV_METRICS_DIR`` for
the workers) and removes it when the server stops. There each worker maps its array from a
file ``w<pid>-*.bin`` and appends the series each new index stands for to ``w<pid>-*.keys``
(rare: once per series). ``/metrics``, answered by whichever worker the connection reached,
reads every worker's pair of files and renders the sums: counters and histogram buckets
summed over the workers of this run, including workers that have exited (so the sums never
go down when a worker is replaced), and ``galerakv_process_start_time_seconds`` once per
live worker with its ``pid`` label.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import mmap
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH"})
"""The methods with a series of their own; every other method string counts as ``other``."""
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ENV_VAR = "GALERAKV_METRICS_DIR"
DIR_PREFIX = "galerakv-metrics-"

# The fixed head of every array; series are indexed from _FIRST on.
_MAGIC, _PID, _STARTED_NS, _EXITED, _PURGED, _FIRST = 0, 1, 2, 3, 4, 8
_MAGIC_VALUE = 0x67616C6572616B31  # "galerak1"
_HIST_SUM = len(BUCKETS) + 1  # a histogram: len(BUCKETS) + 1 bucket counts, then the sum in ns
_HIST_SIZE = _HIST_SUM + 1
_INITIAL_SLOTS = 1024

# kinds of series in a .keys file
_REQUESTS, _ERRORS, _HISTOGRAM = "r", "e", "h"


@dataclass
class _Totals:
    """Sums of one or more workers' arrays, in the shape the text format needs."""

    requests: dict[tuple[str, str, int], int] = field(default_factory=dict)
    errors: dict[tuple[str, str], int] = field(default_factory=dict)
    buckets: dict[str, list[int]] = field(default_factory=dict)
    sum_ns: dict[str, int] = field(default_factory=dict)
    purged: int = 0
    started: dict[int, float] = field(default_factory=dict)  # live workers: pid -> start time

    def add(self, series: list[tuple[str, tuple[str | int, ...], int]], values: list[int], live: bool) -> None:
        def at(i: int) -> int:
            return values[i] if i < len(values) else 0

        self.purged += at(_PURGED)
        if live:
            self.started[at(_PID)] = at(_STARTED_NS) / 1e9
        for kind, labels, index in series:
            if kind == _REQUESTS:
                key = (str(labels[0]), str(labels[1]), int(labels[2]))
                self.requests[key] = self.requests.get(key, 0) + at(index)
            elif kind == _ERRORS:
                ekey = (str(labels[0]), str(labels[1]))
                self.errors[ekey] = self.errors.get(ekey, 0) + at(index)
            elif kind == _HISTOGRAM:
                route = str(labels[0])
                counts = self.buckets.setdefault(route, [0] * (len(BUCKETS) + 1))
                for b in range(len(counts)):
                    counts[b] += at(index + b)
                self.sum_ns[route] = self.sum_ns.get(route, 0) + at(index + _HIST_SUM)


class Metrics:
    """One process's counters; ``directory`` shares them with the other workers of the run."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.started = time.time()
        self.directory = Path(directory) if directory is not None else None
        # (method, route, status) -> (index of its counter, first index of its route's histogram)
        self._request_slots: dict[tuple[str, str, int], tuple[int, int]] = {}
        self._error_slots: dict[tuple[str, str], int] = {}
        self._histograms: dict[str, int] = {}
        self._series: list[tuple[str, tuple[str | int, ...], int]] = []
        self._next = _FIRST
        self._fd: int | None = None
        self._keys_fd: int | None = None
        self.path: Path | None = None  # the array's file when shared
        if self.directory is not None:
            self._fd, name = tempfile.mkstemp(prefix=f"w{os.getpid()}-", suffix=".bin", dir=self.directory)
            self.path = Path(name)
        self._mm = self._map(_INITIAL_SLOTS)
        self._v = memoryview(self._mm).cast("q")
        self._v[_MAGIC] = _MAGIC_VALUE
        self._v[_PID] = os.getpid()
        self._v[_STARTED_NS] = int(self.started * 1e9)
        if self.path is not None:  # the .keys file last: readers take it as "this worker is there"
            self._keys_fd = os.open(self.path.with_suffix(".keys"),
                                    os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)

    def _map(self, slots: int) -> mmap.mmap:
        if self._fd is None:
            return mmap.mmap(-1, slots * 8)
        os.ftruncate(self._fd, slots * 8)
        return mmap.mmap(self._fd, slots * 8)

    # ------------------------------------------------------------------ the hot path

    def observe(self, method: str, route: str, status: int, seconds: float,
                error_code: str | None) -> None:
        slots = self._request_slots.get((method, route, status))
        if slots is None:
            if method not in METHODS:  # any client may send any method: the label set stays bounded
                method = "other"
            slots = self._request_slots.get((method, route, status)) or \
                self._new_request_series(method, route, status)
        v = self._v
        v[slots[0]] += 1
        hist = slots[1]
        v[hist + bisect.bisect_left(BUCKETS, seconds)] += 1
        v[hist + _HIST_SUM] += int(seconds * 1e9)
        if error_code is not None:
            index = self._error_slots.get((route, error_code))
            if index is None:
                index = self._error_slots[(route, error_code)] = self._add_series(_ERRORS, (route, error_code), 1)
            self._v[index] += 1  # not v: adding the series may have grown the array

    @property
    def purged(self) -> int:
        """Expired entries removed by this worker's TTL purge."""
        return int(self._v[_PURGED])

    @purged.setter
    def purged(self, value: int) -> None:
        self._v[_PURGED] = value

    # ------------------------------------------------------------------ new series (rare)

    def _new_request_series(self, method: str, route: str, status: int) -> tuple[int, int]:
        hist = self._histograms.get(route)
        if hist is None:
            hist = self._histograms[route] = self._add_series(_HISTOGRAM, (route,), _HIST_SIZE)
        index = self._add_series(_REQUESTS, (method, route, status), 1)
        slots = self._request_slots[(method, route, status)] = (index, hist)
        return slots

    def _add_series(self, kind: str, labels: tuple[str | int, ...], size: int) -> int:
        index = self._next
        if index + size > len(self._v):
            self._grow(max(2 * len(self._v), index + size))
        self._next += size
        self._series.append((kind, labels, index))
        if self._keys_fd is not None:  # one write(2) on an O_APPEND file: readers see whole lines
            os.write(self._keys_fd, f"{index}\t{kind}\t{json.dumps(labels)}\n".encode())
        return index

    def _grow(self, slots: int) -> None:
        old_mm, old_v = self._mm, self._v
        mm = self._map(slots)  # a file grows in place: the new mapping already holds the counts
        if self._fd is None:
            mm[: len(old_mm)] = old_mm
        self._mm, self._v = mm, memoryview(mm).cast("q")
        old_v.release()
        old_mm.close()

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """This worker stops: its counts stay in the sums, its start time leaves the gauges.

        The mapping and the .keys file stay open, so a request finishing after this still counts.
        """
        self._v[_EXITED] = 1

    # ------------------------------------------------------------------ scrape

    def totals(self) -> _Totals:
        """This process's counts, plus every other worker's of the run when shared."""
        totals = _Totals()
        totals.add(self._series, self._v.tolist(), live=True)
        if self.directory is not None:
            for path, series, values in read_workers(self.directory):
                if path != self.path:
                    totals.add(series, values, live=_alive(values))
        return totals

    def render(self, extra_gauges: dict[str, float] | None = None) -> bytes:
        t = self.totals()
        out: list[str] = []
        out += ["# HELP galerakv_requests_total HTTP requests by method, route and status.",
                "# TYPE galerakv_requests_total counter"]
        for (method, route, status), n in sorted(t.requests.items()):
            out.append(f'galerakv_requests_total{{method="{method}",route="{route}",'
                       f'status="{status}"}} {n}')
        out += ["# HELP galerakv_errors_total Error responses by route and problem code.",
                "# TYPE galerakv_errors_total counter"]
        for (route, code), n in sorted(t.errors.items()):
            out.append(f'galerakv_errors_total{{route="{route}",code="{code}"}} {n}')
        out += ["# HELP galerakv_request_duration_seconds Request latency by route.",
                "# TYPE galerakv_request_duration_seconds histogram"]
        for route, counts in sorted(t.buckets.items()):
            cumulative = 0
            for bound, n in zip(BUCKETS, counts, strict=False):
                cumulative += n
                out.append(f'galerakv_request_duration_seconds_bucket{{route="{route}",le="{bound}"}}'
                           f" {cumulative}")
            cumulative += counts[-1]
            out.append(f'galerakv_request_duration_seconds_bucket{{route="{route}",le="+Inf"}}'
                       f" {cumulative}")
            out.append(f'galerakv_request_duration_seconds_sum{{route="{route}"}}'
                       f" {t.sum_ns[route] / 1e9:.6f}")
            out.append(f'galerakv_request_duration_seconds_count{{route="{route}"}} {cumulative}')
        out += ["# HELP galerakv_ttl_purged_total Expired entries removed by the background purge.",
                "# TYPE galerakv_ttl_purged_total counter",
                f"galerakv_ttl_purged_total {t.purged}",
                "# HELP galerakv_process_start_time_seconds When each live worker process started.",
                "# TYPE galerakv_process_start_time_seconds gauge"]
        for pid, started in sorted(t.started.items()):
            out.append(f'galerakv_process_start_time_seconds{{pid="{pid}"}} {started:.3f}')
        for name, value in sorted((extra_gauges or {}).items()):
            out += [f"# TYPE {name} gauge", f"{name} {value}"]
        return ("\n".join(out) + "\n").encode()


# ---------------------------------------------------------------------- the shared directory


def read_workers(directory: Path) -> Iterator[tuple[Path, list[tuple[str, tuple[str | int, ...], int]], list[int]]]:
    """Every worker's (array file, series, values) in ``directory``, exited ones too."""
    for keys_path in sorted(directory.glob("w*.keys")):
        path = keys_path.with_suffix(".bin")
        try:
            text = keys_path.read_text()
            values = _read_array(path)
        except (FileNotFoundError, ValueError):  # the run is being cleaned up
            continue
        if not values or values[_MAGIC] != _MAGIC_VALUE:
            continue
        series: list[tuple[str, tuple[str | int, ...], int]] = []
        for line in text.splitlines(keepends=True):
            if not line.endswith("\n"):
                break
            index, kind, labels = line.rstrip("\n").split("\t", 2)
            series.append((kind, tuple(json.loads(labels)), int(index)))
        yield path, series, values


def _read_array(path: Path) -> list[int]:
    # Mapped and read 8 aligned bytes at a time, as the owner writes them: never a torn count.
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size // 8 * 8
        if size == 0:
            return []
        with mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) as mm:
            view = memoryview(mm).cast("q")
            try:
                return view.tolist()
            finally:
                view.release()


def _alive(values: list[int]) -> bool:
    return not values[_EXITED] and _pid_alive(values[_PID])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def shared_directory(workers: int) -> Iterator[Path | None]:
    """For the run of a server: with several workers a fresh metrics directory, removed at the end.

    Sets ``$GALERAKV_METRICS_DIR`` for the worker processes (cleared with one worker). Also
    removes the directories that servers of this user killed with SIGKILL left behind.
    """
    if workers <= 1:
        os.environ.pop(ENV_VAR, None)
        yield None
        return
    remove_stale_directories()
    path = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-", dir=directory_parent()))
    os.environ[ENV_VAR] = str(path)
    try:
        yield path
    finally:
        os.environ.pop(ENV_VAR, None)
        shutil.rmtree(path, ignore_errors=True)


def directory_parent() -> Path:
    """Where the metrics directories go: ``$TMPDIR`` when set, else ``/dev/shm`` (memory: the
    counts never go to disk), else the system's temp dir."""
    if not os.environ.get("TMPDIR"):
        shm = Path("/dev/shm")
        if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
            return shm
    return Path(tempfile.gettempdir())


_DIR_RE = re.compile(re.escape(DIR_PREFIX) + r"(\d+)-")


def remove_stale_directories(parent: Path | None = None) -> None:
    """Remove metrics directories of this user whose server process is gone."""
    parent = parent if parent is not None else directory_parent()
    uid = os.getuid()
    with contextlib.suppress(OSError):
        for entry in parent.iterdir():
            m = _DIR_RE.match(entry.name)
            if m is None or _pid_alive(int(m.group(1))):
                continue
            with contextlib.suppress(OSError):
                if entry.is_dir() and not entry.is_symlink() and entry.lstat().st_uid == uid:
                    shutil.rmtree(entry, ignore_errors=True)
