"""The SQLite backend against the store contract (galerakv/backend/base.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import time
from pathlib import Path

import pytest

from galerakv.backend.base import Compare, ListQuery, Op
from galerakv.backend.sqlite import SQLiteStore
from galerakv.errors import BackendUnavailable, InvalidRequest

NS = "app"




async def test_put_get_roundtrip_binary(store: SQLiteStore) -> None:
    value = bytes(range(256))
    r = await store.put(NS, "k", value, "application/x-bin")
    assert r.status == "created"
    e = await store.get(NS, "k")
    assert e is not None and e.value == value and e.content_type == "application/x-bin"
    assert e.version == r.entry.version if r.entry else False
    assert await store.get("other", "k") is None  # namespaces are separate


async def test_versions_never_repeat(store: SQLiteStore) -> None:
    seen: list[str] = []
    for i in range(20):
        r = await store.put(NS, "k", str(i).encode(), "text/plain")
        assert r.status == ("created" if i == 0 or (i - 1) % 3 == 0 else "ok")
        assert r.entry is not None
        seen.append(r.entry.version)
        if i % 3 == 0:
            d = await store.delete(NS, "k")
            assert d.status == "ok"
    other = await store.put(NS, "other", b"x", "text/plain")
    assert other.entry is not None
    seen.append(other.entry.version)
    assert len(set(seen)) == len(seen)


async def test_delete_and_recreate_changes_version(store: SQLiteStore) -> None:
    first = await store.put(NS, "k", b"same", "text/plain")
    await store.delete(NS, "k")
    second = await store.put(NS, "k", b"same", "text/plain")
    assert first.entry and second.entry and first.entry.version != second.entry.version
    assert second.status == "created"
    # an If-Match with the old version must fail (no ABA)
    r = await store.put(NS, "k", b"new", "text/plain", if_match=first.entry.version)
    assert r.status == "precondition_failed"
    assert r.entry is not None and r.entry.version == second.entry.version


async def test_versions_survive_reopen(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "kv.sqlite3")
    await s.open()
    a = await s.put(NS, "k", b"1", "t/t")
    await s.delete(NS, "k")
    await s.close()
    s2 = SQLiteStore(tmp_path / "kv.sqlite3")
    await s2.open()
    try:
        b = await s2.put(NS, "k", b"1", "t/t")
        assert a.entry and b.entry and int(b.entry.version) > int(a.entry.version)
    finally:
        await s2.close()


async def test_conditions(store: SQLiteStore) -> None:
    assert (await store.put(NS, "k", b"1", "t/t", if_match="*")).status == "precondition_failed"
    assert (await store.put(NS, "k", b"1", "t/t", if_match="5")).status == "precondition_failed"
    created = await store.put(NS, "k", b"1", "t/t", if_none_match=True)
    assert created.status == "created" and created.entry is not None
    again = await store.put(NS, "k", b"2", "t/t", if_none_match=True)
    assert again.status == "precondition_failed" and again.entry is not None
    assert again.entry.value == b"1"
    ok = await store.put(NS, "k", b"3", "t/t", if_match=created.entry.version)
    assert ok.status == "ok"
    assert (await store.delete(NS, "k", if_match=created.entry.version)).status == "precondition_failed"
    assert (await store.get(NS, "k")) is not None
    assert ok.entry is not None
    assert (await store.delete(NS, "k", if_match=ok.entry.version)).status == "ok"
    assert (await store.delete(NS, "k")).status == "not_found"


async def test_ttl_invisible_at_once_then_purged(store: SQLiteStore) -> None:
    await store.put(NS, "short", b"x", "t/t", ttl=0.2)
    await store.put(NS, "long", b"y", "t/t", ttl=3600)
    await store.put(NS, "forever", b"z", "t/t")
    e = await store.get(NS, "short")
    assert e is not None and e.expires_at is not None and e.expires_at > time.time()
    await asyncio.sleep(0.3)
    assert await store.get(NS, "short") is None
    page = await store.list_keys(NS, ListQuery())
    assert [x.key for x in page.entries] == ["forever", "long"]
    # an expired key does not exist for conditions either
    assert (await store.put(NS, "short", b"n", "t/t", if_match="*")).status == "precondition_failed"
    assert (await store.delete(NS, "short")).status == "not_found"
    txn = await store.txn(NS, [Compare("short", "exists", False)], [], [])
    assert txn.succeeded
    # still physically present until purged
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("SELECT count(*) FROM kv WHERE key = 'short'").fetchone()[0] == 1
        assert await store.purge_expired() == 1
        assert conn.execute("SELECT count(*) FROM kv WHERE key = 'short'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM kv").fetchone()[0] == 2
    finally:
        conn.close()
    assert await store.purge_expired() == 0
    # create-only over an expired key succeeds as a creation
    await store.put(NS, "gone", b"x", "t/t", ttl=0.05)
    await asyncio.sleep(0.1)
    assert (await store.put(NS, "gone", b"again", "t/t", if_none_match=True)).status == "created"


async def test_purge_limit(store: SQLiteStore) -> None:
    for i in range(5):
        await store.put(NS, f"k{i}", b"x", "t/t", ttl=0.05)
    await asyncio.sleep(0.1)
    assert await store.purge_expired(limit=2) == 2
    assert await store.purge_expired(limit=10) == 3


async def test_txn_atomic_success_and_failure(store: SQLiteStore) -> None:
    a = await store.put(NS, "a", b"1", "t/t")
    assert a.entry is not None
    res = await store.txn(NS, [Compare("a", "version", a.entry.version), Compare("a", "value", b"1"),
                              Compare("b", "exists", False)],
                          [Op("put", "b", b"2"), Op("delete", "a"), Op("get", "b")],
                          [Op("put", "failed", b"x")])
    assert res.succeeded
    assert [r.status for r in res.results] == ["created", "ok", "ok"]
    assert res.results[2].entry is not None and res.results[2].entry.value == b"2"
    assert await store.get(NS, "a") is None
    assert await store.get(NS, "failed") is None
    res2 = await store.txn(NS, [Compare("a", "exists", True)], [Op("put", "x", b"")],
                           [Op("put", "f", b"1")])
    assert not res2.succeeded
    assert await store.get(NS, "x") is None and await store.get(NS, "f") is not None
    neg = await store.txn(NS, [Compare("b", "value", b"2", negate=True)], [Op("put", "n", b"")], [])
    assert not neg.succeeded and await store.get(NS, "n") is None


async def test_txn_all_or_nothing_on_error(store: SQLiteStore) -> None:
    """A txn whose op fails in the database leaves nothing behind, not half the branch."""
    await store.put(NS, "keep", b"old", "t/t")

    def boom(tx: object) -> None:
        raise sqlite3.IntegrityError("injected")

    # the txn job itself: success ops then a failing statement in the same job
    async def failing_txn() -> None:
        def job(tx: object) -> None:
            from galerakv.backend.sqlite import _Tx
            assert isinstance(tx, _Tx)
            tx.apply(NS, Op("put", "keep", b"new"))
            tx.apply(NS, Op("put", "half", b"x"))
            boom(tx)

        await store._write(job)

    with pytest.raises(InvalidRequest):
        await failing_txn()
    e = await store.get(NS, "keep")
    assert e is not None and e.value == b"old"
    assert await store.get(NS, "half") is None


async def test_batch_independent(store: SQLiteStore) -> None:
    await store.put(NS, "exists", b"1", "t/t")
    results = await store.batch(NS, [
        Op("put", "exists", b"2", if_none_match=True),
        Op("put", "new", b"n"),
        Op("delete", "missing"),
        Op("put", "cas", b"x", if_match="999999"),
        Op("get", "new"),
        Op("delete", "exists"),
    ])
    assert [r.status for r in results] == ["precondition_failed", "created", "not_found",
                                           "precondition_failed", "ok", "ok"]
    assert results[4].entry is not None and results[4].entry.value == b"n"
    assert await store.get(NS, "new") is not None
    assert await store.get(NS, "exists") is None
    reads = await store.batch(NS, [Op("get", "new"), Op("get", "nope")])
    assert [r.status for r in reads] == ["ok", "not_found"]


async def _fill(store: SQLiteStore, keys: list[str]) -> None:
    await store.batch(NS, [Op("put", k, k.encode(), "text/plain") for k in keys])


async def _all_pages(store: SQLiteStore, q: ListQuery) -> tuple[list[str], list[str], int]:
    keys: list[str] = []
    prefixes: list[str] = []
    pages = 0
    cursor = None
    while True:
        page = await store.list_keys(NS, ListQuery(q.prefix, q.limit, cursor, q.keys_only, q.delimiter))
        pages += 1
        assert len(page.entries) + len(page.prefixes) <= q.limit
        keys += [e.key for e in page.entries]
        prefixes += list(page.prefixes)
        cursor = page.next_cursor
        if cursor is None:
            return keys, prefixes, pages
        assert pages < 1000


async def test_listing_order_and_cursors(store: SQLiteStore) -> None:
    keys = ["a", "b", "a/1", "a/2", "é", "z", "\U0001f600", "ab", "A", "a/", "\uffff", "a0"]
    await _fill(store, keys)
    expected = sorted(keys, key=lambda k: k.encode())
    for limit in (1, 2, 3, 5, 100):
        got, _, pages = await _all_pages(store, ListQuery(limit=limit))
        assert got == expected, limit
        assert pages == max(1, -(-len(keys) // limit))
    got, _, _ = await _all_pages(store, ListQuery(prefix="a", limit=2))
    assert got == [k for k in expected if k.startswith("a")]
    page = await store.list_keys(NS, ListQuery(keys_only=True))
    assert all(e.value == b"" for e in page.entries)
    full = await store.list_keys(NS, ListQuery())
    assert {e.key: e.value for e in full.entries} == {k: k.encode() for k in keys}


async def test_listing_with_delimiter(store: SQLiteStore) -> None:
    await _fill(store, ["a/1", "a/2", "a/b/c", "b", "c/x", "c/y", "d", "dir/", "dir/x"])
    keys, prefixes, _ = await _all_pages(store, ListQuery(delimiter="/", limit=100))
    assert keys == ["b", "d"]
    assert prefixes == ["a/", "c/", "dir/"]
    for limit in (1, 2, 3):
        k2, p2, _ = await _all_pages(store, ListQuery(delimiter="/", limit=limit))
        assert (k2, p2) == (keys, prefixes), limit
    keys, prefixes, _ = await _all_pages(store, ListQuery(prefix="a/", delimiter="/", limit=1))
    assert keys == ["a/1", "a/2"] and prefixes == ["a/b/"]


async def test_cursor_tampering(store: SQLiteStore) -> None:
    await _fill(store, [f"k{i:02d}" for i in range(10)])
    page = await store.list_keys(NS, ListQuery(limit=3))
    assert page.next_cursor is not None
    good = page.next_cursor
    raw = lambda obj: base64.urlsafe_b64encode(json.dumps(obj).encode()).decode()  # noqa: E731
    bad_cursors = [
        "not a cursor!", good[:-3] + "###", "", raw({"k": 5, "i": 1}), raw({"k": "a", "i": 2}),
        raw({"x": "a"}), raw([1, 2]), base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        raw({"k": "\ud800", "i": 0}),
    ]
    for bad in bad_cursors:
        if bad == "":
            continue
        with pytest.raises(InvalidRequest) as info:
            await store.list_keys(NS, ListQuery(limit=3, cursor=bad))
        assert info.value.code == "invalid_cursor", bad
    ok = await store.list_keys(NS, ListQuery(limit=3, cursor=good))
    assert [e.key for e in ok.entries] == ["k03", "k04", "k05"]


async def test_concurrent_puts_get_distinct_versions(store: SQLiteStore) -> None:
    async def put(i: int) -> str:
        r = await store.put(NS, f"key{i % 50}", str(i).encode(), "text/plain")
        assert r.entry is not None
        return r.entry.version

    versions = await asyncio.gather(*(put(i) for i in range(500)))
    assert len(set(versions)) == 500
    page = await store.list_keys(NS, ListQuery(limit=100))
    assert len(page.entries) == 50
    # each key holds its highest version's value
    latest = {}
    for i, v in enumerate(versions):
        k = f"key{i % 50}"
        if k not in latest or int(v) > int(latest[k][0]):
            latest[k] = (v, str(i).encode())
    for e in page.entries:
        assert (e.version, e.value) == latest[e.key]


async def test_group_commit_batches_writes(store: SQLiteStore) -> None:
    """Many concurrent writers share commits: fewer transactions than writes."""
    commits = 0
    writer = store._writer
    assert writer is not None
    original = writer._commit

    def counting(group: list) -> None:  # type: ignore[type-arg]
        nonlocal commits
        commits += 1
        original(group)

    writer._commit = counting  # type: ignore[method-assign]
    await asyncio.gather(*(store.put(NS, f"g{i}", b"x", "t/t") for i in range(300)))
    assert commits < 300


async def test_status_and_closed_store(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "kv.sqlite3")
    await s.open()
    status = await s.status()
    assert status.ready and status.kind == "sqlite"
    await s.close()
    with pytest.raises(BackendUnavailable):
        await s.get(NS, "k")
    with pytest.raises(BackendUnavailable):
        await s.put(NS, "k", b"", "t/t")
    assert not (await s.status()).ready


async def test_open_in_unwritable_place_is_backend_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    s = SQLiteStore(blocker / "kv.sqlite3")
    with pytest.raises(BackendUnavailable) as info:
        await s.open()
    assert "kv.sqlite3" in str(info.value)


async def test_wal_readers_do_not_wait_for_writer(store: SQLiteStore) -> None:
    await store.put(NS, "k", b"v", "t/t")
    other = sqlite3.connect(store.path, timeout=0.1, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # a writer holds the write lock
        t0 = time.perf_counter()
        e = await store.get(NS, "k")
        assert e is not None and e.value == b"v"
        assert time.perf_counter() - t0 < 0.5
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        other.execute("ROLLBACK")
        other.close()
