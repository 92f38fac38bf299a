"""Single-key operations: GET/HEAD/PUT/DELETE, ETags, conditions, TTL. Runs on every backend."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from galerakv.server.app import App

K = "/v1/ns/app/kv"


async def put(client: httpx.AsyncClient, key: str, value: bytes | str, **kw: object) -> httpx.Response:
    return await client.put(f"{K}/{key}", content=value, **kw)  # type: ignore[arg-type]


async def test_put_then_get_returns_raw_value_and_content_type(client: httpx.AsyncClient) -> None:
    r = await put(client, "greeting", "hello", headers={"content-type": "text/plain; charset=utf-8"})
    assert r.status_code == 201
    etag = r.headers["etag"]
    assert r.json() == {"key": "greeting", "etag": etag, "revision": int(r.headers["x-galerakv-revision"])}
    r = await client.get(f"{K}/greeting")
    assert r.status_code == 200
    assert r.content == b"hello"
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["etag"] == etag


async def test_default_content_type_is_octet_stream(client: httpx.AsyncClient) -> None:
    await client.put(f"{K}/raw", content=b"\x00\xff\x10", headers={"content-type": ""})
    r = await client.get(f"{K}/raw")
    assert r.content == b"\x00\xff\x10"
    assert r.headers["content-type"] == "application/octet-stream"


async def test_overwrite_is_200_and_changes_etag(client: httpx.AsyncClient) -> None:
    first = await put(client, "k", "1")
    second = await put(client, "k", "2")
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.headers["etag"] != second.headers["etag"]
    assert (await client.get(f"{K}/k")).content == b"2"


async def test_empty_value(client: httpx.AsyncClient) -> None:
    assert (await put(client, "empty", b"")).status_code == 201
    r = await client.get(f"{K}/empty")
    assert r.status_code == 200 and r.content == b""


async def test_head_has_headers_and_no_body(client: httpx.AsyncClient) -> None:
    r = await put(client, "h", "12345", headers={"content-type": "text/plain"})
    r2 = await client.head(f"{K}/h")
    assert r2.status_code == 200
    assert r2.content == b""
    assert r2.headers["content-length"] == "5"
    assert r2.headers["etag"] == r.headers["etag"]
    assert (await client.head(f"{K}/missing")).status_code == 404


async def test_local_consistency_reads(client: httpx.AsyncClient) -> None:
    await put(client, "lc", "v")
    r = await client.get(f"{K}/lc", params={"consistency": "local"})
    assert r.status_code == 200 and r.content == b"v"
    listed = (await client.get(K, params={"consistency": "local"})).json()["items"]
    assert [i["key"] for i in listed] == ["lc"]
    assert (await client.get(f"{K}/lc", params={"consistency": "strong"})).content == b"v"


async def test_get_missing_is_404_problem(client: httpx.AsyncClient) -> None:
    r = await client.get(f"{K}/nope")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "not_found"


async def test_keys_with_slashes_and_unicode(client: httpx.AsyncClient) -> None:
    await put(client, "a/b/c", "slash")
    await put(client, "caf%C3%A9%20%E2%9C%93", "unicode")
    assert (await client.get(f"{K}/a%2Fb%2Fc")).content == b"slash"
    assert (await client.get(f"{K}/a/b/c")).content == b"slash"
    listed = (await client.get(K)).json()["items"]
    assert [i["key"] for i in listed] == ["a/b/c", "café ✓"]


async def test_namespaces_are_separate(client: httpx.AsyncClient) -> None:
    await client.put("/v1/ns/one/kv/k", content=b"1")
    await client.put("/v1/ns/two/kv/k", content=b"2")
    assert (await client.get("/v1/ns/one/kv/k")).content == b"1"
    assert (await client.get("/v1/ns/two/kv/k")).content == b"2"
    await client.delete("/v1/ns/one/kv/k")
    assert (await client.get("/v1/ns/two/kv/k")).status_code == 200


async def test_delete(client: httpx.AsyncClient) -> None:
    await put(client, "d", "x")
    r = await client.delete(f"{K}/d")
    assert r.status_code == 204 and r.content == b""
    assert (await client.get(f"{K}/d")).status_code == 404
    r = await client.delete(f"{K}/d")
    assert r.status_code == 404 and r.json()["code"] == "not_found"


async def test_etag_changes_on_delete_and_recreate(client: httpx.AsyncClient) -> None:
    first = (await put(client, "aba", "same")).headers["etag"]
    await client.delete(f"{K}/aba")
    second = (await put(client, "aba", "same")).headers["etag"]
    assert first != second
    # a compare-and-set against the first incarnation must fail
    r = await put(client, "aba", "new", headers={"if-match": first})
    assert r.status_code == 412


async def test_if_match_compare_and_set(client: httpx.AsyncClient) -> None:
    etag = (await put(client, "cas", "1")).headers["etag"]
    ok = await put(client, "cas", "2", headers={"if-match": etag})
    assert ok.status_code == 200
    stale = await put(client, "cas", "3", headers={"if-match": etag})
    assert stale.status_code == 412
    body = stale.json()
    assert body["code"] == "precondition_failed"
    assert body["current_etag"] == ok.headers["etag"]
    assert stale.headers["etag"] == ok.headers["etag"]
    assert (await client.get(f"{K}/cas")).content == b"2"


async def test_if_match_on_missing_key_fails(client: httpx.AsyncClient) -> None:
    r = await put(client, "ghost", "x", headers={"if-match": '"1"'})
    assert r.status_code == 412 and r.json()["current_etag"] is None
    assert (await client.get(f"{K}/ghost")).status_code == 404


async def test_if_match_star_requires_existence(client: httpx.AsyncClient) -> None:
    assert (await put(client, "star", "x", headers={"if-match": "*"})).status_code == 412
    await put(client, "star", "x")
    assert (await put(client, "star", "y", headers={"if-match": "*"})).status_code == 200


async def test_if_none_match_star_creates_only(client: httpx.AsyncClient) -> None:
    r = await put(client, "once", "1", headers={"if-none-match": "*"})
    assert r.status_code == 201
    r2 = await put(client, "once", "2", headers={"if-none-match": "*"})
    assert r2.status_code == 412
    assert r2.json()["current_etag"] == r.headers["etag"]
    assert (await client.get(f"{K}/once")).content == b"1"


@pytest.mark.parametrize("exists", [True, False])
async def test_if_match_with_if_none_match_star_never_holds(client: httpx.AsyncClient, exists: bool) -> None:
    etag = (await put(client, "both", "1")).headers["etag"] if exists else '"1"'
    r = await put(client, "both", "2", headers={"if-match": etag, "if-none-match": "*"})
    assert r.status_code == 412
    assert (await client.get(f"{K}/both")).status_code == (200 if exists else 404)


async def test_delete_if_match(client: httpx.AsyncClient) -> None:
    etag = (await put(client, "dm", "1")).headers["etag"]
    await put(client, "dm", "2")
    r = await client.delete(f"{K}/dm", headers={"if-match": etag})
    assert r.status_code == 412
    assert (await client.get(f"{K}/dm")).status_code == 200
    current = (await client.get(f"{K}/dm")).headers["etag"]
    assert (await client.delete(f"{K}/dm", headers={"if-match": current})).status_code == 204


async def test_get_if_none_match_gives_304(client: httpx.AsyncClient) -> None:
    etag = (await put(client, "c", "v")).headers["etag"]
    r = await client.get(f"{K}/c", headers={"if-none-match": etag})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
    r = await client.get(f"{K}/c", headers={"if-none-match": f'"zzz", W/{etag}'})
    assert r.status_code == 304
    r = await client.get(f"{K}/c", headers={"if-none-match": '"other"'})
    assert r.status_code == 200 and r.content == b"v"


async def test_ttl_expires_and_is_invisible_at_once(client: httpx.AsyncClient) -> None:
    r = await put(client, "t", "soon", params={"ttl": "0.3"})
    assert r.status_code == 201 and "expires_at" in r.json()
    assert (await client.get(f"{K}/t")).status_code == 200
    await asyncio.sleep(0.45)
    assert (await client.get(f"{K}/t")).status_code == 404
    assert [i["key"] for i in (await client.get(K)).json()["items"]] == []
    # an expired key counts as absent for create-only
    assert (await put(client, "t", "again", headers={"if-none-match": "*"})).status_code == 201


async def test_put_without_ttl_clears_previous_ttl(client: httpx.AsyncClient) -> None:
    await put(client, "keep", "1", params={"ttl": "0.2"})
    await put(client, "keep", "2")
    await asyncio.sleep(0.3)
    assert (await client.get(f"{K}/keep")).content == b"2"


async def test_expired_entries_are_purged_in_background(make_app: object) -> None:
    app = make_app(server={"ttl_purge_interval": 0.1})  # type: ignore[operator]
    assert isinstance(app, App)
    await app.startup()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            for i in range(5):
                await c.put(f"{K}/p{i}", content=b"x", params={"ttl": "0.1"})
            await c.put(f"{K}/stay", content=b"x")
            for _ in range(50):
                await asyncio.sleep(0.05)
                if app.metrics.purged >= 5:
                    break
            assert app.metrics.purged == 5
            metrics = (await c.get("/metrics")).text
            assert "galerakv_ttl_purged_total 5" in metrics
            assert (await c.get(f"{K}/stay")).status_code == 200
    finally:
        await app.shutdown()


async def test_concurrent_creates_only_one_wins(client: httpx.AsyncClient) -> None:
    results = await asyncio.gather(*[
        put(client, "race", str(i), headers={"if-none-match": "*"}) for i in range(20)])
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 1 and codes.count(412) == 19


async def test_concurrent_cas_increments_lose_nothing(client: httpx.AsyncClient) -> None:
    await put(client, "counter", "0")

    async def incr() -> int:
        done = 0
        for _ in range(200):
            r = await client.get(f"{K}/counter")
            n = int(r.content)
            w = await put(client, "counter", str(n + 1), headers={"if-match": r.headers["etag"]})
            if w.status_code == 200:
                done += 1
                if done == 5:
                    return done
            else:
                assert w.status_code == 412
        return done

    counts = await asyncio.gather(*[incr() for _ in range(8)])
    final = int((await client.get(f"{K}/counter")).content)
    assert final == sum(counts) == 40


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/v1/status", "/openapi.json"])
async def test_service_endpoints_answer_200(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 200
    assert r.json()


async def test_status_reports_backend_and_limits(client: httpx.AsyncClient, backend: str) -> None:
    body = (await client.get("/v1/status")).json()
    assert body["backend"]["kind"] == backend
    assert body["backend"]["ready"] is True
    assert body["limits"]["max_value_bytes"] == 1024 * 1024


async def test_metrics_count_requests_and_errors(client: httpx.AsyncClient) -> None:
    await client.get(f"{K}/missing")
    await put(client, "m", "1")
    text = (await client.get("/metrics")).text
    assert 'galerakv_requests_total{method="GET",route="/v1/ns/{ns}/kv/{key}",status="404"} 1' in text
    assert 'galerakv_errors_total{route="/v1/ns/{ns}/kv/{key}",code="not_found"} 1' in text
    assert 'galerakv_request_duration_seconds_count{route="/v1/ns/{ns}/kv/{key}"} 2' in text
