"""Handlers of the key-value endpoints under ``/v1/ns/{ns}/``."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Protocol

import orjson

from galerakv.backend.base import ChangeQuery, Event, ListQuery, Store, unit_revision
from galerakv.config import Settings
from galerakv.errors import Compacted
from galerakv.server import ops, validate
from galerakv.server.http import Request, Response, StreamResponse, json_response
from galerakv.server.problems import Problem
from galerakv.server.watch import PAGE, Feed, Interest, event_json


class Context(Protocol):
    """What the handlers need from the application (``galerakv.server.app.App`` is one)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> Store: ...

    @property
    def feed(self) -> Feed: ...

    def authorize_write(self, req: Request, ns: str, write: bool) -> None:
        """Raise the 401/403 problem when ``write`` and the request may not write to ``ns``."""
        ...


_LIST_PARAMS = {"prefix", "limit", "cursor", "keys_only", "delimiter", "consistency"}
_READ_PARAMS = {"consistency"}
_KEY_PARAMS = {"ttl"}
_WATCH_PARAMS = {"prefix", "since", "keys_only"}
_CHANGES_PARAMS = {"prefix", "since", "keys_only", "limit", "wait"}
MAX_WAIT = 60.0
_WAIT_RE = re.compile(r"[0-9]{1,2}(\.[0-9]{1,3})?")
REVISION_HEADER = b"x-galerakv-revision"
# A value is served with the content type it was stored with: a browser must neither guess
# another type nor run it (a text/html value opened from a link runs in a sandbox, no script).
VALUE_SAFETY = ((b"x-content-type-options", b"nosniff"), (b"content-security-policy", b"sandbox"))


def _written(app: Context, revision: int) -> tuple[bytes, bytes]:
    """The revision header of a write's answer; the feed is told to read at once."""
    app.feed.nudge()
    return (REVISION_HEADER, str(revision).encode())


def _check_params(req: Request, allowed: set[str]) -> dict[str, str]:
    params = req.query
    for name in params:
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise Problem("invalid_query", f"unknown query parameter {name!r}; known: {known}",
                          parameter=name)
    return params


def _etag_header(version: str) -> tuple[bytes, bytes]:
    return (b"etag", f'"{version}"'.encode())


def _local(params: dict[str, str]) -> bool:
    """``?consistency=local``: a cheaper read that may not see the latest writes made elsewhere."""
    value = params.get("consistency", "strong")
    if value not in ("strong", "local"):
        raise Problem("invalid_query", f"consistency must be strong (the default) or local, not {value[:32]!r}",
                      parameter="consistency")
    return value == "local"


def _limit(params: dict[str, str], most: int) -> int:
    """``limit``: a whole number from 1 to ``most`` (ASCII digits only), 100 by default."""
    raw = params.get("limit", "100")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= most:
        raise Problem("invalid_query", f"limit must be an integer from 1 to {most}, not {raw[:32]!r}",
                      parameter="limit")
    return int(raw)


def _keys_only(params: dict[str, str]) -> bool:
    raw = params.get("keys_only", "false")
    if raw not in ("true", "false"):  # the boolean of the OpenAPI document, nothing looser
        raise Problem("invalid_query", "keys_only must be true or false", parameter="keys_only")
    return raw == "true"


def _prefix(params: dict[str, str], max_key_bytes: int) -> str:
    prefix = params.get("prefix", "")
    if len(prefix.encode("utf-8", "surrogatepass")) > max_key_bytes or "\x00" in prefix:
        raise Problem("invalid_query", f"prefix is longer than a key can be ({max_key_bytes} bytes), "
                      "or contains NUL", parameter="prefix")
    return prefix


async def get_key(app: Context, req: Request, ns: str, key: str) -> Response:
    params = _check_params(req, _READ_PARAMS)
    entry = await app.store.get(ns, key, local=_local(params))
    if entry is None:
        raise Problem("not_found", f"no key {key[:200]!r} in namespace {ns!r}", key=key[:200])
    etag = _etag_header(entry.version)
    any_match, versions = validate.if_none_match_get(req.header(b"if-none-match"))
    if any_match or entry.version in versions:
        return Response(304, b"", [etag])
    headers = [(b"content-type", entry.content_type.encode()), etag, *VALUE_SAFETY]
    if entry.expires_at is not None:
        headers.append((b"x-galerakv-expires-at", f"{entry.expires_at:.3f}".encode()))
    return Response(200, entry.value, headers)


async def put_key(app: Context, req: Request, ns: str, key: str) -> Response:
    params = _check_params(req, _KEY_PARAMS)
    limits = app.settings.limits
    ttl = validate.ttl(params.get("ttl"), limits)
    version = validate.if_match(req.header(b"if-match"))
    create_only = validate.if_none_match_put(req.header(b"if-none-match"))
    content_type = validate.content_type(req.header(b"content-type"))
    body = await req.body(limits.max_value_bytes, "value_too_large", limits.body_timeout)
    result = await app.store.put(ns, key, body, content_type, ttl=ttl, if_match=version,
                                 if_none_match=create_only)
    if result.status == "precondition_failed":
        raise _precondition(result.entry.version if result.entry else None, create_only)
    assert result.entry is not None
    status = 201 if result.status == "created" else 200
    return json_response({**ops.entry_json(result.entry, with_value=False), "revision": result.revision}, status,
                         [_etag_header(result.entry.version), _written(app, result.revision)])


async def delete_key(app: Context, req: Request, ns: str, key: str) -> Response:
    _check_params(req, set())
    version = validate.if_match(req.header(b"if-match"))
    if req.header(b"if-none-match") is not None:
        raise Problem("invalid_header", "DELETE takes If-Match, not If-None-Match")
    result = await app.store.delete(ns, key, if_match=version)
    if result.status == "precondition_failed":
        raise _precondition(result.entry.version if result.entry else None, False)
    if result.status == "not_found":
        raise Problem("not_found", f"no key {key[:200]!r} in namespace {ns!r}", key=key[:200])
    return Response(204, b"", [_written(app, result.revision)])


def _precondition(current: str | None, create_only: bool) -> Problem:
    etag = f'"{current}"' if current is not None else None
    if create_only:
        detail = "the key already exists (If-None-Match: *)"
    elif current is None:
        detail = "the key does not exist, so If-Match cannot hold"
    else:
        detail = f"the key's current ETag is {etag}, not the one in If-Match"
    headers = {"ETag": etag} if etag else {}
    return Problem("precondition_failed", detail, headers=headers, current_etag=etag)


async def list_keys(app: Context, req: Request, ns: str) -> Response:
    params = _check_params(req, _LIST_PARAMS)
    limits = app.settings.limits
    limit = _limit(params, limits.max_list_limit)
    keys_only = _keys_only(params)
    delimiter = params.get("delimiter") or None
    if delimiter is not None and (len(delimiter) > 16 or "\x00" in delimiter):
        raise Problem("invalid_query", "delimiter must be 1-16 characters, such as /",
                      parameter="delimiter")
    prefix = _prefix(params, limits.max_key_bytes)
    cursor = params.get("cursor") or None
    query = ListQuery(prefix, limit, cursor, keys_only, delimiter, limits.max_response_bytes)
    page = await app.store.list_keys(ns, query, local=_local(params))
    body = {
        "items": [ops.entry_json(e, with_value=not query.keys_only) for e in page.entries],
        "prefixes": list(page.prefixes),
        "next_cursor": page.next_cursor,
    }
    return json_response(body)


async def batch(app: Context, req: Request, ns: str) -> Response:
    _check_params(req, set())
    data = await _json_body(app, req)
    if not isinstance(data, dict) or set(data) - {"ops"} or "ops" not in data:
        raise Problem("invalid_operation", 'the body must be {"ops": [operation, ...]}')
    limits = app.settings.limits
    batch_ops = ops.parse_ops(data["ops"], "ops", limits, limits.max_batch_ops, "batch_too_large",
                              conditions=True)
    app.authorize_write(req, ns, any(op.kind != "get" for op in batch_ops))
    results = await app.store.batch(ns, batch_ops) if batch_ops else []
    if all(op.kind == "get" for op in batch_ops):  # (a batch that wrote answers whatever its size)
        size = sum(len(r.entry.value) for r in results if r.entry is not None)
        if size > limits.max_response_bytes:
            raise Problem("response_too_large", f"the values asked for add up to {size} bytes; the limit of one "
                          f"answer is {limits.max_response_bytes} bytes (limits.max_response_bytes): split the "
                          "gets over several batches", limit=limits.max_response_bytes, size=size)
    body: dict[str, object] = {"results": [ops.result_json(op, r) for op, r in zip(batch_ops, results, strict=True)]}
    if any(op.kind != "get" for op in batch_ops):
        revision = unit_revision(results)
        body["revision"] = revision
        return json_response(body, headers=[_written(app, revision)])
    return json_response(body)


async def txn(app: Context, req: Request, ns: str) -> Response:
    _check_params(req, set())
    data = await _json_body(app, req)
    allowed = {"compare", "success", "failure"}
    if not isinstance(data, dict) or set(data) - allowed:
        raise Problem("invalid_operation",
                      'the body must be {"compare": [...], "success": [...], "failure": [...]}')
    limits = app.settings.limits
    raw_compares = data.get("compare", [])
    if not isinstance(raw_compares, list):
        raise Problem("invalid_operation", "compare must be a JSON array", at="compare")
    success = ops.parse_ops(data.get("success", []), "success", limits, limits.max_txn_ops,
                            "txn_too_large", conditions=False)
    failure = ops.parse_ops(data.get("failure", []), "failure", limits, limits.max_txn_ops,
                            "txn_too_large", conditions=False)
    total = len(raw_compares) + len(success) + len(failure)
    if total > limits.max_txn_ops:
        raise Problem("txn_too_large", f"the transaction has {total} compares and operations; "
                      f"the limit is {limits.max_txn_ops}", limit=limits.max_txn_ops, size=total)
    compares = [ops.parse_compare(c, f"compare[{i}]", limits) for i, c in enumerate(raw_compares)]
    app.authorize_write(req, ns, any(op.kind != "get" for op in success + failure))
    result = await app.store.txn(ns, compares, success, failure)
    branch = success if result.succeeded else failure
    return json_response({"succeeded": result.succeeded,
                          "results": [ops.result_json(op, r) for op, r in zip(branch, result.results, strict=True)],
                          "revision": result.revision}, headers=[_written(app, result.revision)])


async def _json_body(app: Context, req: Request) -> object:
    # The body is parsed as JSON whatever its Content-Type says: curl's default
    # form type is a common slip and refusing it would help nobody.
    limits = app.settings.limits
    body = await req.body(limits.max_request_bytes, timeout=limits.body_timeout)
    return ops.load_json(body)


# ---------------------------------------------------------------------- the change feed


async def _feed_start(app: Context, req: Request, ns: str, params: dict[str, str]) -> tuple[Interest, int]:
    """What a watcher follows and the revision it starts after: ``since``, or the Last-Event-ID
    of a reconnecting EventSource (which wins), or the store's current revision."""
    prefix = _prefix(params, app.settings.limits.max_key_bytes)
    keys_only = _keys_only(params)
    last_id = req.header(b"last-event-id")
    since: int | None = None
    if last_id is not None and last_id.strip():
        since = validate.revision(last_id.strip(), "Last-Event-ID", "invalid_header")
    elif "since" in params:
        since = validate.revision(params["since"], "since", "invalid_query")
    if since is None or since > app.feed.head:
        current, _ = await app.store.revision()
        if since is None:
            since = current
        elif since > current:
            raise Problem("invalid_query", f"since={since} is a future revision: the store is at revision {current}",
                          parameter="since", revision=current)
    return Interest(ns, prefix, keys_only), since


def compacted(exc: Compacted) -> Problem:
    return Problem("compacted", str(exc), compact_revision=exc.compact_revision, revision=exc.revision)


def _admit(app: Context) -> None:
    if app.feed.watchers >= app.settings.watch.max_watchers:
        raise Problem("too_many_watchers", f"this server process already holds {app.feed.watchers} watchers, "
                      "its limit (watch.max_watchers); try again later or another server instance",
                      headers={"Retry-After": "5"})


async def watch(app: Context, req: Request, ns: str) -> StreamResponse:
    """``GET /v1/ns/{ns}/watch``: the namespace's changes as server-sent events."""
    params = _check_params(req, _WATCH_PARAMS)
    interest, since = await _feed_start(app, req, ns, params)
    _admit(app)
    await app.feed.join()  # counted before any wait, so max_watchers holds under a burst
    try:
        await app.feed.read(interest, since, limit=1)  # a since older than the history: 410 now
    except Compacted as exc:
        app.feed.leave()
        raise compacted(exc) from None
    except BaseException:
        app.feed.leave()
        raise
    headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-store"),
               (b"x-accel-buffering", b"no"), (REVISION_HEADER, str(since).encode())]
    return StreamResponse(200, _events(app, interest, since), headers, req.receive,
                          app.settings.watch.send_timeout, app.feed.leave)


async def _events(app: Context, interest: Interest, since: int) -> AsyncIterator[bytes]:
    yield b"retry: 1000\n: watching %s from revision %d\n\n" % (interest.ns.encode(), since)
    try:
        async for events in app.feed.follow(interest, since):
            yield app.feed.render(events, interest.keys_only) if events else b": keepalive\n\n"
    except Compacted as exc:  # fell out of the history kept: say so and end
        body = {"code": "compacted", "detail": str(exc), "compact_revision": exc.compact_revision,
                "revision": exc.revision}
        yield b"event: compacted\ndata: " + orjson.dumps(body) + b"\n\n"


async def changes(app: Context, req: Request, ns: str) -> Response:
    """``GET /v1/ns/{ns}/changes``: the same events as one JSON page, waiting up to ``wait`` seconds."""
    params = _check_params(req, _CHANGES_PARAMS)
    limit = _limit(params, min(app.settings.limits.max_list_limit, PAGE * 4))
    raw_wait = params.get("wait", "0")
    if not _WAIT_RE.fullmatch(raw_wait) or float(raw_wait) > MAX_WAIT:
        raise Problem("invalid_query", f"wait must be a number of seconds from 0 to {MAX_WAIT:g}, such as 30 or 0.5, "
                      f"not {raw_wait[:32]!r}", parameter="wait")
    wait = float(raw_wait)
    interest, since = await _feed_start(app, req, ns, params)
    try:
        # from the store, not the feed's ring: a page is causal (every change acknowledged before
        # the request is in it or in a later page), where the ring may lag by a poll interval
        page = await app.store.changes(ChangeQuery(since, ns, interest.prefix, limit, interest.keys_only))
        events, cursor = list(page.events), page.revision
        if not events and wait > 0:
            _admit(app)
            await app.feed.join()
            try:
                events, cursor = await _first_events(app, interest, cursor, limit, wait)
            finally:
                app.feed.leave()
    except Compacted as exc:
        raise compacted(exc) from None
    body = {"events": [{"type": e.kind, **event_json(e, interest.keys_only)} for e in events], "revision": cursor}
    return json_response(body, headers=[(REVISION_HEADER, str(cursor).encode())])


async def _first_events(app: Context, interest: Interest, cursor: int, limit: int,
                        wait: float) -> tuple[list[Event], int]:
    """The first events after ``cursor`` that arrive within ``wait`` seconds (none: an empty list)."""
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not await app.feed.wait(cursor, left):
            return [], cursor
        events, cursor = await app.feed.read(interest, cursor, limit)
        if events:
            return events, cursor
