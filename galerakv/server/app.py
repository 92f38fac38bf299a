"""The ASGI application: routing, auth, errors, metrics, health, the TTL purge and the dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from galerakv import __version__
from galerakv.backend import create_store
from galerakv.backend.base import Retention, Store
from galerakv.config import Settings, Token
from galerakv.errors import BackendUnavailable, Compacted, InvalidRequest, StoreError
from galerakv.server import routes, validate
from galerakv.server.dashboard import ClusterProbe, Dashboard
from galerakv.server.http import (
    Receive,
    Request,
    Response,
    Scope,
    Send,
    StreamResponse,
    decode_segment,
    json_response,
    problem_response,
)
from galerakv.server.metrics import Metrics
from galerakv.server.openapi import openapi_document
from galerakv.server.problems import Problem
from galerakv.server.watch import Feed

log = logging.getLogger("galerakv.server")

Handler = Callable[[routes.Context, Request, str, str], Awaitable[Response]]
NsHandler = Callable[[routes.Context, Request, str], Awaitable[Response | StreamResponse]]

_KEY_METHODS: dict[str, Handler] = {
    "GET": routes.get_key, "HEAD": routes.get_key, "PUT": routes.put_key,
    "DELETE": routes.delete_key,
}
_NS_ROUTES: dict[bytes, tuple[str, str, NsHandler]] = {
    b"kv": ("GET", "/v1/ns/{ns}/kv", routes.list_keys),
    b"batch": ("POST", "/v1/ns/{ns}/batch", routes.batch),
    b"txn": ("POST", "/v1/ns/{ns}/txn", routes.txn),
    b"watch": ("GET", "/v1/ns/{ns}/watch", routes.watch),
    b"changes": ("GET", "/v1/ns/{ns}/changes", routes.changes),
}
_KEY_ROUTE = "/v1/ns/{ns}/kv/{key}"
_PREFIX = b"/v1/ns/"


class App:
    """The galerakv HTTP API as an ASGI 3 application."""

    def __init__(self, settings: Settings, store: Store | None = None, metrics: Metrics | None = None,
                 probe: ClusterProbe | None = None) -> None:
        """``probe`` reads the Galera cluster for the dashboard's cluster page (the command line
        gives the toolkit's; without one the page shows the server's own view of the nodes)."""
        self.settings = settings
        self.store = store if store is not None else create_store(settings)
        self.metrics = metrics if metrics is not None else Metrics()
        self.feed = Feed(self.store, settings.watch)
        self.dashboard = Dashboard(settings, self.store, self.metrics, probe, self._token) \
            if settings.ui.enabled else None
        self._openapi: bytes | None = None
        self._purger: asyncio.Task[None] | None = None
        self._compactor: asyncio.Task[None] | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._opened = False

    # ------------------------------------------------------------------ lifecycle

    async def startup(self) -> None:
        if not self._opened:
            await self.store.open()
            self._opened = True
        self._purger = asyncio.create_task(self._purge_loop())
        self._compactor = asyncio.create_task(self._compact_loop())
        if self.dashboard is not None:
            self._sampler = asyncio.create_task(self.dashboard.traffic.run())

    async def shutdown(self) -> None:
        await self.feed.close()
        for task in (self._purger, self._compactor, self._sampler):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._purger = self._compactor = self._sampler = None
        if self._opened:
            await self.store.close()
            self._opened = False
        self.metrics.close()

    async def _purge_loop(self) -> None:
        interval = self.settings.server.ttl_purge_interval
        while True:
            await asyncio.sleep(interval)
            try:
                while (n := await self.store.purge_expired(1000)) > 0:
                    self.metrics.purged += n
                    await asyncio.sleep(0)
            except StoreError as exc:
                log.warning("TTL purge failed, will retry: %s", exc)

    async def _compact_loop(self) -> None:
        watch = self.settings.watch
        retention = Retention(watch.history_revisions, watch.history_seconds)
        while True:
            await asyncio.sleep(watch.compact_interval)
            try:
                await self.store.compact(retention)
            except StoreError as exc:
                log.warning("history compaction failed, will retry: %s", exc)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except StoreError as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------------ dispatch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # websockets are not served
            return
        started = time.perf_counter()
        req = Request(scope, receive)
        code: str | None = None
        response: Response | StreamResponse
        try:
            response = await self._dispatch(req)
        except Problem as exc:
            response, code = problem_response(exc, req.path[:300]), exc.code
        except StoreError as exc:
            mapped = _store_problem(exc)
            response, code = problem_response(mapped, req.path[:300]), mapped.code
        except Exception:
            log.exception("unexpected error on %s %s", req.method, req.path)
            internal = Problem("internal", "an unexpected error occurred; it has been logged")
            response, code = problem_response(internal), internal.code
        if isinstance(response, StreamResponse):  # timed to its start: a stream lasts as long as its client
            self.metrics.observe(req.method, req.route, response.status, time.perf_counter() - started, code)
            await response.send(send, head=req.method == "HEAD")
            return
        await response.send(send, head=req.method == "HEAD")
        self.metrics.observe(req.method, req.route, response.status, time.perf_counter() - started,
                             code)

    async def _dispatch(self, req: Request) -> Response | StreamResponse:
        raw = req.raw_path
        if raw.startswith(_PREFIX):
            ns_raw, sep, rest = raw[len(_PREFIX):].partition(b"/")
            ns = validate.namespace(decode_segment(ns_raw, "namespace", "invalid_namespace"))
            if rest.startswith(b"kv/"):
                req.route = _KEY_ROUTE
                handler = _KEY_METHODS.get(req.method)
                if handler is None:
                    raise _not_allowed("GET, HEAD, PUT, DELETE")
                self.authorize(req, ns, write=req.method in ("PUT", "DELETE"))
                key = validate.key(decode_segment(rest[3:], "key", "invalid_key"),
                                   self.settings.limits)
                return await handler(self, req, ns, key)
            found = _NS_ROUTES.get(rest) if sep else None
            if found is not None:
                method, req.route, ns_handler = found
                if req.method != method and not (method == "GET" and req.method == "HEAD"):
                    raise _not_allowed(method)
                self.authorize(req, ns, write=False)
                return await ns_handler(self, req, ns)
            raise Problem("no_route", f"no endpoint at {req.path[:200]}; see /openapi.json")
        simple = _SIMPLE.get(req.path)
        if simple is None:
            if req.path == "/ui" or req.path.startswith("/ui/"):
                if self.dashboard is None:
                    raise Problem("no_route", "the dashboard is off in this server's configuration (ui.enabled)")
                return await self.dashboard.handle(req)
            raise Problem("no_route", f"no endpoint at {req.path[:200]}; see /openapi.json")
        if req.method not in ("GET", "HEAD"):
            raise _not_allowed("GET, HEAD")
        req.route = req.path
        return await simple(self, req)

    # ------------------------------------------------------------------ auth

    def _token(self, req: Request) -> Token:
        header = req.header(b"authorization")
        challenge = {"WWW-Authenticate": 'Bearer realm="galerakv"'}
        if not header:
            raise Problem("unauthorized", "send Authorization: Bearer <token>", headers=challenge)
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Problem("unauthorized", "the Authorization header must be Bearer <token>",
                          headers=challenge)
        token = self.settings.auth.find(secret.strip())
        if token is None:
            raise Problem("unauthorized", "the bearer token is not known", headers=challenge)
        return token

    def authorize(self, req: Request, ns: str, write: bool) -> None:
        """401 without a valid token, 403 when its scope on ``ns`` is too small."""
        if not self.settings.auth.enabled:
            return
        token = self._token(req)
        scope = token.scope_for(ns)
        if scope is None:
            raise Problem("forbidden", f"token {token.name!r} has no access to namespace {ns!r}")
        if write and scope != "readwrite":
            raise Problem("forbidden", f"token {token.name!r} may only read namespace {ns!r}")

    def authorize_write(self, req: Request, ns: str, write: bool) -> None:
        if write:
            self.authorize(req, ns, write=True)

    # ------------------------------------------------------------------ simple endpoints

    async def healthz(self, req: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(self, req: Request) -> Response:
        status = await self.store.status()
        if status.ready:
            return json_response({"ready": True, "backend": status.kind, "detail": status.detail})
        # an error like any other (problem+json), keeping the 200 answer's fields
        raise Problem("backend_unavailable", status.detail, headers={"Retry-After": "1"},
                      ready=False, backend=status.kind)

    async def status(self, req: Request) -> Response:
        # with auth on, only an admin token sees where the data lives (paths, node addresses)
        details = not self.settings.auth.enabled or self._token(req).admin
        status = await self.store.status()
        return json_response({
            "version": __version__,
            "backend": {"kind": status.kind, "ready": status.ready, "detail": status.detail,
                        **(status.extra if details else {})},
            "limits": {
                "max_key_bytes": self.settings.limits.max_key_bytes,
                "max_value_bytes": self.settings.limits.max_value_bytes,
                "max_batch_ops": self.settings.limits.max_batch_ops,
                "max_txn_ops": self.settings.limits.max_txn_ops,
                "max_list_limit": self.settings.limits.max_list_limit,
                "max_request_bytes": self.settings.limits.max_request_bytes,
                "max_response_bytes": self.settings.limits.max_response_bytes,
            },
            "auth": self.settings.auth.enabled,
            "watch": await self._watch_status(),
        })

    async def _watch_status(self) -> dict[str, object]:
        watch = self.settings.watch
        out: dict[str, object] = {"history_revisions": watch.history_revisions,
                                  "history_seconds": watch.history_seconds,
                                  "watchers": self.feed.watchers, "feed_revision": self.feed.head}
        try:
            out["revision"], out["compact_revision"] = await self.store.revision()
        except StoreError as exc:
            out["error"] = str(exc)
        return out

    async def metrics_endpoint(self, req: Request) -> Response:
        return Response(200, self.metrics.render(),
                        [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")])

    async def openapi(self, req: Request) -> Response:
        if self._openapi is None:
            import orjson

            self._openapi = orjson.dumps(openapi_document(self.settings))
        return Response(200, self._openapi, [(b"content-type", b"application/json")])


_SIMPLE: dict[str, Callable[[App, Request], Awaitable[Response]]] = {
    "/healthz": App.healthz,
    "/readyz": App.readyz,
    "/metrics": App.metrics_endpoint,
    "/v1/status": App.status,
    "/openapi.json": App.openapi,
}
_STORE_CODES = {"bad_request", "invalid_cursor", "backend_unavailable", "outcome_unknown"}



def _store_problem(exc: StoreError) -> Problem:
    """The problem a backend error becomes: 400 for a bad operation, 410 for compacted history,
    else 503 with Retry-After."""
    if isinstance(exc, Compacted):
        return routes.compacted(exc)
    if isinstance(exc, InvalidRequest):
        return Problem(exc.code if exc.code in _STORE_CODES else "bad_request", str(exc))
    retry = exc.retry_after if isinstance(exc, BackendUnavailable) else 1
    code = exc.code if exc.code in _STORE_CODES else "backend_unavailable"
    return Problem(code, str(exc), headers={"Retry-After": str(retry)})


def _not_allowed(allow: str) -> Problem:
    return Problem("method_not_allowed", f"use one of: {allow}", headers={"Allow": allow})
