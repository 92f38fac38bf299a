"""Read-your-writes across server instances, while writes are group-committed and reads batched.

Two ``galerakv serve`` processes on one cluster. A checker writes a key through
one instance and, as soon as the 2xx arrives, reads it through the other (whose
reads go round-robin over every node, several reads sharing one causal query)
and through the first: both must return exactly that value and ETag. Eight
background clients keep both instances busy with writes and reads of other
keys, so the checker's requests travel in shared write groups and read batches.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.support.faults import FaultCluster

pytestmark = pytest.mark.cluster

CHECKS = 300            # write-then-read rounds of the checker
BACKGROUND = 8          # clients adding load meanwhile
TIME_LIMIT = 60.0       # seconds for everything
NS = "ryw"


def test_a_write_is_seen_at_once_through_every_instance(fault_cluster: FaultCluster) -> None:
    servers = [fault_cluster.server(), fault_cluster.server()]
    stale: list[str] = []
    failures: list[str] = []
    background_requests = [0]

    async def background(n: int, stop: asyncio.Event, deadline: float) -> None:
        async with httpx.AsyncClient(base_url=servers[n % 2].url, timeout=30) as c:
            i = 0
            while not stop.is_set() and time.monotonic() < deadline:
                path = f"/v1/ns/{NS}/kv/load-{n}-{i % 20}"
                value = f"{n}-{i}".encode()
                put = await c.put(path, content=value)
                got = await c.get(path)
                if put.status_code not in (200, 201) or got.status_code != 200 or got.content != value:
                    failures.append(f"background PUT {put.status_code} then GET {got.status_code} "
                                    f"{got.content[:40]!r} (wrote {value!r})")
                background_requests[0] += 2
                i += 1

    async def checker(deadline: float) -> int:
        done = 0
        clients = [httpx.AsyncClient(base_url=s.url, timeout=30) for s in servers]
        try:
            for i in range(CHECKS):
                if time.monotonic() > deadline:
                    break
                writer, other = clients[i % 2], clients[(i + 1) % 2]
                path = f"/v1/ns/{NS}/kv/checked-{i % 10}"
                value = f"value-{i}".encode()
                put = await writer.put(path, content=value)
                if put.status_code not in (200, 201):
                    failures.append(f"checker PUT {put.status_code} {put.text[:200]}")
                    continue
                etag = put.headers["etag"]
                for name, client in (("other instance", other), ("same instance", writer)):
                    got = await client.get(path)
                    if got.status_code != 200 or got.content != value or got.headers["etag"] != etag:
                        stale.append(f"round {i} via {name}: wrote {value!r} {etag}, read "
                                     f"{got.status_code} {got.content[:40]!r} {got.headers.get('etag')}")
                done += 1
        finally:
            for c in clients:
                await c.aclose()
        return done

    async def scenario() -> int:
        deadline = time.monotonic() + TIME_LIMIT
        stop = asyncio.Event()
        load = [asyncio.create_task(background(n, stop, deadline)) for n in range(BACKGROUND)]
        try:
            return await checker(deadline)
        finally:
            stop.set()
            await asyncio.gather(*load)

    began = time.monotonic()
    checked = asyncio.run(scenario())
    statuses = [httpx.get(s.url + "/v1/status", timeout=10).json()["backend"]["coalescing"] for s in servers]
    print(f"\n[read your writes] {checked} write-then-read rounds, {background_requests[0]} background "
          f"requests, {time.monotonic() - began:.1f} s; coalescing per instance: {statuses}")
    assert not failures, failures[:5]
    assert not stale, stale[:5]
    assert checked == CHECKS
    # the load did make requests share round trips, so the shared paths were the ones checked
    assert all(s["writes"] > s["write_groups"] and s["reads"] > s["read_batches"] for s in statuses)
