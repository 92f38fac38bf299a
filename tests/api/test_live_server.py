"""The real ``galerakv serve`` process over a socket (uvicorn, httptools, uvloop)."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx

from tests.support.server import ServerProcess, wait_ready


def _counter(metrics: str, method: str, route: str, status: int) -> int:
    pattern = (rf'^galerakv_requests_total\{{method="{method}",route="{re.escape(route)}",'
               rf'status="{status}"\}} (\d+)$')
    m = re.search(pattern, metrics, re.M)
    return int(m.group(1)) if m else 0


def test_put_get_head_delete(live_server: Callable[..., ServerProcess]) -> None:
    server = live_server()
    with httpx.Client(base_url=server.url, timeout=10) as c:
        put = c.put("/v1/ns/app/kv/dir%2Fkey", content=b"\x00\x01binary", headers={"content-type": "image/png"})
        assert put.status_code == 201
        etag = put.headers["etag"]
        got = c.get("/v1/ns/app/kv/dir/key")
        assert got.status_code == 200
        assert got.content == b"\x00\x01binary"
        assert got.headers["content-type"] == "image/png"
        assert got.headers["etag"] == etag
        head = c.head("/v1/ns/app/kv/dir%2Fkey")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(b"\x00\x01binary"))
        assert c.get("/v1/ns/app/kv/dir/key", headers={"if-none-match": etag}).status_code == 304
        cas = c.put("/v1/ns/app/kv/dir/key", content=b"v2", headers={"if-match": '"0"'})
        assert cas.status_code == 412
        assert cas.headers["content-type"].startswith("application/problem+json")
        assert cas.json()["current_etag"] == etag
        assert c.delete("/v1/ns/app/kv/dir/key", headers={"if-match": etag}).status_code == 204
        gone = c.get("/v1/ns/app/kv/dir/key")
        assert gone.status_code == 404 and gone.json()["code"] == "not_found"
        assert c.delete("/v1/ns/app/kv/dir/key").status_code == 404


def test_oversize_value_rejected_with_limit(live_server: Callable[..., ServerProcess]) -> None:
    server = live_server()
    limit = 1024 * 1024
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.put("/v1/ns/app/kv/big", content=b"x" * limit).status_code == 201  # exactly the limit
        r = c.put("/v1/ns/app/kv/big", content=b"y" * (limit + 1))
        assert r.status_code == 413
        body = r.json()
        assert body["code"] == "value_too_large"
        assert body["limit"] == limit
        assert str(limit) in body["detail"]
        still = c.get("/v1/ns/app/kv/big")
        assert still.status_code == 200 and still.content == b"x" * limit  # data unchanged


def test_oversize_chunked_value_rejected(live_server: Callable[..., ServerProcess]) -> None:
    """No Content-Length to trust: the limit holds while streaming too."""
    server = live_server(limits={"max_value_bytes": 64 * 1024})

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(100):
            yield b"z" * 4096

    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.put("/v1/ns/app/kv/streamed", content=chunks())
        assert r.status_code == 413
        assert r.json()["limit"] == 64 * 1024
        assert c.get("/v1/ns/app/kv/streamed").status_code == 404


def test_health_ready_status_openapi(live_server: Callable[..., ServerProcess], backend: str) -> None:
    server = live_server()
    with httpx.Client(base_url=server.url, timeout=10) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        assert ready.json()["backend"] == backend
        status = c.get("/v1/status").json()
        assert status["limits"]["max_value_bytes"] == 1024 * 1024
        doc = c.get("/openapi.json")
        assert doc.status_code == 200
        assert doc.json()["openapi"].startswith("3.")
        assert "/v1/ns/{ns}/kv/{key}" in doc.json()["paths"]
        nope = c.get("/nope")
        assert nope.status_code == 404 and nope.json()["code"] == "no_route"


def test_a_normal_start_logs_no_warning(live_server: Callable[..., ServerProcess]) -> None:
    """Twice, so the second start finds the tables the first made (on Galera, the schema check
    used to leave MariaDB's note "Table 'galerakv_schema' already exists", logged as a warning by
    the driver, and the first choice of a writer was a warning too)."""
    for _ in range(2):
        server = live_server()
        wait_ready(server)
        server.stop()
        assert server.log_path is not None
        text = server.log_path.read_text()
        assert " WARNING " not in text and "already exists" not in text, text


def test_metrics_count_requests(live_server: Callable[..., ServerProcess]) -> None:
    server = live_server()
    route = "/v1/ns/{ns}/kv/{key}"
    with httpx.Client(base_url=server.url, timeout=10) as c:
        before = c.get("/metrics")
        assert before.status_code == 200
        assert before.headers["content-type"].startswith("text/plain")
        n_put = _counter(before.text, "PUT", route, 201)
        n_404 = _counter(before.text, "GET", route, 404)
        for i in range(7):
            c.put(f"/v1/ns/m/kv/k{i}", content=b"v")
        for i in range(3):
            c.get(f"/v1/ns/m/kv/missing{i}")
        after = c.get("/metrics").text
        assert _counter(after, "PUT", route, 201) == n_put + 7
        assert _counter(after, "GET", route, 404) == n_404 + 3
        assert re.search(r'^galerakv_errors_total\{route="/v1/ns/\{ns\}/kv/\{key\}",code="not_found"\} [3-9]',
                         after, re.M)
        assert "galerakv_request_duration_seconds_bucket" in after
        m = re.search(r'^galerakv_request_duration_seconds_count\{route="/v1/ns/\{ns\}/kv/\{key\}"\} (\d+)$',
                      after, re.M)
        assert m and int(m.group(1)) >= 10


def test_keep_alive_many_requests(live_server: Callable[..., ServerProcess]) -> None:
    server = live_server()
    ports: set[int] = set()
    with httpx.Client(base_url=server.url, timeout=10) as c:
        for i in range(300):
            r = c.put(f"/v1/ns/ka/kv/k{i}", content=str(i).encode())
            assert r.status_code == 201
            r = c.get(f"/v1/ns/ka/kv/k{i}")
            assert r.content == str(i).encode()
            stream = r.extensions.get("network_stream")
            if stream is not None:
                ports.add(stream.get_extra_info("client_addr")[1])
        listed = c.get("/v1/ns/ka/kv", params={"limit": "1000", "keys_only": "true"}).json()
        assert len(listed["items"]) == 300
    assert len(ports) == 1, f"connection not kept alive: {len(ports)} client ports"


def test_bad_input_over_the_wire_is_problem_json(live_server: Callable[..., ServerProcess]) -> None:
    server = live_server()
    with httpx.Client(base_url=server.url, timeout=10) as c:
        cases = [
            c.put("/v1/ns/bad%20ns/kv/k", content=b"v"),
            c.put("/v1/ns/app/kv/%FF", content=b"v"),
            c.get("/v1/ns/app/kv", params={"limit": "0"}),
            c.get("/v1/ns/app/kv", params={"cursor": "garbage"}),
            c.post("/v1/ns/app/batch", content=b"{not json"),
            c.put("/v1/ns/app/kv/k", content=b"v", headers={"if-match": "unquoted"}),
            c.put("/v1/ns/app/kv/k?ttl=-1", content=b"v"),
        ]
        for r in cases:
            assert 400 <= r.status_code < 500, (r.request.url, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["code"]
        assert c.get("/v1/ns/app/kv").json()["items"] == []
