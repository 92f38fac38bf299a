"""No request can stall or bloat the server, and nothing it serves or writes is more open than needed.

Each test here failed before its fix (issue 12's review of the HTTP API):
a declared oversized body was drained before the 413, a trickled body held its
connection for ever, any method string became a metrics series, a stored
text/html value was served as a live page, and the SQLite files were readable
by every local user.
"""

from __future__ import annotations

import socket
import stat
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from galerakv import config
from galerakv.server.app import App
from tests.support.configs import write_config
from tests.support.net import free_port
from tests.support.server import ServerProcess

K = "/v1/ns/app/kv"


@pytest.fixture(params=["granian", "uvicorn"])
def sqlite_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    """A real server process on SQLite, on each HTTP engine, with a 1 s body deadline."""
    port = free_port()
    path = write_config(tmp_path / "galerakv.toml", {
        "server": {"backend": "sqlite", "sqlite_path": str(tmp_path / "data" / "kv.sqlite3"), "port": port,
                   "host": "127.0.0.1", "engine": request.param},
        "limits": {"body_timeout": 1.0}})
    server = ServerProcess(path, port)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _answer(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """What the server sends until it closes (or ``timeout``): (bytes, closed by the server)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def test_declared_oversized_body_is_refused_at_once_and_the_connection_closed(
        sqlite_server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", sqlite_server.port), timeout=5) as sock:
        sock.sendall(b"PUT /v1/ns/app/kv/big HTTP/1.1\r\nHost: t\r\nContent-Length: 67108864\r\n\r\n" + b"x" * 1024)
        started = time.monotonic()
        data, closed = _answer(sock, 5.0)
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 413"), data[:200]
    assert b"connection: close" in head
    assert b'"code":"value_too_large"' in data and b"67108864" in data
    assert closed, "the connection must be closed: the undelivered body would be read as a request"
    assert time.monotonic() - started < 3.0
    assert httpx.get(f"{sqlite_server.url}{K}/big").status_code == 404


def test_a_trickled_body_gets_408_after_body_timeout_and_frees_the_connection(
        sqlite_server: ServerProcess) -> None:
    """Twenty clients each sending one byte of a 100-byte body: all answered 408 and closed
    within the 1 s deadline (plus slack), none left holding its connection; nothing stored."""

    def trickle(i: int) -> tuple[bytes, bool, float]:
        with socket.create_connection(("127.0.0.1", sqlite_server.port), timeout=5) as sock:
            sock.sendall(f"PUT /v1/ns/app/kv/slow{i} HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nx".encode())
            started = time.monotonic()
            data, closed = _answer(sock, 8.0)
            return data, closed, time.monotonic() - started

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(trickle, range(20)))
    for data, closed, took in results:
        assert data.lower().startswith(b"http/1.1 408"), data[:200]
        assert b'"code":"request_timeout"' in data
        assert closed and took < 6.0, took
    listing = httpx.get(f"{sqlite_server.url}{K}", params={"prefix": "slow"}).json()
    assert listing["items"] == []


async def test_metrics_labels_stay_bounded_whatever_methods_clients_send(tmp_path: Path) -> None:
    app = App(config.parse({"server": {"backend": "sqlite", "sqlite_path": str(tmp_path / "kv.sqlite3")}},
                           source=tmp_path / "galerakv.toml"))
    await app.startup()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            for i in range(200):
                assert (await c.request(f"X{i}", f"{K}/k")).status_code == 405
            text = (await c.get("/metrics")).text
    finally:
        await app.shutdown()
    methods = {line.split('method="', 1)[1].split('"', 1)[0]
               for line in text.splitlines() if line.startswith("galerakv_requests_total{")}
    assert "X1" not in methods and "other" in methods
    assert methods <= {"GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH", "other"}


async def test_a_stored_html_value_cannot_run_in_a_browser(client: httpx.AsyncClient) -> None:
    await client.put(f"{K}/page", content=b"<script>alert(1)</script>", headers={"content-type": "text/html"})
    for method in ("GET", "HEAD"):
        r = await client.request(method, f"{K}/page")
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/html"  # served as stored ...
        assert r.headers["x-content-type-options"] == "nosniff"  # ... never re-typed
        assert r.headers["content-security-policy"] == "sandbox"  # ... and never run


async def test_sqlite_files_are_private_to_the_server_user(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "kv.sqlite3"
    app = App(config.parse({"server": {"backend": "sqlite", "sqlite_path": str(path)}},
                           source=tmp_path / "galerakv.toml"))
    await app.startup()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            assert (await c.put(f"{K}/k", content=b"secret")).status_code == 201
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        files = [p for p in path.parent.iterdir() if p.name.startswith("kv.sqlite3")]
        assert {p.name for p in files} >= {"kv.sqlite3", "kv.sqlite3-wal", "kv.sqlite3-shm"}
        for p in files:
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    finally:
        await app.shutdown()


async def test_an_existing_sqlite_file_keeps_the_mode_its_owner_gave_it(tmp_path: Path) -> None:
    path = tmp_path / "kv.sqlite3"
    path.touch(mode=0o640)
    path.chmod(0o640)
    app = App(config.parse({"server": {"backend": "sqlite", "sqlite_path": str(path)}},
                           source=tmp_path / "galerakv.toml"))
    await app.startup()
    await app.shutdown()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


async def test_a_listing_of_large_values_ends_early_with_a_cursor(make_app: Any) -> None:
    """A page stops once its values reach limits.max_response_bytes (at least one item), and the
    pages still give every key once, in order."""
    app = make_app(limits={"max_response_bytes": 65536, "max_value_bytes": 40000})
    await app.startup()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            for i in range(10):
                assert (await c.put(f"{K}/big{i}", content=bytes([65 + i]) * 30000)).status_code == 201
            seen: list[str] = []
            cursor = None
            for _ in range(20):
                page = (await c.get(K, params={"limit": 100, **({"cursor": cursor} if cursor else {})})).json()
                assert 1 <= len(page["items"]) <= 3  # 65536 bytes: the third 30000-byte value crosses it
                seen += [item["key"] for item in page["items"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert seen == [f"big{i}" for i in range(10)]
            keys = (await c.get(K, params={"limit": 100, "keys_only": "true"})).json()
            assert len(keys["items"]) == 10 and keys["next_cursor"] is None  # no values: no byte budget
            r = await c.post("/v1/ns/app/batch", json={"ops": [{"op": "get", "key": f"big{i}"} for i in range(3)]})
            assert r.status_code == 413 and r.json()["code"] == "response_too_large"
            assert r.json()["limit"] == 65536 and r.json()["size"] == 90000
            r = await c.post("/v1/ns/app/batch", json={"ops": [{"op": "get", "key": f"big{i}"} for i in range(2)]})
            assert r.status_code == 200 and len(r.json()["results"]) == 2
            assert (await c.get("/v1/status")).json()["limits"]["max_response_bytes"] == 65536
    finally:
        await app.shutdown()
