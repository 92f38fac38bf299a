"""Bad input: a 4xx problem+json naming the problem, never a 5xx, never a change to stored data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from galerakv import config
from galerakv.server.app import App
from galerakv.server.problems import CODES

K = "/v1/ns/app/kv"

# (method, url, keyword arguments, status, code, words the detail must contain)
CASES: list[tuple[str, str, dict[str, Any], int, str, str]] = [
    ("GET", "/v1/ns/bad%20ns/kv/k", {}, 400, "invalid_namespace", "namespace"),
    ("GET", "/v1/ns/-x/kv/k", {}, 400, "invalid_namespace", "namespace"),
    ("PUT", "/v1/ns/%FF/kv/k", {"content": b"x"}, 400, "invalid_namespace", "UTF-8"),
    ("PUT", f"{K}/%FF%FE", {"content": b"x"}, 400, "invalid_key", "UTF-8"),
    ("PUT", f"{K}/a%00b", {"content": b"x"}, 400, "invalid_key", "NUL"),
    ("GET", f"{K}/", {}, 400, "invalid_key", "empty"),
    ("PUT", f"{K}/{'k' * 1025}", {"content": b"x"}, 413, "key_too_large", "1024"),
    ("PUT", f"{K}/big", {"content": b"x" * (1024 * 1024 + 1)}, 413, "value_too_large", "1048576"),
    ("PUT", f"{K}/t", {"content": b"x", "params": {"ttl": "soon"}}, 400, "invalid_query", "ttl"),
    ("PUT", f"{K}/t", {"content": b"x", "params": {"ttl": "0"}}, 400, "invalid_query", "ttl"),
    ("PUT", f"{K}/t", {"content": b"x", "params": {"ttl": "-5"}}, 400, "invalid_query", "ttl"),
    ("PUT", f"{K}/t", {"content": b"x", "params": {"ttl": "nan"}}, 400, "invalid_query", "ttl"),
    ("PUT", f"{K}/t", {"content": b"x", "params": {"tll": "5"}}, 400, "invalid_query", "tll"),
    # numbers are JSON numbers in ASCII: float() alone would take these
    ("PUT", f"{K}/t", {"content": b"x", "params": {"ttl": "1_0"}}, 400, "invalid_query", "ttl"),
    ("PUT", f"{K}/t", {"content": b"x", "params": {"ttl": "\u0661"}}, 400, "invalid_query", "ttl"),
    ("PUT", f"{K}/t", {"content": b"x", "params": {"ttl": "+5"}}, 400, "invalid_query", "ttl"),
    ("PUT", f"{K}/t", {"content": b"x", "params": {"ttl": " 5"}}, 400, "invalid_query", "ttl"),
    ("GET", K, {"params": {"limit": "\u00b2"}}, 400, "invalid_query", "limit"),
    ("PUT", f"{K}/t?ttl=1&ttl=2", {"content": b"x"}, 400, "invalid_query", "twice"),
    ("PUT", f"{K}/k", {"content": b"x", "headers": {"if-match": "abc"}}, 400, "invalid_etag", "quoted"),
    ("PUT", f"{K}/k", {"content": b"x", "headers": {"if-match": '"1", "2"'}}, 400, "invalid_etag", "one"),
    ("PUT", f"{K}/k", {"content": b"x", "headers": {"if-none-match": '"1"'}}, 400, "invalid_etag", "*"),
    ("PUT", f"{K}/k", {"content": b"x", "headers": {"content-type": "\x01bad"}}, 400, "invalid_header",
     "Content-Type"),
    ("DELETE", f"{K}/k", {"headers": {"if-match": "W/\"1\""}}, 400, "invalid_etag", "quoted"),
    ("GET", f"{K}/k", {"headers": {"if-none-match": "nope"}}, 400, "invalid_etag", "If-None-Match"),
    ("GET", K, {"params": {"limit": "0"}}, 400, "invalid_query", "limit"),
    ("GET", K, {"params": {"consistency": "eventual"}}, 400, "invalid_query", "consistency"),
    ("GET", f"{K}/k", {"params": {"consistency": "weak"}}, 400, "invalid_query", "consistency"),
    ("GET", K, {"params": {"limit": "ten"}}, 400, "invalid_query", "limit"),
    ("GET", K, {"params": {"keys_only": "maybe"}}, 400, "invalid_query", "keys_only"),
    ("GET", K, {"params": {"keys_only": "1"}}, 400, "invalid_query", "keys_only"),
    ("GET", K, {"params": {"keys_only": "yes"}}, 400, "invalid_query", "keys_only"),
    ("GET", K, {"params": {"keys_only": ""}}, 400, "invalid_query", "keys_only"),
    ("GET", K, {"params": {"keys_only": "TRUE"}}, 400, "invalid_query", "keys_only"),
    ("GET", K, {"params": {"cursor": "garbage!"}}, 400, "invalid_cursor", "cursor"),
    ("GET", K, {"params": {"cursor": "eyJrIjoxfQ"}}, 400, "invalid_cursor", "cursor"),
    ("GET", K, {"params": {"delimiter": "x" * 17}}, 400, "invalid_query", "delimiter"),
    ("GET", K, {"params": {"colour": "red"}}, 400, "invalid_query", "colour"),
    ("GET", f"{K}?%FF=1", {}, 400, "invalid_query", "UTF-8"),
    ("POST", "/v1/ns/app/batch", {"content": b"{not json"}, 400, "invalid_json", "JSON"),
    ("POST", "/v1/ns/app/batch", {"content": b"\xff\xfe"}, 400, "invalid_json", "JSON"),
    # a key given twice would silently take the last value: {"op": "get", "op": "delete"} deleted
    ("POST", "/v1/ns/app/batch", {"content": b'{"ops": [{"op": "get", "op": "delete", "key": "k"}]}'}, 400,
     "invalid_json", "'op' appears twice"),
    ("POST", "/v1/ns/app/batch", {"content": b'{"ops": [], "ops": [{"op": "delete", "key": "k"}]}'}, 400,
     "invalid_json", "twice"),
    ("POST", "/v1/ns/app/txn", {"content": b'{"success": [{"op": "delete", "key": "k", "key": "x"}]}'}, 400,
     "invalid_json", "twice"),
    ("POST", "/v1/ns/app/batch", {"content": b'{"ops": [{"op": "put", "key": "k", "value": "x", "ttl": NaN}]}'},
     400, "invalid_json", "NaN"),
    ("POST", "/v1/ns/app/batch", {"content": b"[" * 100_000}, 400, "invalid_json", "JSON"),
    ("POST", "/v1/ns/app/batch", {"json": []}, 400, "invalid_operation", "ops"),
    ("POST", "/v1/ns/app/batch", {"json": {"ops": {}}}, 400, "invalid_operation", "array"),
    ("POST", "/v1/ns/app/batch", {"json": {"ops": [{"op": "upsert", "key": "k"}]}}, 400,
     "invalid_operation", "ops[0].op"),
    ("POST", "/v1/ns/app/batch", {"json": {"ops": [{"op": "put", "key": "k"}]}}, 400,
     "invalid_operation", "value"),
    ("POST", "/v1/ns/app/batch", {"json": {"ops": [{"op": "put", "key": "k", "value": 5}]}}, 400,
     "invalid_operation", "string"),
    ("POST", "/v1/ns/app/batch", {"json": {"ops": [{"op": "put", "key": "k", "value_base64": "@@"}]}}, 400,
     "invalid_operation", "base64"),
    ("POST", "/v1/ns/app/batch", {"json": {"ops": [{"op": "get", "key": "k", "value": "x"}]}}, 400,
     "invalid_operation", "only a put"),
    ("POST", "/v1/ns/app/batch", {"json": {"ops": [{"op": "get", "key": "k", "extra": 1}]}}, 400,
     "invalid_operation", "extra"),
    ("POST", "/v1/ns/app/batch", {"json": {"ops": [{"op": "put", "key": "k", "value": "x", "ttl": True}]}},
     400, "invalid_operation", "ttl"),
    ("POST", "/v1/ns/app/batch", {"json": {"ops": [{"op": "get", "key": "k"}] * 257}}, 413,
     "batch_too_large", "256"),
    ("POST", "/v1/ns/app/batch", {"json": {"ops": [{"op": "put", "key": "k", "value": "x" * (1024 * 1024 + 1)}]}},
     413, "value_too_large", "1048576"),
    ("POST", "/v1/ns/app/txn", {"json": {"compare": [{"key": "k"}]}}, 400, "invalid_operation", "exactly one"),
    ("POST", "/v1/ns/app/txn", {"json": {"compare": [{"key": "k", "etag": "x"}]}}, 400, "invalid_operation",
     "etag"),
    ("POST", "/v1/ns/app/txn", {"json": {"compare": [{"key": "k", "exists": "yes"}]}}, 400,
     "invalid_operation", "exists"),
    ("POST", "/v1/ns/app/txn", {"json": {"compare": "k"}}, 400, "invalid_operation", "compare"),
    ("POST", "/v1/ns/app/txn", {"json": {"success": [{"op": "put", "key": "k", "value": "1", "if_match": "*"}]}},
     400, "invalid_operation", "compare"),
    ("POST", "/v1/ns/app/txn", {"json": {"succes": []}}, 400, "invalid_operation", "compare"),
    ("POST", "/v1/ns/app/txn", {"json": {"success": [{"op": "get", "key": "k"}] * 129}}, 413,
     "txn_too_large", "128"),
    ("GET", "/v1/ns/app/batch", {}, 405, "method_not_allowed", "POST"),
    ("POST", f"{K}/k", {}, 405, "method_not_allowed", "PUT"),
    ("DELETE", K, {}, 405, "method_not_allowed", "GET"),
    ("PUT", "/healthz", {}, 405, "method_not_allowed", "GET"),
    ("GET", "/v2/anything", {}, 404, "no_route", "openapi"),
    ("GET", "/v1/ns/app/other", {}, 404, "no_route", "openapi"),
]


@pytest.mark.parametrize(("method", "url", "kwargs", "status", "code", "words"), CASES,
                         ids=[f"{c[0]} {c[1][:40]} {c[4]}" for c in CASES])
async def test_bad_input_is_a_clear_4xx_and_changes_nothing(
    client: httpx.AsyncClient, method: str, url: str, kwargs: dict[str, Any], status: int, code: str,
    words: str,
) -> None:
    await client.put(f"{K}/k", content=b"original")
    before = (await client.get(K)).json()
    r = await client.request(method, url, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["title"] and body["type"].endswith(code)
    assert words.lower() in body["detail"].lower(), body["detail"]
    assert CODES[code][0] == status
    if status == 413 and code != "request_too_large":
        assert "limit" in body
    if status == 405:
        assert r.headers["allow"]
    assert (await client.get(K)).json() == before


async def test_request_body_limit(make_app: Any) -> None:
    app = make_app(limits={"max_request_bytes": 2048})
    await app.startup()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            r = await c.post("/v1/ns/app/batch", json={"ops": [{"op": "put", "key": "k", "value": "x" * 3000}]})
            assert r.status_code == 413 and r.json()["code"] == "request_too_large"
            assert r.json()["limit"] == 2048
            assert (await c.get(f"{K}/k")).status_code == 404
    finally:
        await app.shutdown()


async def test_configured_limits_apply(make_app: Any) -> None:
    app = make_app(limits={"max_key_bytes": 8, "max_value_bytes": 4, "max_batch_ops": 2, "max_list_limit": 5})
    await app.startup()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            assert (await c.put(f"{K}/123456789", content=b"x")).json()["limit"] == 8
            assert (await c.put(f"{K}/k", content=b"12345")).json()["limit"] == 4
            assert (await c.put(f"{K}/k", content=b"1234")).status_code == 201
            r = await c.post("/v1/ns/app/batch", json={"ops": [{"op": "get", "key": "k"}] * 3})
            assert r.json()["limit"] == 2
            assert (await c.get(K, params={"limit": 6})).status_code == 400
    finally:
        await app.shutdown()


def test_every_problem_code_is_in_the_openapi_document() -> None:
    from galerakv.config import Settings
    from galerakv.server.openapi import openapi_document

    doc = openapi_document(Settings())
    assert sorted(doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]) == sorted(CODES)
    text = str(doc["paths"])
    for code, (status, _) in CODES.items():
        if status not in (405, 500) and code != "no_route":
            assert f"`{code}`" in text, f"{code} is not described by any endpoint"


async def test_readyz_not_ready_is_a_problem(tmp_path: Path) -> None:
    """503 is an error like the others: problem+json, with the fields of the 200 answer kept."""
    app = App(config.parse({"server": {"backend": "sqlite", "sqlite_path": str(tmp_path / "kv.sqlite3")}},
                           source=tmp_path / "galerakv.toml"))
    await app.startup()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            ready = await c.get("/readyz")
            assert ready.status_code == 200 and ready.headers["content-type"] == "application/json"
            assert ready.json() == {"ready": True, "backend": "sqlite", "detail": "ok"}
            await app.store.close()  # as a database that went away: not readable
            r = await c.get("/readyz")
            assert r.status_code == 503
            assert r.headers["content-type"] == "application/problem+json"
            assert r.headers["retry-after"] == "1"
            body = r.json()
            assert body["code"] == "backend_unavailable" and body["status"] == 503
            assert body["ready"] is False and body["backend"] == "sqlite"
            assert body["detail"].startswith("SQLite not readable") and body["instance"] == "/readyz"
    finally:
        await app.shutdown()
