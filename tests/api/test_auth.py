"""Optional bearer-token auth: off by default, read / readwrite scopes per namespace."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from galerakv.server.app import App

WRITER = "writer-token-0123456789"
READER = "reader-token-0123456789"
ADMIN = "admin-token-0123456789"
AUTH = {"enabled": True, "tokens": [
    {"name": "ops", "token": ADMIN, "scopes": {}, "admin": True},
    {"name": "writer", "token": WRITER, "scopes": {"app": "readwrite", "*": "read"}},
    {"name": "reader", "token_sha256": hashlib.sha256(READER.encode()).hexdigest(), "scopes": {"app": "read"}},
]}


@pytest.fixture
async def secured(make_app: Callable[..., App]) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(auth=AUTH)
    await app.startup()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            yield c
    finally:
        await app.shutdown()


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_auth_is_off_by_default(client: httpx.AsyncClient) -> None:
    assert (await client.put("/v1/ns/app/kv/k", content=b"x")).status_code == 201


@pytest.mark.parametrize("headers", [{}, bearer("wrong-token-xxxxxxxxxx"), {"authorization": "Basic abc"},
                                     {"authorization": "Bearer "}])
async def test_missing_or_bad_token_is_401(secured: httpx.AsyncClient, headers: dict[str, str]) -> None:
    r = await secured.get("/v1/ns/app/kv/k", headers=headers)
    assert r.status_code == 401
    assert r.json()["code"] == "unauthorized"
    assert r.headers["www-authenticate"].startswith("Bearer")


async def test_scopes(secured: httpx.AsyncClient) -> None:
    assert (await secured.put("/v1/ns/app/kv/k", content=b"x", headers=bearer(WRITER))).status_code == 201
    assert (await secured.get("/v1/ns/app/kv/k", headers=bearer(READER))).status_code == 200
    r = await secured.put("/v1/ns/app/kv/k", content=b"y", headers=bearer(READER))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert (await secured.delete("/v1/ns/app/kv/k", headers=bearer(READER))).status_code == 403
    # the writer may only read other namespaces; the reader has none
    assert (await secured.put("/v1/ns/other/kv/k", content=b"x", headers=bearer(WRITER))).status_code == 403
    assert (await secured.get("/v1/ns/other/kv/k", headers=bearer(WRITER))).status_code == 404
    assert (await secured.get("/v1/ns/other/kv/k", headers=bearer(READER))).status_code == 403
    assert (await secured.get("/v1/ns/app/kv/k", headers=bearer(WRITER))).content == b"x"


@pytest.mark.parametrize(("body", "reader_status"), [
    ({"ops": [{"op": "get", "key": "k"}]}, 200),
    ({"ops": [{"op": "get", "key": "k"}, {"op": "delete", "key": "k"}]}, 403),
])
async def test_batch_needs_write_scope_only_for_writes(secured: httpx.AsyncClient, body: dict[str, Any],
                                                        reader_status: int) -> None:
    await secured.put("/v1/ns/app/kv/k", content=b"x", headers=bearer(WRITER))
    r = await secured.post("/v1/ns/app/batch", json=body, headers=bearer(READER))
    assert r.status_code == reader_status
    assert (await secured.get("/v1/ns/app/kv/k", headers=bearer(WRITER))).status_code == 200


async def test_txn_write_needs_write_scope(secured: httpx.AsyncClient) -> None:
    r = await secured.post("/v1/ns/app/txn", json={"success": [{"op": "put", "key": "k", "value": "1"}]},
                           headers=bearer(READER))
    assert r.status_code == 403
    assert (await secured.get("/v1/ns/app/kv/k", headers=bearer(READER))).status_code == 404


async def test_health_endpoints_stay_open(secured: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert (await secured.get(path)).status_code == 200
    assert (await secured.get("/v1/status")).status_code == 401
    assert (await secured.get("/v1/status", headers=bearer(READER))).status_code == 200


async def test_the_change_feed_needs_a_token_that_may_read_the_namespace(secured: httpx.AsyncClient) -> None:
    assert (await secured.get("/v1/ns/app/changes")).status_code == 401
    assert (await secured.get("/v1/ns/app/watch")).status_code == 401
    assert (await secured.get("/v1/ns/other/changes", headers=bearer(READER))).status_code == 403
    assert (await secured.get("/v1/ns/other/watch", headers=bearer(READER))).status_code == 403
    written = await secured.put("/v1/ns/app/kv/k", content=b"v", headers=bearer(WRITER))
    page = await secured.get("/v1/ns/app/changes", params={"since": int(written.headers["x-galerakv-revision"]) - 1},
                             headers=bearer(READER))
    assert page.status_code == 200 and [e["key"] for e in page.json()["events"]] == ["k"]


async def test_status_details_only_for_an_admin_token(secured: httpx.AsyncClient, backend: str) -> None:
    """Paths and node addresses are not for every client: other tokens get the summary."""
    assert (await secured.get("/v1/status")).status_code == 401
    summary = (await secured.get("/v1/status", headers=bearer(WRITER))).json()
    assert set(summary["backend"]) == {"kind", "ready", "detail"}
    assert summary["backend"]["kind"] == backend and "limits" in summary
    full = (await secured.get("/v1/status", headers=bearer(ADMIN))).json()
    hidden = "path" if backend == "sqlite" else "nodes"
    assert hidden in full["backend"] and hidden not in summary["backend"]
    # an admin token with no scope reads no data
    assert (await secured.get("/v1/ns/app/kv/k", headers=bearer(ADMIN))).status_code == 403
