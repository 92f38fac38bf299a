"""Handlers of the key-value endpoints under ``/v1/ns/{ns}/``."""

from __future__ import annotations

from typing import Protocol

from galerakv.backend.base import ListQuery, Store
from galerakv.config import Settings
from galerakv.server import ops, validate
from galerakv.server.http import Request, Response, json_response
from galerakv.server.problems import Problem


class Context(Protocol):
    """What the handlers need from the application (``galerakv.server.app.App`` is one)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> Store: ...

    def authorize_write(self, req: Request, ns: str, write: bool) -> None:
        """Raise the 401/403 problem when ``write`` and the request may not write to ``ns``."""
        ...


_LIST_PARAMS = {"prefix", "limit", "cursor", "keys_only", "delimiter", "consistency"}
_READ_PARAMS = {"consistency"}
_KEY_PARAMS = {"ttl"}


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


async def get_key(app: Context, req: Request, ns: str, key: str) -> Response:
    params = _check_params(req, _READ_PARAMS)
    entry = await app.store.get(ns, key, local=_local(params))
    if entry is None:
        raise Problem("not_found", f"no key {key[:200]!r} in namespace {ns!r}", key=key[:200])
    etag = _etag_header(entry.version)
    any_match, versions = validate.if_none_match_get(req.header(b"if-none-match"))
    if any_match or entry.version in versions:
        return Response(304, b"", [etag])
    headers = [(b"content-type", entry.content_type.encode()), etag]
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
    body = await req.body(limits.max_value_bytes, "value_too_large")
    result = await app.store.put(ns, key, body, content_type, ttl=ttl, if_match=version,
                                 if_none_match=create_only)
    if result.status == "precondition_failed":
        raise _precondition(result.entry.version if result.entry else None, create_only)
    assert result.entry is not None
    status = 201 if result.status == "created" else 200
    return json_response(ops.entry_json(result.entry, with_value=False), status,
                         [_etag_header(result.entry.version)])


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
    return Response(204)


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
    raw_limit = params.get("limit", "100")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= limits.max_list_limit:
        raise Problem("invalid_query", f"limit must be an integer from 1 to "
                      f"{limits.max_list_limit}, not {raw_limit[:32]!r}", parameter="limit")
    keys_only_raw = params.get("keys_only", "false")
    if keys_only_raw not in ("true", "false"):  # the boolean of the OpenAPI document, nothing looser
        raise Problem("invalid_query", "keys_only must be true or false", parameter="keys_only")
    delimiter = params.get("delimiter") or None
    if delimiter is not None and (len(delimiter) > 16 or "\x00" in delimiter):
        raise Problem("invalid_query", "delimiter must be 1-16 characters, such as /",
                      parameter="delimiter")
    prefix = params.get("prefix", "")
    if len(prefix.encode("utf-8", "surrogatepass")) > limits.max_key_bytes or "\x00" in prefix:
        raise Problem("invalid_query", "prefix is longer than a key can be, or contains NUL",
                      parameter="prefix")
    cursor = params.get("cursor") or None
    query = ListQuery(prefix, int(raw_limit), cursor, keys_only_raw == "true", delimiter)
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
    return json_response({"results": [ops.result_json(op, r)
                                      for op, r in zip(batch_ops, results, strict=True)]})


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
                          "results": [ops.result_json(op, r)
                                      for op, r in zip(branch, result.results, strict=True)]})


async def _json_body(app: Context, req: Request) -> object:
    # The body is parsed as JSON whatever its Content-Type says: curl's default
    # form type is a common slip and refusing it would help nobody.
    body = await req.body(app.settings.limits.max_request_bytes)
    return ops.load_json(body)
