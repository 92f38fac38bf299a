"""A minimal request/response layer over raw ASGI.

The API is small and hot: a thin layer measured faster than a framework's
routing and middleware stack (see bench/results/stack.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

import orjson

from galerakv.server.problems import PROBLEM_TYPE, Problem, problem_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("galerakv.server")

BODY_TIMEOUT = 30.0  # seconds a request body may take to arrive (limits.body_timeout)
_CLOSE = {"Connection": "close"}


class Request:
    __slots__ = ("_query", "headers", "method", "path", "raw_path", "receive", "route", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        raw = scope.get("raw_path")
        self.raw_path: bytes = raw.split(b"?", 1)[0] if raw else scope["path"].encode()
        self.path: str = scope["path"]
        self.route = "other"  # the route template, for metrics; set by the router
        self.headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            name = name.lower()
            if name in self.headers:  # repeated headers fold into one list
                self.headers[name] += b", " + value
            else:
                self.headers[name] = value
        self._query: dict[str, str] | None = None

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        if value is None:
            return None
        try:
            return value.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
            raise Problem("invalid_header", f"{name.decode()} is not readable") from None

    @property
    def query(self) -> dict[str, str]:
        if self._query is None:
            raw: bytes = self.scope.get("query_string", b"")
            params: dict[str, str] = {}
            if raw:
                try:
                    pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True,
                                      strict_parsing=False, errors="strict")
                except (UnicodeDecodeError, ValueError):
                    raise Problem("invalid_query",
                                  "the query string is not valid percent-encoded UTF-8") from None
                for name, value in pairs:
                    if name in params:
                        raise Problem("invalid_query", f"query parameter {name!r} is given twice",
                                      parameter=name)
                    params[name] = value
            self._query = params
        return self._query

    async def body(self, limit: int, code: str = "request_too_large", timeout: float = BODY_TIMEOUT) -> bytes:
        """The whole body; a ``code`` problem (413) as soon as it passes ``limit`` bytes, and a
        ``request_timeout`` problem (408) when it has not all arrived within ``timeout`` seconds.

        A declared ``Content-Length`` over the limit is answered at once, without
        reading the body, and the connection is closed (a client declaring 64 MiB
        must not hold the server while it sends them). Both answers close the
        connection: the rest of the body would otherwise be read as the next request.
        """
        declared = self.headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise Problem(code, f"the body is {int(declared)} bytes; the limit is {limit} bytes",
                          headers=_CLOSE, limit=limit)
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(timeout):
                while True:
                    message = await self.receive()
                    if message["type"] == "http.disconnect":
                        raise Problem("bad_request", "the client went away before sending the body")
                    chunk = message.get("body", b"")
                    if chunk:
                        size += len(chunk)
                        if size > limit:
                            raise Problem(code, f"the body is over {limit} bytes; the limit is {limit} bytes",
                                          headers=_CLOSE, limit=limit)
                        chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            raise Problem("request_timeout", f"the body did not arrive within {timeout:g} seconds "
                          f"({size} bytes received; limits.body_timeout)", headers=_CLOSE,
                          limit=timeout) from None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: bytes = b"",
                 headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
        self.status = status
        self.body = body
        self.headers = list(headers)

    async def send(self, send: Send, head: bool = False) -> None:
        headers = self.headers
        headers.append((b"content-length", str(len(self.body)).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else self.body})


class StreamResponse:
    """A response whose body is produced while it is sent (the event stream).

    ``chunks`` is an async iterator of body parts. The stream ends when it is
    exhausted, when the client goes away (``receive`` says so), or when a part
    is not accepted within ``send_timeout`` seconds (the connection is then
    left to the server to close).
    """

    __slots__ = ("chunks", "headers", "on_close", "receive", "send_timeout", "status")

    def __init__(self, status: int, chunks: AsyncIterator[bytes], headers: Iterable[tuple[bytes, bytes]],
                 receive: Receive, send_timeout: float, on_close: Callable[[], None] | None = None) -> None:
        self.status = status
        self.chunks = chunks
        self.headers = list(headers)
        self.receive = receive
        self.send_timeout = send_timeout
        self.on_close = on_close

    async def send(self, send: Send, head: bool = False) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
            if head:
                await send({"type": "http.response.body", "body": b""})
                return
            producer = asyncio.ensure_future(self._produce(send))
            gone = asyncio.ensure_future(self._disconnected())
            try:
                await asyncio.wait({producer, gone}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (producer, gone):
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
        finally:
            if self.on_close is not None:
                self.on_close()

    async def _produce(self, send: Send) -> None:
        async for chunk in self.chunks:
            try:
                async with asyncio.timeout(self.send_timeout):  # no task per send, unlike wait_for
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except TimeoutError:
                log.warning("a stream's client accepted nothing for %g s: cut off", self.send_timeout)
                return
        await send({"type": "http.response.body", "body": b""})

    async def _disconnected(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass


def json_response(data: Any, status: int = 200,
                  headers: Iterable[tuple[bytes, bytes]] = ()) -> Response:
    return Response(status, orjson.dumps(data),
                    [(b"content-type", b"application/json"), *headers])


def problem_response(problem: Problem, instance: str = "") -> Response:
    headers = [(b"content-type", PROBLEM_TYPE.encode())]
    headers += [(k.encode(), v.encode()) for k, v in problem.headers.items()]
    return Response(problem.status, problem_body(problem, instance), headers)


def decode_segment(raw: bytes, what: str, code: str) -> str:
    """Percent-decode one path part into text, or a 400 naming ``what``."""
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(code, f"the {what} is not valid UTF-8 after percent-decoding") from None
