"""hypothesis properties of the HTTP API, through the in-process client.

Round trips of any key (unicode, slashes, percent signs, spaces) and any value
(empty, binary) with its content type; ETags that change on every write,
delete-and-recreate included; listings that return exactly the stored keys in
code-point order across pages of any size (checked against a dict model).
"""

from __future__ import annotations

import base64
import itertools
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# any Unicode text a key may hold: no NUL, no lone surrogates (not UTF-8)
key_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
keys = st.text(key_chars, min_size=1, max_size=40).filter(lambda k: len(k.encode()) <= 1024)
tricky_keys = st.one_of(
    keys,
    st.sampled_from(["a/b", "/lead", "trail/", "a//b", "%", "%2F", "%00x", "100%", "a b", "?q=1", "#frag",
                     "é", "\U0001f600", "\uffff", "\U0010ffff", "+", "a+b", "~", "key\n", "\t", ";", "&=&"]),
)
content_types = st.one_of(
    st.sampled_from(["application/octet-stream", "text/plain; charset=utf-8", "application/json",
                     "image/png", "x/y; a=\"b c\""]),
    st.from_regex(r"\A[a-z]{1,10}/[a-z0-9.+-]{1,20}\Z"),
)
_counter = itertools.count()


def fresh_ns() -> str:
    return f"p{next(_counter)}"


def seg(part: str) -> str:
    """One percent-encoded path segment. "." and ".." are spelled %2E: clients
    (httpx here, browsers, curl) remove dot segments from URLs before sending."""
    quoted = quote(part, safe="")
    return quoted.replace(".", "%2E") if quoted.strip(".") == "" and quoted else quoted


def url(ns: str, key: str) -> str:
    return f"/v1/ns/{ns}/kv/{seg(key)}"


def etag_of(r: httpx.Response) -> str:
    tag = r.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"'), tag
    return tag


@SETTINGS
@given(key=tricky_keys, value=st.binary(max_size=2048), ctype=content_types)
async def test_roundtrip_any_key_value_and_content_type(client: httpx.AsyncClient, key: str, value: bytes,
                                                        ctype: str) -> None:
    ns = fresh_ns()
    put = await client.put(url(ns, key), content=value, headers={"content-type": ctype})
    assert put.status_code == 201, put.text
    assert put.json()["key"] == key
    got = await client.get(url(ns, key))
    assert got.status_code == 200
    assert got.content == value
    assert got.headers["content-type"] == ctype
    assert got.headers["etag"] == put.headers["etag"]
    head = await client.head(url(ns, key))
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == put.headers["etag"]
    assert int(head.headers["content-length"]) == len(value)
    listed = await client.get(f"/v1/ns/{ns}/kv")
    items = listed.json()["items"]
    assert [i["key"] for i in items] == [key]
    assert items[0]["content_type"] == ctype
    if "value" in items[0]:
        assert items[0]["value"].encode() == value
    else:
        assert base64.b64decode(items[0]["value_base64"]) == value


@SETTINGS
@given(key=keys, value=st.binary(max_size=64))
async def test_raw_slashes_in_path_are_part_of_the_key(client: httpx.AsyncClient, key: str, value: bytes) -> None:
    """'/' may appear unencoded: /kv/a/b is the key "a/b", the same as /kv/a%2Fb."""
    ns = fresh_ns()
    raw_key = f"dir/{key}/x"
    # every other character percent-encoded, slashes left as is
    raw_url = f"/v1/ns/{ns}/kv/" + "/".join(seg(part) for part in raw_key.split("/"))
    put = await client.put(raw_url, content=value)
    assert put.status_code == 201, put.text
    assert put.json()["key"] == raw_key
    got = await client.get(url(ns, raw_key))
    assert got.status_code == 200 and got.content == value
    listed = (await client.get(f"/v1/ns/{ns}/kv", params={"keys_only": "true"})).json()
    assert [i["key"] for i in listed["items"]] == [raw_key]


@pytest.mark.parametrize(("path_key", "key"), [
    ("a%2Fb", "a/b"), ("a/b", "a/b"), ("%25", "%"), ("%2525", "%25"), ("caf%C3%A9", "café"),
    ("a%20b", "a b"), ("%3F", "?"), ("%23", "#"), ("+", "+"), ("%2B", "+"), ("%F0%9F%98%80", "\U0001f600"),
    ("%2E", "."), ("%2E%2E", ".."), ("a/%2E%2E/b", "a/../b"),
])
async def test_percent_encoding_decodes_exactly_once(client: httpx.AsyncClient, path_key: str, key: str) -> None:
    ns = fresh_ns()
    put = await client.put(f"/v1/ns/{ns}/kv/{path_key}", content=b"v")
    assert put.status_code == 201, put.text
    assert put.json()["key"] == key
    assert (await client.get(url(ns, key))).content == b"v"


@pytest.mark.parametrize("path_key", ["%FF", "%C3", "%ED%A0%80", "%00", "a%00b"])
async def test_invalid_utf8_or_nul_keys_are_refused(client: httpx.AsyncClient, path_key: str) -> None:
    ns = fresh_ns()
    r = await client.put(f"/v1/ns/{ns}/kv/{path_key}", content=b"v")
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "invalid_key"
    assert (await client.get(f"/v1/ns/{ns}/kv")).json()["items"] == []


@SETTINGS
@given(values=st.lists(st.binary(max_size=8), min_size=1, max_size=12),
       deletes=st.lists(st.booleans(), min_size=12, max_size=12), key=keys)
async def test_etag_changes_on_every_write(client: httpx.AsyncClient, values: list[bytes], deletes: list[bool],
                                           key: str) -> None:
    """Same value rewritten, or deleted and recreated: a new ETag every time; an old one never matches."""
    ns = fresh_ns()
    seen: list[str] = []
    for value, delete in zip(values, deletes, strict=False):
        r = await client.put(url(ns, key), content=value)
        assert r.status_code in (200, 201)
        tag = etag_of(r)
        assert tag not in seen
        seen.append(tag)
        assert (await client.get(url(ns, key))).headers["etag"] == tag
        if delete:
            assert (await client.delete(url(ns, key), headers={"if-match": tag})).status_code == 204
            assert (await client.get(url(ns, key))).status_code == 404
    if len(seen) > 1:
        stale = await client.put(url(ns, key), content=b"x", headers={"if-match": seen[0]})
        assert stale.status_code == 412
        assert stale.json()["code"] == "precondition_failed"


@SETTINGS
@given(key=keys, value=st.binary(max_size=32))
async def test_conditional_get_304(client: httpx.AsyncClient, key: str, value: bytes) -> None:
    ns = fresh_ns()
    tag = etag_of(await client.put(url(ns, key), content=value))
    r = await client.get(url(ns, key), headers={"if-none-match": tag})
    assert r.status_code == 304 and r.content == b""
    assert r.headers["etag"] == tag
    await client.put(url(ns, key), content=value)
    r2 = await client.get(url(ns, key), headers={"if-none-match": tag})
    assert r2.status_code == 200 and r2.content == value


# --------------------------------------------------------------------------- listing vs. a model

# a small alphabet so prefixes, delimiters and shared stems collide often
list_chars = st.sampled_from([*"ab/.é", "\U0001f600", "\uffff", "A", "0"])
list_keys = st.text(list_chars, min_size=1, max_size=5)
ops = st.lists(st.tuples(st.sampled_from(["put", "put", "put", "delete"]), list_keys), max_size=40)


async def _apply(client: httpx.AsyncClient, ns: str, script: list[tuple[str, str]]) -> dict[str, bytes]:
    model: dict[str, bytes] = {}
    for i, (op, key) in enumerate(script):
        if op == "put":
            value = f"v{i}".encode()
            r = await client.put(url(ns, key), content=value)
            assert r.status_code == (200 if key in model else 201)
            model[key] = value
        else:
            r = await client.delete(url(ns, key))
            assert r.status_code == (204 if key in model else 404)
            model.pop(key, None)
    return model


def _cp_order(keys: list[str]) -> list[str]:
    return sorted(keys, key=lambda k: [ord(c) for c in k])


async def _pages(client: httpx.AsyncClient, ns: str, **params: str | int) -> tuple[list[dict], list[str], int]:
    items: list[dict] = []
    prefixes: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        q = {k: str(v) for k, v in params.items()}
        if cursor is not None:
            q["cursor"] = cursor
        r = await client.get(f"/v1/ns/{ns}/kv", params=q)
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        assert len(body["items"]) + len(body["prefixes"]) <= int(params.get("limit", 100))
        items += body["items"]
        prefixes += body["prefixes"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items, prefixes, pages
        assert pages <= 200, "listing does not end"


@SETTINGS
@given(script=ops, limit=st.integers(1, 7), prefix=st.one_of(st.just(""), list_keys))
async def test_listing_matches_model(client: httpx.AsyncClient, script: list[tuple[str, str]], limit: int,
                                     prefix: str) -> None:
    ns = fresh_ns()
    model = await _apply(client, ns, script)
    items, prefixes, _ = await _pages(client, ns, limit=limit, prefix=prefix)
    expected = _cp_order([k for k in model if k.startswith(prefix)])
    assert [i["key"] for i in items] == expected
    assert prefixes == []
    for item in items:
        assert item["value"].encode() == model[item["key"]]
    keys_only, _, _ = await _pages(client, ns, limit=limit, prefix=prefix, keys_only="true")
    assert [i["key"] for i in keys_only] == expected
    assert all("value" not in i and "value_base64" not in i for i in keys_only)


@SETTINGS
@given(script=ops, limit=st.integers(1, 5), prefix=st.sampled_from(["", "a", "a/", "b/"]),
       delimiter=st.sampled_from(["/", ".", "a/"]))
async def test_listing_with_delimiter_matches_model(client: httpx.AsyncClient, script: list[tuple[str, str]],
                                                    limit: int, prefix: str, delimiter: str) -> None:
    ns = fresh_ns()
    model = await _apply(client, ns, script)
    items, prefixes, _ = await _pages(client, ns, limit=limit, prefix=prefix, delimiter=delimiter)
    want_keys: list[str] = []
    want_prefixes: set[str] = set()
    for k in model:
        if not k.startswith(prefix):
            continue
        cut = k.find(delimiter, len(prefix))
        if cut >= 0:
            want_prefixes.add(k[: cut + len(delimiter)])
        else:
            want_keys.append(k)
    assert [i["key"] for i in items] == _cp_order(want_keys)
    assert prefixes == _cp_order(list(want_prefixes))


@SETTINGS
@given(script=ops, limit=st.integers(1, 4))
async def test_cursor_pages_are_disjoint_and_stable_under_later_writes(
        client: httpx.AsyncClient, script: list[tuple[str, str]], limit: int) -> None:
    """Keys written before the cursor position do not reappear on later pages."""
    ns = fresh_ns()
    model = await _apply(client, ns, script)
    r = await client.get(f"/v1/ns/{ns}/kv", params={"limit": str(limit)})
    first = [i["key"] for i in r.json()["items"]]
    cursor = r.json()["next_cursor"]
    if cursor is None:
        assert first == _cp_order(list(model))
        return
    # write a key smaller than everything: it must not show up after the cursor
    await client.put(url(ns, "!"), content=b"x")
    rest, _, _ = await _pages_from(client, ns, cursor, limit)
    assert "!" not in rest
    assert first + rest == _cp_order(list(model))


async def _pages_from(client: httpx.AsyncClient, ns: str, cursor: str, limit: int) -> tuple[list[str], None, None]:
    out: list[str] = []
    cur: str | None = cursor
    while cur is not None:
        r = await client.get(f"/v1/ns/{ns}/kv", params={"limit": str(limit), "cursor": cur})
        assert r.status_code == 200
        out += [i["key"] for i in r.json()["items"]]
        cur = r.json()["next_cursor"]
    return out, None, None

