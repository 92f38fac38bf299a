"""The client's sans-IO core (galerakv/client/_protocol.py), driven by a fake driver.

Each test feeds :class:`Reply` / :class:`Failure` values to an operation's
generator, in the order its :class:`Call` effects come out, and records every
Call and Sleep: retries, failover over base URLs, OutcomeUnknown, error
mapping, the compare-and-set loop and the value encoding, with no network.
A few tests at the end run the real httpx drivers over ``httpx.MockTransport``.
"""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Callable
from typing import Any

import certifi
import httpx
import pytest

from galerakv.client import Client, errors
from galerakv.client import _protocol as p
from galerakv.client._drivers import failure, run_async, run_sync
from galerakv.client._protocol import (
    Batch,
    Call,
    Endpoints,
    Entry,
    Failure,
    Prefix,
    Reply,
    RetryPolicy,
    Sleep,
    Txn,
)

URLS = ("http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3")
POLICY = RetryPolicy(attempts=4, base=0.01, cap=0.5, max_retry_after=10.0)
MAX_STEPS = 200  # a runaway generator fails the test instead of looping

Outcome = Reply | Failure | Callable[[Call], "Reply | Failure"]


class Driver:
    """Answers each Call with the next scripted outcome; records Calls and Sleeps."""

    def __init__(self, *outcomes: Outcome) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[Call] = []
        self.sleeps: list[float] = []

    def run(self, op: p.Op) -> Any:
        sent: Reply | Failure | None = None
        effect = next(op)
        for _ in range(MAX_STEPS):
            if isinstance(effect, Sleep):
                self.sleeps.append(effect.seconds)
                sent = None
            else:
                self.calls.append(effect)
                assert self.outcomes, f"unexpected request {effect.method} {effect.path}"
                outcome = self.outcomes.pop(0)
                sent = outcome(effect) if callable(outcome) else outcome
            try:
                effect = op.send(sent)
            except StopIteration as stop:
                assert not self.outcomes, f"{len(self.outcomes)} scripted outcomes left over"
                return stop.value
        raise AssertionError(f"more than {MAX_STEPS} effects")

    @property
    def bases(self) -> list[str]:
        return [c.base for c in self.calls]


def ok(status: int = 200, body: Any = None, headers: dict[str, str] | None = None,
       raw: bytes | None = None) -> Reply:
    content = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    return Reply(status, {"content-type": "application/json", **(headers or {})}, content)


def problem(status: int, code: str, detail: str = "", headers: dict[str, str] | None = None,
            **extra: Any) -> Reply:
    body = {"type": f"urn:galerakv:problem:{code}", "title": code, "status": status, "code": code,
            "detail": detail or f"{code} happened", **extra}
    return Reply(status, {"content-type": "application/problem+json", **(headers or {})},
                 json.dumps(body).encode())


REFUSED = Failure(sent=False, detail="ConnectError: [Errno 111] Connection refused")
LOST = Failure(sent=True, detail="ReadError: connection reset")
UNAVAILABLE = problem(503, "backend_unavailable", "no node can take writes")


def ep(n: int = 1) -> Endpoints:
    return Endpoints(URLS[:n])


# --------------------------------------------------------------------------- retries and failover


def test_connect_failure_moves_to_the_next_base_url() -> None:
    endpoints = ep(3)
    d = Driver(REFUSED, REFUSED, ok(200, raw=b"v", headers={"etag": '"7"', "content-type": "text/plain"}))
    entry = d.run(p.get(endpoints, POLICY, "app", "k"))
    assert entry == Entry("k", '"7"', b"v", "text/plain", None)
    assert d.bases == list(URLS)
    assert len(d.sleeps) == 2
    assert endpoints.url == URLS[2]  # the one that answered stays current
    # the next request starts there
    d2 = Driver(ok(200, raw=b"v"))
    d2.run(p.get(endpoints, POLICY, "app", "k"))
    assert d2.bases == [URLS[2]]


def test_failover_wraps_around_the_base_urls() -> None:
    endpoints = ep(2)
    d = Driver(REFUSED, REFUSED, REFUSED, ok(200, {"version": "x"}))
    assert d.run(p.status(endpoints, POLICY)) == {"version": "x"}
    assert d.bases == [URLS[0], URLS[1], URLS[0], URLS[1]]


def test_a_failure_moves_the_shared_endpoints_only_once() -> None:
    """Two requests (threads, tasks) that failed on the same URL move on once, not back."""
    endpoints = ep(2)
    endpoints.failed(URLS[0])
    assert endpoints.url == URLS[1]
    endpoints.failed(URLS[0])  # a late report about the URL already left
    assert endpoints.url == URLS[1]


def test_a_write_not_sent_is_retried() -> None:
    """A connection that could not be opened reached nothing: even a write is retried."""
    d = Driver(REFUSED, ok(201, {"key": "k", "etag": '"1"'}))
    written = d.run(p.put(ep(2), POLICY, "app", "k", b"v", None, None, None, None, None))
    assert written == p.Written("k", '"1"', True, None)
    assert d.bases == [URLS[0], URLS[1]]
    assert all(c.writes for c in d.calls)


def test_503_backend_unavailable_is_retried_honouring_retry_after() -> None:
    d = Driver(problem(503, "backend_unavailable", headers={"retry-after": "3"}),
               problem(503, "backend_unavailable", headers={"retry-after": "60"}),
               problem(503, "backend_unavailable", headers={"retry-after": "soon"}),
               ok(201, {"key": "k", "etag": '"1"'}))
    written = d.run(p.put(ep(2), POLICY, "app", "k", b"v", None, None, None, None, None))
    assert written.created
    assert len(d.calls) == 4
    # backoff is at most cap = 0.5 s here, so Retry-After decides; 60 s is capped at max_retry_after
    assert d.sleeps[0] == 3.0
    assert d.sleeps[1] == POLICY.max_retry_after
    assert 0 <= d.sleeps[2] <= POLICY.cap  # not a number: plain backoff
    assert d.bases == [URLS[0], URLS[1], URLS[0], URLS[1]]  # each 503 moves on too


def test_503_without_a_problem_body_is_retried_then_unavailable() -> None:
    html = Reply(503, {"content-type": "text/html"}, b"<h1>503 Service Unavailable</h1>")
    d = Driver(*[html] * POLICY.attempts)
    with pytest.raises(errors.Unavailable) as info:
        d.run(p.get(ep(), POLICY, "app", "k"))
    assert info.value.status == 503
    assert "Service Unavailable" in info.value.detail


def test_503_on_every_attempt_raises_unavailable() -> None:
    d = Driver(*[UNAVAILABLE] * POLICY.attempts)
    with pytest.raises(errors.Unavailable) as info:
        d.run(p.get(ep(), POLICY, "app", "k"))
    assert info.value.code == "backend_unavailable"
    assert info.value.detail == "no node can take writes"
    assert len(d.calls) == POLICY.attempts
    assert len(d.sleeps) == POLICY.attempts - 1  # no pointless wait before giving up
    assert isinstance(info.value, errors.ProblemError)


def test_connection_refused_on_every_attempt_raises_connection_failed() -> None:
    d = Driver(*[REFUSED] * POLICY.attempts)
    with pytest.raises(errors.ConnectionFailed) as info:
        d.run(p.delete(ep(2), POLICY, "app", "k", None))
    message = str(info.value)
    assert f"after {POLICY.attempts} attempts" in message
    assert "Connection refused" in message and URLS[1] in message  # the last one tried
    assert len(d.calls) == POLICY.attempts
    assert len(d.sleeps) == POLICY.attempts - 1


def test_503_outcome_unknown_raises_at_once() -> None:
    d = Driver(problem(503, "outcome_unknown", "the commit was not confirmed"))
    with pytest.raises(errors.OutcomeUnknown) as info:
        d.run(p.put(ep(2), POLICY, "app", "k", b"v", None, None, None, None, None))
    assert "the commit was not confirmed" in str(info.value)
    assert info.value.body["code"] == "outcome_unknown"
    assert len(d.calls) == 1 and d.sleeps == []
    assert not isinstance(info.value, errors.ProblemError)


def _txn(*, writes: bool) -> Txn:
    t = Txn().if_exists("a")
    t.then.get("a")
    if writes:
        t.otherwise.put("a", "1")  # a write in either branch makes the whole txn a write
    return t


WRITES: dict[str, Callable[[Endpoints], p.Op]] = {
    "put": lambda e: p.put(e, POLICY, "app", "k", "v", None, None, None, None, None),
    "create": lambda e: p.put(e, POLICY, "app", "k", "v", None, None, None, None, "*"),
    "delete": lambda e: p.delete(e, POLICY, "app", "k", None),
    "batch": lambda e: p.batch(e, POLICY, "app", Batch().get("a").put("b", "1")),
    "txn": lambda e: p.txn(e, POLICY, "app", _txn(writes=True)),
}


@pytest.mark.parametrize("name", sorted(WRITES))
def test_a_write_whose_connection_broke_after_sending_is_outcome_unknown(name: str) -> None:
    d = Driver(LOST)
    with pytest.raises(errors.OutcomeUnknown) as info:
        d.run(WRITES[name](ep(2)))
    assert "after the request was sent" in str(info.value)
    assert "ReadError" in str(info.value)
    assert len(d.calls) == 1 and d.sleeps == []  # never sent twice


LISTING = {"items": [{"key": "a", "etag": '"1"', "content_type": "text/plain", "value": "x"}],
           "prefixes": [], "next_cursor": None}
READS: dict[str, tuple[Callable[[Endpoints], p.Op], Reply]] = {
    "get": (lambda e: p.get(e, POLICY, "app", "k"), ok(200, raw=b"v", headers={"etag": '"1"'})),
    "list": (lambda e: p.list_page(e, POLICY, "app", "", None, False, 10, None, "strong"), ok(200, LISTING)),
    "batch of gets": (lambda e: p.batch(e, POLICY, "app", Batch().get("a").get("b")),
                      ok(200, {"results": [{"key": "a", "status": 404, "code": "not_found"}] * 2})),
    "txn of gets": (lambda e: p.txn(e, POLICY, "app", _txn(writes=False)),
                    ok(200, {"succeeded": True, "results": []})),
    "status": (lambda e: p.status(e, POLICY), ok(200, {"version": "1"})),
}


@pytest.mark.parametrize("name", sorted(READS))
def test_a_read_whose_connection_broke_after_sending_is_retried(name: str) -> None:
    make, answer = READS[name]
    d = Driver(LOST, answer)
    d.run(make(ep(2)))
    assert d.bases == [URLS[0], URLS[1]]
    assert not any(c.writes for c in d.calls)
    assert len(d.sleeps) == 1


# --------------------------------------------------------------------------- 4xx: never retried


@pytest.mark.parametrize(("reply", "cls", "code"), [
    (problem(404, "not_found", "no key 'k'"), errors.NotFound, "not_found"),
    (problem(412, "precondition_failed", current_etag='"9"'), errors.PreconditionFailed, "precondition_failed"),
    (problem(401, "unauthorized", "no valid bearer token"), errors.Unauthorized, "unauthorized"),
    (problem(403, "forbidden", "read-only token"), errors.Forbidden, "forbidden"),
    (problem(400, "invalid_namespace", "namespace 'a b' is not valid"), errors.InvalidRequest, "invalid_namespace"),
    (problem(400, "invalid_etag"), errors.InvalidRequest, "invalid_etag"),
    (problem(413, "value_too_large", limit=10, size=11), errors.InvalidRequest, "value_too_large"),
    (problem(405, "method_not_allowed"), errors.InvalidRequest, "method_not_allowed"),
])
def test_4xx_is_never_retried_and_is_mapped(reply: Reply, cls: type[errors.ProblemError], code: str) -> None:
    d = Driver(reply)
    with pytest.raises(cls) as info:
        d.run(p.delete(ep(2), POLICY, "app", "k", '"3"'))
    assert type(info.value) is cls
    assert info.value.status == reply.status
    assert info.value.code == code
    assert info.value.detail == json.loads(reply.body)["detail"]
    assert info.value.body["code"] == code
    assert len(d.calls) == 1 and d.sleeps == []


def test_precondition_failed_carries_the_current_etag() -> None:
    d = Driver(problem(412, "precondition_failed", current_etag='"9"'))
    with pytest.raises(errors.PreconditionFailed) as info:
        d.run(p.put(ep(), POLICY, "app", "k", b"v", None, None, None, '"8"', None))
    assert info.value.current_etag == '"9"'
    d = Driver(problem(412, "precondition_failed", current_etag=None))
    with pytest.raises(errors.PreconditionFailed) as absent:
        d.run(p.put(ep(), POLICY, "app", "k", b"v", None, None, None, '"8"', None))
    assert absent.value.current_etag is None


def test_invalid_request_has_code_and_detail_in_its_message() -> None:
    d = Driver(problem(400, "invalid_namespace", "namespace 'a b' is not valid"))
    with pytest.raises(errors.InvalidRequest, match=r"^400 invalid_namespace: namespace 'a b' is not valid$"):
        d.run(p.list_page(ep(), POLICY, "a b", "", None, False, 10, None, "strong"))


def test_a_500_is_a_problem_error_but_not_invalid_request() -> None:
    d = Driver(problem(500, "internal", "a bug"))
    with pytest.raises(errors.ProblemError) as info:
        d.run(p.get(ep(2), POLICY, "app", "k"))
    assert type(info.value) is errors.ProblemError
    assert info.value.code == "internal"
    assert len(d.calls) == 1


def test_get_and_delete_of_an_absent_key() -> None:
    assert Driver(problem(404, "not_found")).run(p.get(ep(), POLICY, "app", "k")) is None
    assert Driver(problem(404, "not_found")).run(p.delete(ep(), POLICY, "app", "k", None)) is False
    # a 404 that is not "no such key" (a wrong base URL) must not read as absent
    for op in (p.get(ep(), POLICY, "app", "k"), p.delete(ep(), POLICY, "app", "k", None)):
        with pytest.raises(errors.InvalidRequest) as info:
            Driver(problem(404, "no_route")).run(op)
        assert info.value.code == "no_route"


def test_problem_mapping_without_a_body() -> None:
    assert type(errors.problem(404, {})) is errors.NotFound
    assert type(errors.problem(503, {})) is errors.Unavailable
    assert type(errors.problem(418, {})) is errors.InvalidRequest
    assert type(errors.problem(502, {})) is errors.ProblemError
    assert errors.problem(418, {"title": "teapot"}).detail == "teapot"
    assert errors.problem(418, {}).code == "http_418"


# --------------------------------------------------------------------------- requests


def test_get_request_and_entry() -> None:
    d = Driver(ok(200, raw=b'{"a":1}', headers={"etag": '"4"', "content-type": "application/json",
                                                 "x-galerakv-expires-at": "1790000000.5"}))
    entry = d.run(p.get(ep(), POLICY, "my.ns", "dir/k ?", "local"))
    call = d.calls[0]
    assert (call.method, call.path) == ("GET", "/v1/ns/my%2Ens/kv/dir%2Fk%20%3F")
    assert call.params == {"consistency": "local"}
    assert entry.json() == {"a": 1} and entry.text == '{"a":1}'
    assert entry.expires_at == 1790000000.5 and entry.etag == '"4"'


@pytest.mark.parametrize(("key", "path"), [
    (".", "%2E"), ("..", "%2E%2E"), ("a/../b", "a%2F%2E%2E%2Fb"), ("é", "%C3%A9"), ("a b", "a%20b"),
])
def test_key_paths_survive_dot_segment_removal(key: str, path: str) -> None:
    """httpx removes "." and ".." segments: a key "." must not become the listing URL."""
    d = Driver(problem(404, "not_found"))
    d.run(p.get(ep(), POLICY, "app", key))
    assert d.calls[0].path == f"/v1/ns/app/kv/{path}"


def test_put_request() -> None:
    d = Driver(ok(200, {"key": "k", "etag": '"5"', "expires_at": 1790000000.0}, headers={"etag": '"5"'}))
    written = d.run(p.put(ep(), POLICY, "app", "k", "héllo", None, None, 1.5, '"4"', None))
    call = d.calls[0]
    assert (call.method, call.path, call.content) == ("PUT", "/v1/ns/app/kv/k", "héllo".encode())
    assert call.headers == {"content-type": p.TEXT_TYPE, "if-match": '"4"'}
    assert call.params == {"ttl": "1.5"}
    assert call.writes
    assert written == p.Written("k", '"5"', False, 1790000000.0)


def test_create_sends_if_none_match_star_and_integer_ttl() -> None:
    d = Driver(ok(201, {"key": "k", "etag": '"1"', "expires_at": 1.0}))
    written = d.run(p.put(ep(), POLICY, "app", "k", None, {"x": [1]}, None, 30, None, "*"))
    call = d.calls[0]
    assert call.headers == {"content-type": p.JSON_TYPE, "if-none-match": "*"}
    assert call.params == {"ttl": "30"}
    assert call.content == b'{"x":[1]}'
    assert written.created and written.expires_at == 1.0


def test_delete_request() -> None:
    d = Driver(Reply(204, {}, b""))
    assert d.run(p.delete(ep(), POLICY, "app", "k", '"2"')) is True
    call = d.calls[0]
    assert (call.method, call.path, call.headers, call.writes) == ("DELETE", "/v1/ns/app/kv/k",
                                                                   {"if-match": '"2"'}, True)


def test_list_page_request_and_items() -> None:
    page = {"items": [{"key": "p/b", "etag": '"2"', "content_type": "text/plain", "value": "B"},
                      {"key": "p/a", "etag": '"1"', "content_type": "application/octet-stream",
                       "value_base64": base64.b64encode(b"\xff\x00").decode(), "expires_at": 5.0}],
            "prefixes": ["p/a/"], "next_cursor": "CUR2"}
    d = Driver(ok(200, page))
    got = d.run(p.list_page(ep(), POLICY, "app", "p/", "/", True, 5, "CUR1", "local"))
    assert d.calls[0].path == "/v1/ns/app/kv"
    assert d.calls[0].params == {"limit": "5", "prefix": "p/", "delimiter": "/", "keys_only": "true",
                                 "cursor": "CUR1", "consistency": "local"}
    assert got.next_cursor == "CUR2"
    assert got.items == (Entry("p/a", '"1"', b"\xff\x00", "application/octet-stream", 5.0),
                         Prefix("p/a/"),
                         Entry("p/b", '"2"', b"B", "text/plain", None))  # merged in key order


def test_list_page_keys_only_entries_have_no_value() -> None:
    d = Driver(ok(200, {"items": [{"key": "a", "etag": '"1"'}], "prefixes": [], "next_cursor": None}))
    got = d.run(p.list_page(ep(), POLICY, "app", "", None, True, 100, None, "strong"))
    assert d.calls[0].params == {"limit": "100", "keys_only": "true"}
    assert got.items == (Entry("a", '"1"', None, "", None),)
    assert got.next_cursor is None


def test_batch_builder_and_results() -> None:
    ops = (Batch().put("a", "text", ttl=60).put("b", b"\x00\xff", if_none_match="*")
           .put("c", json={"n": 2}, if_match='"17"').get("a").delete("old", if_match="*"))
    assert ops.ops == [
        {"op": "put", "key": "a", "value": "text", "content_type": p.TEXT_TYPE, "ttl": 60},
        {"op": "put", "key": "b", "value_base64": "AP8=", "content_type": p.BYTES_TYPE, "if_none_match": "*"},
        {"op": "put", "key": "c", "value": '{"n":2}', "content_type": p.JSON_TYPE, "if_match": '"17"'},
        {"op": "get", "key": "a"},
        {"op": "delete", "key": "old", "if_match": "*"},
    ]
    results = {"results": [
        {"key": "a", "status": 201, "etag": '"18"', "expires_at": 1.0},
        {"key": "b", "status": 412, "code": "precondition_failed", "current_etag": '"3"'},
        {"key": "c", "status": 200, "etag": '"19"'},
        {"key": "a", "status": 200, "etag": '"18"', "content_type": "text/plain", "value": "text"},
        {"key": "old", "status": 404, "code": "not_found"},
    ]}
    d = Driver(ok(200, results))
    got = d.run(p.batch(ep(), POLICY, "app", ops))
    call = d.calls[0]
    assert (call.method, call.path, call.writes) == ("POST", "/v1/ns/app/batch", True)
    assert json.loads(call.content or b"") == {"ops": ops.ops}
    assert [r.status for r in got] == [201, 412, 200, 200, 404]
    assert [r.ok for r in got] == [True, False, True, True, False]
    assert got[1].code == "precondition_failed" and got[1].current_etag == '"3"'
    assert got[2].entry is None and got[2].etag == '"19"'
    assert got[3].entry == Entry("a", '"18"', b"text", "text/plain", None)
    assert got[4].code == "not_found"


def test_txn_builder_and_result() -> None:
    t = (Txn().if_etag("balance", '"41"').if_exists("lock", False).if_value("mode", "open")
         .if_value("flag", b"\x01\xff", negate=True).if_etag("x", '"1"', negate=True))
    t.then.put("balance", "90").delete("lock")
    t.otherwise.get("balance")
    assert t.compares == [{"key": "balance", "etag": '"41"'}, {"key": "lock", "exists": False},
                          {"key": "mode", "value": "open"},
                          {"key": "flag", "value_base64": "Af8=", "not": True},
                          {"key": "x", "etag": '"1"', "not": True}]
    d = Driver(ok(200, {"succeeded": False, "results": [
        {"key": "balance", "status": 200, "etag": '"42"', "content_type": "text/plain", "value": "100"}]}))
    got = d.run(p.txn(ep(), POLICY, "app", t))
    body = json.loads(d.calls[0].content or b"")
    assert d.calls[0].path == "/v1/ns/app/txn" and d.calls[0].writes
    assert body == {"compare": t.compares,
                    "success": [{"op": "put", "key": "balance", "value": "90", "content_type": p.TEXT_TYPE},
                                {"op": "delete", "key": "lock"}],
                    "failure": [{"op": "get", "key": "balance"}]}
    assert got.succeeded is False
    assert got.results[0].entry == Entry("balance", '"42"', b"100", "text/plain", None)


# --------------------------------------------------------------------------- revisions of writes


def test_put_returns_the_revision_from_the_body_else_the_header() -> None:
    d = Driver(ok(201, {"key": "k", "etag": '"12"', "revision": 12}, headers={"x-galerakv-revision": "12"}))
    assert d.run(p.put(ep(), POLICY, "app", "k", "v", None, None, None, None, None)).revision == 12
    d = Driver(ok(200, {"key": "k", "etag": '"13"'}, headers={"x-galerakv-revision": "13"}))
    assert d.run(p.put(ep(), POLICY, "app", "k", "v", None, None, None, None, None)).revision == 13
    d = Driver(ok(200, {"key": "k", "etag": '"13"'}))  # a server without a change feed
    assert d.run(p.put(ep(), POLICY, "app", "k", "v", None, None, None, None, None)).revision is None
    d = Driver(ok(200, {"key": "k", "etag": '"13"', "revision": True}, headers={"x-galerakv-revision": "x"}))
    assert d.run(p.put(ep(), POLICY, "app", "k", "v", None, None, None, None, None)).revision is None


def test_batch_results_carry_the_revision_of_their_writes() -> None:
    d = Driver(ok(200, {"results": [{"key": "a", "status": 201, "etag": '"7"'}], "revision": 7},
                  headers={"x-galerakv-revision": "7"}))
    results = d.run(p.batch(ep(), POLICY, "app", Batch().put("a", "1")))
    assert isinstance(results, p.Results) and isinstance(results, list)
    assert results.revision == 7 and [r.status for r in results] == [201]
    gets = Driver(ok(200, {"results": [{"key": "a", "status": 404, "code": "not_found"}]}))
    assert gets.run(p.batch(ep(), POLICY, "app", Batch().get("a"))).revision is None
    empty = Driver(ok(200, {"results": []})).run(p.batch(ep(), POLICY, "app", Batch()))
    assert empty == [] and empty.revision is None


def test_txn_and_update_return_the_revision() -> None:
    d = Driver(ok(200, {"succeeded": True, "results": [], "revision": 31}))
    assert d.run(p.txn(ep(), POLICY, "app", _txn(writes=True))).revision == 31
    d = Driver(problem(404, "not_found"), ok(201, {"key": "n", "etag": '"32"', "revision": 32}))
    assert d.run(p.update(ep(), POLICY, "app", "n", _incr, 5, None, None)).revision == 32


# --------------------------------------------------------------------------- update (compare-and-set)


def _incr(entry: Entry | None) -> str:
    return str(int(entry.text) + 1 if entry else 1)


def test_update_creates_with_if_none_match_when_absent() -> None:
    d = Driver(problem(404, "not_found"), ok(201, {"key": "n", "etag": '"1"'}))
    written = d.run(p.update(ep(), POLICY, "app", "n", _incr, 5, None, None))
    assert written.created
    get, put = d.calls
    assert get.method == "GET"
    assert put.headers == {"content-type": p.TEXT_TYPE, "if-none-match": "*"}
    assert put.content == b"1"


def test_update_writes_with_if_match_and_keeps_the_content_type() -> None:
    d = Driver(ok(200, raw=b"41", headers={"etag": '"7"', "content-type": "text/x-count"}),
               ok(200, {"key": "n", "etag": '"8"'}))
    written = d.run(p.update(ep(), POLICY, "app", "n", _incr, 5, None, 10))
    assert written.etag == '"8"' and not written.created
    put = d.calls[1]
    assert put.headers == {"content-type": "text/x-count", "if-match": '"7"'}
    assert put.content == b"42" and put.params == {"ttl": "10"}


def test_update_rereads_and_retries_on_412() -> None:
    seen: list[str | None] = []

    def fn(entry: Entry | None) -> str:
        seen.append(entry.text if entry else None)
        return _incr(entry)

    d = Driver(problem(404, "not_found"),
               problem(412, "precondition_failed", current_etag='"1"'),  # somebody created it first
               ok(200, raw=b"1", headers={"etag": '"1"'}),
               problem(412, "precondition_failed", current_etag='"2"'),  # and wrote again
               ok(200, raw=b"2", headers={"etag": '"2"'}),
               ok(200, {"key": "n", "etag": '"3"'}))
    written = d.run(p.update(ep(), POLICY, "app", "n", fn, 5, None, None))
    assert written.etag == '"3"'
    assert seen == [None, "1", "2"]  # fn applied again to each fresh value
    puts = [c for c in d.calls if c.method == "PUT"]
    assert [c.headers.get("if-none-match") or c.headers["if-match"] for c in puts] == ["*", '"1"', '"2"']
    assert [c.content for c in puts] == [b"1", b"2", b"3"]
    assert len(d.sleeps) == 2  # a short backoff after each lost race


def test_update_gives_up_after_retries() -> None:
    retries = 3
    script: list[Outcome] = []
    for i in range(retries):
        script += [ok(200, raw=str(i).encode(), headers={"etag": f'"{i}"'}),
                   problem(412, "precondition_failed", current_etag=f'"{i + 1}"')]
    d = Driver(*script)
    with pytest.raises(errors.PreconditionFailed, match="lost the race 3 times"):
        d.run(p.update(ep(), POLICY, "app", "n", _incr, retries, None, None))
    assert len(d.calls) == 2 * retries
    assert len(d.sleeps) == retries - 1


def test_update_does_not_retry_an_unknown_outcome() -> None:
    d = Driver(ok(200, raw=b"1", headers={"etag": '"1"'}), LOST)
    with pytest.raises(errors.OutcomeUnknown):
        d.run(p.update(ep(2), POLICY, "app", "n", _incr, 5, None, None))
    assert len(d.calls) == 2


# --------------------------------------------------------------------------- values and the retry policy


def test_encode() -> None:
    assert p.encode(b"\x00\xff", None, None) == (b"\x00\xff", "application/octet-stream")
    assert p.encode(bytearray(b"ab"), None, None) == (b"ab", "application/octet-stream")  # type: ignore[arg-type]
    assert p.encode(memoryview(b"ab"), None, "image/png") == (b"ab", "image/png")  # type: ignore[arg-type]
    assert p.encode("héllo", None, None) == ("héllo".encode(), "text/plain; charset=utf-8")
    assert p.encode("<a/>", None, "text/html") == (b"<a/>", "text/html")
    body, ctype = p.encode(None, {"a": [1, "é"]}, None)
    assert json.loads(body) == {"a": [1, "é"]} and b" " not in body and ctype == "application/json"
    assert p.encode(None, 0, None) == (b"0", "application/json")  # falsy JSON is still JSON
    assert p.encode(None, [], "application/vnd.x+json") == (b"[]", "application/vnd.x+json")
    assert p.encode(b"", None, None) == (b"", "application/octet-stream")
    with pytest.raises(TypeError, match="either a value or json="):
        p.encode("a", {"a": 1}, None)
    with pytest.raises(TypeError, match="not int"):
        p.encode(5, None, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        p.encode(None, None, None)


def test_entry_views() -> None:
    assert Entry("k", '"1"', "é".encode()).text == "é"
    assert Entry("k", '"1"', b"[1,2]").json() == [1, 2]
    assert Entry("k", '"1"').text == "" and Entry("k", '"1"').json() is None


@pytest.mark.parametrize("attempt", range(12))
def test_retry_policy_delay_bounds(attempt: int) -> None:
    policy = RetryPolicy(base=0.05, cap=2.0, max_retry_after=10.0)
    ceiling = min(2.0, 0.05 * 2 ** attempt)
    assert policy.delay(attempt, rand=lambda: 0.0) == 0.0  # full jitter: from zero ...
    assert policy.delay(attempt, rand=lambda: 1.0) == pytest.approx(ceiling)  # ... to the capped ceiling
    assert policy.delay(attempt, rand=lambda: 0.5) == pytest.approx(ceiling / 2)
    assert 0.0 <= policy.delay(attempt) <= ceiling
    # Retry-After raises the wait, up to max_retry_after, and never lowers it
    assert policy.delay(attempt, 4.0, rand=lambda: 0.0) == 4.0
    assert policy.delay(attempt, 400.0, rand=lambda: 1.0) == 10.0
    assert policy.delay(attempt, 0.0, rand=lambda: 1.0) == pytest.approx(ceiling)


def test_normalize_urls() -> None:
    assert p.normalize_urls("http://h:1/") == ("http://h:1",)
    assert p.normalize_urls(["http://a/", "http://b"]) == ("http://a", "http://b")
    with pytest.raises(ValueError, match="at least one base URL"):
        p.normalize_urls([])


# --------------------------------------------------------------------------- the httpx drivers


def test_transport_errors_say_whether_the_request_was_sent() -> None:
    request = httpx.Request("PUT", "http://127.0.0.1:1/")
    assert failure(httpx.ConnectError("refused", request=request)).sent is False
    assert failure(httpx.ConnectTimeout("slow", request=request)).sent is False
    assert failure(httpx.PoolTimeout("busy", request=request)).sent is False
    assert failure(httpx.ReadTimeout("slow", request=request)).sent is True
    assert failure(httpx.RemoteProtocolError("closed", request=request)).sent is True
    assert failure(httpx.WriteError("broken pipe", request=request)).sent is True
    assert failure(httpx.ReadError("", request=request)).detail == "ReadError"


def _mock(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


def test_run_sync_over_httpx_fails_over_and_maps_errors() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.port == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(201, json={"key": ".", "etag": '"1"'})

    endpoints = ep(2)
    with httpx.Client(transport=_mock(handler)) as http:
        written = run_sync(p.put(endpoints, RetryPolicy(base=0.001), "app", ".", "v", None, None, 5, None, None),
                           http, endpoints)
    assert written.created
    assert seen == ["http://127.0.0.1:1/v1/ns/app/kv/%2E?ttl=5", "http://127.0.0.1:2/v1/ns/app/kv/%2E?ttl=5"]


async def test_run_async_over_httpx_outcome_unknown() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ReadTimeout("no answer", request=request)

    endpoints = ep(2)
    async with httpx.AsyncClient(transport=_mock(handler)) as http:
        with pytest.raises(errors.OutcomeUnknown):
            await run_async(p.delete(endpoints, POLICY, "app", "k", None), http, endpoints)
        assert calls == 1  # a write is never sent twice
        # a read is retried on the next base URL, then gives up
        with pytest.raises(errors.ConnectionFailed, match="after 2 attempts"):
            await run_async(p.get(endpoints, RetryPolicy(attempts=2, base=0.001), "app", "k"), http, endpoints)
        assert calls == 3


def test_client_options_token_and_ca_without_deprecation_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kv = Client(["https://127.0.0.1:1/", "https://127.0.0.1:2"], token="s3cret", ca=certifi.where(),
                    timeout=2.5)
    try:
        assert kv.base_url == "https://127.0.0.1:1"
        assert kv._http.headers["authorization"] == "Bearer s3cret"
        assert kv._http.timeout.read == 2.5
        assert kv._http.follow_redirects is False
    finally:
        kv.close()
