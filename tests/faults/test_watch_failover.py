"""The change feed through a kill -9: of a node the feed reads from, of the writer, of a server instance.

Two ``galerakv serve`` instances (route = "nodes") on the fault cluster; 8 writer threads put and
delete 100 keys through both, a watcher follows the namespace through one of them. In the middle a
node is killed with SIGKILL (``reader``: one that is not the writer, which the feed's reads rotate
over; ``writer``: the node taking the writes), and in the ``reader`` variant the instance the watcher
is connected to is killed too, so it reconnects to the other one with ``Last-Event-ID``. Afterwards:

- every change acknowledged with a revision arrived once, as written, in strictly increasing
  revision order, and the revisions the watcher saw have no gap (nothing else writes meanwhile);
- replaying the events gives exactly the keys and values read back from the cluster.
"""

from __future__ import annotations

import random
import threading
import time

import httpx
import pytest

from tests.support.faults import FaultCluster
from tests.support.server import ServerProcess, wait_ready, writer_of
from tests.support.watch import StreamWatcher, assert_exactly_once, replay

pytestmark = pytest.mark.cluster

WRITERS = 8
MAX_WRITES = 150        # per writer
PACE = 0.01             # seconds between two writes of a writer
DURATION = 12.0         # seconds of load at most
FAULT_AT = 3.0          # seconds into the load


@pytest.mark.parametrize("victim", ["reader", "writer"])
def test_watch_exactly_once_through_kill9(fault_cluster: FaultCluster, victim: str) -> None:
    fc = fault_cluster
    ns = f"f-watch-{victim}"
    one, two = fc.server(), fc.server()
    wait_ready(one)
    wait_ready(two)
    writer = writer_of(one)
    node = writer if victim == "writer" else next(n for n in fc.names if n != writer)
    watcher = StreamWatcher([one.url, two.url], ns, deadline=180).start()
    acknowledged: dict[int, tuple[str, str | None]] = {}
    refused: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + DURATION

    def write(n: int) -> None:
        rng = random.Random(n)
        servers = [one, two] if n % 2 else [two, one]
        with httpx.Client(timeout=30) as c:
            for i in range(MAX_WRITES):
                if time.monotonic() >= stop_at:
                    return
                key = f"k{rng.randrange(100):02d}"
                value = None if rng.random() < 0.1 else f"{n}-{i}"
                for server in servers:  # an instance that is gone: the other one
                    url = f"{server.url}/v1/ns/{ns}/kv/{key}"
                    try:
                        r = c.delete(url) if value is None else c.put(url, content=value.encode())
                    except httpx.TransportError:
                        continue
                    break
                else:
                    continue
                if r.status_code in (200, 201, 204):
                    with lock:
                        acknowledged[int(r.headers["x-galerakv-revision"])] = (key, value)
                elif r.status_code != 404:  # 503 while failing over: not acknowledged, so not promised
                    refused.append(f"{r.status_code} {r.text[:120]}")
                time.sleep(PACE)

    def inject() -> None:
        time.sleep(FAULT_AT)
        fc.kill9(node)
        if victim == "reader":
            time.sleep(1.0)
            one.kill9()  # the watcher's instance: it reconnects to the other with Last-Event-ID

    threads = [threading.Thread(target=write, args=(n,), daemon=True) for n in range(WRITERS)]
    injector = threading.Thread(target=inject, daemon=True)
    injector.start()
    for t in threads:
        t.start()
    for t in [*threads, injector]:
        t.join(DURATION + 60)
    assert not any(t.is_alive() for t in [*threads, injector]), "the load did not stop in time"
    assert acknowledged, "no write was acknowledged"
    watcher.wait_for(max(acknowledged), timeout=60)
    watcher.stop()
    print(f"\n[watch, kill -9 of {victim} {node}] acknowledged={len(acknowledged)} refused={len(refused)} "
          f"events={len(watcher.events)} reconnects={watcher.reconnects}")
    assert_exactly_once(watcher.events, acknowledged)
    revisions = [e.revision for e in watcher.events]
    assert revisions == list(range(revisions[0], revisions[-1] + 1)), "the feed skipped a revision"
    if victim == "reader":
        assert watcher.reconnects >= 1
    survivor: ServerProcess = two
    with httpx.Client(timeout=30) as c:
        listed = c.get(f"{survivor.url}/v1/ns/{ns}/kv", params={"limit": 1000}).json()["items"]
    assert replay(watcher.events) == {item["key"]: item["value"] for item in listed}
