"""The client's logic, written once and free of I/O (sans-IO).

Each operation is a generator: it yields effects (:class:`Call`: send this
request; :class:`Sleep`: wait this long) and receives their results
(:class:`Reply`, or :class:`Failure` when the transport failed), and returns
the operation's value. :class:`~galerakv.client.Client` runs them with httpx's
blocking client and :class:`~galerakv.client.AsyncClient` with its async one,
so retries, failover, compare-and-set loops and error mapping exist once.

Retry rule (:func:`exchange`): a connection that could not be opened, and a
``503 backend_unavailable``, are retried for every request (nothing reached the
database), with capped exponential backoff and full jitter, honouring
``Retry-After``, moving to the next base URL each time. A request that was sent
and then lost its connection is retried only when it is a read; for a write it
is :class:`~galerakv.client.errors.OutcomeUnknown`, as is ``503
outcome_unknown``. A 4xx is never retried.

The change feed (:func:`watch`) is the one streaming operation: its request is a
``Call`` with ``stream``; it then yields :class:`Read` effects for the body's
bytes (parsed here by :class:`SSEParser`), :class:`Close`, and the
:class:`Event` values its caller iterates over. It reconnects by the same rule,
resuming with ``Last-Event-ID``.
"""

from __future__ import annotations

import base64
import json
import random
import re
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import quote

from galerakv.client import errors

JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
BYTES_TYPE = "application/octet-stream"

Value = bytes | str


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Entry:
    """A key as the server returned it."""

    key: str
    etag: str
    value: bytes | None = None  # None when listed with keys_only
    content_type: str = BYTES_TYPE  # "" when listed with keys_only
    expires_at: float | None = None

    @property
    def text(self) -> str:
        """The value as UTF-8 text."""
        return (self.value or b"").decode()

    def json(self) -> Any:
        """The value parsed as JSON."""
        return json.loads(self.value or b"null")


@dataclass(frozen=True)
class Prefix:
    """A common prefix of a listing with a delimiter (one level of a 'directory')."""

    prefix: str


@dataclass(frozen=True)
class Written:
    """What a write returned: the key's new ETag, whether it was created, and the store's
    ``revision`` of the write (None from a server without a change feed)."""

    key: str
    etag: str
    created: bool
    expires_at: float | None = None
    revision: int | None = None


@dataclass(frozen=True)
class Result:
    """One operation's result in a batch or a transaction (``status`` as over HTTP)."""

    key: str
    status: int
    etag: str | None = None
    entry: Entry | None = None  # a get that found the key
    code: str | None = None  # a failed operation's problem code
    current_etag: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Results(list[Result]):
    """A batch's results, one per operation in order; ``revision``: the store's revision after
    the batch's writes (None for a batch of gets only, or from a server without a change feed)."""

    revision: int | None = None


@dataclass(frozen=True)
class TxnResult:
    """A transaction's outcome; ``revision``: the store's revision after it (None from a server
    without a change feed)."""

    succeeded: bool
    results: tuple[Result, ...]
    revision: int | None = None


@dataclass(frozen=True)
class Event:
    """One change of a watch or a changes page, in revision order.

    ``kind`` "put": ``etag``, ``content_type`` and ``expires_at`` are the key's after the write,
    ``value`` its bytes (None with ``keys_only``). ``kind`` "delete": ``prev_etag`` is the ETag the
    key had (None when not known); the other fields are None.
    """

    kind: Literal["put", "delete"]
    key: str
    revision: int
    etag: str | None = None
    content_type: str | None = None
    value: bytes | None = None
    expires_at: float | None = None
    prev_etag: str | None = None

    @property
    def text(self) -> str:
        """The value as UTF-8 text."""
        return (self.value or b"").decode()

    def json(self) -> Any:
        """The value parsed as JSON."""
        return json.loads(self.value or b"null")

    def as_dict(self) -> dict[str, Any]:
        """The event as the server sends it (its ``data``, with ``type`` first), for JSON."""
        out: dict[str, Any] = {"type": self.kind, "key": self.key, "revision": self.revision}
        if self.kind == "delete":
            if self.prev_etag is not None:
                out["prev_etag"] = self.prev_etag
            return out
        out["etag"] = self.etag
        out["content_type"] = self.content_type
        if self.expires_at is not None:
            out["expires_at"] = self.expires_at
        if self.value is not None:
            try:
                out["value"] = self.value.decode()
            except UnicodeDecodeError:
                out["value_base64"] = base64.b64encode(self.value).decode()
        return out


@dataclass(frozen=True)
class Changes:
    """A page of changes: ``events`` in revision order, and ``revision``, the ``since`` of the next page."""

    events: tuple[Event, ...]
    revision: int


def encode(value: Value | None, json_value: Any, content_type: str | None) -> tuple[bytes, str]:
    """The body and Content-Type of a value given as bytes, str or (``json=``) JSON."""
    if value is not None and json_value is not None:
        raise TypeError("give either a value or json=, not both")
    if json_value is not None:
        return json.dumps(json_value, separators=(",", ":")).encode(), content_type or JSON_TYPE
    if isinstance(value, str):
        return value.encode(), content_type or TEXT_TYPE
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value), content_type or BYTES_TYPE
    raise TypeError(f"a value is bytes or str (or json=...), not {type(value).__name__}")


def _op_value(value: Value | None, json_value: Any, content_type: str | None) -> dict[str, Any]:
    body, ctype = encode(value, json_value, content_type)
    try:
        out: dict[str, Any] = {"value": body.decode()}
    except UnicodeDecodeError:
        out = {"value_base64": base64.b64encode(body).decode()}
    out["content_type"] = ctype
    return out


def _entry(item: Mapping[str, Any]) -> Entry:
    if "value" in item:
        raw: bytes | None = str(item["value"]).encode()
    elif "value_base64" in item:
        raw = base64.b64decode(item["value_base64"])
    else:
        raw = None
    ctype = str(item.get("content_type") or ("" if raw is None else BYTES_TYPE))
    return Entry(str(item["key"]), str(item.get("etag") or ""), raw, ctype, item.get("expires_at"))


def _revision_of(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _event(kind: object, item: object) -> Event:
    """An :class:`Event` from the server's JSON of one change."""
    if not isinstance(item, Mapping) or kind not in ("put", "delete"):
        raise errors.ClientError(f"the server sent a change that is not valid: {kind!r} {str(item)[:200]}")
    revision = _revision_of(item.get("revision"))
    if revision is None or not isinstance(item.get("key"), str):
        raise errors.ClientError(f"the server sent a change without key or revision: {str(item)[:200]}")
    if kind == "delete":
        prev = item.get("prev_etag")
        return Event("delete", item["key"], revision, prev_etag=prev if isinstance(prev, str) else None)
    if "value" in item:
        raw: bytes | None = str(item["value"]).encode()
    elif "value_base64" in item:
        raw = base64.b64decode(str(item["value_base64"]))
    else:
        raw = None
    expires = item.get("expires_at")
    return Event("put", item["key"], revision, str(item.get("etag") or ""),
                 str(item.get("content_type") or BYTES_TYPE), raw,
                 float(expires) if isinstance(expires, int | float) else None)


def _result(item: Mapping[str, Any]) -> Result:
    status = int(item["status"])
    found = ("value" in item or "value_base64" in item) and status == 200
    return Result(str(item.get("key", "")), status, item.get("etag"),
                  _entry(item) if found else None, item.get("code"), item.get("current_etag"))


# --------------------------------------------------------------------------- builders


@dataclass
class Batch:
    """Independent operations sent together (``POST /v1/ns/{ns}/batch``), each with its own result."""

    ops: list[dict[str, Any]] = field(default_factory=list)

    def put(self, key: str, value: Value | None = None, *, json: Any = None, content_type: str | None = None,
            ttl: float | None = None, if_match: str | None = None,
            if_none_match: str | None = None) -> Batch:
        op: dict[str, Any] = {"op": "put", "key": key, **_op_value(value, json, content_type)}
        if ttl is not None:
            op["ttl"] = ttl
        if if_match is not None:
            op["if_match"] = if_match
        if if_none_match is not None:
            op["if_none_match"] = if_none_match
        self.ops.append(op)
        return self

    def get(self, key: str) -> Batch:
        self.ops.append({"op": "get", "key": key})
        return self

    def delete(self, key: str, *, if_match: str | None = None) -> Batch:
        op: dict[str, Any] = {"op": "delete", "key": key}
        if if_match is not None:
            op["if_match"] = if_match
        self.ops.append(op)
        return self


@dataclass
class Txn:
    """An atomic transaction (``POST /v1/ns/{ns}/txn``): if every compare holds, the
    ``then`` operations run, else the ``otherwise`` ones, in one transaction."""

    compares: list[dict[str, Any]] = field(default_factory=list)
    success: Batch = field(default_factory=Batch)
    failure: Batch = field(default_factory=Batch)

    def if_etag(self, key: str, etag: str, *, negate: bool = False) -> Txn:
        return self._compare({"key": key, "etag": etag}, negate)

    def if_exists(self, key: str, exists: bool = True) -> Txn:
        return self._compare({"key": key, "exists": exists}, False)

    def if_value(self, key: str, value: Value, *, negate: bool = False) -> Txn:
        body = value.encode() if isinstance(value, str) else bytes(value)
        try:
            compare: dict[str, Any] = {"key": key, "value": body.decode()}
        except UnicodeDecodeError:
            compare = {"key": key, "value_base64": base64.b64encode(body).decode()}
        return self._compare(compare, negate)

    def _compare(self, compare: dict[str, Any], negate: bool) -> Txn:
        if negate:
            compare["not"] = True
        self.compares.append(compare)
        return self

    @property
    def then(self) -> Batch:
        """The operations run when every compare holds (put, get, delete; no conditions)."""
        return self.success

    @property
    def otherwise(self) -> Batch:
        """The operations run when a compare fails."""
        return self.failure


# --------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class Call:
    """Send one request to ``base`` (the base URL :func:`exchange` chose for this attempt)."""

    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes | None = None
    writes: bool = False  # repeating it after it was sent could apply it twice
    base: str = ""  # set by exchange(); "" means the current base URL
    stream: bool = False  # a 200's body is read with Read effects, not at once (the answer has body b"")
    read_timeout: float | None = None  # the answer may take this long on purpose: wait at least so much


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class Failure:
    """The transport failed: ``sent`` says whether the request may have reached the server."""

    sent: bool
    detail: str


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Read:
    """The next bytes of the open stream (a ``Call`` with ``stream``): answered with non-empty
    bytes, ``b""`` when the server ended the stream, or a :class:`Failure`."""


@dataclass(frozen=True)
class Close:
    """Close the open stream (a driver also closes it on the next Call, and when the operation ends)."""


Effect = Call | Sleep
Op = Generator[Effect, "Reply | Failure | None", Any]
# a streaming operation also reads and closes its stream, and yields its Events to the caller
StreamOp = Generator["Effect | Read | Close | Event", Any, None]


@dataclass
class Endpoints:
    """The base URLs (server instances), tried in turn; the current one is kept."""

    urls: tuple[str, ...]
    current: int = 0

    @property
    def url(self) -> str:
        return self.urls[self.current]

    def next(self) -> None:
        self.current = (self.current + 1) % len(self.urls)

    def failed(self, url: str) -> None:
        """``url`` did not serve a request: move on, unless another request (a thread or
        task sharing this client) already moved away from it."""
        if self.url == url:
            self.next()


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter; ``Retry-After`` raises the wait."""

    attempts: int = 8
    base: float = 0.05
    cap: float = 2.0
    max_retry_after: float = 10.0

    def delay(self, attempt: int, retry_after: float | None = None,
              rand: Callable[[], float] = random.random) -> float:
        backoff = rand() * min(self.cap, self.base * 2.0 ** attempt)
        if retry_after is not None:
            return max(backoff, min(retry_after, self.max_retry_after))
        return backoff


def _retry_after(reply: Reply) -> float | None:
    try:
        return float(reply.headers.get("retry-after", ""))
    except ValueError:
        return None


def exchange(call: Call, endpoints: Endpoints, policy: RetryPolicy) -> Generator[Effect, Reply | Failure | None, Reply]:
    """Send ``call`` until it gets an answer that is not a retryable failure (module docstring)."""
    last = ""
    for attempt in range(policy.attempts):
        outcome = yield from attempt_once(call, endpoints, policy, attempt)
        if isinstance(outcome, Reply):
            return outcome
        last = outcome
    raise errors.ConnectionFailed(f"{call.method} {call.path}: no server answered after "
                                  f"{policy.attempts} attempts; last: {last}")


def attempt_once(call: Call, endpoints: Endpoints, policy: RetryPolicy,
                 attempt: int) -> Generator[Effect, Reply | Failure | None, Reply | str]:
    """Try ``call`` once (try number ``attempt``, from 0): its answer, or why it failed when it
    may be tried again; in that case the endpoints moved on and the backoff was slept, unless it
    was the last try. Raises what must not be retried (module docstring)."""
    url = endpoints.url
    outcome = yield replace(call, base=url)
    more = attempt + 1 < policy.attempts
    if isinstance(outcome, Failure):
        if outcome.sent and call.writes:
            raise errors.OutcomeUnknown(f"{call.method} {call.path}: the connection to "
                                        f"{url} failed after the request was sent "
                                        f"({outcome.detail}); read before writing again")
        endpoints.failed(url)
        if more:
            yield Sleep(policy.delay(attempt))
        return f"{url}: {outcome.detail}"
    assert isinstance(outcome, Reply)
    if outcome.status == 503:
        body = _problem_body(outcome)
        if body.get("code") == "outcome_unknown":
            raise errors.OutcomeUnknown(str(body.get("detail") or "outcome unknown"), body)
        if not more:
            raise errors.problem(503, body)
        endpoints.failed(url)
        yield Sleep(policy.delay(attempt, _retry_after(outcome)))
        return f"{url}: 503 {body.get('code', '')} {body.get('detail', '')}".strip()
    return outcome


def _problem_body(reply: Reply) -> dict[str, Any]:
    try:
        body = reply.json()
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {"detail": reply.body[:200].decode(errors="replace")}


def _raise_for(reply: Reply) -> None:
    if reply.status >= 400:
        raise errors.problem(reply.status, _problem_body(reply))


def _segment(text: str) -> str:
    """``text`` as one path segment: ``/`` and ``.`` percent-encoded too, since HTTP
    clients remove ``.`` and ``..`` segments before sending (docs/api.md)."""
    return quote(text, safe="").replace(".", "%2E")


def _key_path(ns: str, key: str) -> str:
    return f"/v1/ns/{_segment(ns)}/kv/{_segment(key)}"


def _absent(reply: Reply) -> bool:
    """A 404 that means "no such key" (not ``no_route``: a wrong base URL must not read as absent)."""
    return reply.status == 404 and _problem_body(reply).get("code") == "not_found"


def _expires(reply: Reply) -> float | None:
    value = reply.headers.get("x-galerakv-expires-at")
    return float(value) if value else None


def _write_revision(reply: Reply, data: object) -> int | None:
    """The store's revision of a write: the body's ``revision``, else the X-Galerakv-Revision header."""
    found = _revision_of(data.get("revision")) if isinstance(data, Mapping) else None
    return found if found is not None else _revision_of(reply.headers.get("x-galerakv-revision", ""))


# --------------------------------------------------------------------------- operations


def get(ep: Endpoints, policy: RetryPolicy, ns: str, key: str,
        consistency: Literal["strong", "local"] = "strong") -> Generator[Effect, Any, Entry | None]:
    params = {"consistency": consistency} if consistency != "strong" else {}
    reply = yield from exchange(Call("GET", _key_path(ns, key), params), ep, policy)
    if _absent(reply):
        return None
    _raise_for(reply)
    return Entry(key, reply.headers.get("etag", ""), reply.body,
                 reply.headers.get("content-type", BYTES_TYPE), _expires(reply))


def put(ep: Endpoints, policy: RetryPolicy, ns: str, key: str, value: Value | None, json_value: Any,
        content_type: str | None, ttl: float | None, if_match: str | None,
        if_none_match: str | None) -> Generator[Effect, Any, Written]:
    body, ctype = encode(value, json_value, content_type)
    headers = {"content-type": ctype}
    if if_match is not None:
        headers["if-match"] = if_match
    if if_none_match is not None:
        headers["if-none-match"] = if_none_match
    params = {"ttl": repr(ttl) if isinstance(ttl, float) else str(ttl)} if ttl is not None else {}
    reply = yield from exchange(Call("PUT", _key_path(ns, key), params, headers, body, writes=True),
                                ep, policy)
    _raise_for(reply)
    data = reply.json() or {}
    return Written(key, str(data.get("etag") or reply.headers.get("etag", "")), reply.status == 201,
                   data.get("expires_at"), _write_revision(reply, data))


def delete(ep: Endpoints, policy: RetryPolicy, ns: str, key: str,
           if_match: str | None) -> Generator[Effect, Any, bool]:
    headers = {"if-match": if_match} if if_match is not None else {}
    reply = yield from exchange(Call("DELETE", _key_path(ns, key), {}, headers, writes=True), ep, policy)
    if if_match is None and _absent(reply):
        return False
    _raise_for(reply)
    return True


@dataclass(frozen=True)
class Page:
    items: tuple[Entry | Prefix, ...]
    next_cursor: str | None


def list_page(ep: Endpoints, policy: RetryPolicy, ns: str, prefix: str, delimiter: str | None,
              keys_only: bool, limit: int, cursor: str | None,
              consistency: str) -> Generator[Effect, Any, Page]:
    params = {"limit": str(limit)}
    if prefix:
        params["prefix"] = prefix
    if delimiter:
        params["delimiter"] = delimiter
    if keys_only:
        params["keys_only"] = "true"
    if cursor:
        params["cursor"] = cursor
    if consistency != "strong":
        params["consistency"] = consistency
    reply = yield from exchange(Call("GET", f"/v1/ns/{_segment(ns)}/kv", params), ep, policy)
    _raise_for(reply)
    data = reply.json()
    items: list[Entry | Prefix] = [_entry(i) for i in data.get("items", [])]
    items += [Prefix(p) for p in data.get("prefixes", [])]
    items.sort(key=lambda i: i.key if isinstance(i, Entry) else i.prefix)
    return Page(tuple(items), data.get("next_cursor"))


def batch(ep: Endpoints, policy: RetryPolicy, ns: str, ops: Batch) -> Generator[Effect, Any, Results]:
    writes = any(op["op"] != "get" for op in ops.ops)
    body = json.dumps({"ops": ops.ops}).encode()
    reply = yield from exchange(Call("POST", f"/v1/ns/{_segment(ns)}/batch", {},
                                     {"content-type": JSON_TYPE}, body, writes=writes), ep, policy)
    _raise_for(reply)
    data = reply.json()
    results = Results(_result(r) for r in data["results"])
    results.revision = _write_revision(reply, data) if writes else None
    return results


def txn(ep: Endpoints, policy: RetryPolicy, ns: str, t: Txn) -> Generator[Effect, Any, TxnResult]:
    writes = any(op["op"] != "get" for op in (*t.success.ops, *t.failure.ops))
    body = json.dumps({"compare": t.compares, "success": t.success.ops,
                       "failure": t.failure.ops}).encode()
    reply = yield from exchange(Call("POST", f"/v1/ns/{_segment(ns)}/txn", {},
                                     {"content-type": JSON_TYPE}, body, writes=writes), ep, policy)
    _raise_for(reply)
    data = reply.json()
    return TxnResult(bool(data["succeeded"]), tuple(_result(r) for r in data["results"]),
                     _write_revision(reply, data))


def update(ep: Endpoints, policy: RetryPolicy, ns: str, key: str,
           fn: Callable[[Entry | None], Value], retries: int, content_type: str | None,
           ttl: float | None) -> Generator[Effect, Any, Written]:
    """Read, apply ``fn``, write with If-Match (If-None-Match: * when absent); on 412,
    again with the current value, at most ``retries`` times."""
    for attempt in range(retries):
        current = yield from get(ep, policy, ns, key)
        new = fn(current)
        try:
            if current is None:
                return (yield from put(ep, policy, ns, key, new, None, content_type, ttl, None, "*"))
            return (yield from put(ep, policy, ns, key, new, None, content_type or current.content_type,
                                   ttl, current.etag, None))
        except errors.PreconditionFailed:
            # somebody else wrote in between: back off a little, read again, apply fn again
            if attempt + 1 < retries:
                yield Sleep(policy.delay(min(attempt, 4)))
    raise errors.PreconditionFailed(412, "precondition_failed",
                                    f"update of {ns}/{key} lost the race {retries} times in a row")


def status(ep: Endpoints, policy: RetryPolicy) -> Generator[Effect, Any, dict[str, Any]]:
    reply = yield from exchange(Call("GET", "/v1/status"), ep, policy)
    _raise_for(reply)
    result: dict[str, Any] = reply.json()
    return result


# --------------------------------------------------------------------------- the change feed


STREAM_READ_TIMEOUT = 75.0  # a watch stream silent this long (5 keepalives at the server's default 15 s) is dead
CHANGES_READ_MARGIN = 10.0  # a /changes that waits: the answer may take wait + this long
MAX_SSE_LINE = 64 << 20     # bytes of one line of an event stream, at most (a value is 1 MiB by default)


@dataclass(frozen=True)
class Message:
    """One block of a server-sent event stream (the lines up to a blank line)."""

    event: str = ""  # "" when the block named none
    data: str = ""   # the data lines joined with "\n"
    id: str | None = None
    retry: int | None = None


class SSEParser:
    """The text/event-stream format (WHATWG HTML, "server-sent events"), fed bytes as they
    arrive: lines end with LF, CRLF or CR (also when a CRLF is split between two chunks); a
    line starting with ``:`` is a comment; ``field: value`` with ``event``, ``data`` (one or
    more, joined with LF), ``id`` and ``retry``; a blank line ends the block. Unlike a browser
    it returns every block that held a line, comments-only ones too (as empty Messages): the
    watch counts them as signs of life."""

    def __init__(self) -> None:
        self._pending = b""       # an incomplete line
        self._after_cr = False    # the last chunk ended with CR: a LF starting the next one belongs to it
        self._started = False     # a byte-order mark is skipped at the very start
        self._seen = False        # the current block has a line
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[Message]:
        """The blocks that ``chunk`` completes, in order."""
        if not chunk:
            return []
        if not self._started:
            self._started = True
            chunk = chunk.removeprefix(b"\xef\xbb\xbf")
        if self._after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._after_cr = chunk.endswith(b"\r")
        lines = _LINE_END.split(self._pending + chunk)
        self._pending = lines.pop()
        if len(self._pending) > MAX_SSE_LINE:
            raise errors.ClientError(f"the event stream sent a line longer than {MAX_SSE_LINE} bytes")
        out: list[Message] = []
        for line in lines:
            message = self._line(line.decode("utf-8", "replace"))
            if message is not None:
                out.append(message)
        return out

    def _line(self, line: str) -> Message | None:
        if not line:
            if not self._seen:
                return None
            message = Message(self._event, "\n".join(self._data), self._id, self._retry)
            self._seen, self._event, self._data, self._id, self._retry = False, "", [], None, None
            return message
        self._seen = True
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\x00" not in value:
            self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        return None


_LINE_END = re.compile(rb"\r\n|\r|\n")


def _watch_params(prefix: str, keys_only: bool) -> dict[str, str]:
    params = {"prefix": prefix} if prefix else {}
    if keys_only:
        params["keys_only"] = "true"
    return params


def _check_since(since: int | None) -> None:
    if since is not None and (not isinstance(since, int) or isinstance(since, bool) or since < 0):
        raise ValueError(f"since is a revision (a whole number from 0), not {since!r}")


def watch(ep: Endpoints, policy: RetryPolicy, ns: str, prefix: str, since: int | None,
          keys_only: bool) -> StreamOp:
    """Follow ``GET /v1/ns/{ns}/watch``: yield each :class:`Event` once, in revision order.

    The first request asks for the changes after ``since`` (None: after the revision the
    server is at, which its answer's X-Galerakv-Revision tells). When the stream breaks or the
    server ends it, the watch moves on to the next base URL and asks again with
    ``Last-Event-ID`` = the last revision received, so nothing is missed or repeated.
    Opening is retried as any read (:func:`attempt_once`). Tries are counted across
    reconnections and bounded by ``policy.attempts``; a stream that showed life (an event,
    or any block after the server's greeting) starts the count again. 410 and ``event:
    compacted`` raise :class:`~galerakv.client.errors.Compacted`.
    """
    _check_since(since)
    path = f"/v1/ns/{_segment(ns)}/watch"
    last = since
    resumed = False   # a stream was open before: ask with Last-Event-ID
    attempt = 0
    why = ""
    while True:
        if attempt >= policy.attempts:
            what = "no server took the event stream up again" if resumed else "no server answered"
            raise errors.ConnectionFailed(f"watch of {ns!r}: {what} after {policy.attempts} attempts "
                                          f"(revision {last}); last: {why}")
        params = _watch_params(prefix, keys_only)
        headers = {"accept": "text/event-stream"}
        if last is not None:
            if resumed:
                headers["last-event-id"] = str(last)
            else:
                params["since"] = str(last)
        url = ep.url
        call = Call("GET", path, params, headers, stream=True, read_timeout=STREAM_READ_TIMEOUT)
        outcome = yield from attempt_once(call, ep, policy, attempt)
        if isinstance(outcome, str):
            why = outcome
            attempt += 1
            continue
        _raise_for(outcome)
        if outcome.status != 200:
            raise errors.problem(outcome.status, {"code": f"http_{outcome.status}",
                                                  "detail": "the watch was answered without an event stream"})
        resumed = True
        if last is None:
            last = _revision_of(outcome.headers.get("x-galerakv-revision", ""))
        parser = SSEParser()
        blocks = 0
        lively = False
        while True:
            chunk = yield Read()
            if isinstance(chunk, Failure):
                why = f"{url}: {chunk.detail}"
                break
            if not chunk:
                why = f"{url}: the server ended the event stream"
                break
            for message in parser.feed(chunk):
                blocks += 1
                if message.event == "compacted":
                    raise errors.problem(410, {"code": "compacted", **_json_object(message.data)})
                if message.event not in ("put", "delete"):
                    continue
                event = _event(message.event, _json_object(message.data))
                if last is not None and event.revision <= last:
                    continue  # already yielded (a server must not send it again; never repeat it)
                last = event.revision
                lively = True
                yield event
        yield Close()
        ep.failed(url)
        if lively or blocks > 1:
            attempt = 0  # it worked for a while: reconnect at once, with a fresh count of tries
            continue
        if attempt + 1 < policy.attempts:
            yield Sleep(policy.delay(attempt))
        attempt += 1


def _json_object(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {"detail": text[:200]}
    return data if isinstance(data, dict) else {"detail": text[:200]}


def _seconds(value: float) -> str:
    """``value`` as the server's seconds: ``30``, ``0.5`` (at most 3 decimals)."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def changes(ep: Endpoints, policy: RetryPolicy, ns: str, prefix: str, since: int | None, keys_only: bool,
            limit: int, wait: float) -> Generator[Effect, Any, Changes]:
    """``GET /v1/ns/{ns}/changes``: one page of the changes after ``since``, waiting up to ``wait``
    seconds for the first one."""
    _check_since(since)
    params = _watch_params(prefix, keys_only)
    params["limit"] = str(limit)
    if since is not None:
        params["since"] = str(since)
    if wait:
        params["wait"] = _seconds(wait)
    call = Call("GET", f"/v1/ns/{_segment(ns)}/changes", params,
                read_timeout=wait + CHANGES_READ_MARGIN if wait > 0 else None)
    reply = yield from exchange(call, ep, policy)
    _raise_for(reply)
    data = reply.json()
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise errors.ClientError(f"the server's changes page is not valid: {reply.body[:200]!r}")
    revision = _revision_of(data.get("revision"))
    if revision is None:
        raise errors.ClientError(f"the server's changes page has no revision: {reply.body[:200]!r}")
    return Changes(tuple(_event(e.get("type") if isinstance(e, dict) else None, e) for e in data["events"]),
                   revision)


def normalize_urls(base_url: str | Iterable[str]) -> tuple[str, ...]:
    urls = (base_url,) if isinstance(base_url, str) else tuple(base_url)
    if not urls:
        raise ValueError("give at least one base URL, such as http://127.0.0.1:8080")
    return tuple(u.rstrip("/") for u in urls)
