"""Running the operations of :mod:`._protocol` over httpx: the blocking and the async driver.

Only this module touches the network; it turns httpx's exceptions into
:class:`~._protocol.Failure` values (``sent``: whether the request may have
reached the server) for the protocol to decide on.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypeVar

import httpx

from galerakv.client._protocol import Call, Endpoints, Failure, Op, Reply, Sleep

T = TypeVar("T")

NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def failure(exc: httpx.TransportError) -> Failure:
    return Failure(not isinstance(exc, NOT_SENT), f"{type(exc).__name__}: {exc}".rstrip(": "))


def reply(response: httpx.Response) -> Reply:
    return Reply(response.status_code, {k.lower(): v for k, v in response.headers.items()},
                 response.content)


def request_args(call: Call, endpoints: Endpoints) -> dict[str, Any]:
    return {"method": call.method, "url": (call.base or endpoints.url) + call.path, "params": dict(call.params),
            "headers": dict(call.headers), "content": call.content}


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
                    sent = reply(http.request(**request_args(effect, endpoints)))
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
                    sent = reply(await http.request(**request_args(effect, endpoints)))
                except httpx.TransportError as exc:
                    sent = failure(exc)
            effect = op.send(sent)
    except StopIteration as stop:
        return stop.value
