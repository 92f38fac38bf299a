"""Trivial raw ASGI app: GET returns ~100 bytes with an ETag, PUT reads a body."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

VALUE = b"v" * 100
GET_HEADERS = [
    (b"content-type", b"application/octet-stream"),
    (b"etag", b'"1-abcdef0123456789"'),
    (b"content-length", str(len(VALUE)).encode()),
]
PUT_BODY = b'{"etag":"\\"2-abcdef0123456789\\""}'
PUT_HEADERS = [
    (b"content-type", b"application/json"),
    (b"etag", b'"2-abcdef0123456789"'),
    (b"content-length", str(len(PUT_BODY)).encode()),
]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["method"] == "PUT":
        body = b""
        more = True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": PUT_HEADERS})
        await send({"type": "http.response.body", "body": PUT_BODY})
        return
    await send({"type": "http.response.start", "status": 200, "headers": GET_HEADERS})
    await send({"type": "http.response.body", "body": VALUE})
