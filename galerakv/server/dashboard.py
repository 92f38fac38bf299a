"""The dashboard at ``/ui``: pages shipped in the package, and the JSON they read.

- ``/ui`` and ``/ui/``: the page (``ui/index.html``); ``/ui/app.js``, ``/ui/app.css``: its
  assets. Nothing comes from the network: no CDN, no font, no image from elsewhere. A strict
  Content-Security-Policy allows this server's own scripts and styles only.
- ``/ui/api/me``: what the bearer token may do (the page hides what it may not).
- ``/ui/api/cluster``: on Galera, the toolkit's overview of the cluster with the doctor's
  findings (a :data:`ClusterProbe` given by whoever builds the app: the server never imports
  the toolkit), read at most once per ``ui.cluster_refresh`` and only while a page asks; on
  SQLite, the single file's facts.
- ``/ui/api/traffic``: a ring of one sample per second over 15 minutes (requests per second,
  p50/p99 latency, errors by code), taken from this run's metrics (every worker's sums) by
  :class:`Traffic`.
- ``/ui/api/namespaces``: the namespaces the token may read.

Keys are read and written through the API itself (``/v1/ns/...``), with the same token.
With auth on, every ``/ui/api`` endpoint needs a valid token; node addresses, file paths and
the doctor's evidence are shown to ``admin`` tokens only, as in ``/v1/status``.
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from galerakv.backend.base import Store
from galerakv.config import Settings, Token
from galerakv.server.http import Request, Response, json_response
from galerakv.server.metrics import BUCKETS, Metrics
from galerakv.server.problems import Problem

ClusterProbe = Callable[[], dict[str, Any]]
"""Reads the cluster (blocking; run in a thread): the toolkit's overview, doctor included, as JSON."""

ROUTE = "/ui"  # every dashboard request counts under this one route, left out of the traffic page
SAMPLE_SECONDS = 1.0
WINDOW_SECONDS = 15 * 60.0
ASSETS = {"/ui": "index.html", "/ui/": "index.html", "/ui/app.js": "app.js", "/ui/app.css": "app.css"}
_TYPES = {".html": b"text/html; charset=utf-8", ".js": b"text/javascript; charset=utf-8",
          ".css": b"text/css; charset=utf-8"}
_PAGE_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache")]
# what a token without admin does not see: where things are, and the doctor's raw evidence
_PRIVATE = frozenset({"address", "evidence", "path", "notes", "error", "pid", "check_detail", "serving_reason",
                      "doctor_error", "reasons"})


def quantile(counts: list[int], q: float) -> float | None:
    """The ``q`` quantile in seconds of a histogram's (non-cumulative) bucket counts, by linear
    interpolation inside the bucket it falls in (as Prometheus' histogram_quantile); None when empty."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(counts):
        if n and seen + n >= rank:
            if i >= len(BUCKETS):  # above the last bound: that bound is all we know
                return BUCKETS[-1]
            low = BUCKETS[i - 1] if i else 0.0
            return low + (BUCKETS[i] - low) * (rank - seen) / n
        seen += n
    return BUCKETS[-1]


class Traffic:
    """Samples of this run's request metrics: one per :data:`SAMPLE_SECONDS` over :data:`WINDOW_SECONDS`."""

    def __init__(self, metrics: Metrics, interval: float = SAMPLE_SECONDS, window: float = WINDOW_SECONDS) -> None:
        self.metrics = metrics
        self.interval = interval
        self.samples: collections.deque[dict[str, Any]] = collections.deque(maxlen=int(window / interval))
        self._last: tuple[float, int, dict[str, int], list[int]] | None = None
        self.requests = 0  # served since the run started, dashboard requests left out

    def _read(self) -> tuple[int, dict[str, int], list[int]]:
        totals = self.metrics.totals()
        requests = sum(n for (_, route, _), n in totals.requests.items() if route != ROUTE)
        errors: dict[str, int] = {}
        for (route, code), n in totals.errors.items():
            if route != ROUTE:
                errors[code] = errors.get(code, 0) + n
        buckets = [0] * (len(BUCKETS) + 1)
        for route, counts in totals.buckets.items():
            if route != ROUTE:
                buckets = [a + b for a, b in zip(buckets, counts, strict=True)]
        return requests, errors, buckets

    def sample(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        requests, errors, buckets = self._read()
        self.requests = requests
        if self._last is not None:
            then, last_requests, last_errors, last_buckets = self._last
            seconds = max(now - then, 1e-6)
            delta = [a - b for a, b in zip(buckets, last_buckets, strict=True)]
            p50, p99 = quantile(delta, 0.5), quantile(delta, 0.99)
            self.samples.append({
                "t": round(now, 3), "rps": round((requests - last_requests) / seconds, 2),
                "p50_ms": None if p50 is None else round(p50 * 1000, 3),
                "p99_ms": None if p99 is None else round(p99 * 1000, 3),
                "errors": {c: n - last_errors.get(c, 0) for c, n in errors.items() if n > last_errors.get(c, 0)}})
        self._last = (now, requests, errors, buckets)

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def to_dict(self) -> dict[str, Any]:
        return {"interval": self.interval, "window": self.interval * (self.samples.maxlen or 0),
                "requests_total": self.requests, "samples": list(self.samples)}


class Dashboard:
    """Answers every request under ``/ui``."""

    def __init__(self, settings: Settings, store: Store, metrics: Metrics, probe: ClusterProbe | None,
                 token: Callable[[Request], Token]) -> None:
        self.settings = settings
        self.store = store
        self.probe = probe
        self.token = token  # the request's valid token, else the 401 problem (auth on only)
        self.traffic = Traffic(metrics)
        self._assets: dict[str, bytes] = {}
        self._cluster: tuple[float, dict[str, Any]] | None = None
        self._cluster_lock = asyncio.Lock()

    async def handle(self, req: Request) -> Response:
        req.route = ROUTE
        if req.method not in ("GET", "HEAD"):
            raise Problem("method_not_allowed", "use one of: GET, HEAD", headers={"Allow": "GET, HEAD"})
        name = ASSETS.get(req.path)
        if name is not None:
            return self._asset(name)
        api = _API.get(req.path)
        if api is None:
            raise Problem("no_route", f"no dashboard page at {req.path[:200]}; open /ui")
        token = self.token(req) if self.settings.auth.enabled else None
        return await api(self, token)

    def _asset(self, name: str) -> Response:
        body = self._assets.get(name)
        if body is None:
            body = self._assets[name] = resources.files("galerakv.server").joinpath("ui", name).read_bytes()
        kind = _TYPES[os.path.splitext(name)[1]]
        return Response(200, body, [(b"content-type", kind), *_PAGE_HEADERS])

    # ------------------------------------------------------------------ the JSON the page reads

    async def me(self, token: Token | None) -> Response:
        if token is None:
            return json_response({"auth": False, "name": None, "admin": True, "scopes": {"*": "readwrite"}})
        return json_response({"auth": True, "name": token.name, "admin": token.admin, "scopes": dict(token.scopes)})

    async def namespaces(self, token: Token | None) -> Response:
        found = await self.store.namespaces()
        if token is not None:  # the ones it may read, and the ones named in its scopes (even if empty)
            named = {ns for ns in token.scopes if ns != "*"}
            found = sorted({ns for ns in found if token.scope_for(ns) is not None} | named)
        return json_response({"namespaces": found})

    async def traffic_page(self, token: Token | None) -> Response:
        return json_response(self.traffic.to_dict())

    async def cluster(self, token: Token | None) -> Response:
        view = await self._cluster_view()
        status = await self.store.status()
        server = {"backend": status.kind, "ready": status.ready, "detail": status.detail,
                  "route": status.extra.get("route"), "writer": status.extra.get("writer"),
                  "nodes": status.extra.get("nodes")}
        if status.kind == "sqlite":
            view = {"kind": "sqlite", **_sqlite_facts(str(status.extra.get("path", ""))),
                    "revision": status.extra.get("revision"), "compacted": status.extra.get("compacted"),
                    "synchronous": status.extra.get("synchronous")}
        body = {**view, "server": server, "writer": _writer(view, server)}
        if token is not None and not token.admin:
            body = _scrub(body)
        return json_response(body)

    async def _cluster_view(self) -> dict[str, Any]:
        """The probe's reading, reused for ``ui.cluster_refresh`` seconds; shared by concurrent requests."""
        if self.probe is None:
            return {"kind": "none"}
        async with self._cluster_lock:
            cached = self._cluster
            if cached is not None and time.monotonic() - cached[0] < self.settings.ui.cluster_refresh:
                return cached[1]
            try:
                view = {"kind": "galera", **await asyncio.to_thread(self.probe)}
            except Exception as exc:  # the page says so and keeps polling
                view = {"kind": "galera", "error": f"could not read the cluster: {exc}"}
            self._cluster = (time.monotonic(), view)
            return view


def _writer(view: dict[str, Any], server: dict[str, Any]) -> str | None:
    """The node taking the writes: the server's own choice when it routes over the nodes, else the
    balancer's (the toolkit's overview says which server its write listener sends to)."""
    writer = server.get("writer") if server.get("route") == "nodes" else view.get("writer")
    return str(writer) if writer else None


def _sqlite_facts(path: str) -> dict[str, Any]:
    def size(p: str) -> int | None:
        try:
            return os.stat(p).st_size
        except OSError:
            return None

    return {"path": path, "file_bytes": size(path), "wal_bytes": size(path + "-wal")}


def _scrub(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _scrub(v) for k, v in data.items() if k not in _PRIVATE}
    if isinstance(data, list):
        return [_scrub(v) for v in data]
    return data


_API: dict[str, Callable[[Dashboard, Token | None], Awaitable[Response]]] = {
    "/ui/api/me": Dashboard.me,
    "/ui/api/cluster": Dashboard.cluster,
    "/ui/api/traffic": Dashboard.traffic_page,
    "/ui/api/namespaces": Dashboard.namespaces,
}
