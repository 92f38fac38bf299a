"""The Python client of galerakv: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio).

Both have the same methods; the logic behind them (retries, failover over
several server instances, compare-and-set loops, cursors, error mapping) is
written once in :mod:`galerakv.client._protocol`. Errors are the tree in
:mod:`galerakv.client.errors`. See docs/client.md.

>>> from galerakv.client import Client
>>> with Client("http://127.0.0.1:8080") as kv:                      # doctest: +SKIP
...     kv.put("config", "feature/x", "on")
...     kv.update("counters", "visits", lambda e: str(int(e.text) + 1 if e else 1))
...     for event in kv.watch("config", prefix="feature/"):
...         print(event.kind, event.key, event.revision)
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import httpx

from galerakv.client import _protocol as p
from galerakv.client._drivers import run_async, run_sync, stream_async, stream_sync
from galerakv.client._protocol import (
    Batch,
    Changes,
    Entry,
    Event,
    Prefix,
    Result,
    Results,
    RetryPolicy,
    Txn,
    TxnResult,
    Value,
    Written,
)
from galerakv.client.errors import (
    ClientError,
    Compacted,
    ConnectionFailed,
    Forbidden,
    InvalidRequest,
    NotFound,
    OutcomeUnknown,
    PreconditionFailed,
    ProblemError,
    Unauthorized,
    Unavailable,
)

__all__ = ["AsyncClient", "Batch", "Changes", "Client", "ClientError", "Compacted", "ConnectionFailed", "Entry",
           "Event", "Forbidden", "InvalidRequest", "NotFound", "OutcomeUnknown", "PreconditionFailed", "Prefix",
           "ProblemError", "Result", "Results", "RetryPolicy", "Txn", "TxnResult", "Unauthorized",
           "Unavailable", "Value", "Written"]

Consistency = Literal["strong", "local"]


def _http_options(token: str | None, timeout: float, ca: str | Path | None) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    verify: bool | ssl.SSLContext = True
    if ca is not None:  # httpx 0.28 deprecates verify=<path>: give it a context
        verify = (ssl.create_default_context(capath=str(ca)) if Path(ca).is_dir()
                  else ssl.create_default_context(cafile=str(ca)))
    return {"headers": headers, "timeout": httpx.Timeout(timeout), "verify": verify,
            "follow_redirects": False}


class _Base:
    def __init__(self, base_url: str | Iterable[str], *, token: str | None = None,
                 timeout: float = 10.0, ca: str | Path | None = None,
                 retry: RetryPolicy | None = None) -> None:
        self._endpoints = p.Endpoints(p.normalize_urls(base_url))
        self._policy = retry or RetryPolicy()
        self._options = _http_options(token, timeout, ca)

    @property
    def base_url(self) -> str:
        """The server instance the next request goes to (it moves on failures)."""
        return self._endpoints.url


class Client(_Base):
    """A blocking client. Use as a context manager, or call :meth:`close`.

    ``base_url``: one URL or several (server instances of the same store, tried
    in turn); ``token``: bearer token; ``ca``: a CA bundle for https;
    ``retry``: the :class:`RetryPolicy`.
    """

    def __init__(self, base_url: str | Iterable[str], *, token: str | None = None,
                 timeout: float = 10.0, ca: str | Path | None = None,
                 retry: RetryPolicy | None = None) -> None:
        super().__init__(base_url, token=token, timeout=timeout, ca=ca, retry=retry)
        self._http = httpx.Client(**self._options)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _run(self, op: p.Op) -> Any:
        return run_sync(op, self._http, self._endpoints)

    def get(self, ns: str, key: str, *, consistency: Consistency = "strong") -> Entry | None:
        """The key's entry, or None when it does not exist."""
        entry: Entry | None = self._run(p.get(self._endpoints, self._policy, ns, key, consistency))
        return entry

    def put(self, ns: str, key: str, value: Value | None = None, *, json: Any = None,
            content_type: str | None = None, ttl: float | None = None,
            if_match: str | None = None) -> Written:
        """Write the value (bytes, str, or ``json=``); with ``if_match`` only if the ETag matches."""
        written: Written = self._run(p.put(self._endpoints, self._policy, ns, key, value, json,
                                           content_type, ttl, if_match, None))
        return written

    def create(self, ns: str, key: str, value: Value | None = None, *, json: Any = None,
               content_type: str | None = None, ttl: float | None = None) -> Written:
        """Write only if the key does not exist (:class:`PreconditionFailed` otherwise)."""
        written: Written = self._run(p.put(self._endpoints, self._policy, ns, key, value, json,
                                           content_type, ttl, None, "*"))
        return written

    def delete(self, ns: str, key: str, *, if_match: str | None = None) -> bool:
        """Remove the key; False when it did not exist (without ``if_match``)."""
        removed: bool = self._run(p.delete(self._endpoints, self._policy, ns, key, if_match))
        return removed

    def update(self, ns: str, key: str, fn: Callable[[Entry | None], Value], *, retries: int = 20,
               content_type: str | None = None, ttl: float | None = None) -> Written:
        """Compare-and-set loop: ``fn(current entry or None)`` gives the new value, written with
        If-Match; on a conflict read again and apply ``fn`` again (no lost update)."""
        written: Written = self._run(p.update(self._endpoints, self._policy, ns, key, fn, retries,
                                              content_type, ttl))
        return written

    def list(self, ns: str, *, prefix: str = "", delimiter: str | None = None,
             keys_only: bool = False, page_size: int = 100,
             consistency: Consistency = "strong") -> Iterator[Entry | Prefix]:
        """Every key (and, with ``delimiter``, common :class:`Prefix`), following cursors."""
        cursor: str | None = None
        while True:
            page: p.Page = self._run(p.list_page(self._endpoints, self._policy, ns, prefix, delimiter,
                                                 keys_only, page_size, cursor, consistency))
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def batch(self, ns: str, ops: Batch) -> Results:
        """Independent operations, one result each (a failed one does not stop the others);
        ``.revision`` of the list: the store's revision after its writes."""
        results: Results = self._run(p.batch(self._endpoints, self._policy, ns, ops))
        return results

    def txn(self, ns: str, t: Txn) -> TxnResult:
        """An atomic transaction: the compares, then ``then`` or ``otherwise``."""
        result: TxnResult = self._run(p.txn(self._endpoints, self._policy, ns, t))
        return result

    def status(self) -> dict[str, Any]:
        """``/v1/status`` of the current server instance."""
        result: dict[str, Any] = self._run(p.status(self._endpoints, self._policy))
        return result

    def watch(self, ns: str, *, prefix: str = "", since: int | None = None,
              keys_only: bool = False) -> Iterator[Event]:
        """Every change of ``ns`` (under ``prefix``) after revision ``since`` (None: from now), as
        it happens, each once and in order, reconnecting by itself (to the next base URL) with
        the last revision received. Endless: stop with ``break`` or ``close()`` (which closes the
        connection). Raises :class:`Compacted` when ``since`` is older than the history kept."""
        return stream_sync(p.watch(self._endpoints, self._policy, ns, prefix, since, keys_only),
                           self._http, self._endpoints)

    def changes(self, ns: str, *, prefix: str = "", since: int | None = None, keys_only: bool = False,
                limit: int = 100, wait: float = 0) -> Changes:
        """One page of the changes after ``since`` (None: from now), waiting up to ``wait`` seconds
        (at most 60) for the first; ask again with ``since=page.revision``."""
        page: Changes = self._run(p.changes(self._endpoints, self._policy, ns, prefix, since, keys_only,
                                            limit, wait))
        return page


class AsyncClient(_Base):
    """The asyncio client: :class:`Client`'s methods as coroutines (``list`` an async iterator)."""

    def __init__(self, base_url: str | Iterable[str], *, token: str | None = None,
                 timeout: float = 10.0, ca: str | Path | None = None,
                 retry: RetryPolicy | None = None) -> None:
        super().__init__(base_url, token=token, timeout=timeout, ca=ca, retry=retry)
        self._http = httpx.AsyncClient(**self._options)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _run(self, op: p.Op) -> Any:
        return await run_async(op, self._http, self._endpoints)

    async def get(self, ns: str, key: str, *, consistency: Consistency = "strong") -> Entry | None:
        entry: Entry | None = await self._run(p.get(self._endpoints, self._policy, ns, key, consistency))
        return entry

    async def put(self, ns: str, key: str, value: Value | None = None, *, json: Any = None,
                  content_type: str | None = None, ttl: float | None = None,
                  if_match: str | None = None) -> Written:
        written: Written = await self._run(p.put(self._endpoints, self._policy, ns, key, value, json,
                                                 content_type, ttl, if_match, None))
        return written

    async def create(self, ns: str, key: str, value: Value | None = None, *, json: Any = None,
                     content_type: str | None = None, ttl: float | None = None) -> Written:
        written: Written = await self._run(p.put(self._endpoints, self._policy, ns, key, value, json,
                                                 content_type, ttl, None, "*"))
        return written

    async def delete(self, ns: str, key: str, *, if_match: str | None = None) -> bool:
        removed: bool = await self._run(p.delete(self._endpoints, self._policy, ns, key, if_match))
        return removed

    async def update(self, ns: str, key: str, fn: Callable[[Entry | None], Value], *,
                     retries: int = 20, content_type: str | None = None,
                     ttl: float | None = None) -> Written:
        written: Written = await self._run(p.update(self._endpoints, self._policy, ns, key, fn,
                                                    retries, content_type, ttl))
        return written

    async def list(self, ns: str, *, prefix: str = "", delimiter: str | None = None,
                   keys_only: bool = False, page_size: int = 100,
                   consistency: Consistency = "strong") -> AsyncIterator[Entry | Prefix]:
        cursor: str | None = None
        while True:
            page: p.Page = await self._run(p.list_page(self._endpoints, self._policy, ns, prefix,
                                                       delimiter, keys_only, page_size, cursor,
                                                       consistency))
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def batch(self, ns: str, ops: Batch) -> Results:
        results: Results = await self._run(p.batch(self._endpoints, self._policy, ns, ops))
        return results

    async def txn(self, ns: str, t: Txn) -> TxnResult:
        result: TxnResult = await self._run(p.txn(self._endpoints, self._policy, ns, t))
        return result

    async def status(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._run(p.status(self._endpoints, self._policy))
        return result

    def watch(self, ns: str, *, prefix: str = "", since: int | None = None,
              keys_only: bool = False) -> AsyncIterator[Event]:
        """:meth:`Client.watch` as an async iterator (``async for``); stop it with ``break`` and
        ``await events.aclose()``, or ``contextlib.aclosing``, to close the connection at once."""
        return stream_async(p.watch(self._endpoints, self._policy, ns, prefix, since, keys_only),
                            self._http, self._endpoints)

    async def changes(self, ns: str, *, prefix: str = "", since: int | None = None, keys_only: bool = False,
                      limit: int = 100, wait: float = 0) -> Changes:
        page: Changes = await self._run(p.changes(self._endpoints, self._policy, ns, prefix, since,
                                                  keys_only, limit, wait))
        return page
