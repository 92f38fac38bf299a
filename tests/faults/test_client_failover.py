"""galerakv.client through a kill -9 of the server's writer node.

4 threads share one :class:`galerakv.client.Client` on a real ``galerakv
serve`` (route = "nodes") and each does a bounded number of puts of unique
keys, reading back after each one; the writer node is killed with SIGKILL in
the middle. Afterwards:

- every put that returned :class:`Written` is on every surviving node, and
  on the killed one once it is back, with its value and ETag;
- every put that raised :class:`OutcomeUnknown` is counted and printed, and
  re-read: present with exactly the value sent, or absent, the same on every
  node; never anything else;
- no other exception escaped the client, and reads went on working after
  the kill (the read-backs saw every acknowledged write).

Run with ``-s`` to see the counts.
"""

from __future__ import annotations

import threading
import time

import pytest

from galerakv.client import Client, OutcomeUnknown, RetryPolicy
from tests.support.faults import FaultCluster
from tests.support.server import ServerProcess, writer_of

pytestmark = pytest.mark.cluster

THREADS = 4
MAX_PUTS = 1000         # per thread
PACE = 0.01             # seconds between two puts of a thread: MAX_PUTS lasts > 10 s, well past FAULT_AT
DURATION = 12.0         # seconds of load at most
FAULT_AT = 3.0          # seconds into the load
REQUEST_TIMEOUT = 30.0  # a request may wait through a failover, never forever
NS = "f-client"


def check_nodes(fc: FaultCluster, label: str, nodes: list[str], written: dict[str, tuple[str, str]],
                unknown: dict[str, str]) -> None:
    """Acknowledged puts on each node with value and ETag; unknown ones absent or intact, alike everywhere."""
    presence: dict[str, set[str]] = {}
    for node in nodes:
        have = fc.rows_on(node, NS)
        lost = [k for k, (etag, value) in written.items() if have.get(k) != (etag.strip('"'), value.encode())]
        corrupt = [k for k, value in unknown.items() if k in have and have[k][1] != value.encode()]
        extra = sorted(set(have) - set(written) - set(unknown))
        presence[node] = {k for k in unknown if k in have}
        print(f"[{label}] {node}: {len(written) - len(lost)}/{len(written)} acknowledged puts found, "
              f"{len(presence[node])}/{len(unknown)} unknown-outcome puts present")
        assert not lost, f"{node}: acknowledged puts lost or changed: {lost[:5]}"
        assert not corrupt, f"{node}: unknown-outcome puts with a wrong value: {corrupt[:5]}"
        assert not extra, f"{node}: keys nobody wrote: {extra[:5]}"
    assert len({frozenset(p) for p in presence.values()}) == 1, f"nodes disagree on unknown puts: {presence}"


def server_log_tail(server: ServerProcess, lines: int = 80) -> str:
    """The end of the server's log: a 500 there carries the traceback the answer does not."""
    if server.log_path is None or not server.log_path.exists():
        return ""
    return "\n".join(server.log_path.read_text(errors="replace").splitlines()[-lines:])


def test_client_through_kill9_of_the_writer(fault_cluster: FaultCluster) -> None:
    fc = fault_cluster
    server = fc.server()
    writer = writer_of(server)
    kv = Client(server.url, timeout=REQUEST_TIMEOUT, retry=RetryPolicy(attempts=12, max_retry_after=5.0))
    written: dict[str, tuple[str, str]] = {}   # key -> (ETag, value) of puts that returned Written
    unknown: dict[str, str] = {}               # key -> value of puts that raised OutcomeUnknown
    unknown_why: list[str] = []
    escaped: list[str] = []                    # any other exception: a failure of the test
    bad_reads: list[str] = []
    reads = {"before": 0, "after": 0}
    fault_at = [float("inf")]
    fault_error: list[BaseException] = []

    def inject() -> None:
        time.sleep(FAULT_AT)
        try:
            fc.kill9(writer)  # returns once the process is gone
            fault_at[0] = time.monotonic()
        except BaseException as exc:  # reported after the load, never lost
            fault_error.append(exc)

    def read_back(key: str) -> None:
        etag, value = written[key]
        got = kv.get(NS, key)
        if got is None or got.text != value or got.etag != etag:
            bad_reads.append(f"{key}: expected {value!r} {etag}, read {got!r}")
        else:
            reads["after" if time.monotonic() > fault_at[0] else "before"] += 1

    def worker(n: int, stop_at: float) -> None:
        try:
            for i in range(MAX_PUTS):
                if time.monotonic() >= stop_at:
                    return
                key, value = f"t{n}-{i:05d}", f"t{n}-{i:05d} value {'x' * (i % 40)}"
                try:
                    w = kv.put(NS, key, value)
                except OutcomeUnknown as exc:
                    unknown[key] = value
                    unknown_why.append(f"{key}: {exc}")
                    continue
                written[key] = (w.etag, value)
                read_back(key)
                older = f"t{n}-{i // 2:05d}"  # and one written a while ago
                if older in written:
                    read_back(older)
                time.sleep(PACE)
        except BaseException as exc:
            escaped.append(f"thread {n}: {type(exc).__name__}: {exc}")

    began = time.monotonic()
    stop_at = began + DURATION
    injector = threading.Thread(target=inject, daemon=True)
    threads = [threading.Thread(target=worker, args=(n, stop_at), daemon=True) for n in range(THREADS)]
    try:
        injector.start()
        for t in threads:
            t.start()
        for t in [*threads, injector]:
            t.join(max(0.0, stop_at - time.monotonic()) + 2 * REQUEST_TIMEOUT)
        assert not any(t.is_alive() for t in [*threads, injector]), "the load did not stop in time"
        if fault_error:
            raise fault_error[0]
        seconds = time.monotonic() - began
        print(f"\n[client, kill -9 of writer {writer}] written={len(written)} outcome_unknown={len(unknown)} "
              f"escaped={len(escaped)} reads before/after the kill={reads['before']}/{reads['after']} "
              f"bad reads={len(bad_reads)} ({seconds:.1f} s)")
        for why in unknown_why[:5]:
            print(f"  outcome unknown: {why}")
        assert not escaped, (escaped[:5], server_log_tail(server))
        assert not bad_reads, bad_reads[:5]
        assert written, "no put was acknowledged"
        assert reads["after"] > 0, "no read succeeded after the kill"

        # the unknown ones, read again through the client: absent, or exactly what was sent
        for key, value in unknown.items():
            got = kv.get(NS, key)
            assert got is None or got.text == value, f"{key}: {got!r}"
        survivors = [n for n in fc.names if n != writer]
        check_nodes(fc, "after the kill", survivors, written, unknown)
        assert writer_of(server) != writer
        fc.restore()
        check_nodes(fc, f"after restart of {writer}", fc.names, written, unknown)
    finally:
        kv.close()
