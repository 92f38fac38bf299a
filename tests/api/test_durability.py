"""kill -9 the server after acknowledged writes; restart on the same SQLite file; nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow


async def _writes(url: str, n: int, clients: int) -> tuple[dict[str, tuple[bytes, str]], set[str]]:
    """n acknowledged puts from concurrent clients, then deletes of every fifth key."""
    acked: dict[str, tuple[bytes, str]] = {}
    deleted: set[str] = set()

    async def worker(w: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            for i in range(w, n, clients):
                key, value = f"k{i:05d}", f"value-{i}-{'x' * (i % 50)}".encode()
                r = await c.put(f"/v1/ns/dur/kv/{key}", content=value)
                assert r.status_code == 201, r.text
                acked[key] = (value, r.headers["etag"])
            for i in range(w, n, clients):
                if i % 5 == 0:
                    key = f"k{i:05d}"
                    r = await c.delete(f"/v1/ns/dur/kv/{key}")
                    assert r.status_code == 204
                    deleted.add(key)
                    del acked[key]

    await asyncio.gather(*(worker(w) for w in range(clients)))
    return acked, deleted


def _check(url: str, acked: dict[str, tuple[bytes, str]], deleted: set[str]) -> None:
    with httpx.Client(base_url=url, timeout=30) as c:
        for key, (value, etag) in acked.items():
            r = c.get(f"/v1/ns/dur/kv/{key}")
            assert r.status_code == 200, f"acknowledged write of {key} lost"
            assert r.content == value
            assert r.headers["etag"] == etag
        for key in deleted:
            assert c.get(f"/v1/ns/dur/kv/{key}").status_code == 404, f"acknowledged delete of {key} undone"


def test_kill9_after_acknowledged_writes(live_server: Callable[..., ServerProcess]) -> None:
    server = live_server()
    acked, deleted = asyncio.run(_writes(server.url, 500, 16))
    assert len(acked) == 400 and len(deleted) == 100
    server.kill9()
    assert server.proc is not None and server.proc.returncode == -9
    server.start()
    _check(server.url, acked, deleted)
    # and new writes get versions never seen before
    with httpx.Client(base_url=server.url, timeout=10) as c:
        tag = c.put("/v1/ns/dur/kv/k00001", content=b"after").headers["etag"]
        assert tag not in {e for _, e in acked.values()}


def test_kill9_during_a_write_loop(live_server: Callable[..., ServerProcess]) -> None:
    server = live_server()
    acked: dict[str, tuple[bytes, str]] = {}
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop(worker: int) -> None:
        i = 0
        with httpx.Client(base_url=server.url, timeout=5) as c:
            while not stop.is_set():
                key, value = f"w{worker}-{i}", f"{worker}:{i}".encode()
                try:
                    r = c.put(f"/v1/ns/dur/kv/{key}", content=value)
                except httpx.TransportError:
                    return  # the server died mid-request: unacknowledged, may or may not be there
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)
                    return
                if r.status_code == 201:
                    acked[key] = (value, r.headers["etag"])
                i += 1

    threads = [threading.Thread(target=loop, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(acked) < 300 and time.monotonic() < deadline:
        time.sleep(0.02)
    server.kill9()
    stop.set()
    for t in threads:
        t.join(10)
    assert not errors, errors
    assert len(acked) >= 300, f"only {len(acked)} writes acknowledged before the kill"
    server.start()
    _check(server.url, dict(acked), set())
