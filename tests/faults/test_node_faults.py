"""A node dies or hangs under a write load: no acknowledged write is lost, no request fails.

Each scenario runs 4 concurrent clients writing unique keys through one real
``galerakv serve`` (route = "nodes") for a bounded time and count, injects
one fault by PID, then checks every key that got a 2xx on every surviving
node (with ``wsrep_sync_wait``, so a node answers with all it was sent) and,
once the hurt node is back, on that node too. Run with ``-s`` to see the counts.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from tests.support.faults import FaultCluster, Outcome, Tally, check
from tests.support.server import writer_of

pytestmark = pytest.mark.cluster

CLIENTS = 4
FAULT_AT = 2.0          # seconds into the write loop
MAX_WRITES = 1500       # per client
REQUEST_TIMEOUT = 30.0  # a request may wait through a failover, never forever


def write_loop(url: str, ns: str, duration: float, fault: Callable[[], None]) -> Tally:
    """4 clients PUT unique keys for ``duration`` s (or MAX_WRITES each); ``fault`` runs at FAULT_AT s."""
    outcomes: list[Outcome] = []
    fault_error: list[BaseException] = []

    def inject() -> None:
        time.sleep(FAULT_AT)
        try:
            fault()
        except BaseException as exc:  # reported after the loop, never lost
            fault_error.append(exc)

    async def client(n: int, stop_at: float) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT) as c:
            for i in range(MAX_WRITES):
                if time.monotonic() >= stop_at:
                    return
                key = f"c{n}-{i:05d}"
                began = time.monotonic()
                try:
                    r = await c.put(f"/v1/ns/{ns}/kv/{key}", content=f"{key} value".encode())
                    outcome = Outcome(key, r.status_code, r.headers.get("etag", ""),
                                      time.monotonic() - began, "" if r.is_success else r.text[:300])
                except httpx.HTTPError as exc:
                    outcome = Outcome(key, 0, "", time.monotonic() - began, repr(exc))
                outcomes.append(outcome)

    async def main() -> None:
        stop_at = time.monotonic() + duration
        await asyncio.gather(*(client(n, stop_at) for n in range(CLIENTS)))

    injector = threading.Thread(target=inject, daemon=True)
    began = time.monotonic()
    injector.start()
    asyncio.run(main())
    injector.join(60)
    assert not injector.is_alive(), "the fault injector did not finish within 60 s"
    if fault_error:
        raise fault_error[0]
    return Tally(outcomes, time.monotonic() - began)


def test_kill9_of_a_non_writer(fault_cluster: FaultCluster) -> None:
    fc = fault_cluster
    server = fc.server()
    writer = writer_of(server)
    victim = next(n for n in reversed(fc.names) if n != writer)
    tally = write_loop(server.url, "f-kill-reader", 10.0, lambda: fc.kill9(victim))
    survivors = [n for n in fc.names if n != victim]
    check(fc, f"kill -9 {victim} (writer {writer})", "f-kill-reader", tally, survivors)
    fc.restore()
    check(fc, f"after restart of {victim}", "f-kill-reader", tally, [victim])


def test_sigstop_of_the_writer(fault_cluster: FaultCluster) -> None:
    fc = fault_cluster
    server = fc.server()
    writer = writer_of(server)

    def stop_then_continue() -> None:
        fc.signal(writer, signal.SIGSTOP)
        try:
            time.sleep(8.0)  # longer than evs.suspect_timeout (5 s): the others evict it
        finally:
            fc.signal(writer, signal.SIGCONT)

    tally = write_loop(server.url, "f-stop-writer", 14.0, stop_then_continue)
    others = [n for n in fc.names if n != writer]
    check(fc, f"SIGSTOP 8 s of writer {writer}", "f-stop-writer", tally, others)
    fc.restore()
    check(fc, f"after SIGCONT of {writer}", "f-stop-writer", tally, [writer])


def test_kill9_of_the_writer(fault_cluster: FaultCluster) -> None:
    fc = fault_cluster
    server = fc.server()
    writer = writer_of(server)
    tally = write_loop(server.url, "f-kill-writer", 10.0, lambda: fc.kill9(writer))
    survivors = [n for n in fc.names if n != writer]
    check(fc, f"kill -9 of writer {writer}", "f-kill-writer", tally, survivors)
    new_writer = writer_of(server)
    assert new_writer != writer
    fc.restore()
    check(fc, f"after restart of {writer}", "f-kill-writer", tally, [writer])
