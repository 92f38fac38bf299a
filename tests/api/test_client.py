"""galerakv.client against real ``galerakv serve`` processes, on every backend of the API suite.

Each scenario runs with :class:`Client` and with :class:`AsyncClient` (the
``kv`` fixture): the same method calls, awaited when the client is async. The
MariaDB variants of ``live_server`` are marked ``cluster`` by the backend
parametrization (tests/support/backends.py). Two servers from ``live_server``
share one store (the same SQLite file, or the same cluster), which is what the
lost-update and the failover tests need.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from galerakv.client import (
    AsyncClient,
    Batch,
    Client,
    Compacted,
    ConnectionFailed,
    Entry,
    Event,
    Forbidden,
    InvalidRequest,
    PreconditionFailed,
    Prefix,
    RetryPolicy,
    Txn,
    Unauthorized,
)
from tests.support.net import free_port
from tests.support.server import ServerProcess

T = TypeVar("T")
KV = Client | AsyncClient
NS = "client"

WRITER = "client-writer-token-0123456789"
READER = "client-reader-token-0123456789"
AUTH = {"enabled": True, "tokens": [
    {"name": "writer", "token": WRITER, "scopes": {NS: "readwrite", "*": "read"}},
    {"name": "reader", "token": READER, "scopes": {NS: "read"}},
]}


async def call(result: T | Awaitable[T]) -> T:
    """A method's result: awaited for AsyncClient, as is for Client."""
    if inspect.isawaitable(result):
        return await result
    return result


async def collect(items: Iterator[T] | AsyncIterator[T]) -> list[T]:
    if isinstance(items, AsyncIterator):
        return [item async for item in items]
    return list(items)


@pytest.fixture(params=["Client", "AsyncClient"])
async def kv(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., KV]]:
    """Factory of clients of one flavour: ``kv(url or urls, **options)``; all closed at the end."""
    opened: list[KV] = []

    def factory(base_url: str | list[str], **options: Any) -> KV:
        client: KV = Client(base_url, **options) if request.param == "Client" else AsyncClient(base_url, **options)
        opened.append(client)
        return client

    yield factory
    for client in opened:
        if isinstance(client, AsyncClient):
            await client.aclose()
        else:
            client.close()


# --------------------------------------------------------------------------- keys, values, ETags


async def test_put_get_create_delete_with_etags(live_server: Callable[..., ServerProcess],
                                                kv: Callable[..., KV]) -> None:
    c = kv(live_server().url)
    assert await call(c.get(NS, "k")) is None

    first = await call(c.put(NS, "k", b"\x00\x01binary"))
    assert first.created and first.key == "k" and first.etag.startswith('"') and first.expires_at is None
    got = await call(c.get(NS, "k"))
    assert got == Entry("k", first.etag, b"\x00\x01binary", "application/octet-stream", None)

    # compare-and-set: with the current ETag it works, with an old one it does not
    second = await call(c.put(NS, "k", "two", if_match=first.etag))
    assert not second.created and second.etag != first.etag
    with pytest.raises(PreconditionFailed) as stale:
        await call(c.put(NS, "k", "lost update", if_match=first.etag))
    assert stale.value.status == 412 and stale.value.code == "precondition_failed"
    assert stale.value.current_etag == second.etag
    assert (await call(c.get(NS, "k"))).text == "two"  # type: ignore[union-attr]

    # create only
    with pytest.raises(PreconditionFailed) as exists:
        await call(c.create(NS, "k", "again"))
    assert exists.value.current_etag == second.etag
    made = await call(c.create(NS, "new", "fresh"))
    assert made.created

    # conditional delete
    with pytest.raises(PreconditionFailed):
        await call(c.delete(NS, "k", if_match=first.etag))
    assert await call(c.get(NS, "k")) is not None
    assert await call(c.delete(NS, "k", if_match=second.etag)) is True
    assert await call(c.get(NS, "k")) is None
    assert await call(c.delete(NS, "k")) is False
    with pytest.raises(PreconditionFailed) as gone:
        await call(c.delete(NS, "k", if_match=second.etag))
    assert gone.value.current_etag is None
    assert await call(c.delete(NS, "new")) is True

    # re-created: a new ETag, never an old one again (no ABA)
    again = await call(c.create(NS, "k", "three"))
    assert again.etag not in (first.etag, second.etag)


async def test_values_and_content_types(live_server: Callable[..., ServerProcess], kv: Callable[..., KV]) -> None:
    c = kv(live_server().url)
    await call(c.put(NS, "bytes", b"\xff\x00\xfe"))
    await call(c.put(NS, "text", "héllo wörld"))
    await call(c.put(NS, "json", json={"a": [1, 2, {"b": None}], "é": True}))
    await call(c.put(NS, "html", "<p>hi</p>", content_type="text/html"))
    await call(c.put(NS, "empty", b""))
    await call(c.put(NS, "zero", json=0))

    b = await call(c.get(NS, "bytes"))
    assert b is not None and b.value == b"\xff\x00\xfe" and b.content_type == "application/octet-stream"
    t = await call(c.get(NS, "text"))
    assert t is not None and t.text == "héllo wörld" and t.content_type == "text/plain; charset=utf-8"
    j = await call(c.get(NS, "json"))
    assert j is not None and j.json() == {"a": [1, 2, {"b": None}], "é": True}
    assert j.content_type == "application/json"
    h = await call(c.get(NS, "html"))
    assert h is not None and h.content_type == "text/html"
    e = await call(c.get(NS, "empty"))
    assert e is not None and e.value == b""
    z = await call(c.get(NS, "zero"))
    assert z is not None and z.json() == 0

    # keys HTTP clients would mangle: dot segments, slashes, spaces, non-ASCII, reserved characters
    keys = [".", "..", "a/../b", "./x", "dir/sub/leaf", "with space", "ключ", "q?x=1#frag", "%2F"]
    for key in keys:
        await call(c.put(NS, key, f"value of {key}"))
    for key in keys:
        got = await call(c.get(NS, key))
        assert got is not None and got.key == key and got.text == f"value of {key}", key
    listed = [i.key for i in await collect(c.list(NS)) if isinstance(i, Entry)]
    assert set(keys) <= set(listed)

    # and the listing returns each kind of value intact
    items = {i.key: i for i in await collect(c.list(NS)) if isinstance(i, Entry)}
    assert items["bytes"].value == b"\xff\x00\xfe"
    assert items["json"].json() == {"a": [1, 2, {"b": None}], "é": True}
    assert items["html"].content_type == "text/html"


async def test_ttl_sets_expires_at_and_expires(live_server: Callable[..., ServerProcess],
                                               kv: Callable[..., KV]) -> None:
    c = kv(live_server().url)
    before = time.time()
    w = await call(c.put(NS, "lease", "x", ttl=60))
    assert w.expires_at is not None and before + 59 <= w.expires_at <= time.time() + 61
    got = await call(c.get(NS, "lease"))
    assert got is not None and got.expires_at == pytest.approx(w.expires_at)
    [listed] = [i for i in await collect(c.list(NS, prefix="lease")) if isinstance(i, Entry)]
    assert listed.expires_at == pytest.approx(w.expires_at)

    # a put without ttl removes the TTL
    await call(c.put(NS, "lease", "y"))
    got = await call(c.get(NS, "lease"))
    assert got is not None and got.expires_at is None

    # a short TTL: invisible once expired
    short = await call(c.create(NS, "short", "z", ttl=0.5))
    assert short.expires_at is not None and short.expires_at <= time.time() + 0.6
    for _ in range(40):  # at most ~4 s
        if await call(c.get(NS, "short")) is None:
            break
        await asyncio.sleep(0.1)
    assert await call(c.get(NS, "short")) is None
    assert time.time() >= short.expires_at - 0.05


# --------------------------------------------------------------------------- listing


async def test_list_follows_cursors(live_server: Callable[..., ServerProcess], kv: Callable[..., KV]) -> None:
    c = kv(live_server().url)
    wanted = [f"items/{i:03d}" for i in range(50)]
    await call(c.batch(NS, _puts(wanted[:25])))
    await call(c.batch(NS, _puts(wanted[25:])))
    for key in ["a/1", "a/2", "a/b/3", "b/1", "c", "itemz", "item"]:
        await call(c.put(NS, key, key))

    page_of_7 = await collect(c.list(NS, prefix="items/", page_size=7))
    assert [i.key for i in page_of_7 if isinstance(i, Entry)] == wanted  # every key once, in order
    assert all(isinstance(i, Entry) and i.text == f"v-{i.key}" for i in page_of_7)

    page_of_1 = await collect(c.list(NS, prefix="a/", page_size=1))
    assert [i.key for i in page_of_1 if isinstance(i, Entry)] == ["a/1", "a/2", "a/b/3"]

    keys_only = await collect(c.list(NS, prefix="items/", keys_only=True, page_size=9))
    assert [i.key for i in keys_only if isinstance(i, Entry)] == wanted
    assert all(isinstance(i, Entry) and i.value is None and i.etag for i in keys_only)

    top = await collect(c.list(NS, delimiter="/", page_size=2))
    assert top == [Prefix("a/"), Prefix("b/"), _entry_like(top, "c"), _entry_like(top, "item"),
                   Prefix("items/"), _entry_like(top, "itemz")]
    under_a = await collect(c.list(NS, prefix="a/", delimiter="/", page_size=1))
    assert [i.key if isinstance(i, Entry) else i.prefix for i in under_a] == ["a/1", "a/2", "a/b/"]

    local = await collect(c.list(NS, prefix="items/", consistency="local", page_size=100))
    assert len(local) == 50
    assert await collect(c.list("empty-ns")) == []


def _puts(keys: list[str]) -> Batch:
    b = Batch()
    for key in keys:
        b.put(key, f"v-{key}")
    return b


def _entry_like(items: list[Entry | Prefix], key: str) -> Entry | Prefix:
    """The listed entry with ``key`` (so a comparison with Prefix objects reads in order)."""
    return next(i for i in items if isinstance(i, Entry) and i.key == key)


# --------------------------------------------------------------------------- batch, txn, status


async def test_batch(live_server: Callable[..., ServerProcess], kv: Callable[..., KV]) -> None:
    c = kv(live_server().url)
    existing = await call(c.put(NS, "c", "1"))
    results = await call(c.batch(NS, Batch()
                                 .put("a", "text", ttl=60)
                                 .put("b", b"\x00\xff", if_none_match="*")
                                 .put("c", json={"n": 2}, if_match=existing.etag)
                                 .put("c", "nope", if_match=existing.etag)
                                 .get("a")
                                 .get("b")
                                 .get("missing")
                                 .delete("missing")
                                 .delete("b", if_match="*")))
    assert [r.status for r in results] == [201, 201, 200, 412, 200, 200, 404, 404, 204]
    assert [r.key for r in results] == ["a", "b", "c", "c", "a", "b", "missing", "missing", "b"]
    assert results[2].etag and results[3].current_etag == results[2].etag
    assert results[3].code == "precondition_failed" and not results[3].ok
    assert results[4].entry is not None and results[4].entry.text == "text"
    assert results[4].entry.content_type == "text/plain; charset=utf-8"
    assert results[5].entry is not None and results[5].entry.value == b"\x00\xff"
    assert results[6].entry is None and results[6].code == "not_found"
    assert all(r.ok for r in results[:3])
    c_now = await call(c.get(NS, "c"))
    assert c_now is not None and c_now.json() == {"n": 2} and c_now.etag == results[2].etag
    assert await call(c.get(NS, "b")) is None
    assert await call(c.batch(NS, Batch())) == []


async def test_txn_succeeded_and_failed(live_server: Callable[..., ServerProcess], kv: Callable[..., KV]) -> None:
    c = kv(live_server().url)
    balance = await call(c.put(NS, "balance", "100"))
    await call(c.put(NS, "mode", "open"))

    t = (Txn().if_etag("balance", balance.etag).if_exists("lock", False).if_value("mode", "open")
         .if_value("flag", b"\x01", negate=True))
    t.then.put("balance", "90").put("audit/1", "-10").get("mode")
    t.otherwise.get("balance")
    done = await call(c.txn(NS, t))
    assert done.succeeded
    assert [(r.key, r.status) for r in done.results] == [("balance", 200), ("audit/1", 201), ("mode", 200)]
    assert done.results[2].entry is not None and done.results[2].entry.text == "open"
    assert (await call(c.get(NS, "balance"))).text == "90"  # type: ignore[union-attr]

    # the same transaction again: the ETag moved on, so the failure branch runs and nothing is written
    again = await call(c.txn(NS, t))
    assert not again.succeeded
    assert [(r.key, r.status) for r in again.results] == [("balance", 200)]
    assert again.results[0].entry is not None and again.results[0].entry.text == "90"
    assert [i.key for i in await collect(c.list(NS, prefix="audit/")) if isinstance(i, Entry)] == ["audit/1"]

    # negated ETag compare and a failure branch that writes
    t2 = Txn().if_etag("balance", balance.etag, negate=True).if_exists("lock")
    t2.then.delete("balance")
    t2.otherwise.put("lock", "held").delete("audit/1")
    res = await call(c.txn(NS, t2))
    assert not res.succeeded and [r.status for r in res.results] == [201, 204]
    assert await call(c.get(NS, "lock")) is not None and await call(c.get(NS, "audit/1")) is None


async def test_status(live_server: Callable[..., ServerProcess], kv: Callable[..., KV], backend: str) -> None:
    c = kv(live_server().url)
    status = await call(c.status())
    assert status["backend"]["kind"] == backend and status["backend"]["ready"] is True
    assert status["limits"]["max_value_bytes"] == 1024 * 1024
    assert status["auth"] is False


# --------------------------------------------------------------------------- errors


async def test_errors_are_exceptions(live_server: Callable[..., ServerProcess], kv: Callable[..., KV]) -> None:
    server = live_server(limits={"max_value_bytes": 1024})
    c = kv(server.url)
    attempts: list[Callable[[], Any]] = [
        lambda: c.get("bad ns", "k"), lambda: c.put("bad ns", "k", "v"), lambda: c.delete("bad ns", "k"),
        lambda: c.batch("bad ns", Batch().get("k")), lambda: c.txn("bad ns", Txn()),
        lambda: c.update("bad ns", "k", _increment), lambda: c.put("..", "k", "v")]
    for attempt in attempts:
        with pytest.raises(InvalidRequest) as info:
            await call(attempt())
        assert info.value.status == 400 and info.value.code == "invalid_namespace"
        assert "namespace" in info.value.detail
    with pytest.raises(InvalidRequest) as listing:
        await collect(c.list("bad ns"))
    assert listing.value.code == "invalid_namespace"

    with pytest.raises(InvalidRequest) as big:
        await call(c.put(NS, "big", b"x" * 1025))
    assert big.value.status == 413 and big.value.code == "value_too_large" and big.value.body["limit"] == 1024
    assert await call(c.get(NS, "big")) is None

    with pytest.raises(InvalidRequest) as etag:
        await call(c.put(NS, "k", "v", if_match="unquoted"))
    assert etag.value.code == "invalid_etag"
    with pytest.raises(InvalidRequest) as ttl:
        await call(c.put(NS, "k", "v", ttl=-1))
    assert ttl.value.code == "invalid_query"
    with pytest.raises(InvalidRequest) as key:
        await call(c.get(NS, ""))
    assert key.value.code == "invalid_key"

    # nothing listens there: retried, then ConnectionFailed (not an httpx exception)
    dead = kv(f"http://127.0.0.1:{free_port()}", retry=RetryPolicy(attempts=3, base=0.01))
    with pytest.raises(ConnectionFailed, match="after 3 attempts"):
        await call(dead.get(NS, "k"))


async def test_auth_errors(live_server: Callable[..., ServerProcess], kv: Callable[..., KV]) -> None:
    server = live_server(auth=AUTH)
    anonymous, reader, writer = kv(server.url), kv(server.url, token=READER), kv(server.url, token=WRITER)
    wrong = kv(server.url, token="not-a-known-token-0123456789")

    for client in (anonymous, wrong):
        with pytest.raises(Unauthorized) as info:
            await call(client.get(NS, "k"))
        assert info.value.status == 401 and info.value.code == "unauthorized"
        with pytest.raises(Unauthorized):
            await call(client.status())
    w = await call(writer.put(NS, "k", "v"))
    got = await call(reader.get(NS, "k"))
    assert got is not None and got.etag == w.etag
    assert len(await collect(reader.list(NS))) == 1
    assert (await call(reader.status()))["auth"] is True
    assert [r.status for r in await call(reader.batch(NS, Batch().get("k")))] == [200]

    attempts: list[Callable[[], Any]] = [
        lambda: reader.put(NS, "k", "x"), lambda: reader.delete(NS, "k"), lambda: reader.create(NS, "n", "x"),
        lambda: reader.batch(NS, Batch().get("k").delete("k")), lambda: reader.update(NS, "k", lambda e: "x"),
        lambda: writer.put("other", "k", "v"), lambda: reader.get("other", "k")]
    for attempt in attempts:
        with pytest.raises(Forbidden) as forbidden:
            await call(attempt())
        assert forbidden.value.status == 403 and forbidden.value.code == "forbidden"
    assert (await call(writer.get(NS, "k"))).text == "v"  # type: ignore[union-attr]


async def test_several_base_urls_skip_one_that_is_down(live_server: Callable[..., ServerProcess],
                                                       kv: Callable[..., KV]) -> None:
    server = live_server()
    dead = f"http://127.0.0.1:{free_port()}"
    c = kv([dead, server.url + "/"], retry=RetryPolicy(base=0.01))
    assert c.base_url == dead
    written = await call(c.put(NS, "k", "v"))  # refused connections are retried even for writes
    assert written.created and c.base_url == server.url
    assert (await call(c.get(NS, "k"))).text == "v"  # type: ignore[union-attr]


# --------------------------------------------------------------------------- two servers, one store


INCREMENTERS = 8
INCREMENTS = 10        # per thread or task
TIME_LIMIT = 120.0     # seconds for the whole race


def _increment(entry: Entry | None) -> str:
    return str(int(entry.text) + 1 if entry is not None else 1)


def test_update_from_threads_loses_no_update(live_server: Callable[..., ServerProcess]) -> None:
    servers = [live_server(), live_server()]
    clients = [Client(s.url, timeout=30) for s in servers]
    done = [0] * INCREMENTERS
    applied = [0] * INCREMENTERS  # fn calls: more than the increments when races were lost and retried
    errors: list[BaseException] = []
    deadline = time.monotonic() + TIME_LIMIT

    def worker(n: int) -> None:
        kv = clients[n % 2]  # 4 threads share each client, each client has its own server

        def fn(entry: Entry | None) -> str:
            applied[n] += 1
            return _increment(entry)

        try:
            for _ in range(INCREMENTS):
                if time.monotonic() > deadline:
                    return
                kv.update(NS, "counter", fn, retries=200)
                done[n] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(INCREMENTERS)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()) + 5)
        assert not any(t.is_alive() for t in threads), f"threads still running after {TIME_LIMIT} s"
        print(f"\n[update, threads] {sum(done)} increments, fn applied {sum(applied)} times")
        assert not errors, errors[:3]
        assert done == [INCREMENTS] * INCREMENTERS
        for kv in clients:  # both servers see the same final value
            final = kv.get(NS, "counter")
            assert final is not None and int(final.text) == INCREMENTERS * INCREMENTS
    finally:
        for kv in clients:
            kv.close()


async def test_update_from_tasks_loses_no_update(live_server: Callable[..., ServerProcess]) -> None:
    servers = [live_server(), live_server()]
    async with AsyncClient(servers[0].url, timeout=30) as a, AsyncClient(servers[1].url, timeout=30) as b:
        clients = [a, b]
        done = [0] * INCREMENTERS
        applied = [0] * INCREMENTERS

        async def worker(n: int) -> None:
            def fn(entry: Entry | None) -> str:
                applied[n] += 1
                return _increment(entry)

            for _ in range(INCREMENTS):
                await clients[n % 2].update(NS, "counter", fn, retries=200)
                done[n] += 1

        await asyncio.wait_for(asyncio.gather(*(worker(n) for n in range(INCREMENTERS))), TIME_LIMIT)
        print(f"\n[update, tasks] {sum(done)} increments, fn applied {sum(applied)} times")
        assert done == [INCREMENTS] * INCREMENTERS
        for kv in clients:
            final = await kv.get(NS, "counter")
            assert final is not None and int(final.text) == INCREMENTERS * INCREMENTS


@pytest.mark.parametrize("how", ["terminate", "kill -9"])
async def test_listing_continues_on_the_other_server(live_server: Callable[..., ServerProcess],
                                                     kv: Callable[..., KV], how: str) -> None:
    """A server stopped between two pages: the next page comes from the other one, from the cursor."""
    first, second = live_server(), live_server()
    c = kv([first.url, second.url], retry=RetryPolicy(base=0.01))
    wanted = [f"k{i:02d}" for i in range(50)]
    await call(c.batch(NS, _puts(wanted)))

    listing = c.list(NS, page_size=5)
    seen: list[str] = []
    for _ in range(5):  # exactly the first page
        item = await anext(listing) if isinstance(listing, AsyncIterator) else next(listing)
        assert isinstance(item, Entry)
        seen.append(item.key)
    assert c.base_url == first.url
    if how == "terminate":
        first.stop()
    else:
        first.kill9()
    assert first.proc is not None and first.proc.poll() is not None
    seen += [i.key for i in await collect(listing) if isinstance(i, Entry)]
    assert seen == wanted  # every key exactly once, in order
    assert c.base_url == second.url
    assert (await call(c.put(NS, "after", "x"))).created  # and writes go on there too


# --------------------------------------------------------------------------- the change feed


FOLLOW_TIMEOUT = 20.0  # seconds a test waits for the events it expects, at most


class Follower:
    """Iterates over a watch in the background (a thread for Client, a task for AsyncClient),
    keeping its events, until it has ``limit`` of them: then it closes the watch."""

    def __init__(self, events: Iterator[Event] | AsyncIterator[Event], limit: int) -> None:
        self.items: list[Event] = []
        self.error: BaseException | None = None
        self.done = False
        self.limit = limit
        self.task: asyncio.Task[None] | None = None
        if isinstance(events, AsyncIterator):
            self.task = asyncio.create_task(self._follow_async(events))
        else:
            threading.Thread(target=self._follow, args=(events,), daemon=True).start()

    def _follow(self, events: Iterator[Event]) -> None:
        try:
            for event in events:
                self.items.append(event)
                if len(self.items) >= self.limit:
                    break
        except BaseException as exc:
            self.error = exc
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()
            self.done = True

    async def _follow_async(self, events: AsyncIterator[Event]) -> None:
        try:
            async for event in events:
                self.items.append(event)
                if len(self.items) >= self.limit:
                    break
        except Exception as exc:
            self.error = exc
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
            self.done = True

    async def wait_for(self, n: int, timeout: float = FOLLOW_TIMEOUT) -> list[Event]:
        """The first ``n`` events, once they came (AssertionError after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while len(self.items) < n:
            if self.error is not None:
                raise self.error
            assert not self.done, f"the watch ended after {len(self.items)} events"
            assert time.monotonic() < deadline, f"{len(self.items)} events of {n} after {timeout} s: {self.items}"
            await asyncio.sleep(0.01)
        return self.items[:n]

    async def finish(self) -> None:
        """Until the follower closed its watch (it had ``limit`` events)."""
        await self.wait_for(self.limit)
        deadline = time.monotonic() + FOLLOW_TIMEOUT
        while not self.done:
            assert time.monotonic() < deadline, "the watch was not closed"
            await asyncio.sleep(0.01)
        assert self.error is None, self.error

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()


async def _first(events: Iterator[Event] | AsyncIterator[Event]) -> Event:
    """The first event of a watch that is expected to fail before one."""
    try:
        if isinstance(events, AsyncIterator):
            return await anext(events)
        return next(events)
    finally:
        if isinstance(events, AsyncIterator):
            await events.aclose()  # type: ignore[attr-defined]
        else:
            events.close()  # type: ignore[attr-defined]


async def test_writes_return_the_revision_and_watch_sees_every_change_in_order(
        live_server: Callable[..., ServerProcess], kv: Callable[..., KV]) -> None:
    c = kv(live_server().url)
    base = await call(c.put(NS, "w/0", "start"))
    assert isinstance(base.revision, int) and base.revision >= 1
    follower = Follower(c.watch(NS, prefix="w/", since=base.revision), limit=9)
    try:
        a = await call(c.put(NS, "w/a", "1"))
        await follower.wait_for(1)  # the stream is open: the rest arrive as they are written
        b = await call(c.create(NS, "w/b", b"\xff\x00"))
        other = await call(c.put(NS, "other/x", "not under the prefix"))
        a2 = await call(c.put(NS, "w/a", json={"n": 2}, if_match=a.etag))
        assert await call(c.delete(NS, "w/b")) is True
        batch = await call(c.batch(NS, Batch().put("w/c", "c").get("w/a").put("w/d", "d")))
        t = Txn().if_exists("w/a")
        t.then.put("w/e", "e").delete("w/a")
        txn = await call(c.txn(NS, t))
        lease = await call(c.put(NS, "w/t", "x", ttl=60))
        counter = await call(c.update(NS, "w/n", _increment))
        await follower.finish()
        events = follower.items
    finally:
        follower.cancel()

    # every write says its revision, and the revisions grow
    revisions = [base.revision, a.revision, b.revision, other.revision, a2.revision, batch.revision,
                 txn.revision, lease.revision, counter.revision]
    assert all(isinstance(r, int) for r in revisions) and revisions == sorted(set(revisions)), revisions  # type: ignore[type-var]
    assert (await call(c.batch(NS, Batch().get("w/c")))).revision is None  # a batch of gets writes nothing

    assert [(e.kind, e.key) for e in events] == [
        ("put", "w/a"), ("put", "w/b"), ("put", "w/a"), ("delete", "w/b"), ("put", "w/c"), ("put", "w/d"),
        ("put", "w/e"), ("delete", "w/a"), ("put", "w/t")]
    assert [e.revision for e in events] == sorted({e.revision for e in events})  # in order, each once
    assert events[0] == Event("put", "w/a", a.revision, a.etag, "text/plain; charset=utf-8", b"1")  # type: ignore[arg-type]
    assert events[1].value == b"\xff\x00" and events[1].content_type == "application/octet-stream"
    assert events[1].revision == b.revision and events[1].etag == b.etag
    assert events[2].json() == {"n": 2} and events[2].revision == a2.revision
    assert events[3].prev_etag == b.etag and events[3].value is None
    assert events[5].revision == batch.revision  # a batch's revision: that of its last write
    assert events[7].revision == txn.revision and events[7].prev_etag == a2.etag
    assert events[8].revision == lease.revision and events[8].expires_at == pytest.approx(lease.expires_at, abs=0.01)
    assert other.revision not in {e.revision for e in events}

    # the same changes again, from the history: keys only, and as pages of /changes
    again = Follower(c.watch(NS, prefix="w/", since=base.revision, keys_only=True), limit=10)
    try:
        await again.finish()
    finally:
        again.cancel()
    assert [(e.kind, e.key, e.revision) for e in again.items[:9]] == [(e.kind, e.key, e.revision) for e in events]
    assert all(e.value is None for e in again.items) and again.items[9].revision == counter.revision
    # (a page may end short of the store's latest revision while the server's feed catches up: it
    # is a cursor, not a snapshot; wait= lets the server wait for the next change)
    paged: list[Event] = []
    since = base.revision
    for _ in range(20):
        if since >= counter.revision:  # type: ignore[operator]
            break
        page = await call(c.changes(NS, prefix="w/", since=since, limit=4, wait=5))
        assert 1 <= len(page.events) <= 4 and page.revision >= page.events[-1].revision
        paged += page.events
        since = page.revision
    assert paged[:9] == events and len(paged) == 10 and paged[9].revision == counter.revision


async def test_watch_and_changes_from_now(live_server: Callable[..., ServerProcess], kv: Callable[..., KV]) -> None:
    c = kv(live_server().url)
    await call(c.put(NS, "now/old", "before"))
    follower = Follower(c.watch(NS, prefix="now/"), limit=1)
    try:
        deadline = time.monotonic() + FOLLOW_TIMEOUT
        while (await call(c.status()))["watch"]["watchers"] < 1:  # the server took the watcher's start
            assert time.monotonic() < deadline, "the watch did not reach the server"
            await asyncio.sleep(0.02)
        written = await call(c.put(NS, "now/new", "after"))
        [event] = await follower.wait_for(1)
    finally:
        follower.cancel()
    assert (event.key, event.revision, event.text) == ("now/new", written.revision, "after")

    # /changes from now: nothing yet; waiting returns empty when nothing comes
    page = await call(c.changes(NS, prefix="now/"))
    assert page.events == () and page.revision == written.revision
    started = time.monotonic()
    waited = await call(c.changes(NS, since=written.revision, wait=0.3))
    assert waited.events == () and waited.revision == written.revision
    assert time.monotonic() - started >= 0.25
    later = await call(c.put(NS, "now/later", "x"))
    got = await call(c.changes(NS, since=written.revision, wait=5))
    assert [e.revision for e in got.events] == [later.revision]


@pytest.mark.parametrize("how", ["restart", "failover"])
async def test_watch_resumes_after_its_server_is_killed(live_server: Callable[..., ServerProcess],
                                                        kv: Callable[..., KV], how: str) -> None:
    """kill -9 of the watched server: the watch reconnects (to the same server restarted on its
    port and file, or to the other server of the store) and misses and repeats nothing."""
    first = live_server()
    servers = [first] if how == "restart" else [first, live_server()]
    c = kv([s.url for s in servers], retry=RetryPolicy(attempts=200, base=0.02, cap=0.2))
    start = await call(c.put(NS, "r/0", "start"))
    follower = Follower(c.watch(NS, prefix="r/", since=start.revision), limit=6)
    try:
        before = [await call(c.put(NS, f"r/{i}", str(i))) for i in (1, 2, 3)]
        await follower.wait_for(3)
        first.kill9()
        if how == "restart":
            first.start()
        after = [await call(c.put(NS, f"r/{i}", str(i))) for i in (4, 5, 6)]
        await follower.finish()
    finally:
        follower.cancel()
    assert [e.revision for e in follower.items] == [w.revision for w in before + after]
    assert [e.text for e in follower.items] == ["1", "2", "3", "4", "5", "6"]
    if how == "failover":
        assert c.base_url == servers[1].url


async def test_compacted_history_raises_compacted(live_server: Callable[..., ServerProcess],
                                                  kv: Callable[..., KV]) -> None:
    server = live_server(watch={"history_revisions": 1000, "compact_interval": 0.2})
    c = kv(server.url)
    for i in range(5):  # 1280 revisions: the history keeps the last 1000
        results = await call(c.batch(NS, _puts([f"c/{i}/{j:03d}" for j in range(256)])))
    head = results.revision
    assert head is not None and head >= 1280
    deadline = time.monotonic() + FOLLOW_TIMEOUT
    while (compacted := (await call(c.status()))["watch"]["compact_revision"]) < head - 1000:
        assert time.monotonic() < deadline, f"no compaction after {FOLLOW_TIMEOUT} s"
        await asyncio.sleep(0.05)

    with pytest.raises(Compacted) as watched:
        await _first(c.watch(NS, since=1))
    assert watched.value.status == 410 and watched.value.code == "compacted"
    assert watched.value.compact_revision == compacted and watched.value.revision == head
    with pytest.raises(Compacted) as paged:
        await call(c.changes(NS, since=compacted - 1))
    assert paged.value.compact_revision == compacted

    # from the compact revision on, the history is all there
    page = await call(c.changes(NS, since=compacted, limit=5))
    assert [e.revision for e in page.events] == list(range(compacted + 1, compacted + 6))
    follower = Follower(c.watch(NS, since=head - 2), limit=2)
    try:
        await follower.finish()
    finally:
        follower.cancel()
    assert [e.revision for e in follower.items] == [head - 1, head]


async def test_watch_errors(live_server: Callable[..., ServerProcess], kv: Callable[..., KV]) -> None:
    server = live_server(auth=AUTH)
    c = kv(server.url, token=WRITER)
    written = await call(c.put(NS, "k", "v"))
    with pytest.raises(InvalidRequest) as future:
        await _first(c.watch(NS, since=(written.revision or 0) + 100))
    assert future.value.status == 400 and future.value.code == "invalid_query"
    with pytest.raises(InvalidRequest) as bad_ns:
        await _first(c.watch("bad ns"))
    assert bad_ns.value.code == "invalid_namespace"
    with pytest.raises(Unauthorized):
        await _first(kv(server.url).watch(NS, since=0))
    dead = kv(f"http://127.0.0.1:{free_port()}", retry=RetryPolicy(attempts=3, base=0.01))
    with pytest.raises(ConnectionFailed, match="no server answered after 3 attempts"):
        await _first(dead.watch(NS, since=0))
