"""Listing: order, prefixes, cursors, keys_only, delimiter. Runs on every backend."""

from __future__ import annotations

import httpx
import pytest

K = "/v1/ns/app/kv"


async def fill(client: httpx.AsyncClient, keys: list[str]) -> None:
    for start in range(0, len(keys), 200):
        chunk = keys[start:start + 200]
        r = await client.post("/v1/ns/app/batch",
                              json={"ops": [{"op": "put", "key": k, "value": f"v-{k}"} for k in chunk]})
        assert r.status_code == 200
        assert all(x["status"] == 201 for x in r.json()["results"])


async def all_pages(client: httpx.AsyncClient, **params: str | int) -> tuple[list[str], int]:
    keys: list[str] = []
    pages = 0
    cursor = None
    while True:
        q = dict(params)
        if cursor:
            q["cursor"] = cursor
        body = (await client.get(K, params=q)).json()
        pages += 1
        keys += [i["key"] for i in body["items"]] + body["prefixes"]
        cursor = body["next_cursor"]
        if cursor is None:
            return keys, pages
        assert pages < 1000


async def test_listing_is_ordered_by_code_point(client: httpx.AsyncClient) -> None:
    keys = ["b", "a", "B", "ä", "a/b", "a0", "Z", "😀", "\uffff", "aa"]
    await fill(client, keys)
    body = (await client.get(K)).json()
    assert [i["key"] for i in body["items"]] == sorted(keys)
    assert body["next_cursor"] is None
    assert body["items"][0]["value"] == "v-B"


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 25])
async def test_pages_cover_everything_once(client: httpx.AsyncClient, limit: int) -> None:
    keys = [f"k{i:03d}" for i in range(25)]
    await fill(client, keys)
    got, pages = await all_pages(client, limit=limit)
    assert got == keys
    assert pages == -(-25 // limit)


async def test_prefix(client: httpx.AsyncClient) -> None:
    await fill(client, ["user/1", "user/2", "users", "user", "usea", "uf"])
    got, _ = await all_pages(client, prefix="user/", limit=1)
    assert got == ["user/1", "user/2"]
    got, _ = await all_pages(client, prefix="user")
    assert got == ["user", "user/1", "user/2", "users"]


async def test_keys_only_omits_values(client: httpx.AsyncClient) -> None:
    await fill(client, ["x"])
    item = (await client.get(K, params={"keys_only": "true"})).json()["items"][0]
    assert item["key"] == "x" and "etag" in item and "value" not in item


async def test_binary_values_are_base64_in_listing(client: httpx.AsyncClient) -> None:
    await client.put(f"{K}/bin", content=b"\xff\xfe")
    item = (await client.get(K)).json()["items"][0]
    assert item["value_base64"] == "//4=" and "value" not in item


async def test_delimiter_groups_one_level(client: httpx.AsyncClient) -> None:
    await fill(client, ["a/1", "a/2", "a/b/3", "b/1", "c", "d/", "e"])
    body = (await client.get(K, params={"delimiter": "/"})).json()
    assert body["prefixes"] == ["a/", "b/", "d/"]
    assert [i["key"] for i in body["items"]] == ["c", "e"]
    body = (await client.get(K, params={"delimiter": "/", "prefix": "a/"})).json()
    assert body["prefixes"] == ["a/b/"]
    assert [i["key"] for i in body["items"]] == ["a/1", "a/2"]


async def test_delimiter_pages_with_cursor(client: httpx.AsyncClient) -> None:
    await fill(client, ["a/1", "a/2", "b/1", "b/2", "c", "d/1", "e"])
    got, pages = await all_pages(client, delimiter="/", limit=2)
    # each page lists its items, then its prefixes
    assert sorted(got) == ["a/", "b/", "c", "d/", "e"]
    assert len(got) == 5 and pages == 3


async def test_page_cost_does_not_grow_with_namespace(client: httpx.AsyncClient) -> None:
    # a prefix group of 300 keys collapses into one entry: the page still holds `limit` items
    await fill(client, [f"big/{i:04d}" for i in range(300)] + ["small1", "small2"])
    body = (await client.get(K, params={"delimiter": "/", "limit": 2})).json()
    assert body["prefixes"] == ["big/"]
    assert [i["key"] for i in body["items"]] == ["small1"]
    assert body["next_cursor"] is not None


async def test_limit_default_and_maximum(client: httpx.AsyncClient) -> None:
    await fill(client, [f"k{i:04d}" for i in range(150)])
    body = (await client.get(K)).json()
    assert len(body["items"]) == 100 and body["next_cursor"]
    assert (await client.get(K, params={"limit": 1000})).status_code == 200
    r = await client.get(K, params={"limit": 1001})
    assert r.status_code == 400 and "1000" in r.json()["detail"]


async def test_listing_sees_writes_after_cursor(client: httpx.AsyncClient) -> None:
    await fill(client, ["a", "b", "c"])
    page = (await client.get(K, params={"limit": 1})).json()
    await fill(client, ["bb"])
    rest, _ = await all_pages(client, cursor=page["next_cursor"])
    assert rest == ["b", "bb", "c"]
