"""The change feed on every backend: revisions on write answers, ``/watch`` (server-sent events) and
``/changes``, exactly once and in order under concurrent writers through two server instances,
resumed after a server restart, compaction (410), TTL deletes, and bad input (400)."""

from __future__ import annotations

import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.configs import write_config
from tests.support.net import free_port
from tests.support.server import ServerProcess, wait_ready
from tests.support.watch import StreamWatcher, assert_exactly_once, replay


def _ns() -> str:
    return "w" + uuid.uuid4().hex[:10]


def _rev(r: httpx.Response) -> int:
    assert r.status_code in (200, 201, 204), r.text
    return int(r.headers["x-galerakv-revision"])


def test_every_write_answer_carries_its_revision_and_the_stream_follows_in_order(
        live_server: Callable[..., ServerProcess]) -> None:
    server = live_server()
    wait_ready(server)
    ns = _ns()
    with httpx.Client(base_url=f"{server.url}/v1/ns/{ns}", timeout=10) as c:
        watcher = StreamWatcher([server.url], ns).start()
        start = watcher.since
        assert start is not None
        put = c.put("/kv/a", content=b"1", headers={"content-type": "text/plain"})
        assert put.json()["revision"] == _rev(put) > start
        second = c.put("/kv/b", content=b"\xff\x00", headers={"content-type": "application/octet-stream"})
        deleted = c.delete("/kv/a")
        batch = c.post("/batch", json={"ops": [{"op": "put", "key": "c", "value": "3"},
                                               {"op": "put", "key": "d", "value": "4"},
                                               {"op": "get", "key": "b"}]})
        txn = c.post("/txn", json={"compare": [{"key": "c", "exists": True}],
                                   "success": [{"op": "delete", "key": "c"}, {"op": "put", "key": "e", "value": "5"}]})
        revisions = [_rev(put), _rev(second), _rev(deleted), _rev(batch), _rev(txn)]
        assert revisions == sorted(revisions) and batch.json()["revision"] == revisions[3]
        assert txn.json()["revision"] == revisions[4]
        # no change: a failed compare answers the revision it was decided at, and the feed has nothing new
        failed = c.post("/txn", json={"compare": [{"key": "zzz", "exists": True}]})
        assert failed.json()["succeeded"] is False and failed.json()["revision"] >= revisions[4]
        watcher.wait_for(revisions[4])
        watcher.stop()
    events = watcher.events
    # one revision per change, without gaps: the batch made two, the transaction two
    assert [e.revision for e in events] == list(range(start + 1, revisions[4] + 1))
    assert [(e.kind, e.data["key"]) for e in events] == [
        ("put", "a"), ("put", "b"), ("delete", "a"), ("put", "c"), ("put", "d"), ("delete", "c"), ("put", "e")]
    assert events[0].data["value"] == "1" and events[0].data["content_type"] == "text/plain"
    assert events[0].data["etag"] == put.headers["etag"] and events[2].data["prev_etag"] == put.headers["etag"]
    assert events[1].data["value_base64"] == "/wA=" and "value" not in events[1].data
    assert events[3].revision == revisions[3] - 1 and events[4].revision == revisions[3]
    assert replay(events) == {"b": "/wA=", "d": "4", "e": "5"}


def test_changes_pages_filter_and_wait(live_server: Callable[..., ServerProcess]) -> None:
    server = live_server()
    wait_ready(server)
    ns = _ns()
    with httpx.Client(base_url=f"{server.url}/v1/ns/{ns}", timeout=20) as c:
        start = int(c.get("/changes").headers["x-galerakv-revision"])
        for i in range(5):
            c.put(f"/kv/app/{i}", content=f"v{i}".encode())
            c.put(f"/kv/other/{i}", content=b"x")
        page = c.get("/changes", params={"since": start, "prefix": "app/", "limit": 3}).json()
        assert [e["key"] for e in page["events"]] == ["app/0", "app/1", "app/2"]
        assert page["revision"] == page["events"][-1]["revision"]
        rest = c.get("/changes", params={"since": page["revision"], "prefix": "app/", "keys_only": "true"}).json()
        assert [e["key"] for e in rest["events"]] == ["app/3", "app/4"]
        assert all("value" not in e and e["type"] == "put" for e in rest["events"])
        # nothing new: wait holds the request until a change arrives, then answers at once
        head = rest["revision"]
        timer = threading.Timer(0.7, lambda: httpx.put(f"{server.url}/v1/ns/{ns}/kv/app/late", content=b"late"))
        timer.start()
        began = time.monotonic()
        waited = c.get("/changes", params={"since": head, "prefix": "app/", "wait": "10"}).json()
        took = time.monotonic() - began
        timer.join()
        assert [e["key"] for e in waited["events"]] == ["app/late"], waited
        assert 0.5 < took < 8, took
        # a quiet wait answers an empty page at its end, with the revision to ask after
        quiet = c.get("/changes", params={"since": waited["revision"], "wait": "0.3"}).json()
        assert quiet == {"events": [], "revision": waited["revision"]}


def test_eight_writers_through_two_instances_exactly_once(live_server: Callable[..., ServerProcess]) -> None:
    """8 clients write 2,000 changes to 200 keys through two server instances while a watcher
    follows the namespace: every acknowledged change arrives once, in revision order, and replaying
    the events gives the state read back."""
    one, two = live_server(), live_server()
    wait_ready(one)
    wait_ready(two)
    ns = _ns()
    watcher = StreamWatcher([one.url, two.url], ns, deadline=300).start()
    acknowledged: dict[int, tuple[str, str | None]] = {}
    lock = threading.Lock()
    failures: list[str] = []

    def writer(n: int) -> None:
        rng = random.Random(n)
        with httpx.Client(base_url=(one if n % 2 else two).url + f"/v1/ns/{ns}", timeout=30) as c:
            for i in range(250):
                key = f"k{rng.randrange(200):03d}"
                if rng.random() < 0.15:
                    r = c.delete(f"/kv/{key}")
                    if r.status_code == 404:
                        continue
                    value = None
                else:
                    value = f"{n}-{i}"
                    r = c.put(f"/kv/{key}", content=value.encode(), headers={"content-type": "text/plain"})
                if r.status_code not in (200, 201, 204):
                    failures.append(f"{r.status_code} {r.text[:200]}")
                    continue
                with lock:
                    acknowledged[_rev(r)] = (key, value)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    assert not failures, failures[:5]
    assert len(acknowledged) > 1500
    watcher.wait_for(max(acknowledged), timeout=60)
    watcher.stop()
    assert_exactly_once(watcher.events, acknowledged)
    assert [e.revision for e in watcher.events] == list(range(watcher.since + 1, max(acknowledged) + 1))  # type: ignore[operator]
    with httpx.Client(base_url=one.url + f"/v1/ns/{ns}", timeout=30) as c:
        listed = c.get("/kv", params={"limit": 1000}).json()["items"]
    assert replay(watcher.events) == {item["key"]: item["value"] for item in listed}


def test_a_restarted_server_is_resumed_with_last_event_id(live_server: Callable[..., ServerProcess]) -> None:
    server = live_server()
    wait_ready(server)
    ns = _ns()
    watcher = StreamWatcher([server.url], ns, deadline=120).start()
    acknowledged: dict[int, tuple[str, str | None]] = {}
    with httpx.Client(base_url=f"{server.url}/v1/ns/{ns}", timeout=10) as c:
        for i in range(30):
            acknowledged[_rev(c.put(f"/kv/k{i}", content=f"a{i}".encode()))] = (f"k{i}", f"a{i}")
    watcher.wait_for(max(acknowledged))
    server.kill9()
    server.start()
    wait_ready(server)
    with httpx.Client(base_url=f"{server.url}/v1/ns/{ns}", timeout=10) as c:
        for i in range(30):
            acknowledged[_rev(c.put(f"/kv/k{i}", content=f"b{i}".encode()))] = (f"k{i}", f"b{i}")
        acknowledged[_rev(c.delete("/kv/k0"))] = ("k0", None)
    watcher.wait_for(max(acknowledged))
    watcher.stop()
    assert watcher.reconnects >= 1
    assert_exactly_once(watcher.events, acknowledged)


def test_history_older_than_the_window_is_410_compacted(live_server: Callable[..., ServerProcess]) -> None:
    server = live_server(watch={"history_revisions": 1000, "compact_interval": 0.2})
    wait_ready(server)
    ns = _ns()
    with httpx.Client(base_url=f"{server.url}/v1/ns/{ns}", timeout=30) as c:
        start = int(c.get("/changes").headers["x-galerakv-revision"])
        for b in range(11):
            r = c.post("/batch", json={"ops": [{"op": "put", "key": f"k{i}", "value": str(b)} for i in range(100)]})
            assert r.status_code == 200, r.text
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status = httpx.get(f"{server.url}/v1/status", timeout=10).json()["watch"]
            if status["compact_revision"] > start:
                break
            time.sleep(0.1)
        compacted = status["compact_revision"]
        assert compacted >= start + 100 and status["revision"] - compacted <= 1000
        for path in ("/changes", "/watch"):
            r = c.get(path, params={"since": start})
            assert r.status_code == 410, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            body = r.json()
            assert body["code"] == "compacted" and body["compact_revision"] >= compacted
            assert body["revision"] >= status["revision"]
        # the oldest since still served answers
        ok = c.get("/changes", params={"since": compacted, "limit": 5})
        assert ok.status_code == 200 and ok.json()["events"][0]["revision"] == compacted + 1


def test_an_expired_key_is_a_delete_event_when_purged(live_server: Callable[..., ServerProcess]) -> None:
    server = live_server(server={"ttl_purge_interval": 0.2})
    wait_ready(server)
    ns = _ns()
    watcher = StreamWatcher([server.url], ns).start()
    with httpx.Client(base_url=f"{server.url}/v1/ns/{ns}", timeout=10) as c:
        put = c.put("/kv/lease", content=b"me", params={"ttl": "0.3"})
        assert put.status_code == 201
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(watcher.events) < 2:
        time.sleep(0.05)
    watcher.stop()
    assert [(e.kind, e.data["key"]) for e in watcher.events] == [("put", "lease"), ("delete", "lease")]
    assert watcher.events[0].data["expires_at"] > 0
    assert watcher.events[1].data["prev_etag"] == put.headers["etag"]


@pytest.mark.parametrize(("path", "params", "headers", "code", "names"), [
    ("/changes", {"since": "abc"}, {}, "invalid_query", "since"),
    ("/changes", {"since": "-1"}, {}, "invalid_query", "since"),
    ("/changes", {"since": "1_0"}, {}, "invalid_query", "since"),
    ("/changes", {"since": "\u0663"}, {}, "invalid_query", "since"),
    ("/changes", {"since": "99999999999"}, {}, "invalid_query", "future"),
    ("/watch", {"since": "99999999999"}, {}, "invalid_query", "future"),
    ("/watch", {"since": "1e3"}, {}, "invalid_query", "since"),
    ("/watch", {"prefix": "p" * 5000}, {}, "invalid_query", "prefix"),
    ("/watch", {}, {"last-event-id": "x1"}, "invalid_header", "Last-Event-ID"),
    ("/watch", {"keys_only": "yes"}, {}, "invalid_query", "keys_only"),
    ("/watch", {"sinse": "1"}, {}, "invalid_query", "sinse"),
    ("/changes", {"limit": "0"}, {}, "invalid_query", "limit"),
    ("/changes", {"wait": "61"}, {}, "invalid_query", "wait"),
    ("/changes", {"wait": "-1"}, {}, "invalid_query", "wait"),
])
async def test_bad_feed_input_is_400(client: httpx.AsyncClient, path: str, params: dict[str, str],
                                     headers: dict[str, str], code: str, names: str) -> None:
    before = await client.get("/v1/status")
    r = await client.get(f"/v1/ns/bad{path}", params=params, headers=headers)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code and names in r.json()["detail"]
    assert (await client.get("/v1/status")).json()["watch"]["revision"] == before.json()["watch"]["revision"]


def test_a_watcher_that_reads_nothing_is_cut_off_and_holds_no_backlog(tmp_path: Path) -> None:
    """The server keeps no per-watcher queue: a client that stops reading holds the kernel's socket
    buffers and nothing more, and is disconnected after watch.send_timeout seconds."""
    port = free_port()
    path = write_config(tmp_path / "galerakv.toml", {
        "server": {"backend": "sqlite", "sqlite_path": str(tmp_path / "kv.sqlite3"), "port": port},
        "watch": {"send_timeout": 1}})
    server = ServerProcess(path, port)
    server.start()
    try:
        stuck = socket.create_connection(("127.0.0.1", port))
        stuck.sendall(b"GET /v1/ns/app/watch HTTP/1.1\r\nHost: galerakv\r\n\r\n")
        value = os.urandom(512 * 1024)
        with httpx.Client(base_url=server.url, timeout=10) as c:
            deadline = time.monotonic() + 10
            while c.get("/v1/status").json()["watch"]["watchers"] != 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            for i in range(80):  # 40 MiB of changes the watcher never reads
                assert c.put(f"/v1/ns/app/kv/k{i % 8}", content=value).status_code in (200, 201)
            deadline = time.monotonic() + 15
            while c.get("/v1/status").json()["watch"]["watchers"] and time.monotonic() < deadline:
                time.sleep(0.1)
            assert c.get("/v1/status").json()["watch"]["watchers"] == 0, "the stuck watcher was not cut off"
        stuck.settimeout(10)
        received = 0
        while chunk := stuck.recv(1 << 16):  # what the socket buffers held, then the end of the stream
            received += len(chunk)
        assert received < 16 << 20, received  # the kernel's buffers (about 7 MiB measured), no backlog
        stuck.close()
    finally:
        server.stop()


def test_an_idle_stream_carries_keepalive_comments(live_server: Callable[..., ServerProcess]) -> None:
    server = live_server(watch={"keepalive": 0.3})
    wait_ready(server)
    watcher = StreamWatcher([server.url], _ns()).start()
    time.sleep(1.5)
    watcher.stop()
    # the greeting comment, then one comment per quiet keepalive period; no event, no reconnect
    assert watcher.comments >= 4 and not watcher.events and watcher.reconnects == 0, watcher
