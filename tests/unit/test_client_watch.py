"""The client's change feed in the sans-IO core: the event-stream parser, ``watch`` and ``changes``.

A fake driver answers the ``Call`` / ``Read`` effects of :func:`galerakv.client._protocol.watch`
from a script (an answer to the opening request, then the chunks of its body, a ``Failure``
or ``b""`` when the stream breaks or ends) and records every request, sleep and close: the
reconnection with ``Last-Event-ID``, failover, the bounded tries and ``Compacted``, with no
network. The last tests run the real httpx drivers over ``httpx.MockTransport``.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from galerakv.client import Changes, Compacted, Event, errors
from galerakv.client import _protocol as p
from galerakv.client._drivers import request_args, stream_async, stream_sync
from galerakv.client._protocol import (
    Call,
    Close,
    Endpoints,
    Failure,
    Message,
    Read,
    Reply,
    RetryPolicy,
    Sleep,
    SSEParser,
)

URLS = ("http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3")
POLICY = RetryPolicy(attempts=4, base=0.01, cap=0.5, max_retry_after=10.0)
MAX_STEPS = 500

GREETING = b"retry: 1000\n: watching app from revision 0\n\n"
KEEPALIVE = b": keepalive\n\n"
REFUSED = Failure(sent=False, detail="ConnectError: [Errno 111] Connection refused")
BROKEN = Failure(sent=True, detail="RemoteProtocolError: peer closed connection")
END = b""


def sse_put(revision: int, key: str = "k", value: str = "v", **extra: Any) -> bytes:
    data = {"key": key, "revision": revision, "etag": f'"{revision}"', "content_type": "text/plain",
            "value": value, **extra}
    return f"id: {revision}\nevent: put\ndata: {json.dumps(data)}\n\n".encode()


def sse_delete(revision: int, key: str = "k", prev: int | None = None) -> bytes:
    data: dict[str, Any] = {"key": key, "revision": revision}
    if prev is not None:
        data["prev_etag"] = f'"{prev}"'
    return f"id: {revision}\nevent: delete\ndata: {json.dumps(data)}\n\n".encode()


def opened(revision: int = 0) -> Reply:
    return Reply(200, {"content-type": "text/event-stream; charset=utf-8", "x-galerakv-revision": str(revision)}, b"")


def problem(status: int, code: str, headers: dict[str, str] | None = None, **extra: Any) -> Reply:
    body = {"type": f"urn:galerakv:problem:{code}", "status": status, "code": code, "detail": f"{code} detail", **extra}
    return Reply(status, {"content-type": "application/problem+json", **(headers or {})}, json.dumps(body).encode())


Answer = Reply | Failure | bytes


class StreamDriver:
    """Answers each Call and Read with the next scripted answer; records what the operation did."""

    def __init__(self, *script: Answer) -> None:
        self.script = list(script)
        self.calls: list[Call] = []
        self.sleeps: list[float] = []
        self.closes = 0
        self.reads = 0
        self.events: list[Event] = []
        self.open = False

    def run(self, op: p.StreamOp, take: int | None = None) -> list[Event]:
        """Drive ``op`` until it ends, raises, or ``take`` events came (then close it as a caller would)."""
        sent: Any = None
        effect = next(op)
        for _ in range(MAX_STEPS):
            sent = None
            if isinstance(effect, Sleep):
                self.sleeps.append(effect.seconds)
            elif isinstance(effect, Call):
                self.calls.append(effect)
                sent = self._next(f"request {effect.method} {effect.path}")
                assert isinstance(sent, Reply | Failure), f"a request was answered with {sent!r}"
                self.open = isinstance(sent, Reply) and sent.status == 200 and effect.stream
            elif isinstance(effect, Read):
                assert self.open, "Read without an open stream"
                self.reads += 1
                sent = self._next("read")
                assert isinstance(sent, bytes | Failure), f"a read was answered with {sent!r}"
                if isinstance(sent, Failure) or sent == b"":
                    self.open = False
            elif isinstance(effect, Close):
                self.closes += 1
                self.open = False
            else:
                assert isinstance(effect, Event)
                self.events.append(effect)
                if take is not None and len(self.events) == take:
                    op.close()
                    return self.events
            try:
                effect = op.send(sent)
            except StopIteration:
                return self.events
        raise AssertionError(f"more than {MAX_STEPS} effects")

    def _next(self, what: str) -> Answer:
        assert self.script, f"unexpected {what}: the script is used up"
        return self.script.pop(0)

    @property
    def bases(self) -> list[str]:
        return [c.base for c in self.calls]


def watch(n: int = 1, since: int | None = None, prefix: str = "", keys_only: bool = False,
          policy: RetryPolicy = POLICY) -> p.StreamOp:
    return p.watch(Endpoints(URLS[:n]), policy, "app", prefix, since, keys_only)


# --------------------------------------------------------------------------- the event-stream parser


STREAM = (b"retry: 1000\n: watching\n\n"
          b"id: 1\nevent: put\ndata: {\"a\":\n" b"data: 1}\n\n"
          b": keepalive\n\n"
          b"event: delete\r\ndata:no space\r\nid: 2\r\n\r\n"
          b"data:  two spaces\rfoo: ignored\revent: x\rretry: soon\rid: a\x00b\r\r"
          b"data\n\n"
          b"event: put\ndata: \xc3\xa9\xff\n\n")
EXPECTED = [Message(retry=1000), Message("put", '{"a":\n1}', "1"), Message(),
            Message("delete", "no space", "2"), Message("x", " two spaces"), Message("", ""),
            Message("put", "é\ufffd")]


def test_parser_whole_stream() -> None:
    assert SSEParser().feed(STREAM) == EXPECTED


def test_parser_byte_by_byte() -> None:
    """A chunk may end anywhere: in a line, between CR and LF, inside a UTF-8 character."""
    parser = SSEParser()
    got = [m for i in range(len(STREAM)) for m in parser.feed(STREAM[i:i + 1])]
    assert got == EXPECTED


@pytest.mark.parametrize("seed", range(20))
def test_parser_random_chunks(seed: int) -> None:
    rng = random.Random(seed)
    parser = SSEParser()
    got: list[Message] = []
    i = 0
    while i < len(STREAM):
        n = rng.randint(0, 12)
        got += parser.feed(STREAM[i:i + n])
        i += n
    assert got == EXPECTED


def test_parser_crlf_split_is_one_line_end_and_cr_cr_is_a_blank_line() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\ndata: b\r") == []  # the LF completes the CRLF: no blank line, no dispatch
    assert parser.feed(b"\r") == [Message("", "a\nb")]  # CR CR: a line end, then a blank line


def test_parser_keeps_an_incomplete_block_and_skips_a_bom() -> None:
    parser = SSEParser()
    assert parser.feed(b"\xef\xbb\xbfevent: put\ndata: x\n") == []
    assert parser.feed(b"\n") == [Message("put", "x")]
    assert SSEParser().feed(b"data: x") == []  # no line end yet
    assert SSEParser().feed(b"\n\n\n") == []  # blank lines alone are no block


def test_parser_refuses_an_endless_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(p, "MAX_SSE_LINE", 10)
    parser = SSEParser()
    parser.feed(b"data: 0123")
    with pytest.raises(errors.ClientError, match="longer than 10 bytes"):
        parser.feed(b"456789")


# --------------------------------------------------------------------------- watch: the request and the events


def test_watch_request_and_events_in_order() -> None:
    binary = base64.b64encode(b"\xff\x00").decode()
    bin_put = json.dumps({"key": "p/bin", "revision": 9, "etag": '"9"', "content_type": "application/octet-stream",
                          "value_base64": binary, "expires_at": 1790000000.5})
    d = StreamDriver(opened(6), GREETING + sse_put(7, "p/a", "é"),
                     sse_delete(8, "p/a", prev=7) + f"id: 9\nevent: put\ndata: {bin_put}\n\n".encode())
    events = d.run(watch(since=6, prefix="p/"), take=3)
    call = d.calls[0]
    assert (call.method, call.path, call.stream) == ("GET", "/v1/ns/app/watch", True)
    assert call.params == {"prefix": "p/", "since": "6"}
    assert call.headers == {"accept": "text/event-stream"}
    assert call.read_timeout == p.STREAM_READ_TIMEOUT and not call.writes
    assert events == [
        Event("put", "p/a", 7, '"7"', "text/plain", "é".encode()),
        Event("delete", "p/a", 8, prev_etag='"7"'),
        Event("put", "p/bin", 9, '"9"', "application/octet-stream", b"\xff\x00", 1790000000.5),
    ]
    assert events[0].text == "é" and Event("put", "j", 1, value=b'{"a":1}').json() == {"a": 1}
    # as_dict is the server's data with "type" first
    assert [e.as_dict() for e in events] == [
        {"type": "put", "key": "p/a", "revision": 7, "etag": '"7"', "content_type": "text/plain", "value": "é"},
        {"type": "delete", "key": "p/a", "revision": 8, "prev_etag": '"7"'},
        {"type": "put", "key": "p/bin", "revision": 9, "etag": '"9"', "content_type": "application/octet-stream",
         "expires_at": 1790000000.5, "value_base64": binary},
    ]
    assert next(iter(events[2].as_dict())) == "type"


def test_watch_keys_only_events_have_no_value() -> None:
    data = json.dumps({"key": "k", "revision": 3, "etag": '"3"', "content_type": "text/plain"})
    d = StreamDriver(opened(2), f"event: put\ndata: {data}\n\n".encode() + sse_delete(4))
    events = d.run(watch(since=2, keys_only=True), take=2)
    assert d.calls[0].params == {"keys_only": "true", "since": "2"}
    assert events == [Event("put", "k", 3, '"3"', "text/plain", None), Event("delete", "k", 4)]
    assert "value" not in events[0].as_dict() and "prev_etag" not in events[1].as_dict()


def test_watch_without_since_resumes_from_the_revision_the_server_started_at() -> None:
    """No since: the first answer's X-Galerakv-Revision is where the watch began; a reconnection
    before any event asks for the changes after it, not for "from now" again."""
    d = StreamDriver(opened(41), GREETING, BROKEN,
                     opened(41), GREETING + sse_put(42))
    events = d.run(watch(n=2), take=1)
    assert "since" not in d.calls[0].params and "last-event-id" not in d.calls[0].headers
    assert d.calls[1].headers["last-event-id"] == "41" and "since" not in d.calls[1].params
    assert [e.revision for e in events] == [42]


@pytest.mark.parametrize("how", ["broken", "ended"])
def test_watch_reconnects_to_the_next_url_with_last_event_id(how: str) -> None:
    stop: Failure | bytes = BROKEN if how == "broken" else END
    endpoints = Endpoints(URLS)
    d = StreamDriver(opened(0), GREETING + sse_put(1) + sse_put(2), stop,
                     opened(2), GREETING + sse_put(3), stop,
                     opened(3), GREETING + sse_delete(4))
    events = d.run(p.watch(endpoints, POLICY, "app", "", 0, False), take=4)
    assert [e.revision for e in events] == [1, 2, 3, 4]
    assert d.bases == list(URLS)  # each break moves on to the next server instance
    assert d.calls[0].params == {"since": "0"} and "last-event-id" not in d.calls[0].headers
    assert [c.headers.get("last-event-id") for c in d.calls[1:]] == ["2", "3"]
    assert all("since" not in c.params for c in d.calls[1:])
    assert d.closes == 2  # the broken or ended stream is closed before the next one is opened
    assert d.sleeps == []  # a stream that delivered reconnects at once
    assert endpoints.url == URLS[2]


def test_watch_never_repeats_a_revision_the_server_sends_again() -> None:
    d = StreamDriver(opened(0), GREETING + sse_put(1) + sse_put(2), BROKEN,
                     opened(2), GREETING + sse_put(2) + sse_put(1) + sse_put(3))
    assert [e.revision for e in d.run(watch(n=2, since=0), take=3)] == [1, 2, 3]


def test_closing_the_watch_stops_it_without_more_requests() -> None:
    d = StreamDriver(opened(0), GREETING + sse_put(1) + sse_put(2))
    assert [e.revision for e in d.run(watch(since=0), take=1)] == [1]
    assert len(d.calls) == 1 and d.reads == 1


# --------------------------------------------------------------------------- watch: errors and bounded retries


def test_410_on_opening_is_compacted_and_not_retried() -> None:
    d = StreamDriver(problem(410, "compacted", compact_revision=500, revision=900))
    with pytest.raises(Compacted) as info:
        d.run(watch(n=2, since=3))
    assert info.value.status == 410 and info.value.code == "compacted"
    assert (info.value.compact_revision, info.value.revision) == (500, 900)
    assert isinstance(info.value, errors.ProblemError)
    assert len(d.calls) == 1 and d.sleeps == []


def test_event_compacted_in_the_stream_raises_compacted_after_the_events_before_it() -> None:
    body = {"code": "compacted", "detail": "fell behind", "compact_revision": 70, "revision": 80}
    compacted = b"event: compacted\ndata: " + json.dumps(body).encode() + b"\n\n"
    d = StreamDriver(opened(0), GREETING + sse_put(1) + compacted)
    with pytest.raises(Compacted) as info:
        d.run(watch(since=0))
    assert [e.revision for e in d.events] == [1]
    assert info.value.detail == "fell behind" and info.value.compact_revision == 70 and info.value.revision == 80
    # a compacted event without a JSON body is still Compacted
    d = StreamDriver(opened(0), b"event: compacted\ndata: gone\n\n")
    with pytest.raises(Compacted, match="gone"):
        d.run(watch(since=0))


@pytest.mark.parametrize(("reply", "cls"), [
    (problem(400, "invalid_query", parameter="since"), errors.InvalidRequest),
    (problem(401, "unauthorized"), errors.Unauthorized),
    (problem(403, "forbidden"), errors.Forbidden),
    (problem(404, "no_route"), errors.InvalidRequest),
    (Reply(204, {}, b""), errors.InvalidRequest),
])
def test_other_answers_are_raised_at_once(reply: Reply, cls: type[errors.ClientError]) -> None:
    d = StreamDriver(reply)
    with pytest.raises(cls):
        d.run(watch(n=2, since=1))
    assert len(d.calls) == 1 and d.sleeps == []


def test_503_too_many_watchers_moves_on_honouring_retry_after() -> None:
    d = StreamDriver(problem(503, "too_many_watchers", headers={"retry-after": "5"}), opened(0), sse_put(1))
    events = d.run(watch(n=2, since=0), take=1)
    assert [e.revision for e in events] == [1]
    assert d.bases == [URLS[0], URLS[1]]
    assert d.sleeps == [5.0]
    assert d.calls[1].params == {"since": "0"}  # never opened yet: still since, not Last-Event-ID


def test_503_on_every_try_raises_unavailable() -> None:
    d = StreamDriver(*[problem(503, "too_many_watchers")] * POLICY.attempts)
    with pytest.raises(errors.Unavailable) as info:
        d.run(watch(n=2, since=0))
    assert info.value.code == "too_many_watchers"
    assert len(d.calls) == POLICY.attempts and len(d.sleeps) == POLICY.attempts - 1


def test_no_server_answering_is_connection_failed_after_the_policy_attempts() -> None:
    d = StreamDriver(*[REFUSED] * POLICY.attempts)
    with pytest.raises(errors.ConnectionFailed, match=rf"no server answered after {POLICY.attempts} attempts"):
        d.run(watch(n=3, since=5))
    assert len(d.calls) == POLICY.attempts and len(d.sleeps) == POLICY.attempts - 1
    assert all(0 <= s <= POLICY.cap for s in d.sleeps)
    assert d.bases == [URLS[0], URLS[1], URLS[2], URLS[0]]


def test_streams_that_die_at_once_count_as_tries() -> None:
    """A server that opens the stream and drops it before anything but its greeting: bounded too."""
    script: list[Answer] = []
    for _ in range(POLICY.attempts):
        script += [opened(0), GREETING, BROKEN]
    d = StreamDriver(*script)
    with pytest.raises(errors.ConnectionFailed, match="no server took the event stream up again"):
        d.run(watch(n=2, since=0))
    assert len(d.calls) == POLICY.attempts and len(d.sleeps) == POLICY.attempts - 1


def test_a_stream_that_showed_life_starts_the_count_of_tries_again() -> None:
    policy = RetryPolicy(attempts=2, base=0.01)
    d = StreamDriver(REFUSED,                                # try 1 of 2
                     opened(0), GREETING + KEEPALIVE, END,   # alive (a keepalive): the count starts again
                     REFUSED,                                # try 1 of 2
                     opened(0), GREETING + sse_put(1), BROKEN,  # alive (an event)
                     REFUSED, REFUSED)                       # tries 1 and 2: give up
    with pytest.raises(errors.ConnectionFailed, match="after 2 attempts"):
        d.run(watch(n=2, since=0, policy=policy))
    assert [e.revision for e in d.events] == [1]
    assert len(d.calls) == 6
    assert d.calls[-1].headers["last-event-id"] == "1"


def test_a_broken_connection_while_opening_is_retried_like_a_read() -> None:
    d = StreamDriver(BROKEN, opened(0), sse_put(1))
    assert [e.revision for e in d.run(watch(n=2, since=0), take=1)] == [1]
    assert d.bases == [URLS[0], URLS[1]]


def test_an_event_that_is_not_valid_raises() -> None:
    for bad in (b"event: put\ndata: [1]\n\n", b"event: put\ndata: {\"key\": \"k\"}\n\n",
                b"event: delete\ndata: {\"revision\": 3}\n\n"):
        d = StreamDriver(opened(0), bad)
        with pytest.raises(errors.ClientError, match=r"not valid|without key or revision"):
            d.run(watch(since=0))


@pytest.mark.parametrize("since", [-1, 1.5, "3", True])
def test_since_must_be_a_revision(since: Any) -> None:
    with pytest.raises(ValueError, match="since is a revision"):
        next(watch(since=since))
    with pytest.raises(ValueError, match="since is a revision"):
        next(p.changes(Endpoints(URLS[:1]), POLICY, "app", "", since, False, 10, 0))


# --------------------------------------------------------------------------- changes


def _changes_reply(events: list[dict[str, Any]], revision: int) -> Reply:
    return Reply(200, {"content-type": "application/json", "x-galerakv-revision": str(revision)},
                 json.dumps({"events": events, "revision": revision}).encode())


def run(op: Any, *answers: Reply | Failure) -> tuple[Any, list[Call], list[float]]:
    calls: list[Call] = []
    sleeps: list[float] = []
    script = list(answers)
    effect = next(op)
    for _ in range(MAX_STEPS):
        if isinstance(effect, Sleep):
            sleeps.append(effect.seconds)
            sent: Any = None
        else:
            calls.append(effect)
            sent = script.pop(0)
        try:
            effect = op.send(sent)
        except StopIteration as stop:
            assert not script
            return stop.value, calls, sleeps
    raise AssertionError("runaway")


def test_changes_request_and_page() -> None:
    events = [{"type": "put", "key": "p/a", "revision": 5, "etag": '"5"', "content_type": "text/plain", "value": "x"},
              {"type": "delete", "key": "p/b", "revision": 6}]
    page, calls, _ = run(p.changes(Endpoints(URLS[:1]), POLICY, "my.ns", "p/", 4, True, 50, 0.5),
                         _changes_reply(events, 9))
    call = calls[0]
    assert (call.method, call.path) == ("GET", "/v1/ns/my%2Ens/changes")
    assert call.params == {"prefix": "p/", "keys_only": "true", "limit": "50", "since": "4", "wait": "0.5"}
    assert call.read_timeout == 0.5 + p.CHANGES_READ_MARGIN and not call.stream and not call.writes
    assert page == Changes((Event("put", "p/a", 5, '"5"', "text/plain", b"x"), Event("delete", "p/b", 6)), 9)


@pytest.mark.parametrize(("wait", "sent"), [(0, None), (30, "30"), (0.25, "0.25"), (1.0, "1"), (59.9999, "60")])
def test_changes_wait_is_sent_as_the_server_reads_it(wait: float, sent: str | None) -> None:
    _, calls, _ = run(p.changes(Endpoints(URLS[:1]), POLICY, "app", "", None, False, 100, wait), _changes_reply([], 1))
    assert calls[0].params.get("wait") == sent
    assert calls[0].params == {"limit": "100", **({"wait": sent} if sent else {})}
    assert (calls[0].read_timeout is None) == (not wait)


def test_changes_is_a_read_retried_on_the_next_url_and_410_is_compacted() -> None:
    page, calls, sleeps = run(p.changes(Endpoints(URLS[:2]), POLICY, "app", "", 1, False, 10, 0),
                              BROKEN, _changes_reply([], 3))
    assert page == Changes((), 3) and [c.base for c in calls] == list(URLS[:2]) and len(sleeps) == 1
    with pytest.raises(Compacted) as info:
        run(p.changes(Endpoints(URLS[:2]), POLICY, "app", "", 1, False, 10, 0),
            problem(410, "compacted", compact_revision=10, revision=20))
    assert info.value.compact_revision == 10


def test_changes_page_that_is_not_valid_raises() -> None:
    for body in (b"[]", b'{"events": {}}', b'{"events": [], "revision": "x"}', b'{"events": [{"type": "x"}], '
                 b'"revision": 1}'):
        with pytest.raises(errors.ClientError):
            run(p.changes(Endpoints(URLS[:1]), POLICY, "app", "", None, False, 10, 0),
                Reply(200, {"content-type": "application/json"}, body))


# --------------------------------------------------------------------------- the httpx drivers


def test_a_read_timeout_is_raised_for_calls_that_wait_on_purpose() -> None:
    endpoints = Endpoints(URLS[:1])
    args = request_args(Call("GET", "/x", read_timeout=40.0), endpoints, httpx.Timeout(10.0))
    assert args["timeout"] == httpx.Timeout(connect=10.0, read=40.0, write=10.0, pool=10.0)
    assert request_args(Call("GET", "/x", read_timeout=4.0), endpoints, httpx.Timeout(10.0))["timeout"].read == 10.0
    assert "timeout" not in request_args(Call("GET", "/x"), endpoints, httpx.Timeout(10.0))
    assert "timeout" not in request_args(Call("GET", "/x", read_timeout=4.0), endpoints, httpx.Timeout(None))


class Body(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body sent in chunks; an exception in ``chunks`` is raised when reached."""

    def __init__(self, chunks: list[bytes | Exception]) -> None:
        self.chunks = chunks
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            if isinstance(chunk, Exception):
                raise chunk
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            if isinstance(chunk, Exception):
                raise chunk
            yield chunk

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


class Servers:
    """Two fake server instances: the first breaks its stream after two events, the second goes on."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.bodies: list[Body] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if len(self.requests) > 10:  # a runaway reconnection fails the test rather than looping
            return httpx.Response(500, json={"code": "internal", "detail": "too many requests"})
        headers = {"content-type": "text/event-stream", "x-galerakv-revision": "0"}
        if request.url.port == 1:
            body = Body([GREETING + sse_put(1), sse_put(2),
                         httpx.RemoteProtocolError("peer closed connection without sending complete message body")])
        else:
            body = Body([GREETING, sse_put(2) + sse_put(3), sse_delete(4), b""])
        self.bodies.append(body)
        return httpx.Response(200, headers=headers, stream=body)


def test_stream_sync_over_httpx_reconnects_and_closes() -> None:
    servers = Servers()
    endpoints = Endpoints(URLS[:2])
    with httpx.Client(transport=httpx.MockTransport(servers.handler)) as http:
        events = stream_sync(p.watch(endpoints, POLICY, "app", "a/", 0, False), http, endpoints)
        got = [next(events).revision for _ in range(4)]
        assert got == [1, 2, 3, 4]
        assert [str(r.url) for r in servers.requests] == ["http://127.0.0.1:1/v1/ns/app/watch?prefix=a%2F&since=0",
                                                          "http://127.0.0.1:2/v1/ns/app/watch?prefix=a%2F"]
        assert servers.requests[1].headers["last-event-id"] == "2"
        assert servers.requests[0].extensions["timeout"]["read"] == p.STREAM_READ_TIMEOUT
        assert servers.bodies[0].closed and not servers.bodies[1].closed
        events.close()  # the caller stops: the open response is closed
        assert servers.bodies[1].closed
        with pytest.raises(StopIteration):
            next(events)


async def test_stream_async_over_httpx_reconnects_and_closes() -> None:
    servers = Servers()
    endpoints = Endpoints(URLS[:2])
    async with httpx.AsyncClient(transport=httpx.MockTransport(servers.handler)) as http:
        events = stream_async(p.watch(endpoints, POLICY, "app", "a/", 0, False), http, endpoints)
        got = [(await anext(events)).revision for _ in range(4)]
        assert got == [1, 2, 3, 4]
        assert servers.requests[1].headers["last-event-id"] == "2"
        assert servers.bodies[0].closed and not servers.bodies[1].closed
        await events.aclose()
        assert servers.bodies[1].closed


def test_stream_sync_reads_an_error_answer_whole_and_raises() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(410, json={"code": "compacted", "detail": "gone", "compact_revision": 7, "revision": 9})

    endpoints = Endpoints(URLS[:1])
    with httpx.Client(transport=httpx.MockTransport(handler)) as http, pytest.raises(Compacted) as info:
        next(stream_sync(p.watch(endpoints, POLICY, "app", "", 1, False), http, endpoints))
    assert info.value.compact_revision == 7 and info.value.detail == "gone"
