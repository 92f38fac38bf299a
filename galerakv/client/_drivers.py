"""Running the operations of :mod:`._protocol` over httpx: the blocking and the async driver.

Only this module touches the network; it turns httpx's exceptions into
:class:`~._protocol.Failure` values (``sent``: whether the request may have
reached the server) for the protocol to decide on.

``run_sync`` / ``run_async`` drive an operation to its value. ``stream_sync`` /
``stream_async`` drive a streaming one (:func:`._protocol.watch`): they hold at
most one open response, answer its ``Read`` effects with the next bytes, pass
the operation's events on to their caller, and close the response whenever
the operation asks, opens another, ends or fails, or the caller stops
iterating (closing the iterator, ``break``, an exception, a cancelled task).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import httpx

from galerakv.client._protocol import Call, Close, Endpoints, Event, Failure, Op, Read, Reply, Sleep, StreamOp

T = TypeVar("T")

NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
# what reading a response's body can raise besides TransportError: a body that cannot be decoded
READ_ERRORS = (httpx.TransportError, httpx.DecodingError)


def failure(exc: httpx.TransportError | httpx.DecodingError) -> Failure:
    return Failure(not isinstance(exc, NOT_SENT), f"{type(exc).__name__}: {exc}".rstrip(": "))


def reply(response: httpx.Response) -> Reply:
    return Reply(response.status_code, {k.lower(): v for k, v in response.headers.items()},
                 response.content)


def head(response: httpx.Response) -> Reply:
    """The status and headers of a response whose body is still to be read."""
    return Reply(response.status_code, {k.lower(): v for k, v in response.headers.items()}, b"")


def request_args(call: Call, endpoints: Endpoints, timeout: httpx.Timeout | None = None) -> dict[str, Any]:
    args: dict[str, Any] = {"method": call.method, "url": (call.base or endpoints.url) + call.path,
                            "params": dict(call.params), "headers": dict(call.headers), "content": call.content}
    if call.read_timeout is not None and timeout is not None and timeout.read is not None:
        args["timeout"] = httpx.Timeout(connect=timeout.connect, read=max(timeout.read, call.read_timeout),
                                        write=timeout.write, pool=timeout.pool)
    return args


def run_sync(op: Op, http: httpx.Client, endpoints: Endpoints) -> Any:
    """Drive ``op`` to its value with blocking I/O."""
    sent: Reply | Failure | None = None
    try:
        effect = next(op)
        while True:
            if isinstance(effect, Sleep):
                time.sleep(effect.seconds)
                sent = None
            else:
                try:
                    sent = reply(http.request(**request_args(effect, endpoints, http.timeout)))
                except httpx.TransportError as exc:
                    sent = failure(exc)
            effect = op.send(sent)
    except StopIteration as stop:
        return stop.value


async def run_async(op: Op, http: httpx.AsyncClient, endpoints: Endpoints) -> Any:
    """Drive ``op`` to its value with asyncio."""
    sent: Reply | Failure | None = None
    try:
        effect = next(op)
        while True:
            if isinstance(effect, Sleep):
                await asyncio.sleep(effect.seconds)
                sent = None
            else:
                try:
                    sent = reply(await http.request(**request_args(effect, endpoints, http.timeout)))
                except httpx.TransportError as exc:
                    sent = failure(exc)
            effect = op.send(sent)
    except StopIteration as stop:
        return stop.value


class _SyncStream:
    """The one open response of a streaming operation (blocking)."""

    def __init__(self) -> None:
        self.response: httpx.Response | None = None
        self.chunks: Iterator[bytes] | None = None

    def open(self, call: Call, http: httpx.Client, endpoints: Endpoints) -> Reply | Failure:
        self.close()
        try:
            request = http.build_request(**request_args(call, endpoints, http.timeout))
            response = http.send(request, stream=call.stream)
            if not call.stream or response.status_code != 200:
                try:
                    response.read()  # an error's problem body, or a plain answer
                finally:
                    response.close()
                return reply(response)
        except READ_ERRORS as exc:
            return failure(exc)
        self.response, self.chunks = response, response.iter_bytes()
        return head(response)

    def read(self) -> bytes | Failure:
        if self.chunks is None:
            return Failure(False, "no stream is open")
        try:
            return next(self.chunks, b"")
        except READ_ERRORS as exc:
            self.close()
            return Failure(True, failure(exc).detail)

    def close(self) -> None:
        chunks, response, self.chunks, self.response = self.chunks, self.response, None, None
        close = getattr(chunks, "close", None)  # httpx's iter_bytes is a generator
        if close is not None:
            close()
        if response is not None:
            response.close()


def stream_sync(op: StreamOp, http: httpx.Client, endpoints: Endpoints) -> Iterator[Event]:
    """Drive the streaming ``op`` with blocking I/O, yielding its events."""
    stream = _SyncStream()
    sent: Reply | Failure | bytes | None = None
    try:
        effect = next(op)
        while True:
            sent = None
            if isinstance(effect, Sleep):
                time.sleep(effect.seconds)
            elif isinstance(effect, Call):
                sent = stream.open(effect, http, endpoints)
            elif isinstance(effect, Read):
                sent = stream.read()
            elif isinstance(effect, Close):
                stream.close()
            else:
                yield effect
            effect = op.send(sent)
    except StopIteration:
        return
    finally:
        stream.close()
        op.close()


class _AsyncStream:
    """The one open response of a streaming operation (asyncio)."""

    def __init__(self) -> None:
        self.response: httpx.Response | None = None
        self.chunks: AsyncIterator[bytes] | None = None

    async def open(self, call: Call, http: httpx.AsyncClient, endpoints: Endpoints) -> Reply | Failure:
        await self.close()
        try:
            request = http.build_request(**request_args(call, endpoints, http.timeout))
            response = await http.send(request, stream=call.stream)
            if not call.stream or response.status_code != 200:
                try:
                    await response.aread()
                finally:
                    await response.aclose()
                return reply(response)
        except READ_ERRORS as exc:
            return failure(exc)
        self.response, self.chunks = response, response.aiter_bytes()
        return head(response)

    async def read(self) -> bytes | Failure:
        if self.chunks is None:
            return Failure(False, "no stream is open")
        try:
            return await anext(self.chunks, b"")
        except READ_ERRORS as exc:
            await self.close()
            return Failure(True, failure(exc).detail)

    async def close(self) -> None:
        chunks, response, self.chunks, self.response = self.chunks, self.response, None, None
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
        if response is not None:
            await response.aclose()


async def stream_async(op: StreamOp, http: httpx.AsyncClient, endpoints: Endpoints) -> AsyncIterator[Event]:
    """Drive the streaming ``op`` with asyncio, yielding its events."""
    stream = _AsyncStream()
    sent: Reply | Failure | bytes | None = None
    try:
        effect = next(op)
        while True:
            sent = None
            if isinstance(effect, Sleep):
                await asyncio.sleep(effect.seconds)
            elif isinstance(effect, Call):
                sent = await stream.open(effect, http, endpoints)
            elif isinstance(effect, Read):
                sent = await stream.read()
            elif isinstance(effect, Close):
                await stream.close()
            else:
                yield effect
            effect = op.send(sent)
    except StopIteration:
        return
    finally:
        await stream.close()
        op.close()
