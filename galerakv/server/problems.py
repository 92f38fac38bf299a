"""Errors as ``application/problem+json`` (RFC 9457), each with a stable ``code``.

Every error response the server sends is built by :func:`problem_body` from a
:class:`Problem`; ``CODES`` is the catalogue the OpenAPI document and
docs/api.md are checked against.
"""

from __future__ import annotations

from typing import Any

import orjson

PROBLEM_TYPE = "application/problem+json"

# code -> (HTTP status, title)
CODES: dict[str, tuple[int, str]] = {
    "bad_request": (400, "The request is malformed"),
    "invalid_namespace": (400, "The namespace is not valid"),
    "invalid_key": (400, "The key is not valid"),
    "invalid_query": (400, "A query parameter is not valid"),
    "invalid_header": (400, "A header is not valid"),
    "invalid_etag": (400, "An ETag in a precondition header is not valid"),
    "invalid_cursor": (400, "The listing cursor is not valid"),
    "invalid_json": (400, "The request body is not valid JSON"),
    "invalid_operation": (400, "An operation in the body is not valid"),
    "unauthorized": (401, "A valid bearer token is required"),
    "forbidden": (403, "The token does not grant this access"),
    "not_found": (404, "No such key"),
    "no_route": (404, "No such endpoint"),
    "method_not_allowed": (405, "Method not allowed on this endpoint"),
    "request_timeout": (408, "The request body did not arrive in time"),
    "compacted": (410, "The history asked for is no longer kept"),
    "precondition_failed": (412, "The precondition did not hold"),
    "key_too_large": (413, "The key is longer than the limit"),
    "value_too_large": (413, "The value is larger than the limit"),
    "request_too_large": (413, "The request body is larger than the limit"),
    "batch_too_large": (413, "Too many operations in one batch"),
    "txn_too_large": (413, "Too many operations in one transaction"),
    "response_too_large": (413, "The answer would hold more value bytes than the limit"),
    "internal": (500, "Internal server error"),
    "backend_unavailable": (503, "The database is not available"),
    "outcome_unknown": (503, "The write's outcome is unknown"),
    "too_many_watchers": (503, "Too many watchers on this server process"),
}


class Problem(Exception):
    """An error answer: raise it from a handler, the app turns it into a response."""

    def __init__(self, code: str, detail: str = "", *, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        status, title = CODES[code]
        super().__init__(detail or title)
        self.code = code
        self.status = status
        self.title = title
        self.detail = detail or title
        self.headers = headers or {}
        self.extra = extra


def problem_body(problem: Problem, instance: str = "") -> bytes:
    body: dict[str, Any] = {
        "type": f"urn:galerakv:problem:{problem.code}",
        "title": problem.title,
        "status": problem.status,
        "code": problem.code,
        "detail": problem.detail,
    }
    if instance:
        body["instance"] = instance
    body.update(problem.extra)
    return orjson.dumps(body)
