"""No lost update: 8 clients increment one counter with If-Match through 3 server processes.

Each client reads the counter (GET, causal, from whichever node its server
picks), then writes value + 1 with ``If-Match`` its ETag, and starts over on
412. With compare-and-set working across servers and nodes, the final value
equals the number of 2xx updates.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.support.faults import FaultCluster

pytestmark = pytest.mark.cluster

CLIENTS = 8
SERVERS = 3
WINS_PER_CLIENT = 10     # successful increments each client aims for
MAX_ATTEMPTS = 150       # per client, 412s included
TIME_LIMIT = 40.0        # seconds for the whole race
NS, KEY = "lost-update", "counter"


def test_if_match_counter_loses_no_update(fault_cluster: FaultCluster) -> None:
    fc = fault_cluster
    servers = [fc.server() for _ in range(SERVERS)]
    path = f"/v1/ns/{NS}/kv/{KEY}"
    assert httpx.put(servers[0].url + path, content=b"0", timeout=30).status_code in (200, 201)
    wins = [0] * CLIENTS
    conflicts = [0] * CLIENTS
    unexpected: list[str] = []

    async def client(n: int, stop_at: float) -> None:
        url = servers[n % SERVERS].url
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            for _ in range(MAX_ATTEMPTS):
                if wins[n] >= WINS_PER_CLIENT or time.monotonic() > stop_at:
                    return
                got = await c.get(path)
                if got.status_code != 200:
                    unexpected.append(f"GET {got.status_code} {got.text[:200]}")
                    continue
                value = int(got.content)
                put = await c.put(path, content=str(value + 1).encode(),
                                  headers={"if-match": got.headers["etag"]})
                if put.is_success:
                    wins[n] += 1
                elif put.status_code == 412:
                    conflicts[n] += 1
                else:
                    unexpected.append(f"PUT {put.status_code} {put.text[:200]}")

    async def race() -> None:
        stop_at = time.monotonic() + TIME_LIMIT
        await asyncio.gather(*(client(n, stop_at) for n in range(CLIENTS)))

    began = time.monotonic()
    asyncio.run(race())
    seconds = time.monotonic() - began
    finals = [httpx.get(s.url + path, timeout=30) for s in servers]
    values = {int(r.content) for r in finals}
    on_nodes = {node: fc.versions_on(node, NS)[KEY] for node in fc.names}
    print(f"\n[lost update] 2xx updates={sum(wins)} 412s={sum(conflicts)} unexpected={len(unexpected)} "
          f"final values via {SERVERS} servers={sorted(values)} versions on nodes agree="
          f"{len(set(on_nodes.values())) == 1} ({seconds:.1f} s)")
    assert not unexpected, unexpected[:5]
    assert values == {sum(wins)}
    assert len({r.headers["etag"].strip('"') for r in finals} | set(on_nodes.values())) == 1
    assert sum(wins) > 0
