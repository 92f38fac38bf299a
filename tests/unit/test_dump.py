"""The dump format (galerakv/backend/dump.py): lines, checks, export and import on a real SQLite store."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from galerakv.backend import dump
from galerakv.backend.base import Entry, Op
from galerakv.backend.sqlite import SQLiteStore
from galerakv.config import LimitsSettings
from galerakv.errors import BackendUnavailable

LIMITS = LimitsSettings(max_key_bytes=16, max_value_bytes=8, max_ttl_seconds=1000)
HEADER = b'{"galerakv_export":1,"revision":0,"created":"2025-01-01T00:00:00.000Z"}\n'


def rec(**fields: Any) -> bytes:
    """A record line: a valid one, with ``fields`` laid over it (``...``: left out)."""
    data: dict[str, Any] = {"ns": "app", "key": "k", "value_base64": "aGk=", "content_type": "text/plain",
                            "ttl": None}
    data.update(fields)
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode() + b"\n"


class Stream(io.BytesIO):
    """A pipe: read once, not seekable."""

    def seekable(self) -> bool:
        return False




async def exported(store: SQLiteStore, **kwargs: Any) -> list[bytes]:
    out = io.BytesIO()
    await dump.export(store, out.write, **kwargs)
    return out.getvalue().splitlines(keepends=True)


# ---------------------------------------------------------------------------- lines


def test_a_record_line_is_rendered_one_way() -> None:
    now = 1000.0
    entry = Entry("clé/😀", b"\x00\xff", "application/x-bin", "7", expires_at=now + 1.0001)
    assert dump.record_line("app", entry, now) == (
        '{"ns":"app","key":"clé/😀","value_base64":"AP8=","content_type":"application/x-bin","ttl":1.001}\n'
    ).encode()
    forever = Entry("k", b"", "text/plain", "7")
    assert dump.record_line("app", forever, now) == (
        b'{"ns":"app","key":"k","value_base64":"","content_type":"text/plain","ttl":null}\n')
    assert dump.record_line("app", Entry("k", b"", "t/p", "7", expires_at=now), now) is None


@pytest.mark.parametrize(("left", "ttl"), [(5.0, 5.0), (0.0000001, 0.001), (2.0004, 2.001), (-1.0, -1.0)])
def test_ttl_is_rounded_up_to_the_millisecond(left: float, ttl: float) -> None:
    assert dump.remaining_ttl(100.0 + left, 100.0) == ttl
    assert dump.remaining_ttl(None, 100.0) is None


def test_header_line() -> None:
    line = dump.header_line(42, 0.5)
    assert line == b'{"galerakv_export":1,"revision":42,"created":"1970-01-01T00:00:00.500Z"}\n'
    assert list(dump.records(io.BytesIO(line), LIMITS)) == []


def test_valid_records() -> None:
    lines = HEADER + rec(ttl=5) + rec(key="é" * 8, value_base64="", ttl=0.5, content_type="a/b; q=1")
    got = list(dump.records(io.BytesIO(lines), LIMITS))
    assert got == [(2, dump.Record("app", "k", b"hi", "text/plain", 5.0)),
                   (3, dump.Record("app", "é" * 8, b"", "a/b; q=1", 0.5))]
    # exports concatenated: a header may start again anywhere
    assert len(list(dump.records(io.BytesIO(lines + HEADER + rec()), LIMITS))) == 3


BAD = [
    # (id, input, line, what the message says)
    ("empty", b"", 1, "the input is empty"),
    ("no header", rec(), 1, "not the header of a galerakv export"),
    ("other format", b'{"galerakv_export":2,"revision":0,"created":"x"}\n', 1, "format 2; this galerakv reads"),
    ("header field", b'{"galerakv_export":1,"revision":0,"created":"x","z":1}\n', 1, "unknown field 'z'"),
    ("header revision", b'{"galerakv_export":1,"revision":-1,"created":"x"}\n', 1, "revision must be a whole number"),
    ("not json", HEADER + b"{oops\n", 2, "not valid JSON"),
    ("not an object", HEADER + b"[1, 2]\n", 2, "not a JSON object"),
    ("blank line", HEADER + rec() + b"\n", 3, "not valid JSON"),
    ("missing field", HEADER + rec(ttl=...), 2, "no field 'ttl'"),
    ("extra field", HEADER + rec(etag='"1"'), 2, "unknown field 'etag'"),
    ("ns type", HEADER + rec(ns=1), 2, "ns must be a string, not 1"),
    ("bad ns", HEADER + rec(ns="no spaces"), 2, "ns 'no spaces' is not a valid namespace"),
    ("empty key", HEADER + rec(key=""), 2, "key is empty"),
    ("long key", HEADER + rec(key="x" * 17), 2, "key is 17 bytes; the limit is 16 bytes"),
    ("nul key", HEADER + rec(key="a\x00b"), 2, "key contains a NUL character"),
    ("surrogate key", HEADER + b'{"ns":"a","key":"\\ud800","value_base64":"","content_type":"t/p","ttl":null}\n',
     2, "not valid JSON"),
    ("bad base64", HEADER + rec(value_base64="not base64!"), 2, "value_base64 is not valid base64"),
    ("value null", HEADER + rec(value_base64=None), 2, "value_base64 must be a string, not null"),
    ("large value", HEADER + rec(value_base64=base64.b64encode(b"x" * 9).decode()), 2, "the value is 9 bytes"),
    ("content type", HEADER + rec(content_type="tab\there"), 2, "content_type 'tab\\there' is not valid"),
    ("empty content type", HEADER + rec(content_type=""), 2, "content_type '' is not valid"),
    ("negative ttl", HEADER + rec(ttl=-1), 2, "ttl must be null (no expiry) or a number of seconds greater than 0"),
    ("zero ttl", HEADER + rec(ttl=0), 2, "not 0"),
    ("ttl too long", HEADER + rec(ttl=1001), 2, "at most 1000 (limits.max_ttl_seconds), not 1001"),
    ("ttl text", HEADER + rec(ttl="5"), 2, 'not "5"'),
    ("ttl bool", HEADER + rec(ttl=True), 2, "not true"),
    ("later line", HEADER + rec() + rec() + rec(ns="-x"), 4, "ns '-x' is not a valid namespace"),
    ("long line", HEADER + b"[" + b" " * dump.max_line_bytes(LIMITS) + b"]\n", 2, "longer than"),
]


@pytest.mark.parametrize(("raw", "line", "says"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_lines_are_named(raw: bytes, line: int, says: str) -> None:
    with pytest.raises(dump.BadLine) as caught:
        list(dump.records(io.BytesIO(raw), LIMITS))
    assert caught.value.line == line
    assert says in caught.value.problem
    assert str(caught.value).startswith(f"line {line}: ")


# ---------------------------------------------------------------------------- export and import


async def fill(store: SQLiteStore) -> None:
    await store.batch("b-ns", [Op("put", f"k{i:04d}", bytes([i % 256]) * 3, "application/octet-stream",
                                  ttl=600 if i % 3 == 0 else None) for i in range(1200)])
    await store.batch("a-ns", [Op("put", "é", b"1", "text/plain"), Op("put", "😀", b"2", "text/plain"),
                               Op("put", "\uffff", b"3", "text/plain"), Op("put", "z", b"4", "a/b")])
    await store.put("c-gone", "k", b"x", "text/plain", ttl=0.01)  # expired by the time of export
    await store.put("b-ns", "gone", b"x", "text/plain", ttl=0.01)
    time.sleep(0.02)


def without_ttl(lines: list[bytes]) -> list[dict[str, Any]]:
    return [{k: v for k, v in json.loads(line).items() if k != "ttl"} for line in lines[1:]]


async def test_export_orders_namespaces_and_keys_by_bytes_and_leaves_out_expired_keys(store: SQLiteStore) -> None:
    await fill(store)
    assert await store.namespaces() == ["a-ns", "b-ns"]
    lines = await exported(store)
    assert json.loads(lines[0])["revision"] == (await store.revision())[0]
    keys = [(r["ns"], r["key"]) for r in map(json.loads, lines[1:])]
    assert keys == sorted(keys, key=lambda nk: (nk[0], nk[1].encode()))
    assert keys[:4] == [("a-ns", "z"), ("a-ns", "é"), ("a-ns", "\uffff"), ("a-ns", "😀")]
    assert len(keys) == 1204 and ("b-ns", "gone") not in keys
    ttls = [json.loads(line)["ttl"] for line in lines[1:]]
    assert {t is None for t in ttls} == {True, False}
    assert all(t is None or 599 < t <= 600 for t in ttls)


async def test_export_filters(store: SQLiteStore) -> None:
    await fill(store)
    only = await exported(store, namespaces=["a-ns", "c-gone", "a-ns"], prefix="\uffff")
    assert [json.loads(line)["key"] for line in only[1:]] == ["\uffff"]
    assert len(await exported(store, namespaces=["b-ns"], prefix="k11")) == 1 + 100


async def test_import_round_trip_and_twice(store: SQLiteStore, tmp_path: Path) -> None:
    await fill(store)
    lines = await exported(store)
    target = SQLiteStore(tmp_path / "target.sqlite3")
    await target.open()
    try:
        first = await dump.load(target, io.BytesIO(b"".join(lines)), LimitsSettings())
        assert (first.keys, first.namespaces, first.created, first.replaced) == (1204, 2, 1204, 0)
        again = await dump.load(target, Stream(b"".join(lines)), LimitsSettings())
        assert (again.keys, again.created, again.replaced) == (1204, 0, 1204)
        copy = await exported(target)
    finally:
        await target.close()
    assert without_ttl(copy) == without_ttl(lines)
    for a, b in zip(lines[1:], copy[1:], strict=True):
        ta, tb = json.loads(a)["ttl"], json.loads(b)["ttl"]
        assert (ta is None) == (tb is None) and (ta is None or abs(ta - tb) < 1)


async def test_a_bad_line_in_a_file_writes_nothing(store: SQLiteStore) -> None:
    raw = HEADER + b"".join(rec(key=f"k{i}") for i in range(600)) + rec(value_base64="?") + rec(key="after")
    with pytest.raises(dump.BadLine) as caught:
        await dump.load(store, io.BytesIO(raw), LimitsSettings())
    assert caught.value.line == 602 and caught.value.imported == 0
    assert str(caught.value).endswith("; nothing was imported")
    assert await store.namespaces() == []


async def test_a_bad_line_in_a_stream_stops_after_the_lines_before_it(store: SQLiteStore) -> None:
    raw = HEADER + b"".join(rec(key=f"k{i:03d}") for i in range(600)) + rec(value_base64="?") + rec(key="after")
    with pytest.raises(dump.BadLine) as caught:
        await dump.load(store, Stream(raw), LimitsSettings())
    assert caught.value.line == 602 and caught.value.imported == 600
    assert "the 600 keys of the lines before it were imported, none after it" in str(caught.value)
    assert len(await exported(store)) == 1 + 600
    assert await store.get("app", "after") is None


class Recording(SQLiteStore):
    """A SQLite store that notes the batches written and the page sizes listed."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.batches: list[tuple[str, list[str]]] = []
        self.limits: list[int] = []

    async def batch(self, ns: str, ops: Any) -> Any:
        self.batches.append((ns, [op.key for op in ops]))
        return await super().batch(ns, ops)

    async def list_keys(self, ns: str, query: Any, *, local: bool = False) -> Any:
        self.limits.append(query.limit)
        return await super().list_keys(ns, query, local=local)


async def test_batches_are_one_namespace_and_bounded_in_keys_and_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dump, "BATCH_KEYS", 3)
    monkeypatch.setattr(dump, "BATCH_BYTES", 6)  # three values of 2 bytes ("hi")
    raw = HEADER + b"".join([rec(key="a"), rec(key="b"), rec(ns="other", key="c"), rec(ns="other", key="d"),
                             rec(ns="other", key="e"), rec(ns="other", key="f"),
                             rec(key="g", value_base64="aGVsbG8="), rec(key="h"), rec(key="a", value_base64="")])
    store = Recording(tmp_path / "kv.sqlite3")
    await store.open()
    try:
        summary = await dump.load(store, Stream(raw), LimitsSettings())
        assert await store.get("app", "a") is not None
        last = await store.get("app", "a")
    finally:
        await store.close()
    assert store.batches == [("app", ["a", "b"]), ("other", ["c", "d", "e"]), ("other", ["f"]), ("app", ["g"]),
                             ("app", ["h", "a"])]
    assert (summary.keys, summary.namespaces, summary.created, summary.replaced) == (9, 2, 8, 1)
    assert last is not None and last.value == b""  # a key given twice keeps its last line


async def test_export_pages_shrink_for_large_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dump, "PAGE_BYTES", 1000)
    store = Recording(tmp_path / "kv.sqlite3")
    await store.open()
    try:
        await store.batch("big", [Op("put", f"k{i:02d}", b"x" * 300) for i in range(40)])
        await store.batch("small", [Op("put", f"k{i:03d}", b"x") for i in range(600)])
        lines = await exported(store)
    finally:
        await store.close()
    assert [json.loads(line)["key"] for line in lines[1:41]] == [f"k{i:02d}" for i in range(40)]
    assert len(lines) == 1 + 40 + 600
    assert store.limits[:3] == [dump.FIRST_PAGE_KEYS, 3, 3]  # 1000 bytes / 300 a value
    assert dump.PAGE_KEYS in store.limits  # the small values: full pages again


async def test_a_store_failing_part_way_says_how_far_the_import_got(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Failing(SQLiteStore):
        calls = 0

        async def batch(self, ns: str, ops: Any) -> Any:
            self.calls += 1
            if self.calls == 3:
                raise BackendUnavailable("no Synced Galera node to write to")
            return await super().batch(ns, ops)

    monkeypatch.setattr(dump, "BATCH_KEYS", 2)
    store = Failing(tmp_path / "kv.sqlite3")
    await store.open()
    try:
        with pytest.raises(dump.ImportStopped) as caught:
            await dump.load(store, Stream(HEADER + b"".join(rec(key=f"k{i}") for i in range(9))), LimitsSettings())
        assert len(await exported(store)) == 1 + 4
    finally:
        await store.close()
    assert caught.value.imported == 4 and caught.value.line == 6 and caught.value.code == "backend_unavailable"
    assert str(caught.value).startswith("no Synced Galera node to write to; the import stopped at the batch "
                                        "starting at line 6: the 4 keys of the lines before it were imported")
