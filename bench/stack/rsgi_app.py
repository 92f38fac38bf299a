"""The same trivial endpoints on granian's RSGI interface."""

from __future__ import annotations

from typing import Any

VALUE = b"v" * 100
PUT_BODY = b'{"etag":"\\"2-abcdef0123456789\\""}'
GET_HEADERS = [
    ("content-type", "application/octet-stream"),
    ("etag", '"1-abcdef0123456789"'),
]
PUT_HEADERS = [
    ("content-type", "application/json"),
    ("etag", '"2-abcdef0123456789"'),
]


async def app(scope: Any, protocol: Any) -> None:
    if scope.method == "PUT":
        body = await protocol()
        _ = len(body)
        protocol.response_bytes(200, PUT_HEADERS, PUT_BODY)
        return
    protocol.response_bytes(200, GET_HEADERS, VALUE)
