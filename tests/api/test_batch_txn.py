"""Batch (independent operations) and txn (atomic compares + branch). Runs on every backend."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from galerakv import config
from galerakv.server.app import App
from tests.support.configs import merge

B = "/v1/ns/app/batch"
T = "/v1/ns/app/txn"
K = "/v1/ns/app/kv"


async def test_batch_operations_each_have_their_own_status(client: httpx.AsyncClient) -> None:
    etag = (await client.put(f"{K}/x", content=b"1")).headers["etag"]
    r = await client.post(B, json={"ops": [
        {"op": "put", "key": "new", "value": "v", "content_type": "text/plain"},
        {"op": "put", "key": "x", "value": "2", "if_match": '"nope"'},
        {"op": "get", "key": "x"},
        {"op": "get", "key": "missing"},
        {"op": "delete", "key": "missing"},
        {"op": "put", "key": "bin", "value_base64": base64.b64encode(b"\x00\xff").decode(), "ttl": 60},
        {"op": "put", "key": "x", "value": "3", "if_match": etag},
    ]})
    assert r.status_code == 200
    res = r.json()["results"]
    assert [x["status"] for x in res] == [201, 412, 200, 404, 404, 201, 200]
    assert res[1]["current_etag"] == etag
    assert res[2]["value"] == "1" and res[2]["etag"] == etag
    assert "expires_at" in res[5]
    assert (await client.get(f"{K}/x")).content == b"3"
    assert (await client.get(f"{K}/bin")).content == b"\x00\xff"
    assert (await client.get(f"{K}/new")).headers["content-type"] == "text/plain"


async def test_empty_batch(client: httpx.AsyncClient) -> None:
    r = await client.post(B, json={"ops": []})
    assert r.status_code == 200 and r.json() == {"results": []}


async def test_batch_get_returns_binary_as_base64(client: httpx.AsyncClient) -> None:
    await client.put(f"{K}/b", content=b"\xff")
    res = (await client.post(B, json={"ops": [{"op": "get", "key": "b"}]})).json()["results"]
    assert res[0]["value_base64"] == "/w=="


async def test_txn_success_branch(client: httpx.AsyncClient) -> None:
    etag = (await client.put(f"{K}/acct", content=b"10")).headers["etag"]
    r = await client.post(T, json={
        "compare": [{"key": "acct", "etag": etag}, {"key": "lock", "exists": False},
                    {"key": "acct", "value": "10"}],
        "success": [{"op": "put", "key": "acct", "value": "5"}, {"op": "put", "key": "log", "value": "-5"},
                    {"op": "get", "key": "acct"}],
        "failure": [{"op": "get", "key": "acct"}],
    })
    body = r.json()
    assert r.status_code == 200 and body["succeeded"] is True
    assert [x["status"] for x in body["results"]] == [200, 201, 200]
    assert body["results"][2]["value"] == "5"
    assert (await client.get(f"{K}/log")).content == b"-5"


async def test_txn_failure_branch_changes_nothing_of_success(client: httpx.AsyncClient) -> None:
    await client.put(f"{K}/acct", content=b"10")
    r = await client.post(T, json={
        "compare": [{"key": "acct", "value": "999"}],
        "success": [{"op": "delete", "key": "acct"}],
        "failure": [{"op": "get", "key": "acct"}, {"op": "put", "key": "failed", "value": "1"}],
    })
    body = r.json()
    assert body["succeeded"] is False
    assert body["results"][0]["value"] == "10"
    assert (await client.get(f"{K}/acct")).status_code == 200
    assert (await client.get(f"{K}/failed")).status_code == 200


async def test_txn_not_and_missing_keys(client: httpx.AsyncClient) -> None:
    r = await client.post(T, json={"compare": [{"key": "ghost", "exists": True, "not": True},
                                               {"key": "ghost", "value": "x", "not": True}],
                                   "success": [{"op": "put", "key": "ghost", "value": "now"}]})
    assert r.json()["succeeded"] is True
    written = r.json()["revision"]
    r = await client.post(T, json={"compare": [{"key": "ghost", "exists": False}]})
    # a transaction that changed nothing answers the revision it was decided at: not before the last change
    assert r.json() == {"succeeded": False, "results": [], "revision": r.json()["revision"]}
    assert r.json()["revision"] >= written and r.headers["x-galerakv-revision"] == str(r.json()["revision"])


async def test_txn_is_atomic_with_invalid_operation(client: httpx.AsyncClient) -> None:
    # one bad operation rejects the whole transaction before anything is applied
    r = await client.post(T, json={"success": [{"op": "put", "key": "a", "value": "1"},
                                               {"op": "put", "key": "", "value": "2"}]})
    assert r.status_code == 400
    assert (await client.get(f"{K}/a")).status_code == 404


async def test_txn_transfers_stay_consistent_under_concurrency(client: httpx.AsyncClient) -> None:
    import asyncio

    await client.put(f"{K}/a", content=b"100")
    await client.put(f"{K}/b", content=b"0")

    async def move() -> None:
        for _ in range(30):
            a = await client.get(f"{K}/a")
            b = await client.get(f"{K}/b")
            r = await client.post(T, json={
                "compare": [{"key": "a", "etag": a.headers["etag"]}, {"key": "b", "etag": b.headers["etag"]}],
                "success": [{"op": "put", "key": "a", "value": str(int(a.content) - 1)},
                            {"op": "put", "key": "b", "value": str(int(b.content) + 1)}]})
            assert r.status_code == 200

    await asyncio.gather(*[move() for _ in range(4)])
    a = int((await client.get(f"{K}/a")).content)
    b = int((await client.get(f"{K}/b")).content)
    assert a + b == 100 and b > 0


@pytest.mark.cluster
async def test_a_txn_that_only_reads_takes_no_row_lock(galera_api_cluster: dict[str, Any], tmp_path: Path) -> None:
    """A write-free transaction is decided on a read view, not under row locks on the writer: while
    another session holds a key's row lock for 6 s, a txn comparing and reading it answers at once
    (it used to wait for the lock, so a token that may only read could make writers wait)."""
    data = dict(galera_api_cluster)
    cluster = data.pop("__cluster__")
    cluster.cli("sql", "--node", "db1", "-e", "DELETE FROM galerakv.kv")
    app = App(config.parse(merge(data, {"server": {"backend": "mariadb", "route": "nodes"}}),
                           source=tmp_path / "galerakv.toml"))
    await app.startup()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            assert (await c.put(f"{K}/locked", content=b"v")).status_code == 201
            writer = (await c.get("/v1/status")).json()["backend"]["writer"]
            hold = ("BEGIN; SELECT k FROM galerakv.kv WHERE ns = 'app' AND k = 'locked' FOR UPDATE; "
                    "SELECT SLEEP(6); COMMIT")
            holder = subprocess.Popen([sys.executable, "-m", "galerakv.cli.main", "cluster", "sql", "--node", writer,
                                       "-e", hold, "--config", str(cluster.config)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                await asyncio.sleep(2.0)  # the lock is taken
                assert holder.poll() is None
                began = time.monotonic()
                r = await c.post(T, json={"compare": [{"key": "locked", "exists": True}],
                                          "success": [{"op": "get", "key": "locked"}]})
                took = time.monotonic() - began
                assert r.status_code == 200, r.text
                assert r.json()["succeeded"] and r.json()["results"][0]["value"] == "v"
                assert r.json()["revision"] >= 1
                assert took < 3.0 and holder.poll() is None, f"the read-only txn waited {took:.1f} s for the lock"
            finally:
                holder.wait(30)
    finally:
        await app.shutdown()
